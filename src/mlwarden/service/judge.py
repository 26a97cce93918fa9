"""One window judged: every metric of every family, computed without touching the store.

The service's evaluation (:mod:`mlwarden.service.evaluate`) stores what this returns; the
registry's replay (:mod:`mlwarden.service.replay`) judges the reference's own windows with it,
against evaluators fitted on the rest of the reference, to calibrate the bounds. One code path,
so that what is calibrated is what runs.

For a window's rows:

* the version's quality suite: every check is a metric ``quality`` (1 when it failed, bounded
  at 0 for error checks) and every dimension a ``quality_score``;
* drift of each feature, score and prediction against the drift reference (``drift.<test>``:
  the effect size), each numeric column within its regime where the reference has one, and for
  the whole table the signed shift of each numeric column's median (``drift.location``);
* multivariate drift of the features (``drift.pca``: the mean PCA reconstruction error);
* performance (``performance.<metric>``): the estimate, which uses the labels where they
  arrived; where labels arrived, the metric on the labelled rows alone is
  ``performance.<metric>.realized``;
* the same drift and performance metrics per segment value (``segment="line=L2"``), each
  judged against that segment's own reference;
* ``volume``: the window's rows against the rows the reference makes usual at this phase.

Each bounded metric carries its :class:`~mlwarden.alerting.null.NullModel`; its bounds are set
by the version's :class:`~mlwarden.alerting.calibration.Calibration`, not here.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Final

import polars as pl

from mlwarden.exceptions import MlwardenError
from mlwarden.store.metadata import MetricValue

if TYPE_CHECKING:
    from collections.abc import Iterator
    from datetime import datetime

    from mlwarden.drift import Reference
    from mlwarden.drift.comparison import Alarm
    from mlwarden.performance.estimation import PerformanceEstimator
    from mlwarden.quality import Suite, Validation
    from mlwarden.service.evaluators import Evaluators, SegmentEvaluators

Details = dict[str, tuple[dict[str, Any], bytes | None]]
# The family-wise level of the drift report kept for the drill-down (its own verdicts; the
# alerts come from the calibrated bounds).
REPORT_ALPHA: Final = 0.01
LOCATION: Final = "drift.location"
"""The metric of a numeric column's signed median shift (whole table only)."""


@dataclass(frozen=True)
class Judged:
    """What a window is judged with: the quality suite, the drift reference and the other
    evaluators of a version (or of a replay's fold)."""

    suite: Suite
    drift: Reference
    evaluators: Evaluators | None = None


@dataclass
class Judgement:
    """The metrics of one window, its validation and what the drill-down keeps by kind."""

    metrics: list[MetricValue]
    validation: Validation
    details: Details = field(default_factory=dict)


def judge_window(
    judged: Judged,
    rows: pl.DataFrame,
    *,
    start: datetime,
    now: datetime,
    volume: bool = True,
    family_bounds: bool = True,
) -> Judgement:
    """Judge the rows of the window starting at ``start`` (see the module docstring);
    ``volume`` judges its row count too (not the first window of a stream, often partial).

    With ``family_bounds`` each metric also gets the bounds its own family calibrates (what a
    version registered without an alert calibration is judged by); without, drift skips
    calibrating its thresholds, which the alert calibration replaces anyway."""
    from mlwarden.quality import validate

    evaluators = judged.evaluators
    target = evaluators.target if evaluators is not None else None
    features = rows.drop(target) if target is not None and target in rows else rows
    validation = validate(features, judged.suite, now=now)
    details: Details = {}
    metrics: list[MetricValue] = []
    for result in validation.results:
        metrics.append(
            MetricValue(
                "quality",
                0.0 if result.passed else 1.0,
                upper=0.0 if result.severity == "error" else None,
                column=result.label,
            )
        )
    for dimension, score in validation.scores.items():
        metrics.append(MetricValue("quality_score", score, column=dimension))
    skip = {target, evaluators.prediction if evaluators and evaluators.score else None}
    alarm: Alarm = "calibrated" if family_bounds else "threshold"
    metrics += drift_metrics(judged.drift, features, skip, "", details, alarm=alarm)
    if evaluators is not None:
        metrics += _multivariate(evaluators, features, details)
        metrics += performance_metrics(evaluators.estimator, rows, "", details)
        metrics += _segments(evaluators, rows, target, skip, alarm)
        if volume and evaluators.volume is not None:
            null = evaluators.volume.null(start)
            if null is not None:
                metrics.append(MetricValue("volume", float(rows.height), null=null))
    return Judgement(metrics, validation, details)


def drift_metrics(
    reference: Reference,
    rows: pl.DataFrame,
    skip: set[str | None],
    segment: str,
    details: Details | None = None,
    *,
    alarm: Alarm = "calibrated",
) -> list[MetricValue]:
    """Per-column drift against ``reference``; for the whole table (no ``segment``) the
    window's profile and drift report go into ``details``.

    ``skip`` holds the label (judged by performance) and, for a classifier with a score, its
    thresholded prediction, whose drift the score's already shows."""
    from mlwarden.drift import compare

    columns = [c for c in reference.profile.columns if c in rows.columns and c not in skip]
    if not columns or rows.height == 0:
        return []
    report = compare(reference, rows.select(columns), alpha=REPORT_ALPHA, alarm=alarm)
    if details is not None:
        current = report.current_profile
        assert current is not None
        details["profile"] = ({"rows": rows.height}, current.to_bytes())
        details["drift"] = (report.to_dict(), None)
    metrics = [
        MetricValue(
            f"drift.{drift.test}",
            drift.effect_size,
            upper=drift.threshold,
            column=name,
            segment=segment,
            null=drift.null,
        )
        for name, drift in report.columns.items()
    ]
    if not segment:  # which way each numeric column moved: what a slow ramp adds up
        metrics += [
            MetricValue(LOCATION, drift.shift, column=name, null=drift.shift_null)
            for name, drift in report.columns.items()
            if drift.shift is not None and drift.shift_null is not None
        ]
    return metrics


def _multivariate(
    evaluators: Evaluators, rows: pl.DataFrame, details: Details
) -> list[MetricValue]:
    detector = evaluators.multivariate
    if detector is None:
        return []
    try:
        result = detector.evaluate(rows)
    except MlwardenError as exc:  # a window too small, a feature missing from the logged rows
        details["multivariate"] = ({"error": str(exc)}, None)
        return []
    details["multivariate"] = (result.to_dict(), None)
    # Upper side only: windows that vary less than usual (one recipe all day) are normal in a
    # plant, and flat signals are the quality suite's stuck checks.
    return [
        MetricValue(
            "drift.pca",
            result.statistic,
            upper=result.upper,
            null=detector.null_model(result.n),
        )
    ]


def performance_metrics(
    estimator: PerformanceEstimator | None,
    rows: pl.DataFrame,
    segment: str,
    details: Details | None = None,
) -> list[MetricValue]:
    """Estimated (labels used where known) and realized performance of one window."""
    if estimator is None or rows.height == 0:
        return []
    try:
        result = estimator.estimate(rows, window=rows.height)
    except MlwardenError as exc:  # a score column missing or broken in the logged rows
        if details is not None:
            details["performance"] = ({"error": str(exc)}, None)
        return []
    if details is not None:
        details["performance"] = (result.to_dict(), None)
    metrics = []
    for estimate in result.estimates:
        name = f"performance.{estimate.metric}"
        value = None if estimate.estimated != estimate.estimated else estimate.estimated
        metrics.append(
            MetricValue(
                name,
                value,
                lower=estimate.alert_lower,
                upper=estimate.alert_upper,
                segment=segment,
                null=estimator.null_model(estimate.metric, estimate.n, estimate.n_labelled),
            )
        )
        if estimate.realized is not None and estimate.n_labelled >= estimator.min_labels:
            metrics.append(MetricValue(f"{name}.realized", estimate.realized, segment=segment))
    return metrics


def _segments(
    evaluators: Evaluators,
    rows: pl.DataFrame,
    target: str | None,
    skip: set[str | None],
    alarm: Alarm,
) -> list[MetricValue]:
    """Drift and performance of each known segment value, against that segment's reference."""
    metrics: list[MetricValue] = []
    for name, own, part in segment_parts(evaluators, rows):
        features = part.drop(target) if target is not None and target in part else part
        metrics += drift_metrics(own.drift, features, skip, name, alarm=alarm)
        metrics += performance_metrics(own.estimator, part, name)
    return metrics


def segment_parts(
    evaluators: Evaluators, rows: pl.DataFrame
) -> Iterator[tuple[str, SegmentEvaluators, pl.DataFrame]]:
    """Each known segment value present in the window: its name, evaluators and rows."""
    from mlwarden.service.evaluators import segment_name

    column = evaluators.segment
    if column is None or column not in rows.columns:
        return
    values = rows[column].cast(pl.String)
    for value, own in evaluators.segments.items():  # a handful of segments, not rows
        part = rows.filter(values == value)
        if part.height:
            yield segment_name(column, value), own, part


__all__ = [
    "Judged",
    "Judgement",
    "drift_metrics",
    "judge_window",
    "performance_metrics",
    "segment_parts",
]
