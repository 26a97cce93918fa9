"""Uniqueness: unique keys, no duplicate rows, one reading per series and timestamp.

The first occurrence of a key passes; every repeat fails, so the gate keeps one copy.

Example:
    >>> import polars as pl
    >>> from mlwarden.quality import Suite, validate
    >>> frame = pl.DataFrame({"reading_id": [1, 2, 2, 3]})
    >>> validate(frame, Suite([Unique(columns=["reading_id"])])).results[0].n_failed
    1
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import polars as pl

from mlwarden.quality.base import Dimension, RowCheck, Stats

if TYPE_CHECKING:
    from collections.abc import Sequence

    from mlwarden.quality.base import Check, Context


@dataclass(frozen=True, kw_only=True)
class Unique(RowCheck, key="unique"):
    """The combination of ``columns`` is a key: no value (tuple) appears twice.

    Rows with a null in the key are not judged (that is completeness).

    Example:
        >>> import polars as pl
        >>> from mlwarden.quality import Suite, validate
        >>> frame = pl.DataFrame({"line": ["L1", "L1", "L2"], "batch": [7, 7, 7]})
        >>> validate(frame, Suite([Unique(columns=["line", "batch"])])).results[0].message
        '1 of 3 rows (33.3 %) repeat a key (line, batch) seen before; too many.'
    """

    dimension = Dimension.UNIQUENESS
    example = {"columns": ["row_id"]}
    limit_parameters = {"max_share": ""}
    columns: tuple[str, ...]

    def reads(self) -> tuple[str, ...]:
        return self.columns

    def _key(self) -> pl.Expr:
        cols = list(self.columns)
        return pl.col(cols[0]) if len(cols) == 1 else pl.struct(cols)

    def fails(self, ctx: Context) -> pl.Expr:
        complete = pl.all_horizontal([pl.col(c).is_not_null() for c in self.columns])
        if len(self.columns) == 1 and ctx.is_sorted(self.columns[0]):
            # Ids that arrive in order: a repeat sits right after its first copy.
            x = pl.col(self.columns[0])
            return complete & (x == x.shift(1)).fill_null(False)
        return complete & ~self._key().is_first_distinct()

    def checked(self, ctx: Context) -> pl.Expr:
        return pl.all_horizontal([pl.col(c).is_not_null() for c in self.columns])

    def threshold(self) -> Any:
        return self.max_share

    def relaxed(self, observed: Sequence[Any], margin: float) -> Check | None:
        """Repeats tolerated: ``max_share`` raised to ``margin`` x the worst share of rows that
        repeat a key (``observed`` holds that share per failing window), at most 1.

        Example:
            >>> Unique(columns=["reading_id"]).relaxed([0.002], 1.5).max_share
            0.003
        """
        return self.relaxed_share(observed, margin)

    def explain(self, stats: Stats, passed: bool) -> str:
        key = ", ".join(self.columns)
        if stats.n_failed == 0:
            return f"Every row has its own ({key})."
        verdict = "within tolerance" if passed else "too many"
        return (
            f"{stats.n_failed:,} of {stats.n_checked:,} rows ({_pct(stats)}) repeat a key ({key}) "
            f"seen before; {verdict}."
        )


def _pct(stats: Stats) -> str:
    from mlwarden.quality.base import share

    return share(stats.n_failed, stats.n_checked)


@dataclass(frozen=True, kw_only=True)
class DuplicateRows(RowCheck, key="duplicate_rows"):
    """No row repeats another in every column (or in ``columns`` when given).

    Example:
        >>> import polars as pl
        >>> from mlwarden.quality import Suite, validate
        >>> frame = pl.DataFrame({"a": [1, 1, 2], "b": ["x", "x", "x"]})
        >>> validate(frame, Suite([DuplicateRows()])).results[0].n_failed
        1
    """

    dimension = Dimension.UNIQUENESS
    example = {}
    limit_parameters = {"max_share": ""}
    columns: tuple[str, ...] | None = None

    def reads(self) -> tuple[str, ...]:
        return self.columns or ()

    def fails(self, ctx: Context) -> pl.Expr:
        cols = (
            list(self.columns)
            if self.columns
            else [c for c in ctx.schema if not c.startswith("__")]
        )
        return ~pl.struct(cols).is_first_distinct()

    def threshold(self) -> Any:
        return self.max_share

    def relaxed(self, observed: Sequence[Any], margin: float) -> Check | None:
        """Repeated rows tolerated: ``max_share`` raised to ``margin`` x the worst share of
        repeated rows observed (``observed`` holds that share per failing window), at most 1.

        Example:
            >>> DuplicateRows().relaxed([0.01], 1.5).max_share
            0.015
        """
        return self.relaxed_share(observed, margin)

    def rule_text(self) -> str:
        return "'no row repeats an earlier one'"


@dataclass(frozen=True, kw_only=True)
class DuplicateTimestamps(RowCheck, key="duplicate_timestamps"):
    """One reading per series (the suite's entity) and timestamp.

    Example:
        >>> import polars as pl
        >>> from datetime import datetime
        >>> from mlwarden.quality import Suite, validate
        >>> t = [datetime(2024, 1, 1, 8, 0, s) for s in (0, 10, 10, 20)]
        >>> frame = pl.DataFrame({"timestamp": t, "value": [1.0, 2.0, 2.0, 3.0]})
        >>> suite = Suite([DuplicateTimestamps()], timestamp="timestamp")
        >>> validate(frame, suite).results[0].n_failed
        1
    """

    dimension = Dimension.UNIQUENESS
    ordered = True
    example = {}
    limit_parameters = {"max_share": ""}

    def fails(self, ctx: Context) -> pl.Expr:
        return ctx.same & (ctx.dt == 0)

    def threshold(self) -> Any:
        return self.max_share

    def relaxed(self, observed: Sequence[Any], margin: float) -> Check | None:
        """Rate-based: ``max_share`` raised to ``margin`` x the worst share of rows that repeat a
        timestamp of their series (``observed`` holds that share per failing window), at most 1.

        Example:
            >>> DuplicateTimestamps().relaxed([0.004, 0.0125], 1.5).max_share
            0.01875
        """
        return self.relaxed_share(observed, margin)

    def rule_text(self) -> str:
        return "'one reading per series and timestamp'"
