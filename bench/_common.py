"""Helpers shared by the benchmarks in bench/: timing, machine facts, peer venvs, results files.

Only the standard library is imported here, so that a worker running inside a peer's venv (which
has neither polars nor mlwarden) can import this module too.
"""

from __future__ import annotations

import gc
import hashlib
import json
import os
import platform
import subprocess
import sys
import time
from importlib import metadata
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Mapping

REPO = Path(__file__).resolve().parent.parent
BENCH = REPO / "bench"
DATA_DIR = BENCH / ".data"
RESULTS_DIR = BENCH / "results"


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
