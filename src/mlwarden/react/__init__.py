"""Reaction: alert channels, the dispatcher that delivers to them, and reaction policies
(:mod:`mlwarden.react.policies`) with their actions and audit log.

Names load on first use, so that the command line starts without the channels' libraries."""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from mlwarden.react.channels import (
        Channel,
        Notification,
        available_channels,
        make_channel,
    )
    from mlwarden.react.dispatch import Dispatcher

__all__ = ["Channel", "Dispatcher", "Notification", "available_channels", "make_channel"]

_HOMES = {
    "Channel": "mlwarden.react.channels",
    "Notification": "mlwarden.react.channels",
    "available_channels": "mlwarden.react.channels",
    "make_channel": "mlwarden.react.channels",
    "Dispatcher": "mlwarden.react.dispatch",
}


def __getattr__(name: str) -> Any:
    if name in _HOMES:
        return getattr(importlib.import_module(_HOMES[name]), name)
    raise AttributeError(f"module 'mlwarden.react' has no attribute {name!r}")
