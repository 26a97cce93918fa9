"""Alerting benchmark: false incidents and detection delays of mlwarden's alert budget, side by
side with NannyML's defaults, on many simulated model-months.

How to run (from the repository root, after ``make install-dev``)::

    .venv/bin/python bench/alerting_bench.py --quick      # one model per process, 4h windows
    .venv/bin/python bench/alerting_bench.py              # 1h, 4h and 1d windows (~45 min)
    .venv/bin/python bench/alerting_bench.py --windows 1d --tools mlwarden

What is measured. Five simulated processes, each seeded; one simulated *model* is one instance
of a process (its own sensors' levels, spreads, autocorrelations and label relation, from its
seed). Each model is registered once per window size (1h, 4h, 1d) on a 21-day reference with
``Registry.register(..., window=w, false_incidents=1.0)``, and the same reference is then used
for every monitored month of that model:

* **clean months** (30 days each, drawn from the same instance with fresh noise): every window
  judged by :func:`mlwarden.service.backtest.backtest`, the service's evaluation path without the
  store. Each incident is a false one. Reported per process and window size: false incidents per
  model per 90 days, the pooled model-days behind the rate, and the 95 % upper confidence bound
  of the rate (Poisson on the pooled count over the pooled days).
* **fault months**: a clean month with one fault injected on day 10 at 08:00 UTC (see
  ``FAULTS`` in ``_alerting_data.py``). Only days 10 to 12 of it are judged (from midnight of
  the fault's day to 64 hours after the fault), which keeps the 1h runs affordable; the CUSUMs
  start from zero at midnight. A fault is *detected* at the end of the first window, from the
  one holding the fault's start on, whose alerts name the faulted column (in a drift metric, a
  quality check such as ``stuck(temp_c)``, or a segment), the model's score or prediction, the
  multivariate drift (``drift.pca``) or the performance (``performance.*``), CUSUMs included;
  the delay is that window's end minus the fault's start. The same rule applied to the clean
  months at the same hour (day 10, 08:00) gives the *chance* rate: how often the rule fires with
  no fault at all.

Labels. The clean months and the fault months are judged without labels (the target column
null on every row: performance is estimated). For the concept-drift fault, which only labels
can show, the month is judged with its labels and the labels are taken to arrive two days late:
the first window with a ``performance.*`` alert counts, and the delay is
``max(that window's end, fault start + 2 days) - fault start``.

The peer: NannyML 0.13 in its own venv (``.bench-venv-nannyml/``, made on first use from
``bench/requirements-nannyml.txt``, shared with ``estimation_bench.py``; usage logging off),
with its defaults: ``UnivariateDriftCalculator`` (default methods: Jensen-Shannon for every
column; default thresholds: the reference chunks' mean + 3 standard deviations) on the
features and the model's outputs, and ``CBPE`` (binary and multiclass classifiers: ROC AUC,
F1, accuracy) or ``DLE`` (regressors: MAE, RMSE) with their default thresholds; for the
concept-drift month, on labels, its realized ``PerformanceCalculator`` on the same metrics. It
is fitted on the same reference and run on the same rows, chunked by the same windows (a
chunker that floors timestamps to the window, as ``backtest`` does), and its alerts are
grouped into incidents by the same rule (:func:`mlwarden.alerting.incidents.group_incidents`)
and judged by the same detection rule.

The processes (``PROCESSES`` in ``_alerting_data.py``, generated with NumPy, never
downloaded): ``ar_sensors`` (six AR(1) sensors, binary classifier), ``daily_cycle`` (a daily
cycle, an idle night shift, categorical shift and product; binary), ``batch_recipes``
(:func:`mlwarden.datasets.production_line` at a 60 s cadence), ``multiclass`` (three string
classes, one probability column each) and ``regressor``.

Targets: false incidents per model per 90 days at most 1 and a 95 % upper bound of at most 2,
at each window size (all processes pooled; each process is shown too); at least 95 % of the 1
and 2 sd steps detected at each window size. The median delays are printed beside the
reference figures from the demo (stuck 2 h, unit change 4 h, nulls 4 h, slow drift 16 h).

Runtime. Two worker processes; each task is one model at one window size: generate, register,
backtest its months, then run NannyML on the same files (the 1h tasks first). The counts
(``FULL_COUNTS``, ``--counts``) come from measured costs, see ``bench/README.md``. ``--quick``
runs one model per process at 4h windows with a subset of the faults. Progress goes to stderr;
the tables to stdout and ``bench/results/alerting_bench.json``.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

from _alerting_data import (
    CLASSES,
    FAULT_BY_KEY,
    FAULTS,
    PROCESS_BY_NAME,
    PROCESSES,
    SEED,
    Injection,
    Process,
)
from _common import (
    BENCH,
    RESULTS_DIR,
    machine_info,
    peer_venv,
    print_machine,
    print_targets,
    run_worker,
    venv_line,
    versions,
    write_results,
)

if TYPE_CHECKING:
    from collections.abc import Iterable, Sequence

    import polars as pl

WINDOWS: Final = ("1h", "4h", "1d")
WINDOW_SECONDS: Final = {"1h": 3600, "4h": 4 * 3600, "1d": 86_400}
REFERENCE_DAYS: Final = 21
MONTH_DAYS: Final = 30
EPOCH: Final = datetime(2024, 1, 1, tzinfo=UTC)
# The fault starts on day 10 of its month at 08:00 UTC; days 10-12 of the month are judged (the
# fault's own day from midnight, then 64 hours after the fault's start).
FAULT_OFFSET: Final = timedelta(days=10, hours=8)
SLICE_START: Final = timedelta(days=10)
SLICE_END: Final = timedelta(days=13)
LABEL_DELAY: Final = timedelta(days=2)
BUDGET: Final = 1.0  # false incidents per 90 days, mlwarden's default
PERIOD_DAYS: Final = 90.0
# Demo figures (median delays, hours) the measured delays are printed beside.
DEMO_DELAYS: Final = {"stuck": 2.0, "unit_change": 4.0, "nulls": 4.0, "ramp": 16.0}
STEP_TARGET: Final = 0.95
TOOLS: Final = ("mlwarden", "nannyml")
NANNYML_REQUIREMENTS: Final = BENCH / "requirements-nannyml.txt"
NANNYML_ENV: Final = {"NML_DISABLE_USAGE_LOGGING": "1", "NML_DISABLE_USER_ANALYTICS": "1"}
RESULTS_FILE: Final = RESULTS_DIR / "alerting_bench.json"
# One thread per worker: two workers share the two cores, and a window's work is many small
# steps that gain nothing from more threads.
THREAD_ENV: Final = {
    "POLARS_MAX_THREADS": "1",
    "OMP_NUM_THREADS": "1",
    "OPENBLAS_NUM_THREADS": "1",
    "MKL_NUM_THREADS": "1",
}

# Models per process and clean months per model, by window size. Chosen from measured costs
# (see bench/README.md): a month of 1h windows (720) costs about twenty times one of 1d (30).
FULL_COUNTS: Final = {"1h": (1, 2), "4h": (2, 2), "1d": (3, 5)}
QUICK_COUNTS: Final = {"4h": (1, 1)}
QUICK_FAULTS: Final = ("step_1", "stuck", "unit_change", "concept")


# ---------------------------------------------------------------------------------------------
# One task: one model at one window size


@dataclass(frozen=True)
class Task:
    """One model (a process instance) at one window size, with the months it is judged on."""

    process: str
    instance: int
    window: str
    clean_months: int
    faults: tuple[str, ...]
    tools: tuple[str, ...]
    nannyml_python: str | None = None


@dataclass
class Month:
    """A judged month (or slice of one) and what each tool alerted on it."""

    kind: str  # "clean" or a fault key
    start: datetime  # the month's first day
    judged_from: datetime
    judged_to: datetime
    fault_at: datetime | None = None
    column: str | None = None
    labelled: bool = False
    alerts: dict[str, list[tuple[str, str, list[list[str]]]]] = field(default_factory=dict)
    windows: dict[str, int] = field(default_factory=dict)
    seconds: dict[str, float] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "start": self.start.isoformat(),
            "judged_from": self.judged_from.isoformat(),
            "judged_to": self.judged_to.isoformat(),
            "fault_at": None if self.fault_at is None else self.fault_at.isoformat(),
            "column": self.column,
            "labelled": self.labelled,
            "alerts": self.alerts,
            "windows": self.windows,
            "seconds": self.seconds,
        }


def _between(frame: pl.DataFrame, start: datetime, end: datetime) -> pl.DataFrame:
    import polars as pl

    return frame.filter((pl.col("timestamp") >= start) & (pl.col("timestamp") < end))


def _unlabelled(frame: pl.DataFrame, target: str) -> pl.DataFrame:
    import polars as pl

    return frame.with_columns(pl.lit(None, dtype=frame.schema[target]).alias(target))


def _months(
    task: Task, process: Process, reference: pl.DataFrame
) -> list[tuple[Month, pl.DataFrame]]:
    """The task's clean months (whole, unlabelled) and fault months (days 10-12, unlabelled
    but for the concept drift), with their rows."""
    import polars as pl

    out = []
    first = EPOCH + timedelta(days=REFERENCE_DAYS)
    for k in range(task.clean_months):
        start = first + timedelta(days=MONTH_DAYS * k)
        end = start + timedelta(days=MONTH_DAYS)
        rows = _between(process.generate(task.instance, k + 1, start, MONTH_DAYS, None), start, end)
        out.append((Month("clean", start, start, end), _unlabelled(rows, process.target)))
    for j, key in enumerate(task.faults):
        fault = FAULT_BY_KEY[key]
        month = task.clean_months + 1 + j
        start = first + timedelta(days=MONTH_DAYS * (month - 1))
        column = process.column_for(fault.kind)
        mean = sd = 0.0
        if reference.schema[column].is_numeric():
            values = reference[column].cast(pl.Float64)
            mean, sd = float(values.mean()), float(values.std())  # type: ignore[arg-type]
        injection = Injection(fault, column, start + FAULT_OFFSET, mean, sd)
        frame = process.generate(task.instance, month, start, MONTH_DAYS, injection)
        judged_from, judged_to = start + SLICE_START, start + SLICE_END
        rows = _between(frame, judged_from, judged_to)
        labelled = fault.kind == "concept"
        if not labelled:
            rows = _unlabelled(rows, process.target)
        out.append(
            (
                Month(key, start, judged_from, judged_to, injection.at, column, labelled),
                rows,
            )
        )
    return out


def _register(task: Task, process: Process, reference: pl.DataFrame) -> tuple[Any, dict[str, Any]]:
    """Register the model on its reference at the task's window size: its stored reference and
    what registration said (seconds, the calibration's summary, held-out rate and notes)."""
    from mlwarden.registry import Registry
    from mlwarden.store.metadata import Store

    registry = Registry(Store("sqlite://"))
    started = time.perf_counter()
    version = registry.register(
        process.name,
        "1",
        reference,
        timestamp="timestamp",
        window=task.window,
        roles=process.roles,
        false_incidents=BUDGET,
    )
    seconds = time.perf_counter() - started
    alerting = version.meta.get("alerting") or {}
    summary = alerting.get("summary") or {}
    facts = {
        "seconds": seconds,
        "held_out": alerting.get("held_out"),
        "notes": alerting.get("notes", []),
        "metrics": summary.get("metrics"),
        "cusum_series": (summary.get("sequential") or {}).get("series"),
        "quality_checks": summary.get("quality_checks"),
        "adjustments": len(alerting.get("adjustments") or []),
        "evaluator_notes": list((version.meta.get("evaluators") or {}).get("notes") or []),
        "estimator": (version.meta.get("evaluators") or {}).get("estimator"),
    }
    return registry.reference(process.name, "1"), facts


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat()


def run_task(task: Task) -> dict[str, Any]:
    """Generate, register, judge every month with mlwarden, then with NannyML (in its venv, on
    the same rows written to Parquet); what each alerted, per window with alerts."""
    began = time.perf_counter()
    process = PROCESS_BY_NAME[task.process]
    label = f"{task.process}#{task.instance} {task.window}"
    reference = _between(
        process.generate(task.instance, 0, EPOCH, REFERENCE_DAYS, None),
        EPOCH,
        EPOCH + timedelta(days=REFERENCE_DAYS),
    )
    months = _months(task, process, reference)
    out: dict[str, Any] = {
        "process": task.process,
        "instance": task.instance,
        "window": task.window,
        "reference_rows": reference.height,
    }
    if "mlwarden" in task.tools:
        from mlwarden.service.backtest import backtest

        _say(f"[{label}] registering ({reference.height:,} rows)")
        stored, out["registration"] = _register(task, process, reference)
        _say(f"[{label}] registered in {out['registration']['seconds']:.0f} s")
        for month, rows in months:
            started = time.perf_counter()
            result = backtest(stored, rows)
            month.seconds["mlwarden"] = time.perf_counter() - started
            month.windows["mlwarden"] = len(result.windows)
            month.alerts["mlwarden"] = [
                (_iso(w.start), _iso(w.end), sorted([list(k) for k in _keys(w.alerts)]))
                for w in result.windows
                if w.alerts
            ]
        seconds = sum(m.seconds["mlwarden"] for m, _ in months)
        _say(f"[{label}] {len(months)} months backtested in {seconds:.0f} s")
    if "nannyml" in task.tools and task.nannyml_python is not None:
        started = time.perf_counter()
        with tempfile.TemporaryDirectory(prefix="alerting_bench_") as folder:
            directory = Path(folder)
            _for_pandas(reference).write_parquet(directory / "reference.parquet")
            spec_months = []
            for i, (month, rows) in enumerate(months):
                name = f"month_{i}.parquet"
                _for_pandas(rows).write_parquet(directory / name)
                spec_months.append({"file": name, "labelled": month.labelled})
            spec = {
                "kind": process.kind,
                "window": task.window,
                "target": process.target,
                "outputs": list(process.outputs),
                "drift_columns": [
                    c
                    for c in reference.columns
                    if c not in ("timestamp", process.target, *process.skip)
                ],
                "features": [
                    c
                    for c in reference.columns
                    if c not in ("timestamp", process.target, *process.skip, *process.outputs)
                ],
                "classes": list(CLASSES),
                "months": spec_months,
            }
            (directory / "spec.json").write_text(json.dumps(spec))
            command = [task.nannyml_python, __file__, "--worker", "nannyml", "--task-dir", folder]
            found = run_worker(command, env={**NANNYML_ENV, **THREAD_ENV}, timeout=3600)
        for (month, _), chunks in zip(months, found["months"], strict=True):
            month.alerts["nannyml"] = [(s, e, k) for s, e, k in chunks["alerts"]]
            month.windows["nannyml"] = chunks["chunks"]
            month.seconds["nannyml"] = chunks["seconds"]
        out["nannyml"] = {
            "fit_seconds": found["fit_seconds"],
            "seconds": time.perf_counter() - started,
            "versions": found["versions"],
            "python": found["python"],
        }
        _say(f"[{label}] NannyML done in {out['nannyml']['seconds']:.0f} s")
    out["months"] = [m.to_dict() for m, _ in months]
    out["seconds"] = time.perf_counter() - began
    return out


def _keys(metrics: Iterable[Any]) -> set[tuple[str, str, str]]:
    return {(m.name, m.column, m.segment) for m in metrics}


def _for_pandas(frame: pl.DataFrame) -> pl.DataFrame:
    """Enums as plain strings, which pandas reads without surprises."""
    import polars as pl

    return frame.with_columns(pl.col(pl.Enum, pl.Categorical).cast(pl.String))


def source_state() -> dict[str, Any]:
    """The commit of the checkout and whether ``src/`` differs from it: mlwarden's version
    number alone does not say which calibration was measured."""
    import subprocess

    from _common import REPO

    def git(*args: str) -> str:
        done = subprocess.run(["git", *args], cwd=REPO, capture_output=True, text=True, check=False)
        return done.stdout.strip()

    commit = git("rev-parse", "--short", "HEAD")
    return {"commit": commit or None, "src_modified": bool(git("status", "--porcelain", "src"))}


def _say(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


# ---------------------------------------------------------------------------------------------
# Inside the NannyML venv


def _worker_nannyml(folder: Path) -> None:
    """Runs inside .bench-venv-nannyml: NannyML's defaults fitted on the task's reference and
    run on each of its months, chunked by the task's windows; prints per month the chunks'
    count and, per chunk with alerts, its start, end and alert keys."""
    os.environ.update(NANNYML_ENV)  # before the import: no usage data leaves the machine
    import logging
    import warnings

    warnings.simplefilter("ignore")  # one warning per chunk with one class, etc.
    logging.disable(logging.WARNING)
    import nannyml as nml
    import pandas as pd
    from nannyml.chunk import Chunk, Chunker

    spec = json.loads((folder / "spec.json").read_text())
    window = pd.Timedelta(WINDOW_SECONDS[spec["window"]], unit="s")

    class WindowChunker(Chunker):  # type: ignore[misc]
        """Chunks that are the benchmark's windows: timestamps floored to the window, as
        polars' ``dt.truncate`` does in ``backtest``."""

        def _split(self, data: pd.DataFrame) -> list[Chunk]:
            keys = data[self.timestamp_column_name].dt.floor(window)
            return [
                Chunk(key=str(k), data=part, start_datetime=k, end_datetime=k + window)
                for k, part in data.groupby(keys, sort=True)
            ]

    def read(name: str) -> pd.DataFrame:
        frame = pd.read_parquet(folder / name)
        frame["timestamp"] = frame["timestamp"].dt.tz_convert("UTC").dt.tz_localize(None)
        return frame

    target, kind, outputs = spec["target"], spec["kind"], spec["outputs"]
    chunker = WindowChunker(timestamp_column_name="timestamp")
    common = {"timestamp_column_name": "timestamp", "chunker": chunker}
    if kind == "regression":
        metrics = ["mae", "rmse"]
        outputs_args: dict[str, Any] = {"y_pred": "prediction", "y_true": target}
        problem = "regression"
    else:
        metrics = ["roc_auc", "f1", "accuracy"]
        proba: Any = outputs[0]
        if kind == "multiclass":
            proba = {c: f"proba_{c}" for c in spec["classes"]}
        problem = f"classification_{kind}"
        outputs_args = {"y_pred_proba": proba, "y_pred": "prediction", "y_true": target}

    started = time.perf_counter()
    reference = read("reference.parquet")
    drift = nml.UnivariateDriftCalculator(column_names=spec["drift_columns"], **common)
    drift.fit(reference)
    if kind == "regression":
        estimator: Any = nml.DLE(
            feature_column_names=spec["features"], metrics=metrics, **outputs_args, **common
        )
    else:
        estimator = nml.CBPE(metrics=metrics, problem_type=problem, **outputs_args, **common)
    estimator.fit(reference)
    realized = None
    if any(m["labelled"] for m in spec["months"]):
        realized = nml.PerformanceCalculator(
            metrics=metrics, problem_type=problem, **outputs_args, **common
        )
        realized.fit(reference)
    fit_seconds = time.perf_counter() - started

    months = []
    for month in spec["months"]:
        began = time.perf_counter()
        rows = read(month["file"])
        unlabelled = rows.drop(columns=[target])
        alerts: dict[pd.Timestamp, set[tuple[str, str, str]]] = {}
        starts: set[pd.Timestamp] = set()
        frame = drift.calculate(unlabelled).filter(period="analysis").to_df()
        for _, row in frame.iterrows():  # one per chunk
            start = row[("chunk", "chunk", "start_date")]
            starts.add(start)
            for column in spec["drift_columns"]:
                if row.get((column, "jensen_shannon", "alert")) is True or bool(
                    row.get((column, "jensen_shannon", "alert"), False)
                ):
                    alerts.setdefault(start, set()).add(("drift.jensen_shannon", column, ""))
        if month["labelled"] and realized is not None:
            result = realized.calculate(rows)
        else:
            result = estimator.estimate(unlabelled)
        frame = result.filter(period="analysis").to_df()
        for _, row in frame.iterrows():  # one per chunk
            start = row[("chunk", "start_date")]
            starts.add(start)
            for metric in metrics:
                if bool(row.get((metric, "alert"), False)):
                    alerts.setdefault(start, set()).add((f"performance.{metric}", "", ""))
        months.append(
            {
                "chunks": len(starts),
                "seconds": time.perf_counter() - began,
                "alerts": [
                    (
                        start.tz_localize("UTC").isoformat(),
                        (start + window).tz_localize("UTC").isoformat(),
                        sorted([list(k) for k in keys]),
                    )
                    for start, keys in sorted(alerts.items())
                ],
            }
        )
    print(
        json.dumps(
            {
                "fit_seconds": fit_seconds,
                "months": months,
                "versions": versions(["nannyml", "pandas", "numpy", "scikit-learn", "lightgbm"]),
                "python": sys.version.split()[0],
            }
        )
    )


# ---------------------------------------------------------------------------------------------
# Scoring: incidents, detections, rates


def _parse(moment: str) -> datetime:
    return datetime.fromisoformat(moment).astimezone(UTC)


def _incidents(alerts: Sequence[Sequence[Any]]) -> list[Any]:
    """Incidents made by the windows with alerts (in time order), by the store's rule."""
    from mlwarden.alerting.incidents import group_incidents

    windows = [(_parse(s), _parse(e), {tuple(k) for k in keys}) for s, e, keys in alerts]
    return group_incidents(sorted(windows, key=lambda w: w[0]))


def compact(task: dict[str, Any]) -> dict[str, Any]:
    """A task's results as kept in the results file: per month its incidents (start, end,
    windows, what opened them) in place of every window with alerts, which a 1h month has
    hundreds of."""
    months = []
    for month in task["months"]:
        kept = {k: v for k, v in month.items() if k != "alerts"}
        kept["incidents"] = {
            tool: [
                [_iso(i.start), _iso(i.end), i.windows, sorted([list(k) for k in i.opened_by])]
                for i in _incidents(alerts)
            ]
            for tool, alerts in month["alerts"].items()
        }
        months.append(kept)
    return {**task, "months": months}


def _opener(key: Sequence[str]) -> str:
    """What opened an incident, in a few words: the metric, and the check for quality."""
    name, column, segment = key
    where = f" [{segment}]" if segment else ""
    if name == "quality" or not column:
        return f"{name} {column}{where}".strip()
    return f"{name}({column}){where}"


def _related(key: Sequence[str], kind: str, column: str, process: Process) -> bool:
    """Whether an alert points at the fault: the faulted column (a drift metric, a quality
    check reading it), the model's outputs, multivariate drift or performance; only
    performance for concept drift. CUSUMs count as their metric."""
    name, subject = key[0].removeprefix("cusum."), key[1]
    if name.startswith("performance."):
        return True
    if kind == "concept":
        return False
    if name == "drift.pca":
        return True
    words = set(subject.replace("(", " ").replace(")", " ").replace(",", " ").split())
    return subject == column or column in words or subject in process.outputs


def _detection(
    alerts: Sequence[Sequence[Any]],
    at: datetime,
    until: datetime,
    kind: str,
    column: str,
    process: Process,
) -> float | None:
    """Hours from the fault's start to the end of the first window (holding the start or later,
    before ``until``) with an alert that points at the fault; None when there is none. Labels
    arrive two days late: a concept drift is seen two days after its start at the soonest."""
    for start, end, keys in sorted(alerts, key=lambda a: a[0]):
        begins, ends = _parse(start), _parse(end)
        if ends <= at or begins >= until:
            continue
        if any(_related(k, kind, column, process) for k in keys):
            if kind == "concept":
                ends = max(ends, at + LABEL_DELAY)
            return (ends - at).total_seconds() / 3600.0
    return None


def _poisson_upper(count: int, exposure_days: float) -> float:
    """The 95 % upper confidence bound of a rate per ``PERIOD_DAYS`` (exact Poisson)."""
    from scipy import stats

    if exposure_days <= 0:
        return math.inf
    return float(stats.chi2.ppf(0.95, 2 * (count + 1))) / 2.0 / exposure_days * PERIOD_DAYS


def _median(values: Sequence[float]) -> float | None:
    ordered = sorted(values)
    if not ordered:
        return None
    mid = len(ordered) // 2
    return ordered[mid] if len(ordered) % 2 else (ordered[mid - 1] + ordered[mid]) / 2.0


def false_incidents(tasks: Sequence[dict[str, Any]], tools: Sequence[str]) -> list[dict[str, Any]]:
    """Per process and window (and all processes pooled per window): the clean months'
    model-days, incidents, the rate per 90 days and its 95 % upper bound, per tool."""
    rows: list[dict[str, Any]] = []
    windows = [w for w in WINDOWS if any(t["window"] == w for t in tasks)]
    for window in windows:
        group = [t for t in tasks if t["window"] == window]
        names = [p.name for p in PROCESSES if any(t["process"] == p.name for t in group)]
        for name in [*names, "all"]:
            chosen = [t for t in group if name in ("all", t["process"])]
            clean = [m for t in chosen for m in t["months"] if m["kind"] == "clean"]
            days = sum(
                (_parse(m["judged_to"]) - _parse(m["judged_from"])).total_seconds() / 86_400
                for m in clean
            )
            row: dict[str, Any] = {
                "process": name,
                "window": window,
                "models": len(chosen),
                "months": len(clean),
                "model_days": days,
            }
            for tool in tools:
                if not all(tool in m["alerts"] for m in clean):
                    continue
                found = [i for m in clean for i in _incidents(m["alerts"][tool])]
                count = len(found)
                openers = Counter(_opener(k) for i in found for k in i.opened_by)
                row[tool] = {
                    "incidents": count,
                    "opened_by": dict(openers.most_common()),
                    "per_90_days": count / days * PERIOD_DAYS if days else None,
                    "upper_95": _poisson_upper(count, days),
                }
            held = [t["registration"]["held_out"] for t in chosen if t.get("registration")]
            held = [h for h in held if h and h.get("windows")]
            if held:  # mlwarden's own measurement at registration, pooled
                incidents = sum(h["incidents"] for h in held)
                held_days = sum(h["windows"] * WINDOW_SECONDS[window] / 86_400 for h in held)
                row["held_out"] = {
                    "incidents": incidents,
                    "days": held_days,
                    "per_90_days": incidents / held_days * PERIOD_DAYS,
                }
            rows.append(row)
    return rows


def detections(tasks: Sequence[dict[str, Any]], tools: Sequence[str]) -> list[dict[str, Any]]:
    """Per fault and window: trials, detection rate and median delay per tool, and the chance
    rate (the same rule on the clean months at the fault's hour)."""
    rows = []
    windows = [w for w in WINDOWS if any(t["window"] == w for t in tasks)]
    for window in windows:
        group = [t for t in tasks if t["window"] == window]
        for fault in FAULTS:
            months = [
                (PROCESS_BY_NAME[t["process"]], m)
                for t in group
                for m in t["months"]
                if m["kind"] == fault.key
            ]
            if not months:
                continue
            row: dict[str, Any] = {"fault": fault.key, "label": fault.label, "window": window}
            row["trials"] = len(months)
            for tool in tools:
                delays = []
                per_process: dict[str, list[float | None]] = {}
                for process, m in months:
                    if tool not in m["alerts"]:
                        continue
                    at = _parse(m["fault_at"])
                    until = _parse(m["judged_to"])
                    found = _detection(
                        m["alerts"][tool], at, until, fault.kind, m["column"], process
                    )
                    per_process.setdefault(process.name, []).append(found)
                    delays.append(found)
                if not delays:
                    continue
                hits = [d for d in delays if d is not None]
                chance_trials = chance_hits = 0
                for t in group:
                    process = PROCESS_BY_NAME[t["process"]]
                    if fault.kind == "category" and process.category is None:
                        continue
                    column = process.column_for(fault.kind)
                    for m in t["months"]:
                        if m["kind"] != "clean" or tool not in m["alerts"]:
                            continue
                        start = _parse(m["start"])
                        chance_trials += 1
                        found = _detection(
                            m["alerts"][tool],
                            start + FAULT_OFFSET,
                            start + SLICE_END,
                            fault.kind,
                            column,
                            process,
                        )
                        chance_hits += found is not None
                row[tool] = {
                    "detected": len(hits),
                    "trials": len(delays),
                    "rate": len(hits) / len(delays),
                    "median_delay_hours": _median(hits),
                    "delays_hours": per_process,
                    "chance": chance_hits / chance_trials if chance_trials else None,
                    "chance_trials": chance_trials,
                }
            rows.append(row)
    return rows


# ---------------------------------------------------------------------------------------------
# The driver


def plan(
    counts: dict[str, tuple[int, int]],
    faults_by_window: dict[str, tuple[str, ...]],
    processes: Sequence[str],
    tools: tuple[str, ...],
    nannyml_python: str | None,
) -> list[Task]:
    """The tasks, the costliest first (1h windows), so the two workers finish together."""
    tasks = []
    for window in WINDOWS:
        if window not in counts:
            continue
        models, months = counts[window]
        for name in processes:
            process = PROCESS_BY_NAME[name]
            fitting = {f.key for f in process.faults()}
            faults = tuple(k for k in faults_by_window[window] if k in fitting)
            for instance in range(models):
                tasks.append(Task(name, instance, window, months, faults, tools, nannyml_python))
    return tasks


def _parse_counts(text: str) -> dict[str, tuple[int, int]]:
    """``"1h=1x1,4h=1x2,1d=2x3"``: models per process x clean months per model, by window."""
    counts = {}
    for part in text.split(","):
        window, _, spec = part.strip().partition("=")
        models, _, months = spec.partition("x")
        if window not in WINDOWS or not models.isdigit() or not months.isdigit():
            raise ValueError(f"bad --counts entry {part!r}; expected e.g. 4h=1x2")
        counts[window] = (int(models), int(months))
    return counts


def _cell(value: float | None, digits: int = 1) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def print_tables(
    false_rows: list[dict[str, Any]], detect_rows: list[dict[str, Any]], tools: Sequence[str]
) -> None:
    print(f"\nFalse incidents per model per 90 days on clean months (budget {BUDGET:g}):")
    header = f"{'process':<14} {'window':<6} {'models':>6} {'months':>6} {'model-days':>10}"
    for tool in tools:
        header += f" | {tool + ' incidents':>18} {'/90 d':>6} {'95% UB':>7}"
    header += f" | {'held-out /90 d':>14}"
    print(header)
    for row in false_rows:
        line = (
            f"{row['process']:<14} {row['window']:<6} {row['models']:>6} {row['months']:>6} "
            f"{row['model_days']:>10.0f}"
        )
        for tool in tools:
            cell = row.get(tool)
            if cell is None:
                line += f" | {'-':>18} {'-':>6} {'-':>7}"
            else:
                line += (
                    f" | {cell['incidents']:>18} {_cell(cell['per_90_days']):>6} "
                    f"{_cell(cell['upper_95']):>7}"
                )
        held = row.get("held_out")
        line += f" | {_cell(held['per_90_days'] if held else None):>14}"
        print(line)
    print("\nWhat opened the false incidents (metric or quality check: incidents it opened):")
    for row in false_rows:
        if row["process"] != "all":
            continue
        for tool in tools:
            openers = (row.get(tool) or {}).get("opened_by") or {}
            shown = ", ".join(f"{k}: {v}" for k, v in openers.items()) or "none"
            print(f"  {row['window']:<3} {tool:<9} {shown}")
    print("\nDetection of one injected fault per month (delay: fault start to the end of the")
    print("first window with an alert that points at the fault; chance: the same rule on clean")
    print("months at the same hour):")
    header = f"{'fault':<22} {'window':<6} {'trials':>6}"
    for tool in tools:
        header += f" | {tool + ' found':>14} {'rate':>5} {'median h':>8} {'chance':>6}"
    print(header)
    for row in detect_rows:
        line = f"{row['label']:<22} {row['window']:<6} {row['trials']:>6}"
        for tool in tools:
            cell = row.get(tool)
            if cell is None:
                line += f" | {'-':>14} {'-':>5} {'-':>8} {'-':>6}"
                continue
            chance = "-" if cell["chance"] is None else f"{cell['chance']:.0%}"
            line += (
                f" | {cell['detected']:>10}/{cell['trials']:<3} {cell['rate']:>5.0%} "
                f"{_cell(cell['median_delay_hours']):>8} {chance:>6}"
            )
        print(line)


def print_registration(tasks: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per process and window: seconds to register, bounded metrics, and the notes of the
    metrics that cannot alarm; returned as rows too."""
    rows = []
    for window in WINDOWS:
        for process in PROCESSES:
            chosen = [
                t
                for t in tasks
                if t["window"] == window and t["process"] == process.name and t.get("registration")
            ]
            if not chosen:
                continue
            facts = [t["registration"] for t in chosen]
            notes = sorted({n for f in facts for n in f["notes"]})
            rows.append(
                {
                    "process": process.name,
                    "window": window,
                    "seconds": sum(f["seconds"] for f in facts) / len(facts),
                    "metrics": facts[0]["metrics"],
                    "cusum_series": facts[0]["cusum_series"],
                    "quality_checks": facts[0]["quality_checks"],
                    "estimator": facts[0]["estimator"],
                    "evaluator_notes": sorted({n for f in facts for n in f["evaluator_notes"]}),
                    "notes": notes,
                    "backtest_seconds_per_window": sum(
                        m["seconds"]["mlwarden"] for t in chosen for m in t["months"]
                    )
                    / max(1, sum(m["windows"]["mlwarden"] for t in chosen for m in t["months"])),
                }
            )
    if not rows:
        return rows
    print("\nRegistration (mean over the models) and what its notes say cannot alarm:")
    print(
        f"{'process':<14} {'window':<6} {'register s':>10} {'s/window':>8} {'metrics':>7} "
        f"{'checks':>6} {'estimator':>9}  cannot alarm"
    )
    for row in rows:
        silent = [n.split(" cannot be alarmed")[0] for n in row["notes"] if "cannot be" in n]
        others = [n for n in row["notes"] if "cannot be" not in n]
        print(
            f"{row['process']:<14} {row['window']:<6} {row['seconds']:>10.0f} "
            f"{row['backtest_seconds_per_window']:>8.2f} {row['metrics'] or 0:>7} "
            f"{row['quality_checks'] or 0:>6} {row['estimator'] or '-':>9}  "
            + ("; ".join(silent) if silent else "-")
        )
        for note in [*others, *row["evaluator_notes"]]:
            print(f"{'':<30}note: {note}")
    return rows


def targets(
    false_rows: list[dict[str, Any]], detect_rows: list[dict[str, Any]], tools: Sequence[str]
) -> list[dict[str, Any]]:
    """The targets, per window size, for mlwarden (NannyML's figures alongside)."""
    checks: list[dict[str, Any]] = []
    if "mlwarden" not in tools:
        return checks
    for row in false_rows:
        if row["process"] != "all" or "mlwarden" not in row:
            continue
        ours, days = row["mlwarden"], row["model_days"]
        peer = row.get("nannyml")
        where = f"at {row['window']} ({days:.0f} model-days, all processes)"
        checks.append(
            {
                "target": f"false incidents per model per 90 days <= 1 {where}: "
                f"{ours['per_90_days']:.2f}"
                + (f" (NannyML {peer['per_90_days']:.2f})" if peer else ""),
                "met": ours["per_90_days"] <= 1.0,
                "window": row["window"],
                "value": ours["per_90_days"],
            }
        )
        checks.append(
            {
                "target": f"its 95 % upper bound <= 2 {where}: {ours['upper_95']:.2f}"
                + (f" (NannyML {peer['upper_95']:.2f})" if peer else ""),
                "met": ours["upper_95"] <= 2.0,
                "window": row["window"],
                "value": ours["upper_95"],
            }
        )
    for window in WINDOWS:
        steps = [
            r for r in detect_rows if r["window"] == window and r["fault"] in ("step_1", "step_2")
        ]
        cells = [r["mlwarden"] for r in steps if "mlwarden" in r]
        if not cells:
            continue
        found, trials = sum(c["detected"] for c in cells), sum(c["trials"] for c in cells)
        peer = [r["nannyml"] for r in steps if "nannyml" in r]
        peer_text = ""
        if peer:
            peer_text = (
                f" (NannyML {sum(c['detected'] for c in peer)}/{sum(c['trials'] for c in peer)})"
            )
        checks.append(
            {
                "target": f">= {STEP_TARGET:.0%} of the 1 and 2 sd steps detected at {window}: "
                f"{found}/{trials}{peer_text}",
                "met": found >= STEP_TARGET * trials,
                "window": window,
                "value": found / trials,
            }
        )
    return checks


def print_delays(detect_rows: list[dict[str, Any]], tools: Sequence[str]) -> None:
    """The median delays beside the demo's figures."""
    print("\nMedian delays beside the demo's (hours):")
    for key, demo in DEMO_DELAYS.items():
        parts = []
        for row in detect_rows:
            if row["fault"] != key:
                continue
            cells = ", ".join(
                f"{tool} {_cell(row[tool]['median_delay_hours'])}" for tool in tools if tool in row
            )
            parts.append(f"{row['window']}: {cells}")
        label = FAULT_BY_KEY[key].label
        print(f"  {label:<20} demo {demo:g} h; " + ("; ".join(parts) or "not run"))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description="False incidents and detection delays of mlwarden's alert budget, with "
        "NannyML's defaults alongside, on simulated model-months.",
        epilog="Targets: <= 1 false incident per model per 90 days (95 % upper bound <= 2); "
        ">= 95 % of the 1 and 2 sd steps detected.",
    )
    parser.add_argument("--quick", action="store_true", help="one model per process, 4h, 4 faults")
    parser.add_argument(
        "--counts",
        help="models per process x clean months per model, by window "
        "(default: " + ",".join(f"{w}={m}x{c}" for w, (m, c) in FULL_COUNTS.items()) + ")",
    )
    parser.add_argument("--windows", help=f"comma-separated subset of {','.join(WINDOWS)}")
    parser.add_argument(
        "--processes", default=",".join(p.name for p in PROCESSES), help="subset of %(default)s"
    )
    parser.add_argument("--tools", default=",".join(TOOLS), help="subset of %(default)s")
    parser.add_argument("--workers", type=int, default=2, help="worker processes (default 2)")
    parser.add_argument("--output", type=Path, default=RESULTS_FILE, help="JSON results file")
    parser.add_argument("--worker", choices=("nannyml",), help=argparse.SUPPRESS)
    parser.add_argument("--task-dir", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)

    if args.worker == "nannyml":
        _worker_nannyml(args.task_dir)
        return 0

    began = time.perf_counter()
    tools = tuple(t.strip() for t in args.tools.split(",") if t.strip())
    processes = [p.strip() for p in args.processes.split(",") if p.strip()]
    if unknown := set(tools) - set(TOOLS):
        parser.error(f"unknown tool(s) {', '.join(sorted(unknown))}; choose from {TOOLS}")
    if unknown := set(processes) - set(PROCESS_BY_NAME):
        parser.error(f"unknown process(es) {', '.join(sorted(unknown))}")
    counts = dict(QUICK_COUNTS if args.quick else FULL_COUNTS)
    if args.counts:
        try:
            counts = _parse_counts(args.counts)
        except ValueError as exc:
            parser.error(str(exc))
    if args.windows:
        chosen = [w.strip() for w in args.windows.split(",") if w.strip()]
        if unknown := set(chosen) - set(WINDOWS):
            parser.error(f"unknown window(s) {', '.join(sorted(unknown))}; choose from {WINDOWS}")
        counts = {w: counts.get(w, FULL_COUNTS[w]) for w in chosen}
    every = tuple(f.key for f in FAULTS)
    faults_by_window = dict.fromkeys(WINDOWS, QUICK_FAULTS if args.quick else every)

    os.environ.update(THREAD_ENV)  # inherited by the workers, before they import polars
    nannyml_python = None
    if "nannyml" in tools:
        nannyml_python = str(peer_venv("nannyml", NANNYML_REQUIREMENTS))
    source = source_state()  # at the start: the workers import mlwarden as it is now
    tasks = plan(counts, faults_by_window, processes, tools, nannyml_python)
    _say(
        f"[plan] {len(tasks)} tasks on {args.workers} workers: "
        + ", ".join(f"{w}: {m} model(s) x {c} clean month(s)" for w, (m, c) in counts.items())
    )
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor, as_completed

    results = []
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(args.workers, mp_context=context) as pool:
        futures = {pool.submit(run_task, task): task for task in tasks}
        for done, future in enumerate(as_completed(futures), start=1):
            task = futures[future]
            results.append(future.result())
            _say(
                f"[done {done}/{len(tasks)}] {task.process}#{task.instance} {task.window} "
                f"in {results[-1]['seconds']:.0f} s ({time.perf_counter() - began:.0f} s so far)"
            )
    results.sort(key=lambda r: (WINDOWS.index(r["window"]), r["process"], r["instance"]))

    false_rows = false_incidents(results, tools)
    detect_rows = detections(results, tools)
    machine = machine_info()
    ours = versions(["mlwarden", "polars", "numpy", "scipy", "scikit-learn"])
    print()
    print_machine(machine, ours)
    print(
        f"mlwarden source: commit {source['commit']}"
        + (", src/ modified since" if source["src_modified"] else "")
    )
    peer = next((r["nannyml"] for r in results if "nannyml" in r), None)
    if peer is not None:
        print(venv_line("nannyml", peer["python"], peer["versions"]))
    runtime = time.perf_counter() - began
    print(
        f"run: {len(results)} models x windows, {args.workers} workers, {runtime / 60:.1f} min; "
        + "; ".join(
            f"{w}: {m} model(s) per process x {c} clean month(s) of {MONTH_DAYS} d, "
            f"{len(faults_by_window[w])} fault month(s) per model"
            for w, (m, c) in counts.items()
        )
    )
    print(
        f"data: 5 processes, reference {REFERENCE_DAYS} d, faults on day 10 at 08:00 UTC, "
        f"days 10-12 judged (64 h after the fault); labels only in the concept-drift month, "
        f"{LABEL_DELAY.days} days late"
    )
    print_tables(false_rows, detect_rows, tools)
    print_delays(detect_rows, tools)
    registration = print_registration(results)
    print()
    checks = targets(false_rows, detect_rows, tools)
    print_targets(checks)
    write_results(
        args.output,
        "alerting",
        machine,
        ours,
        settings={
            "quick": args.quick,
            "counts": {
                w: {"models_per_process": m, "clean_months": c} for w, (m, c) in counts.items()
            },
            "faults": {w: list(faults_by_window[w]) for w in counts},
            "processes": processes,
            "tools": list(tools),
            "workers": args.workers,
            "seed": SEED,
            "reference_days": REFERENCE_DAYS,
            "month_days": MONTH_DAYS,
            "fault_at": "day 10, 08:00 UTC",
            "judged": "fault months: days 10-12; clean months: every day",
            "budget_false_incidents_per_90_days": BUDGET,
        },
        source=source,
        runtime_seconds=runtime,
        nannyml=peer,
        false_incidents=false_rows,
        detection=detect_rows,
        registration=registration,
        targets=checks,
        tasks=[compact(r) for r in results],
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
