"""The main job on built-in data: what ``make demo`` runs.

It simulates a production line (sensors, recipes, a quality target and a model's score), writes
the data as Parquet like a plant historian export, profiles the file by streaming it, and prints
what a team would look at first. Later stages of the monitoring loop join this job as they land.
"""

from __future__ import annotations

import time
from pathlib import Path

from rich.console import Console
from rich.panel import Panel

from mlwarden.datasets import production_line
from mlwarden.profiling import profile
from mlwarden.profiling.display import print_profile

DEMO_ROLES = {
    "timestamp": "timestamp",
    "batch_id": "id",
    "line": "segment",
    "defect": "target",
    "defect_score": "score",
    "prediction": "prediction",
}


def run_demo(*, rows: int = 200_000, seed: int = 0, out: Path = Path(".mlwarden/demo")) -> Path:
    """Generate the production-line data, profile it, print the summary; return the output dir."""
    console = Console()
    if not console.is_terminal:
        console = Console(width=160)
    out.mkdir(parents=True, exist_ok=True)
    console.print(
        Panel.fit(
            "[bold]mlwarden demo[/] — an extrusion line: melt temperature, pressure, vibration, "
            "line speed,\nhumidity, recipe and shift, a defect label and the defect model's score.",
            border_style="cyan",
        )
    )

    started = time.perf_counter()
    data = production_line(rows, seed=seed)
    data_path = out / "production_line.parquet"
    data.write_parquet(data_path)
    console.print(
        f"Simulated {data.height:,} readings every 10 s → [bold]{data_path}[/] "
        f"({data_path.stat().st_size / 1e6:.1f} MB, {time.perf_counter() - started:.1f} s)"
    )

    started = time.perf_counter()
    result = profile(data_path, roles=DEMO_ROLES)
    elapsed = time.perf_counter() - started
    console.print(f"Profiled in {elapsed:.2f} s ({data.height / elapsed:,.0f} rows/s)\n")
    print_profile(result, console)

    profile_path = out / "reference.profile"
    profile_path.write_bytes(result.to_bytes())
    summary_path = out / "profile.json"
    summary_path.write_text(result.to_json(indent=None), encoding="utf-8")
    console.print(
        f"\nSaved the profile as [bold]{profile_path}[/] ({profile_path.stat().st_size / 1e3:.0f} "
        f"kB, mergeable with later windows) and as JSON in [bold]{summary_path}[/]."
    )
    console.print(
        f"Try: [bold].venv/bin/mlwarden profile {data_path} --json {out / 'summary.json'}[/]"
    )
    return out
