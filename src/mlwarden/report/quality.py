"""The HTML data-quality report: verdict, scores, every check, and each failing sensor over time."""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import TYPE_CHECKING, Any

import polars as pl

from mlwarden._version import __version__
from mlwarden.quality.base import Dimension
from mlwarden.quality.display import ordered, percent, verdict_text
from mlwarden.quality.validation import SERIES_FLAG
from mlwarden.report import html

if TYPE_CHECKING:
    from pathlib import Path

    from mlwarden.quality.validation import CheckResult, Validation

_LINE_COLORS = ("#0969da", "#8250df", "#1a7f37", "#bf8700", "#57606a", "#e16f24", "#1b7c83")
_ALERT = "#cf222e"
_BOUND = "#8c959f"
_ERROR_BAND = "rgba(207, 34, 46, 0.12)"
_WARNING_BAND = "rgba(154, 103, 0, 0.10)"
_MAX_SERIES = 6  # entity lines per plot: those with the most failing readings
_MAX_MARKERS = 1_500  # failing readings marked per plot (evenly thinned beyond)
_MAX_POINTS = 3_000  # points of the lines per plot (evenly thinned beyond; marked ones kept)
_MAX_ITEMS = 6  # items of a list or mapping shown in a table cell
_MAX_CELL = 90  # characters of an observed value or threshold in a table cell


@dataclass(frozen=True, slots=True)
class Card:
    """One score card: a dimension (or overall), its score and how its checks did."""

    name: str
    score: str
    state: str  # "ok", "warn", "bad" or "none" (no check measures the dimension)
    note: str


@dataclass(frozen=True, slots=True)
class Row:
    """One check in the table of all checks."""

    result: CheckResult
    state: str  # "ok", "warn" (failed warning) or "bad" (failed error)
    observed: str
    threshold: str
    failed_rows: str
    anchor: str | None


@dataclass(frozen=True, slots=True)
class Failure:
    """The section of one failing check: its plot over time and the sample of failing rows."""

    result: CheckResult
    anchor: str
    state: str
    figure: str | None
    figure_note: str
    columns: list[str]
    rows: list[list[tuple[str, bool]]]


def _state(result: CheckResult) -> str:
    if result.passed:
        return "ok"
    return "bad" if result.severity == "error" else "warn"


def number_text(x: float | None) -> str:
    """A number to 3 significant figures; thousands in full (2,851 rather than 2.85e+03)."""
    return html.format_number(x)


def reading_text(x: float) -> str:
    """A reading in a sample row: three decimals, enough to tell neighbouring readings apart."""
    if not math.isfinite(x) or (x != 0 and (abs(x) < 1e-2 or abs(x) >= 1e9)):
        return html.format_number(x, 4)
    return f"{x:,.1f}" if abs(x) >= 1e4 else f"{x:.3f}"


def value_text(value: Any, *, limit: int = _MAX_CELL) -> str:
    """An observed value or threshold as short text: numbers rounded, long lists cut."""
    if value is None or isinstance(value, bool | int | float):
        text = number_text(value)
    elif isinstance(value, datetime):
        text = value.strftime("%Y-%m-%d %H:%M:%S")
    elif isinstance(value, date | timedelta):
        text = str(value)
    elif isinstance(value, list | tuple):
        items = [value_text(v, limit=limit) for v in value[:_MAX_ITEMS]]
        more = len(value) - _MAX_ITEMS
        text = "[" + ", ".join(items) + (f", … {more} more" if more > 0 else "") + "]"
    elif isinstance(value, dict):
        pairs = [f"{k}: {value_text(v, limit=limit)}" for k, v in list(value.items())[:_MAX_ITEMS]]
        more = len(value) - _MAX_ITEMS
        text = "{" + ", ".join(pairs) + (f", … {more} more" if more > 0 else "") + "}"
    else:
        text = str(value)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _cards(validation: Validation) -> list[Card]:
    cards = []
    for name in [*(d.value for d in Dimension), "overall"]:
        members = [r for r in validation.results if name == "overall" or r.dimension.value == name]
        score = validation.scores.get(name)
        if score is None or not members:
            cards.append(Card(name, "–", "none", "no checks"))
            continue
        errors = sum(1 for r in members if _state(r) == "bad")
        warnings = sum(1 for r in members if _state(r) == "warn")
        state = "bad" if errors else ("warn" if warnings else "ok")
        failed = errors + warnings
        checks = f"{len(members)} check{'s' if len(members) != 1 else ''}"
        note = f"{checks} · {failed} failed" if failed else f"{checks} · all passed"
        cards.append(Card(name, percent(score), state, note))
    return cards


def _time_strings(column: pl.Series) -> list[Any]:
    """Times as naive UTC text Plotly reads as dates (plain values for row-number windows)."""
    if column.dtype == pl.Date:
        return column.dt.strftime("%Y-%m-%d").to_list()
    if isinstance(column.dtype, pl.Datetime):
        if column.dtype.time_zone is not None:
            column = column.dt.convert_time_zone("UTC")
        return column.dt.strftime("%Y-%m-%d %H:%M:%S").to_list()
    return column.to_list()


def _numbers(column: pl.Series) -> list[Any]:
    """Values for a plot, to 6 significant figures (a smaller page, the same picture)."""
    values = column.cast(pl.Float64, strict=False).fill_nan(None).to_list()
    return [None if v is None or not math.isfinite(v) else float(f"{v:.6g}") for v in values]


def _layout(fig: Any, y_title: str, x_title: str, *, share: bool = False) -> None:
    yaxis: dict[str, Any] = {"title": y_title}
    if share:
        yaxis.update(tickformat=".0%", rangemode="tozero")
    fig.update_layout(
        margin={"l": 56, "r": 16, "t": 8, "b": 40},
        xaxis={"title": x_title},
        yaxis=yaxis,
        legend={"orientation": "h", "y": 1.14},
        template="plotly_white",
        hovermode="closest",
    )


def series_figure(frame: pl.DataFrame, timestamp: str, column: str) -> tuple[str, str]:
    """A line of ``column`` over time per series (entity), failing readings as red markers.

    Returns the figure (JSON) and a note on what is shown.
    """
    import plotly.graph_objects as go

    entities = [c for c in frame.columns if c not in (timestamp, column, SERIES_FLAG)]
    frame = frame.filter(pl.col(timestamp).is_not_null())
    if entities:
        key = pl.concat_str([pl.col(e).cast(pl.String) for e in entities], separator=" / ")
        frame = frame.with_columns(key.fill_null("–").alias("__series"))
    else:
        frame = frame.with_columns(pl.lit(column).alias("__series"))
    counts = (
        frame.group_by("__series")
        .agg(pl.col(SERIES_FLAG).sum().alias("n_failed"), pl.len().alias("n"))
        .sort(["n_failed", "n", "__series"], descending=[True, True, False])
    )
    names = sorted(counts["__series"].to_list())  # colours follow names: the same in every plot
    shown = sorted(counts["__series"].to_list()[:_MAX_SERIES])
    frame = frame.filter(pl.col("__series").is_in(shown)).sort(["__series", timestamp])
    failing = frame.filter(pl.col(SERIES_FLAG))
    n_failing = failing.height
    marked = pl.col(SERIES_FLAG)
    if n_failing > _MAX_MARKERS:
        step = math.ceil(n_failing / _MAX_MARKERS)
        marked = marked & (pl.col(SERIES_FLAG).cast(pl.Int64).cum_sum() % step == 1)
        failing = frame.filter(marked)
    step = max(1, math.ceil(frame.height / _MAX_POINTS))
    frame = frame.filter((pl.int_range(pl.len()) % step == 0) | marked)
    traces: list[Any] = []
    for name in shown:
        part = frame.filter(pl.col("__series") == name)
        # Break the line where the series pauses (another line ran, the log has a hole).
        gap = pl.col(timestamp).diff().dt.total_microseconds()
        part = part.with_columns(
            (gap > 10 * gap.median()).fill_null(False).alias("__break")
        ).with_columns(pl.col("__break").cum_sum().alias("__segment"))
        xs: list[Any] = []
        ys: list[Any] = []
        for (_,), segment in part.group_by(["__segment"], maintain_order=True):
            if xs:
                xs.append(None)
                ys.append(None)
            xs += _time_strings(segment[timestamp])
            ys += _numbers(segment[column])
        traces.append(
            go.Scatter(
                x=xs,
                y=ys,
                mode="lines",
                name=name if entities else column,
                line={"color": _LINE_COLORS[names.index(name) % len(_LINE_COLORS)], "width": 1.2},
                connectgaps=False,
            )
        )
    if n_failing:
        traces.append(
            go.Scatter(
                x=_time_strings(failing[timestamp]),
                y=_numbers(failing[column]),
                mode="markers",
                name="failing reading",
                text=failing["__series"].to_list() if entities else None,
                marker={"color": _ALERT, "size": 6, "symbol": "circle"},
            )
        )
    fig = go.Figure(traces)
    _layout(fig, column, f"{timestamp} (UTC)")
    notes = []
    if len(counts) > len(shown):
        notes.append(
            f"showing {len(shown)} of {len(counts)} series ({', '.join(entities)}), those with "
            "the most failing readings"
        )
    if n_failing > failing.height:
        notes.append(f"1 in {math.ceil(n_failing / failing.height)} failing readings marked")
    return html.figure_json(fig), "; ".join(notes)


def _bands(starts: list[Any], ends: list[Any], flags: list[bool]) -> list[tuple[Any, Any]]:
    """Merge runs of consecutive flagged windows into (start, end) spans."""
    spans: list[tuple[Any, Any]] = []
    run: tuple[Any, Any] | None = None
    for start, end, flag in zip(starts, ends, flags, strict=True):
        if flag:
            run = (run[0], end) if run is not None else (start, end)
        elif run is not None:
            spans.append(run)
            run = None
    if run is not None:
        spans.append(run)
    return spans


def _shade(fig: Any, spans: list[tuple[Any, Any]], color: str, name: str) -> None:
    for i, (x0, x1) in enumerate(spans):
        fig.add_shape(
            type="rect",
            xref="x",
            yref="paper",
            x0=x0,
            x1=x1,
            y0=0,
            y1=1,
            fillcolor=color,
            line={"width": 0},
            layer="below",
            name=name,
            legendgroup=name,
            showlegend=i == 0,
        )


def window_figure(scores: pl.DataFrame) -> str:
    """The overall score per window (and each dimension's), failing windows shaded."""
    import plotly.graph_objects as go

    xs = _time_strings(scores["window_start"])
    ends = _time_strings(scores["window_end"])
    timed = scores["window_start"].dtype.is_temporal()
    traces: list[Any] = []
    dimensions = [d.value for d in Dimension if d.value in scores.columns]
    for i, name in enumerate(dimensions):
        traces.append(
            go.Scatter(
                x=xs,
                y=_numbers(scores[name]),
                mode="lines",
                name=name,
                line={
                    "color": _LINE_COLORS[(i + 1) % len(_LINE_COLORS)],
                    "width": 1,
                    "dash": "dot",
                },
            )
        )
    traces.append(
        go.Scatter(
            x=xs,
            y=_numbers(scores["overall"]),
            mode="lines+markers",
            name="overall",
            line={"color": _LINE_COLORS[0], "width": 2},
            marker={"size": 4},
        )
    )
    failed = [not p for p in scores["passed"].to_list()]
    hits = [i for i, f in enumerate(failed) if f]
    if hits:
        overall = _numbers(scores["overall"])
        traces.append(
            go.Scatter(
                x=[xs[i] for i in hits],
                y=[overall[i] for i in hits],
                mode="markers",
                name="failed window",
                marker={"color": _ALERT, "size": 9, "symbol": "x"},
            )
        )
    fig = go.Figure(traces)
    warned = [
        (not f) and n > 0 for f, n in zip(failed, scores["n_failed_checks"].to_list(), strict=True)
    ]
    _shade(fig, _bands(xs, ends, failed), _ERROR_BAND, "error check failed")
    _shade(fig, _bands(xs, ends, warned), _WARNING_BAND, "only warnings")
    _layout(fig, "score", "window start (UTC)" if timed else "window (first row)", share=True)
    lowest = min((v for t in traces for v in t.y if v is not None), default=1.0)
    fig.update_yaxes(range=[max(0.0, math.floor((lowest - 0.02) * 10) / 10), 1.02])
    return html.figure_json(fig)


def check_windows_figure(windows: pl.DataFrame, result: CheckResult) -> str | None:
    """For a failing check judged on aggregates: what it observed per window, bounds dashed."""
    import plotly.graph_objects as go

    part = windows.filter(pl.col("index") == result.index).sort("window_start")
    if part.height == 0 or part["observed"].null_count() == part.height:
        return None
    xs = _time_strings(part["window_start"])
    ys = _numbers(part["observed"])
    traces: list[Any] = [
        go.Scatter(
            x=xs, y=ys, mode="lines+markers", name="observed", line={"color": _LINE_COLORS[0]}
        )
    ]
    bounds = result.threshold
    if (
        isinstance(bounds, list | tuple)
        and len(bounds) == 2
        and all(isinstance(b, int | float) and not isinstance(b, bool) for b in bounds)
    ):
        for bound, name in ((bounds[1], "upper bound"), (bounds[0], "lower bound")):
            traces.append(
                go.Scatter(
                    x=xs,
                    y=[bound] * len(xs),
                    mode="lines",
                    name=name,
                    line={"color": _BOUND, "dash": "dash", "width": 1},
                )
            )
    hits = [i for i, p in enumerate(part["passed"].to_list()) if not p]
    if hits:
        traces.append(
            go.Scatter(
                x=[xs[i] for i in hits],
                y=[ys[i] for i in hits],
                mode="markers",
                name="failed window",
                marker={"color": _ALERT, "size": 9, "symbol": "x"},
            )
        )
    fig = go.Figure(traces)
    timed = part["window_start"].dtype.is_temporal()
    _layout(fig, f"{result.label} per window", "window start (UTC)" if timed else "window")
    return html.figure_json(fig)


def _sample_cell(value: Any) -> tuple[str, bool]:
    """A cell of a sample row: its text and whether it is a number (aligned right)."""
    if isinstance(value, float) and not isinstance(value, bool):
        return reading_text(value), True
    if isinstance(value, int) and not isinstance(value, bool):
        return f"{value:,}", True
    return value_text(value), False


def _sample_table(result: CheckResult) -> tuple[list[str], list[list[tuple[str, bool]]]]:
    columns = list(dict.fromkeys(k for row in result.sample for k in row))
    rows = [[_sample_cell(row.get(c)) for c in columns] for row in result.sample]
    return columns, rows


def _failure(validation: Validation, result: CheckResult, anchor: str) -> Failure:
    figure: str | None = None
    note = ""
    frame = validation.series.get(result.index)
    if frame is not None and validation.timestamp is not None and frame.height:
        value = next(c for c in frame.columns if c not in (validation.timestamp, SERIES_FLAG))
        figure, note = series_figure(frame, validation.timestamp, value)
        note = "readings over time, failing readings in red" + (f"; {note}" if note else "")
    elif validation.windows is not None and validation.windows.height:
        figure = check_windows_figure(validation.windows, result)
        note = "observed per window" if figure is not None else ""
    columns, rows = _sample_table(result)
    return Failure(result, anchor, _state(result), figure, note, columns, rows)


def validation_html(validation: Validation, path: str | Path | None = None) -> str:
    """The validation as one self-contained HTML page (also written to ``path`` when given)."""
    rows: list[Row] = []
    failures: list[Failure] = []
    for result in ordered(validation):
        anchor = None
        if not result.passed:
            anchor = f"check-{result.index}"
            failures.append(_failure(validation, result, anchor))
        failed_rows = (
            f"{result.n_failed:,}"
            if result.passed or result.n_failed
            else "–"  # judged on an aggregate: no single row is at fault
        )
        rows.append(
            Row(
                result,
                _state(result),
                value_text(result.observed),
                value_text(result.threshold),
                failed_rows,
                anchor,
            )
        )
    errors, warnings = len(validation.failed("error")), len(validation.failed("warning"))
    windows = validation.window_scores
    n = len(validation.results)
    subtitle = f"{n:,} check{'s' if n != 1 else ''} on {validation.n_rows:,} rows"
    if validation.suite_name:
        subtitle = f"Suite {validation.suite_name}: {subtitle}"
    page = html.render(
        "quality.html.j2",
        title="Data-quality report",
        subtitle=subtitle,
        version=__version__,
        generated=datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        validation=validation,
        verdict=verdict_text(validation),
        verdict_state="bad" if errors else ("warn" if warnings else "ok"),
        validated_at=validation.validated_at.strftime("%Y-%m-%d %H:%M:%S UTC"),
        cards=_cards(validation),
        rows=rows,
        failures=failures,
        window_figure=window_figure(windows) if windows is not None and windows.height else None,
        n_windows=0 if windows is None else windows.height,
        n_failed_windows=0 if windows is None else int((~windows["passed"]).sum()),
    )
    if path is not None:
        html.write(path, page)
    return page
