"""Metric registry and metric values: known answers, scikit-learn agreement, undefined cases."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pytest
from sklearn import metrics as skm

from mlwarden.exceptions import InputError, ParameterError
from mlwarden.performance.metrics import (
    TASKS,
    Task,
    available_metrics,
    compute,
    default_metrics,
    metric,
    register_metric,
)

CLASSIFICATION = [
    "accuracy",
    "precision",
    "recall",
    "f1",
    "roc_auc",
    "log_loss",
    "calibration_error",
]
REGRESSION = ["mae", "rmse", "mape", "r2"]


# Registry ---------------------------------------------------------------------------------------


def test_registry_lists_every_metric_by_task() -> None:
    assert available_metrics("binary") == sorted(CLASSIFICATION)
    assert available_metrics("multiclass") == sorted(CLASSIFICATION)
    assert available_metrics("regression") == sorted(REGRESSION)
    assert default_metrics("binary") == tuple(CLASSIFICATION)
    assert default_metrics("multiclass", pred=False) == ("roc_auc", "log_loss", "calibration_error")
    assert default_metrics("regression") == tuple(REGRESSION)


def test_metrics_know_direction_and_range() -> None:
    assert metric("accuracy", "binary").higher_is_better
    assert not metric("log_loss", "binary").higher_is_better
    assert not metric("rmse", "regression").higher_is_better
    assert metric("r2", "regression").range == (-math.inf, 1.0)
    assert metric("roc_auc", "multiclass").range == (0.0, 1.0)
    assert metric("roc_auc", "binary").needs == "score"
    assert metric("f1", "binary").description.startswith("F1 of the positive class")


def test_unknown_metric_lists_available_and_suggests() -> None:
    with pytest.raises(ParameterError) as info:
        metric("f_1", "binary")
    assert str(info.value) == (
        "'f_1' is not a metric for binary classification. Available: accuracy, "
        "calibration_error, f1, log_loss, precision, recall, roc_auc. Did you mean 'f1'?"
    )
    assert info.value.parameter == "metrics"


def test_metric_of_another_task_says_which_task_it_belongs_to() -> None:
    with pytest.raises(ParameterError, match=r"'mae' is a metric for regression\)"):
        metric("mae", "binary")


def test_unknown_task_suggests_the_closest() -> None:
    with pytest.raises(ParameterError, match=r"'binry' is not a task.*Did you mean 'binary'\?"):
        compute("accuracy", [1], [1], task="binry")  # type: ignore[arg-type]


def test_duplicate_name_fails_at_registration() -> None:
    with pytest.raises(ParameterError, match=r"A metric named 'f1' is already registered"):
        register_metric(
            "f1", tasks=("binary",), higher_is_better=True, range=(0.0, 1.0), needs="pred"
        )(lambda data: 0.0)
    assert metric("f1", "binary").function.__name__ == "f1"


# Known answers ----------------------------------------------------------------------------------

Y_TRUE = np.array([1, 1, 1, 0, 0, 0, 0, 1])
Y_PRED = np.array([1, 0, 1, 0, 1, 0, 0, 1])  # TP=3, FN=1, FP=1, TN=3


@pytest.mark.parametrize(
    ("name", "expected"),
    [("accuracy", 6 / 8), ("precision", 3 / 4), ("recall", 3 / 4), ("f1", 3 / 4)],
)
def test_binary_label_metrics_by_hand(name: str, expected: float) -> None:
    assert compute(name, Y_TRUE, Y_PRED, task="binary") == pytest.approx(expected)


def test_pos_label_chooses_the_class_reported() -> None:
    truth = np.array(["ok", "ok", "scrap", "scrap", "scrap"], dtype=object)
    pred = np.array(["ok", "scrap", "scrap", "scrap", "ok"], dtype=object)
    # scrap: TP=2, FP=1, FN=1; ok: TP=1, FP=1, FN=1
    assert compute("precision", truth, pred, task="binary", pos_label="scrap") == pytest.approx(
        2 / 3
    )
    assert compute("recall", truth, pred, task="binary", pos_label="ok") == pytest.approx(1 / 2)
    assert compute("f1", Y_TRUE, Y_PRED, task="binary", pos_label=0) == pytest.approx(3 / 4)


def test_roc_auc_by_hand() -> None:
    # Of the 4 (positive, negative) pairs, 3 rank the positive higher.
    score = np.array([0.1, 0.4, 0.35, 0.8])
    assert compute("roc_auc", [0, 0, 1, 1], y_score=score, task="binary") == pytest.approx(0.75)


def test_log_loss_by_hand_and_clipped() -> None:
    score = np.array([0.9, 0.2])
    expected = -(math.log(0.9) + math.log(0.8)) / 2
    assert compute("log_loss", [1, 0], y_score=score, task="binary") == pytest.approx(expected)
    # A certain, wrong score has a large but finite loss: probabilities are clipped at 1e-15.
    assert compute("log_loss", [1, 0], y_score=[0.0, 0.0], task="binary") == pytest.approx(
        -math.log(1e-15) / 2
    )


def test_binary_calibration_error_by_hand() -> None:
    # Bin [0, 0.1): mean score 0.05, frequency 1/2; bin [0.9, 1]: mean 0.95, frequency 1.
    score = np.array([0.05, 0.05, 0.95, 0.95])
    expected = 0.5 * abs(0.5 - 0.05) + 0.5 * abs(1.0 - 0.95)
    value = compute("calibration_error", [0, 1, 1, 1], y_score=score, task="binary")
    assert value == pytest.approx(expected)
    # A score of exactly 1 falls in the last bin, not an eleventh one.
    assert compute("calibration_error", [1], y_score=[1.0], task="binary") == 0.0


def test_multiclass_calibration_error_uses_top_class_confidence() -> None:
    score = np.array([[0.7, 0.2, 0.1], [0.1, 0.75, 0.15], [0.3, 0.3, 0.4], [0.2, 0.35, 0.45]])
    truth = np.array(["a", "c", "c", "b"], dtype=object)
    # Bin [0.7, 0.8): confidences 0.7, 0.75, 1 of 2 right; bin [0.4, 0.5): 0.4, 0.45, 1 of 2 right.
    expected = 0.5 * abs(0.5 - 0.725) + 0.5 * abs(0.5 - 0.425)
    value = compute(
        "calibration_error", truth, y_score=score, task="multiclass", classes=["a", "b", "c"]
    )
    assert value == pytest.approx(expected)


def test_multiclass_macro_average_by_hand() -> None:
    truth = np.array([0, 0, 1, 1, 2, 2])
    pred = np.array([0, 1, 1, 1, 2, 0])
    # precision: class 0 1/2, class 1 2/3, class 2 1/1; recall: 1/2, 1, 1/2
    assert compute("precision", truth, pred, task="multiclass") == pytest.approx(
        (1 / 2 + 2 / 3 + 1) / 3
    )
    assert compute("recall", truth, pred, task="multiclass") == pytest.approx(
        (1 / 2 + 1 + 1 / 2) / 3
    )
    assert compute("accuracy", truth, pred, task="multiclass") == pytest.approx(4 / 6)


def test_regression_metrics_by_hand() -> None:
    truth = np.array([1.0, 2.0, 4.0, 0.0])
    pred = np.array([2.0, 2.0, 3.0, 1.0])
    assert compute("mae", truth, pred, task="regression") == pytest.approx(3 / 4)
    assert compute("rmse", truth, pred, task="regression") == pytest.approx(math.sqrt(3 / 4))
    # The row with true value 0 is left out: mean of 1/1, 0/2, 1/4.
    assert compute("mape", truth, pred, task="regression") == pytest.approx((1 + 0 + 0.25) / 3)
    mean = truth.mean()
    expected_r2 = 1 - 3 / ((truth - mean) ** 2).sum()
    assert compute("r2", truth, pred, task="regression") == pytest.approx(expected_r2)


# Agreement with scikit-learn --------------------------------------------------------------------


def test_binary_metrics_equal_sklearn_on_random_data() -> None:
    rng = np.random.default_rng(1)
    truth = rng.integers(0, 2, 500)
    score = np.clip(0.3 * truth + rng.uniform(0, 0.7, 500), 0, 1)
    pred = (score > 0.5).astype(int)
    expected = {
        "accuracy": skm.accuracy_score(truth, pred),
        "precision": skm.precision_score(truth, pred),
        "recall": skm.recall_score(truth, pred),
        "f1": skm.f1_score(truth, pred),
        "roc_auc": skm.roc_auc_score(truth, score),
        "log_loss": skm.log_loss(truth, score),
    }
    for name, value in expected.items():
        assert compute(name, truth, pred, score, task="binary") == pytest.approx(value), name


def test_multiclass_metrics_equal_sklearn_with_unsorted_classes() -> None:
    rng = np.random.default_rng(2)
    classes = ["valve", "pump", "motor"]  # not in sorted order, on purpose
    truth = rng.choice(classes, 400).astype(object)
    logits = rng.normal(size=(400, 3)) + 1.5 * (truth[:, None] == np.array(classes))
    score = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    pred = np.array(classes, dtype=object)[score.argmax(axis=1)]
    order = np.argsort(classes)
    sorted_score = score[:, order]
    expected = {
        "accuracy": skm.accuracy_score(truth, pred),
        "precision": skm.precision_score(truth, pred, average="macro"),
        "recall": skm.recall_score(truth, pred, average="macro"),
        "f1": skm.f1_score(truth, pred, average="macro"),
        "roc_auc": skm.roc_auc_score(truth, sorted_score, multi_class="ovr"),
        "log_loss": skm.log_loss(truth, sorted_score),
    }
    for name, value in expected.items():
        got = compute(name, truth, pred, score, task="multiclass", classes=classes)
        assert got == pytest.approx(value), name


def test_regression_metrics_equal_sklearn_on_random_data() -> None:
    rng = np.random.default_rng(3)
    truth = rng.normal(50, 10, 300)
    pred = truth + rng.normal(0, 3, 300)
    expected = {
        "mae": skm.mean_absolute_error(truth, pred),
        "rmse": skm.root_mean_squared_error(truth, pred),
        "mape": skm.mean_absolute_percentage_error(truth, pred),
        "r2": skm.r2_score(truth, pred),
    }
    for name, value in expected.items():
        assert compute(name, truth, pred, task="regression") == pytest.approx(value), name


@pytest.mark.parametrize("task", TASKS)
def test_values_lie_in_the_declared_range(task: Task) -> None:
    rng = np.random.default_rng(4)
    truth: Any = rng.normal(size=50)
    pred: Any = rng.normal(size=50)
    score: Any = None
    classes: list[int] | None = None
    if task == "binary":
        truth, pred, score = rng.integers(0, 2, 50), rng.integers(0, 2, 50), rng.random(50)
    elif task == "multiclass":
        raw = rng.random((50, 3))
        truth, pred, classes = rng.integers(0, 3, 50), rng.integers(0, 3, 50), [0, 1, 2]
        score = raw / raw.sum(axis=1, keepdims=True)
    for name in available_metrics(task):
        low, high = metric(name, task).range
        value = compute(name, truth, pred, score, task=task, classes=classes)
        assert low <= value <= high, name


# Undefined on the data: NaN, no exception, no warning (pytest turns warnings into errors) -------


def test_single_class_gives_nan_roc_auc() -> None:
    assert math.isnan(compute("roc_auc", [1, 1, 1], y_score=[0.2, 0.6, 0.9], task="binary"))
    assert math.isnan(compute("roc_auc", [0, 0], y_score=[0.2, 0.6], task="binary"))
    score = np.array([[0.5, 0.5], [0.2, 0.8]])
    assert math.isnan(
        compute("roc_auc", ["a", "a"], y_score=score, task="multiclass", classes=["a", "b"])
    )


def test_multiclass_roc_auc_averages_the_classes_present() -> None:
    classes = ["a", "b", "c"]
    score = np.array([[0.8, 0.1, 0.1], [0.3, 0.6, 0.1], [0.6, 0.3, 0.1], [0.1, 0.8, 0.1]])
    truth = np.array(["a", "b", "a", "b"], dtype=object)  # "c" never occurs in this window
    value = compute("roc_auc", truth, y_score=score, task="multiclass", classes=classes)
    assert value == pytest.approx(1.0)


def test_no_positive_predictions_give_zero_precision() -> None:
    assert compute("precision", [1, 0, 1], [0, 0, 0], task="binary") == 0.0
    assert compute("f1", [0, 0], [0, 0], task="binary") == 0.0


def test_mape_without_nonzero_truth_is_nan() -> None:
    assert math.isnan(compute("mape", [0.0, 0.0], [1.0, 2.0], task="regression"))


def test_r2_undefined_for_constant_truth_or_one_row() -> None:
    assert math.isnan(compute("r2", [3.0, 3.0, 3.0], [3.0, 2.0, 4.0], task="regression"))
    assert math.isnan(compute("r2", [3.0], [2.0], task="regression"))


@pytest.mark.parametrize("name", CLASSIFICATION)
def test_empty_input_is_nan(name: str) -> None:
    empty = np.array([], dtype=np.int64)
    assert math.isnan(compute(name, empty, empty, np.array([]), task="binary"))


# Bad arguments ----------------------------------------------------------------------------------


def test_missing_predictions_or_scores_are_named() -> None:
    with pytest.raises(ParameterError, match=r"'f1' metric needs predicted labels: pass y_pred"):
        compute("f1", [1, 0], task="binary")
    with pytest.raises(ParameterError, match=r"'roc_auc' metric needs predicted probabilities"):
        compute("roc_auc", [1, 0], [1, 0], task="binary")


def test_shape_errors() -> None:
    with pytest.raises(InputError, match=r"y_pred has 3 rows but y_true has 2"):
        compute("accuracy", [1, 0], [1, 0, 1], task="binary")
    with pytest.raises(ParameterError, match=r"Multiclass scores need classes"):
        compute("log_loss", [0, 1], y_score=[[0.5, 0.5], [0.5, 0.5]], task="multiclass")
    with pytest.raises(InputError, match=r"one column per class \(3\); got shape \(2, 2\)"):
        compute("log_loss", [0, 1], y_score=[[0.5, 0.5]] * 2, task="multiclass", classes=[0, 1, 2])
    with pytest.raises(InputError, match=r"y_true holds 'd', not among the classes"):
        compute("log_loss", ["a", "d"], y_score=[[0.5, 0.5]] * 2, task="multiclass", classes="ab")
