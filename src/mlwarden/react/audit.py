"""The audit log of reaction policies: every action taken, waiting or only simulated.

One row per action and *key*: the key (policy, action, what it is about — an incident or a run
of windows — and whether it is a dry run) is unique in the store, so an action is claimed by
inserting its row, and a second claim of the same key, from this process or another, fails on
the constraint instead of acting twice. The row then moves through its statuses:

* ``running`` → ``done`` or ``failed`` (what happened, in ``detail``);
* ``pending`` (waits for a person) → ``running`` → ``done``/``failed`` when approved, or
  ``rejected``;
* ``dry_run``: what would have happened; nothing was changed.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final

from sqlalchemy import func, select, update

from mlwarden.exceptions import ConflictError, NotFoundError, ParameterError
from mlwarden.store.schema import ModelRow, PolicyActionRow

if TYPE_CHECKING:
    from datetime import datetime

    from sqlalchemy import ColumnElement
    from sqlalchemy.orm import Session

    from mlwarden.store.metadata import Store

__all__ = ["STATUSES", "ActionRecord", "count_actions", "get_action", "list_actions"]

PENDING: Final = "pending"
RUNNING: Final = "running"
DONE: Final = "done"
FAILED: Final = "failed"
REJECTED: Final = "rejected"
DRY_RUN: Final = "dry_run"
STATUSES: Final = (PENDING, RUNNING, DONE, FAILED, REJECTED, DRY_RUN)
# Parts of a result too long for a one-line summary (the detail keeps them).
_LONG: Final = frozenset(("command", "training_set", "stdout_tail", "stderr_tail"))


@dataclass(frozen=True)
class ActionRecord:
    """One entry of the audit log.

    Attributes:
        id: its id (what ``policy approve`` takes).
        model: the model acted on.
        policy: the policy that fired.
        action: the action's key (``rollback``, ``notify``, ...).
        key: what makes it once-only: ``<policy>/<index>:<action>/<subject>[/dry-run]``.
        condition: the condition that fired it, in words.
        incident_id: the incident the condition was about (None for a run of windows).
        window_id: the window in which the condition held.
        status: ``pending``, ``running``, ``done``, ``failed``, ``rejected`` or ``dry_run``.
        dry_run: whether nothing was (or will be) changed.
        detail: the action's parameters, the evidence (alerts or values, per window), what it
            would do, and what it did (its result or error) and the decision on it.
        created_at: when the condition fired it.
        decided_by: who approved or rejected it.
        decided_at: when.
    """

    id: int
    model: str
    policy: str
    action: str
    key: str
    condition: str
    incident_id: int | None
    window_id: int | None
    status: str
    dry_run: bool
    detail: dict[str, Any]
    created_at: datetime
    decided_by: str = ""
    decided_at: datetime | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "model": self.model,
            "policy": self.policy,
            "action": self.action,
            "key": self.key,
            "condition": self.condition,
            "incident_id": self.incident_id,
            "window_id": self.window_id,
            "status": self.status,
            "dry_run": self.dry_run,
            "detail": self.detail,
            "created_at": self.created_at.isoformat(),
            "decided_by": self.decided_by,
            "decided_at": None if self.decided_at is None else self.decided_at.isoformat(),
        }

    @property
    def summary(self) -> str:
        """One line on what it did, would do, or waits to do."""
        detail = self.detail
        if "error" in detail:
            return str(detail["error"])
        result = detail.get("result")
        if isinstance(result, dict) and result:
            shown = {k: v for k, v in result.items() if k not in _LONG}
            return ", ".join(f"{k}={_short(v)}" for k, v in shown.items())
        return str(detail.get("would", ""))


def _short(value: object) -> str:
    text = str(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _record(row: PolicyActionRow, model: str) -> ActionRecord:
    return ActionRecord(
        id=row.id,
        model=model,
        policy=row.policy,
        action=row.action,
        key=row.key,
        condition=row.condition,
        incident_id=row.incident_id,
        window_id=row.window_id,
        status=row.status,
        dry_run=row.dry_run,
        detail=dict(row.detail),
        created_at=row.created_at,
        decided_by=row.decided_by,
        decided_at=row.decided_at,
    )


def taken_keys(store: Store, keys: list[str]) -> set[str]:
    """Which of ``keys`` are in the audit log already."""
    if not keys:
        return set()
    with store.session() as s:
        found = s.scalars(select(PolicyActionRow.key).where(PolicyActionRow.key.in_(keys)))
        return set(found)


def claim(
    store: Store,
    *,
    model: str,
    policy: str,
    action: str,
    key: str,
    condition: str,
    incident_id: int | None,
    window_id: int | None,
    status: str,
    dry_run: bool,
    detail: dict[str, Any],
    now: datetime,
) -> ActionRecord | None:
    """Insert the action's row; None when its key is taken (it fired before, maybe elsewhere)."""
    model_id = store.get_model(model).id
    try:
        with store.session() as s:
            row = PolicyActionRow(
                model_id=model_id,
                policy=policy,
                action=action,
                key=key,
                condition=condition,
                incident_id=incident_id,
                window_id=window_id,
                status=status,
                dry_run=dry_run,
                detail=detail,
                created_at=now,
            )
            s.add(row)
            s.flush()
            return _record(row, model)
    except ConflictError:
        return None


def finish(store: Store, action_id: int, status: str, detail: dict[str, Any]) -> ActionRecord:
    """Set the final status of a running action and add ``detail`` to its detail."""
    with store.session() as s:
        row = _row(s, action_id)
        row.status = status
        row.detail = {**row.detail, **detail}
        s.flush()
        return _record(row, _model_name(s, row.model_id))


def begin_decision(
    store: Store, action_id: int, *, approve: bool, by: str, comment: str, now: datetime
) -> ActionRecord:
    """Move a pending action to ``running`` (approved) or ``rejected``, once: a second
    decision, here or in another process, fails with :class:`ConflictError`."""
    if not by.strip():
        raise ParameterError(
            "Say who decides: 'by' must name a person (e.g. by='alice'); got an empty name.",
            parameter="by",
        )
    status = RUNNING if approve else REJECTED
    with store.session() as s:
        moved = s.execute(
            update(PolicyActionRow)
            .where(PolicyActionRow.id == action_id, PolicyActionRow.status == PENDING)
            .values(status=status, decided_by=by[:200], decided_at=now)
            .execution_options(synchronize_session=False)
        )
        row = _row(s, action_id)
        if getattr(moved, "rowcount", 0) != 1:
            raise ConflictError(_already(row))
        decision = {"approved": approve, "by": by, "comment": comment, "at": now.isoformat()}
        row.detail = {**row.detail, "decision": decision}
        s.flush()
        return _record(row, _model_name(s, row.model_id))


def _already(row: PolicyActionRow) -> str:
    if row.status == DRY_RUN:
        return f"Action {row.id} is a dry run: there is nothing to approve or reject."
    if row.decided_at is None:
        return f"Action {row.id} needs no decision: it is {row.status}."
    return (
        f"Action {row.id} was already decided by {row.decided_by or 'someone'} at "
        f"{row.decided_at:%Y-%m-%d %H:%M} UTC (it is {row.status})."
    )


def get_action(store: Store, action_id: int) -> ActionRecord:
    """One entry of the audit log by its id."""
    with store.session() as s:
        row = _row(s, action_id)
        return _record(row, _model_name(s, row.model_id))


def list_actions(
    store: Store,
    model: str | None = None,
    *,
    incident: int | None = None,
    status: str | None = None,
    limit: int = 200,
) -> list[ActionRecord]:
    """The newest ``limit`` entries of the audit log (of one model, incident or status), newest
    first: by the time the condition fired them, then by id."""
    if isinstance(limit, bool) or not isinstance(limit, int) or limit < 1:
        raise ParameterError(f"'limit' must be an int >= 1; got {limit!r}.", parameter="limit")
    query = select(PolicyActionRow, ModelRow.name).join(
        ModelRow, ModelRow.id == PolicyActionRow.model_id
    )
    query = query.where(*_scope(store, model, incident))
    if status is not None:
        query = query.where(PolicyActionRow.status == status)
    query = query.order_by(PolicyActionRow.created_at.desc(), PolicyActionRow.id.desc())
    with store.session() as s:
        rows = s.execute(query.limit(limit)).all()
        return [_record(row, name) for row, name in rows]


def count_actions(
    store: Store, model: str | None = None, *, incident: int | None = None
) -> dict[str, int]:
    """How many entries of the audit log (of one model, of one incident) have each status."""
    query = (
        select(PolicyActionRow.status, func.count())
        .where(*_scope(store, model, incident))
        .group_by(PolicyActionRow.status)
        .order_by(PolicyActionRow.status)
    )
    with store.session() as s:
        return {str(name): int(n) for name, n in s.execute(query).all()}


def _scope(store: Store, model: str | None, incident: int | None) -> list[ColumnElement[bool]]:
    """The conditions on the audit log's rows of ``model`` and ``incident`` (None: any)."""
    scope: list[ColumnElement[bool]] = []
    if model is not None:
        scope.append(PolicyActionRow.model_id == store.get_model(model).id)
    if incident is not None:
        scope.append(PolicyActionRow.incident_id == incident)
    return scope


def _row(s: Session, action_id: int) -> PolicyActionRow:
    row = s.get(PolicyActionRow, action_id)
    if row is None:
        raise NotFoundError(f"No policy action with id {action_id}.", what="action")
    return row


def _model_name(s: Session, model_id: int) -> str:
    model = s.get(ModelRow, model_id)
    return "" if model is None else str(model.name)
