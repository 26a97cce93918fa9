"""Explanation benchmark: mlwarden's compiled TreeSHAP side by side with shap and LightGBM.

How to run (from the repository root, after ``make install-dev``)::

    .venv/bin/python bench/explain_bench.py                  # 200 trees, 5,000 rows explained
    .venv/bin/python bench/explain_bench.py --quick          # 50 trees, 1,000 rows
    .venv/bin/python bench/explain_bench.py --rows 20000 --trees 500 --repeats 5

What is measured, in one run, on the same model and rows:

* ``shap.TreeExplainer(model).shap_values(x)``, which for LightGBM hands the work to
  LightGBM's own TreeSHAP (``pred_contrib``, multithreaded);
* ``booster.predict(x, pred_contrib=True)``, that TreeSHAP called directly;
* ``mlwarden.explain(model, x)``, warm: after a first call that compiled the kernels (or read
  them from numba's on-disk cache) and flattened the model, which are kept.

Each is the best of ``--repeats`` wall-clock timings. The first call is reported apart, each in
a fresh process reading the same model file: with numba's on-disk cache as it is (the normal
case after the first use) and with an empty cache (compiling every kernel). The flattening and
per-leaf tables of the model (done once per model) are also timed alone.

The model is a LightGBM regressor (default ``num_leaves`` 31) trained on seeded synthetic data:
normal features, a target with nonlinear terms and interactions of the first eight. The values
must agree: the largest absolute difference from shap's attributions is printed, and the run
fails if it exceeds 1e-6.

Target: mlwarden at least 5x faster than ``shap.TreeExplainer``. Results are printed and
written to ``bench/results/explain_bench.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
import warnings
from pathlib import Path
from typing import Any

from _common import (
    DATA_DIR,
    RESULTS_DIR,
    best_of,
    machine_info,
    print_machine,
    print_targets,
    run_worker,
    versions,
    write_results,
)

SEED = 20_251_104
SPEED_TARGET = 5.0
TOLERANCE = 1e-6
RESULTS_FILE = RESULTS_DIR / "explain_bench.json"


def dataset(rows: int, features: int, seed: int) -> tuple[Any, Any]:
    """Seeded features and a target that needs many splits to fit."""
    import numpy as np

    rng = np.random.default_rng(seed)
    x = rng.normal(size=(rows, features))
    y = (
        2.0 * x[:, 0]
        + np.sin(3.0 * x[:, 1])
        + x[:, 2] * x[:, 3]
        + np.abs(x[:, 4])
        + (x[:, 5] > 0.5) * x[:, 6]
        + 0.5 * x[:, 7] ** 2
        + rng.normal(scale=0.3, size=rows)
    )
    return x, y


def _first_call(model_file: Path, rows_file: Path) -> None:
    """Runs in a fresh process: the first ``mlwarden.explain`` on a model read from a file."""
    import lightgbm as lgb
    import numpy as np

    booster = lgb.Booster(model_file=str(model_file))
    x = np.load(rows_file)
    import mlwarden  # imported before the clock starts, as in any program that explains

    started = time.perf_counter()
    mlwarden.explain(booster, x)
    print(json.dumps({"seconds": time.perf_counter() - started}))


def first_call(model_file: Path, rows_file: Path, *, cache_dir: str | None) -> float:
    """Seconds of a first call in a fresh process; ``cache_dir`` sets numba's cache folder."""
    command = [sys.executable, __file__, "--worker", "first-call"]
    command += ["--model-file", str(model_file), "--rows-file", str(rows_file)]
    env = {"NUMBA_CACHE_DIR": cache_dir} if cache_dir is not None else None
    seconds: float = run_worker(command, env=env, timeout=1800)["seconds"]
    return seconds


def _load() -> float | None:
    """The 1-minute load average, where the system reports one: other work on the machine
    slows every tool, LightGBM's threads most."""
    try:
        return os.getloadavg()[0]
    except (AttributeError, OSError):
        return None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description="Time mlwarden's TreeSHAP against shap and LightGBM's pred_contrib.",
        epilog=f"Target: >= {SPEED_TARGET:g}x faster than shap.TreeExplainer, same values.",
    )
    parser.add_argument("--rows", type=int, default=5_000, help="rows explained")
    parser.add_argument("--train-rows", type=int, default=20_000, help="rows the model learns")
    parser.add_argument("--features", type=int, default=30)
    parser.add_argument("--trees", type=int, default=200)
    parser.add_argument("--leaves", type=int, default=31, help="LightGBM's num_leaves")
    parser.add_argument("--repeats", type=int, default=3, help="timed runs per tool (best kept)")
    parser.add_argument("--quick", action="store_true", help="50 trees, 1,000 rows explained")
    parser.add_argument(
        "--no-cold", action="store_true", help="skip the first call with an empty numba cache"
    )
    parser.add_argument("--output", type=Path, default=RESULTS_FILE, help="JSON results file")
    parser.add_argument("--worker", choices=("first-call",), help=argparse.SUPPRESS)
    parser.add_argument("--model-file", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--rows-file", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)

    if args.worker == "first-call":
        _first_call(args.model_file, args.rows_file)
        return 0
    if args.quick:
        args.trees, args.rows = 50, 1_000
    if args.features < 8:
        parser.error("--features must be at least 8 (the target uses the first eight)")

    import lightgbm as lgb
    import numba
    import numpy as np
    import shap

    import mlwarden
    from mlwarden.explanation import _fasttree

    load_at_start = _load()
    x_train, y_train = dataset(args.train_rows, args.features, SEED)
    x = dataset(args.rows, args.features, SEED + 1)[0]
    print(f"[setup] training {args.trees} trees on {args.train_rows:,} rows", file=sys.stderr)
    model = lgb.LGBMRegressor(
        n_estimators=args.trees, num_leaves=args.leaves, random_state=SEED, verbose=-1
    ).fit(x_train, y_train)
    booster = model.booster_
    DATA_DIR.mkdir(parents=True, exist_ok=True)
    stem = f"explain_{args.trees}_{args.leaves}_{args.features}_{args.rows}"
    model_file, rows_file = DATA_DIR / f"{stem}.txt", DATA_DIR / f"{stem}.npy"
    booster.save_model(str(model_file))
    np.save(rows_file, x)

    def run_shap() -> Any:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)
            return shap.TreeExplainer(model).shap_values(x)

    print("[run] shap, pred_contrib, mlwarden ...", file=sys.stderr, flush=True)
    expected = np.asarray(run_shap())
    contributions = booster.predict(x, pred_contrib=True)
    ours = mlwarden.explain(model, x)  # compiles (filling numba's cache) or loads the kernels
    print("[run] first calls in fresh processes ...", file=sys.stderr, flush=True)
    first_warm_cache = first_call(model_file, rows_file, cache_dir=None)
    first_cold_cache = None
    if not args.no_cold:
        with tempfile.TemporaryDirectory() as empty:
            first_cold_cache = first_call(model_file, rows_file, cache_dir=empty)
    started = time.perf_counter()
    _fasttree._CACHE.clear()
    fast = _fasttree.fast_tree(model)
    ensemble = fast.ensemble() if fast is not None else None
    precompute = time.perf_counter() - started
    if ensemble is None:
        raise RuntimeError("the benchmark's model was not taken by the compiled explainer")
    timings = {
        "shap": best_of(run_shap, args.repeats),
        "pred_contrib": best_of(lambda: booster.predict(x, pred_contrib=True), args.repeats),
        "mlwarden": best_of(lambda: mlwarden.explain(model, x), args.repeats),
    }
    difference = float(np.max(np.abs(ours.values - expected)))
    base_difference = float(np.max(np.abs(ours.base_value - contributions[:, -1])))
    contrib_difference = float(np.max(np.abs(contributions[:, :-1] - expected)))
    additivity = float(
        np.max(np.abs(ours.values.sum(axis=1) + ours.base_value - model.predict(x, raw_score=True)))
    )

    load_at_end = _load()
    machine = machine_info()
    ours_versions = versions(["mlwarden", "shap", "lightgbm", "numba", "numpy"])
    print()
    print_machine(machine, ours_versions)
    widths = ensemble.leaf_width
    print(
        f"model: LightGBM regressor, {args.features} features, {args.trees} trees of up to "
        f"{args.leaves} leaves ({len(widths):,} leaves, up to {int(widths.max())} distinct "
        f"features on a path), trained on {args.train_rows:,} rows; explaining {args.rows:,} "
        f"rows; best of {args.repeats}; numba threads {numba.get_num_threads()}, "
        f"numba threading layer {numba.threading_layer()}, LightGBM threads: its default"
    )
    if load_at_start is not None and load_at_end is not None:
        print(
            f"machine load (1-minute average) at the start {load_at_start:.2f}, "
            f"at the end {load_at_end:.2f}"
        )
    print()
    labels = {
        "shap": "shap.TreeExplainer(model).shap_values(x)",
        "pred_contrib": "booster.predict(x, pred_contrib=True)",
        "mlwarden": "mlwarden.explain(model, x), warm",
    }
    print(f"{'tool':<42} {'seconds':>8} {'rows/s':>10} {'x shap':>7}")
    runs: dict[str, Any] = {}
    for tool, seconds in timings.items():
        ratio = timings["shap"] / seconds
        runs[tool] = {"seconds": seconds, "rows_per_second": args.rows / seconds, "x_shap": ratio}
        print(f"{labels[tool]:<42} {seconds:>8.3f} {args.rows / seconds:>10,.0f} {ratio:>7.1f}")
    print()
    cold = "not measured" if first_cold_cache is None else f"{first_cold_cache:.2f} s"
    print(
        f"mlwarden first call in a fresh process: {first_warm_cache:.2f} s with numba's on-disk "
        f"cache, {cold} with an empty cache (compiling); flattening the model and its tables "
        f"alone: {precompute:.3f} s"
    )
    print(
        f"max |mlwarden - shap| = {difference:.2e}; max |pred_contrib - shap| = "
        f"{contrib_difference:.2e}; base value vs pred_contrib: {base_difference:.2e}; "
        f"max |sum + base - raw prediction| = {additivity:.2e}"
    )
    speedup = timings["shap"] / timings["mlwarden"]
    checks = [
        {
            "target": f"at least {SPEED_TARGET:g}x faster than shap.TreeExplainer",
            "met": speedup >= SPEED_TARGET,
            "speedup": speedup,
        },
        {
            "target": f"max |difference| from shap <= {TOLERANCE:g}",
            "met": difference <= TOLERANCE,
            "max_difference": difference,
        },
    ]
    print()
    print_targets(checks)
    write_results(
        args.output,
        "explain",
        machine,
        ours_versions,
        settings={
            "rows": args.rows,
            "train_rows": args.train_rows,
            "features": args.features,
            "trees": args.trees,
            "num_leaves": args.leaves,
            "repeats": args.repeats,
            "seed": SEED,
            "numba_threads": numba.get_num_threads(),
            "numba_threading_layer": numba.threading_layer(),
            "cpu_count": os.cpu_count(),
            "load_average_at_start": load_at_start,
            "load_average_at_end": load_at_end,
        },
        model={"leaves": len(widths), "max_path_features": int(widths.max())},
        runs=runs,
        first_call={
            "fresh_process_disk_cache_seconds": first_warm_cache,
            "fresh_process_empty_cache_seconds": first_cold_cache,
            "flatten_seconds": precompute,
        },
        agreement={
            "max_abs_difference_from_shap": difference,
            "pred_contrib_vs_shap": contrib_difference,
            "base_value_vs_pred_contrib": base_difference,
            "additivity": additivity,
        },
        targets=checks,
    )
    if difference > TOLERANCE:
        raise SystemExit(
            f"mlwarden's attributions differ from shap's by up to {difference:.2e} "
            f"(more than {TOLERANCE:g})"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
