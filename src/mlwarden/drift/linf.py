"""L-infinity distance: the largest change in any category's share."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from mlwarden.drift._distributions import binned
from mlwarden.drift.base import DriftOutcome, DriftTest
from mlwarden.schema import Kind

if TYPE_CHECKING:
    from mlwarden.profiling import ColumnProfile


class LInfinity(DriftTest, key="linf"):
    """The largest absolute difference between the two sides' shares of any category.

    Easy to read: 0.12 means some category's share moved by 12 percentage points; the note names
    the category.

    Example:
        >>> import polars as pl
        >>> from mlwarden.profiling import profile
        >>> ref = profile(pl.DataFrame({"shift": ["A"] * 40 + ["B"] * 40 + ["C"] * 20}))["shift"]
        >>> cur = profile(pl.DataFrame({"shift": ["A"] * 70 + ["B"] * 20 + ["C"] * 10}))["shift"]
        >>> out = LInfinity().compute(ref, cur)
        >>> round(out.effect_size, 2), out.note
        (0.3, "largest change: 'A'")
    """

    kinds = frozenset({Kind.CATEGORICAL, Kind.BOOLEAN})
    default_threshold = 0.1

    def compute(self, reference: ColumnProfile, current: ColumnProfile) -> DriftOutcome:
        b = binned(reference, current)
        if b.reference.sum() == 0 or b.current.sum() == 0:
            return DriftOutcome(0.0, 0.0, None, b.approximate, "one side has no values")
        diff = np.abs(b.p - b.q)
        i = int(np.argmax(diff))
        return DriftOutcome(
            float(diff[i]), float(diff[i]), None, b.approximate, f"largest change: '{b.labels[i]}'"
        )
