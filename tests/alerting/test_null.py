"""Null models: a value maps to a nominal z and back, inside the metric's range, and the
nominal z follows a standard normal distribution where the sampling theory holds."""

from __future__ import annotations

import math

import numpy as np
import polars as pl
import pytest
from hypothesis import given
from hypothesis import strategies as st

from mlwarden.alerting.null import NullModel
from mlwarden.exceptions import ParameterError
from mlwarden.profiling import profile


@given(
    d=st.floats(0.001, 0.999),
    n=st.floats(5.0, 1e6),
)
def test_a_distance_maps_to_z_and_back(d: float, n: float) -> None:
    null = NullModel("ks", n=n)
    z = null.z(d)
    # where bounds live (beyond, a tail is below double precision's reach)
    if -5 < z < 40:
        lower, upper = null.bounds(z)
        assert lower is None
        assert upper == pytest.approx(d, rel=1e-4)


@given(d=st.floats(0.001, 0.999), n=st.floats(5.0, 1e5), df=st.integers(1, 30))
def test_a_categorical_distance_maps_to_z_and_back(d: float, n: float, df: int) -> None:
    null = NullModel("chi2", n=n, df=float(df))
    z = null.z(d)
    if -5 < z < 30:
        assert null.bounds(z)[1] == pytest.approx(d, rel=1e-4)


@given(
    z=st.floats(-20, 60),
    n=st.floats(2.0, 1e6),
    kind=st.sampled_from(["ks", "chi2"]),
)
def test_every_bound_lies_inside_the_range_or_is_none(z: float, n: float, kind: str) -> None:
    lower, upper = NullModel(kind, n=n, df=3.0).bounds(z)  # type: ignore[arg-type]
    assert lower is None
    assert upper is None or 0.0 < upper < 1.0


@given(d1=st.floats(0.0, 1.0), d2=st.floats(0.0, 1.0), n=st.floats(5.0, 1e5))
def test_the_nominal_z_grows_with_the_distance(d1: float, d2: float, n: float) -> None:
    null = NullModel("ks", n=n)
    low, high = sorted((d1, d2))
    assert null.z(low) <= null.z(high)


def test_a_unit_change_is_more_surprising_on_more_rows() -> None:
    # complete separation of ten rows (a batch's first minutes) is far less telling
    assert NullModel("ks", n=10).z(1.0) < 10 < NullModel("ks", n=480).z(1.0)


def test_ks_nominal_z_is_standard_normal_on_independent_rows() -> None:
    rng = np.random.default_rng(3)
    reference = profile(pl.DataFrame({"x": rng.normal(size=20_000)}))["x"]
    from mlwarden.drift.ks import KolmogorovSmirnov

    test = KolmogorovSmirnov()
    zs = []
    for _ in range(300):
        current = profile(pl.DataFrame({"x": rng.normal(size=400)}))["x"]
        outcome = test.compute(reference, current)
        null = test.null_model(reference, current)
        assert null is not None
        zs.append(null.z(outcome.effect_size))
    assert abs(float(np.mean(zs))) < 0.2
    assert 0.8 < float(np.std(zs)) < 1.2


@given(k=st.integers(0, 50), p=st.floats(0.01, 0.5), z=st.floats(0.5, 6.0))
def test_a_binomial_bound_separates_the_counts_that_alarm(k: int, p: float, z: float) -> None:
    null = NullModel("binomial", n=50, center=p)
    _, upper = null.bounds(z)
    rate = k / 50
    if upper is not None:
        assert (rate > upper) == (null.z(rate) >= z)


def test_a_gauss_metric_has_bounds_on_its_bad_side_only() -> None:
    auc = NullModel("gauss", side="lower", center=0.82, scale=0.02, low=0.5)
    lower, upper = auc.bounds(3.0)
    assert upper is None
    assert lower == pytest.approx(0.76)
    assert auc.bounds(20.0) == (None, None)  # an AUC at or below chance is no bound
    shift = NullModel("gauss", side="both", scale=0.1, low=-math.inf, high=math.inf)
    assert shift.bounds(2.0) == pytest.approx((-0.2, 0.2))
    assert shift.z(-0.3) == pytest.approx(-3.0)  # a two-sided metric keeps its sign


def test_a_row_count_is_judged_on_the_log_scale() -> None:
    volume = NullModel("gauss", side="lower", center=400.0, scale=0.05, log=True, high=math.inf)
    lower, _ = volume.bounds(2.0)
    assert lower == pytest.approx(400.0 * math.exp(-0.1))
    assert volume.z(200.0) == pytest.approx(math.log(2.0) / 0.05)


def test_bad_parameters_are_named() -> None:
    with pytest.raises(ParameterError, match="'median' is not a null model kind"):
        NullModel("median")  # type: ignore[arg-type]
    with pytest.raises(ParameterError, match="n, scale and df > 0"):
        NullModel("ks", n=0)


def test_round_trip() -> None:
    null = NullModel("chi2", n=120.5, df=4.0, labelled=0.5)
    assert NullModel.from_dict(null.to_dict()) == null
