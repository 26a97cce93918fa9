"""Every check family finds the fault it is for, and passes clean data."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import polars as pl
import pytest

from mlwarden.exceptions import ParameterError
from mlwarden.quality import (
    AllowedValues,
    ArrivalDelay,
    CategoryShares,
    ColumnType,
    DuplicateRows,
    DuplicateTimestamps,
    Freshness,
    Gap,
    Jitter,
    Length,
    Mean,
    Monotonic,
    NoExtraColumns,
    NotNull,
    Pattern,
    Quantile,
    Range,
    RateOfChange,
    RequiredColumns,
    RowCompleteness,
    Rule,
    Spike,
    Std,
    Stuck,
    Suite,
    Unique,
    UnitChange,
    Volume,
    validate,
)
from tests.quality.conftest import START


def one(frame: pl.DataFrame, check: object, **suite: object) -> object:
    return validate(frame, Suite([check], **suite)).results[0]  # type: ignore[list-item]


def sensors(frame: pl.DataFrame, *checks: object) -> list[object]:
    return list(validate(frame, Suite(list(checks), timestamp="timestamp")).results)  # type: ignore[arg-type]


# -- schema, completeness, validity --------------------------------------------------------------


def test_schema_checks_name_what_is_missing_wrong_or_extra(signal: pl.DataFrame) -> None:
    frame = signal.drop("pressure_bar").with_columns(
        pl.col("temperature_c").cast(pl.String), pl.lit(1).alias("debug_flag")
    )
    required = one(frame, RequiredColumns(columns=["temperature_c", "pressure_bar"]))
    assert not required.passed
    assert required.observed == ["pressure_bar"]
    kind = one(frame, ColumnType(column="temperature_c", kind="numeric"))
    assert not kind.passed
    assert "expected numeric" in kind.message
    extra = one(frame, NoExtraColumns(columns=list(signal.columns)))
    assert not extra.passed
    assert extra.observed == ["debug_flag"]
    assert extra.severity == "warning"
    assert one(signal, RequiredColumns(columns=list(signal.columns))).passed


def test_not_null_counts_nulls_and_nans_against_the_tolerance(signal: pl.DataFrame) -> None:
    holes = signal.with_columns(
        pl.when(pl.int_range(pl.len()) % 100 == 0)
        .then(float("nan"))
        .otherwise(pl.col("pressure_bar"))
        .alias("pressure_bar")
    )
    strict = one(holes, NotNull(column="pressure_bar"))
    assert not strict.passed
    assert strict.n_failed == 50
    assert strict.observed == pytest.approx(0.01)
    assert one(holes, NotNull(column="pressure_bar", max_share=0.02)).passed
    assert one(signal, NotNull(column="pressure_bar")).passed


def test_row_completeness_flags_rows_missing_most_values() -> None:
    frame = pl.DataFrame({"a": [1.0, None, None], "b": [1.0, 2.0, None], "c": [1, 2, None]})
    result = one(frame, RowCompleteness(min_filled=0.5))
    assert result.n_failed == 1
    assert result.sample[0]["row"] == 2


def test_range_with_per_tag_limits_covers_long_data() -> None:
    frame = pl.DataFrame(
        {
            "tag": ["TI-1", "TI-1", "PI-7", "PI-7", "FI-3"],
            "value": [230.0, 460.0, 900.0, 1200.0, -5.0],
        }
    )
    check = Range(
        column="value",
        by="tag",
        groups={"TI-1": {"min": 0, "max": 400}, "PI-7": {"max": 1000}},
    )
    result = one(frame, check)
    assert result.n_failed == 2
    assert sorted(r["value"] for r in result.sample) == [460.0, 1200.0]


def test_allowed_values_pattern_and_length_find_bad_codes() -> None:
    frame = pl.DataFrame({"recipe": ["PP-H100", "PE-LD30", "pp-h100", "PA6-GF30-X", None]})
    allowed = one(frame, AllowedValues(column="recipe", values=["PP-H100", "PE-LD30", "PA6-GF30"]))
    assert allowed.n_failed == 2
    assert allowed.n_checked == 4
    assert "pp-h100" in allowed.message
    pattern = one(frame, Pattern(column="recipe", regex=r"^[A-Z0-9]+-[A-Z0-9]+$"))
    assert pattern.n_failed == 2
    length = one(frame, Length(column="recipe", max=8))
    assert length.n_failed == 1
    assert length.observed == [7, 10]


def test_invalid_regex_is_rejected_when_the_check_is_made() -> None:
    with pytest.raises(ParameterError, match="not a valid regular expression"):
        Pattern(column="tag", regex="([A-Z")


# -- uniqueness and consistency ------------------------------------------------------------------


def test_unique_keeps_the_first_copy_and_flags_repeats(signal: pl.DataFrame) -> None:
    doubled = pl.concat([signal, signal.head(3)])
    result = one(doubled, Unique(columns=["reading_id"]))
    assert result.n_failed == 3
    assert {r["row"] for r in result.sample} == {5000, 5001, 5002}
    assert one(doubled, DuplicateRows()).n_failed == 3
    assert one(signal, Unique(columns=["reading_id"])).passed


def test_duplicate_timestamps_per_series(signal: pl.DataFrame) -> None:
    frame = pl.concat([signal, signal.slice(10, 2).with_columns(pl.lit("L9").alias("line"))])
    per_plant = one(frame, DuplicateTimestamps(), timestamp="timestamp")
    assert per_plant.n_failed == 2
    per_line = validate(
        pl.concat([signal, signal.slice(10, 2).with_columns(pl.lit("L9").alias("line"))]),
        Suite([DuplicateTimestamps()], timestamp="timestamp", entity=["line"]),
    )
    assert per_line.results[0].passed


def test_rules_compare_columns_with_a_tolerance() -> None:
    frame = pl.DataFrame(
        {
            "start_time": [1, 5, 9, None],
            "end_time": [2, 4, 9, 3],
            "feed_kg": [10.0, 4.0, 5.0, 1.0],
            "additive_kg": [1.0, 1.0, 0.5, 1.0],
            "total_kg": [11.2, 9.0, 5.5, 2.0],
        }
    )
    order = one(frame, Rule(rule="end_time >= start_time"))
    assert order.n_failed == 1
    assert order.n_checked == 3
    mass = one(frame, Rule(rule="feed_kg + additive_kg == total_kg", tolerance=0.5))
    assert mass.n_failed == 1
    assert mass.sample[0]["total_kg"] == 9.0
    with pytest.raises(ParameterError, match="one comparison"):
        Rule(rule="feed_kg > 1 and total_kg > 2", tolerance=0.1)
    with pytest.raises(ParameterError, match="like SQL"):
        Rule(rule="feed_kg >= ")


def test_monotonic_catches_time_going_back_in_arrival_order(signal: pl.DataFrame) -> None:
    swapped = pl.concat([signal.slice(0, 100), signal.slice(101, 1), signal.slice(100, 1)])
    result = one(swapped, Monotonic(), timestamp="timestamp")
    assert result.n_failed == 1
    assert one(signal, Monotonic(), timestamp="timestamp").passed


# -- timeliness -----------------------------------------------------------------------------------


def test_freshness_arrival_delay_and_volume(signal: pl.DataFrame) -> None:
    newest = signal["timestamp"].max()
    assert isinstance(newest, datetime)
    fresh = validate(
        signal,
        Suite([Freshness(column="timestamp", max_age="1h")]),
        now=newest + timedelta(minutes=30),
    )
    assert fresh.passed
    stale = validate(
        signal,
        Suite([Freshness(column="timestamp", max_age="1h")]),
        now=newest + timedelta(hours=3),
    )
    assert not stale.passed
    assert "3 h" in stale.results[0].message

    arrivals = signal.with_columns(
        (pl.col("timestamp") + pl.duration(seconds=5)).alias("ingest_time")
    ).with_columns(
        pl.when(pl.int_range(pl.len()) == 42)
        .then(pl.col("ingest_time") + pl.duration(hours=2))
        .otherwise(pl.col("ingest_time"))
        .alias("ingest_time")
    )
    delay = one(arrivals, ArrivalDelay(column="timestamp", arrival="ingest_time", max_delay="10m"))
    assert delay.n_failed == 1
    assert delay.sample[0]["row"] == 42

    holed = signal.filter(~pl.int_range(pl.len()).is_between(1000, 1800))
    volume = one(holed, Volume(every="1h", min_rows=300), timestamp="timestamp")
    assert not volume.passed
    assert volume.observed[0] == 0
    assert one(signal, Volume(every="1h", min_rows=300), timestamp="timestamp").passed


# -- distribution bounds -------------------------------------------------------------------------


def test_distribution_bands_per_window(signal: pl.DataFrame) -> None:
    shifted = signal.with_columns(
        pl.when(pl.int_range(pl.len()) >= 4000)
        .then(pl.col("pressure_bar") + 10)
        .otherwise(pl.col("pressure_bar"))
        .alias("pressure_bar")
    )
    band = Mean(column="pressure_bar", min=135, max=145, window="1h", min_rows=100)
    assert sensors(signal, band)[0].passed
    moved = sensors(shifted, band)[0]
    assert not moved.passed
    assert moved.observed > 145
    assert "per 1h window" in moved.message
    assert not sensors(signal, Std(column="pressure_bar", max=0.1))[0].passed
    assert sensors(signal, Quantile(column="temperature_c", q=0.5, min=220, max=240))[0].passed
    shares = CategoryShares(column="line", bands={"L1": [0.25, 0.4], "L2": [0.25, 0.4]})
    assert sensors(signal, shares)[0].passed
    skewed = signal.with_columns(pl.lit("L1").alias("line"))
    assert not sensors(skewed, shares)[0].passed


# -- sensor faults on a realistic signal ---------------------------------------------------------


def test_stuck_sensor_is_found_with_its_duration(signal: pl.DataFrame) -> None:
    frozen = signal.with_columns(
        pl.when(pl.int_range(pl.len()).is_between(2000, 2359))
        .then(pl.lit(231.4))
        .otherwise(pl.col("temperature_c"))
        .alias("temperature_c")
    )
    result = sensors(frozen, Stuck(column="temperature_c", max_duration="10m"))[0]
    assert not result.passed
    assert result.n_failed == 360
    assert "did not change for 59 min" in result.message
    assert sensors(signal, Stuck(column="temperature_c", max_duration="10m"))[0].passed


def test_spikes_are_found_and_steps_are_not(signal: pl.DataFrame) -> None:
    spiked = signal.with_columns(
        pl.when(pl.int_range(pl.len()).is_in([700, 3100]))
        .then(pl.col("temperature_c") + 15)
        .otherwise(pl.col("temperature_c"))
        .alias("temperature_c")
    )
    result = sensors(spiked, Spike(column="temperature_c", max_z=10))[0]
    assert result.n_failed == 2
    assert {r["row"] for r in result.sample} == {700, 3100}
    stepped = signal.with_columns(
        pl.when(pl.int_range(pl.len()) >= 2500)
        .then(pl.col("temperature_c") + 15)
        .otherwise(pl.col("temperature_c"))
        .alias("temperature_c")
    )
    assert sensors(stepped, Spike(column="temperature_c", max_z=10))[0].passed
    assert sensors(signal, Spike(column="temperature_c", max_z=10))[0].passed


def test_rate_of_change_limits_physical_speed(signal: pl.DataFrame) -> None:
    jumped = signal.with_columns(
        pl.when(pl.int_range(pl.len()) >= 2500)
        .then(pl.col("pressure_bar") + 40)
        .otherwise(pl.col("pressure_bar"))
        .alias("pressure_bar")
    )
    result = sensors(jumped, RateOfChange(column="pressure_bar", max_rate=1.0))[0]
    assert result.n_failed == 1
    assert result.sample[0]["row"] == 2500


def test_gaps_and_jitter_against_the_cadence(signal: pl.DataFrame) -> None:
    holed = signal.filter(~pl.int_range(pl.len()).is_between(1000, 1059))
    gap = sensors(holed, Gap(max_interval="1m"))[0]
    assert gap.n_failed == 1
    assert "10 min" in gap.message
    assert sensors(signal, Gap(max_interval="1m"))[0].passed
    dropouts = signal.with_columns(
        pl.when(pl.int_range(pl.len()).is_between(300, 330))
        .then(None)
        .otherwise(pl.col("pressure_bar"))
        .alias("pressure_bar")
    )
    sensor_gap = sensors(dropouts, Gap(column="pressure_bar", max_interval="2m"))[0]
    assert sensor_gap.n_failed == 1
    irregular = signal.with_columns(
        (
            pl.lit(START)
            + pl.duration(seconds=(pl.int_range(pl.len()) * 10 + (pl.int_range(pl.len()) % 2) * 6))
        ).alias("timestamp")
    )
    assert not sensors(irregular, Jitter(cadence="10s", tolerance=0.3))[0].passed
    assert sensors(signal, Jitter(cadence="10s", tolerance=0.3))[0].passed


@pytest.mark.parametrize(
    ("factor", "offset", "label"),
    [(1.8, 32.0, "°C → °F"), (1.0, 273.15, "°C → K"), (14.5038, 0.0, "bar → psi")],
)
def test_unit_change_names_the_conversion(
    signal: pl.DataFrame, factor: float, offset: float, label: str
) -> None:
    converted = signal.with_columns(
        pl.when(pl.int_range(pl.len()) >= 3000)
        .then(pl.col("temperature_c") * factor + offset)
        .otherwise(pl.col("temperature_c"))
        .alias("temperature_c")
    )
    result = sensors(converted, UnitChange(column="temperature_c"))[0]
    assert not result.passed
    assert label in result.message
    assert result.n_failed == 2000
    assert sensors(signal, UnitChange(column="temperature_c"))[0].passed


def test_unit_change_and_reversal_flag_only_the_rows_between(signal: pl.DataFrame) -> None:
    row = pl.int_range(pl.len())
    flipped = signal.with_columns(
        pl.when(row.is_between(1000, 1999))
        .then(pl.col("temperature_c") * 1.8 + 32)
        .otherwise(pl.col("temperature_c"))
        .alias("temperature_c")
    )
    result = sensors(flipped, UnitChange(column="temperature_c"))[0]
    assert result.n_failed == 1000
    assert result.observed == 2


def test_sensor_checks_need_the_suites_timestamp(signal: pl.DataFrame) -> None:
    with pytest.raises(ParameterError, match="set the suite's timestamp"):
        validate(signal, Suite([Stuck(column="temperature_c", max_samples=5)]))


def test_long_data_one_pass_over_many_tags() -> None:
    frames = []
    for k in range(200):
        base = 100.0 + 10 * k
        values = [base + (i % 7) * 0.1 for i in range(50)]
        if k == 17:
            values[20:40] = [base] * 20
        frames.append(
            pl.DataFrame(
                {
                    "tag": f"TI-{k:04d}",
                    "timestamp": [START + timedelta(seconds=10 * i) for i in range(50)],
                    "value": values,
                }
            )
        )
    long = pl.concat(frames).sample(fraction=1.0, shuffle=True, seed=1)
    suite = Suite(
        [
            Stuck(column="value", max_samples=10, by="tag", groups={"TI-0003": {"max_samples": 5}}),
            Range(column="value", by="tag", groups={"TI-0199": {"max": 2000.0}}),
            Gap(max_interval="30s"),
        ],
        timestamp="timestamp",
        entity=["tag"],
    )
    stuck, rng, gap = validate(long, suite).results
    assert stuck.n_failed == 20
    assert {r["tag"] for r in stuck.sample} == {"TI-0017"}
    assert rng.n_failed == 50
    assert {r["tag"] for r in rng.sample} == {"TI-0199"}
    assert gap.passed
    assert stuck.sample[0]["timestamp"].tzinfo is not None


def test_timestamps_without_zone_are_read_as_utc(signal: pl.DataFrame) -> None:
    naive = signal.with_columns(pl.col("timestamp").dt.replace_time_zone(None))
    newest = naive["timestamp"].max()
    assert isinstance(newest, datetime)
    result = validate(
        naive,
        Suite([Freshness(column="timestamp", max_age="1h")]),
        now=newest.replace(tzinfo=UTC) + timedelta(minutes=10),
    )
    assert result.passed
