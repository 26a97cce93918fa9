"""Policy actions, one registry: adding an action is one new file here plus its import below."""

from __future__ import annotations

from mlwarden.react.actions import incident, notify, quarantine, retrain, rollback, webhook
from mlwarden.react.actions.base import (
    Action,
    ActionContext,
    ActionError,
    available_actions,
    parse_action,
)

__all__ = ["Action", "ActionContext", "ActionError", "available_actions", "parse_action"]

_ACTIONS = (incident, notify, quarantine, retrain, rollback, webhook)
