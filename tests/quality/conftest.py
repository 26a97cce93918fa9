from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np
import polars as pl
import pytest

START = datetime(2024, 3, 4, tzinfo=UTC)


def sensor_signal(n: int, *, seed: int = 0, cadence_s: float = 10.0) -> pl.DataFrame:
    """A realistic wide sensor log: daily cycles, AR(1) noise, slight sampling jitter."""
    rng = np.random.default_rng(seed)
    seconds = np.arange(n) * cadence_s + rng.uniform(-0.5, 0.5, n)
    day = 2 * np.pi * seconds / 86_400
    noise = np.zeros(n)
    shocks = rng.normal(0.0, 0.3, n)
    for i in range(1, n):  # a short AR(1) loop over a test-sized signal; not library code
        noise[i] = 0.9 * noise[i - 1] + shocks[i]
    return pl.DataFrame(
        {
            "timestamp": [START + timedelta(seconds=float(s)) for s in seconds],
            "reading_id": np.arange(n),
            "temperature_c": 230.0 + 4.0 * np.sin(day) + noise,
            "pressure_bar": 140.0 + 2.0 * np.cos(day) + rng.normal(0.0, 0.5, n),
            "line": rng.choice(["L1", "L2", "L3"], n),
        }
    ).with_columns(pl.col("timestamp").dt.replace_time_zone("UTC"))


@pytest.fixture
def signal() -> pl.DataFrame:
    return sensor_signal(5_000)
