"""What a version would have raised on past data: every window judged, bounded and grouped into
incidents as the service does, without a store.

``backtest(reference, data)`` answers "had this version been monitoring last month, which
incidents would we have met?": the windows of ``data`` are judged in time order by
:func:`~mlwarden.service.judge.judge_window`, bounded by the version's alert calibration, the
CUSUMs carried from window to window, and the alerts grouped into incidents by the store's rule
(:func:`~mlwarden.alerting.incidents.group_incidents`). Feedback and explanation metrics, which
come from people and from the service's background work, are not part of it. The alerting
benchmark counts false incidents and detection delays with it.

Example:
    >>> from mlwarden.datasets import production_line
    >>> from mlwarden.registry import Registry
    >>> from mlwarden.store.metadata import Store
    >>> reference = production_line(20_000, seed=1)
    >>> registry = Registry(Store("sqlite://"))
    >>> _ = registry.register("m", "1", reference, timestamp="timestamp", window="4h")
    >>> from mlwarden.datasets import UnitChange
    >>> later = production_line(
    ...     8_640, seed=2, start=reference["timestamp"].max(),
    ...     faults=[UnitChange("temperature_c", 4_000, 1.8, 32.0)],  # °F from hour 11 on
    ... )
    >>> result = backtest(registry.reference("m", "1"), later)
    >>> len(result.windows)
    7
    >>> (incident,) = result.incidents
    >>> incident.windows, ("quality", "range(temperature_c)", "") in incident.opened_by
    (4, True)
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

import polars as pl

from mlwarden.alerting import cusum
from mlwarden.alerting.calibration import CUSUM_PREFIX
from mlwarden.alerting.incidents import Incident, group_incidents
from mlwarden.frames import to_polars, to_utc
from mlwarden.quality._durations import parse_duration
from mlwarden.service.judge import Judged, judge_window

if TYPE_CHECKING:
    from collections.abc import Callable

    from mlwarden.registry import VersionReference
    from mlwarden.store.metadata import MetricValue

_WINDOW = "__window"


@dataclass(frozen=True)
class WindowVerdict:
    """One judged window: its rows and bounded metrics (the CUSUMs included)."""

    start: datetime
    end: datetime
    rows: int
    metrics: list[MetricValue] = field(repr=False)
    surprise: float | None = None

    @property
    def alerts(self) -> list[MetricValue]:
        """The metrics outside their bounds."""
        return [m for m in self.metrics if m.alert]


@dataclass(frozen=True)
class Backtest:
    """Every window of a backtest, and the incidents their alerts make."""

    windows: list[WindowVerdict]
    incidents: list[Incident]

    def alerts(self) -> pl.DataFrame:
        """One row per alert: window start, metric, column, segment, value, bounds, score."""
        rows: list[dict[str, Any]] = [
            {"window_start": w.start, **m.to_dict()} for w in self.windows for m in w.alerts
        ]
        schema: dict[str, pl.DataType] = {
            "window_start": pl.Datetime("us", "UTC"),
            "metric": pl.String(),
            "column": pl.String(),
            "segment": pl.String(),
            "value": pl.Float64(),
            "lower": pl.Float64(),
            "upper": pl.Float64(),
            "score": pl.Float64(),
        }
        return pl.DataFrame(rows, schema=schema, orient="row")


def backtest(
    reference: VersionReference,
    data: object,
    *,
    window: str | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> Backtest:
    """Judge every window of ``data`` (anything :func:`mlwarden.frames.to_polars` reads, with
    the version's timestamp column, read by :func:`mlwarden.frames.to_utc`) as the service
    would (see the module docstring); ``progress`` is called with (windows done, windows in
    all)."""
    record = reference.version
    window = window or record.meta.get("window") or "1h"
    length = timedelta(seconds=parse_duration(window, "window", "backtest"))
    timestamp = reference.suite.timestamp or record.meta.get("timestamp") or "timestamp"
    frame = to_utc(to_polars(data), timestamp, source="the backtest data")
    keyed = frame.sort(timestamp).with_columns(pl.col(timestamp).dt.truncate(window).alias(_WINDOW))
    judged = Judged(reference.suite, reference.drift, reference.evaluators)
    calibration = reference.calibration
    parts = keyed.partition_by(_WINDOW, as_dict=True, maintain_order=True)
    verdicts: list[WindowVerdict] = []
    states: dict[tuple[str, str, str], float] = {}
    previous_end: datetime | None = None
    for done, ((start,), rows) in enumerate(parts.items()):  # one per window, not per row
        assert isinstance(start, datetime)
        if previous_end is not None and start - previous_end > cusum.MEMORY:
            states = {}
        judgement = judge_window(
            judged,
            rows.drop(_WINDOW),
            start=start,
            now=start + length,
            volume=bool(verdicts) and done + 1 < len(parts),
            family_bounds=calibration is None,
        )
        metrics = judgement.metrics
        surprise = None
        if calibration is not None:
            metrics = calibration.apply(metrics)
            metrics += calibration.cusum(states, metrics)
            states = {
                (m.name.removeprefix(CUSUM_PREFIX), m.column, m.segment): m.value
                for m in metrics
                if m.name.startswith(CUSUM_PREFIX) and m.value is not None
            }
            surprise = calibration.surprise(metrics)
        verdicts.append(WindowVerdict(start, start + length, rows.height, metrics, surprise))
        previous_end = start + length
        if progress is not None:
            progress(done + 1, len(parts))
    incidents = group_incidents(
        (v.start, v.end, {(m.name, m.column, m.segment) for m in v.alerts}) for v in verdicts
    )
    return Backtest(verdicts, incidents)


__all__ = ["Backtest", "WindowVerdict", "backtest"]
