"""The alert budget: bounds calibrated on replayed windows keep clean windows' false alarms
within the budget, every bound lies inside its metric's range, a CUSUM finds a slow ramp
before the single-window rule does, and incidents are counted as the store counts them."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mlwarden.alerting import cusum
from mlwarden.alerting.calibration import (
    ALLOCATION,
    AlertBudget,
    Calibration,
    held_out,
    rarity,
    replay_frame,
)
from mlwarden.alerting.incidents import group_incidents
from mlwarden.alerting.null import NullModel
from mlwarden.exceptions import ParameterError
from mlwarden.store.metadata import MetricValue, Store

T0 = datetime(2024, 1, 1, tzinfo=UTC)
FOUR_HOURS = timedelta(hours=4)


def _replay(
    rng: np.random.Generator, keys: int, windows: int, mean: float = 3.0, std: float = 2.0
) -> Any:
    """A replay of ``windows`` clean windows of ``keys`` gauss metrics whose nominal z is
    normal with this mean and spread."""
    records = []
    for w in range(windows):
        for k in range(keys):
            records.append(
                {
                    "window_start": T0 + w * FOUR_HOURS,
                    "fold": w * 5 // windows,
                    "name": "performance.accuracy",
                    "column": "",
                    "segment": f"line={k}",
                    "value": 0.9,
                    "z": float(rng.normal(mean, std)),
                    "null_kind": "gauss",
                    "null_side": "upper",
                    "null_high": math.inf,
                }
            )
    return replay_frame(records)


def test_clean_windows_meet_the_budget_within_sampling_error_over_seeds() -> None:
    keys, alarms, judged = 20, 0, 0
    budget = AlertBudget(false_incidents=9.0)  # a wide budget, so that alarms are countable
    for seed in range(6):
        rng = np.random.default_rng(seed)
        calibration = Calibration.fit(_replay(rng, keys, 80), budget=budget, window="4h")
        stats = calibration.stats[("performance.accuracy", "", "line=0")]
        thresholds = np.asarray(
            [calibration.threshold(calibration.stats[k]) for k in sorted(calibration.stats)]
        )
        means = np.asarray([calibration.stats[k].mean for k in sorted(calibration.stats)])
        stds = np.asarray([calibration.stats[k].std for k in sorted(calibration.stats)])
        # fresh clean windows from the same process
        z = rng.normal(3.0, 2.0, size=(200_000, keys))
        alarms += int(((z - means) / stds > thresholds).any(axis=1).sum())
        judged += z.shape[0]
        assert stats.windows == 80
    rate = alarms / judged
    allowed = ALLOCATION["window"] * budget.per_window(4 * 3600)
    standard_error = math.sqrt(allowed / judged)
    assert rate <= allowed + 3 * standard_error
    # calibrated, not blunted: the estimate of the spread costs a little, not orders of magnitude
    assert rate >= allowed / 10


def test_a_short_reference_widens_bounds_instead_of_raising_false_alarms() -> None:
    rng = np.random.default_rng(1)
    short = Calibration.fit(_replay(rng, 1, 12), window="4h")
    long = Calibration.fit(_replay(rng, 1, 200), window="4h")
    key = ("performance.accuracy", "", "line=0")
    short_threshold = short.threshold(short.stats[key])
    long_threshold = long.threshold(long.stats[key])
    assert short_threshold is not None
    assert long_threshold is not None
    assert short_threshold > long_threshold
    too_short = Calibration.fit(_replay(rng, 1, 5), window="4h")
    assert too_short.threshold(too_short.stats[key]) is None
    notes = too_short.notes(_replay(rng, 1, 5))
    assert notes == [
        "estimated accuracy in line=0 cannot be calibrated: the reference holds 5 windows of "
        "4h, and at least 8 are needed; register with a longer reference or shorter windows."
    ]


def _distances(rng: np.random.Generator, windows: int, spread: float) -> Any:
    records = []
    for w in range(windows):
        null = NullModel("ks", n=480)
        d = float(np.clip(abs(rng.normal(0.0, spread)) + rng.uniform(0, 0.05), 0, 0.99))
        records.append(
            {
                "window_start": T0 + w * FOUR_HOURS,
                "fold": w * 5 // windows,
                "name": "drift.ks",
                "column": "temperature_c",
                "value": d,
                "z": null.z(d),
                "null_kind": "ks",
                "null_n": 480.0,
            }
        )
    return replay_frame(records)


@given(spread=st.floats(0.01, 0.6), seed=st.integers(0, 10_000))
@settings(max_examples=25)
def test_every_bound_lies_inside_its_range_or_is_reported(spread: float, seed: int) -> None:
    rng = np.random.default_rng(seed)
    table = _distances(rng, 40, spread)
    calibration = Calibration.fit(table, window="4h")
    bounded = calibration.apply(
        [MetricValue("drift.ks", 0.3, column="temperature_c", null=NullModel("ks", n=480))]
    )[0]
    notes = calibration.notes(table)
    if bounded.upper is None:
        assert notes
        assert "drift of temperature_c cannot be alarmed on 4h windows" in notes[0]
    else:
        assert 0.0 < bounded.upper < 1.0
        assert not notes
    # complete separation of a whole window always reaches a bound that exists
    separated = calibration.apply(
        [MetricValue("drift.ks", 1.0, column="temperature_c", null=NullModel("ks", n=480))]
    )[0]
    assert separated.upper is None or separated.alert


def test_a_slow_ramp_is_found_by_the_cusum_before_the_single_window_rule() -> None:
    rng = np.random.default_rng(7)
    calibration = Calibration.fit(_replay(rng, 1, 120, mean=0.0, std=1.0), window="4h")
    key = ("performance.accuracy", "", "line=0")
    calibration = Calibration(
        budget=calibration.budget,
        window=calibration.window,
        window_seconds=calibration.window_seconds,
        stats=calibration.stats,
        sequential=frozenset({key}),
    )
    null = NullModel("gauss", center=0.0, scale=1.0, high=math.inf)
    states: dict[tuple[str, str, str], float] = {}
    first_window = first_sum = None
    for w in range(120):
        z = rng.normal(0.04 * w, 1.0)  # a ramp of one standard deviation a day
        metrics = calibration.apply(
            [MetricValue("performance.accuracy", z, segment="line=0", null=null)]
        )
        summed = calibration.cusum(states, metrics)
        states = {(m.name.removeprefix("cusum."), m.column, m.segment): m.value for m in summed}  # type: ignore[misc]
        if first_window is None and metrics[0].alert:
            first_window = w
        if first_sum is None and summed[0].alert:
            first_sum = w
    assert first_sum is not None
    assert first_window is None or first_sum < first_window


def test_one_wild_window_never_opens_a_cusum_alarm() -> None:
    h = cusum.threshold_for_run_length(10_000)
    assert cusum.step(0.0, 1_000.0, h=h) < h
    two_sided = cusum.step_both(0.0, -1_000.0, h=h)
    assert -h < two_sided < 0


def test_the_cusum_threshold_meets_its_run_length() -> None:
    rng = np.random.default_rng(0)
    h = cusum.threshold_for_run_length(300.0)
    runs = []
    for _ in range(300):
        state, t = 0.0, 0
        while state <= h:
            t += 1
            state = cusum.step(state, float(rng.normal()), h=1e9)
        runs.append(t)
    assert 250 < float(np.mean(runs)) < 360


def test_incidents_are_counted_as_the_store_counts_them(tmp_path: Any) -> None:
    store = Store(f"sqlite:///{tmp_path / 'm.db'}")
    store.migrate()
    store.create_model("m")
    store.create_version("m", "1")
    rng = np.random.default_rng(4)
    keys = [("drift.ks", "a", ""), ("drift.ks", "b", ""), ("quality", "stuck(a)", "")]
    windows = []
    for w in range(60):
        start = T0 + w * FOUR_HOURS
        alerting = {k for k in keys if rng.random() < 0.25}
        window = store.upsert_window("m", "1", start, start + FOUR_HOURS, n_rows=10, n_labelled=0)
        metrics = [
            MetricValue(
                name,
                1.0 if (name, column, seg) in alerting else 0.0,
                upper=0.5,
                column=column,
                segment=seg,
            )
            for name, column, seg in keys
        ]
        store.record_alerts(window.id, metrics)
        store.close_quiet_incidents("m", start)
        windows.append((start, start + FOUR_HOURS, alerting))
    pure = group_incidents(windows)
    stored = store.incidents("m")
    assert len(pure) == len(stored)
    assert [i.start for i in pure] == [i["started_at"] for i in stored]
    store.close()


def test_a_held_out_measurement_counts_false_incidents_per_period() -> None:
    rng = np.random.default_rng(2)
    measured = held_out(_replay(rng, 3, 100), window="4h")
    assert measured.windows == 100
    assert measured.incidents <= 2
    assert measured.upper > measured.rate >= 0.0
    assert measured.to_dict()["windows"] == 100


def test_a_budget_is_checked() -> None:
    with pytest.raises(ParameterError, match="'false_incidents' of an alert budget"):
        AlertBudget(false_incidents=0)
    with pytest.raises(ParameterError, match="'days' of an alert budget"):
        AlertBudget(days=0.5)
    assert AlertBudget.from_dict({"false_incidents": 2}).per_window(86_400) == pytest.approx(2 / 90)


def test_surprise_reads_as_a_rarity() -> None:
    assert rarity(1 / 2_000, 4 * 3600) == (
        "about once in 2,000 windows (once in 333 days) of reference-like data"
    )
    assert rarity(None) == "not judged against the reference"
