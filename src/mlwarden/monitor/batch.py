"""Logged calls as queued chunks, and runs of chunks as Arrow batches.

The work is split between two threads so that the caller pays as little as possible:

* on the caller's thread, :func:`rows_chunk` and :func:`labels_chunk` take a *snapshot* of what
  was logged -- the cheapest copy that a later change to the caller's objects cannot alter (a
  NumPy copy, a shallow copy of a list or a dict; Polars and Arrow data are immutable and are
  kept as they are) -- and check the lengths. No column is converted there.
* on the sender's thread, :func:`assemble` merges runs of chunks that have the same columns in
  their raw form first (one ``np.concatenate`` of a hundred small matrices, one list of a
  thousand row dicts) and converts each run to Arrow once, so that the fixed cost of a column
  conversion is paid per batch, not per call.

A chunk that cannot be converted is set apart with its error; the other chunks of the batch are
not affected. Event times given by the caller (datetimes, naive or aware, dates, ISO 8601 text,
epoch numbers) are converted to UTC there too, by :func:`mlwarden.frames.to_utc`, so that every
batch leaves with the times the row log stores.
"""

from __future__ import annotations

import itertools
from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import TYPE_CHECKING, Any, Final, Literal, cast, overload

import numpy as np
import polars as pl
import pyarrow as pa

from mlwarden.exceptions import InputError
from mlwarden.frames import to_utc

if TYPE_CHECKING:
    from collections.abc import Iterator

__all__ = [
    "RESERVED",
    "Batch",
    "Chunk",
    "Kind",
    "RowIds",
    "assemble",
    "labels_chunk",
    "rows_chunk",
    "single_row",
]

Kind = Literal["rows", "labels"]

TIMESTAMP_TYPE: Final = pa.timestamp("us", tz="UTC")
# Columns the row log adds to every row or derives from its directories (those of
# mlwarden.store.rowlog, which this module does not import: it loads DuckDB and SQLAlchemy; a test
# keeps the two equal). A batch carrying one is refused as a whole, so the call is refused first.
RESERVED: Final = frozenset({"_model", "_date", "_model_version", "_ingested_at", "_batch_id"})
# Column-like values; anything else in a dict of features makes it a single row.
_COLUMN_TYPES: Final = (list, tuple, np.ndarray, pl.Series, pa.Array, pa.ChunkedArray)
_SCALARS: Final = (int, float, str, np.generic)


class RowIds(Sequence[str]):
    """The ids that a :class:`~mlwarden.monitor.Monitor` generated for the rows of one call.

    Ids are ``"<base>-<row>"``, where the base joins a random prefix drawn once per monitor
    (64 bits from a UUID4) with the number of the call, so ids are unique across calls,
    processes and hosts without paying for a UUID per row. The sequence is lazy: an id becomes
    a string only when it is read, so ignoring the ids costs nothing.

    Example:
        >>> ids = RowIds("9f0c6a1e5b2d4c33-7", 3)
        >>> list(ids)
        ['9f0c6a1e5b2d4c33-7-0', '9f0c6a1e5b2d4c33-7-1', '9f0c6a1e5b2d4c33-7-2']
        >>> ids[-1], len(ids), ids == list(ids)
        ('9f0c6a1e5b2d4c33-7-2', 3, True)
    """

    __slots__ = ("base", "n")

    def __init__(self, base: str, n: int) -> None:
        self.base = base
        self.n = n

    def __len__(self) -> int:
        return self.n

    @overload
    def __getitem__(self, index: int) -> str: ...

    @overload
    def __getitem__(self, index: slice) -> list[str]: ...

    def __getitem__(self, index: int | slice) -> str | list[str]:
        if isinstance(index, slice):
            return [f"{self.base}-{i}" for i in range(self.n)[index]]
        if index < 0:
            index += self.n
        if not 0 <= index < self.n:
            raise IndexError("row id index out of range")
        return f"{self.base}-{index}"

    def __iter__(self) -> Iterator[str]:
        base = self.base
        return (f"{base}-{i}" for i in range(self.n))

    def __eq__(self, other: object) -> bool:
        if isinstance(other, RowIds):
            return (self.base, self.n) == (other.base, other.n)
        if isinstance(other, Sequence) and not isinstance(other, str | bytes):
            return list(self) == list(other)
        return NotImplemented

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        shown = ", ".join(repr(i) for i in self[:3])
        more = ", ..." if self.n > 3 else ""
        return f"RowIds([{shown}{more}], n={self.n})"


class Now:
    """The time of one call, in microseconds since the epoch (UTC), for each of its rows."""

    __slots__ = ("micros", "n")

    def __init__(self, micros: int, n: int) -> None:
        self.micros = micros
        self.n = n

    def __len__(self) -> int:
        return self.n


class Repeat:
    """One value given for every row of a call (a single timestamp for a batch)."""

    __slots__ = ("n", "value")

    def __init__(self, value: object, n: int) -> None:
        self.value = value
        self.n = n

    def __len__(self) -> int:
        return self.n


class Matrix:
    """A 2-D NumPy snapshot (rows x features) with the names of its columns."""

    __slots__ = ("names", "values")

    def __init__(self, names: tuple[str, ...], values: Any) -> None:
        self.names = names
        self.values = values


class Records:
    """Rows as dicts (one call may hold one or many)."""

    __slots__ = ("rows",)

    def __init__(self, rows: list[dict[Any, Any]]) -> None:
        self.rows = rows


class RowTuples:
    """Single rows, accumulated by the queue's last chunk as they are logged.

    Most online serving logs one row per call. Each such call adds a tuple of its values (and
    its call number, time and prediction) to the open chunk instead of queuing objects of its
    own: a tuple of numbers costs the caller a fraction of a microsecond, leaves the garbage
    collector's lists at its first pass, and a thousand of them become Arrow columns at once.
    """

    __slots__ = ("calls", "id_name", "keys", "micros", "predictions", "prefix", "rows", "ts_name")

    def __init__(
        self,
        keys: tuple[str, ...],
        with_predictions: bool,
        *,
        prefix: str,
        id_name: str,
        timestamp_name: str,
    ) -> None:
        self.keys = keys
        self.prefix = prefix
        self.id_name = id_name
        self.ts_name = timestamp_name
        self.rows: list[tuple[Any, ...]] = []
        self.calls: list[int] = []
        self.micros: list[int] = []
        self.predictions: list[Any] | None = [] if with_predictions else None

    def add(self, values: tuple[Any, ...], call: int, micros: int, prediction: object) -> None:
        self.rows.append(values)
        self.calls.append(call)
        self.micros.append(micros)
        if self.predictions is not None:
            self.predictions.append(prediction)


class Chunk:
    """One logged call, as queued: a body of features, and extra columns (predictions, ids,
    timestamps, labels) as *parts* (see :func:`_part`) that are merged column by column.

    ``names`` are the body's columns (the first row's keys for records); chunks of one kind
    whose body type, ``names`` and extra columns agree are merged before conversion.
    ``run_ref`` names the pipeline run that made the chunk's features; a batch holds chunks of
    one run only.
    """

    __slots__ = ("body", "enqueued", "extra", "kind", "n", "names", "run_ref", "seq")

    def __init__(
        self,
        kind: Kind,
        n: int,
        body: object,
        names: tuple[str, ...],
        extra: dict[str, object],
    ) -> None:
        self.kind = kind
        self.n = n
        self.body = body
        self.names = names
        self.extra = extra
        self.run_ref = ""
        self.seq = 0
        self.enqueued = 0.0

    def key(self) -> tuple[object, ...]:
        return (self.kind, self.run_ref, type(self.body), self.names, tuple(self.extra))


@dataclass(frozen=True, slots=True)
class Batch:
    """A batch ready to send: one Arrow table, its idempotency key and where it goes, and the
    pipeline run that made its features (``""`` for none)."""

    kind: Kind
    model: str
    version: str
    batch_id: str
    table: pa.Table
    timestamp: str
    id: str
    run_ref: str = ""

    @property
    def rows(self) -> int:
        return int(self.table.num_rows)


# -- the caller's side -------------------------------------------------------------------------


def single_row(
    features: object,
    predictions: object,
    feature_names: tuple[str, ...] | None,
    id_name: str,
    timestamp_name: str,
) -> tuple[tuple[str, ...], tuple[Any, ...], bool, object] | None:
    """The column names, values, whether there is a prediction, and the prediction of a call
    that logs one plain row (a dict of scalars or a 1-row numeric NumPy array, with at most a
    scalar prediction); None for any other call, which takes the general path."""
    if type(features) is dict:
        if not features:
            return None
        first = next(iter(features.values()))
        if isinstance(first, _COLUMN_TYPES) or _is_pandas(first, "Series"):
            return None
        columns: Collection[str] = features
        keys = tuple(features)
        values = tuple(features.values())
    elif (
        type(features) is np.ndarray
        and features.dtype.kind in "biuf"
        and (features.ndim == 1 or (features.ndim == 2 and features.shape[0] == 1))
    ):
        values = tuple(features.ravel().tolist())
        keys = columns = feature_names or _default_names(len(values))
        if len(keys) != len(values):
            return None  # the general path says what is wrong
    else:
        return None
    if predictions is None:
        with_prediction, prediction = False, None
    elif isinstance(predictions, _SCALARS):
        with_prediction, prediction = True, predictions
    elif isinstance(predictions, np.ndarray) and predictions.size == 1 and predictions.ndim <= 1:
        with_prediction, prediction = True, predictions.item()
    else:
        return None
    if id_name in columns or timestamp_name in columns:
        return None
    for taken in RESERVED:
        if taken in columns:
            return None
    return keys, values, with_prediction, prediction


def rows_chunk(
    features: object,
    predictions: object,
    ids: object,
    timestamps: object,
    *,
    id_name: str,
    timestamp_name: str,
    feature_names: tuple[str, ...] | None,
    id_base: str,
    micros: int,
) -> tuple[Chunk, RowIds | None]:
    """Snapshot one call of ``Monitor.log``; return the chunk and the ids generated, if any.

    Raises:
        InputError: features of an unsupported type, a reserved column, or predictions, ids or
            timestamps whose length does not match the number of rows.
    """
    body, columns, n = _body(features, feature_names)
    for taken in RESERVED:
        if taken in columns:
            raise InputError(
                f"Column '{taken}' is reserved by the row log; rename it before logging, e.g. "
                f"{{'{taken[1:]}': ...}}.",
                column=taken,
            )
    extra: dict[str, object] = {}
    if predictions is not None:
        extra.update(_predictions(predictions, n))
    generated = None
    if ids is not None:
        extra[id_name] = _part(ids, n, "ids", broadcast=False)
    elif id_name not in columns:
        generated = RowIds(id_base, n)
        extra[id_name] = generated
    if timestamps is not None:
        extra[timestamp_name] = _part(timestamps, n, "timestamps", broadcast=True)
    elif timestamp_name not in columns:
        extra[timestamp_name] = Now(micros, n)
    # Records merge whatever their keys (see _records); other bodies only with the same columns.
    names = () if isinstance(body, Records) else tuple(columns)
    return Chunk("rows", n, body, names, extra), generated


def labels_chunk(
    ids: object,
    labels: object,
    timestamps: object,
    *,
    id_name: str,
    timestamp_name: str,
    micros: int,
) -> Chunk:
    """Snapshot one call of ``Monitor.log_labels``.

    Raises:
        InputError: ids or labels of an unsupported type, or of different lengths.
    """
    id_part = _part(ids, None, "ids", broadcast=False)
    n = len(id_part)  # type: ignore[arg-type]
    extra: dict[str, object] = {id_name: id_part}
    if isinstance(labels, dict):
        for name, value in labels.items():
            extra[str(name)] = _part(value, n, f"labels[{name!r}]", broadcast=False)
    elif isinstance(labels, pl.DataFrame):
        _check_length(labels.height, n, "labels")
        extra.update({s.name: s for s in labels.get_columns()})
    elif _is_pandas(labels, "DataFrame"):
        extra.update(_pandas_columns(labels, n, "labels"))
    else:
        extra["label"] = _part(labels, n, "labels", broadcast=False)
    if timestamps is not None:
        extra[timestamp_name] = _part(timestamps, n, "timestamps", broadcast=True)
    elif timestamp_name not in extra:
        extra[timestamp_name] = Now(micros, n)
    return Chunk("labels", n, None, (), extra)


def _body(
    features: object, feature_names: tuple[str, ...] | None
) -> tuple[object, Collection[str], int]:
    """The snapshot of ``features``, its column names (a tuple, or for rows the first row's
    dict, whose keys are looked up faster) and its number of rows."""
    if isinstance(features, dict):
        if not features:
            raise InputError("The features are an empty dict; expected columns or one row.")
        first = next(iter(features.values()))
        if not isinstance(first, _COLUMN_TYPES) and not _is_pandas(first, "Series"):
            row = dict(features)
            return Records([row]), row, 1
        columns: dict[str, object] = {}
        n = -1
        for name, value in features.items():
            part = _part(value, None if n < 0 else n, f"features[{name!r}]", broadcast=False)
            n = len(part)  # type: ignore[arg-type]
            columns[str(name)] = part
        return columns, tuple(columns), n
    if isinstance(features, pl.DataFrame):
        return features, tuple(features.columns), features.height
    if isinstance(features, np.ndarray):
        values = features.reshape(1, -1) if features.ndim == 1 else features
        if values.ndim != 2:
            raise InputError(
                f"A NumPy array of features must be 1-D (one row) or 2-D (rows x features); "
                f"got shape {features.shape}."
            )
        names = feature_names or _default_names(values.shape[1])
        if len(names) != values.shape[1]:
            raise InputError(
                f"The array has {values.shape[1]} feature columns but feature_names has "
                f"{len(names)} names."
            )
        return Matrix(names, values.copy()), names, values.shape[0]
    if _is_pandas(features, "DataFrame"):
        names = tuple(str(c) for c in features.columns.tolist())  # type: ignore[attr-defined]
        values = features.to_numpy(copy=True)  # type: ignore[attr-defined]
        n = len(values)
        if values.dtype.kind in "biuf":
            return Matrix(names, values), names, n
        # Mixed or non-numeric columns: a deep copy, converted on the sender's thread.
        return features.copy(deep=True), names, n  # type: ignore[attr-defined]
    if isinstance(features, pa.Table):
        return features, tuple(features.column_names), features.num_rows
    if isinstance(features, pa.RecordBatch):
        table = pa.Table.from_batches([features])
        return table, tuple(table.column_names), table.num_rows
    if isinstance(features, list | tuple) and features and isinstance(features[0], dict):
        rows = [dict(row) for row in features]
        return Records(rows), rows[0], len(rows)
    raise InputError(
        "The features must be a dict (of columns, or one row), a list of dicts, a polars or "
        f"pandas DataFrame, an Arrow table or a NumPy array; got {type(features).__name__}."
    )


_NAMES: dict[int, tuple[str, ...]] = {}


def _default_names(k: int) -> tuple[str, ...]:
    """``x0, x1, ...``: the names of the columns of a NumPy array of features."""
    names = _NAMES.get(k)
    if names is None:
        names = _NAMES[k] = tuple(f"x{j}" for j in range(k))
    return names


def _predictions(predictions: object, n: int) -> dict[str, object]:
    """Prediction columns: ``prediction``, or ``prediction_<j>`` for each column of a 2-D
    array, or the names of a dict or frame."""
    if isinstance(predictions, _SCALARS) and n == 1:
        return {"prediction": [predictions]}
    if isinstance(predictions, dict):
        return {
            str(name): _part(value, n, f"predictions[{name!r}]", broadcast=False)
            for name, value in predictions.items()
        }
    if isinstance(predictions, np.ndarray) and predictions.ndim == 2:
        _check_length(predictions.shape[0], n, "predictions")
        if predictions.shape[1] == 1:
            return {"prediction": predictions[:, 0].copy()}
        return {f"prediction_{j}": predictions[:, j].copy() for j in range(predictions.shape[1])}
    if isinstance(predictions, pl.DataFrame):
        _check_length(predictions.height, n, "predictions")
        return {s.name: s for s in predictions.get_columns()}
    if _is_pandas(predictions, "DataFrame"):
        return _pandas_columns(predictions, n, "predictions")
    return {"prediction": _part(predictions, n, "predictions", broadcast=False)}


def _pandas_columns(frame: Any, n: int, what: str) -> dict[str, object]:
    _check_length(len(frame), n, what)
    return {str(name): _part(frame[name], n, f"{what}[{name!r}]", False) for name in frame.columns}


def _part(value: object, n: int | None, what: str, broadcast: bool) -> object:
    """A snapshot of one column of ``n`` values (``n`` None: any length).

    NumPy arrays are copied, lists and tuples copied shallowly, numeric pandas Series taken as
    NumPy copies (others deep-copied), Polars Series and Arrow arrays kept (they are immutable).
    A scalar stands for one row, or for every row when ``broadcast``.
    """
    part: object
    if isinstance(value, np.ndarray):
        if value.ndim == 0:
            part = [value.item()]
        elif value.ndim == 1:
            part = value.copy()
        else:
            raise InputError(f"The {what} must be one-dimensional; got shape {value.shape}.")
    elif isinstance(value, list):
        part = value.copy()
    elif isinstance(value, tuple):
        part = list(value)
    elif isinstance(value, RowIds | pl.Series | pa.Array | pa.ChunkedArray):
        part = value
    elif _is_pandas(value, "Series") or _is_pandas(value, "Index"):
        dtype = value.dtype  # type: ignore[attr-defined]
        if isinstance(dtype, np.dtype) and dtype.kind in "biuf":
            part = value.to_numpy(copy=True)  # type: ignore[attr-defined]
        else:
            part = _PandasColumn(value)
    elif isinstance(value, str | bytes | datetime | date) or not isinstance(value, Iterable):
        if n is None or n == 1:
            return [value]
        if broadcast:
            return Repeat(value, n)
        raise InputError(
            f"The {what} is a single value, {value!r}, for {n} rows; expected one value per row."
        )
    else:
        part = list(value)
    if n is not None:
        _check_length(len(part), n, what)  # type: ignore[arg-type]
    return part


class _PandasColumn:
    """A non-numeric pandas Series (or Index), deep-copied; converted with its own rules
    (time zones, nullable dtypes, categories) on the sender's thread."""

    __slots__ = ("series",)

    def __init__(self, value: Any) -> None:
        import pandas as pd

        self.series = pd.Series(value, copy=True).reset_index(drop=True)

    def __len__(self) -> int:
        return len(self.series)


def _check_length(length: int, n: int, what: str) -> None:
    if length != n:
        raise InputError(f"The {what} has {length} values for {n} rows; expected {n}.")


def _is_pandas(value: object, name: str) -> bool:
    """Tell whether ``value`` is a pandas ``name`` (DataFrame, Series, Index) without importing
    pandas."""
    kind = type(value)
    return kind.__module__.startswith("pandas") and any(
        cls.__name__ == name for cls in kind.__mro__
    )


# -- the sender's side -------------------------------------------------------------------------


def assemble(
    chunks: Sequence[Chunk], timestamp: str | None = None
) -> tuple[list[pa.Table], list[tuple[Chunk, Exception]]]:
    """Convert ``chunks`` (all of one kind) to as few Arrow tables as their columns allow.

    Runs of consecutive chunks with the same columns are merged in their raw form and
    converted once; the runs' tables are then concatenated (columns missing from some as
    nulls, numbers widened). The ``timestamp`` column, where a table has it, becomes UTC
    timestamps. Returns the tables and the chunks that could not be converted, each with its
    error (times that cannot be read as times among them).
    """
    tables: list[pa.Table] = []
    failed: list[tuple[Chunk, Exception]] = []
    for _, run in itertools.groupby(chunks, key=Chunk.key):
        group = list(run)
        try:
            tables.append(_table(group, timestamp))
            continue
        except Exception as exc:  # any failure to convert is the caller's data
            if len(group) == 1:
                failed.append((group[0], exc))
                continue
        # Find the chunks at fault, one by one; the others are kept.
        for chunk in group:
            try:
                tables.append(_table([chunk], timestamp))
            except Exception as exc:  # the caller's data could not be read; set it apart
                failed.append((chunk, exc))
    return _concatenated(tables), failed


def _table(group: list[Chunk], timestamp: str | None = None) -> pa.Table:
    """One Arrow table of chunks with the same key, its ``timestamp`` column in UTC."""
    bodies: list[Any] = [c.body for c in group]
    first = bodies[0]
    table: pa.Table
    if isinstance(first, RowTuples):
        return _row_tuples(bodies)
    if isinstance(first, Matrix):
        values = np.concatenate([b.values for b in bodies]) if len(bodies) > 1 else first.values
        columns = np.ascontiguousarray(values.T)
        table = pa.Table.from_arrays([pa.array(c) for c in columns], names=list(first.names))
    elif isinstance(first, Records):
        table = _records([row for b in bodies for row in b.rows])
    elif isinstance(first, dict):
        table = pa.Table.from_arrays(
            [_merged([b[name] for b in bodies]) for name in first], names=list(first)
        )
    elif isinstance(first, pl.DataFrame):
        table = pl.concat(bodies, how="vertical_relaxed").to_arrow()
    elif isinstance(first, pa.Table):
        table = pa.concat_tables(bodies, promote_options="permissive")
    elif first is None:
        table = pa.table({})
    else:  # a pandas DataFrame
        import pandas as pd

        frame = pd.concat(bodies, ignore_index=True)
        table = pa.Table.from_pandas(frame, preserve_index=False)
    for name in group[0].extra:
        column = _merged([c.extra[name] for c in group])
        if table.num_columns == 0:
            table = pa.table({name: column})
        elif name in table.column_names:
            table = table.set_column(table.column_names.index(name), name, column)
        else:
            table = table.append_column(name, column)
    expected = sum(c.n for c in group)
    if table.num_rows != expected:
        raise InputError(f"The logged columns have {table.num_rows} rows; expected {expected}.")
    return _in_utc(table, timestamp)


def _in_utc(table: pa.Table, timestamp: str | None) -> pa.Table:
    """``table`` with its ``timestamp`` column (if it has one) as UTC timestamps."""
    if timestamp is None or timestamp not in table.column_names:
        return table
    if table.schema.field(timestamp).type == TIMESTAMP_TYPE:
        return table
    times = cast("pl.DataFrame", pl.from_arrow(table.select([timestamp])))
    utc = to_utc(times, timestamp, source="the logged rows")[timestamp].to_arrow()
    return table.set_column(table.column_names.index(timestamp), timestamp, utc)


def _row_tuples(bodies: list[RowTuples]) -> pa.Table:
    """The table of accumulated single rows, with their ids and times."""
    rows = [row for b in bodies for row in b.rows]
    columns = [pa.array(values) for values in zip(*rows, strict=True)]
    keys = list(bodies[0].keys)
    if bodies[0].predictions is not None:
        columns.append(pa.array([p for b in bodies for p in b.predictions or ()]))
        keys.append("prediction")
    columns.append(pa.array([f"{b.prefix}-{call}-0" for b in bodies for call in b.calls]))
    micros = np.fromiter((m for b in bodies for m in b.micros), dtype=np.int64, count=len(rows))
    columns.append(pa.array(micros.astype("datetime64[us]"), type=TIMESTAMP_TYPE))
    return pa.Table.from_arrays(columns, names=[*keys, bodies[0].id_name, bodies[0].ts_name])


def _records(rows: list[dict[Any, Any]]) -> pa.Table:
    keys = rows[0].keys()
    if all(row.keys() == keys for row in rows):
        return pa.Table.from_pylist(rows)
    # Rows with different keys: the union of the columns, missing values as nulls.
    return pl.from_dicts(rows, infer_schema_length=None).to_arrow()


def _merged(parts: list[object]) -> pa.Array | pa.ChunkedArray:
    """One Arrow column from the parts of one column across chunks."""
    first = parts[0]
    if all(isinstance(p, np.ndarray) for p in parts):
        return pa.array(np.concatenate(parts) if len(parts) > 1 else first)  # type: ignore[arg-type]
    if all(isinstance(p, list) for p in parts):
        return pa.array(list(itertools.chain.from_iterable(parts)))  # type: ignore[arg-type]
    if all(isinstance(p, Now) for p in parts):
        micros = np.repeat(
            np.fromiter((p.micros for p in parts), dtype=np.int64, count=len(parts)),  # type: ignore[attr-defined]
            [p.n for p in parts],  # type: ignore[attr-defined]
        )
        return pa.array(micros.astype("datetime64[us]"), type=TIMESTAMP_TYPE)
    if all(isinstance(p, RowIds) for p in parts):
        return pa.array([i for p in parts for i in p])  # type: ignore[attr-defined]
    arrays = [_arrow(p) for p in parts]
    return pa.chunked_array(arrays) if len(arrays) > 1 else arrays[0]


def _arrow(part: object) -> pa.Array | pa.ChunkedArray:
    if isinstance(part, pa.Array | pa.ChunkedArray):
        return part
    if isinstance(part, pl.Series):
        return part.to_arrow()
    if isinstance(part, Now):
        return _merged([part])
    if isinstance(part, Repeat):
        return pa.array([part.value] * part.n)
    if isinstance(part, _PandasColumn):
        return pa.Array.from_pandas(part.series)
    return pa.array(list(part) if isinstance(part, RowIds) else part)


def _concatenated(tables: list[pa.Table]) -> list[pa.Table]:
    """The tables as one, if their columns can be reconciled; else as they are."""
    if len(tables) <= 1:
        return tables
    try:
        return [pa.concat_tables(tables, promote_options="permissive")]
    except (pa.ArrowException, ValueError, TypeError):
        pass
    try:
        frames = [pl.from_arrow(t) for t in tables]
        return [pl.concat(frames, how="diagonal_relaxed").to_arrow()]  # type: ignore[type-var]
    except (pl.exceptions.PolarsError, pa.ArrowException, ValueError, TypeError):
        return tables
