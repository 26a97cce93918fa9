"""The drift-test contract and its registry: adding a drift test is one new file.

A drift test compares one column between a reference and a current batch *from their profiles*
(quantile sketches, histograms, frequent items), so a reference is profiled once, stored and
reused. It returns a statistic, an effect size on a scale where 0 means "same distribution", and a
p-value where the test has one. Verdicts (thresholds, calibration, multiple testing) are decided by
:func:`mlwarden.drift.compare`, not by the tests.
"""

from __future__ import annotations

import difflib
from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar, Literal

from mlwarden.exceptions import ParameterError

if TYPE_CHECKING:
    from mlwarden.alerting.null import NullModel
    from mlwarden.profiling import ColumnProfile
    from mlwarden.schema import Kind

Scaling = Literal["sqrt", "linear"]


@dataclass(frozen=True, slots=True)
class DriftOutcome:
    """What a drift test measured on one column.

    Attributes:
        statistic: the test's own statistic (KS D, chi-squared, PSI, ...).
        effect_size: a distance in [0, inf) that is 0 for identical distributions; the default
            verdict compares it with a threshold calibrated on the reference.
        p_value: the probability of a statistic at least as large without drift, if the test has
            one (None otherwise).
        approximate: True when computed from sketches with a rank error rather than exactly.
        note: anything the user should know about how the value was obtained.
    """

    statistic: float
    effect_size: float
    p_value: float | None = None
    approximate: bool = False
    note: str = ""


class DriftTest(ABC):
    """Base class of the drift tests; subclasses register themselves by ``key``.

    Subclasses declare the kinds of column they handle, whether they have a p-value, a default
    threshold on their effect size, the smallest effect worth an alarm, and how their effect size
    shrinks with sample size under no drift (``"sqrt"``: like 1/sqrt(n), ``"linear"``: like 1/n).
    ``__init__`` only stores parameters.
    """

    key: ClassVar[str]
    kinds: ClassVar[frozenset[Kind]]
    has_p_value: ClassVar[bool] = False
    default_threshold: ClassVar[float]
    min_effect: ClassVar[float] = 0.02
    scaling: ClassVar[Scaling] = "sqrt"
    _registry: ClassVar[dict[str, type[DriftTest]]] = {}

    def __init_subclass__(cls, key: str | None = None, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if key is None:
            return
        if key in DriftTest._registry:
            raise TypeError(
                f"Drift test key '{key}' is taken by {DriftTest._registry[key].__qualname__}; "
                f"{cls.__qualname__} needs another key."
            )
        cls.key = key
        DriftTest._registry[key] = cls

    def __init__(self, threshold: float | None = None) -> None:
        if threshold is not None and (not isinstance(threshold, int | float) or threshold < 0):
            raise ParameterError(
                f"The 'threshold' parameter of {type(self).__name__} must be a number >= 0; "
                f"got {threshold!r}.",
                parameter="threshold",
            )
        self.threshold = None if threshold is None else float(threshold)

    @abstractmethod
    def compute(self, reference: ColumnProfile, current: ColumnProfile) -> DriftOutcome:
        """Compare the current column's profile with the reference column's profile."""

    def null_model(self, reference: ColumnProfile, current: ColumnProfile) -> NullModel | None:
        """How the effect size behaves without drift on samples of these sizes (see
        :mod:`mlwarden.alerting.null`), for tests that have a sampling theory; None otherwise."""
        return None

    def applies_to(self, kind: Kind) -> bool:
        """True when the test can compare columns of this kind."""
        return kind in self.kinds

    def to_dict(self) -> dict[str, Any]:
        """Configuration as plain data: ``{"test": key, "threshold": ...}``."""
        return {"test": self.key, "threshold": self.threshold}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> DriftTest:
        """Inverse of :meth:`to_dict`."""
        return get_test(d["test"])(threshold=d.get("threshold"))

    def __eq__(self, other: object) -> bool:
        return type(other) is type(self) and other.to_dict() == self.to_dict()

    def __hash__(self) -> int:
        return hash((self.key, self.threshold))

    def __repr__(self) -> str:
        return f"{type(self).__name__}(threshold={self.threshold!r})"


def available_tests() -> list[str]:
    """Keys of every registered drift test, sorted."""
    return sorted(DriftTest._registry)


def get_test(key: str) -> type[DriftTest]:
    """The drift test class registered under ``key``, with a suggestion for a typo."""
    try:
        return DriftTest._registry[key]
    except KeyError:
        options = available_tests()
        hint = difflib.get_close_matches(str(key), options, n=1)
        suggestion = f" Did you mean '{hint[0]}'?" if hint else ""
        raise ParameterError(
            f"'{key}' is not a drift test. Available: {', '.join(options)}.{suggestion}",
            parameter="test",
        ) from None


def make_test(spec: str | DriftTest | dict[str, Any]) -> DriftTest:
    """A drift test from its key, its dict form, or an instance."""
    if isinstance(spec, DriftTest):
        return spec
    if isinstance(spec, dict):
        return DriftTest.from_dict(spec)
    return get_test(spec)()
