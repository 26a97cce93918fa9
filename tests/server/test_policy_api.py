"""The policy routes of the HTTP API, on the real app: a stuck sensor evaluated into an incident,
a policy whose rollback waits for approval, then the audit log read and the action approved or
rejected with tokens."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from mlwarden.datasets import StuckSensor, production_line
from mlwarden.react.policies import apply_policies, load_policies
from mlwarden.registry import Registry
from mlwarden.server import Settings, create_app
from mlwarden.service import evaluate
from mlwarden.store.metadata import Store
from mlwarden.store.rowlog import RowLog
from tests.server.conftest import API, auth

POLICIES = """
policies:
  - name: stuck-sensor
    when: {metric: quality, column: "stuck(*)"}
    actions:
      - rollback: {alias: production}
      - webhook: {url: "http://127.0.0.1:9/hook", approval: required}
      - notify: {channels: [log]}
"""


@pytest.fixture
def server(tmp_path: Path) -> Iterator[tuple[TestClient, Store, dict[str, str], dict[str, int]]]:
    settings = Settings(data_dir=tmp_path)
    store = settings.store()
    registry = Registry(store)
    reference = production_line(8_000, seed=1)
    for version in ("1", "2"):
        registry.register("line", version, reference, timestamp="timestamp")
        registry.promote("line", version)
    log = RowLog(tmp_path / "log")
    rows = production_line(
        1_080,
        seed=2,
        start=reference["timestamp"].max() + timedelta(seconds=10),
        faults=[StuckSensor(column="pressure_bar", start_row=300, n_rows=400)],
    )
    log.append("line", "2", rows, batch_id="b1")
    now = rows["timestamp"].max() + timedelta(hours=1)
    evaluate(store, log, "line", "production", now=now)
    records = apply_policies(store, log, load_policies(POLICIES), now=now)
    ids = {r.action: r.id for r in records}
    tokens = {
        "write": store.create_token("ops", "write"),
        "read": store.create_token("ui", "read"),
    }
    with TestClient(create_app(settings)) as client:
        yield client, store, tokens, ids
    store.close()


Server = tuple[TestClient, Store, dict[str, str], dict[str, int]]


def test_the_audit_log_is_read_with_a_read_token(server: Server) -> None:
    client, _, tokens, ids = server
    url = f"{API}/models/line/actions"
    assert client.get(url).status_code == 401
    listed = client.get(url, headers=auth(tokens["read"]))
    assert listed.status_code == 200
    docs: list[dict[str, Any]] = listed.json()
    assert [d["id"] for d in docs] == sorted(ids.values(), reverse=True), "newest first"
    by_action = {d["action"]: d for d in docs}
    assert by_action["rollback"]["status"] == "pending"
    assert by_action["notify"]["status"] == "done"
    assert (
        by_action["rollback"]["condition"] == "an alert of quality on column stuck(*) (whole data)"
    )
    assert by_action["rollback"]["detail"]["evidence"][0]["column"] == "stuck(pressure_bar)"
    incident = by_action["rollback"]["incident_id"]
    assert (
        len(client.get(url, params={"incident": incident}, headers=auth(tokens["read"])).json())
        == 3
    )
    assert (
        client.get(url, params={"incident": incident + 1}, headers=auth(tokens["read"])).json()
        == []
    )

    one = client.get(f"{API}/actions/{ids['rollback']}", headers=auth(tokens["read"]))
    assert one.status_code == 200
    assert one.json()["key"] == f"stuck-sensor/0:rollback/incident-{incident}"
    missing = client.get(f"{API}/actions/999", headers=auth(tokens["read"]))
    assert missing.status_code == 404
    assert missing.json()["detail"] == "No policy action with id 999."
    assert client.get(f"{API}/models/lin/actions", headers=auth(tokens["read"])).status_code == 404


def test_approve_and_reject_need_a_write_token_and_decide_once(server: Server) -> None:
    client, store, tokens, ids = server
    approve = f"{API}/actions/{ids['rollback']}/approve"
    body = {"by": "alice", "comment": "the sensor froze after the update"}
    assert client.post(approve, json=body).status_code == 401
    assert client.post(approve, json=body, headers=auth(tokens["read"])).status_code == 403
    assert store.aliases("line") == {"production": "2"}
    missing_by = client.post(approve, json={"comment": "x"}, headers=auth(tokens["write"]))
    assert missing_by.status_code == 422

    done = client.post(approve, json=body, headers=auth(tokens["write"]))
    assert done.status_code == 200, done.text
    doc = done.json()
    assert (doc["status"], doc["decided_by"]) == ("done", "alice")
    assert doc["detail"]["result"] == {"alias": "production", "from": "2", "to": "1"}
    assert doc["detail"]["decision"]["comment"] == "the sensor froze after the update"
    assert store.aliases("line") == {"production": "1"}
    assert store.alias_history("line", "production")[-1].changed_by == "alice"

    again = client.post(approve, json={"by": "bob"}, headers=auth(tokens["write"]))
    assert again.status_code == 409
    assert again.json()["detail"].startswith(
        f"Action {ids['rollback']} was already decided by alice"
    )

    reject = f"{API}/actions/{ids['webhook']}/reject"
    rejected = client.post(reject, json={"by": "bob"}, headers=auth(tokens["write"]))
    assert rejected.status_code == 200
    assert rejected.json()["status"] == "rejected"
    assert "result" not in rejected.json()["detail"]
    not_pending = client.post(
        f"{API}/actions/{ids['notify']}/approve", json={"by": "bob"}, headers=auth(tokens["write"])
    )
    assert not_pending.status_code == 409
    assert "needs no decision" in not_pending.json()["detail"]
    unknown = client.post(
        f"{API}/actions/999/reject", json={"by": "bob"}, headers=auth(tokens["write"])
    )
    assert unknown.status_code == 404


def test_the_routes_are_documented(server: Server) -> None:
    client, _, _, _ = server
    paths = client.get("/openapi.json").json()["paths"]
    for path in (
        "/models/{model}/actions",
        "/actions/{action_id}",
        "/actions/{action_id}/approve",
        "/actions/{action_id}/reject",
    ):
        assert f"{API}{path}" in paths
