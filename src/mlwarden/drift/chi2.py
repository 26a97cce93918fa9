"""Chi-squared test of homogeneity for categorical columns."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import numpy as np
from scipy import stats

from mlwarden.drift._distributions import binned
from mlwarden.drift.base import DriftOutcome, DriftTest
from mlwarden.schema import Kind

if TYPE_CHECKING:
    from mlwarden.profiling import ColumnProfile


class ChiSquared(DriftTest, key="chi2"):
    """Chi-squared test on the category counts of both sides (a 2 x k contingency table).

    Categories absent from both sides are dropped; the effect size is Cramér's V,
    ``sqrt(chi2 / n)``, in [0, 1].

    Example:
        >>> import polars as pl
        >>> from mlwarden.profiling import profile
        >>> ref = profile(pl.DataFrame({"r": ["PP"] * 600 + ["PE"] * 400}))["r"]
        >>> cur = profile(pl.DataFrame({"r": ["PP"] * 300 + ["PE"] * 700}))["r"]
        >>> out = ChiSquared().compute(ref, cur)
        >>> round(out.effect_size, 3), out.p_value < 1e-10
        (0.302, True)
    """

    kinds = frozenset({Kind.CATEGORICAL, Kind.BOOLEAN})
    has_p_value = True
    default_threshold = 0.1
    scaling = "sqrt"

    def compute(self, reference: ColumnProfile, current: ColumnProfile) -> DriftOutcome:
        b = binned(reference, current)
        table = np.vstack([b.reference, b.current])
        table = table[:, table.sum(axis=0) > 0]
        n = float(table.sum())
        if table.shape[1] < 2 or table[0].sum() == 0 or table[1].sum() == 0:
            return DriftOutcome(0.0, 0.0, 1.0, b.approximate, "fewer than two categories")
        result = stats.chi2_contingency(table, correction=False)
        chi2, p = float(result.statistic), float(result.pvalue)
        return DriftOutcome(chi2, math.sqrt(chi2 / n), p, b.approximate, b.note)
