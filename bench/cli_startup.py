"""Start-up time of the ``mlwarden`` command, side by side with a bare Python interpreter.

How to run (from the repository root, after ``make install-dev``)::

    .venv/bin/python bench/cli_startup.py           # 20 runs of each command

``mlwarden --help`` and ``mlwarden --version`` must answer in under 0.5 s: the data libraries
(Polars, NumPy, PyArrow, SciPy, rich) load inside the commands that need them, never at start-up.
Each command runs as a fresh process; the table gives the minimum and median wall time.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time
from pathlib import Path

BIN = Path(sys.executable).parent
COMMANDS = {
    "python -c pass": [sys.executable, "-c", "pass"],
    "mlwarden --version": [str(BIN / "mlwarden"), "--version"],
    "mlwarden --help": [str(BIN / "mlwarden"), "--help"],
    "mlwarden profile --help": [str(BIN / "mlwarden"), "profile", "--help"],
}
TARGET_SECONDS = 0.5


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=20)
    args = parser.parse_args()
    print(f"{'command':<26} {'min s':>7} {'median s':>9}  target")
    for name, cmd in COMMANDS.items():
        subprocess.run(cmd, capture_output=True, check=True)  # warm the file cache
        times = []
        for _ in range(args.runs):
            started = time.perf_counter()
            subprocess.run(cmd, capture_output=True, check=True)
            times.append(time.perf_counter() - started)
        median = statistics.median(times)
        verdict = (
            "" if name.startswith("python") else ("met" if median < TARGET_SECONDS else "NOT MET")
        )
        print(f"{name:<26} {min(times):>7.3f} {median:>9.3f}  {verdict}")


if __name__ == "__main__":
    main()
