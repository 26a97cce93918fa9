"""Feedback on predictions and their explanations, from the people who act on them.

Three roles give it — ``operator``, ``domain_expert``, ``ml_engineer`` — on one logged
prediction: whether it was right, the true value, whether they *followed* it (``accepted``) or
not (``overridden``, with a reason code from the version's list and a comment), and whether its
explanation was plausible. Each piece of feedback keeps who gave it, when, in which role, for
which model version, and what they were shown (the prediction, its attributions by sensor and
the quality flags of its row), so a later reader can tell what the person saw.

Feedback feeds the monitoring loop:

* a true value (or "correct"/"incorrect" on a binary classifier) becomes a label of the row, so
  realized performance counts it;
* per window and per segment, the **override rate** (share of the predictions with a decision
  that people did not follow) and the **explanation plausibility rate** are metrics with alert
  bounds (:func:`feedback_metrics`);
* :func:`export_training_set` writes the rows people labelled, with their labels, as a
  training set.

Example:
    >>> import tempfile, pathlib
    >>> from datetime import datetime, timedelta, UTC
    >>> from mlwarden.datasets import production_line
    >>> from mlwarden.registry import Registry
    >>> from mlwarden.store.metadata import Store
    >>> from mlwarden.store.rowlog import RowLog
    >>> store, log = Store("sqlite://"), RowLog(pathlib.Path(tempfile.mkdtemp()))
    >>> _ = Registry(store).register("m", "1", production_line(3_000), timestamp="timestamp")
    >>> rows = production_line(10, seed=2).with_row_index("id")
    >>> _ = log.append("m", "1", rows, batch_id="b1")
    >>> record = give_feedback(
    ...     store, log, "m", "3", role="operator", by="ana", decision="overridden",
    ...     reason="sensor_fault", comment="pressure reading frozen",
    ... )
    >>> record.decision, record.reason, record.version
    ('overridden', 'sensor_fault', '1')
    >>> try:
    ...     give_feedback(store, log, "m", "3", role="pilot", decision="accepted")
    ... except ParameterError as error:
    ...     print(error.parameter)
    role
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final, Literal

import polars as pl
from sqlalchemy import func, insert, select

from mlwarden.exceptions import InputError, NotFoundError, ParameterError
from mlwarden.store.metadata import MetricValue, as_utc
from mlwarden.store.schema import PredictionFeedbackRow

if TYPE_CHECKING:
    from collections.abc import Sequence

    from mlwarden.alerting.null import NullModel
    from mlwarden.store.metadata import Store
    from mlwarden.store.rowlog import RowLog

__all__ = [
    "DECISIONS",
    "DEFAULT_REASONS",
    "ROLES",
    "PredictionFeedback",
    "export_training_set",
    "feedback_frame",
    "feedback_metrics",
    "give_feedback",
    "list_feedback",
    "record_feedback",
]

ROLES: Final = ("operator", "domain_expert", "ml_engineer")
DECISIONS: Final = ("accepted", "overridden")
DEFAULT_REASONS: Final = (
    "sensor_fault",
    "process_condition",
    "prediction_implausible",
    "explanation_implausible",
    "other",
)
OVERRIDE_RATE: Final = "override_rate"
PLAUSIBILITY_RATE: Final = "explanation_plausibility"
FEEDBACK_COUNT: Final = "feedback_count"
# The rates people are expected to show on a healthy model (a version's meta may set its own):
# the alert bounds are the binomial quantiles of these rates for the window's count of feedback.
EXPECTED_OVERRIDE_RATE: Final = 0.10
EXPECTED_PLAUSIBILITY: Final = 0.90
BOUND_QUANTILE: Final = 0.999
# A rate is judged from this much feedback in a window on; fewer give the value without bounds.
MIN_FEEDBACK: Final = 5
MAX_TEXT: Final = 2_000
_CLASSES_MAX: Final = 50


@dataclass(frozen=True)
class PredictionFeedback:
    """One person's feedback on one prediction.

    Attributes:
        id: its id in the store.
        model: the model; ``version`` the version that made the prediction.
        prediction_id: the id of the logged row; ``prediction_at`` its event time.
        segment: the row's segment (``line=L2``), empty when the version has none.
        role: ``operator``, ``domain_expert`` or ``ml_engineer``; ``by`` who.
        created_at: when it was given.
        correct: whether the prediction was right (None: not said).
        true_value: the true value, when given.
        decision: ``accepted`` or ``overridden`` (empty: not said); ``reason`` the reason code
            of an override; ``comment`` free text.
        plausible: whether the explanation was plausible (None: not said);
            ``explanation_comment`` free text.
        shown: what the person was shown: ``prediction``, ``explanation`` (attributions by
            sensor), ``quality_flags``.
    """

    id: int
    model: str
    version: str
    prediction_id: str
    prediction_at: datetime
    segment: str
    role: str
    by: str
    created_at: datetime
    correct: bool | None = None
    true_value: Any = None
    decision: str = ""
    reason: str = ""
    comment: str = ""
    plausible: bool | None = None
    explanation_comment: str = ""
    shown: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        doc = asdict(self)
        doc["prediction_at"] = self.prediction_at.isoformat()
        doc["created_at"] = self.created_at.isoformat()
        return doc


def reasons_of(store: Store, model: str, version: str) -> tuple[str, ...]:
    """The reason codes of overrides for a version (its own list, else the defaults)."""
    meta = store.get_version(model, version).meta
    own = meta.get("feedback_reasons")
    return tuple(own) if own else DEFAULT_REASONS


def find_prediction(
    store: Store, rowlog: RowLog, model: str, prediction_id: str, at: datetime | None = None
) -> tuple[dict[str, Any], str, str]:
    """The logged row of ``prediction_id`` (the newest, if logged twice), its version, and the
    name of the version's id column; ``at``, the prediction's time when known, spares reading
    every logged id.

    Raises:
        NotFoundError: the model is unknown or logged no row with that id.
    """
    from mlwarden.service.evaluate import load_reference
    from mlwarden.store.rowlog import MODEL_VERSION

    versions = store.versions(model)
    if not versions:
        raise NotFoundError(f"Model '{model}' has no versions.", what="prediction_id")
    try:
        record = store.resolve(model, "production")
    except NotFoundError:
        record = versions[-1]
    reference = load_reference(store, model, record.version)
    id_column = reference.evaluators.id if reference.evaluators is not None else "id"
    timestamp = reference.suite.timestamp or "timestamp"
    try:
        keys = rowlog.read(
            model,
            start=at,
            end=None if at is None else _after(at),
            columns=[id_column, timestamp],
            timestamp=timestamp,
        )
    except InputError as exc:
        raise NotFoundError(
            f"Model '{model}' logs no '{id_column}' column, so its predictions cannot be found "
            "by id.",
            what="prediction_id",
        ) from exc
    # One vectorized comparison over the id column; the newest match wins.
    matches = pl.col(id_column).cast(pl.String) == str(prediction_id)
    found = keys.filter(matches).sort(timestamp).tail(1) if keys.width else keys
    if found.height == 0:
        raise NotFoundError(
            f"Model '{model}' logged no prediction with {id_column} = {prediction_id!r}.",
            what="prediction_id",
        )
    at = found[timestamp][0]
    full = rowlog.read(model, start=at, end=_after(at), timestamp=timestamp)
    found = full.filter(matches).tail(1)
    row = found.row(0, named=True)
    return row, str(row[MODEL_VERSION]), id_column


def give_feedback(
    store: Store,
    rowlog: RowLog,
    model: str,
    prediction_id: str,
    *,
    role: str,
    by: str = "",
    correct: bool | None = None,
    true_value: Any = None,
    decision: str | None = None,
    reason: str = "",
    comment: str = "",
    plausible: bool | None = None,
    explanation_comment: str = "",
    shown: dict[str, Any] | None = None,
    at: datetime | None = None,
    now: datetime | None = None,
) -> PredictionFeedback:
    """Record feedback on the logged prediction ``prediction_id`` of ``model``.

    ``shown`` is what the person saw; when None, the prediction, its stored attributions (by
    sensor, strongest first) and the quality flags of its row are recorded. ``at`` is the
    prediction's time when the caller knows it (a faster lookup). A ``true_value``,
    or ``correct`` on a binary classifier, is also logged as the row's label.

    Raises:
        NotFoundError: unknown model or prediction id.
        ParameterError: a role, decision or reason code outside its list; nothing said.
        InputError: a true value of the wrong type for the model's target.
    """
    role = _one_of(role, ROLES, "role")
    decision = "" if decision in ("", None) else _one_of(decision, DECISIONS, "decision")
    for name, value in (("correct", correct), ("plausible", plausible)):
        if value is not None and not isinstance(value, bool):
            raise ParameterError(
                f"The '{name}' of feedback must be true or false; got {value!r}.",
                parameter=name,
            )
    for name, text in (
        ("by", by),
        ("comment", comment),
        ("explanation_comment", explanation_comment),
    ):
        if not isinstance(text, str) or len(text) > MAX_TEXT:
            raise ParameterError(
                f"The '{name}' of feedback must be text of at most {MAX_TEXT:,} characters.",
                parameter=name,
            )
    if correct is None and true_value is None and not decision and plausible is None:
        raise ParameterError(
            "Feedback must say something: 'correct', 'true_value', 'decision' (accepted or "
            "overridden) or 'plausible'.",
            parameter="decision",
        )
    row, version, id_column = find_prediction(store, rowlog, model, prediction_id, at)
    if reason:
        reason = _one_of(reason, reasons_of(store, model, version), "reason")
    if decision == "overridden" and not reason:
        raise ParameterError(
            "An override needs a 'reason' code, one of "
            f"{', '.join(reasons_of(store, model, version))}.",
            parameter="reason",
        )
    from mlwarden.service.evaluate import load_reference

    reference = load_reference(store, model, version)
    evaluators = reference.evaluators
    timestamp = reference.suite.timestamp or "timestamp"
    target = evaluators.target if evaluators is not None else None
    label = _label(store, model, version, target, true_value, correct, row, evaluators)
    segment = ""
    if evaluators is not None and evaluators.segment and evaluators.segment in row:
        from mlwarden.service.evaluators import segment_name

        segment = segment_name(evaluators.segment, row[evaluators.segment])
    if shown is None:
        shown = shown_with(store, rowlog, model, version, row, id_column, timestamp)
    moment = now or datetime.now(UTC)
    model_id = store.get_model(model).id
    with store.session() as s:
        entry = PredictionFeedbackRow(
            model_id=model_id,
            version=version,
            prediction_id=str(prediction_id),
            prediction_at=as_utc(row[timestamp], timestamp),
            segment=segment,
            role=role,
            by=by,
            created_at=moment,
            correct=correct,
            true_value=None if true_value is None else {"value": true_value},
            decision=decision,
            reason=reason,
            comment=comment,
            plausible=plausible,
            explanation_comment=explanation_comment,
            shown=_plain(shown),
        )
        s.add(entry)
        s.flush()
        if label is not None and target is not None:
            # Written inside the transaction: a label that cannot be written leaves no feedback.
            rowlog.append_labels(
                model,
                pl.DataFrame(
                    {
                        id_column: [row[id_column]],
                        "timestamp": [moment],
                        target: [label],
                    }
                ),
                batch_id=f"feedback-{entry.id}-{int(moment.timestamp() * 1e6)}",
                id=id_column,
            )
        return _record(entry, model)


def record_feedback(
    store: Store,
    rowlog: RowLog,
    model: str,
    feedback: object,
    *,
    now: datetime | None = None,
) -> int:
    """Record many pieces of feedback at once (a shift's log from the plant's own system):
    ``feedback`` is a frame with ``prediction_id``, ``role`` and at least one of ``decision``
    and ``plausible`` per row, optionally ``by``, ``reason``, ``comment``,
    ``explanation_comment``, ``shown`` (JSON text) and ``at`` (the prediction's time, which
    narrows the lookup). Everything is checked before anything is written; all rows are
    written in one transaction. True values go through the labels instead.

    Raises:
        ParameterError: a column this function does not take; a role, decision or reason
            outside its list (the first offending value named); a row that says nothing.
        NotFoundError: a prediction id the model did not log.
    """
    from mlwarden.frames import to_polars
    from mlwarden.service.evaluate import load_reference
    from mlwarden.service.evaluators import segment_name
    from mlwarden.store.rowlog import MODEL_VERSION

    frame = to_polars(feedback)
    allowed = {
        "prediction_id": pl.String,
        "role": pl.String,
        "by": pl.String,
        "decision": pl.String,
        "reason": pl.String,
        "comment": pl.String,
        "plausible": pl.Boolean,
        "explanation_comment": pl.String,
        "shown": pl.String,
        "at": None,
    }
    for column in frame.columns:
        if column not in allowed:
            raise ParameterError(
                f"Feedback has no field '{column}'; expected {', '.join(allowed)}.",
                parameter=column,
            )
    for column in ("prediction_id", "role"):
        if column not in frame.columns:
            raise ParameterError(f"Feedback needs a '{column}' column.", parameter=column)
    if frame.height == 0:
        return 0
    frame = frame.with_columns(
        [
            pl.lit(None, dtype).alias(c)
            for c, dtype in allowed.items()
            if c not in frame.columns and dtype is not None
        ]
    ).with_columns(
        [pl.col(c).cast(t) for c, t in allowed.items() if t is not None],
    )
    frame = frame.with_columns(
        pl.col("by", "reason", "comment", "explanation_comment").fill_null(""),
        pl.col("decision").fill_null(""),
    )
    _all_of(frame, "role", ROLES)
    _all_of(frame.filter(pl.col("decision") != ""), "decision", DECISIONS)
    silent = frame.filter((pl.col("decision") == "") & pl.col("plausible").is_null())
    if silent.height:
        raise ParameterError(
            f"Feedback on {silent['prediction_id'][0]!r} says nothing: give a 'decision' "
            "(accepted or overridden) or 'plausible'.",
            parameter="decision",
        )
    unexplained = frame.filter((pl.col("decision") == "overridden") & (pl.col("reason") == ""))
    if unexplained.height:
        raise ParameterError(
            f"The override of {unexplained['prediction_id'][0]!r} needs a 'reason' code.",
            parameter="reason",
        )
    record = store.resolve(model, "production") if "production" in store.aliases(model) else None
    record = record or store.versions(model)[-1]
    reference = load_reference(store, model, record.version)
    evaluators = reference.evaluators
    id_column = evaluators.id if evaluators is not None else "id"
    timestamp = reference.suite.timestamp or "timestamp"
    segment = evaluators.segment if evaluators is not None else None
    first = last = None
    if "at" in frame.columns and frame["at"].null_count() == 0:
        low, high = frame["at"].min(), frame["at"].max()
        if isinstance(low, datetime) and isinstance(high, datetime):
            first, last = low, _after(high)
    wanted = [id_column, timestamp, MODEL_VERSION] + ([segment] if segment else [])
    logged = rowlog.read(model, start=first, end=last, columns=wanted, timestamp=timestamp)
    logged = (
        logged.with_columns(pl.col(id_column).cast(pl.String).alias("prediction_id"))
        .sort(timestamp)
        .unique("prediction_id", keep="last")
    )
    joined = frame.join(logged, on="prediction_id", how="left")
    missing = joined.filter(pl.col(timestamp).is_null())
    if missing.height:
        raise NotFoundError(
            f"Model '{model}' logged no prediction with {id_column} = "
            f"{missing['prediction_id'][0]!r} ({missing.height:,} of {frame.height:,} unknown).",
            what="prediction_id",
        )
    for version in joined[MODEL_VERSION].unique().to_list():  # one per version
        own = joined.filter((pl.col(MODEL_VERSION) == version) & (pl.col("reason") != ""))
        _all_of(own, "reason", reasons_of(store, model, version))
    moment = now or datetime.now(UTC)
    model_id = store.get_model(model).id
    records = [
        {
            "model_id": model_id,
            "version": row[MODEL_VERSION],
            "prediction_id": row["prediction_id"],
            "prediction_at": as_utc(row[timestamp], timestamp),
            "segment": segment_name(segment, row[segment]) if segment else "",
            "role": row["role"],
            "by": row["by"],
            "created_at": moment,
            "decision": row["decision"],
            "reason": row["reason"],
            "comment": row["comment"],
            "plausible": row["plausible"],
            "explanation_comment": row["explanation_comment"],
            "shown": json.loads(row["shown"]) if row["shown"] else {},
        }
        for row in joined.iter_rows(named=True)  # the insert's payload, one dict per record
    ]
    with store.session() as s:
        s.execute(insert(PredictionFeedbackRow), records)
    return len(records)


def list_feedback(
    store: Store,
    model: str,
    *,
    version: str | None = None,
    prediction_id: str | None = None,
    start: datetime | None = None,
    end: datetime | None = None,
    limit: int | None = None,
) -> list[PredictionFeedback]:
    """Feedback on a model's predictions (made in ``[start, end)``), newest first."""
    model_id = store.get_model(model).id
    with store.session() as s:
        query = select(PredictionFeedbackRow).where(PredictionFeedbackRow.model_id == model_id)
        if version is not None:
            query = query.where(PredictionFeedbackRow.version == version)
        if prediction_id is not None:
            query = query.where(PredictionFeedbackRow.prediction_id == str(prediction_id))
        if start is not None:
            query = query.where(PredictionFeedbackRow.prediction_at >= start)
        if end is not None:
            query = query.where(PredictionFeedbackRow.prediction_at < end)
        query = query.order_by(PredictionFeedbackRow.id.desc())
        if limit is not None:
            query = query.limit(limit)
        return [_record(r, model) for r in s.scalars(query)]


def feedback_frame(
    store: Store,
    model: str,
    *,
    version: str | None = None,
    start: datetime | None = None,
    end: datetime | None = None,
) -> pl.DataFrame:
    """Feedback as a table, one row per piece of feedback, oldest first."""
    records = list_feedback(store, model, version=version, start=start, end=end)
    schema: dict[str, pl.DataType] = {
        "id": pl.Int64(),
        "version": pl.String(),
        "prediction_id": pl.String(),
        "prediction_at": pl.Datetime("us", "UTC"),
        "segment": pl.String(),
        "role": pl.String(),
        "by": pl.String(),
        "created_at": pl.Datetime("us", "UTC"),
        "correct": pl.Boolean(),
        "decision": pl.String(),
        "reason": pl.String(),
        "plausible": pl.Boolean(),
    }
    rows = [{k: getattr(r, k) for k in schema} for r in reversed(records)]
    return pl.DataFrame(rows, schema=schema)


def count_feedback(
    store: Store, model: str, version: str, start: datetime | None, end: datetime | None
) -> dict[datetime, int]:
    """Pieces of feedback per prediction time (for windowing), of one version."""
    model_id = store.get_model(model).id
    with store.session() as s:
        query = (
            select(PredictionFeedbackRow.prediction_at, func.count())
            .where(
                PredictionFeedbackRow.model_id == model_id,
                PredictionFeedbackRow.version == version,
            )
            .group_by(PredictionFeedbackRow.prediction_at)
        )
        if start is not None:
            query = query.where(PredictionFeedbackRow.prediction_at >= start)
        if end is not None:
            query = query.where(PredictionFeedbackRow.prediction_at < end)
        return {as_utc(at, "prediction_at"): int(n) for at, n in s.execute(query).all()}


def feedback_metrics(
    store: Store,
    model: str,
    version: str,
    start: datetime,
    end: datetime,
    *,
    meta: dict[str, Any] | None = None,
) -> list[MetricValue]:
    """The feedback metrics of the window ``[start, end)`` of a version, overall and per
    segment: ``override_rate`` (overridden / predictions with a decision, the latest decision
    per prediction), ``explanation_plausibility`` (plausible / predictions judged), and
    ``feedback_count``. A rate's bound is the 99.9 % binomial quantile of the expected rate
    (``expected_override_rate``, ``expected_plausibility`` in the version's meta, else 10 %
    and 90 %) for the window's count, from ``MIN_FEEDBACK`` pieces on."""
    frame = feedback_frame(store, model, version=version, start=start, end=end)
    if frame.height == 0:
        return []
    meta = meta or {}
    override_p = float(meta.get("expected_override_rate", EXPECTED_OVERRIDE_RATE))
    plausible_p = float(meta.get("expected_plausibility", EXPECTED_PLAUSIBILITY))
    metrics = [MetricValue(FEEDBACK_COUNT, float(frame.height))]
    parts: list[tuple[str, pl.DataFrame]] = [("", frame)]
    segments = frame.filter(pl.col("segment") != "")
    if segments.height:
        parts += [
            (str(key), part)
            for (key,), part in segments.partition_by("segment", as_dict=True).items()
        ]
    for segment, part in parts:  # one per segment, not per row
        decided = _latest(part, "decision", pl.col("decision") != "")
        if decided.height:
            n = decided.height
            rate = float((decided["decision"] == "overridden").sum()) / n
            upper = _quantile(n, override_p, BOUND_QUANTILE)
            null = _rate_null(n, override_p, "upper")
            metrics.append(
                MetricValue(OVERRIDE_RATE, rate, upper=upper, segment=segment, null=null)
            )
        judged = _latest(part, "plausible", pl.col("plausible").is_not_null())
        if judged.height:
            n = judged.height
            rate = float(judged["plausible"].sum()) / n
            lower = _quantile(n, plausible_p, 1 - BOUND_QUANTILE)
            null = _rate_null(n, plausible_p, "lower")
            metrics.append(
                MetricValue(PLAUSIBILITY_RATE, rate, lower=lower, segment=segment, null=null)
            )
    return metrics


def _rate_null(n: int, expected: float, side: Literal["upper", "lower"]) -> NullModel | None:
    """A rate of ``n`` people's decisions judged by the binomial law at the expected rate (what
    a version's alert budget bounds it with), from ``MIN_FEEDBACK`` decisions on."""
    from mlwarden.alerting.null import NullModel

    if n < MIN_FEEDBACK or not 0.0 < expected < 1.0:
        return None
    return NullModel("binomial", side=side, n=float(n), center=expected)


def export_training_set(
    store: Store,
    rowlog: RowLog,
    model: str,
    path: str | Path | None = None,
    *,
    version: str | None = None,
    start: datetime | None = None,
    end: datetime | None = None,
) -> pl.DataFrame:
    """The logged rows that feedback labelled, with the label (the target column) and the
    feedback that gave it (``feedback_role``, ``feedback_by``, ``feedback_decision``,
    ``feedback_reason``, ``feedback_at``); written to ``path`` (Parquet, or CSV by suffix)
    when given, atomically. Rows whose feedback gave no label are left out.

    Raises:
        ParameterError: the model's versions have no target, so feedback labels nothing.
    """
    from mlwarden.service.evaluate import load_reference, read_rows

    records = [
        r
        for r in list_feedback(store, model, version=version, start=start, end=end)
        if r.true_value is not None or r.correct is not None
    ]
    versions = sorted({r.version for r in records}) or [version or "production"]
    frames = []
    for name in versions:
        reference = load_reference(store, model, name)
        evaluators = reference.evaluators
        if evaluators is None or evaluators.target is None:
            raise ParameterError(
                f"Version '{name}' of '{model}' has no target column, so feedback gives no "
                "labels to export.",
                parameter="version",
            )
        timestamp = reference.suite.timestamp or "timestamp"
        own = [r for r in records if r.version == name]
        if not own:
            continue
        first = min(r.prediction_at for r in own)
        last = max(r.prediction_at for r in own)
        rows = read_rows(rowlog, model, name, first, _after(last), timestamp, evaluators)
        # The latest feedback per prediction (records are newest first).
        given = pl.DataFrame(
            {
                "__id": [r.prediction_id for r in own],
                "feedback_role": [r.role for r in own],
                "feedback_by": [r.by for r in own],
                "feedback_decision": [r.decision for r in own],
                "feedback_reason": [r.reason for r in own],
                "feedback_at": [r.created_at for r in own],
            },
            schema_overrides={"feedback_at": pl.Datetime("us", "UTC")},
        ).unique("__id", keep="first", maintain_order=True)
        joined = rows.with_columns(pl.col(evaluators.id).cast(pl.String).alias("__id")).join(
            given, on="__id", how="inner"
        )
        frames.append(joined.filter(pl.col(evaluators.target).is_not_null()).drop("__id"))
    result = pl.concat(frames, how="diagonal_relaxed") if frames else pl.DataFrame()
    from mlwarden.store.rowlog import BATCH_ID, INGESTED_AT

    result = result.drop([c for c in (BATCH_ID, INGESTED_AT) if c in result.columns])
    if path is not None:
        _write(result, Path(path))
    return result


# -- helpers -----------------------------------------------------------------------------------


def shown_with(
    store: Store,
    rowlog: RowLog,
    model: str,
    version: str,
    row: dict[str, Any],
    id_column: str,
    timestamp: str,
) -> dict[str, Any]:
    """What a person is shown about a prediction: the prediction, its attributions by sensor
    (strongest first; empty when not explained) and its row's quality flags."""
    from mlwarden.service.evaluate import load_reference
    from mlwarden.service.explain import batch_of, row_attributions, row_quality_flags

    reference = load_reference(store, model, version)
    evaluators = reference.evaluators
    prediction = None
    if evaluators is not None:
        for column in (evaluators.score, evaluators.prediction):
            if column and column in row:
                prediction = row[column]
                break
    attributions = row_attributions(store, rowlog, model, version, row, id_column, timestamp)
    return {
        "prediction": prediction,
        "explanation": attributions,
        "quality_flags": row_quality_flags(
            reference.suite, row, batch_of(store, rowlog, model, row, timestamp), id_column
        ),
    }


def _label(
    store: Store,
    model: str,
    version: str,
    target: str | None,
    true_value: Any,
    correct: bool | None,
    row: dict[str, Any],
    evaluators: Any,
) -> Any:
    """The label the feedback gives (None: none), checked against the target's type."""
    if true_value is None and correct is None:
        return None
    if target is None:
        if true_value is not None:
            raise InputError(
                f"Version '{version}' of '{model}' has no target column, so 'true_value' "
                "cannot be recorded; send 'correct' or a 'decision' instead.",
                column="true_value",
            )
        return None
    from mlwarden.registry import Registry

    reference_rows = Registry(store).reference_rows(model, version)
    dtype = None if reference_rows is None else reference_rows.schema.get(target)
    classes: list[Any] = []
    if reference_rows is not None and dtype is not None:
        values = reference_rows[target].drop_nulls().unique()
        if values.len() <= _CLASSES_MAX and (not dtype.is_float() or values.len() <= 2):
            classes = sorted(values.to_list(), key=str)
    if true_value is None:
        # "correct"/"incorrect" names the label of a binary classifier only.
        prediction = row.get(evaluators.prediction) if evaluators.prediction else None
        if len(classes) != 2 or prediction is None:
            return None
        match = [c for c in classes if str(c) == str(prediction)]
        if not match:
            return None
        return match[0] if correct else next(c for c in classes if str(c) != str(prediction))
    if classes:
        match = [c for c in classes if str(c) == str(true_value) and _same_kind(c, true_value)]
        if not match:
            raise InputError(
                f"The 'true_value' {true_value!r} is not a class of '{target}'; expected one of "
                f"{', '.join(map(repr, classes))}.",
                column="true_value",
            )
        return match[0]
    if dtype is not None and dtype.is_numeric():
        if isinstance(true_value, bool) or not isinstance(true_value, int | float):
            raise InputError(
                f"The 'true_value' of '{target}' must be a number; got {true_value!r}.",
                column="true_value",
            )
        if not math.isfinite(float(true_value)):
            raise InputError(
                f"The 'true_value' of '{target}' must be a finite number; got {true_value!r}.",
                column="true_value",
            )
        return float(true_value) if dtype.is_float() else true_value
    return true_value


def _same_kind(cls: Any, value: Any) -> bool:
    """A class label and a sent value are of the same kind (1 is not "1", nor True)."""
    if isinstance(cls, bool) or isinstance(value, bool):
        return isinstance(cls, bool) and isinstance(value, bool)
    if isinstance(cls, int | float):
        return isinstance(value, int | float)
    return isinstance(value, str)


def _all_of(frame: pl.DataFrame, column: str, allowed: Sequence[str]) -> None:
    """Every value of ``column`` is in ``allowed``; else the first one that is not is named."""
    bad = frame.filter(~pl.col(column).is_in(list(allowed)) | pl.col(column).is_null())
    if bad.height:
        _one_of(bad[column][0], allowed, column)


def _one_of(value: object, allowed: Sequence[str], name: str) -> str:
    if not isinstance(value, str) or value not in allowed:
        raise ParameterError(
            f"The '{name}' of feedback must be one of {', '.join(allowed)}; got {value!r}.",
            parameter=name,
        )
    return value


def _latest(frame: pl.DataFrame, column: str, where: pl.Expr) -> pl.DataFrame:
    """The latest feedback per prediction that says something about ``column``."""
    return frame.filter(where).sort("id").unique("prediction_id", keep="last").select(column)


def _quantile(n: int, p: float, q: float) -> float | None:
    """The ``q`` quantile of the rate of ``n`` Bernoulli(``p``) trials; None below
    ``MIN_FEEDBACK``."""
    if n < MIN_FEEDBACK:
        return None
    from scipy.stats import binom

    return float(binom.ppf(q, n, p)) / n


def _after(moment: datetime) -> datetime:
    from datetime import timedelta

    return moment + timedelta(microseconds=1)


def _plain(value: Any) -> Any:
    """JSON-ready: datetimes as ISO text, NaN as None."""
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def _record(row: PredictionFeedbackRow, model: str) -> PredictionFeedback:
    return PredictionFeedback(
        id=row.id,
        model=model,
        version=row.version,
        prediction_id=row.prediction_id,
        prediction_at=as_utc(row.prediction_at, "prediction_at"),
        segment=row.segment,
        role=row.role,
        by=row.by,
        created_at=as_utc(row.created_at, "created_at"),
        correct=row.correct,
        true_value=None if row.true_value is None else row.true_value.get("value"),
        decision=row.decision,
        reason=row.reason,
        comment=row.comment,
        plausible=row.plausible,
        explanation_comment=row.explanation_comment,
        shown=dict(row.shown or {}),
    )


def _write(frame: pl.DataFrame, path: Path) -> None:
    """Write Parquet (or CSV for a ``.csv`` path) under a temporary name, then rename."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.tmp")
    if path.suffix.lower() == ".csv":
        frame.write_csv(temporary)
    else:
        frame.write_parquet(temporary)
    temporary.replace(path)
