"""The channel contract: a notification about an incident, sent one way.

A channel is configured by a spec string — ``log``, ``webhook+https://ops.example/hook``,
``alertmanager+http://alertmanager:9093``, ``apprise+slack://T000/B000/XXX`` — or by its
class. ``send`` either delivers or raises; retries and backoff are the dispatcher's job, so a
slow or failing channel never holds up evaluation.
"""

from __future__ import annotations

import difflib
from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

from mlwarden.exceptions import ParameterError

if TYPE_CHECKING:
    from datetime import datetime


@dataclass(frozen=True)
class Notification:
    """An incident as people are told about it."""

    model: str
    version: str
    incident: int
    title: str
    started_at: datetime
    ended_at: datetime
    alerts: tuple[dict[str, Any], ...] = ()
    severity: str = "warning"
    link: str = ""
    # The chance of a window as extreme as the incident's first one on reference-like data.
    surprise: float | None = None

    @property
    def summary(self) -> str:
        return f"[mlwarden] {self.model} {self.version}: {self.title}"

    def body(self) -> str:
        lines = [
            f"Incident {self.incident} of {self.model} (version {self.version}), window "
            f"{self.started_at:%Y-%m-%d %H:%M} to {self.ended_at:%H:%M} UTC:"
        ]
        if self.surprise is not None:
            from mlwarden.alerting.calibration import rarity

            seconds = (self.ended_at - self.started_at).total_seconds()
            lines.append(f"A window like this: {rarity(self.surprise, seconds)}.")
        for alert in self.alerts[:20]:
            bound = []
            if alert.get("lower") is not None:
                bound.append(f">= {alert['lower']:.4g}")
            if alert.get("upper") is not None:
                bound.append(f"<= {alert['upper']:.4g}")
            value = alert.get("value")
            shown = f"{value:.4g}" if isinstance(value, int | float) else str(value)
            lines.append(
                f"- {alert['metric']} {alert.get('column', '')}: {shown} (expected "
                f"{' and '.join(bound) or 'in bounds'})"
            )
        if len(self.alerts) > 20:
            lines.append(f"- and {len(self.alerts) - 20} more")
        if self.link:
            lines.append(self.link)
        return "\n".join(lines)

    def to_dict(self) -> dict[str, Any]:
        return {
            "model": self.model,
            "version": self.version,
            "incident": self.incident,
            "title": self.title,
            "severity": self.severity,
            "started_at": self.started_at.isoformat(),
            "ended_at": self.ended_at.isoformat(),
            "alerts": list(self.alerts),
            "link": self.link,
            "surprise": self.surprise,
        }


class Channel(ABC):
    """Base class of the alert channels; subclasses register themselves by ``key``."""

    key: ClassVar[str]
    example: ClassVar[str]
    _registry: ClassVar[dict[str, type[Channel]]] = {}

    def __init_subclass__(cls, key: str | None = None, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if key is None:
            return
        if key in Channel._registry:
            raise TypeError(
                f"Channel key '{key}' is taken by {Channel._registry[key].__qualname__}; "
                f"{cls.__qualname__} needs another key."
            )
        cls.key = key
        Channel._registry[key] = cls

    @classmethod
    @abstractmethod
    def from_target(cls, target: str) -> Channel:
        """The channel for the part of its spec after ``key+`` (empty for ``log``)."""

    @abstractmethod
    def send(self, notification: Notification) -> None:
        """Deliver, or raise."""

    @abstractmethod
    def spec(self) -> str:
        """The spec string that makes this channel again (secrets included: keep it private)."""

    def __repr__(self) -> str:
        spec = self.spec()
        shown = spec if "+" not in spec else spec.split("+", 1)[0] + "+…"
        return f"{type(self).__name__}({shown!r})"

    def __eq__(self, other: object) -> bool:
        return type(other) is type(self) and other.spec() == self.spec()

    def __hash__(self) -> int:
        return hash(self.spec())


def available_channels() -> list[str]:
    return sorted(Channel._registry)


def get_channel(key: str) -> type[Channel]:
    try:
        return Channel._registry[key]
    except KeyError:
        options = available_channels()
        hint = difflib.get_close_matches(key, options, n=1)
        suggestion = f" Did you mean '{hint[0]}'?" if hint else ""
        raise ParameterError(
            f"'{key}' is not an alert channel. Available: {', '.join(options)}.{suggestion}",
            parameter="channel",
        ) from None


def make_channel(spec: str | Channel) -> Channel:
    """A channel from its spec: ``log``, ``webhook+URL``, ``alertmanager+URL``, ``apprise+URL``.

    Example:
        >>> make_channel("webhook+http://127.0.0.1:9/hook").spec()
        'webhook+http://127.0.0.1:9/hook'
    """
    if isinstance(spec, Channel):
        return spec
    if not isinstance(spec, str) or not spec:
        raise ParameterError(f"A channel spec is a string such as 'log'; got {spec!r}.")
    key, _, target = spec.partition("+")
    return get_channel(key).from_target(target)
