"""Stable 64-bit hashes of column values, vectorized.

Sketches are stored and merged across months and library upgrades, so their hashes must never
change: they depend only on the values' bytes, never on a library's internal hash function.
Numbers are hashed by their float64 value (an integer 3 and a float 3.0 are the same value),
strings by their UTF-8 bytes.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
import pyarrow as pa

U64 = npt.NDArray[np.uint64]

_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_MIX1 = np.uint64(0xBF58476D1CE4E5B9)
_MIX2 = np.uint64(0x94D049BB133111EB)
# Multiplier of the polynomial string hash; odd, so that powers never collapse to zero.
_POLY = np.uint64(0x100000001B3)
_MAX_POSITION = 1 << 16


def mix64(x: U64) -> U64:
    """The SplitMix64 finalizer: a bijection of uint64 that spreads every input bit."""
    z = x + _GOLDEN
    tmp = np.empty_like(z)
    for shift, mult in ((30, _MIX1), (27, _MIX2)):
        np.right_shift(z, np.uint64(shift), out=tmp)
        np.bitwise_xor(z, tmp, out=z)
        np.multiply(z, mult, out=z)
    np.right_shift(z, np.uint64(31), out=tmp)
    np.bitwise_xor(z, tmp, out=z)
    return z


def hash_numbers(values: npt.NDArray[np.float64]) -> U64:
    """Hash finite or infinite float64 values; ``-0.0`` and ``0.0`` hash alike."""
    canonical = np.ascontiguousarray(values, dtype=np.float64) + 0.0
    return mix64(canonical.view(np.uint64))


def hash_strings(values: pa.Array | pa.ChunkedArray) -> U64:
    """Hash each string of an Arrow string array by its UTF-8 bytes (nulls must be removed)."""
    if isinstance(values, pa.ChunkedArray):
        values = values.combine_chunks()
    arr = values.cast(pa.large_string())
    n = len(arr)
    if n == 0:
        return np.empty(0, dtype=np.uint64)
    offsets_buf, data_buf = arr.buffers()[1], arr.buffers()[2]
    offsets = np.frombuffer(offsets_buf, dtype=np.int64, count=n + 1, offset=arr.offset * 8)
    start, stop = int(offsets[0]), int(offsets[-1])
    lengths = np.diff(offsets)
    out = lengths.astype(np.uint64) * _POLY
    if stop > start and data_buf is not None:
        data = np.frombuffer(data_buf, dtype=np.uint8, count=stop - start, offset=start)
        rel = offsets - start
        # Position of every byte inside its own string, then a per-position odd multiplier.
        owner = np.repeat(np.arange(n), lengths)
        position = np.arange(stop - start, dtype=np.int64) - rel[:-1][owner]
        weights = _position_weights()[position % _MAX_POSITION]
        with np.errstate(over="ignore"):
            contrib = (data.astype(np.uint64) + np.uint64(1)) * weights
        nonempty = lengths > 0
        sums = np.add.reduceat(contrib, rel[:-1][nonempty]) if nonempty.any() else contrib[:0]
        with np.errstate(over="ignore"):
            out[nonempty] += sums
    return mix64(out)


_WEIGHTS: U64 | None = None


def _position_weights() -> U64:
    global _WEIGHTS
    if _WEIGHTS is None:
        # Deterministic odd multipliers, one per byte position (fixed forever: part of the format).
        _WEIGHTS = mix64(np.arange(1, _MAX_POSITION + 1, dtype=np.uint64)) | np.uint64(1)
    return _WEIGHTS
