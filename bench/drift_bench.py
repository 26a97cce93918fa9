"""Drift benchmark: ``mlwarden.compare`` side by side with Evidently, NannyML, whylogs and scipy.

How to run (from the repository root, after ``make install-dev``)::

    .venv/bin/python bench/drift_bench.py --quick              # 100k rows only, a smoke run
    .venv/bin/python bench/drift_bench.py                      # 100k, 1M, 10M rows + wide table
    .venv/bin/python bench/drift_bench.py --sizes 1000000 --tools mlwarden,evidently --no-wide
    .venv/bin/python bench/drift_bench.py --sizes "" --tools mlwarden   # the wide table only

What is measured. A reference and a current table of the same size, both seeded and synthetic:
the 25 columns of ``profile_bench.py`` (20 numeric of mixed shapes, 1-5 % nulls in seven; 5
string columns of cardinality 5 to 1000), where the current side differs in 4 columns:
``normal_wide`` (mean +0.25 std), ``exponential`` (scale x1.25, so mean +0.25 std),
``bimodal_balanced`` (a normal of the same mean and variance: a shape change only) and
``cat_20`` (Zipf exponent 1.1 -> 0.8: the top category's share falls from 31 % to 21 %). The
other 21 columns are independent draws of the same distributions. A wide table of 100,000 rows x
1,000 columns (48 blocks of the 20 numeric columns, 8 blocks of the 5 string columns; the 4
drifts in each of the first two blocks: 8 drifted, 992 clean) checks how the tools scale with
width. For each table, in one run and on the same Parquet files:

* ``mlwarden``: ``compare(reference_df, current_df)``, timed as ``Reference.fit`` (profiling
  the reference in chunks) plus ``compare`` on the fitted reference; both parts are reported;
* ``evidently`` 0.7: ``Report([DataDriftPreset()], include_tests=True).run(current, reference)``;
  a column is flagged when its drift test fails (its default method and threshold);
* ``nannyml`` 0.13: ``UnivariateDriftCalculator`` with its default methods, fitted on the
  reference with its default chunker (10 chunks, from which its thresholds are learned), then
  run on the whole current side as one chunk; a column is flagged when it alerts. (With one
  reference chunk, its thresholds degenerate to 0 and every column alerts.)
* ``whylogs`` 1.6: ``whylogs.log`` of both sides, then ``calculate_drift_scores`` between the
  two profiles; a column is flagged when its category is ``DRIFT`` (``POSSIBLE_DRIFT`` counted
  apart). Its venv has profile_bench's whylogs pins plus the "viz" extra its drift API needs;
* ``scipy``, the floor: ``ks_2samp`` per numeric column and a chi-squared test of the 2 x k
  contingency table per string column, at p < 0.05 with no correction.

Each tool runs in a fresh worker process (the peers in their own venvs, ``.bench-venv-<name>/``,
made on first use from ``bench/requirements-<name>.txt``; usage telemetry off). The worker reads
both Parquet files (pandas for the peers, polars for mlwarden and scipy; reported apart), warms
up (on 10,000 and 100,000 rows; on all rows of the first 25 and 50 columns of a wide table), then
times the tool's own work with ``time.perf_counter``: best of 3 runs (1 at 10M rows), fewer once
the runs have taken a minute. Peak memory is the worker's peak RSS (VmHWM), which includes both
frames in memory. A peer is skipped, with its estimate, when its time extrapolated from the
warm-up (or from the largest size already measured) exceeds ``--peer-budget`` seconds (600 by
default), and is stopped when it runs past twice that. A failing tool is reported in its row;
the others still run.

Targets: mlwarden at least 20x faster than Evidently at 1M rows; mlwarden finds every drifted
column and flags no clean one; mlwarden on the wide table in under 60 s.

Results are printed as a table and written to ``bench/results/drift_bench.json``.
"""

from __future__ import annotations

import argparse
import math
import os
import sys
import time
from collections import Counter
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

from _common import (
    DATA_DIR,
    RESULTS_DIR,
    TIMING_HEADER,
    Tool,
    add_run_options,
    add_worker_options,
    cached_parquet,
    chunks,
    head,
    machine_info,
    print_machine,
    print_targets,
    progress,
    read_parquet,
    run_budgeted_worker,
    set_ratios,
    sizes_and_tools,
    timed,
    timed_runs,
    timing_cells,
    venv_line,
    versions,
    warmup_estimate,
    within_budget,
    worker_command,
    worker_facts,
    write_results,
)
from profile_bench import CATEGORICAL_CARDINALITIES, _numeric_columns
from profile_bench import DATA_VERSION as PROFILE_DATA_VERSION

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator
    from pathlib import Path

    import numpy as np
    import pyarrow as pa

SEED = 20_240_202
# Bump when the generated tables change, so stale cached files are not reused. The base columns
# come from profile_bench's generator, whose own version is part of the file name too.
DATA_VERSION = 1
SIZES = (100_000, 1_000_000, 10_000_000)
QUICK_ROWS = 100_000
WIDE_ROWS = 100_000
WARMUP_ROWS = 10_000
WARMUP_COLUMNS = 50
SIDES = ("reference", "current")
RESULTS_FILE = RESULTS_DIR / "drift_bench.json"

# The drifted columns of the current side (per drifted block) and what changed in them.
DRIFTS = {
    "normal_wide": "mean 100 -> 103.75 (+0.25 std)",
    "exponential": "scale 5 -> 6.25 (mean +0.25 std)",
    "bimodal_balanced": "bimodal -> normal of the same mean and variance",
    "cat_20": "Zipf exponent 1.1 -> 0.8",
}
ZIPF_EXPONENT, DRIFTED_ZIPF_EXPONENT = 1.1, 0.8
SPEED_TARGET_ROWS = 1_000_000
SPEED_TARGET_RATIO = 20.0
WIDE_TARGET_SECONDS = 60.0


TOOLS = {
    tool.key: tool
    for tool in (
        Tool(
            "mlwarden",
            "mlwarden compare (fit + compare)",
            "polars",
            packages=("mlwarden", "polars", "numpy", "scipy"),
        ),
        Tool(
            "evidently",
            "evidently DataDriftPreset",
            "pandas",
            "requirements-evidently.txt",
            "evidently",
            {"DO_NOT_TRACK": "1"},
            ("evidently", "pandas", "numpy", "scipy", "pyarrow"),
        ),
        Tool(
            "nannyml",
            "nannyml UnivariateDriftCalculator",
            "pandas",
            "requirements-nannyml.txt",  # shared with estimation_bench.py
            "nannyml",
            {"NML_DISABLE_USAGE_LOGGING": "1", "NML_DISABLE_USER_ANALYTICS": "1"},
            ("nannyml", "pandas", "numpy", "scipy", "pyarrow"),
        ),
        Tool(
            "whylogs",
            "whylogs log + calculate_drift_scores",
            "pandas",
            "requirements-whylogs-drift.txt",
            "whylogs-drift",
            {"WHYLOGS_NO_ANALYTICS": "True"},
            ("whylogs", "pandas", "numpy", "pyarrow"),
        ),
        Tool(
            "scipy",
            "scipy ks_2samp / chi2 at p < 0.05",
            "polars",
            packages=("scipy", "polars", "numpy"),
        ),
    )
}


@dataclass(frozen=True)
class Table:
    """The shape of one benchmark table: blocks of the 20 numeric and the 5 string columns."""

    kind: str  # "long" or "wide"
    rows: int
    numeric_blocks: int = 1
    categorical_blocks: int = 1
    drifted_blocks: int = 1

    @property
    def n_columns(self) -> int:
        return 20 * self.numeric_blocks + len(CATEGORICAL_CARDINALITIES) * self.categorical_blocks

    @property
    def label(self) -> str:
        return f"{self.rows:,} x {self.n_columns:,}"

    def suffix(self, block: int) -> str:
        return "" if self.numeric_blocks == 1 else f"_b{block:02d}"

    @property
    def drifted(self) -> list[str]:
        return [
            name + self.suffix(block) for block in range(self.drifted_blocks) for name in DRIFTS
        ]


def wide_table() -> Table:
    return Table("wide", WIDE_ROWS, numeric_blocks=48, categorical_blocks=8, drifted_blocks=2)


@dataclass
class Result:
    table: str
    rows: int
    columns: int
    tool: str
    seconds: float | None
    runs: int = 0
    ratio_to_mlwarden: float | None = None
    peak_rss_bytes: int | None = None
    rss_after_read_bytes: int | None = None
    read_seconds: float | None = None
    found: int | None = None
    n_drifted: int = 0
    false_alarms: int | None = None
    n_clean: int = 0
    flagged: list[str] = field(default_factory=list)
    note: str = ""
    extra: dict[str, Any] = field(default_factory=dict)


# ---------------------------------------------------------------------------------------------
# The synthetic tables


def _drifted_numeric(rng: np.random.Generator, n: int) -> dict[str, np.ndarray]:
    """The current side's version of the drifted numeric columns (see ``DRIFTS``)."""
    return {
        "normal_wide": rng.normal(100.0 + 0.25 * 15.0, 15.0, n),
        "exponential": rng.exponential(5.0 * 1.25, n),
        # profile_bench's bimodal_balanced: +-2 with std 0.7, so variance 2**2 + 0.7**2.
        "bimodal_balanced": rng.normal(0.0, math.sqrt(2.0**2 + 0.7**2), n),
    }


def _categorical(rng: np.random.Generator, n: int, cardinality: int, exponent: float) -> pa.Array:
    """Zipf-like shares over ``cardinality`` values, as in profile_bench (2 % nulls in cat_100)."""
    import numpy as np
    import pyarrow as pa

    weights = 1.0 / np.arange(1, cardinality + 1) ** exponent
    codes = rng.choice(cardinality, n, p=weights / weights.sum())
    width = len(str(cardinality - 1))
    values = pa.array([f"c{cardinality}_{k:0{width}d}" for k in range(cardinality)])
    mask = rng.random(n) < 0.02 if cardinality == 100 else None
    return values.take(pa.array(codes, mask=mask))


def _table_chunk(table: Table, side: str, chunk: int, n: int) -> pa.Table:
    import numpy as np
    import pyarrow as pa

    rng = np.random.default_rng([SEED, SIDES.index(side), chunk])
    arrays: dict[str, pa.Array] = {}
    for block in range(table.numeric_blocks):
        columns = _numeric_columns(rng, n)
        if side == "current" and block < table.drifted_blocks:
            for name, values in _drifted_numeric(rng, n).items():
                columns[name] = (values, columns[name][1])
        for name, (values, null_share) in columns.items():
            mask = rng.random(n) < null_share if null_share else None
            arrays[name + table.suffix(block)] = pa.array(values, mask=mask)
    for block in range(table.categorical_blocks):
        for cardinality in CATEGORICAL_CARDINALITIES:
            drifted = side == "current" and block < table.drifted_blocks and cardinality == 20
            exponent = DRIFTED_ZIPF_EXPONENT if drifted else ZIPF_EXPONENT
            name = f"cat_{cardinality}{table.suffix(block)}"
            arrays[name] = _categorical(rng, n, cardinality, exponent)
    return pa.table(arrays)


def dataset(table: Table, side: str) -> Path:
    """The Parquet file of one side of ``table``, generated on first use."""
    version = f"v{DATA_VERSION}p{PROFILE_DATA_VERSION}"
    path = DATA_DIR / f"drift_{version}_{table.kind}{table.n_columns}_{table.rows}_{side}.parquet"
    parts: Iterator[pa.Table] = (
        _table_chunk(table, side, chunk, n) for chunk, _, n in chunks(table.rows)
    )
    return cached_parquet(path, f"{table.label} ({side})", parts)


# ---------------------------------------------------------------------------------------------
# The tools. Each ``_run_*`` is the timed work and returns (raw result, timed parts); each
# ``_verdict_*`` turns the raw result into the flagged columns, untimed.


def _run_mlwarden(reference: Any, current: Any) -> tuple[Any, dict[str, float]]:
    from mlwarden import Reference, compare

    started = time.perf_counter()
    fitted = Reference.fit(reference)
    fitted_at = time.perf_counter()
    report = compare(fitted, current)
    return report, {
        "fit_seconds": fitted_at - started,
        "compare_seconds": time.perf_counter() - fitted_at,
    }


def _verdict_mlwarden(report: Any) -> dict[str, Any]:
    return {
        "flagged": list(report.drifted_columns),
        "tested": len(report.columns),
        "untested": dict(report.skipped),
        "tests": dict(Counter(c.test for c in report.columns.values())),
    }


def _run_evidently(reference: Any, current: Any) -> tuple[Any, dict[str, float]]:
    from evidently import Report
    from evidently.presets import DataDriftPreset

    # include_tests: each column's verdict (its default method and threshold) as a test result.
    return Report([DataDriftPreset()], include_tests=True).run(current, reference), {}


def _verdict_evidently(snapshot: Any) -> dict[str, Any]:
    tests = [t for t in snapshot.dict()["tests"] if t["id"] == "drift"]
    params = [t["metric_config"]["params"] for t in tests]
    return {
        "flagged": [
            p["column"] for p, t in zip(params, tests, strict=True) if t["status"] == "FAIL"
        ],
        "tested": len(tests),
        "tests": dict(Counter(p["method"] for p in params)),
    }


def _run_nannyml(reference: Any, current: Any) -> tuple[Any, dict[str, float]]:
    import nannyml
    from nannyml.chunk import CountBasedChunker

    started = time.perf_counter()
    calculator = nannyml.UnivariateDriftCalculator(column_names=list(reference.columns))
    # The default chunker cuts the reference into 10 chunks; the thresholds (mean + 3 std of
    # the chunks' drift values) are learned from them at fit time and kept by each method.
    calculator.fit(reference)
    fitted_at = time.perf_counter()
    calculator.chunker = CountBasedChunker(chunk_number=1)  # the current side as one chunk
    result = calculator.calculate(current)
    return result, {
        "fit_seconds": fitted_at - started,
        "calculate_seconds": time.perf_counter() - fitted_at,
    }


def _verdict_nannyml(result: Any) -> dict[str, Any]:
    frame = result.filter(period="analysis").to_df()
    alerts = [key for key in frame.columns if key[0] != "chunk" and key[2] == "alert"]
    tested = sorted({key[0] for key in alerts})
    return {
        "flagged": sorted({key[0] for key in alerts if bool(frame[key].iloc[-1])}),
        "tested": len(tested),
        "tests": dict(Counter(key[1] for key in alerts)),
    }


def _run_whylogs(reference: Any, current: Any) -> tuple[Any, dict[str, float]]:
    import whylogs
    from whylogs.viz.drift.column_drift_algorithms import calculate_drift_scores

    started = time.perf_counter()
    reference_view = whylogs.log(reference).view()
    current_view = whylogs.log(current).view()
    profiled_at = time.perf_counter()
    scores = calculate_drift_scores(
        target_view=current_view, reference_view=reference_view, with_thresholds=True
    )
    return scores, {
        "profile_seconds": profiled_at - started,
        "drift_seconds": time.perf_counter() - profiled_at,
    }


def _verdict_whylogs(scores: dict[str, Any]) -> dict[str, Any]:
    tested = {name: s for name, s in scores.items() if s}
    return {
        "flagged": [n for n, s in tested.items() if s["drift_category"] == "DRIFT"],
        "possible_drift": [n for n, s in tested.items() if s["drift_category"] == "POSSIBLE_DRIFT"],
        "tested": len(tested),
        "tests": dict(Counter(s["algorithm"] for s in tested.values())),
    }


def _run_scipy(reference: Any, current: Any) -> tuple[Any, dict[str, float]]:
    import numpy as np
    import polars as pl
    from scipy import stats

    p_values: dict[str, float] = {}
    for name in reference.columns:
        ref, cur = reference[name].drop_nulls(), current[name].drop_nulls()
        if ref.dtype.is_numeric():
            p_values[name] = float(stats.ks_2samp(ref.to_numpy(), cur.to_numpy()).pvalue)
            continue
        counts = (
            pl.concat([ref.value_counts(name="ref"), cur.value_counts(name="cur")], how="align")
            .fill_null(0)
            .select("ref", "cur")
            .to_numpy()
        )
        p_values[name] = float(stats.chi2_contingency(np.asarray(counts).T).pvalue)
    return p_values, {}


def _verdict_scipy(p_values: dict[str, float]) -> dict[str, Any]:
    return {"flagged": [n for n, p in p_values.items() if p < 0.05], "tested": len(p_values)}


RUNNERS: dict[str, tuple[Callable[[Any, Any], tuple[Any, dict[str, float]]], Callable[..., Any]]]
RUNNERS = {
    "mlwarden": (_run_mlwarden, _verdict_mlwarden),
    "evidently": (_run_evidently, _verdict_evidently),
    "nannyml": (_run_nannyml, _verdict_nannyml),
    "whylogs": (_run_whylogs, _verdict_whylogs),
    "scipy": (_run_scipy, _verdict_scipy),
}


# ---------------------------------------------------------------------------------------------
# The worker: runs one tool in a fresh process and prints one JSON line.


def _estimate(
    run: Callable[[Any, Any], object], reference: Any, current: Any, per_cell: float | None
) -> float:
    """Seconds one run on the whole table should take, from warm-up runs (which also load the
    tool's modules and caches before the timed runs).

    Fixed costs make one small run a poor guide, so two are made and the line through them is
    extrapolated: on the first 10,000 and 100,000 rows of a long table (the seconds per cell of
    a smaller size measured before replace them when given; see ``warmup_estimate``), and on all
    rows of the first 25 and 50 columns of a wide table, where the growth between the two, from
    linear to quadratic, is carried to all columns: some tools grow faster than linearly with
    width.
    """
    rows, columns = len(current), len(current.columns)
    if columns > WARMUP_COLUMNS:
        half, full = (
            timed(run, head(reference, rows, n), head(current, rows, n))
            for n in (WARMUP_COLUMNS // 2, WARMUP_COLUMNS)
        )
        exponent = min(2.0, max(1.0, math.log2(full / half))) if half > 0 else 1.0
        return full * (columns / WARMUP_COLUMNS) ** exponent
    return warmup_estimate(
        lambda n: timed(run, head(reference, n, columns), head(current, n, columns)),
        rows,
        warmup_rows=WARMUP_ROWS,
        known=None if per_cell is None else per_cell * rows * columns,
    )


def _worker(args: argparse.Namespace) -> None:
    tool = TOOLS[args.worker]
    os.environ.update(tool.env)  # before the tool is imported: no usage telemetry
    run, verdict = RUNNERS[tool.key]
    started = time.perf_counter()
    reference = read_parquet(args.reference, tool.reader)
    current = read_parquet(args.current, tool.reader)
    out = worker_facts(time.perf_counter() - started, tool.packages)
    estimate = _estimate(run, reference, current, args.per_cell)
    if not within_budget(out, estimate, args.budget):
        return

    def record(raw: tuple[Any, dict[str, float]], seconds: float, earlier: list[float]) -> None:
        if not earlier or seconds < min(earlier):  # the verdict of the fastest run
            out.update(parts=raw[1], **verdict(raw[0]))

    timed_runs(out, lambda: run(reference, current), args.repeats, record)


# ---------------------------------------------------------------------------------------------
# The driver


def run_tool(
    tool: str,
    table: Table,
    paths: tuple[Path, Path],
    python: Path,
    budget: float,
    per_cell: float | None,
) -> Result:
    """Run one tool on one table in a fresh worker and score its verdicts."""
    progress(table.label, TOOLS[tool].label)
    drifted = set(table.drifted)
    result = Result(
        table.kind,
        table.rows,
        table.n_columns,
        tool,
        None,
        n_drifted=len(drifted),
        n_clean=table.n_columns - len(drifted),
    )
    command = worker_command(
        python,
        __file__,
        tool,
        rows=table.rows,
        inputs={"--reference": paths[0], "--current": paths[1]},
        budget=None if tool == "mlwarden" else budget,  # ours always runs; a peer within budget
        rate_option="--per-cell",
        rate=per_cell,
    )
    out = run_budgeted_worker(result, command, env=TOOLS[tool].env, budget=budget)
    if out is None or "skipped" in out:
        return result
    result.flagged = out["flagged"]
    result.found = len(drifted & set(out["flagged"]))
    result.false_alarms = len(set(out["flagged"]) - drifted)
    result.extra.update(
        parts=out["parts"],
        tested=out["tested"],
        tests=out.get("tests", {}),
        untested=out.get("untested", {}),
        possible_drift=out.get("possible_drift", []),
    )
    result.note = _note(result, out, drifted)
    return result


def _note(result: Result, out: dict[str, Any], drifted: set[str]) -> str:
    notes = [f"best of {result.runs}", f"read {result.read_seconds:.2f} s"]
    notes += [f"{k.removesuffix('_seconds')} {v:.2f} s" for k, v in out["parts"].items()]
    if out["tested"] != result.columns:
        notes.append(f"{out['tested']} columns tested")
    flagged = set(out["flagged"])
    if missed := sorted(drifted - flagged):
        notes.append("missed " + _some(missed))
    if false := sorted(flagged - drifted):
        notes.append("flagged " + _some(false))
    if out.get("possible_drift"):
        notes.append(f"{len(out['possible_drift'])} more POSSIBLE_DRIFT")
    return "; ".join(notes)


def _some(names: list[str], shown: int = 4) -> str:
    return ", ".join(names[:shown]) + (
        f" and {len(names) - shown} more" if len(names) > shown else ""
    )


def targets(results: list[Result]) -> list[dict[str, Any]]:
    """Check the published targets against what this run measured."""

    def find(tool: str, kind: str, rows: int) -> Result | None:
        return next((r for r in results if (r.tool, r.table, r.rows) == (tool, kind, rows)), None)

    ours, peer = (
        find("mlwarden", "long", SPEED_TARGET_ROWS),
        find("evidently", "long", SPEED_TARGET_ROWS),
    )
    faster = None
    if ours and peer and ours.seconds is not None and peer.seconds is not None:
        faster = peer.seconds >= SPEED_TARGET_RATIO * ours.seconds
    checks: list[dict[str, Any]] = [
        {
            "target": f"mlwarden >= {SPEED_TARGET_RATIO:.0f}x faster than Evidently at "
            f"{SPEED_TARGET_ROWS:,} rows",
            "met": faster,
        }
    ]
    for r in results:
        if r.tool == "mlwarden":
            checks.append(
                {
                    "target": f"mlwarden finds all {r.n_drifted} drifted columns and flags none "
                    f"of the {r.n_clean} clean ones ({r.rows:,} x {r.columns:,})",
                    "met": None
                    if r.found is None
                    else r.found == r.n_drifted and not r.false_alarms,
                }
            )
    wide = next((r for r in results if r.tool == "mlwarden" and r.table == "wide"), None)
    checks.append(
        {
            "target": f"mlwarden on the wide table < {WIDE_TARGET_SECONDS:.0f} s",
            "met": None
            if wide is None or wide.seconds is None
            else wide.seconds < WIDE_TARGET_SECONDS,
        }
    )
    return checks


def _format_table(results: list[Result]) -> str:
    header = f"{'table':>19}  {'tool':<38} {TIMING_HEADER}"
    lines = [f"{header}  {'found':>5}  {'flagged clean':>13}  note"]
    for r in results:
        found = "-" if r.found is None else f"{r.found}/{r.n_drifted}"
        clean = "-" if r.false_alarms is None else f"{r.false_alarms}/{r.n_clean}"
        label = f"{r.rows:,} x {r.columns:,}"
        lines.append(
            f"{label:>19}  {TOOLS[r.tool].label:<38} {timing_cells(r, digits=2)}  "
            f"{found:>5}  {clean:>13}  {r.note}"
        )
    return "\n".join(lines)


def _print_header(machine: dict[str, Any], ours: dict[str, str], results: list[Result]) -> None:
    print_machine(machine, ours)
    for key, tool in TOOLS.items():
        extra = next((r.extra for r in results if r.tool == key and "versions" in r.extra), None)
        if tool.venv and extra:
            print(venv_line(key, extra["python"], extra["versions"]))
    print("drifted in the current side: " + "; ".join(f"{k}: {v}" for k, v in DRIFTS.items()))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description="Time drift detection of mlwarden against Evidently, NannyML, whylogs and "
        "scipy, and count the drifted and clean columns each one flags.",
        epilog="Targets: mlwarden >= 20x faster than Evidently at 1M rows; finds all drifted "
        "columns and flags no clean one; wide table (100k x 1,000) < 60 s.",
    )
    add_run_options(
        parser,
        sizes=SIZES,
        sizes_help="comma-separated row counts per side (default: %(default)s; '' for none)",
        quick_help=f"{QUICK_ROWS:,} rows, no wide table",
        flags={"--no-wide": "skip the 100k x 1,000 table"},
        tools=TOOLS,
        budget_option="--peer-budget",
        budget_default=600.0,
        budget_skips="a peer on a table",
        results_file=RESULTS_FILE,
    )
    add_worker_options(parser, TOOLS, ["--reference", "--current"], rate_option="--per-cell")
    args = parser.parse_args(argv)

    if args.worker:
        _worker(args)
        return 0

    sizes, tools = sizes_and_tools(parser, args, QUICK_ROWS, TOOLS)
    tables = [Table("long", rows) for rows in sorted(sizes)]
    if not (args.quick or args.no_wide):
        tables.append(wide_table())

    pythons = {key: TOOLS[key].python() for key in tools}
    ours = versions(["mlwarden", "polars", "numpy", "scipy", "pyarrow"])
    machine = machine_info()

    results: list[Result] = []
    # Seconds per cell of each peer on the largest long table so far, to estimate the next one.
    per_cell: dict[str, float] = {}
    for table in tables:
        paths = (dataset(table, "reference"), dataset(table, "current"))
        table_results = []
        for key in tools:
            rate = per_cell.get(key) if table.kind == "long" else None
            r = run_tool(key, table, paths, pythons[key], args.peer_budget, rate)
            if r.seconds is not None and table.kind == "long":
                per_cell[key] = r.seconds / (table.rows * table.n_columns)
            table_results.append(r)
        set_ratios(table_results)
        results.extend(table_results)

    print()
    _print_header(machine, ours, results)
    print()
    print(_format_table(results))
    checks = targets(results)
    print()
    print_targets(checks)

    write_results(
        args.output,
        "drift",
        machine,
        ours,
        settings={
            "tables": [asdict(t) for t in tables],
            "tools": tools,
            "seed": SEED,
            "data_version": DATA_VERSION,
            "profile_data_version": PROFILE_DATA_VERSION,
            "drifts": DRIFTS,
            "warmup_rows": WARMUP_ROWS,
            "warmup_columns": WARMUP_COLUMNS,
            "peer_budget_seconds": args.peer_budget,
        },
        results=[asdict(r) for r in results],
        targets=checks,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
