"""Like with like: a column compared with the reference *within the regime the window is in*.

In a plant a window often differs from the whole reference by design: one four-hour window runs
one recipe, whose melt temperature sits 50 °C above another's; the night shift idles; ambient
humidity follows the day. Compared with the whole reference, every such window "drifts", so a
bound that keeps quiet on it is too wide to catch anything — a unit change included.

:class:`Regimes` finds, on the reference, the categorical column (a recipe, a product, a line)
or the phase of the day or week that explains a numeric column best, and keeps the reference's
profile of that column per regime value. A window is then compared with the *mixture* of those
profiles in the window's own proportions: a window of 70 % PP-H100 and 30 % PA6-GF30 is judged
against 70 % of PP-H100's reference and 30 % of PA6-GF30's. Rows of a value the reference never
saw are judged against the whole reference.

A column is conditioned on the candidate with the largest share of its variance explained
(η², the correlation ratio) when that share is at least :data:`MIN_EXPLAINED`. For the phase of
the day, the effect must also hold across the reference's days (an F-test of the phase means of
each day at :data:`PHASE_LEVEL`), so that the slow wander of a week does not pass for a cycle.

Example:
    >>> import numpy as np, polars as pl
    >>> from datetime import datetime, timedelta, UTC
    >>> rng = np.random.default_rng(0)
    >>> recipe = np.repeat(rng.choice(["A", "B"], 40), 100)          # long runs of one recipe
    >>> temp = np.where(recipe == "A", 200.0, 250.0) + rng.normal(0, 2, recipe.size)
    >>> frame = pl.DataFrame({"recipe": recipe, "temp": temp})
    >>> regimes = Regimes.detect(frame)
    >>> regimes.given
    {'temp': 'recipe'}
    >>> round(regimes.explained["temp"], 3)
    0.994
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any, Final, Literal

import numpy as np
import polars as pl
from scipy import stats

from mlwarden.profiling import ColumnProfile, Profile, ProfileConfig, profile
from mlwarden.schema import Kind, Role, infer_schema

if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence

    import numpy.typing as npt

PHASE: Final = "__phase"
"""The name under which the phase of a row (hour of day, day of week) is compared."""
MIN_EXPLAINED: Final = 0.2
"""A regime must explain at least this share of a column's variance to condition it."""
PHASE_LEVEL: Final = 0.001
"""The F-test level a daily or weekly cycle must reach across the reference's days."""
MAX_VALUES: Final = 30
"""Categorical columns with more values than this are not regimes."""
MIN_ROWS: Final = 30
"""Regime values with fewer reference rows are judged against the whole reference."""
MIN_WINDOWS: Final = 3
"""Regime values seen in fewer windows of the reference (one or two batches of a rare recipe)
are judged against the whole reference too: a few batches do not show a value's spread."""
_WEEKDAYS: Final = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")


@dataclass(frozen=True)
class Phase:
    """Where a row falls in a cycle: a bucket of ``width`` hours of the day, or the weekday."""

    unit: Literal["hour", "weekday"]
    width: int = 1

    def label(self, timestamp: str) -> pl.Expr:
        """The phase of each row's ``timestamp`` as text (``"08-12h"``, ``"Mon"``)."""
        t = pl.col(timestamp)
        if self.unit == "weekday":
            return pl.lit(pl.Series(_WEEKDAYS)).get(t.dt.weekday() - 1).alias(PHASE)
        start = (t.dt.hour() // self.width) * self.width
        return pl.format(
            "{}-{}h",
            start.cast(pl.String).str.zfill(2),
            (start + self.width).cast(pl.String).str.zfill(2),
        ).alias(PHASE)

    def describe(self) -> str:
        if self.unit == "weekday":
            return "the day of the week"
        return f"the time of day ({self.width} h phases)"

    @classmethod
    def for_window(cls, window_seconds: float, span_seconds: float) -> Phase | None:
        """The cycle a window of this length can see within a reference of this span: hours of
        the day for windows under a day (two days of reference at least), weekdays for daily
        windows (three weeks of reference at least), else none."""
        day = 86_400.0
        if window_seconds < day and span_seconds >= 2 * day:
            width = max(1, math.ceil(window_seconds / 3600.0))
            while 24 % width:
                width += 1
            return cls("hour", width)
        if day <= window_seconds < 7 * day and span_seconds >= 21 * day:
            return cls("weekday", 1)
        return None


@dataclass
class Regimes:
    """Which numeric columns are compared within which regime, and the reference's profiles.

    Attributes:
        given: column → the regime it is compared within (a column name, or :data:`PHASE`).
        explained: column → the share of its variance that regime explains (η²).
        profiles: regime → value → the reference's profile of the columns given it.
        phase: the cycle behind :data:`PHASE`, when a column is given it.
        timestamp: the column the phase is read from.
        chunk_weights: per chunk of the reference (in order), the phase counts of its rows (to
            calibrate thresholds on the reference's own chunks).
    """

    given: dict[str, str] = field(default_factory=dict)
    explained: dict[str, float] = field(default_factory=dict)
    profiles: dict[str, dict[str, Profile]] = field(default_factory=dict)
    phase: Phase | None = None
    timestamp: str | None = None
    chunk_weights: list[dict[str, int]] = field(default_factory=list)

    def __bool__(self) -> bool:
        return bool(self.given)

    # -- fitting ------------------------------------------------------------------------------

    @classmethod
    def detect(
        cls,
        frame: pl.DataFrame,
        *,
        kinds: Mapping[str, Kind] | None = None,
        roles: Mapping[str, Role] | None = None,
        timestamp: str | None = None,
        window_seconds: float | None = None,
        config: ProfileConfig | None = None,
        chunk_bounds: Sequence[int] | None = None,
    ) -> Regimes:
        """Find the regime of each numeric column of ``frame`` (see the module docstring) and
        profile the reference per regime value."""
        if kinds is None or roles is None:
            schema = infer_schema(frame)
            kinds = {c.name: c.kind for c in schema} | dict(kinds or {})
            roles = {c.name: c.role for c in schema} | dict(roles or {})
        numeric = [
            c
            for c in frame.columns
            if kinds.get(c) is Kind.NUMERIC
            and roles.get(c) in (Role.FEATURE, Role.SCORE, Role.PREDICTION)
            and frame.schema[c].is_numeric()
            and frame.schema[c] != pl.Boolean
        ]
        if not numeric or frame.height < 2 * MIN_ROWS:
            return cls()
        candidates = [
            c
            for c in frame.columns
            if kinds.get(c) in (Kind.CATEGORICAL, Kind.BOOLEAN)
            and roles.get(c) in (Role.FEATURE, Role.SEGMENT)
        ]
        phase = None
        if timestamp is not None and frame.schema.get(timestamp, pl.Null).is_temporal():
            low, high = frame[timestamp].min(), frame[timestamp].max()
            span = (high - low).total_seconds() if low is not None and high is not None else 0.0  # type: ignore[operator, union-attr]
            if window_seconds is not None:
                phase = Phase.for_window(window_seconds, span)
        work = frame
        if phase is not None:
            assert timestamp is not None
            work = frame.with_columns(phase.label(timestamp))
            candidates.append(PHASE)
        explained: dict[str, dict[str, float]] = {}
        for candidate in candidates:  # a handful of regime columns, each one group_by
            distinct = work[candidate].n_unique()
            if not 2 <= distinct <= MAX_VALUES:
                continue
            explained[candidate] = _eta_squared(work, candidate, numeric)
        if phase is not None and PHASE in explained:
            assert timestamp is not None
            cycles = cycling(work, timestamp, numeric, phase)
            explained[PHASE] = {c: v for c, v in explained[PHASE].items() if c in cycles}
        given: dict[str, str] = {}
        shares: dict[str, float] = {}
        for column in numeric:
            best = max(((explained[r].get(column, 0.0), r) for r in explained), default=(0.0, ""))
            if best[0] >= MIN_EXPLAINED:
                given[column], shares[column] = best[1], round(best[0], 6)
        if phase is not None and PHASE in explained:
            # categories whose shares follow the clock (a shift roster, night-time idling)
            assert timestamp is not None
            categorical = [
                c
                for c in candidates
                if c != PHASE and kinds.get(c) is Kind.CATEGORICAL and c not in given
            ]
            for column, share in _phase_categories(work, timestamp, categorical, phase).items():
                if share >= MIN_EXPLAINED:
                    given[column], shares[column] = PHASE, round(share, 6)
        if not given:
            return cls()
        profiles: dict[str, dict[str, Profile]] = {}
        spread = _window_key(timestamp, window_seconds, work)
        for regime in sorted(set(given.values())):  # a few regimes
            columns = [c for c, r in given.items() if r == regime]
            keyed = work.select(
                [*columns, pl.col(regime).cast(pl.String).alias("__regime"), spread.alias("__w")]
            )
            per_value: dict[str, Profile] = {}
            for (value,), part in keyed.partition_by("__regime", as_dict=True).items():
                if value is None or part.height < MIN_ROWS or part["__w"].n_unique() < MIN_WINDOWS:
                    continue
                part = part.drop("__w")
                per_value[str(value)] = profile(
                    part.drop("__regime"),
                    kinds={c: kinds[c] for c in columns},
                    config=config,
                    workers=1,
                )
            profiles[regime] = per_value
        chunk_weights: list[dict[str, int]] = []
        if phase is not None and PHASE in given.values() and chunk_bounds is not None:
            labels = work[PHASE]
            for lo, hi in itertools.pairwise(chunk_bounds):
                counts = labels.slice(lo, hi - lo).value_counts()
                chunk_weights.append(
                    {str(v): int(n) for v, n in counts.iter_rows() if v is not None}
                )
        return cls(
            given=given,
            explained=shares,
            profiles=profiles,
            phase=phase if PHASE in given.values() else None,
            timestamp=timestamp if PHASE in given.values() else None,
            chunk_weights=chunk_weights,
        )

    def fill_from(self, wider: Regimes) -> None:
        """Borrow, for each regime value this reference has too few rows of, the profile a
        wider reference has (a segment's rare recipe judged by the recipe's profile on every
        line, not against the segment's other recipes)."""
        for column, regime in wider.given.items():
            if self.given.get(column, regime) != regime or column not in self.given:
                continue
            own = self.profiles.setdefault(regime, {})
            for value, part in wider.profiles.get(regime, {}).items():  # a few values
                if value not in own and column in part.columns:
                    own[value] = part

    # -- comparing ----------------------------------------------------------------------------

    @property
    def columns(self) -> list[str]:
        """The regime columns a current batch needs (with :data:`PHASE`, its timestamp)."""
        return sorted({r for r in self.given.values() if r != PHASE})

    def prepare(self, frame: pl.DataFrame) -> pl.DataFrame:
        """``frame`` with its phase column added (when a column is compared by phase)."""
        if self.phase is None or self.timestamp is None or self.timestamp not in frame.columns:
            return frame
        if not frame.schema[self.timestamp].is_temporal():
            return frame
        return frame.with_columns(self.phase.label(self.timestamp))

    def weights(self, current: Profile, regime: str) -> dict[str, float] | None:
        """The current batch's share of each regime value (None: it lacks the regime)."""
        if regime not in current.columns:
            return None
        items = current[regime].items
        if items is None or items.total == 0:
            return None
        values = items.values.cast(pl.String).to_list()
        return {
            str(v): float(n) / items.total
            for v, n in zip(values, items.counts.tolist(), strict=True)
        }

    def mixture(
        self, column: str, whole: ColumnProfile, weights: Mapping[str, float]
    ) -> ColumnProfile:
        """The reference's ``column`` mixed in the proportions ``weights`` of its regime
        values; the share of values without a profile of their own takes the whole column."""
        if whole.kind is not Kind.NUMERIC:
            return self._mixed_items(column, whole, weights)
        regime = self.given[column]
        per_value = self.profiles.get(regime, {})
        parts: list[tuple[float, Any]] = []
        known = 0.0
        for value, share in weights.items():  # a few regime values
            part = per_value.get(value)
            if part is None or share <= 0 or column not in part.columns:
                continue
            sketch = part[column].quantiles
            if sketch is None or sketch.n == 0:
                continue
            parts.append((share, sketch))
            known += share
        assert whole.quantiles is not None
        if known < 1.0 - 1e-9:
            parts.append((1.0 - known, whole.quantiles))
        # read through the sketch interface Kolmogorov-Smirnov uses (levels, cdf, n)
        return replace(whole, quantiles=MixtureSketch(parts))  # type: ignore[arg-type]

    def _mixed_items(
        self, column: str, whole: ColumnProfile, weights: Mapping[str, float]
    ) -> ColumnProfile:
        """A categorical column's shares mixed like :meth:`mixture` mixes distributions."""
        from mlwarden.profiling.items import FrequentItems

        per_value = self.profiles.get(self.given[column], {})
        assert whole.items is not None
        total = max(whole.items.total, 1)
        mixed: dict[str, float] = {}
        known = 0.0
        for value, share in weights.items():  # a few phases
            part = per_value.get(value)
            items = None if part is None or column not in part.columns else part[column].items
            if items is None or share <= 0 or items.total == 0:
                continue
            for v, n in zip(
                items.values.cast(pl.String).to_list(), items.counts.tolist(), strict=True
            ):
                mixed[v] = mixed.get(v, 0.0) + share * n / items.total
            known += share
        rest = 1.0 - known
        if rest > 1e-9:
            values = whole.items.values.cast(pl.String).to_list()
            for v, n in zip(values, whole.items.counts.tolist(), strict=True):
                mixed[v] = mixed.get(v, 0.0) + rest * n / whole.items.total
        names = sorted(mixed)
        counts = np.asarray([round(mixed[v] * total) for v in names], dtype=np.int64)
        keep = counts > 0
        series = pl.Series("value", names, dtype=pl.String).filter(pl.Series(keep))
        items = FrequentItems.from_counts(series, counts[keep], whole.items.capacity)
        return replace(whole, items=items)

    def chunk_mixture(self, column: str, whole: ColumnProfile, chunk: int) -> ColumnProfile:
        """The mixture for the ``chunk``-th chunk of the reference (its own phase counts)."""
        counts = self.chunk_weights[chunk] if chunk < len(self.chunk_weights) else {}
        total = sum(counts.values())
        weights = {k: v / total for k, v in counts.items()} if total else {}
        return self.mixture(column, whole, weights)

    # -- storing ------------------------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        return {
            "given": dict(self.given),
            "explained": dict(self.explained),
            "profiles": {
                r: {v: p.to_dict() for v, p in values.items()}
                for r, values in self.profiles.items()
            },
            "phase": None if self.phase is None else [self.phase.unit, self.phase.width],
            "timestamp": self.timestamp,
            "chunk_weights": [dict(w) for w in self.chunk_weights],
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any] | None) -> Regimes:
        if not d:
            return cls()
        phase = d.get("phase")
        return cls(
            given=dict(d.get("given") or {}),
            explained={k: float(v) for k, v in (d.get("explained") or {}).items()},
            profiles={
                r: {v: Profile.from_dict(p) for v, p in values.items()}
                for r, values in (d.get("profiles") or {}).items()
            },
            phase=None if not phase else Phase(phase[0], int(phase[1])),
            timestamp=d.get("timestamp"),
            chunk_weights=[dict(w) for w in d.get("chunk_weights") or []],
        )

    def describe(self) -> list[str]:
        """Each conditioned column in words."""
        out = []
        for column, regime in sorted(self.given.items()):
            what = self.phase.describe() if regime == PHASE and self.phase else f"'{regime}'"
            share = self.explained.get(column, 0.0)
            out.append(
                f"{column} is compared within {what}, which explains {share:.0%} of its variance"
            )
        return out


class MixtureSketch:
    """A weighted mixture of quantile sketches, read like one sketch (its CDF and quantiles).

    Example:
        >>> import numpy as np
        >>> from mlwarden.profiling.kll import KLLSketch
        >>> a, b = KLLSketch(), KLLSketch()
        >>> a.update(np.arange(100.0)); b.update(np.arange(100.0, 200.0))
        >>> float(MixtureSketch([(0.75, a), (0.25, b)]).cdf([99.0])[0])
        0.75
    """

    def __init__(self, parts: Sequence[tuple[float, Any]]) -> None:
        total = sum(w for w, _ in parts)
        self.parts = [(w / total, s) for w, s in parts if w > 0] if total > 0 else []
        self.n = sum(s.n for _, s in self.parts)
        self.levels = [np.concatenate([np.concatenate(s.levels) for _, s in self.parts])]
        self.min = min((s.min for _, s in self.parts), default=math.inf)
        self.max = max((s.max for _, s in self.parts), default=-math.inf)

    @property
    def is_exact(self) -> bool:
        return all(s.is_exact for _, s in self.parts)

    @property
    def rank_error(self) -> float:
        return max((s.rank_error for _, s in self.parts), default=0.0)

    def cdf(self, values: Sequence[float] | npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
        x = np.asarray(values, dtype=np.float64)
        out = np.zeros(x.shape)
        for weight, sketch in self.parts:  # a few regime values
            out += weight * sketch.cdf(x)
        return out

    def quantiles(self, qs: Sequence[float] | npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
        q = np.asarray(qs, dtype=np.float64)
        points = np.unique(self.levels[0])
        if points.size == 0:
            return np.full(q.shape, np.nan)
        cdf = self.cdf(points)
        idx = np.searchsorted(cdf, q, side="left")
        return np.asarray(points[np.minimum(idx, points.size - 1)], dtype=np.float64)


def _eta_squared(frame: pl.DataFrame, regime: str, numeric: Sequence[str]) -> dict[str, float]:
    """Per numeric column, the share of its variance between the regime's values."""
    key = pl.col(regime).cast(pl.String)
    grouped = (
        frame.filter(key.is_not_null())
        .group_by(key.alias("__r"))
        .agg(
            pl.len().alias("__n"),
            *[pl.col(c).cast(pl.Float64).mean().alias(f"{c}__m") for c in numeric],
            *[pl.col(c).cast(pl.Float64).count().alias(f"{c}__k") for c in numeric],
        )
    )
    totals = frame.select(
        *[pl.col(c).cast(pl.Float64).var(ddof=0).alias(f"{c}__v") for c in numeric],
        *[pl.col(c).cast(pl.Float64).mean().alias(f"{c}__m") for c in numeric],
        *[pl.col(c).cast(pl.Float64).count().alias(f"{c}__k") for c in numeric],
    ).row(0, named=True)
    out = {}
    for c in numeric:  # per column, from the grouped aggregates
        total_var, mean, count = totals[f"{c}__v"], totals[f"{c}__m"], totals[f"{c}__k"]
        if not total_var or not count or mean is None:
            continue
        means = grouped[f"{c}__m"].to_numpy()
        counts = grouped[f"{c}__k"].to_numpy().astype(np.float64)
        present = counts > 0
        between = float(np.sum(counts[present] * (means[present] - mean) ** 2)) / count
        out[c] = min(1.0, between / float(total_var))
    return out


def _window_key(
    timestamp: str | None, window_seconds: float | None, frame: pl.DataFrame
) -> pl.Expr:
    """The window each row falls in (every row in one window without a timestamp)."""
    if timestamp is None or window_seconds is None or not frame.schema[timestamp].is_temporal():
        return pl.lit(0)
    return pl.col(timestamp).dt.truncate(f"{max(1, round(window_seconds))}s")


def _phase_categories(
    frame: pl.DataFrame, timestamp: str, categorical: Sequence[str], phase: Phase
) -> dict[str, float]:
    """Per categorical column whose shares cycle with the phase: the share of its category
    indicators' variance the phase explains (their variance-weighted η²)."""
    indicators: dict[str, list[tuple[str, float]]] = {}
    exprs: list[pl.Expr] = []
    for column in categorical:  # a few categorical columns, each its top categories
        counts = frame[column].cast(pl.String).drop_nulls().value_counts(sort=True).head(20)
        total = float(counts["count"].sum()) if counts.height else 0.0
        if counts.height < 2 or total == 0:
            continue
        for value, n in counts.iter_rows():  # its top categories
            name = f"__ind{len(exprs)}"
            p = n / total
            indicators.setdefault(column, []).append((name, p * (1.0 - p)))
            exprs.append((pl.col(column).cast(pl.String) == value).cast(pl.Float64).alias(name))
    if not exprs:
        return {}
    work = frame.select(pl.col(timestamp), pl.col(PHASE), *exprs)
    names = [n for pairs in indicators.values() for n, _ in pairs]
    explained = _eta_squared(work, PHASE, names)
    cycles = cycling(work, timestamp, names, phase)
    out = {}
    for column, pairs in indicators.items():  # per column
        if not any(n in cycles for n, _ in pairs):
            continue
        weight = sum(v for _, v in pairs)
        if weight > 0:
            out[column] = sum(explained.get(n, 0.0) * v for n, v in pairs) / weight
    return out


def cycling(frame: pl.DataFrame, timestamp: str, numeric: Sequence[str], phase: Phase) -> set[str]:
    """The columns of ``frame`` (which holds a :data:`PHASE` column) whose phase means differ
    consistently across the reference's days (weeks, for weekday phases)."""
    day = pl.col(timestamp).dt.truncate("1w" if phase.unit == "weekday" else "1d")
    cells = frame.group_by(day.alias("__d"), PHASE).agg(
        [pl.col(c).cast(pl.Float64).mean().alias(c) for c in numeric]
    )
    n_days = cells["__d"].n_unique()
    n_phases = cells[PHASE].n_unique()
    if n_days < 2 or n_phases < 2:
        return set()
    found = set()
    for c in numeric:  # per column: a two-way layout of cell means
        table = cells.pivot(on=PHASE, index="__d", values=c).drop("__d").to_numpy()
        complete = table[~np.isnan(table).any(axis=1)]
        days, phases = complete.shape
        if days < 2:
            continue
        grand = complete.mean()
        phase_means = complete.mean(axis=0)
        day_means = complete.mean(axis=1, keepdims=True)
        residual = complete - phase_means - day_means + grand
        between = days * float(np.sum((phase_means - grand) ** 2)) / (phases - 1)
        within = float(np.sum(residual**2)) / ((phases - 1) * (days - 1))
        if within <= 0:
            continue
        p = float(stats.f.sf(between / within, phases - 1, (phases - 1) * (days - 1)))
        if p < PHASE_LEVEL:
            found.add(c)
    return found


__all__ = ["MAX_VALUES", "MIN_EXPLAINED", "PHASE", "MixtureSketch", "Phase", "Regimes", "cycling"]
