"""Turn any supported input into Polars: the one module that knows about input types.

Accepted inputs are polars DataFrames and LazyFrames, pyarrow Tables and RecordBatches, pandas
DataFrames (pandas stays optional: it is never imported here), and paths to Parquet, CSV or Arrow
IPC files. :func:`to_polars` reads everything at once; :func:`iter_batches` streams the same data
in bounded memory, one :class:`Batch` at a time, with what a progress bar needs.

CSV types are inferred by pyarrow from the first block of the file (the whole file when it is
small). When a later block shows that a column is wider than inferred -- an integer column holding
``1.5``, an empty column holding numbers or text -- the stream re-opens the file with that column
widened (integer -> Float64, empty -> Float64 -> String) and resumes after the rows already handed
out, so no row is lost or repeated and the common, clean file is read once. Batches handed out
before the widening keep the narrower dtype: combine batches with
``pl.concat(..., how="vertical_relaxed")``, as :func:`to_polars` does. A column that was numeric
in its first rows and later holds words is an error, not a widening.

Times enter mlwarden through :func:`to_utc`, which reads a column of times as users have them
(naive or aware datetimes, dates, ISO 8601 text, epoch numbers) into UTC datetimes.
"""

from __future__ import annotations

import codecs
import difflib
import os
import re
import zoneinfo
from abc import ABC, abstractmethod
from collections import Counter
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final, Literal, cast

import polars as pl
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.ipc as paipc
import pyarrow.parquet as pq

from mlwarden.exceptions import InputError, ParameterError

if TYPE_CHECKING:
    from collections.abc import Iterable, Iterator, Sequence

__all__ = [
    "Batch",
    "BatchStream",
    "Format",
    "detect_format",
    "is_path",
    "iter_batches",
    "listed_columns",
    "to_polars",
    "to_utc",
]

Format = Literal["parquet", "csv", "ipc"]
Unit = Literal["rows", "bytes"]

_SUFFIXES: Final[dict[str, Format]] = {
    ".parquet": "parquet",
    ".pq": "parquet",
    ".csv": "csv",
    ".tsv": "csv",
    ".txt": "csv",
    ".arrow": "ipc",
    ".ipc": "ipc",
    ".feather": "ipc",
}
_FORMAT_NAMES: Final[dict[Format, str]] = {"parquet": "Parquet", "csv": "CSV", "ipc": "Arrow IPC"}
_SUPPORTED: Final = (
    ".parquet or .pq (Parquet), .csv, .tsv or .txt (CSV), .arrow, .ipc or .feather (Arrow IPC)"
)
_ACCEPTED: Final = (
    "a polars DataFrame or LazyFrame, a pyarrow Table or RecordBatch, a pandas DataFrame, "
    "or a path to a Parquet, CSV or Arrow IPC file"
)
_EXPECTED_FILE: Final = "expected a path to a Parquet, CSV or Arrow IPC file"

# pyarrow's streaming CSV reader reads up to 32 blocks ahead of the consumer, so the block size
# bounds memory: 4 MiB blocks buffer at most ~128 MiB. Files up to _CSV_WHOLE_FILE_BYTES are read
# as one block, so that type inference sees every row and their batches never change dtype.
_CSV_BLOCK_BYTES = 4 << 20
_CSV_WHOLE_FILE_BYTES = 16 << 20
_PARQUET_BUFFER = 1 << 20
# A CSV text column of at least this many values, this share of them numbers, mixes types.
_MIXED_MIN_VALUES = 10
_MIXED_NUMERIC_SHARE = 0.9
_CSV_CONVERSION = re.compile(
    r"CSV column #(?P<index>\d+): CSV conversion error to [^:]+: invalid value '(?P<value>.*)'",
    re.DOTALL,
)
_CSV_UTF8 = re.compile(r"CSV column #(?P<index>\d+): .*invalid UTF8", re.DOTALL)
_ENCODING_HINT: Final = (
    "Pass the file's encoding (e.g. encoding='latin-1', or --encoding latin-1 on the command line)."
)
_LISTED_COLUMNS: Final = 20

UTC_TIME: Final = pl.Datetime("us", "UTC")
# ISO 8601 text: Polars reads the form of the first value fast; the rows left are normalized
# (see _normalized_text) and tried in every form, "%.f" reading fractional seconds or nothing.
# True: with an offset.
_ISO_START: Final = r"^\d{4}-\d{2}-\d{2}"
_ISO_FORMATS: Final = (
    ("%Y-%m-%d %H:%M:%S%.f%z", True),
    ("%Y-%m-%d %H:%M%z", True),
    ("%Y-%m-%d %H:%M:%S%.f", False),
    ("%Y-%m-%d %H:%M", False),
    ("%Y-%m-%d", False),
)
# Epoch numbers: the unit is the one whose range holds the largest magnitude, each range spanning
# 1973-03-03 to 5138-11-16; then microseconds per unit (as a multiplier, or a divisor).
_EPOCH_UNITS: Final = (
    ("seconds", 1e8, 1e11, 1_000_000, 1),
    ("milliseconds", 1e11, 1e14, 1_000, 1),
    ("microseconds", 1e14, 1e17, 1, 1),
    ("nanoseconds", 1e17, 1e20, 1, 1_000),
)
_TIMES_EXPECTED: Final = (
    "expected datetimes, dates, ISO 8601 text (2024-05-01 08:00:00, 2024-05-01T08:00:00.250+02:00, "
    "2024-05-01) or epoch seconds or milliseconds"
)


# eq=False: comparing DataFrames with == gives a frame, not a bool.
@dataclass(frozen=True, slots=True, eq=False)
class Batch:
    """One slice of the data and how far it moves a progress bar.

    Parameters
    ----------
    frame
        At most ``batch_rows`` rows of the data.
    advance
        How much this batch moves progress, in the stream's ``unit``; the advances of a whole
        stream add up to its ``total``.
    """

    frame: pl.DataFrame
    advance: int


class BatchStream:
    """Re-iterable stream of :class:`Batch` objects over one input, read in bounded memory.

    Every iteration reads the input from the start and yields at least one batch (an empty one
    with the input's columns when the input has no rows).

    Parameters
    ----------
    source
        The opened input.
    batch_rows
        The most rows a batch holds.

    Attributes
    ----------
    names
        The column names, known before iteration.
    schema
        The column dtypes as known so far (a CSV column may widen during iteration).
    total
        The sum of all advances: rows, or bytes for CSV and Arrow IPC stream files.
    unit
        ``"rows"`` or ``"bytes"``, the unit of ``total`` and of each batch's ``advance``.
    """

    def __init__(self, source: _Source, batch_rows: int) -> None:
        self._source = source
        self._batch_rows = batch_rows

    @property
    def names(self) -> list[str]:
        """The column names, in order."""
        return self._source.schema.names()

    @property
    def schema(self) -> pl.Schema:
        """The column dtypes as known so far."""
        return self._source.schema

    @property
    def total(self) -> int | None:
        """The sum of all advances, in ``unit``."""
        return self._source.total

    @property
    def unit(self) -> Unit:
        """The unit of ``total`` and of each batch's ``advance``."""
        return self._source.unit

    def __iter__(self) -> Iterator[Batch]:
        produced = False
        for batch in self._source.batches(self._batch_rows):
            produced = True
            yield batch
        if not produced:
            yield Batch(pl.DataFrame(schema=self.schema), self.total or 0)

    def __repr__(self) -> str:
        return f"BatchStream(names={self.names!r}, total={self.total!r}, unit={self.unit!r})"


def is_path(data: object) -> bool:
    """Tell whether ``data`` is a file path (a ``str`` or an ``os.PathLike``) rather than data.

    Parameters
    ----------
    data
        Anything handed to :func:`to_polars` or :func:`iter_batches`.
    """
    return isinstance(data, str | os.PathLike)


def detect_format(path: str | os.PathLike[str]) -> Format:
    """Name the format of the file at ``path``, from its suffix or else from its first bytes.

    Parameters
    ----------
    path
        A Parquet (``.parquet``, ``.pq``), CSV (``.csv``, ``.tsv``, ``.txt``) or Arrow IPC
        (``.arrow``, ``.ipc``, ``.feather``) file; any other suffix is sniffed for the Parquet and
        Arrow IPC magic bytes.

    Raises
    ------
    InputError
        The file is missing, a directory, unreadable, empty or of no supported format.
    """
    return _inspect(path)[1]


def to_polars(
    data: object,
    *,
    columns: Sequence[str] | None = None,
    encoding: str | None = None,
    as_text: Sequence[str] = (),
) -> pl.DataFrame:
    """Read ``data`` into one Polars DataFrame, keeping dtypes.

    Parameters
    ----------
    data
        A polars DataFrame or LazyFrame, a pyarrow Table or RecordBatch, a pandas DataFrame
        (its index is dropped), or a path to a Parquet, CSV or Arrow IPC file.
    columns
        Only these columns, in this order; ``None`` keeps all.
    encoding
        The text encoding of a CSV file (default UTF-8); ignored for other inputs.
    as_text
        CSV columns to read as text whatever they hold (codes such as ``"0042"``, or columns
        mixing numbers and words); ignored for other inputs.

    Raises
    ------
    InputError
        ``data`` is of an unsupported type, its file cannot be read, or a column is missing.

    Examples
    --------
    >>> import polars as pl
    >>> to_polars(pl.DataFrame({"a": [1, 2], "b": ["x", "y"]}), columns=["b"]).to_dict(
    ...     as_series=False
    ... )
    {'b': ['x', 'y']}
    """
    return _source(data, columns, encoding, as_text).read()


def to_utc(
    frame: pl.DataFrame,
    column: str,
    *,
    timezone: str | None = None,
    source: str = "the data",
    path: str | os.PathLike[str] | None = None,
) -> pl.DataFrame:
    """Return ``frame`` with its column of times ``column`` as ``Datetime("us", "UTC")``.

    What a column of times may hold, and how it is read:

    - naive datetimes: local times of ``timezone``, UTC when it is None;
    - time-zone aware datetimes: converted to UTC;
    - dates: midnight of ``timezone`` (UTC when None);
    - ISO 8601 text, read like the datetimes it stands for: date and time joined by ``T`` or a
      space, seconds and fractional seconds optional, an offset (``Z``, ``+02:00``, ``+0200``,
      ``+02``) optional and honoured where given, or a date alone; surrounding spaces and empty
      strings (missing values) are allowed;
    - epoch numbers (integers or floats), in the unit whose range holds the column's largest
      magnitude: seconds from 1e8 up to 1e11, milliseconds up to 1e14, microseconds up to 1e17,
      nanoseconds up to 1e20 (each range spans 1973-03-03 to 5138-11-16). Every value must lie in
      the range of that unit: epoch times before 1973 are not read, nor small counts;
    - categorical text, read as text; nulls (and NaN) stay null.

    A local time that occurs twice when the clocks go back is taken at its first occurrence.
    Everything is vectorized; the other columns are untouched.

    Parameters
    ----------
    frame
        The data holding ``column``.
    column
        The column of times.
    timezone
        The IANA time zone (``"Europe/Berlin"``) of naive times and dates; None for UTC.
    source
        What ``frame`` is, for error messages (``"'line3.csv'"``, ``"the reference"``).
    path
        The file ``frame`` was read from, kept on the error.

    Raises
    ------
    InputError
        ``column`` is missing, or holds values that are not times: the message names the column,
        what was expected and a value found.
    ParameterError
        ``timezone`` is not a known time zone.

    Examples
    --------
    >>> import polars as pl
    >>> frame = pl.DataFrame({"at": ["2024-05-01T08:00:00+02:00", "2024-05-01 06:30", None]})
    >>> to_utc(frame, "at")["at"].to_list()  # doctest: +NORMALIZE_WHITESPACE
    [datetime.datetime(2024, 5, 1, 6, 0, tzinfo=zoneinfo.ZoneInfo(key='UTC')),
     datetime.datetime(2024, 5, 1, 6, 30, tzinfo=zoneinfo.ZoneInfo(key='UTC')), None]
    >>> to_utc(pl.DataFrame({"at": [1714550400, 1714554000]}), "at")["at"].dt.hour().to_list()
    [8, 9]
    """
    zone = _time_zone(timezone)
    where = None if path is None else os.fspath(path)
    _select(frame.columns, [column], source=source, path=where)
    series = frame[column]
    dtype = series.dtype
    if dtype == UTC_TIME:
        return frame
    if isinstance(dtype, pl.Categorical | pl.Enum):
        series = series.cast(pl.String)
        dtype = series.dtype
    if isinstance(dtype, pl.Datetime):
        naive = dtype.time_zone is None
        times = series.dt.cast_time_unit("us")
        utc = _localized(times, zone, column, source, where) if naive else times
    elif dtype == pl.Date:
        utc = _localized(series.cast(pl.Datetime("us")), zone, column, source, where)
    elif dtype == pl.String:
        utc = _parsed_text(series, zone, column, source, where)
    elif dtype.is_numeric() and not dtype.is_decimal():
        utc = _from_epoch(series, column, source, where)
    elif dtype == pl.Null:
        utc = series.cast(UTC_TIME)
    else:
        example = series.drop_nulls().head(1).to_list()
        shown = f"{dtype} values such as {example[0]!r}" if example else f"{dtype} values"
        raise InputError(
            f"Column {column!r} of {source} cannot be read as times; {_TIMES_EXPECTED}. It holds "
            f"{shown}.",
            path=where,
            column=column,
        )
    return frame.with_columns(utc.dt.convert_time_zone("UTC").alias(column))


def iter_batches(
    data: object,
    *,
    batch_rows: int = 1_048_576,
    columns: Sequence[str] | None = None,
    encoding: str | None = None,
    as_text: Sequence[str] = (),
) -> BatchStream:
    """Stream ``data`` as Polars batches of at most ``batch_rows`` rows, in bounded memory.

    Files are never read whole: Parquet by row batches, CSV by blocks (a file's batches may hold
    fewer than ``batch_rows`` rows), Arrow IPC by record batches. In-memory inputs are sliced
    without copying (a LazyFrame is collected first).

    Parameters
    ----------
    data
        Any input :func:`to_polars` accepts.
    batch_rows
        The most rows a batch holds.
    columns
        Only these columns, in this order; ``None`` keeps all.
    encoding
        The text encoding of a CSV file (default UTF-8); ignored for other inputs.
    as_text
        CSV columns to read as text (see :func:`to_polars`).

    Raises
    ------
    InputError
        As :func:`to_polars`; errors found deeper in a file are raised during iteration.

    Examples
    --------
    >>> import polars as pl
    >>> stream = iter_batches(pl.DataFrame({"a": range(5)}), batch_rows=2)
    >>> [batch.frame.height for batch in stream], stream.total, stream.unit
    ([2, 2, 1], 5, 'rows')
    """
    if isinstance(batch_rows, bool) or not isinstance(batch_rows, int) or batch_rows < 1:
        raise ParameterError(
            f"The 'batch_rows' parameter of iter_batches must be an int >= 1; got {batch_rows!r}.",
            parameter="batch_rows",
        )
    return BatchStream(_source(data, columns, encoding, as_text), batch_rows)


class _Source(ABC):
    """One opened input: its schema, progress total and unit, and how to read it."""

    schema: pl.Schema
    total: int | None
    unit: Unit

    @abstractmethod
    def batches(self, batch_rows: int) -> Iterator[Batch]:
        """Yield the data from the start, in batches of at most ``batch_rows`` rows."""

    @abstractmethod
    def read(self) -> pl.DataFrame:
        """Read all the data at once."""


class _FrameSource(_Source):
    """Data already in memory as one Polars DataFrame."""

    def __init__(self, frame: pl.DataFrame) -> None:
        self.frame = frame
        self.schema = frame.schema
        self.total = frame.height
        self.unit = "rows"

    def batches(self, batch_rows: int) -> Iterator[Batch]:
        for frame in self.frame.iter_slices(batch_rows):
            yield Batch(frame, frame.height)

    def read(self) -> pl.DataFrame:
        return self.frame


class _ParquetSource(_Source):
    """A Parquet file, streamed by row batches."""

    def __init__(self, path: str, columns: Sequence[str] | None) -> None:
        self.path = path
        with _file_errors(path, "parquet"), pq.ParquetFile(path) as parquet:
            arrow_schema = parquet.schema_arrow
            self.total = parquet.metadata.num_rows
        self.columns = _select(arrow_schema.names, columns, source=path, path=path)
        self.schema = _schema_of(arrow_schema, self.columns, path)
        self.unit = "rows"

    def batches(self, batch_rows: int) -> Iterator[Batch]:
        # Without pre-buffering and with a small read buffer pyarrow decodes a row group column
        # by column as batches are consumed, instead of holding the whole row group: streaming a
        # 10M-row file with 1M-row groups peaks at 0.4 GB instead of 1.5 GB.
        with (
            _file_errors(self.path, "parquet"),
            pq.ParquetFile(self.path, pre_buffer=False, buffer_size=_PARQUET_BUFFER) as parquet,
        ):
            for record_batch in parquet.iter_batches(batch_size=batch_rows, columns=self.columns):
                frame = _from_arrow(record_batch.select(self.columns), f"'{self.path}'", self.path)
                yield Batch(frame, frame.height)

    def read(self) -> pl.DataFrame:
        with _file_errors(self.path, "parquet"), pq.ParquetFile(self.path) as parquet:
            table = parquet.read(columns=self.columns)
        return _from_arrow(table.select(self.columns), f"'{self.path}'", self.path)


class _IpcSource(_Source):
    """An Arrow IPC file (random-access file or stream format), memory-mapped."""

    def __init__(self, path: str, columns: Sequence[str] | None, size: int) -> None:
        self.path = path
        with self._open() as (reader, _):
            arrow_schema = reader.schema
            is_file = isinstance(reader, paipc.RecordBatchFileReader)
            self.total = _count_rows(reader) if is_file else size
        self.unit = "rows" if is_file else "bytes"
        self.columns = _select(arrow_schema.names, columns, source=path, path=path)
        self.schema = _schema_of(arrow_schema, self.columns, path)

    @contextmanager
    def _open(self) -> Iterator[tuple[Any, Any]]:
        """Open the file as an IPC file, or else as an IPC stream; yield the reader and source."""
        with _file_errors(self.path, "ipc"), pa.memory_map(self.path) as source:
            try:
                reader = paipc.open_file(source)
            except pa.ArrowInvalid as not_file:
                source.seek(0)
                try:
                    reader = paipc.open_stream(source)
                except pa.ArrowInvalid:
                    raise not_file from None
            yield reader, source

    def _frame(self, record_batch: pa.RecordBatch) -> pl.DataFrame:
        return _from_arrow(record_batch.select(self.columns), f"'{self.path}'", self.path)

    def batches(self, batch_rows: int) -> Iterator[Batch]:
        with self._open() as (reader, source):
            if self.unit == "rows":
                for index in range(reader.num_record_batches):
                    frame = self._frame(reader.get_batch(index))
                    yield from _split(frame, batch_rows, frame.height)
            else:
                chunks = ((self._frame(batch), source.tell()) for batch in reader)
                yield from _settle(chunks, cast("int", self.total), batch_rows)

    def read(self) -> pl.DataFrame:
        with self._open() as (reader, _):
            table = reader.read_all()
        return _from_arrow(table.select(self.columns), f"'{self.path}'", self.path)


class _CsvSource(_Source):
    """A CSV file, streamed by blocks with pyarrow; see the module docstring on widening."""

    def __init__(
        self,
        path: str,
        columns: Sequence[str] | None,
        encoding: str | None,
        size: int,
        as_text: Sequence[str] = (),
    ) -> None:
        self.path = path
        self.size = self.total = size
        self.unit = "bytes"
        self.encoding = encoding or "utf8"
        if size <= _CSV_WHOLE_FILE_BYTES:
            # Transcoding to UTF-8 can triple the bytes pyarrow sees; one block must hold them.
            utf8 = codecs.lookup(self.encoding).name == "utf-8"
            self.block_bytes = size + 1 if utf8 else 3 * size + 1024
        else:
            self.block_bytes = _CSV_BLOCK_BYTES
        delimiter = "\t" if Path(path).suffix.lower() == ".tsv" else ","
        self.parse_options = pacsv.ParseOptions(delimiter=delimiter)
        self.widened: dict[str, pa.DataType] = {}
        self.as_text = list(as_text)
        try:
            with self._open(include=[]) as reader:
                inferred = reader.schema
            self.header: list[str] = inferred.names
        except UnicodeDecodeError as exc:
            raise InputError(
                f"{path}: the header is not valid UTF-8 text. {_ENCODING_HINT}", path=path
            ) from exc
        except (pa.ArrowException, OSError) as exc:
            raise self._error(exc) from exc
        self.inferred = {field.name: field.type for field in inferred}
        duplicated = [name for name, count in Counter(self.header).items() if count > 1]
        if duplicated:
            raise InputError(
                f"{path}: column {duplicated[0]!r} appears more than once in the header; "
                "expected unique column names. Rename the duplicates.",
                path=path,
                column=duplicated[0],
            )
        self.columns = _select(self.header, columns, source=path, path=path)
        unknown_text = [name for name in self.as_text if name not in self.header]
        if unknown_text:
            _select(self.header, unknown_text, source=path, path=path)  # names the column
        self.widened.update(dict.fromkeys(self.as_text, pa.string()))
        self.inferred.update(dict.fromkeys(self.as_text, pa.string()))
        binary = [name for name in self.columns if pa.types.is_binary(self.inferred[name])]
        if binary:
            raise InputError(
                f"{path}: column {binary[0]!r} is not valid UTF-8 text. {_ENCODING_HINT}",
                path=path,
                column=binary[0],
            )
        self.schema = _schema_of(inferred, self.columns, path)

    def _open(self, include: list[str]) -> Any:
        return pacsv.open_csv(
            self.path,
            read_options=pacsv.ReadOptions(block_size=self.block_bytes, encoding=self.encoding),
            parse_options=self.parse_options,
            # Empty fields are missing values in text columns too, as in Polars and pandas.
            convert_options=pacsv.ConvertOptions(
                include_columns=include, column_types=self.widened, strings_can_be_null=True
            ),
        )

    def batches(self, batch_rows: int) -> Iterator[Batch]:
        return _settle(self._chunks(), self.size, batch_rows)

    def read(self) -> pl.DataFrame:
        frames = [chunk for chunk, _ in self._chunks()]
        if not frames:
            return pl.DataFrame(schema=self.schema)
        return pl.concat(frames, how="vertical_relaxed")

    def _chunks(self) -> Iterator[tuple[pl.DataFrame, int]]:
        """Yield each block as a frame with the file position after it, widening as needed."""
        produced = 0
        while True:
            try:
                with self._open(include=self.columns) as reader:
                    self.schema = _schema_of(reader.schema, self.columns, self.path)
                    start = 0
                    for index, record_batch in enumerate(reader):
                        # After a widening the file is read again: skip the rows handed out.
                        rows = record_batch.num_rows
                        skip = min(rows, max(0, produced - start))
                        start += rows
                        if skip < rows:
                            frame = _from_arrow(
                                record_batch.slice(skip), f"'{self.path}'", self.path
                            )
                            if produced == 0:
                                self._check_mixed(frame)
                            produced += frame.height
                            yield frame, (index + 1) * self.block_bytes
                return
            except pa.ArrowInvalid as exc:
                self._widen(exc)
            except UnicodeDecodeError as exc:
                raise InputError(
                    f"{self.path} is not valid {self.encoding} text ({exc.reason} at byte "
                    f"{exc.start}). Pass the file's actual encoding.",
                    path=self.path,
                ) from exc
            except (pa.ArrowException, OSError) as exc:
                raise self._error(exc) from exc

    def _check_mixed(self, first: pl.DataFrame) -> None:
        """Refuse a text column whose first block is nearly all numbers: a mixed-type column.

        pyarrow reads such a column as text, which would profile a sensor as a category; a few
        words among numbers are far more often a data error than a text column.
        """
        for name, dtype in first.schema.items():
            if dtype != pl.String or name in self.as_text:
                continue
            values = first[name].drop_nulls()
            if values.len() < _MIXED_MIN_VALUES:
                continue
            numbers = values.str.strip_chars().cast(pl.Float64, strict=False)
            words = numbers.is_null()
            n_words = int(words.sum())
            if 0 < n_words <= (1.0 - _MIXED_NUMERIC_SHARE) * values.len():
                position = int(first[name].is_not_null().arg_true()[int(words.arg_max() or 0)])
                example = values.filter(words)[0]
                shown = example if len(example) <= 40 else example[:37] + "..."
                raise InputError(
                    f"{self.path}: column {name!r} mixes types: expected numbers (as in "
                    f"{values.len() - n_words:,} of its values) but found '{shown}' on line "
                    f"{position + 2:,}. Clean the column, or read it as text with "
                    f"kinds={{{name!r}: 'text'}} (--kind {name}=text).",
                    path=self.path,
                    column=name,
                )

    def _widen(self, exc: pa.ArrowInvalid) -> None:
        """Widen the column a conversion error names, or raise the error it amounts to."""
        message = str(exc)
        invalid_text = _CSV_UTF8.search(message)
        if invalid_text:
            name = self.header[int(invalid_text["index"])]
            raise InputError(
                f"{self.path}: column {name!r} is not valid UTF-8 text. {_ENCODING_HINT}",
                path=self.path,
                column=name,
            ) from exc
        conversion = _CSV_CONVERSION.search(message)
        if not conversion:
            raise self._error(exc) from exc
        name, value = self.header[int(conversion["index"])], conversion["value"]
        origin = self.inferred[name]
        current = self.widened.get(name, origin)
        # Each widening moves a column up null -> float64 -> string or int -> float64, so the
        # retries end; a column already at the top of its ladder is an error.
        if pa.types.is_null(origin) and not pa.types.is_string(current):
            self.widened[name] = (
                pa.float64() if pa.types.is_null(current) and _is_number(value) else pa.string()
            )
        elif pa.types.is_integer(origin) and pa.types.is_integer(current):
            self.widened[name] = pa.float64()
        else:
            shown = value if len(value) <= 40 else value[:37] + "..."
            raise InputError(
                f"{self.path}: column {name!r} mixes types: expected {_kind(origin)} (as in its "
                f"first rows) but found '{shown}'. Clean the column, or read it as text with "
                f"kinds={{{name!r}: 'text'}} (--kind {name}=text).",
                path=self.path,
                column=name,
            ) from exc

    def _error(self, exc: Exception) -> InputError:
        return InputError(
            f"{self.path} could not be read as CSV: {_reason(exc)}. Check the delimiter and the "
            "quoting, and that every row has as many fields as the header.",
            path=self.path,
        )


def _source(
    data: object,
    columns: Sequence[str] | None,
    encoding: str | None,
    as_text: Sequence[str] = (),
) -> _Source:
    """Open ``data`` as the source that knows how to read it."""
    if encoding is not None:
        try:
            codecs.lookup(encoding)
        except LookupError as exc:
            raise ParameterError(
                "The 'encoding' parameter must name a text encoding such as 'utf-8' or "
                f"'latin-1'; got {encoding!r}.",
                parameter="encoding",
            ) from exc
    if is_path(data):
        path = cast("str | os.PathLike[str]", data)
        name, fmt, size = _inspect(path)
        if fmt == "parquet":
            return _ParquetSource(name, columns)
        if fmt == "ipc":
            return _IpcSource(name, columns, size)
        return _CsvSource(name, columns, encoding, size, as_text)
    if isinstance(data, pl.DataFrame):
        names = data.columns
        return _FrameSource(data.select(_select(names, columns, source="the polars DataFrame")))
    if isinstance(data, pl.LazyFrame):
        return _FrameSource(_collect(data, columns))
    if isinstance(data, pa.Table | pa.RecordBatch):
        kind = "pyarrow " + type(data).__name__
        selected = _select(data.schema.names, columns, source=f"the {kind}")
        return _FrameSource(_from_arrow(data.select(selected), f"the {kind}"))
    if _is_pandas_frame(data):
        return _FrameSource(_from_pandas(data, columns))
    kind = type(data).__qualname__
    if type(data).__module__ != "builtins":
        kind = f"{type(data).__module__}.{kind}"
    raise InputError(
        f"Cannot read data of type {kind}; expected {_ACCEPTED}. "
        "Convert it first, e.g. with polars.DataFrame(data)."
    )


def _inspect(path: str | os.PathLike[str]) -> tuple[str, Format, int]:
    """Check that ``path`` is a readable, non-empty file and name its format and size."""
    name = os.fspath(path)
    try:
        with open(name, "rb") as file:
            head = file.read(8)
            size = os.fstat(file.fileno()).st_size
    except FileNotFoundError as exc:
        raise InputError(f"'{name}' does not exist; {_EXPECTED_FILE}.", path=name) from exc
    except IsADirectoryError as exc:
        raise InputError(
            f"'{name}' is a directory; {_EXPECTED_FILE}. Name a file inside it.", path=name
        ) from exc
    except OSError as exc:
        raise InputError(
            f"'{name}' cannot be read ({exc.strerror}); {_EXPECTED_FILE}. Check its permissions.",
            path=name,
        ) from exc
    suffix = Path(name).suffix.lower()
    fmt = _SUFFIXES.get(suffix)
    if size == 0:
        expected = f"a {_FORMAT_NAMES[fmt]} file" if fmt else "a Parquet, CSV or Arrow IPC file"
        raise InputError(
            f"'{name}' is empty (0 bytes); expected {expected} with data. "
            "Check that the program writing it has finished.",
            path=name,
        )
    if fmt is None:
        if head.startswith(b"PAR1"):
            fmt = "parquet"
        elif head.startswith(b"ARROW1"):
            fmt = "ipc"
        else:
            has = f"the suffix '{suffix}'" if suffix else "no suffix"
            raise InputError(
                f"'{name}' has {has} and is not a Parquet or Arrow IPC file; expected one of "
                f"{_SUPPORTED}. Rename or convert the file.",
                path=name,
            )
    return name, fmt, size


@contextmanager
def _file_errors(path: str, fmt: Format) -> Iterator[None]:
    """Turn pyarrow's errors about a file into an InputError naming the file."""
    try:
        yield
    except (pa.ArrowException, OSError) as exc:
        kind = _FORMAT_NAMES[fmt]
        raise InputError(
            f"'{path}' is not a readable {kind} file ({_reason(exc)}); expected a valid {kind} "
            "file. Check that it was written completely and that its suffix matches its content.",
            path=path,
        ) from exc


def _select(
    available: Sequence[str],
    columns: Sequence[str] | None,
    *,
    source: str,
    path: str | None = None,
) -> list[str]:
    """Return the columns to read, or raise an InputError naming the missing ones."""
    if columns is None:
        return list(available)
    wanted = [columns] if isinstance(columns, str) else list(dict.fromkeys(columns))
    if not wanted:
        raise ParameterError(
            "The 'columns' parameter must name at least one column, or be None for all; got [].",
            parameter="columns",
        )
    known = set(available)
    missing = [name for name in wanted if name not in known]
    if not missing:
        return wanted
    listed = listed_columns(available)
    quoted = ", ".join(repr(name) for name in missing)
    what = f"column {quoted} is" if len(missing) == 1 else f"columns {quoted} are"
    message = f"{what} not in {source}; available: {listed or '(no columns)'}."
    guesses = [
        (name, close[0])
        for name in missing
        if (close := difflib.get_close_matches(name, available, n=1))
    ]
    if len(missing) == 1 and guesses:
        message += f" Did you mean {guesses[0][1]!r}?"
    elif guesses:
        message += " Did you mean " + ", ".join(f"{g!r} for {m!r}" for m, g in guesses) + "?"
    raise InputError(message, path=path, column=missing[0])


def listed_columns(available: Sequence[str]) -> str:
    """The first columns of ``available`` for an error message, and how many more there are."""
    listed = ", ".join(available[:_LISTED_COLUMNS])
    if len(available) > _LISTED_COLUMNS:
        listed += f" and {len(available) - _LISTED_COLUMNS} more"
    return listed


def _from_arrow(
    data: pa.Table | pa.RecordBatch, source: str, path: str | None = None
) -> pl.DataFrame:
    """Convert Arrow data to Polars, keeping dtypes, or raise an InputError naming the source."""
    try:
        frame = pl.from_arrow(data)
    except (pl.exceptions.PolarsError, pa.ArrowException) as exc:
        raise InputError(
            f"{source[:1].upper()}{source[1:]} cannot be converted to Polars ({_reason(exc)}); "
            "expected columns of types Polars supports. Cast or drop the offending column first.",
            path=path,
        ) from exc
    return cast("pl.DataFrame", frame)


def _schema_of(arrow_schema: pa.Schema, columns: Sequence[str], path: str) -> pl.Schema:
    """The Polars schema of ``columns`` of the Arrow schema of the file at ``path``."""
    return _from_arrow(arrow_schema.empty_table().select(columns), f"'{path}'", path).schema


def _collect(lazy: pl.LazyFrame, columns: Sequence[str] | None) -> pl.DataFrame:
    """Collect the selected columns of a LazyFrame, wrapping query errors."""
    try:
        names = lazy.collect_schema().names()
        selected = _select(names, columns, source="the polars LazyFrame")
        return lazy.select(selected).collect()
    except pl.exceptions.PolarsError as exc:
        raise InputError(
            f"The polars LazyFrame could not be collected ({_reason(exc)}); expected a query "
            "that runs. Collect it yourself to see the full error."
        ) from exc


def _is_pandas_frame(data: object) -> bool:
    """Tell whether ``data`` is a pandas DataFrame (or subclass) without importing pandas."""
    return any(
        cls.__name__ == "DataFrame" and cls.__module__.startswith("pandas")
        for cls in type(data).__mro__
    )


def _from_pandas(frame: Any, columns: Sequence[str] | None) -> pl.DataFrame:
    """Convert a pandas DataFrame to Polars, naming any column that mixes types."""
    names = [str(label) for label in frame.columns]
    duplicated = [name for name, count in Counter(names).items() if count > 1]
    if duplicated:
        raise InputError(
            f"The pandas DataFrame has the column {duplicated[0]!r} more than once; expected "
            "unique column names. Rename the duplicates.",
            column=duplicated[0],
        )
    selected = _select(names, columns, source="the pandas DataFrame")
    if columns is not None:
        frame = frame.iloc[:, [names.index(name) for name in selected]]
        names = selected
    try:
        converted: pl.DataFrame = pl.from_pandas(frame)
    except (pa.ArrowException, pl.exceptions.PolarsError, TypeError, ValueError) as exc:
        for position, name in enumerate(names):
            column = frame.iloc[:, position]
            if column.dtype != object:
                continue
            try:
                pa.array(column, from_pandas=True)
            except (pa.ArrowException, TypeError, ValueError):
                found = sorted({kind.__name__ for kind in column.dropna().map(type).unique()})
                raise InputError(
                    f"Column {name!r} of the pandas DataFrame mixes types ({', '.join(found)}); "
                    f"expected one type per column. Convert it first, e.g. "
                    f"df[{name!r}] = df[{name!r}].astype(str).",
                    column=name,
                ) from exc
        raise InputError(
            f"The pandas DataFrame cannot be converted to Polars ({_reason(exc)}); expected "
            "columns of plain types. Cast or drop the offending column first."
        ) from exc
    return converted


def _time_zone(timezone: str | None) -> str:
    """The time zone of naive times: ``timezone`` once checked, or UTC."""
    if timezone is None:
        return "UTC"
    try:
        pl.select(pl.datetime(2024, 1, 1).dt.replace_time_zone(timezone))
        zoneinfo.ZoneInfo(timezone)
    except (pl.exceptions.PolarsError, zoneinfo.ZoneInfoNotFoundError, ValueError) as exc:
        close = difflib.get_close_matches(timezone, sorted(zoneinfo.available_timezones()), n=1)
        hint = f" Did you mean {close[0]!r}?" if close else ""
        raise ParameterError(
            f"The 'timezone' parameter must name an IANA time zone such as 'Europe/Berlin' or "
            f"'UTC'; got {timezone!r}.{hint}",
            parameter="timezone",
        ) from exc
    return timezone


def _localized(
    times: pl.Series, zone: str, column: str, source: str, path: str | None
) -> pl.Series:
    """Naive ``times`` as the local times of ``zone`` they are, in UTC."""
    if zone == "UTC":
        return times.dt.replace_time_zone("UTC")
    local = times.dt.replace_time_zone(zone, ambiguous="earliest", non_existent="null")
    skipped = local.is_null() & times.is_not_null()
    if skipped.any():
        example = times.filter(skipped)[0]
        raise InputError(
            f"Column {column!r} of {source} holds {example}, a time that does not exist in "
            f"{zone} (the clocks skip it when daylight saving time starts); expected local times "
            f"of {zone}. Correct the {int(skipped.sum()):,} such value(s), or give the times with "
            "their UTC offset.",
            path=path,
            column=column,
        )
    return local.dt.convert_time_zone("UTC")


def _parsed_text(
    text: pl.Series, zone: str, column: str, source: str, path: str | None
) -> pl.Series:
    """ISO 8601 ``text`` as UTC datetimes (see :func:`to_utc`), or an error naming a value.

    Polars first reads the column in the form of its first value; the forms in
    ``_ISO_FORMATS`` are then tried, each on the rows no earlier one could read: a loop over a
    few forms, each step vectorized over the rows.
    """
    stripped = text.str.strip_chars()
    cleaned = stripped.zip_with(stripped != "", pl.Series([None], dtype=pl.String))
    aware = pl.Series(text.name, [None] * len(text), dtype=UTC_TIME)
    naive = pl.Series(text.name, [None] * len(text), dtype=pl.Datetime("us"))
    try:
        first = cleaned.str.to_datetime(time_unit="us", strict=False)
    except pl.exceptions.PolarsError:  # no form could be inferred from the first value
        first = naive
    # Polars also infers day-first and other forms that are not ISO 8601 and may be ambiguous.
    first = first.zip_with(cleaned.str.contains(_ISO_START).fill_null(False), first.clear(1))
    if isinstance(first.dtype, pl.Datetime) and first.dtype.time_zone is not None:
        aware = first.dt.convert_time_zone("UTC")
    else:
        naive = first
    pending = cleaned.is_not_null() & first.is_null()
    rows = pending.arg_true()
    values = cleaned.gather(rows).to_frame().select(_normalized_text(pl.first())).to_series()
    for fmt, with_offset in _ISO_FORMATS:
        if rows.len() == 0:
            break
        dtype = UTC_TIME if with_offset else pl.Datetime("us")
        parsed = values.str.strptime(pl.Date if fmt == "%Y-%m-%d" else dtype, fmt, strict=False)
        read = parsed.is_not_null()
        if not read.any():
            continue
        where, found = rows.filter(read), parsed.filter(read).cast(dtype)
        if with_offset:
            aware = aware.scatter(where, found)
        else:
            naive = naive.scatter(where, found)
        pending = pending.scatter(where, False)
        rows, values = rows.filter(~read), values.filter(~read)
    if pending.any():
        bad = text.filter(pending)
        shown = bad[0] if len(bad[0]) <= 40 else bad[0][:37] + "..."
        raise InputError(
            f"Column {column!r} of {source} cannot be read as times; {_TIMES_EXPECTED}. Found "
            f"{shown!r} in row {int(pending.arg_max() or 0) + 1:,} ({len(bad):,} of "
            f"{cleaned.drop_nulls().len():,} values are not times).",
            path=path,
            column=column,
        )
    return aware.fill_null(_localized(naive, zone, column, source, path))


def _normalized_text(text: pl.Expr) -> pl.Expr:
    """ISO 8601 variants brought to one form: a space between date and time, ``Z`` as
    ``+00:00``, an hour-only offset with its minutes, no space before the offset."""
    return (
        text.str.replace(r"^(\d{4}-\d{2}-\d{2})[Tt ]\s*", "${1} ")
        .str.replace(r"\s*[Zz]$", "+00:00")
        .str.replace(r"^(\d{4}-\d{2}-\d{2} [0-9:.]+)\s*([+-]\d{2})$", "${1}${2}:00")
        .str.replace(r"^(\d{4}-\d{2}-\d{2} [0-9:.]+)\s+([+-]\d{2}:?\d{2})$", "${1}${2}")
    )


def _from_epoch(numbers: pl.Series, column: str, source: str, path: str | None) -> pl.Series:
    """Epoch numbers as UTC datetimes, in the unit their magnitude implies (see :func:`to_utc`)."""
    values = numbers.cast(pl.Float64).fill_nan(None)
    largest = values.abs().max()
    if largest is None:  # nulls (and NaN) only
        return values.cast(pl.Int64).cast(pl.Datetime("us")).dt.replace_time_zone("UTC")
    magnitude = float(cast("float", largest))
    unit = next((u for u in _EPOCH_UNITS if u[1] <= magnitude < u[2]), None)
    outside = (
        values.is_not_null() & ~values.is_between(unit[1], unit[2], closed="left")
        if unit is not None
        else values.is_not_null()
    )
    if unit is None or outside.any():
        example = numbers.filter(outside)[0]
        among = f" among values in {unit[0]} (up to {magnitude:.3g})" if unit else ""
        raise InputError(
            f"Column {column!r} of {source} holds numbers that are not epoch times: expected "
            "epoch seconds (1e8 to 1e11, that is 1973 to 5138), milliseconds (1e11 to 1e14), "
            "microseconds (to 1e17) or nanoseconds (to 1e20), one unit per column; found "
            f"{example!r} in row {int(outside.arg_max() or 0) + 1:,}{among}.",
            path=path,
            column=column,
        )
    _, _, _, multiplier, divisor = unit
    if numbers.dtype.is_integer():  # exact: nanoseconds since 1973 do not fit a float
        micros = (numbers // divisor).cast(pl.Int64) * multiplier
    else:
        micros = (values * multiplier / divisor).round().cast(pl.Int64)
    return micros.cast(pl.Datetime("us")).dt.replace_time_zone("UTC")


def _split(frame: pl.DataFrame, batch_rows: int, advance: int) -> Iterator[Batch]:
    """Slice ``frame`` into batches of at most ``batch_rows`` rows, sharing out ``advance``."""
    rows = frame.height
    if rows <= batch_rows:
        yield Batch(frame, advance)
        return
    for start in range(0, rows, batch_rows):
        end = min(start + batch_rows, rows)
        share = advance * end // rows - advance * start // rows
        yield Batch(frame.slice(start, end - start), share)


def _settle(
    chunks: Iterable[tuple[pl.DataFrame, int]], total: int, batch_rows: int
) -> Iterator[Batch]:
    """Turn frames with (estimated) file positions into batches whose advances sum to ``total``.

    Each chunk is held back until the next one arrives, so that the last can carry whatever the
    estimates left over.
    """
    reported = 0
    held: pl.DataFrame | None = None
    held_position = 0
    for frame, position in chunks:
        if held is not None:
            advance = max(0, min(held_position, total) - reported)
            reported += advance
            yield from _split(held, batch_rows, advance)
        held, held_position = frame, position
    if held is not None:
        yield from _split(held, batch_rows, max(0, total - reported))


def _count_rows(reader: Any) -> int:
    """The rows of an Arrow IPC file, from its metadata where pyarrow can (>= 26)."""
    if hasattr(reader, "count_rows"):
        return int(reader.count_rows())
    return sum(reader.get_batch(index).num_rows for index in range(reader.num_record_batches))


def _is_number(value: str) -> bool:
    """Tell whether Arrow parses ``value`` as a floating-point number."""
    try:
        pc.cast(pa.array([value]), pa.float64())
    except pa.ArrowInvalid:
        return False
    return True


def _kind(dtype: pa.DataType) -> str:
    """Describe the values of an Arrow type in words, for error messages."""
    if pa.types.is_integer(dtype) or pa.types.is_floating(dtype) or pa.types.is_decimal(dtype):
        return "numbers"
    if pa.types.is_boolean(dtype):
        return "true/false values"
    if pa.types.is_date(dtype):
        return "dates"
    if pa.types.is_timestamp(dtype):
        return "timestamps"
    if pa.types.is_time(dtype):
        return "times of day"
    return f"{dtype} values"


def _reason(exc: BaseException) -> str:
    """The first line of a third-party error message, shortened, for a one-line message."""
    lines = str(exc).strip().splitlines() or [type(exc).__name__]
    first = lines[0].rstrip(".")
    return first if len(first) <= 200 else first[:197] + "..."
