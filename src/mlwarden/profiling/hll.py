"""HyperLogLog distinct-count sketch with Ertl's improved estimator.

Registers merge by element-wise maximum, so merging is exact: the sketch of a union equals the
merge of the sketches. The relative standard error is ``1.04 / sqrt(2**p)`` (1.6 % for the default
``p = 12``, 4 KiB per column); the estimator of Ertl (2017, "New cardinality estimation algorithms
for HyperLogLog sketches") is unbiased from one distinct value up, without range switches.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import numpy.typing as npt

from mlwarden.exceptions import MergeError, ParameterError, check_int
from mlwarden.profiling._hashing import hash_numbers

_HASH_BITS = 64
_CHUNK = 1 << 16
# _LIMITS[r]: the largest shifted hash whose rank exceeds r (rank = leading zeros + 1).
_LIMITS = np.array(
    [(1 << 64) - 1] + [(1 << (64 - r)) - 1 if r < 64 else 0 for r in range(1, 256)], dtype=np.uint64
)


class HyperLogLog:
    """Distinct-count sketch over 64-bit hashes (see :mod:`mlwarden.profiling._hashing`).

    Parameters:
        p: precision; the sketch keeps ``2**p`` one-byte registers (4 <= p <= 18).

    Example:
        >>> import numpy as np
        >>> h = HyperLogLog(p=12)
        >>> h.update_numbers(np.arange(100_000, dtype=np.float64))
        >>> abs(h.estimate() - 100_000) / 100_000 < 3 * h.relative_error
        True
    """

    __slots__ = ("p", "registers")

    def __init__(self, p: int = 12, registers: npt.NDArray[np.uint8] | None = None) -> None:
        self.p = check_int(p, "p", "HyperLogLog", 4, 18)
        m = 1 << p
        if registers is None:
            registers = np.zeros(m, dtype=np.uint8)
        elif registers.shape != (m,):
            raise ParameterError(f"HyperLogLog(p={p}) needs {m} registers; got {registers.shape}.")
        self.registers = registers

    @property
    def relative_error(self) -> float:
        """Relative standard error of :meth:`estimate`."""
        return 1.04 / math.sqrt(1 << self.p)

    def update(self, hashes: npt.NDArray[np.uint64]) -> None:
        """Add items given by their 64-bit hashes."""
        for lo in range(0, hashes.size, _CHUNK):
            self._update_chunk(hashes[lo : lo + _CHUNK])

    def update_numbers(self, values: npt.NDArray[np.float64]) -> None:
        """Add float64 values (hashed with :func:`~mlwarden.profiling._hashing.hash_numbers`)."""
        # Hashing chunk by chunk keeps the working set in cache: about 3x faster on 10M values.
        for lo in range(0, values.size, _CHUNK):
            self._update_chunk(hash_numbers(values[lo : lo + _CHUNK]))

    def _update_chunk(self, hashes: npt.NDArray[np.uint64]) -> None:
        if hashes.size == 0:
            return
        q = _HASH_BITS - self.p
        index = (hashes >> np.uint64(q)).astype(np.intp)
        rest = hashes << np.uint64(self.p)  # the q low bits, moved to the top
        # Only items that would raise their register matter; once registers fill up, that is a
        # small share of a chunk, so the exact bit length is computed for few items.
        raises = rest <= _LIMITS[self.registers[index]]
        if not raises.all():
            index, rest = index[raises], rest[raises]
        rho = np.minimum(_HASH_BITS + 1 - _bit_length(rest), q + 1).astype(np.uint8)
        np.maximum.at(self.registers, index, rho)

    def merge(self, other: HyperLogLog) -> HyperLogLog:
        """The sketch of the union: the register-wise maximum."""
        if other.p != self.p:
            raise MergeError(
                f"Cannot merge HyperLogLog sketches of precision {self.p} and {other.p}; "
                "profile both with the same 'hll_p'."
            )
        return HyperLogLog(self.p, np.maximum(self.registers, other.registers))

    def estimate(self) -> float:
        """Estimated number of distinct items."""
        m = 1 << self.p
        q = _HASH_BITS - self.p
        c = np.bincount(self.registers, minlength=q + 2).astype(np.float64)
        if c[0] == m:
            return 0.0
        z = m * _tau(1.0 - c[q + 1] / m)
        for k in range(q, 0, -1):
            z = 0.5 * (z + c[k])
        z += m * _sigma(c[0] / m)
        return float(m * m / (2.0 * math.log(2.0)) / z)

    def __eq__(self, other: object) -> bool:
        return (
            isinstance(other, HyperLogLog)
            and other.p == self.p
            and bool(np.array_equal(other.registers, self.registers))
        )

    __hash__ = None  # type: ignore[assignment]

    def to_dict(self) -> dict[str, Any]:
        """Serializable form; registers as raw bytes."""
        return {"p": self.p, "registers": self.registers.tobytes()}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> HyperLogLog:
        """Inverse of :meth:`to_dict`."""
        return cls(int(d["p"]), np.frombuffer(d["registers"], dtype=np.uint8).copy())


def _bit_length(x: npt.NDArray[np.uint64]) -> npt.NDArray[np.int64]:
    """Number of significant bits of each uint64 (0 for 0), exact.

    The top 53 bits convert to float64 exactly; the float's exponent field is the bit length.
    """
    high = (x >> np.uint64(11)).astype(np.float64)
    exponent = (high.view(np.uint64) >> np.uint64(52)).astype(np.int64)
    out = np.where(exponent > 0, exponent - 1023 + 1 + 11, 0)
    zero_high = np.flatnonzero(exponent == 0)
    if zero_high.size:  # the top 53 bits are all zero: one chance in 2**53 per item
        low = (x[zero_high] & np.uint64(0x7FF)).astype(np.float64)
        e_low = (low.view(np.uint64) >> np.uint64(52)).astype(np.int64)
        out[zero_high] = np.where(e_low > 0, e_low - 1023 + 1, 0)
    return out


def _sigma(x: float) -> float:
    if x == 1.0:
        return math.inf
    y, z = 1.0, x
    while True:
        x *= x
        z_old = z
        z += x * y
        y += y
        if z == z_old:
            return z


def _tau(x: float) -> float:
    if x == 0.0 or x == 1.0:
        return 0.0
    y, z = 1.0, 1.0 - x
    while True:
        x = math.sqrt(x)
        z_old = z
        y *= 0.5
        z -= (1.0 - x) ** 2 * y
        if z == z_old:
            return z / 3.0
