"""Windows of time as users have it: naive, aware, text or epoch times cut the same UTC windows,
in every function that windows by time."""

from __future__ import annotations

import datetime as dt

import numpy as np
import polars as pl
import pytest

from mlwarden.drift import DriftMonitor
from mlwarden.exceptions import InputError
from mlwarden.performance.realized import realized_performance
from mlwarden.windows import WINDOW_START, WindowSpec, assign_windows

UTC = dt.UTC
START = dt.datetime(2024, 5, 1, 6, 0)


def times(n: int, step: dt.timedelta = dt.timedelta(minutes=20)) -> list[dt.datetime]:
    return [START + i * step for i in range(n)]


@pytest.mark.parametrize(
    "column",
    [
        pl.Series(times(6)),  # naive: UTC
        pl.Series(times(6)).dt.replace_time_zone("UTC").dt.convert_time_zone("Asia/Kolkata"),
        pl.Series([t.isoformat() for t in times(6)]),
        pl.Series([t.isoformat(sep=" ") + "Z" for t in times(6)]),
        pl.Series([int(t.replace(tzinfo=UTC).timestamp()) for t in times(6)]),
        pl.Series([int(t.replace(tzinfo=UTC).timestamp() * 1000) for t in times(6)]),
    ],
    ids=["naive", "aware", "iso", "iso-z", "epoch-s", "epoch-ms"],
)
def test_every_form_of_time_cuts_the_same_utc_windows(column: pl.Series) -> None:
    frame = pl.DataFrame({"ts": column, "x": range(6)})
    out = assign_windows(frame, WindowSpec(every="1h", timestamp="ts"))
    assert out.schema["ts"] == pl.Datetime("us", "UTC")
    assert out[WINDOW_START].to_list() == [
        dt.datetime(2024, 5, 1, hour, tzinfo=UTC) for hour in (6, 6, 6, 7, 7, 7)
    ]
    assert out["window"].to_list() == [0, 0, 0, 1, 1, 1]


def test_a_time_column_that_is_not_times_is_named() -> None:
    frame = pl.DataFrame({"ts": ["2024-05-01 06:00", "soon"], "x": [1, 2]})
    with pytest.raises(InputError, match=r"Column 'ts'.*'soon' in row 2") as caught:
        assign_windows(frame, WindowSpec(every="1h", timestamp="ts"))
    assert caught.value.column == "ts"
    with pytest.raises(InputError, match="Did you mean 'ts'"):
        assign_windows(frame, WindowSpec(every="1h", timestamp="tss"))


def test_realized_performance_and_drift_windows_read_text_times() -> None:
    rng = np.random.default_rng(0)
    n = 600
    stamps = [t.isoformat() for t in times(n, dt.timedelta(minutes=1))]
    predictions = pl.DataFrame(
        {"at": stamps, "y": rng.integers(0, 2, n), "pred": rng.integers(0, 2, n)}
    )
    result = realized_performance(
        predictions, task="binary", y_true="y", y_pred="pred", timestamp="at", window="2h"
    )
    starts = result.to_df()[WINDOW_START].to_list()
    assert starts == [dt.datetime(2024, 5, 1, hour, tzinfo=UTC) for hour in (6, 8, 10, 12, 14)]

    reference = pl.DataFrame({"temp": rng.normal(200, 5, 5_000)})
    later = pl.DataFrame({"at": stamps, "temp": rng.normal(200, 5, n)})
    series = DriftMonitor(reference, columns=["temp"]).evaluate(later, window="2h", timestamp="at")
    assert series.to_df()[WINDOW_START].to_list() == starts
