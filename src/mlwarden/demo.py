"""The main job on built-in data: what ``make demo`` runs.

It simulates a production line (sensors, recipes, a quality target and a model's score), writes
the data as Parquet like a plant historian export, profiles the file by streaming it, and prints
what a team would look at first. Later stages of the monitoring loop join this job as they land.
"""

from __future__ import annotations

import time
from datetime import datetime, timedelta
from pathlib import Path

import polars as pl
from rich.console import Console
from rich.panel import Panel

from mlwarden.datasets import Gap, Spike, StuckSensor, UnitChange, production_line
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
    _quality(console, data, out, seed)
    console.print(
        f"Try: [bold].venv/bin/mlwarden profile {data_path} --json {out / 'summary.json'}[/]"
    )
    console.print(
        f"     [bold].venv/bin/mlwarden check {out / 'next_day.parquet'} --suite "
        f"{out / 'suite.yaml'} --html {out / 'quality.html'}[/]"
    )
    return out


def _quality(console: Console, reference: pl.DataFrame, out: Path, seed: int) -> None:
    """Learn a quality suite from the data, then gate a next day with injected sensor faults."""
    from mlwarden.quality import GatePolicy, gate, suggest_suite

    console.rule("[bold]Data quality")
    started = time.perf_counter()
    suite = suggest_suite(reference, timestamp="timestamp", name="extrusion line")
    suite_path = out / "suite.yaml"
    suite.to_yaml(suite_path)
    meta = suite.meta
    console.print(
        f"Learned a suite of {len(suite.checks)} checks from the readings in "
        f"{time.perf_counter() - started:.1f} s → [bold]{suite_path}[/]; on the held-out "
        f"{meta['holdout_windows']} windows of {meta['window']} it failed "
        f"{meta['false_failure_rate']:.1%} (error checks), {meta['warning_rate']:.1%} (any check)."
    )
    newest = reference["timestamp"].max()
    assert isinstance(newest, datetime)
    faults = [
        StuckSensor(column="pressure_bar", start_row=1_500, n_rows=240),
        Spike(column="vibration_mm_s", row=3_000, magnitude=25.0),
        UnitChange(column="temperature_c", start_row=6_000, factor=1.8, offset=32.0),
        Gap(start_row=4_000, n_rows=90),
    ]
    day = production_line(
        8_640, seed=seed + 1, start=newest + timedelta(seconds=10), faults=faults
    ).with_columns(
        pl.when(pl.int_range(pl.len()).is_between(2_200, 2_201))
        .then(None)
        .otherwise(pl.col("humidity_pct"))
        .alias("humidity_pct")
    )
    day_path = out / "next_day.parquet"
    day.write_parquet(day_path)
    console.print(
        f"The next day, {day.height:,} readings with injected faults (pressure stuck for 40 min, "
        "a vibration spike, temperature logged in °F from the afternoon, a 15-minute gap):"
    )
    policy = GatePolicy(actions={"not_null": "repair", "spike": "repair"}, fill_limit=3)
    result = gate(day_path, suite, policy)
    console.print(result.validation.summary(passed_shown=5))
    report = out / "quality.html"
    result.validation.to_html(report)
    held = result.write_quarantine(out / "quarantine.parquet")
    console.print(
        f"Gate: {result.summary()}\nReport: [bold]{report}[/]; quarantined rows with their "
        f"reasons: [bold]{held}[/]."
    )
