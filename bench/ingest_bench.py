"""Ingest and dashboard: rows per second through the HTTP API while the server evaluates, and the
server time of the model page with 90 days of hourly windows.

How to run (from the repository root, after ``make install-dev``)::

    .venv/bin/python bench/ingest_bench.py                 # about 3 minutes
    .venv/bin/python bench/ingest_bench.py --seconds 10 --skip-page

Part 1 -- sustained ingest. A real ``mlwarden serve`` process (SQLite metadata, Parquet row log)
runs with its evaluation scheduler on (every 5 s, hourly windows) for a registered model of the
simulated extrusion line (14 columns: sensors, recipe, line, shift, the model's score and
prediction, an id). The rows sent carry event times spread over the last 24 hours, so every
window they land in is closed and every evaluation round re-evaluates the windows that grew: the
scheduler works the whole time, on the same two cores as the ingest. Each case sends for
``--seconds`` (30 by default) from two client threads, each with its own keep-alive connection,
and counts the rows the server acknowledged:

* Arrow IPC batches of 10,000 and 1,000 rows (what the client sends);
* JSON batches of 1,000 rows (what a script without pyarrow sends);
* the :class:`~mlwarden.monitor.Monitor` client in a tight loop of 1,000-row calls (batched by
  its sender thread; what it delivered per second once flushed);
* in-process ``RowLog.append`` of 10,000-row batches with no server and no evaluation: the
  cost of the storage itself, for the ratio that shows what HTTP, validation and the evaluation
  running beside it take.

After each server case the row log is counted: every acknowledged row is stored, exactly once.
Target: at least 50,000 rows/s through the API with evaluation running.

Part 2 -- the model page. A store holds one model with 90 days of hourly windows (2,160) and
100 metrics per window (216,000 metric rows: quality checks and scores, drift per column, the
multivariate drift, performance estimated and realized, per segment) on SQLite, and on the
PostgreSQL of this machine when it answers (``MLWARDEN_TEST_POSTGRES_URL``, as in the tests).
``GET /models/<model>?days=90`` (the timelines of the key metrics over all 90 days with their
bands, the windows and incidents; the default shows the last 30 days) is timed in-process with
Starlette's test client, which measures the server's work without a network; the default page,
the models overview and the JSON series of one metric are timed beside it.
Median and 95th percentile of 20 requests after 3 warm-ups. Target: under 300 ms for the model
page.

Results are printed as tables and written to ``bench/results/ingest_bench.json``.
"""

from __future__ import annotations

import argparse
import http.client
import io
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import polars as pl

from _common import (
    RESULTS_DIR,
    machine_info,
    print_machine,
    print_targets,
    versions,
    write_results,
)

if TYPE_CHECKING:
    from collections.abc import Callable

MODEL = "extrusion-defects"
RESULTS_FILE = RESULTS_DIR / "ingest_bench.json"
TARGET_ROWS_PER_SECOND = 50_000
TARGET_PAGE_MS = 300.0
THREADS = 2
PAGE_DAYS = 90
METRICS_PER_WINDOW = 100


# -- part 1: ingest ------------------------------------------------------------------------------


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def reference_and_rows(now: datetime) -> tuple[pl.DataFrame, pl.DataFrame]:
    """A reference of 20,000 readings, and 10,000 readings spread over the last 24 hours."""
    from mlwarden.datasets import production_line

    reference = production_line(20_000, seed=1, start=now - timedelta(days=30))
    rows = production_line(10_000, seed=2, start=now - timedelta(hours=24), freq_seconds=8.5)
    rows = rows.drop("defect").with_columns(pl.format("r{}", pl.int_range(pl.len())).alias("id"))
    return reference, rows


def start_server(data_dir: Path, reference: pl.DataFrame) -> tuple[subprocess.Popen[bytes], str]:
    """``mlwarden serve`` with its scheduler on, for a registered model; returns the server and
    a write token."""
    from mlwarden.registry import Registry
    from mlwarden.server import Settings

    store = Settings(data_dir=data_dir).store()
    registry = Registry(store)
    registry.register(
        MODEL,
        "1",
        reference,
        timestamp="timestamp",
        roles={"defect": "target", "batch_id": "feature"},
        segment="line",
    )
    registry.promote(MODEL, "1")
    token = store.create_token("bench", "write")
    store.close()
    port = free_port()
    command = [sys.executable, "-c", "from mlwarden.cli import main; main()", "serve"]
    command += ["--data-dir", str(data_dir), "--port", str(port)]
    command += ["--evaluate-every", "5", "--window", "1h"]
    with (data_dir / "server.log").open("ab") as log:
        process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=log)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"{url}/api/v1/health", timeout=0.5) as reply:
                if json.load(reply)["status"] == "ok":
                    process.url = url  # type: ignore[attr-defined]
                    return process, token
        except OSError:
            if process.poll() is not None:
                raise RuntimeError((data_dir / "server.log").read_text()) from None
            time.sleep(0.05)
    raise RuntimeError("the server did not start within 60 s")


def arrow_body(frame: pl.DataFrame) -> bytes:
    buffer = io.BytesIO()
    frame.write_ipc_stream(buffer)
    return buffer.getvalue()


def json_body_parts(frame: pl.DataFrame) -> tuple[bytes, bytes]:
    """The JSON body around its batch id: prefix + id + suffix."""
    rows = frame.with_columns(pl.col("timestamp").dt.to_string("%Y-%m-%dT%H:%M:%S%.f+00:00"))
    marker = "@@BATCH@@"
    text = json.dumps({"batch_id": marker, "rows": rows.to_dicts()}, default=str)
    prefix, suffix = text.split(marker)
    return prefix.encode(), suffix.encode()


def send_for(
    url: str,
    token: str,
    seconds: float,
    make_request: Callable[[str], tuple[bytes, dict[str, str]]],
    rows_per_batch: int,
) -> dict[str, Any]:
    """POST batches from ``THREADS`` threads for ``seconds``; rows acknowledged per second."""
    host, port = url.removeprefix("http://").split(":")
    path = f"/api/v1/models/{MODEL}/versions/production/rows"
    acknowledged = [0] * THREADS
    failures: list[str] = []
    latencies: list[float] = []
    stop = time.perf_counter() + seconds

    def worker(slot: int) -> None:
        connection = http.client.HTTPConnection(host, int(port), timeout=120)
        while time.perf_counter() < stop:
            body, headers = make_request(uuid.uuid4().hex)
            headers = {**headers, "Authorization": f"Bearer {token}"}
            started = time.perf_counter()
            connection.request("POST", path, body=body, headers=headers)
            reply = connection.getresponse()
            payload = reply.read()
            latencies.append(time.perf_counter() - started)
            if reply.status == 200:
                acknowledged[slot] += rows_per_batch
            else:
                failures.append(f"{reply.status}: {payload[:200]!r}")
                return
        connection.close()

    started = time.perf_counter()
    threads = [threading.Thread(target=worker, args=(i,)) for i in range(THREADS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    elapsed = time.perf_counter() - started
    if failures:
        raise RuntimeError(f"the server refused a batch: {failures[0]}")
    rows = sum(acknowledged)
    return {
        "rows": rows,
        "seconds": round(elapsed, 2),
        "rows_per_second": rows / elapsed,
        "batches": len(latencies),
        "p50_ms": statistics.median(latencies) * 1e3,
        "p99_ms": float(np.quantile(latencies, 0.99)) * 1e3,
    }


def monitor_for(url: str, token: str, seconds: float, frame: pl.DataFrame) -> dict[str, Any]:
    """The client in a tight loop of 1,000-row calls; rows delivered per second once flushed."""
    from mlwarden.monitor import Monitor

    chunk = frame.head(1_000)
    features = chunk.drop("defect_score", "prediction")
    predictions = chunk.select("defect_score", "prediction")
    monitor = Monitor(MODEL, "production", url=url, token=token, batch_rows=10_000)
    started = time.perf_counter()
    stop = started + seconds
    while time.perf_counter() < stop:
        monitor.log(features, predictions)
    monitor.flush(timeout=120)
    elapsed = time.perf_counter() - started
    monitor.close()
    stats = monitor.stats()
    return {
        "rows": stats.sent,
        "seconds": round(elapsed, 2),
        "rows_per_second": stats.sent / elapsed,
        "dropped": stats.dropped,
        "batches": None,
        "p50_ms": None,
        "p99_ms": None,
    }


def rowlog_baseline(seconds: float, frame: pl.DataFrame) -> dict[str, Any]:
    """In-process appends of 10,000-row batches to a row log: storage alone."""
    from mlwarden.store.rowlog import RowLog

    work = Path(tempfile.mkdtemp(prefix="mlwarden-ingest-baseline-"))
    try:
        rowlog = RowLog(work)
        rows = batches = 0
        started = time.perf_counter()
        while time.perf_counter() < started + seconds:
            rows += rowlog.append(MODEL, "1", frame, batch_id=uuid.uuid4().hex)
            batches += 1
        elapsed = time.perf_counter() - started
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return {
        "rows": rows,
        "seconds": round(elapsed, 2),
        "rows_per_second": rows / elapsed,
        "batches": batches,
        "p50_ms": None,
        "p99_ms": None,
    }


def stored_rows(data_dir: Path) -> int:
    from mlwarden.store.rowlog import RowLog

    return RowLog(data_dir / "log").stats(MODEL).rows


def evaluated_windows(data_dir: Path) -> tuple[int, int]:
    """Windows of the model, and how many were evaluated (by the scheduler)."""
    from mlwarden.server import Settings

    store = Settings(data_dir=data_dir).store()
    windows = store.windows(MODEL)
    store.close()
    return len(windows), sum(w.evaluated_at is not None for w in windows)


def ingest_part(seconds: float, work: Path) -> list[dict[str, Any]]:
    now = datetime.now(UTC)
    reference, rows = reference_and_rows(now)
    big = arrow_body(rows)
    small = arrow_body(rows.head(1_000))
    prefix, suffix = json_body_parts(rows.head(1_000))
    arrow = {"Content-Type": "application/vnd.apache.arrow.stream"}
    cases: list[tuple[str, Callable[[str, str], dict[str, Any]]]] = [
        (
            "Arrow IPC, 10,000 rows per batch",
            lambda url, token: send_for(
                url, token, seconds, lambda key: (big, {**arrow, "Idempotency-Key": key}), 10_000
            ),
        ),
        (
            "Arrow IPC, 1,000 rows per batch",
            lambda url, token: send_for(
                url, token, seconds, lambda key: (small, {**arrow, "Idempotency-Key": key}), 1_000
            ),
        ),
        (
            "JSON, 1,000 rows per batch",
            lambda url, token: send_for(
                url,
                token,
                seconds,
                lambda key: (prefix + key.encode() + suffix, {"Content-Type": "application/json"}),
                1_000,
            ),
        ),
        (
            "Monitor client, 1,000-row calls",
            lambda url, token: monitor_for(url, token, seconds, rows),
        ),
    ]
    results = []
    for name, run in cases:
        data_dir = work / name.split(",")[0].replace(" ", "-").lower()
        data_dir.mkdir(parents=True)
        print(f"[ingest] {name} for {seconds:.0f} s ...", file=sys.stderr, flush=True)
        server, token = start_server(data_dir, reference)
        try:
            result = run(server.url, token)  # type: ignore[attr-defined]
        finally:
            server.terminate()
            server.wait(timeout=60)
        stored = stored_rows(data_dir)
        windows, evaluated = evaluated_windows(data_dir)
        results.append(
            {
                "case": name,
                **result,
                "stored": stored,
                "exactly_once": stored == result["rows"],
                "windows": windows,
                "evaluated_windows": evaluated,
            }
        )
        shutil.rmtree(data_dir, ignore_errors=True)
    print("[ingest] RowLog.append in-process, 10,000 rows per batch ...", file=sys.stderr)
    baseline = rowlog_baseline(seconds, rows)
    results.append(
        {
            "case": "RowLog.append in-process (no HTTP, no evaluation)",
            **baseline,
            "stored": baseline["rows"],
            "exactly_once": True,
            "windows": None,
            "evaluated_windows": None,
        }
    )
    return results


# -- part 2: the model page ----------------------------------------------------------------------


def fill_store(url: str, schema: str | None, reference: pl.DataFrame) -> Any:
    """One model with ``PAGE_DAYS`` days of hourly windows of ``METRICS_PER_WINDOW`` metrics."""
    from sqlalchemy import insert

    from mlwarden.registry import Registry
    from mlwarden.store.metadata import Store
    from mlwarden.store.schema import MetricRow, WindowRow

    store = Store(url, schema=schema)
    registry = Registry(store)
    version = registry.register(MODEL, "1", reference, timestamp="timestamp")
    registry.promote(MODEL, "1")
    start = datetime(2024, 1, 1, tzinfo=UTC)
    hours = PAGE_DAYS * 24
    rng = np.random.default_rng(0)
    per_segment = [("drift.ks", f"sensor_{i}") for i in range(8)] + [
        (f"performance.{m}", "") for m in ("roc_auc", "accuracy", "f1")
    ]
    names = (
        [("quality_score", c, "") for c in ("overall", "completeness", "validity", "timeliness")]
        + [("quality", f"check_{i}", "") for i in range(40)]
        + [("drift.ks", f"sensor_{i}", "") for i in range(12)]
        + [("drift.jensen_shannon", f"category_{i}", "") for i in range(4)]
        + [("drift.pca", "", "")]
        + [(f"performance.{m}", "", "") for m in ("roc_auc", "f1", "accuracy")]
        + [(f"performance.{m}.realized", "", "") for m in ("roc_auc", "f1", "accuracy")]
        + [(n, c, f"line=L{line}") for line in (1, 2, 3) for n, c in per_segment]
    )[:METRICS_PER_WINDOW]
    with store.session() as s:
        s.execute(
            insert(WindowRow),
            [
                {
                    "version_id": version.id,
                    "start": start + timedelta(hours=h),
                    "end": start + timedelta(hours=h + 1),
                    "n_rows": 360,
                    "n_labelled": 360 if h < hours - 48 else 0,
                    "evaluated_at": start + timedelta(hours=h + 1),
                }
                for h in range(hours)
            ],
        )
    ids = [w.id for w in store.windows(MODEL)]
    values = rng.uniform(0.0, 1.0, (len(ids), len(names)))
    with store.session() as s:
        s.execute(
            insert(MetricRow),
            [
                {
                    "window_id": window_id,
                    "name": name,
                    "column": column,
                    "segment": segment,
                    "value": float(values[i, j]),
                    "lower": 0.05 if name.startswith("performance") else None,
                    "upper": 0.98,
                    "alert": bool(values[i, j] > 0.98 or values[i, j] < 0.05),
                }
                for i, window_id in enumerate(ids)
                for j, (name, column, segment) in enumerate(names)
            ],
        )
    return store


def time_get(client: Any, path: str, repeats: int = 20) -> dict[str, float]:
    for _ in range(3):
        reply = client.get(path)
        if reply.status_code != 200:
            raise RuntimeError(f"GET {path}: {reply.status_code} {reply.text[:200]}")
    timings = []
    for _ in range(repeats):
        started = time.perf_counter()
        client.get(path)
        timings.append(time.perf_counter() - started)
    return {
        "median_ms": statistics.median(timings) * 1e3,
        "p95_ms": float(np.quantile(timings, 0.95)) * 1e3,
        "bytes": len(client.get(path).content),
    }


def page_part(work: Path) -> list[dict[str, Any]]:
    from fastapi.testclient import TestClient

    from mlwarden.datasets import production_line
    from mlwarden.server import Settings, create_app

    reference = production_line(6_000, seed=1)
    backends: list[tuple[str, str, str | None]] = [
        ("SQLite", f"sqlite:///{work / 'page' / 'mlwarden.db'}", None)
    ]
    postgres = os.environ.get("MLWARDEN_TEST_POSTGRES_URL")
    if postgres:
        schema = f"bench_page_{uuid.uuid4().hex[:8]}"
        # The server's own store finds the bench's tables through the connection's search path.
        on_schema = f"{postgres}{'&' if '?' in postgres else '?'}options=-csearch_path%3D{schema}"
        backends.append(("PostgreSQL", on_schema, schema))
    results = []
    for name, url, schema in backends:
        (work / "page").mkdir(parents=True, exist_ok=True)
        print(f"[page] filling {name} with {PAGE_DAYS} days of hourly windows ...", file=sys.stderr)
        try:
            store = fill_store(url, schema, reference)
        except Exception as exc:  # a PostgreSQL that does not answer is reported, not fatal
            print(f"[page] {name} skipped: {exc}", file=sys.stderr)
            continue
        try:
            settings = Settings(data_dir=work / "page", database_url=url, public_read=True)
            with TestClient(create_app(settings)) as client:
                for label, path in (
                    ("model page, 90 days", f"/models/{MODEL}?days=90"),
                    ("model page, last 30 days", f"/models/{MODEL}"),
                    ("models overview", "/"),
                    (
                        "JSON series of one metric",
                        f"/api/v1/models/{MODEL}/metrics?name=quality_score&column=overall",
                    ),
                ):
                    timing = time_get(client, path)
                    results.append({"backend": name, "page": label, "path": path, **timing})
        finally:
            if schema is not None:
                from sqlalchemy import text

                with store.engine.begin() as connection:
                    connection.execute(text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
            store.close()
    return results


# -- main ----------------------------------------------------------------------------------------


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=30.0, help="sending time per case")
    parser.add_argument("--skip-ingest", action="store_true")
    parser.add_argument("--skip-page", action="store_true")
    parser.add_argument("--output", type=Path, default=RESULTS_FILE, help="JSON results file")
    args = parser.parse_args()
    machine = machine_info()
    ours = versions(["mlwarden", "polars", "pyarrow", "fastapi", "uvicorn", "sqlalchemy"])
    print_machine(machine, ours)
    work = Path(tempfile.mkdtemp(prefix="mlwarden-ingest-bench-"))
    ingest: list[dict[str, Any]] = []
    pages: list[dict[str, Any]] = []
    try:
        if not args.skip_ingest:
            ingest = ingest_part(args.seconds, work)
        if not args.skip_page:
            pages = page_part(work)
    finally:
        shutil.rmtree(work, ignore_errors=True)

    if ingest:
        baseline = ingest[-1]["rows_per_second"]
        print(
            f"\nSustained ingest, {THREADS} client threads, evaluation every 5 s (hourly windows)"
        )
        print(
            f"{'case':<52} {'rows/s':>10} {'vs storage':>10} {'p50 ms':>8} {'p99 ms':>8} "
            f"{'stored once':>11} {'windows eval.':>13}"
        )
        for r in ingest:
            ratio = baseline / r["rows_per_second"] if r["rows_per_second"] else float("inf")
            p50 = "" if r["p50_ms"] is None else f"{r['p50_ms']:.1f}"
            p99 = "" if r["p99_ms"] is None else f"{r['p99_ms']:.1f}"
            windows = "" if r["windows"] is None else f"{r['evaluated_windows']}/{r['windows']}"
            print(
                f"{r['case']:<52} {r['rows_per_second']:>10,.0f} {ratio:>9.2f}x {p50:>8} "
                f"{p99:>8} {'yes' if r['exactly_once'] else 'NO':>11} {windows:>13}"
            )
    if pages:
        print(
            f"\nDashboard pages, {PAGE_DAYS} days of hourly windows, "
            f"{METRICS_PER_WINDOW} metrics each"
        )
        print(f"{'backend':<11} {'page':<27} {'median ms':>10} {'p95 ms':>8} {'kB':>7}")
        for r in pages:
            print(
                f"{r['backend']:<11} {r['page']:<27} {r['median_ms']:>10.1f} {r['p95_ms']:>8.1f} "
                f"{r['bytes'] / 1e3:>7.0f}"
            )
    arrow = next((r for r in ingest if r["case"].startswith("Arrow IPC, 10,000")), None)
    page = next(
        (r for r in pages if (r["backend"], r["page"]) == ("SQLite", "model page, 90 days")), None
    )
    targets = [
        {
            "target": f">= {TARGET_ROWS_PER_SECOND:,} rows/s through the API, evaluation running",
            "met": None if arrow is None else arrow["rows_per_second"] >= TARGET_ROWS_PER_SECOND,
        },
        {
            "target": "every acknowledged row stored exactly once",
            "met": None if not ingest else all(r["exactly_once"] for r in ingest),
        },
        {
            "target": f"model page, {PAGE_DAYS} days of hourly windows, < {TARGET_PAGE_MS:.0f} ms",
            "met": None if page is None else page["median_ms"] < TARGET_PAGE_MS,
        },
    ]
    print()
    print_targets(targets)
    write_results(
        args.output,
        "ingest_bench",
        machine,
        ours,
        seconds=args.seconds,
        ingest=ingest,
        pages=pages,
        targets=targets,
    )


if __name__ == "__main__":
    main()
