"""The compiled tree explainer: the same attributions as shap and LightGBM's own TreeSHAP, for
every supported model, NaNs, zeros and categories included; they add up to the raw output; a
model it does not reproduce is left to shap with the same result."""

from __future__ import annotations

import gc
import itertools
import math
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
    HistGradientBoostingClassifier,
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


def test_histogram_gradient_boosting_without_categories_matches_shap(data: tuple) -> None:
    x, signal, y = data
    rows = _rows(x)  # NaNs where training had none, in every column
    regressor = HistGradientBoostingRegressor(max_iter=40, random_state=0).fit(x, signal)
    classifier = HistGradientBoostingClassifier(max_iter=40, random_state=0).fit(x, y)
    for model, raw in (
        (regressor, regressor.predict(rows)),
        (classifier, classifier.decision_function(rows)),
    ):
        expected, expected_value = _shap(model, rows)
        e = explain(model, rows)
        assert (e.method, e.output) == ("tree", "raw")
        assert np.allclose(e.values, expected, rtol=RTOL, atol=ATOL)
        assert np.allclose(e.base_value, expected_value[-1], rtol=RTOL, atol=ATOL)
        assert np.allclose(e.values.sum(axis=1) + e.base_value, raw, rtol=0, atol=1e-9)


def _categorical_data(
    n: int, categorical: list[int], n_features: int = 7, seed: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    """Rows with category codes (0 to k - 1, as floats, some NaN) in the columns
    ``categorical`` and numbers with NaNs in the others, and a signal that depends on both."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, n_features))
    for k, column in zip((5, 12), categorical, strict=False):
        x[:, column] = rng.integers(0, k, size=n)
        x[rng.random(n) < 0.05, column] = np.nan
    numeric = [j for j in range(n_features) if j not in categorical]
    for column in numeric[:2]:
        x[rng.random(n) < 0.1, column] = np.nan
    first = x[:, categorical[0]]
    signal = (
        (np.isin(first, [1, 3]) | np.isnan(first)) * 1.5
        + np.nan_to_num(x[:, numeric[0]], nan=-1.0)
        + np.isnan(x[:, numeric[1]]) * 0.8
        + x[:, numeric[2]] * (np.nan_to_num(x[:, categorical[-1]]) % 3 - 1)
    )
    return x, signal + rng.normal(scale=0.3, size=n)


def _unseen(x: np.ndarray, categorical: list[int]) -> np.ndarray:
    """Rows with what the categorical columns' splits send to their missing side: codes past
    the known ones, negative or fractional (the model does not truncate them), and NaN; and
    NaNs in a numeric column."""
    rows = x[:300].copy()
    for offset, column in enumerate(categorical):
        rows[offset::6, column] = np.nan
        rows[offset + 1 :: 6, column] = 40.0
        rows[offset + 2 :: 6, column] = -1.0
        rows[offset + 3 :: 6, column] = 1.5
    numeric = next(j for j in range(x.shape[1]) if j not in categorical)
    rows[::5, numeric] = np.nan
    return rows


@pytest.mark.parametrize("categorical", [[0, 1], [4, 1]], ids=["leading", "interleaved"])
def test_histogram_gradient_boosting_with_categories_adds_up_to_its_output(
    categorical: list[int],
) -> None:
    """Categorical splits (which shap reads as numeric ones, on another column) route every
    value as the model does: unknown codes and NaN to the split's missing side."""
    x, signal = _categorical_data(2_000, categorical)
    rows = _unseen(x, categorical)
    labels = np.digitize(signal, np.quantile(signal, [0.33, 0.66]))
    fit = {"categorical_features": categorical, "random_state": 0}
    regressor = HistGradientBoostingRegressor(max_iter=40, **fit).fit(x, signal)
    classifier = HistGradientBoostingClassifier(max_iter=40, **fit).fit(x, labels == 2)
    multiclass = HistGradientBoostingClassifier(max_iter=15, **fit).fit(x, labels)
    for model, raw in (
        (regressor, regressor.predict(rows)),
        (classifier, classifier.decision_function(rows)),
    ):
        e = explain(model, rows)
        assert (e.method, e.output) == ("tree", "raw")
        assert np.allclose(e.values.sum(axis=1) + e.base_value, raw, rtol=0, atol=1e-8)
    margins = multiclass.decision_function(rows)
    for k in range(3):
        e = explain(multiclass, rows, class_index=k)
        assert (e.method, e.output) == ("tree", "raw")
        assert np.allclose(e.values.sum(axis=1) + e.base_value, margins[:, k], rtol=0, atol=1e-8)


def _path_dependent_shap(model: Any, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Path-dependent TreeSHAP by its definition, read from the model's own trees: for every
    coalition ``S`` of features, ``E[f(x) | x_S]`` by recursion (the row's branch at a split on
    a feature of ``S``, the count-weighted mean of both children elsewhere), then Shapley's
    formula. Also the model's output by the same routing, all features known."""
    encoded = model._preprocessor.transform(rows)  # the columns as the trees read them
    categorical = np.asarray(model.is_categorical_)
    source = np.concatenate([np.flatnonzero(categorical), np.flatnonzero(~categorical)])
    known, known_row = model._bin_mapper.make_known_categories_bitsets()
    trees = [(p[0].nodes, p[0].raw_left_cat_bitsets) for p in model._predictors]

    def has(bitset: np.ndarray, code: int) -> bool:
        return bool((bitset[code // 32] >> (code % 32)) & 1)

    def goes_left(node: Any, bitsets: np.ndarray, value: float) -> bool:
        if np.isnan(value):
            return bool(node["missing_go_to_left"])
        if not node["is_categorical"]:
            return bool(value <= node["num_threshold"])
        if value >= 0 and has(bitsets[node["bitset_idx"]], int(value)):
            return True
        if value >= 0 and has(known[known_row[node["feature_idx"]]], int(value)):
            return False
        return bool(node["missing_go_to_left"])

    def expectation(nodes: Any, bitsets: Any, i: int, row: np.ndarray, known: set[int]) -> float:
        node = nodes[i]
        if node["is_leaf"]:
            return float(node["value"])
        left, right = int(node["left"]), int(node["right"])
        if source[node["feature_idx"]] in known:
            child = left if goes_left(node, bitsets, row[node["feature_idx"]]) else right
            return expectation(nodes, bitsets, child, row, known)
        return (
            nodes[left]["count"] * expectation(nodes, bitsets, left, row, known)
            + nodes[right]["count"] * expectation(nodes, bitsets, right, row, known)
        ) / node["count"]

    n = rows.shape[1]
    base = float(model._baseline_prediction[0, 0])
    values, output = np.zeros(rows.shape), np.zeros(len(rows))
    for r, row in enumerate(encoded):
        f = {
            subset: base + sum(expectation(*tree, 0, row, set(subset)) for tree in trees)
            for size in range(n + 1)
            for subset in itertools.combinations(range(n), size)
        }
        output[r] = f[tuple(range(n))]
        for i in range(n):
            for subset, before in f.items():
                if i not in subset:
                    weight = 1.0 / (n * math.comb(n - 1, len(subset)))
                    values[r, i] += weight * (f[tuple(sorted((*subset, i)))] - before)
    return values, output


def test_histogram_gradient_boosting_is_path_dependent_shap_by_definition() -> None:
    """A tiny model, a categorical feature among numeric ones: the values are those of the
    definition, evaluated on every coalition of features."""
    x, signal = _categorical_data(600, [2], n_features=4, seed=3)
    rows = _unseen(x, [2])[:60]
    model = HistGradientBoostingClassifier(
        max_iter=3, max_leaf_nodes=4, categorical_features=[2], random_state=0
    ).fit(x, signal > np.median(signal))
    assert any(p[0].nodes["is_categorical"].any() for p in model._predictors)
    expected, output = _path_dependent_shap(model, rows)
    assert np.allclose(output, model.decision_function(rows), rtol=0, atol=1e-12)
    e = explain(model, rows)
    assert np.allclose(e.values, expected, rtol=RTOL, atol=1e-12)
    assert np.allclose(e.values.sum(axis=1) + e.base_value, output, rtol=0, atol=1e-12)


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
    x, signal, y = data
    rows = x[:50]
    exponential = GradientBoostingClassifier(loss="exponential", n_estimators=10).fit(
        np.nan_to_num(x), y
    )
    forest_mode = lgb.LGBMRegressor(
        n_estimators=5, boosting_type="rf", bagging_freq=1, bagging_fraction=0.5, verbose=-1
    ).fit(x, signal)
    assert _fasttree.fast_tree(exponential) is None
    fast = _fasttree.fast_tree(forest_mode)
    assert fast is not None
    assert fast.ensemble() is None
    for model in (exponential, forest_mode):
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
