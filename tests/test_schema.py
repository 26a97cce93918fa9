"""Kinds and roles: inference from dtypes, data and names; overrides; clear errors."""

from __future__ import annotations

from datetime import date

import polars as pl
import pytest

from mlwarden.exceptions import SchemaError
from mlwarden.schema import (
    Kind,
    Role,
    Schema,
    infer_role,
    infer_schema,
    kind_of_dtype,
    normalize_name,
    string_kind,
)


@pytest.mark.parametrize(
    ("dtype", "kind"),
    [
        (pl.Float64, Kind.NUMERIC),
        (pl.Int8, Kind.NUMERIC),
        (pl.UInt64, Kind.NUMERIC),
        (pl.Duration("ms"), Kind.NUMERIC),
        (pl.Boolean, Kind.BOOLEAN),
        (pl.Datetime("ns", "Europe/Berlin"), Kind.DATETIME),
        (pl.Date, Kind.DATETIME),
        (pl.Categorical(), Kind.CATEGORICAL),
        (pl.Enum(["a", "b"]), Kind.CATEGORICAL),
        (pl.String, None),
    ],
)
def test_kind_of_dtype(dtype: pl.DataType, kind: Kind | None) -> None:
    assert kind_of_dtype(dtype) is kind


def test_strings_are_categorical_unless_mostly_distinct_or_long() -> None:
    assert string_kind(distinct=6, count=10_000, mean_length=7) is Kind.CATEGORICAL
    assert string_kind(distinct=9_000, count=10_000, mean_length=10) is Kind.TEXT
    assert string_kind(distinct=30, count=40, mean_length=5) is Kind.CATEGORICAL  # too few to tell
    assert string_kind(distinct=3, count=10_000, mean_length=120) is Kind.TEXT


@pytest.mark.parametrize(
    ("name", "kind", "role"),
    [
        ("timestamp", Kind.DATETIME, Role.TIMESTAMP),
        ("EventTime", Kind.DATETIME, Role.TIMESTAMP),
        ("measured_at", Kind.DATETIME, Role.TIMESTAMP),
        ("timestamp", Kind.NUMERIC, Role.FEATURE),  # epoch numbers stay features unless told
        ("y_true", Kind.NUMERIC, Role.TARGET),
        ("Label", Kind.CATEGORICAL, Role.TARGET),
        ("y_pred", Kind.NUMERIC, Role.PREDICTION),
        ("defect_score", Kind.NUMERIC, Role.SCORE),
        ("defect_proba", Kind.NUMERIC, Role.SCORE),
        ("request_id", Kind.TEXT, Role.ID),
        ("segment", Kind.CATEGORICAL, Role.SEGMENT),
        ("temperature_c", Kind.NUMERIC, Role.FEATURE),
        ("identity_matrix_norm", Kind.NUMERIC, Role.FEATURE),
    ],
)
def test_roles_from_names(name: str, kind: Kind, role: Role) -> None:
    assert infer_role(name, kind) is role


def test_normalize_name() -> None:
    assert normalize_name("EventTime") == "event_time"
    assert normalize_name("  event-time ") == "event_time"


def test_infer_schema_with_overrides_and_round_trip() -> None:
    frame = pl.DataFrame(
        {
            "date": [date(2026, 1, 1), date(2026, 1, 2)],
            "recipe": ["PP", "PE"],
            "label": [0, 1],
            "score": [0.2, 0.9],
        }
    )
    schema = infer_schema(frame, roles={"recipe": "segment"}, kinds={"label": "categorical"})
    assert schema.to_dict() == {
        "date": {"kind": "datetime", "role": "timestamp"},
        "recipe": {"kind": "categorical", "role": "segment"},
        "label": {"kind": "categorical", "role": "target"},
        "score": {"kind": "numeric", "role": "score"},
    }
    assert Schema.from_dict(schema.to_dict()) == schema
    assert schema.names_with("target") == ["label"]
    assert schema.with_roles({"score": "feature"})["score"].role is Role.FEATURE


def test_schema_errors_name_the_column_and_suggest() -> None:
    frame = pl.DataFrame({"pressure": [1.0]})
    with pytest.raises(SchemaError, match=r"No column 'presure'.*Did you mean 'pressure'"):
        infer_schema(frame, roles={"presure": "target"})
    with pytest.raises(SchemaError, match=r"'numerc' is not a kind \(column 'pressure'\)"):
        infer_schema(frame, kinds={"pressure": "numerc"})
    with pytest.raises(SchemaError, match="Available: feature, prediction"):
        Schema.of({"a": "numeric"}, roles={"a": "weight"})
    with pytest.raises(SchemaError) as caught:
        Schema.of({"a": "numeric"})["b"]
    assert caught.value.column == "b"
