from __future__ import annotations

import doctest
from datetime import UTC, datetime, timedelta, timezone

import numpy as np
import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mlwarden import datasets
from mlwarden.datasets import (
    SENSOR_COLUMNS,
    Drift,
    Gap,
    Spike,
    StuckSensor,
    UnitChange,
    production_line,
)
from mlwarden.exceptions import ParameterError

N_ROWS = 50_000


@pytest.fixture(scope="module")
def clean() -> pl.DataFrame:
    return production_line(N_ROWS, seed=3)


def roc_auc(labels: np.ndarray, scores: np.ndarray) -> float:
    """Mann-Whitney form of the ROC AUC (scores are continuous, so ties are negligible)."""
    ranks = np.empty(scores.size)
    ranks[np.argsort(scores)] = np.arange(1, scores.size + 1)
    positives = labels == 1
    n_pos, n_neg = positives.sum(), (~positives).sum()
    return float((ranks[positives].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def test_same_seed_gives_identical_frame_and_other_seed_differs(clean: pl.DataFrame) -> None:
    assert production_line(N_ROWS, seed=3).equals(clean)
    other = production_line(N_ROWS, seed=4)
    assert not other["temperature_c"].equals(clean["temperature_c"])


def test_columns_and_dtypes(clean: pl.DataFrame) -> None:
    assert clean.schema == pl.Schema(
        {
            "timestamp": pl.Datetime("us", "UTC"),
            "batch_id": pl.String,
            "line": pl.Enum(["L1", "L2", "L3"]),
            "recipe": pl.Enum(["PP-H100", "PP-C200", "PE-LD30", "PE-HD50", "PA6-GF30", "ABS-X10"]),
            "temperature_c": pl.Float64,
            "pressure_bar": pl.Float64,
            "vibration_mm_s": pl.Float64,
            "line_speed_m_min": pl.Float64,
            "humidity_pct": pl.Float64,
            "operator_shift": pl.Enum(["A", "B", "C"]),
            "defect": pl.Int8,
            "defect_score": pl.Float64,
            "prediction": pl.Int8,
        }
    )
    assert clean.height == N_ROWS


def test_timestamps_are_utc_strictly_increasing_at_the_cadence(clean: pl.DataFrame) -> None:
    ts = clean["timestamp"]
    assert ts[0].tzinfo is not None
    assert ts[0].utcoffset() == timedelta(0)
    assert abs(ts[0] - datetime(2024, 1, 1, tzinfo=UTC)) < timedelta(seconds=3)
    steps = ts.diff().drop_nulls().dt.total_microseconds().to_numpy() / 1e6
    assert steps.min() > 10.0 * 0.55
    assert steps.max() < 10.0 * 1.45
    assert np.median(steps) == pytest.approx(10.0, abs=0.1)


def test_start_and_cadence_are_honoured() -> None:
    start = datetime(2025, 6, 1, 8, 0, tzinfo=timezone(timedelta(hours=2)))
    df = production_line(500, seed=1, start=start, freq_seconds=2.0)
    first = df["timestamp"][0]
    assert abs(first - start) < timedelta(seconds=1)
    assert first.hour == 6  # 08:00+02:00 is 06:00 UTC
    span = (df["timestamp"][-1] - first).total_seconds()
    assert span == pytest.approx(499 * 2.0, abs=1.0)


def test_operator_shift_follows_the_utc_hour(clean: pl.DataFrame) -> None:
    hour = clean["timestamp"].dt.hour().to_numpy()
    expected = np.where(
        (hour >= 6) & (hour < 14), "A", np.where((hour >= 14) & (hour < 22), "B", "C")
    )
    assert (clean["operator_shift"].cast(pl.String).to_numpy() == expected).all()


def test_batches_are_contiguous_and_run_one_recipe_on_one_line(clean: pl.DataFrame) -> None:
    assert clean["batch_id"].str.contains(r"^B\d{6}$").all()
    per_batch = clean.group_by("batch_id").agg(
        pl.len(), pl.col("line").n_unique(), pl.col("recipe").n_unique()
    )
    assert (per_batch["line"] == 1).all()
    assert (per_batch["recipe"] == 1).all()
    assert per_batch["len"].median() > 100
    # Contiguous: the id changes exactly once per batch.
    changes = (clean["batch_id"] != clean["batch_id"].shift(1)).sum()
    assert changes == per_batch.height - 1
    assert clean["recipe"].n_unique() == 6
    assert clean["line"].n_unique() == 3


def test_humidity_has_about_half_a_percent_nulls_and_other_columns_none(
    clean: pl.DataFrame,
) -> None:
    assert 0.003 < clean["humidity_pct"].null_count() / clean.height < 0.008
    others = clean.drop("humidity_pct").null_count()
    assert others.sum_horizontal().item() == 0


def test_physical_signals_are_in_plausible_ranges(clean: pl.DataFrame) -> None:
    assert 150 < clean["temperature_c"].min() < clean["temperature_c"].max() < 300
    assert clean["vibration_mm_s"].min() > 0
    assert clean["vibration_mm_s"].max() > 3 * clean["vibration_mm_s"].median()  # bursts
    assert clean["line_speed_m_min"].min() > 0
    assert clean["humidity_pct"].min() >= 5
    assert clean["humidity_pct"].max() <= 95


def test_defect_rate_score_auc_and_calibration(clean: pl.DataFrame) -> None:
    labels = clean["defect"].to_numpy()
    scores = clean["defect_score"].to_numpy()
    assert set(np.unique(labels)) == {0, 1}
    assert 0.03 < labels.mean() < 0.08
    assert ((scores >= 0) & (scores <= 1)).all()
    assert 0.8 < roc_auc(labels, scores) < 0.9
    assert scores.mean() == pytest.approx(labels.mean(), abs=0.01)
    assert (clean["prediction"].to_numpy() == (scores >= 0.5)).all()


def test_stuck_sensor_holds_one_value_for_its_rows(clean: pl.DataFrame) -> None:
    df = production_line(N_ROWS, seed=3, faults=(StuckSensor("pressure_bar", 1_000, 300),))
    stuck = df["pressure_bar"][1_000:1_300]
    assert stuck.std() == 0.0
    assert stuck[0] == clean["pressure_bar"][1_000]
    assert df["pressure_bar"][1_300:1_600].std() > 0.5
    assert df["pressure_bar"][:1_000].equals(clean["pressure_bar"][:1_000])


def test_stuck_humidity_sensor_repeats_its_last_reading_even_over_dropouts() -> None:
    null_rows = production_line(N_ROWS, seed=3)["humidity_pct"].is_null().arg_true()
    row = int(null_rows[0])
    df = production_line(N_ROWS, seed=3, faults=(StuckSensor("humidity_pct", row, 100),))
    run = df["humidity_pct"][row : row + 100]
    assert run.null_count() == 0
    assert run.n_unique() == 1


def test_spike_adds_its_magnitude_to_one_reading(clean: pl.DataFrame) -> None:
    df = production_line(N_ROWS, seed=3, faults=(Spike("vibration_mm_s", 4_321, 25.0),))
    delta = df["vibration_mm_s"] - clean["vibration_mm_s"]
    assert delta[4_321] == pytest.approx(25.0)
    assert (delta.abs() > 0).sum() == 1


def test_unit_change_converts_later_readings(clean: pl.DataFrame) -> None:
    fault = UnitChange("temperature_c", 30_000, 1.8, 32.0)
    df = production_line(N_ROWS, seed=3, faults=(fault,))
    before, after = clean["temperature_c"][30_000:], df["temperature_c"][30_000:]
    assert after.mean() == pytest.approx(before.mean() * 1.8 + 32.0)
    assert df["temperature_c"][:30_000].equals(clean["temperature_c"][:30_000])


def test_sensor_faults_leave_the_label_alone_but_the_score_follows() -> None:
    clean = production_line(N_ROWS, seed=3)
    fault = UnitChange("temperature_c", 30_000, 1.8, 32.0)
    df = production_line(N_ROWS, seed=3, faults=(fault,))
    assert df["defect"].equals(clean["defect"])
    assert df["defect_score"][30_000:].mean() > 0.9  # the model thinks everything is hot


def test_gap_removes_rows_and_leaves_a_hole_in_time(clean: pl.DataFrame) -> None:
    df = production_line(N_ROWS, seed=3, faults=(Gap(10_000, 360),))
    assert df.height == N_ROWS - 360
    steps = df["timestamp"].diff().dt.total_seconds()
    assert steps.arg_max() == 10_000
    assert steps.max() > 360 * 10.0
    assert df["timestamp"][10_000] == clean["timestamp"][10_360]


def test_drift_raises_the_later_mean_and_the_defect_rate(clean: pl.DataFrame) -> None:
    df = production_line(N_ROWS, seed=3, faults=(Drift("temperature_c", 25_000, 6.0),))
    assert df["temperature_c"][:25_000].equals(clean["temperature_c"][:25_000])
    last = slice(45_000, N_ROWS)
    shift = df["temperature_c"][last].mean() - clean["temperature_c"][last].mean()
    assert 5.0 < shift < 6.0
    assert df["defect"][last].mean() > 2 * clean["defect"][last].mean()


def test_drift_with_a_ramp_holds_after_it(clean: pl.DataFrame) -> None:
    df = production_line(N_ROWS, seed=3, faults=(Drift("humidity_pct", 1_000, -10.0, 1_000),))
    diff = (df["humidity_pct"] - clean["humidity_pct"]).to_numpy()
    assert np.nanmax(np.abs(diff[:1_000])) == 0
    assert np.nanmean(diff[1_400:1_600]) == pytest.approx(-5.0, abs=0.2)
    assert np.nanmean(diff[2_000:]) == pytest.approx(-10.0)


def test_faults_combine() -> None:
    faults = (Gap(100, 50), Spike("pressure_bar", 400, 99.0), StuckSensor("temperature_c", 10, 5))
    df = production_line(1_000, seed=5, faults=faults)
    assert df.height == 950
    assert df["temperature_c"][10:15].n_unique() == 1


def test_unknown_fault_column_names_the_choices() -> None:
    with pytest.raises(ParameterError, match=r"'defect'.*temperature_c, pressure_bar") as info:
        Spike("defect", 10, 1.0)
    assert info.value.parameter == "column"


@pytest.mark.parametrize(
    "fault",
    [
        StuckSensor("temperature_c", 990, 20),
        Gap(-1, 5),
        Spike("pressure_bar", 1_000, 1.0),
        Drift("humidity_pct", 2_000, 1.0),
        UnitChange("temperature_c", 1_500, 1.8, 32),
        Gap(10, 0),
    ],
)
def test_fault_outside_the_data_is_rejected(fault: datasets.Fault) -> None:
    with pytest.raises(ParameterError, match=r"rows 0\.\.999"):
        production_line(1_000, faults=(fault,))


@pytest.mark.parametrize(
    ("kwargs", "parameter"),
    [
        ({"n_rows": 0}, "n_rows"),
        ({"n_rows": 10.5}, "n_rows"),
        ({"freq_seconds": 0}, "freq_seconds"),
        ({"start": datetime(2024, 1, 1)}, "start"),  # naive on purpose
        ({"faults": ("spike",)}, "faults"),
        ({"faults": (Drift("temperature_c", 0, 1.0, ramp_rows=0),)}, "ramp_rows"),
    ],
)
def test_bad_arguments_are_rejected(kwargs: dict[str, object], parameter: str) -> None:
    with pytest.raises(ParameterError) as info:
        production_line(**kwargs)  # type: ignore[arg-type]
    assert info.value.parameter == parameter


@settings(max_examples=25, deadline=None)
@given(n_rows=st.integers(1, 3_000), seed=st.integers(0, 2**32 - 1))
def test_any_size_and_seed_gives_a_valid_frame(n_rows: int, seed: int) -> None:
    df = production_line(n_rows, seed=seed)
    assert df.height == n_rows
    assert df["timestamp"].is_sorted()
    assert df["timestamp"].n_unique() == n_rows
    assert df["defect_score"].is_between(0, 1).all()
    assert df.drop("humidity_pct").null_count().sum_horizontal().item() == 0


def test_docstring_examples_hold() -> None:
    result = doctest.testmod(datasets, optionflags=doctest.NORMALIZE_WHITESPACE)
    assert result.attempted >= 15
    assert result.failed == 0


def test_sensor_columns_are_the_numeric_signals(clean: pl.DataFrame) -> None:
    assert all(clean.schema[column] == pl.Float64 for column in SENSOR_COLUMNS)
