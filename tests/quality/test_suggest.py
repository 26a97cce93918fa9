"""suggest_suite(): learned from clean data, quiet on clean data, loud on every injected fault."""

from __future__ import annotations

from functools import cache

import polars as pl
import pytest

from mlwarden.datasets import SENSOR_COLUMNS, Gap, Spike, StuckSensor, UnitChange, production_line
from mlwarden.exceptions import InputError, ParameterError
from mlwarden.quality import Suite, suggest_suite, validate

ROWS = 150_000
CURRENT = 30_000


@cache
def plant() -> pl.DataFrame:
    """One continuous log: the reference, then what the plant logged next."""
    return production_line(ROWS + CURRENT, seed=11)


@cache
def learned() -> Suite:
    return suggest_suite(plant().head(ROWS), timestamp="timestamp", name="line")


def test_held_out_clean_windows_rarely_fail() -> None:
    meta = learned().meta
    assert meta["holdout_windows"] >= 50
    assert meta["false_failure_rate"] <= 0.01, meta
    assert meta["warning_rate"] <= 0.05, meta


def test_the_suite_covers_every_family_and_round_trips() -> None:
    suite = learned()
    keys = {c.key for c in suite.checks}
    assert keys >= {
        "required_columns",
        "column_type",
        "not_null",
        "range",
        "allowed_values",
        "duplicate_timestamps",
        "monotonic",
        "gap",
        "jitter",
        "stuck",
        "spike",
        "unit_change",
        "mean",
        "std",
    }
    assert Suite.from_yaml(suite.to_yaml()) == suite
    sensors = {c.column for c in suite.checks if c.key == "stuck"}  # type: ignore[attr-defined]
    assert sensors == set(SENSOR_COLUMNS), "model scores and labels are not sensors"
    assert not any(c.key == "allowed_values" and c.column == "batch_id" for c in suite.checks)  # type: ignore[attr-defined]


def test_the_next_clean_days_pass() -> None:
    v = validate(plant().tail(CURRENT), learned())
    assert v.passed, [r.message for r in v.failed()]


@pytest.mark.parametrize(
    ("fault", "check", "column"),
    [
        (StuckSensor(column="pressure_bar", start_row=5_000, n_rows=300), "stuck", "pressure_bar"),
        (Spike(column="temperature_c", row=12_000, magnitude=30.0), "spike", "temperature_c"),
        (
            UnitChange(column="temperature_c", start_row=20_000, factor=1.8, offset=32),
            "unit_change",
            "temperature_c",
        ),
        (Gap(start_row=8_000, n_rows=60), "gap", None),
    ],
)
def test_each_injected_fault_fails_the_right_check(
    fault: object, check: str, column: str | None
) -> None:
    data = production_line(CURRENT, seed=12, faults=[fault])  # type: ignore[list-item]
    v = validate(data, learned())
    errors = {(r.check, r.column) for r in v.failed("error")}
    assert (check, column) in errors, [r.label for r in v.failed()]


def test_a_null_bug_upstream_is_caught() -> None:
    data = (
        plant()
        .tail(CURRENT)
        .with_columns(
            pl.when(pl.int_range(pl.len()) >= 10_000)
            .then(None)
            .otherwise(pl.col("vibration_mm_s"))
            .alias("vibration_mm_s")
        )
    )
    v = validate(data, learned())
    assert "not_null(vibration_mm_s)" in [r.label for r in v.failed("error")]


def test_long_historian_data_learns_limits_per_tag() -> None:
    wide = production_line(40_000, seed=13)
    long = wide.unpivot(
        index="timestamp", on=list(SENSOR_COLUMNS), variable_name="tag", value_name="value"
    ).sort("timestamp")
    suite = suggest_suite(long, timestamp="timestamp", tag="tag")
    assert suite.meta["false_failure_rate"] <= 0.01, suite.meta
    ranges = [c for c in suite.checks if c.key == "range"]
    assert len(ranges) == 1
    assert set(ranges[0].groups) == set(SENSOR_COLUMNS)
    frozen = long.with_columns(
        pl.when(
            (pl.col("tag") == "humidity_pct") & pl.int_range(pl.len()).is_between(50_000, 53_000)
        )
        .then(pl.lit(41.5))
        .otherwise(pl.col("value"))
        .alias("value")
    )
    stuck = validate(frozen, suite)["stuck(value)"]
    assert not stuck.passed
    assert {r["tag"] for r in stuck.sample} == {"humidity_pct"}


def test_bad_arguments_are_named() -> None:
    with pytest.raises(InputError, match="Did you mean 'timestamp'"):
        suggest_suite(production_line(1_000), timestamp="timestmp")
    with pytest.raises(ParameterError, match="holdout"):
        suggest_suite(production_line(1_000), holdout=0.95)
    with pytest.raises(InputError, match="at least 20"):
        suggest_suite(production_line(10))
