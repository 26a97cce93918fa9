"""Webhook: POST what fired the policy as JSON to a URL (a pipeline trigger, a ticket system)."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

from mlwarden.react.actions.base import Action, ActionContext, ActionError

if TYPE_CHECKING:
    from mlwarden.react.spec import SpecReader


@dataclass(frozen=True)
class Webhook(Action, key="webhook"):
    """POST a JSON document to ``url`` within ``timeout`` seconds: ``policy``, ``model``,
    ``version``, ``incident``, ``window`` (id, start, end), ``condition``, ``evidence`` and
    ``key`` (the action's idempotency key: a receiver can drop a repeated delivery). A status
    of 300 or more, a refused connection or a timeout fails the action.

    Example:
        >>> Webhook.parse("p", "actions[0].webhook", {"url": "http://127.0.0.1:9000/hook"})
        Webhook(url='http://127.0.0.1:9000/hook', timeout=10.0, approval=False)
    """

    url: str
    timeout: float = 10.0
    approval: bool = False

    example: ClassVar[dict[str, object]] = {"url": "http://127.0.0.1:9/hook", "timeout": 5}

    @classmethod
    def read(cls, reader: SpecReader, *, approval: bool) -> Webhook:
        url = reader.string("url")
        if not url.startswith(("http://", "https://")):
            raise reader.error("url", f"expected an http(s) URL, got {url!r}")
        timeout = reader.number("timeout", positive=True, default=10.0)
        return cls(url=url, timeout=timeout, approval=approval)

    def describe(self, ctx: ActionContext) -> str:
        return f"POST the incident as JSON to {self.url}"

    def payload(self, ctx: ActionContext) -> dict[str, Any]:
        window = ctx.window
        return {
            "policy": ctx.policy,
            "model": ctx.model,
            "version": ctx.version,
            "incident": ctx.incident,
            "window": None
            if window is None
            else {
                "id": window.id,
                "start": window.start.isoformat(),
                "end": window.end.isoformat(),
            },
            "condition": ctx.condition,
            "evidence": list(ctx.evidence),
            "key": ctx.key,
        }

    def run(self, ctx: ActionContext) -> dict[str, Any]:
        request = urllib.request.Request(
            self.url,
            data=json.dumps(self.payload(ctx)).encode("utf-8"),
            headers={"Content-Type": "application/json", "User-Agent": "mlwarden"},
            method="POST",
        )
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:
                status = int(response.status)
        except urllib.error.HTTPError as exc:
            raise ActionError(
                f"{self.url} answered {exc.code}.", {"url": self.url, "status": exc.code}
            ) from exc
        except (OSError, ValueError) as exc:  # refused, unreachable, timed out
            raise ActionError(f"{self.url} could not be reached: {exc}", {"url": self.url}) from exc
        if status >= 300:
            raise ActionError(f"{self.url} answered {status}.", {"url": self.url, "status": status})
        return {"url": self.url, "status": status}
