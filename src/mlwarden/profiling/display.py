"""A profile as terminal tables: one table per kind, a sparkline of each distribution."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

from mlwarden.schema import Kind

if TYPE_CHECKING:
    from rich.console import Console, RenderableType

    from mlwarden.profiling.column import ColumnProfile
    from mlwarden.profiling.table import Profile

_BLOCKS = " ▁▂▃▄▅▆▇█"


def sparkline(counts: list[int], width: int = 12) -> str:
    """Unicode bar chart of histogram counts, resampled to ``width`` characters."""
    if not counts or max(counts) == 0:
        return ""
    if len(counts) > width:
        step = len(counts) / width
        counts = [
            sum(counts[int(i * step) : max(int((i + 1) * step), int(i * step) + 1)])
            for i in range(width)
        ]
    top = max(counts)
    return "".join(_BLOCKS[math.ceil(c / top * (len(_BLOCKS) - 1))] for c in counts)


def _num(x: float | None) -> str:
    if x is None or (isinstance(x, float) and not math.isfinite(x)):
        return "–"
    ax = abs(x)
    if ax != 0 and (ax >= 1e6 or ax < 1e-3):
        return f"{x:.3g}"
    return f"{x:,.4g}" if ax < 1e4 else f"{x:,.0f}"


def _share(part: int, whole: int) -> str:
    if whole == 0 or part == 0:
        return "0"
    share = 100.0 * part / whole
    return f"{share:.2g}%" if share < 10 else f"{share:.0f}%"


def _seconds(s: float | None) -> str:
    if s is None or not math.isfinite(s):
        return "–"
    for unit, size in (("d", 86400.0), ("h", 3600.0), ("min", 60.0), ("s", 1.0)):
        if abs(s) >= size:
            return f"{s / size:.3g} {unit}"
    return f"{s * 1000:.3g} ms" if s else "0 s"


def render(profile: Profile) -> list[RenderableType]:
    """Rich renderables summarizing a profile, one table per kind of column."""
    from rich.table import Table
    from rich.text import Text

    summary = profile.summary()
    cols = summary["columns"]
    out: list[RenderableType] = [
        Text.assemble(
            ("Profile ", "bold"),
            f"{profile.n_rows:,} rows × {len(profile)} columns  ",
            (f"(quantiles within ±{summary['rank_error']:.2%} of rank)", "dim"),
        )
    ]
    by_kind: dict[Kind, list[ColumnProfile]] = {}
    for c in profile:
        by_kind.setdefault(c.kind, []).append(c)

    numeric = by_kind.get(Kind.NUMERIC, [])
    if numeric:
        t = Table(title="Numeric columns", title_justify="left", header_style="bold")
        for head in ("column", "role", "missing", "mean", "std", "min", "p1", "median", "p99"):
            t.add_column(head, justify="left" if head in ("column", "role") else "right")
        t.add_column("max", justify="right")
        t.add_column("distinct", justify="right")
        t.add_column("distribution")
        for c in numeric:
            s = cols[c.name]
            q = s["quantiles"] or {}
            hist = s.get("histogram") or {}
            t.add_row(
                c.name,
                c.role.value,
                _share(c.null_count + c.nan_count, c.n),
                _num(s["mean"]),
                _num(s["std"]),
                _num(s["min"]),
                _num(q.get("0.01")),
                _num(q.get("0.5")),
                _num(q.get("0.99")),
                _num(s["max"]),
                _distinct(s),
                Text(sparkline(hist.get("counts", [])), style="cyan"),
            )
        out.append(t)

    cats = by_kind.get(Kind.CATEGORICAL, []) + by_kind.get(Kind.TEXT, [])
    cats += by_kind.get(Kind.BOOLEAN, [])
    if cats:
        t = Table(title="Categorical, boolean and text columns", title_justify="left")
        for head in ("column", "kind", "role", "missing", "distinct", "most frequent"):
            t.add_column(head, justify="right" if head in ("missing", "distinct") else "left")
        for c in cats:
            s = cols[c.name]
            top = s["top"] or []
            shown = ", ".join(f"{v} ({_share(n, c.count)})" for v, n in top[:4])
            t.add_row(
                c.name, c.kind.value, c.role.value, _share(c.null_count, c.n), _distinct(s), shown
            )
        out.append(t)

    times = by_kind.get(Kind.DATETIME, [])
    if times:
        t = Table(title="Datetime columns", title_justify="left")
        for head in ("column", "role", "missing", "first", "last", "median gap", "max gap"):
            t.add_column(head)
        t.add_column("repeated", justify="right")
        for c in times:
            s = cols[c.name]
            gaps = s.get("gaps_seconds") or {}
            t.add_row(
                c.name,
                c.role.value,
                _share(c.null_count, c.n),
                _when(s["min"]),
                _when(s["max"]),
                _seconds(gaps.get("median")),
                _seconds(gaps.get("max")),
                str(gaps.get("zero", 0)),
            )
        out.append(t)
    return out


def _when(iso: str | None) -> str:
    """An ISO 8601 timestamp to the second, as people read it in a table."""
    if not iso:
        return "–"
    day, _, rest = iso.partition("T")
    zone = rest[-6:] if rest[-6:-5] in "+-" else ""
    return f"{day} {rest[:8]}" + (" UTC" if zone in ("", "+00:00") else f" {zone}")


def _distinct(s: dict[str, Any]) -> str:
    d = f"{s['distinct']:,}"
    return d if s["distinct_exact"] else f"≈{d}"


def print_profile(profile: Profile, console: Console | None = None) -> None:
    """Print a profile's tables to the terminal (or the given rich console)."""
    from rich.console import Console

    if console is None:
        console = Console()
        if not console.is_terminal:
            # Piped or logged output: wide enough that the tables do not wrap.
            console = Console(width=160)
    for part in render(profile):
        console.print(part)
