"""The HTML drift report: verdicts per column and each column's distributions side by side."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TYPE_CHECKING

import numpy as np

from mlwarden._version import __version__
from mlwarden.report import html

if TYPE_CHECKING:
    from mlwarden.drift.comparison import DriftReport
    from mlwarden.profiling import ColumnProfile, Profile

_REFERENCE_COLOR = "#8c959f"
_CURRENT_COLOR = "#0969da"
_ALARM_TEXT = {
    "calibrated": "effect size against thresholds calibrated on the reference",
    "threshold": "effect size against each test's conventional threshold",
    "p_value": "p-values adjusted for multiple testing",
}


def distribution_figure(reference: ColumnProfile, current: ColumnProfile) -> str | None:
    """A plotly figure (JSON) of the column's shares per bin or category on both sides."""
    import plotly.graph_objects as go

    from mlwarden.drift._distributions import binned

    if reference.count == 0 or current.count == 0:
        return None
    b = binned(reference, current)
    p, q = b.p, b.q
    labels = b.labels
    if len(labels) > 30:  # categorical: the 30 largest categories on either side
        keep = np.argsort(-np.maximum(p, q))[:30]
        keep.sort()
        p, q, labels = p[keep], q[keep], [labels[i] for i in keep]
    fig = go.Figure(
        [
            go.Bar(name="reference", x=labels, y=p, marker_color=_REFERENCE_COLOR),
            go.Bar(name="current", x=labels, y=q, marker_color=_CURRENT_COLOR),
        ]
    )
    fig.update_layout(
        barmode="group",
        margin={"l": 48, "r": 16, "t": 8, "b": 64},
        yaxis={"title": "share of rows", "tickformat": ".0%"},
        legend={"orientation": "h", "y": 1.1},
        template="plotly_white",
    )
    return html.figure_json(fig)


def drift_html(report: DriftReport, reference: Profile, current: Profile) -> str:
    """The drift report as one self-contained HTML page."""
    order = report.drifted_columns + [n for n in report.columns if n not in report.drifted_columns]
    columns = [report.columns[n] for n in order]
    figures = {
        c.column: distribution_figure(reference[c.column], current[c.column]) for c in columns
    }
    return html.render(
        "drift.html.j2",
        title="Drift report",
        subtitle=f"{len(report.columns)} columns tested",
        version=__version__,
        generated=datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        report=report,
        columns=columns,
        figures=figures,
        alarm_text=_ALARM_TEXT[report.alarm],
    )
