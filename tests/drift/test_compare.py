"""Univariate drift: calibrated alarms that stay quiet without drift and find real shifts."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest
from scipy import signal

from mlwarden.drift import Reference, compare
from mlwarden.drift.ks import KolmogorovSmirnov
from mlwarden.exceptions import InputError, ParameterError


def plant(n: int, seed: int, *, temp: float = 0.0, recipe_b: float = 0.3) -> pl.DataFrame:
    rng = np.random.default_rng(seed)
    return pl.DataFrame(
        {
            "temp": rng.normal(200 + temp, 5, n),
            "pressure": rng.lognormal(5, 0.2, n),
            "speed": rng.uniform(10, 30, n),
            "vibration": rng.gamma(2, 1, n),
            "humidity": rng.normal(45, 8, n),
            "recipe": rng.choice(["A", "B", "C"], n, p=[0.7 - recipe_b, recipe_b, 0.3]),
            "alarm": rng.random(n) < 0.05,
        }
    )


def test_no_false_alarms_without_drift_over_many_seeds() -> None:
    # 7 columns, 30 independent comparisons: family-wise alpha 0.05 allows ~1.5 alarms by chance.
    runs_with_alarm = 0
    for seed in range(30):
        report = compare(plant(20_000, seed), plant(2_000, 1000 + seed))
        runs_with_alarm += bool(report.drifted_columns)
    assert runs_with_alarm <= 3


def test_shifted_columns_are_found_and_only_those() -> None:
    report = compare(plant(20_000, 1), plant(2_000, 2, temp=2.5, recipe_b=0.45))
    assert set(report.drifted_columns) == {"temp", "recipe"}
    assert report.columns["temp"].test == "ks"
    assert report.columns["recipe"].test == "jensen_shannon"
    assert report.columns["temp"].threshold_source == "calibrated"
    assert not report.dataset_drift  # 2 of 7 columns is below the default share of 0.5


def test_calibration_absorbs_natural_variation_of_a_process() -> None:
    # A slow, autocorrelated process signal: consecutive windows differ by more than sampling
    # noise. Raw p-values call that drift; thresholds calibrated on the reference do not.
    rng = np.random.default_rng(7)
    n = 60_000
    slow = signal.lfilter([1.0], [1.0, -0.995], rng.normal(0, 0.3, n))
    frame = pl.DataFrame({"temp": 200 + slow + rng.normal(0, 1, n)})
    reference, later = frame.head(50_000), frame.slice(50_000, 5_000)
    by_p_value = compare(reference, later, alarm="p_value")
    calibrated = compare(reference, later)
    assert by_p_value.columns["temp"].drifted
    assert not calibrated.columns["temp"].drifted
    shifted = later.with_columns(pl.col("temp") + 4.0)
    assert compare(reference, shifted).columns["temp"].drifted


def test_user_chosen_tests_thresholds_and_p_values() -> None:
    ref, cur = plant(10_000, 3), plant(3_000, 4, temp=1.0)
    report = compare(
        ref,
        cur,
        tests={"temp": "psi", "recipe": {"test": "chi2", "threshold": 0.5}},
        thresholds={"speed": 0.9},
    )
    assert report.columns["temp"].test == "psi"
    assert (report.columns["recipe"].test, report.columns["recipe"].threshold) == ("chi2", 0.5)
    assert report.columns["speed"].threshold_source == "user"
    by_p = compare(ref, cur, alarm="p_value", correction="holm")
    temp = by_p.columns["temp"]
    assert temp.p_value_adjusted is not None
    assert temp.p_value_adjusted >= (temp.p_value or 0)
    assert by_p.columns["humidity"].threshold == 0.05


def test_report_document_and_dataset_drift() -> None:
    report = compare(
        plant(5_000, 5),
        plant(1_000, 6, temp=20, recipe_b=0.6).with_columns(
            pl.col("pressure") * 2, pl.col("speed") + 10, pl.col("humidity") - 20
        ),
    )
    doc = report.to_dict()
    assert doc["dataset_drift"] is True
    for key in ("test", "statistic", "effect_size", "p_value", "threshold", "drifted"):
        assert key in doc["columns"]["temp"]
    assert report.to_df().height == 7
    assert "Dataset drift" in report.message


def test_missing_columns_kind_changes_and_empty_windows() -> None:
    ref = plant(5_000, 8)
    cur = plant(1_000, 9).drop("speed").with_columns(pl.col("humidity").cast(pl.String))
    report = compare(ref, cur)
    assert report.skipped["speed"] == "missing in the current data"
    assert report.skipped["humidity"].startswith("kind differs")
    assert "temp" in report.columns
    with pytest.raises(InputError, match="no rows"):
        compare(ref, ref.head(0))
    with pytest.raises(ParameterError, match=r"'pis' is not a drift test.*Did you mean 'psi'"):
        compare(ref, cur, tests={"temp": "pis"})
    with pytest.raises(ParameterError, match="alarm mode"):
        compare(ref, cur, alarm="loud")  # type: ignore[arg-type]
    nulls = plant(1_000, 10).with_columns(pl.lit(None, dtype=pl.Float64).alias("temp"))
    assert compare(ref, nulls).skipped["temp"] == "no values in the current data"


def test_reference_is_fitted_once_stored_and_reused() -> None:
    ref = Reference.fit(plant(10_000, 11))
    restored = Reference.from_bytes(ref.to_bytes())
    assert restored.profile == ref.profile
    cur = plant(2_000, 12, temp=3)
    assert compare(restored, cur).to_dict() == compare(ref, cur).to_dict()
    # A small window gets a wider threshold than a chunk-sized one.
    small = ref.threshold("temp", KolmogorovSmirnov(), n_rows=50, n_columns=7)
    large = ref.threshold("temp", KolmogorovSmirnov(), n_rows=5_000, n_columns=7)
    assert small > large


def test_monitor_flags_the_windows_after_a_shift() -> None:
    from datetime import UTC, datetime, timedelta

    from mlwarden.drift import DriftMonitor

    rng = np.random.default_rng(21)
    n = 6 * 24 * 60  # one reading a minute for six days
    start = datetime(2026, 5, 1, tzinfo=UTC)
    temp = rng.normal(200, 5, n)
    temp[4 * 24 * 60 :] += 3.0  # the last two days run hotter
    frame = pl.DataFrame(
        {
            "timestamp": pl.datetime_range(
                start, start + timedelta(minutes=n - 1), "1m", eager=True
            ),
            "temp": temp,
            "speed": rng.normal(20, 2, n),
        }
    )
    reference = pl.DataFrame(
        {"temp": rng.normal(200, 5, 20_000), "speed": rng.normal(20, 2, 20_000)}
    )
    monitor = DriftMonitor(reference)
    series = monitor.evaluate(frame, window="1d", timestamp="timestamp")
    table = series.to_df().filter(pl.col("column") == "temp")
    assert table["drifted"].to_list() == [False, False, False, False, True, True]
    assert (table["upper"] > 0).all()
    days = series.dataset_drift()
    assert days.height == 6
    assert days["drifted_columns"].to_list()[-1] == ["temp"]
    assert len(series.to_dict()["windows"]) == 6
