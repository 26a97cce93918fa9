"""The main job on built-in data, what ``make demo`` runs: the whole monitoring loop.

An extrusion plant runs a defect model: a scikit-learn gradient-boosting classifier trained on
two weeks of the line's history predicts, for every reading, the chance that the product is
defective. The demo registers that model (reference profile, quality suite, drift reference,
performance estimator, per-line references), starts the mlwarden server on SQLite, and streams
30 simulated days of production through the :class:`~mlwarden.monitor.Monitor` client into it,
as a plant's serving code would. Labels (the lab's verdict on each product) arrive two days
late. Every four simulated hours the closed windows are evaluated, as the server's scheduler
does in real time.

Four faults are injected, each a classic of plant data:

* the pressure sensor sticks for five hours (a frozen transmitter);
* the temperature arrives in °F for a day (a PLC firmware update changed the unit);
* an upstream release nulls the humidity column for a day and a half (a pipeline bug);
* the line's vibration drifts up over the last ten days (bearing wear), and defects with it.

The service explains a quarter of the predictions (attributions per sensor, stored with them),
and operators review a dozen predictions of every four hours on their dashboard pages, with the
explanation and the row's failed checks. An explanation that leans on a sensor whose reading
failed a check looks wrong to them: they mark it implausible and override three in four of
those predictions (reason ``sensor_fault``), against one in twenty otherwise. During a sensor
fault the override-rate alert fires, and the diagnosis names the sensor.

The demo prints each fault with when it started, when mlwarden opened an incident for it, and
which metrics fired; incidents that no fault explains are counted as false alarms. Then it keeps
serving the dashboard until Ctrl-C (``--no-serve`` to stop after the summary), and ``--json``
writes the faults and incidents for a machine to check.
"""

from __future__ import annotations

import contextlib
import json
import shutil
import socket
import threading
import time
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

import numpy as np
import polars as pl
from rich.console import Console
from rich.panel import Panel
from rich.table import Table

from mlwarden.datasets import Drift, production_line
from mlwarden.lineage import run as lineage_run

if TYPE_CHECKING:
    import uvicorn
    from sklearn.ensemble import HistGradientBoostingClassifier

    from mlwarden.store.metadata import Store

MODEL: Final = "extrusion-defects"
WINDOW: Final = "4h"
READING_SECONDS: Final = 30
ROWS_PER_DAY: Final = 86_400 // READING_SECONDS
HISTORY_DAYS: Final = 24
TRAIN_DAYS: Final = 10
LABEL_DELAY: Final = timedelta(days=2)
# The share of predictions the service explains, the predictions operators review per four
# hours, and the faults operators can see on a sensor.
EXPLAIN_SAMPLE: Final = 0.25
REVIEWS: Final = 12
SENSOR_FAULTS: Final = ("stuck_sensor", "unit_change", "null_column")
START: Final = datetime(2024, 3, 1, tzinfo=UTC)
FEATURES: Final = (
    "line",
    "recipe",
    "temperature_c",
    "pressure_bar",
    "vibration_mm_s",
    "line_speed_m_min",
    "humidity_pct",
)
ROLES: Final = {
    "defect": "target",
    "defect_score": "score",
    "prediction": "prediction",
    "batch_id": "feature",
}
DEFAULT_PORT: Final = 8765
# The versions of the plant's pipeline steps; featurize 1.5.0 carries the humidity bug.
EXTRACT_CODE: Final = "historian-export 2.3.1"
FEATURIZE_CODE: Final = "featurize 1.4.0"
FEATURIZE_BUGGY: Final = "featurize 1.5.0"
FEATURIZE_FIXED: Final = "featurize 1.5.1"
SCORE_CODE: Final = "scoring-service 0.9.2"
TRAIN_CODE: Final = "train-defects 3.0.0"


@dataclass(frozen=True)
class InjectedFault:
    """A fault of the scenario: what, on which column, from when to when (exclusive)."""

    kind: str
    column: str
    start: datetime
    end: datetime
    description: str


@dataclass
class Detection:
    """The first incident that names a fault's column while the fault lasts."""

    fault: InjectedFault
    incident: int | None = None
    window_start: datetime | None = None
    detected_at: datetime | None = None
    metrics: list[str] = field(default_factory=list)
    cause_rank: int | None = None
    top_cause: str = ""

    @property
    def delay(self) -> timedelta | None:
        return None if self.detected_at is None else self.detected_at - self.fault.start


@dataclass
class DemoResult:
    """What the demo did and found."""

    out: Path
    url: str
    faults: list[InjectedFault]
    detections: list[Detection]
    incidents: list[dict[str, Any]]
    false_alarms: list[int]
    seconds: float
    actions: list[dict[str, Any]] = field(default_factory=list)
    operators: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        def when(value: datetime | None) -> str | None:
            return None if value is None else value.isoformat()

        return {
            "model": MODEL,
            "window": WINDOW,
            "seconds": round(self.seconds, 1),
            "faults": [
                {**asdict(f), "start": when(f.start), "end": when(f.end)} for f in self.faults
            ],
            "detections": [
                {
                    "fault": d.fault.kind,
                    "column": d.fault.column,
                    "injected_at": when(d.fault.start),
                    "incident": d.incident,
                    "window_start": when(d.window_start),
                    "detected_at": when(d.detected_at),
                    "delay_hours": None
                    if d.delay is None
                    else round(d.delay.total_seconds() / 3600, 2),
                    "metrics": d.metrics,
                    "cause_rank": d.cause_rank,
                    "top_cause": d.top_cause,
                }
                for d in self.detections
            ],
            "incidents": [
                {
                    **incident,
                    "started_at": when(incident["started_at"]),
                    "ended_at": when(incident.get("ended_at")),
                    "detected_at": when(incident.get("detected_at")),
                }
                for incident in self.incidents
            ],
            "false_alarms": self.false_alarms,
            "actions": self.actions,
            "operators": self.operators,
        }


def scenario_faults(days: int) -> list[InjectedFault]:
    """The faults of a run of ``days`` days (those that start within it)."""
    day = timedelta(days=1)
    faults = [
        InjectedFault(
            "stuck_sensor",
            "pressure_bar",
            START + 4 * day + timedelta(hours=2),
            START + 4 * day + timedelta(hours=7),
            "the pressure transmitter freezes on its last reading for five hours",
        ),
        InjectedFault(
            "unit_change",
            "temperature_c",
            START + 9 * day + timedelta(hours=8),
            START + 10 * day + timedelta(hours=8),
            "a PLC firmware update reports the melt temperature in °F for a day",
        ),
        InjectedFault(
            "null_column",
            "humidity_pct",
            START + 14 * day + timedelta(hours=8),
            START + 15 * day + timedelta(hours=20),
            "release 1.5.0 of the featurize step drops the humidity column (nulls) until the "
            "1.5.1 fix, 36 hours later",
        ),
        InjectedFault(
            "gradual_drift",
            "vibration_mm_s",
            START + 20 * day,
            START + days * day,
            "bearing wear: the line's vibration creeps up over the last ten days",
        ),
    ]
    return [f for f in faults if f.start < START + days * day]


def run_demo(
    *,
    days: int = 30,
    seed: int = 0,
    out: Path = Path(".mlwarden/demo"),
    serve: bool = True,
    json_path: Path | None = None,
    port: int = DEFAULT_PORT,
    console: Console | None = None,
) -> DemoResult:
    """Run the scenario of the module docstring; return what was injected and detected."""
    console = console or Console()
    if not console.is_terminal:
        console = Console(width=140)
    began = time.perf_counter()
    console.print(
        Panel.fit(
            f"[bold]mlwarden demo[/] — an extrusion line's defect model, monitored for {days} "
            "simulated days:\nrows streamed by the client into the server, labels two days "
            "late, four injected faults.",
            border_style="cyan",
        )
    )
    service = out / "service"
    shutil.rmtree(service, ignore_errors=True)
    service.mkdir(parents=True)

    history = production_line(
        HISTORY_DAYS * ROWS_PER_DAY,
        seed=seed,
        start=START - timedelta(days=HISTORY_DAYS),
        freq_seconds=READING_SECONDS,
    )
    train = history.filter(pl.col("timestamp") < START - timedelta(days=HISTORY_DAYS - TRAIN_DAYS))
    from mlwarden.server import Settings

    # The demo explains each batch itself, in step with its simulated clock (the server's
    # background worker does it in real time).
    settings = Settings(data_dir=service, public_read=True, explain=False)
    store = settings.store()
    store.migrate()
    # The plant's own steps are instrumented: each run is kept with its code version and the
    # content-hashed data it read and wrote (mlwarden runs, mlwarden trace).
    with lineage_run(
        "train", store=store, code=TRAIN_CODE, params={"max_iter": 200, "learning_rate": 0.05}
    ) as step:
        step.input(train, name="historian/line-history")
        model = _train(train, seed)
        step.output(model, name=f"{MODEL} 1")
    reference = _score(model, history.filter(pl.col("timestamp") >= train["timestamp"].max()))
    console.print(
        f"Trained a gradient-boosting defect model on {train.height:,} readings "
        f"({TRAIN_DAYS} days); its reference is the next {reference.height:,} readings, scored "
        f"and labelled (ROC AUC {_auc(reference):.3f})."
    )

    faults = scenario_faults(days)
    production = _production(days, seed, faults)
    port = _free_port(port)
    url = f"http://127.0.0.1:{port}"
    started = time.perf_counter()
    from mlwarden.registry import Registry

    registry = Registry(store)
    record = registry.register(
        MODEL,
        "1",
        reference,
        timestamp="timestamp",
        roles=dict(ROLES),
        segment="line",
        window=WINDOW,
        description="Defect risk of extruded product from the line's sensors",
        estimator=model,
        features=list(FEATURES),
        explain_sample=EXPLAIN_SAMPLE,
    )
    registry.promote(MODEL, "1", by="demo", note="first version")
    token = store.create_token("demo-line", "write")
    console.print(
        f"Registered {MODEL} 1 (profile, quality suite, drift reference, CBPE estimator, "
        f"per-line references, global explanation) in {time.perf_counter() - started:.1f} s; "
        "production → 1."
    )
    console.print(_budget_line(record.meta.get("alerting") or {}))

    server, thread = _start_server(settings, port)
    try:
        incidents, detected = _stream(
            console, store, service, url, token, production, days, model, faults
        )
        result = _summary(console, store, service, faults, incidents, detected, out, url, began)
        if json_path is not None:
            json_path.parent.mkdir(parents=True, exist_ok=True)
            json_path.write_text(json.dumps(result.to_dict(), indent=2), encoding="utf-8")
            console.print(f"Wrote the faults and incidents to [bold]{json_path}[/].")
        if serve:
            console.print(
                f"\nThe dashboard: [bold cyan]{url}/[/] (read-only without a token on this "
                "machine). Ctrl-C to stop."
            )
            with contextlib.suppress(KeyboardInterrupt):
                while thread.is_alive():
                    thread.join(0.5)
    finally:
        server.should_exit = True
        thread.join(10)
        store.close()
    return result


def _budget_line(alerting: dict[str, Any]) -> str:
    """The version's alert budget, and what its replayed reference showed."""
    budget, held = alerting.get("budget") or {}, alerting.get("held_out") or {}
    summary = alerting.get("summary") or {}
    if not budget or not held:
        return "No alert budget: the reference could not be replayed."
    from mlwarden.alerting.calibration import AlertBudget, count

    return (
        f"Alert budget: {AlertBudget.from_dict(budget)}, shared by "
        f"{count(summary.get('metrics', 0), 'bounded metric')}, "
        f"{count(summary.get('sequential', {}).get('series', 0), 'CUSUM')} and "
        f"{count(summary.get('quality_checks', 0), 'quality check')}; the reference replayed in "
        f"{held['windows']} windows of {WINDOW} raised {count(held['incidents'], 'false incident')}"
        " on windows held out of the calibration."
    )


def _train(frame: pl.DataFrame, seed: int) -> HistGradientBoostingClassifier:
    from sklearn.ensemble import HistGradientBoostingClassifier

    model = HistGradientBoostingClassifier(
        max_iter=200, learning_rate=0.05, categorical_features=[0, 1], random_state=seed
    )
    return model.fit(_matrix(frame), frame["defect"].to_numpy())


def _matrix(frame: pl.DataFrame) -> np.ndarray[Any, np.dtype[np.float64]]:
    """The model's inputs: line and recipe as category codes, the sensors as they are."""
    columns = [
        frame[name].to_physical().cast(pl.Float64)
        if frame[name].dtype == pl.Enum
        else frame[name].cast(pl.Float64)
        for name in FEATURES
    ]
    return pl.DataFrame(columns).to_numpy()


def _score(model: HistGradientBoostingClassifier, frame: pl.DataFrame) -> pl.DataFrame:
    score = model.predict_proba(_matrix(frame))[:, 1]
    return frame.with_columns(
        pl.Series("defect_score", score),
        pl.Series("prediction", (score >= 0.5).astype(np.int8)),
    )


def _auc(frame: pl.DataFrame) -> float:
    from sklearn.metrics import roc_auc_score

    return float(roc_auc_score(frame["defect"].to_numpy(), frame["defect_score"].to_numpy()))


def _production(days: int, seed: int, faults: list[InjectedFault]) -> pl.DataFrame:
    """The days of production as the plant's historian records them, with the sensor faults
    injected (the null column is the featurize step's bug, injected there)."""
    n = days * ROWS_PER_DAY
    process = [
        Drift(
            "vibration_mm_s",
            start_row=(f.start - START) // timedelta(seconds=READING_SECONDS),
            shift=1.6,
            ramp_rows=10 * ROWS_PER_DAY,
        )
        for f in faults
        if f.kind == "gradual_drift"
    ]
    frame = production_line(
        n, seed=seed + 1, start=START, freq_seconds=READING_SECONDS, faults=process
    )
    for fault in faults:
        during = pl.col("timestamp").is_between(fault.start, fault.end, closed="left")
        value = pl.col(fault.column)
        if fault.kind == "stuck_sensor":
            value = pl.when(during).then(None).otherwise(value).forward_fill()
        elif fault.kind == "unit_change":
            value = pl.when(during).then(value * 1.8 + 32.0).otherwise(value)
        else:
            continue
        frame = frame.with_columns(value.alias(fault.column))
    ids = pl.format("r{}", pl.int_range(pl.len(), dtype=pl.Int64)).alias("id")
    return frame.with_columns(ids)


def _policy_file(service: Path) -> Path:
    """The plant's reaction policies: readings that break an error-level check are set aside
    (quarantined through the quality gate) once per incident; a feature drifting for a day
    asks for a retraining on the suggested training set, which waits for a person's approval
    on the dashboard's Actions page."""
    import sys

    retrain = [
        sys.executable,
        "-c",
        "import sys, polars as pl; print(pl.read_parquet(sys.argv[1]).shape)",
        "{training_set}",
    ]
    text = f"""\
policies:
  - name: quarantine-broken-readings
    description: Readings that break an error-level check go to the process engineers.
    when: {{metric: quality, severity: error}}
    actions:
      - quarantine: {{}}
  - name: retrain-on-lasting-drift
    description: A feature drifting for a day (six windows) asks for a retraining.
    when: {{metric: "drift.*", column: "*_*", consecutive: 6, incident: open}}
    actions:
      - retrain: {{command: {json.dumps(retrain)}, approval: required}}
"""
    path = service / "policies.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def _release(chunk_start: datetime, faults: list[InjectedFault]) -> str:
    """The featurize release deployed at ``chunk_start``."""
    bug = next((f for f in faults if f.kind == "null_column"), None)
    if bug is None or chunk_start < bug.start:
        return FEATURIZE_CODE
    return FEATURIZE_BUGGY if chunk_start < bug.end else FEATURIZE_FIXED


def _featurize(readings: pl.DataFrame, release: str) -> pl.DataFrame:
    """The model's inputs from the readings; release 1.5.0 loses the humidity on the way."""
    features = readings.select("timestamp", "batch_id", *FEATURES, "operator_shift")
    if release == FEATURIZE_BUGGY:
        features = features.with_columns(pl.lit(None, pl.Float64).alias("humidity_pct"))
    return features


def _right_cause(fault: InjectedFault, cause: dict[str, Any]) -> bool:
    """Whether a diagnosed cause names ``fault``: its kind, on its column."""
    if fault.column not in cause["columns"]:
        return False
    if fault.kind == "stuck_sensor":
        return bool(cause["kind"] == "quality" and cause["detail"].get("check") == "stuck")
    if fault.kind == "unit_change":
        return bool(cause["kind"] == "quality" and "conversion" in cause["detail"])
    if fault.kind == "null_column":  # traced to the release that introduced it
        return bool(cause["kind"] == "upstream" and cause["detail"].get("step") == "featurize")
    return bool(cause["kind"] == "drift")


def _diagnose(
    store: Store, service: Path, incidents: list[dict[str, Any]], detections: list[Detection]
) -> None:
    """Each incident's ranked causes; for each detected fault, the rank of its right cause."""
    from mlwarden.diagnosis import diagnose
    from mlwarden.store.rowlog import RowLog

    rowlog = RowLog(service / "log")
    by_id = {}
    for incident in incidents:
        if incident["status"] == "withdrawn":  # labels later cleared its only alerts
            incident["shift"], incident["causes"], incident["feedback_cause"] = "", [], None
            continue
        diagnosis = diagnose(store, rowlog, incident["id"])
        incident["shift"] = diagnosis.shift
        incident["causes"] = [c.to_dict() for c in diagnosis.causes[:5]]
        people = next((c for c in diagnosis.causes if c.kind == "feedback"), None)
        incident["feedback_cause"] = None if people is None else people.to_dict()
        by_id[incident["id"]] = diagnosis
    for detection in detections:
        found = by_id.get(detection.incident) if detection.incident is not None else None
        if found is None or not found.causes:
            continue
        detection.top_cause = found.causes[0].title
        detection.cause_rank = next(
            (c.rank for c in found.causes if _right_cause(detection.fault, c.to_dict())), None
        )


def _free_port(preferred: int) -> int:
    """``preferred`` when it is free, else any free port (0: any)."""
    with socket.socket() as probe:
        try:
            probe.bind(("127.0.0.1", preferred))
        except OSError:
            probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _start_server(settings: Any, port: int) -> tuple[uvicorn.Server, threading.Thread]:
    import uvicorn

    from mlwarden.server import create_app

    config = uvicorn.Config(
        create_app(settings), host="127.0.0.1", port=port, log_level="warning", access_log=False
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, name="mlwarden-demo-server", daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError(f"The demo server did not start on 127.0.0.1:{port}.")
        time.sleep(0.05)
    return server, thread


def _stream(
    console: Console,
    store: Store,
    service: Path,
    url: str,
    token: str,
    production: pl.DataFrame,
    days: int,
    model: HistGradientBoostingClassifier,
    faults: list[InjectedFault],
) -> tuple[list[dict[str, Any]], dict[int, datetime]]:
    """Run the plant's pipeline on every four hours of production (extract, featurize,
    score), send the predictions through the client linked to the featurize run, labels two
    days late, evaluating every window as it closes; return the incidents and when each was
    first seen."""
    from rich.progress import Progress

    from mlwarden.monitor import Monitor
    from mlwarden.react.policies import apply_policies, load_policies
    from mlwarden.service import evaluate
    from mlwarden.service.explain import explain_missing
    from mlwarden.store.rowlog import RowLog

    rowlog = RowLog(service / "log")
    rng = np.random.default_rng(7)
    policies = load_policies(_policy_file(service))
    monitor = Monitor(MODEL, "1", url=url, token=token, batch_rows=10_000, flush_seconds=0.5)
    detected: dict[int, datetime] = {}
    step = timedelta(hours=4)
    chunks = production.with_columns(
        pl.col("timestamp").dt.truncate("4h").alias("__chunk")
    ).partition_by("__chunk", as_dict=True, include_key=False)
    sent = 0
    started = time.perf_counter()
    with Progress(console=console, transient=True) as progress:
        task = progress.add_task("Streaming production", total=len(chunks))
        for (chunk_start,), chunk in sorted(chunks.items(), key=lambda item: item[0]):
            assert isinstance(chunk_start, datetime)
            now = chunk_start + step
            stamp = f"{chunk_start:%Y%m%dT%H%M}"
            with lineage_run(
                "extract", store=store, code=EXTRACT_CODE, params={"hours": 4}
            ) as stage:
                stage.input(chunk, name=f"historian/line/{stamp}")
                readings = chunk.drop("defect", "defect_score", "prediction")
                stage.output(readings, name=f"readings/{stamp}")
            release = _release(chunk_start, faults)
            with lineage_run("featurize", store=store, code=release) as stage:
                stage.input(readings)
                features = _featurize(readings, release)
                stage.output(features, name=f"features/{stamp}")
                featurized = stage.id
            with lineage_run("score", store=store, code=SCORE_CODE) as stage:
                stage.input(features)
                stage.input(model, name=f"{MODEL} 1")
                scores = _score(model, features).select("defect_score", "prediction")
                stage.output(scores, name=f"predictions/{stamp}")
            monitor.log(features, scores, ids=chunk["id"].to_list(), run=featurized)
            sent += chunk.height
            if now.hour == 0:  # the lab reports the day before yesterday
                day = production.filter(
                    pl.col("timestamp").is_between(
                        now - LABEL_DELAY - timedelta(days=1), now - LABEL_DELAY, closed="left"
                    )
                )
                if day.height:
                    monitor.log_labels(
                        day["id"].to_list(), {"defect": day["defect"].to_list()}, timestamps=now
                    )
            monitor.flush(timeout=60)
            explain_missing(store, rowlog, MODEL, "1", start=chunk_start, end=now)
            _operators(store, rowlog, features.with_columns(chunk["id"]), chunk_start, now, rng)
            for outcome in evaluate(store, rowlog, MODEL, "production", window=WINDOW, now=now):
                if outcome.incident is not None and outcome.incident not in detected:
                    detected[outcome.incident] = now
            apply_policies(store, rowlog, policies, now=now, data_dir=service)
            progress.advance(task)
    monitor.close()
    stats = monitor.stats()
    console.print(
        f"Streamed {sent:,} readings of {days} days through the client into {url} "
        f"({stats.sent:,} rows and labels delivered, {stats.dropped} dropped) and evaluated "
        f"{len(store.windows(MODEL)):,} windows of {WINDOW} in "
        f"{time.perf_counter() - started:.0f} s."
    )
    return store.incidents(MODEL), detected


def _operators(
    store: Store,
    rowlog: Any,
    features: pl.DataFrame,
    start: datetime,
    end: datetime,
    rng: np.random.Generator,
) -> int:
    """Operators review ``REVIEWS`` explained predictions of the four hours on the prediction
    page, which shows each with its explanation by sensor and its row's failed checks. An
    explanation that leans on a sensor whose reading failed a check (a tenth of the
    prediction's attribution or more) looks implausible to them, and they override three in
    four of those predictions, one in twenty of the others. Their shift's log is recorded at
    once; returns its length."""
    from mlwarden.feedback import record_feedback
    from mlwarden.quality.gate import GatePolicy, gate
    from mlwarden.service.evaluate import load_reference

    explained = rowlog.explanations(MODEL, start=start, end=end, version="1")
    if explained.height == 0:
        return 0
    picked = explained.sample(min(REVIEWS, explained.height), seed=int(rng.integers(1 << 31)))
    picked = picked.with_columns(pl.col("id").cast(pl.String))
    # the failed checks of each row, as the prediction page shows them
    suite = load_reference(store, MODEL, "1").suite
    checked = gate(features, suite, GatePolicy(batch="accept")).quarantined
    flags = checked.select(pl.col("id").cast(pl.String), pl.col("reasons"))
    reviewed = picked.join(flags, on="id", how="left").with_columns(
        pl.col("reasons").fill_null(pl.lit([], dtype=pl.List(pl.String)))
    )
    sensors = [f for f in FEATURES if f in picked.columns]
    weights = reviewed.select(pl.col(sensors).abs())
    share = weights / weights.sum_horizontal()
    doubted = np.zeros(reviewed.height, dtype=bool)
    for sensor in sensors:  # one per sensor
        failed = reviewed["reasons"].list.eval(
            pl.element().str.contains(f"({sensor}", literal=True)
        )
        odd = failed.list.any() & (share[sensor] >= 0.1)
        doubted |= odd.fill_null(False).to_numpy()
    draws = rng.random(reviewed.height)
    overridden = np.where(doubted, draws < 0.75, draws < 0.05)
    shifts = features.select(pl.col("id").cast(pl.String), "operator_shift").unique("id")
    shown = [
        json.dumps(
            {
                "explanation": {c: row[c] for c in sorted(sensors, key=lambda c: -abs(row[c]))[:3]},
                "quality_flags": list(row["reasons"]),
            }
        )
        for row in reviewed.iter_rows(named=True)  # a dozen feedback forms, not the rows
    ]
    log = reviewed.join(shifts, on="id", how="left").select(
        pl.col("id").alias("prediction_id"),
        pl.lit("operator").alias("role"),
        pl.format("operator-{}", pl.col("operator_shift").cast(pl.String)).alias("by"),
        pl.Series("decision", np.where(overridden, "overridden", "accepted")),
        pl.Series(
            "reason",
            np.where(overridden, np.where(doubted, "sensor_fault", "process_condition"), ""),
        ),
        pl.Series("plausible", ~doubted),
        pl.Series("shown", shown),
        pl.col("timestamp").alias("at"),
    )
    return record_feedback(store, rowlog, MODEL, log, now=end)


def _summary(
    console: Console,
    store: Store,
    service: Path,
    faults: list[InjectedFault],
    incidents: list[dict[str, Any]],
    detected: dict[int, datetime],
    out: Path,
    url: str,
    began: float,
) -> DemoResult:
    """Match incidents to faults, print what was detected when, list false alarms."""
    alerts = store.alerts(MODEL)
    window = pl.duration(hours=4)
    detections = []
    explained: set[int] = set()
    for fault in faults:
        hits = alerts.filter(
            pl.col("column").str.contains(fault.column, literal=True),
            pl.col("started_at") + window > fault.start,
            pl.col("started_at") < fault.end,
        ).sort("started_at")
        # An incident is explained by a fault when, while the fault lasts (and one window
        # after), it names the fault's column, or what the fault propagates to: the model's
        # output, its performance, the relations between features.
        explained |= set(
            alerts.filter(
                pl.col("started_at") + window > fault.start,
                pl.col("started_at") < fault.end + timedelta(hours=4),
                pl.col("column").str.contains(fault.column, literal=True)
                | pl.col("column").is_in(["defect_score", "prediction"])
                | pl.col("metric").str.starts_with("performance.")
                | (pl.col("metric") == "drift.pca"),
            )["incident_id"].drop_nulls()
        )
        detection = Detection(fault)
        if hits.height:
            first = hits.filter(pl.col("incident_id") == hits["incident_id"][0])
            detection.incident = int(hits["incident_id"][0])
            detection.window_start = hits["started_at"][0]
            detection.detected_at = detected.get(detection.incident)
            detection.metrics = sorted(
                {
                    f"{m}({c})" if not c.startswith(m) else c
                    for m, c in zip(first["metric"], first["column"], strict=True)
                }
            )
        detections.append(detection)
    for incident in incidents:
        incident["detected_at"] = detected.get(incident["id"])
        rows = alerts.filter(pl.col("incident_id") == incident["id"])
        incident["metrics"] = sorted(set(rows["metric"]))
        incident["columns"] = sorted(set(rows["column"]) - {""})
        incident["segments"] = sorted(set(rows["segment"]) - {""})
    false_alarms = [i["id"] for i in incidents if i["id"] not in explained]
    _diagnose(store, service, incidents, detections)

    table = Table(title="What was injected, and when mlwarden opened an incident for it")
    for name in ("fault", "column", "injected", "incident", "detected", "delay", "fired"):
        table.add_column(name)
    table.add_column("likeliest cause (diagnosis)", max_width=44)
    for d in detections:
        fired = ", ".join(d.metrics[:4]) + (f" +{len(d.metrics) - 4}" if len(d.metrics) > 4 else "")
        table.add_row(
            d.fault.kind.replace("_", " "),
            d.fault.column,
            f"{d.fault.start:%b %d %H:%M}",
            "—" if d.incident is None else f"#{d.incident}",
            "[red]missed[/]" if d.detected_at is None else f"{d.detected_at:%b %d %H:%M}",
            "" if d.delay is None else f"{d.delay.total_seconds() / 3600:.1f} h",
            fired,
            d.top_cause
            + (
                ""
                if d.cause_rank in (None, 1)
                else f" [yellow](the right cause is #{d.cause_rank})[/]"
            ),
        )
    console.print(table)
    caught = sum(d.incident is not None for d in detections)
    console.print(
        f"{caught} of {len(faults)} faults detected; {len(incidents)} incidents in all, "
        f"{len(false_alarms)} not explained by an injected fault (false alarms)."
    )
    operators = _operator_summary(store, faults, incidents)
    console.print(operators["text"])
    from mlwarden.react.policies import actions

    taken = sorted(actions(store, MODEL, limit=1_000), key=lambda a: a.id)
    if taken:
        done = Table(title="What the reaction policies did (audit log)")
        for name in ("when", "policy", "action", "incident", "status", "what"):
            done.add_column(name)
        for a in taken:
            done.add_row(
                f"{a.created_at:%b %d %H:%M}",
                a.policy,
                a.action,
                "—" if a.incident_id is None else f"#{a.incident_id}",
                a.status.replace("_", " "),
                a.summary[:90],
            )
        console.print(done)
    return DemoResult(
        out=out,
        url=url,
        faults=faults,
        detections=detections,
        incidents=incidents,
        false_alarms=false_alarms,
        seconds=time.perf_counter() - began,
        actions=[a.to_dict() for a in taken],
        operators={k: v for k, v in operators.items() if k != "text"},
    )


def _operator_summary(
    store: Store, faults: list[InjectedFault], incidents: list[dict[str, Any]]
) -> dict[str, Any]:
    """How often operators overrode predictions during sensor faults and otherwise, and which
    incidents raised the override-rate alert with the sensor their diagnosis named."""
    from mlwarden.feedback import feedback_frame

    given = feedback_frame(store, MODEL)
    during = pl.lit(False)
    for fault in faults:  # a handful
        if fault.kind in SENSOR_FAULTS:
            during = during | pl.col("prediction_at").is_between(
                fault.start, fault.end, closed="left"
            )
    rates = (
        given.filter(pl.col("decision") != "")
        .group_by(during.alias("during_fault"))
        .agg(n=pl.len(), overridden=(pl.col("decision") == "overridden").sum())
    )
    share = {
        bool(r["during_fault"]): (int(r["overridden"]), int(r["n"]))
        for r in rates.iter_rows(named=True)
    }
    alerted = [
        {
            "incident": i["id"],
            "metrics": [
                m for m in i["metrics"] if m in ("override_rate", "explanation_plausibility")
            ],
            "sensor": (i.get("feedback_cause") or {}).get("column") or None,
        }
        for i in incidents
        if "override_rate" in i["metrics"]
    ]
    fault_n, fault_total = share.get(True, (0, 0))
    calm_n, calm_total = share.get(False, (0, 0))
    named = ", ".join(f"#{a['incident']} → {a['sensor'] or 'no sensor'}" for a in alerted) or "none"
    text = (
        f"Operators reviewed {given.height:,} predictions: they overrode {fault_n} of "
        f"{fault_total} during sensor faults and {calm_n} of {calm_total} otherwise. "
        f"Override-rate alerts (incident → the sensor its diagnosis names): {named}."
    )
    return {
        "reviewed": given.height,
        "overridden_during_faults": [fault_n, fault_total],
        "overridden_otherwise": [calm_n, calm_total],
        "override_alerts": alerted,
        "text": text,
    }
