"""The action contract: what a policy does once its condition holds.

An action is a frozen dataclass registered by ``key`` (``class Rollback(Action, key="rollback")``);
a policy file names it by that key (``- rollback: {alias: production}``). ``parse`` reads and
checks its parameters (plus ``approval``, common to every action), ``describe`` says in words
what it would do (the dry run's record), and ``run`` does it and returns what happened, or
raises :class:`ActionError` with what it found.
"""

from __future__ import annotations

import dataclasses
import difflib
from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

from mlwarden.exceptions import MlwardenError
from mlwarden.react.spec import PolicyError, SpecReader

if TYPE_CHECKING:
    from datetime import datetime
    from pathlib import Path

    from mlwarden.react.dispatch import Dispatcher
    from mlwarden.store.metadata import Store, WindowRecord
    from mlwarden.store.rowlog import RowLog

__all__ = ["Action", "ActionContext", "ActionError", "available_actions", "parse_action"]

APPROVAL = ("required", "none")


class ActionError(MlwardenError):
    """An action ran and did not succeed; ``detail`` holds what it found (exit code, output)."""

    def __init__(self, message: str, detail: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.detail = detail or {}


@dataclass(frozen=True)
class ActionContext:
    """Where an action runs: the model, the incident and window that fired it, and the
    services it may use.

    Attributes:
        policy: the policy's name.
        condition: the condition in words (as recorded in the audit log).
        incident: the incident the condition is about (None for a condition on values).
        window: the window in which the condition held.
        evidence: the alerts or metric values that made it hold, one dict each.
        data_dir: where quarantined rows and training sets are written.
        notify: the dispatcher of the caller, for notifications without channels of their own.
        by: who acts: ``policy <name>``, or the person who approved.
    """

    store: Store
    rowlog: RowLog
    model: str
    version: str
    policy: str
    condition: str
    incident: int | None
    window: WindowRecord | None
    now: datetime
    data_dir: Path
    evidence: tuple[dict[str, Any], ...] = ()
    notify: Dispatcher | None = None
    by: str = ""
    key: str = ""

    def values(self) -> dict[str, object]:
        """The placeholders of messages and commands."""
        return {
            "model": self.model,
            "version": self.version,
            "policy": self.policy,
            "incident": "" if self.incident is None else self.incident,
            "condition": self.condition,
            "window_start": "" if self.window is None else self.window.start.isoformat(),
            "window_end": "" if self.window is None else self.window.end.isoformat(),
        }


class Action(ABC):
    """Base class of the actions; subclasses are frozen dataclasses registered by ``key``.

    ``approval_default`` says whether the action waits for a person's approval unless the
    policy says ``approval: none``; ``scalar`` names the field that a plain value sets
    (``- incident: close`` sets ``state``); ``example`` is a valid set of parameters, which the
    contract tests parse.
    """

    key: ClassVar[str]
    example: ClassVar[object]
    approval_default: ClassVar[bool] = False
    scalar: ClassVar[str | None] = None
    placeholders: ClassVar[frozenset[str]] = frozenset(
        ("model", "version", "policy", "incident", "condition", "window_start", "window_end")
    )
    _registry: ClassVar[dict[str, type[Action]]] = {}
    approval: bool

    def __init_subclass__(cls, key: str | None = None, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if key is None:
            return
        if key in Action._registry:
            raise TypeError(
                f"Action key '{key}' is taken by {Action._registry[key].__qualname__}; "
                f"{cls.__qualname__} needs another key."
            )
        cls.key = key
        Action._registry[key] = cls

    @classmethod
    def parse(cls, policy: str, where: str, spec: object) -> Action:
        """The action from its parameters in a policy file (``where`` names their place)."""
        if cls.scalar is not None and spec is not None and not isinstance(spec, dict):
            spec = {cls.scalar: spec}
        reader = SpecReader(policy, where, spec)
        default = "required" if cls.approval_default else "none"
        approval = reader.choice("approval", APPROVAL, default) == "required"
        action = cls.read(reader, approval=approval)
        reader.done()
        return action

    @classmethod
    @abstractmethod
    def read(cls, reader: SpecReader, *, approval: bool) -> Action:
        """The action from its fields; fails through ``reader.error``."""

    @abstractmethod
    def describe(self, ctx: ActionContext) -> str:
        """What running the action would do, in words."""

    @abstractmethod
    def run(self, ctx: ActionContext) -> dict[str, Any]:
        """Do it; what happened, as JSON-ready data. Raise :class:`ActionError` on failure."""

    def params(self) -> dict[str, Any]:
        """The parameters as a policy file writes them (``parse`` reads them back)."""
        out: dict[str, Any] = {}
        for f in dataclasses.fields(self):  # type: ignore[arg-type]
            value = getattr(self, f.name)
            if f.name == "approval":
                value = "required" if value else "none"
            elif isinstance(value, tuple):
                value = list(value)
            out[f.name] = value
        return out


def available_actions() -> list[str]:
    return sorted(Action._registry)


def parse_action(policy: str, where: str, item: object) -> Action:
    """One entry of a policy's ``actions`` list: a mapping of one action key to its parameters.

    Example:
        >>> parse_action("p", "actions[0]", {"rollback": {"alias": "production"}})
        Rollback(alias='production', approval=True)
        >>> parse_action("p", "actions[0]", {"rolback": {}})
        Traceback (most recent call last):
        ...
        mlwarden.react.spec.PolicyError: policy 'p': actions[0]: 'rolback' is not an action.
        Available: incident, notify, quarantine, retrain, rollback, webhook. Did you mean
        'rollback'?
    """
    if not isinstance(item, dict) or len(item) != 1:
        raise PolicyError(
            f"policy '{policy}': {where}: expected one action as a mapping such as "
            f"'- notify: {{channels: [log]}}', got {item!r}",
            policy=policy,
            field=where,
        )
    ((key, spec),) = item.items()
    cls = Action._registry.get(str(key))
    if cls is None:
        options = available_actions()
        hint = difflib.get_close_matches(str(key), options, n=1)
        suggestion = f" Did you mean '{hint[0]}'?" if hint else ""
        raise PolicyError(
            f"policy '{policy}': {where}: '{key}' is not an action. Available: "
            f"{', '.join(options)}.{suggestion}",
            policy=policy,
            field=where,
        )
    return cls.parse(policy, f"{where}.{key}", spec)
