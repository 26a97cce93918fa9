"""Like with like: a numeric column compared within the recipe or the time of day the window is
in, so that a window of one recipe is not drift while a unit change is; the signed location
shift says which way a column moved."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np
import polars as pl
import pytest

from mlwarden.drift import Reference, compare
from mlwarden.drift.regimes import PHASE, MixtureSketch, Phase, Regimes
from mlwarden.profiling.kll import KLLSketch


def _recipes(n_runs: int, seed: int, start: datetime) -> pl.DataFrame:
    """Production in long runs of one recipe, each with its own melt temperature."""
    rng = np.random.default_rng(seed)
    recipe = np.repeat(rng.choice(["PP", "PE", "PA"], n_runs), 240)
    setpoint = np.select([recipe == "PP", recipe == "PE"], [230.0, 190.0], 275.0)
    n = recipe.size
    timestamps = [start + timedelta(minutes=i) for i in range(n)]
    return pl.DataFrame(
        {
            "timestamp": timestamps,
            "recipe": recipe,
            "temperature_c": setpoint + rng.normal(0, 2.0, n),
        }
    ).with_columns(pl.col("timestamp").dt.replace_time_zone("UTC"))


@pytest.fixture(scope="module")
def reference() -> Reference:
    frame = _recipes(60, 0, datetime(2024, 1, 1, tzinfo=UTC))
    return Reference.fit(frame, timestamp="timestamp", window="4h")


def test_a_column_is_compared_within_the_recipe_that_explains_it(reference: Reference) -> None:
    assert reference.regimes.given == {"temperature_c": "recipe"}
    assert reference.regimes.describe() == [
        "temperature_c is compared within 'recipe', which explains 100% of its variance"
    ]


def test_a_window_of_one_recipe_is_not_drift_but_a_unit_change_is(reference: Reference) -> None:
    later = _recipes(6, 1, datetime(2024, 2, 1, tzinfo=UTC))
    window = later.filter(pl.col("recipe") == later["recipe"][0]).head(240)
    within = compare(reference, window).columns["temperature_c"]
    assert within.effect_size < 0.2
    assert "compared within 'recipe'" in within.note
    plain = Reference.fit(
        window.vstack(_recipes(60, 0, datetime(2024, 1, 1, tzinfo=UTC))), regimes=False
    )
    assert compare(plain, window).columns["temperature_c"].effect_size > within.effect_size
    fahrenheit = window.with_columns(pl.col("temperature_c") * 1.8 + 32)
    moved = compare(reference, fahrenheit).columns["temperature_c"]
    assert moved.effect_size == 1.0
    assert moved.shift is not None
    assert moved.shift > 50


def test_a_reference_with_regimes_round_trips(reference: Reference) -> None:
    loaded = Reference.from_bytes(reference.to_bytes())
    assert loaded.regimes.given == reference.regimes.given
    assert sorted(loaded.regimes.profiles["recipe"]) == ["PA", "PE", "PP"]


def test_a_daily_cycle_is_a_phase_of_the_day() -> None:
    rng = np.random.default_rng(3)
    minutes = np.arange(14 * 1440)
    start = datetime(2024, 1, 1, tzinfo=UTC)
    hour = (minutes // 60) % 24
    level = 45 + 12 * np.sin(2 * np.pi * hour / 24) + rng.normal(0, 2, minutes.size)
    frame = pl.DataFrame(
        {
            "timestamp": [start + timedelta(minutes=int(m)) for m in minutes],
            "humidity_pct": level,
        }
    )
    regimes = Regimes.detect(frame, timestamp="timestamp", window_seconds=3600.0)
    assert regimes.given == {"humidity_pct": PHASE}
    assert regimes.phase == Phase("hour", 1)
    # a slow wander that is no cycle: the same days in another order show none
    shuffled = frame.with_columns(pl.Series("humidity_pct", rng.permutation(level)))
    assert not Regimes.detect(shuffled, timestamp="timestamp", window_seconds=3600.0)


def test_a_mixture_reads_like_one_sketch() -> None:
    a, b = KLLSketch(), KLLSketch()
    a.update(np.arange(100.0))
    b.update(np.arange(100.0, 200.0))
    mixed = MixtureSketch([(0.25, a), (0.75, b)])
    assert mixed.cdf([99.0])[0] == pytest.approx(0.25)
    assert mixed.quantiles([0.5])[0] == pytest.approx(133.0, abs=1.0)
    assert mixed.n == 200
