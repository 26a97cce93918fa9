"""Widening a learned limit past what failing clean windows measured (see ``Check.relaxed``).

Every widening follows one rule: the new limit lies ``margin`` times as far out as the worst
observed value, measured from the limit's natural origin — zero for one-sided quantities (a
share, a duration, a score, a rate), the middle of a band for a two-sided one. A limit is never
moved inward, and is rounded outward only, so the failing windows pass with room to spare.

Example:
    >>> scaled(0.0, 0.02, 1.5)
    0.03
    >>> widen_interval(0.0, 4.0, [-3.0], [5.0], 1.5)
    (-5.5, 6.5)
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

from mlwarden.exceptions import ParameterError
from mlwarden.quality._durations import duration_text

if TYPE_CHECKING:
    from collections.abc import Iterable

SIGNIFICANT = 4
"""Digits a widened limit keeps (of its distance from the origin): readable in the YAML file."""


def check_margin(margin: object) -> float:
    """``margin`` as a float, or a :class:`ParameterError` saying what a margin must be."""
    if (
        isinstance(margin, int | float)
        and not isinstance(margin, bool)
        and math.isfinite(margin)
        and margin > 1.0
    ):
        return float(margin)
    raise ParameterError(
        "The 'margin' of relaxed() must be a finite number > 1 (how many times as far out as "
        f"the failing windows reached the new limit lies, e.g. 1.5); got {margin!r}.",
        parameter="margin",
    )


def number(value: Any) -> float | None:
    """``value`` as a float when it is a measured number (not None, a bool or NaN)."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return None if math.isnan(value) else float(value)


def numbers(values: Iterable[Any]) -> list[float] | None:
    """The measured numbers among ``values``; None when one is infinite (no finite limit covers
    it, so the limit cannot move far enough)."""
    found = [x for x in (number(v) for v in values) if x is not None]
    return None if any(math.isinf(x) for x in found) else found


def pairs(observed: Iterable[Any]) -> tuple[list[float], list[float]] | None:
    """The lows and the highs of ``[low, high]`` observations (others are skipped); None when
    one is infinite."""
    items = [o for o in observed if isinstance(o, list | tuple) and len(o) == 2]
    lows, highs = numbers(o[0] for o in items), numbers(o[1] for o in items)
    return None if lows is None or highs is None else (lows, highs)


def round_out(value: float, scale: float, *, up: bool) -> float:
    """``value`` rounded away from the limit's origin (up for an upper limit) to
    :data:`SIGNIFICANT` digits of ``scale``, its distance from the origin.

    A value within binary noise of the decimal grid snaps to it, so it may come back a hair
    inside: callers keep the widened limit outside the worst observation themselves.
    """
    if not scale > 0 or not math.isfinite(value):
        return value
    exponent = math.floor(math.log10(scale)) - (SIGNIFICANT - 1)
    step = 10.0**exponent
    if not step > 0:  # a subnormal scale: no decimal grid to round to
        return value
    exact = value / step
    # A value already on the grid stays there (the division leaves a hair of binary noise).
    nearest = round(exact)
    if abs(exact - nearest) < 1e-9:
        steps = nearest
    else:
        steps = math.ceil(exact) if up else math.floor(exact)
    return round(steps * step, -exponent) if exponent < 0 else float(steps * step)


def scaled(limit: float | None, worst: float, margin: float, *, integer: bool = False) -> float:
    """``margin`` x ``worst`` (a quantity whose origin is zero), rounded up; never below
    ``worst`` or ``limit``."""
    widened = margin * worst
    widened = float(math.ceil(widened)) if integer else round_out(widened, widened, up=True)
    return max(widened, worst) if limit is None else max(limit, widened, worst)


def beyond(limit: float | None, values: list[float]) -> float | None:
    """The largest of ``values`` above ``limit`` (a one-sided upper limit), if any."""
    if limit is None or not values or max(values) <= limit:
        return None
    return max(values)


def widen_share(limit: float, observed: Iterable[Any], margin: float) -> float | None:
    """A share tolerance ``margin`` times the worst observed share (at most 1); None when no
    observed share exceeds ``limit``."""
    values = numbers(observed)
    worst = beyond(limit, values or [])
    if worst is None:
        return None
    return min(1.0, scaled(limit, worst, margin))


def widen_scalar(
    limit: float | None, observed: Iterable[Any], margin: float, *, integer: bool = False
) -> float | None:
    """An upper limit ``margin`` times the worst observed value; None when no observed value
    exceeds ``limit`` (or one is infinite, or the result is)."""
    values = numbers(observed)
    worst = beyond(limit, values or [])
    if worst is None or worst <= 0:  # the origin is zero: a widened limit scales a positive value
        return None
    widened = scaled(limit, worst, margin, integer=integer)
    return widened if math.isfinite(widened) else None


def duration_like(seconds: float, like: str | float) -> str | float:
    """``seconds`` in the form of ``like``: a duration string (rounded up to a short one) when
    the check was given one, else a number of seconds."""
    if isinstance(like, str):
        return duration_text(seconds)
    return seconds


def widen_interval(
    low: float | None,
    high: float | None,
    lows: list[float],
    highs: list[float],
    margin: float,
    *,
    integer: bool = False,
    floor: float | None = None,
    ceiling: float | None = None,
) -> tuple[float | None, float | None] | None:
    """The band ``[low, high]`` with each side the observed values crossed moved out.

    A side moves so that it lies ``margin`` times as far from the band's origin as the worst
    value beyond it: the middle of the band when both sides are set; for a one-sided band (no
    middle), the far end of what was observed (the lowest value, for an upper limit), so that
    the room is in proportion to the spread of the data rather than to the small overshoot.
    ``floor``/``ceiling`` clip the result to what the statistic can take (0 for a count);
    ``integer`` rounds outward to whole numbers. None when no observed value lies outside.
    """
    values = lows + highs
    top = beyond(high, highs)
    bottom = min(lows) if low is not None and lows and min(lows) < low else None
    if top is None and bottom is None:
        return None
    middle = (low + high) / 2.0 if low is not None and high is not None else None
    new_low, new_high = low, high
    if top is not None and high is not None:
        origin = middle if middle is not None else min(min(values), high)
        edge = _edge(origin, top, margin, integer=integer)
        new_high = max(high, top, edge if ceiling is None else min(ceiling, edge))
    if bottom is not None and low is not None:
        origin = middle if middle is not None else max(max(values), low)
        edge = _edge(origin, bottom, margin, integer=integer)
        new_low = min(low, bottom, edge if floor is None else max(floor, edge))
    if not all(x is None or math.isfinite(x) for x in (new_low, new_high)):
        return None
    return new_low, new_high


def _edge(origin: float, worst: float, margin: float, *, integer: bool) -> float:
    """The point ``margin`` times as far from ``origin`` as ``worst``, rounded outward."""
    edge = origin + margin * (worst - origin)
    up = worst > origin
    if integer:
        return float(math.ceil(edge) if up else math.floor(edge))
    return round_out(edge, abs(edge - origin), up=up)
