"""Count, mean, variance, minimum and maximum, merged exactly with the parallel-moments formula."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt


@dataclass(frozen=True, slots=True)
class Moments:
    """Mergeable first and second moments of a set of finite numbers.

    ``m2`` is the sum of squared deviations from the mean; two summaries are combined with the
    parallel formula of Chan, Golub and LeVeque, so that merging the moments of two batches gives
    the moments of their union up to floating-point rounding.

    Example:
        >>> import numpy as np
        >>> a = Moments.of(np.array([1.0, 2.0, 3.0]))
        >>> b = Moments.of(np.array([10.0, 20.0]))
        >>> m = a.merge(b)
        >>> m.count, m.mean, m.min, m.max
        (5, 7.2, 1.0, 20.0)
        >>> round(m.std, 6) == round(float(np.std([1, 2, 3, 10, 20], ddof=1)), 6)
        True
    """

    count: int = 0
    mean: float = 0.0
    m2: float = 0.0
    min: float = math.inf
    max: float = -math.inf

    @classmethod
    def of(
        cls, values: npt.NDArray[np.float64], weights: npt.NDArray[np.int64] | None = None
    ) -> Moments:
        """Moments of ``values`` (all finite), each optionally repeated ``weights`` times."""
        if values.size == 0:
            return cls()
        if weights is None:
            count = int(values.size)
            mean = float(np.mean(values))
            deviations = values - mean
            m2 = float(np.dot(deviations, deviations))
        else:
            count = int(weights.sum())
            if count == 0:
                return cls()
            mean = float(np.dot(values, weights) / count)
            m2 = float(np.dot(np.square(values - mean), weights))
        return cls(count, mean, m2, float(np.min(values)), float(np.max(values)))

    def merge(self, other: Moments) -> Moments:
        """The moments of the union of the two underlying sets."""
        if other.count == 0:
            return self
        if self.count == 0:
            return other
        n = self.count + other.count
        # Weighting by the larger side first keeps the result independent of argument order.
        a, b = (
            (self, other) if (self.count, self.mean) >= (other.count, other.mean) else (other, self)
        )
        delta = b.mean - a.mean
        mean = a.mean + delta * (b.count / n)
        m2 = a.m2 + b.m2 + delta * delta * (a.count * b.count / n)
        return Moments(n, mean, m2, min(self.min, other.min), max(self.max, other.max))

    @property
    def variance(self) -> float:
        """Sample variance (``ddof=1``); NaN with fewer than two values."""
        return self.m2 / (self.count - 1) if self.count > 1 else math.nan

    @property
    def std(self) -> float:
        """Sample standard deviation (``ddof=1``); NaN with fewer than two values."""
        return math.sqrt(self.variance) if self.count > 1 else math.nan

    def to_dict(self) -> dict[str, Any]:
        """Plain-number form, stable across versions of the serialization format."""
        return {
            "count": self.count,
            "mean": self.mean,
            "m2": self.m2,
            "min": self.min,
            "max": self.max,
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Moments:
        """Inverse of :meth:`to_dict`."""
        return cls(
            int(d["count"]), float(d["mean"]), float(d["m2"]), float(d["min"]), float(d["max"])
        )
