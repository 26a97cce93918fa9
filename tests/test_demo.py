"""The full-loop demo, run as a user runs it: every injected fault becomes an incident that names
the faulty column, soon after the fault starts, with few false alarms; labels arrive two days
late and realized performance follows them."""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import polars as pl
import pytest
from click.testing import CliRunner

from mlwarden.cli import cli
from mlwarden.demo import MODEL, START
from mlwarden.store.metadata import Store

# The longest a fault may go unnoticed: sensor faults within a window of four hours and the
# evaluation after it; a slow drift within two days of its start.
DEADLINES = {
    "stuck_sensor": timedelta(hours=8),
    "unit_change": timedelta(hours=8),
    "null_column": timedelta(hours=8),
    "gradual_drift": timedelta(days=2),
}
# The version's alert budget is one false incident per 90 days, shared by every metric family
# and segment; a month of the demo may show one.
MAX_FALSE_ALARMS = 1


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict[str, Any], str, Path]:
    out = tmp_path_factory.mktemp("demo")
    result = CliRunner().invoke(
        cli,
        [
            "demo",
            "--no-serve",
            "--json",
            str(out / "demo.json"),
            "--out",
            str(out),
            "--port",
            "0",
        ],
    )
    assert result.exit_code == 0, result.output
    return json.loads((out / "demo.json").read_text()), result.output, out


def test_every_injected_fault_is_detected_in_time(demo: tuple[dict[str, Any], str, Path]) -> None:
    report, output, _ = demo
    assert [f["kind"] for f in report["faults"]] == list(DEADLINES)
    for detection in report["detections"]:
        kind = detection["fault"]
        assert detection["incident"] is not None, f"{kind} was not detected"
        injected = datetime.fromisoformat(detection["injected_at"])
        detected = datetime.fromisoformat(detection["detected_at"])
        assert timedelta(0) < detected - injected <= DEADLINES[kind], kind
        assert any(detection["column"] in metric for metric in detection["metrics"]), kind
    assert "4 of 4 faults detected" in output


def test_each_fault_is_named_by_the_check_that_fits_it(
    demo: tuple[dict[str, Any], str, Path],
) -> None:
    report, _, _ = demo
    fired = {d["fault"]: " ".join(d["metrics"]) for d in report["detections"]}
    assert "stuck(pressure_bar)" in fired["stuck_sensor"]
    assert "temperature_c" in fired["unit_change"]
    assert "not_null(humidity_pct)" in fired["null_column"]
    assert "drift" in fired["gradual_drift"]


def test_false_alarms_are_few_and_reported(demo: tuple[dict[str, Any], str, Path]) -> None:
    report, output, _ = demo
    ids = {i["id"] for i in report["incidents"]}
    assert set(report["false_alarms"]) <= ids
    assert len(report["false_alarms"]) <= MAX_FALSE_ALARMS
    assert f"{len(report['false_alarms'])} not explained by an injected fault" in output
    for incident in report["incidents"]:
        # a withdrawn incident's alerts were cleared by labels; its title still names them
        assert incident["metrics"] or incident["status"] == "withdrawn", incident
        assert incident["title"]
        assert incident["detected_at"] >= incident["started_at"]


def test_labels_arrive_two_days_late_and_performance_follows(
    demo: tuple[dict[str, Any], str, Path],
) -> None:
    _, _, out = demo
    store = Store(f"sqlite:///{out / 'service' / 'mlwarden.db'}")
    windows = store.windows(MODEL)
    assert len(windows) == 180, "30 days of 4-hour windows"
    end = START + timedelta(days=30)
    for window in windows:
        if window.end <= end - timedelta(days=2):
            assert window.n_labelled == window.n_rows, "labelled two days later"
        else:
            assert window.n_labelled == 0, "the lab has not reported yet"
    realized = store.metric_series(MODEL, "performance.roc_auc.realized", segment="")
    estimated = store.metric_series(MODEL, "performance.roc_auc", segment="")
    assert estimated.height == 180
    labelled = {w.start for w in windows if w.n_labelled}
    assert set(realized["window_start"]) <= labelled
    # ROC AUC is undefined in a window without a single defect
    assert realized.height >= 0.9 * len(labelled)
    assert store.metric_series(MODEL, "drift.pca").height == 180
    segments = set(store.metric_series(MODEL, "performance.roc_auc")["segment"])
    assert segments == {"", "line=L1", "line=L2", "line=L3"}
    store.close()


def test_the_diagnosis_names_each_fault_first(demo: tuple[dict[str, Any], str, Path]) -> None:
    report, output, _ = demo
    for detection in report["detections"]:
        assert detection["cause_rank"] == 1, detection
    incidents = {i["id"]: i for i in report["incidents"]}
    # an incident whose only alerts later labels cleared is withdrawn, with nothing to diagnose
    assert all(i["causes"] and i["shift"] for i in incidents.values() if i["status"] != "withdrawn")
    by_fault = {d["fault"]: incidents[d["incident"]] for d in report["detections"]}
    stuck = by_fault["stuck_sensor"]["causes"][0]
    assert (stuck["kind"], stuck["column"], stuck["detail"]["check"]) == (
        "quality",
        "pressure_bar",
        "stuck",
    )
    unit = by_fault["unit_change"]["causes"][0]
    assert unit["column"] == "temperature_c"
    assert unit["detail"]["conversion"] == "°C → °F"
    null = by_fault["null_column"]
    assert null["shift"] == "data_quality"
    upstream = null["causes"][0]
    assert (upstream["kind"], upstream["column"]) == ("upstream", "humidity_pct")
    assert upstream["detail"]["step"] == "featurize"
    assert upstream["detail"]["code_version"] == "featurize 1.5.0"
    assert "featurize 1.4.0 → featurize 1.5.0" in upstream["title"]
    # the symptom is ranked next, and names the release it began with
    symptom = next(c for c in null["causes"] if c["kind"] == "quality")
    assert symptom["column"] == "humidity_pct"
    assert any("began with run" in e for e in symptom["evidence"])
    drift = by_fault["gradual_drift"]["causes"][0]
    assert (drift["kind"], drift["column"]) == ("drift", "vibration_mm_s")
    assert "likeliest cause" in output


def test_a_prediction_traces_back_to_the_release_and_the_raw_data(
    demo: tuple[dict[str, Any], str, Path],
) -> None:
    from mlwarden.lineage import Lineage
    from mlwarden.store.rowlog import RowLog

    report, _, out = demo
    bug = next(f for f in report["faults"] if f["kind"] == "null_column")
    row = int((datetime.fromisoformat(bug["start"]) - START) / timedelta(seconds=30)) + 10
    store = Store(f"sqlite:///{out / 'service' / 'mlwarden.db'}")
    trace = Lineage(store).trace_prediction(MODEL, f"r{row}", RowLog(out / "service" / "log"))
    steps = {r.name: r for r in trace.upstream}
    assert steps["featurize"].code_version == "featurize 1.5.0"
    assert "extract" in steps
    assert {a.name.split("/")[0] for a in trace.raw_inputs} == {"historian"}
    runs = Lineage(store).runs(limit=1_000)
    assert {r.name for r in runs} == {"train", "extract", "featurize", "score"}
    assert all(r.status == "succeeded" for r in runs)
    store.close()


def test_policies_quarantine_broken_readings_and_ask_before_retraining(
    demo: tuple[dict[str, Any], str, Path],
) -> None:
    report, output, _ = demo
    by_fault = {d["fault"]: d["incident"] for d in report["detections"]}
    taken = report["actions"]
    quarantined = {a["incident_id"]: a for a in taken if a["action"] == "quarantine"}
    for fault in ("stuck_sensor", "unit_change", "null_column"):
        action = quarantined[by_fault[fault]]
        assert action["status"] == "done"
        result = action["detail"]["result"]
        assert result["quarantined"] > 0
        assert Path(result["path"]).is_file()
    keys = [a["key"] for a in taken]
    assert len(keys) == len(set(keys)), "each action once per incident"
    retrain = [a for a in taken if a["action"] == "retrain"]
    assert retrain, "the lasting vibration drift asks for a retraining"
    assert all(a["status"] == "pending" for a in retrain), "which waits for a person"
    assert "What the reaction policies did" in output


def test_operators_override_more_during_sensor_faults_and_the_diagnosis_names_the_sensor(
    demo: tuple[dict[str, Any], str, Path],
) -> None:
    report, output, _ = demo
    people = report["operators"]
    during, total = people["overridden_during_faults"]
    calm, calm_total = people["overridden_otherwise"]
    assert total > 0
    assert calm_total > 0
    assert during / total > 3 * calm / calm_total
    sensor_faults = {
        d["incident"]: d["column"]
        for d in report["detections"]
        if d["fault"] in ("stuck_sensor", "unit_change", "null_column")
    }
    linked = [
        alert
        for alert in people["override_alerts"]
        if alert["incident"] in sensor_faults
        and alert["sensor"] == sensor_faults[alert["incident"]]
    ]
    assert linked, people["override_alerts"]
    assert "Override-rate alerts" in output


def test_the_version_keeps_its_alert_budget_and_meets_it_on_held_out_windows(
    demo: tuple[dict[str, Any], str, Path],
) -> None:
    _, output, out = demo
    store = Store(f"sqlite:///{out / 'service' / 'mlwarden.db'}")
    alerting = store.get_version(MODEL, "1").meta["alerting"]
    assert alerting["budget"] == {"false_incidents": 1.0, "days": 90.0}
    held = alerting["held_out"]
    assert held["windows"] >= 80
    assert held["incidents"] == 0
    assert any("temperature_c is compared within 'recipe'" in r for r in alerting["regimes"])
    assert "Alert budget: 1 false incident per 90 days" in output
    for incident in store.incidents(MODEL):
        assert incident["rule"], "every incident says which rule opened it"
        assert incident["surprise"] is not None
        assert 0 < incident["surprise"] < 0.05
    store.close()


def test_drift_of_every_sensor_can_alarm(demo: tuple[dict[str, Any], str, Path]) -> None:
    """Each sensor shifted past the range its reference showed is found as drift of that very
    sensor: no bound of a sensor's drift lies beyond what its statistic can reach."""
    from mlwarden.datasets import SENSOR_COLUMNS
    from mlwarden.registry import Registry
    from mlwarden.service.backtest import backtest

    _, _, out = demo
    store = Store(f"sqlite:///{out / 'service' / 'mlwarden.db'}")
    registry = Registry(store)
    version = registry.reference(MODEL, "1")
    rows = registry.reference_rows(MODEL, "1")
    assert rows is not None
    day = rows.filter(pl.col("timestamp") < rows["timestamp"].min() + timedelta(days=1))
    for sensor in SENSOR_COLUMNS:
        span = rows[sensor].max() - rows[sensor].min()  # type: ignore[operator]
        shifted = day.with_columns(pl.col(sensor) + span)
        found = {
            (m.name, m.column)
            for window in backtest(version, shifted).windows
            for m in window.alerts
        }
        assert any(column == sensor and name.startswith("drift.") for name, column in found), (
            f"a shift of {sensor} is not found as its drift: {sorted(found)}"
        )
    store.close()
