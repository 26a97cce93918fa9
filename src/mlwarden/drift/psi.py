"""Population stability index: a symmetric divergence on binned shares."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from mlwarden.drift._distributions import binned, smoothed
from mlwarden.drift.base import DriftOutcome, DriftTest
from mlwarden.schema import Kind

if TYPE_CHECKING:
    from mlwarden.profiling import ColumnProfile


class PopulationStabilityIndex(DriftTest, key="psi"):
    """PSI = sum over bins of (q - p) * ln(q / p), with empty bins lifted to 1e-4.

    Numeric columns are binned on the reference's fixed bins or its quantiles; categorical
    columns use their categories. Rules of thumb: below 0.1 stable, above 0.25 a major shift.

    Example:
        >>> import numpy as np, polars as pl
        >>> from mlwarden.profiling import profile
        >>> rng = np.random.default_rng(1)
        >>> ref = profile(pl.DataFrame({"p": rng.normal(150, 20, 20000)}))["p"]
        >>> same = profile(pl.DataFrame({"p": rng.normal(150, 20, 20000)}))["p"]
        >>> moved = profile(pl.DataFrame({"p": rng.normal(170, 20, 20000)}))["p"]
        >>> PopulationStabilityIndex().compute(ref, same).effect_size < 0.01
        True
        >>> PopulationStabilityIndex().compute(ref, moved).effect_size > 0.5
        True
    """

    kinds = frozenset({Kind.NUMERIC, Kind.CATEGORICAL, Kind.BOOLEAN})
    default_threshold = 0.1
    min_effect = 0.01
    scaling = "linear"

    def compute(self, reference: ColumnProfile, current: ColumnProfile) -> DriftOutcome:
        b = binned(reference, current)
        p, q = smoothed(b.p), smoothed(b.q)
        psi = float(np.sum((q - p) * np.log(q / p)))
        return DriftOutcome(psi, psi, None, b.approximate, b.note)
