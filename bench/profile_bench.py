"""Profile benchmark: ``mlwarden.profile`` side by side with polars, pandas and whylogs.

How to run (from the repository root, after ``make install-dev``)::

    .venv/bin/python bench/profile_bench.py --quick            # 100k rows only, a smoke run
    .venv/bin/python bench/profile_bench.py                    # 100k, 1M and 10M rows
    .venv/bin/python bench/profile_bench.py --sizes 1000000 --tools mlwarden,polars

What is measured, per table size, in one run:

* ``mlwarden.profile(df)`` on an in-memory polars DataFrame;
* ``polars.DataFrame.describe()`` on the same frame (the baseline: ratios are to this);
* ``pandas.DataFrame.describe(include="all")`` on the pandas version of the same data;
* ``whylogs.log(pandas_df)`` in a separate venv (``.bench-venv-whylogs/``, made on first use from
  ``bench/requirements-whylogs.txt``, since whylogs cannot live with our pins); only the
  profiling is timed, reading the Parquet file is reported apart;
* ``mlwarden.profile(path)`` streaming the Parquet file in a fresh process: wall time and the
  peak resident memory (RSS) of that process.

The table is synthetic and seeded: 20 numeric columns (normal, lognormal, uniform, counts,
bimodal, heavy-tailed; 1-5 % nulls in some) and 5 string columns of cardinality 5, 20, 100, 500
and 1000. It is written once per size to ``bench/.data/`` (gitignored) and reused. Each timing is
the best of 3 repeats (1 at 10M rows) after one warm-up on the first 100,000 rows. whylogs is
skipped at a size where its estimated time, extrapolated from the largest size already measured,
exceeds ``--whylogs-budget`` seconds (600 by default).

Targets: mlwarden no slower than polars describe at 1M and 10M rows, at least 20x faster than
whylogs, and a streaming peak RSS under 2 GB for the 10M-row Parquet file.

Results are printed as a table and written to ``bench/results/profile_bench.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

from _common import (
    BENCH,
    DATA_DIR,
    RESULTS_DIR,
    add_run_options,
    add_worker_options,
    best_of,
    cached_parquet,
    chunks,
    machine_info,
    peak_rss_bytes,
    peer_venv,
    print_machine,
    print_targets,
    progress,
    repeats_for,
    run_worker,
    sizes_and_tools,
    venv_line,
    versions,
    write_results,
)

if TYPE_CHECKING:
    from collections.abc import Callable
    from pathlib import Path

    import numpy as np
    import pyarrow as pa

SEED = 20_240_101
# Bump when the generated table changes, so stale cached files are not reused.
DATA_VERSION = 1
QUICK_ROWS = 100_000
WARMUP_ROWS = 100_000
SIZES = (100_000, 1_000_000, 10_000_000)
TOOLS = ("mlwarden", "polars", "pandas", "whylogs", "stream")
CATEGORICAL_CARDINALITIES = (5, 20, 100, 500, 1000)
RSS_TARGET_BYTES = 2 * 10**9
WHYLOGS_REQUIREMENTS = BENCH / "requirements-whylogs.txt"
RESULTS_FILE = RESULTS_DIR / "profile_bench.json"
MISSING = "mlwarden.profile not found"

LABELS = {
    "polars": "polars.DataFrame.describe()",
    "mlwarden": "mlwarden.profile(df)",
    "pandas": 'pandas.DataFrame.describe(include="all")',
    "whylogs": "whylogs.log(pandas_df)",
    "stream": "mlwarden.profile(path), fresh process",
}


@dataclass
class Result:
    rows: int
    tool: str
    seconds: float | None
    repeats: int
    ratio_to_polars_describe: float | None = None
    peak_rss_bytes: int | None = None
    read_seconds: float | None = None
    note: str = ""
    extra: dict[str, Any] = field(default_factory=dict)


# ---------------------------------------------------------------------------------------------
# The synthetic table


def _numeric_columns(rng: np.random.Generator, n: int) -> dict[str, tuple[np.ndarray, float]]:
    """Twenty numeric columns of mixed shapes, each with the share of rows to null out."""
    import numpy as np

    def bimodal(a: float, b: float, scale: float, weight: float) -> np.ndarray:
        return np.where(rng.random(n) < weight, rng.normal(a, scale, n), rng.normal(b, scale, n))

    return {
        "normal_std": (rng.normal(0.0, 1.0, n), 0.0),
        "normal_wide": (rng.normal(100.0, 15.0, n), 0.02),
        "normal_narrow": (rng.normal(-5.0, 0.1, n), 0.0),
        "lognormal_low": (rng.lognormal(0.0, 0.5, n), 0.01),
        "lognormal_mid": (rng.lognormal(2.0, 1.0, n), 0.0),
        "lognormal_high": (rng.lognormal(0.0, 2.0, n), 0.05),
        "uniform_unit": (rng.random(n), 0.0),
        "uniform_wide": (rng.uniform(-1000.0, 1000.0, n), 0.03),
        "count_small": (rng.poisson(3.0, n), 0.0),
        "count_large": (rng.poisson(50.0, n), 0.01),
        "count_overdispersed": (rng.negative_binomial(2, 0.05, n), 0.0),
        "bimodal_balanced": (bimodal(-2.0, 2.0, 0.7, 0.5), 0.0),
        "bimodal_skewed": (bimodal(10.0, 40.0, 3.0, 0.8), 0.04),
        "heavy_student_t2": (rng.standard_t(2.0, n), 0.0),
        "heavy_pareto": (rng.pareto(1.5, n), 0.02),
        "heavy_cauchy": (rng.standard_cauchy(n), 0.0),
        "exponential": (rng.exponential(5.0, n), 0.0),
        "beta_u_shape": (rng.beta(0.5, 0.5, n), 0.0),
        "zero_inflated": (np.where(rng.random(n) < 0.7, 0.0, rng.gamma(2.0, 3.0, n)), 0.01),
        "flag": (rng.integers(0, 2, n), 0.0),
    }


def _table_chunk(seed: int, chunk: int, n: int) -> pa.Table:
    import numpy as np
    import pyarrow as pa

    rng = np.random.default_rng([seed, chunk])
    arrays: dict[str, pa.Array] = {}
    for name, (values, null_share) in _numeric_columns(rng, n).items():
        mask = rng.random(n) < null_share if null_share else None
        arrays[name] = pa.array(values, mask=mask)
    for cardinality in CATEGORICAL_CARDINALITIES:
        # Zipf-like shares: a few frequent values and a long tail, as real categories have.
        weights = 1.0 / np.arange(1, cardinality + 1) ** 1.1
        codes = rng.choice(cardinality, n, p=weights / weights.sum())
        width = len(str(cardinality - 1))
        values = pa.array([f"c{cardinality}_{k:0{width}d}" for k in range(cardinality)])
        mask = rng.random(n) < 0.02 if cardinality == 100 else None
        arrays[f"cat_{cardinality}"] = values.take(pa.array(codes, mask=mask))
    return pa.table(arrays)


def dataset(n_rows: int) -> Path:
    """The Parquet file of the benchmark table with ``n_rows`` rows, generated on first use."""
    path = DATA_DIR / f"profile_v{DATA_VERSION}_{n_rows}.parquet"
    parts = (_table_chunk(SEED, chunk, n) for chunk, _, n in chunks(n_rows))
    return cached_parquet(path, f"{n_rows:,} rows", parts)


# ---------------------------------------------------------------------------------------------
# Workers: each runs in a fresh process and prints one JSON line.


def _worker_whylogs(path: Path, repeats: int, budget: float, per_row: float | None) -> None:
    """Runs inside .bench-venv-whylogs: read with pandas, warm up, estimate, time whylogs.log."""
    os.environ["WHYLOGS_NO_ANALYTICS"] = "True"  # no usage telemetry leaves the machine
    import pandas as pd
    import whylogs

    started = time.perf_counter()
    frame = pd.read_parquet(path)
    read_seconds = time.perf_counter() - started
    head = frame.head(WARMUP_ROWS)
    warmup = best_of(lambda: whylogs.log(head), 1)
    estimate = (per_row if per_row is not None else warmup / len(head)) * len(frame) * repeats
    out: dict[str, Any] = {
        "read_seconds": read_seconds,
        "estimate_seconds": estimate,
        "versions": versions(["whylogs", "pandas", "numpy", "pyarrow"]),
        "python": sys.version.split()[0],
    }
    if estimate > budget:
        out["skipped"] = f"estimated {estimate:.0f} s > budget {budget:.0f} s"
    else:
        out["seconds"] = best_of(lambda: whylogs.log(frame), repeats)
    print(json.dumps(out))


def _worker_stream(path: Path) -> None:
    """Runs in our venv, in a fresh process: only ``mlwarden.profile(path)``, then its peak RSS."""
    profile = _mlwarden_profile()
    assert profile is not None, MISSING
    baseline = peak_rss_bytes()
    started = time.perf_counter()
    profile(str(path))
    seconds = time.perf_counter() - started
    print(
        json.dumps(
            {"seconds": seconds, "peak_rss_bytes": peak_rss_bytes(), "rss_after_import": baseline}
        )
    )


# ---------------------------------------------------------------------------------------------
# The driver


def _time_in_process(
    label: str, n_rows: int, run: Callable[[Any], object], data: Any, warmup: Any
) -> Result:
    repeats = repeats_for(n_rows)
    try:
        run(warmup)
        seconds = best_of(lambda: run(data), repeats)
    except Exception as exc:  # a failing tool is reported, the others still run
        return Result(n_rows, label, None, repeats, note=f"error: {type(exc).__name__}: {exc}")
    return Result(n_rows, label, seconds, repeats, note=f"best of {repeats}")


def _in_process(n_rows: int, tools: set[str], path: Path) -> list[Result]:
    """Time the tools that run in this process, on frames read from the same file."""
    import pandas as pd
    import polars as pl

    results: list[Result] = []
    if tools & {"polars", "mlwarden"}:
        frame = pl.read_parquet(path)
        head = frame.head(WARMUP_ROWS)
        if "polars" in tools:
            _progress(n_rows, "polars")
            results.append(
                _time_in_process("polars", n_rows, lambda df: df.describe(), frame, head)
            )
        if "mlwarden" in tools:
            _progress(n_rows, "mlwarden")
            profile = _mlwarden_profile()
            results.append(
                Result(n_rows, "mlwarden", None, repeats_for(n_rows), note=MISSING)
                if profile is None
                else _time_in_process("mlwarden", n_rows, profile, frame, head)
            )
        del frame, head
    if "pandas" in tools:
        _progress(n_rows, "pandas")
        pandas_frame = pd.read_parquet(path)
        results.append(
            _time_in_process(
                "pandas",
                n_rows,
                lambda df: df.describe(include="all"),
                pandas_frame,
                pandas_frame.head(WARMUP_ROWS),
            )
        )
    return results


def _whylogs(n_rows: int, path: Path, python: Path, budget: float, per_row: float | None) -> Result:
    """Time whylogs in its venv; ``per_row`` (seconds) from a smaller size sets the estimate."""
    _progress(n_rows, "whylogs")
    repeats = repeats_for(n_rows)
    command = [str(python), __file__, "--worker", "whylogs", "--path", str(path)]
    command += ["--repeats", str(repeats), "--whylogs-budget", str(budget)]
    if per_row is not None:
        command += ["--per-row", repr(per_row)]
    try:
        out = run_worker(command, env={"WHYLOGS_NO_ANALYTICS": "True"}, timeout=2 * budget + 600)
    except Exception as exc:  # reported in the table; the other tools still run
        return Result(n_rows, "whylogs", None, repeats, note=f"error: {exc}")
    read = out["read_seconds"]
    note = f"best of {repeats}; pandas read {read:.2f} s"
    return Result(
        n_rows,
        "whylogs",
        out.get("seconds"),
        repeats,
        read_seconds=read,
        note=f"skipped: {out['skipped']}" if "skipped" in out else note,
        extra={"versions": out["versions"], "python": out["python"]},
    )


def _stream(n_rows: int, path: Path) -> Result:
    """Time ``mlwarden.profile(path)`` in a fresh process and take that process's peak RSS."""
    _progress(n_rows, "stream")
    if _mlwarden_profile() is None:
        return Result(n_rows, "stream", None, 1, note=MISSING)
    try:
        out = run_worker([sys.executable, __file__, "--worker", "stream", "--path", str(path)])
    except Exception as exc:  # reported in the table; the other tools still run
        return Result(n_rows, "stream", None, 1, note=f"error: {exc}")
    rss = out["peak_rss_bytes"]
    return Result(
        n_rows, "stream", out["seconds"], 1, peak_rss_bytes=rss, note=f"peak RSS {rss / 1e9:.2f} GB"
    )


def _mlwarden_profile() -> Callable[[Any], object] | None:
    """``mlwarden.profile``, or None while the package does not have it."""
    import mlwarden

    profile: Callable[[Any], object] | None = getattr(mlwarden, "profile", None)
    return profile


def _progress(n_rows: int, tool: str) -> None:
    progress(f"{n_rows:,} rows", LABELS[tool])


def bench_size(
    n_rows: int,
    tools: set[str],
    whylogs_python: Path | None,
    whylogs_budget: float,
    whylogs_per_row: float | None,
) -> list[Result]:
    """Time every selected tool on the table of ``n_rows`` rows."""
    path = dataset(n_rows)
    results = _in_process(n_rows, tools, path)
    if whylogs_python is not None:
        results.append(_whylogs(n_rows, path, whylogs_python, whylogs_budget, whylogs_per_row))
    if "stream" in tools:
        results.append(_stream(n_rows, path))
    baseline = next((r.seconds for r in results if r.tool == "polars"), None)
    for result in results:
        if baseline and result.seconds is not None:
            result.ratio_to_polars_describe = result.seconds / baseline
    return results


def targets(results: list[Result]) -> list[dict[str, Any]]:
    """Check the published targets against what this run measured."""

    def seconds(tool: str, n_rows: int) -> float | None:
        return next((r.seconds for r in results if r.tool == tool and r.rows == n_rows), None)

    checks: list[dict[str, Any]] = []
    for n_rows in (1_000_000, 10_000_000):
        ours, polars = seconds("mlwarden", n_rows), seconds("polars", n_rows)
        checks.append(
            {
                "target": f"mlwarden.profile <= polars describe at {n_rows:,} rows",
                "met": None if ours is None or polars is None else ours <= polars,
            }
        )
    sizes = sorted({r.rows for r in results})
    for n_rows in sizes:
        ours, peer = seconds("mlwarden", n_rows), seconds("whylogs", n_rows)
        checks.append(
            {
                "target": f"mlwarden.profile >= 20x faster than whylogs at {n_rows:,} rows",
                "met": None if ours is None or peer is None else peer >= 20 * ours,
            }
        )
    rss = next((r.peak_rss_bytes for r in results if r.tool == "stream" and r.rows == 10**7), None)
    checks.append(
        {
            "target": "streaming peak RSS < 2 GB for the 10,000,000-row Parquet file",
            "met": None if rss is None else rss < RSS_TARGET_BYTES,
        }
    )
    return checks


def _format_table(results: list[Result]) -> str:
    lines = [f"{'rows':>11}  {'tool':<41} {'seconds':>9}  {'x polars':>8}  note"]
    for r in results:
        seconds = "-" if r.seconds is None else f"{r.seconds:.3f}"
        ratio = "-" if r.ratio_to_polars_describe is None else f"{r.ratio_to_polars_describe:.2f}"
        lines.append(f"{r.rows:>11,}  {LABELS[r.tool]:<41} {seconds:>9}  {ratio:>8}  {r.note}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description="Time mlwarden.profile against polars, pandas and whylogs.",
        epilog="Targets: mlwarden <= polars describe at 1M and 10M rows, >= 20x faster than "
        "whylogs, streaming peak RSS < 2 GB at 10M rows.",
    )
    add_run_options(
        parser,
        sizes=SIZES,
        quick_help=f"{QUICK_ROWS:,} rows only (a smoke run)",
        tools=TOOLS,
        budget_option="--whylogs-budget",
        budget_default=600.0,
        budget_skips="whylogs at a size",
        results_file=RESULTS_FILE,
    )
    add_worker_options(
        parser, ("whylogs", "stream"), ["--path"], rate_option="--per-row", budget=False
    )
    args = parser.parse_args(argv)

    if args.worker == "whylogs":
        _worker_whylogs(args.path, args.repeats, args.whylogs_budget, args.per_row)
        return 0
    if args.worker == "stream":
        _worker_stream(args.path)
        return 0

    sizes, chosen = sizes_and_tools(parser, args, QUICK_ROWS, TOOLS)
    tools = set(chosen)

    whylogs_python = peer_venv("whylogs", WHYLOGS_REQUIREMENTS) if "whylogs" in tools else None
    ours = versions(["mlwarden", "polars", "pandas", "numpy", "pyarrow"])
    machine = machine_info()

    results: list[Result] = []
    # Seconds per row of whylogs at the largest size measured so far, to estimate the next.
    whylogs_per_row: float | None = None
    for n_rows in sorted(sizes):
        size_results = bench_size(
            n_rows, tools, whylogs_python, args.whylogs_budget, whylogs_per_row
        )
        for r in size_results:
            if r.tool == "whylogs" and r.seconds is not None:
                whylogs_per_row = r.seconds / n_rows
        results.extend(size_results)

    peer = next((r.extra for r in results if r.tool == "whylogs" and r.extra), {})
    print()
    print_machine(machine, ours)
    if peer:
        print(venv_line("whylogs", peer["python"], peer["versions"]))
    print()
    print(_format_table(results))
    checks = targets(results)
    print()
    print_targets(checks)

    write_results(
        args.output,
        "profile",
        machine,
        ours,
        whylogs_venv=peer,
        settings={
            "sizes": sorted(sizes),
            "tools": sorted(tools),
            "seed": SEED,
            "data_version": DATA_VERSION,
            "warmup_rows": WARMUP_ROWS,
            "whylogs_budget_seconds": args.whylogs_budget,
        },
        results=[asdict(r) for r in results],
        targets=checks,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
