"""Profiles of tables: merge laws, serialization round trips, kinds and user-facing errors."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta

import numpy as np
import pandas as pd
import polars as pl
import pytest
from hypothesis import given
from hypothesis import strategies as st

import mlwarden
from mlwarden.exceptions import FormatError, InputError, MergeError, ParameterError, SchemaError
from mlwarden.profiling import ColumnProfile, Profile, ProfileConfig, profile, rank_error_bound
from mlwarden.schema import Kind, Role

T0 = datetime(2026, 1, 1, tzinfo=UTC)

# Small sketches so that short hypothesis frames already exercise compaction and truncation.
SMALL = ProfileConfig(k=16, hll_p=6, max_items=4, max_bins=8)


@st.composite
def frames(draw: st.DrawFn, min_rows: int = 0) -> pl.DataFrame:
    n = draw(st.integers(min_rows, 80))
    floats = st.one_of(
        st.none(),
        st.floats(-1e6, 1e6),
        st.sampled_from([math.nan, math.inf, -math.inf, 0.0, -0.0, 3.25]),
    )
    temp = draw(st.lists(floats, min_size=n, max_size=n))
    count = draw(st.lists(st.one_of(st.none(), st.integers(-5, 5)), min_size=n, max_size=n))
    recipe = draw(
        st.lists(st.one_of(st.none(), st.sampled_from(list("ABCDEFG"))), min_size=n, max_size=n)
    )
    ok = draw(st.lists(st.one_of(st.none(), st.booleans()), min_size=n, max_size=n))
    steps = draw(st.lists(st.integers(0, 30), min_size=n, max_size=n))
    times = [T0 + timedelta(seconds=int(s)) for s in np.cumsum(steps)] if n else []
    return pl.DataFrame(
        {
            "timestamp": pl.Series(times, dtype=pl.Datetime("us", "UTC")),
            "temp": pl.Series(temp, dtype=pl.Float64),
            "count": pl.Series(count, dtype=pl.Int64),
            "recipe": pl.Series(recipe, dtype=pl.String),
            "ok": pl.Series(ok, dtype=pl.Boolean),
        }
    )


def prof(frame: pl.DataFrame, config: ProfileConfig = SMALL) -> Profile:
    return profile(
        frame,
        config=config,
        kinds={"recipe": "categorical", "temp": "numeric", "count": "numeric"},
    )


def assert_close(a: Profile, b: Profile, *, exact_kll: bool) -> None:
    """Equal where the merge is exact, within the stated bounds where it is approximate."""
    assert a.n_rows == b.n_rows
    assert list(a.columns) == list(b.columns)
    for name in a.columns:
        x, y = a[name], b[name]
        assert (x.kind, x.n, x.null_count, x.nan_count, x.inf_count) == (
            y.kind,
            y.n,
            y.null_count,
            y.nan_count,
            y.inf_count,
        ), name
        assert x.distinct_sketch == y.distinct_sketch, name
        assert x.histogram == y.histogram, name
        if x.moments is not None and y.moments is not None:
            assert (x.moments.count, x.moments.min, x.moments.max) == (
                y.moments.count,
                y.moments.min,
                y.moments.max,
            )
            scale = max(1.0, abs(x.moments.min), abs(x.moments.max))
            assert x.moments.mean == pytest.approx(y.moments.mean, rel=1e-9, abs=1e-9 * scale)
            assert x.moments.m2 == pytest.approx(y.moments.m2, rel=1e-6, abs=1e-6 * scale**2)
        if x.items is not None and y.items is not None and x.items.is_exact:
            assert x.items == y.items, name
        if x.quantiles is not None and y.quantiles is not None:
            assert x.quantiles.n == y.quantiles.n
            if exact_kll and x.quantiles.is_exact and y.quantiles.is_exact:
                assert x.quantiles == y.quantiles
        # Gaps merge exactly over disjoint time ranges only (documented on GapSummary).
        if x.gaps is not None and y.gaps is not None and x.gaps.exact and y.gaps.exact:
            assert x.gaps.zero_gaps == y.gaps.zero_gaps
            assert x.gaps.moments.count == y.gaps.moments.count
            assert x.gaps.moments.max == y.gaps.moments.max


@given(frames(), st.integers(0, 80))
def test_profile_of_union_equals_merge_of_profiles(frame: pl.DataFrame, cut: int) -> None:
    a, b = frame.head(cut), frame.slice(cut)
    merged = prof(a).merge(prof(b))
    whole = prof(frame)
    assert_close(merged, whole, exact_kll=True)
    # Consecutive windows cover disjoint time ranges, so the gaps merge exactly.
    ts_merged, ts_whole = merged["timestamp"], whole["timestamp"]
    if ts_whole.gaps is not None:
        assert ts_merged.gaps is not None
        assert ts_merged.gaps.exact
        assert ts_merged.gaps.moments.mean == pytest.approx(ts_whole.gaps.moments.mean)


@given(frames(), frames(), frames())
def test_merge_is_commutative_and_associative(
    a: pl.DataFrame, b: pl.DataFrame, c: pl.DataFrame
) -> None:
    pa_, pb, pc = prof(a), prof(b), prof(c)
    assert pa_.merge(pb) == pb.merge(pa_)
    assert_close(pa_.merge(pb).merge(pc), pa_.merge(pb.merge(pc)), exact_kll=False)


@given(frames())
def test_json_and_binary_round_trips_are_lossless(frame: pl.DataFrame) -> None:
    p = prof(frame)
    assert Profile.from_json(p.to_json()) == p
    assert Profile.from_bytes(p.to_bytes()) == p
    assert len(p.to_bytes()) < len(p.to_json())


def test_quantiles_within_the_stated_rank_error_on_large_data() -> None:
    rng = np.random.default_rng(11)
    x = rng.lognormal(size=300_000)
    frame = pl.DataFrame({"flow": x})
    merged = profile(frame.head(100_000)).merge(profile(frame.slice(100_000)))
    truth = np.sort(x)
    qs = np.array([0.01, 0.1, 0.25, 0.5, 0.75, 0.9, 0.99])
    est = np.asarray(merged["flow"].quantile_values(list(qs)))
    ranks = np.searchsorted(truth, est, side="right") / truth.size
    assert np.max(np.abs(ranks - qs)) <= rank_error_bound(512)


def test_counts_nulls_nans_and_infinities_separately() -> None:
    frame = pl.DataFrame({"temp": [1.0, None, math.nan, math.inf, -math.inf, 3.0]})
    c = profile(frame)["temp"]
    assert (c.n, c.null_count, c.nan_count, c.inf_count, c.count) == (6, 1, 1, 2, 4)
    assert c.moments is not None
    assert (c.moments.count, c.moments.min, c.moments.max) == (2, 1.0, 3.0)


def test_all_null_and_empty_columns_are_profiled_not_rejected() -> None:
    frame = pl.DataFrame({"dead_sensor": pl.Series([None] * 5, dtype=pl.Float64), "x": range(5)})
    p = profile(frame)
    assert p["dead_sensor"].null_count == 5
    assert p["dead_sensor"].count == 0
    summary = p.summary()["columns"]["dead_sensor"]
    assert summary["mean"] is None
    assert summary["quantiles"] is None
    empty = profile(pl.DataFrame({"a": pl.Series([], dtype=pl.Float64)}))
    assert empty.n_rows == 0
    assert empty["a"].count == 0
    # An all-null window merges with a later one that has values, whatever its type.
    nulls = profile(pl.DataFrame({"c": pl.Series([None, None], dtype=pl.Null)}))
    words = profile(pl.DataFrame({"c": ["x", "y"]}))
    assert nulls.merge(words)["c"].kind is Kind.CATEGORICAL
    assert nulls.merge(words)["c"].null_count == 2


def test_kinds_roles_and_summary_document() -> None:
    n = 2_000
    rng = np.random.default_rng(0)
    frame = pl.DataFrame(
        {
            "timestamp": pl.datetime_range(
                T0, T0 + timedelta(seconds=10 * (n - 1)), "10s", eager=True
            ),
            "request_id": [f"r{i}" for i in range(n)],
            "recipe": rng.choice(["PP", "PE", "PA"], n),
            "pressure": rng.normal(150, 20, n),
            "alarm": rng.random(n) < 0.1,
            "y": rng.integers(0, 2, n),
            "defect_score": rng.random(n),
        }
    )
    p = mlwarden.profile(frame)
    assert {c.name: c.kind for c in p} == {
        "timestamp": Kind.DATETIME,
        "request_id": Kind.TEXT,
        "recipe": Kind.CATEGORICAL,
        "pressure": Kind.NUMERIC,
        "alarm": Kind.BOOLEAN,
        "y": Kind.NUMERIC,
        "defect_score": Kind.NUMERIC,
    }
    roles = {c.name: c.role for c in p}
    assert roles["timestamp"] is Role.TIMESTAMP
    assert roles["request_id"] is Role.ID
    assert roles["y"] is Role.TARGET
    assert roles["defect_score"] is Role.SCORE
    assert roles["pressure"] is Role.FEATURE
    doc = p.summary()
    assert doc["n_rows"] == n
    pressure = doc["columns"]["pressure"]
    assert set(pressure) >= {"kind", "count", "null_count", "mean", "std", "min", "max"}
    assert set(pressure["quantiles"]) >= {"0.01", "0.5", "0.99"}
    assert pressure["mean"] == pytest.approx(float(frame["pressure"].mean()))
    assert pressure["distinct"] == pytest.approx(n, rel=0.05)
    assert doc["columns"]["recipe"]["top"][0][0] in {"PP", "PE", "PA"}
    assert doc["columns"]["recipe"]["distinct"] == 3
    ts = doc["columns"]["timestamp"]
    assert ts["min"] == "2026-01-01T00:00:00+00:00"
    assert ts["gaps_seconds"]["median"] == 10.0
    overridden = mlwarden.profile(frame, roles={"y": "feature"}, kinds={"y": "categorical"})
    assert (overridden["y"].role, overridden["y"].kind) == (Role.FEATURE, Kind.CATEGORICAL)


def test_pandas_arrow_and_polars_inputs_give_the_same_profile() -> None:
    frame = pl.DataFrame({"speed": [1.5, 2.5, None], "line": ["L1", "L2", "L1"]})
    from_polars = profile(frame)
    assert profile(frame.to_arrow()) == from_polars
    assert profile(pd.DataFrame({"speed": [1.5, 2.5, None], "line": ["L1", "L2", "L1"]})) == (
        from_polars
    )


def test_windows_binned_on_reference_edges() -> None:
    rng = np.random.default_rng(1)
    reference = profile(pl.DataFrame({"temp": rng.normal(200, 10, 5000)}))
    edges = reference.bin_edges()["temp"]
    window = profile(pl.DataFrame({"temp": rng.normal(230, 10, 500)}), bins=reference)
    hist = window["temp"].histogram
    assert hist is not None
    assert hist.edges.tolist() == edges
    assert hist.total == 500
    later = profile(pl.DataFrame({"temp": rng.normal(230, 10, 500)}), bins=reference)
    assert window.merge(later)["temp"].histogram.total == 1000  # type: ignore[union-attr]
    with pytest.raises(MergeError, match="'temp'"):
        window.merge(profile(pl.DataFrame({"temp": [1.0]})))


def test_streaming_a_file_equals_profiling_it_in_memory(tmp_path: object) -> None:
    import pathlib

    path = pathlib.Path(str(tmp_path)) / "line.parquet"
    rng = np.random.default_rng(2)
    frame = pl.DataFrame({"temp": rng.normal(size=5000), "recipe": rng.choice(["a", "b"], 5000)})
    frame.write_parquet(path, row_group_size=700)
    streamed = profile(path, batch_rows=1000)
    whole = profile(frame)
    assert_close(streamed, whole, exact_kll=False)
    assert streamed["recipe"].items == whole["recipe"].items


def test_user_errors_name_the_column_and_the_expectation() -> None:
    frame = pl.DataFrame({"temp": [1.0], "code": ["x1"]})
    with pytest.raises(InputError, match=r"No column 'tmp'.*Did you mean 'temp'"):
        profile(frame, roles={"tmp": "target"})
    with pytest.raises(InputError, match=r"'code'.*cannot be read as numeric"):
        profile(frame, kinds={"code": "numeric"})
    with pytest.raises(SchemaError, match=r"'targt' is not a role.*Did you mean 'target'"):
        profile(frame, roles={"temp": "targt"})
    with pytest.raises(ParameterError, match="'k' parameter of a profile"):
        ProfileConfig(k=1)
    with pytest.raises(MergeError, match="different columns"):
        profile(frame).merge(profile(pl.DataFrame({"temp": [2.0]})))
    with pytest.raises(MergeError, match="sketch sizes"):
        profile(frame).merge(profile(frame, config=SMALL))
    with pytest.raises(ParameterError, match="bins apply to numeric columns"):
        profile(frame, bins={"code": [0.0, 1.0]})


def test_corrupt_or_future_serialized_profiles_are_refused() -> None:
    p = profile(pl.DataFrame({"a": [1.0]}))
    with pytest.raises(FormatError, match="format version 99"):
        Profile.from_dict({**p.to_dict(), "format_version": 99})
    with pytest.raises(FormatError, match="wrong header"):
        Profile.from_bytes(b"garbage")
    with pytest.raises(FormatError, match="JSON"):
        Profile.from_json("{not json")


def test_column_profile_pickles_and_compares() -> None:
    import pickle

    c = profile(pl.DataFrame({"a": [1.0, 2.0], "b": ["x", None]}))
    assert pickle.loads(pickle.dumps(c)) == c
    assert isinstance(c["a"], ColumnProfile)


def test_progress_bar_on_a_streamed_file(
    tmp_path: object, capsys: pytest.CaptureFixture[str]
) -> None:
    import pathlib

    path = pathlib.Path(str(tmp_path)) / "line.csv"
    pl.DataFrame({"temp": np.arange(3000, dtype=np.float64)}).write_csv(path)
    shown = profile(path, progress=True, batch_rows=500)
    assert shown == profile(path, progress=False, batch_rows=500)
    assert "Profiling line.csv" in capsys.readouterr().err
