"""Sensor benchmark: one quality suite over thousands of tags of long historian data.

How to run (from the repository root, after ``make install-dev``)::

    .venv/bin/python bench/sensor_bench.py --quick     # 1M readings, 100 and 1,000 tags
    .venv/bin/python bench/sensor_bench.py             # 10M readings, 100 / 1,000 / 10,000 tags

What is measured. Plant historians export long data: one row per (tag, timestamp, value). The
table is seeded and synthetic: every tag reads every 5 minutes, with its own level, a daily cycle
and AR(1) noise. A clean reference (the first 70 % of each tag's readings) teaches
``suggest_suite(reference, timestamp=..., tag="tag")`` per-tag ranges, flat-line limits, spike
scales and unit-change shifts; the newer 30 % gets faults planted in known tags (a stuck sensor,
a spike, a °C→°F unit change, a value far outside the range, a hole of 30 readings) and is
validated. Three numbers per size:

* ``suggest`` — learning the suite (it also validates a held-out part to estimate its
  false-failure rate);
* ``validate`` — ``validate(current, suite)``: all checks, all tags, one pass;
* ``per-tag loop`` — the same checks run the way a tool without per-group parameters must:
  one validation per tag on that tag's rows (timed on a sample of tags and scaled to all; the
  note says how many).

Every timing is the best of 3 (1 at 10M readings) after a warm-up. The bench also reports which
planted faults were found in the right tag, and whether any clean tag was flagged.

Targets: every planted fault found in its tag, no clean tag flagged, and the one-pass validation
at least 10x faster than the per-tag loop at 1,000 tags and more.

Results are printed as a table and written to ``bench/results/sensor_bench.json``.
"""

from __future__ import annotations

import argparse
import sys
import time
from datetime import UTC, datetime
from typing import Any

import numpy as np
import polars as pl
from scipy.signal import lfilter

from _common import RESULTS_DIR, machine_info, versions, write_json
from mlwarden.quality import Suite, suggest_suite, validate
from mlwarden.quality.validation import run

SEED = 20_241_105
START = datetime(2024, 6, 3, tzinfo=UTC)
CADENCE_S = 300  # a reading every 5 minutes: a reference of 700 readings spans 2.4 days
HOLDOUT = 0.3
SIZES = ((10_000_000, (100, 1_000, 10_000)),)
QUICK = ((1_000_000, (100, 1_000)),)
LOOP_SAMPLE = 50
RESULTS_FILE = RESULTS_DIR / "sensor_bench.json"
FAULTS = ("stuck", "spike", "unit_change", "range", "gap")
SENSOR_CHECKS = ("range", "stuck", "spike", "unit_change", "gap")


def make_table(rows: int, n_tags: int) -> pl.DataFrame:
    """``n_tags`` tags with ``rows // n_tags`` readings each, long format, sorted by time."""
    rng = np.random.default_rng([SEED, n_tags])
    per_tag = rows // n_tags
    levels = rng.uniform(20.0, 400.0, n_tags)[:, None]
    noise_sd = rng.uniform(0.2, 2.0, n_tags)[:, None]
    shocks = rng.normal(0.0, 1.0, (n_tags, per_tag)) * noise_sd * np.sqrt(1 - 0.9**2)
    noise = lfilter([1.0], [1.0, -0.9], shocks, axis=1)
    seconds = np.arange(per_tag) * CADENCE_S
    daily = (
        0.02
        * levels
        * np.sin(2 * np.pi * seconds / 86_400.0 + rng.uniform(0, 6.3, n_tags)[:, None])
    )
    values = levels + daily + noise
    tags = np.array([f"TI-{k:05d}" for k in range(n_tags)])
    return pl.DataFrame(
        {
            "tag": np.repeat(tags, per_tag),
            "timestamp": np.tile(seconds, n_tags),
            "value": values.ravel(),
        }
    ).with_columns(
        (pl.lit(START) + pl.duration(seconds=pl.col("timestamp"))).alias("timestamp"),
        pl.col("tag").cast(pl.Categorical),
    )


def plant_faults(current: pl.DataFrame, n_tags: int) -> tuple[pl.DataFrame, dict[str, str]]:
    """Faults in five distinct tags of the current part; returns the frame and fault -> tag."""
    rng = np.random.default_rng([SEED, n_tags, 1])
    chosen = rng.choice(n_tags, len(FAULTS), replace=False)
    where = {fault: f"TI-{k:05d}" for fault, k in zip(FAULTS, chosen, strict=True)}
    m = current.height // n_tags  # readings per tag in the current part
    position = pl.int_range(pl.len()).over("tag")
    tag = pl.col("tag").cast(pl.String)
    value = pl.col("value")
    faulty = current.with_columns(
        pl.when((tag == where["stuck"]) & position.is_between(m // 5, m // 2))
        .then(value.first().over("tag"))
        .when((tag == where["spike"]) & (position == 3 * m // 5))
        .then(value + 40 * value.std().over("tag") + 50)
        .when((tag == where["unit_change"]) & (position >= m // 2))
        .then(value * 1.8 + 32)
        .when((tag == where["range"]) & (position == 7 * m // 10))
        .then(-9999.0)
        .otherwise(value)
        .alias("value")
    ).filter(~((tag == where["gap"]) & position.is_between(2 * m // 5, 2 * m // 5 + 29)))
    return faulty, where


def found(
    current: pl.DataFrame, suite: Suite, where: dict[str, str]
) -> tuple[list[str], list[str]]:
    """Planted faults found in their tag, and clean tags flagged by any sensor check."""
    outcome = run(current, suite)
    hits, false_tags = set(), set()
    planted = set(where.values())
    for result in outcome.validation.results:
        flag = outcome.flags.get(result.index)
        if result.check not in SENSOR_CHECKS or result.passed or flag is None:
            continue
        tags = set(outcome.frame.filter(pl.col(flag))["tag"].cast(pl.String).unique().to_list())
        if where.get(result.check) in tags:
            hits.add(result.check)
        false_tags |= tags - planted
    return sorted(hits), sorted(false_tags)


def best_of(run: Any, repeats: int) -> float:
    timings = []
    for _ in range(repeats):
        started = time.perf_counter()
        run()
        timings.append(time.perf_counter() - started)
    return min(timings)


def per_tag_loop(current: pl.DataFrame, suite: Suite, sample: list[str]) -> float:
    """Seconds to validate each sampled tag on its own, with its own scalar parameters."""
    suites = {}
    for tag in sample:
        checks = []
        for check in suite.checks:
            groups = getattr(check, "groups", None)
            if groups is None or getattr(check, "by", None) != "tag":
                checks.append(check)
                continue
            params = {
                k: v for k, v in check.to_dict().items() if k not in ("check", "by", "groups")
            }
            params.update(groups.get(tag, {}))
            checks.append(type(check).from_dict({"check": check.key, **params}))
        suites[tag] = suite.with_checks(checks)
    started = time.perf_counter()
    for tag in sample:
        rows = current.filter(pl.col("tag") == tag)
        validate(rows, suites[tag])
    return time.perf_counter() - started


def run_size(rows: int, n_tags: int, repeats: int) -> dict[str, Any]:
    print(f"[{rows:,} readings, {n_tags:,} tags] generating ...", file=sys.stderr, flush=True)
    table = make_table(rows, n_tags)
    position = pl.int_range(pl.len()).over("tag")
    split = int((rows // n_tags) * (1 - HOLDOUT))
    reference = table.filter(position < split)
    current, where = plant_faults(table.filter(position >= split), n_tags)
    del table

    started = time.perf_counter()
    suite = suggest_suite(reference, timestamp="timestamp", tag="tag")
    suggest_seconds = time.perf_counter() - started
    validate(current.head(10_000), suite)  # warm-up
    validate_seconds = best_of(lambda: validate(current, suite), repeats)
    hits, false_tags = found(current, suite, where)

    rng = np.random.default_rng([SEED, n_tags, 2])
    sample_size = min(LOOP_SAMPLE, n_tags)
    sample = [f"TI-{k:05d}" for k in rng.choice(n_tags, sample_size, replace=False)]
    loop_sample = per_tag_loop(current, suite, sample)
    loop_seconds = loop_sample * n_tags / sample_size
    return {
        "readings": rows,
        "tags": n_tags,
        "current_rows": current.height,
        "checks": len(suite.checks),
        "suggest_seconds": suggest_seconds,
        "validate_seconds": validate_seconds,
        "per_tag_loop_seconds": loop_seconds,
        "per_tag_loop_note": (
            f"{sample_size} tags timed ({loop_sample:.2f} s), scaled to {n_tags:,}"
        ),
        "speedup": loop_seconds / validate_seconds,
        "held_out_false_failure_rate": suite.meta["false_failure_rate"],
        "faults_planted": where,
        "faults_found": hits,
        "clean_tags_flagged": false_tags,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="1M readings only")
    args = parser.parse_args()
    plan = QUICK if args.quick else SIZES
    results = []
    for rows, tag_counts in plan:
        for n_tags in tag_counts:
            results.append(run_size(rows, n_tags, 3 if rows < 10_000_000 else 1))
    print()
    print(
        f"{'readings':>11}  {'tags':>6}  {'checks':>6}  {'suggest s':>9}  {'validate s':>10}  "
        f"{'per-tag loop s':>14}  {'x faster':>8}  found        clean tags flagged"
    )
    for r in results:
        print(
            f"{r['readings']:>11,}  {r['tags']:>6,}  {r['checks']:>6}  "
            f"{r['suggest_seconds']:>9.2f}  {r['validate_seconds']:>10.3f}  "
            f"{r['per_tag_loop_seconds']:>14.1f}  "
            f"{r['speedup']:>8.1f}  {len(r['faults_found'])}/{len(FAULTS)}"
            f"{'':8} {len(r['clean_tags_flagged'])}"
        )
        missing = sorted(set(FAULTS) - set(r["faults_found"]))
        if missing:
            print(f"{'':13}missed: {', '.join(missing)}")
    write_json(
        RESULTS_FILE,
        {
            "benchmark": "sensor",
            "finished_at": datetime.now(UTC).isoformat(timespec="seconds"),
            "machine": machine_info(),
            "versions": versions(["mlwarden", "polars", "numpy", "scipy"]),
            "results": results,
        },
    )
    print(f"\nwritten to {RESULTS_FILE}")


if __name__ == "__main__":
    main()
