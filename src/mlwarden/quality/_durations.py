"""Durations as people write them in suites (``"90s"``, ``"15m"``, ``"2h"``, ``"1d"``) and back."""

from __future__ import annotations

import math
import re
from typing import Final

from mlwarden.exceptions import ParameterError

_UNITS: Final = {"ms": 0.001, "s": 1.0, "m": 60.0, "min": 60.0, "h": 3600.0, "d": 86400.0}
_UNITS.update({"w": 7 * 86400.0})
_PATTERN: Final = re.compile(r"(\d+(?:\.\d+)?)\s*(ms|min|s|m|h|d|w)")


def parse_duration(value: object, name: str, owner: str) -> float:
    """Seconds in ``value``: a number of seconds or a string such as ``"1h30m"`` or ``"45s"``.

    Example:
        >>> parse_duration("1h30m", "max_age", "Freshness")
        5400.0
    """
    if isinstance(value, int | float) and not isinstance(value, bool) and value >= 0:
        return float(value)
    if isinstance(value, str):
        text = value.strip().replace(" ", "")
        parts = _PATTERN.findall(text)
        if parts and "".join(n + u for n, u in parts) == text:
            return sum(float(n) * _UNITS[u] for n, u in parts)
    raise ParameterError(
        f"The '{name}' parameter of {owner} must be a duration such as '90s', '15m', '2h' or "
        f"'1d' (or a number of seconds >= 0); got {value!r}.",
        parameter=name,
    )


def format_duration(seconds: float) -> str:
    """A short human reading of a duration: ``"2 h 13 min"``, ``"45 s"``, ``"3 d 4 h"``.

    Example:
        >>> format_duration(7980)
        '2 h 13 min'
    """
    if seconds != seconds:  # NaN
        return "n/a"
    sign = "-" if seconds < 0 else ""
    seconds = abs(seconds)
    if seconds < 1:
        return f"{sign}{seconds * 1000:.0f} ms"
    if seconds < 60:
        return f"{sign}{seconds:.3g} s"
    if seconds < 3600:
        minutes, rest = divmod(round(seconds), 60)
        return f"{sign}{minutes} min" + (f" {rest} s" if rest else "")
    hours, minutes = divmod(round(seconds / 60), 60)
    if hours < 24:
        return f"{sign}{hours} h" + (f" {minutes} min" if minutes else "")
    days, hours = divmod(hours, 24)
    return f"{sign}{days} d" + (f" {hours} h" if hours else "")


def duration_text(seconds: float) -> str:
    """A duration string :func:`parse_duration` reads, rounded *up* to a short form.

    At most two units, so it reads at a glance and lies at most one unit of the smaller above
    ``seconds`` (milliseconds below 1 s, seconds below 1 h, minutes below 1 d, hours above).

    Example:
        >>> duration_text(585.0), duration_text(7979.5), duration_text(0.25)
        ('9m45s', '2h13m', '250ms')
    """
    if not seconds > 0:
        return "0s"
    if seconds < 1:
        return f"{_ceil_units(seconds, 0.001)}ms"
    if seconds < 60:
        return f"{_ceil_units(seconds, 1.0)}s"
    if seconds < 3600:
        big, small, units = 60, 1.0, ("m", "s")
    elif seconds < 86400:
        big, small, units = 60, 60.0, ("h", "m")
    else:
        big, small, units = 24, 3600.0, ("d", "h")
    whole, rest = divmod(_ceil_units(seconds, small), big)
    return f"{whole}{units[0]}" + (f"{rest}{units[1]}" if rest else "")


def _ceil_units(seconds: float, unit: float) -> int:
    """The fewest whole ``unit`` that hold ``seconds`` (guarded against a rounded division)."""
    n = math.ceil(seconds / unit)
    return n + 1 if n * unit < seconds else n
