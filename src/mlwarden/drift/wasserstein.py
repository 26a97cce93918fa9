"""Wasserstein (earth mover's) distance, normalized by the reference's spread."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from mlwarden.drift.base import DriftOutcome, DriftTest
from mlwarden.schema import Kind

if TYPE_CHECKING:
    from mlwarden.profiling import ColumnProfile

_GRID = np.linspace(0.0005, 0.9995, 1000)


class Wasserstein(DriftTest, key="wasserstein"):
    """First Wasserstein distance divided by the reference's standard deviation.

    ``W1 = integral over u of |Q_ref(u) - Q_cur(u)|``, read from both quantile sketches on a grid
    of 1,000 ranks; dividing by the reference std makes it unit-free, so 0.1 means "the mass moved
    a tenth of a standard deviation on average", the same in °C or °F.

    Example:
        >>> import numpy as np, polars as pl
        >>> from mlwarden.profiling import profile
        >>> rng = np.random.default_rng(2)
        >>> ref = profile(pl.DataFrame({"v": rng.normal(10, 2, 20000)}))["v"]
        >>> cur = profile(pl.DataFrame({"v": rng.normal(11, 2, 20000)}))["v"]
        >>> round(Wasserstein().compute(ref, cur).effect_size, 1)
        0.5
    """

    kinds = frozenset({Kind.NUMERIC})
    default_threshold = 0.1

    def compute(self, reference: ColumnProfile, current: ColumnProfile) -> DriftOutcome:
        rq, cq, m = reference.quantiles, current.quantiles, reference.moments
        assert rq is not None
        assert cq is not None
        assert m is not None
        w1 = float(np.mean(np.abs(rq.quantiles(_GRID) - cq.quantiles(_GRID))))
        std = m.std
        if not std > 0:  # a constant reference: any movement is a full shift
            return DriftOutcome(
                w1, 0.0 if w1 == 0 else float("inf"), None, True, "constant reference"
            )
        return DriftOutcome(w1, w1 / std, None, True, "from quantile sketches")
