"""Windows' alerts grouped into incidents, the unit a person meets (and a budget counts).

The rule is the store's (:meth:`mlwarden.store.metadata.Store.record_alerts`): the alerts of one
window belong to one incident; a window whose alerts share a metric (name, column, segment) with
the alerts of the window just before it continues that window's incident, so a fault that lasts
a day is one incident; any other window with alerts opens a new one. This pure form is what the
calibration's held-out measurement and the alerting benchmark count with; a test holds it to the
store's.

Example:
    >>> from datetime import datetime, timedelta, UTC
    >>> t0, h = datetime(2024, 1, 1, tzinfo=UTC), timedelta(hours=1)
    >>> windows = [
    ...     (t0, t0 + h, {("drift.ks", "temp", "")}),
    ...     (t0 + h, t0 + 2 * h, {("drift.ks", "temp", ""), ("quality", "stuck(p)", "")}),
    ...     (t0 + 2 * h, t0 + 3 * h, set()),
    ...     (t0 + 3 * h, t0 + 4 * h, {("quality", "stuck(p)", "")}),
    ... ]
    >>> [(i.windows, sorted(k[0] for k in i.opened_by)) for i in group_incidents(windows)]
    [(2, ['drift.ks']), (1, ['quality'])]
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Iterable
    from datetime import datetime

Key = tuple[str, str, str]


@dataclass(frozen=True)
class Incident:
    """A run of windows whose alerts continue each other."""

    start: datetime
    end: datetime
    windows: int
    opened_by: frozenset[Key]


def group_incidents(
    windows: Iterable[tuple[datetime, datetime, Iterable[Key]]],
) -> list[Incident]:
    """The incidents of windows given in time order as ``(start, end, alert keys)``."""
    incidents: list[Incident] = []
    previous_end: datetime | None = None
    previous: frozenset[Key] = frozenset()
    for start, end, keys in windows:
        alerting = frozenset(keys)
        if alerting:
            if incidents and previous_end == start and alerting & previous:
                last = incidents[-1]
                incidents[-1] = Incident(last.start, end, last.windows + 1, last.opened_by)
            else:
                incidents.append(Incident(start, end, 1, alerting))
        previous_end, previous = end, alerting
    return incidents


__all__ = ["Incident", "Key", "group_incidents"]
