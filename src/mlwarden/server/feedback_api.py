"""The feedback, explanation and promotion routes of the HTTP API.

* ``GET  /models/{m}/predictions/{id}`` — one logged prediction: its row, version, attributions
  by feature and sensor, quality flags and the feedback given on it;
* ``POST /models/{m}/predictions/{id}/feedback`` — feedback on it (write token): an unknown id
  answers 404, a bad role, decision, reason code or a true value of the wrong type 422, each
  naming the field;
* ``GET  /models/{m}/prediction-feedback`` — feedback given on a model's predictions;
  ``POST`` the same path with ``records`` — a shift's log of feedback, all or nothing;
* ``POST /models/{m}/versions/{v}/explanations`` — attributions a client computed;
* ``GET  /models/{m}/versions/{v}/explanation`` — a version's global explanation;
* ``POST /models/{m}/versions/{v}/promotions`` — ask to promote a version, with held-out rows;
  ``GET /models/{m}/promotions``; ``POST /promotions/{id}/approve|reject`` (write token).
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

import polars as pl
from fastapi import APIRouter, HTTPException, Query, Request
from pydantic import BaseModel, Field
from starlette.concurrency import run_in_threadpool

# FastAPI reads the dependencies from the annotations at runtime.
from mlwarden.server.app import ReadToken, WriteToken  # noqa: TC001

router = APIRouter()


class FeedbackIn(BaseModel):
    """Feedback on one prediction and its explanation."""

    role: str = Field(max_length=20)
    by: str = Field(default="", max_length=200)
    correct: bool | None = None
    true_value: Any = None
    decision: str | None = Field(default=None, max_length=20)
    reason: str = Field(default="", max_length=100)
    comment: str = Field(default="", max_length=2_000)
    plausible: bool | None = None
    explanation_comment: str = Field(default="", max_length=2_000)
    shown: dict[str, Any] | None = None


class FeedbackLogIn(BaseModel):
    """Many pieces of feedback at once (a shift's log): records with ``prediction_id``,
    ``role``, and ``decision`` and/or ``plausible``; optionally ``by``, ``reason``, ``comment``,
    ``explanation_comment``, ``at`` (the prediction's time, ISO 8601)."""

    records: list[dict[str, Any]] = Field(min_length=1)


class AttributionsIn(BaseModel):
    """Per-prediction attributions a client computed: one record per prediction with its id,
    time, ``base_value`` and one number per feature."""

    batch_id: str = Field(min_length=1, max_length=200, pattern=r"^[A-Za-z0-9][A-Za-z0-9_.\-]*$")
    timestamp: str = Field(default="timestamp", min_length=1, max_length=200)
    rows: list[dict[str, Any]] = Field(min_length=1)


class PromotionIn(BaseModel):
    """A request to promote a version, with the held-out labelled rows it is judged on."""

    alias: str = Field(default="production", min_length=1, max_length=100)
    rows: list[dict[str, Any]] = Field(min_length=1)
    thresholds: dict[str, float] = Field(default_factory=dict)
    tolerance: float = Field(default=0.01, ge=0)
    segment_tolerance: float = Field(default=0.03, ge=0)
    require_review: bool = True
    by: str = Field(default="", max_length=200)


class ReviewIn(BaseModel):
    """A domain expert's decision on a pending promotion."""

    by: str = Field(min_length=1, max_length=200)
    comment: str = Field(default="", max_length=2_000)


@router.get("/models/{model}/predictions/{prediction_id}", tags=["feedback"])
async def prediction(
    request: Request, model: str, prediction_id: str, _: ReadToken
) -> dict[str, Any]:
    """One logged prediction with what a person is shown about it and its feedback."""
    return await run_in_threadpool(prediction_doc, request, model, prediction_id)


def prediction_doc(request: Request, model: str, prediction_id: str) -> dict[str, Any]:
    """The prediction's row, version, attributions, quality flags and feedback (shared with
    the dashboard's prediction page)."""
    from mlwarden.feedback import find_prediction, list_feedback, reasons_of, shown_with
    from mlwarden.service.evaluate import load_reference

    store, rowlog = request.app.state.store, request.app.state.rowlog
    row, version, id_column = find_prediction(store, rowlog, model, prediction_id)
    reference = load_reference(store, model, version)
    timestamp = reference.suite.timestamp or "timestamp"
    shown = shown_with(store, rowlog, model, version, row, id_column, timestamp)
    return {
        "model": model,
        "version": version,
        "prediction_id": str(prediction_id),
        "timestamp": row[timestamp].isoformat() if isinstance(row[timestamp], datetime) else None,
        "row": {k: _plain(v) for k, v in row.items() if not k.startswith("_")},
        "prediction": _plain(shown["prediction"]),
        "explanation": shown["explanation"],
        "quality_flags": shown["quality_flags"],
        "reasons": list(reasons_of(store, model, version)),
        "feedback": [
            f.to_dict() for f in list_feedback(store, model, prediction_id=str(prediction_id))
        ],
    }


@router.post(
    "/models/{model}/predictions/{prediction_id}/feedback", tags=["feedback"], status_code=201
)
async def give(
    request: Request, model: str, prediction_id: str, body: FeedbackIn, token: WriteToken
) -> dict[str, Any]:
    """Record feedback on a prediction; a true value also becomes the row's label."""
    from mlwarden.feedback import give_feedback

    record = await run_in_threadpool(
        lambda: give_feedback(
            request.app.state.store,
            request.app.state.rowlog,
            model,
            prediction_id,
            role=body.role,
            by=body.by or (token.name if token is not None else ""),
            correct=body.correct,
            true_value=body.true_value,
            decision=body.decision,
            reason=body.reason,
            comment=body.comment,
            plausible=body.plausible,
            explanation_comment=body.explanation_comment,
            shown=body.shown,
        )
    )
    return record.to_dict()


@router.post("/models/{model}/prediction-feedback", tags=["feedback"], status_code=201)
async def give_many(
    request: Request, model: str, body: FeedbackLogIn, token: WriteToken
) -> dict[str, Any]:
    """Record a log of feedback at once: every record is checked first, then all are written
    in one transaction, or none (the first bad record is named)."""
    from mlwarden.feedback import record_feedback

    settings = request.app.state.settings
    if len(body.records) > settings.max_rows:
        raise HTTPException(413, f"A log holds at most {settings.max_rows:,} records.")
    frame = pl.DataFrame(body.records, infer_schema_length=None)
    if "at" in frame.columns:
        frame = frame.with_columns(
            pl.col("at").cast(pl.String).str.to_datetime(time_zone="UTC", strict=False)
        )
    if "by" not in frame.columns and token is not None:
        frame = frame.with_columns(pl.lit(token.name).alias("by"))
    written = await run_in_threadpool(
        lambda: record_feedback(request.app.state.store, request.app.state.rowlog, model, frame)
    )
    return {"records": written}


@router.get("/models/{model}/prediction-feedback", tags=["feedback"])
def feedback_given(
    request: Request,
    model: str,
    _: ReadToken,
    version: str | None = None,
    start: datetime | None = None,
    end: datetime | None = None,
    limit: Annotated[int, Query(ge=1, le=10_000)] = 500,
) -> list[dict[str, Any]]:
    """Feedback on a model's predictions (made in ``[start, end)``), newest first."""
    from mlwarden.feedback import list_feedback

    found = list_feedback(
        request.app.state.store, model, version=version, start=start, end=end, limit=limit
    )
    return [f.to_dict() for f in found]


@router.post("/models/{model}/versions/{version}/explanations", tags=["feedback"])
async def attributions(
    request: Request, model: str, version: str, body: AttributionsIn, _: WriteToken
) -> dict[str, Any]:
    """Store per-prediction attributions a client computed (idempotent by ``batch_id``)."""
    from mlwarden.server.app import _frame
    from mlwarden.service.explain import store_attributions

    settings = request.app.state.settings
    if len(body.rows) > settings.max_rows:
        raise HTTPException(413, f"A batch holds at most {settings.max_rows:,} rows.")
    store = request.app.state.store
    version = (await run_in_threadpool(store.resolve, model, version)).version
    frame = _frame(body.rows, "rows", body.timestamp)
    written = await run_in_threadpool(
        lambda: store_attributions(
            store,
            request.app.state.rowlog,
            model,
            version,
            frame,
            batch_id=body.batch_id,
            timestamp=body.timestamp,
        )
    )
    return {"batch_id": body.batch_id, "rows": frame.height, "duplicate": written == 0}


@router.get("/models/{model}/versions/{version}/explanation", tags=["feedback"])
def global_explanation(request: Request, model: str, version: str, _: ReadToken) -> dict[str, Any]:
    """A version's global explanation (per feature and per sensor group)."""
    from mlwarden.exceptions import NotFoundError
    from mlwarden.registry import Registry

    found = Registry(request.app.state.store).explanation(model, version)
    if found is None:
        raise NotFoundError(
            f"Version '{version}' of '{model}' was registered without its estimator, so it has "
            "no global explanation.",
            what="explanation",
        )
    return found


@router.post("/models/{model}/versions/{version}/promotions", tags=["promotions"], status_code=201)
async def request(
    request: Request, model: str, version: str, body: PromotionIn, token: WriteToken
) -> dict[str, Any]:
    """Ask to promote a version: the gate evaluates it on the held-out rows against the
    alias's current version; it is blocked, waits for review, or is promoted."""
    from mlwarden.registry.promotion import PromotionGate, request_promotion

    gate = PromotionGate(
        thresholds=body.thresholds,
        tolerance=body.tolerance,
        segment_tolerance=body.segment_tolerance,
        require_review=body.require_review,
    )
    holdout = pl.DataFrame(body.rows, infer_schema_length=None)
    found = await run_in_threadpool(
        lambda: request_promotion(
            request.app.state.store,
            model,
            version,
            holdout,
            alias=body.alias,
            gate=gate,
            by=body.by or (token.name if token is not None else ""),
        )
    )
    return found.to_dict()


@router.get("/models/{model}/promotions", tags=["promotions"])
def promotions(
    request: Request, model: str, _: ReadToken, status: str | None = None
) -> list[dict[str, Any]]:
    """A model's promotion requests, newest first."""
    from mlwarden.registry.promotion import list_promotions

    return [p.to_dict() for p in list_promotions(request.app.state.store, model, status=status)]


@router.post("/promotions/{promotion_id}/approve", tags=["promotions"])
def approve(request: Request, promotion_id: int, body: ReviewIn, _: WriteToken) -> dict[str, Any]:
    """Approve a pending promotion: the alias moves, with the gate and the review."""
    from mlwarden.registry.promotion import review_promotion

    return review_promotion(
        request.app.state.store, promotion_id, approve=True, by=body.by, comment=body.comment
    ).to_dict()


@router.post("/promotions/{promotion_id}/reject", tags=["promotions"])
def reject(request: Request, promotion_id: int, body: ReviewIn, _: WriteToken) -> dict[str, Any]:
    """Reject a pending promotion: the alias stays."""
    from mlwarden.registry.promotion import review_promotion

    return review_promotion(
        request.app.state.store, promotion_id, approve=False, by=body.by, comment=body.comment
    ).to_dict()


def _plain(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, float) and value != value:
        return None
    return value
