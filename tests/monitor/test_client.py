"""The bolt-on client: rows and labels reach the row log directly and through a real server
process; a crash of the server, or a server that is down from the start, loses no row and
duplicates none; a refused token is not retried forever; the host is never blocked or broken."""

from __future__ import annotations

import inspect
import io
import json
import logging
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import polars as pl
import pytest

from mlwarden.exceptions import ParameterError
from mlwarden.lineage import Lineage, run
from mlwarden.monitor import Monitor, RowIds
from mlwarden.monitor.batch import RESERVED, Batch
from mlwarden.monitor.spool import Spool
from mlwarden.server import Settings
from mlwarden.store import rowlog
from mlwarden.store.rowlog import MODEL_VERSION, RowLog

MODEL = "furnace-3"
VERSION = "2"
# Short intervals, so that the tests wait little for batches, retries and probes.
FAST = {"flush_seconds": 0.05, "retry_seconds": 0.3, "backoff_max": 0.2, "timeout": 5.0}


def features(n: int, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return pd.DataFrame(
        {
            "temperature_c": rng.normal(900.0, 15.0, n),
            "oxygen_pct": rng.uniform(1.0, 4.0, n),
            "feed_rate": rng.normal(12.0, 1.0, n),
        }
    )


def stored(data_dir: Path) -> pl.DataFrame:
    return RowLog(data_dir / "log").read(MODEL)


# -- a real server process ---------------------------------------------------------------------


class Server:
    """``mlwarden serve`` as a child process, on a fixed port and data directory."""

    def __init__(self, data_dir: Path, port: int) -> None:
        self.data_dir = data_dir
        self.port = port
        self.url = f"http://127.0.0.1:{port}"
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> Server:
        command = [
            sys.executable,
            "-c",
            "from mlwarden.cli import main; main()",
            "serve",
            "--data-dir",
            str(self.data_dir),
            "--port",
            str(self.port),
        ]
        log = self.data_dir.parent / f"server-{self.port}.log"
        with log.open("ab") as stderr:  # a file, not a pipe that could fill up and block it
            self.process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=stderr)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(
                    f"the server exited with {self.process.returncode}: {log.read_text()}"
                )
            try:
                with urllib.request.urlopen(f"{self.url}/api/v1/health", timeout=0.5) as reply:
                    if json.load(reply)["status"] == "ok":
                        return self
            except OSError:
                time.sleep(0.05)
        raise RuntimeError("the server did not answer /api/v1/health within 30 s")

    def kill(self) -> None:
        """SIGKILL: no shutdown, no flushing, requests in flight cut off."""
        assert self.process is not None
        os.kill(self.process.pid, signal.SIGKILL)
        self.process.wait()

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def prepare(data_dir: Path) -> str:
    """A data directory with the model, its version and a write token; returns the token."""
    store = Settings(data_dir=data_dir).store()
    store.migrate()
    store.create_model(MODEL)
    store.create_version(MODEL, VERSION)
    token = store.create_token("monitor-test", "write")
    store.close()
    return token


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Server, str]]:
    """One server shared by the tests that do not stop it."""
    data_dir = tmp_path_factory.mktemp("live")
    token = prepare(data_dir)
    server = Server(data_dir, free_port()).start()
    yield server, token
    server.stop()


# -- in-process mode (path=) -------------------------------------------------------------------


def test_rows_and_labels_land_in_the_row_log(tmp_path: Path) -> None:
    with Monitor(MODEL, VERSION, path=tmp_path, **FAST) as monitor:
        ids = monitor.log(features(5), np.array([0, 1, 0, 1, 1]))
        row = monitor.log({"temperature_c": 950.0, "oxygen_pct": 2.0, "feed_rate": 11.0}, 1)
        assert ids is not None
        assert row is not None
        assert monitor.log_labels([ids[1], ids[4], row[0]], [1, 0, 1])
    rows = RowLog(tmp_path / "log").joined(MODEL)
    assert rows.height == 6
    assert set(rows["id"]) == {*ids, *row}
    labelled = dict(zip(rows["id"], rows["label"], strict=True))
    assert (labelled[ids[1]], labelled[ids[4]], labelled[row[0]], labelled[ids[0]]) == (
        1,
        0,
        1,
        None,
    )
    assert rows[MODEL_VERSION].unique().to_list() == [VERSION]
    assert rows["timestamp"].dtype == pl.Datetime("us", "UTC")
    assert monitor.stats().sent == 9  # 6 rows and 3 labels


def test_given_ids_and_timestamps_are_kept(tmp_path: Path) -> None:
    moment = datetime(2024, 5, 1, 8, tzinfo=UTC)
    with Monitor(MODEL, VERSION, path=tmp_path, **FAST) as monitor:
        returned = monitor.log(
            pl.DataFrame({"pressure_bar": [2.5, 3.5]}),
            {"prediction": [0, 1], "score": [0.2, 0.9]},
            ids=["part-1", "part-2"],
            timestamps=moment,
        )
    assert returned is None  # the caller knows its ids
    rows = stored(tmp_path).sort("id")
    assert rows.select("id", "pressure_bar", "prediction", "score").rows() == [
        ("part-1", 2.5, 0, 0.2),
        ("part-2", 3.5, 1, 0.9),
    ]
    assert rows["timestamp"].to_list() == [moment, moment]


def test_times_as_users_have_them_are_sent_in_utc(tmp_path: Path) -> None:
    read = pd.read_csv(  # a CSV of ISO text: pandas keeps it as text
        io.StringIO(
            "part,pressure_bar,timestamp\np1,2.5,2024-05-01T08:00:00\n"
            "p2,3.5,2024-05-01 10:00:00+02:00\n"
        )
    )
    with Monitor(MODEL, VERSION, path=tmp_path, **FAST) as monitor:
        monitor.log(read[["pressure_bar", "timestamp"]], ids=read["part"])
        monitor.log({"pressure_bar": [4.5]}, ids=["p3"], timestamps=[1714557600])  # epoch s
        naive = pd.Series(pd.to_datetime(["2024-05-01 08:00"]))
        monitor.log({"pressure_bar": [5.5]}, ids=["p4"], timestamps=naive)
        monitor.log({"pressure_bar": [6.5]}, ids=["p5"], timestamps=["at eight"])  # set apart
        assert monitor.flush(timeout=10)
    rows = stored(tmp_path).sort("id")
    eight = datetime(2024, 5, 1, 8, tzinfo=UTC)
    assert rows["id"].to_list() == ["p1", "p2", "p3", "p4"]
    assert rows["timestamp"].to_list() == [eight, eight, eight + timedelta(hours=2), eight]
    stats = monitor.stats()
    assert (stats.dropped, stats.errors) == (1, 1)
    assert "'at eight'" in str(stats.last_error)


def test_generated_ids_are_unique_across_calls_and_monitors(tmp_path: Path) -> None:
    with (
        Monitor(MODEL, VERSION, path=tmp_path, **FAST) as first,
        Monitor(MODEL, VERSION, path=tmp_path, **FAST) as second,
    ):
        ids = [*first.log(features(3)), *first.log(features(3)), *second.log(features(3))]  # type: ignore[misc]
    assert len(set(ids)) == 9
    assert set(stored(tmp_path)["id"]) == set(ids)


def test_single_rows_are_batched_column_by_column(tmp_path: Path) -> None:
    rng = np.random.default_rng(7)
    sent: dict[str, tuple[float, object]] = {}
    numpy_rows = 0
    with Monitor(MODEL, VERSION, path=tmp_path, batch_rows=100, **FAST) as monitor:
        predict = monitor.wrap(lambda x: x[:1] * 2.0)  # a NumPy row in, an array of one out
        for i in range(250):
            value = float(rng.normal())
            if i % 50 == 49:  # now and then a row with another column, or no prediction
                ids = monitor.log({"a": value, "b": 0.0, "extra": "x"})
                sent[ids[0]] = (value, None)  # type: ignore[index]
            elif i % 3 == 0:
                assert predict(np.array([value, 1.0])) is not None
                numpy_rows += 1
            else:
                ids = monitor.log({"a": value, "b": 1.0}, prediction := i % 2)
                sent[ids[0]] = (value, prediction)  # type: ignore[index]
    rows = stored(tmp_path)
    assert rows.height == 250
    assert rows["id"].n_unique() == 250
    by_id = {r["id"]: r for r in rows.iter_rows(named=True)}
    for row_id, (value, prediction) in sent.items():
        assert (by_id[row_id]["a"], by_id[row_id]["prediction"]) == (value, prediction)
    from_numpy = rows.filter(pl.col("x0").is_not_null())
    assert from_numpy.height == numpy_rows == 82
    assert (from_numpy["prediction"] == from_numpy["x0"] * 2.0).all()
    assert rows.filter(pl.col("extra") == "x").height == 5


def test_the_decorator_returns_the_result_object_and_logs_inputs(tmp_path: Path) -> None:
    class Model:
        def predict(self, inputs: object) -> np.ndarray:
            is_array = isinstance(inputs, np.ndarray)
            self.result = np.asarray(inputs)[:, 0] > 0.5 if is_array else np.ones(2)
            return self.result

    model = Model()
    with Monitor(MODEL, VERSION, path=tmp_path, feature_names=["a", "b"], **FAST) as monitor:
        predict = monitor.wrap(Model.predict)  # a plain function: X is after self
        matrix = np.array([[0.2, 1.0], [0.9, 2.0]])
        assert predict(model, matrix) is model.result
        frame = pd.DataFrame({"a": [0.1, 0.7], "b": [3.0, 4.0]})
        assert monitor.wrap(model.predict)(frame) is model.result  # a bound method
        assert monitor.wrap(model.predict)(pl.from_pandas(frame)) is model.result
    rows = stored(tmp_path).sort("a")
    assert rows.height == 6
    assert rows["a"].to_list() == [0.1, 0.1, 0.2, 0.7, 0.7, 0.9]
    assert rows.filter(pl.col("a") == 0.9)["prediction"].to_list() == [True]
    assert monitor.stats().errors == 0


def test_an_async_handler_is_awaited_and_logged(tmp_path: Path) -> None:
    """An ``async def`` predict (an async model server's handler) stays a coroutine function,
    returns its result and logs its inputs once awaited."""
    import asyncio

    with Monitor(MODEL, VERSION, path=tmp_path, **FAST) as monitor:

        @monitor.wrap
        async def predict(inputs: dict[str, list[float]]) -> list[bool]:
            await asyncio.sleep(0)
            return [x > 3.0 for x in inputs["pressure_bar"]]

        assert inspect.iscoroutinefunction(predict)
        answers = asyncio.run(predict({"pressure_bar": [2.5, 3.5]}))
        assert answers == [False, True]
    rows = stored(tmp_path).sort("pressure_bar")
    assert rows["prediction"].to_list() == [False, True]


def test_a_prediction_whose_input_cannot_be_logged_still_returns(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    unreadable = object()
    answer = ["ok"]

    with Monitor(MODEL, VERSION, path=tmp_path, **FAST) as monitor:

        @monitor.wrap
        def predict(inputs: object) -> list[str]:
            return answer

        with caplog.at_level(logging.WARNING, logger="mlwarden.monitor"):
            assert predict(unreadable) is answer
            assert predict(inputs=unreadable) is answer

        @monitor.wrap
        def failing(inputs: object) -> None:
            raise KeyError("the model's own error")

        with pytest.raises(KeyError, match="own error"):
            failing({"a": 1.0})
    stats = monitor.stats()
    assert (stats.errors, stats.logged) == (2, 0)
    assert "could not log" in caplog.text
    assert "object" in str(stats.last_error)


def test_one_bad_call_does_not_lose_the_others_of_its_batch(tmp_path: Path) -> None:
    with Monitor(MODEL, VERSION, path=tmp_path, batch_rows=100, flush_seconds=5) as monitor:
        good = monitor.log({"sensor": [1.0, 2.0]})
        monitor.log({"sensor": [object(), object()]})  # converted on the sender: set apart
        more = monitor.log({"sensor": [3.0]})
        assert monitor.log({"_batch_id": [1.0]}) is None  # a reserved column: refused at once
        assert monitor.flush(timeout=10)
    stats = monitor.stats()
    assert set(stored(tmp_path)["id"]) == {*good, *more}  # type: ignore[misc]
    assert (stats.sent, stats.dropped, stats.errors) == (3, 2, 2)
    assert "object" in str(stats.last_error) or "_batch_id" in str(stats.last_error)


def test_a_full_queue_drops_the_oldest_rows_and_never_blocks(tmp_path: Path) -> None:
    # Nothing listens on this port, and the sender retries its first batch for a long time.
    url = f"http://127.0.0.1:{free_port()}"
    monitor = Monitor(
        MODEL,
        VERSION,
        url=url,
        token="mlw_x",
        spool_dir=tmp_path / "spool",
        batch_rows=50,
        queue_rows=200,
        flush_seconds=0.01,
        retry_seconds=30,
        backoff_max=0.5,
    )
    time.sleep(0.05)
    slowest = 0.0
    for i in range(100):
        started = time.perf_counter()
        monitor.log(features(10, seed=i))
        slowest = max(slowest, time.perf_counter() - started)
    stats = monitor.stats()
    assert stats.logged == 1000
    assert stats.queued <= 200
    assert stats.dropped >= 1000 - 200 - 50  # at most one batch is in the sender's hands
    assert slowest < 0.05
    monitor.close(timeout=5)  # the batch in hand and the queue go to the spool
    after = monitor.stats()
    assert after.spooled + after.dropped == 1000
    assert len(list((tmp_path / "spool").glob("*.arrow"))) == after.spool_files > 0


def test_parameters_are_checked_at_construction(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("MLWARDEN_TOKEN", raising=False)
    with pytest.raises(ParameterError, match="exactly one destination"):
        Monitor(MODEL, VERSION)
    with pytest.raises(ParameterError, match="exactly one destination"):
        Monitor(MODEL, VERSION, url="http://127.0.0.1:1", path=tmp_path)
    with pytest.raises(ParameterError, match="MLWARDEN_TOKEN") as info:
        Monitor(MODEL, VERSION, url="http://127.0.0.1:1")
    assert info.value.parameter == "token"
    with pytest.raises(ParameterError, match="'batch_rows'"):
        Monitor(MODEL, VERSION, path=tmp_path, batch_rows=0)
    with pytest.raises(ParameterError, match="'model'"):
        Monitor("../etc", VERSION, path=tmp_path)
    with pytest.raises(ParameterError, match="http://"):
        Monitor(MODEL, VERSION, url="127.0.0.1:8765", token="t")


def test_the_reserved_columns_are_those_of_the_row_log() -> None:
    names = {rowlog.MODEL, rowlog.DATE, rowlog.MODEL_VERSION, rowlog.INGESTED_AT, rowlog.BATCH_ID}
    assert names == RESERVED


def test_row_ids_read_like_a_list() -> None:
    ids = RowIds("abc-1", 3)
    assert ids == ["abc-1-0", "abc-1-1", "abc-1-2"]
    assert ids[1:] == ["abc-1-1", "abc-1-2"]
    with pytest.raises(IndexError):
        ids[3]


# -- against a real server ---------------------------------------------------------------------


def test_rows_and_labels_sent_to_a_server_are_stored_once(
    live: tuple[Server, str], tmp_path: Path
) -> None:
    server, token = live
    before = stored(server.data_dir).height if (server.data_dir / "log").exists() else 0
    with Monitor(
        MODEL, VERSION, url=server.url, token=token, spool_dir=tmp_path, batch_rows=64, **FAST
    ) as monitor:
        ids: list[str] = []
        for i in range(60):
            ids.extend(monitor.log(features(7, seed=i), np.arange(7) % 2) or [])
        assert monitor.log_labels(ids[:10], list(range(10)))
        assert monitor.flush(timeout=20)
        stats = monitor.stats()
    rows = RowLog(server.data_dir / "log").joined(MODEL).filter(pl.col("id").is_in(ids))
    assert stored(server.data_dir).height - before == rows.height == 420
    assert rows["id"].n_unique() == 420
    labels = dict(zip(rows["id"], rows["label"], strict=True))
    assert [labels[i] for i in ids[:10]] == list(range(10))
    assert (stats.sent, stats.spooled, stats.dropped, stats.errors) == (430, 0, 0, 0)


def test_a_batch_replayed_after_it_was_stored_is_not_stored_twice(
    live: tuple[Server, str], tmp_path: Path
) -> None:
    # The host crashed after the server stored a batch and before its spool file was deleted:
    # the next monitor replays it under the same batch id.
    server, token = live
    with Monitor(MODEL, VERSION, url=server.url, token=token, spool_dir=tmp_path, **FAST) as first:
        ids = first.log(features(25))
        assert first.flush(timeout=10)
    rows = stored(server.data_dir)
    batch = rows.filter(pl.col("id").is_in(list(ids or [])))
    (batch_id,) = batch[rowlog.BATCH_ID].unique()
    table = batch.select(c for c in batch.columns if not c.startswith("_")).to_arrow()
    again = tmp_path / "again"
    Spool(again, 1 << 30).put(Batch("rows", MODEL, VERSION, batch_id, table, "timestamp", "id"))
    with Monitor(MODEL, VERSION, url=server.url, token=token, spool_dir=again, **FAST) as second:
        assert second.flush(timeout=10)
    assert (second.stats().replayed, second.stats().duplicates) == (25, 25)
    assert stored(server.data_dir).height == rows.height
    assert not list(again.glob("*.arrow"))


def test_a_refused_token_is_not_retried_forever(
    live: tuple[Server, str], tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    server, _ = live
    started = time.monotonic()
    with caplog.at_level(logging.WARNING, logger="mlwarden.monitor"):
        monitor = Monitor(
            MODEL, VERSION, url=server.url, token="mlw_not-a-token", spool_dir=tmp_path, **FAST
        )
        assert monitor.log(features(5)) is not None  # the host notices nothing
        monitor.log(features(5))
        assert monitor.flush(timeout=10)  # nothing left waiting: the batches were refused
        monitor.close()
    assert time.monotonic() - started < 5
    stats = monitor.stats()
    assert (stats.rejected, stats.sent, stats.spool_files) == (10, 0, 0)
    assert "HTTP 403" in caplog.text
    assert "not retried" in caplog.text
    reasons = [json.loads(p.read_text()) for p in (tmp_path / "rejected").glob("*.reason.json")]
    assert [r["status"] for r in reasons] == [403] * len(reasons)
    assert sum(r["rows"] for r in reasons) == 10
    assert len(list((tmp_path / "rejected").glob("*.arrow"))) == len(reasons)


def test_rows_survive_a_server_crash_exactly_once(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    token = prepare(data_dir)
    server = Server(data_dir, free_port()).start()
    monitor = Monitor(
        MODEL, VERSION, url=server.url, token=token, spool_dir=tmp_path / "spool",
        batch_rows=40, **FAST,
    )  # fmt: skip
    logged: list[str] = []
    latencies: list[float] = []

    def stream(calls: int) -> None:
        for _ in range(calls):
            started = time.perf_counter()
            ids = monitor.log(features(8, seed=len(logged)), np.zeros(8))
            latencies.append(time.perf_counter() - started)
            logged.extend(ids or [])
            time.sleep(0.003)

    try:
        stream(80)
        server.kill()  # mid-stream: batches are in flight every few milliseconds
        down = len(latencies)
        stream(120)  # the server is down: retries, then the spool
        spooled = monitor.stats().spooled
        server.start()  # same port, same data directory
        stream(60)
        assert monitor.flush(timeout=30)
        monitor.close()
    finally:
        server.stop()
    stats = monitor.stats()
    rows = stored(data_dir)
    assert len(logged) == 260 * 8
    assert rows.height == len(logged)  # nothing lost, nothing twice
    assert rows["id"].n_unique() == rows.height
    assert set(rows["id"]) == set(logged)
    assert spooled > 0
    assert stats.replayed >= spooled
    assert stats.spool_files == 0
    assert max(latencies[down : down + 120]) < 0.05  # the caller never waited on the server
    assert not list((tmp_path / "spool").glob("*.arrow"))


def replay(data_dir: Path, port: int, token: str, spool: Path) -> Monitor:
    """A new monitor on ``spool`` once the server is up: it sends what an earlier one left."""
    server = Server(data_dir, port).start()
    try:
        monitor = Monitor(
            MODEL, VERSION, url=f"http://127.0.0.1:{port}", token=token, spool_dir=spool, **FAST
        )
        assert monitor.flush(timeout=20)
        monitor.close()
    finally:
        server.stop()
    return monitor


def test_a_restarted_host_replays_what_the_last_one_spooled(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    token = prepare(data_dir)
    port = free_port()
    spool = tmp_path / "spool"
    url = f"http://127.0.0.1:{port}"
    first = Monitor(MODEL, VERSION, url=url, token=token, spool_dir=spool, **FAST)
    ids = [*first.log(features(30)), *first.log(features(30, seed=1))]  # type: ignore[misc]
    assert not first.flush(timeout=10)  # the server was never there: the rows wait on disk
    first.close()
    assert first.stats().spooled == 60
    assert len(list(spool.glob("*.arrow"))) == first.stats().spool_files > 0

    second = replay(data_dir, port, token, spool)
    rows = stored(data_dir)
    assert sorted(rows["id"]) == sorted(ids)
    assert second.stats().replayed == 60
    assert not list(spool.glob("*.arrow"))


def test_rows_keep_their_run_through_the_spool_and_the_replay(tmp_path: Path) -> None:
    # Rows of different runs never share a batch; a batch's run is written into its spool file
    # and sent with it when the spool is replayed, so the server links it all the same.
    data_dir = tmp_path / "data"
    token = prepare(data_dir)
    store = Settings(data_dir=data_dir).store()
    lineage = Lineage(store)
    nightly = "3f5e2a8c-8a5b-4b8e-9a57-1f4b1c2d3e4f"
    lineage.ingest_openlineage(
        {
            "eventType": "COMPLETE",
            "eventTime": "2024-05-01T02:00:00Z",
            "run": {"runId": nightly},
            "job": {"namespace": "plant-7", "name": "featurize-nightly"},
        }
    )
    with run("featurize-online", store=store) as online:
        pass
    port = free_port()
    spool = tmp_path / "spool"
    url = f"http://127.0.0.1:{port}"
    first = Monitor(MODEL, VERSION, url=url, token=token, spool_dir=spool, **FAST)
    first.log(features(20), run=nightly)
    for i in range(5):  # single rows, each call of its own run or of none
        first.log({"temperature_c": 900.0 + i}, 0, run=online if i % 2 else None)
    first.log(features(7, seed=1), run=online.id)
    assert first.log(features(1), run="bad\nrun") is None  # refused, counted, never raised
    assert first.log(features(1), run=True) is None
    assert not first.flush(timeout=10)
    first.close()
    assert first.stats().errors >= 2

    batches = [Spool(spool, 1 << 30).load(p) for p in sorted(spool.glob("*.arrow"))]
    rows_by_run: dict[str, int] = {}
    for batch in batches:
        rows_by_run[batch.run_ref] = rows_by_run.get(batch.run_ref, 0) + batch.rows
    assert rows_by_run == {nightly: 20, str(online.id): 9, "": 3}

    second = replay(data_dir, port, token, spool)
    assert second.stats().replayed == 32
    now = datetime.now(UTC)
    found = lineage.batch_runs(MODEL, now - timedelta(hours=1), now + timedelta(minutes=1))
    assert [(r.name, n) for r, n in found] == [("featurize-nightly", 20), ("featurize-online", 9)]
    store.close()
