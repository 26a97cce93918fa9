"""validate(): one fused pass, per-window results, scores, samples and JSON."""

from __future__ import annotations

import json
from datetime import timedelta

import polars as pl
import pytest

from mlwarden.exceptions import ParameterError
from mlwarden.quality import NotNull, Range, Spike, Suite, Unique, validate
from tests.quality.conftest import sensor_signal


def faulty() -> pl.DataFrame:
    row = pl.int_range(pl.len())
    return sensor_signal(4_000).with_columns(
        pl.when(row.is_between(100, 139))
        .then(None)
        .otherwise(pl.col("pressure_bar"))
        .alias("pressure_bar"),
        pl.when(row == 2_000).then(999.0).otherwise(pl.col("temperature_c")).alias("temperature_c"),
    )


SUITE = Suite(
    [
        NotNull(column="pressure_bar", max_share=0.005),
        Range(column="temperature_c", min=150, max=320),
        Spike(column="temperature_c", max_z=10, severity="warning"),
        Unique(columns=["reading_id"]),
    ],
    timestamp="timestamp",
    id=["reading_id"],
    name="line 1",
)


def test_results_carry_everything_a_report_needs() -> None:
    v = validate(faulty(), SUITE)
    assert not v.passed
    nulls, rng, spike, unique = v.results
    assert (nulls.passed, nulls.n_failed, nulls.threshold) == (False, 40, 0.005)
    assert rng.observed[1] == 999.0
    assert rng.threshold == [150.0, 320.0]
    assert rng.sample == ({"row": 2000, "reading_id": 2000, "temperature_c": 999.0},)
    assert spike.severity == "warning"
    assert not spike.passed
    assert unique.passed
    assert unique.message == "Every row has its own (reading_id)."
    assert v["range(temperature_c)"] is rng
    assert [r.label for r in v.failed("error")] == [
        "not_null(pressure_bar)",
        "range(temperature_c)",
    ]


def test_scores_per_dimension() -> None:
    v = validate(faulty(), SUITE)
    assert v.scores["completeness"] == pytest.approx(1 - 40 / 4000)
    assert v.scores["uniqueness"] == 1.0
    assert 0.99 < v.scores["validity"] < 1.0
    assert v.scores["overall"] == pytest.approx(
        (v.scores["completeness"] + v.scores["validity"] + v.scores["uniqueness"]) / 3
    )
    assert validate(sensor_signal(500), SUITE).scores["overall"] == 1.0


def test_per_window_results_point_at_the_bad_hour() -> None:
    frame = faulty()
    v = validate(frame, SUITE, window="1h")
    assert v.window_scores is not None
    assert v.windows is not None
    assert v.window_scores["n_rows"].sum() == frame.height
    bad = v.window_scores.filter(~pl.col("passed"))
    start = frame["timestamp"][100]
    hour = start.replace(minute=0, second=0, microsecond=0)
    assert hour in bad["window_start"].to_list()
    assert v.windows.filter(pl.col("check") == "range", ~pl.col("passed")).height == 1
    by_rows = validate(frame, SUITE, window=1000)
    assert by_rows.window_scores is not None
    assert by_rows.window_scores["n_rows"].to_list() == [1000, 1000, 1000, 1000]


def test_a_column_missing_from_the_data_fails_its_check_with_a_hint() -> None:
    frame = faulty().rename({"pressure_bar": "pressure"})
    result = validate(frame, SUITE).results[0]
    assert not result.passed
    assert "no column 'pressure_bar'" in result.message
    assert "Did you mean 'pressure'" in result.message


def test_json_is_complete_and_strict() -> None:
    doc = json.loads(validate(faulty(), SUITE, window="1h").to_json())
    assert doc["passed"] is False
    first = doc["checks"][0]
    assert set(first) >= {
        "check",
        "column",
        "passed",
        "observed",
        "threshold",
        "n_failed",
        "severity",
        "message",
    }
    assert doc["windows"]
    assert doc["scores"]["overall"] < 1


def test_input_problems_are_named() -> None:
    with pytest.raises(ParameterError, match="need the suite's timestamp"):
        validate(faulty(), Suite([NotNull(column="pressure_bar")]), window="1h")
    with pytest.raises(ParameterError, match="sample_size"):
        validate(faulty(), SUITE, sample_size=-1)


def test_rows_from_many_files_validate_like_one(tmp_path: object) -> None:
    frame = faulty()
    path = tmp_path / "batch.parquet"  # type: ignore[operator]
    frame.write_parquet(path)
    from_file = validate(path, SUITE)
    in_memory = validate(frame, SUITE)
    assert [r.n_failed for r in from_file.results] == [r.n_failed for r in in_memory.results]
    later = frame.with_columns(pl.col("timestamp") + timedelta(days=1))
    assert validate(later, SUITE).results[0].n_failed == 40
