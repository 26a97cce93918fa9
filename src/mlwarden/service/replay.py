"""The reference replayed window by window: what a version's alert calibration learns from.

A version is judged, in production, against evaluators fitted on its reference. To learn how
its metrics behave on clean data *of the same kind* — same window length, same autocorrelation,
same daily cycle, same recipes — the reference is cut into the version's windows and split into
``folds`` blocks of consecutive windows; each block's windows are judged by
:func:`~mlwarden.service.judge.judge_window`, the code production windows go through, against a
suite, drift reference and evaluators fitted on the other blocks (less one window on each side,
so that a held-out window's next-door neighbour, which it resembles most, is not in the fit).
Every metric of every judged window becomes a row of the replay table
(:data:`~mlwarden.alerting.calibration.REPLAY_SCHEMA`): its nominal z, and for quality checks
whether the check failed.

A learned check that fails on held-out windows would fail on production windows just as often.
Such a check is widened (its limit moved past what the held-out windows showed, with a margin),
made rate-based (duplicate timestamps: at most the share the reference shows) or, when neither
is possible, set to warn instead of alarm (:func:`adjust_suite`); the replay records each
failure and what was done.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, Final

import polars as pl

from mlwarden.alerting.calibration import replay_frame, replay_records
from mlwarden.exceptions import MlwardenError
from mlwarden.quality._durations import parse_duration
from mlwarden.service.judge import Judged, judge_window, performance_metrics, segment_parts

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping, Sequence

    from mlwarden.quality import Suite
    from mlwarden.quality.base import Check
    from mlwarden.schema import Schema
    from mlwarden.store.metadata import MetricValue

FOLDS: Final = 5
"""Blocks of consecutive windows the reference is cross-fitted in."""
BUFFER: Final = timedelta(days=1)
"""Left out of a fold's fit on each side of its held-out block (fewer on a short reference)."""
MIN_FOLD_WINDOWS: Final = 2
"""The fewest windows a block holds: a shorter reference is replayed in fewer blocks."""
RELAX_MARGIN: Final = 1.5
"""A widened limit lies this many times as far out as the held-out windows reached."""
BUDGET_MARGIN: Final = 1.01
"""A limit set at its budgeted quantile lies just past it."""
MIN_MEASURED: Final = 8
"""Fewer held-out measurements than this fit no extreme-value distribution."""
_EULER: Final = 0.5772156649015329
_WINDOW: Final = "__window"


@dataclass(frozen=True)
class VersionSpec:
    """How a version's parts are fitted from a reference (the arguments of ``register``)."""

    roles: Mapping[str, str] | None = None
    timestamp: str | None = None
    entity: str | Sequence[str] | None = None
    tag: str | None = None
    id: str | Sequence[str] | None = None
    segment: str | None = None
    window: str = "1h"
    suite: Suite | None = None

    @property
    def id_column(self) -> str:
        return self.id if isinstance(self.id, str) else "id"


# A replay's fold references are compared with the calibration's bounds, never with their own
# chunk-calibrated thresholds: two chunks (the fewest) are all they need.
FOLD_CHUNKS: Final = 2


def fit_parts(
    frame: pl.DataFrame, spec: VersionSpec, *, chunks: int | None = None
) -> tuple[Judged, Schema]:
    """The suite (learned unless given), drift reference and evaluators of a reference
    (``chunks``: of the drift references; the default suits a stored version)."""
    from mlwarden.drift import Reference
    from mlwarden.drift.reference import DEFAULT_CHUNKS
    from mlwarden.quality import suggest_suite
    from mlwarden.schema import Role, infer_schema
    from mlwarden.service.evaluators import fit_evaluators

    schema = infer_schema(frame, roles=spec.roles)
    drift = Reference.fit(
        frame,
        roles=spec.roles,
        timestamp=spec.timestamp,
        window=spec.window,
        chunks=chunks or DEFAULT_CHUNKS,
    )
    suite = spec.suite
    if suite is None:
        # Labels arrive apart from the rows they label: the suite judges the rows only.
        targets = [c.name for c in schema if c.role is Role.TARGET]
        suite = allow_column(
            suggest_suite(
                frame.drop(targets),
                timestamp=spec.timestamp,
                entity=spec.entity,
                tag=spec.tag,
                id=spec.id,
                roles={c.name: c.role for c in schema if c.role is not Role.TARGET},
                # with a timestamp the replay measures the failure rate on every window
                holdout=0.0 if spec.timestamp is not None else 0.3,
            ),
            spec.id_column,
        )
    evaluators = fit_evaluators(
        frame,
        schema,
        window=spec.window,
        timestamp=spec.timestamp,
        id=spec.id_column,
        segment=spec.segment,
        drift=drift,
        chunks=chunks,
    )
    return Judged(suite, drift, evaluators), schema


@dataclass(frozen=True)
class Replay:
    """The replay table, the window each fold's windows start at, and how long it took."""

    table: pl.DataFrame
    windows: int
    folds: int
    seconds: float
    fold_of: dict[datetime, int]
    observed: dict[str, list[Any]]
    measured: dict[str, list[float]]


def replay(
    frame: pl.DataFrame,
    spec: VersionSpec,
    *,
    folds: int = FOLDS,
    progress: Callable[[str], None] | None = None,
) -> Replay | None:
    """Judge every window of the reference against parts fitted on the other folds (see the
    module docstring); None when the reference has no timestamp or too few windows."""
    began = time.perf_counter()
    timestamp = spec.timestamp
    if timestamp is None or not frame.schema.get(timestamp, pl.Null).is_temporal():
        return None
    keyed = frame.sort(timestamp).with_columns(
        pl.col(timestamp).dt.truncate(spec.window).alias(_WINDOW)
    )
    starts = keyed[_WINDOW].unique().sort().to_list()
    n_folds = min(folds, len(starts) // MIN_FOLD_WINDOWS)
    if n_folds < 2:
        return None
    fold_of = {s: i * n_folds // len(starts) for i, s in enumerate(starts)}
    length = timedelta(seconds=parse_duration(spec.window, "window", "register"))
    gap = min(
        max(1, math.ceil(BUFFER.total_seconds() / length.total_seconds())),
        max(1, len(starts) // (4 * n_folds)),
    )
    position = {s: i for i, s in enumerate(starts)}
    records: list[dict[str, Any]] = []
    observed: dict[str, list[Any]] = {}
    measured: dict[str, list[float]] = {}
    for fold in range(n_folds):  # a few folds, each one fit
        held = [s for s in starts if fold_of[s] == fold]
        first, last = position[held[0]], position[held[-1]]
        # the held-out block and a day either side of it stay out of the fit: next-door
        # windows resemble it more than production, weeks later, resembles the reference
        buffer = set(starts[max(0, first - gap) : last + 1 + gap])
        train = keyed.filter(~pl.col(_WINDOW).is_in(list(buffer))).drop(_WINDOW)
        if progress is not None:
            progress(f"replaying fold {fold + 1} of {n_folds}")
        try:
            judged, _ = fit_parts(train, replace(spec, suite=spec.suite), chunks=FOLD_CHUNKS)
        except MlwardenError as exc:  # a fold too small to fit is reported, not fatal
            if progress is not None:
                progress(f"fold {fold + 1} could not be fitted: {exc}")
            continue
        part = keyed.filter(pl.col(_WINDOW).is_in(held))
        for (start,), rows in part.partition_by(_WINDOW, as_dict=True).items():
            assert isinstance(start, datetime)
            edge = position[start] in (0, len(starts) - 1)  # partial windows: no volume
            judgement = judge_window(
                judged,
                rows.drop(_WINDOW),
                start=start,
                now=start + length,
                volume=not edge,
                family_bounds=False,
            )
            records += replay_records(start, fold, judgement.metrics)
            records += replay_records(start, fold, _unlabelled(judged, rows.drop(_WINDOW)))
            for result in judgement.validation.results:  # the suite's checks
                if result.severity != "error":
                    continue
                if not result.passed:
                    observed.setdefault(result.label, []).append(result.observed)
                value = result.observed
                if isinstance(value, int | float) and not isinstance(value, bool):
                    measured.setdefault(result.label, []).append(float(value))
    table = replay_frame(records)
    return Replay(
        table, len(starts), n_folds, time.perf_counter() - began, fold_of, observed, measured
    )


def _unlabelled(judged: Judged, rows: pl.DataFrame) -> list[MetricValue]:
    """The performance estimates of a window before any label arrives (the judgement saw every
    label): production windows start unlabelled, and an estimate varies less than a realized
    value, so both are calibrated."""
    evaluators = judged.evaluators
    if evaluators is None or evaluators.target is None or evaluators.target not in rows.columns:
        return []
    target = evaluators.target
    hidden = rows.with_columns(pl.lit(None, dtype=rows.schema[target]).alias(target))
    metrics = performance_metrics(evaluators.estimator, hidden, "")
    for name, own, part in segment_parts(evaluators, hidden):
        metrics += performance_metrics(own.estimator, part, name)
    return [m for m in metrics if m.null is not None]


def explanation_records(
    attributions: pl.DataFrame | None,
    features: Sequence[str],
    fold_of: Mapping[datetime, int],
    block_starts: Mapping[int, datetime],
) -> list[dict[str, Any]]:
    """Replay records of the explanation metrics: each explained reference window judged
    against the other explained windows (:func:`mlwarden.explanation.drift.replay`)."""
    from mlwarden.explanation.drift import replay as replay_explanations

    if attributions is None:
        return []
    folds = {b: fold_of[s] for b, s in block_starts.items() if s in fold_of}
    records: list[dict[str, Any]] = []
    for block, metrics in replay_explanations(attributions, features, folds):  # twenty or so
        start = block_starts.get(block)
        if start is None:
            continue
        records += replay_records(start, fold_of.get(start, 0), metrics)
    return records


# -- learned checks that fail on held-out windows ---------------------------------------------


@dataclass(frozen=True)
class Adjustment:
    """What was done to a learned check that failed on held-out reference windows."""

    check: str
    failed: int
    windows: int
    action: str
    detail: str

    def to_dict(self) -> dict[str, Any]:
        return {
            "check": self.check,
            "failed": self.failed,
            "windows": self.windows,
            "action": self.action,
            "detail": self.detail,
        }


def adjust_suite(
    suite: Suite,
    table: pl.DataFrame,
    observed: Mapping[str, list[Any]],
    measured: Mapping[str, list[float]] | None = None,
    chance: float | None = None,
) -> tuple[Suite, list[Adjustment]]:
    """The suite with its learned checks kept inside the budget (see the module docstring).

    ``observed`` holds, per check label, what the failing held-out windows measured: such a
    check is widened past it, made rate-based or set to warn. ``measured`` holds what every
    held-out window measured for checks judged on one number (the largest spike, the longest
    flat run or gap, a share of nulls or duplicates): fitted with a Gumbel distribution (the
    law of a window's largest value), its quantile at ``chance`` (the check's share of the
    quality budget per window) is where the check's limit goes when it lies further out than
    the learned one — bursts that the reference shows once in forty windows come once in a
    few hundred in production."""
    quality = table.filter(pl.col("failed").is_not_null())
    counts = quality.group_by("column").agg(failed=pl.col("failed").sum(), windows=pl.len())
    tally = {c: (int(f), int(w)) for c, f, w in counts.iter_rows()}  # per check
    adjustments = []
    checks: list[Check] = []
    for check in suite.checks:  # the suite's checks, a few dozen
        label = f"{check.key}({check.subject})" if check.subject else check.key
        failed, windows = tally.get(label, (0, 0))
        if check.level != "error":
            checks.append(check)
            continue
        adjusted = check
        if failed:
            widened = check.relaxed(observed.get(label, []), RELAX_MARGIN)
            if widened is None and not check.limit_parameters:
                # nothing to widen (a new category is no wider limit): it warns instead
                warns = replace(check, severity="warning")
                checks.append(warns)
                adjustments.append(
                    Adjustment(label, failed, windows, "warns", "no longer raises an alert")
                )
                continue
            # None: the limit learned on the whole reference covers what the folds missed
            adjusted = widened or check
        values = (measured or {}).get(label, [])
        if chance is not None and len(values) >= MIN_MEASURED:
            limit = gumbel_quantile(values, chance)
            budgeted = None if limit is None else adjusted.relaxed([limit], BUDGET_MARGIN)
            adjusted = budgeted or adjusted
        checks.append(adjusted)
        if adjusted is not check:
            detail = adjusted.describe_limit()
            if not failed:
                detail += " (its extreme-value quantile at the budget)"
            adjustments.append(Adjustment(label, failed, windows, "widened", detail))
        elif failed:
            adjustments.append(
                Adjustment(
                    label,
                    failed,
                    windows,
                    "kept",
                    f"{check.describe_limit()}, learned on the whole reference, covers what "
                    "the held-out windows showed",
                )
            )
    return replace(suite, checks=tuple(checks)), adjustments


def gumbel_quantile(values: Sequence[float], chance: float) -> float | None:
    """The value a window's largest measurement exceeds with probability ``chance``, from a
    Gumbel distribution fitted by moments on held-out windows' measurements (None when they
    do not vary).

    Example:
        >>> import numpy as np
        >>> maxima = np.random.default_rng(0).gumbel(5.0, 2.0, 400)
        >>> round(gumbel_quantile(maxima.tolist(), 1e-4))
        24
    """
    import numpy as np

    finite = np.asarray([v for v in values if math.isfinite(v)], dtype=np.float64)
    if finite.size < 2:
        return None
    spread = float(finite.std(ddof=1))
    if not spread > 0:
        return None
    scale = spread * math.sqrt(6.0) / math.pi
    location = float(finite.mean()) - _EULER * scale
    return location - scale * math.log(-math.log1p(-chance))


def allow_column(suite: Suite, column: str) -> Suite:
    """The suite with ``column`` (the row id the client adds) allowed in logged rows."""
    from mlwarden.quality.schema import NoExtraColumns

    checks = tuple(
        replace(c, columns=(*c.columns, column))
        if isinstance(c, NoExtraColumns) and column not in c.columns
        else c
        for c in suite.checks
    )
    return replace(suite, checks=checks)


def block_starts(frame: pl.DataFrame, timestamp: str, window: str) -> dict[int, datetime]:
    """The window start of each explained block (blocks number the reference's windows in
    time order from 1, as :func:`mlwarden.registry._explained` cuts them)."""
    starts = frame[timestamp].dt.truncate(window).unique().sort().to_list()
    return {i + 1: s for i, s in enumerate(starts)}


def typical_rows(table: pl.DataFrame) -> float:
    """Rows of a typical replayed window (nan without volume rows)."""
    volume = table.filter(pl.col("name") == "volume")["value"]
    return float(volume.median()) if volume.len() else math.nan  # type: ignore[arg-type]


__all__ = [
    "FOLDS",
    "Adjustment",
    "Replay",
    "VersionSpec",
    "adjust_suite",
    "allow_column",
    "explanation_records",
    "fit_parts",
    "replay",
]
