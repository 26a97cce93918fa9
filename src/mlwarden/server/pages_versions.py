"""A model version on the dashboard (``/models/{model}/versions/{version}``): its global
explanation — each sensor group's and feature's share of the attributions and the direction of
its effect — beside the production version's (or, for the production version, beside the one
it replaced), and its promotion requests with the gate's evidence per metric and segment.

The page shows the version's alert budget: the false incidents per period its team accepts, how
the budget is shared between single-window bounds, CUSUMs and quality checks, the rate measured
on reference windows held out of the calibration, the regimes and cycles its metrics are judged
within, the learned checks widened to fit the budget, and what cannot alarm at its window size.
A holder of a write token changes the budget there (``POST .../alert-budget``).

The page shows the version's logging contract: each column its rows and labels must carry,
its role and what monitoring does with it, and the open findings of the batches logged so far
that depart from it.

A pending promotion is approved or rejected from the page (``POST /promotions/{id}/review``)
by anyone holding a token of scope ``write``, from this server's own page: the review goes into
the alias history with the gate's evidence (:func:`mlwarden.registry.promotion.review_promotion`).
The page reads only what was stored at registration and request; it computes nothing again.
"""

from __future__ import annotations

import math
from functools import partial
from typing import TYPE_CHECKING, Any, Final
from urllib.parse import quote

from fastapi import APIRouter, Request
from starlette.concurrency import run_in_threadpool

from mlwarden.exceptions import ConflictError, NotFoundError, ParameterError
from mlwarden.server.dashboard import Plot, Viewer, _dumps, _problem, _render, _root, _store
from mlwarden.server.pages_actions import FLASH, _flash, _writer, noted, writer_form
from mlwarden.server.pages_feedback import (
    MAX_FORM_BYTES,
    MAX_TEXT,
    _finite,
    _global_explanation,
    _round,
    _why_not,
)

if TYPE_CHECKING:
    from fastapi.responses import Response
    from markupsafe import Markup

    from mlwarden.store.metadata import Store

__all__ = ["importance_rows", "router"]

MAX_IMPORTANCE_BARS: Final = 20
# |direction| below this is "no clear direction": the correlation of a feature's value with
# its attribution is weak.
_CLEAR_DIRECTION: Final = 0.1
_UP: Final = "#cf222e"
_DOWN: Final = "#0969da"
_NEUTRAL: Final = "#8c959f"

router = APIRouter(include_in_schema=False)


# -- the explanation ------------------------------------------------------------------------------


def _direction(value: float | None) -> tuple[str, str]:
    """The direction of a feature's effect as text and as a bar colour."""
    if value is None or not math.isfinite(value) or abs(value) < _CLEAR_DIRECTION:
        return "no clear direction", _NEUTRAL
    if value > 0:
        return "higher value → higher output", _UP
    return "higher value → lower output", _DOWN


def importance_rows(explanation: dict[str, Any] | None, level: str) -> list[dict[str, Any]]:
    """The ``features`` or ``groups`` of a global explanation as table rows: ``name``,
    ``share``, ``mean_abs``, ``direction`` and its text, most important first.

    Example:
        >>> doc = {"features": [{"feature": "a", "mean_abs": 0.2, "share": 0.8,
        ...                      "direction": -0.6}], "groups": []}
        >>> [(r["name"], r["direction_text"]) for r in importance_rows(doc, "features")]
        [('a', 'higher value → lower output')]
    """
    if explanation is None:
        return []
    rows = []
    for entry in explanation.get(level) or []:
        direction = entry.get("direction")
        text, color = _direction(direction)
        rows.append(
            {
                "name": str(entry.get("feature", "")),
                "share": entry.get("share"),
                "mean_abs": entry.get("mean_abs"),
                "direction": direction,
                "direction_text": text,
                "color": color,
            }
        )
    return sorted(rows, key=lambda r: -(r["share"] or 0.0))


def _importance_figure(rows: list[dict[str, Any]]) -> Markup:
    """Horizontal bars of each feature's share of the attributions, coloured by direction."""
    shown = list(reversed(rows[:MAX_IMPORTANCE_BARS]))  # the largest on top
    figure = {
        "data": [
            {
                "type": "bar",
                "orientation": "h",
                "y": [r["name"] for r in shown],
                "x": [_round(r["share"]) for r in shown],
                "marker": {"color": [r["color"] for r in shown]},
                "hovertext": [
                    f"{r['name']}: {_share(r['share'])} of the attributions, mean |attribution| "
                    f"{_number(r['mean_abs'])}; {r['direction_text']}"
                    for r in shown
                ],
                "hoverinfo": "text",
            }
        ],
        "layout": {
            "height": max(160, 40 + 24 * len(shown)),
            "margin": {"l": 16, "r": 16, "t": 8, "b": 32},
            "showlegend": False,
            "xaxis": {"title": {"text": "share of the attributions"}, "tickformat": ".0%"},
            "yaxis": {"type": "category", "automargin": True},
            "bargap": 0.25,
        },
    }
    return _dumps(figure)


# -- the version page -----------------------------------------------------------------------------


def _compared_with(store: Store, model: str, version: str) -> tuple[str | None, str]:
    """The version to show beside ``version``: production, or the version production pointed
    at before, when ``version`` is production; with how to name it."""
    from mlwarden.server.queries import PRODUCTION

    production = store.aliases(model).get(PRODUCTION)
    if production is None:
        return None, ""
    if production != version:
        return production, f"version {production} (production)"
    for change in reversed(store.alias_history(model, PRODUCTION)):
        if change.version == version and change.previous and change.previous != version:
            return change.previous, f"version {change.previous} (production before it)"
    return None, ""


def _explained(store: Store, model: str, version: str, label: str, key: str) -> dict[str, Any]:
    """One column of the comparison: a version's global explanation with its charts."""
    explanation = _global_explanation(store, model, version)
    groups = importance_rows(explanation, "groups")
    features = importance_rows(explanation, "features")
    plots = []
    if groups:
        plots.append(Plot(f"{key}-groups", "By sensor group", "", _importance_figure(groups)))
    if features:
        plots.append(Plot(f"{key}-features", "By feature", "", _importance_figure(features)))
    return {
        "version": version,
        "label": label,
        "explanation": explanation,
        "features": features,
        "plots": plots,
    }


def _comparison(this: dict[str, Any], other: dict[str, Any] | None) -> list[dict[str, Any]]:
    """Per feature its share and direction in both versions, in the order of this one."""
    theirs = {r["name"]: r for r in (other or {}).get("features", [])}
    rows = []
    for row in this["features"]:
        rows.append({"this": row, "other": theirs.pop(row["name"], None), "name": row["name"]})
    rows += [{"this": None, "other": r, "name": name} for name, r in theirs.items()]
    return rows


@router.get("/models/{model}/versions/{version}")
def version_page(request: Request, model: str, version: str, viewer: Viewer) -> Response:
    """A version's global explanation beside production's, its alert budget, its logging
    contract with the open findings against it, and its promotion requests."""
    from mlwarden.registry.promotion import list_promotions
    from mlwarden.server.contract_api import contract_of

    store = _store(request)
    try:
        record = store.get_version(model, version)
    except NotFoundError as exc:
        return _problem(request, 404, "Not found", str(exc))
    contract = contract_of(request.app.state, record)
    aliases = [a for a, v in store.aliases(model).items() if v == version]
    other_version, other_label = _compared_with(store, model, version)
    this = _explained(store, model, version, f"version {version}", "this")
    other = None
    if other_version is not None:
        other = _explained(store, model, other_version, other_label, "other")
    promotions = list_promotions(store, model, version=version)
    writer = _writer(request)
    flash = _flash(request)
    response = _render(
        request,
        "version.html.j2",
        title=f"{model} · version {version}",
        subtitle=f"registered {record.created_at:%Y-%m-%d %H:%M} UTC",
        model=model,
        version=version,
        aliases=aliases,
        this=this,
        other=other,
        comparison=_comparison(this, other) if this["features"] else [],
        plots=[*this["plots"], *(other["plots"] if other else [])],
        promotions=promotions,
        alerting=record.meta.get("alerting"),
        contract=contract.parts(),
        contract_lines=contract.lines(),
        findings=store.contract_findings(model, version),
        writer=writer,
        why_not=None if writer is not None else _why_not(request, viewer, "Reviewing a promotion"),
        flash=flash,
    )
    if flash is not None:
        response.delete_cookie(FLASH, path=f"{_root(request)}/", httponly=True, samesite="strict")
    return response


@router.post("/promotions/{promotion_id}/review")
async def review_promotion_form(request: Request, promotion_id: str) -> Response:
    """Approve or reject a pending promotion (form fields ``decision``, ``comment``; write token,
    same origin); back to the version page with a note."""
    from mlwarden.registry.promotion import get_promotion, review_promotion

    posted = await writer_form(
        request,
        where="Review promotions",
        doing="Reviewing a promotion",
        form_name="review",
        limit=MAX_FORM_BYTES,
    )
    if not isinstance(posted, tuple):
        return posted
    writer, form = posted
    decision = (form.get("decision") or [""])[0]
    comment = (form.get("comment") or [""])[0].strip()
    if decision not in ("approve", "reject"):
        return _problem(
            request, 422, "Bad request", f"A decision is 'approve' or 'reject'; got {decision!r}."
        )
    if len(comment) > MAX_TEXT:
        return _problem(
            request,
            422,
            "Bad request",
            f"A comment is at most {MAX_TEXT:,} characters; got {len(comment):,}.",
        )
    store = _store(request)
    try:
        if not promotion_id.isdigit():
            raise NotFoundError(f"'{promotion_id}' is not a promotion id (a number).")
        current = await run_in_threadpool(get_promotion, store, int(promotion_id))
    except NotFoundError as exc:
        return _problem(request, 404, "Not found", str(exc))
    verb = "approved" if decision == "approve" else "rejected"
    try:
        done = await run_in_threadpool(
            partial(
                review_promotion,
                store,
                current.id,
                approve=decision == "approve",
                by=writer.name,
                comment=comment,
            )
        )
    except (ConflictError, ParameterError) as exc:
        note = ("error", f"Promotion {current.id} could not be {verb}: {exc}")
    else:
        moved = (
            f": '{done.alias}' now points at version {done.version}"
            if done.status == "promoted"
            else f": '{done.alias}' stays"
        )
        note = (
            "ok",
            f"Promotion {done.id} of version {done.version} {verb} by {writer.name}{moved}.",
        )
    target = (
        f"/models/{quote(current.model, safe='')}/versions/{quote(current.version, safe='')}"
        f"#promotion-{current.id}"
    )
    return noted(request, target, *note)


@router.post("/models/{model}/versions/{version}/alert-budget")
async def alert_budget_form(request: Request, model: str, version: str) -> Response:
    """Change a version's alert budget (form field ``false_incidents``, per 90 days; write
    token, same origin); back to the version page with a note."""
    from mlwarden.registry import Registry

    posted = await writer_form(
        request,
        where="Change alert budgets",
        doing="Changing an alert budget",
        form_name="budget",
        limit=MAX_FORM_BYTES,
    )
    if not isinstance(posted, tuple):
        return posted
    writer, form = posted
    text = (form.get("false_incidents") or [""])[0].strip()
    try:
        wanted = float(text)
    except ValueError:
        wanted = math.nan
    target = f"/models/{quote(model, safe='')}/versions/{quote(version, safe='')}#alert-budget"
    if not 0 < wanted <= 1_000:
        return noted(
            request,
            target,
            "error",
            f"A budget is a number of false incidents per 90 days in (0, 1000]; got {text!r}.",
        )
    registry = Registry(_store(request))
    try:
        await run_in_threadpool(partial(registry.set_budget, model, version, wanted))
    except NotFoundError as exc:
        return _problem(request, 404, "Not found", str(exc))
    except ParameterError as exc:
        return noted(request, target, "error", str(exc))
    return noted(
        request,
        target,
        "ok",
        f"The alert budget of version {version} is now {wanted:g} false incidents per 90 days "
        f"(set by {writer.name}); the next evaluation uses its bounds.",
    )


# -- helpers --------------------------------------------------------------------------------------


def _share(value: object) -> str:
    return f"{float(value):.1%}" if _finite(value) else "–"


def _number(value: object) -> str:
    return f"{float(value):.4g}" if _finite(value) else "–"
