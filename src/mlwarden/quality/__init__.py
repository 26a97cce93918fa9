"""Data quality and integrity: checks, suites learned from reference data, and the gate.

A *check* is one rule; a :class:`Suite` is a list of configured checks (saved as YAML); a
:class:`Validation` is the outcome of a suite on a batch, evaluated in one fused pass by
:func:`validate`. :func:`suggest_suite` learns a suite from reference data and measures its own
false-failure rate; :func:`gate` splits a batch into accepted, repaired and quarantined rows.

Adding a check is one new class: subclass :class:`Check` with a ``key`` (see ``base.py``).

Example:
    >>> import polars as pl
    >>> from mlwarden.quality import Suite, validate
    >>> suite = Suite.from_dict({"checks": [
    ...     {"check": "not_null", "column": "pressure_bar"},
    ...     {"check": "range", "column": "pressure_bar", "min": 0, "max": 400}]})
    >>> validate(pl.DataFrame({"pressure_bar": [141.0, 139.2]}), suite).passed
    True
"""

from __future__ import annotations

from mlwarden.quality import (
    completeness,
    consistency,
    distribution,
    schema,
    sensor,
    timeliness,
    uniqueness,
    validity,
)
from mlwarden.quality.base import (
    Check,
    Dimension,
    Grouped,
    RowCheck,
    Stats,
    Verdict,
    available_checks,
    get_check,
)
from mlwarden.quality.completeness import NotNull, RowCompleteness
from mlwarden.quality.consistency import Monotonic, Rule
from mlwarden.quality.distribution import CategoryShares, Mean, Quantile, Std
from mlwarden.quality.gate import GatePolicy, GateResult, gate
from mlwarden.quality.schema import ColumnType, NoExtraColumns, RequiredColumns
from mlwarden.quality.sensor import Gap, Jitter, RateOfChange, Spike, Stuck, UnitChange
from mlwarden.quality.suggest import suggest_suite
from mlwarden.quality.suite import Suite
from mlwarden.quality.timeliness import ArrivalDelay, Freshness, Volume
from mlwarden.quality.uniqueness import DuplicateRows, DuplicateTimestamps, Unique
from mlwarden.quality.validation import CheckResult, Validation, validate
from mlwarden.quality.validity import AllowedValues, Length, Pattern, Range

__all__ = [
    "AllowedValues",
    "ArrivalDelay",
    "CategoryShares",
    "Check",
    "CheckResult",
    "ColumnType",
    "Dimension",
    "DuplicateRows",
    "DuplicateTimestamps",
    "Freshness",
    "Gap",
    "GatePolicy",
    "GateResult",
    "Grouped",
    "Jitter",
    "Length",
    "Mean",
    "Monotonic",
    "NoExtraColumns",
    "NotNull",
    "Pattern",
    "Quantile",
    "Range",
    "RateOfChange",
    "RequiredColumns",
    "RowCheck",
    "RowCompleteness",
    "Rule",
    "Spike",
    "Stats",
    "Std",
    "Stuck",
    "Suite",
    "Unique",
    "UnitChange",
    "Validation",
    "Verdict",
    "Volume",
    "available_checks",
    "gate",
    "get_check",
    "suggest_suite",
    "validate",
]

_FAMILIES = (
    completeness,
    consistency,
    distribution,
    schema,
    sensor,
    timeliness,
    uniqueness,
    validity,
)
