"""Realized performance per window, from predictions joined to labels that arrive late.

Labels often come days after the predictions they judge, and for only part of them. Each call
joins whatever labels exist so far to the predictions by id and reports, for every window, how
many predictions there are, how many are labelled and the metrics on the labelled ones. Calling
it again when more labels have arrived updates the figures.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import date, datetime
from typing import TYPE_CHECKING, Any, Final

import numpy as np
import polars as pl

from mlwarden.exceptions import InputError, ParameterError
from mlwarden.frames import to_polars
from mlwarden.performance.metrics import (
    Task,
    compute,
    default_metrics,
    metric,
    parse_task,
)
from mlwarden.schema import unknown_column_message
from mlwarden.windows import WINDOW, WINDOW_END, WINDOW_START, WindowSpec, assign_windows

if TYPE_CHECKING:
    from collections.abc import Sequence

    import numpy.typing as npt

__all__ = ["Figures", "RealizedPerformance", "realized_performance"]

# Internal column names, chosen not to clash with a user's columns.
_LABEL: Final = "__mlwarden_label"
_NEW_LABEL: Final = "__mlwarden_new_label"
_SCORE: Final = "__mlwarden_score_"
# Multiclass score rows must sum to 1 within this tolerance (allows rounded probabilities).
SCORE_SUM_TOLERANCE: Final = 0.01
_EXAMPLES: Final = 5


@dataclass(frozen=True, slots=True)
class Figures:
    """Counts and metrics over a set of predictions (one window, or all of them).

    Parameters
    ----------
    n_predictions
        Predictions in the set.
    n_labelled
        Of those, the ones with a label so far.
    labelled_share
        ``n_labelled / n_predictions`` (NaN for no predictions).
    metrics
        Each metric on the labelled predictions; NaN while none are labelled.
    """

    n_predictions: int
    n_labelled: int
    labelled_share: float
    metrics: dict[str, float]

    def to_dict(self) -> dict[str, Any]:
        """Plain, JSON-ready form (NaN becomes None)."""
        return {
            "n_predictions": self.n_predictions,
            "n_labelled": self.n_labelled,
            "labelled_share": _json(self.labelled_share),
            **{name: _json(value) for name, value in self.metrics.items()},
        }


# eq=False: a DataFrame field compares to a frame, not a bool.
@dataclass(frozen=True, slots=True, eq=False)
class RealizedPerformance:
    """Realized metrics per window, the share of predictions labelled so far, and overall figures.

    Parameters
    ----------
    task
        ``"binary"``, ``"multiclass"`` or ``"regression"``.
    metrics
        The metric names, in column order.
    window
        How the predictions were cut into windows.
    table
        One row per window (see :meth:`to_df`).
    overall
        The figures over all windows together.
    unmatched_labels
        Labelled ids (after the last delivery won) that match no prediction: labels for
        predictions that were never logged, or for the wrong model.
    """

    task: Task
    metrics: tuple[str, ...]
    window: WindowSpec
    table: pl.DataFrame
    overall: Figures
    unmatched_labels: int

    def to_df(self) -> pl.DataFrame:
        """One row per window: ``window``, ``window_start``, ``window_end``, ``n_predictions``,
        ``n_labelled``, ``labelled_share`` and one column per metric (NaN without labels)."""
        return self.table.clone()

    def to_dict(self) -> dict[str, Any]:
        """Plain, JSON-ready form: times as ISO 8601 strings, NaN as None."""
        return {
            "task": self.task,
            "metrics": list(self.metrics),
            "window": {
                "every": self.window.every,
                "size": self.window.size,
                "timestamp": self.window.timestamp,
            },
            "unmatched_labels": self.unmatched_labels,
            "overall": self.overall.to_dict(),
            "windows": [
                {key: _json(value) for key, value in row.items()} for row in self.table.to_dicts()
            ],
        }


def realized_performance(
    predictions: object,
    labels: object = None,
    *,
    task: Task,
    y_true: str,
    y_pred: str | None = None,
    y_score: str | Sequence[str] | None = None,
    id: str | None = None,
    timestamp: str | None = None,
    window: str | int | WindowSpec | None = None,
    metrics: Sequence[str] | None = None,
    classes: Sequence[Any] | None = None,
    pos_label: Any = 1,
) -> RealizedPerformance:
    """Measure a model's performance per window on the predictions labelled so far.

    Labels are joined to predictions by ``id`` (a left join: every prediction is kept, labelled
    or not). When an id has several labels -- deliveries concatenated, a corrected label -- the
    LAST one in ``labels`` wins; rows of ``labels`` with a null label carry no label and are
    ignored. Labels whose id matches no prediction are counted in ``unmatched_labels``. When
    ``predictions`` holds a ``y_true`` column too, its labels count where ``labels`` has none.

    Empty ``predictions`` (with the named columns) give a result with zero windows and NaN
    overall metrics, so that a scheduled run over a quiet period does not fail. Time windows
    without predictions do not appear.

    Parameters
    ----------
    predictions
        Any input :func:`mlwarden.frames.to_polars` accepts, holding the prediction columns (and
        ``id``, ``timestamp``, maybe ``y_true`` for the rows already labelled).
    labels
        Optional, any such input with the ``id`` and ``y_true`` columns, for part of the rows.
    task
        ``"binary"``, ``"multiclass"`` or ``"regression"``.
    y_true
        The column of true labels (or values, for regression), in ``labels`` if given.
    y_pred
        The column of predicted labels (or values).
    y_score
        Binary: the column of the probability of ``pos_label``. Multiclass: one probability
        column per class, in the order of ``classes``.
    id
        The column identifying a prediction; required with ``labels``; must be unique.
    timestamp
        The column of prediction times, required for time windows.
    window
        A duration such as ``"1d"`` (with ``timestamp``), a number of rows, or a
        :class:`~mlwarden.windows.WindowSpec`; ``None`` makes one window of all predictions.
    metrics
        Metric names (see :func:`mlwarden.performance.metrics.available_metrics`). By default,
        every default metric of the task that the given columns allow: for classification
        accuracy, precision, recall and f1 with ``y_pred``, roc_auc, log_loss and
        calibration_error with ``y_score``; for regression mae, rmse, mape and r2.
    classes
        Multiclass: the class of each ``y_score`` column; labels must be among them.
    pos_label
        Binary: the positive class.

    Raises
    ------
    ParameterError
        Unknown task or metric, a window that cannot be built, ``labels`` without ``id``.
    InputError
        A missing column, duplicate ids, scores that are not probabilities, missing predictions
        or scores, a non-numeric regression column, or labels of the wrong kind.

    Example:
        >>> import polars as pl
        >>> predictions = pl.DataFrame({"id": range(6), "pred": [1, 0, 1, 1, 0, 0]})
        >>> # id 2 is labelled twice: the later label, 1, wins; ids 3 and 5 have no label yet.
        >>> labels = pl.DataFrame({"id": [0, 1, 2, 4, 2], "y": [1, 0, 0, 1, 1]})
        >>> result = realized_performance(
        ...     predictions, labels, task="binary", y_true="y", y_pred="pred", id="id", window=3
        ... )
        >>> result.to_df().select("window", "n_labelled", "labelled_share", "accuracy").rows()
        [(0, 3, 1.0, 1.0), (1, 1, 0.3333333333333333, 0.0)]
        >>> result.overall.labelled_share, result.overall.metrics["recall"]
        (0.6666666666666666, 0.6666666666666666)
    """
    task = parse_task(task)
    score_columns = _score_columns(y_score, task, classes)
    names = _metric_names(metrics, task, y_pred, score_columns)
    if labels is not None and id is None:
        raise ParameterError(
            "Labels are joined to predictions by id: pass id='<column>' naming the id column "
            "present in both.",
            parameter="id",
        )
    spec = None if window is None else WindowSpec.parse(window, timestamp=timestamp)
    frame = to_polars(predictions)
    time = spec.timestamp if spec is not None else timestamp
    needed = [c for c in (id, time, y_pred, *score_columns) if c is not None]
    if labels is None:
        needed.append(y_true)
    _require(frame, needed, "predictions")
    if id is not None:
        _check_unique(frame, id)

    frame = frame.with_columns(_label_expr(frame, y_true).alias(_LABEL))
    unmatched = 0
    if labels is not None:
        assert id is not None
        frame, unmatched = _join_labels(frame, to_polars(labels), id=id, y_true=y_true)

    _check_predictions(frame, task, y_pred, score_columns)
    _check_labels(frame, task, y_true, y_pred, classes, pos_label)

    if spec is None:
        spec = WindowSpec(size=max(frame.height, 1))
    windowed = assign_windows(frame, spec)
    missing_time = windowed[WINDOW].null_count()
    if missing_time:
        raise InputError(
            f"Column '{spec.timestamp}' has {missing_time} null timestamps; every prediction "
            f"needs a time to fall in a window of '{spec.every}'.",
            column=spec.timestamp,
        )

    def figures(rows: pl.DataFrame) -> Figures:
        return _figures(rows, names, task, y_pred, score_columns, classes, pos_label)

    records = []
    for part in windowed.sort(WINDOW, maintain_order=True).partition_by(WINDOW):
        found = figures(part)
        records.append(
            {
                WINDOW: part[WINDOW][0],
                WINDOW_START: part[WINDOW_START][0],
                WINDOW_END: part[WINDOW_END][0],
                "n_predictions": found.n_predictions,
                "n_labelled": found.n_labelled,
                "labelled_share": found.labelled_share,
                **found.metrics,
            }
        )
    table_schema: dict[str, pl.DataType | type[pl.DataType]] = {
        WINDOW: pl.Int64,
        WINDOW_START: windowed.schema[WINDOW_START],
        WINDOW_END: windowed.schema[WINDOW_END],
        "n_predictions": pl.Int64,
        "n_labelled": pl.Int64,
        "labelled_share": pl.Float64,
        **dict.fromkeys(names, pl.Float64),
    }
    table = pl.DataFrame(records, schema=table_schema, orient="row")
    return RealizedPerformance(task, names, spec, table, figures(windowed), unmatched)


def _score_columns(
    y_score: str | Sequence[str] | None, task: Task, classes: Sequence[Any] | None
) -> tuple[str, ...]:
    """The score columns, checked against the task and the classes."""
    if y_score is None:
        return ()
    if task == "regression":
        raise ParameterError(
            "Regression has no scores: pass the predicted values as y_pred.", parameter="y_score"
        )
    if task == "binary":
        if not isinstance(y_score, str):
            raise ParameterError(
                "For binary classification y_score is one column, the probability of "
                f"pos_label; got {y_score!r}.",
                parameter="y_score",
            )
        return (y_score,)
    columns = (y_score,) if isinstance(y_score, str) else tuple(y_score)
    if classes is None or len(classes) != len(columns):
        raise ParameterError(
            "For multiclass classification y_score is one probability column per class and "
            f"classes=[...] names the class of each; got {len(columns)} score columns and "
            f"classes={None if classes is None else list(classes)!r}.",
            parameter="classes",
        )
    return columns


def _metric_names(
    metrics: Sequence[str] | None, task: Task, y_pred: str | None, score_columns: tuple[str, ...]
) -> tuple[str, ...]:
    """The metrics to compute, each known for the task and computable from the given columns."""
    given = {"pred": y_pred is not None, "score": bool(score_columns)}
    if metrics is None:
        names = default_metrics(task, pred=given["pred"], score=given["score"])
        if not names:
            raise InputError(
                f"Performance for task='{task}' needs predictions: pass y_pred='<column>'"
                + (" or y_score='<column>'." if task != "regression" else ".")
            )
        return names
    if isinstance(metrics, str):
        metrics = [metrics]
    entries = [metric(name, task) for name in metrics]
    for needs, argument, what in (
        ("pred", "y_pred", "predicted labels or values"),
        ("score", "y_score", "probabilities"),
    ):
        lacking = [entry.name for entry in entries if entry.needs == needs and not given[needs]]
        if lacking:
            raise InputError(
                f"The metrics {', '.join(lacking)} need {what}: pass {argument}='<column>' naming "
                "the column that holds them."
            )
    return tuple(dict.fromkeys(metrics))


def _require(frame: pl.DataFrame, columns: list[str], what: str) -> None:
    for column in columns:
        if column not in frame.columns:
            raise InputError(
                f"The {what} lack a column: {unknown_column_message(column, frame.columns)}",
                column=column,
            )


def _check_unique(frame: pl.DataFrame, id: str) -> None:
    duplicated = frame.filter(pl.col(id).is_not_null() & pl.col(id).is_duplicated())
    if duplicated.height:
        example = duplicated[id][0]
        raise InputError(
            f"Column '{id}' must identify each prediction, but {duplicated[id].n_unique()} ids "
            f"occur more than once (e.g. {example!r}). Remove the duplicate predictions.",
            column=id,
        )


def _label_expr(frame: pl.DataFrame, y_true: str) -> pl.Expr:
    """The labels already in ``frame`` (NaN counts as no label), or nulls."""
    if y_true not in frame.columns:
        return pl.lit(None)
    return _no_nan(pl.col(y_true), frame.schema[y_true])


def _no_nan(expr: pl.Expr, dtype: pl.DataType) -> pl.Expr:
    if dtype.is_float():
        expr = expr.fill_nan(None)
    if isinstance(dtype, pl.Categorical | pl.Enum):
        expr = expr.cast(pl.String)
    return expr


def _join_labels(
    frame: pl.DataFrame,
    labels: pl.DataFrame,
    *,
    id: str,
    y_true: str,
) -> tuple[pl.DataFrame, int]:
    """Left-join the last label per id; return the frame and the count of unmatched label ids."""
    _require(labels, [id, y_true], "labels")
    labels = labels.select(
        pl.col(id), _no_nan(pl.col(y_true), labels.schema[y_true]).alias(_NEW_LABEL)
    ).filter(pl.col(_NEW_LABEL).is_not_null())
    labels = labels.unique(subset=[id], keep="last", maintain_order=True)
    earlier, later = frame.schema[_LABEL], labels.schema[_NEW_LABEL]
    if earlier != pl.Null and _kind(earlier) != _kind(later):
        raise InputError(
            f"Column '{y_true}' holds {later} in the labels but {earlier} in the predictions; "
            "labels must be of one kind (numbers or text).",
            column=y_true,
        )
    left, right = frame.schema[id], labels.schema[id]
    if left != right:
        if left.is_integer() and right.is_integer():
            frame = frame.with_columns(pl.col(id).cast(pl.Int64))
            labels = labels.with_columns(pl.col(id).cast(pl.Int64))
        else:
            raise InputError(
                f"Column '{id}' holds {left} in the predictions but {right} in the labels; "
                "ids must be of one type to be matched. Cast one of them.",
                column=id,
            )
    unmatched = labels.join(frame.select(id), on=id, how="anti").height
    joined = frame.join(labels, on=id, how="left", maintain_order="left")
    label = pl.coalesce(_NEW_LABEL, _LABEL).alias(_LABEL)
    return joined.with_columns(label).drop(_NEW_LABEL), unmatched


def _check_predictions(
    frame: pl.DataFrame, task: Task, y_pred: str | None, score_columns: tuple[str, ...]
) -> None:
    """Predictions and scores present in every row; scores probabilities; regression numeric."""
    for column in (*([y_pred] if y_pred else []), *score_columns):
        dtype = frame.schema[column]
        numeric = dtype.is_numeric() and dtype != pl.Boolean
        if (column in score_columns or task == "regression") and not numeric:
            expected = "probabilities in [0, 1]" if column in score_columns else "numbers"
            raise InputError(
                f"Column '{column}' must hold {expected} for task='{task}'; it holds {dtype}.",
                column=column,
            )
        missing = _no_nan(pl.col(column), dtype).is_null()
        n_missing = frame.select(missing.sum()).item()
        if n_missing:
            raise InputError(
                f"Column '{column}' has {n_missing} missing values (null or NaN); every "
                "prediction needs one. Drop or fill those rows first.",
                column=column,
            )
    for column in score_columns:
        outside = frame.filter((pl.col(column) < 0) | (pl.col(column) > 1))
        if outside.height:
            raise InputError(
                f"Column '{column}' must hold probabilities in [0, 1] for task='{task}'; "
                f"{outside.height} values are outside (e.g. {outside[column][0]!r}).",
                column=column,
            )
    if task == "multiclass" and score_columns:
        total = pl.sum_horizontal(score_columns)
        off = frame.filter((total - 1).abs() > SCORE_SUM_TOLERANCE).select(total)
        if off.height:
            raise InputError(
                f"Columns {', '.join(score_columns)} must hold probabilities over the classes, "
                f"summing to 1 in each row; {off.height} rows do not (e.g. one sums to "
                f"{off.item(0, 0):.3g}). Pass one column per class.",
                column=score_columns[0],
            )


def _check_labels(
    frame: pl.DataFrame,
    task: Task,
    y_true: str,
    y_pred: str | None,
    classes: Sequence[Any] | None,
    pos_label: Any,
) -> None:
    """Labels of the kind the task and the predictions expect."""
    label_type = frame.schema[_LABEL]
    if label_type == pl.Null:
        return
    if task == "regression":
        if not label_type.is_numeric() or label_type == pl.Boolean:
            raise InputError(
                f"Column '{y_true}' must hold numbers for task='regression'; it holds "
                f"{label_type}.",
                column=y_true,
            )
        return
    if y_pred is not None and _kind(label_type) != _kind(frame.schema[y_pred]):
        raise InputError(
            f"Columns '{y_true}' ({label_type}) and '{y_pred}' ({frame.schema[y_pred]}) must "
            "hold the same kind of labels (both numbers or both text).",
            column=y_true,
        )
    seen = _distinct(frame, _LABEL, y_pred)
    if task == "binary":
        if _kind(label_type) == "text" and not isinstance(pos_label, str):
            raise ParameterError(
                f"Labels in '{y_true}' are text ({_show(seen)}) but pos_label={pos_label!r}; pass "
                "pos_label='<positive class>'.",
                parameter="pos_label",
            )
        if len(seen) > 2:
            raise InputError(
                f"Column '{y_true}' (with the predictions) holds {len(seen)} classes "
                f"({_show(seen)}) but task='binary' allows 2; use task='multiclass'.",
                column=y_true,
            )
        if len(seen) == 2 and pos_label not in seen:
            raise ParameterError(
                f"pos_label={pos_label!r} is not one of the labels ({_show(seen)}); pass the "
                "positive class as pos_label.",
                parameter="pos_label",
            )
    elif classes is not None:
        unknown = [value for value in seen if value not in set(classes)]
        if unknown:
            raise InputError(
                f"Column '{y_true}' or the predictions hold {_show(unknown)}, not among "
                f"classes={list(classes)!r}.",
                column=y_true,
            )


def _kind(dtype: pl.DataType) -> str:
    return "number" if dtype.is_numeric() or dtype == pl.Boolean else "text"


def _distinct(frame: pl.DataFrame, label: str, y_pred: str | None) -> list[Any]:
    """The distinct non-null labels and predicted labels (vectorized, on unique values)."""
    values = set(frame[label].drop_nulls().unique().to_list())
    if y_pred is not None:
        predicted = frame[y_pred]
        if isinstance(predicted.dtype, pl.Categorical | pl.Enum):
            predicted = predicted.cast(pl.String)
        values |= set(predicted.drop_nulls().unique().to_list())
    return sorted(values, key=repr)


def _show(values: Sequence[Any]) -> str:
    shown = ", ".join(repr(v) for v in values[:_EXAMPLES])
    return shown + (", ..." if len(values) > _EXAMPLES else "")


def _figures(
    rows: pl.DataFrame,
    names: tuple[str, ...],
    task: Task,
    y_pred: str | None,
    score_columns: tuple[str, ...],
    classes: Sequence[Any] | None,
    pos_label: Any,
) -> Figures:
    """Counts over ``rows`` and the metrics over its labelled rows."""
    labelled = rows.filter(pl.col(_LABEL).is_not_null())
    truth = _array(labelled[_LABEL])
    pred = None if y_pred is None else _array(labelled[y_pred])
    score: npt.NDArray[np.float64] | None = None
    if score_columns:
        score = labelled.select(score_columns).to_numpy().astype(np.float64)
        if task == "binary":
            score = score[:, 0]
    values = {
        name: compute(name, truth, pred, score, task=task, classes=classes, pos_label=pos_label)
        for name in names
    }
    share = labelled.height / rows.height if rows.height else float("nan")
    return Figures(rows.height, labelled.height, share, values)


def _array(series: pl.Series) -> npt.NDArray[Any]:
    if isinstance(series.dtype, pl.Categorical | pl.Enum):
        series = series.cast(pl.String)
    return series.to_numpy()


def _json(value: Any) -> Any:
    if isinstance(value, float) and math.isnan(value):
        return None
    if isinstance(value, datetime | date):
        return value.isoformat()
    return value
