"""The promotion gate: a candidate version reaches ``production`` only on evidence.

:func:`request_promotion` evaluates the candidate on held-out labelled rows against the version
the alias points at now, with both versions' kept estimators, on the same rows:

* every default metric of the task (``roc_auc``, ``f1``, ... or ``mae``, ``rmse``, ...) must
  not regress beyond ``tolerance`` overall, nor beyond ``segment_tolerance`` in any segment with
  enough rows, and must meet the ``thresholds`` given (a minimum for metrics where higher is
  better, a maximum otherwise);
* a candidate that fails is ``blocked``; one that passes is promoted at once, or, when a review
  is required (the default), waits as ``pending`` until a domain expert approves or rejects it
  with a comment (:func:`review_promotion`, the dashboard's version page, the API).

The gate's evidence and the review go into the alias history with the move.

Example:
    >>> import numpy as np, polars as pl
    >>> from sklearn.linear_model import LinearRegression
    >>> from mlwarden.registry import Registry
    >>> from mlwarden.store.metadata import Store
    >>> rng = np.random.default_rng(0)
    >>> x = rng.normal(size=(600, 2))
    >>> frame = pl.DataFrame({"a": x[:, 0], "b": x[:, 1], "y": 2 * x[:, 0] + x[:, 1]})
    >>> registry = Registry(Store("sqlite://"))
    >>> good = LinearRegression().fit(x, frame["y"].to_numpy())
    >>> weak = LinearRegression().fit(x[:, :1] * 0 + x[:, :1], frame["y"].to_numpy())
    >>> _ = registry.register("m", "1", frame, estimator=weak, roles={"y": "target"},
    ...                       features=["a"])
    >>> _ = registry.promote("m", "1")
    >>> _ = registry.register("m", "2", frame, estimator=good, roles={"y": "target"})
    >>> request = request_promotion(registry.store, "m", "2", frame)
    >>> request.status, request.gate["passed"]
    ('pending', True)
    >>> registry.store.resolve("m", "production").version  # not before a review
    '1'
    >>> review_promotion(registry.store, request.id, approve=True, by="eva", comment="ok").status
    'promoted'
    >>> registry.store.alias_history("m", "production")[-1].evidence["review"]["by"]
    'eva'
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Final

import numpy as np
import polars as pl
from sqlalchemy import select

from mlwarden.exceptions import ConflictError, InputError, NotFoundError, ParameterError
from mlwarden.store.metadata import as_utc
from mlwarden.store.schema import ModelRow, PromotionRow, VersionRow

if TYPE_CHECKING:
    from collections.abc import Mapping

    from mlwarden.store.metadata import Store

__all__ = [
    "Promotion",
    "PromotionGate",
    "evaluate_candidate",
    "get_promotion",
    "list_promotions",
    "request_promotion",
    "review_promotion",
]

PENDING: Final = "pending"
BLOCKED: Final = "blocked"
PROMOTED: Final = "promoted"
REJECTED: Final = "rejected"


@dataclass(frozen=True)
class PromotionGate:
    """What a candidate must show to be promoted.

    Parameters:
        thresholds: per metric, the value it must reach (a minimum where higher is better,
            else a maximum), e.g. ``{"roc_auc": 0.8, "mae": 2.5}``.
        tolerance: the largest regression against the current version, overall (in the
            metric's units).
        segment_tolerance: the same per segment (segments are noisier).
        min_segment_rows: segments with fewer held-out rows are reported, not judged.
        require_review: whether a domain expert must approve a candidate that passed.
    """

    thresholds: Mapping[str, float] = field(default_factory=dict)
    tolerance: float = 0.01
    segment_tolerance: float = 0.03
    min_segment_rows: int = 50
    require_review: bool = True


@dataclass(frozen=True)
class Promotion:
    """A request to point ``alias`` at ``version``: its status (``pending``, ``blocked``,
    ``promoted``, ``rejected``), the gate's evidence and the review."""

    id: int
    model: str
    version: str
    baseline: str | None
    alias: str
    status: str
    requires_review: bool
    gate: dict[str, Any]
    requested_by: str
    requested_at: datetime
    reviewed_by: str = ""
    reviewed_at: datetime | None = None
    comment: str = ""

    def to_dict(self) -> dict[str, Any]:
        doc = asdict(self)
        doc["requested_at"] = self.requested_at.isoformat()
        doc["reviewed_at"] = self.reviewed_at.isoformat() if self.reviewed_at else None
        return doc


def evaluate_candidate(
    store: Store,
    model: str,
    version: str,
    holdout: object,
    *,
    alias: str = "production",
    gate: PromotionGate | None = None,
) -> dict[str, Any]:
    """The gate's evidence for ``version`` against the version ``alias`` points at (none yet:
    thresholds only), on the labelled rows ``holdout``: per metric overall and per segment, the
    two values, the regression, and whether each passed; ``passed`` and ``failures`` sum up."""
    from mlwarden.frames import to_polars
    from mlwarden.performance.metrics import default_metrics, metric
    from mlwarden.service.evaluate import load_reference

    gate = gate or PromotionGate()
    frame = to_polars(holdout)
    reference = load_reference(store, model, version)
    evaluators = reference.evaluators
    target = evaluators.target if evaluators is not None else None
    if target is None:
        raise ParameterError(
            f"Version '{version}' of '{model}' has no target column, so it cannot be evaluated "
            "on held-out labels; register it with roles={'<label>': 'target'}.",
            parameter="version",
        )
    if target not in frame.columns:
        raise InputError(
            f"The held-out rows have no '{target}' column (the label of '{model}').",
            column=target,
        )
    frame = frame.filter(pl.col(target).is_not_null())
    if frame.height == 0:
        raise InputError("The held-out rows have no labels.", column=target)
    baseline = _current(store, model, alias)
    candidate_outputs = _outputs(store, model, version, frame)
    task = candidate_outputs["task"]
    names = [n for n in default_metrics(task) if n != "calibration_error"]
    for name in gate.thresholds:
        metric(name, task)  # an unknown metric is named with the known ones
    y_true = frame[target].to_numpy()
    baseline_outputs = _outputs(store, model, baseline, frame) if baseline is not None else None
    segment_column = evaluators.segment if evaluators is not None else None
    parts: list[tuple[str, np.ndarray[Any, Any]]] = [("", np.ones(frame.height, dtype=bool))]
    if segment_column and segment_column in frame.columns:
        values = frame[segment_column].cast(pl.String)
        for value in values.unique(maintain_order=True).drop_nulls().to_list():
            parts.append((f"{segment_column}={value}", (values == value).to_numpy()))
    results: list[dict[str, Any]] = []
    failures: list[str] = []
    for segment, mask in parts:  # one per segment, not per row
        rows = int(mask.sum())
        judged = not segment or rows >= gate.min_segment_rows
        allowed = gate.segment_tolerance if segment else gate.tolerance
        for name in names:
            m = metric(name, task)
            own = _score(name, task, y_true[mask], candidate_outputs, mask)
            other = (
                _score(name, task, y_true[mask], baseline_outputs, mask)
                if baseline_outputs is not None
                else None
            )
            regression = None
            if other is not None and not (math.isnan(own) or math.isnan(other)):
                regression = (other - own) if m.higher_is_better else (own - other)
            threshold = gate.thresholds.get(name) if not segment else None
            passed = True
            if judged and regression is not None and regression > allowed:
                passed = False
                failures.append(
                    f"{name} regresses by {regression:.4g} "
                    f"{'in ' + segment if segment else 'overall'} (tolerance {allowed:g})"
                )
            if threshold is not None and not math.isnan(own):
                reaches = own >= threshold if m.higher_is_better else own <= threshold
                if not reaches:
                    passed = False
                    bound = "at least" if m.higher_is_better else "at most"
                    failures.append(f"{name} is {own:.4g}; the gate needs {bound} {threshold:g}")
            results.append(
                {
                    "metric": name,
                    "segment": segment,
                    "rows": rows,
                    "candidate": _json(own),
                    "baseline": _json(other),
                    "regression": _json(regression),
                    "higher_is_better": m.higher_is_better,
                    "judged": judged,
                    "passed": passed,
                }
            )
    return {
        "holdout_rows": frame.height,
        "task": task,
        "baseline": baseline,
        "tolerance": gate.tolerance,
        "segment_tolerance": gate.segment_tolerance,
        "thresholds": dict(gate.thresholds),
        "metrics": results,
        "passed": not failures,
        "failures": failures,
    }


def request_promotion(
    store: Store,
    model: str,
    version: str,
    holdout: object,
    *,
    alias: str = "production",
    gate: PromotionGate | None = None,
    by: str = "",
) -> Promotion:
    """Evaluate ``version`` with the gate and record the request: ``blocked`` when it failed,
    ``pending`` for review when one is required, else ``promoted`` (the alias moves now, with
    the evidence in its history)."""
    gate = gate or PromotionGate()
    evidence = evaluate_candidate(store, model, version, holdout, alias=alias, gate=gate)
    status = BLOCKED if not evidence["passed"] else PENDING if gate.require_review else PROMOTED
    with store.session() as s:
        model_row = _model_row(s, model)
        candidate = _version_id(s, model_row.id, version)
        baseline = evidence["baseline"]
        row = PromotionRow(
            model_id=model_row.id,
            version_id=candidate,
            baseline_version_id=_version_id(s, model_row.id, baseline) if baseline else None,
            alias=alias,
            status=status,
            requires_review=gate.require_review,
            gate=evidence,
            requested_by=by,
            requested_at=datetime.now(UTC),
        )
        s.add(row)
        s.flush()
        promotion_id = row.id
    if status == PROMOTED:
        store.set_alias(
            model, alias, version, by=by, note="promoted: gate passed", evidence={"gate": evidence}
        )
    return get_promotion(store, promotion_id)


def review_promotion(
    store: Store, promotion_id: int, *, approve: bool, by: str, comment: str = ""
) -> Promotion:
    """Approve (the alias moves; gate and review go into its history) or reject a pending
    promotion.

    Raises:
        NotFoundError: no such promotion.
        ConflictError: it is not pending (blocked, already decided).
        ParameterError: no reviewer named.
    """
    if not by.strip():
        raise ParameterError("A review names its reviewer ('by').", parameter="by")
    current = get_promotion(store, promotion_id)
    if current.status != PENDING:
        raise ConflictError(
            f"Promotion {promotion_id} is {current.status}; only a pending promotion is reviewed."
        )
    now = datetime.now(UTC)
    status = PROMOTED if approve else REJECTED
    with store.session() as s:
        row = s.get(PromotionRow, promotion_id)
        assert row is not None
        if row.status != PENDING:  # decided by someone else meanwhile
            raise ConflictError(f"Promotion {promotion_id} was decided meanwhile.")
        row.status = status
        row.reviewed_by = by
        row.reviewed_at = now
        row.comment = comment
    if approve:
        review = {"by": by, "at": now.isoformat(), "comment": comment, "approved": True}
        store.set_alias(
            current.model,
            current.alias,
            current.version,
            by=by,
            note=f"promoted after review: {comment}" if comment else "promoted after review",
            evidence={"gate": current.gate, "review": review},
        )
    return get_promotion(store, promotion_id)


def get_promotion(store: Store, promotion_id: int) -> Promotion:
    with store.session() as s:
        row = s.get(PromotionRow, promotion_id)
        if row is None:
            raise NotFoundError(f"There is no promotion {promotion_id}.", what="promotion")
        return _promotion(s, row)


def list_promotions(
    store: Store, model: str, *, version: str | None = None, status: str | None = None
) -> list[Promotion]:
    """A model's promotion requests, newest first."""
    with store.session() as s:
        model_row = _model_row(s, model)
        query = select(PromotionRow).where(PromotionRow.model_id == model_row.id)
        if version is not None:
            query = query.where(PromotionRow.version_id == _version_id(s, model_row.id, version))
        if status is not None:
            query = query.where(PromotionRow.status == status)
        return [_promotion(s, r) for r in s.scalars(query.order_by(PromotionRow.id.desc()))]


# -- helpers -----------------------------------------------------------------------------------


def _current(store: Store, model: str, alias: str) -> str | None:
    try:
        return store.resolve(model, alias).version if alias in store.aliases(model) else None
    except NotFoundError:
        return None


def _outputs(store: Store, model: str, version: str, frame: pl.DataFrame) -> dict[str, Any]:
    """The version's predictions (and class scores) on ``frame``, with its task."""
    from mlwarden.registry import Registry

    estimator = Registry(store).estimator(model, version)
    if estimator is None:
        raise ParameterError(
            f"Version '{version}' of '{model}' was registered without its estimator, so the "
            "gate cannot evaluate it; register it with estimator=...",
            parameter="version",
        )
    meta = store.get_version(model, version).meta
    features = list((meta.get("explanation") or {}).get("features") or [])
    missing = [f for f in features if f not in frame.columns]
    if missing:
        raise InputError(
            f"The held-out rows lack feature '{missing[0]}' of version '{version}'.",
            column=missing[0],
        )
    x = frame.select(features).to_numpy()
    predict = getattr(estimator, "predict", None)
    if predict is None:
        raise ParameterError(f"The estimator of version '{version}' has no predict().")
    outputs: dict[str, Any] = {"pred": np.asarray(predict(x))}
    proba = getattr(estimator, "predict_proba", None)
    classes = getattr(estimator, "classes_", None)
    if proba is not None and classes is not None:
        scores = np.asarray(proba(x), dtype=float)
        outputs["classes"] = tuple(classes.tolist())
        if scores.shape[1] == 2:
            outputs.update(task="binary", score=scores[:, 1], pos_label=classes[1])
        else:
            outputs.update(task="multiclass", score=scores)
    else:
        outputs["task"] = "regression"
    return outputs


def _score(
    name: str,
    task: str,
    y_true: np.ndarray[Any, Any],
    outputs: dict[str, Any],
    mask: np.ndarray[Any, Any],
) -> float:
    from mlwarden.performance.metrics import compute, parse_task

    score = outputs.get("score")
    return compute(
        name,
        y_true,
        outputs["pred"][mask],
        None if score is None else score[mask],
        task=parse_task(task),
        classes=outputs.get("classes"),
        pos_label=outputs.get("pos_label", 1),
    )


def _json(value: float | None) -> float | None:
    return None if value is None or math.isnan(value) else float(value)


def _model_row(s: Any, model: str) -> ModelRow:
    row = s.scalar(select(ModelRow).where(ModelRow.name == model))
    if row is None:
        raise NotFoundError(f"There is no model '{model}'.", what="model")
    assert isinstance(row, ModelRow)
    return row


def _version_id(s: Any, model_id: int, version: str) -> int:
    found = s.scalar(
        select(VersionRow.id).where(VersionRow.model_id == model_id, VersionRow.version == version)
    )
    if found is None:
        raise NotFoundError(f"There is no version '{version}'.", what="version")
    return int(found)


def _promotion(s: Any, row: PromotionRow) -> Promotion:
    model = s.get(ModelRow, row.model_id)
    candidate = s.get(VersionRow, row.version_id)
    baseline = s.get(VersionRow, row.baseline_version_id) if row.baseline_version_id else None
    return Promotion(
        id=row.id,
        model=model.name,
        version=candidate.version,
        baseline=baseline.version if baseline is not None else None,
        alias=row.alias,
        status=row.status,
        requires_review=row.requires_review,
        gate=dict(row.gate or {}),
        requested_by=row.requested_by,
        requested_at=as_utc(row.requested_at, "requested_at"),
        reviewed_by=row.reviewed_by,
        reviewed_at=as_utc(row.reviewed_at, "reviewed_at") if row.reviewed_at else None,
        comment=row.comment,
    )
