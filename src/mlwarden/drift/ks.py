"""Kolmogorov-Smirnov test: the largest gap between two cumulative distributions."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
from scipy import stats

from mlwarden.alerting.null import NullModel
from mlwarden.drift.base import DriftOutcome, DriftTest
from mlwarden.schema import Kind

if TYPE_CHECKING:
    from mlwarden.profiling import ColumnProfile


class KolmogorovSmirnov(DriftTest, key="ks"):
    """Two-sample Kolmogorov-Smirnov test on numeric columns, from quantile sketches.

    The statistic D is the largest absolute difference between the two empirical CDFs, read at
    every value either sketch retains; it is exact while both sketches are exact and otherwise
    within the sum of their rank errors. The p-value is the asymptotic one for D at the effective
    sample size ``n·m/(n+m)``. The effect size is D itself.

    Example:
        >>> import numpy as np, polars as pl
        >>> from mlwarden.profiling import profile
        >>> rng = np.random.default_rng(0)
        >>> ref = profile(pl.DataFrame({"t": rng.normal(0, 1, 5000)}))["t"]
        >>> cur = profile(pl.DataFrame({"t": rng.normal(0.5, 1, 5000)}))["t"]
        >>> out = KolmogorovSmirnov().compute(ref, cur)
        >>> bool(0.15 < out.effect_size < 0.25), out.p_value < 1e-6
        (True, True)
    """

    kinds = frozenset({Kind.NUMERIC})
    has_p_value = True
    default_threshold = 0.1

    def compute(self, reference: ColumnProfile, current: ColumnProfile) -> DriftOutcome:
        rq, cq = reference.quantiles, current.quantiles
        assert rq is not None
        assert cq is not None
        points = np.unique(np.concatenate([np.concatenate(rq.levels), np.concatenate(cq.levels)]))
        d = float(np.max(np.abs(rq.cdf(points) - cq.cdf(points)))) if points.size else 0.0
        n_eff = rq.n * cq.n / (rq.n + cq.n)
        p = float(stats.kstwobign.sf(d * np.sqrt(n_eff))) if n_eff > 0 else 1.0
        approximate = not (rq.is_exact and cq.is_exact)
        note = (
            f"from sketches, D within ±{rq.rank_error + cq.rank_error:.2%}" if approximate else ""
        )
        return DriftOutcome(d, d, p, approximate, note)

    def null_model(self, reference: ColumnProfile, current: ColumnProfile) -> NullModel | None:
        """Kolmogorov's distribution at the effective size ``n·m/(n+m)``."""
        n, m = current.count, reference.count
        if n <= 0 or m <= 0:
            return None
        return NullModel("ks", n=n * m / (n + m))
