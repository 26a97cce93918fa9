"""Notify: tell people through the alert channels (``log``, ``webhook+URL``, ``apprise+URL``)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

from mlwarden.exceptions import ParameterError
from mlwarden.react.actions.base import Action, ActionContext, ActionError
from mlwarden.react.spec import check_template, render

if TYPE_CHECKING:
    from mlwarden.react.channels.base import Notification
    from mlwarden.react.spec import SpecReader


@dataclass(frozen=True)
class Notify(Action, key="notify"):
    """Send a notification about what fired the policy to ``channels`` (channel specs), or to
    the caller's channels (``policy run --notify``, the server's) when none are given.

    ``message`` is the notification's title; ``{model}``, ``{version}``, ``{policy}``,
    ``{incident}``, ``{condition}``, ``{window_start}`` and ``{window_end}`` are filled in. The
    alerts or values that fired the policy are the notification's body.

    Example:
        >>> Notify.parse("p", "actions[0].notify", {"channels": ["log"], "message": "{model}!"})
        Notify(channels=('log',), message='{model}!', approval=False)
    """

    channels: tuple[str, ...] = ()
    message: str = ""
    approval: bool = False

    example: ClassVar[dict[str, object]] = {"channels": ["log"], "message": "{model}: {condition}"}

    @classmethod
    def read(cls, reader: SpecReader, *, approval: bool) -> Notify:
        from mlwarden.react.channels import make_channel

        channels = reader.strings("channels", ())
        for i, spec in enumerate(channels):
            try:
                make_channel(spec)
            except ParameterError as exc:
                raise reader.error(f"channels[{i}]", str(exc).rstrip(".")) from exc
        message = reader.string("message", "")
        check_template(reader, "message", message, cls.placeholders)
        return cls(channels=channels, message=message, approval=approval)

    def describe(self, ctx: ActionContext) -> str:
        where = ", ".join(self.channels) if self.channels else "the caller's channels"
        return f"notify {where}: {self._title(ctx)}"

    def run(self, ctx: ActionContext) -> dict[str, Any]:
        from mlwarden.react.dispatch import Dispatcher

        notification = self._notification(ctx)
        if not self.channels:
            if ctx.notify is None:
                raise ActionError(
                    "The notify action has no channels and none were given to the run; list "
                    "them in the policy (channels: [log]) or pass --notify."
                )
            ctx.notify.submit(notification)
            return {"title": notification.title, "channels": "caller", "submitted": True}
        with Dispatcher(self.channels, attempts=3, backoff=0.5, max_wait=5.0) as dispatcher:
            dispatcher.submit(notification)
        stats = dispatcher.stats()
        detail = {
            "title": notification.title,
            "channels": list(self.channels),
            "delivered": stats["delivered"],
            "failed": stats["failed"] + stats["dropped"],
        }
        if stats["delivered"] < len(self.channels):
            raise ActionError(
                f"The notification reached {stats['delivered']} of {len(self.channels)} "
                "channels (see the log for why).",
                detail,
            )
        return detail

    def _title(self, ctx: ActionContext) -> str:
        if self.message:
            return render(self.message, ctx.values())
        return f"policy {ctx.policy}: {ctx.condition}"

    def _notification(self, ctx: ActionContext) -> Notification:
        from mlwarden.react.channels.base import Notification

        start = ctx.window.start if ctx.window is not None else ctx.now
        end = ctx.window.end if ctx.window is not None else ctx.now
        return Notification(
            model=ctx.model,
            version=ctx.version,
            incident=ctx.incident or 0,
            title=self._title(ctx),
            started_at=start,
            ended_at=end,
            alerts=tuple(
                {
                    "metric": e.get("metric", ""),
                    "column": e.get("column", ""),
                    "segment": e.get("segment", ""),
                    "value": e.get("value"),
                    "lower": e.get("lower"),
                    "upper": e.get("upper"),
                }
                for e in ctx.evidence
            ),
            severity="error"
            if any(e.get("severity") == "error" for e in ctx.evidence)
            else "warning",
        )
