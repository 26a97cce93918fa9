"""Incident: open or close the incident that fired the policy."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from mlwarden.react.actions.base import Action, ActionContext, ActionError

if TYPE_CHECKING:
    from mlwarden.react.spec import SpecReader


@dataclass(frozen=True)
class Incident(Action, key="incident"):
    """Set the state of the incident the condition is about: ``close`` (resolved now) or
    ``open``. On a condition over metric values, which names no incident, ``open`` opens a new
    incident starting with the window, and ``close`` has nothing to do.

    Example:
        >>> Incident.parse("p", "actions[0].incident", "close")
        Incident(state='close', approval=False)
    """

    state: str = "close"
    approval: bool = False

    scalar = "state"
    example = "close"

    @classmethod
    def read(cls, reader: SpecReader, *, approval: bool) -> Incident:
        return cls(state=reader.choice("state", ("open", "close")), approval=approval)

    def describe(self, ctx: ActionContext) -> str:
        if ctx.incident is None:
            return "open a new incident" if self.state == "open" else "no incident to close"
        return f"{self.state} incident {ctx.incident}"

    def run(self, ctx: ActionContext) -> dict[str, Any]:
        from mlwarden.store.schema import IncidentRow

        if ctx.incident is None:
            if self.state == "close":
                return {"incident": None, "changed": False, "reason": "no incident to close"}
            start = ctx.window.start if ctx.window is not None else ctx.now
            opened = ctx.store.open_incident(ctx.model, f"policy {ctx.policy}", start)
            return {"incident": opened, "changed": True, "status": "open"}
        status = "closed" if self.state == "close" else "open"
        with ctx.store.session() as s:
            row = s.get(IncidentRow, ctx.incident)
            if row is None:
                raise ActionError(f"Incident {ctx.incident} no longer exists.")
            before = row.status
            if before != status:
                row.status = status
                row.ended_at = ctx.now if status == "closed" else None
        return {"incident": ctx.incident, "changed": before != status, "from": before, "to": status}
