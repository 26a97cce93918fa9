"""Histograms that merge exactly: dyadic bins aligned to powers of two, or fixed reference bins.

An :class:`AlignedHistogram` picks its bin width itself: the smallest power of two ``w`` for which
the values span at most ``max_bins`` bins aligned to multiples of ``w``. Bins of width ``2w`` are
unions of bins of width ``w``, so two histograms merge exactly by coarsening the finer one, and the
merge of the histograms of two batches *equals* the histogram of their union.

A :class:`FixedHistogram` counts on edges given by the user or learned from a reference, so that
every window of a model is binned alike (the basis of binned drift statistics).
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt

from mlwarden.exceptions import MergeError, ParameterError, check_int

if TYPE_CHECKING:
    from collections.abc import Sequence

F64 = npt.NDArray[np.float64]
I64 = npt.NDArray[np.int64]

# Bin indices must stay exactly representable (|x| / w < 2**53).
_MANTISSA_BITS = 53


class AlignedHistogram:
    """Counts on bins ``[j * 2**exponent, (j + 1) * 2**exponent)`` for ``j = start ...``.

    Example:
        >>> import numpy as np
        >>> a = AlignedHistogram.of(np.sort(np.array([0.1, 0.4, 0.45, 3.0])), max_bins=8)
        >>> a.width, a.counts.tolist()
        (0.5, [3, 0, 0, 0, 0, 0, 1])
        >>> b = AlignedHistogram.of(np.array([9.0]), max_bins=8)
        >>> a.merge(b).width, a.merge(b).counts.tolist()
        (2.0, [3, 1, 0, 0, 1])
    """

    __slots__ = ("counts", "exponent", "max_bins", "start")

    def __init__(self, max_bins: int, exponent: int, start: int, counts: I64) -> None:
        self.max_bins = check_int(max_bins, "max_bins", "AlignedHistogram", 8)
        self.exponent = exponent
        self.start = start
        self.counts = counts

    @classmethod
    def of(cls, sorted_values: F64, max_bins: int = 64) -> AlignedHistogram | None:
        """Histogram of sorted finite values; None when there are none."""
        if sorted_values.size == 0:
            return None
        lo, hi = float(sorted_values[0]), float(sorted_values[-1])
        exponent = _fit_exponent(lo, hi, max_bins, _floor_exponent(max(abs(lo), abs(hi))))
        width = math.ldexp(1.0, exponent)
        first, last = _index(lo, exponent), _index(hi, exponent)
        edges = (np.arange(first + 1, last + 1, dtype=np.float64)) * width
        cuts = np.searchsorted(sorted_values, edges, side="left")
        bounds = np.concatenate([[0], cuts, [sorted_values.size]])
        return cls(max_bins, exponent, first, np.diff(bounds).astype(np.int64))

    @property
    def width(self) -> float:
        """Width of every bin."""
        return math.ldexp(1.0, self.exponent)

    @property
    def edges(self) -> F64:
        """Bin edges, one more than there are bins."""
        idx = np.arange(self.start, self.start + self.counts.size + 1, dtype=np.float64)
        return np.asarray(idx * self.width, dtype=np.float64)

    @property
    def total(self) -> int:
        """Number of values counted."""
        return int(self.counts.sum())

    def _coarsen(self, exponent: int) -> tuple[int, I64]:
        idx = np.arange(self.start, self.start + self.counts.size, dtype=np.int64)
        # An arithmetic right shift is floor division by a power of two, also for negatives.
        idx = np.right_shift(idx, min(exponent - self.exponent, 63))
        first = int(idx[0])
        return first, np.bincount(idx - first, weights=self.counts).astype(np.int64)

    def merge(self, other: AlignedHistogram | None) -> AlignedHistogram:
        """The histogram of the union; equal to the histogram computed on the union."""
        if other is None:
            return self
        if other.max_bins != self.max_bins:
            raise MergeError(
                f"Cannot merge histograms of at most {self.max_bins} and {other.max_bins} bins."
            )
        exponent = max(self.exponent, other.exponent)
        while True:
            (s1, c1), (s2, c2) = self._coarsen(exponent), other._coarsen(exponent)
            first, last = min(s1, s2), max(s1 + c1.size, s2 + c2.size)
            if last - first <= self.max_bins:
                break
            exponent += 1
        counts = np.zeros(last - first, dtype=np.int64)
        counts[s1 - first : s1 - first + c1.size] += c1
        counts[s2 - first : s2 - first + c2.size] += c2
        return AlignedHistogram(self.max_bins, exponent, first, counts)

    def __eq__(self, other: object) -> bool:
        return (
            isinstance(other, AlignedHistogram)
            and (self.max_bins, self.exponent, self.start)
            == (other.max_bins, other.exponent, other.start)
            and bool(np.array_equal(self.counts, other.counts))
        )

    __hash__ = None  # type: ignore[assignment]

    def to_dict(self) -> dict[str, Any]:
        """Serializable form."""
        return {
            "type": "aligned",
            "max_bins": self.max_bins,
            "exponent": self.exponent,
            "start": self.start,
            "counts": self.counts.tolist(),
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> AlignedHistogram:
        """Inverse of :meth:`to_dict`."""
        return cls(
            int(d["max_bins"]),
            int(d["exponent"]),
            int(d["start"]),
            np.asarray(d["counts"], dtype=np.int64),
        )


class FixedHistogram:
    """Counts on fixed edges: bins ``[e_i, e_{i+1})``, the last one closed, plus values outside.

    Example:
        >>> import numpy as np
        >>> h = FixedHistogram.of(np.array([0.5, 1.0, 2.5, 9.0]), edges=[0.0, 1.0, 2.0, 3.0])
        >>> h.counts.tolist(), h.underflow, h.overflow
        ([1, 1, 1], 0, 1)
    """

    __slots__ = ("counts", "edges", "overflow", "underflow")

    def __init__(self, edges: F64, counts: I64, underflow: int = 0, overflow: int = 0) -> None:
        self.edges = edges
        self.counts = counts
        self.underflow = underflow
        self.overflow = overflow

    @staticmethod
    def check_edges(edges: Sequence[float] | F64, column: str | None = None) -> F64:
        """Validate bin edges: at least two, finite, strictly increasing."""
        arr = np.asarray(edges, dtype=np.float64)
        where = f" for column '{column}'" if column else ""
        if arr.ndim != 1 or arr.size < 2 or not np.all(np.isfinite(arr)):
            raise ParameterError(
                f"Histogram edges{where} must be at least two finite numbers; got {list(edges)}.",
                parameter="bins",
            )
        if np.any(np.diff(arr) <= 0):
            raise ParameterError(
                f"Histogram edges{where} must be strictly increasing; got {arr.tolist()}.",
                parameter="bins",
            )
        return arr

    @classmethod
    def of(cls, sorted_values: F64, edges: Sequence[float] | F64) -> FixedHistogram:
        """Histogram of sorted finite values on the given edges."""
        e = cls.check_edges(edges)
        cuts = np.searchsorted(sorted_values, e, side="left")
        counts = np.diff(cuts).astype(np.int64)
        # The last bin is closed on the right: values equal to the last edge belong to it.
        at_top = int(np.searchsorted(sorted_values, e[-1], side="right") - cuts[-1])
        counts[-1] += at_top
        underflow = int(cuts[0])
        overflow = int(sorted_values.size - cuts[-1] - at_top)
        return cls(e, counts, underflow, overflow)

    @property
    def total(self) -> int:
        """Number of values counted, including those outside the edges."""
        return int(self.counts.sum()) + self.underflow + self.overflow

    def merge(self, other: FixedHistogram | None) -> FixedHistogram:
        """Add the counts of a histogram on the same edges."""
        if other is None:
            return self
        if not np.array_equal(self.edges, other.edges):
            raise MergeError(
                "Cannot merge histograms on different bin edges; profile every window with the "
                "bins of the same reference."
            )
        return FixedHistogram(
            self.edges,
            self.counts + other.counts,
            self.underflow + other.underflow,
            self.overflow + other.overflow,
        )

    def __eq__(self, other: object) -> bool:
        return (
            isinstance(other, FixedHistogram)
            and np.array_equal(self.edges, other.edges)
            and np.array_equal(self.counts, other.counts)
            and (self.underflow, self.overflow) == (other.underflow, other.overflow)
        )

    __hash__ = None  # type: ignore[assignment]

    def to_dict(self) -> dict[str, Any]:
        """Serializable form."""
        return {
            "type": "fixed",
            "edges": self.edges.tolist(),
            "counts": self.counts.tolist(),
            "underflow": self.underflow,
            "overflow": self.overflow,
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> FixedHistogram:
        """Inverse of :meth:`to_dict`."""
        return cls(
            np.asarray(d["edges"], dtype=np.float64),
            np.asarray(d["counts"], dtype=np.int64),
            int(d["underflow"]),
            int(d["overflow"]),
        )


Histogram = AlignedHistogram | FixedHistogram


def histogram_from_dict(d: dict[str, Any]) -> Histogram:
    """Rebuild either kind of histogram from its serialized form."""
    if d.get("type") == "fixed":
        return FixedHistogram.from_dict(d)
    return AlignedHistogram.from_dict(d)


def _floor_exponent(magnitude: float) -> int:
    """Finest exponent whose bins index values up to ``magnitude`` exactly."""
    if magnitude == 0.0:
        return -1074
    return max(math.frexp(magnitude)[1] - _MANTISSA_BITS, -1074)


def _index(x: float, exponent: int) -> int:
    """Index of the aligned bin holding x; exact, also where x / width underflows to zero."""
    idx = math.floor(x / math.ldexp(1.0, exponent))
    return -1 if idx == 0 and x < 0 else idx


def _span(lo: float, hi: float, exponent: int) -> int:
    return _index(hi, exponent) - _index(lo, exponent) + 1


def _fit_exponent(lo: float, hi: float, max_bins: int, floor: int) -> int:
    """Smallest exponent >= floor for which [lo, hi] spans at most max_bins aligned bins."""
    if hi == lo:
        return floor
    guess = math.frexp((hi - lo) / max_bins)[1] - 1
    exponent = max(floor, guess - 1)
    while _span(lo, hi, exponent) > max_bins:
        exponent += 1
    # The guess can overshoot by one; step back while the finer width still fits.
    while exponent > floor and _span(lo, hi, exponent - 1) <= max_bins:
        exponent -= 1
    return exponent
