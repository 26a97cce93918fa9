"""The registry on every store backend: a version's reference is fitted once, stored and
reloaded identical; aliases move with a recorded history and roll back."""

from __future__ import annotations

import polars as pl
import pytest

from mlwarden.datasets import production_line
from mlwarden.exceptions import ConflictError, InputError, NotFoundError
from mlwarden.quality import validate
from mlwarden.registry import Registry
from mlwarden.store.metadata import Store


@pytest.fixture(scope="module")
def line() -> pl.DataFrame:
    return production_line(8_000, seed=3)


def test_register_stores_the_reference_and_reloads_it(store: Store, line: pl.DataFrame) -> None:
    registry = Registry(store)
    version = registry.register("defect-model", "1", line, timestamp="timestamp")
    assert version.artifacts == (
        "alert_replay",
        "drift_reference",
        "evaluators",
        "profile",
        "reference_rows",
        "suite",
    )
    rows = registry.reference_rows("defect-model", "1")
    assert rows is not None
    assert rows.equals(line)
    assert version.meta["rows"] == 8_000
    assert version.meta["suite_false_failure_rate"] is not None
    loaded = registry.reference("defect-model", "1")
    assert loaded.profile.n_rows == 8_000
    assert loaded.drift.n_rows == 8_000
    assert loaded.suite.timestamp == "timestamp"
    assert validate(line.tail(2_000), loaded.suite).scores["overall"] > 0.99
    with pytest.raises(ConflictError, match="already has a version '1'"):
        registry.register("defect-model", "1", line, timestamp="timestamp")


def test_promotion_history_and_rollback(store: Store, line: pl.DataFrame) -> None:
    registry = Registry(store)
    for version in ("1", "2"):
        registry.register("m", version, line.head(3_000), timestamp="timestamp")
    registry.promote("m", "1", by="ana")
    registry.promote("m", "2", by="ben", evidence={"f1": 0.9, "previous_f1": 0.88})
    assert registry.reference("m", "production").version.version == "2"
    back = registry.rollback("m", by="on-call")
    assert (back.version, back.previous, back.note) == ("1", "2", "rollback from 2")
    history = store.alias_history("m", "production")
    assert [(h.version, h.changed_by) for h in history] == [
        ("1", "ana"),
        ("2", "ben"),
        ("1", "on-call"),
    ]
    with pytest.raises(NotFoundError, match="no earlier version"):
        registry.rollback("m", alias="staging")


def test_a_version_registered_with_its_model_keeps_its_global_explanation(
    store: Store, line: pl.DataFrame
) -> None:
    from sklearn.ensemble import HistGradientBoostingClassifier

    features = ["temperature_c", "pressure_bar", "vibration_mm_s", "humidity_pct"]
    model = HistGradientBoostingClassifier(max_iter=30, random_state=0).fit(
        line.select(features).to_numpy(), line["defect"].to_numpy()
    )
    registry = Registry(store)
    version = registry.register(
        "defect-model",
        "1",
        line,
        timestamp="timestamp",
        estimator=model,
        features=features,
        groups={"process": ["temperature_c", "pressure_bar"]},
    )
    assert "explanation" in version.artifacts
    doc = registry.explanation("defect-model", "1")
    assert doc is not None
    assert doc["method"] == "tree"
    # rows from whole windows of the reference, spread over its time, up to 2,000
    assert 1_500 <= doc["rows"] <= 2_000
    blocks = registry.reference_attributions("defect-model", "1")
    assert blocks is not None
    assert blocks.height == doc["rows"]
    assert blocks["__block"].n_unique() >= 8
    assert {f["feature"] for f in doc["features"]} == set(features)
    shares = [f["share"] for f in doc["features"]]
    assert shares == sorted(shares, reverse=True)
    assert abs(sum(shares) - 1.0) < 1e-9
    assert {g["feature"] for g in doc["groups"]} == {"process", "vibration_mm_s", "humidity_pct"}
    # the importances are what the diagnosis weighs drift by
    importance = store.get_version("defect-model", "1").meta["importance"]
    assert set(importance) == set(features)
    assert registry.explanation("defect-model", "1") is not None
    registry.register("defect-model", "2", line, timestamp="timestamp")
    assert registry.explanation("defect-model", "2") is None


def test_a_reference_with_times_as_text_is_stored_in_utc(store: Store, line: pl.DataFrame) -> None:
    registry = Registry(store)
    part = line.head(3_000)
    # what pandas.read_csv gives: ISO text with a space, no zone
    text = part.with_columns(pl.col("timestamp").dt.strftime("%Y-%m-%d %H:%M:%S%.6f"))
    registry.register("m-text", "1", text.to_pandas(), timestamp="timestamp")
    rows = registry.reference_rows("m-text", "1")
    assert rows is not None
    assert rows["timestamp"].to_list() == part["timestamp"].to_list()
    assert registry.reference("m-text", "1").suite.timestamp == "timestamp"
    garbled = text.with_columns(pl.col("timestamp").str.replace("2024-01-01 08", "Monday 08"))
    with pytest.raises(InputError, match=r"'timestamp' of the reference.*'Monday 08") as caught:
        registry.register("m-text", "2", garbled, timestamp="timestamp")
    assert caught.value.column == "timestamp"
    with pytest.raises(InputError, match="Did you mean 'timestamp'"):
        registry.register("m-text", "2", part, timestamp="timestamps")
