"""The row log: every row a model saw and produced, and the labels that arrive later.

Rows (features, predictions, ids, event timestamps) and labels are Parquet files under one root
directory, partitioned hive-style by model and by the UTC day of their timestamp::

    root/rows/_model=<name>/_date=YYYY-MM-DD/<batch_id>.parquet
    root/labels/_model=<name>/_date=YYYY-MM-DD/<batch_id>.parquet
    root/rows/_model=<name>/_date=YYYY-MM-DD/@compacted-<hex>.parquet    (after retain "compact")

and are queried with DuckDB (``read_parquet(..., hive_partitioning=true, union_by_name=true)``),
so batches whose columns differ are read together, missing columns as nulls. Event times are
stored in UTC: datetimes, dates, ISO 8601 text and epoch numbers are read by
:func:`mlwarden.frames.to_utc`, naive times as UTC. ``_model`` and ``_date`` come from the
directory names, and ``_model_version``, ``_ingested_at`` and ``_batch_id`` are added to every
row, so a batch may not have columns of these names (the underscore keeps them clear of a
plant's own ``batch_id`` or ``date``). The root is a local directory.

Every file appears whole or not at all: it is written under a temporary name (``.<name>.<pid>.
<random>.tmp``, unique per writer, ignored by every reader, hidden to Spark and Hive) and then
hard-linked to its final name, which fails if the name exists. The final name of a batch is its
``batch_id``, so a retried append writes nothing, across processes and restarts, and two writers
racing with the same batch land it once. A batch spanning several days is one file per day, all
written and synced before the first is published: a crash while writing shows nothing, and only a
crash in the microseconds between two publications shows some of its days, until the retry
writes the rest.

Compaction merges the files of a day into one without a moment where a reader sees a row twice
or not at all, even if the process dies half-way. The compacted file names, in its Parquet
footer (``mlwarden.supersedes``), every file whose rows it holds; it is published atomically,
and the files it names are deleted only afterwards. Readers do not glob: for each day they list
the files and hide

1. every file a compacted file supersedes, and every batch a compacted file holds, and
2. a compacted file whose batches are all held by another one (two compactions of the same day
   that ran at once; the tie goes to the smaller name).

So before the compacted file is published readers see the parts; from that instant they see the
compacted file and ignore the parts, whether or not they have been deleted yet. A crash in
between leaves redundant files that no reader shows, that a retried append of their batches
still finds (it writes nothing), and that the next :meth:`RowLog.retain` deletes. A reader that
listed the parts just before they were deleted retries with a fresh listing. External engines
that glob the directories (Spark) see the same data except in the window between a crashed
compaction and the next ``retain``.
"""

from __future__ import annotations

import errno
import json
import os
import re
import shutil
import threading
import time
import uuid
from dataclasses import asdict, dataclass
from datetime import UTC, date, datetime, timedelta
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final, Literal, TypeVar

import duckdb
import polars as pl
import pyarrow.parquet as pq

from mlwarden.exceptions import InputError, ParameterError, check_int
from mlwarden.frames import to_polars, to_utc
from mlwarden.schema import unknown_column_message

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator, Sequence

__all__ = [
    "BATCH_ID",
    "INGESTED_AT",
    "MODEL_VERSION",
    "RetentionReport",
    "RowLog",
    "RowLogStats",
]

_T = TypeVar("_T")
Kind = Literal["rows", "labels", "explanations"]
RetentionMode = Literal["delete", "compact"]

ROWS: Final = "rows"
LABELS: Final = "labels"
EXPLANATIONS: Final = "explanations"
MODEL_VERSION: Final = "_model_version"
INGESTED_AT: Final = "_ingested_at"
BATCH_ID: Final = "_batch_id"
# The hive partition keys: read from the directory names, so a file column of the same name
# would be shadowed by them.
MODEL: Final = "_model"
DATE: Final = "_date"
_RESERVED: Final[dict[str, dict[str, str]]] = {
    ROWS: {
        MODEL: "the model partition",
        DATE: "the day partition",
        MODEL_VERSION: "the model version",
        INGESTED_AT: "the ingestion time",
        BATCH_ID: "the batch id",
    },
    EXPLANATIONS: {
        MODEL: "the model partition",
        DATE: "the day partition",
        MODEL_VERSION: "the model version",
        INGESTED_AT: "the ingestion time",
        BATCH_ID: "the batch id",
    },
    LABELS: {
        MODEL: "the model partition",
        DATE: "the day partition",
        INGESTED_AT: "the ingestion time",
        BATCH_ID: "the batch id",
    },
}

_NAME: Final = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,199}")
_PART: Final = ".parquet"
_COMPACTED: Final = "@compacted-"
_TEMP: Final = ".tmp"
_DELETING: Final = ".deleting-"
_SUPERSEDES: Final = "mlwarden.supersedes"
_DAY: Final = "__mlwarden_day__"
# A temporary file older than this belongs to a writer that died; live writers finish in seconds.
_STALE: Final = timedelta(hours=1)
_READ_ATTEMPTS: Final = 10
# errno values that mean "this filesystem has no hard links": publish by rename instead.
_NO_LINKS: Final = frozenset(
    code
    for code in (
        getattr(errno, "EPERM", None),
        getattr(errno, "ENOTSUP", None),
        getattr(errno, "EOPNOTSUPP", None),
        getattr(errno, "ENOSYS", None),
        getattr(errno, "EXDEV", None),
    )
    if code is not None
)
_HIVE: Final = (
    "hive_partitioning=true, union_by_name=true, hive_types={'_model': 'VARCHAR', '_date': 'DATE'}"
)


@dataclass(frozen=True, slots=True)
class RetentionReport:
    """What :meth:`RowLog.retain` did to one model's rows and labels.

    Parameters:
        model: the model.
        mode: ``"delete"`` or ``"compact"``.
        cutoff: days before this date were old enough to delete or compact.
        days: the days deleted or compacted (rows or labels), oldest first.
        files: data files deleted, or merged into compacted files.
        rows: rows deleted, or rewritten into compacted files.
        labels: label rows deleted, or rewritten into compacted files.
        swept: leftover files removed: parts already compacted, temporary files of writers that
            died more than an hour ago, half-deleted days.
    """

    model: str
    mode: RetentionMode
    cutoff: date
    days: tuple[date, ...]
    files: int
    rows: int
    labels: int
    swept: int

    def to_dict(self) -> dict[str, Any]:
        """The report as plain JSON-ready values (dates as ISO strings)."""
        out = asdict(self)
        out["cutoff"] = self.cutoff.isoformat()
        out["days"] = [day.isoformat() for day in self.days]
        return out


@dataclass(frozen=True, slots=True)
class RowLogStats:
    """The size of one model's row log.

    Parameters:
        model: the model.
        rows: rows logged (as readers see them).
        labels: labels logged.
        days: days holding rows.
        bytes: bytes on disk under the model's row and label directories, leftovers included.
        first_day: the oldest day holding rows, or None.
        last_day: the newest day holding rows, or None.
    """

    model: str
    rows: int
    labels: int
    days: int
    bytes: int
    first_day: date | None
    last_day: date | None

    def to_dict(self) -> dict[str, Any]:
        """The statistics as plain JSON-ready values (dates as ISO strings)."""
        out = asdict(self)
        out["first_day"] = self.first_day.isoformat() if self.first_day else None
        out["last_day"] = self.last_day.isoformat() if self.last_day else None
        return out


@dataclass(frozen=True, slots=True)
class _DayFiles:
    """The files of one day directory, sorted out by what a reader does with them."""

    visible: tuple[str, ...]
    hidden: tuple[str, ...]
    temporary: tuple[str, ...]
    batches: frozenset[str]


class RowLog:
    """The row-level log of monitored models: Parquet files by model and day, read with DuckDB.

    Appends are idempotent by ``batch_id`` and atomic per file, so reads never see half a file;
    retention deletes or compacts old days without readers seeing duplicates or gaps (see the
    module documentation for the scheme).

    Parameters:
        root: the directory holding the log (created on the first append).

    Example:
        >>> import tempfile
        >>> from datetime import datetime
        >>> import polars as pl
        >>> tmp = tempfile.TemporaryDirectory()
        >>> log = RowLog(tmp.name)
        >>> batch = pl.DataFrame(
        ...     {
        ...         "id": [1, 2, 3],
        ...         "timestamp": [datetime(2024, 5, 1, 8), datetime(2024, 5, 1, 9),
        ...                       datetime(2024, 5, 2, 7)],
        ...         "score": [0.2, 0.9, 0.4],
        ...     }
        ... )
        >>> log.append("press-7", "3", batch, batch_id="b-0001")
        3
        >>> log.append("press-7", "3", batch, batch_id="b-0001")  # a retry writes nothing
        0
        >>> log.read("press-7", start=datetime(2024, 5, 2))["score"].to_list()
        [0.4]
        >>> labels = pl.DataFrame({"id": [2], "timestamp": [datetime(2024, 5, 3)], "y": [1]})
        >>> log.append_labels("press-7", labels, batch_id="l-0001")
        1
        >>> log.joined("press-7")["y"].to_list()
        [None, 1, None]
        >>> log.query("SELECT count(*) AS n FROM rows WHERE score > $low", low=0.3)["n"][0]
        2
        >>> tmp.cleanup()
    """

    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.root = Path(root)
        if self.root.exists() and not self.root.is_dir():
            raise ParameterError(
                f"The 'root' parameter of RowLog must be a directory; '{self.root}' is a file.",
                parameter="root",
            )
        self._connection: duckdb.DuckDBPyConnection | None = None
        self._connection_pid = 0
        self._lock = threading.Lock()
        # Compacted files are never rewritten (their names are random), so what they supersede
        # can be remembered for as long as the process lives.
        self._superseded: dict[str, frozenset[str]] = {}

    def __repr__(self) -> str:
        return f"RowLog({str(self.root)!r})"

    # -- writing -------------------------------------------------------------------------------

    def append(
        self,
        model: str,
        version: str | int,
        frame: object,
        *,
        batch_id: str,
        timestamp: str = "timestamp",
    ) -> int:
        """Log a batch of rows; return the rows written (0 if this batch was logged before).

        The rows are stored with ``_model_version``, ``_ingested_at`` (UTC, one value per call) and
        ``_batch_id`` columns, one file per UTC day of ``timestamp``. A retry after a crash writes
        the days that are still missing and nothing else.

        Parameters:
            model: the model name: letters, digits, ``-``, ``_`` and ``.``.
            version: the model version that produced the rows.
            frame: the rows: a Polars, pandas or Arrow frame, or a Parquet/CSV/IPC path.
            batch_id: identifies the batch, same rules as ``model``; appending the same id
                again writes nothing, so retries never duplicate rows.
            timestamp: the column of event times: datetimes, dates, ISO 8601 text or epoch
                numbers (see :func:`mlwarden.frames.to_utc`; naive times are UTC).

        Raises:
            ParameterError: an unsafe ``model``, ``batch_id`` or ``version``.
            InputError: ``timestamp`` missing, not times, or null; a column that the log
                reserves (``_model``, ``_date``, ``_model_version``, ``_ingested_at``,
                ``_batch_id``).
        """
        return self._append_versioned(
            ROWS, "RowLog.append", model, version, frame, batch_id, timestamp
        )

    def _append_versioned(
        self,
        kind: Kind,
        owner: str,
        model: str,
        version: str | int,
        frame: object,
        batch_id: str,
        timestamp: str,
    ) -> int:
        """Append a batch of rows (or attributions) of one model version."""
        _check_name(model, "model", owner)
        _check_name(batch_id, "batch_id", owner)
        if isinstance(version, bool) or not isinstance(version, str | int) or version == "":
            raise ParameterError(
                f"The 'version' parameter of {owner} must be a non-empty string or an "
                f"int; got {version!r}.",
                parameter="version",
            )
        data = to_polars(frame)
        if data.height == 0:
            return 0
        data = _prepared(data, kind, timestamp)
        data = data.with_columns(
            pl.lit(str(version), dtype=pl.String).alias(MODEL_VERSION),
            pl.lit(datetime.now(UTC), dtype=pl.Datetime("us", "UTC")).alias(INGESTED_AT),
            pl.lit(batch_id, dtype=pl.String).alias(BATCH_ID),
        )
        return self._write(kind, model, batch_id, data, timestamp)

    def append_explanations(
        self,
        model: str,
        version: str | int,
        frame: object,
        *,
        batch_id: str,
        timestamp: str = "timestamp",
    ) -> int:
        """Log per-prediction attributions; return the rows written (0 for a retried batch).

        ``frame`` holds the predictions' id and event time (``timestamp``, the same as their
        rows'), ``base_value`` and one attribution column per feature, named as the feature.
        They are filed like rows (``explanations/_model=<name>/_date=...``), with the same
        guarantees as :meth:`append`, so that a window's attributions are read with its rows.
        """
        return self._append_versioned(
            EXPLANATIONS, "RowLog.append_explanations", model, version, frame, batch_id, timestamp
        )

    def explanations(
        self,
        model: str,
        *,
        start: datetime | date | None = None,
        end: datetime | date | None = None,
        columns: Sequence[str] | None = None,
        version: str | int | None = None,
        timestamp: str = "timestamp",
    ) -> pl.DataFrame:
        """The per-prediction attributions of a model whose event time is in ``[start, end)``,
        oldest first; parameters are those of :meth:`read`."""
        _check_name(model, "model", "RowLog.explanations")
        return self._read_versioned(EXPLANATIONS, model, start, end, columns, version, timestamp)

    def append_labels(
        self,
        model: str,
        frame: object,
        *,
        batch_id: str,
        id: str = "id",
        timestamp: str = "timestamp",
    ) -> int:
        """Log labels (true values) that arrived for earlier rows; return the labels written.

        A label belongs to the row with the same ``id``; when an id is labelled more than once,
        :meth:`joined` uses the latest label. Labels are filed by the UTC day of their arrival
        time ``timestamp``, with the guarantees of :meth:`append` (atomic, idempotent by
        ``batch_id``).

        Parameters:
            model: the model name.
            frame: the labels: the ``id`` column, the ``timestamp`` column, label columns.
            batch_id: identifies the batch of labels (separate from the ids of row batches).
            id: the column joining labels to rows.
            timestamp: the column of arrival times, read as in :meth:`append`.
        """
        _check_name(model, "model", "RowLog.append_labels")
        _check_name(batch_id, "batch_id", "RowLog.append_labels")
        data = to_polars(frame)
        if data.height == 0:
            return 0
        if id not in data.columns:
            raise InputError(
                f"{unknown_column_message(id, data.columns)} Labels need the id of the row they "
                "label; pass id=... to name the column.",
                column=id,
            )
        data = _prepared(data, LABELS, timestamp)
        data = data.with_columns(
            pl.lit(datetime.now(UTC), dtype=pl.Datetime("us", "UTC")).alias(INGESTED_AT),
            pl.lit(batch_id, dtype=pl.String).alias(BATCH_ID),
        )
        return self._write(LABELS, model, batch_id, data, timestamp)

    def _write(self, kind: Kind, model: str, batch_id: str, data: pl.DataFrame, ts: str) -> int:
        """Write one file per day of ``data``, skipping the days where the batch already is.

        Every file is written and synced under its temporary name before the first one is
        published, so that a crash while writing leaves nothing visible and the days of a batch
        appear within moments of each other.
        """
        by_day = data.with_columns(pl.col(ts).dt.date().alias(_DAY)).partition_by(
            _DAY, as_dict=True, maintain_order=True
        )
        name = batch_id + _PART
        staged: list[tuple[Path, Path, int]] = []
        try:
            # One iteration per day of the batch, not per row.
            for (day,), part in by_day.items():
                directory = self._day_dir(kind, model, day)
                if batch_id in self._day_files(directory).batches:
                    continue
                rows = part.drop(_DAY)
                temporary = _stage(directory, name, partial(_write_parquet, rows))
                staged.append((temporary, directory / name, rows.height))
            written = 0
            for temporary, target, height in staged:
                if _commit(temporary, target):
                    written += height
            return written
        finally:
            for temporary, _, _ in staged:
                temporary.unlink(missing_ok=True)

    # -- reading -------------------------------------------------------------------------------

    def read(
        self,
        model: str,
        *,
        start: datetime | date | None = None,
        end: datetime | date | None = None,
        columns: Sequence[str] | None = None,
        version: str | int | None = None,
        timestamp: str = "timestamp",
    ) -> pl.DataFrame:
        """The rows of a model whose event time is in ``[start, end)``, oldest first.

        Only the day directories that can hold such rows are opened. Batches with different
        columns are read together (missing columns as nulls).

        Parameters:
            model: the model name.
            start: the first instant included (naive = UTC; a date means its midnight UTC).
            end: the first instant excluded.
            columns: only these columns, in this order; None for all, with ``_model_version``,
                ``_ingested_at`` and ``batch_id``.
            version: only the rows of this model version.
            timestamp: the column of event times the rows were appended with.

        Returns:
            A Polars DataFrame; an empty one (with the requested columns, if any) when the model
            has no rows in the range.
        """
        _check_name(model, "model", "RowLog.read")
        return self._read_versioned(ROWS, model, start, end, columns, version, timestamp)

    def _read_versioned(
        self,
        kind: Kind,
        model: str,
        start: datetime | date | None,
        end: datetime | date | None,
        columns: Sequence[str] | None,
        version: str | int | None,
        timestamp: str,
    ) -> pl.DataFrame:
        """Rows (or attributions) in ``[start, end)``, of one model version when given."""
        where, params = _range(timestamp, start, end)
        if version is not None:
            where.append(f"{MODEL_VERSION} = $version")
            params["version"] = str(version)
        return self._select(kind, model, start, end, columns, timestamp, where, params)

    def labels(
        self,
        model: str,
        *,
        start: datetime | date | None = None,
        end: datetime | date | None = None,
        columns: Sequence[str] | None = None,
        timestamp: str = "timestamp",
    ) -> pl.DataFrame:
        """The labels of a model that arrived in ``[start, end)``, oldest first (all of them).

        Parameters are those of :meth:`read`; ``timestamp`` is the labels' arrival-time column.
        """
        _check_name(model, "model", "RowLog.labels")
        where, params = _range(timestamp, start, end)
        return self._select(LABELS, model, start, end, columns, timestamp, where, params)

    def joined(
        self,
        model: str,
        *,
        start: datetime | date | None = None,
        end: datetime | date | None = None,
        columns: Sequence[str] | None = None,
        version: str | int | None = None,
        id: str = "id",
        timestamp: str = "timestamp",
        label_timestamp: str = "timestamp",
    ) -> pl.DataFrame:
        """The rows of :meth:`read`, each with the latest label of its id (left join).

        Labels are looked up whenever they arrived. The latest label of an id is the one with
        the newest ``label_timestamp`` (then the newest ingestion). Label columns keep their
        names; those that a row column already has get the suffix ``_label`` (the arrival time
        is usually ``timestamp_label``). Rows without a label have nulls there; when the model
        has no labels at all, the rows come back without label columns.

        Parameters:
            columns: the row columns to keep (``id`` is always kept).
            id: the column joining rows and labels.
            label_timestamp: the labels' arrival-time column.

        Other parameters are those of :meth:`read`.
        """
        if columns is not None:
            columns = [columns] if isinstance(columns, str) else list(columns)
            columns += [] if id in columns else [id]
        rows = self.read(
            model, start=start, end=end, columns=columns, version=version, timestamp=timestamp
        )
        if rows.width == 0 or rows.schema.get(id) == pl.Null:
            return rows  # nothing logged in the range
        if id not in rows.columns:
            raise InputError(
                f"{unknown_column_message(id, rows.columns)} Rows are joined to their labels "
                "by id; pass id=... to name the column.",
                column=id,
            )
        latest = self._latest_labels(model, id, label_timestamp)
        if latest is None:
            return rows
        try:
            return rows.join(
                latest, on=id, how="left", suffix="_label", validate="m:1", maintain_order="left"
            )
        except pl.exceptions.PolarsError as exc:
            raise InputError(
                f"Rows and labels cannot be joined on {id!r} ({_reason(exc)}); expected the "
                "same type of id in both. Log labels with ids of the rows' type.",
                column=id,
            ) from exc

    def _latest_labels(self, model: str, id: str, ts: str) -> pl.DataFrame | None:
        """The latest label of every id, without bookkeeping columns; None without labels."""

        def run(cursor: duckdb.DuckDBPyConnection, files: list[str]) -> pl.DataFrame:
            names = _columns(cursor, files)
            for name in (id, ts):
                if name not in names:
                    raise InputError(
                        f"{unknown_column_message(name, _data_columns(names))} (in the labels "
                        f"of {model!r}).",
                        column=name,
                    )
            order = f"{_quote(ts)} DESC NULLS LAST, {INGESTED_AT} DESC, {BATCH_ID} DESC"
            sql = (
                f"SELECT * EXCLUDE ({MODEL}, {DATE}, {BATCH_ID}, {INGESTED_AT}) "
                f"FROM read_parquet($files, {_HIVE}) WHERE {_quote(id)} IS NOT NULL "
                f"QUALIFY row_number() OVER (PARTITION BY {_quote(id)} ORDER BY {order}) = 1"
            )
            return _frame(cursor.sql(sql, params={"files": files}))

        return self._with_files(lambda: self._files(LABELS, model), run)

    def _select(
        self,
        kind: Kind,
        model: str,
        start: datetime | date | None,
        end: datetime | date | None,
        columns: Sequence[str] | None,
        ts: str,
        where: list[str],
        params: dict[str, object],
    ) -> pl.DataFrame:
        """Read the files of ``kind`` in the date range, filtered, projected and ordered."""
        wanted = _wanted(columns)
        first = _utc(start, "start")
        last = _utc(end, "end")
        if first is not None and last is not None and first > last:
            raise ParameterError(
                f"The 'start' of a range must not come after its 'end'; got start={first}, "
                f"end={last}.",
                parameter="start",
            )
        # The days that can hold [first, last): the last one is the day of the instant before.
        low = first.date() if first is not None else None
        high = (last - timedelta(microseconds=1)).date() if last is not None else None

        def run(cursor: duckdb.DuckDBPyConnection, files: list[str]) -> pl.DataFrame:
            names = _data_columns(_columns(cursor, files))
            for name in [ts, *(wanted or [])]:
                if name not in names:
                    hint = " Pass timestamp=... to name the time column." if name == ts else ""
                    where_ = f"(in the {kind} of {model!r})"
                    raise InputError(
                        f"{unknown_column_message(name, names)} {where_}.{hint}",
                        column=name,
                    )
            projection = (
                ", ".join(_quote(name) for name in wanted)
                if wanted
                else f"* EXCLUDE ({MODEL}, {DATE})"
            )
            condition = " AND ".join(where) if where else "true"
            sql = (
                f"SELECT {projection} FROM read_parquet($files, {_HIVE}) WHERE {condition} "
                f"ORDER BY {_quote(ts)}"
            )
            return _frame(cursor.sql(sql, params={**params, "files": files}))

        result = self._with_files(lambda: self._files(kind, model, low, high), run)
        if result is None:
            return pl.DataFrame(schema=dict.fromkeys(wanted or [], pl.Null))
        return result

    def query(self, sql: str, **params: object) -> pl.DataFrame:
        """Run DuckDB SQL over the views ``rows`` and ``labels`` (all models); return the result.

        The views have the logged columns plus ``model`` and ``date`` (the partitions): a
        filter such as ``WHERE model = $model AND date >= $day`` skips the data of the other
        files (their footers are still read). Values are bound as ``$name`` parameters, never
        formatted into the SQL.

        Parameters:
            sql: one or more statements; the result of the last one is returned.
            params: values of the ``$name`` parameters.

        Raises:
            ParameterError: DuckDB rejected the query (the message says why).
        """
        if not isinstance(sql, str) or not sql.strip():
            raise ParameterError(
                f"The 'sql' parameter of RowLog.query must be a SQL query; got {sql!r}.",
                parameter="sql",
            )

        def attempt() -> pl.DataFrame:
            with self._cursor() as cursor:
                try:
                    self._create_views(cursor)
                except duckdb.IOException:
                    raise
                except duckdb.Error as exc:
                    raise self._unreadable(exc) from exc
                try:
                    result = cursor.sql(sql, params=params or None)
                    return pl.DataFrame() if result is None else _frame(result)
                except duckdb.IOException:
                    raise
                except duckdb.Error as exc:
                    raise ParameterError(
                        f"The SQL query failed: {_reason(exc)}. It runs on DuckDB over the views "
                        "'rows' and 'labels'; bind values as $name with query(sql, name=value).",
                        parameter="sql",
                    ) from exc

        return self._retrying(attempt)

    def _create_views(self, cursor: duckdb.DuckDBPyConnection) -> None:
        """The views ``rows`` and ``labels`` over the files readers see, of every model."""
        for kind in (ROWS, LABELS):
            files = self._files(kind, None)
            if files:
                view = cursor.sql(
                    f"SELECT * FROM read_parquet($files, {_HIVE})", params={"files": files}
                )
                assert view is not None
                view.create_view(kind, replace=True)
            else:
                cursor.execute(
                    f"CREATE OR REPLACE TEMP VIEW {kind} AS SELECT "
                    "NULL::VARCHAR AS model, NULL::DATE AS date WHERE false"
                )

    # -- retention and statistics --------------------------------------------------------------

    def retain(
        self,
        model: str,
        *,
        keep_days: int,
        now: datetime | None = None,
        mode: RetentionMode = "delete",
    ) -> RetentionReport:
        """Delete or compact a model's days (rows, labels, attributions) older than ``keep_days``.

        A day is old once all of it is more than ``keep_days`` days before ``now``: with
        ``keep_days=7`` on 2024-05-10 12:00 UTC, days up to 2024-05-02 go. ``"delete"`` removes
        old days (each directory is renamed away in one step, then removed). ``"compact"``
        merges the files of each old day into one compacted file, rows unchanged (see the
        module documentation for why readers never see duplicates or gaps, even after a crash).
        Both also sweep leftovers of earlier crashes in every day of the model.

        Parameters:
            model: the model name.
            keep_days: whole days to keep, an int >= 0.
            now: the current time (naive = UTC); the clock by default.
            mode: ``"delete"`` or ``"compact"``.
        """
        owner = "RowLog.retain"
        _check_name(model, "model", owner)
        check_int(keep_days, "keep_days", owner, 0)
        if mode not in ("delete", "compact"):
            raise ParameterError(
                f"The 'mode' parameter of {owner} must be 'delete' or 'compact'; got {mode!r}.",
                parameter="mode",
            )
        moment = _utc(now, "now") or datetime.now(UTC)
        cutoff = (moment - timedelta(days=keep_days)).date()
        days: set[date] = set()
        files = swept = 0
        counts = {ROWS: 0, LABELS: 0, EXPLANATIONS: 0}
        for kind in (ROWS, LABELS, EXPLANATIONS):
            base = self._model_dir(kind, model)
            swept += _sweep_deletions(base)
            for day, directory in _days(base):
                if day < cutoff:
                    if mode == "delete":
                        merged, rows = self._delete_day(base, day, directory)
                    else:
                        merged, rows = self._compact_day(directory)
                    if merged:
                        days.add(day)
                        files += merged
                        counts[kind] += rows
                    if mode == "delete":
                        continue
                swept += self._sweep(directory)
        return RetentionReport(
            model=model,
            mode=mode,
            cutoff=cutoff,
            days=tuple(sorted(days)),
            files=files,
            rows=counts[ROWS],
            labels=counts[LABELS],
            swept=swept,
        )

    def stats(self, model: str) -> RowLogStats:
        """Rows, labels, days and bytes on disk of a model (from file footers; no data read)."""
        _check_name(model, "model", "RowLog.stats")
        counts = {ROWS: 0, LABELS: 0}
        row_days: list[date] = []
        size = 0
        for kind in (ROWS, LABELS):
            base = self._model_dir(kind, model)
            for day, directory in _days(base):
                visible = self._day_files(directory).visible
                counts[kind] += sum(_num_rows(directory / name) for name in visible)
                if kind == ROWS and visible:
                    row_days.append(day)
            for folder, _, names in os.walk(base):
                size += sum(_size(Path(folder) / name) for name in names)
        return RowLogStats(
            model=model,
            rows=counts[ROWS],
            labels=counts[LABELS],
            days=len(row_days),
            bytes=size,
            first_day=min(row_days, default=None),
            last_day=max(row_days, default=None),
        )

    def _delete_day(self, base: Path, day: date, directory: Path) -> tuple[int, int]:
        """Remove a day directory in one visible step; return (files, rows) it held."""
        visible = self._day_files(directory).visible
        rows = sum(_num_rows(directory / name) for name in visible)
        doomed = base / f"{_DELETING}{day.isoformat()}-{uuid.uuid4().hex}"
        try:
            directory.rename(doomed)
        except FileNotFoundError:
            return 0, 0
        _fsync_dir(base)
        shutil.rmtree(doomed, ignore_errors=True)
        return len(visible), rows

    def _compact_day(self, directory: Path) -> tuple[int, int]:
        """Merge the visible files of a day into one; return (files merged, rows)."""
        visible = self._day_files(directory).visible
        if len(visible) < 2:
            return 0, 0
        superseded = set(visible)
        for name in visible:
            if name.startswith(_COMPACTED):
                superseded |= self._supersedes(directory / name)
        metadata = json.dumps(sorted(superseded)).replace("'", "''")
        files = [str(directory / name) for name in visible]

        def write(path: Path) -> None:
            with self._cursor() as cursor:
                cursor.execute(
                    "COPY (SELECT * FROM read_parquet($files, hive_partitioning=false, "
                    "union_by_name=true)) TO $path (FORMAT parquet, COMPRESSION zstd, "
                    f"KV_METADATA {{'{_SUPERSEDES}': '{metadata}'}})",
                    {"files": files, "path": str(path)},
                )

        name = f"{_COMPACTED}{uuid.uuid4().hex}{_PART}"
        _publish(directory, name, write)
        # Readers ignore the superseded files from now on; deleting them only frees space.
        for old in superseded:
            (directory / old).unlink(missing_ok=True)
        _fsync_dir(directory)
        return len(visible), _num_rows(directory / name)

    def _sweep(self, directory: Path) -> int:
        """Delete what readers ignore: superseded files, temporary files of dead writers."""
        files = self._day_files(directory)
        # The age of a temporary file is judged by the clock, whatever ``now`` retain was given.
        stale = time.time() - _STALE.total_seconds()
        doomed = [*files.hidden, *(n for n in files.temporary if _mtime(directory / n) < stale)]
        for name in doomed:
            (directory / name).unlink(missing_ok=True)
        return len(doomed)

    # -- layout --------------------------------------------------------------------------------

    def _model_dir(self, kind: Kind, model: str) -> Path:
        return self.root / kind / f"{MODEL}={model}"

    def _day_dir(self, kind: Kind, model: str, day: date) -> Path:
        return self._model_dir(kind, model) / f"{DATE}={day.isoformat()}"

    def _files(
        self, kind: Kind, model: str | None, low: date | None = None, high: date | None = None
    ) -> list[str]:
        """The files a reader reads: of one model (or all), of the days in [low, high]."""
        if model is None:
            bases = [
                path
                for path in _entries(self.root / kind)
                if path.name.startswith(f"{MODEL}=")
                and _NAME.fullmatch(path.name[len(MODEL) + 1 :])
            ]
        else:
            bases = [self._model_dir(kind, model)]
        out: list[str] = []
        for base in bases:
            for day, directory in _days(base):
                if (low is None or day >= low) and (high is None or day <= high):
                    out.extend(str(directory / name) for name in self._day_files(directory).visible)
        return out

    def _day_files(self, directory: Path) -> _DayFiles:
        """Sort out the files of a day: what readers read, what they hide, what is temporary."""
        names = [path.name for path in _entries(directory)]
        parts = {n for n in names if n.endswith(_PART) and n[:1] not in (".", "@")}
        compacted = {n for n in names if n.startswith(_COMPACTED) and n.endswith(_PART)}
        temporary = tuple(sorted(n for n in names if n.startswith(".") and n.endswith(_TEMP)))
        supersedes = {name: self._supersedes(directory / name) for name in compacted}
        named = frozenset().union(*supersedes.values())
        holds = {
            name: frozenset(_batch(n) for n in superseded if not n.startswith(_COMPACTED))
            for name, superseded in supersedes.items()
        }
        kept: list[str] = []
        # Largest first, so that of two compactions of the same day the wider one is kept.
        for name in sorted(compacted - named, key=lambda n: (-len(holds[n]), n)):
            if not any(holds[name] <= holds[other] for other in kept):
                kept.append(name)
        held = frozenset().union(*holds.values())
        live = [n for n in parts if _batch(n) not in held]
        visible = (*sorted(kept), *sorted(live))
        hidden = tuple(sorted((parts | compacted) - set(visible)))
        return _DayFiles(visible, hidden, temporary, held | {_batch(n) for n in parts})

    def _supersedes(self, path: Path) -> frozenset[str]:
        """The file names a compacted file supersedes, from its Parquet footer."""
        key = str(path)
        known = self._superseded.get(key)
        if known is not None:
            return known
        try:
            metadata = pq.read_schema(path).metadata or {}
            names = frozenset(json.loads(metadata[_SUPERSEDES.encode()]))
        except FileNotFoundError:
            # Deleted by a concurrent compaction, after a wider compacted file was published.
            return frozenset()
        except (OSError, KeyError, ValueError) as exc:
            raise InputError(
                f"'{path}' is not a compacted file of the row log ({_reason(exc)}); expected "
                "a Parquet file whose footer lists what it supersedes. Move it out of "
                f"{path.parent}.",
                path=path,
            ) from exc
        self._superseded[key] = names
        return names

    # -- DuckDB --------------------------------------------------------------------------------

    def _cursor(self) -> duckdb.DuckDBPyConnection:
        """A new cursor on the log's DuckDB connection (one per process, created when needed)."""
        with self._lock:
            if self._connection is None or self._connection_pid != os.getpid():
                self._connection = duckdb.connect()
                self._connection_pid = os.getpid()
            cursor = self._connection.cursor()
        cursor.execute("SET TimeZone = 'UTC'")
        return cursor

    def _with_files(
        self,
        listing: Callable[[], list[str]],
        run: Callable[[duckdb.DuckDBPyConnection, list[str]], pl.DataFrame],
    ) -> pl.DataFrame | None:
        """Run a read on the files listed, listing again if one vanished (compacted, deleted)."""

        def attempt() -> pl.DataFrame | None:
            files = listing()
            if not files:
                return None
            try:
                with self._cursor() as cursor:
                    return run(cursor, files)
            except duckdb.IOException:
                raise
            except duckdb.Error as exc:
                raise self._unreadable(exc) from exc

        return self._retrying(attempt)

    def _retrying(self, attempt: Callable[[], _T]) -> _T:
        """Run ``attempt`` until no file it listed vanishes before it is read.

        A file vanishes when a compaction or a deletion finishes between the listing and the
        read; the next listing sees its replacement. The waits grow so that a reader outlasts a
        retention run that is working through several days.
        """
        for count in range(_READ_ATTEMPTS):
            try:
                return attempt()
            except duckdb.IOException as exc:
                if count == _READ_ATTEMPTS - 1:
                    raise self._unreadable(exc) from exc
                time.sleep(min(0.5, 0.01 * 2**count))
        raise AssertionError("unreachable")  # pragma: no cover

    def _unreadable(self, exc: Exception) -> InputError:
        return InputError(
            f"The row log under '{self.root}' could not be read ({_reason(exc)}); expected "
            "readable Parquet files. Check the disk, the permissions, and files put there by hand.",
            path=self.root,
        )


def _prepared(data: pl.DataFrame, kind: Kind, ts: str) -> pl.DataFrame:
    """Check the columns of a batch and bring its event times to UTC."""
    for name, meaning in _RESERVED[kind].items():
        if name in data.columns:
            raise InputError(
                f"Column '{name}' is reserved by the row log for {meaning}; rename it, e.g. "
                f"frame.rename({{'{name}': '{name}_'}}).",
                column=name,
            )
    if ts not in data.columns:
        raise InputError(
            f"{unknown_column_message(ts, data.columns)} Every {kind[:-1]} needs a time to be "
            "filed by day; pass timestamp=... to name the column.",
            column=ts,
        )
    data = to_utc(data, ts, source=f"the {kind}")
    nulls = data[ts].null_count()
    if nulls:
        raise InputError(
            f"Column '{ts}' has {nulls:,} null values; every {kind[:-1]} needs a time to be "
            "filed by day. Fill or drop them first.",
            column=ts,
        )
    return data


def _publish(directory: Path, name: str, write: Callable[[Path], None]) -> bool:
    """Write a file under a temporary name, then give it ``name`` unless that exists."""
    temporary = _stage(directory, name, write)
    try:
        return _commit(temporary, directory / name)
    finally:
        temporary.unlink(missing_ok=True)


def _stage(directory: Path, name: str, write: Callable[[Path], None]) -> Path:
    """Write and sync a file under a temporary name unique to this writer; return that name."""
    directory.mkdir(parents=True, exist_ok=True)
    temporary = directory / f".{name}.{os.getpid()}.{uuid.uuid4().hex}{_TEMP}"
    try:
        write(temporary)
        with open(temporary, "rb") as file:
            os.fsync(file.fileno())
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise
    return temporary


def _commit(temporary: Path, target: Path) -> bool:
    """Publish a staged file under its final name; False if that name was already taken."""
    published = _place(temporary, target)
    if published:
        _fsync_dir(target.parent)
    return published


def _write_parquet(rows: pl.DataFrame, path: Path) -> None:
    try:
        rows.write_parquet(path, compression="zstd")
    except pl.exceptions.PolarsError as exc:
        raise InputError(
            f"The batch cannot be stored as Parquet ({_reason(exc)}); expected columns of types "
            "Parquet holds. Cast or drop the offending column."
        ) from exc


def _place(source: Path, target: Path) -> bool:
    """Give ``source`` the name ``target`` atomically, unless ``target`` exists."""
    try:
        os.link(source, target)
    except FileExistsError:
        return False
    except OSError as exc:
        if exc.errno not in _NO_LINKS:
            raise
        # No hard links here: rename, which may replace a target that appeared meanwhile; the
        # same batch id holds the same rows, so that loses nothing.
        if target.exists():
            return False
        os.replace(source, target)
    return True


def _fsync_dir(directory: Path) -> None:
    """Make a rename in ``directory`` durable (a no-op where directories cannot be opened)."""
    if os.name == "nt":
        return
    descriptor = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


def _sweep_deletions(base: Path) -> int:
    """Finish the deletions of days that a crashed retention renamed away."""
    doomed = [path for path in _entries(base) if path.name.startswith(_DELETING)]
    for path in doomed:
        shutil.rmtree(path, ignore_errors=True)
    return len(doomed)


def _entries(directory: Path) -> list[Path]:
    """The entries of a directory, none if it does not exist (yet, or any more)."""
    try:
        return list(directory.iterdir())
    except (FileNotFoundError, NotADirectoryError):
        return []


def _days(base: Path) -> Iterator[tuple[date, Path]]:
    """The day directories of a model, oldest first."""
    found = []
    for path in _entries(base):
        if not path.name.startswith(f"{DATE}="):
            continue
        try:
            found.append((date.fromisoformat(path.name[len(DATE) + 1 :]), path))
        except ValueError:
            continue
    yield from sorted(found)


def _batch(name: str) -> str:
    """The batch id of a part file name."""
    return name[: -len(_PART)]


def _num_rows(path: Path) -> int:
    try:
        return int(pq.read_metadata(path).num_rows)
    except FileNotFoundError:
        return 0


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except FileNotFoundError:
        return 0


def _mtime(path: Path) -> float:
    try:
        return path.stat().st_mtime
    except FileNotFoundError:
        return float("inf")


def _check_name(value: object, parameter: str, owner: str) -> None:
    """Names that become file and directory names: letters, digits, ``-_.``, no leading dot."""
    if not isinstance(value, str) or not _NAME.fullmatch(value):
        raise ParameterError(
            f"The '{parameter}' parameter of {owner} must be 1 to 200 letters, digits, '-', '_' "
            f"or '.', starting with a letter or digit (it names files); got {value!r}.",
            parameter=parameter,
        )


def _utc(value: datetime | date | None, parameter: str) -> datetime | None:
    """An instant as an aware UTC datetime: naive datetimes are UTC, dates are midnight UTC."""
    if value is None:
        return None
    if isinstance(value, datetime):
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
    if isinstance(value, date):
        return datetime(value.year, value.month, value.day, tzinfo=UTC)
    raise ParameterError(
        f"The '{parameter}' parameter must be a datetime or a date; got {value!r}.",
        parameter=parameter,
    )


def _range(
    ts: str, start: datetime | date | None, end: datetime | date | None
) -> tuple[list[str], dict[str, object]]:
    """The SQL conditions and parameters of the half-open range [start, end) on ``ts``."""
    where: list[str] = []
    params: dict[str, object] = {}
    first, last = _utc(start, "start"), _utc(end, "end")
    if first is not None:
        where.append(f"{_quote(ts)} >= $start")
        params["start"] = first
    if last is not None:
        where.append(f"{_quote(ts)} < $end")
        params["end"] = last
    return where, params


def _wanted(columns: Sequence[str] | None) -> list[str] | None:
    if columns is None:
        return None
    wanted = [columns] if isinstance(columns, str) else list(dict.fromkeys(columns))
    if not wanted or not all(isinstance(name, str) for name in wanted):
        raise ParameterError(
            "The 'columns' parameter must name at least one column, or be None for all; "
            f"got {columns!r}.",
            parameter="columns",
        )
    return wanted


def _columns(cursor: duckdb.DuckDBPyConnection, files: list[str]) -> list[str]:
    """The columns of the union of ``files`` (from their footers)."""
    relation = cursor.sql(f"SELECT * FROM read_parquet($files, {_HIVE})", params={"files": files})
    assert relation is not None
    return list(relation.columns)


def _data_columns(names: list[str]) -> list[str]:
    return [name for name in names if name not in (MODEL, DATE)]


def _frame(relation: duckdb.DuckDBPyRelation | None) -> pl.DataFrame:
    assert relation is not None
    frame: pl.DataFrame = relation.pl()
    return frame


def _quote(name: str) -> str:
    """A SQL identifier, quoted."""
    return '"' + name.replace('"', '""') + '"'


def _reason(exc: BaseException) -> str:
    """The first line of a third-party error message, for a one-line message."""
    lines = str(exc).strip().splitlines() or [type(exc).__name__]
    first = lines[0].rstrip(".")
    return first if len(first) <= 200 else first[:197] + "..."
