"""A drift report as a terminal table, drifted columns first."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from rich.console import Console

    from mlwarden.drift.comparison import DriftReport


def _num(x: float | None) -> str:
    if x is None or not math.isfinite(x):
        return "–"
    if x != 0 and abs(x) < 1e-3:
        return f"{x:.1e}"
    return f"{x:.3f}"


def print_report(report: DriftReport, console: Console | None = None) -> None:
    """Print the report's verdict line and one row per column."""
    from rich.console import Console
    from rich.table import Table
    from rich.text import Text

    if console is None:
        console = Console()
        if not console.is_terminal:
            console = Console(width=160)
    style = (
        "bold red" if report.dataset_drift else ("yellow" if report.drifted_columns else "green")
    )
    console.print(Text(report.message, style=style))
    table = Table(header_style="bold")
    for head in ("column", "kind", "test", "effect size", "threshold", "p-value", "verdict"):
        table.add_column(
            head, justify="right" if head in ("effect size", "threshold", "p-value") else "left"
        )
    order = report.drifted_columns + [n for n in report.columns if n not in report.drifted_columns]
    for name in order:
        c = report.columns[name]
        verdict = Text("drift", style="bold red") if c.drifted else Text("ok", style="green")
        table.add_row(
            name,
            c.kind.value,
            c.test,
            _num(c.effect_size),
            f"{_num(c.threshold)} ({c.threshold_source})",
            _num(c.p_value),
            verdict,
        )
    console.print(table)
    for name, reason in report.skipped.items():
        console.print(Text(f"not tested: {name} — {reason}", style="dim"))
