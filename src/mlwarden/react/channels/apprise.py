"""Notification services through apprise: Slack, Microsoft Teams, email, and many more."""

from __future__ import annotations

from mlwarden.exceptions import ParameterError
from mlwarden.react.channels.base import Channel, Notification


class AppriseChannel(Channel, key="apprise"):
    """Notify through an apprise URL (``slack://…``, ``msteams://…``, ``mailto://…``).

    Example:
        >>> from mlwarden.react.channels import make_channel
        >>> make_channel("apprise+json://127.0.0.1:9/alerts").target
        'json://127.0.0.1:9/alerts'
    """

    example = "apprise+json://127.0.0.1:9/alerts"

    def __init__(self, target: str) -> None:
        import apprise

        client = apprise.Apprise()
        if not target or not client.add(target):
            raise ParameterError(
                f"'{target}' is not a notification URL apprise understands (e.g. "
                "'slack://TokenA/TokenB/TokenC', 'mailto://user:pass@example.com').",
                parameter="channel",
            )
        self.target = target
        self._client = client

    @classmethod
    def from_target(cls, target: str) -> AppriseChannel:
        return cls(target)

    def send(self, notification: Notification) -> None:
        if not self._client.notify(title=notification.summary, body=notification.body()):
            raise OSError(f"apprise could not deliver to {self.target.split('://')[0]}://…")

    def spec(self) -> str:
        return f"apprise+{self.target}"
