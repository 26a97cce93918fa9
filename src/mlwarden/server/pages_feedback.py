"""Feedback on predictions and their explanations, on the dashboard.

* ``/models/{model}/predictions/{id}`` — one logged prediction: its inputs, the prediction, a
  waterfall of its attributions from the base value to the output (by sensor, and by feature),
  the quality flags of its row, the feedback given on it, and the feedback form;
* on the model page, the trends of people's feedback (override rate, explanation plausibility)
  and of explanation drift (:func:`trend_plots`).

The form is a POST from the page itself, taken only with a token of scope ``write`` (the
sign-in cookie or a bearer header) and refused when the browser names another origin, as on the
Actions page (:mod:`mlwarden.server.pages_actions`). It sends back what the page showed — the
prediction, its attributions and its quality flags — which is recorded with the feedback: a
reader of the feedback later sees what the person saw, even when the row's attributions were
computed for the page and stored differently since. A form that does not validate is shown
again, filled in as sent, with a note naming the field.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass
from datetime import datetime
from functools import partial
from typing import TYPE_CHECKING, Annotated, Any, Final, TypeGuard
from urllib.parse import quote

import polars as pl
from fastapi import APIRouter, Query, Request
from fastapi.responses import RedirectResponse
from starlette.concurrency import run_in_threadpool

from mlwarden.exceptions import InputError, MlwardenError, NotFoundError, ParameterError
from mlwarden.server.dashboard import (
    _ALERT,
    _BOUND,
    Plot,
    Viewer,
    _cell,
    _dumps,
    _layout,
    _numbers,
    _problem,
    _render,
    _root,
    _store,
    series_figure,
)
from mlwarden.server.pages_actions import FLASH, _flash, _writer, noted, writer_form

if TYPE_CHECKING:
    from fastapi.responses import Response
    from markupsafe import Markup
    from sqlalchemy import ColumnElement

    from mlwarden.store.metadata import Store, TokenRecord

__all__ = ["router", "trend_plots", "waterfall_figure"]

MAX_BARS: Final = 12
SHIFT_COLUMNS: Final = 5
MAX_TEXT: Final = 2_000
MAX_FORM_BYTES: Final = 262_144
_UP: Final = "#cf222e"
_DOWN: Final = "#0969da"
_TOTAL: Final = "#57606a"
_CONNECTOR: Final = "#8c959f"
_SHIFT: Final = "explanation_shift"
_SERIES_SCHEMA: Final[dict[str, Any]] = {
    "window_id": pl.Int64,
    "name": pl.String,
    "column": pl.String,
    "value": pl.Float64,
    "lower": pl.Float64,
    "upper": pl.Float64,
    "alert": pl.Boolean,
}
_SHIFT_COLORS: Final = ("#0969da", "#bc4c00", "#1a7f37", "#8250df", "#bf3989")
_FLAG_COLUMN: Final = re.compile(r"\(([^()]*)\)$")
_OUTPUTS: Final = {
    "raw": "in the model's raw output (log-odds for a classifier)",
    "probability": "in probability",
    "prediction": "in the prediction's units",
}

router = APIRouter(include_in_schema=False)


# -- the waterfall --------------------------------------------------------------------------------


def waterfall_figure(
    parts: list[dict[str, Any]], base: object, *, output: str = ""
) -> tuple[Markup, str] | None:
    """A waterfall from the base value through each attribution (``parts``: ``name``,
    ``attribution``, optional ``value``), strongest first, to the output; beyond ``MAX_BARS``
    the weakest are summed into one bar. The figure and a note on it (which names the
    ``output`` space); None without attributions.

    Example:
        >>> figure, note = waterfall_figure(
        ...     [{"name": "speed", "attribution": -0.2}, {"name": "pressure", "attribution": 0.5}],
        ...     base=1.0,
        ... )
        >>> json.loads(str(figure))["layout"]["xaxis"]["ticktext"]
        ['base value', 'pressure', 'speed', 'output']
        >>> note
        'from the base value 1 to the output 1.3'
    """
    parts = [p for p in parts if _finite(p.get("attribution"))]
    if not parts:
        return None
    parts = sorted(parts, key=lambda p: -abs(float(p["attribution"])))
    if len(parts) > MAX_BARS:
        rest = parts[MAX_BARS - 1 :]
        parts = [
            *parts[: MAX_BARS - 1],
            {
                "name": f"{len(rest)} others",
                "attribution": sum(float(p["attribution"]) for p in rest),
            },
        ]
    start = float(base) if _finite(base) else 0.0
    attributions = [float(p["attribution"]) for p in parts]
    total = start + sum(attributions)
    names = ["base value", *(str(p["name"]) for p in parts), "output"]
    values = [start, *attributions, 0.0]
    hover = [f"base value {start:.4g}"]
    for p, attribution in zip(parts, attributions, strict=True):
        shown = f"{p['name']}: {attribution:+.4g}"
        if p.get("value") is not None:
            shown += f" (value {_cell(p['value'], str(p['name']))[0]})"
        hover.append(shown)
    hover.append(f"output {total:.4g}")
    figure = {
        "data": [
            {
                "type": "waterfall",
                # Positions, not names, on the axis: a feature named "output" stays its own bar.
                "x": list(range(len(names))),
                "y": [_round(v) for v in values],
                "measure": ["absolute", *(["relative"] * len(parts)), "total"],
                "text": ["", *(f"{a:+.3g}" for a in attributions), f"{total:.3g}"],
                "textposition": "outside",
                "hovertext": hover,
                "hoverinfo": "text",
                "increasing": {"marker": {"color": _UP}},
                "decreasing": {"marker": {"color": _DOWN}},
                "totals": {"marker": {"color": _TOTAL}},
                "connector": {"line": {"color": _CONNECTOR, "width": 1}},
            }
        ],
        "layout": {
            "height": 320,
            "margin": {"l": 56, "r": 16, "t": 16, "b": 40},
            "showlegend": False,
            "xaxis": {
                "tickmode": "array",
                "tickvals": list(range(len(names))),
                "ticktext": names,
                "automargin": True,
            },
            "yaxis": {"title": {"text": "model output"}, "automargin": True, "zeroline": False},
        },
    }
    note = f"from the base value {start:.4g} to the output {total:.4g}"
    if not _finite(base):
        note = f"no base value was stored: the bars start at 0 and add up to {total:.4g}"
    return _dumps(figure), f"{note} {output}" if output else note


# -- the model page's trends ----------------------------------------------------------------------

_TRENDS: Final = (
    (
        "override_rate",
        "Override rate",
        "share of the predictions with a decision that people overrode; above its bound, "
        "people stopped trusting the model",
        True,
    ),
    (
        "explanation_plausibility",
        "Explanation plausibility",
        "share of the judged explanations that people found plausible, against its bound",
        True,
    ),
    (
        "explanation_auc",
        "Explanation drift (AUC)",
        "how well a classifier tells the window's attributions from the reference's "
        "(0.5: not at all)",
        False,
    ),
    (
        "importance_rank",
        "Importance ranking",
        "rank correlation of the features' importance in the window with the reference's",
        False,
    ),
)


def trend_plots(store: Store, model: str, windows: pl.DataFrame) -> list[Plot]:
    """The feedback and explanation-drift charts of a model page over its ``windows`` (``id``,
    ``version``, ``start``): each metric with its bounds and the windows outside them, and the
    attribution shift of the ``SHIFT_COLUMNS`` features that came nearest their bound."""
    if windows.height == 0:
        return []
    metrics = _series(store, model, windows, [t[0] for t in _TRENDS])
    plots = []
    for name, title, note, percent in _TRENDS:
        frame = metrics.filter(pl.col("name") == name)
        if frame.height:
            plots.append(
                Plot(
                    f"trend-{name.replace('_', '-')}",
                    title,
                    note,
                    series_figure(frame, name.replace("_", " "), percent=percent),
                )
            )
    top = _most_shifted(store, model, windows)
    if top:
        shift = _series(store, model, windows, [_SHIFT], columns=top)
        plots.append(
            Plot(
                "trend-explanation-shift",
                "Attribution shift per feature",
                f"KS distance of each feature's attributions from the reference's, for the "
                f"{len(top)} features that came nearest their bound, with the bound",
                _shift_figure(shift, top),
            )
        )
    return plots


def _scope(model: str, windows: pl.DataFrame) -> list[ColumnElement[bool]]:
    """Overall metrics of the page's windows: their versions from their first start on, on
    the (name, window id) index through the windows' id range."""
    from sqlalchemy import select

    from mlwarden.store.schema import MetricRow, ModelRow, VersionRow, WindowRow

    low, high, since = windows.select(
        pl.col("id").min().alias("low"), pl.col("id").max().alias("high"), pl.col("start").min()
    ).row(0)
    versions = (
        select(VersionRow.id)
        .join(ModelRow, ModelRow.id == VersionRow.model_id)
        .where(ModelRow.name == model, VersionRow.version.in_(windows["version"].unique()))
    )
    return [
        MetricRow.window_id.between(low, high),
        MetricRow.segment == "",
        WindowRow.version_id.in_(versions.scalar_subquery()),
        WindowRow.start >= since,
    ]


def _series(
    store: Store,
    model: str,
    windows: pl.DataFrame,
    names: list[str],
    *,
    columns: list[str] | None = None,
) -> pl.DataFrame:
    """The overall values of the metrics ``names`` (of ``columns``) in ``windows``, with each
    window's ``start``, oldest first.

    Like ``Store.metric_series``, but one statement whose rows go to Polars as tuples: 90 days
    of hourly windows read in tens of milliseconds, not seconds.
    """
    from sqlalchemy import select, union_all

    from mlwarden.store.schema import MetricRow, WindowRow

    scope = _scope(model, windows)
    if columns is not None:
        scope.append(MetricRow.column.in_(columns))
    with store.session() as s:
        rows = s.execute(
            union_all(
                *(
                    select(
                        MetricRow.window_id,
                        MetricRow.name,
                        MetricRow.column,
                        MetricRow.value,
                        MetricRow.lower,
                        MetricRow.upper,
                        MetricRow.alert,
                    )
                    .join(WindowRow, WindowRow.id == MetricRow.window_id)
                    .where(MetricRow.name == name, *scope)
                    for name in names  # one index seek per name
                )
            )
        ).all()
    frame = pl.DataFrame(rows, schema=_SERIES_SCHEMA, orient="row")
    starts = windows.select(pl.col("id").alias("window_id"), "start")
    return frame.join(starts, on="window_id").sort("start", "name", "column")


def _most_shifted(store: Store, model: str, windows: pl.DataFrame) -> list[str]:
    """The ``SHIFT_COLUMNS`` features whose attribution shift came nearest their bound (or
    went furthest beyond it) in ``windows``, counted in the database."""
    from sqlalchemy import func, select

    from mlwarden.store.schema import MetricRow, WindowRow

    worst = func.max(MetricRow.value / func.nullif(MetricRow.upper, 0))
    largest = func.max(MetricRow.value)
    query = (
        select(MetricRow.column, worst, largest)
        .join(WindowRow, WindowRow.id == MetricRow.window_id)
        .where(MetricRow.name == _SHIFT, *_scope(model, windows))
        .group_by(MetricRow.column)
    )
    with store.session() as s:
        found = pl.DataFrame(
            s.execute(query).all(),
            schema={"column": pl.String, "worst": pl.Float64, "largest": pl.Float64},
            orient="row",
        )
    ordered = found.sort(
        ["worst", "largest", "column"], descending=[True, True, False], nulls_last=True
    )
    return ordered["column"].head(SHIFT_COLUMNS).to_list()


def _shift_figure(frame: pl.DataFrame, top: list[str]) -> Markup:
    """The attribution shift of the features ``top``, one line each, with the bound and the
    windows outside it."""
    mode = "lines+markers" if frame["start"].n_unique() <= 200 else "lines"
    traces: list[dict[str, Any]] = []
    bound = frame.group_by("start").agg(pl.col("upper").max()).sort("start")
    if bound["upper"].is_not_null().any():
        traces.append(
            {
                "type": "scatter",
                "mode": "lines",
                "name": "bound",
                "x": bound["start"].dt.epoch("ms").to_list(),
                "y": _numbers(bound, pl.col("upper")),
                "line": {"color": _BOUND, "dash": "dash", "width": 1},
            }
        )
    for i, column in enumerate(top):
        part = frame.filter(pl.col("column") == column).sort("start")
        traces.append(
            {
                "type": "scatter",
                "mode": mode,
                "name": column,
                "x": part["start"].dt.epoch("ms").to_list(),
                "y": _numbers(part, pl.col("value")),
                "line": {"color": _SHIFT_COLORS[i % len(_SHIFT_COLORS)], "width": 1.5},
                "marker": {"size": 3},
            }
        )
    alerts = frame.filter(pl.col("alert")).sort("start")
    if alerts.height:
        traces.append(
            {
                "type": "scatter",
                "mode": "markers",
                "name": "outside bounds",
                "x": alerts["start"].dt.epoch("ms").to_list(),
                "y": _numbers(alerts, pl.col("value")),
                "text": alerts["column"].to_list(),
                "marker": {"color": _ALERT, "size": 8},
            }
        )
    return _dumps({"data": traces, "layout": _layout("KS distance")})


# -- the prediction page --------------------------------------------------------------------------


@dataclass(frozen=True)
class _Sent:
    """What a feedback form said, as text, to fill the form in again after an error."""

    role: str = ""
    correct: str = ""
    true_value: str = ""
    decision: str = ""
    reason: str = ""
    comment: str = ""
    plausible: str = ""
    explanation_comment: str = ""


def _why_not(request: Request, viewer: TokenRecord | None, doing: str) -> str:
    """Why the viewer sees no form, for the note in its place."""
    needs = f"{doing} needs a token of scope write"
    if viewer is not None:
        return f"{needs}; you are signed in with the read token '{viewer.name}'."
    if request.app.state.settings.public_read:
        return f"{needs}, sent as a bearer token: this server shows its pages without one."
    return f"{needs}: sign in with one."


def _flag_columns(flags: list[str]) -> set[str]:
    """The columns named by quality flags such as ``range(temperature_c)``."""
    return {m.group(1) for f in flags if (m := _FLAG_COLUMN.search(f))}


def _shown(doc: dict[str, Any]) -> dict[str, Any]:
    """What the page shows of a prediction, as recorded with feedback on it."""
    return {
        "prediction": doc["prediction"],
        "explanation": doc["explanation"],
        "quality_flags": doc["quality_flags"],
    }


def _global_explanation(store: Store, model: str, version: str) -> dict[str, Any] | None:
    """A version's stored global explanation (``Registry.explanation``, read from the store
    directly: a ``Registry`` checks the schema first, some 15 ms a page)."""
    from mlwarden.registry import EXPLANATION

    if EXPLANATION not in store.get_version(model, version).artifacts:
        return None
    doc = json.loads(store.artifact(model, version, EXPLANATION))
    return doc if isinstance(doc, dict) else None


def _output_label(store: Store, model: str, version: str) -> str:
    explanation = _global_explanation(store, model, version) or {}
    return _OUTPUTS.get(str(explanation.get("output", "")), "")


def _feedback_rows(doc: dict[str, Any]) -> list[dict[str, Any]]:
    rows = []
    for entry in doc["feedback"]:
        entry = dict(entry)
        entry["created_at"] = datetime.fromisoformat(entry["created_at"])
        rows.append(entry)
    return rows


def _prediction_page(
    request: Request,
    model: str,
    prediction_id: str,
    viewer: TokenRecord | None,
    *,
    sent: _Sent | None = None,
    error: tuple[str, str] | None = None,
) -> Response:
    """The page of one prediction; after a form that did not validate, with ``error``
    (``(field, text)``) and the form as ``sent``, answered 422."""
    from mlwarden.feedback import ROLES
    from mlwarden.server.feedback_api import prediction_doc

    store = _store(request)
    try:
        doc = prediction_doc(request, model, prediction_id)
    except NotFoundError as exc:
        return _problem(request, 404, "Not found", str(exc))
    except MlwardenError as exc:
        return _problem(request, 500, "Cannot show this prediction", str(exc))
    explanation = doc["explanation"] or {}
    output = _output_label(store, model, doc["version"]) if explanation else ""
    plots = []
    sensors = waterfall_figure(
        [{"name": s["sensor"], "attribution": s["attribution"]} for s in explanation["sensors"]]
        if explanation
        else [],
        explanation.get("base_value"),
        output=output,
    )
    if sensors is not None:
        plots.append(Plot("waterfall-sensors", "By sensor", sensors[1], sensors[0]))
    grouped = len(explanation.get("sensors") or []) != len(explanation.get("features") or [])
    if explanation and grouped:
        features = waterfall_figure(
            [
                {"name": f["feature"], "attribution": f["attribution"], "value": f["value"]}
                for f in explanation["features"]
            ],
            explanation.get("base_value"),
            output=output,
        )
        if features is not None:
            plots.append(Plot("waterfall-features", "By feature", features[1], features[0]))
    flagged = _flag_columns(doc["quality_flags"])
    inputs = [(k, *_cell(v, k), k in flagged) for k, v in doc["row"].items()]
    writer = _writer(request)
    flash = ("error", error[1]) if error is not None else _flash(request)
    when = doc["timestamp"]
    subtitle = f"{model} · version {doc['version']}"
    if when:
        subtitle += f" · {datetime.fromisoformat(when):%Y-%m-%d %H:%M:%S} UTC"
    response = _render(
        request,
        "prediction.html.j2",
        status_code=422 if error is not None else 200,
        title=f"Prediction {doc['prediction_id']}",
        subtitle=subtitle,
        model=model,
        doc=doc,
        prediction=_cell(doc["prediction"], "prediction")[0],
        explanation=explanation,
        plots=plots,
        inputs=inputs,
        flags=doc["quality_flags"],
        feedback=_feedback_rows(doc),
        roles=ROLES,
        reasons=doc["reasons"],
        shown_json=json.dumps(_shown(doc), separators=(",", ":"), default=str),
        sent=sent or _Sent(),
        error_field=error[0] if error is not None else "",
        writer=writer,
        why_not=None if writer is not None else _why_not(request, viewer, "Giving feedback"),
        flash=flash,
    )
    if error is None and flash is not None:
        response.delete_cookie(FLASH, path=f"{_root(request)}/", httponly=True, samesite="strict")
    return response


@router.get("/models/{model}/predictions")
def find_prediction_page(
    request: Request,
    model: str,
    _: Viewer,
    prediction_id: Annotated[str, Query(alias="id")] = "",
) -> Response:
    """The target of the model page's search box: the page of prediction ``id``."""
    where = f"{_root(request)}/models/{quote(model, safe='')}"
    if prediction_id.strip():
        where += f"/predictions/{quote(prediction_id.strip(), safe='')}"
    return RedirectResponse(where, 303)


@router.get("/models/{model}/predictions/{prediction_id}")
def prediction_page(request: Request, model: str, prediction_id: str, viewer: Viewer) -> Response:
    """One prediction: inputs, output, attributions, quality flags, feedback and its form."""
    return _prediction_page(request, model, prediction_id, viewer)


def _choice(value: str, name: str) -> bool | None:
    """A yes/no radio of the form: ``true``, ``false`` or not said."""
    if value == "":
        return None
    if value in ("true", "false"):
        return value == "true"
    raise ParameterError(
        f"The '{name}' of feedback is 'true', 'false' or not said; got {value!r}.",
        parameter=name,
    )


def _true_value(store: Store, model: str, version: str, text: str) -> Any:
    """The true value typed in the form, as the type of the version's target (text when the
    type is not known)."""
    from mlwarden.registry import Registry
    from mlwarden.service.evaluate import load_reference

    evaluators = load_reference(store, model, version).evaluators
    target = evaluators.target if evaluators is not None else None
    rows = Registry(store).reference_rows(model, version) if target else None
    dtype = rows.schema.get(target) if rows is not None and target else None
    name = target or "the target"
    if dtype is None:
        for kind in (int, float):
            try:
                return kind(text)
            except ValueError:
                pass
        return text
    if dtype == pl.Boolean:
        if text.lower() in ("true", "false"):
            return text.lower() == "true"
        raise InputError(
            f"The true value of '{name}' is true or false; got {text!r}.", column="true_value"
        )
    try:
        if dtype.is_integer():
            return int(text)
        if dtype.is_float():
            return float(text)
    except ValueError:
        raise InputError(
            f"The true value of '{name}' must be a number; got {text!r}.", column="true_value"
        ) from None
    return text


def _record_feedback(
    request: Request, model: str, prediction_id: str, sent: _Sent, shown: Any, by: str
) -> None:
    """Check the form and record the feedback; raises what :func:`give_feedback` raises."""
    from mlwarden.feedback import find_prediction, give_feedback

    store, rowlog = _store(request), request.app.state.rowlog
    if not isinstance(shown, dict):
        raise ParameterError(
            "The form lost what the page showed; load the page again.", parameter="shown"
        )
    correct = _choice(sent.correct, "correct")
    plausible = _choice(sent.plausible, "plausible")
    true_value = None
    if sent.true_value:
        _, version, _ = find_prediction(store, rowlog, model, prediction_id)
        true_value = _true_value(store, model, version, sent.true_value)
    give_feedback(
        store,
        rowlog,
        model,
        prediction_id,
        role=sent.role,
        by=by,
        correct=correct,
        true_value=true_value,
        decision=sent.decision or None,
        reason=sent.reason,
        comment=sent.comment,
        plausible=plausible,
        explanation_comment=sent.explanation_comment,
        shown={k: shown.get(k) for k in ("prediction", "explanation", "quality_flags")},
    )


@router.post("/models/{model}/predictions/{prediction_id}/feedback")
async def give_feedback_form(request: Request, model: str, prediction_id: str) -> Response:
    """Record the feedback form of a prediction page (write token, same origin); back to the
    page with a note, or the page again with the field that did not validate."""
    posted = await writer_form(
        request,
        where="Give feedback",
        doing="Giving feedback",
        form_name="feedback",
        limit=MAX_FORM_BYTES,
    )
    if not isinstance(posted, tuple):
        return posted
    writer, form = posted

    def field(name: str) -> str:
        return (form.get(name) or [""])[0].strip()

    sent = _Sent(**{name: field(name) for name in _Sent.__dataclass_fields__})
    try:
        shown = json.loads(field("shown") or "null")
    except json.JSONDecodeError:
        shown = None
    try:
        await run_in_threadpool(
            _record_feedback, request, model, prediction_id, sent, shown, writer.name
        )
    except NotFoundError as exc:
        return _problem(request, 404, "Not found", str(exc))
    except (ParameterError, InputError) as exc:
        name = getattr(exc, "parameter", None) or getattr(exc, "column", None) or ""
        text = " ".join(str(exc).split())
        note = f"Feedback not recorded: {text}" + (f" (field: {name})" if name else "")
        return await run_in_threadpool(
            partial(
                _prediction_page,
                request,
                model,
                prediction_id,
                writer,
                sent=sent,
                error=(name, note),
            )
        )
    target = f"/models/{quote(model, safe='')}/predictions/{quote(prediction_id, safe='')}"
    return noted(request, f"{target}#feedback", "ok", f"Feedback recorded, by {writer.name}.")


# -- helpers --------------------------------------------------------------------------------------


def _finite(value: object) -> TypeGuard[int | float]:
    return (
        isinstance(value, int | float)
        and not isinstance(value, bool)
        and math.isfinite(float(value))
    )


def _round(value: object) -> float | None:
    """A value for a chart: 6 significant figures, non-finite values as gaps."""
    if not _finite(value):
        return None
    return float(f"{float(value):.6g}")
