"""Estimation benchmark: mlwarden's CBPE side by side with NannyML's CBPE, on known performance.

How to run (from the repository root, after ``make install-dev``)::

    .venv/bin/python bench/estimation_bench.py                 # reference 50k, analysis 500k rows
    .venv/bin/python bench/estimation_bench.py --quick         # reference 20k, analysis 100k rows
    .venv/bin/python bench/estimation_bench.py --tools mlwarden --repeats 5

What is measured, in one run and on the same data:

* ``mlwarden.performance.cbpe.CBPE(...).fit(reference).estimate(analysis, window=5000)`` in this
  process;
* ``nannyml.CBPE(..., chunk_size=5000).fit(reference).estimate(analysis)`` in a separate venv
  (``.bench-venv-nannyml/``, made on first use from ``bench/requirements-nannyml.txt``, since
  NannyML cannot live with our pins). It runs with ``NML_DISABLE_USAGE_LOGGING=1`` and
  ``NML_DISABLE_USER_ANALYTICS=1``, so it sends no usage data anywhere.

Both tools get the same reference (with labels) and the same analysis rows (without labels), cut
into the same chunks of 5,000 rows; both calibrate the scores with isotonic regression. Only fit
+ estimate is timed (not imports or reading the Parquet files): the best of ``--repeats`` runs
after one warm-up on a tenth of the data. The realized ROC AUC and F1 of every chunk are computed
here with scikit-learn from the held-back labels; each tool is scored by the mean absolute error
of its estimates against them, and by how many chunks' realized values fall inside its band. A
"reference constant" row (the reference's realized metric used as the estimate of every chunk)
shows what an estimate must beat to be worth anything.

The data are synthetic and seeded: three features, a true probability ``p = sigmoid(f(x))``, the
label drawn from it, and a model score that ranks like ``p`` but is overconfident (so calibration
matters). Over the analysis the spread of one feature grows and the mean of another drifts
(covariate shift), so the realized ROC AUC moves from about 0.79 to 0.92 and F1 with it; the
relation between x and y does not change. The files are written once to ``bench/.data/``.

Targets: mlwarden's mean absolute error no worse than NannyML's for ROC AUC and for F1 (within
1e-6: both implement the same estimator, so a tie is the expected outcome), and mlwarden at least
5x faster. Results are printed and written to ``bench/results/estimation_bench.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

from _common import (
    BENCH,
    DATA_DIR,
    RESULTS_DIR,
    machine_info,
    peer_venv,
    print_targets,
    run_worker,
    venv_line,
    versions,
    write_results,
)

SEED = 20_240_611
# Bump when the generated data change, so stale cached files are not reused.
DATA_VERSION = 1
CHUNK = 5000
METRICS = ("roc_auc", "f1")
TOOLS = ("mlwarden", "nannyml")
SPEED_TARGET = 5.0
# Errors that differ by less than this count as equal (floating-point rounding).
ERROR_TOLERANCE = 1e-6
NANNYML_REQUIREMENTS = BENCH / "requirements-nannyml.txt"
RESULTS_FILE = RESULTS_DIR / "estimation_bench.json"
NANNYML_ENV = {"NML_DISABLE_USAGE_LOGGING": "1", "NML_DISABLE_USER_ANALYTICS": "1"}


# ---------------------------------------------------------------------------------------------
# The data


def _rows(seed: int, part: int, progress: Any) -> Any:
    """One block of rows; ``progress`` in [0, 1] sets how far the covariate shift has gone."""
    import numpy as np
    import polars as pl

    rng = np.random.default_rng([seed, part])
    n = progress.shape[0]
    x1 = rng.normal(0.0, 1.0 + 1.5 * progress, n)
    x2 = rng.normal(1.2 * progress, 1.0, n)
    x3 = rng.uniform(-1.0, 1.0, n)
    logit = 1.2 * x1 - 0.8 * x2 + 0.6 * x3 * x1 + 0.3
    p = 1.0 / (1.0 + np.exp(-logit))
    y = (rng.random(n) < p).astype(np.int64)
    score = 1.0 / (1.0 + np.exp(-(1.8 * logit + 0.4)))
    return pl.DataFrame(
        {"x1": x1, "x2": x2, "x3": x3, "score": score, "pred": (score >= 0.5).astype(np.int64)}
    ).with_columns(pl.Series("y", y))


def dataset(reference_rows: int, analysis_rows: int) -> tuple[Path, Path]:
    """The reference and analysis Parquet files, generated on first use."""
    import numpy as np

    stem = f"estimation_v{DATA_VERSION}_{reference_rows}_{analysis_rows}"
    reference, analysis = DATA_DIR / f"{stem}_reference.parquet", DATA_DIR / f"{stem}.parquet"
    if reference.exists() and analysis.exists():
        return reference, analysis
    DATA_DIR.mkdir(parents=True, exist_ok=True)
    print(f"[setup] generating {reference_rows:,} + {analysis_rows:,} rows", flush=True)
    _rows(SEED, 0, np.zeros(reference_rows)).write_parquet(reference)
    # The shift grows chunk by chunk, constant within a chunk.
    chunk_of_row = np.arange(analysis_rows) // CHUNK
    progress = chunk_of_row / max(1, chunk_of_row[-1])
    _rows(SEED, 1, progress).write_parquet(analysis)
    return reference, analysis


def realized(analysis: Path) -> dict[str, list[float]]:
    """The realized metric of every chunk, by scikit-learn."""
    import polars as pl
    from sklearn.metrics import f1_score, roc_auc_score

    frame = pl.read_parquet(analysis, columns=["score", "pred", "y"])
    out: dict[str, list[float]] = {metric: [] for metric in METRICS}
    for start in range(0, frame.height, CHUNK):
        part = frame[start : start + CHUNK]
        y = part["y"].to_numpy()
        out["roc_auc"].append(float(roc_auc_score(y, part["score"].to_numpy())))
        out["f1"].append(float(f1_score(y, part["pred"].to_numpy())))
    return out


# ---------------------------------------------------------------------------------------------
# The tools


def _time(run: Any, warmup: Any, repeats: int) -> tuple[float, Any]:
    """Run ``warmup()`` once, then ``run()`` ``repeats`` times: the best time and a result."""
    import gc

    warmup()
    best, result = float("inf"), None
    for _ in range(repeats):
        gc.collect()
        started = time.perf_counter()
        result = run()
        best = min(best, time.perf_counter() - started)
    return best, result


def run_mlwarden(reference: Path, analysis: Path, repeats: int) -> dict[str, Any]:
    """mlwarden's CBPE in this process."""
    import polars as pl

    from mlwarden.performance.cbpe import CBPE

    ref = pl.read_parquet(reference)
    ana = pl.read_parquet(analysis).drop("y")

    def run(ref: pl.DataFrame, ana: pl.DataFrame) -> Any:
        cbpe = CBPE(y_score="score", y_pred="pred", y_true="y", metrics=METRICS)
        return cbpe, cbpe.fit(ref).estimate(ana, window=CHUNK)

    warm_ref, warm_ana = ref.head(ref.height // 10), ana.head(ana.height // 10)
    seconds, (cbpe, result) = _time(lambda: run(ref, ana), lambda: run(warm_ref, warm_ana), repeats)
    frame = result.to_df()
    out: dict[str, Any] = {"seconds": seconds, "warnings": list(result.warnings)}
    for metric in METRICS:
        rows = frame.filter(metric=metric)
        out[metric] = {
            "estimated": rows["estimated"].to_list(),
            "lower": rows["lower"].to_list(),
            "upper": rows["upper"].to_list(),
            "reference": cbpe.reference_metrics_[metric],
        }
    return out


def _worker_nannyml(reference: Path, analysis: Path, repeats: int) -> None:
    """Runs inside .bench-venv-nannyml: NannyML's CBPE on the same files and chunks."""
    os.environ.update(NANNYML_ENV)  # before the import: no usage data leaves the machine
    import nannyml as nml
    import pandas as pd

    ref = pd.read_parquet(reference)
    ana = pd.read_parquet(analysis).drop(columns=["y"])

    def run(ref: pd.DataFrame, ana: pd.DataFrame) -> Any:
        estimator = nml.CBPE(
            y_pred_proba="score",
            y_pred="pred",
            y_true="y",
            problem_type="classification_binary",
            metrics=list(METRICS),
            chunk_size=CHUNK,
        )
        estimator.fit(ref)
        return estimator.estimate(ana)

    warm_ref, warm_ana = ref.head(len(ref) // 10), ana.head(len(ana) // 10)
    seconds, result = _time(lambda: run(ref, ana), lambda: run(warm_ref, warm_ana), repeats)
    frame = result.filter(period="analysis").to_df()
    out: dict[str, Any] = {
        "seconds": seconds,
        "chunks": [
            [int(a), int(b)]
            for a, b in zip(
                frame[("chunk", "start_index")], frame[("chunk", "end_index")], strict=True
            )
        ],
        "versions": versions(["nannyml", "pandas", "numpy", "scikit-learn"]),
        "python": sys.version.split()[0],
    }
    for metric in METRICS:
        out[metric] = {
            "estimated": [float(v) for v in frame[(metric, "value")]],
            "lower": [float(v) for v in frame[(metric, "lower_confidence_boundary")]],
            "upper": [float(v) for v in frame[(metric, "upper_confidence_boundary")]],
        }
    print(json.dumps(out))


def run_nannyml(python: Path, reference: Path, analysis: Path, repeats: int) -> dict[str, Any]:
    command = [str(python), __file__, "--worker", "nannyml", "--reference", str(reference)]
    command += ["--analysis", str(analysis), "--repeats", str(repeats)]
    return run_worker(command, env=NANNYML_ENV, timeout=3600)


# ---------------------------------------------------------------------------------------------
# The driver


def score(tool: dict[str, Any], truth: dict[str, list[float]]) -> dict[str, Any]:
    """Mean absolute error of the estimates and band coverage, per metric."""
    out: dict[str, Any] = {}
    for metric in METRICS:
        estimated, real = tool[metric]["estimated"], truth[metric]
        pairs = list(zip(estimated, real, strict=True))
        inside = sum(
            lo <= r <= hi
            for r, lo, hi in zip(real, tool[metric]["lower"], tool[metric]["upper"], strict=True)
        )
        out[metric] = {
            "mae": sum(abs(e - r) for e, r in pairs) / len(pairs),
            "max_error": max(abs(e - r) for e, r in pairs),
            "band_coverage": inside / len(pairs),
        }
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description="Compare mlwarden's CBPE with NannyML's on data of known performance.",
        epilog="Targets: error no worse than NannyML's for ROC AUC and F1, >= 5x faster.",
    )
    parser.add_argument("--reference-rows", type=int, default=50_000)
    parser.add_argument("--analysis-rows", type=int, default=500_000)
    parser.add_argument("--quick", action="store_true", help="20k reference, 100k analysis rows")
    parser.add_argument("--repeats", type=int, default=3, help="timed runs per tool (best kept)")
    parser.add_argument("--tools", default=",".join(TOOLS), help="subset of %(default)s")
    parser.add_argument("--output", type=Path, default=RESULTS_FILE, help="JSON results file")
    parser.add_argument("--worker", choices=("nannyml",), help=argparse.SUPPRESS)
    parser.add_argument("--reference", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--analysis", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)

    if args.worker == "nannyml":
        _worker_nannyml(args.reference, args.analysis, args.repeats)
        return 0

    if args.quick:
        args.reference_rows, args.analysis_rows = 20_000, 100_000
    tools = {t.strip() for t in args.tools.split(",") if t.strip()}
    if unknown := tools - set(TOOLS):
        parser.error(f"unknown tool(s) {', '.join(sorted(unknown))}; choose from {TOOLS}")
    nannyml_python = peer_venv("nannyml", NANNYML_REQUIREMENTS) if "nannyml" in tools else None
    reference, analysis = dataset(args.reference_rows, args.analysis_rows)
    truth = realized(analysis)
    chunks = len(truth["roc_auc"])

    runs: dict[str, dict[str, Any]] = {}
    if "mlwarden" in tools:
        print("[run] mlwarden CBPE ...", file=sys.stderr, flush=True)
        runs["mlwarden"] = run_mlwarden(reference, analysis, args.repeats)
    if nannyml_python is not None:
        print("[run] NannyML CBPE (own venv) ...", file=sys.stderr, flush=True)
        runs["nannyml"] = run_nannyml(nannyml_python, reference, analysis, args.repeats)
        expected = [
            [s, min(s + CHUNK, args.analysis_rows) - 1] for s in range(0, args.analysis_rows, CHUNK)
        ]
        if runs["nannyml"]["chunks"] != expected:
            raise RuntimeError("NannyML cut the analysis into other chunks than mlwarden")
    scores = {tool: score(run, truth) for tool, run in runs.items()}
    constant = None
    if "mlwarden" in runs:
        baseline = {m: {"estimated": [runs["mlwarden"][m]["reference"]] * chunks} for m in METRICS}
        for metric in METRICS:
            baseline[metric]["lower"] = baseline[metric]["upper"] = baseline[metric]["estimated"]
        constant = score(baseline, truth)

    machine = machine_info()
    ours = versions(["mlwarden", "polars", "numpy", "scikit-learn"])
    print()
    print(f"machine: {machine['cpu']}, {machine['logical_cores']} logical cores; {machine['os']}")
    print(f"python {machine['python']}; " + ", ".join(f"{k} {v}" for k, v in ours.items()))
    if "nannyml" in runs:
        print(venv_line("nannyml", runs["nannyml"]["python"], runs["nannyml"]["versions"]))
    span = {m: (min(truth[m]), max(truth[m])) for m in METRICS}
    print(
        f"data: reference {args.reference_rows:,} rows, analysis {args.analysis_rows:,} rows in "
        f"{chunks} chunks of {CHUNK:,}; realized ROC AUC {span['roc_auc'][0]:.3f}-"
        f"{span['roc_auc'][1]:.3f}, F1 {span['f1'][0]:.3f}-{span['f1'][1]:.3f}"
    )
    print()
    header = (
        f"{'tool':<20} {'seconds':>8}  {'AUC MAE':>9} {'AUC cov':>8}  {'F1 MAE':>9} {'F1 cov':>8}"
    )
    print(header)
    rows = [(tool, runs[tool]["seconds"], scores[tool]) for tool in runs]
    if constant is not None:
        rows.append(("reference constant", None, constant))
    for tool, seconds, s in rows:
        shown = "-" if seconds is None else f"{seconds:.3f}"
        print(
            f"{tool:<20} {shown:>8}  {s['roc_auc']['mae']:>9.6f} "
            f"{s['roc_auc']['band_coverage']:>8.0%}  {s['f1']['mae']:>9.6f} "
            f"{s['f1']['band_coverage']:>8.0%}"
        )

    checks: list[dict[str, Any]] = []
    if {"mlwarden", "nannyml"} <= set(runs):
        for metric in METRICS:
            ours_error = scores["mlwarden"][metric]["mae"]
            peer_error = scores["nannyml"][metric]["mae"]
            # Both tools estimate by the same method, so equal errors agree to rounding only.
            checks.append(
                {
                    "target": f"{metric} error no worse than NannyML's",
                    "met": ours_error <= peer_error + ERROR_TOLERANCE,
                    "mlwarden": ours_error,
                    "nannyml": peer_error,
                }
            )
        speedup = runs["nannyml"]["seconds"] / runs["mlwarden"]["seconds"]
        checks.append(
            {
                "target": f"at least {SPEED_TARGET:g}x faster than NannyML",
                "met": speedup >= SPEED_TARGET,
                "speedup": speedup,
            }
        )
        print(f"\nspeed-up: {speedup:.1f}x")
    print_targets(checks)  # set only when both tools ran, so each is met or NOT MET

    write_results(
        args.output,
        "estimation",
        machine,
        ours,
        settings={
            "reference_rows": args.reference_rows,
            "analysis_rows": args.analysis_rows,
            "chunk": CHUNK,
            "repeats": args.repeats,
            "seed": SEED,
            "data_version": DATA_VERSION,
        },
        realized=truth,
        runs=runs,
        scores=scores,
        reference_constant=constant,
        targets=checks,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
