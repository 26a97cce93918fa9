"""Performance estimation without labels: CBPE and DLE on synthetic data of known performance."""

from __future__ import annotations

import math
import pickle
from datetime import UTC, datetime, timedelta

import numpy as np
import polars as pl
import pytest
from sklearn.metrics import (
    accuracy_score,
    f1_score,
    mean_absolute_error,
    precision_score,
    recall_score,
    roc_auc_score,
    root_mean_squared_error,
)

from mlwarden.exceptions import InputError, NotFittedError, ParameterError
from mlwarden.performance.cbpe import CBPE
from mlwarden.performance.dle import DLE
from mlwarden.performance.estimation import EstimatedPerformance

WINDOW = 5000
SCALES = (0.3, 0.6, 1.0, 1.5, 2.5)  # the spread of x per window: the true AUC rises with it


def sigmoid(z: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-z))


def binary(
    rng: np.random.Generator,
    n: int,
    *,
    scale: float = 1.0,
    shift: float = 0.0,
    concept: bool = False,
    distort: bool = False,
) -> pl.DataFrame:
    """Rows with a known probability p of the positive class, its label and the model's score.

    The score is p itself (a perfectly calibrated model) or, with ``distort``, a monotone but
    overconfident version of it. ``concept`` changes y|x: the labels follow another function of x
    while the model still scores the old one.
    """
    x1, x2 = rng.normal(shift, scale, n), rng.normal(0.0, 1.0, n)
    logit = 1.5 * x1 + 0.8 * x2 - 0.3
    p = sigmoid(logit)
    truth = sigmoid(0.4 * x1 - 0.8 * x2) if concept else p
    y = (rng.random(n) < truth).astype(np.int64)
    score = sigmoid(2.5 * logit + 1.0) if distort else p
    return pl.DataFrame({"x1": x1, "x2": x2, "score": score, "y": y})


def windows(rng: np.random.Generator, **kwargs: object) -> pl.DataFrame:
    return pl.concat([binary(rng, WINDOW, scale=s, **kwargs) for s in SCALES])  # type: ignore[arg-type]


def realized_binary(frame: pl.DataFrame, metric: str) -> list[float]:
    """The metric per window of WINDOW rows, by sklearn, as a user would check it."""
    values = []
    for start in range(0, frame.height, WINDOW):
        part = frame[start : start + WINDOW]
        y, score = part["y"].to_numpy(), part["score"].to_numpy()
        pred = (score >= 0.5).astype(int)
        if metric == "roc_auc":
            values.append(float(roc_auc_score(y, score)))
        else:
            values.append(float(SKLEARN[metric](y, pred)))
    return values


SKLEARN = {
    "f1": f1_score,
    "accuracy": accuracy_score,
    "precision": precision_score,
    "recall": recall_score,
}


def with_null(frame: pl.DataFrame, name: str) -> pl.DataFrame:
    """The frame with the first value of one column set to null."""
    first = pl.int_range(pl.len()) == 0
    return frame.with_columns(pl.when(first).then(None).otherwise(pl.col(name)).alias(name))


def column(result: EstimatedPerformance, metric: str, name: str) -> list[float]:
    return result.to_df().filter(metric=metric)[name].to_list()


@pytest.fixture(scope="module")
def reference() -> pl.DataFrame:
    return binary(np.random.default_rng(1), 20_000)


@pytest.fixture(scope="module")
def fitted(reference: pl.DataFrame) -> CBPE:
    return CBPE(y_score="score", y_true="y").fit(reference)


# -- CBPE, binary ---------------------------------------------------------------------------------


def test_cbpe_tracks_covariate_shift_within_its_band(fitted: CBPE) -> None:
    analysis = windows(np.random.default_rng(2))
    result = fitted.estimate(analysis.drop("y"), window=WINDOW)
    for metric in ("roc_auc", "f1", "accuracy", "precision", "recall"):
        realized = realized_binary(analysis, metric)
        estimated = column(result, metric, "estimated")
        lower, upper = column(result, metric, "lower"), column(result, metric, "upper")
        inside = sum(lo <= r <= hi for r, lo, hi in zip(realized, lower, upper, strict=True))
        assert inside >= len(SCALES) - 1, (metric, realized, estimated)
        assert np.mean(np.abs(np.subtract(estimated, realized))) < 0.015, metric
    realized_auc = realized_binary(analysis, "roc_auc")
    estimated_auc = column(result, "roc_auc", "estimated")
    # The shift moves the true AUC from ~0.7 to ~0.95, and the estimate follows it.
    assert realized_auc[-1] - realized_auc[0] > 0.15
    assert estimated_auc[-1] - estimated_auc[0] > 0.15
    assert np.corrcoef(estimated_auc, realized_auc)[0, 1] > 0.98
    assert result.warnings == ()
    # The narrowest spread is far from the reference's performance: an alert, with no label.
    first = result.to_df().filter(metric="roc_auc", window=0).row(0, named=True)
    assert first["alert"]
    assert first["estimated"] < first["alert_lower"]
    assert first["realized"] is None
    assert first["n_labelled"] == 0


def test_isotonic_calibration_fixes_a_miscalibrated_score() -> None:
    rng = np.random.default_rng(3)
    reference, analysis = binary(rng, 20_000, distort=True), windows(rng, distort=True)
    realized = realized_binary(analysis, "accuracy")

    calibrated = CBPE(y_score="score", y_true="y").fit(reference)
    result = calibrated.estimate(analysis.drop("y"), window=WINDOW)
    assert result.warnings == ()
    assert calibrated.calibration_error_ < 0.01
    error = np.abs(np.subtract(column(result, "accuracy", "estimated"), realized))
    assert error.mean() < 0.015

    raw = CBPE(y_score="score", y_true="y", calibration="none").fit(reference)
    result = raw.estimate(analysis.drop("y"), window=WINDOW)
    assert [w.split(":")[0] for w in result.warnings] == ["poor_calibration"]
    assert all("poor_calibration" in e.codes for e in result.estimates)
    raw_error = np.abs(np.subtract(column(result, "accuracy", "estimated"), realized))
    assert raw_error.mean() > 2 * error.mean()


def test_with_every_label_the_estimate_is_the_realized_value_as_sklearn_computes_it(
    fitted: CBPE,
) -> None:
    analysis = windows(np.random.default_rng(4))
    result = fitted.estimate(analysis, window=WINDOW)
    for metric in ("roc_auc", "f1", "accuracy", "precision", "recall"):
        expected = realized_binary(analysis, metric)
        assert column(result, metric, "realized") == pytest.approx(expected, abs=1e-12)
        assert column(result, metric, "estimated") == pytest.approx(expected, abs=1e-12)
        assert column(result, metric, "upper") == pytest.approx(expected, abs=1e-12)
    assert column(result, "f1", "n_labelled") == [WINDOW] * len(SCALES)
    # No concept drift; the widest spread reaches scores beyond the reference's range.
    codes = {e.window: e.codes for e in result.estimates}
    assert codes == {0: (), 1: (), 2: (), 3: (), 4: ("out_of_support",)}


def test_tied_scores_count_half_as_sklearn_does(reference: pl.DataFrame) -> None:
    coarse = reference.with_columns(pl.col("score").round(1))  # 11 distinct scores, many ties
    cbpe = CBPE(y_score="score", y_true="y", metrics=("roc_auc",)).fit(coarse[:10_000])
    result = cbpe.estimate(coarse[10_000:], window=2500)
    for estimate in result.estimates:
        part = coarse[10_000 + estimate.window_start : 10_000 + estimate.window_end]
        expected = roc_auc_score(part["y"].to_numpy(), part["score"].to_numpy())
        assert estimate.realized == pytest.approx(expected, abs=1e-12)
    # Estimated on unlabelled rows, the expected AUC of tied scores is close to the realized.
    unlabelled = cbpe.estimate(coarse[10_000:].drop("y"), window=2500)
    realized = [e.realized for e in result.estimates]
    assert all(e.lower <= r <= e.upper for e, r in zip(unlabelled.estimates, realized, strict=True))


def test_concept_drift_is_flagged_from_partial_labels(fitted: CBPE) -> None:
    rng = np.random.default_rng(5)
    same, changed = binary(rng, 3 * WINDOW), binary(rng, 3 * WINDOW, concept=True)
    analysis = pl.concat([same, changed])
    # A fifth of the labels have arrived; the rest are null.
    known = rng.random(analysis.height) < 0.2
    analysis = analysis.with_columns(pl.when(pl.Series(known)).then(pl.col("y")).alias("y"))
    result = fitted.estimate(analysis, window=WINDOW)
    frame = result.to_df().filter(metric="roc_auc")
    drift = ["concept_drift" in e.codes for e in result.estimates if e.metric == "roc_auc"]
    assert drift == [False, False, False, True, True, True]
    labelled = frame["n_labelled"].to_list()
    assert all(900 < n < 1100 for n in labelled)
    message = next(w for w in frame["warnings"][3] if w.startswith("concept_drift"))
    assert f"on the {labelled[3]} labelled rows the realized roc_auc" in message
    # The realized value is the metric of the labelled rows alone.
    part = analysis[3 * WINDOW : 4 * WINDOW].drop_nulls("y")
    expected = roc_auc_score(part["y"].to_numpy(), part["score"].to_numpy())
    assert frame["realized"][3] == pytest.approx(expected, abs=1e-12)
    # Without drift the realized values sit inside the (narrowed) band of the estimates.
    for row in frame.head(3).iter_rows(named=True):
        assert row["lower"] <= row["realized"] <= row["upper"]


def test_scores_outside_the_reference_support_are_flagged() -> None:
    rng = np.random.default_rng(6)
    reference = binary(rng, 10_000).with_columns(pl.col("score") * 0.6 + 0.2)
    usual = binary(rng, 2000).with_columns(pl.col("score") * 0.6 + 0.2)
    unusual = binary(rng, 2000).with_columns(pl.col("score") * 0.2 + 0.8)
    cbpe = CBPE(y_score="score", y_true="y", metrics=("accuracy",)).fit(reference)
    result = cbpe.estimate(pl.concat([usual, unusual]).drop("y"), window=2000)
    assert [e.codes for e in result.estimates] == [(), ("out_of_support",)]
    share = (unusual["score"] > reference["score"].max()).mean()
    assert result.estimates[1].warnings[0].startswith(f"out_of_support: {share:.1%} of the rows")


def test_small_windows_time_windows_and_rows_without_a_timestamp(fitted: CBPE) -> None:
    analysis = binary(np.random.default_rng(7), 1500).drop("y")
    start = datetime(2024, 1, 1, tzinfo=UTC)
    times = [start + timedelta(minutes=i) for i in range(1500)]  # 1440 + 60 minutes
    stamped = analysis.with_columns(pl.Series("ts", times).scatter([10, 20], None))
    result = fitted.estimate(stamped, window="1d", timestamp="ts")
    frame = result.to_df().filter(metric="f1")
    assert frame["n"].to_list() == [1438, 60]
    assert frame["window_start"].to_list() == [start, start + timedelta(days=1)]
    assert [e.codes for e in result.estimates if e.metric == "f1"] == [
        ("no_window",),
        ("no_window", "small_window"),
    ]
    # A small window's band is wider: the sampling error grows like 1/sqrt(n).
    widths = (frame["upper"] - frame["lower"]).to_list()
    assert widths[1] > 3 * widths[0]


def test_an_empty_analysis_gives_an_empty_result(fitted: CBPE) -> None:
    empty = binary(np.random.default_rng(8), 10).drop("y").head(0)
    result = fitted.estimate(empty, window=100)
    assert result.estimates == ()
    frame = result.to_df()
    assert frame.height == 0
    assert frame.columns == [
        "window",
        "window_start",
        "window_end",
        "n",
        "metric",
        "estimated",
        "lower",
        "upper",
        "alert_lower",
        "alert_upper",
        "alert",
        "realized",
        "n_labelled",
        "warnings",
    ]
    assert result.to_dict()["estimates"] == []


def test_undefined_values_are_none_in_dicts_and_null_in_frames(fitted: CBPE) -> None:
    low = binary(np.random.default_rng(9), 500).with_columns(pl.col("score") * 0.4)
    result = fitted.estimate(low.drop("y"), window=500)
    precision = next(e for e in result.estimates if e.metric == "precision")
    assert math.isnan(precision.estimated)  # no predicted positive: precision is undefined
    as_dict = next(d for d in result.to_dict()["estimates"] if d["metric"] == "precision")
    assert as_dict["estimated"] is None
    assert as_dict["realized"] is None
    assert result.to_df().filter(metric="precision")["estimated"].null_count() == 1
    assert pickle.loads(pickle.dumps(result)).to_dict() == result.to_dict()
    again = pickle.loads(pickle.dumps(fitted)).estimate(low.drop("y"), window=500)
    assert again.to_dict() == result.to_dict()


def test_labels_and_predictions_may_be_strings_with_given_classes() -> None:
    rng = np.random.default_rng(10)
    frame = binary(rng, 4000).with_columns(
        pl.col("y").replace_strict([0, 1], ["ok", "scrap"]).alias("label"),
        pl.when(pl.col("score") >= 0.3).then(pl.lit("scrap")).otherwise(pl.lit("ok")).alias("p"),
    )
    cbpe = CBPE(
        y_score="score", y_true="label", y_pred="p", classes=("ok", "scrap"), metrics=("recall",)
    ).fit(frame[:2000])
    result = cbpe.estimate(frame[2000:], window=2000)
    y = frame[2000:]["label"].to_numpy() == "scrap"
    pred = frame[2000:]["p"].to_numpy() == "scrap"
    assert result.estimates[0].realized == pytest.approx(recall_score(y, pred))


# -- CBPE, multiclass -----------------------------------------------------------------------------


def multiclass(rng: np.random.Generator, n: int, scale: float = 1.0) -> pl.DataFrame:
    x = rng.normal(0.0, scale, (n, 2))
    logits = np.column_stack([x[:, 0], x[:, 1], -x[:, 0] - x[:, 1]]) * 1.5
    prob = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    y = (rng.random(n)[:, None] > np.cumsum(prob, axis=1)).sum(axis=1)
    names = np.array(["a", "b", "c"])
    return pl.DataFrame({"pa": prob[:, 0], "pb": prob[:, 1], "pc": prob[:, 2], "y": names[y]})


def test_multiclass_estimates_follow_the_realized_macro_metrics() -> None:
    rng = np.random.default_rng(11)
    reference = multiclass(rng, 15_000)
    analysis = pl.concat([multiclass(rng, WINDOW, scale) for scale in (0.5, 1.0, 2.0)])
    cbpe = CBPE("multiclass", y_score={"a": "pa", "b": "pb", "c": "pc"}, y_true="y")
    result = cbpe.fit(reference).estimate(analysis.drop("y"), window=WINDOW)
    assert result.warnings == ()
    for position, start in enumerate(range(0, analysis.height, WINDOW)):
        part = analysis[start : start + WINDOW]
        scores = part.select("pa", "pb", "pc").to_numpy()
        y, pred = part["y"].to_numpy(), np.array(["a", "b", "c"])[scores.argmax(axis=1)]
        expected = {
            "roc_auc": roc_auc_score(y, scores, multi_class="ovr", average="macro"),
            "f1": f1_score(y, pred, average="macro"),
            "accuracy": accuracy_score(y, pred),
            "precision": precision_score(y, pred, average="macro"),
            "recall": recall_score(y, pred, average="macro"),
        }
        for metric, value in expected.items():
            estimate = next(
                e for e in result.estimates if e.metric == metric and e.window == position
            )
            assert estimate.lower <= value <= estimate.upper, (metric, position)
            assert abs(estimate.estimated - value) < 0.02, (metric, position)
    # The same model, with scores listed in the order of the classes and all labels known.
    listed = CBPE("multiclass", y_score=["pa", "pb", "pc"], y_true="y", classes=["a", "b", "c"])
    labelled = listed.fit(reference).estimate(analysis, window=WINDOW)
    part = analysis[:WINDOW]
    auc = roc_auc_score(
        part["y"].to_numpy(), part.select("pa", "pb", "pc").to_numpy(), multi_class="ovr"
    )
    assert labelled.estimates[0].realized == pytest.approx(auc, abs=1e-12)


def test_multiclass_scores_must_sum_to_one_without_calibration() -> None:
    rng = np.random.default_rng(12)
    frame = multiclass(rng, 2000).with_columns(pl.col("pa") * 0.5)
    scores = {"a": "pa", "b": "pb", "c": "pc"}
    with pytest.raises(InputError, match=r"must sum to 1 in every row; \d+ of 2000 rows") as info:
        CBPE("multiclass", y_score=scores, y_true="y", calibration="none").fit(frame)
    assert info.value.column == "pa"
    # Isotonic calibration makes each class's score a probability and renormalizes the rows.
    CBPE("multiclass", y_score=scores, y_true="y").fit(frame)


# -- DLE --------------------------------------------------------------------------------------


def regression(
    rng: np.random.Generator, n: int, low: float = 0.0, high: float = 1.0, noisier: float = 0.0
) -> pl.DataFrame:
    """A regression whose error grows where x1 > 0.6; the prediction is the true mean."""
    x1, x2 = rng.uniform(low, high, n), rng.normal(0.0, 1.0, n)
    site = rng.choice(["north", "south"], n)
    mean = 2.0 * x1 + 0.5 * x2 + (site == "south")
    sd = 0.2 + 3.0 * np.maximum(x1 - 0.6, 0.0) + noisier
    y = mean + rng.normal(0.0, 1.0, n) * sd
    return pl.DataFrame({"x1": x1, "x2": x2, "site": site, "pred": mean, "y": y})


@pytest.fixture(scope="module")
def dle() -> DLE:
    reference = regression(np.random.default_rng(13), 10_000)
    return DLE(y_pred="pred", y_true="y", features=["x1", "x2", "site"]).fit(reference)


def test_dle_estimate_rises_where_the_model_errs_more(dle: DLE) -> None:
    rng = np.random.default_rng(14)
    ranges = ((0.0, 0.5), (0.0, 1.0), (0.5, 1.0), (0.7, 1.0))
    analysis = pl.concat([regression(rng, 3000, low, high) for low, high in ranges])
    result = dle.estimate(analysis.drop("y"), window=3000)
    assert result.warnings == ()
    for metric, score in (("mae", mean_absolute_error), ("rmse", root_mean_squared_error)):
        estimated = column(result, metric, "estimated")
        realized = [
            score(analysis["y"][s : s + 3000], analysis["pred"][s : s + 3000])
            for s in range(0, analysis.height, 3000)
        ]
        assert estimated == sorted(estimated), metric
        assert estimated[-1] > 2.5 * estimated[0], metric
        assert np.allclose(estimated, realized, rtol=0.1), (metric, estimated, realized)
        lower, upper = column(result, metric, "lower"), column(result, metric, "upper")
        assert all(lo <= r <= hi for r, lo, hi in zip(realized, lower, upper, strict=True))
    # Alerts are two-sided: a window far better than the reference is unusual too.
    assert column(result, "mae", "alert") == [True, False, True, True]


def test_dle_uses_labels_flags_concept_drift_and_unseen_inputs(dle: DLE) -> None:
    rng = np.random.default_rng(15)
    analysis = pl.concat([regression(rng, 3000), regression(rng, 3000, noisier=0.5)])
    known = rng.random(analysis.height) < 0.1
    analysis = analysis.with_columns(pl.when(pl.Series(known)).then(pl.col("y")).alias("y"))
    result = dle.estimate(analysis, window=3000)
    assert [e.codes for e in result.estimates if e.metric == "mae"] == [(), ("concept_drift",)]
    part = analysis[3000:].drop_nulls("y")
    realized = mean_absolute_error(part["y"], part["pred"])
    assert column(result, "mae", "realized")[1] == pytest.approx(realized)

    odd = regression(rng, 1000).with_columns(pl.lit("east").alias("site"), pl.col("x1") + 5)
    result = dle.estimate(pl.concat([regression(rng, 1000), odd]).drop("y"), window=1000)
    assert [e.codes for e in result.estimates if e.metric == "mae"] == [(), ("out_of_support",)]


# -- bad input --------------------------------------------------------------------------------


def test_missing_columns_are_named(fitted: CBPE, reference: pl.DataFrame) -> None:
    with pytest.raises(
        InputError, match=r"No column 'scor'.*Did you mean 'score'.*y_score"
    ) as info:
        CBPE(y_score="scor", y_true="y").fit(reference)
    assert info.value.column == "scor"
    with pytest.raises(InputError, match=r"No column 'score'.*the scores \(y_score\)"):
        fitted.estimate(reference.drop("score"), window=100)
    with pytest.raises(InputError, match="No column 'target'"):
        CBPE(y_score="score", y_true="target").fit(reference)
    with pytest.raises(InputError, match=r"No column 'x3'.*DLE reads a feature"):
        DLE(y_pred="score", y_true="y", features=["x1", "x3"]).fit(reference)


def test_scores_must_be_probabilities(reference: pl.DataFrame, fitted: CBPE) -> None:
    bad = reference.with_columns(
        pl.when(pl.int_range(pl.len()) < 3).then(2.5).otherwise(pl.col("score")).alias("score")
    )
    with pytest.raises(InputError, match=r"probabilities in \[0, 1\]; 3 of 20000 values") as info:
        CBPE(y_score="score", y_true="y").fit(bad)
    assert "e.g. 2.5 in row 0" in str(info.value)
    with pytest.raises(InputError, match=r"'score' .* 3 of 20000 values are outside"):
        fitted.estimate(bad, window=1000)
    with pytest.raises(InputError, match="must hold numbers; it holds String"):
        fitted.estimate(reference.with_columns(pl.col("score").cast(pl.String)), window=1000)
    with pytest.raises(InputError, match="has 1 null or NaN values of 20000"):
        fitted.estimate(with_null(reference, "score"), window=1000)


def test_the_reference_needs_every_class_and_every_label(reference: pl.DataFrame) -> None:
    with pytest.raises(InputError, match="single class in the reference") as info:
        CBPE(y_score="score", y_true="y").fit(reference.filter(pl.col("y") == 1))
    assert info.value.column == "y"
    with pytest.raises(InputError, match="never holds the class 1"):
        CBPE(y_score="score", y_true="y", classes=(0, 1)).fit(reference.filter(pl.col("y") == 0))
    three = reference.with_columns(
        pl.when(pl.col("x1") > 2).then(2).otherwise(pl.col("y")).alias("y")
    )
    with pytest.raises(InputError, match=r"has 3 classes .* Use task='multiclass'"):
        CBPE(y_score="score", y_true="y").fit(three)
    with pytest.raises(InputError, match=r"has 1 null values .* needs a value in every row"):
        CBPE(y_score="score", y_true="y").fit(with_null(reference, "y"))
    with pytest.raises(InputError, match="at least 100 labelled rows"):
        CBPE(y_score="score", y_true="y").fit(reference.head(50))
    with pytest.raises(InputError, match=r"20000 values that are not among the classes 0, 1"):
        CBPE(y_score="score", y_true="y").fit(reference).estimate(
            reference.with_columns(pl.col("y") + 5), window=1000
        )


def test_parameters_are_checked_at_fit(reference: pl.DataFrame) -> None:
    # __init__ only stores parameters, as in scikit-learn: errors come from fit.
    unfitted = CBPE(y_score="score", y_true="y", metrics=("roc_acu",))
    with pytest.raises(ParameterError, match=r"'roc_acu' is not a metric CBPE .*'roc_auc'"):
        unfitted.fit(reference)
    cases = [
        ({"task": "regression"}, "task"),
        ({"calibration": "platt"}, "calibration"),
        ({"threshold": 1.5}, "threshold"),
        ({"sigmas": -1.0}, "sigmas"),
        ({"folds": 1}, "folds"),
        ({"metrics": ()}, "metrics"),
        ({"support_limit": 2.0}, "support_limit"),
    ]
    for extra, parameter in cases:
        arguments = {"y_score": "score", "y_true": "y", **extra}
        with pytest.raises(ParameterError) as info:
            CBPE(**arguments).fit(reference)  # type: ignore[arg-type]
        assert info.value.parameter == parameter
    with pytest.raises(ParameterError, match="'features' parameter of DLE"):
        DLE(y_pred="score", y_true="y", features=["x1", "score"]).fit(reference)
    with pytest.raises(ParameterError, match="is not a metric DLE estimates"):
        DLE(y_pred="score", y_true="y", features=["x1"], metrics=("mse",)).fit(reference)
    with pytest.raises(NotFittedError, match="call fit"):
        CBPE(y_score="score", y_true="y").estimate(reference, window=100)
    with pytest.raises(ParameterError, match="window"):
        CBPE(y_score="score", y_true="y").fit(reference).estimate(reference, window=0)
