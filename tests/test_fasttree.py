"""The compiled tree explainer: the same attributions as shap and LightGBM's own TreeSHAP, for
every supported model, NaNs, zeros and categories included; they add up to the raw output; a
model it does not reproduce is left to shap with the same result."""

from __future__ import annotations

import gc
import warnings
import weakref
from collections.abc import Callable
from typing import Any

import lightgbm as lgb
import numpy as np
import pytest
import shap
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn.ensemble import (
    ExtraTreesClassifier,
    GradientBoostingClassifier,
    GradientBoostingRegressor,
    HistGradientBoostingRegressor,
    RandomForestClassifier,
    RandomForestRegressor,
)
from sklearn.tree import DecisionTreeClassifier, DecisionTreeRegressor

from mlwarden.exceptions import InputError
from mlwarden.explanation import _fasttree, explain

RTOL, ATOL = 1e-6, 1e-8


@pytest.fixture(scope="module")
def data() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Six numeric features (NaNs in two, exact zeros in one) and a categorical seventh."""
    rng = np.random.default_rng(11)
    x = rng.normal(size=(3_000, 7))
    x[:, 6] = rng.integers(0, 12, size=len(x))
    x[rng.random(len(x)) < 0.15, 0] = np.nan
    x[rng.random(len(x)) < 0.10, 1] = np.nan
    x[rng.random(len(x)) < 0.25, 2] = 0.0
    signal = (
        2 * np.nan_to_num(x[:, 0], nan=1.5)
        + np.where(np.isnan(x[:, 1]), -1.0, x[:, 1])
        + (x[:, 2] == 0) * 1.5
        + x[:, 3] * x[:, 4]
        + np.isin(x[:, 6], [1, 4, 7, 9]) * 2.0
    )
    y_class = (signal + rng.normal(scale=0.5, size=len(x)) > signal.mean()).astype(int)
    return x, signal, y_class


def _rows(x: np.ndarray) -> np.ndarray:
    """Rows to explain, with what training never saw: NaN where there was none, categories
    that are negative, fractional, NaN or past every split's set."""
    rows = x[:300].copy()
    rows[::9, 3] = np.nan
    rows[::7, 6] = np.nan
    rows[1::7, 6] = -0.5
    rows[2::7, 6] = -3.0
    rows[3::7, 6] = 40.0
    rows[4::7, 6] = 4.7
    return rows


def _shap(model: object, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        explainer = shap.TreeExplainer(model)
        values = np.asarray(explainer.shap_values(x, check_additivity=False))
    return values, np.atleast_1d(np.asarray(explainer.expected_value, dtype=float))


@pytest.mark.parametrize(
    "params",
    [
        {},
        {"zero_as_missing": True},
        {"num_leaves": 63, "min_child_samples": 3, "use_missing": False},
    ],
    ids=["nan-missing", "zero-as-missing", "missing-off"],
)
def test_lightgbm_matches_its_own_contributions(data: tuple, params: dict) -> None:
    x, signal, y = data
    rows = _rows(x)
    regressor = lgb.LGBMRegressor(n_estimators=25, verbose=-1, **params)
    regressor.fit(x, signal, categorical_feature=[6])
    classifier = lgb.LGBMClassifier(n_estimators=25, verbose=-1, **params)
    classifier.fit(x, y, categorical_feature=[6])
    for model in (regressor, classifier, classifier.booster_):
        booster = getattr(model, "booster_", model)
        contributions = booster.predict(rows, pred_contrib=True)
        e = explain(model, rows)
        assert (e.method, e.output) == ("tree", "raw")
        assert np.allclose(e.values, contributions[:, :-1], rtol=RTOL, atol=ATOL)
        assert np.allclose(e.base_value, contributions[:, -1], rtol=RTOL, atol=ATOL)
        raw = booster.predict(rows, raw_score=True)
        assert np.allclose(e.values.sum(axis=1) + e.base_value, raw, rtol=RTOL, atol=1e-9)


def test_a_multiclass_booster_is_explained_one_class_at_a_time(data: tuple) -> None:
    x, signal, _ = data
    labels = np.digitize(signal, np.quantile(signal, [0.33, 0.66]))
    model = lgb.LGBMClassifier(n_estimators=20, verbose=-1).fit(x, labels, categorical_feature=[6])
    rows = _rows(x)
    contributions = model.booster_.predict(rows, pred_contrib=True).reshape(len(rows), 3, -1)
    for k in range(3):
        e = explain(model, rows, class_index=k)
        assert np.allclose(e.values, contributions[:, k, :-1], rtol=RTOL, atol=ATOL)
        assert np.allclose(e.base_value, contributions[:, k, -1], rtol=RTOL, atol=ATOL)


def _at_thresholds(x: np.ndarray, splits: list[tuple[int, float]]) -> np.ndarray:
    """Rows with one value at a split's threshold, a step either side of it, or within
    LightGBM's zero threshold of 0."""
    rows = []
    for feature, threshold in splits:
        for value in (
            threshold,
            np.nextafter(threshold, np.inf),
            np.nextafter(threshold, -np.inf),
            float(np.float32(threshold)),
            1e-36,
            -1e-36,
            -0.0,
        ):
            row = x[len(rows) % len(x)].copy()
            row[feature] = value
            rows.append(row)
    return np.array(rows)


def test_values_at_split_thresholds_go_where_the_library_sends_them() -> None:
    rng = np.random.default_rng(5)
    x = np.round(rng.normal(size=(2_000, 5)) * 3) / 3  # few distinct values: exact thresholds
    y = x[:, 0] + x[:, 1] * x[:, 2]
    for params in ({}, {"zero_as_missing": True}):
        booster = lgb.LGBMRegressor(n_estimators=20, verbose=-1, **params).fit(x, y).booster_
        splits = []
        for tree in booster.dump_model()["tree_info"]:
            nodes = [tree["tree_structure"]]
            while nodes:
                node = nodes.pop()
                if "split_feature" in node:
                    splits.append((node["split_feature"], node["threshold"]))
                    nodes += [node["left_child"], node["right_child"]]
        rows = _at_thresholds(x, splits[:200])
        contributions = booster.predict(rows, pred_contrib=True)
        assert np.allclose(explain(booster, rows).values, contributions[:, :-1], RTOL, ATOL)
    forest = RandomForestRegressor(n_estimators=4, max_depth=8, random_state=0).fit(x, y)
    splits = [
        (int(t.feature[i]), float(t.threshold[i]))
        for t in (e.tree_ for e in forest.estimators_)
        for i in np.flatnonzero(t.children_left >= 0)
    ]
    rows = _at_thresholds(x, splits[:200])
    assert np.allclose(explain(forest, rows).values, _shap(forest, rows)[0], RTOL, ATOL)


@pytest.mark.parametrize(
    "make",
    [
        lambda: GradientBoostingRegressor(n_estimators=60, max_depth=4, random_state=0),
        lambda: RandomForestRegressor(n_estimators=15, max_depth=9, random_state=0),
        lambda: DecisionTreeRegressor(max_depth=12, random_state=0),
    ],
    ids=["gradient-boosting", "random-forest", "decision-tree"],
)
def test_scikit_learn_regressors_match_shap(data: tuple, make: Callable[[], Any]) -> None:
    x, signal, _ = data
    x = np.nan_to_num(x[:, :6], nan=0.25)
    model = make().fit(x, signal)
    rows = x[:300]
    expected, expected_value = _shap(model, rows)
    e = explain(model, rows)
    assert (e.method, e.output) == ("tree", "raw")
    assert np.allclose(e.values, expected, rtol=RTOL, atol=ATOL)
    assert np.allclose(e.base_value, expected_value[-1], rtol=RTOL, atol=ATOL)
    assert np.allclose(e.values.sum(axis=1) + e.base_value, model.predict(rows), atol=1e-9)


def test_gradient_boosting_classifier_explains_log_odds(data: tuple) -> None:
    x, _, y = data
    x = np.nan_to_num(x[:, :6], nan=0.25)
    model = GradientBoostingClassifier(n_estimators=60, random_state=0).fit(x, y)
    rows = x[:300]
    expected, _ = _shap(model, rows)
    e = explain(model, rows)
    assert (e.method, e.output) == ("tree", "raw")
    assert np.allclose(e.values, expected, rtol=RTOL, atol=ATOL)
    assert np.allclose(
        e.values.sum(axis=1) + e.base_value, model.decision_function(rows), atol=1e-9
    )


@pytest.mark.parametrize(
    "make",
    [
        lambda: RandomForestClassifier(n_estimators=15, max_depth=10, random_state=0),
        lambda: ExtraTreesClassifier(n_estimators=15, max_depth=10, random_state=0),
        lambda: DecisionTreeClassifier(max_depth=10, random_state=0),
    ],
    ids=["random-forest", "extra-trees", "decision-tree"],
)
def test_classifier_forests_explain_each_class_in_probabilities(
    data: tuple, make: Callable[[], Any]
) -> None:
    x, signal, _ = data
    labels = np.digitize(signal, np.quantile(signal, [0.33, 0.66]))
    model = make().fit(x, labels)  # with NaNs, which scikit-learn sends one way per split
    rows = _rows(x)[:, :7]
    expected, expected_value = _shap(model, rows)
    for k in range(3):
        e = explain(model, rows, class_index=k)
        assert (e.method, e.output) == ("tree", "probability")
        assert np.allclose(e.values, expected[:, :, k], rtol=RTOL, atol=ATOL)
        assert np.allclose(e.base_value, expected_value[k], rtol=RTOL, atol=ATOL)
        assert np.allclose(
            e.values.sum(axis=1) + e.base_value, model.predict_proba(rows)[:, k], atol=1e-9
        )


@pytest.mark.parametrize("table_width", [0, _fasttree.TABLE_WIDTH], ids=["quadrature", "tables"])
def test_deep_trees_past_the_table_width_match_shap(
    table_width: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Deep trees, whose paths hold more distinct features than a table may: those leaves are
    computed per row (every leaf, with ``table_width`` 0)."""
    monkeypatch.setattr(_fasttree, "TABLE_WIDTH", table_width)
    rng = np.random.default_rng(3)
    x = rng.normal(size=(2_000, 24))
    y = x @ rng.normal(size=24) + x[:, 0] * x[:, 1] + rng.normal(scale=0.3, size=len(x))
    models = [
        DecisionTreeRegressor(random_state=0).fit(x, y),
        lgb.LGBMRegressor(n_estimators=3, num_leaves=200, min_child_samples=2, verbose=-1).fit(
            x, y
        ),
    ]
    for model in models:
        fast = _fasttree.fast_tree(model)
        assert fast is not None
        ensemble = fast.ensemble()
        assert ensemble is not None
        assert ensemble.leaf_width.max() > _fasttree.TABLE_WIDTH
        assert (ensemble.leaf_table < 0).any()  # some leaves are computed per row
        rows = x[:150]
        expected, _ = _shap(model, rows)
        e = explain(model, rows)
        assert np.allclose(e.values, expected, rtol=RTOL, atol=ATOL)
        assert np.allclose(e.values.sum(axis=1) + e.base_value, model.predict(rows), atol=1e-9)


@settings(max_examples=25, deadline=None)
@given(
    seed=st.integers(0, 2**32 - 1),
    n_features=st.integers(1, 7),
    depth=st.integers(1, 9),
    kind=st.sampled_from(["tree", "forest", "lightgbm"]),
    discrete=st.booleans(),
)
def test_random_small_models_match_shap(
    seed: int, n_features: int, depth: int, kind: str, discrete: bool
) -> None:
    rng = np.random.default_rng(seed)
    n = int(rng.integers(30, 300))
    x = rng.normal(size=(n, n_features))
    if discrete:  # repeated values: ties at thresholds, features split on again and again
        x = np.round(x * 2)
    y = x @ rng.normal(size=n_features) + rng.normal(size=n)
    if kind == "tree":
        model: object = DecisionTreeRegressor(max_depth=depth, random_state=seed % 1000).fit(x, y)
    elif kind == "forest":
        model = RandomForestRegressor(
            n_estimators=4, max_depth=depth, random_state=seed % 1000
        ).fit(x, y)
    else:
        model = lgb.LGBMRegressor(
            n_estimators=4,
            num_leaves=2 + depth,
            min_child_samples=2,
            min_data_in_bin=1,
            verbose=-1,
        ).fit(x, y)
    expected, expected_value = _shap(model, x)
    e = explain(model, x)
    assert np.allclose(e.values, expected, rtol=RTOL, atol=ATOL)
    assert np.allclose(e.base_value, expected_value[-1], rtol=RTOL, atol=ATOL)


def test_models_it_does_not_reproduce_are_left_to_shap(data: tuple) -> None:
    x, signal, _ = data
    rows = x[:50]
    histogram = HistGradientBoostingRegressor(max_iter=20, random_state=0).fit(x, signal)
    forest_mode = lgb.LGBMRegressor(
        n_estimators=5, boosting_type="rf", bagging_freq=1, bagging_fraction=0.5, verbose=-1
    ).fit(x, signal)
    assert _fasttree.fast_tree(histogram) is None
    fast = _fasttree.fast_tree(forest_mode)
    assert fast is not None
    assert fast.ensemble() is None
    for model in (histogram, forest_mode):
        expected, expected_value = _shap(model, rows)
        e = explain(model, rows)
        assert (e.method, e.output) == ("tree", "raw")
        np.testing.assert_array_equal(e.values, expected)
        np.testing.assert_array_equal(e.base_value, expected_value[-1])


def test_the_flattened_trees_are_kept_until_the_model_is_refitted(data: tuple) -> None:
    x, signal, _ = data
    model = lgb.LGBMRegressor(n_estimators=10, verbose=-1).fit(x, signal)
    first = _fasttree.fast_tree(model)
    assert first is not None
    assert _fasttree.fast_tree(model) is first
    assert first.ensemble() is first.ensemble()
    model.fit(x, -signal)  # a refit: other trees, the old ones must not answer
    assert _fasttree.fast_tree(model) is not first
    e = explain(model, x[:20])
    assert np.allclose(e.values.sum(axis=1) + e.base_value, model.predict(x[:20]), atol=1e-9)
    forest = RandomForestRegressor(n_estimators=3, warm_start=True, random_state=0)
    forest.fit(x[:, :6], signal)
    kept = _fasttree.fast_tree(forest)
    forest.set_params(n_estimators=6).fit(x[:, :6], signal)  # grows the same list of trees
    assert _fasttree.fast_tree(forest) is not kept
    e = explain(forest, x[:20, :6])
    assert np.allclose(e.values.sum(axis=1) + e.base_value, forest.predict(x[:20, :6]))
    # what is kept does not keep the model alive
    gone = weakref.ref(model), weakref.ref(forest)
    del model, forest, first, kept
    gc.collect()
    assert gone[0]() is None
    assert gone[1]() is None


def test_data_of_another_width_is_named(data: tuple) -> None:
    x, signal, _ = data
    model = lgb.LGBMRegressor(n_estimators=5, verbose=-1).fit(x, signal)
    with pytest.raises(InputError, match="6 columns but the model was trained on 7 features"):
        explain(model, x[:5, :6], feature_names=[f"x{i}" for i in range(6)])


def test_a_path_wider_than_a_mask_is_left_to_shap() -> None:
    """A chain of splits on 63 distinct features: more than the 62 bits of a leaf's mask."""
    depth = _fasttree.MAX_WIDTH + 1
    nodes = 2 * depth + 1
    left = np.full(nodes, -1)
    right = np.full(nodes, -1)
    inner = np.arange(depth) * 2  # node 2k splits on feature k: leaf 2k + 1, then node 2k + 2
    left[inner], right[inner] = inner + 1, inner + 2
    chain = _fasttree.Tree(
        left=left,
        right=right,
        feature=np.where(left >= 0, np.arange(nodes) // 2, 0),
        threshold=np.zeros(nodes),
        kind=np.zeros(nodes, dtype=np.int8),
        default_left=np.ones(nodes, dtype=bool),
        cover=np.linspace(2.0 * nodes, 1.0, nodes),
        value=np.ones(nodes),
    )
    assert _fasttree.flatten([chain], depth) is None
    shallow = _fasttree.Tree(**{**chain.__dict__, "feature": chain.feature % 5})
    assert _fasttree.flatten([shallow], depth) is not None
