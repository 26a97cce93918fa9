"""The HTTP API of ``mlwarden serve``: ingest batches, query models and their metrics.

Built by :func:`create_app` from :class:`Settings`; tests drive it in-process. Writes need a
bearer token of scope ``write`` (``mlwarden token create``); reads need a token too unless the
server runs with ``public_read``. Bodies are bounded in bytes and rows; a batch is stored
entirely or not at all, and a retried batch (same ``batch_id``) is recognized, not stored twice.
Every batch is checked against its version's logging contract (:mod:`mlwarden.contract`): it
is stored whatever it lacks, its answer's ``warnings`` say what that costs, and the findings are
counted per version until a later batch meets the contract again.
"""

from __future__ import annotations

import io
import os
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Final, Literal

import polars as pl
from fastapi import Depends, FastAPI, Header, HTTPException, Query, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, Field, field_validator

from mlwarden._version import __version__
from mlwarden.exceptions import (
    ConflictError,
    InputError,
    MlwardenError,
    NotFoundError,
    StoreError,
)
from mlwarden.server.dashboard import router as dashboard_router
from mlwarden.store.metadata import (
    DATA_DIR_ENV,
    DEFAULT_DATA_DIR,
    AlertFeedback,
    Scope,
    Store,
    TokenRecord,
    VersionRecord,
    WindowRecord,
)
from mlwarden.store.rowlog import RowLog

if TYPE_CHECKING:
    from collections.abc import AsyncIterator

    from mlwarden.contract import Contract

ARROW_STREAM: Final = "application/vnd.apache.arrow.stream"
API: Final = "/api/v1"


@dataclass(frozen=True)
class Settings:
    """How the server runs.

    Parameters:
        data_dir: where the row log and (by default) the SQLite database live.
        database_url: the metadata store (default: SQLite in ``data_dir``).
        public_read: serve reads without a token.
        max_request_bytes: larger request bodies are refused (413).
        max_rows: more rows in one batch are refused (413).
        evaluate_every: seconds between evaluation rounds of every model (None: no schedule;
            ``mlwarden evaluate`` from cron instead).
        window: the window of the scheduled evaluation (default: each version's own, given
            when it was registered).
        channels: alert channels for new incidents (``"log"``, ``"webhook+URL"``, ...).
        keep_days: logged rows and labels older than this many days are removed (``retention``
            ``"delete"``) or compacted (``"compact"``) after each evaluation round; None keeps
            them. Windows, their profiles and metrics stay in the metadata store.
        policies: a YAML file of reaction policies applied after each evaluation round
            (see :mod:`mlwarden.react.policies`); read and checked when the server starts.
        explain: explain logged predictions of versions kept with their estimator, in a
            background thread after each batch (:mod:`mlwarden.service.explain`).
    """

    data_dir: Path = field(
        default_factory=lambda: Path(os.environ.get(DATA_DIR_ENV, DEFAULT_DATA_DIR))
    )
    database_url: str | None = None
    public_read: bool = False
    max_request_bytes: int = 64 * 1024 * 1024
    max_rows: int = 1_000_000
    evaluate_every: float | None = None
    window: str | None = None
    channels: tuple[str, ...] = ()
    keep_days: int | None = None
    retention: Literal["delete", "compact"] = "delete"
    policies: Path | None = None
    explain: bool = True

    def store(self) -> Store:
        url = self.database_url or os.environ.get("MLWARDEN_DATABASE_URL")
        return Store(url or f"sqlite:///{self.data_dir / 'mlwarden.db'}")


class RowsBatch(BaseModel):
    """A batch of logged rows in JSON; ``run`` names the pipeline run that made their features
    (a run id or an OpenLineage run id). ``timestamp`` names the rows' event-time column (by
    default the version's, when the rows carry it, else ``timestamp``)."""

    batch_id: str = Field(min_length=1, max_length=200, pattern=r"^[A-Za-z0-9][A-Za-z0-9_.\-]*$")
    timestamp: str = Field(default="timestamp", min_length=1, max_length=200)
    rows: list[dict[str, Any]] = Field(min_length=1)
    run: str = Field(default="", max_length=200)

    @field_validator("run", mode="before")
    @classmethod
    def _run_id_digits(cls, value: object) -> object:
        """A run id may be sent as a number."""
        return str(value) if isinstance(value, int) and not isinstance(value, bool) else value


class LabelsBatch(BaseModel):
    """Labels that arrived for earlier rows, by ``id`` (by default the id of the model's
    versions, when the labels carry it, else ``id``); ``timestamp`` is their arrival time,
    the time the server receives them when the labels do not carry it."""

    batch_id: str = Field(min_length=1, max_length=200, pattern=r"^[A-Za-z0-9][A-Za-z0-9_.\-]*$")
    id: str = Field(default="id", min_length=1, max_length=200)
    timestamp: str = Field(default="timestamp", min_length=1, max_length=200)
    labels: list[dict[str, Any]] = Field(min_length=1)


class AlertVerdict(BaseModel):
    """A person's verdict on an alert."""

    true_alarm: bool
    by: str = Field(default="", max_length=200)
    comment: str = Field(default="", max_length=2_000)


class BudgetChange(BaseModel):
    """A version's alert budget: the false incidents its team accepts per ``days``."""

    false_incidents: float = Field(gt=0, le=1_000)
    days: float = Field(default=90.0, ge=1, le=3_650)


class Stored(BaseModel):
    """A stored batch; ``warnings`` say how it departs from its version's logging contract
    and what that costs (empty when it meets the contract)."""

    batch_id: str
    rows: int
    duplicate: bool
    warnings: list[str] = Field(default_factory=list)


def _token(request: Request, authorization: str | None, scope: Scope) -> TokenRecord | None:
    settings: Settings = request.app.state.settings
    if scope == "read" and settings.public_read:
        return None
    if authorization is None or not authorization.lower().startswith("bearer "):
        raise HTTPException(
            401,
            "A bearer token is required: 'Authorization: Bearer <token>' (create one with "
            "'mlwarden token create').",
            headers={"WWW-Authenticate": "Bearer"},
        )
    token = authorization.split(" ", 1)[1].strip()
    store: Store = request.app.state.store
    record = store.verify_token(token, scope)
    if record is None:
        raise HTTPException(403, f"This token is not valid for {scope}s.")
    return record


def _read_token(
    request: Request, authorization: Annotated[str | None, Header()] = None
) -> TokenRecord | None:
    return _token(request, authorization, "read")


def _write_token(
    request: Request, authorization: Annotated[str | None, Header()] = None
) -> TokenRecord | None:
    return _token(request, authorization, "write")


ReadToken = Annotated[TokenRecord | None, Depends(_read_token)]
WriteToken = Annotated[TokenRecord | None, Depends(_write_token)]


def create_app(settings: Settings | None = None) -> FastAPI:
    """The ASGI application of the mlwarden server."""
    settings = settings or Settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        store = settings.store()
        store.migrate()
        app.state.store = store
        app.state.rowlog = RowLog(settings.data_dir / "log")
        scheduler = dispatcher = None
        app.state.dispatcher = None
        if settings.evaluate_every:
            from mlwarden.react import Dispatcher
            from mlwarden.react.policies import load_policies
            from mlwarden.service.scheduler import Scheduler

            policies = load_policies(settings.policies) if settings.policies else []
            dispatcher = Dispatcher(settings.channels) if settings.channels else None
            app.state.dispatcher = dispatcher
            scheduler = Scheduler(
                store,
                app.state.rowlog,
                every=settings.evaluate_every,
                window=settings.window,
                notify=dispatcher,
                keep_days=settings.keep_days,
                retention=settings.retention,
                policies=policies,
                data_dir=settings.data_dir,
            ).start()
        app.state.scheduler = scheduler
        explainer = None
        if settings.explain:
            from mlwarden.service.explain import ExplainWorker

            explainer = ExplainWorker(store, app.state.rowlog).start()
        app.state.explainer = explainer
        yield
        if explainer is not None:
            explainer.stop()
        if scheduler is not None:
            scheduler.stop()
        if dispatcher is not None:
            dispatcher.close(timeout=5)
        store.close()

    app = FastAPI(
        title="mlwarden",
        version=__version__,
        description="Quality assurance and observability for ML models in production.",
        lifespan=lifespan,
    )
    app.state.settings = settings
    app.state.contracts = {}
    app.include_router(dashboard_router)
    from mlwarden.server import contract_api, diagnosis_api, feedback_api, lineage_api, policy_api

    for module in (lineage_api, policy_api, diagnosis_api, feedback_api, contract_api):
        app.include_router(module.router, prefix=API)

    @app.exception_handler(MlwardenError)
    async def _mlwarden_error(request: Request, exc: MlwardenError) -> JSONResponse:
        status = 422 if isinstance(exc, ValueError) else 400
        if isinstance(exc, NotFoundError):
            status = 404
        elif isinstance(exc, ConflictError):
            status = 409
        elif isinstance(exc, StoreError):
            status = 503
        field_name = (
            getattr(exc, "parameter", None)
            or getattr(exc, "column", None)
            or getattr(exc, "what", None)
        )
        body: dict[str, Any] = {"detail": " ".join(str(exc).split())}
        if field_name:
            body["field"] = field_name
        return JSONResponse(body, status_code=status)

    @app.get(f"{API}/health", tags=["service"])
    def health() -> dict[str, str]:
        """Liveness: no token needed."""
        return {"status": "ok", "version": __version__}

    @app.get("/metrics", tags=["service"], response_class=Response)
    def prometheus_metrics(request: Request, _: ReadToken) -> Response:
        """The newest value of every metric, in the Prometheus text format."""
        from mlwarden.server.prometheus import CONTENT_TYPE, exposition

        return Response(exposition(request.app.state.store), media_type=CONTENT_TYPE)

    @app.get(f"{API}/models", tags=["models"])
    def list_models(request: Request, _: ReadToken) -> list[dict[str, Any]]:
        """Every model with its versions and aliases."""
        store: Store = request.app.state.store
        return [_model_doc(store, m.name) for m in store.models()]

    @app.get(f"{API}/models/{{model}}", tags=["models"])
    def get_model(request: Request, model: str, _: ReadToken) -> dict[str, Any]:
        return _model_doc(request.app.state.store, model)

    @app.get(f"{API}/models/{{model}}/versions/{{version}}", tags=["models"])
    def get_version(request: Request, model: str, version: str, _: ReadToken) -> dict[str, Any]:
        """A version (or the version an alias points at): its metadata, with ``alerting``:
        the alert budget, how it is shared, the false-incident rate measured on held-out
        reference windows, the regimes and cycles found and what cannot alarm."""
        return _version_doc(request.app.state.store.resolve(model, version))

    @app.put(f"{API}/models/{{model}}/versions/{{version}}/alert-budget", tags=["models"])
    def set_alert_budget(
        request: Request, model: str, version: str, budget: BudgetChange, _: WriteToken
    ) -> dict[str, Any]:
        """Change a version's alert budget: its bounds are recalibrated from the replay stored
        at registration, and the next evaluation uses them."""
        from mlwarden.registry import Registry

        registry = Registry(request.app.state.store)
        record = registry.set_budget(model, version, budget.false_incidents, budget.days)
        return _version_doc(record)

    @app.get(f"{API}/models/{{model}}/metrics", tags=["metrics"])
    def metrics(
        request: Request,
        model: str,
        _: ReadToken,
        name: str | None = None,
        version: str | None = None,
        column: str | None = None,
        segment: str | None = None,
        start: Annotated[datetime | None, Query()] = None,
        end: Annotated[datetime | None, Query()] = None,
    ) -> list[dict[str, Any]]:
        """A model's metric series: one item per window and metric, oldest first."""
        series = request.app.state.store.metric_series(
            model, name, version=version, column=column, segment=segment, start=start, end=end
        )
        return _records(series)

    @app.get(f"{API}/models/{{model}}/windows", tags=["windows"])
    def windows(
        request: Request,
        model: str,
        _: ReadToken,
        version: str | None = None,
        start: Annotated[datetime | None, Query()] = None,
        end: Annotated[datetime | None, Query()] = None,
        limit: Annotated[int, Query(ge=1, le=10_000)] = 1_000,
    ) -> list[dict[str, Any]]:
        """A model's evaluated windows starting in [start, end), newest ``limit``, oldest first."""
        found = request.app.state.store.windows(model, version, start=start, end=end)
        return [_window_doc(w) for w in found[-limit:]]

    @app.get(f"{API}/models/{{model}}/windows/{{window_id}}", tags=["windows"])
    def window(request: Request, model: str, window_id: int, _: ReadToken) -> dict[str, Any]:
        """One window: its metrics, its quality validation, and its drift, multivariate and
        performance results."""
        store: Store = request.app.state.store
        record = store.window(window_id)
        if record.model != model:
            raise NotFoundError(f"Model '{model}' has no window {window_id}.", what="window")
        details = store.details(window_id)
        return {
            **_window_doc(record),
            "metrics": [
                {
                    "name": m.name,
                    "column": m.column,
                    "segment": m.segment,
                    "value": m.value,
                    "lower": m.lower,
                    "upper": m.upper,
                    "alert": m.alert,
                }
                for m in store.window_metrics(window_id)
            ],
            "validation": store.validation(window_id),
            **{kind: result for kind, (result, _) in details.items() if kind != "profile"},
        }

    @app.get(f"{API}/models/{{model}}/alerts", tags=["alerts"])
    def alerts(
        request: Request,
        model: str,
        _: ReadToken,
        limit: Annotated[int, Query(ge=1, le=10_000)] = 1_000,
    ) -> list[dict[str, Any]]:
        """A model's newest ``limit`` alerts, oldest first."""
        return _records(request.app.state.store.alerts(model).tail(limit))

    @app.post(f"{API}/models/{{model}}/alerts/{{alert_id}}/feedback", tags=["alerts"])
    def alert_feedback(
        request: Request, model: str, alert_id: int, verdict: AlertVerdict, _: WriteToken
    ) -> dict[str, Any]:
        """Mark an alert as a true or a false alarm. A false alarm widens that metric's bounds
        to beyond its value for every later evaluation, until reverted."""
        store: Store = request.app.state.store
        if alert_id not in set(store.alerts(model)["id"].to_list()):
            raise NotFoundError(f"Model '{model}' has no alert {alert_id}.", what="alert")
        record = store.mark_alert(
            alert_id, true_alarm=verdict.true_alarm, by=verdict.by, comment=verdict.comment
        )
        return _feedback_doc(record)

    @app.get(f"{API}/models/{{model}}/feedback", tags=["alerts"])
    def list_feedback(request: Request, model: str, _: ReadToken) -> list[dict[str, Any]]:
        """Every verdict on the model's alerts, reverted ones included."""
        return [_feedback_doc(f) for f in request.app.state.store.feedback(model)]

    @app.delete(f"{API}/models/{{model}}/feedback/{{feedback_id}}", tags=["alerts"])
    def revert_feedback(
        request: Request, model: str, feedback_id: int, _: WriteToken, by: str = ""
    ) -> dict[str, Any]:
        """Take a verdict back: a false alarm's widened bounds stop applying."""
        store: Store = request.app.state.store
        if feedback_id not in {f.id for f in store.feedback(model)}:
            raise NotFoundError(f"Model '{model}' has no feedback {feedback_id}.", what="feedback")
        return _feedback_doc(store.revert_feedback(feedback_id, by=by[:200]))

    @app.get(f"{API}/models/{{model}}/incidents", tags=["alerts"])
    def incidents(request: Request, model: str, _: ReadToken) -> list[dict[str, Any]]:
        """A model's incidents, oldest first, with their status and number of alerts."""
        return [
            {k: (v.isoformat() if isinstance(v, datetime) else v) for k, v in i.items()}
            for i in request.app.state.store.incidents(model)
        ]

    @app.post(
        f"{API}/models/{{model}}/versions/{{version}}/rows",
        tags=["ingest"],
        response_model=Stored,
        openapi_extra={
            "requestBody": {
                "content": {
                    "application/json": {"schema": RowsBatch.model_json_schema()},
                    ARROW_STREAM: {"schema": {"type": "string", "format": "binary"}},
                },
                "required": True,
            }
        },
    )
    async def ingest_rows(
        request: Request,
        model: str,
        version: str,
        _: WriteToken,
        idempotency_key: Annotated[str | None, Header()] = None,
        timestamp_column: Annotated[str | None, Header(alias="X-Timestamp-Column")] = None,
        run_header: Annotated[str, Header(alias="X-Run", max_length=200)] = "",
    ) -> Stored:
        """Log a batch of rows a model version saw: JSON (``RowsBatch``) or an Arrow IPC
        stream (``Idempotency-Key`` header as batch id, ``X-Run`` header as the run,
        ``X-Timestamp-Column`` as the event-time column). The batch is kept with its run and
        the time span of its rows, which link predictions to the pipeline run that made their
        features; its ``warnings`` say how it departs from the version's logging contract."""
        store: Store = request.app.state.store
        # A known model and version (or alias: rows are filed under the version it points at).
        record = await run_in_threadpool(store.resolve, model, version)
        version = record.version
        contract = contract_api.contract_of(request.app.state, record)
        body = await _body(request, settings.max_request_bytes)
        # Parsing, writing and syncing run off the event loop, so batches arriving together
        # are stored side by side and the loop keeps answering.
        frame, batch_id, timestamp, run = await run_in_threadpool(
            _rows, request, body, idempotency_key, timestamp_column, run_header, contract
        )
        if frame.height > settings.max_rows:
            raise HTTPException(
                413, f"A batch holds at most {settings.max_rows:,} rows; got {frame.height:,}."
            )
        rowlog: RowLog = request.app.state.rowlog
        written = await run_in_threadpool(
            partial(rowlog.append, model, version, frame, batch_id=batch_id, timestamp=timestamp)
        )
        first_at, last_at = await run_in_threadpool(_span, frame, timestamp)
        new = await run_in_threadpool(
            partial(
                store.record_batch,
                model,
                batch_id,
                frame.height,
                run_ref=run,
                first_at=first_at,
                last_at=last_at,
            )
        )
        explainer = getattr(request.app.state, "explainer", None)
        if explainer is not None and written:
            explainer.submit(model, version, batch_id, first_at, last_at)
        held = contract_api.check_rows(request.app.state, record, frame.columns, timestamp)
        if new:
            await run_in_threadpool(
                partial(contract_api.count, store, model, held, frame.height, batch="rows")
            )
        return Stored(
            batch_id=batch_id,
            rows=frame.height,
            duplicate=not new and written == 0,
            warnings=contract_api.warnings(held),
        )

    @app.post(f"{API}/models/{{model}}/labels", tags=["ingest"], response_model=Stored)
    def ingest_labels(request: Request, model: str, batch: LabelsBatch, _: WriteToken) -> Stored:
        """Log labels that arrived for earlier rows (matched by ``id``); the answer's
        ``warnings`` say how they depart from the logging contract of the model's versions."""
        store: Store = request.app.state.store
        store.get_model(model)
        if len(batch.labels) > settings.max_rows:
            raise HTTPException(413, f"A batch holds at most {settings.max_rows:,} labels.")
        frame = _frame(batch.labels, "labels", batch.timestamp)
        if batch.timestamp not in frame.columns:  # they arrive now
            frame = frame.with_columns(
                pl.lit(datetime.now(UTC), dtype=pl.Datetime("us", "UTC")).alias(batch.timestamp)
            )
        versions = store.versions(model)
        contracts = [contract_api.contract_of(request.app.state, v) for v in versions]
        given = batch.id if "id" in batch.model_fields_set else None
        id_column = contract_api.labels_id(given, contracts, frame.columns)
        rowlog: RowLog = request.app.state.rowlog
        written = rowlog.append_labels(
            model, frame, batch_id=batch.batch_id, id=id_column, timestamp=batch.timestamp
        )
        new = store.record_batch(model, batch.batch_id, frame.height, kind="labels")
        held = contract_api.check_labels(
            request.app.state, versions, frame.columns, batch.timestamp
        )
        if new:
            contract_api.count(store, model, held, frame.height, batch="labels")
        return Stored(
            batch_id=batch.batch_id,
            rows=frame.height,
            duplicate=not new and written == 0,
            warnings=contract_api.warnings(held),
        )

    return app


async def _body(request: Request, limit: int) -> bytes:
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise HTTPException(413, f"The request body is limited to {limit:,} bytes.")
    chunks = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise HTTPException(413, f"The request body is limited to {limit:,} bytes.")
        chunks.append(chunk)
    return b"".join(chunks)


def _rows(
    request: Request,
    body: bytes,
    idempotency_key: str | None,
    timestamp: str | None,
    run: str,
    contract: Contract,
) -> tuple[pl.DataFrame, str, str, str]:
    """The batch's rows, batch id, time column and run (the body's, else the header's; the
    time column by default the version's, see :func:`contract_api.rows_time`)."""
    from mlwarden.server.contract_api import rows_time

    content_type = request.headers.get("content-type", "").split(";")[0].strip()
    if content_type == ARROW_STREAM:
        if not idempotency_key:
            raise HTTPException(
                422,
                [
                    {
                        "loc": ["header", "Idempotency-Key"],
                        "msg": "an Arrow batch needs a batch id in the Idempotency-Key header",
                        "type": "missing",
                    }
                ],
            )
        try:
            frame = pl.read_ipc_stream(io.BytesIO(body))
        except Exception as exc:  # any decoding failure is the client's input
            raise HTTPException(
                422,
                [
                    {
                        "loc": ["body"],
                        "msg": f"not an Arrow IPC stream: {exc}",
                        "type": "value_error",
                    }
                ],
            ) from exc
        timestamp = rows_time(timestamp, contract, frame.columns)
        return _in_utc(frame, timestamp, "rows"), idempotency_key, timestamp, run
    if content_type not in ("application/json", ""):
        raise HTTPException(
            415, f"Send rows as application/json or {ARROW_STREAM}; got {content_type!r}."
        )
    try:
        batch = RowsBatch.model_validate_json(body)
    except Exception as exc:
        from pydantic import ValidationError

        if isinstance(exc, ValidationError):
            errors = [
                {"loc": ["body", *e["loc"]], "msg": e["msg"], "type": e["type"]}
                for e in exc.errors()[:20]
            ]
            raise HTTPException(422, errors) from exc
        raise
    frame = _table(batch.rows, "rows")
    given = batch.timestamp if "timestamp" in batch.model_fields_set else timestamp
    timestamp = rows_time(given, contract, frame.columns)
    return _in_utc(frame, timestamp, "rows"), batch.batch_id, timestamp, batch.run or run


def _span(frame: pl.DataFrame, timestamp: str) -> tuple[datetime | None, datetime | None]:
    """The times of a batch's first and last rows, in UTC (None without a time column)."""
    if frame.height == 0 or not isinstance(frame.schema.get(timestamp), pl.Datetime):
        return None, None
    first, last = frame.select(
        pl.col(timestamp).min().alias("first"), pl.col(timestamp).max().alias("last")
    ).row(0)

    def utc(moment: datetime | None) -> datetime | None:
        if moment is None:
            return None
        return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)

    return utc(first), utc(last)


def _frame(records: list[dict[str, Any]], where: str, timestamp: str) -> pl.DataFrame:
    """JSON records as a table, its time column in UTC (see :func:`_in_utc`)."""
    return _in_utc(_table(records, where), timestamp, where)


def _table(records: list[dict[str, Any]], where: str) -> pl.DataFrame:
    """JSON records as a table."""
    try:
        return pl.DataFrame(records, infer_schema_length=None)
    except (pl.exceptions.PolarsError, TypeError, ValueError) as exc:
        raise InputError(f"The {where} could not be read as a table: {exc}") from exc


def _in_utc(frame: pl.DataFrame, timestamp: str, where: str) -> pl.DataFrame:
    """``frame`` with its time column, where it has one, read as UTC times: ISO 8601 text
    (naive times are UTC), epoch numbers or datetimes (:func:`mlwarden.frames.to_utc`)."""
    from mlwarden.frames import to_utc

    if timestamp not in frame.columns:
        return frame
    return to_utc(frame, timestamp, source=f"the {where}")


def _records(frame: pl.DataFrame) -> list[dict[str, Any]]:
    return [
        {k: (v.isoformat() if isinstance(v, datetime) else v) for k, v in row.items()}
        for row in frame.iter_rows(named=True)
    ]


def _feedback_doc(record: AlertFeedback) -> dict[str, Any]:
    from dataclasses import asdict

    doc = asdict(record)
    doc["created_at"] = record.created_at.isoformat()
    return doc


def _window_doc(window: WindowRecord) -> dict[str, Any]:
    return {
        "id": window.id,
        "version": window.version,
        "start": window.start.isoformat(),
        "end": window.end.isoformat(),
        "n_rows": window.n_rows,
        "n_labelled": window.n_labelled,
        "evaluated_at": None if window.evaluated_at is None else window.evaluated_at.isoformat(),
    }


def _version_doc(record: VersionRecord) -> dict[str, Any]:
    return {
        "model": record.model,
        "version": record.version,
        "created_at": record.created_at.isoformat(),
        "artifacts": list(record.artifacts),
        "meta": record.meta,
    }


def _model_doc(store: Store, model: str) -> dict[str, Any]:
    record = store.get_model(model)
    return {
        "name": record.name,
        "description": record.description,
        "created_at": record.created_at.isoformat(),
        "versions": [
            {"version": v.version, "created_at": v.created_at.isoformat(), "artifacts": v.artifacts}
            for v in store.versions(model)
        ],
        "aliases": store.aliases(model),
    }
