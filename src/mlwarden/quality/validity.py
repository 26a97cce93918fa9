"""Validity: values inside physical limits, from an allowed set, of the right format and length.

Example:
    >>> import polars as pl
    >>> from mlwarden.quality import Suite, validate
    >>> frame = pl.DataFrame({"recipe": ["PP-H100", "PE-LD30", "pp-h100"]})
    >>> check = Pattern(column="recipe", regex=r"^[A-Z0-9]+-[A-Z0-9]+$")
    >>> validate(frame, Suite([check])).results[0].n_failed
    1
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

import polars as pl

from mlwarden.exceptions import ParameterError
from mlwarden.quality._relax import check_margin, pairs, widen_interval
from mlwarden.quality.base import Dimension, Grouped, RowCheck, Stats, number

if TYPE_CHECKING:
    from collections.abc import Sequence

    from mlwarden.quality.base import Check, Context


@dataclass(frozen=True, kw_only=True)
class Range(RowCheck, Grouped, key="range"):
    """Values of ``column`` lie in ``[min, max]`` (physical limits); either bound may be omitted.

    Nulls are not judged here (that is completeness). With ``by`` and ``groups`` each sensor tag
    of long data gets its own limits.

    Example:
        >>> import polars as pl
        >>> from mlwarden.quality import Suite, validate
        >>> frame = pl.DataFrame({"tag": ["TI-1", "TI-1", "PI-7"], "value": [230.0, 900.0, 900.0]})
        >>> check = Range(column="value", max=400, by="tag", groups={"PI-7": {"max": 1000}})
        >>> validate(frame, Suite([check])).results[0].n_failed
        1
    """

    row_local = True
    dimension = Dimension.VALIDITY
    example = {"column": "numeric", "min": -10.0, "max": 10.0}
    limit_parameters = {"min": "", "max": ""}
    repairable = True
    column: str
    min: float | None = None
    max: float | None = None

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.min is not None and self.max is not None and self.min > self.max:
            raise ParameterError(
                f"The check 'range' on '{self.column}' has min {self.min} above max {self.max}.",
                parameter="min",
            )

    def reads(self) -> tuple[str, ...]:
        return (self.column,) if self.by is None else (self.column, self.by)

    def fails(self, ctx: Context) -> pl.Expr:
        x = pl.col(self.column)
        low = ctx.param("min", self.min)
        high = ctx.param("max", self.max)
        outside = (x < low).fill_null(False) | (x > high).fill_null(False)
        return outside & x.is_not_nan() if ctx.schema[self.column].is_float() else outside

    def checked(self, ctx: Context) -> pl.Expr:
        return _present(self.column, ctx)

    def repair(self, ctx: Context, limit: int) -> pl.Expr:
        """The value clipped to the limits."""
        x = pl.col(self.column)
        if self.min is not None or "min" in ctx.grouped:
            x = (
                pl.when(x < ctx.param("min", self.min))
                .then(ctx.param("min", self.min))
                .otherwise(x)
            )
        if self.max is not None or "max" in ctx.grouped:
            x = (
                pl.when(x > ctx.param("max", self.max))
                .then(ctx.param("max", self.max))
                .otherwise(x)
            )
        return x.cast(ctx.schema[self.column])

    def observe(self, ctx: Context) -> dict[str, pl.Expr]:
        x = pl.col(self.column)  # min and max skip nulls and NaN
        return {"low": x.min(), "high": x.max()}

    def observed(self, stats: Stats) -> Any:
        return [stats.values.get("low"), stats.values.get("high")]

    def threshold(self) -> Any:
        return [self.min, self.max]

    def relaxed(self, observed: Sequence[Any], margin: float) -> Check | None:
        """The side(s) of the range the failing windows crossed moved out; the other stays.

        ``observed`` holds ``[lowest, highest]`` of each failing window. A crossed side moves
        to ``margin`` times as far from the middle of ``[min, max]`` as the worst value beyond
        it (so the room grows with the range's own span, not with the small overshoot); a
        range with one side has no middle and measures from the far end of what was observed
        instead (its lowest value, for a ``max``). The new limit is rounded outward to four
        significant digits of that distance. None when ``groups`` set limits per group (the
        observed extremes are over every group, so which group's limit they broke is unknown)
        or when no observed value lies outside the range.

        Example:
            >>> check = Range(column="temperature_c", min=220, max=240)
            >>> check.relaxed([[225.1, 243.0], [218.5, 239.0]], 1.5).to_dict()
            {'check': 'range', 'column': 'temperature_c', 'min': 212.75, 'max': 249.5}
        """
        margin = check_margin(margin)
        seen = pairs(observed)
        if seen is None or self.sets_per_group("min", "max"):
            return None
        widened = widen_interval(self.min, self.max, *seen, margin)
        if widened is None:
            return None
        return replace(self, min=widened[0], max=widened[1])

    def rule_text(self) -> str:
        low = "-inf" if self.min is None else number(self.min)
        high = "inf" if self.max is None else number(self.max)
        if self.groups:
            return f"{self.column} within the limits set per {self.by}"
        return f"{self.column} in [{low}, {high}]"

    def detail(self, stats: Stats) -> str:
        low, high = stats.values.get("low"), stats.values.get("high")
        return f"; lowest {number(low)}, highest {number(high)}" if low is not None else ""


SMALL_SET = 16
"""Allowed sets up to this size are checked with comparisons rather than a hash lookup."""


def _present(column: str, ctx: Context) -> pl.Expr:
    x = pl.col(column)
    present = x.is_not_null()
    if ctx.schema[column].is_float():
        present = present & x.is_not_nan()
    return present


@dataclass(frozen=True, kw_only=True)
class AllowedValues(RowCheck, key="allowed_values"):
    """Values of ``column`` come from ``values`` (nulls are left to completeness).

    Example:
        >>> import polars as pl
        >>> from mlwarden.quality import Suite, validate
        >>> frame = pl.DataFrame({"line": ["L1", "L2", "L9"]})
        >>> result = validate(frame, Suite([AllowedValues(column="line", values=["L1", "L2"])]))
        >>> result.results[0].message
        '1 of 3 rows (33.3 %) break the rule line in {L1, L2}; unexpected: L9; too many.'
    """

    row_local = True
    dimension = Dimension.VALIDITY
    example = {"column": "categorical", "values": ["a", "b", "c", "d"]}
    column: str
    values: tuple[Any, ...]

    def reads(self) -> tuple[str, ...]:
        return (self.column,)

    def _values(self, ctx: Context) -> pl.Series:
        dtype = ctx.schema[self.column]
        if isinstance(dtype, pl.Categorical | pl.Enum):
            dtype = pl.String()
        try:
            return pl.Series(list(self.values), dtype=dtype, strict=False)
        except (pl.exceptions.PolarsError, TypeError, ValueError):
            return pl.Series(list(self.values))

    def _column(self, ctx: Context) -> pl.Expr:
        dtype = ctx.schema[self.column]
        x = pl.col(self.column)
        return x.cast(pl.String) if isinstance(dtype, pl.Categorical | pl.Enum) else x

    def fails(self, ctx: Context) -> pl.Expr:
        x = self._column(ctx)
        values = self._values(ctx).drop_nulls()
        if values.len() <= SMALL_SET:
            # A few comparisons beat a hash lookup per row.
            allowed = pl.any_horizontal([x == pl.lit(v, dtype=values.dtype) for v in values])
            return x.is_not_null() & ~allowed if values.len() else x.is_not_null()
        return x.is_not_null() & ~x.is_in(values.implode())

    def checked(self, ctx: Context) -> pl.Expr:
        return pl.col(self.column).is_not_null()

    def observe(self, ctx: Context) -> dict[str, pl.Expr]:
        bad = self._column(ctx).filter(ctx.failed)
        return {"unexpected": bad.unique(maintain_order=True).head(5).cast(pl.String).implode()}

    def threshold(self) -> Any:
        return list(self.values)

    def rule_text(self) -> str:
        shown = ", ".join(str(v) for v in self.values[:8]) + (
            ", ..." if len(self.values) > 8 else ""
        )
        return f"{self.column} in {{{shown}}}"

    def detail(self, stats: Stats) -> str:
        unexpected = stats.values.get("unexpected") or []
        return f"; unexpected: {', '.join(unexpected)}" if unexpected else ""


@dataclass(frozen=True, kw_only=True)
class Pattern(RowCheck, key="pattern"):
    """String values of ``column`` match the regular expression ``regex`` (Rust regex syntax).

    Example:
        >>> import polars as pl
        >>> from mlwarden.quality import Suite, validate
        >>> frame = pl.DataFrame({"tag": ["TI-1042", "TI-88", None]})
        >>> validate(frame, Suite([Pattern(column="tag", regex=r"^[A-Z]{2}-\\d{4}$")])).passed
        False
    """

    row_local = True
    dimension = Dimension.VALIDITY
    example = {"column": "categorical", "regex": "^[a-d]$"}
    column: str
    regex: str

    def __post_init__(self) -> None:
        super().__post_init__()
        try:
            pl.select(pl.lit("x").str.contains(self.regex))
        except pl.exceptions.PolarsError as exc:
            raise ParameterError(
                f"The 'regex' parameter of the check 'pattern' is not a valid regular expression: "
                f"{self.regex!r} ({str(exc).splitlines()[0]}).",
                parameter="regex",
            ) from exc

    def reads(self) -> tuple[str, ...]:
        return (self.column,)

    def fails(self, ctx: Context) -> pl.Expr:
        x = pl.col(self.column).cast(pl.String)
        return x.is_not_null() & ~x.str.contains(self.regex)

    def checked(self, ctx: Context) -> pl.Expr:
        return pl.col(self.column).is_not_null()

    def observe(self, ctx: Context) -> dict[str, pl.Expr]:
        bad = pl.col(self.column).cast(pl.String).filter(ctx.failed)
        return {"examples": bad.unique(maintain_order=True).head(3).implode()}

    def threshold(self) -> Any:
        return self.regex

    def rule_text(self) -> str:
        return f"{self.column} matches /{self.regex}/"

    def detail(self, stats: Stats) -> str:
        examples = stats.values.get("examples") or []
        return f"; e.g. {', '.join(repr(e) for e in examples)}" if examples else ""


@dataclass(frozen=True, kw_only=True)
class Length(RowCheck, key="length"):
    """String values of ``column`` are ``min`` to ``max`` characters long.

    Example:
        >>> import polars as pl
        >>> from mlwarden.quality import Suite, validate
        >>> frame = pl.DataFrame({"batch_id": ["B-000123", "B-12", "B-000124"]})
        >>> validate(frame, Suite([Length(column="batch_id", min=8, max=8)])).results[0].n_failed
        1
    """

    row_local = True
    dimension = Dimension.VALIDITY
    example = {"column": "categorical", "min": 1, "max": 1}
    limit_parameters = {"min": "", "max": ""}
    column: str
    min: int | None = None
    max: int | None = None

    def reads(self) -> tuple[str, ...]:
        return (self.column,)

    def helpers(self, ctx: Context) -> dict[str, pl.Expr]:
        return {ctx.name("length"): pl.col(self.column).cast(pl.String).str.len_chars()}

    def fails(self, ctx: Context) -> pl.Expr:
        n = pl.col(ctx.name("length"))
        low = (n < self.min) if self.min is not None else pl.lit(False)
        high = (n > self.max) if self.max is not None else pl.lit(False)
        return low | high

    def checked(self, ctx: Context) -> pl.Expr:
        return pl.col(self.column).is_not_null()

    def observe(self, ctx: Context) -> dict[str, pl.Expr]:
        n = pl.col(ctx.name("length"))
        return {"shortest": n.min(), "longest": n.max()}

    def observed(self, stats: Stats) -> Any:
        return [stats.values.get("shortest"), stats.values.get("longest")]

    def threshold(self) -> Any:
        return [self.min, self.max]

    def relaxed(self, observed: Sequence[Any], margin: float) -> Check | None:
        """The crossed side(s) of ``[min, max]`` moved out as :meth:`Range.relaxed` does, to whole
        characters (``min`` not below 0); ``observed`` holds ``[shortest, longest]`` of each
        failing window. None when no observed length lies outside.

        Example:
            >>> Length(column="batch_id", min=8, max=8).relaxed([[4, 8]], 1.5).to_dict()
            {'check': 'length', 'column': 'batch_id', 'min': 2, 'max': 8}
        """
        margin = check_margin(margin)
        seen = pairs(observed)
        if seen is None:
            return None
        widened = widen_interval(self.min, self.max, *seen, margin, integer=True, floor=0.0)
        if widened is None:
            return None
        low, high = widened
        return replace(
            self,
            min=None if low is None else int(low),
            max=None if high is None else int(high),
        )

    def rule_text(self) -> str:
        low = self.min if self.min is not None else 0
        high = self.max if self.max is not None else "inf"
        return f"len({self.column}) in [{low}, {high}]"

    def detail(self, stats: Stats) -> str:
        return f"; lengths {stats.values.get('shortest')} to {stats.values.get('longest')}"
