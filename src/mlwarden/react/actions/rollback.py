"""Rollback: move an alias back to the version it held before its last move."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

from mlwarden.exceptions import NotFoundError
from mlwarden.react.actions.base import Action, ActionContext, ActionError

if TYPE_CHECKING:
    from mlwarden.react.spec import SpecReader


@dataclass(frozen=True)
class Rollback(Action, key="rollback"):
    """Point ``alias`` (default ``production``) back at the version it held before its last
    move (:meth:`mlwarden.registry.Registry.rollback`); the alias history records the move, by
    the policy (or by who approved it), and the audit log the versions from and to. Waits for
    approval unless the policy says ``approval: none``.

    Example:
        >>> Rollback.parse("p", "actions[0].rollback", {"alias": "staging", "approval": "none"})
        Rollback(alias='staging', approval=False)
    """

    alias: str = "production"
    approval: bool = True

    approval_default = True
    example: ClassVar[dict[str, object]] = {"alias": "production"}

    @classmethod
    def read(cls, reader: SpecReader, *, approval: bool) -> Rollback:
        return cls(alias=reader.string("alias", "production"), approval=approval)

    def describe(self, ctx: ActionContext) -> str:
        try:
            moves = [h for h in ctx.store.alias_history(ctx.model, self.alias) if h.version]
        except NotFoundError:
            moves = []
        if not moves or moves[-1].previous is None:
            return f"roll back alias '{self.alias}': it has no earlier version"
        last = moves[-1]
        return f"move alias '{self.alias}' of {ctx.model} from {last.version} to {last.previous}"

    def run(self, ctx: ActionContext) -> dict[str, Any]:
        from mlwarden.registry import Registry

        try:
            change = Registry(ctx.store).rollback(ctx.model, alias=self.alias, by=ctx.by)
        except NotFoundError as exc:
            raise ActionError(str(exc), {"alias": self.alias}) from exc
        return {"alias": self.alias, "from": change.previous, "to": change.version}
