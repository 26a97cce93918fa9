"""Hellinger distance between binned distributions."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import numpy as np

from mlwarden.drift._distributions import binned
from mlwarden.drift.base import DriftOutcome, DriftTest
from mlwarden.schema import Kind

if TYPE_CHECKING:
    from mlwarden.profiling import ColumnProfile


class Hellinger(DriftTest, key="hellinger"):
    """Hellinger distance ``sqrt(1 - sum(sqrt(p * q)))`` in [0, 1] on binned shares.

    Example:
        >>> import polars as pl
        >>> from mlwarden.profiling import profile
        >>> ref = profile(pl.DataFrame({"s": ["A"] * 80 + ["B"] * 20}))["s"]
        >>> cur = profile(pl.DataFrame({"s": ["A"] * 20 + ["B"] * 80}))["s"]
        >>> round(Hellinger().compute(ref, cur).effect_size, 3)
        0.447
    """

    kinds = frozenset({Kind.NUMERIC, Kind.CATEGORICAL, Kind.BOOLEAN})
    default_threshold = 0.1

    def compute(self, reference: ColumnProfile, current: ColumnProfile) -> DriftOutcome:
        b = binned(reference, current)
        if b.reference.sum() == 0 or b.current.sum() == 0:
            return DriftOutcome(0.0, 0.0, None, b.approximate, "one side has no values")
        bc = float(np.sum(np.sqrt(b.p * b.q)))
        h = math.sqrt(max(0.0, 1.0 - bc))
        return DriftOutcome(h, h, None, b.approximate, b.note)
