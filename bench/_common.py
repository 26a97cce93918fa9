"""Helpers shared by the benchmarks in bench/: timing, machine facts, peer venvs, the cached
synthetic tables, workers that time one tool within a time budget, the command line, printed
results and results files.

Only the standard library is imported here at module level (polars, pandas and pyarrow only
inside the functions that need them), so that a worker running inside a peer's venv (which has
neither polars nor mlwarden) can import this module too.
"""

from __future__ import annotations

import argparse
import gc
import hashlib
import json
import os
import platform
import subprocess
import sys
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Iterator, Mapping

    import pyarrow as pa

REPO = Path(__file__).resolve().parent.parent
BENCH = REPO / "bench"
DATA_DIR = BENCH / ".data"
RESULTS_DIR = BENCH / "results"
# Rows per block of a generated table, and per row group of its Parquet file.
CHUNK_ROWS = 1_000_000
# A worker makes no more timed runs once they have taken this long in all.
REPEAT_SECONDS = 60.0
# Reading the tables, setting up and warming up, on top of twice a peer's budget, before a
# worker is stopped.
WORKER_SETUP_SECONDS = 300.0

T = TypeVar("T")


def best_of(run: Callable[[], object], repeats: int) -> float:
    """The fastest of ``repeats`` wall-clock timings of ``run()``, in seconds."""
    timings = []
    for _ in range(repeats):
        gc.collect()
        started = time.perf_counter()
        run()
        timings.append(time.perf_counter() - started)
    return min(timings)


def peak_rss_bytes() -> int:
    """Peak resident set size of this process image so far.

    On Linux this is ``VmHWM`` from ``/proc/self/status``: ``ru_maxrss`` would be wrong for a
    worker, since Linux carries the parent's peak across fork and exec into the child's
    ``ru_maxrss`` (a worker started by a driver holding a 10M-row frame would report the driver's
    gigabytes).
    """
    status = Path("/proc/self/status")
    if status.exists():
        for line in status.read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    import resource

    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return int(peak if sys.platform == "darwin" else peak * 1024)


def versions(packages: Iterable[str]) -> dict[str, str]:
    """Installed version of each distribution, or "not installed"."""
    found = {}
    for name in packages:
        try:
            found[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            found[name] = "not installed"
    return found


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def machine_info() -> dict[str, Any]:
    """Facts about the machine that a reader needs to compare figures across runs."""
    info: dict[str, Any] = {
        "cpu": cpu_model(),
        "logical_cores": os.cpu_count(),
        "os": platform.platform(),
        "python": platform.python_version(),
    }
    try:
        import psutil

        info["physical_cores"] = psutil.cpu_count(logical=False)
        info["memory_gib"] = round(psutil.virtual_memory().total / 2**30, 1)
    except ImportError:
        pass
    return info


def peer_venv(name: str, requirements: Path) -> Path:
    """The Python of the peer venv ``.bench-venv-<name>/`` at the repository root.

    The venv is created on first use and rebuilt whenever ``requirements`` changes, so a
    benchmark of a peer whose pins conflict with ours never touches the project's own venv.
    """
    venv = REPO / f".bench-venv-{name}"
    python = venv / "bin" / "python"
    stamp = venv / ".requirements.sha256"
    wanted = hashlib.sha256(requirements.read_bytes()).hexdigest()
    if python.exists() and stamp.exists() and stamp.read_text() == wanted:
        return python
    print(f"[setup] creating {venv.relative_to(REPO)}/ from {requirements.relative_to(REPO)}")
    # The base interpreter, not this venv's, so the peer venv does not inherit our packages.
    base = getattr(sys, "_base_executable", sys.executable)
    subprocess.run([base, "-m", "venv", "--clear", str(venv)], check=True)
    pip = [str(python), "-m", "pip", "--disable-pip-version-check", "--quiet"]
    subprocess.run([*pip, "install", "--no-deps", "-r", str(requirements)], check=True)
    subprocess.run([*pip, "check"], check=True)
    stamp.write_text(wanted)
    return python


def run_worker(
    command: list[str], *, env: Mapping[str, str] | None = None, timeout: float | None = None
) -> dict[str, Any]:
    """Run a benchmark worker in a fresh process; it prints one JSON object as its last line."""
    completed = subprocess.run(
        command,
        capture_output=True,
        text=True,
        env={**os.environ, **(env or {})},
        timeout=timeout,
        check=False,
    )
    lines = completed.stdout.strip().splitlines()
    if completed.returncode != 0 or not lines:
        tail = "\n".join(completed.stderr.strip().splitlines()[-15:])
        raise RuntimeError(f"worker {command[1:]} exited with {completed.returncode}:\n{tail}")
    result: dict[str, Any] = json.loads(lines[-1])
    return result


def write_json(path: Path, payload: Mapping[str, Any]) -> None:
    """Write ``payload`` as indented JSON, atomically (a reader never sees half a file)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(path.name + ".tmp")
    temporary.write_text(json.dumps(payload, indent=2, sort_keys=False) + "\n")
    temporary.replace(path)


# ---------------------------------------------------------------------------------------------
# Synthetic tables


def chunks(rows: int) -> Iterator[tuple[int, int, int]]:
    """(index, first row, rows) of each block of at most ``CHUNK_ROWS`` of a ``rows``-row table."""
    for index, first in enumerate(range(0, rows, CHUNK_ROWS)):
        yield index, first, min(CHUNK_ROWS, rows - first)


def cached_parquet(path: Path, what: str, parts: Iterable[pa.Table]) -> Path:
    """The Parquet file ``path``, written on first use from ``parts`` (one row group each).

    ``parts`` is consumed only when the file is missing, so a generator that does costly set-up
    before its first part costs nothing once the file is cached. It is written to a temporary
    file first, so a stopped run never leaves half a table behind; ``what`` names the table in
    the set-up message.
    """
    if path.exists():
        return path
    import pyarrow.parquet as pq

    path.parent.mkdir(parents=True, exist_ok=True)
    print(f"[setup] generating {what} -> {path.relative_to(REPO)}", flush=True)
    temporary = path.with_suffix(".tmp")
    writer = None
    try:
        for part in parts:
            if writer is None:
                writer = pq.ParquetWriter(temporary, part.schema)
            writer.write_table(part, row_group_size=CHUNK_ROWS)
    finally:
        if writer is not None:
            writer.close()
    temporary.replace(path)
    return path


# ---------------------------------------------------------------------------------------------
# Tools run in workers, within a time budget


@dataclass(frozen=True)
class Tool:
    """A benchmarked tool whose worker runs in our venv or in a peer venv of its own."""

    key: str
    label: str
    reader: str  # "polars" or "pandas": how the worker reads the Parquet files
    requirements: str | None = None  # file name in bench/ of the peer venv; None: our venv
    venv: str | None = None
    env: dict[str, str] = field(default_factory=dict)  # set in the worker before the import
    packages: tuple[str, ...] = ()  # whose versions the worker reports

    def python(self) -> Path:
        """The interpreter of the tool's worker: ours, or its peer venv's (made on first use)."""
        if self.venv is None or self.requirements is None:
            return Path(sys.executable)
        return peer_venv(self.venv, BENCH / self.requirements)


class PeerResult(Protocol):
    """The fields that a benchmark's row of results shares with the others that time peers."""

    tool: str
    seconds: float | None
    runs: int
    ratio_to_mlwarden: float | None
    peak_rss_bytes: int | None
    rss_after_read_bytes: int | None
    read_seconds: float | None
    note: str
    extra: dict[str, Any]


def repeats_for(rows: int) -> int:
    """How many timed runs a table of ``rows`` rows gets: 3, or 1 above a million rows."""
    return 3 if rows <= 1_000_000 else 1


def progress(where: str, label: str) -> None:
    """Say on stderr which tool is about to run on which table."""
    print(f"[{where}] {label} ...", file=sys.stderr, flush=True)


def worker_command(
    python: Path,
    script: str,
    tool: str,
    *,
    rows: int,
    inputs: Mapping[str, Path],
    budget: float | None,
    rate_option: str,
    rate: float | None,
    repeats: int | None = None,
) -> list[str]:
    """The command line of a worker of ``script`` (see ``add_worker_options``) that times
    ``tool`` on a table of ``rows`` rows read from ``inputs`` (option: file).

    ``budget`` (seconds) lets the worker skip its timed runs when its estimate exceeds it (None:
    it always runs them); ``rate``, the seconds per row or cell measured on a smaller table,
    replaces its extrapolation from the warm-up when given. ``repeats`` overrides the number of
    timed runs (default ``repeats_for(rows)``).
    """
    runs = repeats if repeats is not None else repeats_for(rows)
    command = [str(python), script, "--worker", tool, "--repeats", str(runs)]
    for option, path in inputs.items():
        command += [option, str(path)]
    if budget is not None:
        command += ["--budget", repr(budget)]
    if rate is not None:
        command += [rate_option, repr(rate)]
    return command


def estimate_note(stdout: bytes | str | None) -> str:
    """The estimate a stopped worker printed before its timed runs, as a note."""
    text = stdout.decode(errors="replace") if isinstance(stdout, bytes) else stdout or ""
    for line in text.splitlines():
        if line.startswith("{") and "estimate_seconds" in line:
            return f" (estimated {json.loads(line)['estimate_seconds']:.0f} s)"
    return ""


def run_budgeted_worker(
    result: PeerResult, command: list[str], *, env: Mapping[str, str], budget: float
) -> dict[str, Any] | None:
    """Run a worker of ``command`` (see ``worker_command``) and record what it measured in
    ``result``: read time, memory, versions and estimate, then time, runs and peak memory.

    A worker whose estimate was too low is stopped at twice the budget (plus
    ``WORKER_SETUP_SECONDS`` to read and warm up). When it is stopped or fails, ``result.note``
    says so and None is returned, so the other tools still run; when it finishes, its output is
    returned, with ``skipped`` (also in the note) when it did not time its runs.
    """
    timeout = 2 * budget + WORKER_SETUP_SECONDS
    try:
        out = run_worker(command, env=env, timeout=timeout)
    except subprocess.TimeoutExpired as exc:
        result.note = f"stopped after {timeout:.0f} s{estimate_note(exc.stdout)}"
        return None
    except Exception as exc:  # reported in the table; the other tools still run
        message = str(exc).split(" exited with ", 1)[-1]  # the command line is known
        result.note = f"error: exited with {message}".replace("\n", " | ")
        return None
    result.read_seconds = out["read_seconds"]
    result.rss_after_read_bytes = out["rss_after_read_bytes"]
    result.extra = {
        "versions": out["versions"],
        "python": out["python"],
        "estimate_seconds": out["estimate_seconds"],
    }
    if "skipped" in out:
        result.note = f"skipped: {out['skipped']}"
        return out
    result.seconds, result.runs = out["seconds"], out["runs"]
    result.peak_rss_bytes = out["peak_rss_bytes"]
    return out


def set_ratios(results: Iterable[PeerResult]) -> None:
    """Set each result's time as a multiple of mlwarden's among ``results`` (one table's)."""
    results = list(results)
    baseline = next((r.seconds for r in results if r.tool == "mlwarden"), None)
    for r in results:
        if baseline and r.seconds is not None:
            r.ratio_to_mlwarden = r.seconds / baseline


# ---------------------------------------------------------------------------------------------
# Inside a worker


def read_parquet(path: Path, reader: str) -> Any:
    """The Parquet file as a polars or a pandas DataFrame (``reader``: "polars" or "pandas")."""
    if reader == "polars":
        import polars as pl

        return pl.read_parquet(path)
    import pandas as pd

    return pd.read_parquet(path)


def head(frame: Any, rows: int, columns: int | None = None) -> Any:
    """The first ``rows`` rows (and ``columns`` columns, if given) of a polars or pandas frame."""
    names = None if columns is None else list(frame.columns)[:columns]
    if hasattr(frame, "iloc"):  # pandas
        part = frame.iloc[:rows]
        return (part if names is None else part[names]).copy()
    part = frame.head(rows)
    return part if names is None else part.select(names)


def timed(run: Callable[..., object], *frames: Any) -> float:
    """Wall-clock seconds of one ``run(*frames)``."""
    started = time.perf_counter()
    run(*frames)
    return time.perf_counter() - started


def warmup_estimate(
    time_rows: Callable[[int], float], rows: int, *, warmup_rows: int, known: float | None
) -> float:
    """Seconds one run on all ``rows`` rows should take, from warm-up runs (which also load the
    tool's modules and caches before the timed runs); ``time_rows(n)`` times one run on the
    first ``n`` rows.

    Fixed costs make one small run a poor guide, so two are made, on the first ``warmup_rows``
    and ten times as many rows, and the line through them is extrapolated; ``known``, the
    estimate from the seconds per row (or cell) of a smaller table measured before, replaces
    them when given (after the first warm-up run still).
    """
    small = min(rows, warmup_rows)
    seconds = time_rows(small)
    if known is not None:
        return known
    large = min(rows, 10 * warmup_rows)
    if large == small:
        return seconds * rows / small
    more = time_rows(large)
    slope = (more - seconds) / (large - small)
    return more + slope * (rows - large) if slope > 0 else more * rows / large


def worker_facts(read_seconds: float, packages: Iterable[str], **more: Any) -> dict[str, Any]:
    """What a worker reports before its warm-up: the time to read its input (and ``more``),
    its peak memory so far, the versions of ``packages`` and its Python."""
    return {
        "read_seconds": read_seconds,
        **more,
        "rss_after_read_bytes": peak_rss_bytes(),
        "versions": versions(packages),
        "python": sys.version.split()[0],
    }


def within_budget(
    out: dict[str, Any], estimate: float, budget: float | None, *, digits: int = 0
) -> bool:
    """Record ``estimate`` in ``out`` and print ``out`` before the timed runs, so the driver
    knows the estimate if it has to stop the worker. Over ``budget`` (None: no limit), record
    why the runs are skipped, print ``out`` again as the last line and return False."""
    out["estimate_seconds"] = estimate
    print(json.dumps(out), flush=True)
    if budget is None or estimate <= budget:
        return True
    out["skipped"] = f"estimated {estimate:.{digits}f} s > budget {budget:.{digits}f} s"
    print(json.dumps(out))
    return False


def timed_runs(
    out: dict[str, Any],
    run: Callable[[], T],
    repeats: int,
    record: Callable[[T, float, list[float]], None],
) -> None:
    """Time ``run()`` up to ``repeats`` times, fewer once the runs have taken
    ``REPEAT_SECONDS``, and print ``out`` with the best time, the number of runs and the peak
    memory as the worker's last line.

    After each run, untimed, ``record(raw, seconds, earlier timings)`` may add to ``out`` what
    the run returned; the raw result is dropped before the next run.
    """
    timings: list[float] = []
    for _ in range(repeats):
        gc.collect()
        started = time.perf_counter()
        raw = run()
        seconds = time.perf_counter() - started
        record(raw, seconds, timings)
        timings.append(seconds)
        del raw
        if sum(timings) > REPEAT_SECONDS:
            break
    out.update(seconds=min(timings), runs=len(timings), peak_rss_bytes=peak_rss_bytes())
    print(json.dumps(out))


# ---------------------------------------------------------------------------------------------
# Command line, printed results, results files


def add_run_options(
    parser: argparse.ArgumentParser,
    *,
    sizes: Iterable[int],
    quick_help: str,
    tools: Iterable[str],
    budget_option: str,
    budget_default: float,
    budget_skips: str,
    results_file: Path,
    sizes_help: str = "comma-separated row counts (default: %(default)s)",
    flags: Mapping[str, str] | None = None,
) -> None:
    """The options of a benchmark run: --sizes, --quick, ``flags`` (more on/off options and
    their help), --tools, the time budget ``budget_option`` (seconds beyond which
    ``budget_skips``, e.g. "a peer on a table", is skipped) and --output."""
    parser.add_argument("--sizes", default=",".join(str(s) for s in sizes), help=sizes_help)
    parser.add_argument("--quick", action="store_true", help=quick_help)
    for flag, help_text in (flags or {}).items():
        parser.add_argument(flag, action="store_true", help=help_text)
    parser.add_argument(
        "--tools", default=",".join(tools), help="comma-separated subset of %(default)s"
    )
    parser.add_argument(
        budget_option,
        type=float,
        default=budget_default,
        help=f"skip {budget_skips} estimated to take longer, in seconds (default: %(default)s)",
    )
    parser.add_argument("--output", type=Path, default=results_file, help="JSON results file")


def add_worker_options(
    parser: argparse.ArgumentParser,
    workers: Iterable[str],
    inputs: Iterable[str],
    *,
    rate_option: str,
    budget: bool = True,
) -> None:
    """The hidden options of a worker (see ``worker_command``): --worker, the input files
    ``inputs``, --repeats, --budget (unless ``budget`` is False) and ``rate_option``."""
    parser.add_argument("--worker", choices=tuple(workers), help=argparse.SUPPRESS)
    for option in inputs:
        parser.add_argument(option, type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--repeats", type=int, default=1, help=argparse.SUPPRESS)
    if budget:
        parser.add_argument("--budget", type=float, help=argparse.SUPPRESS)
    parser.add_argument(rate_option, type=float, help=argparse.SUPPRESS)


def sizes_and_tools(
    parser: argparse.ArgumentParser, args: argparse.Namespace, quick_rows: int, known: Iterable[str]
) -> tuple[list[int], list[str]]:
    """The row counts (``quick_rows`` alone with --quick) and the tools chosen on the command
    line; an unknown tool is a usage error."""
    sizes = [quick_rows] if args.quick else [int(s) for s in args.sizes.split(",") if s.strip()]
    tools = [t.strip() for t in args.tools.split(",") if t.strip()]
    names = list(known)
    if unknown := set(tools) - set(names):
        parser.error(
            f"unknown tool(s) {', '.join(sorted(unknown))}; choose from {', '.join(names)}"
        )
    return sizes, tools


TIMING_HEADER = f"{'seconds':>9} {'x mlwarden':>10} {'peak RSS':>9}"


def timing_cells(result: PeerResult, *, digits: int) -> str:
    """The seconds (to ``digits`` places), ratio to mlwarden and peak memory of ``result``,
    under ``TIMING_HEADER``; "-" where there is none."""
    seconds = "-" if result.seconds is None else f"{result.seconds:.{digits}f}"
    ratio = "-" if result.ratio_to_mlwarden is None else f"{result.ratio_to_mlwarden:.1f}"
    peak = result.peak_rss_bytes
    rss = "-" if peak is None else f"{peak / 1e9:.2f} GB"
    return f"{seconds:>9} {ratio:>10} {rss:>9}"


def print_machine(machine: Mapping[str, Any], ours: Mapping[str, str]) -> None:
    """The machine and our versions, as the first lines of a benchmark's printed results."""
    print(f"machine: {machine['cpu']}, {machine['logical_cores']} logical cores", end="")
    if "physical_cores" in machine:
        print(f" ({machine['physical_cores']} physical), {machine['memory_gib']} GiB RAM", end="")
    print(f"; {machine['os']}")
    print(f"python {machine['python']}; " + ", ".join(f"{k} {v}" for k, v in ours.items()))


def venv_line(name: str, python: str, found: Mapping[str, str]) -> str:
    """The Python and package versions of a peer venv, as printed."""
    return f"{name} venv: python {python}; " + ", ".join(f"{k} {v}" for k, v in found.items())


def print_targets(checks: Iterable[Mapping[str, Any]]) -> None:
    """One line per target: met, NOT MET or not measured (``met`` True, False or None)."""
    for check in checks:
        verdict = {True: "met", False: "NOT MET", None: "not measured"}[check["met"]]
        print(f"target: {check['target']}: {verdict}")


def write_results(
    path: Path,
    benchmark: str,
    machine: Mapping[str, Any],
    ours: Mapping[str, str],
    **sections: Any,
) -> None:
    """Write a benchmark's results file: its name, when it finished, the machine, our versions
    and then ``sections`` in their order; and say where it went."""
    write_json(
        path,
        {
            "benchmark": benchmark,
            "finished_at": datetime.now(UTC).isoformat(timespec="seconds"),
            "machine": machine,
            "versions": ours,
            **sections,
        },
    )
    print(f"\nresults written to {path}")
