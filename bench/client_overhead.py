"""Client overhead: what ``Monitor.log`` costs the code that calls it, with the server up, down,
and with no server at all.

How to run (from the repository root, after ``make install-dev``)::

    .venv/bin/python bench/client_overhead.py            # about 1.5 minutes
    .venv/bin/python bench/client_overhead.py --seconds 1 --modes server,down

What is measured. A model with 30 float features and one integer prediction is logged in a
tight loop, for ``--seconds`` per case (2 by default), with 1, 10, 100 and 1,000 rows per call:
one row is a dict (the body of a typical online request), larger calls are a pandas DataFrame
with a NumPy array of predictions (what ``model.predict(X)`` sees). Every call is timed on the
caller's thread with ``time.perf_counter_ns``; the sender's thread runs meanwhile and competes
for the interpreter lock, so its cost is in the figures. Three destinations:

* ``server`` -- a real ``mlwarden serve`` process on this machine (HTTP, Arrow IPC batches);
* ``down``   -- a URL where nothing listens: batches are retried, then spooled to disk;
* ``path``   -- no server: the sender writes the row log (Parquet) in a temporary directory.

A second table logs at a steady rate instead (2,000 single rows a second; 200 calls of 100
rows a second), sleeping between calls as a server waits for requests: the sender then keeps
up, and every row logged is delivered or spooled. Each steady case is followed by a baseline at
the same pace without a monitor (copying the input only): after a sleep the caches are cold and
any call into pandas costs more than in a tight loop. The libraries' own objects are frozen out of
the garbage collector (``gc.freeze()``, as long-running servers do) before the cases run, so
that the pauses measured are those the logging adds.

Per case the tables give the cost per row (the mean call's time / rows per call) and per call,
calls per second, the median, 99th percentile and largest single call, and what became of the
rows once the monitor was flushed: delivered (stored by the destination), spooled, or dropped
(the queue of 100,000 rows was full because the loop logged faster than the sender could
deliver -- a tight loop is the worst case, where the caller holds the interpreter lock nearly all
the time; the queue drops the oldest rows and never blocks). ``delivered/s`` is what the sender
sustained: rows delivered over the loop and the flush. A last table compares input types at
100 rows per call against the server.

Targets: under 20 µs per logged row amortized at 100 rows per call with the server up; with the
server down no call blocks: the 99th percentile call under 1 ms and no call over 50 ms, at every
batch size.

Results are printed as tables and written to ``bench/results/client_overhead.json``.
"""

from __future__ import annotations

import argparse
import gc
import json
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
import polars as pl

from _common import RESULTS_DIR, machine_info, print_machine, print_targets, versions, write_results
from mlwarden.monitor import Monitor
from mlwarden.server import Settings

if TYPE_CHECKING:
    from collections.abc import Callable

SEED = 20_241_123
FEATURES = 30
MODEL = "bench-model"
VERSION = "1"
BATCH_SIZES = (1, 10, 100, 1000)
MODES = ("server", "down", "path")
# (rows per call, calls per second) of the steady-rate cases.
PACED = ((1, 2_000), (100, 200))
INPUTS = ("pandas", "numpy", "polars", "dict of arrays", "list of dicts")
RESULTS_FILE = RESULTS_DIR / "client_overhead.json"
TARGET_US_PER_ROW = 20.0
TARGET_P99_DOWN_MS = 1.0
TARGET_MAX_DOWN_MS = 50.0


def start_server(data_dir: Path) -> tuple[subprocess.Popen[bytes], str, str]:
    """``mlwarden serve`` on a free port with a model, its version and a write token."""
    store = Settings(data_dir=data_dir).store()
    store.migrate()
    store.create_model(MODEL)
    store.create_version(MODEL, VERSION)
    token = store.create_token("bench", "write")
    store.close()
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    command = [sys.executable, "-c", "from mlwarden.cli import main; main()", "serve"]
    command += ["--data-dir", str(data_dir), "--port", str(port)]
    with (data_dir / "server.log").open("ab") as log:
        process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=log)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"{url}/api/v1/health", timeout=0.5) as reply:
                if json.load(reply)["status"] == "ok":
                    return process, url, token
        except OSError:
            if process.poll() is not None:
                raise RuntimeError((data_dir / "server.log").read_text()) from None
            time.sleep(0.05)
    raise RuntimeError("the server did not start within 60 s")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def make_inputs(rows: int, kind: str) -> tuple[Any, Any]:
    """Features and predictions of one call in the form ``kind``."""
    rng = np.random.default_rng(SEED + rows)
    values = rng.normal(size=(rows, FEATURES))
    names = [f"f{j}" for j in range(FEATURES)]
    predictions = rng.integers(0, 2, rows)
    if rows == 1 and kind == "pandas":
        return dict(zip(names, values[0].tolist(), strict=True)), int(predictions[0])
    if kind == "pandas":
        return pd.DataFrame(values, columns=names), predictions
    if kind == "numpy":
        return values, predictions
    if kind == "polars":
        return pl.DataFrame(values, schema=names), pl.Series("prediction", predictions)
    if kind == "dict of arrays":
        return {n: values[:, j].copy() for j, n in enumerate(names)}, predictions
    rows_ = [dict(zip(names, row, strict=True)) for row in values.tolist()]
    return rows_, predictions.tolist()


def run_case(
    make_monitor: Callable[[], Monitor],
    rows: int,
    kind: str,
    seconds: float,
    mode: str,
    calls_per_second: float | None = None,
) -> dict[str, Any]:
    """Log for ``seconds`` in a tight loop, or at ``calls_per_second`` (sleeping in between,
    as a server waiting for its next request would)."""
    features, predictions = make_inputs(rows, kind)
    monitor = make_monitor()
    for _ in range(20):  # warm-up: imports, the connection, the first conversions
        monitor.log(features, predictions)
    monitor.flush(timeout=60)  # delivered, or (server down) spooled
    warm = monitor.stats()
    latencies: list[int] = []
    loop_ns = timed_loop(
        lambda: monitor.log(features, predictions), seconds, calls_per_second, latencies
    )
    flush_started = time.perf_counter()
    monitor.flush(timeout=120)
    flush_seconds = time.perf_counter() - flush_started
    monitor.close(timeout=60)
    stats = monitor.stats()
    logged = stats.logged - warm.logged
    delivered = stats.sent + stats.replayed - warm.sent - warm.replayed
    calls = len(latencies)
    ordered = np.sort(np.asarray(latencies)) / 1e3  # µs
    baseline: dict[str, float] = {}
    if calls_per_second is not None:
        # The same pace without a monitor, copying the input only: after a sleep, caches are cold
        # and any call into pandas or NumPy is slower than in a tight loop.
        copy = features.to_numpy if hasattr(features, "to_numpy") else features.copy
        base: list[int] = []
        timed_loop(copy, seconds / 2, calls_per_second, base)
        baseline = {
            "baseline_p50_us": float(np.percentile(base, 50)) / 1e3,
            "baseline_p99_us": float(np.percentile(base, 99)) / 1e3,
        }
    return {
        "mode": mode,
        "paced": calls_per_second,
        "input": kind if rows > 1 or kind != "pandas" else "dict (one row)",
        "rows_per_call": rows,
        "calls": calls,
        "rows_logged": logged,
        "us_per_row": float(ordered.mean()) / rows,
        "us_per_call": float(ordered.mean()),
        "calls_per_second": calls / (loop_ns / 1e9),
        "p50_us": float(np.percentile(ordered, 50)),
        "p99_us": float(np.percentile(ordered, 99)),
        "max_us": float(ordered[-1]),
        "delivered": delivered,
        "spooled": stats.spooled - warm.spooled,
        "dropped": stats.dropped - warm.dropped,
        "delivered_per_second": delivered / (loop_ns / 1e9 + flush_seconds),
        "flush_seconds": flush_seconds,
        "errors": stats.errors - warm.errors,
        **baseline,
    }


def timed_loop(
    call: Callable[[], object], seconds: float, calls_per_second: float | None, out: list[int]
) -> int:
    """Call ``call`` for ``seconds``, back to back or at ``calls_per_second``; append the time of
    each call (ns) to ``out`` and return the whole loop's time (ns)."""
    clock = time.perf_counter_ns
    period = 0 if calls_per_second is None else int(1e9 / calls_per_second)
    gc.collect()
    started = due = clock()
    stop = started + int(seconds * 1e9)
    while True:
        before = clock()
        call()
        after = clock()
        out.append(after - before)
        if after >= stop:
            return clock() - started
        if period:
            due += period
            if due > after:
                time.sleep((due - after) / 1e9)


def print_table(title: str, results: list[dict[str, Any]]) -> None:
    print(f"\n{title}")
    print(
        f"{'mode':<7} {'input':<15} {'pace/s':>7} {'rows/call':>9} {'µs/row':>8} {'µs/call':>9} "
        f"{'calls/s':>9} {'p50 µs':>8} {'p99 µs':>8} {'max µs':>9} {'logged':>9} "
        f"{'delivered':>9} {'spooled':>8} {'dropped':>8} {'delivered/s':>11}"
    )
    for r in results:
        pace = "loop" if r["paced"] is None else f"{r['paced']:,.0f}"
        print(
            f"{r['mode']:<7} {r['input']:<15} {pace:>7} {r['rows_per_call']:>9,} "
            f"{r['us_per_row']:>8.2f} {r['us_per_call']:>9.1f} {r['calls_per_second']:>9,.0f} "
            f"{r['p50_us']:>8.1f} "
            f"{r['p99_us']:>8.1f} {r['max_us']:>9.1f} {r['rows_logged']:>9,} "
            f"{r['delivered']:>9,} {r['spooled']:>8,} {r['dropped']:>8,} "
            f"{r['delivered_per_second']:>11,.0f}"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=2.0, help="logging time per case")
    parser.add_argument("--modes", default=",".join(MODES), help="comma-separated subset")
    parser.add_argument("--output", type=Path, default=RESULTS_FILE, help="JSON results file")
    args = parser.parse_args()
    modes = [m.strip() for m in args.modes.split(",") if m.strip()]
    if unknown := set(modes) - set(MODES):
        parser.error(f"unknown mode(s) {', '.join(sorted(unknown))}; choose from {MODES}")
    machine = machine_info()
    ours = versions(["mlwarden", "polars", "pyarrow", "numpy", "pandas"])
    print_machine(machine, ours)

    work = Path(tempfile.mkdtemp(prefix="mlwarden-client-bench-"))
    server: subprocess.Popen[bytes] | None = None
    results: list[dict[str, Any]] = []
    by_input: list[dict[str, Any]] = []
    paced: list[dict[str, Any]] = []
    try:
        url, token = "", ""
        if "server" in modes:
            (work / "server").mkdir()
            server, url, token = start_server(work / "server")
        down_url = f"http://127.0.0.1:{free_port()}"

        def factory(mode: str, case: str) -> Callable[[], Monitor]:
            spool = work / "spool" / case
            if mode == "server":
                return lambda: Monitor(MODEL, VERSION, url=url, token=token, spool_dir=spool)
            if mode == "down":
                return lambda: Monitor(
                    MODEL, VERSION, url=down_url, token="mlw_x", spool_dir=spool, retry_seconds=0.5
                )
            return lambda: Monitor(MODEL, VERSION, path=work / "path" / case)

        # What the libraries imported so far hold is left out of the garbage collector's full
        # passes (as long-running servers do): the pauses measured are those of this run.
        gc.collect()
        gc.freeze()
        for mode in modes:
            for rows in BATCH_SIZES:
                print(f"[{mode}] {rows} rows per call ...", file=sys.stderr, flush=True)
                case = f"{mode}-{rows}"
                results.append(run_case(factory(mode, case), rows, "pandas", args.seconds, mode))
                shutil.rmtree(work / "spool" / case, ignore_errors=True)
        for mode in [m for m in modes if m != "path"]:
            for rows, rate in PACED:
                print(f"[{mode}] {rows} rows x {rate}/s ...", file=sys.stderr, flush=True)
                case = f"{mode}-{rows}-paced"
                monitor = factory(mode, case)
                paced.append(run_case(monitor, rows, "pandas", args.seconds, mode, rate))
                shutil.rmtree(work / "spool" / case, ignore_errors=True)
        if "server" in modes:
            for kind in INPUTS:
                print(f"[server] 100 rows per call as {kind} ...", file=sys.stderr, flush=True)
                case = f"input-{kind.replace(' ', '-')}"
                by_input.append(
                    run_case(factory("server", case), 100, kind, args.seconds, "server")
                )
    finally:
        gc.unfreeze()
        if server is not None:
            server.terminate()
            server.wait(timeout=30)
        shutil.rmtree(work, ignore_errors=True)

    print_table("Monitor.log, 30 float features + 1 prediction, tight loop", results)
    if paced:
        print_table("The same at a steady rate (calls per second)", paced)
        for r in paced:
            print(
                f"  baseline, {r['mode']} {r['rows_per_call']} rows at {r['paced']:,.0f}/s without "
                f"a monitor (copying the input only): p50 {r['baseline_p50_us']:.1f} µs, "
                f"p99 {r['baseline_p99_us']:.1f} µs"
            )
    if by_input:
        print_table("Input types, 100 rows per call, server up", by_input)

    def case(mode: str, rows: int) -> dict[str, Any] | None:
        return next((r for r in results if r["mode"] == mode and r["rows_per_call"] == rows), None)

    at_100 = case("server", 100)
    down = [r for r in results + paced if r["mode"] == "down"]
    targets = [
        {
            "target": f"< {TARGET_US_PER_ROW:.0f} µs per row at 100 rows per call, server up",
            "met": None if at_100 is None else at_100["us_per_row"] < TARGET_US_PER_ROW,
        },
        {
            "target": (
                f"server down: p99 call < {TARGET_P99_DOWN_MS:.0f} ms and no call over "
                f"{TARGET_MAX_DOWN_MS:.0f} ms, at every batch size"
            ),
            "met": None
            if not down
            else all(
                r["p99_us"] < TARGET_P99_DOWN_MS * 1e3 and r["max_us"] < TARGET_MAX_DOWN_MS * 1e3
                for r in down
            ),
        },
    ]
    print()
    print_targets(targets)
    write_results(
        args.output,
        "client_overhead",
        machine,
        ours,
        seconds_per_case=args.seconds,
        features=FEATURES,
        results=results,
        paced=paced,
        inputs=by_input,
        targets=targets,
    )


if __name__ == "__main__":
    main()
