"""The profile of one column: counts, moments, sketches and histogram, by kind."""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
import numpy.typing as npt
import polars as pl

from mlwarden.exceptions import MergeError, ParameterError, check_int
from mlwarden.profiling._hashing import hash_strings
from mlwarden.profiling.histogram import (
    AlignedHistogram,
    FixedHistogram,
    Histogram,
    histogram_from_dict,
)
from mlwarden.profiling.hll import HyperLogLog
from mlwarden.profiling.items import FrequentItems
from mlwarden.profiling.kll import KLLSketch
from mlwarden.profiling.moments import Moments
from mlwarden.schema import Kind, Role, string_kind

F64 = npt.NDArray[np.float64]
_MICROS = 1e6


@dataclass(frozen=True, slots=True)
class ProfileConfig:
    """Sizes of the sketches in a profile (profiles merge only with equal configs).

    Parameters:
        k: KLL quantile-sketch size (rank error about ``2.66 / k``).
        hll_p: HyperLogLog precision (``2**p`` registers, distinct-count error ``1.04/2**(p/2)``).
        max_items: distinct values counted exactly before frequent items become approximate.
        max_bins: most bins of the automatic (power-of-two aligned) histograms.
    """

    k: int = 512
    hll_p: int = 12
    max_items: int = 1024
    max_bins: int = 64

    def __post_init__(self) -> None:
        checks = {
            "k": (8, 65536),
            "hll_p": (4, 18),
            "max_items": (1, 1 << 20),
            "max_bins": (8, 1 << 16),
        }
        for name, (lo, hi) in checks.items():
            check_int(getattr(self, name), name, "a profile", lo, hi)

    def to_dict(self) -> dict[str, int]:
        """Plain form."""
        return {
            "k": self.k,
            "hll_p": self.hll_p,
            "max_items": self.max_items,
            "max_bins": self.max_bins,
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> ProfileConfig:
        """Inverse of :meth:`to_dict`."""
        return cls(int(d["k"]), int(d["hll_p"]), int(d["max_items"]), int(d["max_bins"]))


@dataclass(frozen=True, slots=True)
class GapSummary:
    """Distribution of the gaps (seconds) between consecutive distinct-time rows of a datetime.

    Gaps are taken between the sorted timestamps. Two summaries over disjoint time ranges (the
    usual case: consecutive windows) merge exactly, by adding the one gap that joins them; over
    overlapping ranges the merge keeps both sides' gaps and ``exact`` becomes False.
    """

    moments: Moments
    quantiles: KLLSketch
    zero_gaps: int
    first: float
    last: float
    exact: bool = True

    @classmethod
    def of(cls, sorted_seconds: F64, k: int) -> GapSummary | None:
        """Gaps of sorted epoch seconds; None without values."""
        if sorted_seconds.size == 0:
            return None
        gaps = np.diff(sorted_seconds)
        sketch = KLLSketch(k)
        sorted_gaps = np.sort(gaps)
        sketch.update(sorted_gaps, is_sorted=True)
        return cls(
            Moments.of(sorted_gaps),
            sketch,
            int(np.count_nonzero(gaps == 0)),
            float(sorted_seconds[0]),
            float(sorted_seconds[-1]),
        )

    def merge(self, other: GapSummary | None) -> GapSummary:
        """Combine the gaps of two sets of timestamps."""
        if other is None:
            return self
        a, b = (
            (self, other) if (self.first, self.last) <= (other.first, other.last) else (other, self)
        )
        moments = a.moments.merge(b.moments)
        quantiles = a.quantiles.merge(b.quantiles)
        zero_gaps = a.zero_gaps + b.zero_gaps
        exact = a.exact and b.exact and a.last <= b.first
        if a.last <= b.first:
            joint = np.array([b.first - a.last])
            moments = moments.merge(Moments.of(joint))
            bridge = KLLSketch(quantiles.k)
            bridge.update(joint, is_sorted=True)
            quantiles = quantiles.merge(bridge)
            zero_gaps += int(joint[0] == 0)
        return GapSummary(
            moments, quantiles, zero_gaps, min(a.first, b.first), max(a.last, b.last), exact
        )

    def to_dict(self) -> dict[str, Any]:
        """Serializable form."""
        return {
            "moments": self.moments.to_dict(),
            "quantiles": self.quantiles.to_dict(),
            "zero_gaps": self.zero_gaps,
            "first": self.first,
            "last": self.last,
            "exact": self.exact,
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> GapSummary:
        """Inverse of :meth:`to_dict`."""
        return cls(
            Moments.from_dict(d["moments"]),
            KLLSketch.from_dict(d["quantiles"]),
            int(d["zero_gaps"]),
            float(d["first"]),
            float(d["last"]),
            bool(d["exact"]),
        )


@dataclass(frozen=True, slots=True, eq=False)
class ColumnProfile:
    """Mergeable summary of one column.

    Which parts are present depends on the kind: ``moments``, ``quantiles`` and ``histogram`` for
    numeric and datetime columns (datetimes in epoch seconds), ``lengths`` (in characters) for
    categorical and text columns, ``gaps`` for datetime columns, ``items`` for every kind but
    datetime. ``distinct`` is exact while the frequent items are, else a HyperLogLog estimate.
    """

    name: str
    kind: Kind
    role: Role
    dtype: str
    n: int
    null_count: int
    distinct_sketch: HyperLogLog
    nan_count: int = 0
    inf_count: int = 0
    moments: Moments | None = None
    quantiles: KLLSketch | None = None
    histogram: Histogram | None = None
    items: FrequentItems | None = None
    lengths: Moments | None = None
    gaps: GapSummary | None = None
    time_zone: str | None = None
    kind_fixed: bool = field(default=False)

    @property
    def count(self) -> int:
        """Number of present values: rows minus nulls and NaNs."""
        return self.n - self.null_count - self.nan_count

    @property
    def distinct(self) -> int:
        """Number of distinct present values (exact while :attr:`distinct_is_exact`)."""
        if self.distinct_is_exact and self.items is not None:
            return len(self.items)
        return round(self.distinct_sketch.estimate())

    @property
    def distinct_is_exact(self) -> bool:
        """True when the distinct count is an exact count rather than an estimate."""
        return self.items is not None and self.items.is_exact

    def merge(self, other: ColumnProfile) -> ColumnProfile:
        """The profile of the column over both inputs."""
        if other.name != self.name:
            raise MergeError(f"Cannot merge column '{self.name}' with column '{other.name}'.")
        a, b = self, other
        # An all-null side has no values to disagree with: it adopts the other side's kind.
        if a.kind != b.kind and a.count == 0 and not a.kind_fixed:
            a = a.empty_as(b)
        elif a.kind != b.kind and b.count == 0 and not b.kind_fixed:
            b = b.empty_as(a)
        text_kinds = {Kind.CATEGORICAL, Kind.TEXT}
        if a.kind != b.kind and not {a.kind, b.kind} <= text_kinds:
            raise MergeError(
                f"Cannot merge column '{a.name}': it is {a.kind} in one profile and {b.kind} in "
                "the other. Give the column's kind explicitly (kinds={...}).",
                column=a.name,
            )
        merged = ColumnProfile(
            name=a.name,
            kind=a.kind,
            role=a.role,
            dtype=max((a.count, a.dtype), (b.count, b.dtype))[1],
            n=a.n + b.n,
            null_count=a.null_count + b.null_count,
            distinct_sketch=a.distinct_sketch.merge(b.distinct_sketch),
            nan_count=a.nan_count + b.nan_count,
            inf_count=a.inf_count + b.inf_count,
            moments=_merge_opt(a.moments, b.moments),
            quantiles=_merge_opt(a.quantiles, b.quantiles),
            histogram=_merge_hist(a, b),
            items=_merge_opt(a.items, b.items),
            lengths=_merge_opt(a.lengths, b.lengths),
            gaps=_merge_opt(a.gaps, b.gaps),
            time_zone=a.time_zone or b.time_zone,
            kind_fixed=a.kind_fixed or b.kind_fixed,
        )
        if merged.kind in text_kinds and not merged.kind_fixed:
            mean_length = merged.lengths.mean if merged.lengths else 0.0
            merged = replace(merged, kind=string_kind(merged.distinct, merged.count, mean_length))
        return merged

    def empty_as(self, other: ColumnProfile) -> ColumnProfile:
        """This (all-null) column's counts with the kind and empty parts of ``other``."""
        return replace(
            other,
            dtype=other.dtype,
            n=self.n,
            null_count=self.null_count,
            nan_count=0,
            inf_count=0,
            distinct_sketch=HyperLogLog(self.distinct_sketch.p),
            moments=Moments() if other.moments is not None else None,
            quantiles=KLLSketch(other.quantiles.k) if other.quantiles is not None else None,
            histogram=None,
            items=(
                FrequentItems.empty(other.items.capacity, other.items.values.dtype)
                if other.items is not None
                else None
            ),
            lengths=Moments() if other.lengths is not None else None,
            gaps=None,
        )

    def quantile_values(self, qs: list[float]) -> list[float] | None:
        """Values at the given ranks (epoch seconds for datetimes), None without a sketch."""
        if self.quantiles is None or self.quantiles.is_empty:
            return None
        return [float(v) for v in self.quantiles.quantiles(qs)]

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, ColumnProfile):
            return NotImplemented
        return all(getattr(self, f) == getattr(other, f) for f in _FIELDS)

    __hash__ = None  # type: ignore[assignment]

    def to_dict(self) -> dict[str, Any]:
        """Serializable form (sketches included; bytes where compact)."""
        return {
            "name": self.name,
            "kind": self.kind.value,
            "role": self.role.value,
            "dtype": self.dtype,
            "n": self.n,
            "null_count": self.null_count,
            "nan_count": self.nan_count,
            "inf_count": self.inf_count,
            "distinct_sketch": self.distinct_sketch.to_dict(),
            "moments": self.moments.to_dict() if self.moments is not None else None,
            "quantiles": self.quantiles.to_dict() if self.quantiles is not None else None,
            "histogram": self.histogram.to_dict() if self.histogram is not None else None,
            "items": self.items.to_dict() if self.items is not None else None,
            "items_dtype": _items_dtype_name(self.items),
            "lengths": self.lengths.to_dict() if self.lengths is not None else None,
            "gaps": self.gaps.to_dict() if self.gaps is not None else None,
            "time_zone": self.time_zone,
            "kind_fixed": self.kind_fixed,
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> ColumnProfile:
        """Inverse of :meth:`to_dict`."""
        items = None
        if d["items"] is not None:
            items = FrequentItems.from_dict(d["items"], _ITEM_DTYPES[d["items_dtype"]])
        return cls(
            name=d["name"],
            kind=Kind(d["kind"]),
            role=Role(d["role"]),
            dtype=d["dtype"],
            n=int(d["n"]),
            null_count=int(d["null_count"]),
            nan_count=int(d["nan_count"]),
            inf_count=int(d["inf_count"]),
            distinct_sketch=HyperLogLog.from_dict(d["distinct_sketch"]),
            moments=Moments.from_dict(d["moments"]) if d["moments"] is not None else None,
            quantiles=KLLSketch.from_dict(d["quantiles"]) if d["quantiles"] is not None else None,
            histogram=histogram_from_dict(d["histogram"]) if d["histogram"] is not None else None,
            items=items,
            lengths=Moments.from_dict(d["lengths"]) if d["lengths"] is not None else None,
            gaps=GapSummary.from_dict(d["gaps"]) if d["gaps"] is not None else None,
            time_zone=d["time_zone"],
            kind_fixed=bool(d["kind_fixed"]),
        )


_FIELDS = list(ColumnProfile.__dataclass_fields__)
_ITEM_DTYPES: dict[str, pl.DataType] = {
    "float64": pl.Float64(),
    "string": pl.String(),
    "boolean": pl.Boolean(),
}


def _items_dtype_name(items: FrequentItems | None) -> str | None:
    if items is None:
        return None
    for name, dtype in _ITEM_DTYPES.items():
        if items.values.dtype == dtype:
            return name
    raise ParameterError(f"Unsupported frequent-item dtype {items.values.dtype}.")


def _merge_opt(a: Any, b: Any) -> Any:
    if a is None:
        return b
    if b is None:
        return a
    return a.merge(b)


def _merge_hist(a: ColumnProfile, b: ColumnProfile) -> Histogram | None:
    ha, hb = a.histogram, b.histogram
    if ha is None:
        return hb
    if hb is None:
        return ha
    if type(ha) is not type(hb):
        raise MergeError(
            f"Cannot merge column '{a.name}': one profile has fixed histogram bins, the other "
            "automatic ones. Profile both with the same bins.",
            column=a.name,
        )
    try:
        return ha.merge(hb)  # type: ignore[arg-type]
    except MergeError as exc:
        raise MergeError(f"Column '{a.name}': {exc}", column=a.name) from exc


# -- building a column profile from one batch -------------------------------------------------


def profile_series(
    series: pl.Series,
    kind: Kind | None,
    role: Role,
    config: ProfileConfig,
    *,
    edges: F64 | None = None,
    kind_fixed: bool = False,
) -> ColumnProfile:
    """Profile one column of one batch. ``kind=None`` lets strings choose categorical or text."""
    dtype = series.dtype
    base: dict[str, Any] = {
        "name": series.name,
        "role": role,
        "dtype": str(dtype),
        "n": len(series),
        "null_count": series.null_count(),
        "distinct_sketch": HyperLogLog(config.hll_p),
        "kind_fixed": kind_fixed,
    }
    if kind is Kind.DATETIME:
        return _datetime(series, base, config)
    if kind is Kind.BOOLEAN:
        return _boolean(series, base, config)
    if kind is Kind.NUMERIC:
        return _numeric(series, base, config, edges)
    return _strings(series, kind, base, config)


def _numeric(
    series: pl.Series, base: dict[str, Any], config: ProfileConfig, edges: F64 | None
) -> ColumnProfile:
    if isinstance(series.dtype, pl.Duration):
        series = series.dt.total_microseconds() / _MICROS
    values = series.drop_nulls().cast(pl.Float64).to_numpy()
    finite = np.isfinite(values)
    nan_count = inf_count = 0
    n_finite = int(np.count_nonzero(finite))
    if n_finite < values.size:
        nan_count = int(np.count_nonzero(np.isnan(values)))
        inf_count = int(values.size - n_finite - nan_count)
        values = values[finite]
    ordered = np.sort(values)
    uniques, counts = _runs(ordered)
    hll: HyperLogLog = base["distinct_sketch"]
    hll.update_numbers(uniques)
    sketch = KLLSketch(config.k)
    sketch.update(ordered, is_sorted=True)
    histogram: Histogram | None
    if edges is not None:
        histogram = FixedHistogram.of(ordered, edges)
    else:
        histogram = AlignedHistogram.of(ordered, config.max_bins)
    return ColumnProfile(
        kind=Kind.NUMERIC,
        nan_count=nan_count,
        inf_count=inf_count,
        moments=Moments.of(ordered),
        quantiles=sketch,
        histogram=histogram,
        items=FrequentItems.from_counts(uniques, counts, config.max_items),
        **base,
    )


def _boolean(series: pl.Series, base: dict[str, Any], config: ProfileConfig) -> ColumnProfile:
    values = series.drop_nulls()
    true = int(values.sum())
    count = len(values)
    uniques = np.array([v for v, c in ((0.0, count - true), (1.0, true)) if c], dtype=np.float64)
    base["distinct_sketch"].update_numbers(uniques)
    mean = true / count if count else 0.0
    moments = Moments(
        count,
        mean,
        count * mean * (1.0 - mean),
        float(uniques.min()) if count else math.inf,
        float(uniques.max()) if count else -math.inf,
    )
    return ColumnProfile(
        kind=Kind.BOOLEAN,
        moments=moments,
        items=FrequentItems.from_values(values, config.max_items),
        **base,
    )


def _strings(
    series: pl.Series, kind: Kind | None, base: dict[str, Any], config: ProfileConfig
) -> ColumnProfile:
    values = series.drop_nulls()
    # Count on the compact physical codes of categoricals; only the distinct values become text.
    vc = values.rename("value").value_counts(name="count")
    uniques = vc["value"].cast(pl.String)
    counts = vc["count"].to_numpy().astype(np.int64)
    base["distinct_sketch"].update(hash_strings(uniques.to_arrow()))
    lengths = Moments.of(uniques.str.len_chars().to_numpy().astype(np.float64), weights=counts)
    if kind is None:
        kind = string_kind(len(uniques), len(values), lengths.mean)
    return ColumnProfile(
        kind=kind,
        items=FrequentItems.from_counts(uniques, counts, config.max_items),
        lengths=lengths,
        **base,
    )


def _datetime(series: pl.Series, base: dict[str, Any], config: ProfileConfig) -> ColumnProfile:
    time_zone = None
    if isinstance(series.dtype, pl.Datetime):
        time_zone = series.dtype.time_zone
        series = series.dt.cast_time_unit("us")
    else:
        series = series.cast(pl.Datetime("us"))
    micros = series.drop_nulls().to_physical().to_numpy()
    ordered = np.sort(micros).astype(np.float64) / _MICROS
    uniques, _ = _runs(ordered)
    base["distinct_sketch"].update_numbers(uniques)
    sketch = KLLSketch(config.k)
    sketch.update(ordered, is_sorted=True)
    return ColumnProfile(
        kind=Kind.DATETIME,
        moments=Moments.of(ordered),
        quantiles=sketch,
        histogram=AlignedHistogram.of(ordered, config.max_bins),
        gaps=GapSummary.of(ordered, config.k),
        time_zone=time_zone,
        **base,
    )


def _runs(ordered: F64) -> tuple[F64, npt.NDArray[np.int64]]:
    """Distinct values of a sorted array and how often each occurs."""
    if ordered.size == 0:
        return ordered, np.empty(0, dtype=np.int64)
    changes = ordered[1:] != ordered[:-1]
    if np.all(changes):  # every value distinct, as in most sensor signals
        return ordered, np.ones(ordered.size, dtype=np.int64)
    starts = np.flatnonzero(np.concatenate([[True], changes]))
    counts = np.diff(np.append(starts, ordered.size)).astype(np.int64)
    return ordered[starts], counts
