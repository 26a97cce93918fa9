"""Completeness: values and rows that are present.

Example:
    >>> import polars as pl
    >>> from mlwarden.quality import Suite, validate
    >>> frame = pl.DataFrame({"pressure_bar": [141.0, None, 139.5, float("nan")]})
    >>> result = validate(frame, Suite([NotNull(column="pressure_bar")])).results[0]
    >>> result.passed, result.n_failed
    (False, 2)
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import polars as pl

from mlwarden.exceptions import ParameterError
from mlwarden.quality.base import Dimension, RowCheck, Stats, share

if TYPE_CHECKING:
    from collections.abc import Sequence

    from mlwarden.quality.base import Check, Context


def missing(column: str, dtype: pl.DataType | None) -> pl.Expr:
    """Null, or NaN in a float column (a sensor that reported no number)."""
    expr = pl.col(column).is_null()
    if dtype is not None and dtype.is_float():
        expr = expr | pl.col(column).is_nan()
    return expr


@dataclass(frozen=True, kw_only=True)
class NotNull(RowCheck, key="not_null"):
    """Nulls (and NaN) in ``column`` make up at most ``max_share`` of the rows.

    Example:
        >>> import polars as pl
        >>> from mlwarden.quality import Suite, validate
        >>> check = NotNull(column="humidity_pct", max_share=0.01)
        >>> frame = pl.DataFrame({"humidity_pct": [41.0] * 199 + [None]})
        >>> validate(frame, Suite([check])).results[0].passed
        True
    """

    row_local = True
    dimension = Dimension.COMPLETENESS
    example = {"column": "numeric"}
    limit_parameters = {"max_share": ""}
    repairable = True
    column: str

    def reads(self) -> tuple[str, ...]:
        return (self.column,)

    def repair(self, ctx: Context, limit: int) -> pl.Expr:
        """The last reading of the same series, at most ``limit`` readings back."""
        x = pl.col(self.column)
        if ctx.schema[self.column].is_float():
            x = pl.when(x.is_nan()).then(None).otherwise(x)
        filled = x.forward_fill(limit=limit) if limit > 0 else x
        return filled.over(list(ctx.entity)) if ctx.entity else filled

    def fails(self, ctx: Context) -> pl.Expr:
        return missing(self.column, ctx.schema.get(self.column))

    def threshold(self) -> Any:
        return self.max_share

    def relaxed(self, observed: Sequence[Any], margin: float) -> Check | None:
        """Nulls tolerated: ``max_share`` raised to ``margin`` x the worst share of missing values
        observed (``observed`` holds that share per failing window), at most 1.

        Example:
            >>> NotNull(column="humidity_pct").relaxed([0.004, 0.01], 1.5).max_share
            0.015
        """
        return self.relaxed_share(observed, margin)

    def explain(self, stats: Stats, passed: bool) -> str:
        if stats.n_failed == 0:
            return f"{self.column} has a value in all {stats.n_checked:,} rows."
        limit = (
            "none allowed"
            if not self.max_share
            else f"at most {share(1, round(1 / self.max_share))}"
        )
        return (
            f"{self.column} is missing in {stats.n_failed:,} of {stats.n_checked:,} rows "
            f"({share(stats.n_failed, stats.n_checked)}; {limit})."
        )


@dataclass(frozen=True, kw_only=True)
class RowCompleteness(RowCheck, key="row_completeness"):
    """A row is incomplete when fewer than ``min_filled`` of ``columns`` hold a value.

    ``columns`` defaults to every column of the data. At most ``max_share`` of the rows may be
    incomplete.

    Example:
        >>> import polars as pl
        >>> from mlwarden.quality import Suite, validate
        >>> frame = pl.DataFrame({"a": [1.0, None, None], "b": [2.0, 3.0, None]})
        >>> check = RowCompleteness(columns=["a", "b"], min_filled=0.5)
        >>> validate(frame, Suite([check])).results[0].n_failed
        1
    """

    row_local = True
    dimension = Dimension.COMPLETENESS
    example = {"min_filled": 0.5}
    limit_parameters = {"max_share": ""}
    columns: tuple[str, ...] | None = None
    min_filled: float = 0.5

    def __post_init__(self) -> None:
        super().__post_init__()
        if not 0.0 < self.min_filled <= 1.0:
            raise ParameterError(
                f"The 'min_filled' parameter of the check 'row_completeness' must be a share in "
                f"(0, 1]; got {self.min_filled!r}.",
                parameter="min_filled",
            )

    def reads(self) -> tuple[str, ...]:
        return self.columns or ()

    @property
    def subject(self) -> str | None:
        return None

    def _targets(self, ctx: Context) -> list[str]:
        if self.columns:
            return list(self.columns)
        return [c for c in ctx.schema if not c.startswith("__")]

    def fails(self, ctx: Context) -> pl.Expr:
        targets = self._targets(ctx)
        filled = pl.sum_horizontal(
            [(~missing(c, ctx.schema.get(c))).cast(pl.Int32) for c in targets]
        )
        return filled < self.min_filled * len(targets) - 1e-9

    def threshold(self) -> Any:
        return self.max_share

    def relaxed(self, observed: Sequence[Any], margin: float) -> Check | None:
        """Incomplete rows tolerated: ``max_share`` raised to ``margin`` x the worst share of
        incomplete rows observed (``observed`` holds that share per failing window), at most 1;
        ``min_filled`` stays.

        Example:
            >>> RowCompleteness(min_filled=0.5).relaxed([0.1], 2.0).max_share
            0.2
        """
        return self.relaxed_share(observed, margin)

    def rule_text(self) -> str:
        return f"'at least {self.min_filled:.0%} of the columns filled'"
