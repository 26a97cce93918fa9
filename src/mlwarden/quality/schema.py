"""Schema: the columns a model needs are there, of the expected kind, and nothing unexpected.

Example:
    >>> import polars as pl
    >>> from mlwarden.quality import Suite, validate
    >>> frame = pl.DataFrame({"temperature_c": [230.1], "pressure_bar": ["141"]})
    >>> result = validate(frame, Suite([ColumnType(column="pressure_bar", kind="numeric")]))
    >>> result.results[0].message
    'pressure_bar holds String values (kind categorical or text); expected numeric.'
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass
from typing import Any, Literal

from mlwarden.quality.base import Check, Dimension, Stats, Verdict
from mlwarden.schema import Kind, kind_of_dtype

KindName = Literal["numeric", "categorical", "boolean", "datetime", "text"]


def _visible(stats: Stats) -> list[str]:
    return [c for c in stats.schema if not c.startswith("__")]


@dataclass(frozen=True, kw_only=True)
class RequiredColumns(Check, key="required_columns"):
    """Every column in ``columns`` is present.

    Example:
        >>> import polars as pl
        >>> from mlwarden.quality import Suite, validate
        >>> check = RequiredColumns(columns=["temperature_c", "pressure_bar"])
        >>> validate(pl.DataFrame({"temperature_c": [1.0]}), Suite([check])).passed
        False
    """

    dimension = Dimension.COMPLETENESS
    windowed = False
    example = {"columns": ["numeric"]}
    columns: tuple[str, ...]

    def threshold(self) -> Any:
        return list(self.columns)

    def judge(self, stats: Stats) -> Verdict:
        present = _visible(stats)
        missing = [c for c in self.columns if c not in stats.schema]
        if not missing:
            return Verdict(True, [], f"All {len(self.columns)} required columns are present.")
        hints = []
        for c in missing:
            close = difflib.get_close_matches(c, present, n=1)
            hints.append(f"'{c}'" + (f" (did you mean '{close[0]}'?)" if close else ""))
        return Verdict(False, missing, f"Missing required column(s): {', '.join(hints)}.")


@dataclass(frozen=True, kw_only=True)
class ColumnType(Check, key="column_type"):
    """``column`` holds values of ``kind`` (numeric, categorical, boolean, datetime, text).

    Strings satisfy both categorical and text. ``dtype`` pins the exact Polars dtype instead
    (``"Float64"``, ``"Int64"``, ``"String"``, ``"Datetime"``).

    Example:
        >>> ColumnType(column="pressure_bar", kind="numeric").threshold()
        'numeric'
    """

    dimension = Dimension.VALIDITY
    windowed = False
    example = {"column": "numeric", "kind": "numeric"}
    column: str
    kind: KindName | None = None
    dtype: str | None = None

    def reads(self) -> tuple[str, ...]:
        return (self.column,)

    def threshold(self) -> Any:
        return self.dtype or self.kind

    def judge(self, stats: Stats) -> Verdict:
        dtype = stats.schema[self.column]
        name = str(dtype.base_type().__name__) if hasattr(dtype, "base_type") else str(dtype)
        if self.dtype is not None:
            passed = name == self.dtype or str(dtype) == self.dtype
            return Verdict(
                passed,
                name,
                f"{self.column} is {name}" + ("." if passed else f"; expected {self.dtype}."),
            )
        if self.kind is None:
            return Verdict(True, name, f"{self.column} is {name}.")
        kind = kind_of_dtype(dtype)
        kinds = {Kind.CATEGORICAL, Kind.TEXT} if kind is None else {kind}
        passed = Kind(self.kind) in kinds
        shown = " or ".join(sorted(k.value for k in kinds))
        if passed:
            return Verdict(True, name, f"{self.column} holds {name} values ({self.kind}).")
        return Verdict(
            False, name, f"{self.column} holds {name} values (kind {shown}); expected {self.kind}."
        )


@dataclass(frozen=True, kw_only=True)
class NoExtraColumns(Check, key="no_extra_columns"):
    """The data has no column outside ``columns`` (a sign that an upstream export changed).

    Example:
        >>> import polars as pl
        >>> from mlwarden.quality import Suite, validate
        >>> frame = pl.DataFrame({"a": [1], "b": [2], "tmp_debug": [3]})
        >>> validate(frame, Suite([NoExtraColumns(columns=["a", "b"])])).results[0].observed
        ['tmp_debug']
    """

    dimension = Dimension.VALIDITY
    windowed = False
    default_severity = "warning"
    example = {"columns": ["numeric", "categorical", "boolean", "time", "row_id"]}
    columns: tuple[str, ...]

    def threshold(self) -> Any:
        return list(self.columns)

    def judge(self, stats: Stats) -> Verdict:
        extra = [c for c in _visible(stats) if c not in self.columns]
        if not extra:
            return Verdict(True, [], "No unexpected columns.")
        return Verdict(False, extra, f"Unexpected column(s): {', '.join(extra)}.")
