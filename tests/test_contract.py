"""Contract tests: every registered drift test is held to the same rules the day it is written."""

from __future__ import annotations

import pickle

import numpy as np
import polars as pl
import pytest

from mlwarden.drift import DriftTest, available_tests, get_test
from mlwarden.explanation import Explainer, available_explainers, explain
from mlwarden.profiling import profile
from mlwarden.quality import Check, Dimension, Suite, available_checks, get_check, validate
from mlwarden.schema import Kind

RNG = np.random.default_rng(0)
SAMPLE = pl.DataFrame(
    {
        "numeric": RNG.normal(size=3_000),
        "categorical": RNG.choice(["a", "b", "c", "d"], 3_000),
        "boolean": RNG.random(3_000) < 0.3,
    }
)
SAME = profile(SAMPLE)


@pytest.mark.parametrize("key", available_tests())
def test_drift_test_contract(key: str) -> None:
    cls = get_test(key)
    test = cls()
    assert test.key == key
    assert ">>>" in (cls.__doc__ or ""), "the docstring needs a runnable example"
    assert test.kinds, "a test declares the kinds of column it handles"
    for kind in test.kinds:
        column = {Kind.NUMERIC: "numeric", Kind.CATEGORICAL: "categorical"}.get(kind, "boolean")
        outcome = test.compute(SAME[column], SAME[column])
        assert outcome.effect_size == pytest.approx(0.0, abs=1e-9), (key, kind)
        assert (outcome.p_value is not None) == cls.has_p_value
        if outcome.p_value is not None:
            assert outcome.p_value > 0.5
    assert DriftTest.from_dict(test.to_dict()) == test
    configured = cls(threshold=0.25)
    assert DriftTest.from_dict(configured.to_dict()).threshold == 0.25
    assert pickle.loads(pickle.dumps(configured)) == configured


def test_duplicate_keys_fail_at_definition() -> None:
    with pytest.raises(TypeError, match="'ks' is taken"):

        class Again(DriftTest, key="ks"):  # pragma: no cover - the definition itself fails
            pass


# -- data-quality checks -------------------------------------------------------------------------

CHECK_SAMPLE = SAMPLE.with_columns(
    pl.datetime_range(
        pl.datetime(2024, 1, 1), pl.datetime(2024, 1, 1) + pl.duration(seconds=2_999), "1s"
    ).alias("time"),
    pl.int_range(3_000).alias("row_id"),
)


@pytest.mark.parametrize("key", available_checks())
def test_check_contract(key: str) -> None:
    cls = get_check(key)
    assert ">>>" in (cls.__doc__ or ""), "the docstring needs a runnable example"
    assert isinstance(cls.dimension, Dimension)
    check = cls(**cls.example)
    assert check.key == key
    suite = Suite([check], timestamp="time")
    result = validate(CHECK_SAMPLE, suite).results[0]
    assert result.passed, (key, result.message)
    assert result.message, "every result says what it found"
    assert Check.from_dict(check.to_dict()) == check
    assert Suite.from_yaml(suite.to_yaml()) == suite
    assert pickle.loads(pickle.dumps(check)) == check
    warning = cls(**cls.example, severity="warning")
    assert warning.level == "warning"


def test_duplicate_check_keys_fail_at_definition() -> None:
    with pytest.raises(TypeError, match="'range' is taken"):

        class Again(Check, key="range"):  # pragma: no cover - the definition itself fails
            pass


@pytest.mark.parametrize("key", available_explainers())
def test_explainer_contract(key: str) -> None:
    import importlib

    cls = Explainer.registry[key]
    assert cls.__doc__, "every explainer says what it computes"
    module, _, name = cls.example.rpartition(".")
    x = RNG.normal(size=(300, 3))
    model = getattr(importlib.import_module(module), name)().fit(x, x[:, 0] - 2 * x[:, 1])
    assert cls.supports(model)
    e = explain(model, x[:8], method=key)
    assert e.method == key
    assert e.values.shape == (8, 3)
    # attributions add up to the model's output for every row
    np.testing.assert_allclose(e.values.sum(axis=1) + e.base_value, model.predict(x[:8]))
    assert pickle.loads(pickle.dumps(cls)) is cls


def test_duplicate_explainer_keys_fail_at_definition() -> None:
    with pytest.raises(TypeError, match="'tree' is taken"):

        class Again(Explainer, key="tree"):  # pragma: no cover - the definition itself fails
            pass
