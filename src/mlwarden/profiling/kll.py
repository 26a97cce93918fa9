"""KLL quantile sketch, vectorized for batches.

The sketch of Karnin, Lang and Liberty (2016) keeps a stack of *compactors*: level ``h`` holds
items that each stand for ``2**h`` input values. When a level is over its capacity it is sorted
and every other item (from a random offset) moves up a level. Capacities shrink geometrically
(factor 2/3) from the top level's ``k`` down, so the sketch holds about ``3k`` items however many
values it has seen.

This implementation takes whole sorted batches: a batch enters level 0 and is halved level by
level in vectorized slices, so the cost of a batch is one sort plus linear work. Offsets come from
a deterministic pseudo-random function of the sketch's state, so profiling the same data twice
gives the same sketch and ``a.merge(b) == b.merge(a)``.

Error: with ``n <= k`` items the sketch is exact. Beyond, the normalized rank error of a quantile
or CDF query is below :func:`rank_error_bound` ``(k)`` with 99 % confidence (measured by
``bench/kll_error.py``; 0.52 % for the default ``k = 512``).
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt

from mlwarden.exceptions import MergeError, ParameterError, check_int
from mlwarden.profiling._hashing import mix64

if TYPE_CHECKING:
    from collections.abc import Sequence

F64 = npt.NDArray[np.float64]

_SHRINK = 2.0 / 3.0
_MIN_CAPACITY = 2
# Fitted constant of the rank-error bound: error(k) <= _ERROR_CONSTANT / k at 99 % confidence.
_ERROR_CONSTANT = 2.66


def rank_error_bound(k: int) -> float:
    """Normalized rank error (fraction of n) not exceeded with 99 % confidence, for parameter k."""
    return _ERROR_CONSTANT / k


class KLLSketch:
    """Mergeable quantile sketch with a bounded rank error.

    Parameters:
        k: size of the top compactor (8 <= k <= 65536); larger k, smaller error and sketch.

    Example:
        >>> import numpy as np
        >>> values = np.random.default_rng(7).normal(size=100_000)
        >>> sketch = KLLSketch(k=512)
        >>> sketch.update(values)
        >>> true_rank = float(np.mean(values <= sketch.quantile(0.5)))
        >>> abs(true_rank - 0.5) <= rank_error_bound(512)
        True
    """

    __slots__ = ("k", "levels", "max", "min", "n")

    def __init__(self, k: int = 512) -> None:
        self.k = check_int(k, "k", "KLLSketch", 8, 65536)
        self.n = 0
        self.min = math.inf
        self.max = -math.inf
        self.levels: list[F64] = [np.empty(0)]

    # -- building ---------------------------------------------------------------------------

    def update(self, values: F64, *, is_sorted: bool = False) -> None:
        """Add finite values (NaN and infinities must be removed by the caller)."""
        if values.size == 0:
            return
        batch = np.asarray(values, dtype=np.float64)
        if not is_sorted:
            batch = np.sort(batch)
        self.n += int(batch.size)
        self.min = min(self.min, float(batch[0]))
        self.max = max(self.max, float(batch[-1]))
        self.levels[0] = _merge_sorted(self.levels[0], batch)
        self._compress()

    def merge(self, other: KLLSketch) -> KLLSketch:
        """A sketch of the union of both inputs (with ``k`` the smaller of the two)."""
        if not isinstance(other, KLLSketch):
            raise MergeError(f"Cannot merge a KLLSketch with {type(other).__name__}.")
        out = KLLSketch(min(self.k, other.k))
        out.n = self.n + other.n
        out.min = min(self.min, other.min)
        out.max = max(self.max, other.max)
        depth = max(len(self.levels), len(other.levels))
        out.levels = [
            _merge_sorted(_level(self.levels, h), _level(other.levels, h)) for h in range(depth)
        ]
        out._compress()
        return out

    def _capacity(self, h: int) -> int:
        depth = len(self.levels)
        return max(_MIN_CAPACITY, math.ceil(self.k * _SHRINK ** (depth - 1 - h)))

    def _compress(self) -> None:
        while True:
            sizes = [lvl.size for lvl in self.levels]
            if sum(sizes) <= sum(self._capacity(h) for h in range(len(sizes))):
                # Levels may be strided views into a large input batch: copy them out so that
                # the sketch does not keep the batch alive.
                self.levels = [np.ascontiguousarray(lvl) for lvl in self.levels]
                return
            h = next(h for h, size in enumerate(sizes) if size > self._capacity(h))
            self._compact(h)

    def _compact(self, h: int) -> None:
        items = self.levels[h]
        if h + 1 == len(self.levels):
            self.levels.append(np.empty(0))
        # An odd item stays behind; the rest pair up and one of each pair moves up.
        keep = items.size % 2
        pairs = items[: items.size - keep]
        offset = int(self._coin(h, items.size))
        self.levels[h] = items[items.size - keep :].copy()
        self.levels[h + 1] = _merge_sorted(self.levels[h + 1], pairs[offset::2])

    def _coin(self, h: int, size: int) -> int:
        seed = np.array([(self.n * 0x9E3779B1 + h * 0x85EBCA77 + size) % (1 << 64)], np.uint64)
        return int(mix64(seed)[0] >> np.uint64(63))

    # -- queries ------------------------------------------------------------------------------

    @property
    def is_empty(self) -> bool:
        """True when no value was added."""
        return self.n == 0

    @property
    def is_exact(self) -> bool:
        """True while no compaction happened (every value is retained with weight one)."""
        return len(self.levels) == 1

    @property
    def rank_error(self) -> float:
        """Normalized rank error bound of queries on this sketch (0 while exact)."""
        return 0.0 if self.is_exact else rank_error_bound(self.k)

    def _weighted(self) -> tuple[F64, npt.NDArray[np.int64]]:
        items = np.concatenate(self.levels)
        weights = np.concatenate(
            [np.full(lvl.size, 1 << h, dtype=np.int64) for h, lvl in enumerate(self.levels)]
        )
        order = np.argsort(items, kind="stable")
        return items[order], np.cumsum(weights[order])

    def quantiles(self, qs: Sequence[float] | F64) -> F64:
        """Values at the given ranks in [0, 1]: the smallest retained value whose rank >= q."""
        q = np.asarray(qs, dtype=np.float64)
        if np.any((q < 0) | (q > 1)) or np.any(np.isnan(q)):
            raise ParameterError(f"Quantile ranks must lie in [0, 1]; got {q.tolist()}.")
        if self.n == 0:
            return np.full(q.shape, np.nan)
        items, cum = self._weighted()
        idx = np.searchsorted(cum, q * cum[-1], side="left")
        out = items[np.minimum(idx, items.size - 1)]
        out = np.where(q <= 0, self.min, np.where(q >= 1, self.max, out))
        return np.asarray(out, dtype=np.float64)

    def quantile(self, q: float) -> float:
        """Value at rank ``q`` (see :meth:`quantiles`)."""
        return float(self.quantiles([q])[0])

    def cdf(self, values: Sequence[float] | F64) -> F64:
        """Estimated share of values <= each given value."""
        x = np.asarray(values, dtype=np.float64)
        if self.n == 0:
            return np.full(x.shape, np.nan)
        items, cum = self._weighted()
        idx = np.searchsorted(items, x, side="right")
        below = np.where(idx > 0, cum[np.maximum(idx - 1, 0)], 0)
        return np.asarray(below / cum[-1], dtype=np.float64)

    def num_retained(self) -> int:
        """Number of items the sketch keeps."""
        return sum(lvl.size for lvl in self.levels)

    # -- identity and serialization ----------------------------------------------------------

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, KLLSketch):
            return False
        return (
            (self.k, self.n, len(self.levels)) == (other.k, other.n, len(other.levels))
            and _same_float(self.min, other.min)
            and _same_float(self.max, other.max)
            and all(np.array_equal(a, b) for a, b in zip(self.levels, other.levels, strict=True))
        )

    __hash__ = None  # type: ignore[assignment]

    def to_dict(self) -> dict[str, Any]:
        """Serializable form; items as little-endian float64 bytes, level sizes alongside."""
        return {
            "k": self.k,
            "n": self.n,
            "min": self.min,
            "max": self.max,
            "sizes": [int(lvl.size) for lvl in self.levels],
            "items": np.concatenate(self.levels).astype("<f8").tobytes(),
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> KLLSketch:
        """Inverse of :meth:`to_dict`."""
        out = cls(int(d["k"]))
        out.n = int(d["n"])
        out.min = float(d["min"])
        out.max = float(d["max"])
        items = np.frombuffer(d["items"], dtype="<f8").astype(np.float64)
        sizes = [int(s) for s in d["sizes"]]
        if sum(sizes) != items.size or not sizes:
            raise ParameterError("Corrupt KLL sketch: level sizes do not match the item count.")
        out.levels = [np.array(part) for part in np.split(items, np.cumsum(sizes)[:-1])]
        return out

    def __repr__(self) -> str:
        return f"KLLSketch(k={self.k}, n={self.n}, retained={self.num_retained()})"


def _level(levels: list[F64], h: int) -> F64:
    return levels[h] if h < len(levels) else np.empty(0)


def _merge_sorted(a: F64, b: F64) -> F64:
    if a.size == 0:
        return b
    if b.size == 0:
        return a
    both = np.concatenate([a, b])
    # Two sorted runs: the stable sort (timsort for floats) merges them in linear time.
    both.sort(kind="stable")
    return both


def _same_float(a: float, b: float) -> bool:
    return a == b or (math.isnan(a) and math.isnan(b))
