"""The log channel: incidents as warnings on the ``mlwarden.alerts`` logger."""

from __future__ import annotations

import logging

from mlwarden.exceptions import ParameterError
from mlwarden.react.channels.base import Channel, Notification

LOGGER = logging.getLogger("mlwarden.alerts")


class LogChannel(Channel, key="log"):
    """Write each incident to the ``mlwarden.alerts`` logger (level WARNING).

    Example:
        >>> from mlwarden.react.channels import make_channel
        >>> make_channel("log").spec()
        'log'
    """

    example = "log"

    @classmethod
    def from_target(cls, target: str) -> LogChannel:
        if target:
            raise ParameterError(f"The log channel takes no target; got 'log+{target}'.")
        return cls()

    def send(self, notification: Notification) -> None:
        LOGGER.warning("%s\n%s", notification.summary, notification.body())

    def spec(self) -> str:
        return "log"
