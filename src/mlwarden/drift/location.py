"""Location shift: how far, and which way, a numeric column's median moved.

A distance such as Kolmogorov-Smirnov's says *that* a distribution changed, not which way, so
window after window of a slow ramp look like ordinary noise to a sum of distances. The signed
shift of the median does add up: a bearing that wears a little more every hour moves every
window's median the same way, while windows without a change move it either way. Its value is
the difference between the current median and the reference's (the regime mixture's, when the
column is compared within a regime), in units of the reference's robust standard deviation
(interquartile range / 1.349): unit-free, so ``+0.5`` means half a standard deviation up in °C
or °F alike. Read from quantile sketches, it is robust to the bursts and spikes that move a mean.

Without a change, the median of ``n`` independent rows scatters with a standard error of
``sqrt(π/2)/sqrt(n)`` standard deviations; :func:`location_null` gives that
:class:`~mlwarden.alerting.null.NullModel`, two-sided.

Example:
    >>> import numpy as np, polars as pl
    >>> from mlwarden.profiling import profile
    >>> rng = np.random.default_rng(0)
    >>> ref = profile(pl.DataFrame({"v": rng.normal(10, 2, 20_000)}))["v"]
    >>> cur = profile(pl.DataFrame({"v": rng.normal(11, 2, 500)}))["v"]
    >>> round(location_shift(ref, cur), 1)
    0.5
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Final

from mlwarden.alerting.null import NullModel

if TYPE_CHECKING:
    from mlwarden.profiling import ColumnProfile

# The interquartile range of a normal distribution, in standard deviations.
_IQR_SD: Final = 1.3489795
# The standard error of a median, in standard deviations, times sqrt(n).
_MEDIAN_SE: Final = math.sqrt(math.pi / 2.0)


def location_shift(reference: ColumnProfile, current: ColumnProfile) -> float | None:
    """The current median minus the reference's, in reference standard deviations (robust);
    None when either side has no values or the reference does not vary."""
    rq, cq = reference.quantiles, current.quantiles
    if rq is None or cq is None or rq.n == 0 or cq.n == 0:
        return None
    low, median, high = (float(v) for v in rq.quantiles([0.25, 0.5, 0.75]))
    spread = (high - low) / _IQR_SD
    if not spread > 0 and reference.moments is not None:
        spread = reference.moments.std
    if not spread > 0 or not math.isfinite(spread):
        return None
    return (float(cq.quantiles([0.5])[0]) - median) / spread


def location_null(reference: ColumnProfile, current: ColumnProfile) -> NullModel | None:
    """Two-sided: the median of ``n·m/(n+m)`` independent rows scatters by
    ``sqrt(π/2)/sqrt(n·m/(n+m))`` standard deviations."""
    n, m = current.count, reference.count
    if n <= 0 or m <= 0:
        return None
    effective = n * m / (n + m)
    return NullModel(
        "gauss",
        side="both",
        center=0.0,
        scale=_MEDIAN_SE / math.sqrt(effective),
        low=-math.inf,
        high=math.inf,
    )


__all__ = ["location_null", "location_shift"]
