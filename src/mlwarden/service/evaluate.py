"""Window evaluation: every closed window of a model version judged against its reference.

For each window of the logged rows (joined with the labels that have arrived for them):

* the version's quality suite: every check is a metric ``quality`` (1 when it failed, bounded
  at 0 for error checks) and every dimension a ``quality_score``;
* drift of each feature, score and prediction against the stored reference (``drift.<test>``:
  the effect size, bounded by its calibrated threshold), and multivariate drift of the features
  (``drift.pca``: the PCA reconstruction error within its calibrated band);
* performance (``performance.<metric>``): the estimate from the stored estimator, which uses the
  labels where they arrived and the estimator's expectation elsewhere, bounded by what the
  reference makes expected for a window of that size; where labels arrived, the metric on the
  labelled rows alone is ``performance.<metric>.realized``;
* the same drift and performance metrics per segment value (``segment="line=L2"``), each judged
  against that segment's own reference;
* people's feedback on the window's predictions (:func:`mlwarden.feedback.feedback_metrics`):
  ``override_rate`` and ``explanation_plausibility``, overall and per segment;
* explanation drift of the window's stored attributions against the reference's
  (:mod:`mlwarden.explanation.drift`): ``explanation_shift`` per feature, ``importance_rank``,
  ``explanation_auc``.

The metrics are computed by :func:`mlwarden.service.judge.judge_window`, the code the
registry's replay calibrated the version's alert budget with. Every bounded metric gets its
bounds from the version's :class:`~mlwarden.alerting.calibration.Calibration` (one
false-incident budget shared by every family and segment), and whole-table drift and
performance metrics feed a CUSUM each (``cusum.<metric>``), which finds slow change sooner than
single windows do. A value outside its bounds is an alert, and the alerts of one window are one
incident, which keeps the rule that opened it and how surprising its window was on
reference-like data. A version registered without a calibration keeps each family's own bounds.
Where a person marked an alert of a metric as a false alarm, that metric's bound is widened to
beyond the value (:meth:`Store.mark_alert`) until the verdict is reverted. The window's profile
and the drift, multivariate and performance results are kept for the drill-down.

Only windows that changed are evaluated: a closed window is evaluated when it has never been, or
when rows, labels, feedback or attributions arrived for it since (a count differs from the
stored one), so a late label re-evaluates its window and nothing else. Evaluating a window
again replaces its metrics and alerts, never duplicates them. ``mlwarden evaluate`` runs this
from cron or an orchestrator; ``mlwarden serve`` runs it on a schedule.
"""

from __future__ import annotations

import json
import threading
from collections import OrderedDict
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Final

import polars as pl

from mlwarden.alerting import cusum
from mlwarden.alerting.calibration import CUSUM_PREFIX
from mlwarden.exceptions import InputError, ParameterError
from mlwarden.service.judge import Judged, judge_window, performance_metrics, segment_parts
from mlwarden.store.metadata import MetricValue, incident_title
from mlwarden.store.rowlog import BATCH_ID, DATE, INGESTED_AT, MODEL, MODEL_VERSION

if TYPE_CHECKING:
    from mlwarden.explanation.drift import Calibration
    from mlwarden.react.dispatch import Dispatcher
    from mlwarden.registry import VersionReference
    from mlwarden.service.evaluators import Evaluators
    from mlwarden.service.judge import Details
    from mlwarden.store.metadata import Store, WindowRecord
    from mlwarden.store.rowlog import RowLog

_SERVICE_COLUMNS = (MODEL, DATE, MODEL_VERSION, INGESTED_AT, BATCH_ID)
_WINDOW = "__window"
# Per metric (name, column, segment): the (lower, upper) bounds false-alarm verdicts widened.
Widened = dict[tuple[str, str, str], tuple[float | None, ...]]


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
    window: str | None = None,
    start: datetime | None = None,
    end: datetime | None = None,
    now: datetime | None = None,
    notify: Dispatcher | None = None,
    force: bool = False,
) -> list[WindowOutcome]:
    """Evaluate the closed windows of ``model``'s ``version`` (or alias) between ``start`` and
    ``end`` that are new or changed (all of them with ``force``), in windows of ``window`` (by
    default the window the version was registered with, else one hour); return one outcome per
    evaluated window, oldest first. A new incident is handed to ``notify`` (a
    :class:`~mlwarden.react.Dispatcher`), which delivers it in the background.

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
        >>> evaluate(store, log, "m", "1", window="1h")  # nothing changed since
        []
    """
    now = now or datetime.now(UTC)
    reference = load_reference(store, model, version)
    record = reference.version
    window = window or record.meta.get("window") or "1h"
    timestamp = reference.suite.timestamp or "timestamp"
    evaluators = reference.evaluators
    id_column = evaluators.id if evaluators is not None else "id"
    target = evaluators.target if evaluators is not None else None
    counts = _window_counts(
        rowlog, record.model, record.version, window, start, end, timestamp, id_column, target
    )
    if counts.height == 0:
        return []
    stored = {
        w.start: (w.n_rows, w.n_labelled, w.n_signals)
        for w in store.windows(record.model, record.version, start=start, end=end)
        if w.evaluated_at is not None
    }
    signals = _signal_counts(store, rowlog, record.model, record.version, window, timestamp)
    # One row per closed window (few: one per hour or day), not per logged row.
    pending = []
    labels_only = set()
    for row in counts.filter(pl.col("end") <= now).iter_rows(named=True):
        known = stored.get(row["start"])
        fresh = (row["n_rows"], row["n_labelled"], signals.get(row["start"], 0))
        if force or known != fresh:
            pending.append((row["start"], row["end"]))
            if not force and known is not None and known[0] == row["n_rows"]:
                # same rows, new labels, feedback or attributions: those metrics only
                labels_only.add(row["start"])
    outcomes = []
    widened = store.widened_bounds(record.model) if pending else {}
    # The newest window with rows: whether its stream stopped or its rows are late is unknown,
    # so its row count is not judged.
    latest = counts["start"].max()
    for run_start, run_end, starts in _runs(pending):
        rows = read_rows(
            rowlog, record.model, record.version, run_start, run_end, timestamp, evaluators
        )
        keyed = rows.with_columns(pl.col(timestamp).dt.truncate(window).alias(_WINDOW))
        data = keyed.drop([c for c in _SERVICE_COLUMNS if c in keyed.columns])
        parts = data.partition_by(_WINDOW, as_dict=True)
        # in time order: each window's CUSUMs carry on from the window before
        for (window_start,), part in sorted(parts.items(), key=lambda item: item[0]):
            assert isinstance(window_start, datetime)
            if window_start not in starts:
                continue
            judge = _relabel_window if window_start in labels_only else _evaluate_window
            outcomes.append(
                judge(
                    store,
                    rowlog,
                    signals.get(window_start, 0),
                    reference,
                    part.drop(_WINDOW),
                    window_start,
                    starts[window_start],
                    now,
                    notify,
                    widened,
                    window_start != latest,
                )
            )
    return sorted(outcomes, key=lambda o: o.window.start)


_CACHE_SIZE: Final = 16
_references: OrderedDict[tuple[str, int, datetime, str], VersionReference] = OrderedDict()
_references_lock = threading.Lock()


def load_reference(store: Store, model: str, version: str) -> VersionReference:
    """The stored reference of a version (or alias), loaded once per process: a version's
    artifacts never change, and the drift reference caches its calibration on first use."""
    from mlwarden.registry import Registry

    record = store.resolve(model, version)
    # a changed budget (the version's metadata) calibrates anew; the artifacts never change
    budget = json.dumps((record.meta.get("alerting") or {}).get("budget"), sort_keys=True)
    key = (store.url, record.id, record.created_at, budget)
    with _references_lock:
        if key in _references:
            _references.move_to_end(key)
            return _references[key]
    reference = Registry(store).reference(model, record.version)
    with _references_lock:
        _references[key] = reference
        while len(_references) > _CACHE_SIZE:
            _references.popitem(last=False)
    return reference


def _window_counts(
    rowlog: RowLog,
    model: str,
    version: str,
    window: str,
    start: datetime | None,
    end: datetime | None,
    timestamp: str,
    id_column: str,
    target: str | None,
) -> pl.DataFrame:
    """Per window of the logged rows: its start and end, its rows, and its rows with a label."""
    keys = rowlog.read(model, start=start, end=end, version=version, timestamp=timestamp)
    if keys.height == 0:
        return pl.DataFrame(schema={"start": pl.Datetime("us", "UTC")})
    labelled = pl.lit(0)
    if target is not None and id_column in keys.columns:
        ids = rowlog.labels(model, columns=[id_column])
        if ids.height:
            labelled = pl.col(id_column).is_in(ids[id_column].unique().implode())
    try:
        return (
            keys.group_by(pl.col(timestamp).dt.truncate(window).alias("start"))
            .agg(n_rows=pl.len(), n_labelled=labelled.cast(pl.Int64).sum())
            .with_columns(end=pl.col("start").dt.offset_by(window))
            .sort("start")
        )
    except pl.exceptions.PolarsError as exc:
        raise ParameterError(
            f"'{window}' is not a window duration; expected e.g. '15m', '1h' or '1d'.",
            parameter="window",
        ) from exc


def _runs(
    pending: list[tuple[datetime, datetime]],
) -> list[tuple[datetime, datetime, dict[datetime, datetime]]]:
    """Consecutive pending windows joined into runs read at once: (start, end, {start: end})."""
    runs: list[tuple[datetime, datetime, dict[datetime, datetime]]] = []
    for lo, hi in pending:
        if runs and runs[-1][1] == lo:
            first, _, members = runs[-1]
            members[lo] = hi
            runs[-1] = (first, hi, members)
        else:
            runs.append((lo, hi, {lo: hi}))
    return runs


def read_rows(
    rowlog: RowLog,
    model: str,
    version: str,
    start: datetime,
    end: datetime,
    timestamp: str,
    evaluators: Evaluators | None,
) -> pl.DataFrame:
    """The logged rows of ``[start, end)``, each with its latest label where one arrived (where
    the version has a target)."""
    if evaluators is None or evaluators.target is None:
        return rowlog.read(model, start=start, end=end, version=version, timestamp=timestamp)
    target, id_column = evaluators.target, evaluators.id
    try:
        rows = rowlog.joined(
            model, start=start, end=end, version=version, id=id_column, timestamp=timestamp
        )
    except InputError:  # rows logged without ids cannot be joined to labels
        return rowlog.read(model, start=start, end=end, version=version, timestamp=timestamp)
    label = f"{target}_label"
    if label in rows.columns:  # the rows carried the column too: the label wins where known
        rows = rows.with_columns(pl.coalesce(label, target).alias(target)).drop(label)
    return rows.drop([c for c in rows.columns if c.endswith("_label")])


def _evaluate_window(
    store: Store,
    rowlog: RowLog,
    n_signals: int,
    reference: VersionReference,
    rows: pl.DataFrame,
    start: datetime,
    end: datetime,
    now: datetime,
    notify: Dispatcher | None,
    widened: Widened,
    followed: bool = True,
) -> WindowOutcome:
    """Judge a window's rows, bound its metrics by the version's calibration, store them and
    its alerts. Its row count is judged when a window came before it (the first of a stream
    is often partial) and rows came after it (``followed``)."""
    record = reference.version
    evaluators = reference.evaluators
    target = evaluators.target if evaluators is not None else None
    n_labelled = (
        rows.height - rows[target].null_count() if target is not None and target in rows else 0
    )
    previous = _previous_window(store, record.model, record.version, start)
    window = store.upsert_window(
        record.model,
        record.version,
        start,
        end,
        n_rows=rows.height,
        n_labelled=n_labelled,
        n_signals=n_signals,
    )
    calibration = reference.calibration
    judgement = judge_window(
        Judged(reference.suite, reference.drift, evaluators),
        rows,
        start=start,
        now=now,
        volume=previous is not None and followed,
        family_bounds=calibration is None,
    )
    store.save_validation(window.id, judgement.validation.passed, judgement.validation.to_dict())
    metrics = judgement.metrics + _signals(store, rowlog, reference, window)
    metrics = _bounded(store, reference, previous, metrics)
    _calibrated_report(judgement.details, metrics)
    for kind, (result, blob) in judgement.details.items():
        store.save_details(window.id, kind, result, blob)
    metrics = _widened(widened, metrics)
    store.write_metrics(window.id, metrics)
    return _conclude(
        store,
        window,
        metrics,
        now,
        notify,
        passed=judgement.validation.passed,
        close_quiet=True,
        surprise=None if calibration is None else calibration.surprise(metrics),
    )


def _relabel_window(
    store: Store,
    rowlog: RowLog,
    n_signals: int,
    reference: VersionReference,
    rows: pl.DataFrame,
    start: datetime,
    end: datetime,
    now: datetime,
    notify: Dispatcher | None,
    widened: Widened,
    followed: bool = True,
) -> WindowOutcome:
    """A window whose rows were evaluated and whose labels, feedback or attributions arrived
    since: its performance, feedback and explanation metrics are computed again, the other
    metrics kept; its alerts are those of all its metrics."""
    record = reference.version
    evaluators = reference.evaluators
    target = evaluators.target if evaluators is not None else None
    n_labelled = rows.height - rows[target].null_count() if target and target in rows else 0
    previous = _previous_window(store, record.model, record.version, start)
    window = store.upsert_window(
        record.model,
        record.version,
        start,
        end,
        n_rows=rows.height,
        n_labelled=n_labelled,
        n_signals=n_signals,
    )
    fresh: list[MetricValue] = []
    if evaluators is not None and target is not None:
        details: Details = {}
        fresh += performance_metrics(evaluators.estimator, rows, "", details)
        for kind, (result, blob) in details.items():
            store.save_details(window.id, kind, result, blob)
        for name, own, part in segment_parts(evaluators, rows):
            fresh += performance_metrics(own.estimator, part, name)
    fresh += _signals(store, rowlog, reference, window)
    # The CUSUMs keep the sums of the window's first look: a sum carried through windows
    # evaluated since cannot be redone for one of them.
    fresh = _widened(widened, _bounded(store, reference, previous, fresh, sequential=False))
    store.write_metrics(window.id, fresh)
    validation = store.validation(window.id)
    passed = bool(validation is None or validation.get("passed", True))
    metrics = store.window_metrics(window.id)
    calibration = reference.calibration
    return _conclude(
        store,
        window,
        metrics,
        now,
        notify,
        passed=passed,
        close_quiet=False,
        surprise=None if calibration is None else calibration.surprise(metrics),
    )


def _previous_window(
    store: Store, model: str, version: str, start: datetime
) -> WindowRecord | None:
    """The version's latest evaluated window before ``start`` within a week (its CUSUM sums
    carry over; a stream that stopped for longer starts afresh)."""
    earlier = [
        w
        for w in store.windows(model, version, start=start - cusum.MEMORY, end=start)
        if w.evaluated_at is not None and w.start < start
    ]
    return max(earlier, key=lambda w: w.start) if earlier else None


def _bounded(
    store: Store,
    reference: VersionReference,
    previous: WindowRecord | None,
    metrics: list[MetricValue],
    *,
    sequential: bool = True,
) -> list[MetricValue]:
    """The metrics with the version's calibrated bounds and scores, and (``sequential``) the
    CUSUMs advanced from the window before (a version without a calibration keeps its
    families' bounds)."""
    calibration = reference.calibration
    if calibration is None:
        return metrics
    bounded = calibration.apply(metrics)
    if not sequential:
        return bounded
    states: dict[tuple[str, str, str], float] = {}
    if previous is not None:
        states = {
            (m.name.removeprefix(CUSUM_PREFIX), m.column, m.segment): m.value
            for m in store.window_metrics(previous.id)
            if m.name.startswith(CUSUM_PREFIX) and m.value is not None
        }
    return bounded + calibration.cusum(states, bounded)


def _calibrated_report(details: Details, metrics: list[MetricValue]) -> None:
    """The drift report kept for the drill-down, with the thresholds and verdicts of the
    calibrated bounds (what alerted), so that both say the same."""
    if "drift" not in details:
        return
    report, blob = details["drift"]
    columns = report.get("columns") or {}
    for m in metrics:  # the window's metrics
        if m.segment or not m.name.startswith("drift.") or m.column not in columns:
            continue
        entry = columns[m.column]
        entry["threshold"] = m.upper
        entry["threshold_source"] = "alert budget" if m.upper is not None else "cannot alarm"
        entry["drifted"] = m.alert
        entry["score"] = m.score
    drifted = [c for c, e in columns.items() if e.get("drifted")]
    report["drifted_columns"] = drifted
    report["n_drifted"] = len(drifted)
    report["share_drifted"] = len(drifted) / len(columns) if columns else 0.0
    details["drift"] = (report, blob)


def _conclude(
    store: Store,
    window: WindowRecord,
    metrics: list[MetricValue],
    now: datetime,
    notify: Dispatcher | None,
    *,
    passed: bool,
    close_quiet: bool,
    surprise: float | None = None,
) -> WindowOutcome:
    """Record the window's alerts (closing quiet incidents when it is the newest look at the
    model), mark it evaluated, and hand a new incident to ``notify``."""
    recorded = store.record_alerts(window.id, metrics, surprise=surprise)
    if close_quiet:
        store.close_quiet_incidents(window.model, window.start)
    # Marked evaluated last: a crash before this point leaves the window pending.
    window = store.upsert_window(
        window.model,
        window.version,
        window.start,
        window.end,
        n_rows=window.n_rows,
        n_labelled=window.n_labelled,
        evaluated_at=now,
    )
    if recorded is not None and recorded[1] and notify is not None:
        _notify(notify, window.model, window.version, recorded[0], window, metrics, surprise)
    return WindowOutcome(
        window=window,
        metrics=len(metrics),
        alerts=sum(m.alert for m in metrics),
        incident=recorded[0] if recorded else None,
        passed=passed,
    )


def _signal_counts(
    store: Store, rowlog: RowLog, model: str, version: str, window: str, timestamp: str
) -> dict[datetime, int]:
    """Per window start: the feedback given on its predictions plus its explained predictions
    (a change re-evaluates the window)."""
    from mlwarden.feedback import count_feedback

    given = count_feedback(store, model, version, None, None)
    frames = []
    if given:
        frames.append(
            pl.DataFrame(
                {"at": list(given), "n": list(given.values())},
                schema={"at": pl.Datetime("us", "UTC"), "n": pl.Int64},
            )
        )
    explained = rowlog.explanations(
        model, version=version, columns=[timestamp], timestamp=timestamp
    )
    if explained.height:
        frames.append(
            explained.select(
                pl.col(timestamp).cast(pl.Datetime("us", "UTC")).alias("at"), pl.lit(1).alias("n")
            )
        )
    if not frames:
        return {}
    counts = (
        pl.concat(frames, how="vertical_relaxed")
        .group_by(pl.col("at").dt.truncate(window).alias("start"))
        .agg(pl.col("n").sum())
    )
    return dict(zip(counts["start"].to_list(), counts["n"].to_list(), strict=True))


def _signals(
    store: Store, rowlog: RowLog, reference: VersionReference, window: WindowRecord
) -> list[MetricValue]:
    """The feedback and explanation-drift metrics of a window (details kept for the drill-down)."""
    from mlwarden.explanation.drift import explanation_drift
    from mlwarden.feedback import feedback_metrics

    record = reference.version
    metrics = feedback_metrics(
        store, record.model, record.version, window.start, window.end, meta=record.meta
    )
    features = (record.meta.get("explanation") or {}).get("features") or []
    if not features:
        return metrics
    timestamp = reference.suite.timestamp or "timestamp"
    current = rowlog.explanations(
        record.model,
        start=window.start,
        end=window.end,
        version=record.version,
        timestamp=timestamp,
    )
    if current.height == 0:
        return metrics
    loaded = _reference_attributions(store, record.model, record.version, features)
    if loaded is None:
        return metrics
    baseline, calibration = loaded
    found, details = explanation_drift(baseline, current, features, calibration)
    if details:
        store.save_details(window.id, "explanation", details)
    return metrics + found


_attributions: OrderedDict[tuple[str, str, str], tuple[pl.DataFrame, Calibration | None] | None] = (
    OrderedDict()
)


def _reference_attributions(
    store: Store, model: str, version: str, features: list[str]
) -> tuple[pl.DataFrame, Calibration | None] | None:
    """The reference attributions of a version and the calibration of explanation-drift
    bounds on them, computed once per process (they never change)."""
    from mlwarden.explanation.drift import calibrate
    from mlwarden.registry import Registry

    key = (store.url, model, version)
    with _references_lock:
        if key in _attributions:
            return _attributions[key]
    frame = Registry(store).reference_attributions(model, version)
    found = None if frame is None else (frame, calibrate(frame, features))
    with _references_lock:
        _attributions[key] = found
        while len(_attributions) > _CACHE_SIZE:
            _attributions.popitem(last=False)
    return found


def _widened(widened: Widened, metrics: list[MetricValue]) -> list[MetricValue]:
    """The metrics with the bounds that people's false-alarm verdicts widened."""
    if not widened:
        return metrics
    out = []
    for m in metrics:  # one per metric of a window, not per row
        lower, upper = widened.get((m.name, m.column, m.segment), (None, None))
        if lower is not None and m.lower is not None and lower < m.lower:
            m = replace(m, lower=lower)
        if upper is not None and m.upper is not None and upper > m.upper:
            m = replace(m, upper=upper)
        out.append(m)
    return out


def _notify(
    notify: Dispatcher,
    model: str,
    version: str,
    incident: int,
    window: WindowRecord,
    metrics: list[MetricValue],
    surprise: float | None = None,
) -> None:
    from mlwarden.react.dispatch import notification_from

    alerting = [m for m in metrics if m.alert]
    notify.submit(
        notification_from(
            model,
            version,
            incident,
            incident_title(alerting),
            window,
            [m.to_dict() for m in alerting],
            surprise,
        )
    )
