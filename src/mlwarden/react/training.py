"""The suggested training set of a retraining: which rows to learn from, and how much each counts.

What to retrain on depends on why the model degraded:

* **input drift** (the inputs moved, the relation to the label did not): the version's reference
  rows, reweighted toward the slices that grew. A row of a grown slice gets the weight
  ``share_current / share_reference`` (the largest one when it is in several), every other row
  1, and the weights are scaled to a mean of 1 — the reference then looks like today's inputs,
  with labels that are still right.
* **concept drift** (the relation changed): the labelled rows of the most recent labelled
  windows, joined with their latest labels, as many as the reference had — yesterday's labels
  are what is wrong.
* **data quality** or **unknown**: the reference rows as they are; faulty rows are no lesson.

Every training set has a ``sample_weight`` column (1 where nothing is reweighted), so a training
command reads the same shape whatever the diagnosis.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final, Literal

import polars as pl

from mlwarden.exceptions import InputError, NotFoundError, ParameterError

if TYPE_CHECKING:
    from collections.abc import Sequence

    from mlwarden.diagnosis.slices import Slice
    from mlwarden.store.metadata import Store, VersionRecord
    from mlwarden.store.rowlog import RowLog

__all__ = ["SHIFTS", "WEIGHT", "TrainingSet", "suggest_training_set"]

SHIFTS: Final = ("input_drift", "concept_drift", "data_quality", "unknown")
WEIGHT: Final = "sample_weight"
_SERVICE: Final = ("_model", "_date", "_model_version", "_ingested_at", "_batch_id")


@dataclass(frozen=True)
class TrainingSet:
    """A training set written for a retraining.

    Attributes:
        path: the Parquet file.
        rows: its rows.
        shift: the diagnosis it follows (``input_drift``, ``concept_drift``, ...).
        source: ``reference`` (the version's reference rows) or ``labelled_windows``.
        version: the model version whose reference or evaluators were used.
        slices: per grown slice: its description, share in current and reference rows, the
            weight its rows got, and how many reference rows it holds.
        since: for ``labelled_windows``, the start of the oldest window used.
        notes: what could not be done as the diagnosis asked, and why.
    """

    path: Path
    rows: int
    shift: str
    source: Literal["reference", "labelled_windows"]
    version: str
    slices: tuple[dict[str, Any], ...] = ()
    since: datetime | None = None
    notes: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return {
            "path": str(self.path),
            "rows": self.rows,
            "shift": self.shift,
            "source": self.source,
            "version": self.version,
            "slices": list(self.slices),
            "since": None if self.since is None else self.since.isoformat(),
            "notes": list(self.notes),
        }


def suggest_training_set(
    store: Store,
    rowlog: RowLog,
    model: str,
    *,
    shift: str,
    grown: Sequence[Slice],
    out: Path,
    now: datetime | None = None,
    version: str | None = None,
) -> TrainingSet:
    """Write the suggested training set of ``model`` for a shift of kind ``shift`` to ``out``
    (Parquet, written atomically); see the module documentation for what goes in.

    Parameters:
        shift: ``input_drift``, ``concept_drift``, ``data_quality`` or ``unknown``.
        grown: the slices whose share grew (input drift); ignored for the other shifts.
        out: the Parquet file to write.
        now: labelled windows ending after it are not used (default: now).
        version: the version (or alias) whose reference is used; default ``production``, or
            the newest version when the model has no such alias.

    Example:
        >>> import pathlib, tempfile
        >>> from mlwarden.datasets import production_line
        >>> from mlwarden.registry import Registry
        >>> from mlwarden.store.metadata import Store
        >>> from mlwarden.store.rowlog import RowLog
        >>> tmp = pathlib.Path(tempfile.mkdtemp())
        >>> store = Store("sqlite://")
        >>> _ = Registry(store).register("m", "1", production_line(3_000, seed=1))
        >>> ts = suggest_training_set(
        ...     store, RowLog(tmp / "log"), "m", shift="unknown", grown=[], out=tmp / "t.parquet"
        ... )
        >>> ts.source, ts.rows, pl.read_parquet(ts.path)["sample_weight"].unique().to_list()
        ('reference', 3000, [1.0])
    """
    if shift not in SHIFTS:
        raise ParameterError(
            f"The 'shift' parameter of suggest_training_set must be one of {', '.join(SHIFTS)}; "
            f"got {shift!r}.",
            parameter="shift",
        )
    now = now or datetime.now(UTC)
    record = _version(store, model, version)
    notes: list[str] = []
    if shift == "concept_drift":
        found = _labelled_rows(store, rowlog, record, now, notes)
        if found is not None:
            frame, since = found
            frame = frame.with_columns(pl.lit(1.0).alias(WEIGHT))
            _write(frame, out)
            return TrainingSet(
                Path(out),
                frame.height,
                shift,
                "labelled_windows",
                record.version,
                since=since,
                notes=tuple(notes),
            )
    reference = _reference_rows(store, record)
    slices: list[dict[str, Any]] = []
    weight = pl.lit(1.0)
    if shift == "input_drift":
        weight = _weights(reference, grown, slices, notes)
    frame = reference.with_columns(weight.cast(pl.Float64).alias(WEIGHT))
    frame = frame.with_columns(pl.col(WEIGHT) / pl.col(WEIGHT).mean())
    _write(frame, out)
    return TrainingSet(
        Path(out),
        frame.height,
        shift,
        "reference",
        record.version,
        slices=tuple(slices),
        notes=tuple(notes),
    )


def _version(store: Store, model: str, version: str | None) -> VersionRecord:
    if version is not None:
        return store.resolve(model, version)
    if "production" in store.aliases(model):
        return store.resolve(model, "production")
    versions = store.versions(model)
    if not versions:
        raise NotFoundError(f"Model '{model}' has no version.", what="version")
    return versions[-1]


def _reference_rows(store: Store, record: VersionRecord) -> pl.DataFrame:
    from mlwarden.registry import Registry

    rows = Registry(store).reference_rows(record.model, record.version)
    if rows is None:
        raise InputError(
            f"Version '{record.version}' of '{record.model}' was registered without its "
            "reference rows, so no training set can be suggested from them; register it again."
        )
    return rows


def _weights(
    reference: pl.DataFrame,
    grown: Sequence[Slice],
    slices: list[dict[str, Any]],
    notes: list[str],
) -> pl.Expr:
    """Per reference row, the largest ``share_current / share_reference`` of the grown slices
    it is in (1 outside them); the slices' figures are appended to ``slices``."""
    ratios: list[pl.Expr] = []
    for s in grown:  # a handful of slices, each one vectorized expression
        expr = s.expr()
        if expr is None:
            notes.append(f"The slice '{s.description}' names no value; it is not reweighted.")
            continue
        try:
            inside = reference.select(expr.fill_null(False).alias("in"))["in"]
        except pl.exceptions.PolarsError as exc:
            notes.append(f"The slice '{s.description}' cannot be found in the reference: {exc}")
            continue
        count = int(inside.sum())
        share_reference = count / reference.height if reference.height else 0.0
        if count == 0:
            notes.append(f"The reference has no rows of the slice '{s.description}'.")
            continue
        ratio = s.share / share_reference
        slices.append(
            {
                "description": s.description,
                "share_current": s.share,
                "share_reference": share_reference,
                "weight": ratio,
                "reference_rows": count,
            }
        )
        if ratio > 1.0:
            ratios.append(pl.when(expr.fill_null(False)).then(pl.lit(ratio)).otherwise(1.0))
    if not ratios:
        return pl.lit(1.0)
    return pl.max_horizontal(ratios)


def _labelled_rows(
    store: Store, rowlog: RowLog, record: VersionRecord, now: datetime, notes: list[str]
) -> tuple[pl.DataFrame, datetime] | None:
    """The labelled rows of the newest labelled windows (as many rows as the reference had),
    with their latest labels; None, with a note, when there are none."""
    evaluators = record.meta.get("evaluators") or {}
    target = evaluators.get("target")
    id_column = evaluators.get("id") or "id"
    timestamp = record.meta.get("timestamp") or "timestamp"
    if not target:
        notes.append(
            f"Version '{record.version}' has no target column: no labelled rows to train on; "
            "the reference is used."
        )
        return None
    from mlwarden.registry import MAX_REFERENCE_ROWS

    wanted = min(int(record.meta.get("rows") or MAX_REFERENCE_ROWS), MAX_REFERENCE_ROWS)
    windows = pl.DataFrame(
        [(w.start, w.end, w.n_labelled) for w in store.windows(record.model)],
        schema={
            "start": pl.Datetime("us", "UTC"),
            "end": pl.Datetime("us", "UTC"),
            "n_labelled": pl.Int64,
        },
        orient="row",
    )
    chosen = (
        windows.filter((pl.col("n_labelled") > 0) & (pl.col("end") <= now))
        .sort("start", descending=True)
        .filter((pl.col("n_labelled").cum_sum() - pl.col("n_labelled")) < wanted)
    )
    if chosen.height == 0:
        notes.append("No evaluated window has labels yet; the reference is used.")
        return None
    since, until = chosen["start"].min(), chosen["end"].max()
    assert isinstance(since, datetime)
    assert isinstance(until, datetime)
    try:
        rows = rowlog.joined(
            record.model, start=since, end=until, id=id_column, timestamp=timestamp
        )
    except InputError as exc:
        notes.append(
            f"The logged rows cannot be joined to their labels ({exc}); the reference is used."
        )
        return None
    label = f"{target}_label"
    if label in rows.columns:  # the rows carried the column too: the label wins where known
        rows = rows.with_columns(pl.coalesce(label, target).alias(target))
    if target not in rows.columns:
        notes.append(f"No label '{target}' arrived for the recent rows; the reference is used.")
        return None
    drop = [c for c in rows.columns if c in _SERVICE or c.endswith("_label")]
    rows = rows.drop(drop).filter(pl.col(target).is_not_null())
    if rows.height == 0:
        notes.append(f"No label '{target}' arrived for the recent rows; the reference is used.")
        return None
    if timestamp in rows.columns:
        rows = rows.sort(timestamp)
    return rows.tail(wanted), since


def _write(frame: pl.DataFrame, out: Path) -> None:
    target = Path(out)
    target.parent.mkdir(parents=True, exist_ok=True)
    temporary = target.with_name(f".{target.name}.tmp")
    frame.write_parquet(temporary)
    temporary.replace(target)
