"""Column kinds and roles: inferred from data and names, always overridable.

A *kind* says what values a column holds (numeric, categorical, boolean, datetime, text); a *role*
says what the column is for in a model's data (feature, prediction, score, target, timestamp, id,
segment). Kinds come from dtypes (and, for strings, from how many distinct values there are and
how long they are); roles come from common column names. Both can be given by the user.
"""

from __future__ import annotations

import difflib
import re
from dataclasses import dataclass, field, replace
from enum import StrEnum
from typing import TYPE_CHECKING, Any

import polars as pl

from mlwarden.exceptions import SchemaError

if TYPE_CHECKING:
    from collections.abc import Iterator, Mapping


class Kind(StrEnum):
    """What values a column holds."""

    NUMERIC = "numeric"
    CATEGORICAL = "categorical"
    BOOLEAN = "boolean"
    DATETIME = "datetime"
    TEXT = "text"


class Role(StrEnum):
    """What a column is for in a model's data."""

    FEATURE = "feature"
    PREDICTION = "prediction"
    SCORE = "score"
    TARGET = "target"
    TIMESTAMP = "timestamp"
    ID = "id"
    SEGMENT = "segment"


@dataclass(frozen=True, slots=True)
class ColumnSchema:
    """Name, kind and role of one column."""

    name: str
    kind: Kind
    role: Role = Role.FEATURE

    def to_dict(self) -> dict[str, str]:
        """Plain form: ``{"kind": ..., "role": ...}``."""
        return {"kind": self.kind.value, "role": self.role.value}


@dataclass(frozen=True, slots=True)
class Schema:
    """An ordered set of column schemas.

    Example:
        >>> s = Schema.of({"ts": "datetime", "temp": "numeric"}, roles={"ts": "timestamp"})
        >>> s["ts"].role, s["temp"].role
        (<Role.TIMESTAMP: 'timestamp'>, <Role.FEATURE: 'feature'>)
        >>> s.names_with(Role.FEATURE)
        ['temp']
    """

    columns: tuple[ColumnSchema, ...] = field(default_factory=tuple)

    @classmethod
    def of(
        cls, kinds: Mapping[str, str | Kind], roles: Mapping[str, str | Role] | None = None
    ) -> Schema:
        """Build from a mapping of column name to kind, with optional roles."""
        roles = dict(roles or {})
        unknown = set(roles) - set(kinds)
        if unknown:
            raise SchemaError(
                f"Roles were given for columns that are not in the schema: {sorted(unknown)}.",
                column=sorted(unknown)[0],
            )
        return cls(
            tuple(
                ColumnSchema(
                    name,
                    parse_kind(kind, column=name),
                    parse_role(roles.get(name, Role.FEATURE), column=name),
                )
                for name, kind in kinds.items()
            )
        )

    def __iter__(self) -> Iterator[ColumnSchema]:
        return iter(self.columns)

    def __len__(self) -> int:
        return len(self.columns)

    def __contains__(self, name: object) -> bool:
        return any(c.name == name for c in self.columns)

    def __getitem__(self, name: str) -> ColumnSchema:
        for col in self.columns:
            if col.name == name:
                return col
        raise SchemaError(unknown_column_message(name, self.names), column=name)

    @property
    def names(self) -> list[str]:
        """Column names in order."""
        return [c.name for c in self.columns]

    def names_with(self, role: Role | str) -> list[str]:
        """Names of the columns with the given role."""
        r = parse_role(role)
        return [c.name for c in self.columns if c.role is r]

    def with_roles(self, roles: Mapping[str, str | Role]) -> Schema:
        """A copy with some roles replaced."""
        for name in roles:
            self[name]  # raises a SchemaError naming the column if it is unknown
        return Schema(
            tuple(
                replace(c, role=parse_role(roles[c.name], column=c.name)) if c.name in roles else c
                for c in self.columns
            )
        )

    def to_dict(self) -> dict[str, dict[str, str]]:
        """Plain form: ``{name: {"kind": ..., "role": ...}}``."""
        return {c.name: c.to_dict() for c in self.columns}

    @classmethod
    def from_dict(cls, d: Mapping[str, Mapping[str, str]]) -> Schema:
        """Inverse of :meth:`to_dict`."""
        return cls(
            tuple(
                ColumnSchema(
                    name,
                    parse_kind(spec["kind"], column=name),
                    parse_role(spec.get("role", "feature"), column=name),
                )
                for name, spec in d.items()
            )
        )


def parse_kind(value: str | Kind, *, column: str | None = None) -> Kind:
    """A :class:`Kind` from its name, with a clear error for an unknown one."""
    kind: Kind = _parse(Kind, value, "kind", column)
    return kind


def parse_role(value: str | Role, *, column: str | None = None) -> Role:
    """A :class:`Role` from its name, with a clear error for an unknown one."""
    role: Role = _parse(Role, value, "role", column)
    return role


def _parse(enum: type[Any], value: Any, what: str, column: str | None) -> Any:
    if isinstance(value, enum):
        return value
    try:
        return enum(str(value).lower())
    except ValueError:
        options = [m.value for m in enum]
        where = f" (column '{column}')" if column else ""
        hint = difflib.get_close_matches(str(value).lower(), options, n=1)
        suggestion = f" Did you mean '{hint[0]}'?" if hint else ""
        raise SchemaError(
            f"'{value}' is not a {what}{where}. Available: {', '.join(options)}.{suggestion}",
            column=column,
        ) from None


def unknown_column_message(name: str, available: list[str]) -> str:
    """Message for a column that does not exist, with the closest existing name."""
    hint = difflib.get_close_matches(name, available, n=1)
    suggestion = f" Did you mean '{hint[0]}'?" if hint else ""
    shown = ", ".join(available[:20]) + (", ..." if len(available) > 20 else "")
    return f"No column '{name}'. Available: {shown}.{suggestion}"


def kind_of_dtype(dtype: pl.DataType) -> Kind | None:
    """The kind a dtype implies, or None for strings (categorical or text depends on the data)."""
    if dtype == pl.Boolean:
        return Kind.BOOLEAN
    if dtype.is_numeric() or isinstance(dtype, pl.Duration):
        return Kind.NUMERIC
    if isinstance(dtype, pl.Datetime) or dtype == pl.Date:
        return Kind.DATETIME
    if isinstance(dtype, pl.Categorical | pl.Enum):
        return Kind.CATEGORICAL
    if dtype == pl.String:
        return None
    if dtype == pl.Null:
        return Kind.NUMERIC
    return Kind.TEXT


# A string column is text rather than categorical when most values are distinct, or long.
TEXT_MIN_DISTINCT = 1000
TEXT_DISTINCT_SHARE = 0.5
TEXT_MEAN_LENGTH = 48.0


def string_kind(distinct: float, count: int, mean_length: float) -> Kind:
    """Categorical or text, from a string column's distinct count, size and mean length."""
    if mean_length >= TEXT_MEAN_LENGTH:
        return Kind.TEXT
    if distinct >= TEXT_MIN_DISTINCT and distinct >= TEXT_DISTINCT_SHARE * count:
        return Kind.TEXT
    return Kind.CATEGORICAL


_ROLE_NAMES: dict[Role, frozenset[str]] = {
    Role.TIMESTAMP: frozenset(
        {
            "timestamp",
            "time",
            "ts",
            "datetime",
            "date",
            "event_time",
            "event_timestamp",
            "eventtime",
            "created_at",
            "recorded_at",
            "measured_at",
            "logged_at",
        }
    ),
    Role.TARGET: frozenset(
        {"target", "label", "y", "y_true", "ytrue", "actual", "ground_truth", "truth", "outcome"}
    ),
    Role.PREDICTION: frozenset(
        {
            "prediction",
            "pred",
            "y_pred",
            "ypred",
            "predicted",
            "predicted_label",
            "forecast",
            "y_hat",
            "yhat",
        }
    ),
    Role.SCORE: frozenset({"score", "y_score", "proba", "probability", "y_proba", "y_prob"}),
    Role.ID: frozenset({"id", "uuid", "guid", "key", "row_id", "record_id", "request_id"}),
    Role.SEGMENT: frozenset({"segment", "cohort", "slice"}),
}
_SCORE_SUFFIXES = ("_score", "_proba", "_probability", "_prob")
_CAMEL = re.compile(r"(?<=[a-z0-9])(?=[A-Z])")


def normalize_name(name: str) -> str:
    """Lower snake case: ``"EventTime"`` and ``"event-time"`` become ``"event_time"``."""
    return re.sub(r"[^0-9a-z]+", "_", _CAMEL.sub("_", name).lower()).strip("_")


def infer_role(name: str, kind: Kind) -> Role:
    """The role suggested by a column's name and kind (feature when nothing matches)."""
    norm = normalize_name(name)
    if kind is Kind.DATETIME and (
        norm in _ROLE_NAMES[Role.TIMESTAMP] or norm.endswith(("_time", "_timestamp", "_at"))
    ):
        return Role.TIMESTAMP
    for role in (Role.TARGET, Role.PREDICTION, Role.SCORE, Role.SEGMENT):
        if norm in _ROLE_NAMES[role]:
            return role
    if kind is Kind.NUMERIC and norm.endswith(_SCORE_SUFFIXES):
        return Role.SCORE
    if norm.startswith(("target_", "label_")):
        return Role.TARGET
    if norm.startswith("segment_"):
        return Role.SEGMENT
    if norm in _ROLE_NAMES[Role.ID] or norm.endswith(("_id", "_uuid")):
        return Role.ID
    return Role.FEATURE


def infer_schema(
    frame: pl.DataFrame,
    *,
    kinds: Mapping[str, str | Kind] | None = None,
    roles: Mapping[str, str | Role] | None = None,
) -> Schema:
    """Infer kinds from a frame's dtypes and data, and roles from names; given ones win.

    Example:
        >>> import polars as pl
        >>> frame = pl.DataFrame({"timestamp": [0], "temp": [1.5], "recipe": ["A"], "y": [1]})
        >>> frame = frame.with_columns(pl.from_epoch("timestamp"))
        >>> infer_schema(frame, roles={"temp": "feature"}).to_dict()["timestamp"]
        {'kind': 'datetime', 'role': 'timestamp'}
        >>> infer_schema(frame)["y"].role
        <Role.TARGET: 'target'>
    """
    kinds = dict(kinds or {})
    roles = dict(roles or {})
    for name in (*kinds, *roles):
        if name not in frame.columns:
            raise SchemaError(unknown_column_message(name, frame.columns), column=name)
    columns = []
    for name, dtype in frame.schema.items():
        kind = parse_kind(kinds[name], column=name) if name in kinds else kind_of_dtype(dtype)
        if kind is None:
            series = frame[name]
            count = len(series) - series.null_count()
            distinct = series.n_unique() - (1 if series.null_count() else 0)
            mean_length = float(series.str.len_chars().mean() or 0.0)  # type: ignore[arg-type]
            kind = string_kind(distinct, count, mean_length)
        role = parse_role(roles[name], column=name) if name in roles else infer_role(name, kind)
        columns.append(ColumnSchema(name, kind, role))
    return Schema(tuple(columns))
