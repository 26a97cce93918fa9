"""Property tests of the sketches: merges are exact where promised, within bounds elsewhere."""

from __future__ import annotations

import math
import pickle

import numpy as np
import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mlwarden.exceptions import MergeError, ParameterError
from mlwarden.profiling import (
    AlignedHistogram,
    FixedHistogram,
    FrequentItems,
    HyperLogLog,
    KLLSketch,
    Moments,
    rank_error_bound,
)
from mlwarden.profiling._hashing import hash_numbers, hash_strings

finite = st.floats(min_value=-1e12, max_value=1e12, allow_nan=False, allow_infinity=False)
wide = st.floats(allow_nan=False, allow_infinity=False)
batches = st.lists(finite, max_size=60)


def arr(xs: list[float]) -> np.ndarray:
    return np.asarray(xs, dtype=np.float64)


# -- moments ---------------------------------------------------------------------------------------


@given(batches, batches)
def test_moments_merge_equals_moments_of_union(a: list[float], b: list[float]) -> None:
    merged = Moments.of(arr(a)).merge(Moments.of(arr(b)))
    union = Moments.of(arr(a + b))
    assert merged.count == union.count == len(a) + len(b)
    assert merged.min == union.min
    assert merged.max == union.max
    scale = max([1.0, *(abs(x) for x in a + b)])
    assert merged.mean == pytest.approx(union.mean, rel=1e-9, abs=1e-9 * scale)
    assert merged.m2 == pytest.approx(union.m2, rel=1e-7, abs=1e-7 * scale * scale)


@given(batches, batches, batches)
def test_moments_merge_is_commutative_and_associative(
    a: list[float], b: list[float], c: list[float]
) -> None:
    ma, mb, mc = Moments.of(arr(a)), Moments.of(arr(b)), Moments.of(arr(c))
    assert ma.merge(mb) == mb.merge(ma)
    left, right = ma.merge(mb).merge(mc), ma.merge(mb.merge(mc))
    assert left.count == right.count
    assert left.min == right.min
    assert left.max == right.max
    scale = max([1.0, *(abs(x) for x in a + b + c)])
    assert left.mean == pytest.approx(right.mean, rel=1e-9, abs=1e-9 * scale)
    assert left.m2 == pytest.approx(right.m2, rel=1e-7, abs=1e-7 * scale * scale)


def test_moments_std_matches_numpy() -> None:
    x = np.random.default_rng(3).lognormal(size=1000)
    m = Moments.of(x)
    assert m.std == pytest.approx(float(np.std(x, ddof=1)))
    assert math.isnan(Moments.of(x[:1]).std)


# -- KLL -----------------------------------------------------------------------------------------


@given(st.lists(finite, min_size=1, max_size=300), st.sampled_from([0.0, 0.1, 0.5, 0.9, 1.0]))
def test_kll_is_exact_below_k(values: list[float], q: float) -> None:
    sketch = KLLSketch(k=512)
    sketch.update(arr(values))
    assert sketch.is_exact
    expected = np.quantile(arr(values), q, method="inverted_cdf")
    assert sketch.quantile(q) == expected


@settings(max_examples=30, deadline=None)
@given(st.integers(0, 2**32 - 1), st.integers(1, 12), st.sampled_from([32, 64, 200]))
def test_kll_merged_rank_error_within_bound(seed: int, parts: int, k: int) -> None:
    rng = np.random.default_rng(seed)
    chunks = [rng.standard_t(3, size=int(rng.integers(1, 3000))) for _ in range(parts)]
    sketches = []
    for chunk in chunks:
        s = KLLSketch(k)
        s.update(chunk)
        sketches.append(s)
    merged = sketches[0]
    for s in sketches[1:]:
        merged = merged.merge(s)
    whole = KLLSketch(k)
    whole.update(np.concatenate(chunks))
    truth = np.sort(np.concatenate(chunks))
    qs = np.linspace(0.01, 0.99, 99)
    for sketch in (merged, whole):
        assert sketch.n == truth.size
        est = sketch.quantiles(qs)
        lo = np.searchsorted(truth, est, side="left") / truth.size
        hi = np.searchsorted(truth, est, side="right") / truth.size
        # The returned value's true rank interval must come within the bound of q.
        err = np.maximum(0, np.maximum(lo - qs, qs - hi))
        assert err.max() <= rank_error_bound(k)


@given(batches, batches)
def test_kll_merge_is_commutative(a: list[float], b: list[float]) -> None:
    sa, sb = KLLSketch(16), KLLSketch(16)
    sa.update(arr(a))
    sb.update(arr(b))
    assert sa.merge(sb) == sb.merge(sa)


def test_kll_same_data_gives_same_sketch() -> None:
    x = np.random.default_rng(5).normal(size=100_000)
    a, b = KLLSketch(), KLLSketch()
    a.update(x)
    b.update(x)
    assert a == b
    assert a.num_retained() < 3 * 512


def test_kll_cdf_and_empty_sketch() -> None:
    s = KLLSketch()
    assert np.isnan(s.quantile(0.5))
    s.update(arr([1.0, 2.0, 3.0, 4.0]))
    assert s.cdf([0.0, 2.0, 4.0, 9.0]).tolist() == [0.0, 0.5, 1.0, 1.0]
    assert s.quantile(0.0) == 1.0
    assert s.quantile(1.0) == 4.0


def test_kll_rejects_bad_parameters() -> None:
    with pytest.raises(ParameterError, match="'k' parameter of KLLSketch"):
        KLLSketch(k=2)
    with pytest.raises(ParameterError, match=r"\[0, 1\]"):
        KLLSketch().quantiles([1.5])


def test_kll_does_not_keep_the_input_batch_alive() -> None:
    s = KLLSketch()
    s.update(np.random.default_rng(0).normal(size=200_000))
    assert all(level.base is None for level in s.levels)


# -- HyperLogLog ---------------------------------------------------------------------------------


@given(batches, batches, batches)
def test_hll_merge_is_exact_commutative_associative(
    a: list[float], b: list[float], c: list[float]
) -> None:
    def sketch(xs: list[float]) -> HyperLogLog:
        h = HyperLogLog(8)
        h.update_numbers(arr(xs))
        return h

    ha, hb, hc = sketch(a), sketch(b), sketch(c)
    assert ha.merge(hb) == hb.merge(ha) == sketch(a + b)
    assert ha.merge(hb).merge(hc) == ha.merge(hb.merge(hc))


@pytest.mark.parametrize("n", [1, 10, 1_000, 100_000, 1_000_000])
def test_hll_estimate_is_within_three_standard_errors(n: int) -> None:
    h = HyperLogLog(12)
    h.update_numbers(np.random.default_rng(n).normal(size=n))
    assert abs(h.estimate() - n) <= 3 * h.relative_error * n + 0.5


def test_hll_counts_strings_and_numbers_stably() -> None:
    import pyarrow as pa

    ids = pa.array([f"sensor-{i}" for i in range(20_000)] * 2)
    h = HyperLogLog(12)
    h.update(hash_strings(ids))
    assert abs(h.estimate() - 20_000) <= 3 * h.relative_error * 20_000
    # Hashes are part of the storage format: they must never change across versions.
    assert hash_numbers(arr([0.0, -0.0, 1.0]))[0] == hash_numbers(arr([-0.0]))[0]
    assert int(hash_numbers(arr([1.0]))[0]) == 0x88D7C35BBBF3EDED
    assert int(hash_strings(pa.array(["abc"]))[0]) == 0xF9E7D257B06605EA
    assert hash_strings(pa.array(["", "a", ""])).tolist()[0] == hash_strings(pa.array([""]))[0]


def test_hll_rejects_mismatched_precision() -> None:
    with pytest.raises(MergeError, match="precision 8 and 12"):
        HyperLogLog(8).merge(HyperLogLog(12))
    with pytest.raises(ParameterError):
        HyperLogLog(30)


# -- frequent items ------------------------------------------------------------------------------

words = st.lists(st.sampled_from([f"w{i}" for i in range(40)]), max_size=80)


@given(words, words, words)
def test_items_exact_below_capacity(a: list[str], b: list[str], c: list[str]) -> None:
    def items(xs: list[str]) -> FrequentItems:
        return FrequentItems.from_values(pl.Series(xs, dtype=pl.String), capacity=64)

    ia, ib, ic = items(a), items(b), items(c)
    assert ia.merge(ib) == ib.merge(ia) == items(a + b)
    assert ia.merge(ib).merge(ic) == ia.merge(ib.merge(ic)) == items(a + b + c)
    assert items(a + b).is_exact


@given(words, words)
def test_items_above_capacity_undercount_within_bound(a: list[str], b: list[str]) -> None:
    def items(xs: list[str]) -> FrequentItems:
        return FrequentItems.from_values(pl.Series(xs, dtype=pl.String), capacity=5)

    merged = items(a).merge(items(b))
    truth = pl.Series(a + b, dtype=pl.String).value_counts(name="n")
    true_counts = dict(zip(truth[""].to_list(), truth["n"].to_list(), strict=True))
    reported = dict(merged.top(100))
    assert merged.total == len(a) + len(b)
    assert len(merged) <= 5
    for value, true in true_counts.items():
        got = reported.get(value, 0)
        assert true - merged.error_bound <= got <= true
        if true > merged.error_bound:
            assert value in reported  # every heavy hitter is reported


def test_items_continuous_signal_has_no_heavy_hitters() -> None:
    x = np.random.default_rng(1).normal(size=50_000)
    items = FrequentItems.from_counts(pl.Series(x), np.ones(x.size, dtype=np.int64), capacity=16)
    assert len(items) == 0
    assert items.error_bound == pytest.approx(50_000 / 17)


# -- histograms ----------------------------------------------------------------------------------


@given(st.lists(wide, max_size=50), st.lists(wide, max_size=50), st.lists(wide, max_size=50))
def test_aligned_histogram_merge_equals_histogram_of_union(
    a: list[float], b: list[float], c: list[float]
) -> None:
    def hist(xs: list[float]) -> AlignedHistogram | None:
        return AlignedHistogram.of(np.sort(arr(xs)), max_bins=16)

    ha, hb, hc = hist(a), hist(b), hist(c)
    merged = ha.merge(hb) if ha is not None else hb
    assert merged == hist(a + b)
    if ha is not None and hb is not None and hc is not None:
        assert ha.merge(hb).merge(hc) == ha.merge(hb.merge(hc)) == hist(a + b + c)
        assert ha.merge(hb) == hb.merge(ha)
        union = ha.merge(hb).merge(hc)
        assert union.total == len(a) + len(b) + len(c)
        assert union.counts.size <= 16


def test_aligned_histogram_bins_cover_values() -> None:
    x = np.sort(np.random.default_rng(2).normal(20, 5, size=10_000))
    h = AlignedHistogram.of(x, max_bins=64)
    assert h is not None
    assert h.edges[0] <= x[0]
    assert x[-1] < h.edges[-1]
    assert h.total == x.size
    assert h.counts.size <= 64
    assert math.log2(h.width).is_integer()


def test_fixed_histogram_counts_and_merge_rules() -> None:
    edges = [0.0, 1.0, 2.0]
    a = FixedHistogram.of(arr([-1.0, 0.0, 0.5, 1.0, 2.0, 3.0]), edges)
    assert a.counts.tolist() == [2, 2]
    assert (a.underflow, a.overflow) == (1, 1)
    assert a.merge(a).counts.tolist() == [4, 4]
    with pytest.raises(MergeError, match="different bin edges"):
        a.merge(FixedHistogram.of(arr([1.0]), [0.0, 2.0]))
    with pytest.raises(ParameterError, match="strictly increasing"):
        FixedHistogram.check_edges([0.0, 0.0, 1.0], column="temp")


# -- every sketch pickles ------------------------------------------------------------------------


def test_sketches_pickle() -> None:
    k = KLLSketch()
    k.update(arr([1.0, 2.0]))
    h = HyperLogLog()
    h.update_numbers(arr([1.0]))
    for obj in (k, h, Moments.of(arr([1.0])), FrequentItems.from_values(pl.Series(["a"]))):
        assert pickle.loads(pickle.dumps(obj)) == obj
