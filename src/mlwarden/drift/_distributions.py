"""Distributions of a column as a reference and a current profile see them, on shared supports.

Binned tests (PSI, Jensen-Shannon, Hellinger, chi-squared, L-infinity) need the two columns'
probabilities on the same bins or categories. Numeric columns use the fixed histogram both
profiles share when the current window was profiled on the reference's bins (exact counts);
otherwise bins at the reference's quantiles, with each side's share per bin read from its
quantile sketch (within the sketch's rank error). Categorical columns use the frequent items,
with one "other" bucket for values a summary no longer tracks.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import numpy.typing as npt

from mlwarden.profiling.histogram import FixedHistogram
from mlwarden.schema import Kind

if TYPE_CHECKING:
    from mlwarden.profiling import ColumnProfile

F64 = npt.NDArray[np.float64]
QUANTILE_BINS = 20


@dataclass(frozen=True, slots=True)
class Binned:
    """Counts of both sides on one support (bins or categories)."""

    reference: F64
    current: F64
    labels: list[str]
    approximate: bool
    note: str = ""

    @property
    def p(self) -> F64:
        """Reference shares."""
        total = self.reference.sum()
        return self.reference / total if total > 0 else self.reference

    @property
    def q(self) -> F64:
        """Current shares."""
        total = self.current.sum()
        return self.current / total if total > 0 else self.current


def binned(reference: ColumnProfile, current: ColumnProfile) -> Binned:
    """Both sides' counts on a shared support (see the module docstring)."""
    if reference.kind is Kind.NUMERIC:
        return _numeric(reference, current)
    return _categorical(reference, current)


def _numeric(reference: ColumnProfile, current: ColumnProfile) -> Binned:
    hr, hc = reference.histogram, current.histogram
    if (
        isinstance(hr, FixedHistogram)
        and isinstance(hc, FixedHistogram)
        and np.array_equal(hr.edges, hc.edges)
    ):
        ref = np.concatenate([[hr.underflow], hr.counts, [hr.overflow]]).astype(np.float64)
        cur = np.concatenate([[hc.underflow], hc.counts, [hc.overflow]]).astype(np.float64)
        labels = ["below"] + [
            f"[{a:.4g}, {b:.4g})" for a, b in zip(hr.edges[:-1], hr.edges[1:], strict=True)
        ]
        return Binned(ref, cur, [*labels, "above"], approximate=False)
    rq, cq = reference.quantiles, current.quantiles
    assert rq is not None
    assert cq is not None
    edges = np.unique(rq.quantiles(np.linspace(0, 1, QUANTILE_BINS + 1)[1:-1]))
    # Shares below each inner edge, from each side's sketch: bins (-inf, e1], (e1, e2], ...
    ref_cdf = np.concatenate([[0.0], rq.cdf(edges), [1.0]])
    cur_cdf = np.concatenate([[0.0], cq.cdf(edges), [1.0]])
    labels = [f"<= {edges[0]:.4g}"] if edges.size else []
    labels += [f"({a:.4g}, {b:.4g}]" for a, b in itertools.pairwise(edges)]
    labels += [f"> {edges[-1]:.4g}"] if edges.size else ["all"]
    return Binned(
        np.diff(ref_cdf) * rq.n,
        np.diff(cur_cdf) * cq.n,
        labels,
        approximate=not (rq.is_exact and cq.is_exact),
        note="binned at reference quantiles from sketches",
    )


def _categorical(reference: ColumnProfile, current: ColumnProfile) -> Binned:
    ri, ci = reference.items, current.items
    assert ri is not None
    assert ci is not None
    ref_map = dict(zip(ri.values.cast(str).to_list(), ri.counts.tolist(), strict=True))
    cur_map = dict(zip(ci.values.cast(str).to_list(), ci.counts.tolist(), strict=True))
    labels = sorted(set(ref_map) | set(cur_map))
    ref = np.array([ref_map.get(v, 0) for v in labels], dtype=np.float64)
    cur = np.array([cur_map.get(v, 0) for v in labels], dtype=np.float64)
    approximate = not (ri.is_exact and ci.is_exact)
    if approximate:
        labels.append("(other)")
        ref = np.append(ref, ri.total - ref.sum())
        cur = np.append(cur, ci.total - cur.sum())
    return Binned(ref, cur, labels, approximate=approximate)


def smoothed(shares: F64, eps: float = 1e-4) -> F64:
    """Shares with empty bins lifted to ``eps`` and renormalized (for logarithms)."""
    lifted = np.maximum(shares, eps)
    return np.asarray(lifted / lifted.sum(), dtype=np.float64)
