"""The metadata store: models, versions and their references, aliases with history, windows,
metric series with alert bounds, alerts, incidents, API tokens, ingested batches and how they
departed from their version's logging contract.

One class, :class:`Store`, over SQLAlchemy 2: SQLite in the data directory by default (WAL mode,
so readers never block the writer), PostgreSQL (psycopg 3) in production. Every method is one
transaction: it happens entirely or not at all. Records come back as frozen dataclasses, never
as live ORM objects.

Example:
    >>> store = Store("sqlite://")          # in memory; Store() uses the data directory
    >>> store.migrate()
    >>> store.create_model("defect-model").name
    'defect-model'
    >>> v1 = store.create_version("defect-model", "1", artifacts={"suite": b"checks: []"})
    >>> store.set_alias("defect-model", "production", "1").version
    '1'
    >>> store.resolve("defect-model", "production").version
    '1'
"""

from __future__ import annotations

import hashlib
import os
import re
import secrets
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final, Literal, cast

import polars as pl
from sqlalchemy import Engine, case, create_engine, delete, event, func, literal, select, update
from sqlalchemy.exc import IntegrityError, OperationalError
from sqlalchemy.orm import Session, sessionmaker

from mlwarden.exceptions import ConflictError, NotFoundError, ParameterError, StoreError
from mlwarden.store.schema import (
    AlertFeedbackRow,
    AlertRow,
    AliasChangeRow,
    AliasRow,
    ArtifactRow,
    BatchRow,
    ContractFindingRow,
    IncidentRow,
    MetricRow,
    ModelRow,
    TokenRow,
    UTCDateTime,
    ValidationRow,
    VersionRow,
    WindowDetailRow,
    WindowRow,
    utcnow,
)

if TYPE_CHECKING:
    from collections.abc import Iterator, Sequence

    from sqlalchemy import CursorResult

    from mlwarden.alerting.null import NullModel
    from mlwarden.contract import Finding

DATABASE_URL_ENV: Final = "MLWARDEN_DATABASE_URL"
DATA_DIR_ENV: Final = "MLWARDEN_DATA_DIR"
DEFAULT_DATA_DIR: Final = Path(".mlwarden")
_NAME: Final = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,199}$")
Scope = Literal["read", "write"]
LoggedBatch = Literal["rows", "labels"]
TOKEN_USE_RESOLUTION: Final = timedelta(minutes=1)


@dataclass(frozen=True)
class ModelRecord:
    id: int
    name: str
    description: str
    created_at: datetime


@dataclass(frozen=True)
class VersionRecord:
    id: int
    model: str
    version: str
    meta: dict[str, Any]
    created_at: datetime
    artifacts: tuple[str, ...] = ()


@dataclass(frozen=True)
class AliasChange:
    model: str
    alias: str
    version: str | None
    previous: str | None
    changed_at: datetime
    changed_by: str = ""
    note: str = ""
    evidence: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class WindowRecord:
    id: int
    model: str
    version: str
    start: datetime
    end: datetime
    n_rows: int
    n_labelled: int
    evaluated_at: datetime | None
    n_signals: int = 0


@dataclass(frozen=True)
class MetricValue:
    """One number of a window: ``name`` (``"drift.psi"``, ``"null_rate"``, ``"f1"``), the column
    and segment it is about (empty for the whole table), its value and alert bounds.

    ``score`` is how far the value lies from what the reference makes usual, in the calibrated
    units of :mod:`mlwarden.alerting.calibration`; ``null`` is the sampling theory of the value
    on its window, which the calibration turns into the bounds (it is not stored)."""

    name: str
    value: float | None
    lower: float | None = None
    upper: float | None = None
    column: str = ""
    segment: str = ""
    score: float | None = None
    null: NullModel | None = field(default=None, compare=False, repr=False)

    def to_dict(self) -> dict[str, Any]:
        """Plain data: ``metric``, ``column``, ``segment``, ``value``, ``lower``, ``upper``,
        ``score``."""
        return {
            "metric": self.name,
            "column": self.column,
            "segment": self.segment,
            "value": self.value,
            "lower": self.lower,
            "upper": self.upper,
            "score": self.score,
        }

    @property
    def alert(self) -> bool:
        if self.value is None:
            return False
        return (self.lower is not None and self.value < self.lower) or (
            self.upper is not None and self.value > self.upper
        )


@dataclass(frozen=True)
class AlertFeedback:
    """A verdict on an alert; a false alarm's widened bounds apply while it is active."""

    id: int
    model: str
    metric: str
    column: str
    segment: str
    value: float | None
    true_alarm: bool
    lower: float | None
    upper: float | None
    by: str
    comment: str
    created_at: datetime
    active: bool


@dataclass(frozen=True)
class ContractFinding:
    """How a version's logged batches depart from its logging contract on one point
    (:class:`mlwarden.contract.Finding`), counted: shown by ``rows`` or ``labels`` batches
    (``batch``) since ``first_at``, last at ``last_at``, in ``batches`` batches of ``rows`` rows
    (``rows_total`` counts every episode); ``cleared_at`` is when a later batch met that part of
    the contract again (None while the finding is open)."""

    model: str
    version: str
    batch: str
    kind: str
    column: str
    message: str
    first_at: datetime
    last_at: datetime
    batches: int
    rows: int
    rows_total: int
    cleared_at: datetime | None = None

    @property
    def open(self) -> bool:
        """Whether no batch has met this part of the contract since ``first_at``."""
        return self.cleared_at is None

    def to_dict(self) -> dict[str, Any]:
        """Plain data, times as ISO 8601 text, with ``open``."""
        return {
            "model": self.model,
            "version": self.version,
            "batch": self.batch,
            "kind": self.kind,
            "column": self.column,
            "message": self.message,
            "first_at": self.first_at.isoformat(),
            "last_at": self.last_at.isoformat(),
            "batches": self.batches,
            "rows": self.rows,
            "rows_total": self.rows_total,
            "cleared_at": None if self.cleared_at is None else self.cleared_at.isoformat(),
            "open": self.open,
        }


@dataclass(frozen=True)
class TokenRecord:
    id: int
    name: str
    scope: Scope
    created_at: datetime
    last_used_at: datetime | None
    revoked: bool


def default_url() -> str:
    """``MLWARDEN_DATABASE_URL``, else a SQLite file in the data directory."""
    url = os.environ.get(DATABASE_URL_ENV)
    if url:
        return url
    data_dir = Path(os.environ.get(DATA_DIR_ENV, DEFAULT_DATA_DIR))
    return f"sqlite:///{data_dir / 'mlwarden.db'}"


def normalize_url(url: str) -> str:
    """Use psycopg 3 for PostgreSQL URLs written the usual way."""
    for prefix in ("postgresql://", "postgres://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix) :]
    return url


class Store:
    """The metadata store on one database.

    Parameters:
        url: a SQLAlchemy URL (``sqlite:///path.db``, ``postgresql://user@host/db``); default
            ``MLWARDEN_DATABASE_URL`` or ``<data dir>/mlwarden.db``.
        schema: a PostgreSQL schema to keep the tables in (created when missing).
    """

    def __init__(self, url: str | None = None, *, schema: str | None = None) -> None:
        self.url = normalize_url(url or default_url())
        self.schema = schema
        self.engine = _engine(self.url, schema)
        self._session = sessionmaker(self.engine, expire_on_commit=False)

    def __repr__(self) -> str:
        return f"Store({self.engine.url.render_as_string(hide_password=True)!r})"

    def close(self) -> None:
        self.engine.dispose()

    # -- schema ----------------------------------------------------------------------------------

    def migrate(self) -> None:
        """Create or upgrade the tables to this mlwarden's schema (Alembic ``upgrade head``)."""
        from alembic import command
        from alembic.config import Config

        import mlwarden.store.migrations as migrations

        config = Config()
        config.set_main_option("script_location", str(Path(migrations.__file__).parent))
        try:
            with self.engine.begin() as connection:
                config.attributes["connection"] = connection
                command.upgrade(config, "head")
        except OperationalError as exc:
            raise StoreError(f"Cannot reach the database {self!r}: {exc.orig}") from exc

    def revision(self) -> str | None:
        """The schema revision the database is at (None before the first migration)."""
        from alembic.runtime.migration import MigrationContext

        with self.engine.connect() as connection:
            return MigrationContext.configure(connection).get_current_revision()

    @contextmanager
    def session(self) -> Iterator[Session]:
        """One transaction: committed when the block ends, rolled back on any error."""
        session = self._session()
        try:
            yield session
            session.commit()
        except IntegrityError as exc:
            session.rollback()
            raise ConflictError(
                f"The record conflicts with one already stored: {exc.orig}"
            ) from exc
        except OperationalError as exc:
            session.rollback()
            raise StoreError(f"The database {self!r} failed: {exc.orig}") from exc
        except BaseException:
            session.rollback()
            raise
        finally:
            session.close()

    # -- models, versions, artifacts -----------------------------------------------------------

    def create_model(self, name: str, description: str = "") -> ModelRecord:
        _check_name(name, "model")
        with self.session() as s:
            if s.scalar(select(ModelRow).where(ModelRow.name == name)) is not None:
                raise ConflictError(f"A model named '{name}' already exists.")
            row = ModelRow(name=name, description=description, created_at=utcnow())
            s.add(row)
            s.flush()
            return _model(row)

    def get_model(self, name: str) -> ModelRecord:
        with self.session() as s:
            return _model(_model_row(s, name))

    def models(self) -> list[ModelRecord]:
        with self.session() as s:
            return [_model(r) for r in s.scalars(select(ModelRow).order_by(ModelRow.name))]

    def create_version(
        self,
        model: str,
        version: str,
        *,
        artifacts: dict[str, bytes] | None = None,
        meta: dict[str, Any] | None = None,
    ) -> VersionRecord:
        """Register ``version`` of ``model`` with its reference artifacts (kind -> bytes)."""
        _check_name(version, "version")
        with self.session() as s:
            m = _model_row(s, model)
            taken = select(VersionRow).where(
                VersionRow.model_id == m.id, VersionRow.version == version
            )
            if s.scalar(taken) is not None:
                raise ConflictError(f"Model '{model}' already has a version '{version}'.")
            row = VersionRow(model_id=m.id, version=version, meta=meta or {}, created_at=utcnow())
            s.add(row)
            s.flush()
            for kind, content in (artifacts or {}).items():
                _check_name(kind, "artifact kind")
                s.add(
                    ArtifactRow(
                        version_id=row.id,
                        kind=kind,
                        content=content,
                        sha256=hashlib.sha256(content).hexdigest(),
                        created_at=utcnow(),
                    )
                )
            return _version(row, model, tuple(sorted(artifacts or {})))

    def get_version(self, model: str, version: str) -> VersionRecord:
        with self.session() as s:
            row = _version_row(s, _model_row(s, model), version)
            return _version(row, model, _artifact_kinds(s, row.id))

    def versions(self, model: str) -> list[VersionRecord]:
        with self.session() as s:
            m = _model_row(s, model)
            rows = s.scalars(
                select(VersionRow).where(VersionRow.model_id == m.id).order_by(VersionRow.id)
            )
            return [_version(r, model, _artifact_kinds(s, r.id)) for r in rows]

    def update_version_meta(
        self, model: str, version: str, updates: dict[str, Any]
    ) -> VersionRecord:
        """Set top-level keys of a version's metadata (a changed alert budget, its measured
        false-incident rate); its artifacts never change."""
        with self.session() as s:
            row = _version_row(s, _model_row(s, model), version)
            row.meta = {**(row.meta or {}), **updates}
            s.flush()
            return _version(row, model, _artifact_kinds(s, row.id))

    def artifact(self, model: str, version: str, kind: str) -> bytes:
        """The bytes of one artifact, checked against the SHA-256 stored with them."""
        with self.session() as s:
            v = _version_row(s, _model_row(s, model), version)
            row = s.scalar(
                select(ArtifactRow).where(ArtifactRow.version_id == v.id, ArtifactRow.kind == kind)
            )
            if row is None:
                kinds = ", ".join(_artifact_kinds(s, v.id)) or "none"
                raise NotFoundError(
                    f"Version '{version}' of '{model}' has no '{kind}' artifact (it has: {kinds}).",
                    what="artifact",
                )
            if hashlib.sha256(row.content).hexdigest() != row.sha256:
                raise StoreError(
                    f"The '{kind}' artifact of '{model}' version '{version}' is corrupt: its "
                    "content does not match the hash stored with it."
                )
            return row.content

    # -- aliases -------------------------------------------------------------------------------

    def set_alias(
        self,
        model: str,
        alias: str,
        version: str,
        *,
        by: str = "",
        note: str = "",
        evidence: dict[str, Any] | None = None,
    ) -> AliasChange:
        """Point ``alias`` (``production``, ``staging``, any name) at ``version``; recorded."""
        _check_name(alias, "alias")
        with self.session() as s:
            m = _model_row(s, model)
            v = _version_row(s, m, version)
            current = s.get(AliasRow, (m.id, alias))
            previous_id = current.version_id if current is not None else None
            now = utcnow()
            if current is None:
                s.add(AliasRow(model_id=m.id, name=alias, version_id=v.id, updated_at=now))
            else:
                current.version_id = v.id
                current.updated_at = now
            change = AliasChangeRow(
                model_id=m.id,
                alias=alias,
                version_id=v.id,
                previous_version_id=previous_id,
                changed_at=now,
                changed_by=by,
                note=note,
                evidence=evidence or {},
            )
            s.add(change)
            s.flush()
            return _change(s, change, model)

    def remove_alias(self, model: str, alias: str, *, by: str = "", note: str = "") -> None:
        with self.session() as s:
            m = _model_row(s, model)
            current = s.get(AliasRow, (m.id, alias))
            if current is None:
                raise NotFoundError(f"Model '{model}' has no alias '{alias}'.", what="alias")
            s.add(
                AliasChangeRow(
                    model_id=m.id,
                    alias=alias,
                    version_id=None,
                    previous_version_id=current.version_id,
                    changed_at=utcnow(),
                    changed_by=by,
                    note=note,
                )
            )
            s.delete(current)

    def resolve(self, model: str, name: str) -> VersionRecord:
        """The version an alias points at, or the version of that name."""
        with self.session() as s:
            m = _model_row(s, model)
            alias = s.get(AliasRow, (m.id, name))
            if alias is not None:
                row = s.get(VersionRow, alias.version_id)
                assert row is not None
            else:
                row = _version_row(s, m, name)
            return _version(row, model, _artifact_kinds(s, row.id))

    def aliases(self, model: str) -> dict[str, str]:
        """Alias -> version of a model."""
        with self.session() as s:
            m = _model_row(s, model)
            rows = s.execute(
                select(AliasRow.name, VersionRow.version)
                .join(VersionRow, VersionRow.id == AliasRow.version_id)
                .where(AliasRow.model_id == m.id)
            )
            return {str(name): str(version) for name, version in rows.all()}

    def alias_history(self, model: str, alias: str | None = None) -> list[AliasChange]:
        """Every change of a model's aliases (or one alias), oldest first."""
        with self.session() as s:
            m = _model_row(s, model)
            query = select(AliasChangeRow).where(AliasChangeRow.model_id == m.id)
            if alias is not None:
                query = query.where(AliasChangeRow.alias == alias)
            rows = s.scalars(query.order_by(AliasChangeRow.id))
            return [_change(s, r, model) for r in rows]

    # -- windows and metrics -------------------------------------------------------------------

    def upsert_window(
        self,
        model: str,
        version: str,
        start: datetime,
        end: datetime,
        *,
        n_rows: int,
        n_labelled: int = 0,
        evaluated_at: datetime | None = None,
        n_signals: int | None = None,
    ) -> WindowRecord:
        """The window [start, end) of a version, created or updated (late rows, late labels);
        ``n_signals`` (feedback given plus predictions explained) is kept when None."""
        start, end = as_utc(start, "start"), as_utc(end, "end")
        if end <= start:
            raise ParameterError(
                f"A window ends after it starts; got start={start}, end={end}.", parameter="end"
            )
        with self.session() as s:
            v = _version_row(s, _model_row(s, model), version)
            row = s.scalar(
                select(WindowRow).where(
                    WindowRow.version_id == v.id, WindowRow.start == start, WindowRow.end == end
                )
            )
            if row is None:
                row = WindowRow(version_id=v.id, start=start, end=end)
                s.add(row)
            row.n_rows = n_rows
            row.n_labelled = n_labelled
            if n_signals is not None:
                row.n_signals = n_signals
            row.evaluated_at = evaluated_at
            s.flush()
            return _window(row, model, version)

    def windows(
        self,
        model: str,
        version: str | None = None,
        *,
        start: datetime | None = None,
        end: datetime | None = None,
    ) -> list[WindowRecord]:
        with self.session() as s:
            m = _model_row(s, model)
            query = (
                select(WindowRow, VersionRow.version)
                .join(VersionRow, VersionRow.id == WindowRow.version_id)
                .where(VersionRow.model_id == m.id)
            )
            if version is not None:
                query = query.where(VersionRow.version == version)
            if start is not None:
                query = query.where(WindowRow.start >= start)
            if end is not None:
                query = query.where(WindowRow.start < end)
            rows = s.execute(query.order_by(WindowRow.start, VersionRow.id))
            return [_window(w, model, v) for w, v in rows]

    def write_metrics(self, window_id: int, metrics: Sequence[MetricValue]) -> int:
        """Store a window's metrics, replacing earlier values of the same metric (a window is
        evaluated again when late labels arrive). Returns how many are outside their bounds."""
        with self.session() as s:
            if s.get(WindowRow, window_id) is None:
                raise NotFoundError(f"No window with id {window_id}.", what="window")
            keys = {(m.name, m.column, m.segment) for m in metrics}
            if len(keys) != len(metrics):
                raise ParameterError(
                    "Each metric of a window appears once per column and segment; got duplicates.",
                    parameter="metrics",
                )
            names = {m.name for m in metrics}
            existing = s.scalars(
                select(MetricRow).where(MetricRow.window_id == window_id, MetricRow.name.in_(names))
            )
            for row in existing:
                if (row.name, row.column, row.segment) in keys:
                    s.delete(row)
            s.flush()
            s.add_all(
                MetricRow(
                    window_id=window_id,
                    name=m.name,
                    column=m.column,
                    segment=m.segment,
                    value=m.value,
                    lower=m.lower,
                    upper=m.upper,
                    alert=m.alert,
                    score=m.score,
                )
                for m in metrics
            )
            return sum(m.alert for m in metrics)

    def metric_series(
        self,
        model: str,
        name: str | None = None,
        *,
        version: str | None = None,
        column: str | None = None,
        segment: str | None = None,
        start: datetime | None = None,
        end: datetime | None = None,
    ) -> pl.DataFrame:
        """Metrics over time: one row per window and metric, oldest window first."""
        with self.session() as s:
            m = _model_row(s, model)
            query = (
                select(
                    WindowRow.start.label("window_start"),
                    WindowRow.end.label("window_end"),
                    VersionRow.version.label("version"),
                    MetricRow.name,
                    MetricRow.column,
                    MetricRow.segment,
                    MetricRow.value,
                    MetricRow.lower,
                    MetricRow.upper,
                    MetricRow.alert,
                )
                .join(WindowRow, WindowRow.id == MetricRow.window_id)
                .join(VersionRow, VersionRow.id == WindowRow.version_id)
                .where(VersionRow.model_id == m.id)
            )
            for attribute, value in (
                (MetricRow.name, name),
                (VersionRow.version, version),
                (MetricRow.column, column),
                (MetricRow.segment, segment),
            ):
                if value is not None:
                    query = query.where(attribute == value)
            if start is not None:
                query = query.where(WindowRow.start >= start)
            if end is not None:
                query = query.where(WindowRow.start < end)
            rows = s.execute(query.order_by(WindowRow.start, MetricRow.name, MetricRow.column))
            records = [row._asdict() for row in rows]
        schema: dict[str, pl.DataType] = {
            "window_start": pl.Datetime("us", "UTC"),
            "window_end": pl.Datetime("us", "UTC"),
            "version": pl.String(),
            "name": pl.String(),
            "column": pl.String(),
            "segment": pl.String(),
            "value": pl.Float64(),
            "lower": pl.Float64(),
            "upper": pl.Float64(),
            "alert": pl.Boolean(),
        }
        return pl.DataFrame(records, schema=schema, orient="row")

    def latest_metrics(self) -> pl.DataFrame:
        """The newest value of every metric of every model version (for ``/metrics``)."""
        rank = (
            func.row_number()
            .over(
                partition_by=(
                    WindowRow.version_id,
                    MetricRow.name,
                    MetricRow.column,
                    MetricRow.segment,
                ),
                order_by=WindowRow.start.desc(),
            )
            .label("rank")
        )
        inner = (
            select(
                ModelRow.name.label("model"),
                VersionRow.version.label("version"),
                MetricRow.name.label("metric"),
                MetricRow.column,
                MetricRow.segment,
                MetricRow.value,
                MetricRow.lower,
                MetricRow.upper,
                MetricRow.alert,
                WindowRow.end.label("window_end"),
                rank,
            )
            .join(WindowRow, WindowRow.id == MetricRow.window_id)
            .join(VersionRow, VersionRow.id == WindowRow.version_id)
            .join(ModelRow, ModelRow.id == VersionRow.model_id)
            .subquery()
        )
        with self.session() as s:
            rows = s.execute(select(inner).where(inner.c.rank == 1)).all()
            records = [{k: v for k, v in row._asdict().items() if k != "rank"} for row in rows]
        return pl.DataFrame(
            records,
            schema={
                "model": pl.String(),
                "version": pl.String(),
                "metric": pl.String(),
                "column": pl.String(),
                "segment": pl.String(),
                "value": pl.Float64(),
                "lower": pl.Float64(),
                "upper": pl.Float64(),
                "alert": pl.Boolean(),
                "window_end": pl.Datetime("us", "UTC"),
            },
            orient="row",
        )

    def window(self, window_id: int) -> WindowRecord:
        """One window by its id."""
        with self.session() as s:
            row = s.get(WindowRow, window_id)
            if row is None:
                raise NotFoundError(f"No window with id {window_id}.", what="window")
            version = s.get(VersionRow, row.version_id)
            assert version is not None
            model = s.get(ModelRow, version.model_id)
            assert model is not None
            return _window(row, model.name, version.version)

    def window_metrics(self, window_id: int) -> list[MetricValue]:
        """Every metric stored for a window."""
        with self.session() as s:
            rows = s.scalars(select(MetricRow).where(MetricRow.window_id == window_id))
            return [
                MetricValue(r.name, r.value, r.lower, r.upper, r.column, r.segment, r.score)
                for r in rows
            ]

    def save_details(
        self, window_id: int, kind: str, result: dict[str, Any], blob: bytes | None = None
    ) -> None:
        """Keep what the evaluation of a window found (``kind``: ``"profile"``, ``"drift"``,
        ``"performance"``...), replacing an earlier result of that kind."""
        with self.session() as s:
            if s.get(WindowRow, window_id) is None:
                raise NotFoundError(f"No window with id {window_id}.", what="window")
            s.execute(
                delete(WindowDetailRow).where(
                    WindowDetailRow.window_id == window_id, WindowDetailRow.kind == kind
                )
            )
            s.add(WindowDetailRow(window_id=window_id, kind=kind, result=result, blob=blob))

    def details(self, window_id: int) -> dict[str, tuple[dict[str, Any], bytes | None]]:
        """Every kind of detail kept for a window: ``{kind: (result, blob)}``."""
        with self.session() as s:
            rows = s.scalars(select(WindowDetailRow).where(WindowDetailRow.window_id == window_id))
            return {row.kind: (dict(row.result), row.blob) for row in rows}

    def save_validation(self, window_id: int, passed: bool, result: dict[str, Any]) -> None:
        """The quality validation of a window (its JSON form), replacing an earlier one."""
        with self.session() as s:
            if s.get(WindowRow, window_id) is None:
                raise NotFoundError(f"No window with id {window_id}.", what="window")
            s.execute(delete(ValidationRow).where(ValidationRow.window_id == window_id))
            s.add(ValidationRow(window_id=window_id, passed=passed, result=result))

    def validation(self, window_id: int) -> dict[str, Any] | None:
        with self.session() as s:
            row = s.scalar(select(ValidationRow).where(ValidationRow.window_id == window_id))
            return None if row is None else dict(row.result)

    # -- tokens --------------------------------------------------------------------------------

    def create_token(self, name: str, scope: Scope = "write") -> str:
        """A new API token; returned once, stored only as its SHA-256."""
        if scope not in ("read", "write"):
            raise ParameterError(
                f"A token's scope is 'read' or 'write'; got {scope!r}.", parameter="scope"
            )
        token = "mlw_" + secrets.token_urlsafe(32)
        with self.session() as s:
            s.add(TokenRow(name=name, sha256=_hash(token), scope=scope, created_at=utcnow()))
        return token

    def verify_token(self, token: str, scope: Scope = "read") -> TokenRecord | None:
        """The token's record if it is valid for ``scope`` (a write token may also read)."""
        with self.session() as s:
            row = s.scalar(select(TokenRow).where(TokenRow.sha256 == _hash(token)))
            if row is None or row.revoked:
                return None
            if scope == "write" and row.scope != "write":
                return None
            now = utcnow()
            # Kept to the minute: a write per request would queue every ingest behind the
            # evaluation's transactions on SQLite.
            if row.last_used_at is None or now - row.last_used_at > TOKEN_USE_RESOLUTION:
                row.last_used_at = now
            return _token(row)

    def tokens(self) -> list[TokenRecord]:
        with self.session() as s:
            return [_token(r) for r in s.scalars(select(TokenRow).order_by(TokenRow.id))]

    def revoke_token(self, token_id: int) -> None:
        with self.session() as s:
            row = s.get(TokenRow, token_id)
            if row is None:
                raise NotFoundError(f"No token with id {token_id}.", what="token")
            row.revoked = True

    # -- ingested batches ----------------------------------------------------------------------

    def record_batch(
        self,
        model: str,
        batch_id: str,
        n_rows: int,
        kind: str = "rows",
        *,
        run_ref: str = "",
        first_at: datetime | None = None,
        last_at: datetime | None = None,
    ) -> bool:
        """Remember an ingested batch by its idempotency key; False when it was seen before.

        Parameters:
            run_ref: the pipeline run that produced the batch's features: a run id (its
                digits) or an OpenLineage run id, at most 200 characters; ``""`` for none.
            first_at: the time of the batch's first row (timezone-aware).
            last_at: the time of its last row.
        """
        _check_name(batch_id, "batch id")
        if not isinstance(run_ref, str) or len(run_ref) > 200:
            got = f"{len(run_ref)} characters" if isinstance(run_ref, str) else repr(run_ref)
            raise ParameterError(
                f"A batch's run reference is a run id or an OpenLineage run id of at most 200 "
                f"characters; got {got}.",
                parameter="run",
            )
        first = as_utc(first_at, "first_at") if first_at is not None else None
        last = as_utc(last_at, "last_at") if last_at is not None else None
        try:
            with self.session() as s:
                m = _model_row(s, model)
                s.add(
                    BatchRow(
                        model_id=m.id,
                        batch_id=batch_id,
                        kind=kind,
                        n_rows=n_rows,
                        received_at=utcnow(),
                        run_ref=run_ref,
                        first_at=first,
                        last_at=last,
                    )
                )
        except ConflictError:
            return False
        return True

    # -- the logging contract ------------------------------------------------------------------

    def record_contract_findings(
        self,
        model: str,
        version: str,
        findings: Sequence[Finding],
        n_rows: int,
        at: datetime,
        *,
        batch: LoggedBatch = "rows",
    ) -> list[ContractFinding]:
        """Count a batch of ``n_rows`` rows (or labels: ``batch="labels"``) of ``version``
        that arrived at ``at`` against the version's logging contract; return the version's
        open findings of that kind of batch.

        Each of ``findings`` goes on (counted) or opens, again at ``at`` when it was cleared.
        Every other open finding of the version and kind of batch is cleared at ``at``: this
        batch meets that part of the contract. A rows batch never clears a labels finding, nor
        labels a rows finding: each kind of batch carries its own part of the contract.

        Example:
            >>> from datetime import UTC, datetime
            >>> from mlwarden.contract import Finding
            >>> store = Store("sqlite://")
            >>> store.migrate()
            >>> _ = store.create_model("m"), store.create_version("m", "1")
            >>> lacks = Finding("missing_output", "fail_score", "rows carry no 'fail_score'")
            >>> at = datetime(2025, 2, 1, 10, 4, tzinfo=UTC)
            >>> [(f.column, f.batches, f.rows) for f in
            ...  store.record_contract_findings("m", "1", [lacks], 500, at)]
            [('fail_score', 1, 500)]
            >>> store.record_contract_findings("m", "1", [], 200, at)
            []
        """
        if batch not in ("rows", "labels"):
            raise ParameterError(
                f"A logged batch is 'rows' or 'labels'; got {batch!r}.", parameter="batch"
            )
        if isinstance(n_rows, bool) or not isinstance(n_rows, int) or n_rows < 0:
            raise ParameterError(
                f"'n_rows' is the batch's number of rows, an int >= 0; got {n_rows!r}.",
                parameter="n_rows",
            )
        at = as_utc(at, "at")
        shown: dict[tuple[str, str], Finding] = {}
        for finding in findings:
            shown.setdefault((finding.kind, finding.column), finding)

        def count() -> list[ContractFinding]:
            with self.session() as s:
                m = _model_row(s, model)
                v = _version_row(s, m, version)
                _count_findings(s, v.id, batch, shown, n_rows, at)
                return _findings(s, m, v, open_only=True, batch=batch)

        # Two batches that open the same finding at once both insert it; the one that loses
        # counts again, now as an update.
        for _ in range(2):
            try:
                return count()
            except ConflictError:
                continue
        return count()

    def contract_findings(
        self,
        model: str | None,
        version: str | None = None,
        open_only: bool = True,
        *,
        batch: LoggedBatch | None = None,
    ) -> list[ContractFinding]:
        """The findings of a model's logged batches against its versions' contracts (of one
        ``version``; of every model when ``model`` is None; of one kind of ``batch``), the
        open ones unless ``open_only`` is False; by model, version, then in the order they
        first appeared."""
        if model is None and version is not None:
            raise ParameterError(
                "A version is named within its model: pass the model too.", parameter="model"
            )
        with self.session() as s:
            m = None if model is None else _model_row(s, model)
            v = None if m is None or version is None else _version_row(s, m, version)
            return _findings(s, m, v, open_only=open_only, batch=batch)

    # -- alerts and incidents ------------------------------------------------------------------

    def mark_alert(
        self,
        alert_id: int,
        *,
        true_alarm: bool,
        by: str = "",
        comment: str = "",
        margin: float = 0.1,
    ) -> AlertFeedback:
        """Record a person's verdict on an alert. A false alarm widens the bound it crossed to
        the value plus ``margin`` of the excess, for this metric (name, column, segment) of the
        model in every later evaluation, until :meth:`revert_feedback`."""
        if not 0.0 <= margin <= 10.0:
            raise ParameterError(
                f"The 'margin' of a widened bound lies in [0, 10]; got {margin!r}.",
                parameter="margin",
            )
        with self.session() as s:
            alert = s.get(AlertRow, alert_id)
            if alert is None:
                raise NotFoundError(f"No alert with id {alert_id}.", what="alert")
            lower = upper = None
            if not true_alarm and alert.value is not None:
                if alert.upper is not None and alert.value > alert.upper:
                    upper = alert.value + margin * (alert.value - alert.upper)
                if alert.lower is not None and alert.value < alert.lower:
                    lower = alert.value - margin * (alert.lower - alert.value)
            row = AlertFeedbackRow(
                model_id=alert.model_id,
                window_id=alert.window_id,
                metric=alert.metric,
                column=alert.column,
                segment=alert.segment,
                value=alert.value,
                true_alarm=true_alarm,
                lower=lower,
                upper=upper,
                by=by,
                comment=comment,
            )
            s.add(row)
            alert.status = "confirmed" if true_alarm else "false_alarm"
            s.flush()
            return _feedback(s, row)

    def revert_feedback(self, feedback_id: int, *, by: str = "") -> AlertFeedback:
        """Take a verdict back: a false alarm's bounds stop applying (the record stays)."""
        with self.session() as s:
            row = s.get(AlertFeedbackRow, feedback_id)
            if row is None:
                raise NotFoundError(f"No alert feedback with id {feedback_id}.", what="feedback")
            row.active = False
            row.reverted_at = utcnow()
            row.reverted_by = by
            s.flush()
            return _feedback(s, row)

    def feedback(self, model: str) -> list[AlertFeedback]:
        """Every verdict on the model's alerts, oldest first (reverted ones too)."""
        with self.session() as s:
            m = _model_row(s, model)
            rows = s.scalars(
                select(AlertFeedbackRow)
                .where(AlertFeedbackRow.model_id == m.id)
                .order_by(AlertFeedbackRow.id)
            )
            return [_feedback(s, r) for r in rows]

    def widened_bounds(self, model: str) -> dict[tuple[str, str, str], tuple[float | None, ...]]:
        """Per metric (name, column, segment), the widest active false-alarm bounds:
        ``(lower, upper)``, each None where no false alarm widened that side."""
        widened: dict[tuple[str, str, str], tuple[float | None, ...]] = {}
        for f in self.feedback(model):
            if not f.active or f.true_alarm:
                continue
            key = (f.metric, f.column, f.segment)
            lower, upper = widened.get(key, (None, None))
            if f.lower is not None:
                lower = f.lower if lower is None else min(lower, f.lower)
            if f.upper is not None:
                upper = f.upper if upper is None else max(upper, f.upper)
            widened[key] = (lower, upper)
        return widened

    def close_quiet_incidents(self, model: str, quiet_since: datetime) -> int:
        """Close the model's open incidents without an alert from ``quiet_since`` on (a window
        starting then was evaluated without continuing them); returns how many were closed."""
        quiet_since = as_utc(quiet_since, "quiet_since")
        with self.session() as s:
            m = _model_row(s, model)
            latest = (
                select(func.max(AlertRow.started_at))
                .where(AlertRow.incident_id == IncidentRow.id)
                .scalar_subquery()
            )
            rows = s.scalars(
                select(IncidentRow).where(
                    IncidentRow.model_id == m.id,
                    IncidentRow.status == "open",
                    IncidentRow.started_at < quiet_since,
                    latest < quiet_since,
                )
            ).all()
            for row in rows:
                row.status = "closed"
                row.ended_at = quiet_since
            return len(rows)

    def open_incident(self, model: str, title: str, started_at: datetime) -> int:
        with self.session() as s:
            m = _model_row(s, model)
            row = IncidentRow(
                model_id=m.id, title=title, started_at=as_utc(started_at, "started_at")
            )
            s.add(row)
            s.flush()
            return row.id

    def add_alert(
        self,
        window_id: int,
        metric: MetricValue,
        *,
        incident_id: int | None = None,
    ) -> int:
        with self.session() as s:
            window = s.get(WindowRow, window_id)
            if window is None:
                raise NotFoundError(f"No window with id {window_id}.", what="window")
            version = s.get(VersionRow, window.version_id)
            assert version is not None
            row = AlertRow(
                model_id=version.model_id,
                version_id=version.id,
                window_id=window_id,
                incident_id=incident_id,
                metric=metric.name,
                column=metric.column,
                segment=metric.segment,
                value=metric.value,
                lower=metric.lower,
                upper=metric.upper,
                started_at=window.start,
            )
            s.add(row)
            s.flush()
            return row.id

    def record_alerts(
        self, window_id: int, metrics: Sequence[MetricValue], *, surprise: float | None = None
    ) -> tuple[int, bool] | None:
        """Replace the alerts of a window by the metrics of it that are outside their bounds.

        Alerts of one model that start together (same window start) are one incident: it is
        opened with the first alert and reused when the window is evaluated again. An alert
        that continues one of the window just before (same metric, column and segment) belongs
        to that window's incident: a fault that lasts a day is one incident, not six. An
        incident keeps the rule its first window's alerts came from (:func:`alert_rule`) and
        that window's ``surprise`` (the chance of a window as extreme on reference-like data).
        Returns the incident's id and whether it is new, or None when the window has no alert.
        """
        alerting = [m for m in metrics if m.alert]
        with self.session() as s:
            window = s.get(WindowRow, window_id)
            if window is None:
                raise NotFoundError(f"No window with id {window_id}.", what="window")
            version = s.get(VersionRow, window.version_id)
            assert version is not None
            before = set(
                s.scalars(
                    select(AlertRow.incident_id).where(
                        AlertRow.window_id == window_id, AlertRow.incident_id.is_not(None)
                    )
                )
            )
            s.execute(delete(AlertRow).where(AlertRow.window_id == window_id))
            if not alerting:
                _withdraw_emptied(s, before, window.start)
                return None
            incident = _continued_incident(s, window, alerting) or s.scalar(
                select(IncidentRow).where(
                    IncidentRow.model_id == version.model_id,
                    IncidentRow.started_at == window.start,
                )
            )
            new = incident is None
            if incident is None:
                incident = IncidentRow(
                    model_id=version.model_id,
                    title=incident_title(alerting),
                    started_at=window.start,
                    rule=alert_rule(alerting),
                    surprise=surprise,
                )
                s.add(incident)
                s.flush()
            elif incident.started_at == window.start:
                incident.title = incident_title(alerting)
                incident.rule = alert_rule(alerting)
                incident.surprise = surprise
            s.add_all(
                AlertRow(
                    model_id=version.model_id,
                    version_id=version.id,
                    window_id=window_id,
                    incident_id=incident.id,
                    metric=m.name,
                    column=m.column,
                    segment=m.segment,
                    value=m.value,
                    lower=m.lower,
                    upper=m.upper,
                    started_at=window.start,
                )
                for m in alerting
            )
            s.flush()
            _withdraw_emptied(s, before - {incident.id}, window.start)
            return incident.id, new

    def incidents(self, model: str) -> list[dict[str, Any]]:
        """A model's incidents, oldest first, each with its number of alerts."""
        with self.session() as s:
            m = _model_row(s, model)
            counts = dict(
                s.execute(
                    select(AlertRow.incident_id, func.count())
                    .where(AlertRow.model_id == m.id)
                    .group_by(AlertRow.incident_id)
                ).all()
            )
            rows = s.scalars(
                select(IncidentRow)
                .where(IncidentRow.model_id == m.id)
                .order_by(IncidentRow.started_at)
            )
            return [
                {
                    "id": r.id,
                    "title": r.title,
                    "status": r.status,
                    "started_at": r.started_at,
                    "ended_at": r.ended_at,
                    "alerts": int(counts.get(r.id, 0)),
                    "rule": r.rule,
                    "surprise": r.surprise,
                }
                for r in rows
            ]

    def alerts(self, model: str) -> pl.DataFrame:
        with self.session() as s:
            m = _model_row(s, model)
            rows = s.scalars(
                select(AlertRow).where(AlertRow.model_id == m.id).order_by(AlertRow.started_at)
            )
            records = [
                {
                    "id": r.id,
                    "metric": r.metric,
                    "column": r.column,
                    "segment": r.segment,
                    "value": r.value,
                    "lower": r.lower,
                    "upper": r.upper,
                    "started_at": r.started_at,
                    "incident_id": r.incident_id,
                    "status": r.status,
                }
                for r in rows
            ]
        return pl.DataFrame(
            records,
            schema={
                "id": pl.Int64,
                "metric": pl.String,
                "column": pl.String,
                "segment": pl.String,
                "value": pl.Float64,
                "lower": pl.Float64,
                "upper": pl.Float64,
                "started_at": pl.Datetime("us", "UTC"),
                "incident_id": pl.Int64,
                "status": pl.String,
            },
            orient="row",
        )


# -- helpers -------------------------------------------------------------------------------------


def _engine(url: str, schema: str | None) -> Engine:
    if url.startswith("sqlite"):
        database = url.split("///", 1)[1] if "///" in url else ""
        if database and database != ":memory:":
            Path(database).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(url, connect_args={"timeout": 30})

        @event.listens_for(engine, "connect")
        def _pragmas(connection: Any, _record: Any) -> None:
            cursor = connection.cursor()
            if database and database != ":memory:":
                cursor.execute("PRAGMA journal_mode=WAL")  # readers never block the writer
                cursor.execute("PRAGMA synchronous=NORMAL")
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.close()

        return engine
    if schema is not None and not re.fullmatch(r"[a-z_][a-z0-9_]{0,62}", schema):
        raise ParameterError(
            f"A schema name is lower-case letters, digits and _; got {schema!r}.",
            parameter="schema",
        )
    options = {"options": f"-csearch_path={schema}"} if schema else {}
    engine = create_engine(url, pool_pre_ping=True, connect_args=options)
    if schema:
        from sqlalchemy import text

        with engine.begin() as connection:
            connection.execute(text(f'CREATE SCHEMA IF NOT EXISTS "{schema}"'))
    return engine


def _check_name(value: str, what: str) -> None:
    if not isinstance(value, str) or not _NAME.match(value):
        raise ParameterError(
            f"A {what} is 1-200 letters, digits, '.', '_' or '-', starting with a letter or "
            f"digit; got {value!r}.",
            parameter=what.replace(" ", "_"),
        )


def _continued_incident(
    s: Session, window: WindowRow, alerting: Sequence[MetricValue]
) -> IncidentRow | None:
    """The incident of the version's window that ends where ``window`` starts, when one of its
    alerts is one of ``alerting`` (same metric, column and segment) and it is open or was
    closed by this very window."""
    keys = {(m.name, m.column, m.segment) for m in alerting}
    previous = (
        select(AlertRow.metric, AlertRow.column, AlertRow.segment, AlertRow.incident_id)
        .join(WindowRow, WindowRow.id == AlertRow.window_id)
        .where(
            WindowRow.version_id == window.version_id,
            WindowRow.end == window.start,
            AlertRow.incident_id.is_not(None),
        )
    )
    for metric, column, segment, incident_id in s.execute(previous):
        if (metric, column, segment) in keys:
            incident = s.get(IncidentRow, incident_id)
            if incident is None:
                continue
            if incident.status == "open":
                return incident
            # Closed when this window looked quiet; evaluated again (late rows), it goes on.
            if incident.ended_at is not None and window.start <= incident.ended_at:
                if window.start == incident.ended_at:
                    incident.status, incident.ended_at = "open", None
                return incident
    return None


def _count_findings(
    s: Session,
    version_id: int,
    batch: str,
    shown: dict[tuple[str, str], Finding],
    n_rows: int,
    at: datetime,
) -> None:
    """Clear the open findings of a version's ``batch`` kind that a batch no longer shows;
    count, reopen or open those it shows (see :meth:`Store.record_contract_findings`)."""
    row = ContractFindingRow
    of_batch = (row.version_id == version_id, row.batch == batch)
    still_open = s.execute(
        select(row.id, row.kind, row.column).where(*of_batch, row.cleared_at.is_(None))
    ).all()
    met = [i for i, kind, column in still_open if (kind, column) not in shown]
    if met:
        s.execute(
            update(row)
            .where(row.id.in_(met), row.cleared_at.is_(None))
            .values(cleared_at=at)
            .execution_options(synchronize_session=False)
        )
    cleared = row.cleared_at.is_not(None)
    for (kind, column), finding in shown.items():
        # Counted in SQL, so that batches counted at once never overwrite each other's counts.
        counted = cast(
            "CursorResult[Any]",
            s.execute(
                update(row)
                .where(*of_batch, row.kind == kind, row.column == column)
                .values(
                    first_at=case((cleared, literal(at, UTCDateTime())), else_=row.first_at),
                    batches=case((cleared, 1), else_=row.batches + 1),
                    rows=case((cleared, n_rows), else_=row.rows + n_rows),
                    rows_total=row.rows_total + n_rows,
                    last_at=at,
                    cleared_at=None,
                    message=finding.message,
                )
                .execution_options(synchronize_session=False)
            ),
        )
        if counted.rowcount == 0:
            s.add(
                ContractFindingRow(
                    version_id=version_id,
                    batch=batch,
                    kind=kind,
                    column=column,
                    message=finding.message,
                    first_at=at,
                    last_at=at,
                    cleared_at=None,
                    batches=1,
                    rows=n_rows,
                    rows_total=n_rows,
                )
            )
            s.flush()


def _findings(
    s: Session,
    model: ModelRow | None,
    version: VersionRow | None,
    *,
    open_only: bool,
    batch: str | None,
) -> list[ContractFinding]:
    """The contract findings of one version, of one model or of every model."""
    row = ContractFindingRow
    query = (
        select(row, ModelRow.name, VersionRow.version)
        .join(VersionRow, VersionRow.id == row.version_id)
        .join(ModelRow, ModelRow.id == VersionRow.model_id)
    )
    if model is not None:
        query = query.where(VersionRow.model_id == model.id)
    if version is not None:
        query = query.where(row.version_id == version.id)
    if open_only:
        query = query.where(row.cleared_at.is_(None))
    if batch is not None:
        query = query.where(row.batch == batch)
    found = s.execute(query.order_by(ModelRow.name, VersionRow.id, row.id)).all()
    return [_contract_finding(r, name, v) for r, name, v in found]


def _contract_finding(row: ContractFindingRow, model: str, version: str) -> ContractFinding:
    return ContractFinding(
        model=model,
        version=version,
        batch=row.batch,
        kind=row.kind,
        column=row.column,
        message=row.message,
        first_at=row.first_at,
        last_at=row.last_at,
        batches=row.batches,
        rows=row.rows,
        rows_total=row.rows_total,
        cleared_at=row.cleared_at,
    )


def _withdraw_emptied(s: Session, incident_ids: set[int | None], at: datetime) -> None:
    """Incidents left without an alert by a window evaluated again (labels that arrived showed
    the estimate was fine) are withdrawn: kept, with the record of what was done about them,
    but no longer counted or listed as open."""
    for incident_id in incident_ids:
        if incident_id is None:
            continue
        left = s.scalar(select(func.count()).where(AlertRow.incident_id == incident_id))
        incident = s.get(IncidentRow, incident_id)
        if not left and incident is not None:
            incident.status = "withdrawn"
            incident.ended_at = incident.ended_at or at


def alert_rule(alerting: Sequence[MetricValue]) -> str:
    """Which rules the alerts came from, joined by ``+``: ``window`` (a metric past its bound
    in one window), ``cusum`` (a change summed over windows), ``quality`` (a failed check)."""
    rules = set()
    for m in alerting:
        if m.name.startswith("cusum."):
            rules.add("cusum")
        elif m.name == "quality":
            rules.add("quality")
        else:
            rules.add("window")
    return "+".join(sorted(rules))


def incident_title(alerting: Sequence[MetricValue]) -> str:
    """An incident's title: the metrics (and columns) out of bounds, at most five."""
    return ", ".join(sorted({f"{m.name} {m.column}".strip() for m in alerting})[:5])


def as_utc(moment: datetime, name: str) -> datetime:
    """``moment`` in UTC; a naive datetime (or anything else) fails, naming parameter ``name``."""
    if not isinstance(moment, datetime) or moment.tzinfo is None:
        raise ParameterError(
            f"'{name}' must be a timezone-aware datetime (mlwarden stores UTC); got {moment!r}.",
            parameter=name,
        )
    return moment.astimezone(UTC)


def _hash(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def _model_row(s: Session, name: str) -> ModelRow:
    row = s.scalar(select(ModelRow).where(ModelRow.name == name))
    if row is None:
        import difflib

        names = list(s.scalars(select(ModelRow.name)))
        hint = difflib.get_close_matches(name, names, n=1)
        suggestion = f" Did you mean '{hint[0]}'?" if hint else ""
        raise NotFoundError(f"No model named '{name}'.{suggestion}", what="model")
    return row


def _version_row(s: Session, model: ModelRow, version: str) -> VersionRow:
    row = s.scalar(
        select(VersionRow).where(VersionRow.model_id == model.id, VersionRow.version == version)
    )
    if row is None:
        known = ", ".join(
            s.scalars(select(VersionRow.version).where(VersionRow.model_id == model.id))
        )
        raise NotFoundError(
            f"Model '{model.name}' has no version or alias '{version}' (versions: "
            f"{known or 'none'}).",
            what="version",
        )
    return row


def _artifact_kinds(s: Session, version_id: int) -> tuple[str, ...]:
    kinds = s.scalars(
        select(ArtifactRow.kind).where(ArtifactRow.version_id == version_id).order_by("kind")
    )
    return tuple(kinds)


def _model(row: ModelRow) -> ModelRecord:
    return ModelRecord(row.id, row.name, row.description, row.created_at)


def _version(row: VersionRow, model: str, kinds: tuple[str, ...]) -> VersionRecord:
    return VersionRecord(row.id, model, row.version, dict(row.meta), row.created_at, kinds)


def _window(row: WindowRow, model: str, version: str) -> WindowRecord:
    return WindowRecord(
        row.id,
        model,
        version,
        row.start,
        row.end,
        row.n_rows,
        row.n_labelled,
        row.evaluated_at,
        row.n_signals or 0,
    )


def _feedback(s: Session, row: AlertFeedbackRow) -> AlertFeedback:
    model = s.get(ModelRow, row.model_id)
    assert model is not None
    return AlertFeedback(
        id=row.id,
        model=model.name,
        metric=row.metric,
        column=row.column,
        segment=row.segment,
        value=row.value,
        true_alarm=row.true_alarm,
        lower=row.lower,
        upper=row.upper,
        by=row.by,
        comment=row.comment,
        created_at=row.created_at,
        active=row.active,
    )


def _token(row: TokenRow) -> TokenRecord:
    scope: Scope = "write" if row.scope == "write" else "read"
    return TokenRecord(row.id, row.name, scope, row.created_at, row.last_used_at, row.revoked)


def _change(s: Session, row: AliasChangeRow, model: str) -> AliasChange:
    def name(version_id: int | None) -> str | None:
        if version_id is None:
            return None
        version = s.get(VersionRow, version_id)
        return version.version if version is not None else None

    return AliasChange(
        model=model,
        alias=row.alias,
        version=name(row.version_id),
        previous=name(row.previous_version_id),
        changed_at=row.changed_at,
        changed_by=row.changed_by,
        note=row.note,
        evidence=dict(row.evidence),
    )
