"""The lineage routes of the HTTP API: OpenLineage events in; runs, their checks and staleness,
traces, and the run behind a prediction out.

``POST /lineage`` is the endpoint an OpenLineage HTTP transport (Airflow, Spark, dbt, Dagster)
is pointed at: one RunEvent, or a JSON list of up to ``MAX_EVENTS``; every event is checked
before the first is stored, and a malformed one is refused (422) with the field it got wrong.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Annotated, Any, Final

from fastapi import APIRouter, HTTPException, Query, Request
from starlette.concurrency import run_in_threadpool

from mlwarden.lineage import Lineage

# FastAPI reads the dependencies from the annotations at runtime.
from mlwarden.server.app import ReadToken, WriteToken, _body

if TYPE_CHECKING:
    from mlwarden.lineage import CheckRecord, RunRecord, Trace

router = APIRouter()

MAX_EVENTS: Final = 1_000


def _lineage(request: Request) -> Lineage:
    """The app's lineage, made once (making it migrates the store)."""
    lineage: Lineage | None = getattr(request.app.state, "lineage", None)
    if lineage is None or lineage.store is not request.app.state.store:
        lineage = Lineage(request.app.state.store)
        request.app.state.lineage = lineage
    return lineage


@router.post(
    "/lineage",
    tags=["lineage"],
    openapi_extra={
        "requestBody": {
            "content": {
                "application/json": {
                    "schema": {
                        "description": "An OpenLineage RunEvent, or a list of them.",
                        "oneOf": [
                            {"type": "object"},
                            {"type": "array", "items": {"type": "object"}, "maxItems": MAX_EVENTS},
                        ],
                    }
                }
            },
            "required": True,
        }
    },
)
async def ingest_lineage(request: Request, _: WriteToken) -> dict[str, list[int]]:
    """Record OpenLineage RunEvents: one event, or a JSON list of up to 1,000. Returns the ids
    of their runs, in the order of the events."""
    body = await _body(request, request.app.state.settings.max_request_bytes)
    document = _json(body)
    lineage = _lineage(request)
    if not isinstance(document, list):
        return {"run_ids": [await run_in_threadpool(lineage.ingest_openlineage, document)]}
    if not document:
        raise HTTPException(
            422, [{"loc": ["body"], "msg": "the list holds no events", "type": "too_short"}]
        )
    if len(document) > MAX_EVENTS:
        raise HTTPException(
            413, f"A request holds at most {MAX_EVENTS:,} events; got {len(document):,}."
        )
    return {"run_ids": await run_in_threadpool(lineage.ingest_openlineage_many, document)}


@router.get("/runs", tags=["lineage"])
def list_runs(
    request: Request,
    _: ReadToken,
    name: Annotated[str | None, Query(max_length=200)] = None,
    limit: Annotated[int, Query(ge=1, le=1_000)] = 100,
) -> list[dict[str, Any]]:
    """The newest pipeline runs (of the step ``name``), newest first."""
    return [_run_doc(r) for r in _lineage(request).runs(name, limit=limit)]


@router.get("/runs/{run}", tags=["lineage"])
def get_run(request: Request, run: str, _: ReadToken) -> dict[str, Any]:
    """One run, by its id or its OpenLineage run id: inputs, outputs, checks with their full
    results, and why its results may be stale."""
    lineage = _lineage(request)
    record = lineage.get(lineage.resolve(run))
    return {
        **_run_doc(record, results=True),
        "stale": lineage.stale(record.id),
    }


@router.get("/trace/{target}", tags=["lineage"])
def trace(request: Request, target: str, _: ReadToken) -> dict[str, Any]:
    """Where a run (its id) or an artifact (a sha256 prefix of 8 or more hex digits) came from,
    and what was made from it."""
    found = _lineage(request).trace(int(target) if target.isdigit() else target)
    return _trace_doc(found)


@router.get("/models/{model}/predictions/{prediction_id}/trace", tags=["lineage"])
def trace_prediction(
    request: Request,
    model: str,
    prediction_id: str,
    _: ReadToken,
    id_column: Annotated[str, Query(min_length=1, max_length=200)] = "id",
    timestamp: Annotated[str, Query(min_length=1, max_length=200)] = "timestamp",
) -> dict[str, Any]:
    """The pipeline run that made the features of one prediction (found by its row id in the
    row log), and everything upstream of it."""
    found = _lineage(request).trace_prediction(
        model, prediction_id, request.app.state.rowlog, id=id_column, timestamp=timestamp
    )
    return {
        "model": model,
        "prediction_id": prediction_id,
        "run": _run_doc(found.upstream[0]),
        **_trace_doc(found),
    }


def _json(body: bytes) -> Any:
    try:
        return json.loads(body)
    except (ValueError, UnicodeDecodeError) as exc:
        raise HTTPException(
            422, [{"loc": ["body"], "msg": f"not JSON: {exc}", "type": "json_invalid"}]
        ) from exc


def _run_doc(record: RunRecord, *, results: bool = False) -> dict[str, Any]:
    return {
        "id": record.id,
        "external_id": record.external_id,
        "name": record.name,
        "status": record.status,
        "started_at": record.started_at.isoformat(),
        "ended_at": None if record.ended_at is None else record.ended_at.isoformat(),
        "code_version": record.code_version,
        "params": record.params,
        "owner": record.owner,
        "tags": record.tags,
        "error": record.error,
        "inputs": [vars(a) for a in record.inputs],
        "outputs": [vars(a) for a in record.outputs],
        "checks": [_check_doc(c, results) for c in record.checks],
    }


def _check_doc(check: CheckRecord, result: bool) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "id": check.id,
        "stage": check.stage,
        "name": check.name,
        "passed": check.passed,
        "created_at": check.created_at.isoformat(),
    }
    if result:
        doc["result"] = check.result
    return doc


def _trace_doc(found: Trace) -> dict[str, Any]:
    return {
        "upstream": [_run_doc(r) for r in found.upstream],
        "raw_inputs": [vars(a) for a in found.raw_inputs],
        "downstream": [_run_doc(r) for r in found.downstream],
    }
