"""Reaction policies on real evaluations: a model registered on generated data, a stuck pressure
sensor logged and evaluated into alerts and an incident, then policies that act on it — once per
incident, dry runs, approvals, rollback, quarantine, retraining, webhooks — on SQLite and
PostgreSQL; the policy file's errors; the ``policy`` commands."""

from __future__ import annotations

import json
import logging
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import ModuleType, SimpleNamespace
from typing import Any

import polars as pl
import pytest
from click.testing import CliRunner

from mlwarden.datasets import StuckSensor, production_line
from mlwarden.diagnosis.slices import Slice
from mlwarden.exceptions import ConflictError, NotFoundError, ParameterError
from mlwarden.react.actions import Action, available_actions, parse_action
from mlwarden.react.cli import policy_group
from mlwarden.react.policies import (
    PolicyError,
    actions,
    apply_policies,
    decide,
    get_action,
    load_policies,
)
from mlwarden.react.training import suggest_training_set
from mlwarden.registry import Registry
from mlwarden.service import evaluate
from mlwarden.service.scheduler import Scheduler
from mlwarden.store.metadata import Store
from mlwarden.store.rowlog import RowLog
from tests.react.test_channels import Endpoint


@dataclass(frozen=True)
class Fitted:
    reference: pl.DataFrame
    meta: dict[str, Any]
    artifacts: dict[str, bytes]


@dataclass(frozen=True)
class Line:
    """A model 'line' with versions 1 and 2 (production moved 1 → 2), six hours of version 2's
    rows with the pressure sensor stuck for 400 readings, evaluated."""

    store: Store
    log: RowLog
    data_dir: Path
    rows: pl.DataFrame
    now: datetime
    incident: int


@pytest.fixture(scope="module")
def fitted() -> Iterator[Fitted]:
    """The reference of a version, registered once: every test copies its artifacts."""
    reference = production_line(10_000, seed=1)
    store = Store("sqlite://")
    record = Registry(store).register(
        "line", "1", reference, timestamp="timestamp", roles={"defect": "target"}
    )
    artifacts = {kind: store.artifact("line", "1", kind) for kind in record.artifacts}
    yield Fitted(reference, record.meta, artifacts)
    store.close()


def build_line(store: Store, data_dir: Path, fitted: Fitted, start: datetime | None = None) -> Line:
    store.create_model("line")
    for version in ("1", "2"):
        store.create_version("line", version, artifacts=fitted.artifacts, meta=fitted.meta)
    store.set_alias("line", "production", "1")
    store.set_alias("line", "production", "2")
    start = start or fitted.reference["timestamp"].max() + timedelta(seconds=10)
    rows = production_line(
        1_440,
        seed=2,
        start=start,
        faults=[StuckSensor(column="pressure_bar", start_row=400, n_rows=400)],
    ).with_row_index("id")
    rows = rows.with_columns(pl.col("id").cast(pl.String))
    log = RowLog(data_dir / "log")
    log.append("line", "2", rows.drop("defect"), batch_id="day-1")
    now = rows["timestamp"].max() + timedelta(hours=1)
    outcomes = evaluate(store, log, "line", "production", now=now)
    incidents = {o.incident for o in outcomes if o.incident is not None}
    assert len(incidents) == 1, "the stuck sensor is one incident"
    return Line(store, log, data_dir, rows, now, incidents.pop())


@pytest.fixture
def line(store: Store, tmp_path: Path, fitted: Fitted) -> Line:
    return build_line(store, tmp_path, fitted)


def policies(
    actions_yaml: str,
    when: str = '{metric: "quality*", column: "*pressure*"}',
    name: str = "stuck-sensor",
) -> Any:
    return load_policies(
        f"""
policies:
  - name: {name}
    model: "li*"
    when: {when}
    actions:
{actions_yaml}
"""
    )


def run(line: Line, found: Any, **kwargs: Any) -> list[Any]:
    return apply_policies(line.store, line.log, found, now=line.now, **kwargs)


# -- once per incident ---------------------------------------------------------------------------


def test_a_policy_fires_its_actions_once_per_incident(
    line: Line, caplog: pytest.LogCaptureFixture
) -> None:
    found = policies(
        '      - notify: {channels: [log], message: "{model}: pressure stuck ({incident})"}\n'
        "      - incident: close\n"
    )
    with caplog.at_level(logging.WARNING, logger="mlwarden.alerts"):
        first = run(line, found)
        again = run(line, found) + run(line, found)
    assert [(r.action, r.status) for r in first] == [("notify", "done"), ("incident", "done")]
    assert again == []
    assert caplog.text.count(f"line: pressure stuck ({line.incident})") == 1
    notify = first[0]
    assert notify.incident_id == line.incident
    assert notify.key == f"stuck-sensor/0:notify/incident-{line.incident}"
    assert notify.condition == ("an alert of quality* on column *pressure* (whole data)"), (
        "the audit log keeps the condition that fired"
    )
    evidence = notify.detail["evidence"]
    assert {e["column"] for e in evidence} == {"stuck(pressure_bar)"}
    assert all(e["value"] == 1.0 and e["upper"] == 0.0 for e in evidence)
    assert {e["severity"] for e in evidence} == {"error"}
    closed = {i["id"]: i["status"] for i in line.store.incidents("line")}
    assert closed[line.incident] == "closed"
    assert [r.id for r in actions(line.store, "line")] == [first[1].id, first[0].id]


def test_concurrent_runs_fire_each_action_once(line: Line) -> None:
    found = policies("      - notify: {channels: [log]}\n      - quarantine: {}\n")
    stores = [Store(line.store.url, schema=line.store.schema) for _ in range(3)]
    barrier = threading.Barrier(len(stores))
    fired: list[Any] = []
    lock = threading.Lock()

    def apply(s: Store) -> None:
        barrier.wait()
        records = apply_policies(s, line.log, found, now=line.now)
        with lock:
            fired.extend(records)

    threads = [threading.Thread(target=apply, args=(s,)) for s in stores]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    for s in stores:
        s.close()
    assert sorted(r.action for r in fired) == ["notify", "quarantine"]
    assert len(actions(line.store, "line")) == 2


def test_a_dry_run_changes_nothing_and_a_real_run_still_fires(line: Line) -> None:
    found = policies(
        "      - rollback: {approval: none}\n      - quarantine: {}\n      - incident: open\n"
    )
    dry = run(line, found, dry_run=True)
    assert [(r.action, r.status, r.dry_run) for r in dry] == [
        ("rollback", "dry_run", True),
        ("quarantine", "dry_run", True),
        ("incident", "dry_run", True),
    ]
    assert dry[0].detail["would"] == "move alias 'production' of line from 2 to 1"
    assert str(line.data_dir / "quarantine" / "line") in dry[1].detail["would"]
    assert line.store.aliases("line") == {"production": "2"}
    assert not (line.data_dir / "quarantine").exists()
    assert {i["id"]: i["status"] for i in line.store.incidents("line")}[line.incident] == "closed"
    assert run(line, found, dry_run=True) == [], "a dry run is recorded once too"

    real = run(line, found)
    assert [(r.action, r.status) for r in real] == [
        ("rollback", "done"),
        ("quarantine", "done"),
        ("incident", "done"),
    ]
    assert line.store.aliases("line") == {"production": "1"}
    assert {i["id"]: i["status"] for i in line.store.incidents("line")}[line.incident] == "open"
    assert len(actions(line.store, "line", incident=line.incident)) == 6


# -- rollback and approval -----------------------------------------------------------------------


def test_rollback_moves_the_alias_to_the_previous_version(line: Line) -> None:
    (record,) = run(line, policies("      - rollback: {alias: production, approval: none}\n"))
    assert record.status == "done"
    assert record.detail["result"] == {"alias": "production", "from": "2", "to": "1"}
    assert line.store.resolve("line", "production").version == "1"
    last = line.store.alias_history("line", "production")[-1]
    assert (last.version, last.previous) == ("1", "2")
    assert last.changed_by == "policy stuck-sensor"


def test_approval_required_waits_until_approved(line: Line) -> None:
    found = policies("      - rollback: {}\n      - notify: {channels: [log]}\n")
    rollback, notify = run(line, found)
    assert (rollback.status, notify.status) == ("pending", "done"), "only rollback waits"
    assert line.store.aliases("line") == {"production": "2"}
    assert run(line, found) == [], "a pending action is not fired again"

    done = decide(line.store, line.log, rollback.id, approve=True, by="alice", comment="ok")
    assert (done.status, done.decided_by) == ("done", "alice")
    assert done.detail["decision"]["comment"] == "ok"
    assert done.detail["result"]["to"] == "1"
    assert line.store.aliases("line") == {"production": "1"}
    assert line.store.alias_history("line", "production")[-1].changed_by == "alice"
    with pytest.raises(ConflictError, match="already decided by alice"):
        decide(line.store, line.log, rollback.id, approve=False, by="bob")
    with pytest.raises(ConflictError, match="needs no decision"):
        decide(line.store, line.log, notify.id, approve=True, by="bob")
    with pytest.raises(NotFoundError, match="No policy action with id 999"):
        decide(line.store, line.log, 999, approve=True, by="bob")


def test_a_rejected_action_stays_undone(line: Line) -> None:
    (pending,) = run(line, policies("      - rollback: {}\n"))
    with pytest.raises(ParameterError, match="'by' must name a person"):
        decide(line.store, line.log, pending.id, approve=False, by=" ")
    rejected = decide(line.store, line.log, pending.id, approve=False, by="bob", comment="no")
    assert (rejected.status, rejected.decided_by) == ("rejected", "bob")
    assert "result" not in rejected.detail
    assert line.store.aliases("line") == {"production": "2"}
    assert get_action(line.store, pending.id).status == "rejected"
    with pytest.raises(ConflictError, match="already decided by bob"):
        decide(line.store, line.log, pending.id, approve=True, by="alice")


# -- conditions ----------------------------------------------------------------------------------


def test_consecutive_windows_not_reached_fire_nothing(line: Line) -> None:
    stuck = '{metric: quality, column: "stuck(*)", consecutive: %d}'
    # The 400 flat readings span two hourly windows.
    assert run(line, policies("      - notify: {channels: [log]}\n", stuck % 3)) == []
    (fired,) = run(line, policies("      - notify: {channels: [log]}\n", stuck % 2))
    assert len({e["window_id"] for e in fired.detail["evidence"]}) == 2


@pytest.mark.parametrize(
    ("when", "fires"),
    [
        ("{metric: quality, severity: error, incident: closed}", True),
        ("{metric: quality, severity: warning}", False),
        ("{metric: quality, incident: open}", False),
        ('{metric: "drift.*"}', False),
        ('{metric: quality, segment: "*"}', True),
        ('{metric: quality, column: "*humidity*"}', False),
    ],
)
def test_conditions_pick_alerts_by_name_severity_and_incident(
    line: Line, when: str, fires: bool
) -> None:
    assert bool(run(line, policies("      - notify: {channels: [log]}\n", when))) == fires


def test_only_recent_windows_act(line: Line) -> None:
    found = policies("      - notify: {channels: [log]}\n")
    later = line.now + timedelta(days=2)
    assert apply_policies(line.store, line.log, found, now=later) == []
    assert len(apply_policies(line.store, line.log, found, now=later, lookback=None)) == 1


def test_a_condition_on_values_fires_once_per_run_of_windows(line: Line) -> None:
    when = '{metric: quality, column: "stuck(pressure_bar)", above: 0.5, consecutive: 2}'
    (fired,) = run(line, policies("      - incident: open\n", when))
    first_window = min(e["window_id"] for e in fired.detail["evidence"])
    assert fired.key == f"stuck-sensor/0:incident/window-{first_window}"
    assert fired.incident_id is None
    assert fired.condition == (
        "quality > 0.5 on column stuck(pressure_bar) (whole data) in 2 consecutive windows"
    )
    opened = fired.detail["result"]["incident"]
    assert {i["id"]: i["status"] for i in line.store.incidents("line")}[opened] == "open"
    assert run(line, policies("      - incident: open\n", when)) == []


def test_a_model_glob_that_matches_no_model_fires_nothing(line: Line) -> None:
    (policy,) = load_policies(
        "policies:\n  - name: other\n    model: press-*\n    when: {metric: quality}\n"
        "    actions: [{notify: {channels: [log]}}]\n"
    )
    assert run(line, [policy]) == []
    with pytest.raises(NotFoundError, match="No model named 'lin'"):
        run(line, [policy], model="lin")


# -- actions -------------------------------------------------------------------------------------


def test_quarantine_writes_the_rejected_rows(line: Line) -> None:
    (record,) = run(line, policies("      - quarantine: {}\n"))
    result = record.detail["result"]
    assert record.status == "done"
    path = Path(result["path"])
    window = line.store.window(record.window_id)  # type: ignore[arg-type]
    assert path == line.data_dir / "quarantine" / "line" / f"{window.start:%Y%m%dT%H%M%SZ}.parquet"
    rejected = pl.read_parquet(path)
    assert rejected.height == result["quarantined"] > 0
    assert result["accepted"] + result["repaired"] + result["quarantined"] == window.n_rows
    assert result["reasons"]["stuck(pressure_bar)"] > 0
    stuck = rejected.filter(pl.col("reasons").list.contains("stuck(pressure_bar)"))
    assert stuck.height > 0
    in_window = line.rows.filter(
        (pl.col("timestamp") >= window.start) & (pl.col("timestamp") < window.end)
    )
    assert set(rejected["id"].to_list()) <= set(in_window["id"].to_list())


TRAIN = """
import json, sys
import polars as pl
frame = pl.read_parquet(sys.argv[1])
l3 = pl.col("line").cast(pl.String) == "L3"
doc = {
    "rows": frame.height,
    "mean": frame["sample_weight"].mean(),
    "l3": frame.filter(l3)["sample_weight"].mean(),
    "rest": frame.filter(~l3)["sample_weight"].mean(),
    "model": sys.argv[3],
    "incident": sys.argv[4],
}
open(sys.argv[2], "w").write(json.dumps(doc))
print("trained on", frame.height, "rows")
"""


def fake_diagnosis(monkeypatch: pytest.MonkeyPatch, shift: str, grown: list[Slice]) -> list[int]:
    """Stand in for the incident diagnosis: every incident shows ``shift`` and ``grown``."""
    asked: list[int] = []
    module = ModuleType("mlwarden.diagnosis.incident")

    def diagnose(store: Store, rowlog: RowLog, incident_id: int) -> Any:
        asked.append(incident_id)
        return SimpleNamespace(shift=shift, grown=tuple(grown))

    module.diagnose = diagnose  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "mlwarden.diagnosis.incident", module)
    return asked


def test_retrain_runs_the_command_on_a_training_set_weighted_toward_grown_slices(
    line: Line, fitted: Fitted, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    grown = Slice((("line", "= L3"),), 500, 0.5, 0.9, 0.3, 0.6, 1e-9, 1e-8)
    asked = fake_diagnosis(monkeypatch, "input_drift", [grown])
    script, marker = tmp_path / "train.py", tmp_path / "trained.json"
    script.write_text(TRAIN)
    command = [sys.executable, str(script), "{training_set}", str(marker), "{model}", "{incident}"]
    found = policies(f"      - retrain: {{command: {json.dumps(command)}, timeout: 120}}\n")
    (pending,) = run(line, found)
    assert pending.status == "pending", "retraining waits for approval by default"
    assert not marker.exists()

    record = decide(line.store, line.log, pending.id, approve=True, by="alice")
    assert record.status == "done", record.detail
    assert asked == [line.incident]
    result = record.detail["result"]
    assert result["exit_code"] == 0
    assert "trained on 10000 rows" in result["stdout_tail"]
    training = result["training_set"]
    assert (training["shift"], training["source"], training["rows"]) == (
        "input_drift",
        "reference",
        10_000,
    )
    assert Path(training["path"]).parent == line.data_dir / "training"
    doc = json.loads(marker.read_text())
    assert (doc["model"], doc["incident"]) == ("line", str(line.incident))
    share_reference = (fitted.reference["line"].cast(pl.String) == "L3").mean()
    assert doc["mean"] == pytest.approx(1.0)
    assert doc["l3"] / doc["rest"] == pytest.approx(0.5 / share_reference)
    assert training["slices"][0]["share_reference"] == pytest.approx(share_reference)


def test_a_failing_or_slow_training_command_fails_the_action(
    line: Line, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake_diagnosis(monkeypatch, "data_quality", [])
    fails = [sys.executable, "-c", "import sys; print('bad data', file=sys.stderr); sys.exit(3)"]
    sleeps = [sys.executable, "-c", "import time; time.sleep(30)"]
    found = policies(
        f"      - retrain: {{command: {json.dumps(fails)}, approval: none}}\n"
        f"      - retrain: {{command: {json.dumps(sleeps)}, approval: none, timeout: 0.5}}\n"
    )
    failed, slow = run(line, found)
    assert failed.status == "failed"
    assert failed.detail["error"] == "The training command exited with status 3."
    assert failed.detail["result"]["stderr_tail"].strip() == "bad data"
    assert failed.detail["result"]["training_set"]["source"] == "reference"
    assert slow.status == "failed"
    assert "did not finish within 0.5 seconds" in slow.detail["error"]
    assert slow.detail["result"]["exit_code"] is None


def test_retraining_without_a_diagnosis_uses_the_plain_reference(
    line: Line, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "mlwarden.diagnosis.incident", None)  # import fails
    command = [sys.executable, "-c", "print('ok')"]
    (record,) = run(
        line, policies(f"      - retrain: {{command: {json.dumps(command)}, approval: none}}\n")
    )
    assert record.status == "done"
    assert record.detail["result"]["training_set"]["shift"] == "unknown"
    assert record.detail["result"]["diagnosis"] == "the incident diagnosis is not available"
    weights = pl.read_parquet(record.detail["result"]["training_set"]["path"])["sample_weight"]
    assert weights.unique().to_list() == [1.0]


def test_concept_drift_trains_on_the_newest_labelled_rows(line: Line) -> None:
    labelled = line.rows.head(500)
    labels = labelled.select("id", "defect").with_columns(
        timestamp=pl.lit(line.now, dtype=pl.Datetime("us", "UTC"))
    )
    line.log.append_labels("line", labels, batch_id="labels-1")
    evaluate(line.store, line.log, "line", "production", now=line.now)
    out = line.data_dir / "concept.parquet"
    training = suggest_training_set(
        line.store, line.log, "line", shift="concept_drift", grown=[], out=out, now=line.now
    )
    assert training.source == "labelled_windows"
    frame = pl.read_parquet(out)
    assert frame.height == training.rows == 500
    assert frame["defect"].null_count() == 0
    joined = frame.join(labelled.select("id", pl.col("defect").alias("truth")), on="id")
    assert (joined["defect"] == joined["truth"]).all(), "each row has its own label"
    assert not [c for c in frame.columns if c.startswith("_") or c.endswith("_label")]
    assert frame["sample_weight"].unique().to_list() == [1.0]


def test_suggest_training_set_checks_the_shift(line: Line) -> None:
    with pytest.raises(ParameterError, match=r"'shift' parameter .* one of input_drift"):
        suggest_training_set(
            line.store, line.log, "line", shift="drift", grown=[], out=line.data_dir / "t.parquet"
        )


def test_webhook_posts_the_incident_and_a_dead_endpoint_fails(line: Line) -> None:
    endpoint = Endpoint()
    try:
        found = policies(
            f"      - webhook: {{url: '{endpoint.url}/hook'}}\n"
            "      - webhook: {url: 'http://127.0.0.1:9/hook', timeout: 2}\n"
        )
        posted, dead = run(line, found)
    finally:
        endpoint.close()
    assert posted.status == "done"
    assert posted.detail["result"]["status"] == 200
    (doc,) = endpoint.received
    assert (doc["policy"], doc["model"], doc["incident"]) == ("stuck-sensor", "line", line.incident)
    assert doc["key"] == posted.key
    assert doc["evidence"][0]["column"] == "stuck(pressure_bar)"
    assert dead.status == "failed"
    assert "could not be reached" in dead.detail["error"]


def test_notify_without_channels_uses_the_callers(
    line: Line, caplog: pytest.LogCaptureFixture
) -> None:
    from mlwarden.react import Dispatcher

    (unsent,) = run(line, policies("      - notify: {}\n", name="nowhere"))
    assert unsent.status == "failed"
    assert "no channels" in unsent.detail["error"]
    assert run(line, policies("      - notify: {}\n", name="nowhere")) == [], "never retried"
    with (
        caplog.at_level(logging.WARNING, logger="mlwarden.alerts"),
        Dispatcher(["log"]) as dispatcher,
    ):
        (sent,) = run(line, policies("      - notify: {}\n", name="callers"), notify=dispatcher)
    assert sent.status == "done"
    assert "policy callers: an alert of quality*" in caplog.text


def test_the_scheduler_applies_policies_after_each_evaluation(
    store: Store, tmp_path: Path, fitted: Fitted
) -> None:
    # The schedule judges what happened in the last day, as it runs now.
    start = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=6)
    line = build_line(store, tmp_path, fitted, start=start)
    found = policies("      - quarantine: {}\n")
    scheduler = Scheduler(store, line.log, every=60, policies=found)
    scheduler.run_once()
    (record,) = actions(store, "line")
    assert record.status == "done"
    assert Path(record.detail["result"]["path"]).parent == tmp_path / "quarantine" / "line"


# -- the policy file -----------------------------------------------------------------------------

GOOD_ACTION = "[{notify: {channels: [log]}}]"


def one_policy(when: str = "{metric: quality}", acts: str = GOOD_ACTION, name: str = "p") -> str:
    return f"policies:\n  - name: {name}\n    when: {when}\n    actions: {acts}\n"


@pytest.mark.parametrize(
    ("text", "field", "message"),
    [
        (
            one_policy("{metric: quality, consecutive: 0}"),
            "when.consecutive",
            "policy 'p': when.consecutive: expected an integer ≥ 1, got 0",
        ),
        (
            one_policy("{metric: quality, severity: fatal}"),
            "when.severity",
            "policy 'p': when.severity: expected 'error' or 'warning', got 'fatal'",
        ),
        (
            one_policy("{metric: quality, colum: x}"),
            "when.colum",
            "policy 'p': when.colum: unknown field; expected one of above, below, column, "
            "consecutive, incident, metric, segment, severity. Did you mean 'column'?",
        ),
        (one_policy("{column: x}"), "when.metric", "policy 'p': when.metric: is required"),
        (
            one_policy("{metric: quality, above: 0.3, incident: open}"),
            "when.incident",
            "policy 'p': when.incident: expected no incident state on a condition over metric "
            "values",
        ),
        (
            one_policy("{metric: quality, above: 0.3, below: 0.5}"),
            "when.below",
            "policy 'p': when.below: expected a number below 'above' (0.3)",
        ),
        (
            one_policy(acts="[{rolback: {}}]"),
            "actions[0]",
            "policy 'p': actions[0]: 'rolback' is not an action. Available: incident, notify, "
            "quarantine, retrain, rollback, webhook. Did you mean 'rollback'?",
        ),
        (
            one_policy(acts="[{rollback: {approval: maybe}}]"),
            "actions[0].rollback.approval",
            "policy 'p': actions[0].rollback.approval: expected 'required' or 'none', got 'maybe'",
        ),
        (
            one_policy(acts="[{retrain: {command: python train.py}}]"),
            "actions[0].retrain.command",
            "policy 'p': actions[0].retrain.command: expected a list of strings, got "
            "'python train.py'",
        ),
        (
            one_policy(acts="[{retrain: {command: [python, '{trainingset}']}}]"),
            "actions[0].retrain.command[1]",
            "policy 'p': actions[0].retrain.command[1]: unknown placeholder {trainingset}",
        ),
        (
            one_policy(acts="[{retrain: {command: [python], timeout: -1}}]"),
            "actions[0].retrain.timeout",
            "policy 'p': actions[0].retrain.timeout: expected a positive number, got -1",
        ),
        (
            one_policy(acts="[{webhook: {url: 'ftp://x'}}]"),
            "actions[0].webhook.url",
            "policy 'p': actions[0].webhook.url: expected an http(s) URL, got 'ftp://x'",
        ),
        (
            one_policy(acts="[{notify: {channels: [slak]}}]"),
            "actions[0].notify.channels[0]",
            "policy 'p': actions[0].notify.channels[0]: 'slak' is not an alert channel",
        ),
        (
            one_policy(acts="[{notify: {message: 'stuck {sensor}'}}]"),
            "actions[0].notify.message",
            "policy 'p': actions[0].notify.message: unknown placeholder {sensor}",
        ),
        (
            one_policy(acts="[{incident: shut}]"),
            "actions[0].incident.state",
            "policy 'p': actions[0].incident.state: expected 'open' or 'close', got 'shut'",
        ),
        (
            one_policy(acts="[{notify: {}, quarantine: {}}]"),
            "actions[0]",
            "policy 'p': actions[0]: expected one action as a mapping",
        ),
        (one_policy(acts="[]"), "actions", "policy 'p': actions: expected a non-empty list"),
        (
            one_policy(name="'bad name'"),
            "policies[0].name",
            "policies[0].name: expected 1-200 letters",
        ),
        (
            one_policy() + one_policy()[len("policies:\n") :],
            "policies[1].name",
            "policies[1].name: expected a unique name; policies[0] has it too",
        ),
        ("rules: []\n", "rules", "rules: unknown field; expected one of policies."),
        ("policies:\n", "policies", "policies: expected a non-empty list of policies"),
    ],
)
def test_policy_file_errors_name_the_policy_and_the_field(
    text: str, field: str, message: str
) -> None:
    with pytest.raises(PolicyError) as caught:
        load_policies(text)
    assert str(caught.value).startswith(message)
    assert caught.value.field == field


def test_policy_files_are_read_from_paths(tmp_path: Path) -> None:
    path = tmp_path / "policies.yaml"
    path.write_text("policies:\n  - name: p\n    when: {metric: [quality\n")
    with pytest.raises(PolicyError, match=r"policies.yaml, line 4: this is not valid YAML"):
        load_policies(path)
    path.write_text(one_policy("{metric: quality, consecutive: 0}"))
    with pytest.raises(PolicyError) as caught:
        load_policies(path)
    assert caught.value.path == str(path)
    assert caught.value.policy == "p"
    with pytest.raises(PolicyError, match="No policy file"):
        load_policies(tmp_path / "missing.yaml")


@pytest.mark.parametrize("key", available_actions())
def test_action_contract(key: str) -> None:
    import pickle

    cls = Action._registry[key]
    assert ">>>" in (cls.__doc__ or ""), "the docstring needs a runnable example"
    action = parse_action("p", "actions[0]", {key: cls.example})
    assert action.key == key
    assert parse_action("p", "actions[0]", {key: action.params()}) == action
    assert pickle.loads(pickle.dumps(action)) == action
    assert action.approval == cls.approval_default
    flipped = {**action.params(), "approval": "none" if action.approval else "required"}
    assert parse_action("p", "actions[0]", {key: flipped}).approval != action.approval


def test_an_action_key_is_registered_once() -> None:
    with pytest.raises(TypeError, match="Action key 'rollback' is taken"):

        class Again(Action, key="rollback"):  # pragma: no cover - never instantiated
            pass


# -- the policy commands -------------------------------------------------------------------------


@pytest.fixture
def sqlite_line(tmp_path: Path, fitted: Fitted) -> Iterator[Line]:
    store = Store(f"sqlite:///{tmp_path / 'mlwarden.db'}")
    store.migrate()
    yield build_line(store, tmp_path, fitted)
    store.close()


def cli(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(policy_group, list(args))
    return result.exit_code, result.stdout, result.stderr


def test_policy_commands(sqlite_line: Line, tmp_path: Path) -> None:
    line = sqlite_line
    file = tmp_path / "policies.yaml"
    file.write_text(
        "policies:\n"
        "  - name: stuck-sensor\n"
        "    description: the pressure sensor froze\n"
        "    when: {metric: quality, column: 'stuck(*)', consecutive: 2}\n"
        "    actions:\n"
        "      - rollback: {alias: production}\n"
        "      - webhook: {url: 'http://127.0.0.1:9/hook', approval: required}\n"
        "      - notify: {channels: [log]}\n"
    )
    where = ["--data-dir", str(tmp_path)]
    code, out, _ = cli("check", str(file))
    assert code == 0
    assert "when an alert of quality on column stuck(*) (whole data) in 2 consecutive" in out
    assert "- rollback alias=production  [approval required]" in out
    assert out.strip().endswith("1 policy OK.")

    code, out, _ = cli("run", str(file), "--dry-run", "--lookback-hours", "0", *where)
    assert code == 0, out
    assert "3 action(s) recorded (dry run)." in out
    assert line.store.aliases("line") == {"production": "2"}

    code, out, _ = cli("run", str(file), "--model", "line", "--lookback-hours", "0", *where)
    assert code == 0, out
    assert "3 action(s) recorded." in out
    assert cli("run", str(file), "--lookback-hours", "0", *where)[1].strip() == (
        "0 action(s) recorded."
    )
    records = {r.action: r for r in actions(line.store, "line") if not r.dry_run}
    assert records["rollback"].status == records["webhook"].status == "pending"

    code, out, _ = cli("actions", "--model", "line", *where)
    assert code == 0
    assert "pending" in out
    assert "dry_run" in out

    code, out, _ = cli("approve", str(records["rollback"].id), "--by", "alice", *where)
    assert code == 0
    assert f"Action {records['rollback'].id} (stuck-sensor: rollback) is done." in out
    assert line.store.aliases("line") == {"production": "1"}
    code, out, _ = cli("reject", str(records["webhook"].id), "--by", "bob", *where)
    assert code == 0
    assert "is rejected" in out

    code, _, err = cli("approve", str(records["rollback"].id), "--by", "carol", *where)
    assert code == 2
    assert err.startswith(f"mlwarden: error: Action {records['rollback'].id} was already decided")
    assert err.count("\n") == 1


def test_policy_command_errors_are_one_line(tmp_path: Path) -> None:
    file = tmp_path / "policies.yaml"
    file.write_text(one_policy("{metric: quality, consecutive: 0}"))
    code, _, err = cli("check", str(file))
    assert code == 2
    assert err == (
        "mlwarden: error: policy 'p': when.consecutive: expected an integer ≥ 1, got 0\n"
    )
    code, _, err = cli("approve", "7", "--by", "alice", "--data-dir", str(tmp_path))
    assert code == 2
    assert err == "mlwarden: error: No policy action with id 7.\n"
