"""Reading the fields of a policy file: typed, with errors that name the policy and the field.

Every field of a policy (``when.consecutive``, ``actions[2].rollback.alias``) is read through a
:class:`SpecReader`, so every mistake is reported the same way::

    policy 'page-on-stuck': when.consecutive: expected an integer ≥ 1, got 0

Example:
    >>> reader = SpecReader("page-on-stuck", "when", {"consecutive": 0})
    >>> reader.integer("consecutive", minimum=1, default=1)
    Traceback (most recent call last):
    ...
    mlwarden.react.spec.PolicyError: policy 'page-on-stuck': when.consecutive: expected an
    integer ≥ 1, got 0
"""

from __future__ import annotations

import difflib
import string
from typing import TYPE_CHECKING, Any

from mlwarden.exceptions import ParameterError

if TYPE_CHECKING:
    from collections.abc import Collection, Sequence
    from pathlib import Path

__all__ = ["PolicyError", "SpecReader", "check_template", "render"]

_MISSING: Any = object()


class PolicyError(ParameterError):
    """A policy file is invalid. ``policy`` names the policy, ``field`` the field at fault
    (``when.consecutive``), ``path`` the file."""

    def __init__(
        self,
        message: str,
        *,
        policy: str | None = None,
        field: str | None = None,
        path: str | Path | None = None,
    ) -> None:
        super().__init__(message, parameter=field)
        self.policy = policy
        self.field = field
        self.path = str(path) if path is not None else None


def _shown(value: object) -> str:
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list | tuple):
        return "a list"
    return repr(value)


class SpecReader:
    """The fields of one mapping of a policy (``when``, or one action's parameters).

    Parameters:
        policy: the policy's name, for messages (None before the name is known).
        where: the mapping's place (``"when"``, ``"actions[1].rollback"``).
        mapping: the parsed YAML (a dict; None reads as empty).
    """

    def __init__(self, policy: str | None, where: str, mapping: object) -> None:
        self.policy = policy
        self.where = where
        if mapping is None:
            mapping = {}
        if not isinstance(mapping, dict):
            raise self.error(None, f"expected a mapping, got {_shown(mapping)}")
        self.mapping: dict[str, Any] = {str(k): v for k, v in mapping.items()}
        self._read: set[str] = set()

    def field(self, key: str | None) -> str:
        if key is None:
            return self.where
        return f"{self.where}.{key}" if self.where else key

    def error(self, key: str | None, message: str) -> PolicyError:
        field = self.field(key)
        prefix = f"policy '{self.policy}': " if self.policy is not None else ""
        return PolicyError(f"{prefix}{field}: {message}", policy=self.policy, field=field)

    def raw(self, key: str, default: Any = None) -> Any:
        """The value as parsed, unchecked (None when absent); the field counts as read."""
        self._read.add(key)
        return self.mapping.get(key, default)

    def _get(self, key: str, default: Any) -> Any:
        self._read.add(key)
        if key not in self.mapping or self.mapping[key] is None:
            if default is _MISSING:
                raise self.error(key, "is required")
            return default
        return self.mapping[key]

    def string(self, key: str, default: Any = _MISSING) -> Any:
        value = self._get(key, default)
        if value is not default and not isinstance(value, str):
            raise self.error(key, f"expected a string, got {_shown(value)}")
        return value

    def choice(self, key: str, options: Sequence[str], default: Any = _MISSING) -> Any:
        value = self._get(key, default)
        if value is not default and value not in options:
            hint = difflib.get_close_matches(str(value), options, n=1)
            suggestion = f" (did you mean '{hint[0]}'?)" if hint else ""
            expected = " or ".join(f"'{o}'" for o in options)
            raise self.error(key, f"expected {expected}, got {_shown(value)}{suggestion}")
        return value

    def integer(self, key: str, *, minimum: int, default: Any = _MISSING) -> Any:
        value = self._get(key, default)
        if value is default:
            return value
        if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
            raise self.error(key, f"expected an integer ≥ {minimum}, got {_shown(value)}")
        return value

    def number(self, key: str, *, positive: bool = False, default: Any = _MISSING) -> Any:
        value = self._get(key, default)
        if value is default:
            return value
        ok = isinstance(value, int | float) and not isinstance(value, bool)
        if ok and value != value:  # NaN
            ok = False
        if ok and positive and value <= 0:
            ok = False
        if not ok:
            what = "a positive number" if positive else "a number"
            raise self.error(key, f"expected {what}, got {_shown(value)}")
        return float(value)

    def strings(self, key: str, default: Any = _MISSING, *, non_empty: bool = False) -> Any:
        value = self._get(key, default)
        if value is default:
            return value
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise self.error(key, f"expected a list of strings, got {_shown(value)}")
        if non_empty and not value:
            raise self.error(key, "expected a non-empty list of strings, got an empty list")
        return tuple(value)

    def done(self) -> None:
        """Fail on a field that was not read: a typo must not be ignored silently."""
        unknown = sorted(set(self.mapping) - self._read)
        if unknown:
            known = sorted(self._read)
            hint = difflib.get_close_matches(unknown[0], known, n=1)
            suggestion = f" Did you mean '{hint[0]}'?" if hint else ""
            raise self.error(
                unknown[0],
                f"unknown field; expected one of {', '.join(known)}.{suggestion}",
            )


def check_template(reader: SpecReader, key: str, template: str, names: Collection[str]) -> None:
    """Fail when ``template`` uses a ``{placeholder}`` not in ``names`` or is malformed."""
    try:
        fields = [name for _, name, _, _ in string.Formatter().parse(template) if name is not None]
    except ValueError as exc:
        raise reader.error(
            key, f"expected text with {{placeholders}}, got {template!r}: {exc}"
        ) from exc
    for name in fields:
        if name not in names:
            allowed = ", ".join(f"{{{n}}}" for n in sorted(names))
            raise reader.error(
                key, f"unknown placeholder {{{name}}}; expected one of {allowed}"
            ) from None


def render(template: str, values: dict[str, object]) -> str:
    """``template`` with its ``{placeholders}`` (checked by :func:`check_template`) filled in.

    Example:
        >>> render("python train.py {model}", {"model": "line"})
        'python train.py line'
    """
    return template.format_map({k: "" if v is None else v for k, v in values.items()})
