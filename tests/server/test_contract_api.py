"""The logging contract at the server, as a new user meets it: a version registered with its
score as 'fail_score' and its target as 'failed'; rows logged with 'prediction' and labels
with 'label' are stored, and the answer, the counters, /metrics and the model and version pages
say what is not monitored, until batches meet the contract again."""

from __future__ import annotations

import io
import re
import shutil
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
import pytest
from fastapi.testclient import TestClient

from mlwarden.registry import Registry
from mlwarden.server import Settings, create_app
from mlwarden.store.metadata import Store
from mlwarden.store.rowlog import RowLog
from tests.server.conftest import API, Server, auth, serve

MODEL = "pump"
T0 = datetime(2025, 2, 1, 10, 4, tzinfo=UTC)
NO_SCORE = (
    "rows carry no 'fail_score' (the model's score): performance is not estimated and the "
    "score's drift is not judged"
)
UNKNOWN_PREDICTION = (
    "rows carry 'prediction', which the version was not registered with: it is stored but not "
    "monitored"
)
NO_TARGET = (
    "labels carry no 'failed' (the target; they carry 'label'): realized performance is not "
    "measured"
)


@pytest.fixture(scope="module")
def registered(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A data directory where 'pump' version 1 is registered (id 'row_id', event time 'ts',
    features 'temp' and 'load', score 'fail_score', target 'failed'), 'production' its alias."""
    data_dir = tmp_path_factory.mktemp("registered")
    rng = np.random.default_rng(3)
    n = 600
    temp = rng.normal(60.0, 5.0, n)
    score = 1.0 / (1.0 + np.exp(-(temp - 62.0) / 2.0))
    reference = pl.DataFrame(
        {
            "row_id": [f"ref-{i}" for i in range(n)],
            "ts": [datetime(2025, 1, 1, tzinfo=UTC) + timedelta(minutes=5 * i) for i in range(n)],
            "temp": temp,
            "load": rng.uniform(0.2, 1.0, n),
            "fail_score": score,
            "failed": (rng.uniform(size=n) < score).astype(int),
        }
    )
    store = Settings(data_dir=data_dir).store()
    store.migrate()
    registry = Registry(store)
    registry.register(
        MODEL,
        "1",
        reference,
        timestamp="ts",
        id="row_id",
        roles={"fail_score": "score", "failed": "target"},
    )
    registry.promote(MODEL, "1")
    store.close()
    return data_dir


Site = tuple[TestClient, Store, dict[str, str], Path]


@pytest.fixture
def site(registered: Path, tmp_path: Path) -> Iterator[Site]:
    """The app over a copy of the registered data directory, with a write and a read token."""
    data_dir = tmp_path / "data"
    shutil.copytree(registered, data_dir)
    settings = Settings(data_dir=data_dir)
    store = settings.store()
    tokens = {
        "write": store.create_token("ingest", "write"),
        "read": store.create_token("ui", "read"),
    }
    with TestClient(create_app(settings)) as client:
        yield client, store, tokens, data_dir
    store.close()


def readings(n: int, start: int = 0, *, score: str | None = "fail_score") -> list[dict[str, Any]]:
    """Rows as a serving job logs them (event time in 'ts'), the score under ``score``."""
    rows: list[dict[str, Any]] = []
    for i in range(start, start + n):
        row: dict[str, Any] = {
            "row_id": f"p{i}",
            "ts": (T0 + timedelta(minutes=5 * i)).isoformat(),
            "temp": 60.0 + i % 5,
            "load": 0.5,
        }
        if score is not None:
            row[score] = 0.2
        rows.append(row)
    return rows


def post_rows(client: TestClient, token: str, batch_id: str, rows: list[dict[str, Any]]) -> Any:
    response = client.post(
        f"{API}/models/{MODEL}/versions/production/rows",
        json={"batch_id": batch_id, "rows": rows},
        headers=auth(token),
    )
    assert response.status_code == 200, response.text
    return response.json()


def post_labels(client: TestClient, token: str, batch_id: str, labels: list[dict[str, Any]]) -> Any:
    response = client.post(
        f"{API}/models/{MODEL}/labels",
        json={"batch_id": batch_id, "labels": labels},
        headers=auth(token),
    )
    assert response.status_code == 200, response.text
    return response.json()


def findings(client: TestClient, token: str, **query: str) -> list[dict[str, Any]]:
    response = client.get(
        f"{API}/models/{MODEL}/contract-findings", params=query, headers=auth(token)
    )
    assert response.status_code == 200, response.text
    found: list[dict[str, Any]] = response.json()
    return found


def banners(client: TestClient, token: str, path: str = f"/models/{MODEL}") -> list[str]:
    """The text of the contract banners on a page, tags stripped."""
    page = client.get(path, headers=auth(token))
    assert page.status_code == 200
    found = re.findall(r'<p class="message warn contract-finding"[^>]*>(.*?)</p>', page.text)
    return [re.sub(r"<[^>]+>", "", text).replace("&#39;", "'") for text in found]


def test_the_contract_of_a_version_or_alias(site: Site) -> None:
    client, _, tokens, _ = site
    response = client.get(
        f"{API}/models/{MODEL}/versions/production/contract", headers=auth(tokens["read"])
    )
    assert response.status_code == 200, response.text
    contract = response.json()
    assert (contract["version"], contract["id"], contract["timestamp"]) == ("1", "row_id", "ts")
    assert contract["features"] == ["temp", "load"]
    assert (contract["scores"], contract["targets"]) == (["fail_score"], ["failed"])
    assert contract["labels"] == ["row_id", "failed"]
    roles = {c["column"]: (c["role"], c["carried_by"]) for c in contract["columns"]}
    assert roles["row_id"] == ("id", "rows and labels")
    assert roles["failed"] == ("target", "labels")
    assert "performance is estimated" in next(
        c["purpose"] for c in contract["columns"] if c["column"] == "fail_score"
    )
    missing = client.get(f"{API}/models/{MODEL}/versions/9/contract", headers=auth(tokens["read"]))
    assert missing.status_code == 404
    assert client.get(f"{API}/models/{MODEL}/versions/1/contract").status_code == 401


def test_rows_without_the_score_are_stored_warned_counted_and_shown(site: Site) -> None:
    client, _, tokens, data_dir = site
    write, read = tokens["write"], tokens["read"]
    renamed = readings(3, score="prediction")
    first = post_rows(client, write, "b1", renamed)
    assert first["warnings"] == [NO_SCORE, UNKNOWN_PREDICTION]
    more = readings(3, start=3, score="prediction")
    second = post_rows(client, write, "b2", more)
    assert second["warnings"] == first["warnings"]
    retried = post_rows(client, write, "b2", more)
    assert (retried["duplicate"], retried["warnings"]) == (True, first["warnings"])
    # Stored all the same, filed by their event time.
    logged = RowLog(data_dir / "log").read(MODEL, timestamp="ts")
    assert logged.height == 6
    assert logged["ts"].min() == T0
    open_ = findings(client, read)
    assert [(f["kind"], f["column"], f["batches"], f["rows"]) for f in open_] == [
        ("missing_output", "fail_score", 2, 6),
        ("unknown", "prediction", 2, 6),
    ]
    [score_banner, prediction_banner] = banners(client, read)
    assert score_banner.startswith("rows since ")
    assert "carry no 'fail_score' (the model's score): performance is not estimated" in score_banner
    assert "2 batches, 6 rows" in score_banner
    assert "carry 'prediction', which the version was not registered with" in prediction_banner
    metrics = client.get("/metrics", headers=auth(read)).text
    assert (
        'mlwarden_contract_rows_total{batch="rows",column="fail_score",kind="missing_output",'
        'model="pump",version="1"} 6.0'
    ) in metrics
    overview = client.get("/", headers=auth(read)).text
    assert "2 points of the logging contract missed" in overview
    # Rows that meet the contract clear both findings; the counter keeps its total.
    assert post_rows(client, write, "b3", readings(2, start=6))["warnings"] == []
    assert findings(client, read) == []
    assert banners(client, read) == []
    assert "of the logging contract missed" not in client.get("/", headers=auth(read)).text
    cleared = findings(client, read, open_only="false")
    assert {(f["column"], f["open"]) for f in cleared} == {
        ("fail_score", False),
        ("prediction", False),
    }
    assert all(f["cleared_at"] is not None for f in cleared)
    assert (
        'kind="missing_output",model="pump",version="1"} 6.0'
        in client.get("/metrics", headers=auth(read)).text
    )


def test_labels_under_another_name_are_warned_until_they_carry_the_target(site: Site) -> None:
    client, _, tokens, data_dir = site
    write, read = tokens["write"], tokens["read"]
    post_rows(client, write, "rows", readings(4))
    arrived = (T0 + timedelta(days=1)).isoformat()
    wrong = [{"row_id": "p0", "label": 1, "timestamp": arrived}]
    assert post_labels(client, write, "l1", wrong)["warnings"] == [NO_TARGET]
    [open_] = findings(client, read)
    assert (open_["batch"], open_["kind"], open_["column"]) == (
        "labels",
        "missing_target",
        "failed",
    )
    [banner] = banners(client, read)
    assert banner.startswith("labels since ")
    assert "1 batch, 1 label," in banner
    # Labels joined by the version's id without naming it, under the version's target.
    right = [{"row_id": "p1", "failed": 1, "timestamp": arrived}]
    assert post_labels(client, write, "l2", right)["warnings"] == []
    assert findings(client, read) == []
    joined = RowLog(data_dir / "log").joined(MODEL, id="row_id", timestamp="ts")
    assert joined.filter(pl.col("failed").is_not_null())["row_id"].to_list() == ["p1"]
    # A rows batch that lacks the score is counted apart from the labels' findings.
    post_rows(client, write, "no-score", readings(1, start=9, score=None))
    post_labels(client, write, "l3", right)
    assert [f["column"] for f in findings(client, read)] == ["fail_score"]


def test_a_labels_batch_is_held_to_the_versions_whose_target_it_carries(site: Site) -> None:
    client, store, tokens, _ = site
    meta = store.get_version(MODEL, "1").meta
    roles = {**meta["roles"], "failed": "feature", "broken": "target"}
    store.create_version(
        MODEL, "2", meta={**meta, "columns": [*meta["columns"], "broken"], "roles": roles}
    )
    arrived = (T0 + timedelta(days=1)).isoformat()
    theirs = post_labels(
        client, tokens["write"], "l1", [{"row_id": "p0", "failed": 0, "timestamp": arrived}]
    )
    assert theirs["warnings"] == []
    neither = post_labels(
        client, tokens["write"], "l2", [{"row_id": "p0", "label": 0, "timestamp": arrived}]
    )
    assert neither["warnings"] == [
        NO_TARGET,
        NO_TARGET.replace("'failed'", "'broken'"),
    ]
    assert {(f["version"], f["column"]) for f in findings(client, tokens["read"])} == {
        ("1", "failed"),
        ("2", "broken"),
    }


def test_arrow_rows_without_the_event_time_are_warned_and_shown_on_the_version_page(
    site: Site,
) -> None:
    client, _, tokens, _ = site
    frame = pl.DataFrame(readings(3)).rename({"ts": "logged_at"}).drop("load")
    buffer = io.BytesIO()
    frame.write_ipc_stream(buffer)
    response = client.post(
        f"{API}/models/{MODEL}/versions/1/rows",
        content=buffer.getvalue(),
        headers={
            **auth(tokens["write"]),
            "Content-Type": "application/vnd.apache.arrow.stream",
            "Idempotency-Key": "arrow-1",
            "X-Timestamp-Column": "logged_at",
        },
    )
    assert response.status_code == 200, response.text
    assert response.json()["warnings"] == [
        "rows carry no 'ts' (the event time): they are stored but fall in no window of the "
        "version, so they are not evaluated",
        "rows carry no 'load' (a feature): its quality and drift are not judged",
    ]
    page = client.get(f"/models/{MODEL}/versions/1", headers=auth(tokens["read"])).text
    table = page[page.index('id="contract-columns"') :]
    for column, role in (("row_id", "id"), ("ts", "timestamp"), ("fail_score", "score")):
        assert f'data-column="{column}" data-role="{role}"' in table
    assert '<tr data-column="load" data-role="feature" class="bad">' in table
    assert "rows must carry: id &#39;row_id&#39;, event time &#39;ts&#39;" in page
    since = r"rows since \d{4}-\d\d-\d\d \d\d:\d\d UTC carry no "
    [no_time, no_load] = banners(client, tokens["read"], f"/models/{MODEL}/versions/1")
    assert re.match(since + r"'ts' \(the event time\).* — 1 batch, 3 rows", no_time)
    assert re.match(since + r"'load' \(a feature\)", no_load)


def test_the_banner_goes_when_rows_meet_the_contract_in_a_browser(
    registered: Path, tmp_path: Path, page: Any
) -> None:
    data_dir = tmp_path / "data"
    shutil.copytree(registered, data_dir)
    store = Settings(data_dir=data_dir).store()
    write = store.create_token("ingest", "write")
    with serve(Settings(data_dir=data_dir, public_read=True)) as url:
        client = TestClient(create_app(Settings(data_dir=data_dir)))
        with client:
            post_rows(client, write, "b1", readings(2, score="prediction"))
            page.goto(f"{url}/models/{MODEL}")
            banner = page.locator(".contract-finding", has_text="fail_score")
            assert banner.is_visible()
            assert "the model's score" in banner.inner_text()
            page.click("text=version 1: its logging contract >> nth=0")
            assert (
                page.locator("#contract-columns tr.bad").first.inner_text().startswith("fail_score")
            )
            post_rows(client, write, "b2", readings(2, start=2))
            page.goto(f"{url}/models/{MODEL}")
            assert page.locator(".contract-finding").count() == 0
    store.close()


def test_a_version_registered_without_columns_has_nothing_to_check(server: Server) -> None:
    client, _, tokens = server
    rows = [{"id": "r1", "timestamp": T0.isoformat(), "temperature_c": 230.0}]
    response = client.post(
        f"{API}/models/defect-model/versions/1/rows",
        json={"batch_id": "b1", "rows": rows},
        headers=auth(tokens["write"]),
    )
    assert response.json()["warnings"] == []
    found = client.get(f"{API}/models/defect-model/contract-findings", headers=auth(tokens["read"]))
    assert found.json() == []
