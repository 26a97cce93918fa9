"""Timeliness: data that is recent, arrives soon after it happened, and in the expected volume.

Example:
    >>> import polars as pl
    >>> from datetime import UTC, datetime
    >>> from mlwarden.quality import Suite, validate
    >>> frame = pl.DataFrame({"timestamp": [datetime(2024, 3, 1, 7, 40, tzinfo=UTC)]})
    >>> suite = Suite([Freshness(column="timestamp", max_age="1h")])
    >>> now = datetime(2024, 3, 1, 10, 0, tzinfo=UTC)
    >>> print(validate(frame, suite, now=now).results[0].message)
    The newest timestamp is 2024-03-01 07:40 UTC, 2 h 20 min before the validation; at most 1 h
    allowed.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime
from typing import TYPE_CHECKING, Any

import polars as pl

from mlwarden.quality._durations import format_duration, parse_duration
from mlwarden.quality._relax import (
    check_margin,
    duration_like,
    pairs,
    widen_interval,
    widen_scalar,
)
from mlwarden.quality.base import Check, Dimension, RowCheck, Stats, Verdict, share

if TYPE_CHECKING:
    from collections.abc import Sequence

    from mlwarden.quality.base import Context


def _seconds(expr: pl.Expr) -> pl.Expr:
    return expr.dt.total_microseconds() / 1e6


@dataclass(frozen=True, kw_only=True)
class Freshness(Check, key="freshness"):
    """The newest value of ``column`` is at most ``max_age`` old at validation time.

    Example:
        >>> Freshness(column="timestamp", max_age="15m").threshold()
        900.0
    """

    dimension = Dimension.TIMELINESS
    windowed = False
    example = {"column": "time", "max_age": "3650d"}
    limit_parameters = {"max_age": "s"}
    column: str
    max_age: str | float

    def __post_init__(self) -> None:
        super().__post_init__()
        parse_duration(self.max_age, "max_age", "the check 'freshness'")

    def reads(self) -> tuple[str, ...]:
        return (self.column,)

    def observe(self, ctx: Context) -> dict[str, pl.Expr]:
        return {"newest": pl.col(self.column).max()}

    def threshold(self) -> Any:
        return parse_duration(self.max_age, "max_age", "the check 'freshness'")

    def relaxed(self, observed: Sequence[Any], margin: float) -> Check | None:
        """``max_age`` raised to ``margin`` x the oldest age observed (``observed`` holds the
        age of the newest value, in seconds, per failing window; None, for data without any
        timestamp, is not an age and cannot be widened past); a duration string stays one.

        Example:
            >>> Freshness(column="timestamp", max_age="15m").relaxed([1500.0], 1.5).max_age
            '37m30s'
        """
        margin = check_margin(margin)
        seconds = widen_scalar(self.threshold(), observed, margin)
        if seconds is None:
            return None
        return replace(self, max_age=duration_like(seconds, self.max_age))

    def judge(self, stats: Stats) -> Verdict:
        newest = stats.values.get("newest")
        limit = self.threshold()
        if not isinstance(newest, datetime):
            return Verdict(False, None, f"{self.column} has no timestamp: no data is recent.")
        age = (stats.now - newest).total_seconds()
        when = newest.strftime("%Y-%m-%d %H:%M UTC")
        passed = age <= limit
        verdict = "at most" if not passed else "limit"
        message = (
            f"The newest timestamp is {when}, {format_duration(age)} before the validation; "
            f"{verdict} {format_duration(limit)}{' allowed' if not passed else ''}."
        )
        return Verdict(passed, age, message)


@dataclass(frozen=True, kw_only=True)
class ArrivalDelay(RowCheck, key="arrival_delay"):
    """Rows arrive at most ``max_delay`` after they happened: ``arrival - column``.

    ``column`` holds the event time, ``arrival`` the ingest time. At most ``max_share`` of the
    rows may arrive later.

    Example:
        >>> import polars as pl
        >>> from datetime import datetime
        >>> from mlwarden.quality import Suite, validate
        >>> event = [datetime(2024, 1, 1, 8, 0), datetime(2024, 1, 1, 8, 1)]
        >>> arrival = [datetime(2024, 1, 1, 8, 0, 5), datetime(2024, 1, 1, 9, 0)]
        >>> frame = pl.DataFrame({"event_time": event, "ingest_time": arrival})
        >>> check = ArrivalDelay(column="event_time", arrival="ingest_time", max_delay="5m")
        >>> validate(frame, Suite([check])).results[0].n_failed
        1
    """

    dimension = Dimension.TIMELINESS
    example = {"column": "time", "arrival": "time", "max_delay": "1m"}
    limit_parameters = {"max_delay": "s"}
    column: str
    arrival: str
    max_delay: str | float

    def __post_init__(self) -> None:
        super().__post_init__()
        parse_duration(self.max_delay, "max_delay", "the check 'arrival_delay'")

    def reads(self) -> tuple[str, ...]:
        return (self.column, self.arrival)

    def _delay(self) -> pl.Expr:
        return _seconds(pl.col(self.arrival) - pl.col(self.column))

    def fails(self, ctx: Context) -> pl.Expr:
        limit: float = self.threshold()
        return self._delay() > limit

    def checked(self, ctx: Context) -> pl.Expr:
        return self._delay().is_not_null()

    def observe(self, ctx: Context) -> dict[str, pl.Expr]:
        delay = self._delay()
        return {"p99": delay.quantile(0.99), "longest": delay.max()}

    def observed(self, stats: Stats) -> Any:
        return stats.values.get("longest")

    def threshold(self) -> Any:
        return parse_duration(self.max_delay, "max_delay", "the check 'arrival_delay'")

    def relaxed(self, observed: Sequence[Any], margin: float) -> Check | None:
        """``max_delay`` raised to ``margin`` x the longest delay observed (``observed`` holds
        it, in seconds, per failing window), so that no row of those windows arrives late; a
        duration string stays one, rounded up.

        Example:
            >>> check = ArrivalDelay(column="event_time", arrival="ingest_time", max_delay=300)
            >>> check.relaxed([420.0], 1.5).max_delay
            630.0
        """
        margin = check_margin(margin)
        seconds = widen_scalar(self.threshold(), observed, margin)
        if seconds is None:
            return None
        return replace(self, max_delay=duration_like(seconds, self.max_delay))

    def explain(self, stats: Stats, passed: bool) -> str:
        longest = stats.values.get("longest")
        p99 = stats.values.get("p99")
        if longest is None:
            return "No row has both an event time and an arrival time."
        head = (
            f"{stats.n_failed:,} of {stats.n_checked:,} rows "
            f"({share(stats.n_failed, stats.n_checked)}) "
            f"arrived more than {format_duration(self.threshold())} after they happened"
        )
        return (
            f"{head}; 99 % within {format_duration(float(p99 or 0.0))}, the latest after "
            f"{format_duration(longest)}."
        )


@dataclass(frozen=True, kw_only=True)
class Volume(Check, key="volume"):
    """Each period of ``every`` (``"1h"``) holds ``min_rows`` to ``max_rows`` rows.

    Periods are counted on ``column`` (default: the suite's timestamp). The first and last
    period of a batch are usually cut by its edges, so they are held only to ``max_rows``;
    a period inside the batch with no row at all counts as 0 rows.

    Example:
        >>> import polars as pl
        >>> from datetime import datetime, timedelta
        >>> from mlwarden.quality import Suite, validate
        >>> t = [datetime(2024, 1, 1) + timedelta(minutes=m) for m in range(0, 240, 2)]
        >>> t = [x for x in t if not (60 <= (x - t[0]).total_seconds() / 60 < 120)]
        >>> suite = Suite([Volume(every="1h", min_rows=20)], timestamp="timestamp")
        >>> validate(pl.DataFrame({"timestamp": t}), suite).results[0].observed
        [0, 30]
    """

    dimension = Dimension.TIMELINESS
    example = {"column": "time", "every": "1d", "min_rows": 1}
    limit_parameters = {"min_rows": "", "max_rows": ""}
    column: str | None = None
    every: str
    min_rows: int | None = None
    max_rows: int | None = None

    def __post_init__(self) -> None:
        super().__post_init__()
        parse_duration(self.every, "every", "the check 'volume'")

    def reads(self) -> tuple[str, ...]:
        return (self.column,) if self.column is not None else ()

    def _column(self, ctx: Context) -> pl.Expr:
        column = self.column or ctx.timestamp
        if column is None:
            from mlwarden.exceptions import ParameterError

            raise ParameterError(
                "The check 'volume' needs a 'column', or the suite's timestamp.",
                parameter="column",
            )
        return pl.col(column)

    def observe(self, ctx: Context) -> dict[str, pl.Expr]:
        period = self._column(ctx).drop_nulls().dt.truncate(self.every)
        counts = period.sort().rle().struct.field("len")
        inner = counts.slice(1, pl.max_horizontal(counts.len() - 2, 0))
        return {
            "inner_min": inner.min(),
            "all_max": counts.max(),
            "present": counts.len(),
            "first": period.min(),
            "last": period.max(),
        }

    def threshold(self) -> Any:
        return [self.min_rows, self.max_rows]

    def relaxed(self, observed: Sequence[Any], margin: float) -> Check | None:
        """The crossed side(s) of ``[min_rows, max_rows]`` moved out as ``Range.relaxed`` does,
        to whole rows (``min_rows`` not below 0); ``observed`` holds ``[fewest, most]`` rows per
        period of each failing window (fewest is None when too few periods to judge it).

        Example:
            >>> Volume(every="1h", min_rows=20).relaxed([[12, 30]], 1.5).min_rows
            3
        """
        margin = check_margin(margin)
        seen = pairs(observed)
        if seen is None:
            return None
        widened = widen_interval(
            self.min_rows, self.max_rows, *seen, margin, integer=True, floor=0.0
        )
        if widened is None:
            return None
        low, high = widened
        return replace(
            self,
            min_rows=None if low is None else int(low),
            max_rows=None if high is None else int(high),
        )

    def judge(self, stats: Stats) -> Verdict:
        v = stats.values
        seconds = parse_duration(self.every, "every", "the check 'volume'")
        present = int(v.get("present") or 0)
        if present == 0:
            passed = self.min_rows is None or self.min_rows <= 0
            return Verdict(passed, [0, 0], f"No rows with a timestamp in any {self.every} period.")
        span = (v["last"] - v["first"]).total_seconds() if v.get("first") is not None else 0.0
        expected = round(span / seconds) + 1
        empty = max(0, expected - present)
        lowest = 0 if empty else v.get("inner_min")
        highest = int(v.get("all_max") or 0)
        low_bad = self.min_rows is not None and lowest is not None and lowest < self.min_rows
        high_bad = self.max_rows is not None and highest > self.max_rows
        low_limit = self.min_rows if self.min_rows is not None else 0
        high_limit = self.max_rows if self.max_rows is not None else "inf"
        limits = f"[{low_limit}, {high_limit}]"
        if lowest is None:
            seen = f"{highest:,} rows per {self.every} (too few periods to judge the minimum)"
        else:
            seen = f"{lowest:,} to {highest:,} rows per {self.every} period"
        gaps = f", {empty} period(s) without any row" if empty else ""
        return Verdict(
            not (low_bad or high_bad),
            [lowest, highest],
            f"{seen}{gaps}; expected {limits}.",
        )
