"""Learning a suite from reference data, with an honest estimate of its false-failure rate.

:func:`suggest_suite` looks at clean reference data (a model's training data, a quiet month of a
plant) and writes down what it saw as checks: schema, null tolerances, physical ranges with a
margin, allowed sets, keys, sampling cadence, and per sensor the longest flat line, the largest
spike score and the natural level shifts; per window, the bands of means, spreads and category
shares. A range never crosses zero for a quantity that never did (an RMS, a count), and stays in
[0, 1] for a model's probability score; numeric codes (a 0/1 label or flag, a classifier's
labels and predictions) get their set of values instead of a range, and no sensor checks. It
learns once on the first part of the reference and validates the held-out rest window by
window: the share of clean held-out windows that fail is the suite's estimated false-failure
rate, recorded in ``suite.meta``. The suite returned is then learned on all of the reference.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Final

import polars as pl
from scipy import stats as scipy_stats

from mlwarden.exceptions import InputError, ParameterError
from mlwarden.frames import to_polars
from mlwarden.quality.completeness import NotNull
from mlwarden.quality.consistency import Monotonic
from mlwarden.quality.distribution import CategoryShares, Mean, Std
from mlwarden.quality.schema import ColumnType, NoExtraColumns, RequiredColumns
from mlwarden.quality.sensor import Gap, Jitter, Spike, Stuck, UnitChange
from mlwarden.quality.suite import Suite
from mlwarden.quality.uniqueness import DuplicateTimestamps, Unique
from mlwarden.quality.validation import run
from mlwarden.quality.validity import AllowedValues, Range
from mlwarden.schema import (
    Kind,
    Role,
    infer_role,
    kind_of_dtype,
    parse_role,
    unknown_column_message,
)

if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence

    from mlwarden.quality.base import Check

RANGE_MARGIN: Final = 0.5
"""Ranges are widened by this share of the observed span on each side."""
MAX_CATEGORIES: Final = 50
"""Columns with more distinct values than this get no allowed set."""
CLOSED_SHARE: Final = 0.8
"""A set of values is closed when every value already turned up in this first share of the data."""
SHARE_BAND_MIN: Final = 0.01
"""Categories rarer than this share get no band of their own (they go to ``other``)."""
TARGET_WINDOW_FAILURES: Final = 0.01
"""Bands are set so that all band checks together fail at most this share of clean windows."""
NULL_TAIL: Final = 1e-4
"""Null tolerances fail a clean window with about this probability."""
OVERDISPERSION: Final = 5.0
"""Categories whose share varies more than this many times chance get no band."""
WINDOWS_WANTED: Final = 200
"""The default window cuts the learning part into about this many windows."""
MIN_WINDOWS: Final = 10
"""Fewer learning windows than this and no distribution bands are suggested."""
_NICE_WINDOWS: Final = ("1m", "5m", "15m", "30m", "1h", "2h", "6h", "12h", "1d", "7d")
_NICE_SECONDS: Final = (60, 300, 900, 1800, 3600, 7200, 21600, 43200, 86400, 604800)


def suggest_suite(
    reference: object,
    *,
    timestamp: str | None = None,
    entity: str | Sequence[str] | None = None,
    tag: str | None = None,
    id: str | Sequence[str] | None = None,
    sensors: Sequence[str] | None = None,
    roles: Mapping[str, str | Role] | None = None,
    window: str | int | None = None,
    holdout: float = 0.3,
    name: str | None = None,
) -> Suite:
    """Learn a quality suite from clean reference data and estimate its false-failure rate.

    Parameters:
        reference: clean data (DataFrame, Arrow table, or a Parquet/CSV path).
        timestamp: event-time column; enables sensor, gap, cadence and timeliness checks.
        entity: columns that identify one series (machine, line).
        tag: for long data (tag, timestamp, value): the column naming the sensor; sensor
            parameters are then learned per tag.
        id: key columns: checked for uniqueness and used to name failing rows.
        sensors: numeric columns that get sensor checks (default: every float feature column
            that holds measurements, not codes such as a 0/1 flag).
        roles: what columns are (``{"defect": "target", "p_defect": "score"}``), as a version's
            registration takes them; columns not named here get the role their name suggests.
            Targets and predictions with a few whole-number values get their set of values as
            the allowed set; a score seen within [0, 1] keeps its range inside [0, 1]; neither
            gets sensor checks.
        window: the window distribution bands are learned for, and the held-out evaluation
            uses (a duration such as ``"1h"``, or a number of rows); default about a
            two-hundredth of the reference.
        holdout: share of the reference (the most recent part) held out to estimate the
            false-failure rate; 0 learns without the estimate (when the caller measures it
            otherwise, as a version's registration does on every window of its reference).
        name: the suite's name.

    Returns:
        A :class:`Suite` learned on all of ``reference``; ``suite.meta`` records the held-out
        estimate (``false_failure_rate``: share of held-out windows where an error-severity
        check failed; ``warning_rate``: where any check failed).

    Example:
        >>> from mlwarden.datasets import production_line
        >>> suite = suggest_suite(production_line(20_000), timestamp="timestamp")
        >>> suite.meta["false_failure_rate"] <= 0.01
        True
    """
    frame = to_polars(reference)
    if frame.height < 20:
        raise InputError(
            f"suggest_suite needs at least 20 reference rows to learn from; got {frame.height}."
        )
    if not (isinstance(holdout, int | float) and 0.0 <= holdout < 0.9):
        raise ParameterError(
            f"The 'holdout' parameter of suggest_suite must be a share in [0, 0.9); got "
            f"{holdout!r}.",
            parameter="holdout",
        )
    entities = _names(entity)
    ids = _names(id)
    for column in [timestamp, tag, *entities, *ids, *(sensors or []), *(roles or {})]:
        if column is not None and column not in frame.columns:
            raise InputError(unknown_column_message(column, frame.columns), column=column)
    declared = {c: parse_role(r, column=c) for c, r in (roles or {}).items()}
    if tag is not None and tag not in entities:
        entities = (*entities, tag)
    if timestamp is not None:
        frame = frame.sort([*entities, timestamp] if tag is None else [timestamp], nulls_last=True)
    learner = _Learner(timestamp, entities, tag, ids, sensors, declared)
    if holdout == 0:
        spec = window if window is not None else _default_window(frame, timestamp)
        learned = learner.learn(frame, spec, name)
        learned_meta: dict[str, Any] = {
            "learned_from_rows": frame.height,
            "window": spec,
            "holdout_share": 0.0,
        }
        return replace(learned, meta=learned_meta)
    cut = round(frame.height * (1.0 - holdout))
    if timestamp is not None:
        order = frame.select(pl.col(timestamp).rank("ordinal") - 1).to_series()
        learn_part = frame.filter(order < cut)
        test_part = frame.filter(order >= cut)
    else:
        learn_part, test_part = frame.head(cut), frame.slice(cut)
    spec = window if window is not None else _default_window(learn_part, timestamp)
    learned = learner.learn(learn_part, spec, name)
    outcome = run(test_part, learned, window=spec, now=_latest(test_part, timestamp))
    scores = outcome.validation.window_scores
    windows = 0 if scores is None else scores.height
    errors = 0 if scores is None else int((~scores["passed"]).sum())
    anything = 0 if scores is None else int((scores["n_failed_checks"] > 0).sum())
    failing: dict[str, int] = {}
    if outcome.validation.windows is not None and windows:
        failed = outcome.validation.windows.filter(~pl.col("passed"))
        for row in (
            failed.group_by("check", "column").len().sort("len", descending=True).iter_rows()
        ):
            failing[f"{row[0]}({row[1]})" if row[1] else str(row[0])] = int(row[2])
    suite = learner.learn(frame, spec, name)
    meta = {
        "learned_from_rows": frame.height,
        "learned_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "window": spec,
        "holdout_share": holdout,
        "holdout_windows": windows,
        "false_failure_rate": errors / windows if windows else 0.0,
        "warning_rate": anything / windows if windows else 0.0,
        "holdout_failures": failing,
    }
    return Suite(
        checks=suite.checks,
        timestamp=suite.timestamp,
        entity=suite.entity,
        id=suite.id,
        name=name,
        meta=meta,
    )


def _names(value: str | Sequence[str] | None) -> tuple[str, ...]:
    if value is None:
        return ()
    return (value,) if isinstance(value, str) else tuple(value)


def _window_rows(frame: pl.DataFrame, timestamp: str | None, window: str | int) -> float:
    """Typical rows per window."""
    if isinstance(window, int):
        return float(min(window, frame.height))
    if timestamp is None:
        return float(frame.height)
    counts = frame.group_by(pl.col(timestamp).dt.truncate(window)).len()["len"]
    return float(counts.median() or frame.height)  # type: ignore[arg-type]


def _latest(frame: pl.DataFrame, timestamp: str | None) -> datetime | None:
    if timestamp is None:
        return None
    value = frame[timestamp].max()
    return value if isinstance(value, datetime) else None


def _default_window(frame: pl.DataFrame, timestamp: str | None) -> str | int:
    """About a two-hundredth of the reference: a round duration on time data, else rows."""
    if timestamp is not None and isinstance(frame.schema[timestamp], pl.Datetime):
        low, high = frame[timestamp].min(), frame[timestamp].max()
        if isinstance(low, datetime) and isinstance(high, datetime) and high > low:
            target = (high - low).total_seconds() / WINDOWS_WANTED
            for label, seconds in zip(_NICE_WINDOWS, _NICE_SECONDS, strict=True):
                if seconds >= target:
                    return label
            return _NICE_WINDOWS[-1]
    return max(100, frame.height // WINDOWS_WANTED)


class _Learner:
    """Writes down what clean data looks like, as checks."""

    def __init__(
        self,
        timestamp: str | None,
        entity: tuple[str, ...],
        tag: str | None,
        ids: tuple[str, ...],
        sensors: Sequence[str] | None,
        roles: dict[str, Role],
    ) -> None:
        self.timestamp = timestamp
        self.entity = entity
        self.tag = tag
        self.ids = ids
        self.sensors = sensors
        self.roles = roles

    def learn(self, frame: pl.DataFrame, window: str | int, name: str | None) -> Suite:
        columns = list(frame.columns)
        kinds = self._kinds(frame)
        values = self._values(frame, kinds)
        checks: list[Check] = [RequiredColumns(columns=tuple(columns))]
        checks += [ColumnType(column=c, kind=k.value) for c, k in kinds.items()]
        checks.append(NoExtraColumns(columns=tuple(columns)))
        checks += self._nulls(frame, _window_rows(frame, self.timestamp, window))
        checks += self._ranges(frame, values)
        checks += self._sets(frame, kinds)
        checks += self._keys(frame)
        if self.timestamp is not None:
            checks += self._time(frame)
            checks += self._sensors(frame, kinds, values)
        checks += self._bands(frame, kinds, values, window)
        return Suite(
            checks=tuple(checks),
            timestamp=self.timestamp,
            entity=self.entity,
            id=self.ids,
            name=name,
        )

    # -- per column ----------------------------------------------------------------------------

    def _role(self, column: str, kind: Kind) -> Role:
        return self.roles.get(column) or infer_role(column, kind)

    def _kinds(self, frame: pl.DataFrame) -> dict[str, Kind]:
        kinds = {}
        strings = [c for c in frame.columns if kind_of_dtype(frame.schema[c]) is None]
        distinct = frame.select([pl.col(c).n_unique() for c in strings]).row(0) if strings else ()
        n_distinct = dict(zip(strings, distinct, strict=True))
        for c in frame.columns:
            kind = kind_of_dtype(frame.schema[c])
            if kind is None:
                kind = Kind.CATEGORICAL if n_distinct[c] <= MAX_CATEGORIES else Kind.TEXT
            kinds[c] = kind
        return kinds

    def _nulls(self, frame: pl.DataFrame, window_rows: float) -> list[Check]:
        shares = frame.select(
            [
                (
                    pl.col(c).is_null()
                    | (pl.col(c).is_nan() if frame.schema[c].is_float() else False)
                )
                .mean()
                .alias(c)
                for c in frame.columns
            ]
        ).row(0, named=True)
        checks: list[Check] = []
        for c, observed in shares.items():
            p = float(observed or 0.0)
            if p == 0.0:
                checks.append(NotNull(column=c))
            elif p < 0.5:
                # Nulls per window scatter like a binomial count; the tolerance is its far upper
                # quantile for the learned window (larger batches scatter less, so it holds).
                n = max(1, int(window_rows))
                count = float(scipy_stats.binom.ppf(1.0 - NULL_TAIL, n, min(1.0, 1.5 * p)))
                tolerance = min(1.0, max(2.0 * p, (count + 1.0) / n))
                checks.append(NotNull(column=c, max_share=round(tolerance, 6)))
        return checks

    def _numeric(self, frame: pl.DataFrame, kinds: dict[str, Kind]) -> list[str]:
        skip = {self.timestamp, *self.ids}
        return [
            c
            for c, k in kinds.items()
            if k == Kind.NUMERIC and c not in skip and frame.schema[c] != pl.Boolean
        ]

    def _values(self, frame: pl.DataFrame, kinds: dict[str, Kind]) -> dict[str, _Values]:
        """Extremes of every numeric column, and the values of those that hold codes.

        A column holds codes when its values are a few whole numbers, none NaN: any two (a 0/1
        label or flag), or for a target or prediction up to :data:`MAX_CATEGORIES` that all
        turned up early (the set is closed, as for categories).
        """
        numeric = self._numeric(frame, kinds)
        if not numeric:
            return {}
        early = int(frame.height * CLOSED_SHARE)
        aggregates: list[pl.Expr] = []
        for c in numeric:
            dtype = frame.schema[c]
            x = _finite(c, dtype)
            if dtype.is_float():
                whole = (x == x.floor()).all() & ~pl.col(c).is_nan().any()
            else:
                whole = pl.lit(dtype.is_integer())
            aggregates += [
                x.min().alias(f"{c}__lo"),
                x.max().alias(f"{c}__hi"),
                x.drop_nulls().n_unique().alias(f"{c}__n"),
                x.head(early).drop_nulls().n_unique().alias(f"{c}__early"),
                whole.alias(f"{c}__whole"),
            ]
        row = frame.select(aggregates).row(0, named=True)
        coded = []
        for c in numeric:
            lo, hi, n = row[f"{c}__lo"], row[f"{c}__hi"], row[f"{c}__n"]
            if not (row[f"{c}__whole"] and lo is not None and math.isfinite(lo - hi)):
                continue
            model_output = self._role(c, kinds[c]) in (Role.TARGET, Role.PREDICTION)
            closed = row[f"{c}__early"] == n
            if n == 2 or (model_output and closed and 2 < n <= MAX_CATEGORIES):
                coded.append(c)
        codes = (
            frame.select(
                [
                    _finite(c, frame.schema[c]).drop_nulls().unique().sort().implode().alias(c)
                    for c in coded
                ]
            ).row(0, named=True)
            if coded
            else {}
        )
        return {
            c: _Values(
                low=None if row[f"{c}__lo"] is None else float(row[f"{c}__lo"]),
                high=None if row[f"{c}__hi"] is None else float(row[f"{c}__hi"]),
                codes=tuple(int(v) for v in codes[c]) if c in codes else None,
                score=self._role(c, kinds[c]) == Role.SCORE,
            )
            for c in numeric
        }

    def _ranges(self, frame: pl.DataFrame, values: dict[str, _Values]) -> list[Check]:
        checks: list[Check] = []
        for c, v in values.items():
            if v.codes is not None:
                checks.append(AllowedValues(column=c, values=v.codes))
            elif self.tag is not None:
                checks.append(self._range_by_tag(frame, c, score=v.score))
            elif v.low is not None and v.high is not None:
                low, high = _limits(v.low, v.high, score=v.score)
                checks.append(Range(column=c, min=low, max=high))
        return checks

    def _range_by_tag(self, frame: pl.DataFrame, column: str, *, score: bool) -> Check:
        assert self.tag is not None
        x = _finite(column, frame.schema[column])
        table = frame.group_by(pl.col(self.tag).cast(pl.String)).agg(
            x.min().alias("lo"), x.max().alias("hi")
        )
        groups = {}
        for tag, lo, hi in table.iter_rows():
            if lo is None or hi is None:
                continue
            low, high = _limits(float(lo), float(hi), score=score)
            groups[str(tag)] = {"min": low, "max": high}
        return Range(column=column, by=self.tag, groups=dict(sorted(groups.items())) or None)

    def _sets(self, frame: pl.DataFrame, kinds: dict[str, Kind]) -> list[Check]:
        checks: list[Check] = []
        candidates = [
            c
            for c, k in kinds.items()
            if k in (Kind.CATEGORICAL, Kind.BOOLEAN) and c not in self.ids
        ]
        if not candidates:
            return checks
        # A set is closed when no new value turned up in the last fifth of the data; ids and
        # batch numbers keep turning up new ones and get no allowed set.
        early = frame.head(int(frame.height * CLOSED_SHARE))
        uniques = frame.select(
            [pl.col(c).cast(pl.String).unique().sort().implode().alias(c) for c in candidates]
        ).row(0, named=True)
        seen_early = early.select(
            [pl.col(c).cast(pl.String).n_unique().alias(c) for c in candidates]
        ).row(0, named=True)
        for c in candidates:
            if self._role(c, kinds[c]) == Role.ID or seen_early[c] < len(uniques[c]):
                continue
            values = [v for v in uniques[c] if v is not None]
            if 0 < len(values) <= MAX_CATEGORIES:
                dtype = frame.schema[c]
                if dtype == pl.Boolean:
                    continue
                checks.append(AllowedValues(column=c, values=tuple(values)))
        return checks

    def _keys(self, frame: pl.DataFrame) -> list[Check]:
        checks: list[Check] = []
        if self.ids:
            checks.append(Unique(columns=self.ids))
        if self.timestamp is not None:
            checks.append(DuplicateTimestamps())
        return checks

    # -- time and sensors --------------------------------------------------------------------

    def _time(self, frame: pl.DataFrame) -> list[Check]:
        assert self.timestamp is not None
        checks: list[Check] = [Monotonic()]
        dt = _intervals(frame, self.timestamp, self.entity)
        summary = dt.select(
            pl.col("dt").median().alias("cadence"),
            pl.col("dt").max().alias("longest"),
            (pl.col("dt") / pl.col("dt").median() - 1).abs().quantile(0.999).alias("spread"),
        ).row(0, named=True)
        cadence = summary["cadence"]
        if cadence is None or cadence <= 0:
            return checks
        longest = float(summary["longest"])
        checks.append(Gap(max_interval=_round_seconds(max(3.0 * cadence, 1.5 * longest))))
        spread = float(summary["spread"] or 0.0)
        tolerance = round(min(2.0, max(0.25, 1.5 * spread)), 3)
        checks.append(Jitter(cadence=_round_seconds(cadence), tolerance=tolerance, max_share=0.05))
        return checks

    def _sensor_columns(
        self, frame: pl.DataFrame, kinds: dict[str, Kind], values: dict[str, _Values]
    ) -> list[str]:
        if self.sensors is not None:
            return list(self.sensors)
        # Model outputs (scores, predictions), labels and codes (a 0/1 flag) are not sensor
        # signals: a flag holds still for hours and every change of it is a "spike".
        return [
            c
            for c, v in values.items()
            if frame.schema[c].is_float()
            and v.codes is None
            and self._role(c, kinds[c]) == Role.FEATURE
        ]

    def _sensors(
        self, frame: pl.DataFrame, kinds: dict[str, Kind], values: dict[str, _Values]
    ) -> list[Check]:
        """Flat lines, spikes and level shifts per sensor, measured with the checks themselves."""
        sensors = self._sensor_columns(frame, kinds, values)
        if not sensors:
            return []
        probes: list[Check] = []
        for c in sensors:
            probes += [
                Stuck(column=c, max_samples=2**62),
                Spike(column=c, max_z=math.inf),
                UnitChange(column=c, min_shift=math.inf),
            ]
        probe = Suite(checks=tuple(probes), timestamp=self.timestamp, entity=self.entity)
        prepared = run(frame, probe, sample_size=0).frame
        aggregates: list[pl.Expr] = []
        for k, c in enumerate(sensors):
            stuck, spike, unit = 3 * k, 3 * k + 1, 3 * k + 2
            x = _finite(c, frame.schema[c])
            step = pl.when(pl.col("__same")).then(x - x.shift(1))
            aggregates += [
                pl.col(f"__c{stuck}_duration").max().alias(f"{c}__flat"),
                pl.col(f"__c{stuck}_count").max().alias(f"{c}__flat_n"),
                pl.col(f"__c{spike}_z").max().alias(f"{c}__z"),
                (pl.col(f"__c{unit}_after") - pl.col(f"__c{unit}_before"))
                .abs()
                .max()
                .alias(f"{c}__shift"),
                (pl.col(f"__c{unit}_before").abs().median()).alias(f"{c}__level"),
                ((step - step.median()).abs().median() * 1.4826).alias(f"{c}__scale"),
            ]
        if self.tag is not None:
            table = prepared.group_by(pl.col(self.tag).cast(pl.String).alias("__tag")).agg(
                aggregates
            )
            rows = {str(r["__tag"]): r for r in table.iter_rows(named=True)}
        else:
            rows = {"": prepared.select(aggregates).row(0, named=True)}
        median = _intervals(frame, self.timestamp or "", self.entity)["dt"].median()
        cadence = float(median) if isinstance(median, int | float) else 1.0
        checks: list[Check] = []
        for c in sensors:
            stuck_p: dict[str, dict[str, Any]] = {}
            spike_p: dict[str, dict[str, Any]] = {}
            unit_p: dict[str, dict[str, Any]] = {}
            for group, r in rows.items():
                flat = float(r[f"{c}__flat"] or 0.0)
                stuck_p[group] = {"max_duration": _round_seconds(max(3.0 * flat, 20.0 * cadence))}
                scale = r[f"{c}__scale"]
                z = r[f"{c}__z"]
                if scale is not None and z is not None and math.isfinite(z):
                    spike_p[group] = {
                        "scale": _round(max(float(scale), 1e-9)),
                        "max_z": _round(max(8.0, 1.5 * float(z))),
                    }
                shift = r[f"{c}__shift"]
                level = r[f"{c}__level"]
                floor = 0.2 * float(level) if level is not None else 0.0
                natural = 1.5 * float(shift) if shift is not None and math.isfinite(shift) else 0.0
                unit_p[group] = {"min_shift": _round(max(floor, natural, 1e-9))}
                if scale is not None:
                    unit_p[group]["noise"] = _round(max(float(scale), 1e-9))
            if self.tag is None:
                checks.append(Stuck(column=c, **stuck_p[""]))
                if "" in spike_p:
                    checks.append(Spike(column=c, **spike_p[""]))
                checks.append(UnitChange(column=c, **unit_p[""]))
            else:
                # Tags not seen in the reference have no learned limits: these checks skip them.
                checks.append(_grouped(Stuck, c, self.tag, stuck_p, {}))
                checks.append(_grouped(Spike, c, self.tag, spike_p, {}))
                checks.append(_grouped(UnitChange, c, self.tag, unit_p, {}))
        return checks

    # -- distribution bands ------------------------------------------------------------------

    def _bands(
        self,
        frame: pl.DataFrame,
        kinds: dict[str, Kind],
        values: dict[str, _Values],
        window: str | int,
    ) -> list[Check]:
        if self.tag is not None:
            return []  # bands of mixed tags mean little; per-tag ranges and sensor checks cover it
        numeric = [c for c, v in values.items() if frame.schema[c].is_float() and v.codes is None]
        categorical = [
            c
            for c, k in kinds.items()
            if k == Kind.CATEGORICAL and c not in self.ids and c not in self.entity
        ]
        if isinstance(window, str):
            if self.timestamp is None:
                return []
            key = pl.col(self.timestamp).dt.truncate(window)
        else:
            key = pl.int_range(pl.len()) // window
        aggregates: list[pl.Expr] = [pl.len().alias("__n")]
        for c in numeric:
            x = _finite(c, frame.schema[c])
            aggregates += [x.mean().alias(f"{c}__mean"), x.std().alias(f"{c}__std")]
        shares: dict[str, list[str]] = {}
        for c in categorical:
            counts = frame[c].cast(pl.String).drop_nulls().value_counts(normalize=True)
            common = [str(v) for v, p in counts.iter_rows() if p >= SHARE_BAND_MIN]
            if not common or len(common) > 20:
                continue
            shares[c] = sorted(common)
            x = pl.col(c).cast(pl.String)
            n = x.is_not_null().sum()
            aggregates += [((x == v).sum() / n).alias(f"{c}__share_{v}") for v in shares[c]]
        per_window = frame.with_columns(key.alias("__w")).group_by("__w").agg(aggregates)
        median = per_window["__n"].median()
        if not isinstance(median, int | float):
            return []
        typical = float(median)
        per_window = per_window.filter(pl.col("__n") >= 0.5 * typical)
        n_windows = per_window.height
        if n_windows < MIN_WINDOWS:
            return []
        n_bands = 2 * len(numeric) + sum(len(v) for v in shares.values())
        if n_bands == 0:
            return []
        tail = TARGET_WINDOW_FAILURES / n_bands
        quantile = float(scipy_stats.t.ppf(1.0 - tail / 2.0, df=n_windows - 1))
        factor = quantile * math.sqrt(1.0 + 1.0 / n_windows)
        min_rows = max(1, int(0.5 * typical))
        checks: list[Check] = []
        for c in numeric:
            for stat, cls in (("mean", Mean), ("std", Std)):
                low, high = _band(per_window[f"{c}__{stat}"], factor)
                if low is None or high is None:
                    continue
                if stat == "std":
                    low = max(0.0, low)
                else:
                    low, high = values[c].within(low, high)
                checks.append(
                    cls(
                        column=c,
                        min=_round(low),
                        max=_round(high),
                        window=window,
                        min_rows=min_rows,
                        severity="warning",
                    )
                )
        for c, common in shares.items():
            bands: dict[Any, tuple[float, ...]] = {}
            for v in common:
                observed = per_window[f"{c}__share_{v}"]
                if _regime(observed, typical):
                    continue
                low, high = _band(observed, factor)
                if low is None or high is None:
                    continue
                bands[v] = (round(max(0.0, low), 4), round(min(1.0, high), 4))
            if bands:
                checks.append(
                    CategoryShares(
                        column=c, bands=bands, window=window, min_rows=min_rows, severity="warning"
                    )
                )
        return checks


@dataclass(frozen=True, slots=True)
class _Values:
    """What the reference shows of one numeric column."""

    low: float | None
    high: float | None
    codes: tuple[int, ...] | None
    """The column's values when it holds codes (a 0/1 label) rather than measurements."""
    score: bool
    """The column is a model's score (a probability when it stays in [0, 1])."""

    def within(self, low: float, high: float) -> tuple[float, float]:
        """``[low, high]`` cut to the bounds the reference implies (see :func:`_bounds`)."""
        if self.low is None or self.high is None:
            return low, high
        floor, ceiling = _bounds(self.low, self.high, score=self.score)
        return (
            low if floor is None else max(floor, low),
            high if ceiling is None else min(ceiling, high),
        )


def _bounds(low: float, high: float, *, score: bool) -> tuple[float | None, float | None]:
    """Limits the data implies by itself for values seen in ``[low, high]``.

    A score seen within [0, 1] is a probability: [0, 1]. A quantity never negative (an RMS, a
    count, a flow) gets no negative lower limit, and one never positive no positive upper limit;
    a column that only read 0 counts as never negative.
    """
    if score and low >= 0.0 and high <= 1.0:
        return 0.0, 1.0
    if low >= 0.0:
        return 0.0, None
    if high <= 0.0:
        return None, 0.0
    return None, None


def _limits(low: float, high: float, *, score: bool = False) -> tuple[float, float]:
    """The range learned from values seen in ``[low, high]``: widened by the margin, then cut
    to the bounds the data implies (see :func:`_bounds`).

    Example:
        >>> _limits(0.02, 6.1)  # an RMS vibration: never negative
        (0.0, 9.14)
        >>> _limits(0.01, 0.93, score=True)  # a probability
        (0.0, 1.0)
        >>> _limits(-4.0, 6.0)
        (-9.0, 11.0)
    """
    wide_low, wide_high = _widen(low, high)
    floor, ceiling = _bounds(low, high, score=score)
    return (
        wide_low if floor is None else max(floor, wide_low),
        wide_high if ceiling is None else min(ceiling, wide_high),
    )


def _grouped(
    cls: type[Check],
    column: str,
    tag: str,
    groups: dict[str, dict[str, Any]],
    default: dict[str, Any],
) -> Check:
    return cls(column=column, by=tag, groups=dict(sorted(groups.items())) or None, **default)  # type: ignore[call-arg]


def _finite(column: str, dtype: pl.DataType) -> pl.Expr:
    x = pl.col(column)
    if dtype.is_float():
        x = pl.when(x.is_nan()).then(None).otherwise(x)
    return x


def _intervals(frame: pl.DataFrame, timestamp: str, entity: tuple[str, ...]) -> pl.DataFrame:
    ordered = frame.select([*entity, timestamp]).sort([*entity, timestamp], nulls_last=True)
    same = pl.int_range(pl.len()) > 0
    for e in entity:
        same = same & (pl.col(e) == pl.col(e).shift(1)).fill_null(False)
    dt = (pl.col(timestamp) - pl.col(timestamp).shift(1)).dt.total_microseconds() / 1e6
    return ordered.select(pl.when(same).then(dt).alias("dt")).drop_nulls()


def _widen(low: float, high: float) -> tuple[float, float]:
    span = high - low
    # a constant reference shows no scale: half its level, and at least one unit (a 0/1 flag
    # that stayed 0 may still read 1)
    pad = RANGE_MARGIN * span if span > 0 else max(abs(low) * RANGE_MARGIN, 1.0)
    return _round_past(low - pad, low, pad), _round_past(high + pad, high, pad)


def _round_past(limit: float, extreme: float, pad: float) -> float:
    """``limit`` to four significant digits, never rounded into the data past ``extreme``.

    Rounding a level far above its spread can land inside the data (101,326 Pa varying by 1 Pa
    rounds to 101,330); such a limit keeps the digits of its margin ``pad`` instead.
    """
    rounded = _round(limit)
    if (rounded <= extreme) if limit <= extreme else (rounded >= extreme):
        return rounded
    if pad > 0 and math.isfinite(pad):
        rounded = round(limit, -math.floor(math.log10(pad)))
        if (rounded <= extreme) if limit <= extreme else (rounded >= extreme):
            return rounded
    return extreme


def _band(values: pl.Series, factor: float) -> tuple[float | None, float | None]:
    clean = values.drop_nulls().drop_nans() if values.dtype.is_float() else values.drop_nulls()
    if clean.len() < MIN_WINDOWS:
        return None, None
    mean = float(clean.mean())  # type: ignore[arg-type]
    sd = float(clean.std() or 0.0)  # type: ignore[arg-type]
    lo, hi = float(clean.min()), float(clean.max())  # type: ignore[arg-type]
    # Windows next to each other are alike, so a few weeks show less of the process's slow
    # wander than the t bound assumes: the band also reaches a quarter of the seen span past it.
    pad = 0.25 * (hi - lo)
    return min(mean - factor * sd, lo - pad), max(mean + factor * sd, hi + pad)


def _regime(shares: pl.Series, rows: float) -> bool:
    """True when a category's share moves far more between windows than chance allows.

    Independent rows give a window-to-window spread of about sqrt(p (1 - p) / n); a category
    that comes in long runs (a recipe, a shift) varies many times more, and a band learned from
    a few weeks of it would fail on the next ordinary run.
    """
    clean = shares.drop_nulls()
    if clean.len() < MIN_WINDOWS:
        return True
    p = float(clean.mean())  # type: ignore[arg-type]
    chance = math.sqrt(max(p * (1.0 - p), 1e-12) / max(rows, 1.0))
    return float(clean.std() or 0.0) > OVERDISPERSION * chance  # type: ignore[arg-type]


def _round(x: float) -> float:
    """Four significant digits: readable in the YAML file, and never tighter than learned."""
    if x == 0 or not math.isfinite(x):
        return x
    digits = 4 - math.floor(math.log10(abs(x)))
    return round(x, digits)


def _round_seconds(seconds: float) -> str:
    """A duration string a person would write, rounded up."""
    if seconds < 60:
        return f"{math.ceil(seconds)}s"
    if seconds < 3600:
        return f"{math.ceil(seconds / 60)}m"
    if seconds < 86400:
        return f"{math.ceil(seconds / 3600)}h"
    return f"{math.ceil(seconds / 86400)}d"
