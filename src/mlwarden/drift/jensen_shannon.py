"""Jensen-Shannon distance between binned distributions."""

from __future__ import annotations

from typing import TYPE_CHECKING

from scipy.spatial import distance

from mlwarden.alerting.null import NullModel
from mlwarden.drift._distributions import binned
from mlwarden.drift.base import DriftOutcome, DriftTest
from mlwarden.schema import Kind

if TYPE_CHECKING:
    from mlwarden.profiling import ColumnProfile


class JensenShannon(DriftTest, key="jensen_shannon"):
    """Jensen-Shannon distance (base 2, in [0, 1]) between the two sides' binned shares.

    Example:
        >>> import polars as pl
        >>> from mlwarden.profiling import profile
        >>> ref = profile(pl.DataFrame({"s": ["A"] * 50 + ["B"] * 50}))["s"]
        >>> cur = profile(pl.DataFrame({"s": ["A"] * 50 + ["B"] * 50}))["s"]
        >>> JensenShannon().compute(ref, cur).effect_size
        0.0
        >>> other = profile(pl.DataFrame({"s": ["C"] * 100}))["s"]
        >>> JensenShannon().compute(ref, other).effect_size
        1.0
    """

    kinds = frozenset({Kind.NUMERIC, Kind.CATEGORICAL, Kind.BOOLEAN})
    default_threshold = 0.1

    def compute(self, reference: ColumnProfile, current: ColumnProfile) -> DriftOutcome:
        b = binned(reference, current)
        if b.reference.sum() == 0 or b.current.sum() == 0:
            return DriftOutcome(0.0, 0.0, None, b.approximate, "one side has no values")
        js = float(distance.jensenshannon(b.p, b.q, base=2.0))
        js = 0.0 if js != js else round(js, 12)  # NaN only for two empty sides
        return DriftOutcome(js, js, None, b.approximate, b.note)

    def null_model(self, reference: ColumnProfile, current: ColumnProfile) -> NullModel | None:
        """Pearson's chi-squared with one degree of freedom per category beyond the first:
        ``8·n·ln 2·J²`` to second order, at the effective size ``n·m/(n+m)``."""
        n, m = current.count, reference.count
        b = binned(reference, current)
        categories = int((b.reference + b.current > 0).sum())
        if n <= 0 or m <= 0 or categories < 2:
            return None
        return NullModel("chi2", n=n * m / (n + m), df=float(categories - 1))
