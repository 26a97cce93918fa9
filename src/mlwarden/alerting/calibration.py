"""One false-incident budget per model version, and the bounds that meet it.

A team says how many false incidents it accepts: ``false_incidents`` per ``days`` (one per 90
days by default). At the version's window size that is a chance per window,
``alpha = false_incidents × window / days``, and it is shared out explicitly:

* ``window`` (60 %): the single-window rule over *every* bounded metric of every family and
  segment (drift per column, multivariate drift, estimated performance, explanation drift,
  feedback rates, rows per window). Each metric gets an equal share (Bonferroni), so the chance
  that a clean window has any metric past its bound is at most this part.
* ``sequential`` (25 %): one CUSUM (:mod:`mlwarden.alerting.cusum`) per whole-table signed
  location shift (two-sided) and estimated performance metric, each with an in-control run
  length of ``series / part`` windows.
* ``quality`` (15 %): learned quality checks; their failure rate on held-out reference windows
  is measured and reported, and a check that fails there is widened, made rate-based or no
  longer alerts (:mod:`mlwarden.service.replay`).

The metrics' bounds come from a *replay*: the reference is cut into the version's windows and
each is judged, by the same code as production windows, against evaluators fitted on the rest of
the reference (cross-fitting by blocks of time, so autocorrelation and daily cycles stay inside
the windows). A metric's value maps to a nominal z by its
:class:`~mlwarden.alerting.null.NullModel`; the replay gives the mean ``m`` and spread ``s`` of
that z over clean windows, and a window's *score* is ``(z - m) / s``. The threshold on the
score is the Student-t quantile at the metric's share of the budget with the replay's windows as
degrees of freedom, times ``sqrt(1 + 1/windows)``: a prediction bound that widens, instead of
alarming, when the reference holds few windows. The bound stored with the metric is the value
whose score reaches the threshold on this window (its size included), so it always lies inside
the metric's range; where no value can reach it, the metric cannot alarm and
:meth:`Calibration.notes` says so.

Feedback rates have no replay (no one gave feedback on the reference): they are judged by their
binomial theory alone.

Example:
    >>> import polars as pl
    >>> from datetime import datetime, timedelta, UTC
    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> starts = [datetime(2024, 1, 1, tzinfo=UTC) + timedelta(hours=4 * i) for i in range(60)]
    >>> replay = replay_frame(
    ...     [{"window_start": s, "fold": i // 12, "name": "drift.ks", "column": "temp",
    ...       "value": 0.1, "z": float(z), "null_kind": "ks", "null_n": 480.0}
    ...      for i, (s, z) in enumerate(zip(starts, rng.normal(6.0, 2.0, 60)))]
    ... )
    >>> calibration = Calibration.fit(replay, window="4h")
    >>> round(calibration.alpha * calibration.windows_per_period, 6)
    1.0
    >>> stats = calibration.stats[("drift.ks", "temp", "")]
    >>> round(stats.mean, 1), round(stats.std, 1), stats.windows
    (6.2, 1.8, 60)
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any, Final

import numpy as np
import polars as pl
from scipy import optimize
from scipy import stats as scipy_stats

from mlwarden.alerting import cusum
from mlwarden.alerting.incidents import group_incidents
from mlwarden.alerting.null import NullModel, tail
from mlwarden.exceptions import ParameterError
from mlwarden.quality._durations import parse_duration

if TYPE_CHECKING:
    from collections.abc import Iterable, Mapping, Sequence

    from mlwarden.store.metadata import MetricValue

Key = tuple[str, str, str]

ALLOCATION: Final = {"window": 0.60, "sequential": 0.25, "quality": 0.15}
"""How the budget is shared between the single-window rule, the CUSUMs and quality checks."""
MIN_WINDOWS: Final = 8
"""Fewer replayed windows than this and a metric's bound cannot be calibrated."""
STD_FLOOR: Final = 0.5
"""The spread of a metric's nominal z is never taken below this."""
MAX_RHO: Final = 0.9
FOLDED: Final = ("ks", "chi2")
"""Null-model kinds whose values are distances (folded at zero)."""
FLOOR_MARGIN: Final = 0.25
"""A metric's threshold lies at least this far above the largest score a clean replayed window
of it reached (standardized without that window)."""
CUSUM_PREFIX: Final = "cusum."
_DAY: Final = 86_400.0
# E|X| / sqrt(E X²) of a normal centred on zero: below it, offsets look centred.
_HALF_NORMAL_RATIO: Final = math.sqrt(2.0 / math.pi)
_KEY: Final = ["name", "column", "segment"]
_SEP: Final = "\u241f"

REPLAY_SCHEMA: Final[dict[str, pl.DataType]] = {
    "window_start": pl.Datetime("us", "UTC"),
    "fold": pl.Int32(),
    "name": pl.String(),
    "column": pl.String(),
    "segment": pl.String(),
    "value": pl.Float64(),
    "z": pl.Float64(),
    "labelled": pl.Float64(),
    "failed": pl.Boolean(),
    "null_kind": pl.String(),
    "null_side": pl.String(),
    "null_n": pl.Float64(),
    "null_center": pl.Float64(),
    "null_scale": pl.Float64(),
    "null_df": pl.Float64(),
    "null_low": pl.Float64(),
    "null_high": pl.Float64(),
    "null_log": pl.Boolean(),
    "null_probit": pl.Boolean(),
}
_DEFAULTS: Final[dict[str, Any]] = {
    "column": "",
    "segment": "",
    "labelled": 0.0,
    "null_side": "upper",
    "null_n": 1.0,
    "null_center": 0.0,
    "null_scale": 1.0,
    "null_df": 1.0,
    "null_low": 0.0,
    "null_high": 1.0,
    "null_log": False,
    "null_probit": False,
}


def replay_frame(records: Iterable[Mapping[str, Any]]) -> pl.DataFrame:
    """A replay table (:data:`REPLAY_SCHEMA`) from records; missing fields take defaults."""
    rows = [{**_DEFAULTS, **r} for r in records]
    return pl.DataFrame(rows, schema=REPLAY_SCHEMA, orient="row")


def replay_records(
    window_start: Any, fold: int, metrics: Sequence[MetricValue]
) -> list[dict[str, Any]]:
    """Replay records of one window's metrics: the ones with a null model (their nominal z),
    and the quality checks (failed or not; only error-severity checks, which alarm)."""
    records: list[dict[str, Any]] = []
    for m in metrics:  # one per metric of a window
        base = {"window_start": window_start, "fold": fold, "name": m.name}
        base |= {"column": m.column, "segment": m.segment, "value": m.value}
        if m.null is not None:
            null = m.null
            records.append(
                base
                | {
                    "z": None if m.value is None else null.z(m.value),
                    "labelled": null.labelled,
                    "null_kind": null.kind,
                    "null_side": null.side,
                    "null_n": null.n,
                    "null_center": null.center,
                    "null_scale": null.scale,
                    "null_df": null.df,
                    "null_low": null.low,
                    "null_high": null.high,
                    "null_log": null.log,
                    "null_probit": null.probit,
                }
            )
        elif m.name == "quality" and m.upper is not None:
            records.append(base | {"failed": bool(m.value)})
    return records


@dataclass(frozen=True)
class AlertBudget:
    """False incidents a team accepts: ``false_incidents`` per ``days``.

    Example:
        >>> AlertBudget().per_window(4 * 3600)
        0.001851851851851852
    """

    false_incidents: float = 1.0
    days: float = 90.0

    def __post_init__(self) -> None:
        for name, value, high in (("false_incidents", self.false_incidents, 1000.0),):
            if not isinstance(value, int | float) or isinstance(value, bool):
                raise ParameterError(
                    f"The '{name}' of an alert budget must be a number; got {value!r}.",
                    parameter=name,
                )
            if not 0.0 < value <= high:
                raise ParameterError(
                    f"The '{name}' of an alert budget must be in (0, {high:g}] false incidents "
                    f"per period; got {value!r}.",
                    parameter=name,
                )
        if not isinstance(self.days, int | float) or not 1.0 <= self.days <= 3650.0:
            raise ParameterError(
                f"The 'days' of an alert budget must be a number of days in [1, 3650]; got "
                f"{self.days!r}.",
                parameter="days",
            )

    def per_window(self, window_seconds: float) -> float:
        """The chance per window of this length that the budget allows."""
        return min(0.5, self.false_incidents * window_seconds / (self.days * _DAY))

    def to_dict(self) -> dict[str, float]:
        return {"false_incidents": float(self.false_incidents), "days": float(self.days)}

    def __str__(self) -> str:
        """The budget in words.

        Example:
            >>> str(AlertBudget()), str(AlertBudget(0.5, 30))
            ('1 false incident per 90 days', '0.5 false incidents per 30 days')
        """
        return f"{count(self.false_incidents, 'false incident')} per {self.days:g} days"

    @classmethod
    def from_dict(cls, d: Mapping[str, Any] | None) -> AlertBudget:
        d = d or {}
        return cls(float(d.get("false_incidents", 1.0)), float(d.get("days", 90.0)))


@dataclass(frozen=True)
class KeyStats:
    """How one metric's nominal z behaved on the replayed clean windows.

    ``labelled_*`` describe the realized value (every label known) of a performance metric,
    whose plain fields describe its estimate without labels.
    """

    mean: float
    std: float
    windows: int
    rho: float = 0.0
    labelled_mean: float | None = None
    labelled_std: float | None = None
    labelled_windows: int = 0
    floor: float = 0.0
    allowance: float = cusum.ALLOWANCE
    folded: bool = False
    two_sided: bool = False
    widening: float = 1.0

    def at(self, labelled: float) -> tuple[float, float, int]:
        """Mean, spread and windows for a window with this share of labelled rows."""
        if self.labelled_mean is None or self.labelled_std is None or labelled <= 0.0:
            return self.mean, self.std, self.windows
        share = min(1.0, labelled)
        mean = (1.0 - share) * self.mean + share * self.labelled_mean
        var = (1.0 - share) * self.std**2 + share * self.labelled_std**2
        return mean, math.sqrt(var), min(self.windows, self.labelled_windows)


_THEORY: Final = KeyStats(0.0, 1.0, 0)


@dataclass(frozen=True)
class Calibration:
    """The bounds of a version's metrics under its alert budget (see the module docstring).

    Build it with :meth:`fit` from a replay table; :meth:`apply` bounds a window's metrics,
    :meth:`cusum` advances the sequential rule, :meth:`surprise` says how rare a window is.
    """

    budget: AlertBudget
    window: str
    window_seconds: float
    stats: dict[Key, KeyStats]
    checks: dict[str, tuple[int, int]] = field(default_factory=dict)
    extra_metrics: int = 0
    sequential: frozenset[Key] = frozenset()
    widening: float = 1.0
    _thresholds: dict[tuple[KeyStats, float], float | None] = field(
        default_factory=dict, compare=False, repr=False
    )

    @classmethod
    def fit(
        cls,
        replay: pl.DataFrame,
        *,
        budget: AlertBudget | None = None,
        window: str = "1h",
        extra_metrics: int = 0,
        widening: float = 1.0,
        widened: Mapping[Key, float] | None = None,
    ) -> Calibration:
        """Fit from a replay table (:data:`REPLAY_SCHEMA`); ``extra_metrics`` counts bounded
        metrics without a replay (feedback rates), which share the budget too; ``widening``
        multiplies every replayed metric's single-window threshold, and ``widened`` some
        metrics' single-window threshold and CUSUM allowance and threshold further (see
        :func:`tune`)."""
        seconds = parse_duration(window, "window", "Calibration")
        if not seconds > 0:
            raise ParameterError(
                f"A window lasts more than 0 s; got {window!r}.", parameter="window"
            )
        scored = replay.filter(pl.col("z").is_not_null() & pl.col("z").is_finite())
        stats: dict[Key, KeyStats] = {}
        if scored.height:
            scored = _left_out(scored.with_columns((pl.col("labelled") > 0).alias("__lab")))
            grouped = scored.group_by([*_KEY, "__lab"]).agg(
                mean=pl.col("z").mean(),
                std=pl.col("z").std(),
                windows=pl.len(),
                top=pl.when(pl.col("null_side").first() == "both")
                .then(pl.col("__loo").abs().max())
                .otherwise(pl.col("__loo").max()),
                kind=pl.col("null_kind").first(),
                side=pl.col("null_side").first(),
            )
            plain = scored.filter(~pl.col("__lab"))
            rho = _autocorrelation(plain, seconds)
            allowance = _allowances(plain, rho)
            labelled = {
                (r["name"], r["column"], r["segment"]): r
                for r in grouped.filter(pl.col("__lab")).iter_rows(named=True)
            }
            for r in grouped.filter(~pl.col("__lab")).iter_rows(named=True):  # per metric
                key = (r["name"], r["column"], r["segment"])
                lab = labelled.get(key)
                tops = [t for t in (r["top"], None if lab is None else lab["top"]) if t is not None]
                stats[key] = KeyStats(
                    mean=float(r["mean"]),
                    std=max(STD_FLOOR, float(r["std"] or 0.0)),
                    windows=int(r["windows"]),
                    rho=rho.get(key, 0.0),
                    labelled_mean=None if lab is None else float(lab["mean"]),
                    labelled_std=None if lab is None else max(STD_FLOOR, float(lab["std"] or 0)),
                    labelled_windows=0 if lab is None else int(lab["windows"]),
                    floor=max(tops) + FLOOR_MARGIN if tops else 0.0,
                    allowance=allowance.get(key, cusum.ALLOWANCE),
                    folded=r["kind"] in FOLDED,
                    two_sided=r["side"] == "both",
                )
        checks: dict[str, tuple[int, int]] = {}
        quality = replay.filter(pl.col("failed").is_not_null())
        if quality.height:
            per_check = quality.group_by("column").agg(
                failed=pl.col("failed").sum(), windows=pl.len()
            )
            checks = {
                str(c): (int(f), int(w))
                for c, f, w in per_check.iter_rows()  # per check
            }
        for key, factor in (widened or {}).items():  # the few metrics tune widened
            if key in stats:
                stats[key] = replace(stats[key], widening=float(factor))
        sequential = frozenset(k for k in stats if _sequential(k))
        return cls(
            budget=budget or AlertBudget(),
            window=window,
            window_seconds=seconds,
            stats=stats,
            checks=checks,
            extra_metrics=extra_metrics,
            sequential=sequential,
            widening=widening,
        )

    # -- the budget, shared out -------------------------------------------------------------

    @property
    def windows_per_period(self) -> float:
        """Windows of this length in the budget's period."""
        return self.budget.days * _DAY / self.window_seconds

    @property
    def alpha(self) -> float:
        """The budget's chance of a false incident per window."""
        return self.budget.per_window(self.window_seconds)

    @property
    def n_metrics(self) -> int:
        """Bounded metrics that share the single-window part of the budget."""
        return max(1, len(self.stats) + self.extra_metrics)

    @property
    def metric_alpha(self) -> float:
        """Each bounded metric's chance per window of passing its bound without a change."""
        return ALLOCATION["window"] * self.alpha / self.n_metrics

    @property
    def cusum_threshold(self) -> float:
        """The CUSUMs' threshold ``h``."""
        return cusum.threshold_for_run_length(self.cusum_run_length)

    @property
    def cusum_run_length(self) -> float:
        """Each CUSUM's in-control average run length, in windows."""
        return max(1, len(self.sequential)) / (ALLOCATION["sequential"] * self.alpha)

    def threshold(self, stats: KeyStats, labelled: float = 0.0) -> float | None:
        """The score a metric's window must pass to alarm (both ways for a two-sided metric;
        see the module docstring); None below :data:`MIN_WINDOWS` replayed windows."""
        if stats is _THEORY:
            return float(scipy_stats.norm.isf(self.metric_alpha))
        key = (stats, labelled)
        if key not in self._thresholds:  # a window's metrics ask again and again
            self._thresholds[key] = self._threshold(stats, labelled)
        return self._thresholds[key]

    def _threshold(self, stats: KeyStats, labelled: float) -> float | None:
        mean, std, windows = stats.at(labelled)
        if windows < MIN_WINDOWS:
            return None
        alpha = self.metric_alpha / (2.0 if stats.two_sided else 1.0)
        c = float(scipy_stats.t.isf(alpha, windows - 1)) * math.sqrt(1.0 + 1.0 / windows)
        if stats.folded:  # a distance: the size of offsets that go either way
            shift, spread = _folded(mean, std)
            folded = _folded_quantile(shift, spread, self.metric_alpha, windows)
            c = max(c, (folded - mean) / std)
        return max(c, stats.floor) * self.widening * stats.widening

    def chance(self, stats: KeyStats, z: float, labelled: float = 0.0) -> float:
        """The chance that one clean window's nominal z of this metric exceeds ``z`` (its
        distance from the usual read through the calibration's widening)."""
        if stats is _THEORY:
            return tail(z)
        mean, std, windows = stats.at(labelled)
        z = mean + (z - mean) / (self.widening * stats.widening)
        inflate = math.sqrt(1.0 + 1.0 / max(windows, 1))
        df = max(1, windows - 1)
        if stats.two_sided:
            return min(1.0, 2.0 * float(scipy_stats.t.sf(abs(z - mean) / std / inflate, df)))
        chance = float(scipy_stats.t.sf((z - mean) / std / inflate, df))
        if stats.folded:
            chance = max(
                chance, 2.0 * float(scipy_stats.t.sf(z / math.hypot(mean, std) / inflate, df))
            )
        return min(1.0, chance)

    def stats_for(self, key: Key, null: NullModel | None) -> KeyStats | None:
        """The replay statistics of a metric: its own, else those of the same metric and column
        in other segments (the widest), else by theory for binomial rates, else None."""
        found = self.stats.get(key)
        if found is not None:
            return found
        name, column, _ = key
        siblings = [s for k, s in self.stats.items() if k[0] == name and k[1] == column]
        if siblings:
            widest = max(siblings, key=lambda s: s.std)
            return replace(
                widest,
                windows=min(s.windows for s in siblings),
                floor=max(s.floor for s in siblings),
            )
        if null is not None and null.kind == "binomial":
            return _THEORY
        return None

    # -- windows ----------------------------------------------------------------------------

    def apply(self, metrics: Sequence[MetricValue]) -> list[MetricValue]:
        """The metrics with their calibrated score and bounds; quality checks keep their
        verdict, and other metrics without a null model have no bound."""
        out = []
        for m in metrics:  # one per metric of a window, not per row
            null = m.null
            if null is None:
                # a quality check keeps its verdict; any other bound without a null model is
                # not calibrated against the budget, and goes
                keep = m.name == "quality" or m.name.startswith(CUSUM_PREFIX)
                out.append(m if keep else replace(m, lower=None, upper=None))
                continue
            found = self.stats_for((m.name, m.column, m.segment), null)
            if found is None:
                out.append(replace(m, lower=None, upper=None, score=None))
                continue
            mean, std, _ = found.at(null.labelled)
            threshold = self.threshold(found, null.labelled)
            lower = upper = None
            if threshold is not None and null.side == "both":
                lower = null.value_at(mean - threshold * std)
                upper = null.value_at(mean + threshold * std)
            elif threshold is not None:
                lower, upper = null.bounds(mean + threshold * std)
            score = None if m.value is None else (null.z(m.value) - mean) / std
            out.append(replace(m, lower=lower, upper=upper, score=score))
        return out

    def cusum(
        self, previous: Mapping[Key, float], metrics: Sequence[MetricValue]
    ) -> list[MetricValue]:
        """The CUSUM metrics (``cusum.<metric>``) after this window, from the sums after the
        window before (``previous``, keyed by the metric they follow) and this window's
        calibrated metrics."""
        from mlwarden.store.metadata import MetricValue

        h = self.cusum_threshold
        out = []
        for m in metrics:  # one per metric of a window
            key = (m.name, m.column, m.segment)
            if key not in self.sequential or m.score is None:
                continue
            own = self.stats[key]
            before = previous.get(key, 0.0)
            score = m.score / own.widening  # the global widening is the single window's
            if own.two_sided:
                state = cusum.step_both(before, score, h=h, k=own.allowance, rho=own.rho)
                lower: float | None = -h
            else:
                state = cusum.step(before, score, h=h, k=own.allowance, rho=own.rho)
                lower = None
            out.append(
                MetricValue(
                    CUSUM_PREFIX + m.name,
                    state,
                    lower=lower,
                    upper=h,
                    column=m.column,
                    segment=m.segment,
                )
            )
        return out

    def surprise(self, metrics: Sequence[MetricValue]) -> float | None:
        """The chance that a window of reference-like data has an alert at least as extreme
        as the most extreme of ``metrics``' alerts (None: no alert, or none it can judge)."""
        chances = []
        for m in metrics:  # the window's metrics
            if not m.alert:
                continue
            if m.name.startswith(CUSUM_PREFIX) and m.value is not None:
                runs = cusum.run_length(abs(m.value))
                chances.append(max(1, len(self.sequential)) / max(runs, 1.0))
            elif m.name == "quality":
                failed, windows = self.checks.get(m.column, (0, 0))
                chances.append((failed + 0.5) / (windows + 1.0))
            elif m.score is not None:
                found = self.stats_for((m.name, m.column, m.segment), m.null)
                labelled = 0.0 if m.null is None else m.null.labelled
                if found is None:
                    continue
                mean, std, _ = found.at(labelled)
                chance = self.chance(found, mean + std * m.score, labelled)
                chances.append(self.n_metrics * chance)
        if not chances:
            return None
        return float(min(1.0, max(1e-15, min(chances))))

    # -- what the reference cannot support --------------------------------------------------

    def notes(self, replay: pl.DataFrame) -> list[str]:
        """Metrics that cannot alarm on windows like the reference's, each with the reason and
        what to do: too few replayed windows, or a bound beyond the metric's range. A metric
        that cannot alarm for the whole table and its segments alike is one note."""
        few: dict[tuple[str, str], list[str]] = {}
        wide: dict[tuple[str, str], list[str]] = {}
        counts: dict[tuple[str, str], int] = {}
        typical = (
            replay.filter(pl.col("z").is_not_null(), pl.col("labelled") == 0)
            .sort("null_n")
            .group_by(_KEY, maintain_order=True)
            .agg(pl.all().get(pl.len() // 2))
            .sort(_KEY)
        )
        for row in typical.iter_rows(named=True):  # one per metric
            key = (row["name"], row["column"], row["segment"])
            stats = self.stats.get(key)
            if stats is None:
                continue
            threshold = self.threshold(stats)
            if threshold is None:
                few.setdefault(key[:2], []).append(key[2])
                counts[key[:2]] = stats.windows
                continue
            null = null_from_row(row)
            if null.side == "both":
                lower = null.value_at(stats.mean - threshold * stats.std)
                upper = null.value_at(stats.mean + threshold * stats.std)
            else:
                lower, upper = null.bounds(stats.mean + threshold * stats.std)
            if (null.side != "lower" and upper is None) or (null.side != "upper" and lower is None):
                wide.setdefault(key[:2], []).append(key[2])
        found = [
            f"{_described(pair, segments)} cannot be calibrated: the reference holds "
            f"{counts[pair]} windows of {self.window}, and at least {MIN_WINDOWS} are needed; "
            "register with a longer reference or shorter windows."
            for pair, segments in few.items()
        ]
        found += [
            f"{_described(pair, segments)} cannot be alarmed on {self.window} windows with this "
            "reference: it varies too much between the reference's own windows (a bound would "
            "lie beyond what the metric can reach); use longer windows or a longer reference."
            for pair, segments in wide.items()
        ]
        found += [
            f"{describe(key)}: bound widened {stats.widening:.2g}× further, as it alarmed on "
            "reference windows held out of its calibration (it moves with something the "
            "reference's folds do not share: weather, campaigns)."
            for key, stats in sorted(self.stats.items())
            if stats.widening > 1.0 and key[:2] not in wide
        ]
        return found

    def summary(self) -> dict[str, Any]:
        """Plain data for the version's page and API: the budget and how it is shared."""
        thresholds = [c for s in self.stats.values() if (c := self.threshold(s)) is not None]
        return {
            **self.budget.to_dict(),
            "window": self.window,
            "windows_per_period": self.windows_per_period,
            "alpha": self.alpha,
            "allocation": dict(ALLOCATION),
            "metrics": self.n_metrics,
            "metric_alpha": self.metric_alpha,
            "score_threshold": {
                "min": min(thresholds) if thresholds else None,
                "max": max(thresholds) if thresholds else None,
            },
            "sequential": {
                "series": len(self.sequential),
                "h": self.cusum_threshold,
                "run_length": self.cusum_run_length,
            },
            "quality_checks": len(self.checks),
            "widening": self.widening,
            "widened": sum(s.widening > 1.0 for s in self.stats.values()),
        }


def count(n: float, noun: str) -> str:
    """``n`` of ``noun``, the noun in the plural unless ``n`` is one: ``count(0, "incident")``
    is ``'0 incidents'``."""
    return f"{n:,g} {noun}" + ("" if n == 1 else "s")


def rarity(surprise: float | None, window_seconds: float | None = None) -> str:
    """An incident's surprise in words: how often a window like its first one comes on
    reference-like data.

    Example:
        >>> rarity(0.0005, 4 * 3600)
        'about once in 2,000 windows (once in 333 days) of reference-like data'
        >>> rarity(0.4)
        'about once in 2 windows of reference-like data: not unusual'
    """
    if surprise is None or not surprise > 0:
        return "not judged against the reference"
    windows = 1.0 / surprise
    shown = f"{windows:,.0f}" if windows < 1e7 else f"{windows:.1e}"
    text = f"about once in {shown} windows"
    if window_seconds:
        days = windows * window_seconds / _DAY
        if days >= 2:
            span = f"{days:,.0f} days" if days < 3650 else f"{days / 365.25:,.0f} years"
            text += f" (once in {span})"
    text += " of reference-like data"
    if surprise > 0.05:
        text += ": not unusual"
    return text


def null_from_row(row: Mapping[str, Any]) -> NullModel:
    """The null model stored in a replay row."""
    return NullModel(
        kind=row["null_kind"],
        side=row["null_side"],
        n=row["null_n"],
        center=row["null_center"],
        scale=row["null_scale"],
        df=row["null_df"],
        low=row["null_low"],
        high=row["null_high"],
        log=bool(row["null_log"]),
        labelled=row["labelled"] or 0.0,
        probit=bool(row.get("null_probit")),
    )


def describe(key: Key) -> str:
    """A metric in words: ``drift of temperature_c in line=L2``."""
    name, column, segment = key
    where = f" in {segment}" if segment else ""
    if name == "drift.pca":
        return f"multivariate drift{where}"
    if name.startswith("drift."):
        return f"drift of {column}{where}"
    if name.startswith("performance."):
        return f"estimated {name.removeprefix('performance.')}{where}"
    if name == "volume":
        return f"rows per window{where}"
    if column:
        return f"{name.replace('_', ' ')} of {column}{where}"
    return f"{name.replace('_', ' ')}{where}"


def _described(pair: tuple[str, str], segments: list[str]) -> str:
    """A metric in words with the segments it concerns: ``drift of line_speed_m_min (whole
    table, line=L1, line=L2)``."""
    name, column = pair
    if len(segments) == 1:
        return describe((name, column, segments[0]))
    what = describe((name, column, ""))
    where = ["whole table" if s == "" else s for s in sorted(segments)]
    return f"{what} ({', '.join(where)})"


def _sequential(key: Key) -> bool:
    """Whether a metric feeds a CUSUM: the whole table's signed location shifts and estimated
    performance. Not distances: any wander between the reference and later weeks moves a
    distance up, never down, and a sum of such offsets would alarm on nothing."""
    name, _, segment = key
    return not segment and (name == "drift.location" or name.startswith("performance."))


def _folded(mean: float, std: float) -> tuple[float, float]:
    """The normal ``N(shift, spread²)`` whose absolute value has this mean and spread: a
    distance's windows as offsets that go either way, of which only the size is seen."""
    second = mean * mean + std * std
    ratio = mean / math.sqrt(second) if second > 0 else 0.0
    if ratio <= _HALF_NORMAL_RATIO:
        return 0.0, math.sqrt(second)
    if ratio >= 0.9999:
        return mean, std

    def gap(theta: float) -> float:
        folded = math.sqrt(2.0 / math.pi) * math.exp(-theta * theta / 2.0)
        folded += theta * (1.0 - 2.0 * float(scipy_stats.norm.cdf(-theta)))
        return folded / math.sqrt(1.0 + theta * theta) - ratio

    theta = float(optimize.brentq(gap, 0.0, 100.0))
    spread = math.sqrt(second / (1.0 + theta * theta))
    return theta * spread, spread


def _folded_sf(z: float, shift: float, spread: float, windows: int) -> float:
    """The chance that the size of an offset ``N(shift, spread²)`` exceeds ``z`` (Student-t
    for a spread estimated from ``windows`` windows)."""
    inflate = math.sqrt(1.0 + 1.0 / max(windows, 1))
    df = max(1, windows - 1)
    upper = float(scipy_stats.t.sf((z - shift) / spread / inflate, df))
    lower = float(scipy_stats.t.sf((z + shift) / spread / inflate, df))
    return upper + lower


def _folded_quantile(shift: float, spread: float, chance: float, windows: int) -> float:
    """The size of offset exceeded with probability ``chance`` (inverse of :func:`_folded_sf`)."""
    high = shift + spread
    while _folded_sf(high, shift, spread, windows) > chance:
        high = shift + 2.0 * (high - shift)
    return float(
        optimize.brentq(lambda z: _folded_sf(z, shift, spread, windows) - chance, 0.0, high)
    )


def _left_out(scored: pl.DataFrame) -> pl.DataFrame:
    """The replay with each window's score standardized by the other windows of its metric
    (``__loo``) and the metric's window count (``__n``)."""
    group = [*_KEY, "__lab"]
    z = pl.col("z")
    n = pl.len().over(group)
    total, squares = z.sum().over(group), (z * z).sum().over(group)
    mean = (total - z) / (n - 1)
    var = (squares - z * z - (n - 1) * mean * mean) / (n - 2)
    spread = var.clip(lower_bound=0.0).sqrt().clip(lower_bound=STD_FLOOR)
    return scored.with_columns(
        pl.when(n > 2).then((z - mean) / spread).otherwise(None).alias("__loo"),
        n.alias("__n"),
    )


def _allowances(scored: pl.DataFrame, rho: Mapping[Key, float]) -> dict[Key, float]:
    """Per metric, the CUSUM allowance: half a score unit, plus what the replay cannot pin
    down — twice the standard error of its mean score (every production window shares that
    error, and a sum would add it up) — or, where it is larger and clearly there (a chi-squared
    test at 5 %), how far the mean score of a fold wanders beyond its windows' own spread (a
    block of days that runs a little high must not add up to an alarm either)."""
    if scored.height == 0:
        return {}
    per_fold = scored.group_by([*_KEY, "fold"]).agg(
        pl.col("__loo").mean().alias("__m"), pl.len().alias("__k")
    )
    table = per_fold.group_by(_KEY).agg(
        pl.col("__m").var().alias("__v"),
        (1.0 / pl.col("__k")).mean().alias("__expected"),
        pl.len().alias("__folds"),
        pl.col("__k").sum().alias("__windows"),
    )
    out = {}
    for name, column, segment, v, expected, folds, windows in table.iter_rows():  # per metric
        key = (name, column, segment)
        r = rho.get(key, 0.0)
        inflation = (1.0 + r) / (1.0 - r)  # of the variance of a mean of correlated scores
        extra = 2.0 * math.sqrt(inflation / max(1, windows))
        if v is not None and folds >= 3:
            usual = float(expected) * inflation
            significant = float(scipy_stats.chi2.ppf(0.95, folds - 1)) / (folds - 1)
            if float(v) > significant * usual:
                extra = max(extra, math.sqrt(float(v) - usual))
        out[key] = cusum.ALLOWANCE + extra
    return out


def _autocorrelation(scored: pl.DataFrame, seconds: float) -> dict[Key, float]:
    """Per metric, the lag-one autocorrelation of its nominal z between adjacent windows."""
    if scored.height == 0:
        return {}
    step = int(seconds * 1_000_000)
    standardized = scored.sort("window_start").with_columns(
        ((pl.col("z") - pl.col("z").mean()) / pl.col("z").std())
        .over(_KEY)
        .fill_nan(0.0)
        .alias("__s")
    )
    paired = standardized.with_columns(
        pl.when(
            (pl.col("window_start") - pl.col("window_start").shift(1)).dt.total_microseconds()
            == step
        )
        .then(pl.col("__s") * pl.col("__s").shift(1))
        .over(_KEY)
        .alias("__p")
    )
    table = paired.group_by(_KEY).agg(rho=pl.col("__p").mean(), pairs=pl.col("__p").count())
    out = {}
    for name, column, segment, rho, pairs in table.iter_rows():  # one per metric
        if rho is None or pairs < 3:
            continue
        out[(name, column, segment)] = float(min(MAX_RHO, max(0.0, rho)))
    return out


@dataclass(frozen=True)
class HeldOut:
    """False incidents on replayed windows held out of the calibration that judged them."""

    windows: int
    incidents: int
    windows_per_period: float

    @property
    def rate(self) -> float:
        """False incidents per budget period."""
        return self.incidents / self.windows * self.windows_per_period if self.windows else 0.0

    @property
    def lower(self) -> float:
        """The 95 % lower confidence bound of :attr:`rate` (Poisson)."""
        if not self.windows or not self.incidents:
            return 0.0
        count = float(scipy_stats.chi2.ppf(0.05, 2 * self.incidents)) / 2.0
        return count / self.windows * self.windows_per_period

    @property
    def upper(self) -> float:
        """The 95 % upper confidence bound of :attr:`rate` (Poisson)."""
        if not self.windows:
            return math.inf
        count = float(scipy_stats.chi2.ppf(0.95, 2 * (self.incidents + 1))) / 2.0
        return count / self.windows * self.windows_per_period

    def to_dict(self) -> dict[str, Any]:
        return {
            "windows": self.windows,
            "incidents": self.incidents,
            "rate": self.rate,
            "lower": self.lower,
            "upper": self.upper if math.isfinite(self.upper) else None,
        }


def held_out(
    replay: pl.DataFrame,
    *,
    budget: AlertBudget | None = None,
    window: str = "1h",
    extra_metrics: int = 0,
    widening: float = 1.0,
    widened: Mapping[Key, float] | None = None,
) -> HeldOut:
    """Calibrate on the even folds of the replay and count the incidents on the odd ones,
    then the other way round (the single-window rule, the CUSUMs and the quality checks)."""
    measured, _ = _held_out(replay, budget, window, extra_metrics, widening, widened or {})
    return measured


def _held_out(
    replay: pl.DataFrame,
    budget: AlertBudget | None,
    window: str,
    extra_metrics: int,
    widening: float,
    widened: Mapping[Key, float],
) -> tuple[HeldOut, set[Key]]:
    """:func:`held_out`, with the replayed metrics that alarmed in its false incidents (the
    bounded metric a CUSUM follows stands for the CUSUM; quality checks are left out)."""
    folds = sorted(set(replay["fold"].to_list()))
    windows = incidents = 0
    per_period = 0.0
    alarmed: set[Key] = set()
    for part in (0, 1):
        fit_folds = [f for i, f in enumerate(folds) if i % 2 == part]
        test_folds = [f for i, f in enumerate(folds) if i % 2 != part]
        if not fit_folds or not test_folds:
            continue
        calibration = Calibration.fit(
            replay.filter(pl.col("fold").is_in(fit_folds)),
            budget=budget,
            window=window,
            extra_metrics=extra_metrics,
            widening=widening,
            widened=widened,
        )
        per_period = calibration.windows_per_period
        test = replay.filter(pl.col("fold").is_in(test_folds))
        alerts = _replayed_alerts(calibration, test)
        windows += len(alerts)
        incidents += len(group_incidents(alerts))
        for _, _, keys in alerts:  # windows: the alerting ones are few
            for name, column, segment in keys:
                if name != "quality":
                    alarmed.add((name.removeprefix(CUSUM_PREFIX), column, segment))
    return HeldOut(windows, incidents, per_period), alarmed


WIDENINGS: Final = (1.0, 1.2, 1.4, 1.6)
"""The widenings of every threshold :func:`tune` tries, smallest first."""

STEP: Final = 1.5
"""How much further :func:`tune` widens, round after round, the few metrics that still alarm
on held-out windows."""

ROUNDS: Final = 6
"""Rounds of :data:`STEP` at most (a metric widened ``1.5⁶ ≈ 11×`` rarely alarms at all)."""


@dataclass(frozen=True)
class Tuned:
    """What :func:`tune` chose: the widening of every threshold, the metrics widened further
    (a factor each) and the held-out measurement under both."""

    widening: float
    widened: dict[Key, float]
    measured: HeldOut


def tune(
    replay: pl.DataFrame,
    *,
    budget: AlertBudget | None = None,
    window: str = "1h",
    extra_metrics: int = 0,
) -> Tuned:
    """The smallest widening of every single-window threshold under which the reference's windows
    held out of each calibration raise no more false incidents than the budget expects of
    them (rounded down: none, for any reference shorter than the budget's period), with that
    measurement. Plant data has heavier tails than a normal distribution; each metric's forty
    or so windows cannot show its own, but the held-out windows of all of them together show
    where a normal extrapolation falls short (the CUSUMs sum clipped scores: tails barely move
    them, and they are left as they are). Past :data:`WIDENINGS`, widening everything
    would blind every metric for the sake of a few (a humidity that follows the weather, a
    recipe run in long campaigns): those that still alarm are widened on their own, by
    :data:`STEP` a round."""
    allowed = AlertBudget.from_dict(None) if budget is None else budget
    seconds = parse_duration(window, "window", "tune")
    widened: dict[Key, float] = {}
    for widening in WIDENINGS:
        measured, alarmed = _held_out(replay, budget, window, extra_metrics, widening, widened)
        expected = math.floor(allowed.per_window(seconds) * measured.windows)
        if measured.incidents <= expected:
            return Tuned(widening, widened, measured)
    for _ in range(ROUNDS):
        if not alarmed:  # quality checks alone: the suite's fit answers for them
            break
        for key in alarmed:
            widened[key] = widened.get(key, 1.0) * STEP
        measured, alarmed = _held_out(replay, budget, window, extra_metrics, widening, widened)
        if measured.incidents <= expected:
            break
    return Tuned(widening, widened, measured)


def _replayed_alerts(
    calibration: Calibration, replay: pl.DataFrame
) -> list[tuple[Any, Any, set[Key]]]:
    """Per replayed window in time order: its start, end and the keys that alerted."""
    from datetime import timedelta

    length = timedelta(seconds=calibration.window_seconds)
    scored = replay.filter(pl.col("z").is_not_null(), pl.col("labelled") == 0)
    table = []
    for name, column, segment in scored.select(_KEY).unique().iter_rows():  # per metric
        key = (name, column, segment)
        stats = calibration.stats.get(key)
        threshold = None if stats is None else calibration.threshold(stats)
        if stats is None or threshold is None:
            continue
        table.append((name, column, segment, stats.mean, stats.std, threshold, stats.two_sided))
    limits = pl.DataFrame(
        table,
        schema={
            "name": pl.String,
            "column": pl.String,
            "segment": pl.String,
            "__mean": pl.Float64,
            "__std": pl.Float64,
            "__threshold": pl.Float64,
            "__both": pl.Boolean,
        },
        orient="row",
    )
    judged = scored.join(limits, on=_KEY, how="inner").with_columns(
        ((pl.col("z") - pl.col("__mean")) / pl.col("__std")).alias("__score")
    )
    starts = sorted(set(replay["window_start"].to_list()))
    alerting: dict[Any, set[Key]] = {s: set() for s in starts}
    passed = pl.when(pl.col("__both")).then(pl.col("__score").abs()).otherwise(pl.col("__score"))
    for start, name, column, segment in (
        judged.filter(passed > pl.col("__threshold")).select("window_start", *_KEY).iter_rows()
    ):  # alerts only: few
        alerting[start].add((name, column, segment))
    failed = replay.filter(pl.col("failed").fill_null(False))
    for start, column in failed.select("window_start", "column").iter_rows():  # failures: few
        alerting[start].add(("quality", column, ""))
    # The CUSUMs, window after window (a loop over windows, vectorized over the metrics).
    sequential = sorted(calibration.sequential)
    joined = [_SEP.join(k) for k in sequential]
    series = judged.with_columns(pl.concat_str(_KEY, separator=_SEP).alias("__key")).filter(
        pl.col("__key").is_in(joined)
    )
    if series.height:
        h = calibration.cusum_threshold
        wide = series.pivot(on="__key", index="window_start", values="__score").sort("window_start")
        names = [c for c in wide.columns if c != "window_start"]
        keys = [tuple(c.split(_SEP)) for c in names]
        own = [calibration.stats[k] for k in keys]  # type: ignore[index]
        rhos = np.asarray([o.rho for o in own])
        allowances = np.asarray([o.allowance for o in own])
        widenings = np.asarray([o.widening for o in own])
        both = np.asarray([o.two_sided for o in own])
        scale = np.sqrt((1.0 - rhos) / (1.0 + rhos))
        scores = wide.select(names).to_numpy()
        up = np.zeros(len(names))
        down = np.zeros(len(names))
        cap = h + cusum.CAP_MARGIN
        previous_start = None
        for row, start in enumerate(wide["window_start"].to_list()):
            if previous_start is not None and start - previous_start != length:
                up[:] = 0.0
                down[:] = 0.0
            x = np.nan_to_num(np.clip(scores[row] / widenings, -cusum.CLIP, cusum.CLIP)) * scale
            up = np.minimum(cap, np.maximum(0.0, up + x - allowances))
            down = np.where(both, np.minimum(cap, np.maximum(0.0, down - x - allowances)), 0.0)
            # one signed sum per metric, as stored: the larger side
            keep_up = up >= down
            up, down = np.where(keep_up, up, 0.0), np.where(keep_up, 0.0, down)
            state = np.maximum(up, down)
            for j in np.flatnonzero(state > h):
                name, column, segment = keys[j]
                alerting[start].add((CUSUM_PREFIX + name, column, segment))
            previous_start = start
    return [(s, s + length, alerting[s]) for s in starts]


__all__ = [
    "ALLOCATION",
    "CUSUM_PREFIX",
    "MIN_WINDOWS",
    "REPLAY_SCHEMA",
    "AlertBudget",
    "Calibration",
    "HeldOut",
    "KeyStats",
    "Tuned",
    "describe",
    "held_out",
    "null_from_row",
    "rarity",
    "replay_frame",
    "replay_records",
    "tune",
]
