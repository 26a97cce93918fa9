"""The HTTP API, driven in-process: auth, ingest (JSON and Arrow), idempotent retries, bounds,
errors that name the field, and queries."""

from __future__ import annotations

import io
from datetime import UTC, datetime, timedelta
from pathlib import Path

import polars as pl
from fastapi.testclient import TestClient
from sqlalchemy import select

from mlwarden.server import Settings, create_app
from mlwarden.store.metadata import MetricValue
from mlwarden.store.rowlog import RowLog
from mlwarden.store.schema import BatchRow
from tests.server.conftest import API, Server, auth

T0 = datetime(2024, 5, 1, 8, tzinfo=UTC)


def rows(n: int, start: int = 0) -> list[dict[str, object]]:
    return [
        {
            "id": f"r{start + i}",
            "timestamp": (T0 + timedelta(minutes=start + i)).isoformat(),
            "temperature_c": 230.0 + i % 7,
            "prediction": i % 2,
        }
        for i in range(n)
    ]


def test_health_and_openapi_need_no_token(server: Server) -> None:
    client, _, _ = server
    assert client.get(f"{API}/health").json()["status"] == "ok"
    spec = client.get("/openapi.json").json()
    assert f"{API}/models/{{model}}/versions/{{version}}/rows" in spec["paths"]


def test_writes_need_a_write_token(server: Server) -> None:
    client, _, tokens = server
    url = f"{API}/models/defect-model/versions/1/rows"
    body = {"batch_id": "b1", "rows": rows(3)}
    assert client.post(url, json=body).status_code == 401
    assert client.post(url, json=body, headers=auth("mlw_wrong")).status_code == 403
    assert client.post(url, json=body, headers=auth(tokens["read"])).status_code == 403
    assert client.post(url, json=body, headers=auth(tokens["write"])).status_code == 200
    assert client.get(f"{API}/models").status_code == 401
    assert client.get(f"{API}/models", headers=auth(tokens["read"])).status_code == 200


def test_a_retried_batch_is_stored_once(server: Server, tmp_path: Path) -> None:
    client, _, tokens = server
    url = f"{API}/models/defect-model/versions/1/rows"
    body = {"batch_id": "batch-7", "rows": rows(50)}
    first = client.post(url, json=body, headers=auth(tokens["write"])).json()
    again = client.post(url, json=body, headers=auth(tokens["write"])).json()
    assert (first["duplicate"], again["duplicate"]) == (False, True)
    logged = RowLog(tmp_path / "log").read("defect-model")
    assert logged.height == 50
    assert logged["temperature_c"].to_list() == [r["temperature_c"] for r in rows(50)]


def test_arrow_batches_and_late_labels(server: Server, tmp_path: Path) -> None:
    client, _, tokens = server
    frame = pl.DataFrame(rows(20)).with_columns(
        pl.col("timestamp").str.to_datetime(time_zone="UTC")
    )
    buffer = io.BytesIO()
    frame.write_ipc_stream(buffer)
    response = client.post(
        f"{API}/models/defect-model/versions/1/rows",
        content=buffer.getvalue(),
        headers={
            **auth(tokens["write"]),
            "Content-Type": "application/vnd.apache.arrow.stream",
            "Idempotency-Key": "arrow-1",
        },
    )
    assert response.status_code == 200, response.text
    labels = {
        "batch_id": "labels-1",
        "labels": [
            {"id": "r3", "defect": 1, "timestamp": (T0 + timedelta(days=2)).isoformat()},
            {"id": "r4", "defect": 0, "timestamp": (T0 + timedelta(days=2)).isoformat()},
        ],
    }
    assert (
        client.post(
            f"{API}/models/defect-model/labels", json=labels, headers=auth(tokens["write"])
        ).status_code
        == 200
    )
    joined = RowLog(tmp_path / "log").joined("defect-model")
    assert joined.filter(pl.col("defect").is_not_null())["id"].sort().to_list() == ["r3", "r4"]


def test_times_arrive_as_users_have_them(server: Server, tmp_path: Path) -> None:
    """Naive ISO text and epoch milliseconds in JSON, ISO text in an Arrow stream: every row is
    filed at its UTC time, and a batch of words where times belong is refused by name."""
    client, store, tokens = server
    url = f"{API}/models/defect-model/versions/1/rows"
    headers = auth(tokens["write"])
    naive = [{**r, "timestamp": str(r["timestamp"])[:19].replace("T", " ")} for r in rows(3)]
    epoch = [
        {**r, "timestamp": int(datetime.fromisoformat(str(r["timestamp"])).timestamp() * 1000)}
        for r in rows(3, start=3)
    ]
    for batch_id, batch in (("naive", naive), ("epoch", epoch)):
        response = client.post(url, json={"batch_id": batch_id, "rows": batch}, headers=headers)
        assert response.status_code == 200, response.text
    buffer = io.BytesIO()
    pl.DataFrame(rows(3, start=6)).write_ipc_stream(buffer)  # times as text
    response = client.post(
        url,
        content=buffer.getvalue(),
        headers={
            **headers,
            "Content-Type": "application/vnd.apache.arrow.stream",
            "Idempotency-Key": "arrow-text",
        },
    )
    assert response.status_code == 200, response.text
    logged = RowLog(tmp_path / "log").read("defect-model").sort("timestamp")
    assert logged["timestamp"].to_list() == [T0 + timedelta(minutes=i) for i in range(9)]
    with store.engine.connect() as connection:  # the span that links rows to their runs
        first = connection.execute(
            select(BatchRow.first_at).where(BatchRow.batch_id == "arrow-text")
        ).scalar_one()
    assert first is not None
    assert first.replace(tzinfo=UTC) == T0 + timedelta(minutes=6)
    words = [{**r, "timestamp": "yesterday"} for r in rows(2)]
    refused = client.post(url, json={"batch_id": "words", "rows": words}, headers=headers)
    assert refused.status_code == 422
    assert "timestamp" in refused.json()["detail"]


def test_labels_without_an_arrival_time_arrive_now(server: Server, tmp_path: Path) -> None:
    client, _, tokens = server
    headers = auth(tokens["write"])
    rows_url = f"{API}/models/defect-model/versions/1/rows"
    assert client.post(
        rows_url, json={"batch_id": "r", "rows": rows(3)}, headers=headers
    ).is_success
    before = datetime.now(UTC)
    labels = {"batch_id": "late", "labels": [{"id": "r1", "defect": 1}]}
    response = client.post(f"{API}/models/defect-model/labels", json=labels, headers=headers)
    assert response.status_code == 200, response.text
    joined = RowLog(tmp_path / "log").joined("defect-model")
    assert joined.filter(pl.col("defect").is_not_null())["id"].to_list() == ["r1"]
    stored = RowLog(tmp_path / "log").labels("defect-model")
    assert stored["timestamp"].min() >= before


def test_bad_input_is_answered_with_the_field(server: Server) -> None:
    client, _, tokens = server
    url = f"{API}/models/defect-model/versions/1/rows"
    headers = auth(tokens["write"])
    missing = client.post(url, json={"rows": rows(2)}, headers=headers)
    assert missing.status_code == 422
    assert ["body", "batch_id"] in [e["loc"] for e in missing.json()["detail"]]
    unsafe = client.post(url, json={"batch_id": "../../x", "rows": rows(2)}, headers=headers)
    assert unsafe.status_code == 422
    no_time = client.post(
        url, json={"batch_id": "b2", "rows": [{"id": "a", "x": 1.0}]}, headers=headers
    )
    assert no_time.status_code == 422
    assert "timestamp" in no_time.json()["detail"]
    unknown = client.post(f"{API}/models/defect-modle/versions/1/rows", json={}, headers=headers)
    assert unknown.status_code == 404
    assert "Did you mean 'defect-model'" in unknown.json()["detail"]
    too_many = client.post(url, json={"batch_id": "big", "rows": rows(1_001)}, headers=headers)
    assert too_many.status_code == 413
    huge = client.post(
        url,
        content=b"{" + b" " * 300_000 + b"}",
        headers={**headers, "Content-Type": "application/json"},
    )
    assert huge.status_code == 413
    text = client.post(url, content=b"a,b\n1,2\n", headers={**headers, "Content-Type": "text/csv"})
    assert text.status_code == 415


def test_models_and_metric_series_are_queryable(server: Server) -> None:
    client, store, tokens = server
    store.set_alias("defect-model", "production", "1")
    window = store.upsert_window("defect-model", "1", T0, T0 + timedelta(hours=1), n_rows=60)
    store.write_metrics(window.id, [MetricValue("null_rate", 0.2, upper=0.01, column="humidity")])
    models = client.get(f"{API}/models", headers=auth(tokens["read"])).json()
    assert models[0]["aliases"] == {"production": "1"}
    series = client.get(
        f"{API}/models/defect-model/metrics",
        params={"name": "null_rate"},
        headers=auth(tokens["read"]),
    ).json()
    assert series[0]["alert"] is True
    assert series[0]["column"] == "humidity"


def test_public_read(tmp_path: Path) -> None:
    with TestClient(create_app(Settings(data_dir=tmp_path, public_read=True))) as client:
        assert client.get(f"{API}/models").status_code == 200
        assert client.post(f"{API}/models/x/labels", json={}).status_code == 401


def test_rows_sent_to_an_alias_are_filed_under_its_version(server: Server, tmp_path: Path) -> None:
    client, store, tokens = server
    store.set_alias("defect-model", "production", "1")
    response = client.post(
        f"{API}/models/defect-model/versions/production/rows",
        json={"batch_id": "via-alias", "rows": rows(5)},
        headers=auth(tokens["write"]),
    )
    assert response.status_code == 200
    logged = RowLog(tmp_path / "log").read("defect-model")
    assert set(logged["_model_version"].to_list()) == {"1"}


def test_prometheus_gets_the_newest_value_of_each_metric(server: Server) -> None:
    client, store, tokens = server
    for hour, value in enumerate([0.0, 0.3]):
        start = T0 + timedelta(hours=hour)
        window = store.upsert_window(
            "defect-model", "1", start, start + timedelta(hours=1), n_rows=5
        )
        store.write_metrics(window.id, [MetricValue("null_rate", value, upper=0.01, column="x")])
    assert client.get("/metrics").status_code == 401
    response = client.get("/metrics", headers=auth(tokens["read"]))
    assert response.headers["content-type"].startswith("text/plain")
    lines = [line for line in response.text.splitlines() if not line.startswith("#")]
    labels = 'column="x",metric="null_rate",model="defect-model",segment="",version="1"'
    assert f"mlwarden_metric_value{{{labels}}} 0.3" in lines
    assert f"mlwarden_metric_alert{{{labels}}} 1.0" in lines
    assert f"mlwarden_metric_upper{{{labels}}} 0.01" in lines


def test_windows_validations_alerts_and_incidents_are_queryable(tmp_path: Path) -> None:
    from mlwarden.datasets import StuckSensor, production_line
    from mlwarden.registry import Registry
    from mlwarden.service import evaluate

    settings = Settings(data_dir=tmp_path)
    store = settings.store()
    reference = production_line(10_000, seed=1)
    Registry(store).register(
        "line", "1", reference, timestamp="timestamp", roles={"defect": "target"}
    )
    later = production_line(
        1_080,
        seed=2,
        start=reference["timestamp"].max() + timedelta(seconds=10),
        faults=[StuckSensor(column="pressure_bar", start_row=400, n_rows=300)],
    ).with_columns(pl.int_range(pl.len()).cast(pl.String).alias("id"))
    RowLog(tmp_path / "log").append("line", "1", later.drop("defect"), batch_id="b")
    outcomes = evaluate(
        store,
        RowLog(tmp_path / "log"),
        "line",
        "1",
        now=later["timestamp"].max() + timedelta(hours=2),
    )
    token = store.create_token("ui", "read")
    with TestClient(create_app(settings)) as client:
        windows = client.get(f"{API}/models/line/windows", headers=auth(token)).json()
        assert [w["id"] for w in windows] == [o.window.id for o in outcomes]
        assert windows[0]["n_rows"] == outcomes[0].window.n_rows
        stuck = next(o for o in outcomes if o.alerts)
        detail = client.get(f"{API}/models/line/windows/{stuck.window.id}", headers=auth(token))
        doc = detail.json()
        assert doc["validation"]["passed"] is False
        assert {"drift", "performance", "multivariate"} <= set(doc)
        assert "profile" not in doc, "binary profiles stay on the server"
        assert any(m["alert"] and m["column"] == "stuck(pressure_bar)" for m in doc["metrics"])
        alerts = client.get(f"{API}/models/line/alerts", headers=auth(token)).json()
        assert "stuck(pressure_bar)" in {a["column"] for a in alerts}
        incidents = client.get(f"{API}/models/line/incidents", headers=auth(token)).json()
        assert incidents
        assert {i["status"] for i in incidents} <= {"open", "closed"}
        assert (
            client.get(f"{API}/models/line/windows/999999", headers=auth(token)).status_code == 404
        )
        too_many = client.get(f"{API}/models/line/alerts?limit=0", headers=auth(token))
        assert too_many.status_code == 422
        assert "limit" in too_many.text
        assert client.get(f"{API}/models/line/incidents").status_code == 401
    store.close()
