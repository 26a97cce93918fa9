"""What a model version's windows are judged with beyond its quality suite and drift reference.

Fitted once, when a version is registered, on its reference data:

* the **performance estimator**: :class:`~mlwarden.performance.cbpe.CBPE` for a binary
  classifier (a label column with two values and a score column), or
  :class:`~mlwarden.performance.dle.DLE` for a regressor (a numeric label and a numeric
  prediction), fitted on the labelled reference, so that every window gets its performance
  estimated before labels arrive and measured once they have;
* the **multivariate drift** detector (:class:`~mlwarden.drift.pca.PCAReconstruction`) on the
  features, with reference chunks as long as the windows that will be evaluated;
* per **segment** (the values of a segment column such as the production line), a drift
  reference and an estimator fitted on that segment's reference rows, so that a segment is
  judged against itself with the same bounds logic as the whole table;
* the **volume**: the rows a window usually holds, per phase of the day or week where the
  reference shows a cycle in it (a quiet night shift is expected, not an alarm).

Which column plays which part comes from the roles of the reference's schema (given, or inferred
from the names: ``defect`` is a target, ``defect_score`` a score, ``line`` no segment unless
said so). What could not be fitted is said in ``notes`` and stored with the version, never
silently dropped.

The fitted objects hold scikit-learn models, so they are stored with :mod:`pickle`: load them
only from a store you trust, as with any model registry.
"""

from __future__ import annotations

import math
import pickle
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Final

import polars as pl

from mlwarden.exceptions import FormatError, InputError, MlwardenError
from mlwarden.schema import Kind, Role

if TYPE_CHECKING:
    from datetime import datetime

    from mlwarden.alerting.null import NullModel
    from mlwarden.drift import Reference
    from mlwarden.drift.pca import PCAReconstruction
    from mlwarden.drift.regimes import Phase
    from mlwarden.performance.estimation import PerformanceEstimator
    from mlwarden.schema import Schema

__all__ = ["Evaluators", "SegmentEvaluators", "Volume", "fit_evaluators"]

_MAGIC: Final = b"MLWEVAL1"
MAX_SEGMENTS: Final = 20
MIN_SEGMENT_ROWS: Final = 500
MAX_ESTIMATOR_FEATURES: Final = 50
MIN_VOLUME_WINDOWS: Final = 4
VOLUME_SCALE: Final = 0.25
CLASSIFIER_METRICS: Final = ("roc_auc", "f1", "accuracy")
REGRESSOR_METRICS: Final = ("mae", "rmse")


@dataclass
class Volume:
    """The rows per window the reference shows: the median per phase of its cycle (one value
    under ``""`` without a cycle).

    Example:
        >>> from datetime import datetime, UTC
        >>> volume = Volume(rows={"": 480.0})
        >>> round(volume.null(datetime(2024, 1, 1, tzinfo=UTC)).center)
        480
    """

    rows: dict[str, float]
    phase: Phase | None = None
    spread: dict[str, float] = field(default_factory=dict)

    def _phase(self, start: datetime) -> str:
        if self.phase is None:
            return ""
        frame = pl.DataFrame({"t": [start]}).select(self.phase.label("t"))
        return str(frame.item())

    def expected(self, start: datetime) -> float | None:
        """The usual rows of a window starting at ``start``."""
        return self.rows.get(self._phase(start))

    def null(self, start: datetime) -> NullModel | None:
        """The null model of the row count of a window starting at ``start``: on the log
        scale, fewer rows than usual is the bad side (lost data)."""
        from mlwarden.alerting.null import NullModel

        phase = self._phase(start)
        expected = self.rows.get(phase)
        if expected is None or expected <= 0:
            return None
        # Poisson arrivals give the log of a count a standard error of 1/sqrt(count); a
        # quarter at least, so that only a loss of rows worth an incident (about half of them)
        # alarms, not a window cut short by a stop
        # and the phase's own scatter (a quiet night varies more, in proportion, than a day)
        scale = max(1.0 / math.sqrt(expected), VOLUME_SCALE, self.spread.get(phase, 0.0))
        return NullModel(
            "gauss", side="lower", center=expected, scale=scale, log=True, high=math.inf
        )

    @classmethod
    def fit(cls, frame: pl.DataFrame, timestamp: str, window: str) -> Volume | None:
        """From the reference's windows (its first and last, partial, left out)."""
        from mlwarden.drift.regimes import PHASE, Phase, cycling
        from mlwarden.quality._durations import parse_duration

        counts = (
            frame.group_by(pl.col(timestamp).dt.truncate(window).alias("__start"))
            .len()
            .sort("__start")
            .slice(1)
        )
        counts = counts.head(max(0, counts.height - 1))
        if counts.height < MIN_VOLUME_WINDOWS:
            return None
        span = (frame[timestamp].max() - frame[timestamp].min()).total_seconds()  # type: ignore[operator, union-attr]
        phase = Phase.for_window(parse_duration(window, "window", "register"), span)
        logged = counts.with_columns(pl.col("len").cast(pl.Float64).log().alias("__log"))
        if phase is not None:
            labelled = logged.with_columns(phase.label("__start"))
            if cycling(labelled, "__start", ["__log"], phase):
                per_phase = labelled.group_by(PHASE).agg(
                    pl.col("len").median().alias("__median"),
                    pl.col("__log").std().fill_null(0.0).alias("__spread"),
                )
                return cls(
                    {str(p): float(n) for p, n, _ in per_phase.iter_rows()},
                    phase,
                    {str(p): float(sd) for p, _, sd in per_phase.iter_rows()},
                )
        return cls({"": float(counts["len"].median())})  # type: ignore[arg-type]


@dataclass
class SegmentEvaluators:
    """The drift reference and performance estimator of one segment value."""

    drift: Reference
    estimator: PerformanceEstimator | None = None


@dataclass
class Evaluators:
    """The fitted evaluators of one model version, and the roles they read.

    Attributes:
        target: the label column (None: no performance is evaluated).
        score: the classifier's score column.
        prediction: the prediction column.
        id: the column that joins late labels to their rows.
        segment: the segment column (None: no per-segment metrics).
        estimator: the performance estimator fitted on the whole reference.
        multivariate: the PCA reconstruction detector fitted on the features.
        segments: per segment value (as text), its drift reference and estimator.
        notes: what could not be fitted, and why.
        volume: the rows a window usually holds (None without a timestamp).
    """

    target: str | None = None
    score: str | None = None
    prediction: str | None = None
    id: str = "id"
    segment: str | None = None
    estimator: PerformanceEstimator | None = None
    multivariate: PCAReconstruction | None = None
    segments: dict[str, SegmentEvaluators] = field(default_factory=dict)
    notes: tuple[str, ...] = ()
    volume: Volume | None = None

    def to_bytes(self) -> bytes:
        return _MAGIC + pickle.dumps(self, protocol=pickle.HIGHEST_PROTOCOL)

    @classmethod
    def from_bytes(cls, data: bytes) -> Evaluators:
        if not data.startswith(_MAGIC):
            raise FormatError("These bytes are not mlwarden evaluators (wrong header).")
        value = pickle.loads(data[len(_MAGIC) :])  # the store's own artifact (see above)
        if not isinstance(value, cls):
            raise FormatError("These bytes do not hold mlwarden evaluators.")
        return value

    def summary(self) -> dict[str, Any]:
        """Plain data for the version's metadata."""
        return {
            "target": self.target,
            "score": self.score,
            "prediction": self.prediction,
            "id": self.id,
            "segment": self.segment,
            "estimator": None if self.estimator is None else self.estimator.method,
            "metrics": [] if self.estimator is None else list(self.estimator.metrics_),
            "multivariate": self.multivariate is not None,
            "segments": sorted(self.segments),
            "notes": list(self.notes),
        }


def fit_evaluators(
    frame: pl.DataFrame,
    schema: Schema,
    *,
    window: str = "1h",
    timestamp: str | None = None,
    id: str = "id",
    segment: str | None = None,
    drift: Reference | None = None,
    chunks: int | None = None,
) -> Evaluators:
    """Fit the evaluators of a version on its reference ``frame`` (see the module docstring);
    a segment's regimes borrow the whole reference's (``drift``) where the segment has too few
    rows of a regime value. ``chunks`` sets the segments' drift reference chunks (their
    thresholds' calibration; the default suits a stored version)."""
    notes: list[str] = []
    roles = {c.name: c.role for c in schema}
    target = _first(schema, Role.TARGET)
    score = _first(schema, Role.SCORE)
    prediction = _first(schema, Role.PREDICTION)
    if segment is None:
        segment = _first(schema, Role.SEGMENT)
    elif segment not in frame.columns:
        raise InputError(f"The segment column {segment!r} is not in the reference.", column=segment)
    features = [
        c.name
        for c in schema
        if c.role is Role.FEATURE
        and c.kind in (Kind.NUMERIC, Kind.CATEGORICAL, Kind.BOOLEAN)
        and c.name not in (segment, id)
    ]
    evaluators = Evaluators(target=target, score=score, prediction=prediction, id=id)
    evaluators.estimator = _estimator(
        frame, target, score, prediction, features, notes, "", window, timestamp
    )
    evaluators.multivariate = _multivariate(frame, features, window, timestamp, notes)
    if timestamp is not None and frame.schema.get(timestamp, pl.Null).is_temporal():
        evaluators.volume = Volume.fit(frame.sort(timestamp), timestamp, window)
    if segment is not None:
        evaluators.segment = segment
        evaluators.segments = _segments(
            frame, segment, roles, evaluators.estimator, features, notes, window, timestamp, chunks
        )
        if drift is not None:
            for own in evaluators.segments.values():  # a handful of segments
                own.drift.regimes.fill_from(drift.regimes)
    evaluators.notes = tuple(notes)
    return evaluators


def _first(schema: Schema, role: Role) -> str | None:
    return next((c.name for c in schema if c.role is role), None)


def _estimator(
    frame: pl.DataFrame,
    target: str | None,
    score: str | None,
    prediction: str | None,
    features: list[str],
    notes: list[str],
    where: str,
    window: str,
    timestamp: str | None,
) -> PerformanceEstimator | None:
    """CBPE for a binary classifier, DLE for a regressor; None (with a note) otherwise."""
    from mlwarden.performance.cbpe import CBPE
    from mlwarden.performance.dle import DLE

    if target is None:
        if not where:
            notes.append("performance: no target column in the reference; none is evaluated.")
        return None
    labelled = frame.filter(pl.col(target).is_not_null())
    distinct = labelled[target].n_unique()
    estimator: PerformanceEstimator
    if distinct == 2 and score is not None:
        estimator = CBPE(y_score=score, y_true=target, metrics=CLASSIFIER_METRICS)
    elif distinct > 2 and prediction is not None and labelled[target].dtype.is_numeric():
        estimator = DLE(
            y_pred=prediction,
            y_true=target,
            features=features[:MAX_ESTIMATOR_FEATURES],
            metrics=REGRESSOR_METRICS,
        )
    else:
        notes.append(
            f"performance{where}: '{target}' has {distinct} values; estimating needs a binary "
            "label with a score column or a numeric label with a prediction column."
        )
        return None
    try:
        estimator.fit(labelled)
    except MlwardenError as exc:
        notes.append(f"performance{where}: {exc}")
        return None
    if timestamp is not None:
        estimator.calibrate_windows(labelled.sort(timestamp), window=window, timestamp=timestamp)
    return estimator


def _multivariate(
    frame: pl.DataFrame, features: list[str], window: str, timestamp: str | None, notes: list[str]
) -> PCAReconstruction | None:
    """PCA reconstruction on the features, its chunks as long as a typical window."""
    from mlwarden.drift.pca import PCAReconstruction

    if len(features) < 2:
        notes.append("multivariate drift: fewer than 2 feature columns.")
        return None
    chunk = None
    if timestamp is not None and frame.schema.get(timestamp, pl.Null).is_temporal():
        sizes = frame.group_by(pl.col(timestamp).dt.truncate(window)).len()["len"]
        chunk = max(int(sizes.median() or 0), 10)  # type: ignore[arg-type]
        chunk = min(chunk, frame.height // 4)
    try:
        return PCAReconstruction(columns=features, chunk_size=chunk).fit(frame)
    except MlwardenError as exc:
        notes.append(f"multivariate drift: {exc}")
        return None


def _segments(
    frame: pl.DataFrame,
    segment: str,
    roles: dict[str, Role],
    estimator: PerformanceEstimator | None,
    features: list[str],
    notes: list[str],
    window: str,
    timestamp: str | None,
    chunks: int | None = None,
) -> dict[str, SegmentEvaluators]:
    """A drift reference and an estimator per segment value with enough reference rows."""
    from mlwarden.drift import Reference
    from mlwarden.drift.reference import DEFAULT_CHUNKS

    counts = (
        frame.group_by(segment)
        .len()
        .filter(pl.col(segment).is_not_null())
        .sort(["len", segment], descending=[True, False])
    )
    small = counts.filter(pl.col("len") < MIN_SEGMENT_ROWS).height
    if small:
        notes.append(
            f"segments: {small} values of '{segment}' have fewer than {MIN_SEGMENT_ROWS} "
            "reference rows and get no metrics of their own."
        )
    kept = counts.filter(pl.col("len") >= MIN_SEGMENT_ROWS)
    if kept.height > MAX_SEGMENTS:
        notes.append(
            f"segments: '{segment}' has {kept.height} values; the {MAX_SEGMENTS} largest get "
            "metrics of their own."
        )
    out: dict[str, SegmentEvaluators] = {}
    target = next((n for n, r in roles.items() if r is Role.TARGET), None)
    score = next((n for n, r in roles.items() if r is Role.SCORE), None)
    prediction = next((n for n, r in roles.items() if r is Role.PREDICTION), None)
    for value in kept[segment].head(MAX_SEGMENTS).to_list():
        part = frame.filter(pl.col(segment) == value)
        name = segment_name(segment, value)
        drift = Reference.fit(
            part,
            roles={k: v for k, v in roles.items() if k in part.columns},
            timestamp=timestamp,
            window=window,
            chunks=chunks or DEFAULT_CHUNKS,
        )
        own = None
        if estimator is not None:
            own = _estimator(
                part, target, score, prediction, features, notes, f" ({name})", window, timestamp
            )
        out[str(value)] = SegmentEvaluators(drift=drift, estimator=own)
    return out


def segment_name(column: str, value: object) -> str:
    """How a segment is named in metrics: ``line=L2``."""
    return f"{column}={value}"
