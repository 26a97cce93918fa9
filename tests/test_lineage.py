"""Lineage: runs of a four-step pipeline recorded by decorator and context manager, traced
backward to the raw file and forward to the model; staleness; failed runs; OpenLineage events
in any order; checks before and after a step; predictions traced back to the run that made their
features; the command line. On every store backend, but for the commands, which open the SQLite
file."""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import polars as pl
import pytest
from click.testing import CliRunner

from mlwarden.cli import cli
from mlwarden.datasets import production_line
from mlwarden.exceptions import InputError, NotFoundError, ParameterError
from mlwarden.lineage import Lineage, component, content_hash, dataset_hash, run
from mlwarden.quality import Suite
from mlwarden.store.metadata import Store
from mlwarden.store.rowlog import RowLog


def pipeline(store: Store, raw: Path) -> dict[str, object]:
    @component("extract", store=store)
    def extract(path: Path) -> pl.DataFrame:
        return pl.read_parquet(path)

    @component("featurize", store=store)
    def featurize(frame: pl.DataFrame, *, window: int = 10) -> pl.DataFrame:
        return frame.with_columns(
            pl.col("temperature_c").rolling_mean(window).alias("temperature_mean")
        )

    extracted = extract(raw)
    features = featurize(extracted, window=10)
    with run("train", store=store, params={"max_iter": 200}, owner="ana") as r:
        r.input(features)
        model = {"weights": [0.1, 0.2]}
        r.output(model, name="defect-model")
    with run("score", store=store) as r:
        r.input(model, name="defect-model")
        r.input(features)
        scores = features.select(pl.col("temperature_mean") * 0.01)
        r.output(scores, name="scores")
    return {"raw": raw, "extracted": extracted, "features": features, "scores": scores}


def test_a_four_step_pipeline_is_traced_both_ways(store: Store, tmp_path: Path) -> None:
    raw = tmp_path / "line.parquet"
    production_line(2_000, seed=1).write_parquet(raw)
    made = pipeline(store, raw)
    lineage = Lineage(store)
    runs = {r.name: r for r in lineage.runs()}
    assert set(runs) == {"extract", "featurize", "train", "score"}
    assert all(r.status == "succeeded" for r in runs.values())
    assert runs["featurize"].params == {"window": 10}
    assert runs["train"].owner == "ana"
    assert runs["extract"].inputs[0].kind == "file"

    scores_sha = content_hash(made["scores"])[0]
    back = lineage.trace(scores_sha[:12])
    assert [r.name for r in back.upstream] == ["score", "featurize", "train", "extract"]
    assert [a.name for a in back.raw_inputs] == [str(raw)]
    forward = lineage.trace(runs["extract"].id)
    assert {r.name for r in forward.downstream} == {"featurize", "train", "score"}
    assert forward.upstream[0].name == "extract"


def test_a_run_is_stale_when_its_input_changed_or_it_is_old(store: Store, tmp_path: Path) -> None:
    lineage = Lineage(store)
    with run("train", store=store) as first:
        first.input(pl.DataFrame({"x": [1, 2, 3]}), name="features")
    assert lineage.stale(first.id) == []
    with run("featurize", store=store) as again:
        again.output(pl.DataFrame({"x": [1, 2, 4]}), name="features")
    reasons = lineage.stale(first.id)
    assert len(reasons) == 1
    assert "input 'features' has a newer version" in reasons[0]
    assert "older than" in lineage.stale(first.id, max_age=timedelta(0))[-1]


def test_a_failed_step_is_recorded_with_its_error(store: Store) -> None:
    @component("load", store=store)
    def load(data: bytes) -> None:
        raise ValueError("no such table")

    with pytest.raises(ValueError, match="no such table"):
        load(b"raw bytes")
    (failed,) = Lineage(store).runs("load")
    assert failed.status == "failed"
    assert failed.error == "ValueError: no such table"
    assert failed.ended_at is not None
    assert failed.inputs[0].kind == "bytes"
    with pytest.raises(NotFoundError, match="No artifact"):
        Lineage(store).trace("0123456789abcdef")


@pytest.mark.parametrize("store", ["sqlite"], indirect=True)  # the commands open its file
def test_runs_and_trace_on_the_command_line(store: Store, tmp_path: Path) -> None:
    raw = tmp_path / "line.parquet"
    production_line(500, seed=2).write_parquet(raw)
    pipeline(store, raw)
    url = ["--database-url", f"sqlite:///{tmp_path / 'mlwarden.db'}"]
    listed = CliRunner().invoke(cli, ["runs", *url])
    assert listed.exit_code == 0, listed.output
    for step in ("extract", "featurize", "train", "score"):
        assert step in listed.output
    score = Lineage(store).runs("score")[0]
    traced = CliRunner().invoke(cli, ["trace", str(score.id), *url])
    assert traced.exit_code == 0, traced.output
    assert "extract" in traced.output
    assert str(raw) in traced.output


# -- OpenLineage events --------------------------------------------------------------------------

T0 = datetime(2024, 5, 1, 8, tzinfo=UTC)
MODEL = "defect-model"


def dataset(name: str, version: str | None = None, namespace: str = "warehouse") -> dict[str, Any]:
    doc: dict[str, Any] = {"namespace": namespace, "name": name}
    if version is not None:
        doc["facets"] = {"version": {"datasetVersion": version}}
    return doc


def event(
    kind: str,
    run_id: str,
    job: str,
    at: datetime,
    *,
    inputs: Sequence[dict[str, Any]] = (),
    outputs: Sequence[dict[str, Any]] = (),
    **extra: Any,
) -> dict[str, Any]:
    """An OpenLineage RunEvent as an orchestrator sends it."""
    doc: dict[str, Any] = {
        "eventType": kind,
        "eventTime": at.isoformat().replace("+00:00", "Z"),
        "producer": "https://github.com/OpenLineage/OpenLineage/tree/1.9.0/integration/airflow",
        "schemaURL": "https://openlineage.io/spec/2-0-2/OpenLineage.json#/$defs/RunEvent",
        "run": {"runId": run_id, "facets": {}},
        "job": {"namespace": "plant-7", "name": job, "facets": {}},
        "inputs": list(inputs),
        "outputs": list(outputs),
    }
    for key, value in extra.items():
        doc[key] = value
    return doc


def new_id() -> str:
    return str(uuid.uuid4())


def test_openlineage_start_then_complete_is_one_succeeded_run(store: Store) -> None:
    lineage = Lineage(store)
    run_id = new_id()
    start = event("START", run_id, "featurize", T0, inputs=[dataset("raw")])
    start["job"]["facets"] = {
        "sourceCodeLocation": {"type": "git", "url": "https://git/plant", "version": "9f2c1ab"},
        "ownership": {"owners": [{"name": "team:process-eng", "type": "team"}]},
    }
    start["run"]["facets"] = {
        "nominalTime": {"nominalStartTime": "2024-05-01T08:00:00Z"},
        "parent": {
            "run": {"runId": "0d7a7c59-8f2f-4a5b-9c3d-5a1f1d2e3f40"},
            "job": {"namespace": "airflow", "name": "plant_daily"},
        },
    }
    first = lineage.ingest_openlineage(start)
    assert lineage.get(first).status == "running"
    done = lineage.ingest_openlineage(
        event(
            "COMPLETE",
            run_id.upper(),  # the same UUID, written differently
            "featurize",
            T0 + timedelta(minutes=5),
            outputs=[dataset("features")],
        )
    )
    assert done == first
    (record,) = lineage.runs()
    assert record.name == "featurize"
    assert record.external_id == run_id
    assert (record.status, record.error) == ("succeeded", "")
    assert record.started_at == T0
    assert record.ended_at == T0 + timedelta(minutes=5)
    assert record.code_version == "9f2c1ab"
    assert record.owner == "team:process-eng"
    assert record.tags == {
        "namespace": "plant-7",
        "nominal_start": "2024-05-01T08:00:00Z",
        "parent_run": "0d7a7c59-8f2f-4a5b-9c3d-5a1f1d2e3f40",
        "parent_job": "airflow/plant_daily",
    }
    assert [(a.name, a.kind) for a in record.inputs] == [("warehouse/raw", "dataset")]
    assert [a.name for a in record.outputs] == ["warehouse/features"]
    assert lineage.resolve(run_id) == lineage.resolve(str(first)) == first


def test_openlineage_complete_alone_fail_and_abort(store: Store) -> None:
    lineage = Lineage(store)
    alone = lineage.ingest_openlineage(event("COMPLETE", new_id(), "extract", T0))
    record = lineage.get(alone)
    assert (record.status, record.started_at, record.ended_at) == ("succeeded", T0, T0)
    assert record.code_version == ""

    failing = event("FAIL", new_id(), "train", T0 + timedelta(hours=1))
    failing["run"]["facets"]["errorMessage"] = {
        "message": "java.lang.OutOfMemoryError: Java heap space",
        "programmingLanguage": "JAVA",
    }
    failing["job"]["facets"]["sourceCode"] = {"language": "python", "sourceCode": "fit(x)\n"}
    failed = lineage.get(lineage.ingest_openlineage(failing))
    assert (failed.status, failed.error) == (
        "failed",
        "java.lang.OutOfMemoryError: Java heap space",
    )
    assert failed.code_version.startswith("source:")

    aborted = lineage.get(lineage.ingest_openlineage(event("ABORT", new_id(), "score", T0)))
    assert (aborted.status, aborted.error) == ("failed", "aborted")


def test_openlineage_events_out_of_order(store: Store) -> None:
    lineage = Lineage(store)
    run_id = new_id()
    end = T0 + timedelta(minutes=30)
    ids = lineage.ingest_openlineage_many(
        [
            event("COMPLETE", run_id, "featurize", end, outputs=[dataset("features")]),
            event("RUNNING", run_id, "featurize", T0 + timedelta(minutes=10)),
            event("START", run_id, "featurize", T0, inputs=[dataset("raw")]),
        ]
    )
    assert len(set(ids)) == 1
    record = lineage.get(ids[0])
    # A late START moves the start back and leaves the finished run finished.
    assert (record.status, record.started_at, record.ended_at) == ("succeeded", T0, end)
    assert {a.name for a in record.inputs} == {"warehouse/raw"}
    assert {a.name for a in record.outputs} == {"warehouse/features"}
    # An older terminal event than the one recorded changes nothing.
    lineage.ingest_openlineage(event("FAIL", run_id, "featurize", T0 + timedelta(minutes=20)))
    assert lineage.get(ids[0]).status == "succeeded"


def openlineage_pipeline(lineage: Lineage) -> dict[str, int]:
    """Four jobs of an orchestrator, linked only by the datasets they share."""
    raw = dataset("line-7/2024-05-01.parquet", namespace="s3://plant-raw")
    steps = [
        ("extract", [raw], [dataset("staging.readings")]),
        ("featurize", [dataset("staging.readings")], [dataset("features")]),
        ("train", [dataset("features")], [dataset("models.defect", namespace="mlflow")]),
        (
            "score",
            [dataset("models.defect", namespace="mlflow"), dataset("features")],
            [dataset("scores")],
        ),
    ]
    ids = {}
    for i, (job, inputs, outputs) in enumerate(steps):
        run_id = new_id()
        at = T0 + timedelta(hours=i)
        lineage.ingest_openlineage(event("START", run_id, job, at, inputs=inputs))
        ids[job] = lineage.ingest_openlineage(
            event("COMPLETE", run_id, job, at + timedelta(minutes=20), outputs=outputs)
        )
    return ids


def test_four_openlineage_jobs_chained_by_datasets_are_traced_end_to_end(
    store: Store,
) -> None:
    lineage = Lineage(store)
    ids = openlineage_pipeline(lineage)
    back = lineage.trace(ids["score"])
    names = [r.name for r in back.upstream]
    # Nearest first: score read the model (train) and the features (featurize) directly.
    assert (names[0], set(names[1:3]), names[3:]) == ("score", {"train", "featurize"}, ["extract"])
    assert [a.name for a in back.raw_inputs] == ["s3://plant-raw/line-7/2024-05-01.parquet"]
    raw_sha = dataset_hash("s3://plant-raw", "line-7/2024-05-01.parquet")
    forward = lineage.trace(raw_sha[:16])
    assert [r.name for r in forward.downstream][:2] == ["extract", "featurize"]
    assert {r.name for r in forward.downstream} == {"extract", "featurize", "train", "score"}
    assert lineage.stale(ids["score"]) == []


def test_a_new_dataset_version_makes_the_runs_that_read_the_old_one_stale(
    store: Store,
) -> None:
    lineage = Lineage(store)
    train = lineage.ingest_openlineage(
        event("COMPLETE", new_id(), "train", T0, inputs=[dataset("features", "v1")])
    )
    assert lineage.stale(train) == []
    # A later featurize run writes version 2 of the same dataset; an event about version 1
    # that arrives late does not make version 1 the newer one.
    for version, days in (("v2", 1), ("v1", -1)):
        outputs = [dataset("features", version)]
        at = T0 + timedelta(days=days)
        lineage.ingest_openlineage(event("COMPLETE", new_id(), "featurize", at, outputs=outputs))
    (reason,) = lineage.stale(train)
    assert reason.startswith("input 'warehouse/features' has a newer version")
    assert dataset_hash("warehouse", "features", "v2")[:12] in reason
    assert "2024-05-02 08:00" in reason
    back = lineage.trace(train)
    assert [r.name for r in back.upstream] == ["train", "featurize"]


@pytest.mark.parametrize(
    ("change", "field", "message"),
    [
        (lambda e: e["run"].pop("runId"), "run.runId", "expected a UUID string; got nothing"),
        (lambda e: e["run"].update(runId=42), "run.runId", "expected a UUID string; got 42"),
        (lambda e: e["run"].update(runId="run-7"), "run.runId", "got 'run-7'"),
        (lambda e: e.update(eventType="DONE"), "eventType", "expected one of START, RUNNING"),
        (lambda e: e.update(eventTime="yesterday"), "eventTime", "expected an ISO 8601 time"),
        (lambda e: e.pop("job"), "job", "expected an object with a namespace and a name"),
        (lambda e: e["job"].update(name="j" * 201), "job.name", "1-200 characters"),
        (lambda e: e["job"].pop("namespace"), "job.namespace", "got nothing"),
        (lambda e: e.update(inputs={"a": 1}), "inputs", "expected a list of datasets"),
        (lambda e: e["inputs"].append({"namespace": "s3"}), "inputs[0].name", "got nothing"),
        (lambda e: e["inputs"].append("raw"), "inputs[0]", "expected a dataset"),
        (
            lambda e: e["outputs"].append(dataset("x" * 501)),
            "outputs[0].name",
            "1-500 characters",
        ),
        (
            lambda e: e.update(inputs=[dataset(f"t{i}") for i in range(1_001)]),
            "inputs",
            "at most 1,000 datasets in inputs and outputs together; got 1,001",
        ),
        (
            lambda e: e["outputs"].append(
                {"namespace": "w", "name": "t", "facets": {"version": {"datasetVersion": 3}}}
            ),
            "outputs[0].facets.version.datasetVersion",
            "got 3",
        ),
        (
            lambda e: e["run"]["facets"].update(errorMessage="boom"),
            "run.facets.errorMessage",
            "expected an object",
        ),
    ],
)
def test_a_malformed_event_is_refused_naming_the_field(
    store: Store, change: Any, field: str, message: str
) -> None:
    lineage = Lineage(store)
    bad = event("FAIL", new_id(), "featurize", T0)
    change(bad)
    with pytest.raises(InputError) as caught:
        lineage.ingest_openlineage(bad)
    assert str(caught.value).startswith(f"{field}: ")
    assert message in str(caught.value)
    assert caught.value.column == field
    # In a list, the event is named by its place, and nothing of the list is stored.
    good = event("COMPLETE", new_id(), "extract", T0)
    with pytest.raises(InputError, match=rf"^\[1\]\.{re.escape(field)}: "):
        lineage.ingest_openlineage_many([good, bad])
    assert lineage.runs() == []
    with pytest.raises(InputError, match=r"^\(event\): expected an OpenLineage RunEvent"):
        lineage.ingest_openlineage([good])  # type: ignore[arg-type]


# -- checks before and after a step ------------------------------------------------------------


RANGES = Suite.from_dict(
    {
        "name": "line-ranges",
        "checks": [
            {"check": "not_null", "column": "temperature_c"},
            {"check": "range", "column": "temperature_c", "min": 150, "max": 320},
        ],
    }
)


def test_checks_before_and_after_a_component_are_stored_with_the_run(
    store: Store, tmp_path: Path
) -> None:
    features_suite = tmp_path / "features.yaml"
    Suite.from_dict({"checks": [{"check": "not_null", "column": "temperature_mean"}]}).to_yaml(
        features_suite
    )

    @component("featurize", store=store, checks_before=RANGES, checks_after=features_suite)
    def featurize(frame: pl.DataFrame, *, window: int = 3) -> pl.DataFrame:
        return frame.with_columns(
            pl.col("temperature_c").rolling_mean(window).alias("temperature_mean")
        )

    good = pl.DataFrame({"temperature_c": [231.0, 229.5, 230.2, 232.0]})
    featurize(good, window=1)
    (record,) = Lineage(store).runs("featurize")
    assert record.status == "succeeded"
    assert [(c.stage, c.name, c.passed) for c in record.checks] == [
        ("before", "line-ranges(frame)", True),
        ("after", "features", True),
    ]
    # A failed check is recorded and, with on_fail="record", the step goes on.
    featurize(good.vstack(pl.DataFrame({"temperature_c": [4120.0]})), window=3)
    latest = Lineage(store).runs("featurize")[0]
    assert latest.status == "succeeded"
    before, after = Lineage(store).checks(latest.id)
    assert (before.passed, after.passed) == (False, False)  # and 2 null rolling means
    assert before.result["checks"][1]["n_failed"] == 1
    assert before.result["checks"][1]["sample"] == [{"row": 4, "temperature_c": 4120.0}]
    assert after.result["checks"][0]["n_failed"] == 2


def test_a_failed_check_with_on_fail_raise_fails_the_run(store: Store) -> None:
    called = []

    @component("load", store=store, checks_before={"frame": RANGES}, on_fail="raise")
    def load(frame: pl.DataFrame, limit: int) -> pl.DataFrame:
        called.append(limit)
        return frame.head(limit)

    with pytest.raises(InputError, match=r"check 'line-ranges\(frame\)' before step 'load'"):
        load(pl.DataFrame({"temperature_c": [231.0, None]}), 10)
    assert called == []  # the step did not run on bad data
    (failed,) = Lineage(store).runs("load")
    assert failed.status == "failed"
    assert "not_null(temperature_c)" in failed.error
    assert [(c.stage, c.passed) for c in failed.checks] == [("before", False)]

    @component("clip", store=store, checks_after=RANGES, on_fail="raise")
    def clip(frame: pl.DataFrame) -> pl.DataFrame:
        return frame.with_columns(pl.col("temperature_c") * 10)

    with pytest.raises(InputError, match="after step 'clip' failed"):
        clip(pl.DataFrame({"temperature_c": [231.0]}))
    (clipped,) = Lineage(store).runs("clip")
    assert clipped.status == "failed"
    assert len(clipped.outputs) == 1  # what it made is still known

    with run("train", store=store) as r:
        validation = r.check(RANGES, pl.DataFrame({"temperature_c": [200.0]}), stage="before")
    assert validation.passed
    assert Lineage(store).checks(r.id)[0].name == "line-ranges"


def test_component_checks_are_refused_when_they_cannot_apply(store: Store) -> None:
    with pytest.raises(ParameterError, match="on_fail"):
        component("x", on_fail="ignore")  # type: ignore[arg-type]

    def clean(frame: pl.DataFrame) -> pl.DataFrame:
        return frame

    with pytest.raises(ParameterError, match=r"'raw', not a parameter of clean\(frame:"):
        component("x", store=store, checks_before={"raw": RANGES})(clean)
    with pytest.raises(ParameterError, match="checks_after"):
        component("x", checks_after={"frame": RANGES})  # type: ignore[arg-type]

    @component("fit", store=store, checks_after=RANGES)
    def fit(frame: pl.DataFrame) -> dict[str, float]:
        return {"weight": 0.1}

    with pytest.raises(InputError, match="validate the table it returns; it returned a dict"):
        fit(pl.DataFrame({"temperature_c": [231.0]}))
    assert Lineage(store).runs("fit")[0].status == "failed"


# -- predictions linked to their runs ----------------------------------------------------------


def log_batch(
    store: Store, rowlog: RowLog, batch_id: str, first: int, n: int, run_ref: str
) -> pl.DataFrame:
    """A batch of predictions as the server ingests it: into the row log, and into the store
    with its run and time span."""
    frame = pl.DataFrame(
        {
            "id": [f"{batch_id}-{i}" for i in range(n)],
            "timestamp": [T0 + timedelta(minutes=first + i) for i in range(n)],
            "temperature_c": [230.0 + i % 5 for i in range(n)],
            "prediction": [i % 2 for i in range(n)],
        }
    )
    rowlog.append(MODEL, "1", frame, batch_id=batch_id)
    store.record_batch(
        MODEL,
        batch_id,
        n,
        run_ref=run_ref,
        first_at=frame["timestamp"].min(),  # type: ignore[arg-type]
        last_at=frame["timestamp"].max(),  # type: ignore[arg-type]
    )
    return frame


def test_batches_and_predictions_lead_back_to_their_runs(store: Store, tmp_path: Path) -> None:
    store.create_model(MODEL)
    store.create_version(MODEL, "1")
    rowlog = RowLog(tmp_path / "log")
    lineage = Lineage(store)
    ids = openlineage_pipeline(lineage)  # an orchestrator's featurize job ...
    featurize_external = lineage.get(ids["featurize"]).external_id
    assert featurize_external is not None
    with run("featurize-online", store=store) as online:  # ... and a step of our own
        online.input(pl.DataFrame({"temperature_c": [231.0]}), name="sensor-buffer")
    log_batch(store, rowlog, "b1", 0, 50, str(online.id))  # 08:00-08:49
    log_batch(store, rowlog, "b2", 60, 30, featurize_external.upper())  # 09:00-09:29
    log_batch(store, rowlog, "b3", 90, 30, featurize_external)  # 09:30-09:59
    log_batch(store, rowlog, "b4", 120, 10, "unknown-run")  # 10:00-10:09
    log_batch(store, rowlog, "b5", 130, 10, "")  # 10:10-10:19

    found = lineage.batch_runs(MODEL, T0, T0 + timedelta(hours=3))
    assert [(r.name, n) for r, n in found] == [("featurize", 60), ("featurize-online", 50)]
    # [start, end) overlaps a batch's span: b1 ends 08:49, b3 starts 09:30.
    middle = lineage.batch_runs(MODEL, T0 + timedelta(minutes=49), T0 + timedelta(minutes=90))
    assert [(r.name, n) for r, n in middle] == [("featurize-online", 50), ("featurize", 30)]
    assert lineage.batch_runs(MODEL, T0 + timedelta(minutes=50), T0 + timedelta(hours=1)) == []
    assert lineage.batch_runs(MODEL, T0 + timedelta(hours=2), T0 + timedelta(hours=3)) == []

    traced = lineage.trace_prediction(MODEL, "b2-7", rowlog)
    assert [r.name for r in traced.upstream] == ["featurize", "extract"]
    assert [a.name for a in traced.raw_inputs] == ["s3://plant-raw/line-7/2024-05-01.parquet"]
    assert {r.name for r in traced.downstream} == {"train", "score"}
    mine = lineage.trace_prediction(MODEL, "b1-0", rowlog)
    assert [r.id for r in mine.upstream] == [online.id]
    with pytest.raises(NotFoundError, match="logged no row with id = 'b9-0'"):
        lineage.trace_prediction(MODEL, "b9-0", rowlog)
    with pytest.raises(NotFoundError, match="'unknown-run', which is not recorded"):
        lineage.trace_prediction(MODEL, "b4-1", rowlog)
    with pytest.raises(NotFoundError, match="linked to no pipeline run"):
        lineage.trace_prediction(MODEL, "b5-1", rowlog)
    with pytest.raises(NotFoundError, match="No model named 'defect-modle'"):
        lineage.batch_runs("defect-modle", T0, T0 + timedelta(hours=1))


@pytest.mark.parametrize("store", ["sqlite"], indirect=True)  # the commands open its file
def test_openlineage_files_and_prediction_traces_on_the_command_line(
    store: Store, tmp_path: Path
) -> None:
    run_id = new_id()
    lines = tmp_path / "events.jsonl"
    lines.write_text(
        "\n".join(
            json.dumps(e)
            for e in [
                event("START", run_id, "featurize", T0, inputs=[dataset("raw")]),
                event("COMPLETE", run_id, "featurize", T0 + timedelta(minutes=3)),
            ]
        )
        + "\n"
    )
    url = ["--database-url", f"sqlite:///{tmp_path / 'mlwarden.db'}"]
    result = CliRunner().invoke(cli, ["lineage-ingest", str(lines), *url])
    assert result.exit_code == 0, result.output
    assert f"featurize [succeeded] {run_id} started 2024-05-01 08:00:00" in result.output
    assert "2 event(s), 1 run(s)." in result.output
    single = tmp_path / "event.json"
    single.write_text(json.dumps(event("FAIL", new_id(), "train", T0)))
    result = CliRunner().invoke(cli, ["lineage-ingest", str(single), *url])
    assert "train [failed: failed]" in result.output
    broken = tmp_path / "broken.jsonl"
    broken.write_text(json.dumps(event("START", "not-a-uuid", "x", T0)) + "\n")
    result = CliRunner().invoke(cli, ["lineage-ingest", str(broken), *url])
    assert result.exit_code == 2
    assert "[0].run.runId: expected a UUID string; got 'not-a-uuid'" in result.stderr

    store.create_model(MODEL)
    store.create_version(MODEL, "1")
    log_batch(store, RowLog(tmp_path / "log"), "b1", 0, 5, run_id)
    data = ["--data-dir", str(tmp_path)]
    traced = CliRunner().invoke(cli, ["trace", "b1-3", "--model", MODEL, *url, *data])
    assert traced.exit_code == 0, traced.output
    featurize = Lineage(store).resolve(run_id)
    assert f"prediction b1-3 of {MODEL} came from run {featurize}" in traced.output
    assert "warehouse/raw" in traced.output
    missing = CliRunner().invoke(cli, ["trace", "nope", "--model", MODEL, *url, *data])
    assert missing.exit_code == 2
    assert "logged no row with id = 'nope'" in missing.stderr
