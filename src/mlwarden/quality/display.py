"""A validation as plain text: the verdict, the scores, and one line per check, failures first."""

from __future__ import annotations

import io
from typing import TYPE_CHECKING

from mlwarden.quality.base import Dimension

if TYPE_CHECKING:
    from mlwarden.quality.validation import CheckResult, Validation

WIDTH = 100
_LABEL_WIDTH = 34  # longer check labels are cut
_GAP = 2  # spaces between the table's columns


def shorten(text: str, limit: int) -> str:
    """``text`` in at most ``limit`` characters, cut at a word boundary with an ellipsis."""
    text = " ".join(text.split())
    if len(text) <= limit:
        return text
    cut = text[: max(limit - 1, 0)]
    space = cut.rfind(" ")
    if space >= limit * 0.6:
        cut = cut[:space]
    return cut.rstrip(" ,;:(") + "…"


def _plural(n: int, word: str) -> str:
    return f"{n:,} {word}{'s' if n != 1 else ''}"


def verdict_text(validation: Validation) -> str:
    """``PASSED`` or ``FAILED`` with the counts of failed checks by severity."""
    errors = len(validation.failed("error"))
    warnings = len(validation.failed("warning"))
    checks = _plural(len(validation.results), "check")
    if errors:
        tail = f" and {_plural(warnings, 'warning check')}" if warnings else ""
        return f"FAILED: {_plural(errors, 'error check')}{tail} failed of {checks}."
    if warnings:
        return f"PASSED with warnings: {_plural(warnings, 'warning check')} failed of {checks}."
    return f"PASSED: all {checks} passed."


def percent(score: float) -> str:
    """A score as a percentage; a score below 1 never shows as 100%."""
    if score >= 1.0:
        return "100%"
    return f"{min(score * 100.0, 99.9):.1f}%"


def ordered(validation: Validation) -> list[CheckResult]:
    """The results: failed errors first, then failed warnings, then passed checks (suite order)."""

    def rank(r: CheckResult) -> int:
        return 2 if r.passed else (0 if r.severity == "error" else 1)

    return sorted(validation.results, key=lambda r: (rank(r), r.index))


def summary_text(
    validation: Validation, width: int = WIDTH, *, passed_shown: int | None = None
) -> str:
    """The verdict, the scores per dimension and a table with one line per check.

    Failed checks come first with their whole message (wrapped); passed checks take one line
    each, cut with an ellipsis, and beyond ``passed_shown`` of them (default: all) they are
    counted in a last line instead.
    """
    from rich import box
    from rich.console import Console
    from rich.table import Table
    from rich.text import Text

    buffer = io.StringIO()
    console = Console(
        file=buffer,
        width=width,
        color_system=None,
        force_terminal=False,
        force_jupyter=False,
        force_interactive=False,
        highlight=False,
        emoji=False,
        legacy_windows=False,
    )
    scores = validation.scores
    console.print(
        Text(
            f"{verdict_text(validation)} Overall score {percent(scores.get('overall', 1.0))} "
            f"on {_plural(validation.n_rows, 'row')}."
        )
    )
    dimensions = [f"{d.value} {percent(scores[d.value])}" for d in Dimension if d.value in scores]
    if dimensions:
        console.print(Text(" · ".join(dimensions)))
    console.print()
    if not validation.results:
        return buffer.getvalue().rstrip("\n")
    table = Table(
        box=box.SIMPLE_HEAD,
        header_style="bold",
        show_edge=False,
        pad_edge=False,
        collapse_padding=True,
        expand=True,
    )
    table.add_column("", no_wrap=True, width=1)
    table.add_column("check", no_wrap=True, overflow="ellipsis", max_width=_LABEL_WIDTH)
    table.add_column("severity", no_wrap=True)
    table.add_column("failed", justify="right", no_wrap=True)
    table.add_column("message", overflow="fold", ratio=1)
    results = ordered(validation)
    hidden = 0
    if passed_shown is not None:
        passed = [r for r in results if r.passed]
        hidden = max(0, len(passed) - passed_shown)
        if hidden:
            results = [r for r in results if not r.passed] + passed[:passed_shown]
    # A failed check judged on an aggregate has no failing rows to count: a dash.
    failed = [f"{r.n_failed:,}" if r.passed or r.n_failed else "–" for r in results]
    label_width = min(max(len(r.label) for r in results), _LABEL_WIDTH)
    used = 1 + label_width + len("severity") + max(len("failed"), *map(len, failed)) + 4 * _GAP
    room = max(width - used, 20)
    for r, n_failed in zip(results, failed, strict=True):
        table.add_row(
            Text("✓" if r.passed else "✗"),
            Text(r.label),
            Text(r.severity),
            Text(n_failed),
            Text(r.message if not r.passed else shorten(r.message, room)),
        )
    if hidden:
        table.add_row(Text("✓"), Text(f"{hidden} more checks passed"), Text(""), Text(""), Text(""))
    console.print(table)
    return "\n".join(line.rstrip() for line in buffer.getvalue().rstrip("\n").splitlines())
