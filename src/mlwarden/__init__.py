"""mlwarden: quality assurance and observability for machine-learning models in production.

The public facade. Heavy modules load on first use, so that ``import mlwarden`` and the command
line start fast.

Example:
    >>> import polars as pl
    >>> import mlwarden
    >>> p = mlwarden.profile(pl.DataFrame({"temperature_c": [20.5, 21.0, 80.0]}))
    >>> p["temperature_c"].moments.max
    80.0
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from mlwarden._version import __version__

if TYPE_CHECKING:
    from mlwarden.drift import DriftMonitor, DriftReport, Reference, compare
    from mlwarden.explanation import Explanation, explain
    from mlwarden.monitor import Monitor
    from mlwarden.performance.realized import realized_performance
    from mlwarden.profiling import Profile, ProfileConfig, profile
    from mlwarden.quality import Suite, Validation, gate, suggest_suite, validate
    from mlwarden.schema import Kind, Role, Schema, infer_schema

__all__ = [
    "DriftMonitor",
    "DriftReport",
    "Explanation",
    "Kind",
    "Monitor",
    "Profile",
    "ProfileConfig",
    "Reference",
    "Role",
    "Schema",
    "Suite",
    "Validation",
    "__version__",
    "compare",
    "explain",
    "gate",
    "infer_schema",
    "profile",
    "realized_performance",
    "suggest_suite",
    "validate",
]

_LAZY = {
    "compare": "mlwarden.drift",
    "DriftMonitor": "mlwarden.drift",
    "DriftReport": "mlwarden.drift",
    "Reference": "mlwarden.drift",
    "realized_performance": "mlwarden.performance.realized",
    "explain": "mlwarden.explanation",
    "Explanation": "mlwarden.explanation",
    "Monitor": "mlwarden.monitor",
    "profile": "mlwarden.profiling",
    "Profile": "mlwarden.profiling",
    "ProfileConfig": "mlwarden.profiling",
    "Suite": "mlwarden.quality",
    "Validation": "mlwarden.quality",
    "gate": "mlwarden.quality",
    "suggest_suite": "mlwarden.quality",
    "validate": "mlwarden.quality",
    "Kind": "mlwarden.schema",
    "Role": "mlwarden.schema",
    "Schema": "mlwarden.schema",
    "infer_schema": "mlwarden.schema",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'mlwarden' has no attribute '{name}'")
    import importlib

    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(__all__)
