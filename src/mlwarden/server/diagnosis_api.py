"""The diagnosis routes of the HTTP API: the ranked likely causes of an incident."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from starlette.concurrency import run_in_threadpool

from mlwarden.server.app import ReadToken  # noqa: TC001 (FastAPI reads it at run time)

router = APIRouter()


@router.get("/incidents/{incident_id}/diagnosis", tags=["alerts"])
async def incident_diagnosis(
    request: Request, incident_id: int, _: ReadToken, refresh: bool = False
) -> dict[str, Any]:
    """The incident's likely causes, likeliest first, each with its evidence; kept with the
    incident and computed again when it changed (or with ``refresh=true``)."""
    from mlwarden.diagnosis import diagnose

    diagnosis = await run_in_threadpool(
        diagnose, request.app.state.store, request.app.state.rowlog, incident_id, refresh=refresh
    )
    return diagnosis.to_dict()
