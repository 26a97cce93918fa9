"""Metrics over windows with their alert bounds: the plot behind every monitoring view."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import polars as pl

from mlwarden._version import __version__
from mlwarden.report import html

_LINE = "#0969da"
_BAND = "rgba(9, 105, 218, 0.15)"
_BOUND = "#8c959f"
_ALERT = "#cf222e"
_REALIZED = "#1a7f37"


@dataclass(frozen=True, slots=True)
class Panel:
    """One chart: a metric per window, its bounds, optionally a band and a second series."""

    title: str
    subtitle: str
    figure: str


def series_figure(
    table: pl.DataFrame,
    *,
    x: str,
    y: str,
    y_label: str,
    lower: str | None = None,
    upper: str | None = None,
    band: tuple[str, str] | None = None,
    alert: str | None = None,
    second: tuple[str, str] | None = None,
) -> str:
    """A line of ``y`` over ``x`` with dashed alert bounds, a shaded band and red alerts."""
    import plotly.graph_objects as go

    xs = table[x].to_list()
    traces: list[Any] = []
    if band is not None:
        traces.append(
            go.Scatter(
                x=xs,
                y=table[band[1]].to_list(),
                mode="lines",
                line={"width": 0},
                showlegend=False,
                hoverinfo="skip",
            )
        )
        traces.append(
            go.Scatter(
                x=xs,
                y=table[band[0]].to_list(),
                mode="lines",
                line={"width": 0},
                fill="tonexty",
                fillcolor=_BAND,
                name="confidence band",
                hoverinfo="skip",
            )
        )
    traces.append(
        go.Scatter(
            x=xs, y=table[y].to_list(), mode="lines+markers", name=y_label, line={"color": _LINE}
        )
    )
    if second is not None and second[0] in table.columns:
        traces.append(
            go.Scatter(
                x=xs,
                y=table[second[0]].to_list(),
                mode="lines+markers",
                name=second[1],
                line={"color": _REALIZED, "dash": "dot"},
            )
        )
    for bound, name in ((upper, "upper bound"), (lower, "lower bound")):
        if bound is not None and bound in table.columns:
            traces.append(
                go.Scatter(
                    x=xs,
                    y=table[bound].to_list(),
                    mode="lines",
                    name=name,
                    line={"color": _BOUND, "dash": "dash", "width": 1},
                )
            )
    if alert is not None and alert in table.columns:
        hits = table.filter(pl.col(alert))
        traces.append(
            go.Scatter(
                x=hits[x].to_list(),
                y=hits[y].to_list(),
                mode="markers",
                name="alert",
                marker={"color": _ALERT, "size": 10, "symbol": "x"},
            )
        )
    fig = go.Figure(traces)
    fig.update_layout(
        margin={"l": 56, "r": 16, "t": 8, "b": 40},
        yaxis={"title": y_label},
        legend={"orientation": "h", "y": 1.12},
        template="plotly_white",
        hovermode="x unified",
    )
    return html.figure_json(fig)


def series_html(
    title: str, subtitle: str, verdict: str, bad: bool, panels: list[Panel], table: pl.DataFrame
) -> str:
    """A page of panels (one chart each) and the full table of figures."""
    return html.render(
        "series.html.j2",
        title=title,
        subtitle=subtitle,
        verdict=verdict,
        bad=bad,
        panels=panels,
        columns=table.columns,
        rows=table.rows(),
        version=__version__,
        generated=datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
    )
