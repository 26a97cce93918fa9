"""Window evaluation: every closed window of a model version judged against its reference.

For each window of the logged rows: the version's quality suite (every check a metric: 1 when
it failed, bounded at 0 for error checks), drift of each column against the stored reference
(the effect size, bounded by its calibrated threshold) and the quality scores. Every number is
stored as a metric with its bounds; a value outside them is an alert, and the alerts of one
window are one incident. Evaluating a window again (rows or labels arrived late) replaces its
metrics and alerts, never duplicates them. ``mlwarden evaluate`` runs this from cron or an
orchestrator; ``mlwarden serve`` will run it on a schedule.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING

import polars as pl

from mlwarden.exceptions import ParameterError
from mlwarden.store.metadata import MetricValue, incident_title
from mlwarden.store.rowlog import BATCH_ID, DATE, INGESTED_AT, MODEL, MODEL_VERSION

if TYPE_CHECKING:
    from mlwarden.react.dispatch import Dispatcher
    from mlwarden.registry import VersionReference
    from mlwarden.store.metadata import Store, WindowRecord
    from mlwarden.store.rowlog import RowLog

_SERVICE_COLUMNS = (MODEL, DATE, MODEL_VERSION, INGESTED_AT, BATCH_ID)


@dataclass(frozen=True)
class WindowOutcome:
    """What the evaluation of one window stored."""

    window: WindowRecord
    metrics: int
    alerts: int
    incident: int | None
    passed: bool


def evaluate(
    store: Store,
    rowlog: RowLog,
    model: str,
    version: str = "production",
    *,
    window: str = "1h",
    start: datetime | None = None,
    end: datetime | None = None,
    now: datetime | None = None,
    notify: Dispatcher | None = None,
) -> list[WindowOutcome]:
    """Evaluate the closed windows of ``model``'s ``version`` (or alias) between ``start`` and
    ``end``; return one outcome per window, oldest first. A new incident is handed to
    ``notify`` (a :class:`~mlwarden.react.Dispatcher`), which delivers it in the background.

    Example:
        >>> from datetime import timedelta
        >>> from mlwarden.datasets import production_line
        >>> from mlwarden.registry import Registry
        >>> from mlwarden.store.metadata import Store
        >>> from mlwarden.store.rowlog import RowLog
        >>> import tempfile, pathlib
        >>> store, log = Store("sqlite://"), RowLog(pathlib.Path(tempfile.mkdtemp()))
        >>> reference = production_line(6_000, seed=1)
        >>> _ = Registry(store).register("m", "1", reference, timestamp="timestamp")
        >>> later = production_line(720, seed=2, start=reference["timestamp"].max())
        >>> _ = log.append("m", "1", later, batch_id="b1")
        >>> outcomes = evaluate(store, log, "m", "1", window="1h")
        >>> len(outcomes), outcomes[0].metrics > 50
        (3, True)
    """
    from mlwarden.registry import Registry

    now = now or datetime.now(UTC)
    reference = Registry(store).reference(model, version)
    timestamp = reference.suite.timestamp or "timestamp"
    rows = rowlog.read(
        model, start=start, end=end, version=reference.version.version, timestamp=timestamp
    )
    if rows.height == 0:
        return []
    try:
        keyed = rows.with_columns(pl.col(timestamp).dt.truncate(window).alias("__window"))
    except pl.exceptions.PolarsError as exc:
        raise ParameterError(
            f"'{window}' is not a window duration; expected e.g. '15m', '1h' or '1d'.",
            parameter="window",
        ) from exc
    data = keyed.drop([c for c in _SERVICE_COLUMNS if c in keyed.columns])
    outcomes = []
    for (window_start,), part in data.partition_by("__window", as_dict=True).items():
        assert isinstance(window_start, datetime)
        window_end = part.select(pl.col("__window").dt.offset_by(window)).item(0, 0)
        if window_end > now:
            continue  # still open: rows may yet arrive
        outcomes.append(
            _evaluate_window(
                store, reference, part.drop("__window"), window_start, window_end, now, notify
            )
        )
    return sorted(outcomes, key=lambda o: o.window.start)


def _evaluate_window(
    store: Store,
    reference: VersionReference,
    rows: pl.DataFrame,
    start: datetime,
    end: datetime,
    now: datetime,
    notify: Dispatcher | None,
) -> WindowOutcome:
    from mlwarden.drift import compare
    from mlwarden.quality import validate

    record = reference.version
    window = store.upsert_window(
        record.model, record.version, start, end, n_rows=rows.height, evaluated_at=now
    )
    validation = validate(rows, reference.suite, now=now)
    store.save_validation(window.id, validation.passed, validation.to_dict())
    metrics: list[MetricValue] = []
    for result in validation.results:
        metrics.append(
            MetricValue(
                "quality",
                0.0 if result.passed else 1.0,
                upper=0.0 if result.severity == "error" else None,
                column=result.label,
            )
        )
    for dimension, score in validation.scores.items():
        metrics.append(MetricValue("quality_score", score, column=dimension))
    columns = [c for c in reference.drift.profile.columns if c in rows.columns]
    if columns:
        report = compare(reference.drift, rows.select(columns))
        for name, drift in report.columns.items():
            metrics.append(
                MetricValue(
                    f"drift.{drift.test}",
                    drift.effect_size,
                    upper=drift.threshold,
                    column=name,
                )
            )
    store.write_metrics(window.id, metrics)
    recorded = store.record_alerts(window.id, metrics)
    incident = recorded[0] if recorded else None
    if recorded is not None and recorded[1] and notify is not None:
        from mlwarden.react.dispatch import notification_from

        alerting = [m for m in metrics if m.alert]
        title = incident_title(alerting)
        notify.submit(
            notification_from(
                record.model,
                record.version,
                recorded[0],
                title,
                window,
                [
                    {
                        "metric": m.name,
                        "column": m.column,
                        "value": m.value,
                        "lower": m.lower,
                        "upper": m.upper,
                    }
                    for m in alerting
                ],
            )
        )
    return WindowOutcome(
        window=window,
        metrics=len(metrics),
        alerts=sum(m.alert for m in metrics),
        incident=incident,
        passed=validation.passed,
    )
