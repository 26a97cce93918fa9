"""The dashboard of ``mlwarden serve``: server-rendered pages over the metadata store.

Pages: every model at a glance (``/``); a model's metric timelines with their alert bounds, its
windows and incidents, under a banner for each way its logged batches depart from their
version's logging contract (``/models/{model}``); a window's drill-down — failing checks with
their sample rows, drift per feature with reference-against-current distributions, estimated
against realized performance, multivariate drift and segments (``/models/{model}/windows/{id}``);
and incidents with their alerts (``/incidents``). Pages are Jinja2 templates with autoescaping; the
plots are Plotly figures handed to the page as JSON in ``<script type="application/json">``
blocks (escaped so that no data can close the block) and drawn by Plotly.js, which the server
itself serves from the installed ``plotly`` package: no CDN, the dashboard works offline.

Reads need a read token unless the server runs with ``public_read``. A browser cannot send a
bearer header, so ``/login`` takes the token in a form and keeps it in an HttpOnly, SameSite=Strict
cookie (the store keeps only its hash); pages accept the cookie or a bearer header and send
anyone without a valid one to ``/login``.

The timeline of a model reads only the metrics it plots (see :mod:`mlwarden.server.queries`) and
builds each series with Polars, so that 90 days of hourly windows (some 200,000 metric rows in
the store) render in a fraction of a second.
"""

from __future__ import annotations

import functools
import gzip
import json
import math
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Annotated, Any, Final
from urllib.parse import parse_qs, quote, urlencode, urlsplit

import polars as pl
from fastapi import APIRouter, Depends, Header, HTTPException, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from markupsafe import Markup
from starlette.concurrency import run_in_threadpool

from mlwarden._version import __version__
from mlwarden.exceptions import FormatError, MlwardenError, NotFoundError
from mlwarden.report.html import format_number
from mlwarden.server import queries
from mlwarden.store.metadata import TokenRecord

if TYPE_CHECKING:
    import jinja2

    from mlwarden.profiling import Profile
    from mlwarden.store.metadata import ContractFinding, Store, WindowRecord

__all__ = ["COOKIE", "router"]

COOKIE: Final = "mlwarden_token"
WINDOWS_PER_PAGE: Final = 50
INCIDENTS_ON_MODEL_PAGE: Final = 10
INCIDENTS_PER_PAGE: Final = 200
FINDINGS_ON_MODEL_PAGE: Final = 10
DEFAULT_DAYS: Final = 30
MAX_DAYS: Final = 3_650
_MAX_FORM_BYTES: Final = 4_096
_YEAR: Final = 365 * 24 * 3600
_MARKED_POINTS: Final = 200

_LINE: Final = "#0969da"
_REALIZED: Final = "#1a7f37"
_BOUND: Final = "#8c959f"
_BAND: Final = "rgba(140, 149, 159, 0.15)"
_ALERT: Final = "#cf222e"
_DRIFTED: Final = "#bc4c00"
_ACTION_TAGS: Final = {"done": "ok", "failed": "bad", "pending": "warn"}

router = APIRouter(include_in_schema=False)


# -- rendering ------------------------------------------------------------------------------------


@functools.cache
def _environment() -> jinja2.Environment:
    import jinja2

    env = jinja2.Environment(
        loader=jinja2.PackageLoader("mlwarden.server", "templates"),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["num"] = format_number
    env.filters["when"] = _when
    env.filters["segment"] = _segment
    env.filters["percent"] = _percent
    env.filters["action_tag"] = _action_tag
    env.filters["detail_items"] = _detail_items
    env.filters["since"] = finding_since
    return env


def _when(moment: datetime | None, seconds: bool = False) -> str:
    """A time for a table cell, in UTC."""
    if moment is None:
        return "–"
    return moment.strftime("%Y-%m-%d %H:%M:%S" if seconds else "%Y-%m-%d %H:%M")


def finding_since(finding: ContractFinding) -> str:
    """A contract finding as a sentence that says since when its batches show it.

    Example:
        >>> from datetime import UTC, datetime
        >>> from mlwarden.store.metadata import ContractFinding
        >>> at = datetime(2025, 2, 1, 10, 4, tzinfo=UTC)
        >>> finding_since(ContractFinding("m", "1", "rows", "missing_output", "fail_score",
        ...     "rows carry no 'fail_score' (the model's score)", at, at, 1, 500, 500))
        "rows since 2025-02-01 10:04 UTC carry no 'fail_score' (the model's score)"
    """
    head, _, rest = finding.message.partition(" ")
    since = f"since {_when(finding.first_at)} UTC"
    if head == finding.batch and rest:
        return f"{head} {since} {rest}"
    return f"{finding.batch} {since}: {finding.message}"


def _segment(text: str) -> str:
    """A path segment with every reserved character escaped (check labels hold ``(``, ``/``)."""
    return quote(str(text), safe="")


def _percent(x: float | None) -> str:
    return "–" if x is None or not math.isfinite(x) else f"{x:.1%}"


def _action_tag(status: str) -> str:
    """The class of a policy action's status tag: ``ok``, ``bad``, ``warn`` or ``none``."""
    return _ACTION_TAGS.get(status, "none")


def _detail_items(detail: dict[str, Any]) -> list[tuple[str, str]]:
    """A detail as ``(key, text)`` pairs: strings as they are, anything else as JSON."""
    return [
        (str(k), v if isinstance(v, str) else json.dumps(v, sort_keys=True, default=str))
        for k, v in detail.items()
    ]


def _root(request: Request) -> str:
    """The path the app is mounted at behind a proxy ('' at the top)."""
    return str(request.scope.get("root_path", "")).rstrip("/")


def _render(request: Request, template: str, *, status_code: int = 200, **context: Any) -> Response:
    settings = request.app.state.settings
    page = _environment().get_template(template)
    text = page.render(
        root=_root(request),
        mlwarden_version=__version__,
        plotly_version=_plotly_version(),
        signed_in=not settings.public_read and _has_cookie(request),
        **context,
    )
    return HTMLResponse(text, status_code=status_code)


def _problem(request: Request, status_code: int, title: str, message: str) -> Response:
    """The page of a missing model, window, incident or check (or of a bad query)."""
    return _render(
        request,
        "problem.html.j2",
        status_code=status_code,
        title=title,
        message=" ".join(message.split()),
    )


def _store(request: Request) -> Store:
    store: Store = request.app.state.store
    return store


# -- plots ----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Plot:
    """One chart of a page: its element id, heading, note and figure (JSON, safe in a script
    block)."""

    id: str
    title: str
    note: str
    figure: Markup


def script_json(text: str) -> Markup:
    """JSON text made safe inside ``<script type="application/json">``: ``<``, ``>`` and ``&``
    only occur inside JSON strings, where their ``\\u`` escapes mean the same characters.

    Example:
        >>> str(script_json('{"column": "</script><b>"}'))
        '{"column": "\\\\u003c/script\\\\u003e\\\\u003cb\\\\u003e"}'
    """
    safe = text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")
    return Markup(safe)


def _dumps(figure: dict[str, Any]) -> Markup:
    return script_json(json.dumps(figure, allow_nan=False, separators=(",", ":")))


def _numbers(frame: pl.DataFrame, expr: pl.Expr) -> list[float | None]:
    """Values for a plot: 6 significant figures (a smaller page, the same picture), non-finite
    values as gaps."""
    value = expr.cast(pl.Float64)
    return (
        frame.select(pl.when(value.is_finite()).then(value.round_sig_figs(6))).to_series().to_list()
    )


def _layout(y_title: str, *, percent: bool = False, bars: bool = False) -> dict[str, Any]:
    yaxis: dict[str, Any] = {"title": {"text": y_title}, "zeroline": False, "automargin": True}
    if percent:
        yaxis["tickformat"] = ".1~%"  # 99.7%, not a column of 100%
    if bars:
        yaxis.update(rangemode="tozero", tickformat="d")
    return {
        "height": 260,
        "margin": {"l": 56, "r": 16, "t": 8, "b": 32},
        "xaxis": {"type": "date"},
        "yaxis": yaxis,
        "legend": {"orientation": "h", "y": 1.18, "traceorder": "normal"},
        "hovermode": "x unified",
        "barmode": "overlay",
        "bargap": 0.1,
    }


def series_figure(
    frame: pl.DataFrame, label: str, *, realized: str | None = None, percent: bool = False
) -> Markup:
    """A metric over windows: its line, its bounds (a shaded band when it has both), the windows
    outside them in red, and optionally the realized value as a second line.

    ``frame`` has the columns ``start``, ``value``, ``lower``, ``upper`` and ``alert`` (and
    ``realized`` when named). The figure's traces share its top-level ``x`` (window starts, ms
    since the epoch), which the page's script hands to each trace.
    """
    traces: list[dict[str, Any]] = []
    upper = frame["upper"].is_not_null().any()
    lower = frame["lower"].is_not_null().any()
    bound = {"color": _BOUND, "dash": "dash", "width": 1}
    if upper:
        traces.append(
            {
                "type": "scatter",
                "mode": "lines",
                "name": "upper bound",
                "y": _numbers(frame, pl.col("upper")),
                "line": bound,
            }
        )
    if lower:
        trace: dict[str, Any] = {
            "type": "scatter",
            "mode": "lines",
            "name": "lower bound",
            "y": _numbers(frame, pl.col("lower")),
            "line": bound,
        }
        if upper:
            trace.update(fill="tonexty", fillcolor=_BAND)
        traces.append(trace)
    # Markers on each window while they can be told apart; beyond, the line alone.
    mode = "lines+markers" if frame.height <= _MARKED_POINTS else "lines"
    traces.append(
        {
            "type": "scatter",
            "mode": mode,
            "name": label,
            "y": _numbers(frame, pl.col("value")),
            "line": {"color": _LINE, "width": 1.5},
            "marker": {"size": 3},
        }
    )
    if realized is not None:
        traces.append(
            {
                "type": "scatter",
                "mode": mode,
                "name": "realized",
                "y": _numbers(frame, pl.col("realized")),
                "line": {"color": _REALIZED, "width": 1.5, "dash": "dot"},
                "marker": {"size": 3},
            }
        )
    if frame["alert"].any():
        traces.append(
            {
                "type": "scatter",
                "mode": "markers",
                "name": "outside bounds",
                "y": _numbers(frame, pl.when(pl.col("alert")).then(pl.col("value"))),
                "marker": {"color": _ALERT, "size": 8},
            }
        )
    figure = {
        "x": frame["start"].dt.epoch("ms").to_list(),
        "data": traces,
        "layout": _layout(label, percent=percent),
    }
    return _dumps(figure)


def drifted_figure(windows: pl.DataFrame) -> Markup:
    """Columns out of their drift bounds per window, over the columns tested (bars)."""
    figure = {
        "x": windows["start"].dt.epoch("ms").to_list(),
        "data": [
            {
                "type": "bar",
                "name": "columns tested",
                "y": windows["drift_tested"].to_list(),
                "marker": {"color": _BAND},
            },
            {
                "type": "bar",
                "name": "drifted columns",
                "y": windows["drifted"].to_list(),
                "marker": {"color": _DRIFTED},
            },
        ],
        "layout": _layout("columns", bars=True),
    }
    return _dumps(figure)


# -- auth -----------------------------------------------------------------------------------------


def _has_cookie(request: Request) -> bool:
    return bool(request.cookies.get(COOKIE))


def _bearer(authorization: str | None) -> str | None:
    if authorization is not None and authorization.lower().startswith("bearer "):
        return authorization.split(" ", 1)[1].strip() or None
    return None


def _viewer(
    request: Request, authorization: Annotated[str | None, Header()] = None
) -> TokenRecord | None:
    """The read token of the request (bearer header or cookie); anyone without one is sent to
    the sign-in page, which brings them back here."""
    if request.app.state.settings.public_read:
        return None
    token = _bearer(authorization) or request.cookies.get(COOKIE)
    if token:
        record = _store(request).verify_token(token, "read")
        if record is not None:
            return record
    root = _root(request)
    here = request.url.path
    if root and here.startswith(root):
        here = here[len(root) :]
    if request.url.query:
        here += f"?{request.url.query}"
    raise HTTPException(
        303,
        "Sign in with a read token to see the dashboard.",
        headers={"Location": f"{root}/login?{urlencode({'next': here})}"},
    )


Viewer = Annotated[TokenRecord | None, Depends(_viewer)]


def _safe_next(target: str | None) -> str:
    """Where to go after signing in: a path on this server, never another site."""
    if not target or not target.startswith("/") or target.startswith("//") or "\\" in target:
        return "/"
    return target


@router.get("/login")
def login_page(
    request: Request,
    target: Annotated[str | None, Query(alias="next")] = None,
    signed_out: bool = False,
) -> Response:
    """The sign-in form (a read token); with ``public_read`` there is nothing to sign in to."""
    if request.app.state.settings.public_read:
        return RedirectResponse(f"{_root(request)}/", 303)
    message = "Signed out." if signed_out else None
    if target is not None and not signed_out:
        message = "Sign in with a read token to see the dashboard."
    return _render(
        request,
        "login.html.j2",
        title="Sign in",
        message=message,
        error=None,
        next=_safe_next(target),
    )


@router.post("/login")
async def login(request: Request) -> Response:
    """Check the token of the form; keep it in an HttpOnly cookie and go on, or say why not."""
    origin = request.headers.get("origin")
    if origin is not None and urlsplit(origin).netloc != request.headers.get("host"):
        # Another site's form must not sign a browser in (with the other site's token).
        return _problem(request, 403, "Forbidden", "Sign in from this server's own page.")
    body = await request.body()
    if len(body) > _MAX_FORM_BYTES:
        return _problem(request, 413, "Too large", "The sign-in form is limited to 4 KB.")
    form = parse_qs(body.decode("utf-8", "replace"))
    token = (form.get("token") or [""])[0].strip()
    target = _safe_next((form.get("next") or ["/"])[0])
    store = _store(request)
    record = await run_in_threadpool(store.verify_token, token, "read") if token else None
    if record is None:
        return _render(
            request,
            "login.html.j2",
            status_code=401,
            title="Sign in",
            message=None,
            error="This token is not valid: it is mistyped, revoked, or not a token of this "
            "server. Create one with 'mlwarden token create NAME --scope read'.",
            next=target,
        )
    response = RedirectResponse(f"{_root(request)}{target}", 303)
    response.set_cookie(
        COOKIE,
        token,
        httponly=True,
        samesite="strict",
        secure=request.url.scheme == "https",
        path=f"{_root(request)}/",
    )
    return response


@router.get("/logout")
def logout(request: Request) -> Response:
    """Forget the token cookie."""
    response = RedirectResponse(f"{_root(request)}/login?signed_out=true", 303)
    response.delete_cookie(COOKIE, path=f"{_root(request)}/", httponly=True, samesite="strict")
    return response


# -- Plotly.js ------------------------------------------------------------------------------------


@functools.cache
def _plotly_version() -> str:
    import plotly

    return str(plotly.__version__)


@functools.cache
def _plotly_bytes(compressed: bool) -> bytes:
    from mlwarden.report.html import plotly_js

    raw = plotly_js().encode("utf-8")
    return gzip.compress(raw, compresslevel=6, mtime=0) if compressed else raw


@router.get("/static/plotly.min.js")
def plotly_script(request: Request) -> Response:
    """Plotly.js from the installed plotly package (gzipped when the browser accepts it); its
    URL carries the plotly version, so it is cached for a year."""
    compressed = "gzip" in request.headers.get("accept-encoding", "")
    headers = {
        "Cache-Control": f"public, max-age={_YEAR}, immutable",
        "Vary": "Accept-Encoding",
    }
    if compressed:
        headers["Content-Encoding"] = "gzip"
    return Response(
        _plotly_bytes(compressed),
        media_type="text/javascript; charset=utf-8",
        headers=headers,
    )


# -- models ---------------------------------------------------------------------------------------


def sparkline(scores: tuple[float | None, ...], width: int = 120, height: int = 28) -> str:
    """SVG polyline points of a score series (None skipped), scaled to its own range.

    Example:
        >>> sparkline((1.0, 0.5, None, 1.0), width=30, height=10)
        '0.0,1.0 10.0,9.0 30.0,1.0'
    """
    points = [(i, s) for i, s in enumerate(scores) if s is not None and math.isfinite(s)]
    if len(points) < 2:
        return ""
    low = min(s for _, s in points)
    high = max(s for _, s in points)
    span = (high - low) or 1.0
    step = width / (len(scores) - 1)
    pad = 1.0
    return " ".join(
        f"{i * step:.1f},{pad + (high - s) / span * (height - 2 * pad):.1f}" for i, s in points
    )


@router.get("/")
def models_page(request: Request, _: Viewer) -> Response:
    """Every model with its health at a glance, and how many points of its logging contracts
    its newest batches miss."""
    store = _store(request)
    health = queries.model_health(store)
    missed: dict[str, int] = {}
    for finding in store.contract_findings(None):  # the open ones, a handful per model
        missed[finding.model] = missed.get(finding.model, 0) + 1
    return _render(
        request,
        "models.html.j2",
        title="Models",
        subtitle=f"{len(health)} model{'s' if len(health) != 1 else ''}",
        models=[(h, sparkline(h.scores)) for h in health],
        missed=missed,
    )


def _days(text: str | None) -> float | None:
    if text is None or text == "":
        return DEFAULT_DAYS
    if text == "all":
        return None
    if text.isdigit() and 1 <= int(text) <= MAX_DAYS:
        return int(text)
    raise ValueError(f"'days' is a number of days from 1 to {MAX_DAYS:,} or 'all'; got {text!r}.")


def _timeline_plots(timeline: queries.Timeline) -> list[Plot]:
    """The charts of a model page, from the metrics it plots."""
    metrics = timeline.metrics
    plots: list[Plot] = []
    score = metrics.filter(pl.col("name") == "quality_score")
    if score.height:
        plots.append(
            Plot(
                "plot-quality",
                "Quality score",
                "overall score of the window's quality checks (1 = every check passed)",
                series_figure(score, "quality score", percent=True),
            )
        )
    names = metrics.select("name", "column").unique().sort("name", "column").rows()
    present = set(names)
    for name, column in names:
        if not name.startswith("performance."):
            continue
        realized_name = f"{name}.realized"
        if name.endswith(".realized") and (name.removesuffix(".realized"), column) in present:
            continue  # drawn with its estimate
        part = metrics.filter((pl.col("name") == name) & (pl.col("column") == column))
        realized = None
        if (realized_name, column) in present:
            second = metrics.filter(
                (pl.col("name") == realized_name) & (pl.col("column") == column)
            ).select("window_id", pl.col("value").alias("realized"))
            part = part.join(second, on="window_id", how="left")
            realized = "realized"
        title = (
            "Performance · "
            + name.removeprefix("performance.")
            + (f" · {column}" if column else "")
        )
        estimated = not name.endswith(".realized")
        plots.append(
            Plot(
                f"plot-{len(plots)}",
                title,
                ("estimated without labels, " if estimated else "measured on labels, ")
                + ("realized once labels arrive" if realized else "with its alert bounds")
                + _unbounded(part),
                series_figure(part, name.removeprefix("performance."), realized=realized),
            )
        )
    for name, column in names:
        if name.startswith("drift.") and column == "":
            part = metrics.filter((pl.col("name") == name) & (pl.col("column") == ""))
            plots.append(
                Plot(
                    f"plot-{len(plots)}",
                    f"Multivariate drift ({name})",
                    "one statistic over all columns against bounds calibrated on the reference"
                    + _unbounded(part),
                    series_figure(part, name),
                )
            )
    windows = timeline.windows
    if windows["drift_tested"].is_not_null().any():
        plots.append(
            Plot(
                "plot-drifted",
                "Drifted columns",
                "columns whose drift test is out of its bounds, among the columns tested",
                drifted_figure(windows),
            )
        )
    return plots


def _unbounded(part: pl.DataFrame) -> str:
    """What a chart's note adds when none of its windows has a bound: that the metric cannot
    alarm there, and where to read why."""
    if part["lower"].is_not_null().any() or part["upper"].is_not_null().any():
        return ""
    return (
        "; no alert bound: the reference cannot calibrate one at this window size"
        " (the version page says why)"
    )


def _model_timeline(
    store: Store, model: str, version: str | None, production: str | None, days: float | None
) -> tuple[queries.Timeline, str, str | None]:
    """The timeline of the chosen version; by default of the production version, or of all
    versions when production has no window; with what it shows, and its one version."""
    if version is not None:
        timeline = queries.timeline(store, model, versions=[version], days=days)
        return timeline, f"version {version}", version
    if production is not None:
        timeline = queries.timeline(store, model, versions=[production], days=days)
        if timeline.windows.height:
            return timeline, f"version {production} (production)", production
    return queries.timeline(store, model, days=days), "all versions", None


@router.get("/models/{model}")
def model_page(
    request: Request,
    model: str,
    _: Viewer,
    days: str | None = None,
    version: str | None = None,
    page: int = 1,
) -> Response:
    """A model's timeline of key metrics with their alert bounds, feedback and explanation
    trends, its versions, windows and incidents; a banner for each open finding of the
    versions shown against their logging contract."""
    from mlwarden.server.pages_feedback import trend_plots

    store = _store(request)
    try:
        record = store.get_model(model)
        span = _days(days)
    except NotFoundError as exc:
        return _problem(request, 404, "Not found", str(exc))
    except ValueError as exc:
        return _problem(request, 422, "Bad request", str(exc))
    aliases = store.aliases(model)
    versions = [v.version for v in store.versions(model)]
    if version is not None and version not in versions:
        return _problem(
            request,
            404,
            "Not found",
            f"Model '{model}' has no version '{version}' (versions: "
            f"{', '.join(versions) or 'none'}).",
        )
    timeline, shown, one = _model_timeline(
        store, model, version, aliases.get(queries.PRODUCTION), span
    )
    findings = store.contract_findings(model, one)
    windows = timeline.windows.reverse()
    pages = max(1, math.ceil(windows.height / WINDOWS_PER_PAGE))
    page = min(max(page, 1), pages)
    listed = windows.slice((page - 1) * WINDOWS_PER_PAGE, WINDOWS_PER_PAGE)
    recent, n_incidents = queries.incidents(store, model, limit=INCIDENTS_ON_MODEL_PAGE)
    span_text = "all windows" if span is None else f"the last {span:g} days of windows"
    plots = _timeline_plots(timeline)
    trends = trend_plots(store, model, timeline.windows)
    return _render(
        request,
        "model.html.j2",
        title=record.name,
        subtitle=record.description,
        model=record.name,
        aliases=aliases,
        versions=versions,
        version=version,
        shown=shown,
        days=days or str(DEFAULT_DAYS),
        span_text=span_text,
        plots=[*plots, *trends],
        timeline_plots=plots,
        trends=trends,
        n_windows=windows.height,
        windows=listed.to_dicts(),
        page=page,
        pages=pages,
        incidents=recent,
        n_incidents=n_incidents,
        findings=findings[:FINDINGS_ON_MODEL_PAGE],
        n_findings=len(findings),
    )


# -- windows --------------------------------------------------------------------------------------


def _window(store: Store, model: str, window_id: str) -> WindowRecord:
    """The window ``window_id`` of ``model``, or :class:`NotFoundError`."""
    if not window_id.isdigit():
        raise NotFoundError(f"'{window_id}' is not a window id (a number).", what="window")
    store.get_model(model)
    record = store.window(int(window_id))
    if record.model != model:
        raise NotFoundError(f"Model '{model}' has no window {window_id}.", what="window")
    return record


def check_label(check: dict[str, Any]) -> str:
    """The label of a check in a validation's JSON form: ``key(column)`` or ``key``."""
    column = check.get("column")
    return f"{check['check']}({column})" if column else str(check["check"])


@dataclass(frozen=True)
class Drift:
    """One feature's drift in a window, with its distribution plot when profiles exist."""

    column: str
    test: str
    value: float | None
    upper: float | None
    alert: bool
    plot: Plot | None
    note: str


def _profiles(store: Store, window: WindowRecord) -> tuple[Profile | None, Profile | None, str]:
    """The window's stored profile and its version's reference profile, or why they are
    missing."""
    from mlwarden.profiling import Profile
    from mlwarden.registry import PROFILE

    stored = store.details(window.id).get("profile")
    if stored is None or stored[1] is None:
        return None, None, "No profile is stored for this window, so no distributions to plot."
    try:
        current = Profile.from_bytes(stored[1])
    except FormatError as exc:
        return None, None, f"The stored profile of this window cannot be read: {exc}"
    try:
        reference = Profile.from_bytes(store.artifact(window.model, window.version, PROFILE))
    except NotFoundError:
        return current, None, f"Version {window.version} has no reference profile to plot against."
    return current, reference, ""


def _drift(store: Store, window: WindowRecord, metrics: pl.DataFrame) -> tuple[list[Drift], str]:
    from mlwarden.report.drift import distribution_figure

    rows = (
        metrics.filter(
            pl.col("name").str.starts_with("drift.")
            & (pl.col("column") != "")
            & (pl.col("segment") == "")
        )
        .with_columns(
            (pl.col("value") / pl.when(pl.col("upper") > 0).then(pl.col("upper"))).alias("ratio")
        )
        .sort(["alert", "ratio", "column"], descending=[True, True, False], nulls_last=True)
    )
    if rows.height == 0:
        return [], ""
    current, reference, note = _profiles(store, window)
    drifts = []
    for i, row in enumerate(rows.iter_rows(named=True)):
        column = row["column"]
        plot = None
        why = ""
        if current is not None and reference is not None:
            if column not in current.columns or column not in reference.columns:
                why = "not in both profiles"
            elif current[column].kind is not reference[column].kind:
                why = "profiled as different kinds"
            else:
                figure = distribution_figure(reference[column], current[column])
                if figure is not None:
                    plot = Plot(
                        f"drift-{i}",
                        column,
                        "share of rows per bin or category, reference against this window",
                        script_json(figure),
                    )
                else:
                    why = "no values on one side"
        drifts.append(
            Drift(
                column,
                row["name"].removeprefix("drift."),
                row["value"],
                row["upper"],
                bool(row["alert"]),
                plot,
                why,
            )
        )
    return drifts, note


def _performance(metrics: pl.DataFrame) -> list[dict[str, Any]]:
    """Estimated performance per metric with its bounds, beside the realized value."""
    table = metrics.filter(
        pl.col("name").str.starts_with("performance.") & (pl.col("segment") == "")
    )
    estimated = table.filter(~pl.col("name").str.ends_with(".realized"))
    realized = table.filter(pl.col("name").str.ends_with(".realized")).select(
        pl.col("name").str.strip_suffix(".realized"),
        "column",
        pl.col("value").alias("realized"),
        pl.col("alert").alias("realized_alert"),
    )
    joined = estimated.join(realized, on=["name", "column"], how="full", coalesce=True)
    return (
        joined.sort("name", "column")
        .with_columns(
            pl.col("name").str.strip_prefix("performance."),
            pl.col("alert").fill_null(False),
            pl.col("realized_alert").fill_null(False),
        )
        .to_dicts()
    )


def _segments(metrics: pl.DataFrame) -> list[tuple[str, str, list[dict[str, Any]]]]:
    """Metrics per segment, one small table per metric and column."""
    rows = metrics.filter(pl.col("segment") != "")
    tables = []
    for (name, column), part in rows.group_by(["name", "column"], maintain_order=True):
        ordered = part.sort(["alert", "segment"], descending=[True, False])
        tables.append((str(name), str(column), ordered.to_dicts()))
    return sorted(tables, key=lambda t: (t[0], t[1]))


@router.get("/models/{model}/windows/{window_id}")
def window_page(request: Request, model: str, window_id: str, _: Viewer) -> Response:
    """A window's drill-down: checks, drift per feature, performance, segments."""
    store = _store(request)
    try:
        window = _window(store, model, window_id)
    except NotFoundError as exc:
        return _problem(request, 404, "Not found", str(exc))
    metrics = queries.window_metrics(store, window.id)
    validation = store.validation(window.id)
    checks = list((validation or {}).get("checks", []))
    failing = sorted(
        (c for c in checks if not c.get("passed", True)),
        key=lambda c: (c.get("severity") != "error", check_label(c)),
    )
    drifts, drift_note = _drift(store, window, metrics)
    table_drift = metrics.filter(
        pl.col("name").str.starts_with("drift.")
        & (pl.col("column") == "")
        & (pl.col("segment") == "")
    )
    alerts = metrics.filter(pl.col("alert"))
    return _render(
        request,
        "window.html.j2",
        title=f"{model} · window {window.id}",
        subtitle=f"version {window.version} · {_when(window.start)} – {_when(window.end)} UTC",
        model=model,
        window=window,
        validation=validation,
        n_checks=len(checks),
        failing=[(c, check_label(c)) for c in failing],
        alerts=alerts.to_dicts(),
        drifts=drifts,
        drift_note=drift_note,
        plots=[d.plot for d in drifts if d.plot is not None],
        performance=_performance(metrics),
        table_drift=table_drift.to_dicts(),
        segments=_segments(metrics),
    )


def _cell(value: Any, column: str) -> tuple[str, bool]:
    """A cell of a sample row: its text and whether it is a number (aligned right)."""
    from mlwarden.report.quality import reading_text, value_text

    if isinstance(value, float):
        return reading_text(value), True
    if isinstance(value, int) and not isinstance(value, bool):
        return (str(value) if column == "row" else f"{value:,}"), True
    if isinstance(value, str) and len(value) >= 19 and value[4:5] == "-" and value[10:11] == "T":
        try:
            return _when(datetime.fromisoformat(value), seconds=True), False
        except ValueError:
            pass
    return value_text(value), False


@router.get("/models/{model}/windows/{window_id}/checks/{label:path}")
def check_page(request: Request, model: str, window_id: str, label: str, _: Viewer) -> Response:
    """One check of a window: what it found and its sample of failing rows."""
    from mlwarden.report.quality import value_text

    store = _store(request)
    try:
        window = _window(store, model, window_id)
    except NotFoundError as exc:
        return _problem(request, 404, "Not found", str(exc))
    checks = (store.validation(window.id) or {}).get("checks", [])
    check = next((c for c in checks if check_label(c) == label), None)
    if check is None:
        return _problem(
            request, 404, "Not found", f"Window {window.id} of '{model}' has no check '{label}'."
        )
    sample = list(check.get("sample") or [])
    columns = list(dict.fromkeys(k for row in sample for k in row))
    return _render(
        request,
        "check.html.j2",
        title=label,
        subtitle=f"{model} · window {window.id} · {_when(window.start)} – {_when(window.end)} UTC",
        model=model,
        window=window,
        check=check,
        label=label,
        observed=value_text(check.get("observed")),
        threshold=value_text(check.get("threshold")),
        columns=columns,
        rows=[[_cell(row.get(c), c) for c in columns] for row in sample],
    )


# -- incidents ------------------------------------------------------------------------------------


@router.get("/incidents")
def incidents_page(request: Request, _: Viewer, model: str | None = None) -> Response:
    """Incidents of every model (or of one), newest first."""
    try:
        listed, total = queries.incidents(_store(request), model, limit=INCIDENTS_PER_PAGE)
    except NotFoundError as exc:
        return _problem(request, 404, "Not found", str(exc))
    return _render(
        request,
        "incidents.html.j2",
        title="Incidents" + (f" of {model}" if model else ""),
        subtitle=f"{total:,} incident{'s' if total != 1 else ''}",
        model=model,
        incidents=listed,
        total=total,
    )


@router.get("/models/{model}/incidents/{incident_id}")
def incident_page(request: Request, model: str, incident_id: str, _: Viewer) -> Response:
    """One incident with its alerts, each linking to its window, and the actions policies took
    on it."""
    from mlwarden.react.audit import list_actions

    try:
        if not incident_id.isdigit():
            raise NotFoundError(f"'{incident_id}' is not an incident id (a number).")
        found = queries.incident(_store(request), model, int(incident_id))
    except NotFoundError as exc:
        return _problem(request, 404, "Not found", str(exc))
    actions = list_actions(_store(request), model, incident=found.summary.id)
    diagnosis, trouble = None, ""
    try:
        from mlwarden.diagnosis import diagnose

        diagnosis = diagnose(_store(request), request.app.state.rowlog, found.summary.id)
    except (MlwardenError, OSError) as exc:  # no alerts left, rows gone by retention
        trouble = " ".join(str(exc).split())
    return _render(
        request,
        "incident.html.j2",
        title=found.summary.title or f"Incident {found.summary.id}",
        subtitle=f"{model} · incident {found.summary.id} · {found.summary.status}",
        model=model,
        incident=found.summary,
        alerts=found.alerts,
        actions=actions,
        diagnosis=diagnosis,
        trouble=trouble,
    )


# -- pages in their own modules -------------------------------------------------------------------


def _include_pages() -> None:
    # Imported here, once every helper above exists: the page modules render with them.
    from mlwarden.server import pages_actions, pages_feedback, pages_lineage, pages_versions

    for module in (pages_lineage, pages_actions, pages_feedback, pages_versions):
        router.include_router(module.router)


_include_pages()
