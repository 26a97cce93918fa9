"""suggest_suite() learns limits a person would write: no negative RMS, probabilities in [0, 1],
a 0/1 label as its two values rather than a sensor reading between -0.5 and 1.5."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from functools import cache
from typing import Any

import numpy as np
import polars as pl
import pytest
from hypothesis import given
from hypothesis import strategies as st

from mlwarden.exceptions import InputError, SchemaError
from mlwarden.quality import Suite, suggest_suite, validate
from mlwarden.quality.base import Check

SENSOR_CHECKS = {"stuck", "spike", "unit_change"}


def model_log(n: int = 5_000, *, seed: int = 3) -> pl.DataFrame:
    """What a small classifier's service logs each minute: two readings, its score, the label."""
    rng = np.random.default_rng(seed)
    minutes = np.arange(n)
    temperature = 60.0 + 5.0 * np.sin(minutes / 300) + rng.normal(0.0, 0.4, n)
    # an RMS is never negative, mostly near 0, with bursts of heavy vibration and some dead stops
    vib_rms = np.abs(rng.normal(0.0, 1.0, n)) * np.where(rng.random(n) < 0.1, 4.0, 1.0)
    vib_rms[rng.random(n) < 0.02] = 0.0
    score = 1.0 / (1.0 + np.exp(2.0 - 0.8 * (vib_rms - 1.0) - 0.3 * (temperature - 60.0)))
    label = (rng.random(n) < score).astype(np.int64)
    return pl.DataFrame(
        {
            "timestamp": [
                datetime(2024, 5, 1, tzinfo=UTC) + timedelta(minutes=int(m)) for m in minutes
            ],
            "temperature_c": temperature,
            "vib_rms": vib_rms,
            "score": score,
            "tripped": label.astype(np.float64),  # the label again, logged as a float flag
            "label": label,
        }
    )


@cache
def learned() -> Suite:
    return suggest_suite(model_log(), timestamp="timestamp")


def on(suite: Suite, column: str) -> dict[str, Any]:
    """The checks on one column, by key."""
    return {c.key: c for c in suite.checks if getattr(c, "column", None) == column}


def test_a_never_negative_quantity_gets_a_lower_limit_of_exactly_zero() -> None:
    checks = on(learned(), "vib_rms")
    assert checks["range"].min == 0.0
    assert checks["range"].max > model_log()["vib_rms"].to_numpy().max()  # a margin above
    assert checks["mean"].min >= 0.0
    assert set(checks) >= SENSOR_CHECKS, "a vibration RMS is still a sensor"


def test_a_reading_that_changes_sign_keeps_its_margin_on_both_sides() -> None:
    checks = on(learned(), "temperature_c")
    reference = model_log()["temperature_c"].to_numpy()
    span = reference.max() - reference.min()
    assert checks["range"].min == pytest.approx(reference.min() - 0.5 * span, rel=1e-3)
    assert checks["range"].max == pytest.approx(reference.max() + 0.5 * span, rel=1e-3)


def test_a_probability_score_stays_within_0_and_1() -> None:
    checks = on(learned(), "score")
    assert (checks["range"].min, checks["range"].max) == (0.0, 1.0)
    assert 0.0 <= checks["mean"].min <= checks["mean"].max <= 1.0
    assert not SENSOR_CHECKS & set(checks), "a model's score is not a sensor"


@pytest.mark.parametrize("column", ["tripped", "label"])
def test_a_0_1_label_is_its_two_values_not_a_sensor(column: str) -> None:
    checks = on(learned(), column)
    assert checks["allowed_values"].values == (0, 1)
    assert set(checks) == {"column_type", "not_null", "allowed_values"}, "no range, band or sensor"


def test_the_reference_passes_and_an_impossible_label_fails() -> None:
    suite = learned()
    reference = model_log()
    assert validate(reference, suite).passed
    broken = reference.with_columns(
        pl.when(pl.int_range(pl.len()) == 100)
        .then(0.5)
        .otherwise(pl.col("tripped"))
        .alias("tripped"),
        pl.when(pl.int_range(pl.len()) == 200).then(2).otherwise(pl.col("label")).alias("label"),
        pl.when(pl.int_range(pl.len()) == 300)
        .then(-0.2)
        .otherwise(pl.col("vib_rms"))
        .alias("vib_rms"),
    )
    failed = {r.label: r.n_failed for r in validate(broken, suite).failed("error")}
    assert failed == {"allowed_values(tripped)": 1, "allowed_values(label)": 1, "range(vib_rms)": 1}


def test_declared_roles_mark_scores_and_class_labels() -> None:
    rng = np.random.default_rng(5)
    n = 2_000
    p_fail = rng.beta(1.0, 8.0, n)
    frame = model_log(n).with_columns(
        pl.Series("p_fail", p_fail),
        pl.Series("grade", rng.choice([1.0, 2.0, 3.0], n)),
    )
    plain = suggest_suite(frame, timestamp="timestamp", holdout=0.0)
    assert set(on(plain, "p_fail")) >= SENSOR_CHECKS, "by its name, p_fail is a reading"
    assert set(on(plain, "grade")) >= SENSOR_CHECKS

    suite = suggest_suite(
        frame, timestamp="timestamp", roles={"p_fail": "score", "grade": "target"}, holdout=0.0
    )
    p_checks, grade_checks = on(suite, "p_fail"), on(suite, "grade")
    assert p_checks["range"].min == 0.0
    assert p_checks["range"].max <= 1.0
    assert not SENSOR_CHECKS & set(p_checks)
    assert grade_checks["allowed_values"].values == (1, 2, 3)
    assert not SENSOR_CHECKS & set(grade_checks)
    assert "mean" not in grade_checks
    assert validate(frame, suite).passed


def test_a_target_whose_values_keep_growing_gets_a_range_not_a_set() -> None:
    # a count-like target: the highest values only turn up late, so the set is not closed
    n = 500
    frame = pl.DataFrame(
        {"x": np.linspace(0.0, 1.0, n), "defects": np.arange(n) // 50},
    )
    checks = on(suggest_suite(frame, roles={"defects": "target"}, holdout=0.0), "defects")
    assert "allowed_values" not in checks
    assert checks["range"].min == 0.0


def test_a_never_positive_quantity_gets_an_upper_limit_of_exactly_zero() -> None:
    rng = np.random.default_rng(8)
    frame = pl.DataFrame({"suction_kpa": -np.abs(rng.normal(5.0, 2.0, 500)) - 0.1})
    checks = on(suggest_suite(frame, holdout=0.0), "suction_kpa")
    assert checks["range"].max == 0.0
    assert checks["range"].min < frame["suction_kpa"].to_numpy().min()


def test_a_flag_that_stayed_0_may_still_read_1() -> None:
    frame = pl.DataFrame({"x": np.arange(100.0), "alarm": np.zeros(100)})
    checks = on(suggest_suite(frame, holdout=0.0), "alarm")
    assert (checks["range"].min, checks["range"].max) == (0.0, 1.0)


def test_a_level_far_above_its_spread_keeps_its_own_readings_inside() -> None:
    # rounded for the YAML file, the lower limit 101,325.5 Pa would be 101,330: above them all
    rng = np.random.default_rng(2)
    frame = pl.DataFrame({"pressure_pa": 101_326.0 + rng.uniform(0.0, 1.0, 500)})
    suite = suggest_suite(frame, holdout=0.0)
    limits = on(suite, "pressure_pa")["range"]
    readings = frame["pressure_pa"].to_numpy()
    assert limits.min < readings.min()
    assert limits.max > readings.max()
    assert validate(frame, suite).passed


def test_long_data_clips_each_tag_on_its_own() -> None:
    rng = np.random.default_rng(4)
    n = 2_000
    start = datetime(2024, 5, 1, tzinfo=UTC)
    times = [start + timedelta(seconds=10 * i) for i in range(n)]
    long = pl.concat(
        [
            pl.DataFrame({"timestamp": times, "tag": "VI-1", "value": np.abs(rng.normal(0, 1, n))}),
            pl.DataFrame({"timestamp": times, "tag": "TI-1", "value": rng.normal(0, 1, n)}),
        ]
    ).sort("timestamp")
    suite = suggest_suite(long, timestamp="timestamp", tag="tag", holdout=0.0)
    groups = on(suite, "value")["range"].groups
    assert groups["VI-1"]["min"] == 0.0
    assert groups["TI-1"]["min"] < 0.0


def test_roles_must_name_columns_and_roles_that_exist() -> None:
    frame = model_log(100)
    with pytest.raises(InputError, match="Did you mean 'score'"):
        suggest_suite(frame, roles={"scor": "score"})
    with pytest.raises(SchemaError, match="Did you mean 'target'"):
        suggest_suite(frame, roles={"label": "traget"})


# -- contracts for any reference ------------------------------------------------------------------


def one_column(values: list[float], name: str = "x") -> tuple[pl.DataFrame, Suite, Check]:
    frame = pl.DataFrame({name: values}, schema={name: pl.Float64})
    suite = suggest_suite(frame, holdout=0.0)
    (limit,) = [c for c in suite.checks if c.key in ("range", "allowed_values")]
    return frame, suite, limit


def lower(check: Any) -> float:
    return float(check.min) if check.key == "range" else float(min(check.values))


def upper(check: Any) -> float:
    return float(check.max) if check.key == "range" else float(max(check.values))


READINGS = st.floats(min_value=-1e9, max_value=1e9, allow_nan=False, allow_subnormal=False)


@given(values=st.lists(READINGS.map(abs), min_size=20, max_size=60))
def test_a_non_negative_reference_gets_no_negative_limit_and_passes(values: list[float]) -> None:
    frame, suite, limit = one_column(values)
    assert lower(limit) >= 0.0
    assert lower(limit) <= min(values)
    assert upper(limit) >= max(values)
    assert validate(frame, suite).passed


@given(values=st.lists(READINGS.map(lambda x: -abs(x)), min_size=20, max_size=60))
def test_a_non_positive_reference_gets_no_positive_limit_and_passes(values: list[float]) -> None:
    frame, suite, limit = one_column(values)
    if min(values) < 0.0:  # a column of zeros counts as never negative
        assert upper(limit) <= 0.0
    assert validate(frame, suite).passed


@given(values=st.lists(st.floats(min_value=0.0, max_value=1.0), min_size=20, max_size=60))
def test_a_score_seen_within_0_and_1_is_learned_within_0_and_1(values: list[float]) -> None:
    frame, suite, limit = one_column(values, "defect_score")
    assert 0.0 <= lower(limit) <= min(values)
    assert max(values) <= upper(limit) <= 1.0
    assert validate(frame, suite).passed


@given(
    values=st.one_of(
        st.lists(READINGS, min_size=20, max_size=60),
        st.builds(  # a level far above its spread
            lambda level, scale, offsets: [level + scale * o for o in offsets],
            st.floats(min_value=-1e6, max_value=1e6),
            st.floats(min_value=1e-3, max_value=1.0),
            st.lists(st.floats(min_value=0.0, max_value=1.0), min_size=20, max_size=60),
        ),
    )
)
def test_any_reference_passes_its_own_limits(values: list[float]) -> None:
    frame, suite, limit = one_column(values)
    assert lower(limit) <= min(values)
    assert upper(limit) >= max(values)
    assert validate(frame, suite).passed


@given(
    codes=st.lists(st.integers(-1_000, 1_000), min_size=2, max_size=2, unique=True),
    picks=st.lists(st.integers(0, 1), min_size=20, max_size=60),
    as_float=st.booleans(),
)
def test_a_two_valued_column_is_learned_as_its_values(
    codes: list[int], picks: list[int], as_float: bool
) -> None:
    picks = [0, 1, *picks]  # both values turn up
    frame = pl.DataFrame({"flag": [codes[p] for p in picks]})
    if as_float:
        frame = frame.cast(pl.Float64)
    suite = suggest_suite(frame, holdout=0.0)
    (limit,) = [
        c
        for c in suite.checks
        if getattr(c, "column", None) == "flag" and c.key not in ("column_type", "not_null")
    ]
    assert limit.key == "allowed_values"
    assert limit.values == tuple(sorted(codes))  # type: ignore[attr-defined]
    assert validate(frame, suite).passed
