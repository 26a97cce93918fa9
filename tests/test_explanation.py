"""Explanations: attributions equal shap's own and add up to the model's output; groups map
engineered columns to sensors; bad input is named."""

from __future__ import annotations

import warnings

import lightgbm as lgb
import numpy as np
import polars as pl
import pytest
import shap
from sklearn.ensemble import (
    GradientBoostingRegressor,
    HistGradientBoostingClassifier,
    RandomForestClassifier,
)
from sklearn.linear_model import LinearRegression, LogisticRegression
from sklearn.svm import SVR

import mlwarden
from mlwarden.exceptions import InputError, ParameterError
from mlwarden.explanation import Explanation, explain

NAMES = ["temp_lag_1", "temp_mean_10m", "pressure", "vibration"]


@pytest.fixture(scope="module")
def data() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(7)
    x = rng.normal(size=(1_500, 4))
    signal = 2 * x[:, 0] + x[:, 1] - 0.5 * x[:, 2] + 0.3 * x[:, 0] * x[:, 3]
    y_class = (signal + rng.normal(scale=0.5, size=len(x)) > 0).astype(int)
    return x, signal, y_class


def _shap_tree(model: object, x: np.ndarray) -> np.ndarray:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        return np.asarray(shap.TreeExplainer(model).shap_values(x))


def test_tree_models_match_shap_and_add_up_to_the_raw_output(data: tuple) -> None:
    x, signal, y = data
    rows = x[:50]
    cases = [
        (GradientBoostingRegressor(random_state=0).fit(x, signal), "predict"),
        (
            HistGradientBoostingClassifier(max_iter=50, random_state=0).fit(x, y),
            "decision_function",
        ),
        (lgb.LGBMClassifier(n_estimators=60, verbose=-1).fit(x, y), "raw"),
    ]
    for model, output in cases:
        e = explain(model, rows, feature_names=NAMES)
        assert e.method == "tree"
        assert e.output == "raw"
        np.testing.assert_allclose(e.values, _shap_tree(model, rows), rtol=1e-6, atol=1e-9)
        if output == "raw":
            raw = model.predict(rows, raw_score=True)
        else:
            raw = getattr(model, output)(rows)
        np.testing.assert_allclose(e.values.sum(axis=1) + e.base_value, raw, atol=1e-6)


def test_a_forest_classifier_is_explained_in_probabilities(data: tuple) -> None:
    x, _, y = data
    model = RandomForestClassifier(n_estimators=30, random_state=0).fit(x, y)
    e = explain(model, x[:40])
    assert (e.method, e.output) == ("tree", "probability")
    np.testing.assert_allclose(e.values, _shap_tree(model, x[:40])[:, :, 1], atol=1e-9)
    np.testing.assert_allclose(
        e.values.sum(axis=1) + e.base_value, model.predict_proba(x[:40])[:, 1], atol=1e-6
    )


def test_linear_models_are_exact(data: tuple) -> None:
    x, signal, y = data
    linear = LinearRegression().fit(x, signal)
    e = explain(linear, x[:30], background=x)
    assert e.method == "linear"
    np.testing.assert_allclose(e.values.sum(axis=1) + e.base_value, linear.predict(x[:30]))
    # a linear model's attribution is its coefficient times the distance from the mean
    np.testing.assert_allclose(e.values, linear.coef_ * (x[:30] - x.mean(axis=0)), atol=1e-9)
    logistic = LogisticRegression().fit(x, y)
    e = explain(logistic, x[:30], background=x)
    np.testing.assert_allclose(
        e.values.sum(axis=1) + e.base_value, logistic.decision_function(x[:30]), atol=1e-9
    )


def test_anything_else_is_sampled_within_a_budget(data: tuple) -> None:
    x, signal, _ = data
    model = SVR().fit(x[:400], signal[:400])
    e = explain(model, x[:10], background=x[:50], max_evals=100)
    assert (e.method, e.output) == ("sampling", "prediction")
    np.testing.assert_allclose(e.values.sum(axis=1) + e.base_value, model.predict(x[:10]))
    # the strongest input of the signal gets the largest attributions
    assert np.abs(e.values).mean(axis=0).argmax() == 0


def test_groups_map_engineered_columns_to_sensors(data: tuple) -> None:
    x, signal, _ = data
    model = GradientBoostingRegressor(random_state=0).fit(x, signal)
    e = mlwarden.explain(model, pl.DataFrame(x, schema=NAMES))
    assert isinstance(e, Explanation)
    assert e.feature_names == tuple(NAMES)
    sensors = e.by_group({"temperature": ["temp_lag_1", "temp_mean_10m"]})
    assert sensors.feature_names == ("temperature", "pressure", "vibration")
    np.testing.assert_allclose(sensors.values[:, 0], e.values[:, 0] + e.values[:, 1])
    np.testing.assert_allclose(sensors.values.sum(axis=1), e.values.sum(axis=1))
    by_prefix = e.by_group(lambda name: name.split("_")[0])
    assert by_prefix.feature_names == ("temp", "pressure", "vibration")
    assert sensors.global_importance()["feature"][0] == "temperature"
    table = e.global_importance()
    assert table["feature"][0] == "temp_lag_1"
    assert table["direction"][0] > 0.9, "a higher temperature raises the output"
    assert table.filter(pl.col("feature") == "pressure")["direction"][0] < 0
    assert abs(table["share"].sum() - 1.0) < 1e-9
    assert e.to_df().columns == ["base_value", *NAMES]
    with pytest.raises(InputError, match="'humidity', which is not a feature"):
        e.by_group({"air": ["humidity"]})


def test_bad_input_is_named(data: tuple) -> None:
    x, signal, _ = data
    model = GradientBoostingRegressor(n_estimators=10).fit(x, signal)
    with pytest.raises(ParameterError, match="Did you mean 'tree'"):
        explain(model, x[:5], method="tre")
    frame = pl.DataFrame(x, schema=NAMES)
    with pytest.raises(InputError, match="lacks the model's feature\\(s\\) 'humidity'"):
        explain(model, frame, feature_names=[*NAMES[:3], "humidity"])
    with pytest.raises(InputError, match="4 columns but 3 feature names"):
        explain(model, x[:5], feature_names=NAMES[:3])
    with pytest.raises(InputError, match="no rows"):
        explain(model, x[:0])
    multi = RandomForestClassifier(n_estimators=5).fit(x, np.digitize(signal, [-1, 1]))
    with pytest.raises(ParameterError, match="3 classes: say which one"):
        explain(multi, x[:5])
    assert explain(multi, x[:5], class_index=2).values.shape == (5, 4)
    with pytest.raises(ParameterError, match="cannot explain a SVR"):
        explain(SVR().fit(x[:50], signal[:50]), x[:5], method="tree")
