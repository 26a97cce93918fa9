"""Estimated performance as a terminal table: one row per window, one column per metric."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import polars as pl

if TYPE_CHECKING:
    from rich.console import Console

    from mlwarden.performance.estimation import EstimatedPerformance


def _num(x: float | None) -> str:
    return "–" if x is None or not math.isfinite(x) else f"{x:.3f}"


def print_estimate(result: EstimatedPerformance, console: Console | None = None) -> None:
    """Print each window's estimate and band per metric, realized values, and alerts."""
    from rich.console import Console
    from rich.table import Table
    from rich.text import Text

    if console is None:
        console = Console()
        if not console.is_terminal:
            console = Console(width=160)
    table = result.to_df()
    n_alerts = len(result.alerts)
    headline = (
        f"{n_alerts} estimates outside their expected range"
        if n_alerts
        else "Every estimate is within its expected range"
    )
    console.print(Text(headline + ".", style="bold red" if n_alerts else "green"))
    for warning in result.warnings:
        console.print(Text(f"warning: {warning}", style="yellow"))
    view = Table(header_style="bold", caption="estimate ± half band · realized where labelled")
    view.add_column("window")
    view.add_column("rows", justify="right")
    for metric in result.metrics:
        view.add_column(metric, justify="right")
    for (index,), part in table.group_by(["window"], maintain_order=True):
        first = part.row(0, named=True)
        start = first["window_start"]
        when = start.strftime("%Y-%m-%d %H:%M") if hasattr(start, "strftime") else str(index)
        cells = [when, f"{first['n']:,}"]
        for metric in result.metrics:
            row = part.filter(pl.col("metric") == metric)
            if row.height == 0:
                cells.append("–")
                continue
            r = row.row(0, named=True)
            half = (r["upper"] - r["lower"]) / 2 if r["upper"] is not None else None
            text = f"{_num(r['estimated'])} ±{_num(half)}"
            if r["realized"] is not None:
                text += f" · {_num(r['realized'])}"
            cells.append(f"[bold red]{text}[/]" if r["alert"] else text)
        view.add_row(*cells)
    console.print(view)
