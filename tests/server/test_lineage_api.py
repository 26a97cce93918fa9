"""The lineage API, through the real app: OpenLineage events in (auth, bounds, errors that name
the field), runs with their checks and staleness, traces, and a prediction logged by the client
with its run, traced back to that run over HTTP."""

from __future__ import annotations

import io
import json
import urllib.error
import urllib.request
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import polars as pl

from mlwarden.lineage import Lineage, dataset_hash, run
from mlwarden.monitor import Monitor
from mlwarden.quality import Suite
from mlwarden.server import Settings
from tests.server.conftest import API, Server, auth, serve

T0 = datetime(2024, 5, 1, 8, tzinfo=UTC)
MODEL = "defect-model"


def event(
    kind: str,
    run_id: str,
    job: str,
    at: datetime,
    inputs: tuple[str, ...] = (),
    outputs: tuple[str, ...] = (),
) -> dict[str, Any]:
    return {
        "eventType": kind,
        "eventTime": at.isoformat(),
        "producer": "https://github.com/OpenLineage/OpenLineage/tree/1.9.0/integration/spark",
        "run": {"runId": run_id},
        "job": {"namespace": "plant-7", "name": job},
        "inputs": [{"namespace": "warehouse", "name": n} for n in inputs],
        "outputs": [{"namespace": "warehouse", "name": n} for n in outputs],
    }


def pipeline_events() -> tuple[list[dict[str, Any]], dict[str, str]]:
    """START and COMPLETE of three jobs linked by their datasets."""
    steps = [("extract", ("raw",), ("staging",)), ("featurize", ("staging",), ("features",))]
    steps.append(("train", ("features",), ("model",)))
    events, ids = [], {}
    for i, (job, inputs, outputs) in enumerate(steps):
        ids[job] = str(uuid.uuid4())
        at = T0 + timedelta(hours=i)
        events.append(event("START", ids[job], job, at, inputs))
        events.append(event("COMPLETE", ids[job], job, at + timedelta(minutes=9), (), outputs))
    return events, ids


def test_openlineage_events_need_a_write_token(server: Server) -> None:
    client, _, tokens = server
    body = event("COMPLETE", str(uuid.uuid4()), "extract", T0)
    assert client.post(f"{API}/lineage", json=body).status_code == 401
    assert client.post(f"{API}/lineage", json=body, headers=auth(tokens["read"])).status_code == 403
    reply = client.post(f"{API}/lineage", json=body, headers=auth(tokens["write"]))
    assert reply.status_code == 200, reply.text
    (run_id,) = reply.json()["run_ids"]
    assert client.get(f"{API}/runs/{run_id}").status_code == 401
    got = client.get(f"{API}/runs/{run_id}", headers=auth(tokens["read"])).json()
    assert (got["name"], got["status"], got["external_id"]) == (
        "extract",
        "succeeded",
        body["run"]["runId"],
    )


def test_a_list_of_events_is_ingested_and_traced(server: Server) -> None:
    client, _, tokens = server
    events, ids = pipeline_events()
    reply = client.post(f"{API}/lineage", json=events, headers=auth(tokens["write"]))
    assert reply.status_code == 200, reply.text
    run_ids = reply.json()["run_ids"]
    assert len(run_ids) == 6
    assert len(set(run_ids)) == 3
    read = auth(tokens["read"])

    listed = client.get(f"{API}/runs", headers=read).json()
    assert [r["name"] for r in listed] == ["train", "featurize", "extract"]
    assert [r["name"] for r in client.get(f"{API}/runs?name=train", headers=read).json()] == [
        "train"
    ]
    by_openlineage_id = client.get(f"{API}/runs/{ids['train']}", headers=read).json()
    assert by_openlineage_id["id"] == run_ids[-1]
    features = {"sha256": dataset_hash("warehouse", "features"), "name": "warehouse/features"}
    assert by_openlineage_id["inputs"] == [{**features, "kind": "dataset"}]
    assert by_openlineage_id["stale"] == []

    traced = client.get(f"{API}/trace/{run_ids[-1]}", headers=read).json()
    assert [r["name"] for r in traced["upstream"]] == ["train", "featurize", "extract"]
    assert [a["name"] for a in traced["raw_inputs"]] == ["warehouse/raw"]
    raw = dataset_hash("warehouse", "raw")[:10]
    forward = client.get(f"{API}/trace/{raw}", headers=read).json()
    assert [r["name"] for r in forward["downstream"]] == ["extract", "featurize", "train"]

    assert client.get(f"{API}/runs/999", headers=read).status_code == 404
    assert client.get(f"{API}/trace/999", headers=read).status_code == 404
    unknown = client.get(f"{API}/trace/0123456789abcdef", headers=read)
    assert unknown.status_code == 404
    assert "No artifact" in unknown.json()["detail"]


def test_bad_lineage_bodies_are_refused(server: Server) -> None:
    client, store, tokens = server
    write = auth(tokens["write"])
    malformed = event("START", "run-7", "extract", T0)
    reply = client.post(f"{API}/lineage", json=malformed, headers=write)
    assert reply.status_code == 422
    assert reply.json() == {
        "detail": "run.runId: expected a UUID string; got 'run-7'.",
        "field": "run.runId",
    }
    good = event("COMPLETE", str(uuid.uuid4()), "extract", T0)
    reply = client.post(f"{API}/lineage", json=[good, malformed], headers=write)
    assert reply.status_code == 422
    assert reply.json()["field"] == "[1].run.runId"
    assert Lineage(store).runs() == []  # nothing of a refused list is stored

    not_json = client.post(f"{API}/lineage", content=b"{'eventType':", headers=write)
    assert not_json.status_code == 422
    assert not_json.json()["detail"][0]["msg"].startswith("not JSON")
    assert client.post(f"{API}/lineage", json=[], headers=write).status_code == 422
    too_many = client.post(f"{API}/lineage", json=[{}] * 1_001, headers=write)
    assert too_many.status_code == 413
    assert "at most 1,000 events" in too_many.json()["detail"]
    big = [event("START", str(uuid.uuid4()), "j" * 150, T0, ("t" * 400,))] * 300
    assert client.post(f"{API}/lineage", json=big, headers=write).status_code == 413


def test_a_run_shows_its_checks_and_why_it_is_stale(server: Server) -> None:
    client, store, tokens = server
    suite = Suite.from_dict(
        {"name": "ranges", "checks": [{"check": "range", "column": "t", "min": 0, "max": 400}]}
    )
    with run("train", store=store) as r:
        r.input(pl.DataFrame({"t": [1.0]}), name="features")
        r.check(suite, pl.DataFrame({"t": [1.0, 4_000.0]}), stage="before")
    with run("featurize", store=store) as again:
        again.output(pl.DataFrame({"t": [2.0]}), name="features")
    read = auth(tokens["read"])
    got = client.get(f"{API}/runs/{r.id}", headers=read).json()
    (check,) = got["checks"]
    assert (check["stage"], check["name"], check["passed"]) == ("before", "ranges", False)
    assert check["result"]["checks"][0]["n_failed"] == 1
    (reason,) = got["stale"]
    assert reason.startswith("input 'features' has a newer version")
    listed = client.get(f"{API}/runs?name=train", headers=read).json()
    assert "result" not in listed[0]["checks"][0]  # the full results only for one run


def test_rows_carry_their_run_in_json_and_in_arrow(server: Server) -> None:
    client, store, tokens = server
    write = auth(tokens["write"])
    url = f"{API}/models/{MODEL}/versions/1/rows"
    with run("featurize", store=store) as r:
        pass
    rows = [
        {"id": f"j{i}", "timestamp": (T0 + timedelta(minutes=i)).isoformat(), "x": i}
        for i in range(5)
    ]
    reply = client.post(url, json={"batch_id": "j1", "rows": rows, "run": r.id}, headers=write)
    assert reply.status_code == 200, reply.text
    frame = pl.DataFrame({"id": ["a0", "a1"], "timestamp": [T0 + timedelta(hours=1)] * 2})
    buffer = io.BytesIO()
    frame.write_ipc_stream(buffer)
    arrow = {
        **write,
        "Content-Type": "application/vnd.apache.arrow.stream",
        "Idempotency-Key": "a1",
        "X-Run": str(r.id),
    }
    assert client.post(url, content=buffer.getvalue(), headers=arrow).status_code == 200
    found = Lineage(store).batch_runs(MODEL, T0, T0 + timedelta(days=1))
    assert [(record.id, n) for record, n in found] == [(r.id, 7)]
    assert (
        Lineage(store).batch_runs(MODEL, T0 + timedelta(minutes=5), T0 + timedelta(hours=1)) == []
    )

    long_run = "r" * 201
    reply = client.post(url, json={"batch_id": "j2", "rows": rows, "run": long_run}, headers=write)
    assert reply.status_code == 422
    assert reply.json()["detail"][0]["loc"] == ["body", "run"]
    reply = client.post(
        url,
        content=buffer.getvalue(),
        headers={**arrow, "Idempotency-Key": "a2", "X-Run": long_run},
    )
    assert reply.status_code == 422
    assert reply.json()["detail"][0]["loc"] == ["header", "X-Run"]


# -- the client, a real server, and a prediction traced to its run -------------------------------


def test_a_prediction_logged_with_its_run_is_traced_back_to_it(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path)
    store = settings.store()
    store.migrate()
    store.create_model(MODEL)
    store.create_version(MODEL, "1")
    write = store.create_token("monitor", "write")
    read = store.create_token("ui", "read")
    lineage = Lineage(store)
    events, ids = pipeline_events()
    lineage.ingest_openlineage_many(events)  # the nightly features of an orchestrator
    with run("featurize-online", store=store) as online:  # and a step of the serving code
        online.input(pl.DataFrame({"temperature_c": [231.0, 229.5]}), name="sensor-buffer")

    with serve(settings) as url:
        with Monitor(MODEL, "1", url=url, token=write, spool_dir=tmp_path / "spool") as monitor:
            nightly = monitor.log(
                {"temperature_c": [231.0, 229.5, 230.1]}, [0, 1, 0], run=ids["featurize"]
            )
            single = monitor.log({"temperature_c": 228.0}, 1, run=online)
            unlinked = monitor.log({"temperature_c": [227.0]}, [0])
            assert monitor.flush(timeout=20)
            assert monitor.stats().sent == 5
        assert nightly is not None
        assert single is not None
        assert unlinked is not None
        status, doc = get(url, f"{API}/models/{MODEL}/predictions/{nightly[1]}/trace", read)
        assert status == 200, doc
        assert doc["run"]["external_id"] == ids["featurize"]
        assert [r["name"] for r in doc["upstream"]] == ["featurize", "extract"]
        assert [a["name"] for a in doc["raw_inputs"]] == ["warehouse/raw"]
        assert [r["name"] for r in doc["downstream"]] == ["train"]
        status, mine = get(url, f"{API}/models/{MODEL}/predictions/{single[0]}/trace", read)
        assert (status, mine["run"]["id"]) == (200, online.id)
        status, missing = get(url, f"{API}/models/{MODEL}/predictions/{unlinked[0]}/trace", read)
        assert status == 404
        assert "linked to no pipeline run" in missing["detail"]
        status, _ = get(url, f"{API}/models/{MODEL}/predictions/nope/trace", read)
        assert status == 404
    found = lineage.batch_runs(MODEL, datetime.now(UTC) - timedelta(hours=1), datetime.now(UTC))
    assert [(r.name, n) for r, n in found] == [("featurize", 3), ("featurize-online", 1)]
    store.close()


def get(url: str, path: str, token: str) -> tuple[int, Any]:
    """GET over a real connection: the status and the JSON answer."""
    request = urllib.request.Request(url + path, headers=auth(token))
    try:
        with urllib.request.urlopen(request, timeout=10) as reply:
            return reply.status, json.load(reply)
    except urllib.error.HTTPError as exc:
        return exc.code, json.load(exc)


def test_the_lineage_routes_are_documented(server: Server) -> None:
    client, _, _ = server
    paths = client.get("/openapi.json").json()["paths"]
    for path in ("/lineage", "/runs", "/runs/{run}", "/trace/{target}"):
        assert f"{API}{path}" in paths
    assert f"{API}/models/{{model}}/predictions/{{prediction_id}}/trace" in paths
    ingest = paths[f"{API}/lineage"]
    assert set(ingest) == {"post"}
    assert "application/json" in ingest["post"]["requestBody"]["content"]
