"""Frequent items with counts: exact up to a capacity, then a Misra-Gries summary.

While a column has at most ``capacity`` distinct values the counts are exact. Beyond, the summary
keeps at most ``capacity`` counters and follows the mergeable Misra-Gries algorithm (Agarwal et al.,
2012, "Mergeable summaries"): counters of the union are added, then the ``capacity + 1``-th largest
count is subtracted from all and non-positive counters are dropped. Every reported count
undercounts the truth by at most :attr:`FrequentItems.error_bound` ``= (total - sum(counts)) /
(capacity + 1)``, and every value more frequent than that bound is reported.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt
import polars as pl

from mlwarden.exceptions import MergeError, check_int


class FrequentItems:
    """Mergeable heavy-hitter summary of one column.

    Parameters:
        capacity: the most counters kept (and the number of distinct values counted exactly).
        values: the tracked values (a Polars Series without nulls).
        counts: their counts, same length.
        total: the number of values summarized (tracked or not).

    Example:
        >>> import polars as pl
        >>> a = FrequentItems.from_values(pl.Series(["ok", "ok", "jam", "ok"]), capacity=8)
        >>> b = FrequentItems.from_values(pl.Series(["jam", "idle"]), capacity=8)
        >>> a.merge(b).top(2)
        [('ok', 3), ('jam', 2)]
        >>> a.merge(b).is_exact
        True
    """

    __slots__ = ("capacity", "counts", "total", "values")

    def __init__(
        self, capacity: int, values: pl.Series, counts: npt.NDArray[np.int64], total: int
    ) -> None:
        self.capacity = check_int(capacity, "capacity", "FrequentItems", 1)
        self.values = values
        self.counts = counts
        self.total = total

    @classmethod
    def empty(cls, capacity: int, dtype: pl.DataType) -> FrequentItems:
        """A summary of nothing, for a column of the given dtype."""
        return cls(capacity, pl.Series("value", [], dtype=dtype), np.empty(0, np.int64), 0)

    @classmethod
    def from_values(cls, values: pl.Series, capacity: int = 1024) -> FrequentItems:
        """Count the non-null values of a Series."""
        vc = values.drop_nulls().rename("value").value_counts(name="count")
        return cls.from_counts(vc["value"], vc["count"].to_numpy().astype(np.int64), capacity)

    @classmethod
    def from_counts(
        cls,
        values: pl.Series | npt.NDArray[Any],
        counts: npt.NDArray[np.int64],
        capacity: int = 1024,
    ) -> FrequentItems:
        """Build from distinct values and their exact counts (vectorized Misra-Gries reduction)."""
        counts = counts.astype(np.int64, copy=False)
        total = int(counts.sum())
        if counts.size > capacity:
            # Subtract the (capacity+1)-th largest count before sorting: for a continuous signal
            # (every value distinct) this drops everything in one linear pass.
            cut = np.partition(counts, counts.size - capacity - 1)[counts.size - capacity - 1]
            keep = counts > cut
            values = values[keep] if isinstance(values, np.ndarray) else values.filter(keep)
            counts = counts[keep] - cut
        series = values if isinstance(values, pl.Series) else pl.Series("value", values)
        return _reduce(capacity, series.rename("value"), counts, total)

    @property
    def is_exact(self) -> bool:
        """True when every count is exact (no value was ever dropped)."""
        return int(self.counts.sum()) == self.total

    @property
    def error_bound(self) -> float:
        """Largest possible undercount of any value's count (0 when exact)."""
        return (self.total - int(self.counts.sum())) / (self.capacity + 1)

    def __len__(self) -> int:
        return len(self.values)

    def top(self, n: int = 10) -> list[tuple[Any, int]]:
        """The ``n`` most frequent values with their counts, most frequent first."""
        return list(zip(self.values[:n].to_list(), self.counts[:n].tolist(), strict=True))

    def merge(self, other: FrequentItems) -> FrequentItems:
        """The summary of the union (exact if both are exact and the union fits the capacity)."""
        capacity = min(self.capacity, other.capacity)
        if len(other) == 0 and other.total == 0:
            return _reduce(capacity, self.values, self.counts, self.total)
        if len(self) == 0 and self.total == 0:
            return _reduce(capacity, other.values, other.counts, other.total)
        try:
            values = pl.concat([self.values, other.values.cast(self.values.dtype)])
        except (pl.exceptions.PolarsError, TypeError) as exc:
            raise MergeError(
                "Cannot merge frequent items of types "
                f"{self.values.dtype} and {other.values.dtype}."
            ) from exc
        frame = pl.DataFrame(
            {"value": values, "count": np.concatenate([self.counts, other.counts])}
        )
        summed = frame.group_by("value").agg(pl.col("count").sum())
        return _reduce(
            capacity,
            summed["value"],
            summed["count"].to_numpy().astype(np.int64),
            self.total + other.total,
        )

    def __eq__(self, other: object) -> bool:
        return (
            isinstance(other, FrequentItems)
            and (self.capacity, self.total) == (other.capacity, other.total)
            and self.values.to_list() == other.values.to_list()
            and bool(np.array_equal(self.counts, other.counts))
        )

    __hash__ = None  # type: ignore[assignment]

    def to_dict(self) -> dict[str, Any]:
        """Serializable form (values as a plain list)."""
        return {
            "capacity": self.capacity,
            "total": self.total,
            "values": self.values.to_list(),
            "counts": self.counts.tolist(),
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any], dtype: pl.DataType) -> FrequentItems:
        """Inverse of :meth:`to_dict`; ``dtype`` is the dtype of the values."""
        return cls(
            int(d["capacity"]),
            pl.Series("value", d["values"], dtype=dtype),
            np.asarray(d["counts"], dtype=np.int64),
            int(d["total"]),
        )


def _reduce(
    capacity: int, values: pl.Series, counts: npt.NDArray[np.int64], total: int
) -> FrequentItems:
    """Keep at most ``capacity`` counters, most frequent first, ties broken by value."""
    if counts.size == 0 or not np.any(counts > 0):
        # Nothing to keep (a continuous signal, or an empty batch): skip building a frame.
        return FrequentItems(capacity, values.clear(), np.empty(0, dtype=np.int64), total)
    frame = pl.DataFrame({"value": values, "count": counts}).filter(pl.col("count") > 0)
    frame = frame.sort(["count", "value"], descending=[True, False], nulls_last=True)
    if frame.height > capacity:
        cut = int(frame["count"][capacity])
        frame = frame.head(capacity).with_columns(pl.col("count") - cut)
        frame = frame.filter(pl.col("count") > 0)
    return FrequentItems(
        capacity, frame["value"], frame["count"].to_numpy().astype(np.int64), total
    )
