"""Widening a check that failed on clean windows: the windows pass, limits only move outward, the
widened suite round-trips through YAML, and checks without a movable limit say so (None)."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import polars as pl
import pytest
from hypothesis import given
from hypothesis import strategies as st

from mlwarden.exceptions import ParameterError
from mlwarden.quality import (
    AllowedValues,
    ArrivalDelay,
    CategoryShares,
    Check,
    CheckResult,
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
from mlwarden.quality._durations import duration_text, parse_duration

START = datetime(2024, 1, 1)
NOW = datetime(2024, 1, 1, 2, tzinfo=UTC)
MARGIN = 1.5
MARGINS = st.floats(min_value=1.01, max_value=5.0)


def times(n: int, step_s: float = 10.0) -> list[datetime]:
    return [START + timedelta(seconds=step_s * i) for i in range(n)]


def wobble(n: int) -> list[float]:
    """A signal that changes at every reading (nothing flat, no spike)."""
    return [20.0 + 0.1 * (i % 7) for i in range(n)]


def flat_tail() -> pl.DataFrame:
    """20 lively readings, then 40 identical ones: flat for 6 min 30 s."""
    return pl.DataFrame({"t": times(60), "v": wobble(20) + [21.3] * 40})


def spiked() -> pl.DataFrame:
    values = wobble(60)
    values[30] = 40.0
    return pl.DataFrame({"t": times(60), "v": values})


def with_hole() -> pl.DataFrame:
    return pl.DataFrame({"t": [t for i, t in enumerate(times(60)) if not 20 <= i < 40]})


def jittery() -> pl.DataFrame:
    t = [START + timedelta(seconds=10 * i + (4 if i % 3 == 0 else 0)) for i in range(60)]
    return pl.DataFrame({"t": t})


def repeated_timestamp() -> pl.DataFrame:
    t = times(60)
    t[31] = t[30]
    return pl.DataFrame({"t": t, "v": wobble(60)})


def arrivals() -> pl.DataFrame:
    event = [datetime(2024, 1, 1, 8, 0), datetime(2024, 1, 1, 8, 1)]
    arrival = [datetime(2024, 1, 1, 8, 0, 5), datetime(2024, 1, 1, 9, 0)]
    return pl.DataFrame({"event": event, "arrival": arrival})


def thin_hour() -> pl.DataFrame:
    """Rows every 2 minutes for 4 hours, the second hour empty."""
    t = [START + timedelta(minutes=m) for m in range(0, 240, 2)]
    return pl.DataFrame({"t": [x for x in t if not 60 <= (x - START).total_seconds() / 60 < 120]})


@dataclass(frozen=True)
class Case:
    """A check that fails on ``frame``, and what its relaxed copy should look like."""

    check: Check
    frame: pl.DataFrame
    expected: dict[str, Any]
    suite: dict[str, Any] = field(default_factory=dict)


CASES = {
    "not_null": Case(
        NotNull(column="v"),
        pl.DataFrame({"v": [1.0, None, 3.0, None, 5.0, 6.0, 7.0, 8.0, 9.0, float("nan")]}),
        {"max_share": pytest.approx(0.45)},
    ),
    "not_null_with_a_share": Case(
        NotNull(column="v", max_share=0.25),
        pl.DataFrame({"v": [1.0, None, 3.0, None]}),
        {"max_share": 0.75},
    ),
    "row_completeness": Case(
        RowCompleteness(min_filled=0.5),
        pl.DataFrame({"a": [1.0, None, None, 4.0], "b": [2.0, None, 5.0, 6.0]}),
        {"max_share": 0.375, "min_filled": 0.5},
    ),
    "range_both_sides": Case(
        Range(column="v", min=0, max=4),
        pl.DataFrame({"v": [1.0, 5.0, -3.0]}),
        # the middle is 2: 5 lies 3 above it and -3 lies 5 below, so 4.5 and 7.5 out
        {"min": -5.5, "max": 6.5},
    ),
    "range_one_side": Case(
        Range(column="v", max=100),
        pl.DataFrame({"v": [95.0, 97.0, 101.0]}),
        # no middle: measured from the lowest value seen, 95
        {"min": None, "max": 104.0},
    ),
    "length": Case(
        Length(column="s", min=2, max=5),
        pl.DataFrame({"s": ["abc", "abcdefgh", "a"]}),
        # the middle is 3.5: 8 lies 4.5 above it, so 6.75 out (up to whole characters); the low
        # side would go below 0, where no length is
        {"min": 0, "max": 11},
    ),
    "stuck_duration_text": Case(
        Stuck(column="v", max_duration="2m"),
        flat_tail(),
        {"max_duration": "9m45s"},
        {"timestamp": "t"},
    ),
    "stuck_duration_seconds": Case(
        Stuck(column="v", max_duration=120.0),
        flat_tail(),
        {"max_duration": 585.0},
        {"timestamp": "t"},
    ),
    "stuck_samples": Case(
        Stuck(column="v", max_samples=5),
        flat_tail(),
        {"max_samples": 60, "max_duration": None},
        {"timestamp": "t"},
    ),
    "spike": Case(
        Spike(column="v", max_z=6.0, scale=0.5),
        spiked(),
        {"scale": 0.5},
        {"timestamp": "t"},
    ),
    "rate_of_change": Case(
        RateOfChange(column="v", max_rate=0.5),
        spiked(),
        {"max_rate": pytest.approx(2.985)},
        {"timestamp": "t"},
    ),
    "gap": Case(Gap(max_interval="1m"), with_hole(), {"max_interval": "5m15s"}, {"timestamp": "t"}),
    "jitter": Case(
        Jitter(cadence="10s", tolerance=0.2),
        jittery(),
        {"max_share": 0.9916, "tolerance": 0.2, "cadence": "10s"},
        {"timestamp": "t"},
    ),
    "duplicate_timestamps": Case(
        DuplicateTimestamps(),
        repeated_timestamp(),
        {"max_share": 0.025},
        {"timestamp": "t"},
    ),
    "unique": Case(Unique(columns=["k"]), pl.DataFrame({"k": [1, 2, 2, 3]}), {"max_share": 0.375}),
    "duplicate_rows": Case(
        DuplicateRows(), pl.DataFrame({"k": [1, 2, 2, 3]}), {"max_share": 0.375}
    ),
    "arrival_delay": Case(
        ArrivalDelay(column="event", arrival="arrival", max_delay="5m"),
        arrivals(),
        {"max_delay": "1h29m"},
    ),
    "freshness": Case(
        Freshness(column="t", max_age="15m"),
        pl.DataFrame({"t": [datetime(2024, 1, 1, 1, 0, tzinfo=UTC)]}),
        {"max_age": "1h30m"},
    ),
    "volume": Case(
        Volume(every="1h", min_rows=20, max_rows=25),
        thin_hour(),
        # the middle is 22.5: an empty hour takes min_rows to 0, 30 rows take max_rows to 34
        {"min_rows": 0, "max_rows": 34},
        {"timestamp": "t"},
    ),
    "mean": Case(
        Mean(column="v", min=0, max=3), pl.DataFrame({"v": [1.0, 2.0, 9.0]}), {"max": 5.25}
    ),
    "std": Case(
        Std(column="v", max=1), pl.DataFrame({"v": [1.0, 2.0, 9.0]}), {"min": None, "max": 6.039}
    ),
    "quantile": Case(
        Quantile(column="v", q=0.5, min=3),
        pl.DataFrame({"v": [1.0, 2.0, 9.0]}),
        {"min": 1.5, "max": None},
    ),
    "category_shares": Case(
        CategoryShares(column="c", bands={"a": [0.5, 0.8]}, other=[0.2, 0.5]),
        pl.DataFrame({"c": ["a"] * 9 + ["b"]}),
        # both bands are widened from their middles; a share never leaves [0, 1]
        {"bands": {"a": (0.5, 1.0)}, "other": (0.0, 0.5)},
    ),
}


def run(check: Check, frame: pl.DataFrame, **suite: Any) -> CheckResult:
    return validate(frame, Suite([check], **suite), now=NOW).results[0]


def assert_outward(before: Check, after: Check) -> None:
    """Every limit of ``after`` is at least as wide as the same limit of ``before``."""
    for name, unit in type(before).limit_parameters.items():
        old, new = getattr(before, name), getattr(after, name)
        if name == "bands":
            for key, (low, high) in old.items():
                assert new[key][0] <= low, (name, key)
                assert new[key][1] >= high, (name, key)
            continue
        if name == "other":
            assert old is None or (new[0] <= old[0] and new[1] >= old[1])
            continue
        if old is None:
            assert new is None, f"{name} was unset and must stay so (no new limit appears)"
            continue
        if unit == "s":
            old = parse_duration(old, name, "test")
            new = parse_duration(new, name, "test")
        if name.startswith("min"):
            assert new <= old, name
        else:
            assert new >= old, name


@pytest.mark.parametrize("case", CASES.values(), ids=CASES.keys())
def test_a_relaxed_check_passes_the_windows_it_failed(case: Case) -> None:
    failed = run(case.check, case.frame, **case.suite)
    assert not failed.passed, failed.message

    relaxed = case.check.relaxed([failed.observed], MARGIN)

    assert relaxed is not None
    again = run(relaxed, case.frame, **case.suite)
    assert again.passed, again.message
    assert relaxed != case.check
    assert_outward(case.check, relaxed)
    for name, value in case.expected.items():
        assert getattr(relaxed, name) == value, name


@pytest.mark.parametrize("case", CASES.values(), ids=CASES.keys())
def test_a_relaxed_check_round_trips_through_yaml(case: Case) -> None:
    failed = run(case.check, case.frame, **case.suite)
    relaxed = case.check.relaxed([failed.observed], MARGIN)
    assert relaxed is not None

    suite = Suite([relaxed], **case.suite)

    assert Check.from_dict(relaxed.to_dict()) == relaxed
    assert Suite.from_yaml(suite.to_yaml()) == suite


def test_a_range_widened_for_several_windows_covers_each() -> None:
    check = Range(column="v", min=220, max=240)
    windows = [pl.DataFrame({"v": [230.0, 243.0]}), pl.DataFrame({"v": [215.0, 231.0]})]
    observed = [run(check, w).observed for w in windows]

    relaxed = check.relaxed(observed, MARGIN)

    assert relaxed is not None
    assert (relaxed.min, relaxed.max) == (207.5, 249.5)
    assert all(run(relaxed, w).passed for w in windows)


def test_only_the_crossed_side_of_a_range_moves() -> None:
    check = Range(column="v", min=0, max=4)

    relaxed = check.relaxed([[1.0, 5.0]], MARGIN)

    assert relaxed == Range(column="v", min=0, max=6.5)


def test_duplicate_timestamps_report_the_share_they_are_held_to() -> None:
    result = run(DuplicateTimestamps(), repeated_timestamp(), timestamp="t")

    assert result.observed == pytest.approx(1 / 60)
    assert result.threshold == 0.0


def test_the_note_names_the_widened_limit() -> None:
    relaxed = [
        Stuck(column="v", max_duration="2m").relaxed([390.0], MARGIN),
        Gap(max_interval=60.0).relaxed([210.0], MARGIN),
        DuplicateTimestamps().relaxed([0.004], MARGIN),
    ]

    notes = [c.describe_limit() if c is not None else None for c in relaxed]

    assert notes == ["max_duration 9m45s", "max_interval 315 s", "max_share 0.006"]
    assert Range(column="v", min=-5.5, max=6.5).describe_limit() == "min -5.5, max 6.5"


# -- checks without a limit that can move ----------------------------------------------------------


def converted() -> pl.DataFrame:
    values = [230.0 + (i % 5) * 0.3 for i in range(120)]
    return pl.DataFrame({"t": times(120), "v": values[:80] + [v * 1.8 + 32 for v in values[80:]]})


FIXED = {
    "allowed_values": (AllowedValues(column="c", values=["a"]), pl.DataFrame({"c": ["a", "z"]})),
    "pattern": (Pattern(column="c", regex="^a$"), pl.DataFrame({"c": ["a", "z"]})),
    "rule": (Rule(rule="a = b"), pl.DataFrame({"a": [1, 2], "b": [1, 3]})),
    "monotonic": (Monotonic(), pl.DataFrame({"t": [START, START + timedelta(1), START]})),
    "required_columns": (RequiredColumns(columns=["b"]), pl.DataFrame({"a": [1]})),
    "column_type": (ColumnType(column="a", kind="text"), pl.DataFrame({"a": [1]})),
    "no_extra_columns": (NoExtraColumns(columns=["b"]), pl.DataFrame({"a": [1], "b": [2]})),
    # its observed value is the number of changes, which says nothing about min_shift
    "unit_change": (UnitChange(column="v"), converted()),
    # the extremes are over every tag: which tag's limits they broke is unknown
    "range_per_tag": (
        Range(column="v", max=4, by="tag", groups={"a": {"max": 10.0}}),
        pl.DataFrame({"v": [1.0, 5.0, 12.0], "tag": ["b", "b", "a"]}),
    ),
    "stuck_per_tag": (
        Stuck(column="v", max_duration="2m", by="tag", groups={"x": {"max_duration": "1h"}}),
        flat_tail().with_columns(tag=pl.lit("y")),
    ),
    # a check of a missing column has no measurement to widen past
    "range_of_a_missing_column": (Range(column="nowhere", max=3), pl.DataFrame({"v": [1.0]})),
}


@pytest.mark.parametrize(("check", "frame"), FIXED.values(), ids=FIXED.keys())
def test_checks_without_a_movable_limit_return_none(check: Check, frame: pl.DataFrame) -> None:
    failed = run(check, frame, timestamp="t" if "t" in frame.columns else None)
    assert not failed.passed, failed.message

    assert check.relaxed([failed.observed], MARGIN) is None


def test_a_per_tag_check_whose_limit_is_shared_is_widened() -> None:
    frame = spiked().with_columns(tag=pl.lit("PI-7"))
    check = Spike(column="v", max_z=6.0, scale=0.5, by="tag", groups={"PI-7": {"scale": 0.5}})
    failed = run(check, frame, timestamp="t", entity=("tag",))

    relaxed = check.relaxed([failed.observed], MARGIN)

    assert relaxed is not None
    assert run(relaxed, frame, timestamp="t", entity=("tag",)).passed
    assert relaxed.describe_limit() == f"max_z {relaxed.max_z:.10g}"


def test_observations_inside_the_limit_leave_nothing_to_widen() -> None:
    assert Range(column="v", min=0, max=4).relaxed([[1.0, 3.0], None], MARGIN) is None
    assert Spike(column="v", max_z=8.0).relaxed([5.0], MARGIN) is None
    assert NotNull(column="v", max_share=0.1).relaxed([0.05], MARGIN) is None


def test_an_infinite_observation_cannot_be_covered() -> None:
    assert Range(column="v", max=4).relaxed([[1.0, math.inf]], MARGIN) is None
    assert Spike(column="v", max_z=8.0).relaxed([math.inf], MARGIN) is None


@pytest.mark.parametrize("margin", [1.0, 0.5, -2.0, math.nan, math.inf, True, "1.5"])
def test_a_margin_must_be_a_number_above_one(margin: Any) -> None:
    with pytest.raises(
        ParameterError, match=r"'margin' of relaxed\(\) must be a finite number > 1"
    ):
        Spike(column="v", max_z=8.0).relaxed([12.0], margin)
    with pytest.raises(ParameterError, match="margin"):
        Rule(rule="a = b").relaxed([0.5], margin)


# -- the contract for any observation beyond the limit ---------------------------------------------

BOUNDS = st.floats(min_value=-1e6, max_value=1e6, allow_nan=False)
OVERSHOOT = st.floats(min_value=1e-6, max_value=1e6)


@given(
    low=BOUNDS,
    width=st.floats(min_value=0.0, max_value=1e6),
    under=st.one_of(st.none(), OVERSHOOT),
    over=st.one_of(st.none(), OVERSHOOT),
    one_sided=st.sampled_from(["both", "no_min", "no_max"]),
    margin=MARGINS,
)
def test_a_relaxed_range_covers_what_was_observed_and_is_never_tighter(
    low: float, width: float, under: float | None, over: float | None, one_sided: str, margin: float
) -> None:
    lo = None if one_sided == "no_min" else low
    hi = None if one_sided == "no_max" else low + width
    check = Range(column="v", min=lo, max=hi)
    seen_low = low - under if under is not None and lo is not None else low
    seen_high = low + width + over if over is not None and hi is not None else low + width

    relaxed = check.relaxed([[seen_low, seen_high]], margin)

    if seen_low == low and seen_high == low + width:
        assert relaxed is None
        return
    assert isinstance(relaxed, Range)
    assert_outward(check, relaxed)
    if relaxed.min is not None:
        assert relaxed.min <= seen_low
    if relaxed.max is not None:
        assert relaxed.max >= seen_high
    assert Check.from_dict(relaxed.to_dict()) == relaxed


@given(
    max_z=st.floats(min_value=0.5, max_value=100.0),
    factor=st.floats(min_value=1.0 + 1e-9, max_value=1e4),
    margin=MARGINS,
)
def test_a_relaxed_spike_limit_lies_margin_times_the_worst_score(
    max_z: float, factor: float, margin: float
) -> None:
    worst = max_z * factor
    check = Spike(column="v", max_z=max_z, scale=0.4)

    relaxed = check.relaxed([max_z / 2, worst], margin)

    assert isinstance(relaxed, Spike)
    assert relaxed.max_z >= worst
    assert relaxed.max_z >= margin * worst * (1 - 1e-9)
    assert relaxed.max_z <= margin * worst * (1 + 1e-3), "rounded to four significant digits"


@given(
    limit=st.floats(min_value=1.0, max_value=1e6),
    factor=st.floats(min_value=1.0 + 1e-9, max_value=1e3),
    as_text=st.booleans(),
    margin=MARGINS,
)
def test_a_relaxed_stuck_duration_covers_the_longest_flat_run(
    limit: float, factor: float, as_text: bool, margin: float
) -> None:
    check = Stuck(column="v", max_duration=duration_text(limit) if as_text else limit)
    longest = check.threshold() * factor

    relaxed = check.relaxed([longest], margin)

    assert isinstance(relaxed, Stuck)
    assert isinstance(relaxed.max_duration, str) == as_text, "the check keeps its own form"
    seconds = parse_duration(relaxed.max_duration, "max_duration", "test")
    assert seconds >= longest
    assert seconds >= margin * longest * (1 - 1e-9)
    assert seconds >= check.threshold()


@given(
    limit=st.floats(min_value=0.0, max_value=0.99),
    worst=st.floats(min_value=0.0, max_value=1.0),
    margin=MARGINS,
)
def test_a_relaxed_share_tolerates_the_worst_share_and_stays_a_share(
    limit: float, worst: float, margin: float
) -> None:
    check = DuplicateTimestamps(max_share=limit)

    relaxed = check.relaxed([worst], margin)

    if worst <= limit:
        assert relaxed is None
        return
    assert isinstance(relaxed, DuplicateTimestamps)
    assert worst <= relaxed.max_share <= 1.0
    assert relaxed.max_share >= min(1.0, margin * worst * (1 - 1e-9))


@given(seconds=st.floats(min_value=0.0, max_value=1e8))
def test_a_duration_text_is_rounded_up_by_at_most_one_small_unit(seconds: float) -> None:
    text = duration_text(seconds)

    back = parse_duration(text, "max_duration", "test")

    unit = 0.001 if seconds < 1 else 1.0 if seconds < 3600 else 60.0 if seconds < 86400 else 3600.0
    assert seconds <= back <= seconds + unit * (1 + 1e-9)
