"""CUSUM on calibrated scores: slow change found sooner, one noisy window never enough.

A single-window rule sees a shift only once one window is far off. A slow ramp, or a step of
one standard deviation of a window's score, stays under it for days. Page's cumulative sum adds
up what each window's score exceeds an allowance ``k``::

    C_t = min(cap, max(0, C_{t-1} + x_t - k))        alarm while C_t > h

where ``x_t`` is the window's calibrated score, clipped to ``±clip`` (one wild window adds at most
``clip - k``, less than ``h``, so it cannot open an incident alone) and scaled by
``sqrt((1 - rho) / (1 + rho))`` for the autocorrelation ``rho`` between consecutive windows that
the reference showed (the sum of correlated scores spreads more than of independent ones).
``h`` is set for an in-control average run length (the mean number of windows between false
alarms) from Siegmund's approximation for normal scores; ``cap`` bounds how long an alarm
outlives its cause.

Example:
    >>> h = threshold_for_run_length(10_000.0)
    >>> round(h, 2), round(run_length(h), -2)
    (7.35, 10000.0)
    >>> state = 0.0
    >>> for score in [0.1, -0.3, 2.5, 2.0, 1.8, 2.2, 2.4, 1.9]:
    ...     state = step(state, score, h=h)
    >>> state > h
    True
"""

from __future__ import annotations

import math
from datetime import timedelta
from typing import Final

from scipy import optimize

ALLOWANCE: Final = 0.5
"""The allowance ``k``: the CUSUM is tuned to find a shift of one score unit soonest."""
CLIP: Final = 4.0
"""Scores are clipped to ±CLIP before they enter the sum."""
CAP_MARGIN: Final = 0.5
"""The sum never exceeds ``h + CAP_MARGIN``: an alarm ends a few windows after its cause."""
MEMORY: Final = timedelta(days=7)
"""A stream that pauses longer than this starts its sums afresh."""
# Siegmund's correction of the boundary for the overshoot of a normal random walk.
_OVERSHOOT: Final = 1.166


def run_length(h: float, k: float = ALLOWANCE, shift: float = 0.0) -> float:
    """Average run length of a CUSUM with threshold ``h`` and allowance ``k`` when the scores
    are normal with mean ``shift`` and unit variance (Siegmund's approximation)."""
    delta = shift - k
    b = h + _OVERSHOOT
    if abs(delta) < 1e-9:
        return b * b
    return (math.exp(-2.0 * delta * b) + 2.0 * delta * b - 1.0) / (2.0 * delta * delta)


def threshold_for_run_length(target: float, k: float = ALLOWANCE) -> float:
    """The threshold ``h`` whose in-control average run length is ``target`` windows."""
    if target <= run_length(0.0, k):
        return 0.0
    return float(
        optimize.brentq(lambda h: math.log(run_length(h, k)) - math.log(target), 0.0, 200.0)
    )


def step(
    state: float,
    score: float,
    *,
    h: float,
    k: float = ALLOWANCE,
    rho: float = 0.0,
) -> float:
    """The sum after one more window with calibrated ``score`` (a NaN score leaves it as is)."""
    if score != score:
        return state
    x = max(-CLIP, min(CLIP, score)) * math.sqrt((1.0 - rho) / (1.0 + rho))
    return min(h + CAP_MARGIN, max(0.0, state + x - k))


def step_both(
    state: float,
    score: float,
    *,
    h: float,
    k: float = ALLOWANCE,
    rho: float = 0.0,
) -> float:
    """A two-sided sum for a signed score, kept as one signed number: positive while the
    upward sum leads, negative while the downward one does (the smaller side restarts from
    zero; a change moves one way, so the other side is at zero all along)."""
    if score != score:
        return state
    up = step(max(state, 0.0), score, h=h, k=k, rho=rho)
    down = step(max(-state, 0.0), -score, h=h, k=k, rho=rho)
    return up if up >= down else -down


__all__ = [
    "ALLOWANCE",
    "CAP_MARGIN",
    "CLIP",
    "MEMORY",
    "run_length",
    "step",
    "step_both",
    "threshold_for_run_length",
]
