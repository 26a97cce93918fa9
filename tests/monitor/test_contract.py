"""The client and the version's logging contract: an alias is filed under the version it points
at, in path mode as the server does; an unknown model or alias is refused when the monitor is
made; predictions and labels logged under the default names are stored under the names the
version was registered with, and said once; other departures are counted and said once; the
contract is fetched once, never on the caller's thread."""

from __future__ import annotations

import json
import logging
import shutil
import socket
import threading
import time
from contextlib import AbstractContextManager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import ClassVar

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

from mlwarden.contract import Contract
from mlwarden.exceptions import NotFoundError
from mlwarden.monitor import Monitor
from mlwarden.monitor import transport as monitor_transport
from mlwarden.monitor.transport import PathTransport
from mlwarden.registry import Registry
from mlwarden.server import Settings
from mlwarden.store import metadata
from mlwarden.store.rowlog import MODEL_VERSION, RowLog
from tests.server.conftest import serve as serve_app

MODEL = "pump"
FAST = {"flush_seconds": 0.05, "retry_seconds": 0.3, "backoff_max": 0.2, "timeout": 5.0}


def reference(n: int, seed: int) -> pd.DataFrame:
    """Sensor readings with the model's failure score and whether the pump failed."""
    rng = np.random.default_rng(seed)
    temp = rng.normal(70.0, 5.0, n)
    frame = pd.DataFrame(
        {
            "id": [f"r{seed}-{i}" for i in range(n)],
            "timestamp": pd.date_range("2024-01-01", periods=n, freq="min", tz="UTC"),
            "temp": temp,
            "vib": rng.normal(0.3, 0.05, n),
        }
    )
    frame["fail_score"] = 1.0 / (1.0 + np.exp(-(temp - 75.0) / 2.0))
    frame["failed"] = (rng.uniform(size=n) < frame["fail_score"]).astype(int)
    return frame


@pytest.fixture(scope="module")
def registered(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    """A data directory where 'pump' versions 1 and 2 are registered (score 'fail_score',
    target 'failed'), 'production' points at 2 and 'staging' at 1; and a write token."""
    data_dir = tmp_path_factory.mktemp("registered")
    store = Settings(data_dir=data_dir).store()
    store.migrate()
    registry = Registry(store)
    for version, seed in (("1", 1), ("2", 2)):
        registry.register(
            MODEL, version, reference(600, seed), timestamp="timestamp", roles={"failed": "target"}
        )
    store.set_alias(MODEL, "production", "2")
    store.set_alias(MODEL, "staging", "1")
    token = store.create_token("monitor-test", "write")
    store.close()
    return data_dir, token


@pytest.fixture
def data_dir(registered: tuple[Path, str], tmp_path: Path) -> Path:
    """A copy of the registered data directory, for one test."""
    return Path(shutil.copytree(registered[0], tmp_path / "data"))


def features(n: int, seed: int = 0) -> pd.DataFrame:
    return reference(n, seed)[["temp", "vib"]]


def said(caplog: pytest.LogCaptureFixture, text: str) -> int:
    """How many warnings of the monitor's logger say ``text``."""
    return sum(
        text in r.getMessage()
        for r in caplog.records
        if r.name == "mlwarden.monitor" and r.levelno == logging.WARNING
    )


def serve(data_dir: Path) -> AbstractContextManager[str]:
    """The server of ``data_dir`` in this process (uvicorn in a thread), on a free port."""
    return serve_app(Settings(data_dir=data_dir, explain=False))


# -- aliases and unknown names in path mode ----------------------------------------------------


def test_rows_logged_under_an_alias_are_filed_under_the_version_it_points_at(
    data_dir: Path,
) -> None:
    with Monitor(MODEL, "production", path=data_dir, **FAST) as monitor:
        first = monitor.log(features(3), np.full(3, 0.1))
        assert monitor.flush(timeout=10)
        store = Settings(data_dir=data_dir).store()
        store.set_alias(MODEL, "production", "1")  # a rollback while the host runs
        store.close()
        later = monitor.log(features(2, seed=1), np.full(2, 0.2))
    rows = RowLog(data_dir / "log").read(MODEL)
    version = dict(zip(rows["id"], rows[MODEL_VERSION], strict=True))
    assert [version[i] for i in [*first, *later]] == ["2", "2", "2", "1", "1"]  # type: ignore[misc]
    assert monitor.stats().sent == 5


def test_an_unknown_alias_or_model_is_refused_naming_what_exists(data_dir: Path) -> None:
    with pytest.raises(NotFoundError) as info:
        Monitor(MODEL, "prodution", path=data_dir)
    assert str(info.value) == (
        f"Model 'pump' has no version or alias 'prodution' in the data directory '{data_dir}' "
        "(versions: 1, 2; "
        "aliases: production -> 2, staging -> 1). Did you mean 'production'?"
    )
    assert info.value.what == "version"
    with pytest.raises(NotFoundError, match=r"\(models: pump\)\. Did you mean 'pump'\?") as info:
        Monitor("pmup", "production", path=data_dir)
    assert "\n" not in str(info.value)
    assert info.value.what == "model"
    with pytest.raises(NotFoundError, match="Did you mean 'production'"):
        Monitor(MODEL, "prod", path=data_dir)
    assert not (data_dir / "log").exists()


def test_a_data_directory_without_a_metadata_store_takes_rows_as_given(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with (
        caplog.at_level(logging.WARNING, logger="mlwarden.monitor"),
        Monitor(MODEL, "production", path=tmp_path, **FAST) as monitor,
    ):
        monitor.log(features(4), np.zeros(4))
        assert monitor.flush(timeout=10)
        monitor.log(features(4), np.zeros(4))
    rows = RowLog(tmp_path / "log").read(MODEL)
    assert rows[MODEL_VERSION].unique().to_list() == ["production"]
    assert "prediction" in rows.columns
    assert said(caplog, "not checked against a logging contract") == 1
    assert said(caplog, "has no metadata store") == 1
    assert monitor.stats().contract == {}
    assert not (tmp_path / "mlwarden.db").exists()


def test_a_metadata_store_that_cannot_be_read_does_not_stop_the_host(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    (tmp_path / "mlwarden.db").write_bytes(b"")  # a database without mlwarden's tables
    with caplog.at_level(logging.WARNING, logger="mlwarden.monitor"):
        monitor = Monitor(MODEL, "production", path=tmp_path, **FAST)
        assert monitor.log(features(3), np.zeros(3)) is not None
        assert not monitor.flush(timeout=10)  # the rows wait in the spool
        monitor.close()
    assert said(caplog, "cannot read the metadata store") >= 1
    assert monitor.stats().spooled == 3
    assert not (tmp_path / "log").exists()


def test_the_database_variable_is_the_one_the_store_reads() -> None:
    assert monitor_transport.DATABASE_URL_ENV == metadata.DATABASE_URL_ENV


# -- the contract ------------------------------------------------------------------------------


def test_predictions_and_labels_are_stored_under_the_registered_names_said_once(
    data_dir: Path, caplog: pytest.LogCaptureFixture
) -> None:
    scores = np.array([0.1, 0.8, 0.3, 0.9, 0.2])
    with (
        caplog.at_level(logging.WARNING, logger="mlwarden.monitor"),
        Monitor(MODEL, "production", path=data_dir, **FAST) as monitor,
    ):
        ids = monitor.log(features(5), scores)
        assert monitor.flush(timeout=10)
        more = monitor.log(features(3, seed=1), scores[:3])
        assert ids is not None
        assert more is not None
        assert monitor.log_labels([ids[1], ids[3]], [1, 0])
        assert monitor.flush(timeout=10)
        assert monitor.log_labels([more[0]], [1])
    rows = RowLog(data_dir / "log").joined(MODEL)
    assert "prediction" not in rows.columns
    assert "label" not in rows.columns
    by_id = {r["id"]: r for r in rows.iter_rows(named=True)}
    assert [by_id[i]["fail_score"] for i in ids] == scores.tolist()
    assert [by_id[i]["failed"] for i in ids] == [None, 1, None, 0, None]
    assert by_id[more[0]]["failed"] == 1
    assert said(caplog, "rows carry 'prediction', stored as 'fail_score', the version's score") == 1
    assert said(caplog, "labels carry 'label', stored as 'failed', the version's target") == 1
    assert monitor.stats().contract == {
        "rows:renamed:prediction->fail_score": 8,
        "labels:renamed:label->failed": 3,
    }


def test_a_batch_missing_a_feature_is_counted_and_said_once(
    data_dir: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with (
        caplog.at_level(logging.WARNING, logger="mlwarden.monitor"),
        Monitor(MODEL, "2", path=data_dir, **FAST) as monitor,
    ):
        monitor.log(features(6)[["temp"]], {"fail_score": np.full(6, 0.5)})
        assert monitor.flush(timeout=10)
        monitor.log(features(4)[["temp"]], {"fail_score": np.full(4, 0.5)})
        # A batch that holds both is one table, the rows without 'vib' as nulls there.
        assert monitor.flush(timeout=10)
        monitor.log(features(5), {"fail_score": np.full(5, 0.5)})  # meets the contract
    stats = monitor.stats()
    assert stats.contract == {"rows:missing_feature:vib": 10}
    assert stats.sent == 15
    assert said(caplog, "rows carry no 'vib' (a feature)") == 1
    assert said(caplog, "counted in stats().contract") == 1
    assert stats.to_dict()["contract"] == {"rows:missing_feature:vib": 10}


def test_a_version_registered_without_columns_is_not_checked_said_once(
    data_dir: Path, caplog: pytest.LogCaptureFixture
) -> None:
    store = Settings(data_dir=data_dir).store()
    store.create_version(MODEL, "bare")
    store.close()
    with (
        caplog.at_level(logging.WARNING, logger="mlwarden.monitor"),
        Monitor(MODEL, "bare", path=data_dir, **FAST) as monitor,
    ):
        monitor.log(features(3), np.zeros(3))
        assert monitor.flush(timeout=10)
        monitor.log(features(3), np.zeros(3))
    assert said(caplog, "registered without columns") == 1
    assert monitor.stats().contract == {}
    assert "prediction" in RowLog(data_dir / "log").read(MODEL).columns


def test_the_contract_is_fetched_once_and_never_on_the_callers_thread(
    data_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fetched: list[str] = []
    contract = PathTransport.contract

    def slow(self: PathTransport, model: str, version: str) -> Contract:
        fetched.append(threading.current_thread().name)
        time.sleep(0.5)  # a slow metadata store
        return contract(self, model, version)

    monkeypatch.setattr(PathTransport, "contract", slow)
    slowest = 0.0
    with Monitor(MODEL, "production", path=data_dir, **FAST) as monitor:
        for frame in [features(5, seed=i) for i in range(20)]:
            started = time.perf_counter()
            monitor.log(frame, np.full(5, 0.5))
            slowest = max(slowest, time.perf_counter() - started)
            time.sleep(0.05)
    assert fetched == [f"mlwarden-monitor-{MODEL}"]
    assert slowest < 0.1
    assert monitor.stats().contract == {"rows:renamed:prediction->fail_score": 100}


# -- against a server --------------------------------------------------------------------------


def test_a_server_files_and_renames_the_same_way(
    registered: tuple[Path, str],
    data_dir: Path,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    token = registered[1]
    scores = np.array([0.2, 0.7, 0.4])
    with caplog.at_level(logging.WARNING, logger="mlwarden.monitor"), serve(data_dir) as url:
        with Monitor(
            MODEL, "production", url=url, token=token, spool_dir=tmp_path / "spool", **FAST
        ) as monitor:
            ids = monitor.log(features(3), scores)
            assert ids is not None
            assert monitor.flush(timeout=10)
            monitor.log(features(4, seed=1)[["temp"]], np.full(4, 0.5))
            assert monitor.log_labels([ids[0], ids[2]], [0, 1])
            assert monitor.flush(timeout=10)
        with pytest.raises(NotFoundError, match="Did you mean 'production'"):
            Monitor(MODEL, "prodution", path=data_dir)
    rows = RowLog(data_dir / "log").joined(MODEL)
    assert rows[MODEL_VERSION].unique().to_list() == ["2"]
    assert "prediction" not in rows.columns
    by_id = {r["id"]: r for r in rows.iter_rows(named=True)}
    assert [by_id[i]["fail_score"] for i in ids] == scores.tolist()
    assert [by_id[i]["failed"] for i in ids] == [0, None, 1]
    stats = monitor.stats()
    assert (stats.sent, stats.errors) == (9, 0)
    assert stats.contract == {
        "rows:renamed:prediction->fail_score": 7,
        "rows:missing_feature:vib": 4,
        "labels:renamed:label->failed": 2,
    }
    assert said(caplog, "stored as 'fail_score'") == 1
    assert said(caplog, "rows carry no 'vib'") == 1
    assert said(caplog, "stored as 'failed'") == 1


def test_a_server_that_cannot_be_reached_at_first_still_gets_renamed_rows(
    registered: tuple[Path, str], data_dir: Path, tmp_path: Path
) -> None:
    # The batches wait in the spool before the contract is known; they meet it when replayed.
    token = registered[1]
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    spool = tmp_path / "spool"
    first = Monitor(MODEL, "production", url=f"http://127.0.0.1:{port}", token=token,
                    spool_dir=spool, **FAST)  # fmt: skip
    ids = first.log(features(6), np.full(6, 0.3))
    assert not first.flush(timeout=10)
    first.close()
    assert first.stats().spooled == 6
    with serve(data_dir) as url:
        second = Monitor(MODEL, "production", url=url, token=token, spool_dir=spool, **FAST)
        assert second.flush(timeout=10)
        second.close()
    rows = RowLog(data_dir / "log").read(MODEL)
    assert sorted(rows["id"]) == sorted(ids or [])
    assert rows["fail_score"].to_list() == [0.3] * 6
    assert second.stats().contract == {"rows:renamed:prediction->fail_score": 6}


class OlderServer(BaseHTTPRequestHandler):
    """A server from before ``GET .../contract``: it answers the version's registration, and
    keeps the column names of each batch of rows it is sent."""

    meta: ClassVar[dict[str, object]] = {}
    requests: ClassVar[list[str]] = []
    batches: ClassVar[list[list[str]]] = []

    def do_GET(self) -> None:
        self.requests.append(self.path)
        if self.path == f"/api/v1/models/{MODEL}/versions/production":
            self.answer(200, {"model": MODEL, "version": "2", "meta": self.meta})
        else:
            self.answer(404, {"detail": "Not Found"})

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        self.batches.append(pa.ipc.open_stream(body).read_all().column_names)
        self.answer(200, {"batch_id": self.headers["Idempotency-Key"], "duplicate": False})

    def answer(self, status: int, document: dict[str, object]) -> None:
        text = json.dumps(document).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(text)))
        self.end_headers()
        self.wfile.write(text)

    def log_message(self, format: str, *args: object) -> None:
        pass


def test_a_server_without_the_contract_route_gives_it_from_the_registration(
    data_dir: Path, tmp_path: Path
) -> None:
    store = Settings(data_dir=data_dir).store()
    OlderServer.meta = store.resolve(MODEL, "production").meta
    store.close()
    server = ThreadingHTTPServer(("127.0.0.1", 0), OlderServer)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}"
        with Monitor(
            MODEL, "production", url=url, token="mlw_t", spool_dir=tmp_path, **FAST
        ) as monitor:
            for i in range(3):
                monitor.log(features(4, seed=i), np.full(4, 0.5))
                assert monitor.flush(timeout=10)
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)
    assert OlderServer.requests == [
        f"/api/v1/models/{MODEL}/versions/production/contract",
        f"/api/v1/models/{MODEL}/versions/production",
    ]
    assert len(OlderServer.batches) == 3
    assert all("fail_score" in c and "prediction" not in c for c in OlderServer.batches)
    assert monitor.stats().contract == {"rows:renamed:prediction->fail_score": 12}
