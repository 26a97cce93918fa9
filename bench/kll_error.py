"""Rank error of mlwarden's KLL quantile sketch: the measurement behind ``rank_error_bound``.

How to run (from the repository root, after ``make install-dev``)::

    .venv/bin/python bench/kll_error.py            # k = 64, 200, 512; 200 trials per pattern
    .venv/bin/python bench/kll_error.py --ks 512 --trials 50

For each sketch size ``k`` and each way data reaches a sketch, many seeded trials feed 200,000
values of a heavy-tailed distribution and record the largest normalized rank error over 99 query
ranks (0.01 ... 0.99): ``|true rank of the returned value - q|``. The patterns are

* ``one batch``: a single large update (the in-memory path of ``profile``);
* ``stream of 1``: one value per update (the classic streaming worst case);
* ``stream of 100``: small batches, as a client logging a few rows at a time;
* ``merge of 64``: 64 windows sketched apart and merged (the service's path for wide windows).

The 99th percentile of the per-trial maximum, times ``k``, estimates the constant ``C`` of the
bound ``C / k``; ``rank_error_bound`` uses the largest constant observed, rounded up.
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from mlwarden.profiling.kll import KLLSketch, rank_error_bound

N = 200_000
QS = np.linspace(0.01, 0.99, 99)


def max_rank_error(sketch: KLLSketch, truth: np.ndarray) -> float:
    est = sketch.quantiles(QS)
    lo = np.searchsorted(truth, est, side="left") / truth.size
    hi = np.searchsorted(truth, est, side="right") / truth.size
    return float(np.max(np.maximum(0.0, np.maximum(lo - QS, QS - hi))))


def feed(pattern: str, values: np.ndarray, k: int) -> KLLSketch:
    if pattern == "one batch":
        s = KLLSketch(k)
        s.update(values)
        return s
    if pattern.startswith("stream of"):
        step = int(pattern.rsplit(" ", 1)[1])
        s = KLLSketch(k)
        for lo in range(0, values.size, step):
            s.update(values[lo : lo + step])
        return s
    parts = np.array_split(values, 64)
    sketches = []
    for part in parts:
        p = KLLSketch(k)
        p.update(part)
        sketches.append(p)
    while len(sketches) > 1:  # a balanced merge tree, as windows roll up into days
        sketches = [
            a.merge(b) if b is not None else a
            for a, b in zip(sketches[::2], [*sketches[1::2], None], strict=False)
        ]
    return sketches[0]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ks", default="64,200,512")
    parser.add_argument("--trials", type=int, default=200)
    parser.add_argument("--patterns", default="one batch,stream of 100,merge of 64,stream of 1")
    args = parser.parse_args()
    ks = [int(k) for k in args.ks.split(",")]
    patterns = args.patterns.split(",")
    print(
        f"{'k':>5} {'pattern':>15} {'trials':>6} {'p50 err':>9} {'p99 err':>9} "
        f"{'max err':>9} {'p99*k':>7} {'bound':>8} {'seconds':>8}"
    )
    for k in ks:
        for pattern in patterns:
            trials = args.trials if pattern != "stream of 1" else max(5, args.trials // 20)
            errors = []
            started = time.perf_counter()
            for seed in range(trials):
                values = np.random.default_rng(seed).standard_t(2, size=N)
                sketch = feed(pattern, values, k)
                errors.append(max_rank_error(sketch, np.sort(values)))
            e = np.asarray(errors)
            p50, p99 = np.quantile(e, [0.5, 0.99])
            print(
                f"{k:>5} {pattern:>15} {trials:>6} {p50:>9.5f} {p99:>9.5f} {e.max():>9.5f} "
                f"{p99 * k:>7.2f} {rank_error_bound(k):>8.5f} {time.perf_counter() - started:>8.1f}"
            )


if __name__ == "__main__":
    main()
