"""The tables of the metadata store (SQLAlchemy 2 declarative).

The Alembic migrations in ``migrations/`` create exactly these tables; a test compares the two,
so a change here without a migration fails. Times are stored in UTC (``UTCDateTime``): SQLite
keeps no zone, so values are normalized on the way in and out.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, ClassVar

from sqlalchemy import (
    JSON,
    Boolean,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    Text,
    TypeDecorator,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

if TYPE_CHECKING:
    from sqlalchemy.engine import Dialect


class UTCDateTime(TypeDecorator[datetime]):
    """A timezone-aware UTC datetime on every backend."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError(f"Times stored by mlwarden must be timezone-aware; got {value!r}.")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: Any, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        assert isinstance(value, datetime)
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def utcnow() -> datetime:
    return datetime.now(UTC)


class Base(DeclarativeBase):
    type_annotation_map: ClassVar[dict[Any, Any]] = {
        datetime: UTCDateTime(),
        dict[str, Any]: JSON(),
    }


class ModelRow(Base):
    __tablename__ = "models"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(200), unique=True)
    description: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class VersionRow(Base):
    __tablename__ = "model_versions"
    __table_args__ = (UniqueConstraint("model_id", "version", name="uq_version_per_model"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    model_id: Mapped[int] = mapped_column(ForeignKey("models.id", ondelete="CASCADE"))
    version: Mapped[str] = mapped_column(String(200))
    meta: Mapped[dict[str, Any]] = mapped_column(default=dict)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class ArtifactRow(Base):
    """What a version is judged against: its reference profile, quality suite, drift reference,
    performance estimator — stored once, reused by every window."""

    __tablename__ = "artifacts"
    __table_args__ = (UniqueConstraint("version_id", "kind", name="uq_artifact_kind"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    version_id: Mapped[int] = mapped_column(ForeignKey("model_versions.id", ondelete="CASCADE"))
    kind: Mapped[str] = mapped_column(String(50))
    content: Mapped[bytes] = mapped_column(LargeBinary)
    sha256: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class AliasRow(Base):
    __tablename__ = "aliases"

    model_id: Mapped[int] = mapped_column(
        ForeignKey("models.id", ondelete="CASCADE"), primary_key=True
    )
    name: Mapped[str] = mapped_column(String(100), primary_key=True)
    version_id: Mapped[int] = mapped_column(ForeignKey("model_versions.id", ondelete="CASCADE"))
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)


class AliasChangeRow(Base):
    __tablename__ = "alias_history"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    model_id: Mapped[int] = mapped_column(ForeignKey("models.id", ondelete="CASCADE"), index=True)
    alias: Mapped[str] = mapped_column(String(100))
    version_id: Mapped[int | None] = mapped_column(
        ForeignKey("model_versions.id", ondelete="SET NULL")
    )
    previous_version_id: Mapped[int | None] = mapped_column(
        ForeignKey("model_versions.id", ondelete="SET NULL")
    )
    changed_at: Mapped[datetime] = mapped_column(default=utcnow)
    changed_by: Mapped[str] = mapped_column(String(200), default="")
    note: Mapped[str] = mapped_column(Text, default="")
    evidence: Mapped[dict[str, Any]] = mapped_column(default=dict)


class WindowRow(Base):
    __tablename__ = "windows"
    __table_args__ = (
        UniqueConstraint("version_id", "start", "end", name="uq_window"),
        Index("ix_windows_version_start", "version_id", "start"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    version_id: Mapped[int] = mapped_column(ForeignKey("model_versions.id", ondelete="CASCADE"))
    start: Mapped[datetime]
    end: Mapped[datetime]
    n_rows: Mapped[int] = mapped_column(Integer, default=0)
    n_labelled: Mapped[int] = mapped_column(Integer, default=0)
    # Feedback given on the window's predictions plus the predictions explained: a window is
    # judged again (its feedback and explanation metrics) when this count changes.
    n_signals: Mapped[int] = mapped_column(Integer, default=0)
    evaluated_at: Mapped[datetime | None] = mapped_column(default=None)


class MetricRow(Base):
    """One number of one window, with its alert bounds."""

    __tablename__ = "metrics"
    __table_args__ = (
        UniqueConstraint("window_id", "name", "column", "segment", name="uq_metric"),
        Index("ix_metrics_name", "name", "window_id"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    window_id: Mapped[int] = mapped_column(ForeignKey("windows.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(String(100))
    column: Mapped[str] = mapped_column(String(200), default="")
    segment: Mapped[str] = mapped_column(String(200), default="")
    value: Mapped[float | None] = mapped_column(Float, default=None)
    lower: Mapped[float | None] = mapped_column(Float, default=None)
    upper: Mapped[float | None] = mapped_column(Float, default=None)
    alert: Mapped[bool] = mapped_column(Boolean, default=False)
    # How far the value is from what the reference makes usual, in calibrated standard units
    # (None for metrics without a calibration: quality checks, counts).
    score: Mapped[float | None] = mapped_column(Float, default=None)


class ValidationRow(Base):
    __tablename__ = "validations"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    window_id: Mapped[int] = mapped_column(
        ForeignKey("windows.id", ondelete="CASCADE"), unique=True
    )
    passed: Mapped[bool] = mapped_column(Boolean)
    result: Mapped[dict[str, Any]] = mapped_column(default=dict)


class WindowDetailRow(Base):
    """What a window's evaluation found beyond its metrics, for the drill-down: the window's
    profile (kept when its rows are deleted by retention) and JSON results by kind (``drift``,
    ``performance``, ``multivariate``)."""

    __tablename__ = "window_details"
    __table_args__ = (UniqueConstraint("window_id", "kind", name="uq_window_detail"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    window_id: Mapped[int] = mapped_column(ForeignKey("windows.id", ondelete="CASCADE"))
    kind: Mapped[str] = mapped_column(String(40))
    result: Mapped[dict[str, Any]] = mapped_column(default=dict)
    blob: Mapped[bytes | None] = mapped_column(LargeBinary, default=None)


class IncidentRow(Base):
    __tablename__ = "incidents"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    model_id: Mapped[int] = mapped_column(ForeignKey("models.id", ondelete="CASCADE"), index=True)
    title: Mapped[str] = mapped_column(Text, default="")
    status: Mapped[str] = mapped_column(String(20), default="open")
    started_at: Mapped[datetime]
    ended_at: Mapped[datetime | None] = mapped_column(default=None)
    summary: Mapped[dict[str, Any]] = mapped_column(default=dict)
    # What opened the incident: "window" (a metric past its bound in one window), "cusum" (a
    # slow change summed over windows) or "quality" (a failed check); and the chance of a
    # window at least as extreme as its opening one on reference-like data.
    rule: Mapped[str] = mapped_column(String(20), default="")
    surprise: Mapped[float | None] = mapped_column(Float, default=None)


class AlertRow(Base):
    __tablename__ = "alerts"
    __table_args__ = (
        Index("ix_alerts_model_started", "model_id", "started_at"),
        Index("ix_alerts_window", "window_id"),
        Index("ix_alerts_incident", "incident_id"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    model_id: Mapped[int] = mapped_column(ForeignKey("models.id", ondelete="CASCADE"))
    version_id: Mapped[int] = mapped_column(ForeignKey("model_versions.id", ondelete="CASCADE"))
    window_id: Mapped[int] = mapped_column(ForeignKey("windows.id", ondelete="CASCADE"))
    incident_id: Mapped[int | None] = mapped_column(
        ForeignKey("incidents.id", ondelete="SET NULL"), default=None
    )
    metric: Mapped[str] = mapped_column(String(100))
    column: Mapped[str] = mapped_column(String(200), default="")
    segment: Mapped[str] = mapped_column(String(200), default="")
    value: Mapped[float | None] = mapped_column(Float, default=None)
    lower: Mapped[float | None] = mapped_column(Float, default=None)
    upper: Mapped[float | None] = mapped_column(Float, default=None)
    started_at: Mapped[datetime]
    status: Mapped[str] = mapped_column(String(20), default="open")


class AlertFeedbackRow(Base):
    """A person's verdict on an alert. A false alarm widens the bounds of that metric (model,
    name, column, segment) to just beyond the value that raised it, for every later evaluation,
    until the feedback is reverted."""

    __tablename__ = "alert_feedback"
    __table_args__ = (Index("ix_alert_feedback_model", "model_id", "active"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    model_id: Mapped[int] = mapped_column(ForeignKey("models.id", ondelete="CASCADE"))
    window_id: Mapped[int | None] = mapped_column(
        ForeignKey("windows.id", ondelete="SET NULL"), default=None
    )
    metric: Mapped[str] = mapped_column(String(100))
    column: Mapped[str] = mapped_column(String(200), default="")
    segment: Mapped[str] = mapped_column(String(200), default="")
    value: Mapped[float | None] = mapped_column(Float, default=None)
    true_alarm: Mapped[bool] = mapped_column(Boolean)
    lower: Mapped[float | None] = mapped_column(Float, default=None)
    upper: Mapped[float | None] = mapped_column(Float, default=None)
    by: Mapped[str] = mapped_column(String(200), default="")
    comment: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    reverted_at: Mapped[datetime | None] = mapped_column(default=None)
    reverted_by: Mapped[str] = mapped_column(String(200), default="")


class TokenRow(Base):
    """An API token: only its SHA-256 is kept; the token itself is shown once, at creation."""

    __tablename__ = "api_tokens"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    sha256: Mapped[str] = mapped_column(String(64), unique=True)
    scope: Mapped[str] = mapped_column(String(10))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    last_used_at: Mapped[datetime | None] = mapped_column(default=None)
    revoked: Mapped[bool] = mapped_column(Boolean, default=False)


class RunRow(Base):
    """One run of a pipeline step: what it was, with which code and parameters, how it ended."""

    __tablename__ = "runs"
    __table_args__ = (
        Index("ix_runs_name_started", "name", "started_at"),
        UniqueConstraint("external_id", name="uq_runs_external_id"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    status: Mapped[str] = mapped_column(String(20), default="running")
    started_at: Mapped[datetime] = mapped_column(default=utcnow)
    ended_at: Mapped[datetime | None] = mapped_column(default=None)
    code_version: Mapped[str] = mapped_column(String(100), default="")
    params: Mapped[dict[str, Any]] = mapped_column(default=dict)
    owner: Mapped[str] = mapped_column(String(200), default="")
    tags: Mapped[dict[str, Any]] = mapped_column(default=dict)
    error: Mapped[str] = mapped_column(Text, default="")
    external_id: Mapped[str | None] = mapped_column(String(200), default=None)


class RunCheckRow(Base):
    """The result of a check (a quality suite) attached before or after a component, per run."""

    __tablename__ = "run_checks"
    __table_args__ = (Index("ix_run_checks_run", "run_id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    run_id: Mapped[int] = mapped_column(ForeignKey("runs.id", ondelete="CASCADE"))
    stage: Mapped[str] = mapped_column(String(10))
    name: Mapped[str] = mapped_column(String(200), default="")
    passed: Mapped[bool] = mapped_column(Boolean)
    result: Mapped[dict[str, Any]] = mapped_column(default=dict)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class LineageArtifactRow(Base):
    """A content-hashed artifact a run read or wrote (a file, a table, a model)."""

    __tablename__ = "lineage_artifacts"
    __table_args__ = (Index("ix_lineage_artifacts_name", "name", "first_seen"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    sha256: Mapped[str] = mapped_column(String(64), unique=True)
    name: Mapped[str] = mapped_column(String(500), default="")
    kind: Mapped[str] = mapped_column(String(40), default="")
    first_seen: Mapped[datetime] = mapped_column(default=utcnow)


class RunIORow(Base):
    """That a run read (``direction="in"``) or wrote (``"out"``) an artifact."""

    __tablename__ = "run_io"
    __table_args__ = (
        UniqueConstraint("run_id", "artifact_id", "direction", name="uq_run_io"),
        Index("ix_run_io_artifact", "artifact_id", "direction"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    run_id: Mapped[int] = mapped_column(ForeignKey("runs.id", ondelete="CASCADE"))
    artifact_id: Mapped[int] = mapped_column(ForeignKey("lineage_artifacts.id", ondelete="CASCADE"))
    direction: Mapped[str] = mapped_column(String(3))


class BatchRow(Base):
    """An ingested batch, by its idempotency key: a retried batch is recognized, not stored
    twice."""

    __tablename__ = "ingested_batches"
    __table_args__ = (
        UniqueConstraint("model_id", "batch_id", name="uq_batch"),
        Index("ix_batches_model_first", "model_id", "first_at"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    model_id: Mapped[int] = mapped_column(ForeignKey("models.id", ondelete="CASCADE"))
    batch_id: Mapped[str] = mapped_column(String(200))
    kind: Mapped[str] = mapped_column(String(20), default="rows")
    n_rows: Mapped[int] = mapped_column(Integer)
    received_at: Mapped[datetime] = mapped_column(default=utcnow)
    # The pipeline run that produced the batch's features (a run id or an OpenLineage run
    # id), and the time its rows span: how a prediction is traced to its upstream runs.
    run_ref: Mapped[str] = mapped_column(String(200), default="")
    first_at: Mapped[datetime | None] = mapped_column(default=None)
    last_at: Mapped[datetime | None] = mapped_column(default=None)


class PolicyActionRow(Base):
    """The audit log of reaction policies: an action a policy took (or would take in a dry
    run, or waits to take until approved), with the condition that fired it. ``key`` makes an
    action fire once per incident (or window) however often its condition is re-evaluated."""

    __tablename__ = "policy_actions"
    __table_args__ = (
        UniqueConstraint("key", name="uq_policy_action_key"),
        Index("ix_policy_actions_model_created", "model_id", "created_at"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    model_id: Mapped[int] = mapped_column(ForeignKey("models.id", ondelete="CASCADE"))
    policy: Mapped[str] = mapped_column(String(200))
    action: Mapped[str] = mapped_column(String(40))
    key: Mapped[str] = mapped_column(String(400))
    condition: Mapped[str] = mapped_column(Text, default="")
    incident_id: Mapped[int | None] = mapped_column(
        ForeignKey("incidents.id", ondelete="SET NULL"), default=None
    )
    window_id: Mapped[int | None] = mapped_column(
        ForeignKey("windows.id", ondelete="SET NULL"), default=None
    )
    status: Mapped[str] = mapped_column(String(20))
    dry_run: Mapped[bool] = mapped_column(Boolean, default=False)
    detail: Mapped[dict[str, Any]] = mapped_column(default=dict)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    decided_by: Mapped[str] = mapped_column(String(200), default="")
    decided_at: Mapped[datetime | None] = mapped_column(default=None)


class PredictionFeedbackRow(Base):
    """A person's feedback on one prediction and its explanation: right or wrong, the true
    value, whether they followed it (``decision``: ``accepted`` or ``overridden``, with a reason
    code), whether the explanation was plausible, and what they were shown."""

    __tablename__ = "prediction_feedback"
    __table_args__ = (
        Index("ix_prediction_feedback_model_at", "model_id", "prediction_at"),
        Index("ix_prediction_feedback_prediction", "model_id", "prediction_id"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    model_id: Mapped[int] = mapped_column(ForeignKey("models.id", ondelete="CASCADE"))
    version: Mapped[str] = mapped_column(String(200))
    prediction_id: Mapped[str] = mapped_column(String(200))
    prediction_at: Mapped[datetime]
    segment: Mapped[str] = mapped_column(String(200), default="")
    role: Mapped[str] = mapped_column(String(20))
    by: Mapped[str] = mapped_column(String(200), default="")
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    correct: Mapped[bool | None] = mapped_column(Boolean, default=None)
    true_value: Mapped[dict[str, Any] | None] = mapped_column(JSON, default=None)
    decision: Mapped[str] = mapped_column(String(20), default="")
    reason: Mapped[str] = mapped_column(String(100), default="")
    comment: Mapped[str] = mapped_column(Text, default="")
    plausible: Mapped[bool | None] = mapped_column(Boolean, default=None)
    explanation_comment: Mapped[str] = mapped_column(Text, default="")
    shown: Mapped[dict[str, Any]] = mapped_column(default=dict)


class PromotionRow(Base):
    """A request to point an alias (``production``) at a candidate version: the gate's
    evaluation against the current version, and the expert review when one is required."""

    __tablename__ = "promotions"
    __table_args__ = (Index("ix_promotions_model", "model_id", "requested_at"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    model_id: Mapped[int] = mapped_column(ForeignKey("models.id", ondelete="CASCADE"))
    version_id: Mapped[int] = mapped_column(ForeignKey("model_versions.id", ondelete="CASCADE"))
    baseline_version_id: Mapped[int | None] = mapped_column(
        ForeignKey("model_versions.id", ondelete="SET NULL"), default=None
    )
    alias: Mapped[str] = mapped_column(String(100))
    status: Mapped[str] = mapped_column(String(20))
    requires_review: Mapped[bool] = mapped_column(Boolean, default=True)
    gate: Mapped[dict[str, Any]] = mapped_column(default=dict)
    requested_by: Mapped[str] = mapped_column(String(200), default="")
    requested_at: Mapped[datetime] = mapped_column(default=utcnow)
    reviewed_by: Mapped[str] = mapped_column(String(200), default="")
    reviewed_at: Mapped[datetime | None] = mapped_column(default=None)
    comment: Mapped[str] = mapped_column(Text, default="")


class ContractFindingRow(Base):
    """How a version's logged batches depart from its logging contract, per finding: a kind
    (``missing_output``, ``unknown``, …) about one column, shown by a ``rows`` or a ``labels``
    batch. ``first_at`` is when a batch first showed it since a batch last met that part of the
    contract (``cleared_at``, null while it is open); ``batches`` and ``rows`` count since
    ``first_at``, ``rows_total`` since the first time ever."""

    __tablename__ = "contract_findings"
    __table_args__ = (
        UniqueConstraint("version_id", "batch", "kind", "column", name="uq_contract_finding"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    version_id: Mapped[int] = mapped_column(ForeignKey("model_versions.id", ondelete="CASCADE"))
    batch: Mapped[str] = mapped_column(String(10))
    kind: Mapped[str] = mapped_column(String(40))
    column: Mapped[str] = mapped_column(String(200))
    message: Mapped[str] = mapped_column(Text, default="")
    first_at: Mapped[datetime]
    last_at: Mapped[datetime]
    cleared_at: Mapped[datetime | None] = mapped_column(default=None)
    batches: Mapped[int] = mapped_column(Integer, default=0)
    rows: Mapped[int] = mapped_column(Integer, default=0)
    rows_total: Mapped[int] = mapped_column(Integer, default=0)
