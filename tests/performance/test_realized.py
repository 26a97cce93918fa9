"""Realized performance per window: late and partial labels, windows, results, bad input."""

from __future__ import annotations

import json
import math
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
import polars as pl
import pytest
from scipy.stats import norm
from sklearn import metrics as skm

from mlwarden.exceptions import InputError, ParameterError
from mlwarden.performance.realized import realized_performance
from mlwarden.windows import WindowSpec

if TYPE_CHECKING:
    from pathlib import Path

N = 20_000
SEPARATION = 1.0


def binormal_problem(n: int = N, seed: int = 0) -> pl.DataFrame:
    """A binary problem whose true performance is known in closed form.

    Half the rows are positive; a model's evidence z is N(+mu, 1) for positives and N(-mu, 1) for
    negatives. The calibrated probability is then sigmoid(2 mu z), so that thresholding at 0.5
    has accuracy Phi(mu), ROC AUC is Phi(mu sqrt 2) and the calibration error is 0.
    """
    rng = np.random.default_rng(seed)
    truth = rng.permutation(np.repeat([0, 1], n // 2))
    evidence = rng.normal(np.where(truth == 1, SEPARATION, -SEPARATION), 1.0)
    score = 1 / (1 + np.exp(-2 * SEPARATION * evidence))
    start = datetime(2024, 3, 1, tzinfo=UTC)
    return pl.DataFrame(
        {
            "id": np.arange(n),
            "ts": [start + timedelta(minutes=int(m)) for m in np.linspace(0, 3 * 24 * 60 - 1, n)],
            "pred": (score > 0.5).astype(np.int64),
            "score": score,
            "y": truth,
        }
    )


def binary(predictions: Any, labels: Any = None, **options: Any) -> Any:
    settings: dict[str, Any] = {
        "task": "binary",
        "y_true": "y",
        "y_pred": "pred",
        "y_score": "score",
        "id": "id",
    }
    settings.update(options)
    return realized_performance(predictions, labels, **settings)


# Known performance ------------------------------------------------------------------------------


def test_known_model_performance_is_recovered() -> None:
    data = binormal_problem()
    result = binary(data.drop("y"), data.select("id", "y"))
    overall = result.overall.metrics
    assert overall["accuracy"] == pytest.approx(norm.cdf(SEPARATION), abs=0.015)
    assert overall["roc_auc"] == pytest.approx(norm.cdf(SEPARATION * math.sqrt(2)), abs=0.01)
    assert overall["calibration_error"] < 0.02
    assert result.metrics == (
        "accuracy",
        "precision",
        "recall",
        "f1",
        "roc_auc",
        "log_loss",
        "calibration_error",
    )
    assert result.overall.labelled_share == 1.0
    assert result.unmatched_labels == 0


def test_labels_for_60_percent_of_ids_compute_metrics_on_those_rows_only() -> None:
    data = binormal_problem()
    rng = np.random.default_rng(5)
    labelled_ids = rng.choice(N, size=int(0.6 * N), replace=False)
    labels = data.filter(pl.col("id").is_in(labelled_ids.tolist())).select("id", "y")
    # Unlabelled rows get wrong predictions: they must not pull the metrics down.
    predictions = data.drop("y").with_columns(
        pl.when(pl.col("id").is_in(labelled_ids.tolist()))
        .then(pl.col("pred"))
        .otherwise(1 - pl.col("pred"))
        .alias("pred")
    )
    result = binary(predictions, labels.sample(fraction=1.0, shuffle=True, seed=1))
    assert result.overall.labelled_share == 0.6
    assert result.overall.n_labelled == int(0.6 * N)
    subset = data.filter(pl.col("id").is_in(labelled_ids.tolist()))
    metrics = result.overall.metrics
    assert metrics["accuracy"] == pytest.approx(skm.accuracy_score(subset["y"], subset["pred"]))
    assert metrics["f1"] == pytest.approx(skm.f1_score(subset["y"], subset["pred"]))
    assert metrics["roc_auc"] == pytest.approx(skm.roc_auc_score(subset["y"], subset["score"]))
    assert metrics["accuracy"] == pytest.approx(norm.cdf(SEPARATION), abs=0.02)


def test_no_labels_yet_gives_counts_and_nan_metrics() -> None:
    data = binormal_problem(n=100)
    result = binary(data.drop("y"), data.select("id", "y").head(0), window=50)
    frame = result.to_df()
    assert frame["n_predictions"].to_list() == [50, 50]
    assert frame["n_labelled"].to_list() == [0, 0]
    assert frame["labelled_share"].to_list() == [0.0, 0.0]
    assert frame["accuracy"].is_nan().all()
    assert result.to_dict()["windows"][0]["roc_auc"] is None


# Joining labels ---------------------------------------------------------------------------------


def test_last_delivery_wins() -> None:
    predictions = pl.DataFrame({"id": ["a", "b", "c"], "pred": [1, 0, 1]})
    first = pl.DataFrame({"id": ["a", "b", "c"], "y": [0, 0, 0]})
    correction = pl.DataFrame({"id": ["a", "c"], "y": [1, 1]})
    labels = pl.concat([first, correction])
    result = realized_performance(
        predictions, labels, task="binary", y_true="y", y_pred="pred", id="id"
    )
    assert result.overall.metrics["accuracy"] == 1.0
    assert result.overall.n_labelled == 3
    reversed_order = pl.concat([correction, first])
    result = realized_performance(
        predictions, reversed_order, task="binary", y_true="y", y_pred="pred", id="id"
    )
    assert result.overall.metrics["accuracy"] == pytest.approx(1 / 3)


def test_null_labels_in_a_delivery_are_ignored() -> None:
    predictions = pl.DataFrame({"id": [1, 2], "pred": [1, 0]})
    labels = pl.DataFrame({"id": [1, 1, 2], "y": [1, None, None]})
    result = realized_performance(
        predictions, labels, task="binary", y_true="y", y_pred="pred", id="id"
    )
    assert result.overall.n_labelled == 1
    assert result.overall.metrics["accuracy"] == 1.0


def test_unmatched_labels_are_reported_not_used() -> None:
    predictions = pl.DataFrame({"id": [1, 2, 3], "pred": [1, 0, 1]})
    labels = pl.DataFrame({"id": [1, 2, 98, 99, 99], "y": [1, 0, 0, 0, 1]})
    result = realized_performance(
        predictions, labels, task="binary", y_true="y", y_pred="pred", id="id"
    )
    assert result.unmatched_labels == 2
    assert result.to_dict()["unmatched_labels"] == 2
    assert result.overall.n_labelled == 2
    assert result.overall.metrics["accuracy"] == 1.0


def test_labels_already_in_predictions_count_where_no_later_label() -> None:
    predictions = pl.DataFrame({"id": [1, 2, 3], "pred": [1, 0, 1], "y": [0, None, None]})
    labels = pl.DataFrame({"id": [1, 2], "y": [1, 0]})
    result = realized_performance(
        predictions, labels, task="binary", y_true="y", y_pred="pred", id="id"
    )
    assert result.overall.n_labelled == 2  # id 1 relabelled to 1, id 2 labelled, id 3 not yet
    assert result.overall.metrics["accuracy"] == 1.0


def test_integer_ids_of_different_widths_match(tmp_path: Path) -> None:
    predictions = pl.DataFrame({"id": [1, 2], "pred": [1, 0]}, schema_overrides={"id": pl.Int32})
    path = tmp_path / "labels.parquet"
    pl.DataFrame({"id": [2], "y": [0]}).write_parquet(path)
    result = realized_performance(
        predictions, str(path), task="binary", y_true="y", y_pred="pred", id="id"
    )
    assert result.overall.n_labelled == 1


def test_pandas_input_is_accepted() -> None:
    predictions = pd.DataFrame({"id": [1, 2, 3, 4], "pred": [1, 0, 1, 1], "y": [1, 0, 0, 1]})
    result = realized_performance(predictions, task="binary", y_true="y", y_pred="pred")
    assert result.overall.metrics["accuracy"] == 0.75
    assert result.overall.metrics["precision"] == pytest.approx(2 / 3)


# Windows ----------------------------------------------------------------------------------------


def test_daily_windows() -> None:
    data = binormal_problem(n=3000)
    # On the third day the model breaks: every prediction is inverted.
    day3 = pl.col("ts") >= datetime(2024, 3, 3, tzinfo=UTC)
    data = data.with_columns(pl.when(day3).then(1 - pl.col("pred")).otherwise("pred").alias("pred"))
    result = binary(data, None, window="1d", timestamp="ts", metrics=["accuracy"])
    frame = result.to_df()
    assert frame["window"].to_list() == [0, 1, 2]
    assert frame["window_start"].to_list() == [datetime(2024, 3, d, tzinfo=UTC) for d in (1, 2, 3)]
    assert frame["window_end"][0] == datetime(2024, 3, 2, tzinfo=UTC)
    assert frame["n_predictions"].sum() == 3000
    accuracy = frame["accuracy"].to_list()
    assert accuracy[0] == pytest.approx(norm.cdf(SEPARATION), abs=0.05)
    assert accuracy[2] == pytest.approx(1 - norm.cdf(SEPARATION), abs=0.05)
    windows = result.to_dict()["windows"]
    assert windows[1]["window_start"] == "2024-03-02T00:00:00+00:00"
    assert result.to_dict()["window"] == {"every": "1d", "size": None, "timestamp": "ts"}


def test_windows_by_row_count_and_by_spec() -> None:
    predictions = pl.DataFrame(
        {"id": range(10), "pred": [1, 1, 1, 1, 0, 0, 0, 0, 1, 0], "y": [1] * 10}
    )
    result = realized_performance(
        predictions, task="binary", y_true="y", y_pred="pred", window=4, metrics=["accuracy"]
    )
    frame = result.to_df()
    assert frame["n_predictions"].to_list() == [4, 4, 2]
    assert frame["window_start"].to_list() == [0, 4, 8]
    assert frame["accuracy"].to_list() == [1.0, 0.0, 0.5]
    by_spec = realized_performance(
        predictions,
        task="binary",
        y_true="y",
        y_pred="pred",
        window=WindowSpec(size=4),
        metrics=["accuracy"],
    )
    assert by_spec.to_df().equals(frame)


def test_default_is_one_window_of_everything() -> None:
    data = binormal_problem(n=500)
    result = binary(data)
    assert result.to_df().height == 1
    assert result.to_df()["n_predictions"][0] == 500
    assert result.to_df()["roc_auc"][0] == result.overall.metrics["roc_auc"]


def test_single_class_window_gives_nan_roc_auc_without_warning() -> None:
    predictions = pl.DataFrame(
        {"id": range(4), "pred": [1, 0, 1, 1], "score": [0.9, 0.2, 0.8, 0.7], "y": [1, 0, 1, 1]}
    )
    frame = binary(predictions, window=2, metrics=["roc_auc", "accuracy"]).to_df()
    assert frame["roc_auc"][0] == 1.0
    assert math.isnan(frame["roc_auc"][1])
    assert frame["accuracy"].to_list() == [1.0, 1.0]


# Other tasks ------------------------------------------------------------------------------------


def test_regression_metrics_per_window() -> None:
    rng = np.random.default_rng(11)
    truth = rng.normal(100, 10, 400)
    pred = truth + np.concatenate([rng.normal(0, 1, 200), rng.normal(0, 5, 200)])
    predictions = pl.DataFrame({"id": range(400), "forecast": pred})
    labels = pl.DataFrame({"id": range(400), "measured": truth})
    result = realized_performance(
        predictions,
        labels,
        task="regression",
        y_true="measured",
        y_pred="forecast",
        id="id",
        window=200,
    )
    assert result.metrics == ("mae", "rmse", "mape", "r2")
    frame = result.to_df()
    first = slice(0, 200)
    assert frame["mae"][0] == pytest.approx(skm.mean_absolute_error(truth[first], pred[first]))
    assert frame["rmse"][1] == pytest.approx(skm.root_mean_squared_error(truth[200:], pred[200:]))
    assert frame["mape"][0] == pytest.approx(
        skm.mean_absolute_percentage_error(truth[first], pred[first])
    )
    assert frame["r2"][0] > frame["r2"][1]


def test_multiclass_with_score_columns() -> None:
    rng = np.random.default_rng(12)
    classes = ["ok", "rework", "scrap"]
    truth = rng.choice(classes, 300)
    raw = rng.random((300, 3)) + 2.0 * (truth[:, None] == np.array(classes))
    proba = raw / raw.sum(axis=1, keepdims=True)
    predictions = pl.DataFrame(
        {
            "id": range(300),
            "pred": np.array(classes)[proba.argmax(axis=1)],
            "p_ok": proba[:, 0],
            "p_rework": proba[:, 1],
            "p_scrap": proba[:, 2],
            "grade": truth,
        }
    )
    result = realized_performance(
        predictions,
        task="multiclass",
        y_true="grade",
        y_pred="pred",
        y_score=["p_ok", "p_rework", "p_scrap"],
        classes=classes,
    )
    metrics = result.overall.metrics
    assert metrics["f1"] == pytest.approx(
        skm.f1_score(truth, predictions["pred"].to_numpy(), average="macro")
    )
    assert metrics["roc_auc"] == pytest.approx(skm.roc_auc_score(truth, proba, multi_class="ovr"))
    assert metrics["log_loss"] == pytest.approx(skm.log_loss(truth, proba))


# Results ----------------------------------------------------------------------------------------


def test_to_dict_is_json_ready() -> None:
    data = binormal_problem(n=200)
    result = binary(data.drop("y"), data.select("id", "y").head(50), window="1d", timestamp="ts")
    payload = json.loads(json.dumps(result.to_dict(), allow_nan=False))
    assert payload["task"] == "binary"
    assert payload["overall"]["labelled_share"] == 0.25
    assert [w["n_labelled"] for w in payload["windows"]] == [50, 0, 0]
    assert payload["windows"][2]["accuracy"] is None


def test_empty_predictions_give_zero_windows() -> None:
    data = binormal_problem(n=10).head(0)
    result = binary(data.drop("y"), data.select("id", "y"), window="1d", timestamp="ts")
    frame = result.to_df()
    assert frame.height == 0
    assert frame.columns[:6] == [
        "window",
        "window_start",
        "window_end",
        "n_predictions",
        "n_labelled",
        "labelled_share",
    ]
    assert result.overall.n_predictions == 0
    assert math.isnan(result.overall.metrics["f1"])


# Bad input --------------------------------------------------------------------------------------


def test_missing_column_is_named_with_a_suggestion() -> None:
    data = binormal_problem(n=10)
    with pytest.raises(InputError, match=r"No column 'scor'.*Did you mean 'score'\?") as info:
        binary(data, y_score="scor")
    assert info.value.column == "scor"
    with pytest.raises(InputError, match=r"labels lack a column: No column 'y'"):
        binary(data.drop("y"), data.select("id", pl.col("y").alias("label")))


def test_scores_outside_unit_interval() -> None:
    data = binormal_problem(n=10).with_columns(pl.col("score") * 10)
    with pytest.raises(InputError, match=r"'score' must hold probabilities in \[0, 1\]") as info:
        binary(data)
    assert info.value.column == "score"


def test_prediction_needed_but_missing() -> None:
    data = binormal_problem(n=10)
    with pytest.raises(InputError, match=r"metrics accuracy, f1 need predicted labels or values"):
        binary(data, y_pred=None, metrics=["accuracy", "f1", "roc_auc"])
    with pytest.raises(InputError, match=r"task='regression' needs predictions: pass y_pred"):
        realized_performance(data, task="regression", y_true="y")
    without_pred = binary(data, y_pred=None)
    assert without_pred.metrics == ("roc_auc", "log_loss", "calibration_error")


def test_null_predictions_are_refused() -> None:
    data = pl.DataFrame({"pred": [1.0, None, float("nan")], "y": [1.0, 0.0, 1.0]})
    with pytest.raises(InputError, match=r"'pred' has 2 missing values"):
        realized_performance(data, task="regression", y_true="y", y_pred="pred")


def test_non_numeric_regression_target() -> None:
    data = pl.DataFrame({"pred": [1.0, 2.0], "y": ["high", "low"]})
    with pytest.raises(InputError, match=r"'y' must hold numbers for task='regression'") as info:
        realized_performance(data, task="regression", y_true="y", y_pred="pred")
    assert info.value.column == "y"


def test_duplicate_prediction_ids() -> None:
    data = pl.DataFrame({"id": ["p1", "p2", "p2"], "pred": [1, 0, 1], "y": [1, 0, 1]})
    with pytest.raises(InputError, match=r"Column 'id' must identify each prediction.*'p2'"):
        realized_performance(data, task="binary", y_true="y", y_pred="pred", id="id")


def test_unknown_task_and_metric() -> None:
    data = binormal_problem(n=10)
    with pytest.raises(ParameterError, match=r"'regresion' is not a task.*'regression'\?"):
        binary(data, task="regresion")
    with pytest.raises(ParameterError, match=r"'auc' is not a metric for binary.*'roc_auc'\?"):
        binary(data, metrics=["auc"])


def test_labels_need_an_id() -> None:
    data = binormal_problem(n=10)
    with pytest.raises(ParameterError, match=r"joined to predictions by id: pass id="):
        binary(data.drop("y"), data.select("id", "y"), id=None)


def test_ids_of_different_types() -> None:
    predictions = pl.DataFrame({"id": [1, 2], "pred": [1, 0]})
    labels = pl.DataFrame({"id": ["1", "2"], "y": [1, 0]})
    with pytest.raises(InputError, match=r"'id' holds Int64 in the predictions but String"):
        realized_performance(predictions, labels, task="binary", y_true="y", y_pred="pred", id="id")


def test_label_kinds_must_match_predictions() -> None:
    data = pl.DataFrame({"pred": ["ok", "scrap"], "y": [0, 1]})
    with pytest.raises(InputError, match=r"must hold the same kind of labels"):
        realized_performance(data, task="binary", y_true="y", y_pred="pred")
    with pytest.raises(ParameterError, match=r"pass pos_label='<positive class>'"):
        realized_performance(
            data.with_columns(pl.col("y").replace_strict({0: "ok", 1: "scrap"})),
            task="binary",
            y_true="y",
            y_pred="pred",
        )


def test_binary_task_with_three_classes() -> None:
    data = pl.DataFrame({"pred": [0, 1, 2], "y": [0, 1, 2]})
    with pytest.raises(InputError, match=r"holds 3 classes \(0, 1, 2\).*use task='multiclass'"):
        realized_performance(data, task="binary", y_true="y", y_pred="pred")


def test_multiclass_scores_must_be_probabilities_over_classes() -> None:
    data = pl.DataFrame({"a": [0.5, 0.2], "b": [0.3, 0.8], "y": ["a", "b"]})
    with pytest.raises(InputError, match=r"summing to 1 in each row; 1 rows do not.*0\.8"):
        realized_performance(
            data, task="multiclass", y_true="y", y_score=["a", "b"], classes=["a", "b"]
        )
    with pytest.raises(ParameterError, match=r"classes=\[\.\.\.\] names the class of each"):
        realized_performance(data, task="multiclass", y_true="y", y_score=["a", "b"])
    with pytest.raises(InputError, match=r"hold 'c', not among classes"):
        realized_performance(
            data.with_columns(
                pl.lit("c").alias("y"), pl.lit(0.5).alias("a"), pl.lit(0.5).alias("b")
            ),
            task="multiclass",
            y_true="y",
            y_score=["a", "b"],
            classes=["a", "b"],
        )


def test_null_timestamps_are_refused() -> None:
    data = binormal_problem(n=10).with_columns(
        pl.when(pl.col("id") == 3).then(None).otherwise(pl.col("ts")).alias("ts")
    )
    with pytest.raises(InputError, match=r"'ts' has 1 null timestamps"):
        binary(data, window="1d", timestamp="ts")
