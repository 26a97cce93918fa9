"""Confidence-based performance estimation (CBPE) of classifiers from their scores alone.

A classifier that outputs calibrated probabilities says how often it expects to be right: a row
scored 0.8 is a positive with probability 0.8. Summing those probabilities over a window gives the
expected confusion matrix -- and from it the expected accuracy, precision, recall and F1 -- and
the expected ROC curve, without a single label. Scores are first calibrated by isotonic regression
fitted on the reference (cross-fitted there, so that the calibration check is not optimistic).
The estimate holds while the relation between scores and outcomes stays as in the reference
(covariate shift is fine, concept drift is not); the applicability warnings say when it does not.

Multiclass classifiers are estimated one class against the rest and macro-averaged (accuracy is
the expected share of correct predictions). Their scores, one column per class, are calibrated
class by class and renormalized to sum to 1; with ``calibration="none"`` they must already sum
to 1 (within 0.01) in every row, or fitting raises an :class:`~mlwarden.exceptions.InputError`.
A class whose metric is undefined in a window (precision when it is never predicted) is left out
of the macro average rather than counted as 0; a metric undefined for every class is NaN.

Realized metrics are computed by the same code from the labels (probabilities of 0 or 1); they
equal scikit-learn's ``roc_auc_score``, ``f1_score``, ``accuracy_score``, ``precision_score``
and ``recall_score`` (``average="macro"``, ``multi_class="ovr"``) wherever those are defined.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from numbers import Real
from typing import TYPE_CHECKING, Any, ClassVar, Final, Literal

import numpy as np
import polars as pl
from sklearn.isotonic import isotonic_regression
from sklearn.model_selection import KFold

from mlwarden.exceptions import InputError, ParameterError
from mlwarden.frames import to_polars
from mlwarden.performance.estimation import (
    CHANCE_FACTOR,
    POOR_CALIBRATION,
    PerformanceEstimator,
    RowArrays,
    Support,
    probability_column,
    reliability,
    require_columns,
    row_means,
    safe_divide,
    window_sizes,
    window_sums,
)

if TYPE_CHECKING:
    from typing import Self

    from numpy.typing import NDArray

__all__ = ["CBPE", "Isotonic"]

Task = Literal["binary", "multiclass"]
Calibration = Literal["isotonic", "none"]

# Multiclass scores may be off 1 by this much in a row and still count as probabilities.
SUM_TOLERANCE: Final = 0.01


class CBPE(PerformanceEstimator):
    """Estimate a classifier's accuracy, precision, recall, F1 and ROC AUC per window, unlabelled.

    Parameters:
        task: ``"binary"`` or ``"multiclass"``.
        y_score: binary: the column of the positive class's probability. Multiclass: a mapping
            of class to column (``{"a": "p_a", "b": "p_b"}``) or a list of columns in the order
            of ``classes``.
        y_true: the label column (required in the reference; optional, and may be partly null,
            in the analysis data).
        y_pred: the column of the model's predicted class; default: binary, ``y_score >=
            threshold``; multiclass, the class of the highest score.
        metrics: any of ``"accuracy"``, ``"f1"``, ``"precision"``, ``"recall"``, ``"roc_auc"``.
        classes: binary: ``(negative, positive)``; multiclass: the class of each score column.
            Default: the sorted distinct labels of the reference (so 1 or True is positive).
        threshold: the score from which the binary prediction is positive, without ``y_pred``.
        calibration: ``"isotonic"`` (fitted on the reference) or ``"none"`` (the scores are
            taken as calibrated probabilities).
        folds: the folds of the cross-fitted calibration used to check it on the reference.
        sigmas: the half-width of bands and alert bounds, in sampling errors; also the
            difference between realized and estimated that counts as concept drift.
        min_window_rows: windows with fewer rows get a ``small_window`` warning.
        calibration_limit: the expected calibration error on the reference above which
            ``poor_calibration`` is warned (when also above chance).
        support_limit: the share of rows with a score outside the reference's range (or in a
            score bin empty in the reference) above which ``out_of_support`` is warned.
        min_labels: the labelled rows a window needs before concept drift is checked.
        random_state: the seed of the folds and of the sampling-error bootstrap.

    Example:
        >>> import numpy as np
        >>> import polars as pl
        >>> rng = np.random.default_rng(0)
        >>> p = rng.uniform(size=6000)
        >>> y = (rng.uniform(size=6000) < p).astype(int)
        >>> reference = pl.DataFrame({"score": p[:2000], "y": y[:2000]})
        >>> cbpe = CBPE(y_score="score", y_true="y", metrics=("roc_auc", "accuracy"))
        >>> result = cbpe.fit(reference).estimate(pl.DataFrame({"score": p[2000:]}), window=2000)
        >>> [round(v, 2) for v in result.to_df().filter(metric="roc_auc")["estimated"]]
        [0.84, 0.85]
    """

    method: ClassVar[str] = "cbpe"
    available_metrics: ClassVar[tuple[str, ...]] = (
        "accuracy",
        "f1",
        "precision",
        "recall",
        "roc_auc",
    )
    domain: ClassVar[tuple[float, float]] = (0.0, 1.0)

    classes_: tuple[Any, ...]
    score_columns_: tuple[str, ...]
    calibrators_: tuple[Isotonic, ...]

    def __init__(
        self,
        task: Task = "binary",
        *,
        y_score: str | Sequence[str] | Mapping[Any, str],
        y_true: str,
        y_pred: str | None = None,
        metrics: Sequence[str] = ("roc_auc", "f1", "accuracy", "precision", "recall"),
        classes: Sequence[Any] | None = None,
        threshold: float = 0.5,
        calibration: Calibration = "isotonic",
        folds: int = 5,
        sigmas: float = 3.0,
        min_window_rows: int = 100,
        calibration_limit: float = 0.03,
        support_limit: float = 0.05,
        min_labels: int = 30,
        random_state: int = 0,
    ) -> None:
        self.task = task
        self.y_score = y_score
        self.y_true = y_true
        self.y_pred = y_pred
        self.metrics = metrics
        self.classes = classes
        self.threshold = threshold
        self.calibration = calibration
        self.folds = folds
        self.sigmas = sigmas
        self.min_window_rows = min_window_rows
        self.calibration_limit = calibration_limit
        self.support_limit = support_limit
        self.min_labels = min_labels
        self.random_state = random_state

    def __repr__(self) -> str:
        return (
            f"CBPE(task={self.task!r}, y_score={self.y_score!r}, y_true={self.y_true!r}, "
            f"metrics={tuple(self.metrics)!r})"
        )

    # -- fit ------------------------------------------------------------------------------------

    def fit(self, reference: object) -> Self:
        """Calibrate the scores on a labelled reference and measure its sampling errors.

        Parameters:
            reference: data with the score columns and a label in every row (anything
                :func:`mlwarden.frames.to_polars` reads), typically the model's test data.

        Raises:
            ParameterError: a parameter is outside its allowed values.
            InputError: a column is missing, a score is not a probability, a label is null, or
                the reference lacks one of the classes.
        """
        self.metrics_ = self._check_parameters()
        frame = to_polars(reference)
        score_columns = self._score_columns()
        require_columns(frame, self._roles(score_columns), "CBPE")
        self._check_reference_size(frame)
        self.score_columns_ = score_columns
        self.classes_ = self._learn_classes(frame[self.y_true])
        rows = self._rows(frame, reference=True)
        score, target = rows["score"], _one_hot(rows["y"], rows["score"])
        self.calibrators_ = ()
        if self.calibration == "isotonic":
            # One sort per class serves the final calibrators and every fold.
            orders = [np.argsort(score[:, k], kind="stable") for k in _classes(score)]
            crossed = self._cross_fitted(score, target, orders)
            self.calibrators_ = tuple(
                Isotonic.fit(score[order, k], target[order, k]) for k, order in enumerate(orders)
            )
        else:
            crossed = _normalized(score)
        self.calibration_error_ = self._check_calibration(crossed, target)
        self.support_ = Support.fit(score)
        self._fit_reference(rows)
        return self

    def _check_parameters(self) -> tuple[str, ...]:
        metrics = self._check_common()
        if self.task not in ("binary", "multiclass"):
            raise ParameterError(
                f"The 'task' parameter of CBPE must be 'binary' or 'multiclass'; got "
                f"{self.task!r}. For a regressor use DLE.",
                parameter="task",
            )
        if self.calibration not in ("isotonic", "none"):
            raise ParameterError(
                "The 'calibration' parameter of CBPE must be 'isotonic' or 'none'; got "
                f"{self.calibration!r}.",
                parameter="calibration",
            )
        threshold = self.threshold
        if isinstance(threshold, bool) or not isinstance(threshold, int | float):
            threshold = math.nan
        if not 0.0 <= threshold <= 1.0:
            raise ParameterError(
                f"The 'threshold' parameter of CBPE must be a number in [0, 1]; got "
                f"{self.threshold!r}.",
                parameter="threshold",
            )
        return metrics

    def _score_columns(self) -> tuple[str, ...]:
        """The score columns, one per class (one for a binary task)."""
        y_score = self.y_score
        if self.task == "binary":
            if not isinstance(y_score, str):
                raise ParameterError(
                    "For task='binary' the 'y_score' parameter of CBPE must be the name of the "
                    f"column with the positive class's probability; got {y_score!r}.",
                    parameter="y_score",
                )
            return (y_score,)
        if isinstance(y_score, str) or not isinstance(y_score, Mapping | Sequence):
            raise ParameterError(
                "For task='multiclass' the 'y_score' parameter of CBPE must map each class to "
                f"its score column, or list the score columns; got {y_score!r}.",
                parameter="y_score",
            )
        columns = tuple(y_score.values()) if isinstance(y_score, Mapping) else tuple(y_score)
        if len(columns) < 3 or len(set(columns)) != len(columns):
            raise ParameterError(
                "For task='multiclass' the 'y_score' parameter of CBPE needs one distinct score "
                f"column per class, at least 3; got {y_score!r}. Two classes are task='binary'.",
                parameter="y_score",
            )
        return columns

    def _roles(self, score_columns: Sequence[str]) -> dict[str, str | None]:
        roles: dict[str, str | None] = {}
        for position, name in enumerate(score_columns):
            which = "" if len(score_columns) == 1 else f" of class #{position}"
            roles[f"the scores{which} (y_score)"] = name
        roles["the labels (y_true)"] = self.y_true
        roles["the predictions (y_pred)"] = self.y_pred
        return roles

    def _learn_classes(self, labels: pl.Series) -> tuple[Any, ...]:
        seen = labels.drop_nulls().unique().sort().to_list()
        if isinstance(self.y_score, Mapping) and self.task == "multiclass":
            classes = tuple(self.y_score)
        elif self.classes is not None:
            classes = tuple(self.classes)
        else:
            classes = tuple(seen)
        wanted = len(self.score_columns_) if self.task == "multiclass" else 2
        if self.task == "binary" and self.classes is None and len(seen) > 2:
            raise InputError(
                f"Column '{self.y_true}' (the labels) has {len(seen)} classes in the reference "
                f"({_shown(seen)}); binary CBPE needs 2. Use task='multiclass'.",
                column=self.y_true,
            )
        if self.task == "binary" and self.classes is None and len(seen) < 2:
            raise InputError(
                f"Column '{self.y_true}' (the labels) holds a single class in the reference "
                f"({_shown(seen)}); CBPE needs both classes to calibrate the scores. Use a "
                "reference where the model meets positives and negatives.",
                column=self.y_true,
            )
        if len(classes) != wanted or len(set(classes)) != len(classes):
            raise ParameterError(
                f"CBPE needs {wanted} distinct classes, one per score column; got classes="
                f"{_shown(list(classes))} for the reference labels {_shown(seen)}. Pass "
                "'classes' in the order of the score columns.",
                parameter="classes",
            )
        missing = [c for c in classes if c not in set(seen)]
        if missing:
            raise InputError(
                f"Column '{self.y_true}' (the labels) never holds the class {missing[0]!r} in the "
                f"reference (it holds {_shown(seen)}); CBPE needs every class in the reference to "
                "calibrate its score. Use a reference where every class occurs.",
                column=self.y_true,
            )
        return classes

    def _cross_fitted(
        self,
        score: NDArray[np.float64],
        target: NDArray[np.float64],
        orders: Sequence[NDArray[np.int64]],
    ) -> NDArray[np.float64]:
        """Out-of-fold calibrated probabilities of the reference rows, renormalized."""
        folds = KFold(n_splits=self.folds, shuffle=True, random_state=self.random_state)
        crossed = np.empty_like(score)
        for _, test in folds.split(score):
            held_out = np.zeros(score.shape[0], dtype=bool)
            held_out[test] = True
            for k, order in enumerate(orders):
                train, predict = order[~held_out[order]], order[held_out[order]]
                model = Isotonic.fit(score[train, k], target[train, k])
                crossed[predict, k] = model.predict(score[predict, k])
        return _normalized(crossed)

    def _check_calibration(self, prob: NDArray[np.float64], target: NDArray[np.float64]) -> float:
        """Expected calibration error on the reference; sets the fit warnings."""
        results = [reliability(target[:, k], prob[:, k]) for k in _classes(prob)]
        error = float(np.mean([r[0] for r in results]))
        chance = float(np.mean([r[1] for r in results]))
        warnings: list[str] = []
        if error > self.calibration_limit and error > CHANCE_FACTOR * chance:
            what = "cross-fitted calibrated" if self.calibration == "isotonic" else "raw"
            fix = (
                "the scores do not rank the rows consistently with the outcomes; check the model"
                if self.calibration == "isotonic"
                else "use calibration='isotonic'"
            )
            warnings.append(
                f"{POOR_CALIBRATION}: the {what} scores disagree with the reference's outcomes: "
                f"expected calibration error {error:.3f} > {self.calibration_limit:g} (chance "
                f"level {chance:.3f}). Every estimate may be biased; {fix}."
            )
        self.fit_warnings_ = tuple(warnings)
        return error

    # -- reading rows ---------------------------------------------------------------------------

    def _rows(self, frame: pl.DataFrame, *, reference: bool) -> RowArrays:
        columns = self.score_columns_
        roles = self._roles(columns)
        if not reference:
            del roles["the labels (y_true)"]
        require_columns(frame, roles, "CBPE")
        score = np.column_stack(
            [probability_column(frame, name, "a score (y_score)") for name in columns]
        ).reshape(frame.height, len(columns))
        if self.task == "multiclass" and self.calibration == "none":
            _check_sums(score, columns)
        if self.y_pred is not None:
            pred = self._codes(frame[self.y_pred], "the predictions (y_pred)", nulls=False)
        elif self.task == "binary":
            pred = (score[:, 0] >= self.threshold).astype(np.int64)
        else:
            pred = np.argmax(score, axis=1).astype(np.int64)
        if self.y_true in frame.columns:
            y = self._codes(frame[self.y_true], "the labels (y_true)", nulls=not reference)
        else:
            y = np.full(frame.height, -1, dtype=np.int64)
        return RowArrays({"score": score, "pred": pred, "y": y}, y >= 0)

    def _codes(self, series: pl.Series, role: str, *, nulls: bool) -> NDArray[np.int64]:
        """Class labels as 0..K-1 (-1 for null), or an InputError for an unknown class."""
        classes = list(self.classes_)
        if series.dtype == pl.Null:
            series = series.cast(pl.Int64)
        codes = _numeric_codes(series, classes)
        if codes is None:
            try:
                mapped = series.replace_strict(
                    classes, list(range(len(classes))), default=None, return_dtype=pl.Int64
                )
            except (pl.exceptions.PolarsError, TypeError, ValueError) as exc:
                raise InputError(
                    f"Column '{series.name}' ({role}) must hold the classes {_shown(classes)}; "
                    f"its values of type {series.dtype} cannot be compared with them.",
                    column=series.name,
                ) from exc
            codes = mapped.fill_null(-1).to_numpy().astype(np.int64, copy=False)
        if series.null_count():
            missing = series.is_null().to_numpy()
            unknown = (codes < 0) & ~missing
        else:
            missing = np.zeros(0, dtype=bool)
            unknown = codes < 0
        if unknown.any():
            example = series.filter(pl.Series(unknown))[0]
            raise InputError(
                f"Column '{series.name}' ({role}) holds {int(unknown.sum())} values that are not "
                f"among the classes {_shown(classes)} (e.g. {example!r}). Pass the right "
                "'classes', or map the labels first.",
                column=series.name,
            )
        if not nulls and missing.any():
            raise InputError(
                f"Column '{series.name}' ({role}) has {int(missing.sum())} null values of "
                f"{series.len()}; the reference needs a value in every row. Drop those rows.",
                column=series.name,
            )
        return codes

    # -- metrics --------------------------------------------------------------------------------

    def _outside_support(self, rows: RowArrays) -> NDArray[np.bool_]:
        return self.support_.outside(rows["score"])

    def _realized(
        self, rows: RowArrays, starts: NDArray[np.int64]
    ) -> dict[str, NDArray[np.float64]]:
        score = rows["score"]
        orders = _descending(score, starts) if "roc_auc" in self.metrics_ else []
        return self._metrics(score, _one_hot(rows["y"], score), rows["pred"], starts, orders)

    def _estimated(
        self, rows: RowArrays, starts: NDArray[np.int64], *, use_labels: bool
    ) -> dict[str, NDArray[np.float64]]:
        score = rows["score"]
        needs_order = bool(self.calibrators_) or "roc_auc" in self.metrics_
        orders = _descending(score, starts) if needs_order else []
        prob = _normalized(self._calibrated(score, orders))
        if use_labels:
            prob = np.where(rows.labelled[:, None], _one_hot(rows["y"], score), prob)
        return self._metrics(score, prob, rows["pred"], starts, orders)

    def _calibrated(
        self, score: NDArray[np.float64], orders: Sequence[NDArray[np.int64]]
    ) -> NDArray[np.float64]:
        """The calibrated probability of each class (before renormalization)."""
        if not self.calibrators_:
            return score
        prob = np.empty_like(score)
        for k, (model, order) in enumerate(zip(self.calibrators_, orders, strict=True)):
            # In score order the interpolation's searches are predictable: much faster.
            prob[order, k] = model.predict(score[order, k])
        return prob

    def _metrics(
        self,
        score: NDArray[np.float64],
        prob: NDArray[np.float64],
        pred: NDArray[np.int64],
        starts: NDArray[np.int64],
        orders: Sequence[NDArray[np.int64]],
    ) -> dict[str, NDArray[np.float64]]:
        """The metrics per window from each row's probability of each class (0/1 if realized).

        The expected confusion matrix of class k sums, over the rows, the probability that the
        row is of class k split by whether the model predicted k; a binary task has one column,
        the positive class.
        """
        n = window_sizes(starts, score.shape[0])
        if self.task == "binary":
            predicted = (pred == 1)[:, None]
        else:
            predicted = pred[:, None] == np.arange(prob.shape[1])[None, :]
        tp = window_sums(prob * predicted, starts)
        n_predicted = window_sums(predicted, starts)
        n_actual = window_sums(prob, starts)
        out: dict[str, NDArray[np.float64]] = {}
        for metric in self.metrics_:
            if metric == "accuracy" and self.task == "binary":
                # Correct = true positives + true negatives = tp + (n - predicted - actual + tp).
                out[metric] = (2.0 * tp[:, 0] + n - n_predicted[:, 0] - n_actual[:, 0]) / n
            elif metric == "accuracy":
                out[metric] = tp.sum(axis=1) / n
            elif metric == "precision":
                out[metric] = row_means(safe_divide(tp, n_predicted))
            elif metric == "recall":
                out[metric] = row_means(safe_divide(tp, n_actual))
            elif metric == "f1":
                out[metric] = row_means(safe_divide(2.0 * tp, n_predicted + n_actual))
            else:
                out[metric] = row_means(
                    np.column_stack(
                        [
                            _expected_auc(score[:, k], prob[:, k], starts, orders[k])
                            for k in _classes(prob)
                        ]
                    )
                )
        return out


@dataclass(frozen=True, slots=True, eq=False)
class Isotonic:
    """An isotonic calibration: non-decreasing steps through ``(x, y)``, flat beyond the ends.

    The same fit and prediction as scikit-learn's ``IsotonicRegression(out_of_bounds="clip")``
    (its pool-adjacent-violators solver, tied scores averaged first), taking rows already sorted
    by score so that one sort serves several fits.

    Example:
        >>> import numpy as np
        >>> model = Isotonic.fit(np.array([0.1, 0.2, 0.3, 0.4]), np.array([0.0, 1.0, 0.0, 1.0]))
        >>> model.predict(np.array([0.0, 0.25, 0.9])).tolist()
        [0.0, 0.5, 1.0]
    """

    x: NDArray[np.float64]
    y: NDArray[np.float64]

    @classmethod
    def fit(cls, score: NDArray[np.float64], target: NDArray[np.float64]) -> Isotonic:
        """Fit on scores sorted ascending and their 0/1 targets."""
        firsts = np.flatnonzero(np.concatenate(([True], score[1:] != score[:-1])))
        counts = np.diff(np.append(firsts, score.shape[0])).astype(np.float64)
        means = np.add.reduceat(target, firsts) / counts
        x = score[firsts]
        y = np.asarray(
            isotonic_regression(means, sample_weight=counts, y_min=0.0, y_max=1.0),
            dtype=np.float64,
        )
        # Only the ends of each flat step matter to the interpolation: fewer points, faster.
        keep = np.ones(x.size, dtype=bool)
        keep[1:-1] = (y[1:-1] != y[:-2]) | (y[1:-1] != y[2:])
        return cls(x[keep], y[keep])

    def predict(self, score: NDArray[np.float64]) -> NDArray[np.float64]:
        """The calibrated probability of each score."""
        return np.interp(score, self.x, self.y)


def _descending(score: NDArray[np.float64], starts: NDArray[np.int64]) -> list[NDArray[np.int64]]:
    """For each score column, the row order that sorts every window by descending score."""
    stops = np.append(starts[1:], score.shape[0])
    return [
        np.concatenate(
            [
                start + np.argsort(-score[start:stop, k])
                for start, stop in zip(starts, stops, strict=True)
            ]
        )
        for k in _classes(score)
    ]


def _classes(prob: NDArray[Any]) -> range:
    return range(prob.shape[1])


def _normalized(prob: NDArray[np.float64]) -> NDArray[np.float64]:
    """Rows rescaled to sum to 1 (a single binary column is left as it is)."""
    if prob.shape[1] == 1:
        return prob
    total = prob.sum(axis=1, keepdims=True)
    uniform = np.full_like(prob, 1.0 / prob.shape[1])
    return np.where(total > 0, prob / np.where(total > 0, total, 1.0), uniform)


def _one_hot(y: NDArray[np.int64], score: NDArray[np.float64]) -> NDArray[np.float64]:
    """Labels as probabilities: 1 for the true class (for binary: the positive class' column)."""
    if score.shape[1] == 1:
        return np.asarray(y == 1, dtype=np.float64)[:, None]
    return np.asarray(y[:, None] == np.arange(score.shape[1])[None, :], dtype=np.float64)


def _expected_auc(
    score: NDArray[np.float64],
    prob: NDArray[np.float64],
    starts: NDArray[np.int64],
    order: NDArray[np.int64],
) -> NDArray[np.float64]:
    """ROC AUC per window when each row is a positive with probability ``prob``, ranked by score.

    Within a window, in descending score order, the expected true and false positives above each
    distinct score are cumulative sums of ``prob`` and ``1 - prob``; tied scores share one point
    of the curve, and the area is the trapezoid rule, as in sklearn's ``roc_auc_score`` (which
    this equals when ``prob`` is 0/1). ``order`` sorts each window by descending score.
    """
    n = score.shape[0]
    ranked, weight = score[order], prob[order]
    positives = np.cumsum(weight)
    before = (positives - weight)[starts]  # the running sum where each window begins
    total_positive = np.add.reduceat(weight, starts) if n else np.zeros(0)
    total_negative = window_sizes(starts, n) - total_positive
    tied = ranked[1:] == ranked[:-1]
    if np.any(tied & (weight[1:] != weight[:-1])):
        area = _tied_area(ranked, weight, positives, starts, before)
    else:
        # Each row's negative share meets the positives above it, and half of its own group's:
        # the trapezoid rule whenever every group of tied scores has one probability.
        area = np.add.reduceat((1.0 - weight) * (positives - weight / 2.0), starts)
        area -= before * total_negative
    defined = (total_positive > 0.0) & (total_negative > 0.0)
    return np.where(defined, safe_divide(area, total_positive * total_negative), np.nan)


def _tied_area(
    ranked: NDArray[np.float64],
    weight: NDArray[np.float64],
    positives: NDArray[np.float64],
    starts: NDArray[np.int64],
    before: NDArray[np.float64],
) -> NDArray[np.float64]:
    """The area under the expected ROC curve per window, one curve point per tied score."""
    n = ranked.shape[0]
    window = np.repeat(np.arange(starts.size), np.diff(np.append(starts, n)))
    negatives = np.cumsum(1.0 - weight)
    last = np.ones(n, dtype=bool)
    last[:-1] = (ranked[1:] != ranked[:-1]) | (window[1:] != window[:-1])
    ends = np.flatnonzero(last)
    group_window = window[ends]
    tp = positives[ends] - before[group_window]
    fp = negatives[ends] - (negatives - (1.0 - weight))[starts][group_window]
    first = np.ones(ends.size, dtype=bool)
    first[1:] = group_window[1:] != group_window[:-1]
    tp_before = np.where(first, 0.0, np.roll(tp, 1))
    fp_before = np.where(first, 0.0, np.roll(fp, 1))
    trapezoids = (fp - fp_before) * (tp + tp_before) / 2.0
    area = np.bincount(group_window, weights=trapezoids, minlength=starts.size)
    return np.asarray(area, dtype=np.float64)


def _check_sums(score: NDArray[np.float64], columns: Sequence[str]) -> None:
    sums = score.sum(axis=1)
    bad = np.flatnonzero(np.abs(sums - 1.0) > SUM_TOLERANCE)
    if bad.size:
        raise InputError(
            f"With calibration='none' the scores in {', '.join(columns)} must sum to 1 in every "
            f"row; {bad.size} of {len(sums)} rows do not (e.g. row {bad[0]} sums to "
            f"{sums[bad[0]]:.4g}). Normalize them, or use calibration='isotonic', which "
            "calibrates each class and renormalizes.",
            column=columns[0],
        )


def _numeric_codes(series: pl.Series, classes: Sequence[Any]) -> NDArray[np.int64] | None:
    """Codes of numeric labels, class by class in NumPy (None when this fast path does not apply).

    Unknown values and nulls get -1 here; the caller tells them apart.
    """
    numeric = series.dtype.is_numeric() or series.dtype == pl.Boolean
    if not numeric or not all(isinstance(c, Real) for c in classes):
        return None
    values = series.to_numpy()  # no copy for a numeric column without nulls
    codes = np.full(values.shape[0], -1, dtype=np.int64)
    for code, label in enumerate(classes):
        codes[values == label] = code
    return codes


def _shown(values: Sequence[Any], limit: int = 10) -> str:
    shown = ", ".join(repr(v) for v in values[:limit])
    return shown + (", ..." if len(values) > limit else "") if values else "none"
