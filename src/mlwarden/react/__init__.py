"""Reaction: alert channels (and, later, policies and their actions)."""

from __future__ import annotations

from mlwarden.react.channels import Channel, Notification, available_channels, make_channel
from mlwarden.react.dispatch import Dispatcher

__all__ = ["Channel", "Dispatcher", "Notification", "available_channels", "make_channel"]
