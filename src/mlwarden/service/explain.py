"""Per-prediction explanations in the service: attributions computed for logged predictions,
stored with them, and read back for one prediction.

A version registered with its estimator (``Registry.register(..., estimator=...)``) is explained
by the service: after a batch of its rows is stored, :class:`ExplainWorker` computes the
attributions of a share of them (``explain_sample`` of the version, chosen by a hash of the row
id so that a retry picks the same rows) in a background thread, so ingest is not slowed, and
appends them to the row log's ``explanations`` (one column per feature, ``base_value``, the row's
id and time). A client may send attributions it computed instead (``POST .../explanations``).
:func:`explain_missing` catches up on batches a stopped server did not explain.
"""

from __future__ import annotations

import logging
import queue
import threading
from collections import OrderedDict
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, Final

import polars as pl

from mlwarden.exceptions import InputError

if TYPE_CHECKING:
    from mlwarden.quality import Suite
    from mlwarden.store.metadata import Store
    from mlwarden.store.rowlog import RowLog

__all__ = [
    "ExplainWorker",
    "explain_batch",
    "explain_missing",
    "row_attributions",
    "row_quality_flags",
    "store_attributions",
]

log = logging.getLogger(__name__)
BASE_VALUE: Final = "base_value"
_HASH_SPACE: Final = 1_000_000
# A row's quality flags are judged with the rows of its batch up to this many rows.
MAX_CONTEXT_ROWS: Final = 50_000


@dataclass(frozen=True)
class _Job:
    model: str
    version: str
    batch_id: str
    start: datetime
    end: datetime


def explain_batch(
    store: Store,
    rowlog: RowLog,
    model: str,
    version: str,
    batch_id: str,
    start: datetime,
    end: datetime,
) -> int:
    """Explain the rows of one logged batch (whose event times lie in ``[start, end]``) with the
    version's kept estimator; return the rows explained (0: nothing to do, or done before)."""
    from mlwarden.service.evaluate import load_reference
    from mlwarden.store.rowlog import BATCH_ID

    record = store.get_version(model, version)
    settings = record.meta.get("explanation") or {}
    sample = float(settings.get("sample", 1.0))
    features = list(settings.get("features") or [])
    if sample <= 0 or not features:
        return 0
    estimator = kept_estimator(store, model, version)
    if estimator is None:
        return 0
    reference = load_reference(store, model, version)
    timestamp = reference.suite.timestamp or "timestamp"
    id_column = reference.evaluators.id if reference.evaluators is not None else "id"
    rows = rowlog.read(
        model,
        start=start,
        end=end + timedelta(microseconds=1),
        version=version,
        timestamp=timestamp,
    )
    if rows.height == 0 or BATCH_ID not in rows.columns or id_column not in rows.columns:
        return 0
    rows = rows.filter(pl.col(BATCH_ID) == batch_id)
    if sample < 1.0:
        # The same rows on every retry: a hash of the id, not a random draw.
        picked = pl.col(id_column).cast(pl.String).hash(seed=7) % _HASH_SPACE
        rows = rows.filter(picked < int(sample * _HASH_SPACE))
    if rows.height == 0:
        return 0
    from mlwarden.explanation import explain

    inputs = model_inputs(store, model, version, rows, features)
    explanation = explain(estimator, inputs, feature_names=features)
    frame = pl.concat([rows.select(id_column, timestamp), explanation.to_df()], how="horizontal")
    return rowlog.append_explanations(model, version, frame, batch_id=batch_id, timestamp=timestamp)


_estimators: OrderedDict[tuple[str, int, datetime], object] = OrderedDict()
_estimators_lock = threading.Lock()
_CACHE_SIZE: Final = 8


def kept_estimator(store: Store, model: str, version: str) -> object | None:
    """The estimator kept with a version, unpickled once per process (it never changes), so
    that explainers that prepare a model once (the tree path) do it once."""
    from mlwarden.registry import Registry

    record = store.get_version(model, version)
    key = (store.url, record.id, record.created_at)
    with _estimators_lock:
        if key in _estimators:
            _estimators.move_to_end(key)
            return _estimators[key]
    estimator = Registry(store).estimator(model, version)
    with _estimators_lock:
        _estimators[key] = estimator
        while len(_estimators) > _CACHE_SIZE:
            _estimators.popitem(last=False)
    return estimator


_schemas: OrderedDict[tuple[str, int, datetime], dict[str, pl.DataType]] = OrderedDict()


def model_inputs(
    store: Store, model: str, version: str, rows: pl.DataFrame, features: list[str]
) -> pl.DataFrame:
    """The ``features`` of logged ``rows`` in the types the model was trained on: categories
    logged as text become the reference's categories again (its Enum, with its codes)."""
    from mlwarden.registry import Registry

    record = store.get_version(model, version)
    key = (store.url, record.id, record.created_at)
    with _estimators_lock:
        schema = _schemas.get(key)
    if schema is None:
        reference = Registry(store).reference_rows(model, version)
        schema = {} if reference is None else dict(reference.schema)
        with _estimators_lock:
            _schemas[key] = schema
            while len(_schemas) > _CACHE_SIZE:
                _schemas.popitem(last=False)
    casts = [
        pl.col(f).cast(pl.String).cast(schema[f], strict=False)
        if isinstance(schema.get(f), pl.Enum | pl.Categorical) and rows.schema[f] != schema[f]
        else pl.col(f)
        for f in features
        if f in rows.columns
    ]
    return rows.select(casts)


def store_attributions(
    store: Store,
    rowlog: RowLog,
    model: str,
    version: str,
    frame: pl.DataFrame,
    *,
    batch_id: str,
    timestamp: str = "timestamp",
) -> int:
    """Store attributions a client computed: ``frame`` has the rows' id and time, optionally
    ``base_value``, and one numeric column per feature of the version (a subset is allowed).

    Raises:
        InputError: a column that is not a feature of the version, or not numeric; no id.
    """
    from mlwarden.service.evaluate import load_reference

    record = store.get_version(model, version)
    reference = load_reference(store, model, version)
    id_column = reference.evaluators.id if reference.evaluators is not None else "id"
    features = set((record.meta.get("explanation") or {}).get("features") or [])
    roles = record.meta.get("roles") or {}
    features |= {c for c, role in roles.items() if role == "feature"}
    if id_column not in frame.columns:
        raise InputError(
            f"Attributions need the id of their prediction in column '{id_column}'.",
            column=id_column,
        )
    for column in frame.columns:
        if column in (id_column, timestamp):
            continue
        if column != BASE_VALUE and column not in features:
            raise InputError(
                f"Column '{column}' is not a feature of version '{version}' of '{model}'; "
                f"attributions are sent per feature ({', '.join(sorted(features)) or 'none'}) "
                f"and '{BASE_VALUE}'.",
                column=column,
            )
        if not frame.schema[column].is_numeric():
            raise InputError(
                f"Column '{column}' must hold numbers (attributions); it is "
                f"{frame.schema[column]}.",
                column=column,
            )
    return rowlog.append_explanations(model, version, frame, batch_id=batch_id, timestamp=timestamp)


def explain_missing(
    store: Store,
    rowlog: RowLog,
    model: str,
    version: str,
    *,
    start: datetime | None = None,
    end: datetime | None = None,
) -> int:
    """Explain every batch of the version in ``[start, end)`` that has no attributions yet
    (a server stopped before its worker got to them); return the rows explained."""
    from mlwarden.service.evaluate import load_reference
    from mlwarden.store.rowlog import BATCH_ID

    record = store.get_version(model, version)
    if not (record.meta.get("explanation") or {}).get("features"):
        return 0
    reference = load_reference(store, model, version)
    timestamp = reference.suite.timestamp or "timestamp"
    rows = rowlog.read(
        model,
        start=start,
        end=end,
        version=version,
        columns=[timestamp, BATCH_ID],
        timestamp=timestamp,
    )
    if rows.height == 0:
        return 0
    done = rowlog.explanations(model, start=start, end=end, version=version, timestamp=timestamp)
    seen = set(done[BATCH_ID].unique().to_list()) if BATCH_ID in done.columns else set()
    spans = (
        rows.filter(~pl.col(BATCH_ID).is_in(list(seen)))
        .group_by(BATCH_ID)
        .agg(pl.col(timestamp).min().alias("first"), pl.col(timestamp).max().alias("last"))
        .sort("first")
    )
    explained = 0
    for batch_id, first, last in spans.iter_rows():  # one per batch, not per row
        explained += explain_batch(store, rowlog, model, version, batch_id, first, last)
    return explained


def row_attributions(
    store: Store,
    rowlog: RowLog,
    model: str,
    version: str,
    row: dict[str, Any],
    id_column: str,
    timestamp: str,
) -> dict[str, Any]:
    """The attributions of one logged prediction: stored ones, else computed now with the
    version's kept estimator (``computed: true``); ``{}`` when neither exists. Features are
    also summed per sensor (the version's groups), strongest first."""

    at = row[timestamp]
    stored = rowlog.explanations(
        model, start=at, end=at + timedelta(microseconds=1), version=version, timestamp=timestamp
    )
    settings = store.get_version(model, version).meta.get("explanation") or {}
    features = list(settings.get("features") or [])
    groups: dict[str, list[str]] = settings.get("groups") or {}
    computed = False
    values: dict[str, float] = {}
    base = None
    if stored.height and id_column in stored.columns:
        match = stored.filter(pl.col(id_column).cast(pl.String) == str(row[id_column])).tail(1)
        if match.height:
            found = match.row(0, named=True)
            values = {f: float(found[f]) for f in features if found.get(f) is not None}
            base = found.get(BASE_VALUE)
    if not values and features:
        estimator = kept_estimator(store, model, version)
        if estimator is not None:
            from mlwarden.explanation import explain

            data = model_inputs(store, model, version, pl.DataFrame([row]), features)
            explanation = explain(estimator, data, feature_names=features)
            values = dict(zip(features, explanation.values[0].tolist(), strict=True))
            base = float(explanation.base_value[0])
            computed = True
    if not values:
        return {}
    owner = {member: group for group, members in groups.items() for member in members}
    by_sensor: dict[str, float] = {}
    for feature, value in values.items():  # per feature
        sensor = owner.get(feature, feature)
        by_sensor[sensor] = by_sensor.get(sensor, 0.0) + value
    return {
        "base_value": None if base is None else float(base),
        "method": settings.get("method", ""),
        "computed": computed,
        "features": sorted(
            ({"feature": f, "value": row.get(f), "attribution": v} for f, v in values.items()),
            key=lambda e: -abs(e["attribution"]),
        ),
        "sensors": sorted(
            ({"sensor": s, "attribution": v} for s, v in by_sensor.items()),
            key=lambda e: -abs(e["attribution"]),
        ),
    }


def row_quality_flags(
    suite: Suite,
    row: dict[str, Any],
    batch: pl.DataFrame | None = None,
    id_column: str = "id",
) -> list[str]:
    """The checks of ``suite`` that one row breaks (``range(temperature_c)``,
    ``stuck(pressure_bar)``). With ``batch``, the rows the row arrived with, the checks run on
    the batch, as the gate ran them, and series checks (stuck, spikes) can name the row too;
    without it only the checks one row can break are asked."""
    from mlwarden.quality.gate import GatePolicy, gate

    frame = pl.DataFrame([row])
    if batch is not None and id_column in batch.columns and id_column in row:
        frame = batch.select([c for c in batch.columns if c in frame.columns])
    try:
        result = gate(frame, suite, GatePolicy(batch="accept"))
    except (InputError, ValueError):  # rows the suite cannot read: no flags to show
        return []
    own = result.quarantined
    if frame.height > 1:
        own = own.filter(pl.col(id_column).cast(pl.String) == str(row[id_column]))
    flags = [str(r) for r in own["reasons"][0]] if own.height else []
    repairs = result.repairs
    if repairs.height and frame.height > 1:
        place = frame.with_row_index("__row").filter(
            pl.col(id_column).cast(pl.String) == str(row[id_column])
        )["__row"]
        repairs = repairs.filter(pl.col("row").is_in(place.implode()))
    if repairs.height:
        flags += [str(c) for c in repairs["check"].unique().to_list()]
    return sorted(set(flags))


def batch_of(
    store: Store, rowlog: RowLog, model: str, row: dict[str, Any], timestamp: str
) -> pl.DataFrame | None:
    """The logged rows that arrived with ``row`` (its batch), when the store knows the batch's
    time span and it holds at most ``MAX_CONTEXT_ROWS`` rows; else None."""
    from sqlalchemy import select

    from mlwarden.store.rowlog import BATCH_ID
    from mlwarden.store.schema import BatchRow

    batch_id = row.get(BATCH_ID)
    if not batch_id:
        return None
    model_id = store.get_model(model).id
    with store.session() as s:
        found = s.scalar(
            select(BatchRow).where(
                BatchRow.model_id == model_id,
                BatchRow.batch_id == batch_id,
                BatchRow.kind == "rows",
            )
        )
        if found is None or found.first_at is None or found.last_at is None:
            return None
        if found.n_rows > MAX_CONTEXT_ROWS:
            return None
        first, last = found.first_at, found.last_at
    rows = rowlog.read(
        model, start=first, end=last + timedelta(microseconds=1), timestamp=timestamp
    )
    return rows.filter(pl.col(BATCH_ID) == batch_id) if BATCH_ID in rows.columns else None


class ExplainWorker:
    """Explains logged batches in a background thread, one job at a time, in arrival order.

    ``submit`` returns at once; a job that fails is logged and dropped (its batch is caught up
    by :func:`explain_missing` at the next start). ``stop`` finishes the running job first.
    """

    def __init__(self, store: Store, rowlog: RowLog, *, maxsize: int = 10_000) -> None:
        self.store = store
        self.rowlog = rowlog
        self._jobs: queue.Queue[_Job | None] = queue.Queue(maxsize)
        self._thread = threading.Thread(target=self._run, name="mlwarden-explain", daemon=True)
        self.explained = 0
        self.failed = 0

    def start(self) -> ExplainWorker:
        self._thread.start()
        return self

    def submit(
        self, model: str, version: str, batch_id: str, start: datetime | None, end: datetime | None
    ) -> bool:
        """Queue a batch; False when it has no time span or the queue is full."""
        if start is None or end is None:
            return False
        try:
            self._jobs.put_nowait(_Job(model, version, batch_id, start, end))
        except queue.Full:
            log.warning("The explanation queue is full; batch %s is explained later.", batch_id)
            return False
        return True

    def join(self) -> None:
        """Wait until every queued job is done (for tests and the demo)."""
        self._jobs.join()

    def stop(self, timeout: float = 10.0) -> None:
        self._jobs.put(None)
        self._thread.join(timeout)

    def _run(self) -> None:
        while True:
            job = self._jobs.get()
            try:
                if job is None:
                    return
                self.explained += explain_batch(
                    self.store,
                    self.rowlog,
                    job.model,
                    job.version,
                    job.batch_id,
                    job.start,
                    job.end,
                )
            except Exception:  # one failed job must not stop the worker
                self.failed += 1
                log.exception("Explaining batch %s of %s failed.", job and job.batch_id, job)
            finally:
                self._jobs.task_done()
