"""The store contract: the same behaviour on SQLite and on PostgreSQL."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import text

from mlwarden.contract import Finding
from mlwarden.exceptions import ConflictError, NotFoundError, ParameterError, StoreError
from mlwarden.store.metadata import MetricValue, Store
from mlwarden.store.schema import Base

T0 = datetime(2024, 5, 1, tzinfo=UTC)


def test_migrations_build_exactly_the_declared_tables(store: Store) -> None:
    assert store.revision() == "0008"
    store.migrate()  # a second upgrade is a no-op
    with store.engine.connect() as connection:
        diff = compare_metadata(MigrationContext.configure(connection), Base.metadata)
    assert diff == [], "the schema changed without a migration"


def test_models_and_versions_with_their_reference(store: Store) -> None:
    store.create_model("defect-model", "predicts defects on line 2")
    with pytest.raises(ConflictError, match="already exists"):
        store.create_model("defect-model")
    with pytest.raises(NotFoundError, match="Did you mean 'defect-model'"):
        store.get_model("defect-modle")
    with pytest.raises(ParameterError, match="model is 1-200 letters"):
        store.create_model("../etc")
    v = store.create_version(
        "defect-model",
        "1.0",
        artifacts={"profile": b"\x00\x01profile", "suite": b"checks: []\n"},
        meta={"rows": 1000},
    )
    assert v.artifacts == ("profile", "suite")
    assert v.meta == {"rows": 1000}
    assert store.artifact("defect-model", "1.0", "profile") == b"\x00\x01profile"
    with pytest.raises(NotFoundError, match=r"no 'estimator' artifact \(it has: profile, suite\)"):
        store.artifact("defect-model", "1.0", "estimator")
    with pytest.raises(ConflictError, match=r"already has a version '1\.0'"):
        store.create_version("defect-model", "1.0")
    store.create_version("defect-model", "1.1")
    assert [x.version for x in store.versions("defect-model")] == ["1.0", "1.1"]
    assert [m.name for m in store.models()] == ["defect-model"]


def test_a_tampered_artifact_is_refused(store: Store) -> None:
    store.create_model("m")
    store.create_version("m", "1", artifacts={"suite": b"checks: []"})
    with store.engine.begin() as connection:
        connection.execute(text("UPDATE artifacts SET content = :c"), {"c": b"checks: [evil]"})
    with pytest.raises(StoreError, match="corrupt"):
        store.artifact("m", "1", "suite")


def test_aliases_move_and_keep_their_history(store: Store) -> None:
    store.create_model("m")
    for version in ("1", "2"):
        store.create_version("m", version)
    first = store.set_alias("m", "production", "1", by="ana", note="first release")
    assert (first.version, first.previous) == ("1", None)
    moved = store.set_alias("m", "production", "2", evidence={"f1": 0.91})
    assert (moved.version, moved.previous) == ("2", "1")
    store.set_alias("m", "staging", "2")
    assert store.aliases("m") == {"production": "2", "staging": "2"}
    assert store.resolve("m", "production").version == "2"
    assert store.resolve("m", "1").version == "1"
    store.remove_alias("m", "staging", note="retired")
    history = store.alias_history("m")
    assert [(h.alias, h.version, h.previous) for h in history] == [
        ("production", "1", None),
        ("production", "2", "1"),
        ("staging", "2", None),
        ("staging", None, "2"),
    ]
    assert history[0].changed_by == "ana"
    assert history[1].evidence == {"f1": 0.91}
    assert all(h.changed_at.tzinfo is not None for h in history)
    with pytest.raises(NotFoundError, match="no version or alias 'canary'"):
        store.resolve("m", "canary")


def test_windows_and_metric_series_with_late_labels(store: Store) -> None:
    store.create_model("m")
    store.create_version("m", "1")
    ids = []
    for day in range(3):
        start = T0 + timedelta(days=day)
        w = store.upsert_window("m", "1", start, start + timedelta(days=1), n_rows=100)
        ids.append(w.id)
        alerts = store.write_metrics(
            w.id,
            [
                MetricValue("drift.psi", 0.05 * (day + 1), upper=0.12, column="temperature_c"),
                MetricValue("null_rate", 0.0, upper=0.01, column="pressure_bar"),
            ],
        )
        assert alerts == (1 if day == 2 else 0)
    # labels arrive for day 0: the window is evaluated again, its f1 replaces nothing else
    again = store.upsert_window("m", "1", T0, T0 + timedelta(days=1), n_rows=100, n_labelled=80)
    assert again.id == ids[0]
    assert again.n_labelled == 80
    store.write_metrics(ids[0], [MetricValue("f1", 0.7, lower=0.8)])
    store.write_metrics(ids[0], [MetricValue("f1", 0.85, lower=0.8)])
    series = store.metric_series("m", "drift.psi")
    assert series["value"].to_list() == pytest.approx([0.05, 0.10, 0.15])
    assert series["alert"].to_list() == [False, False, True]
    assert series["window_start"].to_list() == [T0 + timedelta(days=d) for d in range(3)]
    assert sorted(m.name for m in store.window_metrics(ids[0])) == ["drift.psi", "f1", "null_rate"]
    f1 = store.metric_series("m", "f1")
    assert f1["value"].to_list() == [0.85]
    assert f1["alert"].to_list() == [False]
    assert store.metric_series("m", column="pressure_bar").height == 3
    assert len(store.windows("m", start=T0 + timedelta(days=1))) == 2
    with pytest.raises(ParameterError, match="ends after it starts"):
        store.upsert_window("m", "1", T0, T0, n_rows=1)
    with pytest.raises(ParameterError, match="duplicates"):
        store.write_metrics(ids[1], [MetricValue("x", 1.0), MetricValue("x", 2.0)])


def test_a_window_keeps_its_details_one_per_kind(store: Store) -> None:
    store.create_model("m")
    store.create_version("m", "1")
    w = store.upsert_window("m", "1", T0, T0 + timedelta(hours=1), n_rows=10)
    assert store.window(w.id) == w
    assert store.details(w.id) == {}
    store.save_details(w.id, "profile", {"rows": 10}, b"\x00profile")
    store.save_details(w.id, "drift", {"columns": {"a": 0.1}})
    store.save_details(w.id, "drift", {"columns": {"a": 0.2}})  # evaluated again: replaced
    assert store.details(w.id) == {
        "profile": ({"rows": 10}, b"\x00profile"),
        "drift": ({"columns": {"a": 0.2}}, None),
    }
    with pytest.raises(NotFoundError, match="No window with id"):
        store.window(w.id + 1000)
    with pytest.raises(NotFoundError, match="No window with id"):
        store.save_details(w.id + 1000, "drift", {})


def test_times_come_back_in_utc(store: Store) -> None:
    store.create_model("m")
    store.create_version("m", "1")
    local = datetime(2024, 5, 1, 9, 0, tzinfo=timezone(timedelta(hours=2)))
    w = store.upsert_window("m", "1", local, local + timedelta(hours=1), n_rows=1)
    assert w.start == local
    assert w.start.tzinfo == UTC
    with pytest.raises(Exception, match="timezone-aware"):
        store.upsert_window("m", "1", datetime(2024, 5, 2), datetime(2024, 5, 3), n_rows=1)


def test_validations_alerts_and_incidents(store: Store) -> None:
    store.create_model("m")
    store.create_version("m", "1")
    w = store.upsert_window("m", "1", T0, T0 + timedelta(hours=1), n_rows=10)
    store.save_validation(w.id, False, {"passed": False, "checks": [{"check": "stuck"}]})
    store.save_validation(w.id, True, {"passed": True, "checks": []})
    assert store.validation(w.id) == {"passed": True, "checks": []}
    incident = store.open_incident("m", "stuck pressure sensor", T0)
    metric = MetricValue("check.stuck", 1.0, upper=0.0, column="pressure_bar")
    store.add_alert(w.id, metric, incident_id=incident)
    alerts = store.alerts("m")
    assert alerts["metric"].to_list() == ["check.stuck"]
    assert alerts["incident_id"].to_list() == [incident]


def test_an_alert_that_goes_on_stays_in_its_incident(store: Store) -> None:
    store.create_model("m")
    store.create_version("m", "1")
    stuck = MetricValue("quality", 1.0, upper=0.0, column="stuck(pressure_bar)")
    drift = MetricValue("drift.ks", 0.4, upper=0.1, column="temperature_c")
    hours = [
        store.upsert_window(
            "m", "1", T0 + timedelta(hours=h), T0 + timedelta(hours=h + 1), n_rows=9
        )
        for h in range(4)
    ]
    first = store.record_alerts(hours[0].id, [stuck])
    second = store.record_alerts(hours[1].id, [stuck, drift])  # goes on, plus something new
    third = store.record_alerts(hours[2].id, [drift])
    assert first is not None
    assert second == (first[0], False), "a continuing alert joins the open incident"
    assert third == (first[0], False)
    assert store.record_alerts(hours[3].id, []) is None  # a quiet hour closes it
    assert store.close_quiet_incidents("m", hours[3].start) == 1
    assert store.record_alerts(hours[1].id, [stuck, drift]) == second, "evaluated again"
    incidents = store.incidents("m")
    assert [(i["status"], i["ended_at"]) for i in incidents] == [("closed", hours[3].start)]
    assert incidents[0]["title"] == "quality stuck(pressure_bar)"
    # late rows make the quiet hour alert after all: the incident goes on, open again
    assert store.record_alerts(hours[3].id, [drift]) == (first[0], False)
    assert store.incidents("m")[0]["status"] == "open"
    # after a quiet hour that stays quiet, the same alert is a new incident
    assert store.record_alerts(hours[3].id, []) is None
    assert store.close_quiet_incidents("m", hours[3].start) == 1
    later = store.upsert_window(
        "m", "1", T0 + timedelta(hours=5), T0 + timedelta(hours=6), n_rows=9
    )
    fifth = store.record_alerts(later.id, [stuck])
    assert fifth is not None
    assert fifth[1]
    assert fifth[0] != first[0]
    assert [i["alerts"] for i in store.incidents("m")] == [4, 1]


def test_a_false_alarm_widens_its_bound_until_reverted(store: Store) -> None:
    store.create_model("m")
    store.create_version("m", "1")
    w = store.upsert_window("m", "1", T0, T0 + timedelta(hours=1), n_rows=9)
    high = MetricValue("drift.ks", 0.30, upper=0.20, column="temperature_c")
    low = MetricValue("performance.roc_auc", 0.60, lower=0.70, upper=1.0)
    store.record_alerts(w.id, [high, low])
    alerts = store.alerts("m").sort("metric")
    ks_alert, auc_alert = alerts["id"].to_list()
    false = store.mark_alert(ks_alert, true_alarm=False, by="ana", comment="line restart")
    assert false.upper == pytest.approx(0.31), "just beyond the value: 0.30 + 10 % of 0.10"
    assert false.lower is None
    true = store.mark_alert(auc_alert, true_alarm=True, by="ana")
    assert (true.lower, true.upper) == (None, None)
    assert store.widened_bounds("m") == {
        ("drift.ks", "temperature_c", ""): (None, pytest.approx(0.31))
    }
    assert set(store.alerts("m")["status"]) == {"false_alarm", "confirmed"}
    wider = store.mark_alert(
        ks_alert, true_alarm=False, margin=1.0
    )  # a second verdict: the widest applies
    assert store.widened_bounds("m")[("drift.ks", "temperature_c", "")][1] == pytest.approx(0.40)
    store.revert_feedback(wider.id, by="ana")
    assert store.widened_bounds("m")[("drift.ks", "temperature_c", "")][1] == pytest.approx(0.31)
    store.revert_feedback(false.id)
    assert store.widened_bounds("m") == {}
    assert [f.active for f in store.feedback("m")] == [False, True, False]
    with pytest.raises(NotFoundError, match="No alert with id"):
        store.mark_alert(999_999, true_alarm=False)


def test_tokens_are_stored_hashed_and_scoped(store: Store) -> None:
    writer = store.create_token("ingest job", "write")
    reader = store.create_token("grafana", "read")
    with store.engine.connect() as connection:
        stored = [r[0] for r in connection.execute(text("SELECT sha256 FROM api_tokens"))]
    assert writer not in stored, "only hashes are kept"
    assert reader not in stored
    assert store.verify_token(writer, "write") is not None
    assert store.verify_token(writer, "read") is not None
    assert store.verify_token(reader, "write") is None
    assert store.verify_token("mlw_made_up", "read") is None
    record = store.verify_token(reader, "read")
    assert record is not None
    store.revoke_token(record.id)
    assert store.verify_token(reader, "read") is None
    assert [t.name for t in store.tokens()] == ["ingest job", "grafana"]
    with pytest.raises(ParameterError, match="scope"):
        store.create_token("x", "admin")  # type: ignore[arg-type]


def test_a_retried_batch_is_recognized_even_when_sent_twice_at_once(store: Store) -> None:
    store.create_model("m")
    assert store.record_batch("m", "batch-0001", 500)
    assert not store.record_batch("m", "batch-0001", 500)
    outcomes: list[bool] = []
    threads = [
        threading.Thread(target=lambda: outcomes.append(store.record_batch("m", "batch-2", 5)))
        for _ in range(4)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(outcomes) == [False, False, False, True]


def test_sqlite_file_survives_a_restart(tmp_path: Path) -> None:
    path = tmp_path / "data" / "mlwarden.db"
    first = Store(f"sqlite:///{path}")
    first.migrate()
    first.create_model("m")
    first.close()
    again = Store(f"sqlite:///{path}")
    assert [m.name for m in again.models()] == ["m"]
    with again.engine.connect() as connection:
        assert connection.execute(text("PRAGMA journal_mode")).scalar() == "wal"
    again.close()


def test_an_unreachable_database_is_named() -> None:
    store = Store("postgresql://nobody@127.0.0.1:9/none")
    with pytest.raises(StoreError, match="Cannot reach the database"):
        store.migrate()


def test_latest_metrics_pick_the_newest_window_of_each_version(store: Store) -> None:
    store.create_model("m")
    for version in ("1", "2"):
        store.create_version("m", version)
    for hour in range(3):
        start = T0 + timedelta(hours=hour)
        for version in ("1", "2"):
            w = store.upsert_window("m", version, start, start + timedelta(hours=1), n_rows=1)
            value = float(hour) + (10 if version == "2" else 0)
            store.write_metrics(w.id, [MetricValue("psi", value, upper=5.0, column="x")])
    latest = store.latest_metrics().sort("version")
    assert latest["value"].to_list() == [2.0, 12.0]
    assert latest["alert"].to_list() == [False, True]
    assert latest["window_end"].to_list() == [T0 + timedelta(hours=3)] * 2


NO_SCORE = Finding("missing_output", "fail_score", "rows carry no 'fail_score' (the model's score)")
UNKNOWN = Finding("unknown", "prediction", "rows carry 'prediction', which the version was not")
NO_ROW_ID = Finding("missing_id", "row_id", "rows carry no 'row_id' (the row id)")
NO_TARGET = Finding("missing_target", "failed", "labels carry no 'failed' (the target)")


def test_contract_findings_are_counted_until_a_batch_meets_the_contract(store: Store) -> None:
    store.create_model("m")
    for version in ("1", "2"):
        store.create_version("m", version)
    at = [T0 + timedelta(minutes=10 * i) for i in range(6)]
    store.record_contract_findings("m", "1", [NO_SCORE, UNKNOWN], 500, at[0])
    opened = store.record_contract_findings("m", "1", [NO_SCORE, UNKNOWN], 300, at[1])
    assert [(f.kind, f.column, f.batches, f.rows) for f in opened] == [
        ("missing_output", "fail_score", 2, 800),
        ("unknown", "prediction", 2, 800),
    ]
    assert {(f.first_at, f.last_at) for f in opened} == {(at[0], at[1])}
    assert store.contract_findings("m", "2") == []
    # A rows batch that meets the score's part clears it; labels keep their own findings.
    store.record_contract_findings("m", "1", [NO_TARGET], 40, at[2], batch="labels")
    left = store.record_contract_findings("m", "1", [UNKNOWN], 100, at[3])
    assert [f.column for f in left] == ["prediction"]
    assert [(f.batch, f.column) for f in store.contract_findings("m", "1")] == [
        ("rows", "prediction"),
        ("labels", "failed"),
    ]
    cleared = store.contract_findings("m", "1", open_only=False, batch="rows")
    assert [(f.column, f.open, f.cleared_at) for f in cleared] == [
        ("fail_score", False, at[3]),
        ("prediction", True, None),
    ]
    # Shown again later, a finding opens anew: counted from then, its total kept.
    again = store.record_contract_findings("m", "1", [NO_SCORE], 70, at[4])
    assert [(f.column, f.first_at, f.batches, f.rows, f.rows_total) for f in again] == [
        ("fail_score", at[4], 1, 70, 870)
    ]
    assert store.record_contract_findings("m", "1", [], 10, at[5], batch="labels") == []
    assert [f.batch for f in store.contract_findings("m")] == ["rows"]
    everywhere = store.contract_findings(None, open_only=False)
    assert {(f.model, f.version, f.batch, f.column) for f in everywhere} == {
        ("m", "1", "rows", "fail_score"),
        ("m", "1", "rows", "prediction"),
        ("m", "1", "labels", "failed"),
    }
    assert everywhere[0].to_dict()["first_at"] == at[4].isoformat()


def test_the_same_finding_in_rows_and_labels_is_counted_apart(store: Store) -> None:
    store.create_model("m")
    store.create_version("m", "1")
    store.record_contract_findings("m", "1", [NO_ROW_ID], 5, T0, batch="labels")
    store.record_contract_findings("m", "1", [NO_ROW_ID], 50, T0)
    store.record_contract_findings("m", "1", [], 50, T0 + timedelta(minutes=1))
    assert [(f.batch, f.rows) for f in store.contract_findings("m", "1")] == [("labels", 5)]
    with pytest.raises(ParameterError, match="'rows' or 'labels'"):
        store.record_contract_findings("m", "1", [], 1, T0, batch="predictions")  # type: ignore
    with pytest.raises(ParameterError, match="timezone-aware"):
        store.record_contract_findings("m", "1", [], 1, datetime(2024, 5, 1))
    with pytest.raises(NotFoundError, match="no version or alias '3'"):
        store.record_contract_findings("m", "3", [NO_ROW_ID], 1, T0)


def test_batches_counted_at_once_lose_no_count(store: Store) -> None:
    store.create_model("m")
    store.create_version("m", "1")
    errors: list[BaseException] = []

    def log(i: int) -> None:
        try:
            for j in range(5):
                store.record_contract_findings(
                    "m", "1", [NO_SCORE], 10, T0 + timedelta(seconds=10 * i + j)
                )
        except BaseException as exc:  # reported below, with the thread's failure
            errors.append(exc)

    threads = [threading.Thread(target=log, args=(i,)) for i in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    [finding] = store.contract_findings("m", "1")
    assert (finding.batches, finding.rows, finding.rows_total) == (20, 200, 200)
