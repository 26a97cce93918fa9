"""How a window's metric behaves when nothing changed: a value mapped to a nominal z, and back.

Every bounded metric of a window comes with a :class:`NullModel`: the sampling theory of its
value on a window of this size, as if rows were independent. It maps the value to a *nominal z*,
a number that follows a standard normal distribution under that theory whatever the window's
size or the metric's units, and a z back to the value that reaches it. Real data is not
independent (autocorrelated sensors, batches, shifts), so the nominal z of clean windows is
shifted and spread; :mod:`mlwarden.alerting.calibration` learns by how much from the reference's
own windows, and the alert bound of a window is the value whose nominal z reaches the calibrated
threshold. Because the theory carries the window's size, a bound learned on windows of 480 rows
tightens on a window of 2,000 and widens on one of 100, as sampling error does.

The kinds:

* ``ks``: a Kolmogorov-Smirnov distance D at effective size ``n`` (``n·m/(n+m)`` for two
  samples of ``n`` and ``m`` rows): ``D·sqrt(n)`` follows Kolmogorov's distribution.
* ``chi2``: a Jensen-Shannon distance J (base 2) between a window's shares of ``df + 1``
  categories and the reference's: ``8·n·ln 2·J²`` is Pearson's chi-squared statistic to second
  order, with ``df`` degrees of freedom.

Both distances are bounded by 1 (two samples with nothing in common), and in plant data their
spread on clean windows often comes less from sampling than from fixed differences between
windows (one batch runs a little hotter than the next). The distance is therefore read on a
stretched scale, ``d' = Φ⁻¹((1 + d) / 2) / sqrt(π/2)``: equal to ``d`` to first order, so the
sampling theory above holds for small distances, and growing without bound as ``d`` reaches 1,
where two normal samples shifted by ``2·sqrt(π/2)·d'`` standard deviations would be. A bound
calibrated on that scale always lies below 1, and complete separation (a unit change) always
reaches it. A finite sample is shrunk first, ``d·n / (n + 1)``: ten rows that share nothing
with the reference (the first minutes of a batch) are far less telling than five hundred.
* ``gauss``: a value with a known centre and standard error (an estimated performance metric, a
  mean reconstruction error, the log of a row count).
* ``binomial``: a rate of ``n`` trials against an expected probability ``center`` (mid-p).

``side`` says which direction is bad: ``upper`` (larger is worse), ``lower`` or ``both`` (a
signed ``gauss`` metric such as a location shift, whose nominal z keeps its sign). Every
bound lies inside ``[low, high]``, the metric's range; a z the range cannot reach has no bound
(``None``): that metric cannot alarm on such a window, which :mod:`~mlwarden.alerting.calibration`
reports instead of storing a bound that can never fire.

Example:
    >>> null = NullModel("ks", n=480)
    >>> z = null.z(0.12)
    >>> round(z, 2)
    4.62
    >>> round(null.bounds(z)[1], 4)
    0.12
    >>> null.bounds(200.0)  # no distance of at most 1 is that unlikely on 480 rows
    (None, None)
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Final, Literal

from scipy import optimize, special, stats

from mlwarden.exceptions import ParameterError

Kind = Literal["ks", "chi2", "gauss", "binomial"]
Side = Literal["upper", "lower", "both"]

KINDS: Final = ("ks", "chi2", "gauss", "binomial")
SIDES: Final = ("upper", "lower", "both")
# Nominal z values are kept in [-Z_LIMIT, Z_LIMIT]: far beyond any threshold, and finite.
Z_LIMIT: Final = 10_000.0
_LN2: Final = math.log(2.0)
# Above this, Kolmogorov's tail is 2·exp(-2x²) to double precision.
_KS_ASYMPTOTIC: Final = 3.0


@dataclass(frozen=True, slots=True)
class NullModel:
    """The sampling theory of one metric on one window (see the module docstring).

    Attributes:
        kind: ``ks``, ``chi2``, ``gauss`` or ``binomial``.
        side: the bad direction: ``upper``, ``lower`` or ``both``.
        n: the effective number of rows (``ks``, ``chi2``) or trials (``binomial``).
        center: the value expected without change (``gauss``), or the expected rate
            (``binomial``).
        scale: the standard error of the value (``gauss``).
        df: degrees of freedom (``chi2``): categories compared minus one.
        low: the smallest value the metric can take.
        high: the largest value the metric can take.
        log: the value is compared on a log scale (``gauss`` of a row count).
        probit: the value, a probability or an AUC in (0, 1), is compared on the normal
            quantile scale (``gauss``), where 1 lies infinitely far: a bound below it always
            exists, and a perfect separation always passes it.
        labelled: the share of the window's rows whose label is known (a performance metric
            moves from its estimate to its realized value as labels arrive, and varies more).
    """

    kind: Kind
    side: Side = "upper"
    n: float = 1.0
    center: float = 0.0
    scale: float = 1.0
    df: float = 1.0
    low: float = 0.0
    high: float = 1.0
    log: bool = False
    labelled: float = 0.0
    probit: bool = False

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ParameterError(
                f"'{self.kind}' is not a null model kind. Available: {', '.join(KINDS)}.",
                parameter="kind",
            )
        if self.side not in SIDES:
            raise ParameterError(
                f"'{self.side}' is not a side. Available: {', '.join(SIDES)}.", parameter="side"
            )
        if not self.n > 0 or not self.scale > 0 or not self.df > 0:
            raise ParameterError(
                f"A null model needs n, scale and df > 0; got n={self.n}, scale={self.scale}, "
                f"df={self.df}.",
                parameter="n",
            )

    # -- value → z ------------------------------------------------------------------------------

    def z(self, value: float) -> float:
        """The nominal z of ``value``: large when the value is unlikely in the bad direction."""
        if value != value:
            return float("nan")
        if self.kind == "ks":
            x = _stretch(self._shrunk(value)) * math.sqrt(self.n)
            return _z_from_log_tail(_ks_log_tail(x))
        if self.kind == "chi2":
            stretched = _stretch(self._shrunk(value))
            x = 8.0 * self.n * _LN2 * stretched * stretched
            return _z_from_log_tail(_chi2_log_tail(x, self.df))
        if self.kind == "binomial":
            return self._binomial_z(value)
        d = (self._link(value) - self._link(self.center)) / self.scale
        return _clip(-d if self.side == "lower" else d)

    def _link(self, value: float) -> float:
        if self.log:
            return math.log(max(value, 1e-300))
        if self.probit:
            return float(special.ndtri(min(max(value, 1e-15), 1.0 - 1e-15)))
        return value

    def _binomial_z(self, rate: float) -> float:
        k = round(rate * self.n)
        n, p = round(self.n), min(max(self.center, 1e-12), 1 - 1e-12)
        if self.side == "lower":
            k, p = n - k, 1.0 - p
        # mid-p: P(X > k) + P(X = k) / 2, on the log scale for the far tail
        tail = float(stats.binom.sf(k, n, p)) + 0.5 * float(stats.binom.pmf(k, n, p))
        if tail <= 0.0:
            return Z_LIMIT
        return _z_from_log_tail(math.log(tail))

    # -- z → value ------------------------------------------------------------------------------

    def bounds(self, z: float) -> tuple[float | None, float | None]:
        """``(lower, upper)``: the values whose nominal z is ``z``, on the bad side(s); None
        where no value inside ``[low, high]`` reaches it."""
        if z != z:
            return None, None
        if self.kind in ("ks", "chi2"):
            return None, self._distance_at(z)
        if self.kind == "binomial":
            return self._binomial_bounds(z)
        if self.side == "upper":
            return None, self.value_at(z)
        if self.side == "lower":
            return self.value_at(-z), None
        return self.value_at(-z), self.value_at(z)

    def value_at(self, z: float) -> float | None:
        """The value of a ``gauss`` metric ``z`` standard errors above its centre (signed, on
        the log scale when ``log``); None outside ``[low, high]``."""
        shifted = self._link(self.center) + z * self.scale
        if self.log:
            return self._inside(math.exp(shifted))
        if self.probit:
            return self._inside(float(special.ndtr(shifted)))
        return self._inside(shifted)

    def _distance_at(self, z: float) -> float | None:
        log_tail = float(special.log_ndtr(-z))
        if self.kind == "ks":
            x = _ks_quantile(log_tail)
            shrunk = _unstretch(x / math.sqrt(self.n))
        else:
            x = _chi2_quantile(log_tail, self.df)
            shrunk = _unstretch(math.sqrt(x / (8.0 * self.n * _LN2)))
        return self._inside(shrunk * (self.n + 1.0) / self.n)

    def _shrunk(self, distance: float) -> float:
        """A distance read as from a sample of ``n`` rows: ``d·n/(n+1)``, never 1."""
        return max(0.0, distance) * self.n / (self.n + 1.0)

    def _binomial_bounds(self, z: float) -> tuple[float | None, float | None]:
        n = round(self.n)
        # the smallest count whose z reaches z; the bound sits half a count before it, so that
        # the count alarms (a rate above the bound) and the one below does not
        counts = range(n + 1)
        upper_side = self.side != "lower"
        first = next(
            (k for k in counts if self._binomial_z((k if upper_side else n - k) / n) >= z),
            None,
        )
        if first is None:
            return None, None
        if upper_side:
            return None, self._inside((first - 0.5) / n)
        return self._inside((n - first + 0.5) / n), None

    def _inside(self, value: float) -> float | None:
        if not math.isfinite(value) or value >= self.high or value <= self.low:
            return None
        return value

    def to_dict(self) -> dict[str, Any]:
        """Plain data (JSON-ready)."""
        return {
            "kind": self.kind,
            "side": self.side,
            "n": self.n,
            "center": self.center,
            "scale": self.scale,
            "df": self.df,
            "low": self.low,
            "high": self.high,
            "log": self.log,
            "labelled": self.labelled,
            "probit": self.probit,
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> NullModel:
        """Inverse of :meth:`to_dict`."""
        return cls(**d)


def tail(z: float) -> float:
    """The chance that a standard normal exceeds ``z``."""
    return float(special.ndtr(-z))


_HALF_PI_ROOT: Final = math.sqrt(math.pi / 2.0)


def _stretch(d: float) -> float:
    """A distance in [0, 1] on the stretched scale of the module docstring."""
    if d <= 0.0:
        return 0.0
    if d >= 1.0:
        return math.inf
    return float(special.ndtri((1.0 + d) / 2.0)) / _HALF_PI_ROOT


def _unstretch(s: float) -> float:
    """Inverse of :func:`_stretch`."""
    if s == math.inf:
        return 1.0
    return float(2.0 * special.ndtr(s * _HALF_PI_ROOT) - 1.0)


def _clip(z: float) -> float:
    return max(-Z_LIMIT, min(Z_LIMIT, z))


def _z_from_log_tail(log_tail: float) -> float:
    """The normal quantile with upper tail ``exp(log_tail)``."""
    if log_tail >= 0.0:
        return -Z_LIMIT
    if log_tail == -math.inf:
        return Z_LIMIT
    return _clip(-float(special.ndtri_exp(log_tail)))


def _ks_log_tail(x: float) -> float:
    if x <= 0.0:
        return 0.0
    if x < _KS_ASYMPTOTIC:
        value = float(stats.kstwobign.sf(x))
        return math.log(value) if value > 0 else -math.inf
    return _LN2 - 2.0 * x * x


def _ks_quantile(log_tail: float) -> float:
    if log_tail >= 0.0:
        return 0.0
    if log_tail <= _ks_log_tail(_KS_ASYMPTOTIC):
        return math.sqrt((_LN2 - log_tail) / 2.0)
    return float(stats.kstwobign.isf(math.exp(log_tail)))


def _chi2_log_tail(x: float, df: float) -> float:
    if x <= 0.0:
        return 0.0
    value = float(stats.chi2.logsf(x, df))
    if math.isfinite(value):
        return value
    # The upper incomplete gamma function's leading term, where logsf underflows.
    a, y = df / 2.0, x / 2.0
    return (a - 1.0) * math.log(y) - y - math.lgamma(a) + math.log1p(max(a - 1.0, 0.0) / y)


def _chi2_quantile(log_tail: float, df: float) -> float:
    if log_tail >= 0.0:
        return 0.0
    if log_tail > -700.0:
        return float(stats.chi2.isf(math.exp(log_tail), df))
    # Beyond double precision: solve the asymptotic tail for x.
    low, high = 1.0, 10.0
    while _chi2_log_tail(high, df) > log_tail:
        high *= 2.0
    return float(optimize.brentq(lambda x: _chi2_log_tail(x, df) - log_tail, low, high))


__all__ = ["KINDS", "SIDES", "Z_LIMIT", "NullModel", "tail"]
