"""The policy routes of the HTTP API: the audit log of policy actions, and the decisions on
actions that wait for approval.

Reads need a read token (unless the server runs with ``public_read``), decisions a write
token. Approving runs the action before answering, so the answer says how it ended (``done``
or ``failed``); deciding an action that is not pending answers 409.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from pydantic import BaseModel, Field

from mlwarden.react.policies import actions, decide, get_action

# FastAPI reads the dependencies from the annotations at runtime.
from mlwarden.server.app import ReadToken, WriteToken  # noqa: TC001

router = APIRouter()


class Decision(BaseModel):
    """Who approves or rejects a pending action, and why."""

    by: str = Field(min_length=1, max_length=200)
    comment: str = Field(default="", max_length=2_000)


@router.get("/models/{model}/actions", tags=["policies"])
def model_actions(
    request: Request,
    model: str,
    _: ReadToken,
    incident: int | None = None,
    limit: Annotated[int, Query(ge=1, le=10_000)] = 200,
) -> list[dict[str, Any]]:
    """The audit log of a model's policy actions (of one ``incident``), newest first."""
    found = actions(request.app.state.store, model, incident=incident, limit=limit)
    return [r.to_dict() for r in found]


@router.get("/actions/{action_id}", tags=["policies"])
def one_action(request: Request, action_id: int, _: ReadToken) -> dict[str, Any]:
    """One policy action: the condition that fired it, the evidence, what it did."""
    return get_action(request.app.state.store, action_id).to_dict()


@router.post("/actions/{action_id}/approve", tags=["policies"])
def approve(request: Request, action_id: int, decision: Decision, _: WriteToken) -> dict[str, Any]:
    """Approve a pending action: it runs now; the answer says whether it succeeded."""
    return _decide(request, action_id, decision, approve=True)


@router.post("/actions/{action_id}/reject", tags=["policies"])
def reject(request: Request, action_id: int, decision: Decision, _: WriteToken) -> dict[str, Any]:
    """Reject a pending action: it never runs."""
    return _decide(request, action_id, decision, approve=False)


def _decide(
    request: Request, action_id: int, decision: Decision, *, approve: bool
) -> dict[str, Any]:
    from mlwarden.react.dispatch import Dispatcher

    state = request.app.state
    channels = tuple(state.settings.channels)
    dispatcher = Dispatcher(channels) if approve and channels else None
    try:
        record = decide(
            state.store,
            state.rowlog,
            action_id,
            approve=approve,
            by=decision.by,
            comment=decision.comment,
            data_dir=state.settings.data_dir,
            notify=dispatcher,
        )
    finally:
        if dispatcher is not None:
            dispatcher.close(timeout=5)
    return record.to_dict()
