"""Alert channels, one registry: adding a channel is one new file here plus its import below."""

from __future__ import annotations

from mlwarden.react.channels import apprise, log, webhook
from mlwarden.react.channels.base import (
    Channel,
    Notification,
    available_channels,
    get_channel,
    make_channel,
)

__all__ = [
    "Channel",
    "Notification",
    "available_channels",
    "get_channel",
    "make_channel",
]

_CHANNELS = (apprise, log, webhook)
