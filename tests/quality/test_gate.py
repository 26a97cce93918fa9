"""gate(): accepted + repaired + quarantined = input; each repair recorded, each hold explained."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mlwarden.exceptions import ParameterError
from mlwarden.quality import (
    Freshness,
    GatePolicy,
    NotNull,
    Range,
    Spike,
    Suite,
    Unique,
    gate,
)
from tests.quality.conftest import sensor_signal

START = datetime(2024, 3, 4, tzinfo=UTC)


def readings(values: list[float | None], ids: list[int] | None = None) -> pl.DataFrame:
    n = len(values)
    return pl.DataFrame(
        {
            "timestamp": [START + timedelta(seconds=10 * i) for i in range(n)],
            "reading_id": ids if ids is not None else list(range(n)),
            "pressure_bar": values,
        },
        schema_overrides={"pressure_bar": pl.Float64},
    )


SUITE = Suite(
    [
        NotNull(column="pressure_bar"),
        Range(column="pressure_bar", min=0, max=400),
        Unique(columns=["reading_id"]),
    ],
    timestamp="timestamp",
)


def test_default_gate_quarantines_with_reasons() -> None:
    frame = readings([140.0, None, 980.0, 141.0], ids=[1, 2, 3, 3])
    result = gate(frame, SUITE)
    assert result.accepted["reading_id"].to_list() == [1]
    assert result.quarantined["reading_id"].to_list() == [2, 3, 3]
    assert result.quarantined["reasons"].to_list() == [
        ["not_null(pressure_bar)"],
        ["range(pressure_bar)"],
        ["unique(reading_id)"],
    ]
    assert result.repaired.height == 0
    assert result.repairs.height == 0
    assert result.n_rows == frame.height


def test_repairs_fill_short_dropouts_and_clip_and_are_recorded() -> None:
    frame = readings([140.0, None, None, 139.0, None, None, None, None, 980.0])
    policy = GatePolicy(actions={"not_null": "repair", "range": "repair"}, fill_limit=2)
    result = gate(frame, SUITE, policy)
    assert result.repaired["pressure_bar"].to_list() == [140.0, 140.0, 139.0, 139.0, 400.0]
    assert result.quarantined["reasons"].to_list() == [
        ["not_null(pressure_bar): not repairable"],
        ["not_null(pressure_bar): not repairable"],
    ]
    log = result.repairs
    assert log.columns == ["row", "column", "check", "before", "after"]
    assert log.filter(pl.col("check") == "range").row(0) == (
        8,
        "pressure_bar",
        "range",
        980.0,
        400.0,
    )
    assert log.filter(pl.col("check") == "not_null")["row"].to_list() == [1, 2, 4, 5]


def test_spikes_are_replaced_by_their_neighbours() -> None:
    signal = sensor_signal(600)
    spiked = signal.with_columns(
        pl.when(pl.int_range(pl.len()) == 300)
        .then(pl.col("temperature_c") + 40)
        .otherwise(pl.col("temperature_c"))
        .alias("temperature_c")
    )
    suite = Suite([Spike(column="temperature_c", max_z=10)], timestamp="timestamp")
    result = gate(spiked, suite, GatePolicy(actions={"spike": "repair"}))
    assert result.repaired.height == 1
    before, after = signal["temperature_c"][299], signal["temperature_c"][301]
    assert result.repaired["temperature_c"][0] == pytest.approx((before + after) / 2)


def test_a_failed_batch_check_quarantines_everything_unless_told_otherwise() -> None:
    frame = readings([140.0, 141.0])
    stale = Suite([Freshness(column="timestamp", max_age="1h")])
    later = START + timedelta(days=2)
    assert gate(frame, stale, now=later).quarantined.height == 2
    assert gate(frame, stale, {"batch": "accept"}, now=later).accepted.height == 2


def test_warnings_and_tolerated_failures_pass_through() -> None:
    frame = readings([140.0, None, 141.0, 142.0])
    tolerant = Suite([NotNull(column="pressure_bar", max_share=0.5)])
    assert gate(frame, tolerant).accepted.height == 4
    warned = Suite([Range(column="pressure_bar", max=100, severity="warning")])
    assert gate(frame, warned).accepted.height == 4
    forced = gate(frame, warned, GatePolicy(actions={"range(pressure_bar)": "quarantine"}))
    assert forced.quarantined.height == 3


def test_policies_are_checked() -> None:
    with pytest.raises(ParameterError, match="cannot repair rows"):
        gate(readings([1.0, 1.0]), SUITE, GatePolicy(actions={"unique": "repair"}))
    with pytest.raises(ParameterError, match="must be one of accept, repair, quarantine"):
        GatePolicy(actions={"range": "drop"})  # type: ignore[dict-item]


def test_quarantine_file_is_written_whole(tmp_path: object) -> None:
    result = gate(readings([140.0, None]), SUITE)
    path = result.write_quarantine(tmp_path / "held.parquet")  # type: ignore[operator]
    back = pl.read_parquet(path)
    assert back["reasons"].to_list() == [["not_null(pressure_bar)"]]


values = st.lists(
    st.one_of(st.none(), st.floats(-100, 600, allow_nan=False), st.just(float("nan"))),
    min_size=1,
    max_size=60,
)


@settings(max_examples=60, deadline=None)
@given(
    values=values,
    duplicates=st.integers(0, 5),
    null_action=st.sampled_from(["accept", "repair", "quarantine", None]),
    range_action=st.sampled_from(["accept", "repair", "quarantine", None]),
    fill_limit=st.integers(0, 4),
)
def test_nothing_is_lost_or_invented(
    values: list[float | None],
    duplicates: int,
    null_action: str | None,
    range_action: str | None,
    fill_limit: int,
) -> None:
    ids = list(range(len(values)))
    ids[: min(duplicates, len(ids) - 1)] = [ids[-1]] * min(duplicates, len(ids) - 1)
    frame = readings(values, ids=ids)
    actions = {k: v for k, v in {"not_null": null_action, "range": range_action}.items() if v}
    result = gate(frame, SUITE, GatePolicy(actions=actions, fill_limit=fill_limit))  # type: ignore[arg-type]
    parts = [result.accepted, result.repaired, result.quarantined.drop("reasons")]
    assert sum(p.height for p in parts) == frame.height
    seen = sorted(pl.concat(parts)["timestamp"].to_list())
    assert seen == frame["timestamp"].to_list(), "each input row comes out exactly once"
    assert all(len(r) > 0 for r in result.quarantined["reasons"].to_list())
    if range_action == "repair":
        kept = (
            pl.concat([result.accepted, result.repaired])["pressure_bar"].drop_nulls().drop_nans()
        )
        assert kept.is_between(0, 400).all()
    assert set(result.repairs["row"].to_list()) <= set(range(frame.height))
