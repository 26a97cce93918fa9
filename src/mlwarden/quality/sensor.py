"""Sensor checks: faults of time series readings, per series (the suite's entity or tag).

Each check reads the rows in series order (sorted by entity, then timestamp, once for the whole
suite) and flags the readings a plant engineer would distrust:

* ``stuck`` — a flat-lined signal: unchanged (within ``tolerance``) for longer than a limit;
* ``spike`` — a single reading far from both neighbours (robust z-score of the deviation from
  the neighbours' mean, in units of the robust spread of first differences);
* ``rate_of_change`` — a change faster than the process can physically move;
* ``gap`` — a hole in the readings longer than expected from the sampling cadence;
* ``jitter`` — irregular sampling: intervals far from the cadence;
* ``unit_change`` — a level shift by a known unit conversion (°C → °F, bar → psi, ×1000, ...).

Wide data (one column per sensor) uses one check per column; long data (tag, timestamp, value,
as plant historians export it) uses one check on the value column with the tag in the suite's
entity and per-tag parameters in ``groups`` — one pass covers thousands of tags.

Example:
    >>> import polars as pl
    >>> from datetime import datetime, timedelta
    >>> from mlwarden.quality import Suite, validate
    >>> t = [datetime(2024, 1, 1) + timedelta(seconds=10 * i) for i in range(8)]
    >>> values = [20.1, 20.3, 20.2, 35.0, 20.4, 20.3, 20.5, 20.4]
    >>> suite = Suite([Spike(column="temperature_c", max_z=6.0)], timestamp="timestamp")
    >>> v = validate(pl.DataFrame({"timestamp": t, "temperature_c": values}), suite)
    >>> v.results[0].n_failed, v.results[0].sample[0]["temperature_c"]
    (1, 35.0)
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from datetime import datetime
from typing import TYPE_CHECKING, Any, Final

import polars as pl

from mlwarden.exceptions import ParameterError
from mlwarden.quality._durations import format_duration, parse_duration
from mlwarden.quality._relax import check_margin, duration_like, widen_scalar
from mlwarden.quality.base import (
    Dimension,
    Grouped,
    RowCheck,
    Sparse,
    Stats,
    Verdict,
    number,
    share,
)
from mlwarden.quality.completeness import missing

if TYPE_CHECKING:
    from collections.abc import Sequence

    from mlwarden.quality.base import Check, Context

MAD_TO_SD: Final = 1.4826
NOISE_MULTIPLE: Final = 5.0
"""A unit change shifts the level by more than this many robust SDs of first differences."""


def _value(column: str, ctx: Context) -> pl.Expr:
    """The reading, with NaN as null."""
    x = pl.col(column)
    if ctx.schema[column].is_float():
        x = pl.when(x.is_nan()).then(None).otherwise(x)
    return x


def _when(moment: Any) -> str:
    return moment.strftime("%Y-%m-%d %H:%M:%S") if isinstance(moment, datetime) else str(moment)


@dataclass(frozen=True, kw_only=True)
class Stuck(RowCheck, Grouped, key="stuck"):
    """A flat-lined signal: readings unchanged (within ``tolerance``) for longer than a limit.

    The limit is ``max_duration`` (``"30m"``) or ``max_samples`` consecutive readings; every
    reading of a run longer than the limit fails. ``tolerance`` is the largest step between
    consecutive readings still counted as "unchanged" (0: exactly equal).

    Example:
        >>> import polars as pl
        >>> from datetime import datetime, timedelta
        >>> from mlwarden.quality import Suite, validate
        >>> t = [datetime(2024, 1, 1) + timedelta(minutes=i) for i in range(60)]
        >>> x = [20.0 + 0.1 * (i % 7) for i in range(20)] + [21.3] * 40
        >>> suite = Suite([Stuck(column="temperature_c", max_duration="15m")], timestamp="t")
        >>> print(validate(pl.DataFrame({"t": t, "temperature_c": x}), suite).results[0].message)
        temperature_c did not change for 39 min (limit 15 min) from 2024-01-01 00:20:00 to
        2024-01-01 00:59:00; 40 readings affected.
    """

    dimension = Dimension.VALIDITY
    ordered = True
    example = {"column": "numeric", "max_samples": 5}
    limit_parameters = {"max_duration": "s", "max_samples": ""}
    column: str
    max_duration: str | float | None = None
    max_samples: int | None = None
    tolerance: float = 0.0

    def __post_init__(self) -> None:
        super().__post_init__()
        if (self.max_duration is None) == (self.max_samples is None) and not self.groups:
            raise ParameterError(
                "The check 'stuck' needs exactly one limit: 'max_duration' (such as '30m') or "
                "'max_samples' (a number of readings).",
                parameter="max_duration",
            )
        if self.max_duration is not None:
            parse_duration(self.max_duration, "max_duration", "the check 'stuck'")

    def reads(self) -> tuple[str, ...]:
        return (self.column,) if self.by is None else (self.column, self.by)

    def group_value(self, name: str, value: Any) -> Any:
        if name == "max_duration" and value is not None:
            return parse_duration(value, "max_duration", "the check 'stuck'")
        return value

    def helpers(self, ctx: Context) -> list[dict[str, pl.Expr] | Sparse]:
        x = _value(self.column, ctx)
        tolerance = ctx.param("tolerance", self.tolerance)
        changed = (
            ~ctx.same | x.is_null() | x.shift(1).is_null() | ((x - x.shift(1)).abs() > tolerance)
        )
        chg = pl.col(ctx.name("chg"))
        last = chg.shift(-1).fill_null(True)
        position = pl.int_range(pl.len())
        return [
            {ctx.name("chg"): changed},
            {
                ctx.name("start"): pl.when(chg).then(ctx.ts).forward_fill(),
                ctx.name("end"): pl.when(last).then(ctx.ts).backward_fill(),
                ctx.name("first"): pl.when(chg).then(position).forward_fill(),
                ctx.name("last"): pl.when(last).then(position).backward_fill(),
            },
            {
                ctx.name("duration"): (
                    pl.col(ctx.name("end")) - pl.col(ctx.name("start"))
                ).dt.total_microseconds()
                / 1e6,
                ctx.name("count"): pl.col(ctx.name("last")) - pl.col(ctx.name("first")) + 1,
            },
        ]

    def fails(self, ctx: Context) -> pl.Expr:
        duration = pl.col(ctx.name("duration"))
        count = pl.col(ctx.name("count"))
        too_long = pl.lit(False)
        if self.max_duration is not None or "max_duration" in ctx.grouped:
            limit = ctx.param("max_duration", self.group_value("max_duration", self.max_duration))
            too_long = too_long | (duration > limit).fill_null(False)
        if self.max_samples is not None or "max_samples" in ctx.grouped:
            limit = ctx.param("max_samples", self.max_samples)
            too_long = too_long | (count > limit).fill_null(False)
        return too_long & _value(self.column, ctx).is_not_null() & (count > 1)

    def observe(self, ctx: Context) -> dict[str, pl.Expr]:
        duration = pl.col(ctx.name("duration"))
        count = pl.col(ctx.name("count"))
        present = _value(self.column, ctx).is_not_null()
        duration = pl.when(present).then(duration)  # max and arg_max skip the nulls
        longest = duration.arg_max()
        return {
            "longest": duration.max(),
            "longest_count": pl.when(present).then(count).max(),
            "from": pl.col(ctx.name("start")).get(longest),
            "to": pl.col(ctx.name("end")).get(longest),
        }

    def observed(self, stats: Stats) -> Any:
        if self.max_duration is None and self.max_samples is not None:
            return stats.values.get("longest_count")
        return stats.values.get("longest")

    def threshold(self) -> Any:
        if self.max_duration is not None:
            return self.group_value("max_duration", self.max_duration)
        return self.max_samples

    def relaxed(self, observed: Sequence[Any], margin: float) -> Check | None:
        """The limit raised to ``margin`` x the longest flat run observed.

        ``observed`` holds the longest flat run of each failing window: in seconds with
        ``max_duration`` (the new limit keeps the check's form: a duration string stays one,
        rounded up to at most two units), in readings with ``max_samples``. None when ``groups``
        set a limit of their own: the observed run is the longest over every group, so which
        group's limit it broke is unknown.

        Example:
            >>> check = Stuck(column="temperature_c", max_duration="15m")
            >>> check.relaxed([2340.0], 1.5).max_duration
            '58m30s'
        """
        margin = check_margin(margin)
        if self.sets_per_group("max_duration", "max_samples"):
            return None
        if self.max_duration is not None:
            seconds = widen_scalar(self.threshold(), observed, margin)
            if seconds is None:
                return None
            return replace(self, max_duration=duration_like(seconds, self.max_duration))
        samples = widen_scalar(self.max_samples, observed, margin, integer=True)
        return None if samples is None else replace(self, max_samples=int(samples))

    def explain(self, stats: Stats, passed: bool) -> str:
        v = stats.values
        if v.get("longest") is None:
            return f"{self.column} has no readings."
        if self.max_duration is not None:
            limit = self.limit_text(format_duration(self.threshold()))
            seen = format_duration(float(v["longest"]))
        else:
            limit = self.limit_text(f"{self.max_samples} readings")
            seen = f"{v['longest_count']} readings"
        if stats.n_failed == 0:
            return f"{self.column} never stayed flat longer than {limit} (longest {seen})."
        return (
            f"{self.column} did not change for {seen} (limit {limit}) from {_when(v['from'])} "
            f"to {_when(v['to'])}; {stats.n_failed:,} readings affected."
        )


@dataclass(frozen=True, kw_only=True)
class Spike(RowCheck, Grouped, key="spike"):
    """A single reading far from both neighbours: a spike, not a step.

    The deviation of a reading from the mean of its two neighbours, minus half the neighbours'
    own difference (so a clean step scores 0), in units of ``scale``: the robust standard
    deviation of first differences (1.4826 x their median absolute deviation). ``scale`` is
    learned from the reference by :func:`~mlwarden.quality.suggest_suite`; when omitted it is
    taken from the batch itself, per series. Readings scoring above ``max_z`` fail.

    Example:
        >>> Spike(column="pressure_bar", max_z=8.0, scale=0.4).threshold()
        8.0
    """

    dimension = Dimension.VALIDITY
    ordered = True
    example = {"column": "numeric", "max_z": 12.0}
    limit_parameters = {"max_z": ""}
    repairable = True
    column: str
    max_z: float = 8.0
    scale: float | None = None

    def reads(self) -> tuple[str, ...]:
        return (self.column,) if self.by is None else (self.column, self.by)

    def helpers(self, ctx: Context) -> list[dict[str, pl.Expr] | Sparse]:
        x = _value(self.column, ctx)
        previous, following = x.shift(1), x.shift(-1)
        inside = ctx.same & ctx.same.shift(-1).fill_null(False)
        deviation = (x - (previous + following) / 2).abs() - (following - previous).abs() / 2
        if self.scale is not None or "scale" in ctx.grouped:
            scale = ctx.param("scale", self.scale)
        else:
            step = pl.when(ctx.same).then(x - x.shift(1))
            mad = (step - step.median()).abs().median()
            if ctx.entity:
                mad = mad.over(list(ctx.entity))
            scale = MAD_TO_SD * mad
        floor = pl.max_horizontal(scale, pl.lit(1e-12))
        return [{ctx.name("z"): pl.when(inside).then(deviation / floor)}]

    def fails(self, ctx: Context) -> pl.Expr:
        return pl.col(ctx.name("z")) > ctx.param("max_z", self.max_z)

    def repair(self, ctx: Context, limit: int) -> pl.Expr:
        """The mean of the two neighbouring readings."""
        x = _value(self.column, ctx)
        return (x.shift(1) + x.shift(-1)) / 2

    def checked(self, ctx: Context) -> pl.Expr:
        return pl.col(ctx.name("z")).is_not_null()

    def observe(self, ctx: Context) -> dict[str, pl.Expr]:
        z = pl.col(ctx.name("z"))
        return {"highest": z.max(), "at": ctx.ts.get(z.arg_max())}

    def observed(self, stats: Stats) -> Any:
        return stats.values.get("highest")

    def threshold(self) -> Any:
        return self.max_z

    def relaxed(self, observed: Sequence[Any], margin: float) -> Check | None:
        """``max_z`` raised to ``margin`` x the highest spike score observed (``observed`` holds
        it per failing window); ``scale`` stays, so the scores keep their meaning. None when
        ``groups`` set ``max_z`` per group (which group's spike it was is unknown).

        Example:
            >>> Spike(column="pressure_bar", max_z=8.0, scale=0.4).relaxed([11.2], 1.5).max_z
            16.8
        """
        margin = check_margin(margin)
        if self.sets_per_group("max_z"):
            return None
        max_z = widen_scalar(self.max_z, observed, margin)
        return None if max_z is None else replace(self, max_z=max_z)

    def explain(self, stats: Stats, passed: bool) -> str:
        highest = stats.values.get("highest")
        if highest is None:
            return f"{self.column} has too few consecutive readings to look for spikes."
        if stats.n_failed == 0:
            return (
                f"No spikes in {self.column} (largest score {number(highest)}, limit "
                f"{self.limit_text(number(self.max_z))})."
            )
        return (
            f"{stats.n_failed:,} spike(s) in {self.column}: readings that jump away from both "
            f"neighbours (score up to {number(highest)} at {_when(stats.values.get('at'))}, "
            f"limit {self.limit_text(number(self.max_z))})."
        )


@dataclass(frozen=True, kw_only=True)
class RateOfChange(RowCheck, Grouped, key="rate_of_change"):
    """The signal changes by at most ``max_rate`` units per second between readings.

    Example:
        >>> RateOfChange(column="temperature_c", max_rate=0.5).threshold()
        0.5
    """

    dimension = Dimension.VALIDITY
    ordered = True
    example = {"column": "numeric", "max_rate": 1e6}
    limit_parameters = {"max_rate": ""}
    column: str
    max_rate: float

    def reads(self) -> tuple[str, ...]:
        return (self.column,) if self.by is None else (self.column, self.by)

    def helpers(self, ctx: Context) -> dict[str, pl.Expr]:
        x = _value(self.column, ctx)
        rate = ((x - x.shift(1)).abs() / ctx.dt).fill_nan(None)
        return {ctx.name("rate"): pl.when(ctx.same).then(rate)}

    def fails(self, ctx: Context) -> pl.Expr:
        return pl.col(ctx.name("rate")) > ctx.param("max_rate", self.max_rate)

    def checked(self, ctx: Context) -> pl.Expr:
        return pl.col(ctx.name("rate")).is_not_null()

    def observe(self, ctx: Context) -> dict[str, pl.Expr]:
        rate = pl.col(ctx.name("rate"))
        return {"fastest": rate.filter(rate.is_finite()).max(), "at": ctx.ts.get(rate.arg_max())}

    def observed(self, stats: Stats) -> Any:
        return stats.values.get("fastest")

    def threshold(self) -> Any:
        return self.max_rate

    def relaxed(self, observed: Sequence[Any], margin: float) -> Check | None:
        """``max_rate`` raised to ``margin`` x the fastest change observed (``observed`` holds
        it, in units per second, per failing window). None when ``groups`` set ``max_rate`` per
        group (which group changed that fast is unknown).

        Example:
            >>> RateOfChange(column="temperature_c", max_rate=0.5).relaxed([0.8], 1.5).max_rate
            1.2
        """
        margin = check_margin(margin)
        if self.sets_per_group("max_rate"):
            return None
        rate = widen_scalar(self.max_rate, observed, margin)
        return None if rate is None else replace(self, max_rate=rate)

    def explain(self, stats: Stats, passed: bool) -> str:
        fastest = stats.values.get("fastest")
        if stats.n_failed == 0:
            return (
                f"{self.column} changed at most {number(fastest)}/s (limit "
                f"{number(self.max_rate)}/s)."
            )
        return (
            f"{stats.n_failed:,} readings of {self.column} changed faster than "
            f"{number(self.max_rate)}/s (up to {number(fastest)}/s)."
        )


@dataclass(frozen=True, kw_only=True)
class Gap(RowCheck, Grouped, key="gap"):
    """No hole longer than ``max_interval`` between consecutive readings of a series.

    With ``column``, only readings where that column holds a value count (a sensor's dropouts
    in wide data); without, every row does. The reading after a hole fails.

    Example:
        >>> import polars as pl
        >>> from datetime import datetime, timedelta
        >>> from mlwarden.quality import Suite, validate
        >>> t = [datetime(2024, 1, 1) + timedelta(seconds=s) for s in (0, 10, 20, 300, 310)]
        >>> suite = Suite([Gap(max_interval="1m")], timestamp="t")
        >>> print(validate(pl.DataFrame({"t": t}), suite).results[0].message)
        A hole of 4 min 40 s in the readings (limit 1 min) before 2024-01-01 00:05:00; 1 hole(s)
        in all.
    """

    dimension = Dimension.COMPLETENESS
    ordered = True
    example = {"max_interval": "3650d"}
    limit_parameters = {"max_interval": "s"}
    column: str | None = None
    max_interval: str | float

    def __post_init__(self) -> None:
        super().__post_init__()
        parse_duration(self.max_interval, "max_interval", "the check 'gap'")

    def reads(self) -> tuple[str, ...]:
        own = (self.column,) if self.column is not None else ()
        return (*own, self.by) if self.by is not None else own

    def group_value(self, name: str, value: Any) -> Any:
        if name == "max_interval" and value is not None:
            return parse_duration(value, "max_interval", "the check 'gap'")
        return value

    def helpers(self, ctx: Context) -> dict[str, pl.Expr]:
        if self.column is None:
            return {ctx.name("interval"): ctx.dt}
        present = ~missing(self.column, ctx.schema[self.column])
        seen = pl.when(present).then(ctx.ts)
        previous = seen.shift(1).forward_fill()
        if ctx.entity:
            previous = seen.shift(1).forward_fill().over(list(ctx.entity))
        interval = (ctx.ts - previous).dt.total_microseconds() / 1e6
        return {ctx.name("interval"): pl.when(present).then(interval)}

    def fails(self, ctx: Context) -> pl.Expr:
        limit = ctx.param("max_interval", self.group_value("max_interval", self.max_interval))
        return pl.col(ctx.name("interval")) > limit

    def checked(self, ctx: Context) -> pl.Expr:
        return pl.col(ctx.name("interval")).is_not_null()

    def observe(self, ctx: Context) -> dict[str, pl.Expr]:
        interval = pl.col(ctx.name("interval"))
        return {"longest": interval.max(), "at": ctx.ts.get(interval.arg_max())}

    def observed(self, stats: Stats) -> Any:
        return stats.values.get("longest")

    def threshold(self) -> Any:
        return self.group_value("max_interval", self.max_interval)

    def relaxed(self, observed: Sequence[Any], margin: float) -> Check | None:
        """``max_interval`` raised to ``margin`` x the longest hole observed (``observed`` holds
        it, in seconds, per failing window); a duration string stays one, rounded up. None when
        ``groups`` set ``max_interval`` per group (which group had the hole is unknown).

        Example:
            >>> Gap(max_interval="1m").relaxed([280.0], 1.5).max_interval
            '7m'
        """
        margin = check_margin(margin)
        if self.sets_per_group("max_interval"):
            return None
        seconds = widen_scalar(self.threshold(), observed, margin)
        if seconds is None:
            return None
        return replace(self, max_interval=duration_like(seconds, self.max_interval))

    def explain(self, stats: Stats, passed: bool) -> str:
        longest = stats.values.get("longest")
        what = f"readings of {self.column}" if self.column else "the readings"
        if longest is None:
            return f"Too few {what} to look for holes."
        limit = self.limit_text(format_duration(self.threshold()))
        if stats.n_failed == 0:
            return f"No hole in {what} longer than {limit} (longest {format_duration(longest)})."
        return (
            f"A hole of {format_duration(longest)} in {what} (limit {limit}) before "
            f"{_when(stats.values.get('at'))}; {stats.n_failed:,} hole(s) in all."
        )


@dataclass(frozen=True, kw_only=True)
class Jitter(RowCheck, Grouped, key="jitter"):
    """Regular sampling: intervals within ``tolerance`` (a share) of the ``cadence``.

    At most ``max_share`` of the intervals may be off-cadence. Holes far longer than the
    cadence are the ``gap`` check's business and are not counted here.

    Example:
        >>> Jitter(cadence="10s", tolerance=0.5).threshold()
        0.05
    """

    dimension = Dimension.TIMELINESS
    ordered = True
    example = {"cadence": "1s", "tolerance": 1e9, "max_share": 1.0}
    limit_parameters = {"max_share": ""}
    cadence: str | float
    tolerance: float = 0.5
    max_share: float = 0.05
    gap_factor: float = 3.0

    def __post_init__(self) -> None:
        super().__post_init__()
        parse_duration(self.cadence, "cadence", "the check 'jitter'")

    def reads(self) -> tuple[str, ...]:
        return (self.by,) if self.by is not None else ()

    def group_value(self, name: str, value: Any) -> Any:
        if name == "cadence" and value is not None:
            return parse_duration(value, "cadence", "the check 'jitter'")
        return value

    def _cadence(self, ctx: Context) -> pl.Expr:
        return ctx.param("cadence", self.group_value("cadence", self.cadence))

    def fails(self, ctx: Context) -> pl.Expr:
        cadence = self._cadence(ctx)
        tolerance = ctx.param("tolerance", self.tolerance)
        off = (ctx.dt - cadence).abs() > tolerance * cadence
        return off & (ctx.dt <= self.gap_factor * cadence)

    def checked(self, ctx: Context) -> pl.Expr:
        return ctx.dt.is_not_null() & (ctx.dt <= self.gap_factor * self._cadence(ctx))

    def observe(self, ctx: Context) -> dict[str, pl.Expr]:
        dt = ctx.dt  # the statistics skip the null at each series' start
        return {"median": dt.median(), "p01": dt.quantile(0.01), "p99": dt.quantile(0.99)}

    def threshold(self) -> Any:
        return self.max_share

    def relaxed(self, observed: Sequence[Any], margin: float) -> Check | None:
        """``max_share`` raised to ``margin`` x the worst share of off-cadence intervals observed
        (``observed`` holds that share per failing window), at most 1; ``cadence`` and
        ``tolerance`` stay. The share is one for every group, so groups are no obstacle.

        Example:
            >>> Jitter(cadence="10s").relaxed([0.08], 1.5).max_share
            0.12
        """
        return self.relaxed_share(observed, margin)

    def explain(self, stats: Stats, passed: bool) -> str:
        cadence = format_duration(self.group_value("cadence", self.cadence))
        v = stats.values
        spread = (
            f"; intervals {format_duration(v['p01'])} to {format_duration(v['p99'])} (1-99 %)"
            if v.get("p01") is not None
            else ""
        )
        head = (
            f"{share(stats.n_failed, stats.n_checked)} of the sampling intervals are more than "
            f"{self.tolerance:.0%} off the {cadence} cadence"
        )
        limit = f"at most {self.max_share:.0%} allowed"
        return f"{head}{spread}; {limit}."


# A unit conversion: (factor, offset, what it looks like). Each has its inverse in the list.
_FORWARD: Final = (
    (1.8, 32.0, "°C → °F"),
    (1.0, 273.15, "°C → K"),
    (10.0, 0.0, "×10 (e.g. cm → mm, bar → MPa÷10)"),
    (100.0, 0.0, "×100 (e.g. bar → kPa, fraction → %)"),
    (1000.0, 0.0, "×1000 (e.g. kPa → Pa, m → mm, kg → g)"),
    (14.5038, 0.0, "bar → psi"),
    (25.4, 0.0, "inch → mm"),
    (60.0, 0.0, "×60 (per second → per minute)"),
    (3.6, 0.0, "m/s → km/h"),
)


def _conversions() -> list[tuple[float, float, str]]:
    out = []
    for factor, offset, label in _FORWARD:
        out.append((factor, offset, label))
        inverse = label.split(" (")[0]
        if "→" in inverse:
            a, b = inverse.split(" → ")
            inverse_label = f"{b} → {a}"
        else:
            inverse_label = inverse.replace("×", "÷")
        out.append((1.0 / factor, -offset / factor, inverse_label))
    return out


CONVERSIONS: Final = tuple(_conversions())
_LOG_FACTORS: Final = pl.Series(
    "log_factor", sorted(math.log(a) for a, b, _ in CONVERSIONS if b == 0), dtype=pl.Float64
)


@dataclass(frozen=True, kw_only=True)
class UnitChange(RowCheck, Grouped, key="unit_change"):
    """A level shift by a known unit conversion: from some reading on, ``x -> a*x + b``.

    The median of the ``window`` readings before each reading is compared with the median of
    the ``window`` readings from it on; a shift larger than ``min_shift`` (default: 20 % of the
    level) and than five times ``noise`` (the robust SD of first differences, learned from the
    reference or else taken from the batch per series) that matches a conversion in
    :data:`CONVERSIONS` within ``tolerance`` (relative) is a unit change. Readings after an odd
    number of changes in their series fail (a change and its reversal cancel).

    It has no wider limit to offer (:meth:`relaxed` gives None): its observed value is the
    number of changes, which does not say how far ``min_shift`` would have to move.

    Example:
        >>> import polars as pl
        >>> from datetime import datetime, timedelta
        >>> from mlwarden.quality import Suite, validate
        >>> t = [datetime(2024, 1, 1) + timedelta(seconds=10 * i) for i in range(120)]
        >>> x = [230.0 + (i % 5) * 0.3 for i in range(120)]
        >>> x = x[:80] + [v * 1.8 + 32 for v in x[80:]]
        >>> suite = Suite([UnitChange(column="temperature_c")], timestamp="t")
        >>> v = validate(pl.DataFrame({"t": t, "temperature_c": x}), suite).results[0]
        >>> v.n_failed, v.message.split(";")[0]
        (40, 'temperature_c looks converted °C → °F from 2024-01-01 00:13:20 (level 230.6 → 447.1)')
    """

    dimension = Dimension.VALIDITY
    ordered = True
    example = {"column": "numeric"}
    column: str
    window: int = 20
    min_shift: float | None = None
    noise: float | None = None
    tolerance: float = 0.03

    def __post_init__(self) -> None:
        super().__post_init__()
        if not isinstance(self.window, int) or self.window < 3:
            raise ParameterError(
                f"The 'window' parameter of the check 'unit_change' must be an int >= 3; got "
                f"{self.window!r}.",
                parameter="window",
            )

    def reads(self) -> tuple[str, ...]:
        return (self.column,) if self.by is None else (self.column, self.by)

    def helpers(self, ctx: Context) -> list[dict[str, pl.Expr] | Sparse]:
        w = self.window
        x = _value(self.column, ctx)
        position = pl.int_range(pl.len())
        following_same = ctx.same.shift(-1).fill_null(False)
        n = ctx.name
        # One rolling median serves both sides: the window ending just before a reading, and
        # the window starting at it.
        median = x.rolling_median(w, min_samples=w // 2)
        stage1 = {
            n("begin"): pl.when(~ctx.same).then(position).forward_fill(),
            n("end"): pl.when(~following_same).then(position).backward_fill(),
            n("median"): median,
        }
        stage1b = {
            n("before"): pl.col(n("median")).shift(1),
            n("after"): pl.col(n("median")).shift(-(w - 1)),
        }
        before, after = pl.col(n("before")), pl.col(n("after"))
        scale = pl.max_horizontal(after.abs(), before.abs(), pl.lit(1e-9))
        # Pure factors: the distance of log(after / before) to the nearest log factor (about the
        # relative misfit), found by one sorted search instead of one expression per factor.
        ratio = after / before
        q = pl.when((ratio > 0) & (before.abs() > 0)).then(ratio.log())
        factors = pl.lit(_LOG_FACTORS)
        at = factors.search_sorted(q).cast(pl.Int64)
        top = _LOG_FACTORS.len() - 1
        nearest = pl.min_horizontal(
            (q - factors.gather((at - 1).clip(0, top))).abs(),
            (q - factors.gather(at.clip(0, top))).abs(),
        )
        affine = [(after - (a * before + b)).abs() / scale for a, b, _ in CONVERSIONS if b != 0]
        misfit = [nearest, *affine]
        shift = (after - before).abs()
        if self.min_shift is not None or "min_shift" in ctx.grouped:
            big = shift > ctx.param("min_shift", self.min_shift)
        else:
            big = shift > 0.2 * before.abs()
        room = (position - pl.col(n("begin")) >= w) & (pl.col(n("end")) - position >= w - 1)
        # A unit change moves the level far beyond the reading-to-reading noise; near zero,
        # noise alone can look like a ratio.
        if self.noise is not None or "noise" in ctx.grouped:
            noise = ctx.param("noise", self.noise)
        else:
            step = pl.when(ctx.same).then(x - x.shift(1))
            noise = MAD_TO_SD * (step - step.median()).abs().median()
            if ctx.entity:
                noise = noise.over(list(ctx.entity))
        big = big & (shift > NOISE_MULTIPLE * noise)
        stage2 = {n("big"): (big & room).fill_null(False)}
        # Large shifts are rare: they alone are matched against the conversions.
        stage2b = Sparse(pl.col(n("big")), {n("misfit"): pl.min_horizontal(misfit)})
        tolerance = ctx.param("tolerance", self.tolerance)
        stage3 = {
            n("candidate"): (pl.col(n("big")) & (pl.col(n("misfit")) < tolerance)).fill_null(False)
        }
        # The change is the first reading of a run of candidates that sits at the new level.
        cand = pl.col(n("candidate"))
        starts = cand & ~cand.shift(1).fill_null(False)
        best = (cand & ((x - after).abs() < (x - before).abs())).cast(pl.Int64)
        stage4 = {n("best"): best, n("starts"): starts}
        best_col = pl.col(n("best"))
        count_best = best_col.cum_sum()
        base_best = pl.when(pl.col(n("starts"))).then(count_best - best_col).forward_fill()
        stage5 = {n("change"): ((best_col == 1) & (count_best - base_best == 1)).fill_null(False)}
        change = pl.col(n("change")).cast(pl.Int64)
        count = change.cum_sum()
        base = pl.when(~ctx.same).then(count - change).forward_fill()
        stage6 = {n("odd"): ((count - base) % 2) == 1}
        return [stage1, stage1b, stage2, stage2b, stage3, stage4, stage5, stage6]

    def fails(self, ctx: Context) -> pl.Expr:
        return pl.col(ctx.name("odd")) & _value(self.column, ctx).is_not_null()

    def observe(self, ctx: Context) -> dict[str, pl.Expr]:
        n = ctx.name
        change = pl.col(n("change"))
        before, after = pl.col(n("before")), pl.col(n("after"))
        scale = pl.max_horizontal(after.abs(), before.abs(), pl.lit(1e-9))
        return {
            "changes": change.sum(),
            **{
                f"misfit{k}": ((after - (a * before + b)).abs() / scale).filter(change).first()
                for k, (a, b, _) in enumerate(CONVERSIONS)
            },
            "at": ctx.ts.filter(change).first(),
            "before": pl.col(n("before")).filter(change).first(),
            "after": pl.col(n("after")).filter(change).first(),
        }

    def observed(self, stats: Stats) -> Any:
        return int(stats.values.get("changes") or 0)

    def threshold(self) -> Any:
        return self.tolerance

    def judge(self, stats: Stats) -> Verdict:
        changes = int(stats.values.get("changes") or 0)
        if changes == 0:
            return Verdict(True, 0, f"No unit change in {self.column}.")
        v = stats.values
        misfits = [v.get(f"misfit{k}") for k in range(len(CONVERSIONS))]
        known = [(m, k) for k, m in enumerate(misfits) if m is not None]
        label = CONVERSIONS[min(known)[1]][2] if known else "a unit"
        message = (
            f"{self.column} looks converted {label} from {_when(v.get('at'))} (level "
            f"{number(v.get('before'))} → {number(v.get('after'))}); {stats.n_failed:,} readings "
            f"affected, {changes} change(s) in all."
        )
        return Verdict(False, changes, message)
