"""Model performance metrics by name: one registry for classification and regression.

Every metric is a function registered under a name with :func:`register_metric`, which records
the tasks it applies to (``binary``, ``multiclass``, ``regression``), whether higher is better,
its range and what it needs (predicted labels or scores). :func:`metric` looks a metric up and
:func:`compute` computes it on NumPy arrays. The list of metrics always comes from the registry.

The metrics are scikit-learn's, made safe for monitoring, where a window may be small or hold a
single class: a metric that is undefined on the data (ROC AUC with one class, R² with constant
targets, anything on zero rows) is NaN, never an exception or a warning.

Inputs: ``y_true`` and ``y_pred`` hold labels (or numbers for regression); for ``binary``,
``y_score`` is the 1-D probability of ``pos_label``; for ``multiclass`` it is a 2-D array with
one column per class, in the order of ``classes``.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final, Literal

import numpy as np
from sklearn import metrics as skm

from mlwarden.exceptions import InputError, ParameterError

if TYPE_CHECKING:
    from collections.abc import Sequence

    import numpy.typing as npt

__all__ = [
    "TASKS",
    "Metric",
    "MetricInput",
    "Task",
    "available_metrics",
    "compute",
    "default_metrics",
    "metric",
    "parse_task",
    "register_metric",
]

Task = Literal["binary", "multiclass", "regression"]
Needs = Literal["pred", "score"]
TASKS: Final[tuple[Task, ...]] = ("binary", "multiclass", "regression")
_TASK_NAMES: Final[dict[str, str]] = {
    "binary": "binary classification",
    "multiclass": "multiclass classification",
    "regression": "regression",
}
_CLASSIFICATION: Final = ("binary", "multiclass")
# Probabilities are clipped away from 0 and 1 so that one confident mistake has a finite loss.
LOG_LOSS_EPS: Final = 1e-15
CALIBRATION_BINS: Final = 10


@dataclass(frozen=True, slots=True, eq=False)
class MetricInput:
    """The arrays and settings a metric function receives (validated by :func:`compute`)."""

    y_true: npt.NDArray[Any]
    y_pred: npt.NDArray[Any] | None
    y_score: npt.NDArray[np.float64] | None
    task: Task
    classes: tuple[Any, ...] | None
    pos_label: Any

    @property
    def pred(self) -> npt.NDArray[Any]:
        """``y_pred``, known to be present for metrics that need it."""
        assert self.y_pred is not None
        return self.y_pred

    @property
    def score(self) -> npt.NDArray[np.float64]:
        """``y_score``, known to be present for metrics that need it."""
        assert self.y_score is not None
        return self.y_score

    @property
    def positive(self) -> npt.NDArray[np.bool_]:
        """For binary tasks, whether each true label is ``pos_label``."""
        return np.asarray(self.y_true == self.pos_label, dtype=bool)


MetricFunction = Callable[[MetricInput], float]


@dataclass(frozen=True, slots=True)
class Metric:
    """One registered metric: its name, tasks, direction, range and function.

    Parameters
    ----------
    name
        The key under which the metric is found (``"f1"``).
    tasks
        The tasks it applies to.
    higher_is_better
        Whether a larger value means a better model.
    range
        The smallest and largest values it can take (``inf`` when unbounded).
    needs
        ``"pred"`` for predicted labels or values, ``"score"`` for probabilities.
    default
        Whether it is computed when the caller names no metrics.
    function
        Computes the metric on a non-empty :class:`MetricInput`.
    """

    name: str
    tasks: tuple[Task, ...]
    higher_is_better: bool
    range: tuple[float, float]
    needs: Needs
    default: bool
    function: MetricFunction

    @property
    def description(self) -> str:
        """The first line of the function's docstring."""
        return (self.function.__doc__ or self.name).strip().splitlines()[0]


_REGISTRY: dict[str, Metric] = {}


def register_metric(
    name: str,
    *,
    tasks: Sequence[Task],
    higher_is_better: bool,
    range: tuple[float, float],
    needs: Needs,
    default: bool = True,
) -> Callable[[MetricFunction], MetricFunction]:
    """Register the decorated function as the metric ``name``; a name already taken fails.

    Parameters
    ----------
    name, tasks, higher_is_better, range, needs, default
        As in :class:`Metric`.
    """

    def decorate(function: MetricFunction) -> MetricFunction:
        if name in _REGISTRY:
            raise ParameterError(
                f"A metric named '{name}' is already registered (by "
                f"{_REGISTRY[name].function.__module__}.{_REGISTRY[name].function.__qualname__}); "
                "pick another name.",
                parameter="name",
            )
        unknown = [task for task in tasks if task not in TASKS]
        if unknown:
            raise ParameterError(
                f"Metric '{name}' names unknown tasks {unknown}; tasks are {', '.join(TASKS)}.",
                parameter="tasks",
            )
        _REGISTRY[name] = Metric(
            name, tuple(tasks), higher_is_better, range, needs, default, function
        )
        return function

    return decorate


def parse_task(task: object) -> Task:
    """The task named by ``task``, or a :class:`ParameterError` suggesting the closest one."""
    for known in TASKS:
        if task == known:
            return known
    hint = difflib.get_close_matches(str(task).lower(), TASKS, n=1)
    suggestion = f" Did you mean '{hint[0]}'?" if hint else ""
    raise ParameterError(
        f"'{task}' is not a task. Available: {', '.join(TASKS)}.{suggestion}", parameter="task"
    )


def available_metrics(task: Task) -> list[str]:
    """The names of the metrics registered for ``task``, in alphabetical order."""
    return sorted(name for name, entry in _REGISTRY.items() if parse_task(task) in entry.tasks)


def default_metrics(task: Task, *, pred: bool = True, score: bool = True) -> tuple[str, ...]:
    """The default metrics of ``task`` computable from predictions and/or scores, in registry order.

    Example:
        >>> default_metrics("binary", score=False)
        ('accuracy', 'precision', 'recall', 'f1')
    """
    task = parse_task(task)
    given = {"pred": pred, "score": score}
    return tuple(
        name
        for name, entry in _REGISTRY.items()
        if task in entry.tasks and entry.default and given[entry.needs]
    )


def metric(name: str, task: Task) -> Metric:
    """The metric registered as ``name`` for ``task``, or a :class:`ParameterError` saying why not.

    Example:
        >>> metric("f1", "binary").higher_is_better
        True
        >>> metric("f_1", "binary")
        Traceback (most recent call last):
        ...
        mlwarden.exceptions.ParameterError: 'f_1' is not a metric for binary classification. \
Available: accuracy, calibration_error, f1, log_loss, precision, recall, roc_auc. Did you mean 'f1'?
    """
    task = parse_task(task)
    entry = _REGISTRY.get(name)
    if entry is not None and task in entry.tasks:
        return entry
    names = available_metrics(task)
    if entry is not None:
        others = " or ".join(_TASK_NAMES[other] for other in entry.tasks)
        note = f" ('{name}' is a metric for {others})"
    else:
        note = ""
    hint = difflib.get_close_matches(str(name), names, n=1)
    suggestion = f" Did you mean '{hint[0]}'?" if hint else ""
    raise ParameterError(
        f"'{name}' is not a metric for {_TASK_NAMES[task]}{note}. "
        f"Available: {', '.join(names)}.{suggestion}",
        parameter="metrics",
    )


def compute(
    name: str,
    y_true: npt.ArrayLike,
    y_pred: npt.ArrayLike | None = None,
    y_score: npt.ArrayLike | None = None,
    *,
    task: Task,
    classes: Sequence[Any] | None = None,
    pos_label: Any = 1,
) -> float:
    """Compute the metric ``name`` for ``task``; NaN where it is undefined on the data.

    Parameters
    ----------
    name
        A registered metric (see :func:`available_metrics`).
    y_true
        True labels, or true values for regression.
    y_pred
        Predicted labels or values; needed by the metrics with ``needs == "pred"``.
    y_score
        Binary: the probability of ``pos_label``, 1-D. Multiclass: probabilities, one column per
        class of ``classes``. Needed by the metrics with ``needs == "score"``.
    task
        ``"binary"``, ``"multiclass"`` or ``"regression"``.
    classes
        Multiclass: the class of each column of ``y_score`` (required with scores).
    pos_label
        Binary: the positive class, whose precision, recall, F1 and scores are reported.

    Raises
    ------
    ParameterError
        Unknown task or metric, or an input the metric needs is missing.
    InputError
        Arrays of different lengths, or scores of the wrong shape.

    Example:
        >>> import numpy as np
        >>> rng = np.random.default_rng(0)
        >>> y_true = rng.integers(0, 2, 200)
        >>> y_score = np.clip(0.5 * y_true + rng.uniform(0, 0.5, 200), 0, 1)
        >>> compute("roc_auc", y_true, y_score=y_score, task="binary")
        1.0
        >>> compute("recall", [1, 0, 1, 1], [1, 0, 0, 1], task="binary")
        0.6666666666666666
        >>> compute("roc_auc", [1, 1], y_score=[0.2, 0.9], task="binary")
        nan
    """
    entry = metric(name, task)
    task = parse_task(task)
    truth = np.asarray(y_true)
    pred = None if y_pred is None else np.asarray(y_pred)
    score = None if y_score is None else np.asarray(y_score, dtype=np.float64)
    if entry.needs == "pred" and pred is None:
        raise ParameterError(
            f"The '{name}' metric needs predicted {_predicted(task)}: pass y_pred.",
            parameter="y_pred",
        )
    if entry.needs == "score" and score is None:
        raise ParameterError(
            f"The '{name}' metric needs predicted probabilities: pass y_score.",
            parameter="y_score",
        )
    for label, array in (("y_pred", pred), ("y_score", score)):
        if array is not None and len(array) != len(truth):
            raise InputError(
                f"{label} has {len(array)} rows but y_true has {len(truth)}; they must match."
            )
    known = None if classes is None else tuple(classes)
    if entry.needs == "score" and score is not None:
        _check_scores(score, task, known)
    if len(truth) == 0:
        return float("nan")
    data = MetricInput(truth, pred, score, task, known, pos_label)
    return float(entry.function(data))


def _predicted(task: Task) -> str:
    return "values" if task == "regression" else "labels"


def _check_scores(
    score: npt.NDArray[np.float64], task: Task, classes: tuple[Any, ...] | None
) -> None:
    if task == "binary" and score.ndim != 1:
        raise InputError(
            f"Binary scores must be 1-D (the probability of pos_label); got shape {score.shape}."
        )
    if task == "multiclass":
        if classes is None:
            raise ParameterError(
                "Multiclass scores need classes=[...], the class of each score column.",
                parameter="classes",
            )
        if score.ndim != 2 or score.shape[1] != len(classes):
            raise InputError(
                f"Multiclass scores must have one column per class ({len(classes)}); "
                f"got shape {score.shape}."
            )


# Classification -------------------------------------------------------------------------------


@register_metric(
    "accuracy", tasks=_CLASSIFICATION, higher_is_better=True, range=(0.0, 1.0), needs="pred"
)
def accuracy(data: MetricInput) -> float:
    """Share of predicted labels equal to the true label."""
    return float(skm.accuracy_score(data.y_true, data.pred))


def _label_average(data: MetricInput, score: Callable[..., Any]) -> float:
    """Binary: of ``pos_label``; multiclass: macro average over the labels seen in the window.

    ``zero_division=0``: a class never predicted (or never true) scores 0, without a warning.
    """
    if data.task == "binary":
        positive = np.asarray(data.pred == data.pos_label, dtype=bool)
        return float(score(data.positive, positive, pos_label=True, zero_division=0))
    return float(score(data.y_true, data.pred, average="macro", zero_division=0))


@register_metric(
    "precision", tasks=_CLASSIFICATION, higher_is_better=True, range=(0.0, 1.0), needs="pred"
)
def precision(data: MetricInput) -> float:
    """Precision of the positive class (binary) or its macro average over classes (multiclass)."""
    return _label_average(data, skm.precision_score)


@register_metric(
    "recall", tasks=_CLASSIFICATION, higher_is_better=True, range=(0.0, 1.0), needs="pred"
)
def recall(data: MetricInput) -> float:
    """Recall of the positive class (binary) or its macro average over classes (multiclass)."""
    return _label_average(data, skm.recall_score)


@register_metric("f1", tasks=_CLASSIFICATION, higher_is_better=True, range=(0.0, 1.0), needs="pred")
def f1(data: MetricInput) -> float:
    """F1 of the positive class (binary) or its macro average over classes (multiclass)."""
    return _label_average(data, skm.f1_score)


@register_metric(
    "roc_auc", tasks=_CLASSIFICATION, higher_is_better=True, range=(0.0, 1.0), needs="score"
)
def roc_auc(data: MetricInput) -> float:
    """Area under the ROC curve; multiclass: macro one-vs-rest over the classes present.

    NaN when the true labels hold a single class: the curve needs positives and negatives. For
    multiclass, classes absent from the window's true labels are left out of the average (with
    every class present this equals scikit-learn's ``multi_class="ovr"``, ``average="macro"``).
    """
    if data.task == "binary":
        positive = data.positive
        if positive.all() or not positive.any():
            return float("nan")
        return float(skm.roc_auc_score(positive, data.score))
    assert data.classes is not None
    present = set(np.unique(data.y_true).tolist())
    _check_known(present, data.classes)
    if len(present) < 2:
        return float("nan")
    areas = [
        skm.roc_auc_score(data.y_true == label, data.score[:, column])
        for column, label in enumerate(data.classes)
        if label in present
    ]
    return float(np.mean(areas))


@register_metric(
    "log_loss",
    tasks=_CLASSIFICATION,
    higher_is_better=False,
    range=(0.0, float("inf")),
    needs="score",
)
def log_loss(data: MetricInput) -> float:
    """Mean negative log-likelihood of the true labels, probabilities clipped to [1e-15, 1-1e-15].

    Multiclass rows are renormalized after clipping, so that rounding in the scores does not
    change the result by more than rounding.
    """
    clipped = np.clip(data.score, LOG_LOSS_EPS, 1 - LOG_LOSS_EPS)
    if data.task == "binary":
        return float(skm.log_loss(data.positive, clipped, labels=[False, True]))
    assert data.classes is not None
    _check_known(set(np.unique(data.y_true).tolist()), data.classes)
    # scikit-learn takes score columns in sorted class order.
    order = np.argsort(np.asarray(data.classes))
    proba = clipped[:, order]
    proba = proba / proba.sum(axis=1, keepdims=True)
    return float(skm.log_loss(data.y_true, proba, labels=np.asarray(data.classes)[order]))


@register_metric(
    "calibration_error",
    tasks=_CLASSIFICATION,
    higher_is_better=False,
    range=(0.0, 1.0),
    needs="score",
)
def calibration_error(data: MetricInput) -> float:
    """Expected calibration error (ECE) over 10 equal-width bins of predicted probability.

    Binary: the score of ``pos_label`` against how often the label is ``pos_label``. Multiclass:
    the top-class probability against how often the top class (argmax of the scores) is right.
    ECE is the mean over bins of |observed frequency - mean probability|, weighted by the rows
    in each bin; bins are [0, 0.1), [0.1, 0.2), ..., [0.9, 1.0]. Hand-written in NumPy because
    scikit-learn offers only the calibration curve, without bin counts.
    """
    if data.task == "binary":
        confidence = data.score
        outcome = data.positive.astype(np.float64)
    else:
        assert data.classes is not None
        top = np.argmax(data.score, axis=1)
        confidence = data.score[np.arange(len(top)), top]
        outcome = (np.asarray(data.classes, dtype=object)[top] == data.y_true).astype(np.float64)
    bins = np.minimum((confidence * CALIBRATION_BINS).astype(np.int64), CALIBRATION_BINS - 1)
    counts = np.bincount(bins, minlength=CALIBRATION_BINS)
    gaps = np.bincount(bins, weights=outcome - confidence, minlength=CALIBRATION_BINS)
    # |sum of (outcome - confidence)| per bin / n == weight of the bin * |frequency - confidence|
    return float(np.abs(gaps[counts > 0]).sum() / len(confidence))


def _check_known(present: set[Any], classes: tuple[Any, ...]) -> None:
    unknown = sorted(map(str, present - set(classes)))
    if unknown:
        raise InputError(
            f"y_true holds {', '.join(repr(u) for u in unknown[:5])}, not among the classes of "
            f"the scores ({', '.join(map(repr, classes))})."
        )


# Regression -----------------------------------------------------------------------------------


def _values(data: MetricInput) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]:
    return np.asarray(data.y_true, dtype=np.float64), np.asarray(data.pred, dtype=np.float64)


@register_metric(
    "mae", tasks=("regression",), higher_is_better=False, range=(0.0, float("inf")), needs="pred"
)
def mae(data: MetricInput) -> float:
    """Mean absolute error."""
    return float(skm.mean_absolute_error(*_values(data)))


@register_metric(
    "rmse", tasks=("regression",), higher_is_better=False, range=(0.0, float("inf")), needs="pred"
)
def rmse(data: MetricInput) -> float:
    """Root mean squared error."""
    return float(skm.root_mean_squared_error(*_values(data)))


@register_metric(
    "mape", tasks=("regression",), higher_is_better=False, range=(0.0, float("inf")), needs="pred"
)
def mape(data: MetricInput) -> float:
    """Mean absolute percentage error, as a fraction (0.1 is 10 %), over rows with y_true != 0.

    Rows whose true value is 0 have no percentage error and are left out; NaN when none remain.
    """
    truth, pred = _values(data)
    keep = truth != 0
    if not keep.any():
        return float("nan")
    return float(skm.mean_absolute_percentage_error(truth[keep], pred[keep]))


@register_metric(
    "r2",
    tasks=("regression",),
    higher_is_better=True,
    range=(float("-inf"), 1.0),
    needs="pred",
)
def r2(data: MetricInput) -> float:
    """Coefficient of determination R²; NaN with fewer than 2 rows or constant true values.

    scikit-learn returns 0 or 1 for constant true values; for monitoring, undefined is NaN.
    """
    truth, pred = _values(data)
    if len(truth) < 2 or np.all(truth == truth[0]):
        return float("nan")
    return float(skm.r2_score(truth, pred))
