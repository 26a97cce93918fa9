"""A version's alert budget end to end: registration replays the reference and keeps the budget,
its allocation and a held-out false-incident rate; every bound of a registered version lies
inside its metric's range; a daily cycle and quiet nights raise nothing, while a shift of any
sensor does; learned checks that fail on held-out windows are widened; the budget changes
without a new replay; incidents say which rule opened them and how surprising they were."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
import pytest
from scipy.signal import lfilter

from mlwarden.registry import Registry
from mlwarden.service.backtest import backtest
from mlwarden.store.metadata import Store

START = datetime(2024, 1, 1, tzinfo=UTC)
SENSORS = ("flow", "level", "temperature", "vibration")
ROLES = {"label": "target", "score": "score", "prediction": "prediction"}


def plant(days: int, seed: int, start: datetime = START) -> pl.DataFrame:
    """A plant that runs a reading a minute by day and one every five at night: autocorrelated
    sensors, a temperature with a daily cycle, bursty vibration, a classifier's score and a
    label."""
    rng = np.random.default_rng(seed)
    minutes = np.arange(days * 1440)
    hour = (minutes // 60) % 24
    night = (hour < 6) | (hour >= 22)
    minutes = minutes[~night | (minutes % 5 == 0)]
    n = minutes.size
    hour = (minutes // 60) % 24

    def ar(phi: float, sd: float) -> Any:
        noise = rng.normal(0, sd * math.sqrt(1 - phi * phi), n)
        return lfilter([1.0], [1.0, -phi], noise)

    flow = 50 + ar(0.5, 2.0)
    level = 3 + ar(0.9, 0.2)
    temperature = 60 + 8 * np.sin(2 * np.pi * (hour - 9) / 24) + ar(0.8, 1.0)
    bursts = lfilter([1.0], [1.0, -0.8], (rng.random(n) < 0.002) * rng.uniform(2, 6, n))
    vibration = 1.5 * np.exp(ar(0.3, 0.15)) * (1 + bursts)
    logit = -3 + 0.3 * (flow - 50) + 2.0 * (level - 3) + 0.8 * np.log(vibration / 1.5)
    score = 1 / (1 + np.exp(-logit))
    label = (rng.random(n) < score).astype(np.int8)
    return pl.DataFrame(
        {
            "timestamp": [start + timedelta(minutes=int(m)) for m in minutes],
            "flow": flow,
            "level": level,
            "temperature": temperature,
            "vibration": vibration,
            "score": score,
            "prediction": (score >= 0.5).astype(np.int8),
            "label": label,
        }
    )


@pytest.fixture(scope="module")
def registered(tmp_path_factory: pytest.TempPathFactory) -> tuple[Registry, pl.DataFrame]:
    store = Store(f"sqlite:///{tmp_path_factory.mktemp('budget') / 'm.db'}")
    registry = Registry(store)
    reference = plant(14, seed=1)
    registry.register("plant", "1", reference, timestamp="timestamp", roles=ROLES, window="4h")
    return registry, reference


def later(days: int, seed: int) -> pl.DataFrame:
    return plant(days, seed, start=START + timedelta(days=21))


def test_registration_keeps_the_budget_its_allocation_and_a_held_out_rate(
    registered: tuple[Registry, pl.DataFrame],
) -> None:
    registry, _ = registered
    alerting = registry.store.get_version("plant", "1").meta["alerting"]
    assert alerting["budget"] == {"false_incidents": 1.0, "days": 90.0}
    summary = alerting["summary"]
    assert summary["allocation"] == {"window": 0.6, "sequential": 0.25, "quality": 0.15}
    assert summary["alpha"] == pytest.approx(1 / 540)
    assert summary["sequential"]["series"] >= len(SENSORS)
    assert alerting["held_out"]["windows"] == alerting["replay"]["windows"] == 84
    assert alerting["held_out"]["rate"] >= 0
    assert any("temperature is compared within the time of day" in r for r in alerting["regimes"])
    assert alerting["volume"]["phase"] == "the time of day (4 h phases)"


def test_every_bound_of_a_registered_version_lies_inside_its_range(
    registered: tuple[Registry, pl.DataFrame],
) -> None:
    registry, _ = registered
    result = backtest(registry.reference("plant", "1"), later(2, seed=2))
    ranges = {
        "drift.ks": (0.0, 1.0),
        "performance.roc_auc": (0.5, 1.0),
        "performance.accuracy": (0.0, 1.0),
        "performance.f1": (0.0, 1.0),
        "volume": (0.0, math.inf),
    }
    checked = 0
    for window in result.windows:
        for m in window.metrics:
            if m.name in ranges and m.null is not None:
                low, high = ranges[m.name]
                for bound in (m.lower, m.upper):
                    assert bound is None or low < bound < high, (m.name, m.column, bound)
                checked += 1
    assert checked > 50


def test_a_daily_cycle_and_quiet_nights_raise_nothing_while_a_shifted_sensor_does(
    registered: tuple[Registry, pl.DataFrame],
) -> None:
    registry, reference = registered
    version = registry.reference("plant", "1")
    clean = later(7, seed=3)
    assert backtest(version, clean).incidents == []
    sd = reference.select(pl.col(list(SENSORS)).std()).row(0, named=True)
    day = clean["timestamp"].min() + timedelta(days=3)
    during = pl.col("timestamp").is_between(day, day + timedelta(hours=8), closed="left")
    for sensor in SENSORS:
        shifted = clean.with_columns(
            pl.when(during).then(pl.col(sensor) + 6 * sd[sensor]).otherwise(pl.col(sensor))
        )
        result = backtest(version, shifted)
        named = [
            i
            for i in result.incidents
            if any(
                column == sensor and name.startswith(("drift.", "cusum.drift."))
                for name, column, _ in i.opened_by
            )
        ]
        assert named, f"a shift of {sensor} raised no drift incident"


def test_the_budget_changes_without_a_new_replay(
    registered: tuple[Registry, pl.DataFrame],
) -> None:
    registry, _ = registered
    before = registry.reference("plant", "1").calibration
    registry.set_budget("plant", "1", 5.0)
    after = registry.reference("plant", "1").calibration
    assert before is not None
    assert after is not None
    assert after.metric_alpha == pytest.approx(5 * before.metric_alpha)
    key = ("drift.ks", "flow", "")
    assert after.threshold(after.stats[key]) < before.threshold(before.stats[key])  # type: ignore[operator]
    meta = registry.store.get_version("plant", "1").meta["alerting"]
    assert meta["budget"]["false_incidents"] == 5.0
    registry.set_budget("plant", "1", 1.0)


def test_a_learned_check_that_fails_on_held_out_windows_is_widened(tmp_path: Path) -> None:
    reference = plant(10, seed=4)
    # a gateway that stamps readings to the minute: now and then two share a timestamp
    rng = np.random.default_rng(5)
    repeated = reference.filter(pl.Series(rng.random(reference.height) < 0.01))
    reference = pl.concat([reference, repeated]).sort("timestamp")
    registry = Registry(Store(f"sqlite:///{tmp_path / 'm.db'}"))
    record = registry.register(
        "plant", "1", reference, timestamp="timestamp", roles=ROLES, window="4h"
    )
    adjustments = {a["check"]: a for a in record.meta["alerting"]["adjustments"]}
    duplicates = adjustments["duplicate_timestamps"]
    assert duplicates["failed"] > 0
    assert duplicates["action"] == "widened"
    assert duplicates["detail"].startswith("max_share")
    suite = registry.reference("plant", "1").suite
    check = next(c for c in suite.checks if c.key == "duplicate_timestamps")
    assert 0 < check.max_share < 0.1  # type: ignore[attr-defined]


def test_an_incident_says_which_rule_opened_it_and_how_surprising(
    registered: tuple[Registry, pl.DataFrame],
) -> None:
    registry, _ = registered
    version = registry.reference("plant", "1")
    frame = later(2, seed=6)
    broken = frame.with_columns(
        pl.when(pl.col("timestamp") >= frame["timestamp"].min() + timedelta(days=1))
        .then(pl.col("temperature") * 1.8 + 32)
        .otherwise(pl.col("temperature"))
    )
    result = backtest(version, broken)
    first = next(w for w in result.windows if w.alerts)
    assert first.surprise is not None
    assert first.surprise < 1e-6
    assert {m.name for m in first.alerts} >= {"drift.ks", "quality"}
