"""Distribution bounds: a batch's mean, spread, quantiles and category shares stay in the band
learned from the reference.

These are judged on aggregates, so a batch (or window) passes or fails as a whole. Bands depend
on the batch size: :func:`~mlwarden.quality.suggest_suite` learns them for a given window.

Example:
    >>> import polars as pl
    >>> from mlwarden.quality import Suite, validate
    >>> frame = pl.DataFrame({"pressure_bar": [140.0, 142.0, 171.0]})
    >>> validate(frame, Suite([Mean(column="pressure_bar", min=135, max=150)])).results[0].observed
    151.0
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any, ClassVar

import polars as pl

from mlwarden.exceptions import ParameterError
from mlwarden.quality._relax import check_margin, numbers, widen_interval
from mlwarden.quality.base import Check, Dimension, Stats, Verdict, number

if TYPE_CHECKING:
    from collections.abc import Sequence

    from mlwarden.quality.base import Context


def _too_few(column: str, stats: Stats, min_rows: int) -> Verdict:
    return Verdict(
        True,
        None,
        f"Only {stats.n_rows:,} rows (fewer than {min_rows:,}): too few to judge the "
        f"distribution of {column}.",
    )


def _window_key(window: str | int, ctx: Context) -> pl.Expr:
    """The window each row falls in: a time bucket of the suite's timestamp, or rows."""
    if isinstance(window, int):
        return pl.col("__row") // window
    if ctx.timestamp is None:
        raise ParameterError(
            f"A band per window of '{window}' needs the suite's timestamp column.",
            parameter="window",
        )
    return ctx.ts.dt.truncate(window)


def _band_text(low: float | None, high: float | None) -> str:
    left = number(low) if low is not None else "-inf"
    right = number(high) if high is not None else "inf"
    return f"[{left}, {right}]"


@dataclass(frozen=True, kw_only=True)
class _Band(Check):
    """A statistic of ``column`` within ``[min, max]``, over the batch or per window.

    With ``window`` (a duration on the suite's timestamp, or a number of rows) the statistic is
    computed for every window of that size in the batch, and each must lie in the band: bands
    are learned for a window size, and a batch of a different size varies differently. Windows
    with fewer than ``min_rows`` rows are not judged.
    """

    dimension = Dimension.CONSISTENCY
    limit_parameters = {"min": "", "max": ""}
    floor: ClassVar[float | None] = None
    """The least value the statistic can take (a widened ``min`` stops there)."""
    column: str
    min: float | None = None
    max: float | None = None
    window: str | int | None = None
    min_rows: int | None = None
    statistic = "value"

    def reads(self) -> tuple[str, ...]:
        return (self.column,)

    def _statistic(self, x: pl.Expr) -> pl.Expr:
        raise NotImplementedError

    def observe(self, ctx: Context) -> dict[str, pl.Expr]:
        x = pl.col(self.column)
        if ctx.schema[self.column].is_float():
            x = pl.when(x.is_nan()).then(None).otherwise(x)
        if self.window is None:
            return {"low": self._statistic(x), "high": self._statistic(x), "windows": pl.lit(1)}
        key = _window_key(self.window, ctx)
        value = self._statistic(x).over(key)
        valid = pl.len().over(key) >= (self.min_rows or 1)
        return {
            "low": value.filter(valid).min(),
            "high": value.filter(valid).max(),
            "windows": key.filter(valid).n_unique(),
        }

    def threshold(self) -> Any:
        return [self.min, self.max]

    def relaxed(self, observed: Sequence[Any], margin: float) -> Check | None:
        """The crossed side(s) of the band moved out as ``Range.relaxed`` does.

        ``observed`` holds, per failing window, the statistic that left the band (with
        ``window``, the lowest one per window when a window fell below, else the highest: when
        both sides were crossed in one validation only the low side is seen, so the high side of
        that validation is not widened). None when no observed value lies outside the band.

        Example:
            >>> Mean(column="temperature_c", min=220, max=240).relaxed([243.0], 1.5).max
            249.5
        """
        margin = check_margin(margin)
        values = numbers(observed)
        if not values:
            return None
        widened = widen_interval(self.min, self.max, values, values, margin, floor=self.floor)
        if widened is None:
            return None
        return replace(self, min=widened[0], max=widened[1])

    def judge(self, stats: Stats) -> Verdict:
        v = stats.values
        size = (
            f"{self.window} window" if isinstance(self.window, str) else f"{self.window}-row window"
        )
        if self.window is None and self.min_rows is not None and stats.n_rows < self.min_rows:
            return _too_few(self.column, stats, self.min_rows)
        if not v.get("windows") or v.get("low") is None:
            what = (
                f"no {size} with at least {self.min_rows or 1} rows" if self.window else "no values"
            )
            return Verdict(
                True, None, f"{self.column}: {what}, so its {self.statistic} is not judged."
            )
        low, high = float(v["low"]), float(v["high"])
        low_bad = self.min is not None and low < self.min
        high_bad = self.max is not None and high > self.max
        observed = low if low_bad else high if high_bad else (low + high) / 2
        band = _band_text(self.min, self.max)
        if self.window is None:
            where = "below" if low_bad else "above" if high_bad else "inside"
            message = (
                f"The {self.statistic} of {self.column} is {number(low)}, {where} the expected "
                f"band {band}."
            )
        else:
            n = int(v["windows"])
            seen = f"{number(low)} to {number(high)} over {n} {size}{'s' if n != 1 else ''}"
            verdict = "inside" if not (low_bad or high_bad) else "outside"
            message = (
                f"The {self.statistic} of {self.column} per {size} is {seen}: {verdict} the "
                f"expected band {band}."
            )
        return Verdict(not (low_bad or high_bad), observed, message)


@dataclass(frozen=True, kw_only=True)
class Mean(_Band, key="mean"):
    """The mean of ``column`` lies in ``[min, max]``.

    Example:
        >>> Mean(column="temperature_c", min=220, max=240).threshold()
        [220.0, 240.0]
    """

    example = {"column": "numeric", "min": -1.0, "max": 1.0}
    statistic = "mean"

    def _statistic(self, x: pl.Expr) -> pl.Expr:
        return x.mean()


@dataclass(frozen=True, kw_only=True)
class Std(_Band, key="std"):
    """The standard deviation of ``column`` lies in ``[min, max]``.

    Example:
        >>> Std(column="vibration_mm_s", max=1.5).threshold()
        [None, 1.5]
    """

    example = {"column": "numeric", "min": 0.5, "max": 2.0}
    statistic = "standard deviation"
    floor = 0.0

    def _statistic(self, x: pl.Expr) -> pl.Expr:
        return x.std()


@dataclass(frozen=True, kw_only=True)
class Quantile(_Band, key="quantile"):
    """The ``q``-quantile of ``column`` lies in ``[min, max]``.

    Example:
        >>> Quantile(column="pressure_bar", q=0.99, max=230).statistic
        '0.99-quantile'
    """

    example = {"column": "numeric", "q": 0.5, "min": -1.0, "max": 1.0}
    q: float

    def __post_init__(self) -> None:
        super().__post_init__()
        if not 0.0 <= self.q <= 1.0:
            raise ParameterError(
                f"The 'q' parameter of the check 'quantile' must be in [0, 1]; got {self.q!r}.",
                parameter="q",
            )
        object.__setattr__(self, "statistic", f"{self.q:g}-quantile")

    def _statistic(self, x: pl.Expr) -> pl.Expr:
        return x.quantile(self.q, interpolation="linear")


@dataclass(frozen=True, kw_only=True)
class CategoryShares(Check, key="category_shares"):
    """The share of each listed category of ``column`` lies in its band ``[low, high]``.

    ``bands`` maps a category to its band; shares are of the non-null values. Categories not
    listed are judged together as ``other`` when ``other`` (a band) is given.

    Example:
        >>> import polars as pl
        >>> from mlwarden.quality import Suite, validate
        >>> frame = pl.DataFrame({"recipe": ["PP"] * 9 + ["PA"]})
        >>> check = CategoryShares(column="recipe", bands={"PP": [0.5, 0.8], "PA": [0.1, 0.3]})
        >>> validate(frame, Suite([check])).results[0].message
        'recipe: PP 90 % (expected 50 % to 80 %).'
    """

    dimension = Dimension.CONSISTENCY
    example = {"column": "categorical", "bands": {"a": [0.0, 1.0]}}
    limit_parameters = {"bands": "", "other": ""}
    column: str
    bands: dict[Any, tuple[float, ...]]
    other: tuple[float, ...] | None = None
    window: str | int | None = None
    min_rows: int | None = None

    def __post_init__(self) -> None:
        super().__post_init__()
        for name, band in [*self.bands.items(), ("other", self.other)]:
            if band is None:
                continue
            if len(band) != 2 or not 0.0 <= band[0] <= band[1] <= 1.0:
                raise ParameterError(
                    f"In the check 'category_shares', the band of {name!r} must be [low, high] "
                    f"with 0 <= low <= high <= 1; got {list(band)!r}.",
                    parameter="bands",
                )

    def reads(self) -> tuple[str, ...]:
        return (self.column,)

    def observe(self, ctx: Context) -> dict[str, pl.Expr]:
        x = pl.col(self.column).cast(pl.String)
        shares = {f"share_{i}": (x == str(v)) for i, v in enumerate(self.bands)}
        if self.other is not None:
            listed = pl.Series([str(v) for v in self.bands], dtype=pl.String)
            shares["share_other"] = x.is_not_null() & ~x.is_in(listed.implode())
        if self.window is None:
            n = x.is_not_null().sum()
            return {
                **{f"{k}_low": hit.sum() / n for k, hit in shares.items()},
                **{f"{k}_high": hit.sum() / n for k, hit in shares.items()},
                "windows": pl.lit(1),
            }
        key = _window_key(self.window, ctx)
        n = x.is_not_null().sum().over(key)
        valid = pl.len().over(key) >= (self.min_rows or 1)
        out: dict[str, pl.Expr] = {"windows": key.filter(valid).n_unique()}
        for k, hit in shares.items():
            share = (hit.cast(pl.Int64).sum().over(key) / n).filter(valid)
            out[f"{k}_low"] = share.min()
            out[f"{k}_high"] = share.max()
        return out

    def threshold(self) -> Any:
        d = {str(k): list(v) for k, v in self.bands.items()}
        if self.other is not None:
            d["other"] = list(self.other)
        return d

    def relaxed(self, observed: Sequence[Any], margin: float) -> Check | None:
        """Each band a failing window left moved out as ``Range.relaxed`` does (from the band's
        middle, within [0, 1]); the other bands stay.

        ``observed`` holds, per failing window, a mapping from category (``other`` for the
        unlisted ones) to its share — the lowest over the window's sub-windows when one fell
        below the band, else the highest. None when no observed share lies outside its band.

        Example:
            >>> check = CategoryShares(column="recipe", bands={"PP": [0.5, 0.8], "PA": [0.1, 0.3]})
            >>> check.relaxed([{"PP": 0.85, "PA": 0.15}], 1.5).bands
            {'PP': (0.5, 0.95), 'PA': (0.1, 0.3)}
        """
        margin = check_margin(margin)
        seen: dict[str, list[float]] = {}
        for item in observed:
            if not isinstance(item, dict):
                continue
            for name, share in item.items():
                values = numbers([share])
                if values:
                    seen.setdefault(str(name), []).extend(values)
        bands = {
            k: self._widened(band, seen.get(str(k), []), margin) for k, band in self.bands.items()
        }
        other = (
            None if self.other is None else self._widened(self.other, seen.get("other", []), margin)
        )
        if bands == self.bands and other == self.other:
            return None
        return replace(self, bands=bands, other=other)

    @staticmethod
    def _widened(band: tuple[float, ...], shares: list[float], margin: float) -> tuple[float, ...]:
        widened = widen_interval(band[0], band[1], shares, shares, margin, floor=0.0, ceiling=1.0)
        if widened is None or widened[0] is None or widened[1] is None:
            return band
        return (widened[0], widened[1])

    def judge(self, stats: Stats) -> Verdict:
        v = stats.values
        if self.window is None and self.min_rows is not None and stats.n_rows < self.min_rows:
            return _too_few(self.column, stats, self.min_rows)
        shares: dict[str, float] = {}
        problems = []
        keys = [(str(k), band, f"share_{i}") for i, (k, band) in enumerate(self.bands.items())]
        if self.other is not None:
            keys.append(("other", self.other, "share_other"))
        if not v.get("windows"):
            return Verdict(True, {}, f"{self.column}: too few rows to judge category shares.")
        for name, band, key in keys:
            low, high = v.get(f"{key}_low"), v.get(f"{key}_high")
            if low is None or high is None:
                continue
            low, high = float(low), float(high)
            worst = low if low < band[0] - 1e-12 else high
            shares[name] = worst
            if low < band[0] - 1e-12 or high > band[1] + 1e-12:
                seen = (
                    f"{worst * 100:.0f} %"
                    if self.window is None or low == high
                    else (f"{low * 100:.0f} % to {high * 100:.0f} %")
                )
                problems.append(
                    f"{name} {seen} (expected {band[0] * 100:.0f} % to {band[1] * 100:.0f} %)"
                )
        if not shares:
            return Verdict(True, {}, f"No values of {self.column} to compute shares.")
        if problems:
            return Verdict(False, shares, f"{self.column}: {'; '.join(problems)}.")
        return Verdict(
            True, shares, f"All category shares of {self.column} are inside their bands."
        )
