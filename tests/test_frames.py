"""Tests of mlwarden.frames: every input type to Polars, streamed batches, and bad input."""

from __future__ import annotations

import datetime as dt
import os
from typing import TYPE_CHECKING
from zoneinfo import ZoneInfo

import pandas as pd
import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from polars.testing import assert_frame_equal

from mlwarden import frames
from mlwarden.exceptions import InputError, ParameterError
from mlwarden.frames import Batch, detect_format, is_path, iter_batches, to_polars, to_utc

if TYPE_CHECKING:
    from collections.abc import Callable
    from pathlib import Path

UTC = dt.UTC


@pytest.fixture
def frame() -> pl.DataFrame:
    """A frame with one column of each dtype the adapters must keep."""
    return pl.DataFrame(
        {
            "id": [1, 2, 3],
            "pressure": [1.5, None, 3.25],
            "name": ["a", "b", None],
            "day": [dt.date(2024, 1, 1), dt.date(2024, 1, 2), dt.date(2024, 1, 3)],
            "at": [dt.datetime(2024, 1, 1, 10, tzinfo=UTC)] * 3,
            "kind": pl.Series(["x", "y", "x"], dtype=pl.Categorical),
            "ok": [True, False, None],
            "gap": pl.Series([None, None, None], dtype=pl.Float64),
        }
    )


@pytest.fixture
def csv_frame() -> pl.DataFrame:
    """A frame whose dtypes survive a trip through CSV text."""
    return pl.DataFrame(
        {
            "id": [1, 2, 3],
            "pressure": [1.5, None, 3.25],
            "name": ["a", "b", None],
            "day": [dt.date(2024, 1, 1), dt.date(2024, 1, 2), dt.date(2024, 1, 3)],
            "ok": [True, False, None],
        }
    )


@pytest.fixture
def multi_block_csv(monkeypatch: pytest.MonkeyPatch) -> None:
    """Read CSV files in 64 KiB blocks, as if every test file were too large for one block."""
    monkeypatch.setattr(frames, "_CSV_WHOLE_FILE_BYTES", 0)
    monkeypatch.setattr(frames, "_CSV_BLOCK_BYTES", 1 << 16)


def _write_lines(path: Path, lines: list[str], encoding: str = "utf-8") -> Path:
    path.write_bytes(("\n".join(lines) + "\n").encode(encoding))
    return path


def _collect(stream: frames.BatchStream) -> pl.DataFrame:
    return pl.concat([batch.frame for batch in stream], how="vertical_relaxed")


WRITERS: dict[str, Callable[[pl.DataFrame, Path], None]] = {
    "data.parquet": lambda df, path: df.write_parquet(path),
    "data.pq": lambda df, path: df.write_parquet(path),
    "data.arrow": lambda df, path: df.write_ipc(path),
    "data.feather": lambda df, path: df.write_ipc(path, compression="lz4"),
    "data.ipc": lambda df, path: df.write_ipc_stream(path),
    "parquet.bin": lambda df, path: df.write_parquet(path),
    "arrow.bin": lambda df, path: df.write_ipc(path),
}
FORMATS = {
    "data.parquet": "parquet",
    "data.pq": "parquet",
    "data.arrow": "ipc",
    "data.feather": "ipc",
    "data.ipc": "ipc",
    "parquet.bin": "parquet",
    "arrow.bin": "ipc",
}


# --- round trips --------------------------------------------------------------------------------


def test_in_memory_inputs_round_trip_with_dtypes(frame: pl.DataFrame) -> None:
    table = frame.to_arrow()
    inputs = {
        "polars": frame,
        "lazy": frame.lazy(),
        "table": table,
        "record batch": table.combine_chunks().to_batches()[0],
    }
    for data in inputs.values():
        assert_frame_equal(to_polars(data), frame)


def test_arrow_types_map_to_polars_dtypes() -> None:
    table = pa.table(
        {
            "at": pa.array([0, 1], pa.timestamp("us", tz="UTC")),
            "day": pa.array([0, 1], pa.date32()),
            "code": pa.array(["a", "b"]).dictionary_encode(),
            "text": pa.array(["a", "b"], pa.large_string()),
        }
    )
    assert to_polars(table).schema == pl.Schema(
        {
            "at": pl.Datetime("us", "UTC"),
            "day": pl.Date,
            "code": pl.Categorical(),
            "text": pl.String,
        }
    )


def test_pandas_round_trip_keeps_values_and_dtypes() -> None:
    data = pd.DataFrame(
        {
            "id": [1, 2, 3],
            "pressure": [1.5, float("nan"), 3.0],
            "name": ["a", "b", None],
            "at": pd.date_range("2024-01-01", periods=3, freq="h", tz="UTC", unit="us"),
            "kind": pd.Categorical(["x", "y", "x"]),
            "empty": pd.Series([None, None, None], dtype=object),
        }
    )
    result = to_polars(data)
    assert result.schema == pl.Schema(
        {
            "id": pl.Int64,
            "pressure": pl.Float64,
            "name": pl.String,
            "at": pl.Datetime("us", "UTC"),
            "kind": pl.Categorical(),
            "empty": pl.String,
        }
    )
    assert result["pressure"].to_list() == [1.5, None, 3.0]
    assert result["name"].to_list() == ["a", "b", None]
    assert result["empty"].null_count() == 3


@pytest.mark.parametrize("name", list(WRITERS))
def test_binary_files_round_trip_with_dtypes(
    tmp_path: Path, frame: pl.DataFrame, name: str
) -> None:
    path = tmp_path / name
    WRITERS[name](frame, path)
    assert detect_format(path) == FORMATS[name]
    assert_frame_equal(to_polars(path), frame)
    assert_frame_equal(to_polars(str(path)), frame)
    assert_frame_equal(_collect(iter_batches(path, batch_rows=2)), frame)


@pytest.mark.parametrize(("name", "separator"), [("d.csv", ","), ("d.tsv", "\t"), ("d.txt", ",")])
def test_csv_files_round_trip_with_dtypes(
    tmp_path: Path, csv_frame: pl.DataFrame, name: str, separator: str
) -> None:
    path = tmp_path / name
    csv_frame.write_csv(path, separator=separator)
    assert detect_format(path) == "csv"
    assert_frame_equal(to_polars(path), csv_frame)
    assert_frame_equal(_collect(iter_batches(path, batch_rows=2)), csv_frame)


def test_csv_timestamps_read_as_datetimes(tmp_path: Path) -> None:
    path = _write_lines(
        tmp_path / "t.csv", ["at,n", "2024-01-01 10:00:00,1", "2024-01-02 11:30:00,2"]
    )
    result = to_polars(path)
    assert isinstance(result.schema["at"], pl.Datetime)
    assert result["at"].to_list() == [dt.datetime(2024, 1, 1, 10), dt.datetime(2024, 1, 2, 11, 30)]


def test_is_path_tells_paths_from_data(tmp_path: Path, frame: pl.DataFrame) -> None:
    assert is_path("data.csv")
    assert is_path(tmp_path / "data.csv")
    assert not is_path(frame)
    assert not is_path(b"data.csv")


# --- column selection ---------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["polars", "lazy", "arrow", "pandas", "parquet", "csv", "ipc"])
def test_columns_selects_in_the_given_order(
    tmp_path: Path, csv_frame: pl.DataFrame, kind: str
) -> None:
    data: object = {
        "polars": csv_frame,
        "lazy": csv_frame.lazy(),
        "arrow": csv_frame.to_arrow(),
        "pandas": csv_frame.to_pandas(),
    }.get(kind)
    if data is None:
        data = tmp_path / f"data.{kind}"
        getattr(csv_frame, f"write_{kind}")(data)
    assert to_polars(data, columns=["name", "id"]).columns == ["name", "id"]
    stream = iter_batches(data, columns=["pressure"])
    assert stream.names == ["pressure"]
    assert _collect(stream)["pressure"].to_list() == [1.5, None, 3.25]


@pytest.mark.parametrize("kind", ["polars", "pandas", "parquet", "csv", "ipc"])
def test_unknown_column_is_named_with_a_suggestion(
    tmp_path: Path, csv_frame: pl.DataFrame, kind: str
) -> None:
    data: object = {"polars": csv_frame, "pandas": csv_frame.to_pandas()}.get(kind)
    path = None
    if data is None:
        data = path = tmp_path / f"data.{kind}"
        getattr(csv_frame, f"write_{kind}")(path)
    with pytest.raises(InputError) as caught:
        to_polars(data, columns=["id", "presure"])
    message = str(caught.value)
    assert caught.value.column == "presure"
    assert caught.value.path == (str(path) if path else None)
    assert "'presure' is not in" in message
    assert "available: id, pressure, name, day, ok" in message
    assert "Did you mean 'pressure'?" in message
    assert "\n" not in message


def test_a_single_column_name_selects_that_column(csv_frame: pl.DataFrame) -> None:
    assert to_polars(csv_frame, columns="name").columns == ["name"]


def test_several_unknown_columns_are_all_named(csv_frame: pl.DataFrame) -> None:
    with pytest.raises(InputError, match=r"columns 'presure', 'zzz' are not in") as caught:
        iter_batches(csv_frame, columns=["presure", "zzz"])
    assert caught.value.column == "presure"


# --- batches ------------------------------------------------------------------------------------


def test_parquet_batches_are_bounded_and_count_rows(tmp_path: Path) -> None:
    data = pl.DataFrame({"x": range(50_000), "y": pl.Series(range(50_000)).cast(pl.Float64)})
    path = tmp_path / "big.parquet"
    data.write_parquet(path)
    stream = iter_batches(path, batch_rows=10_000)
    assert (stream.total, stream.unit, stream.names) == (50_000, "rows", ["x", "y"])
    batches = list(stream)
    assert [batch.frame.height for batch in batches] == [10_000] * 5
    assert sum(batch.advance for batch in batches) == stream.total
    assert_frame_equal(pl.concat([batch.frame for batch in batches]), data)


def test_csv_batches_count_bytes_of_the_file(tmp_path: Path) -> None:
    data = pl.DataFrame({"x": range(5_000), "name": [f"n{i}" for i in range(5_000)]})
    path = tmp_path / "d.csv"
    data.write_csv(path)
    stream = iter_batches(path, batch_rows=1_000)
    assert (stream.total, stream.unit) == (path.stat().st_size, "bytes")
    batches = list(stream)
    assert all(0 < batch.frame.height <= 1_000 for batch in batches)
    assert all(batch.advance > 0 for batch in batches)
    assert sum(batch.advance for batch in batches) == path.stat().st_size
    assert_frame_equal(pl.concat([batch.frame for batch in batches]), data)


@pytest.mark.usefixtures("multi_block_csv")
def test_csv_larger_than_a_block_streams_every_row_once(tmp_path: Path) -> None:
    data = pl.DataFrame({"x": range(60_000), "name": [f"n{i}" for i in range(60_000)]})
    path = tmp_path / "d.csv"
    data.write_csv(path)
    stream = iter_batches(path, batch_rows=50_000)
    batches = list(stream)
    assert len(batches) > 5
    assert all(batch.frame.height <= 50_000 for batch in batches)
    assert sum(batch.advance for batch in batches) == path.stat().st_size
    assert_frame_equal(pl.concat([batch.frame for batch in batches]), data)


def test_ipc_batches_count_rows_in_files_and_bytes_in_streams(tmp_path: Path) -> None:
    data = pl.DataFrame({"x": range(1_000)})
    data.write_ipc(tmp_path / "file.arrow")
    data.write_ipc_stream(tmp_path / "stream.arrow")
    in_file = iter_batches(tmp_path / "file.arrow", batch_rows=300)
    assert (in_file.total, in_file.unit) == (1_000, "rows")
    assert [batch.frame.height for batch in in_file] == [300, 300, 300, 100]
    in_stream = iter_batches(tmp_path / "stream.arrow", batch_rows=300)
    size = (tmp_path / "stream.arrow").stat().st_size
    assert (in_stream.total, in_stream.unit) == (size, "bytes")
    assert sum(batch.advance for batch in in_stream) == size
    assert_frame_equal(_collect(in_stream), data)


def test_in_memory_batches_are_slices(frame: pl.DataFrame) -> None:
    stream = iter_batches(frame, batch_rows=2)
    batches = list(stream)
    assert (stream.total, stream.unit, stream.schema) == (3, "rows", frame.schema)
    assert all(isinstance(batch, Batch) for batch in batches)
    assert [(batch.frame.height, batch.advance) for batch in batches] == [(2, 2), (1, 1)]
    assert_frame_equal(pl.concat([batch.frame for batch in batches]), frame)


def test_batch_streams_can_be_read_twice(tmp_path: Path, csv_frame: pl.DataFrame) -> None:
    path = tmp_path / "d.csv"
    csv_frame.write_csv(path)
    stream = iter_batches(path, batch_rows=2)
    assert_frame_equal(_collect(stream), _collect(stream))


def test_empty_inputs_yield_one_empty_batch_with_their_columns(tmp_path: Path) -> None:
    empty = pl.DataFrame({"a": pl.Series([], dtype=pl.Int64), "b": pl.Series([], dtype=pl.String)})
    empty.write_parquet(tmp_path / "empty.parquet")
    for data in (empty, empty.to_arrow(), tmp_path / "empty.parquet"):
        batches = list(iter_batches(data))
        assert len(batches) == 1
        assert batches[0].frame.schema == empty.schema
        assert batches[0].advance == 0


def test_batch_rows_must_be_positive(frame: pl.DataFrame) -> None:
    with pytest.raises(ParameterError, match=r"'batch_rows'.*>= 1; got 0") as caught:
        iter_batches(frame, batch_rows=0)
    assert caught.value.parameter == "batch_rows"


# --- CSV types ----------------------------------------------------------------------------------


def test_csv_with_only_a_header_gives_zero_rows_with_its_columns(tmp_path: Path) -> None:
    path = _write_lines(tmp_path / "h.csv", ["id,pressure,name"])
    assert to_polars(path).shape == (0, 3)
    stream = iter_batches(path)
    batches = list(stream)
    assert stream.names == ["id", "pressure", "name"]
    assert len(batches) == 1
    assert batches[0].frame.columns == ["id", "pressure", "name"]
    assert batches[0].frame.height == 0
    assert batches[0].advance == path.stat().st_size


def test_csv_integers_then_decimals_read_as_floats(tmp_path: Path) -> None:
    lines = ["id,pressure"] + [f"{i},{i}" for i in range(1_000)] + ["1000,1.5"]
    result = to_polars(_write_lines(tmp_path / "d.csv", lines))
    assert result.schema["pressure"] == pl.Float64
    assert result["pressure"][-1] == 1.5
    assert result["pressure"][:1000].to_list() == [float(i) for i in range(1_000)]


@pytest.mark.usefixtures("multi_block_csv")
def test_csv_columns_widen_when_a_later_block_needs_it(tmp_path: Path) -> None:
    n = 20_000
    lines = ["id,pressure,note"] + [f"{i},{i}," for i in range(n)]
    lines += [f"{n},1.5,7", f"{n + 1},2,word", f"{n + 2},3,"]
    path = _write_lines(tmp_path / "d.csv", lines)
    stream = iter_batches(path, batch_rows=5_000)
    assert stream.schema["pressure"] == pl.Int64
    batches = list(stream)
    data = pl.concat([batch.frame for batch in batches], how="vertical_relaxed")
    assert data["id"].to_list() == list(range(n + 3))
    assert data["pressure"].tail(3).to_list() == [1.5, 2.0, 3.0]
    assert data["note"].tail(3).to_list() == ["7", "word", None]
    assert sum(batch.advance for batch in batches) == path.stat().st_size
    assert stream.schema == pl.Schema({"id": pl.Int64, "pressure": pl.Float64, "note": pl.String})
    whole = to_polars(path)
    assert whole.schema == stream.schema
    assert whole["pressure"].head(3).to_list() == [0.0, 1.0, 2.0]


@pytest.mark.usefixtures("multi_block_csv")
def test_csv_empty_column_that_later_holds_numbers_reads_as_float(tmp_path: Path) -> None:
    lines = ["id,reading"] + [f"{i}," for i in range(20_000)] + ["20000,4"]
    result = to_polars(_write_lines(tmp_path / "d.csv", lines))
    assert result.schema["reading"] == pl.Float64
    assert result["reading"].drop_nulls().to_list() == [4.0]


@pytest.mark.usefixtures("multi_block_csv")
def test_csv_numbers_then_words_is_a_mixed_type_error(tmp_path: Path) -> None:
    path = tmp_path / "data.csv"
    _write_lines(path, ["id,pressure"] + [f"{i},{i}" for i in range(20_000)] + ["1,abc"])
    with pytest.raises(InputError) as caught:
        list(iter_batches(path))
    assert str(caught.value) == (
        f"{path}: column 'pressure' mixes types: expected numbers (as in its first rows) but "
        "found 'abc'. Clean the column, or read it as text with kinds={'pressure': 'text'} "
        "(--kind pressure=text)."
    )
    assert (caught.value.path, caught.value.column) == (str(path), "pressure")
    with pytest.raises(InputError, match="mixes types"):
        to_polars(path)


def test_latin1_csv_needs_its_encoding(tmp_path: Path) -> None:
    path = _write_lines(tmp_path / "data.csv", ["id,name", "1,café", "2,Müller"], "latin-1")
    with pytest.raises(InputError) as caught:
        to_polars(path)
    assert (caught.value.path, caught.value.column) == (str(path), "name")
    assert "column 'name' is not valid UTF-8 text" in str(caught.value)
    assert "encoding='latin-1'" in str(caught.value)
    assert "--encoding latin-1" in str(caught.value)
    assert to_polars(path, encoding="latin-1")["name"].to_list() == ["café", "Müller"]
    assert _collect(iter_batches(path, encoding="latin-1"))["name"].to_list() == ["café", "Müller"]


@pytest.mark.usefixtures("multi_block_csv")
def test_latin1_text_after_the_first_block_is_named(tmp_path: Path) -> None:
    lines = ["id,name"] + [f"{i},n{i}" for i in range(20_000)] + ["20000,café"]
    path = _write_lines(tmp_path / "data.csv", lines, "latin-1")
    with pytest.raises(InputError, match="column 'name' is not valid UTF-8") as caught:
        list(iter_batches(path))
    assert caught.value.column == "name"
    assert to_polars(path, encoding="latin-1")["name"][-1] == "café"


def test_latin1_header_needs_its_encoding(tmp_path: Path) -> None:
    path = _write_lines(tmp_path / "data.csv", ["année,n", "2024,1"], "latin-1")
    with pytest.raises(InputError, match=r"header is not valid UTF-8.*encoding='latin-1'"):
        to_polars(path)
    assert to_polars(path, encoding="latin-1").columns == ["année", "n"]


def test_unknown_encoding_is_a_parameter_error(tmp_path: Path) -> None:
    path = _write_lines(tmp_path / "d.csv", ["a", "1"])
    with pytest.raises(ParameterError, match=r"'encoding'.*got 'klingon'"):
        to_polars(path, encoding="klingon")


def test_ragged_csv_names_the_file(tmp_path: Path) -> None:
    path = _write_lines(tmp_path / "d.csv", ["a,b", "1,2", "1,2,3"])
    with pytest.raises(InputError, match=r"could not be read as CSV: .*Expected 2 columns, got 3"):
        to_polars(path)


def test_duplicate_csv_header_is_named(tmp_path: Path) -> None:
    path = _write_lines(tmp_path / "d.csv", ["a,b,a", "1,2,3"])
    with pytest.raises(InputError, match="'a' appears more than once") as caught:
        to_polars(path)
    assert caught.value.column == "a"


# --- bad input ----------------------------------------------------------------------------------


def test_missing_file(tmp_path: Path) -> None:
    path = tmp_path / "x.parquet"
    with pytest.raises(InputError) as caught:
        to_polars(path)
    assert str(caught.value) == (
        f"'{path}' does not exist; expected a path to a Parquet, CSV or Arrow IPC file."
    )
    assert caught.value.path == str(path)


def test_directory_is_not_a_file(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="is a directory; expected a path") as caught:
        iter_batches(tmp_path)
    assert caught.value.path == str(tmp_path)


@pytest.mark.skipif(os.name != "posix" or os.geteuid() == 0, reason="root reads any file")
def test_unreadable_file(tmp_path: Path, csv_frame: pl.DataFrame) -> None:
    path = tmp_path / "d.csv"
    csv_frame.write_csv(path)
    path.chmod(0)
    with pytest.raises(InputError, match=r"cannot be read.*Check its permissions") as caught:
        to_polars(path)
    assert caught.value.path == str(path)


def test_unknown_format_lists_the_supported_ones(tmp_path: Path) -> None:
    path = tmp_path / "data.xlsx"
    path.write_text("not a table")
    with pytest.raises(InputError) as caught:
        detect_format(path)
    message = str(caught.value)
    assert "suffix '.xlsx'" in message
    for suffix in (".parquet", ".csv", ".tsv", ".arrow", ".feather"):
        assert suffix in message
    assert caught.value.path == str(path)


@pytest.mark.parametrize("name", ["d.csv", "d.parquet", "d.arrow", "d.dat"])
def test_empty_file(tmp_path: Path, name: str) -> None:
    path = tmp_path / name
    path.touch()
    with pytest.raises(InputError, match=r"is empty \(0 bytes\)") as caught:
        to_polars(path)
    assert caught.value.path == str(path)


@pytest.mark.parametrize(("name", "kind"), [("d.parquet", "Parquet"), ("d.arrow", "Arrow IPC")])
def test_corrupt_file_names_the_file(tmp_path: Path, name: str, kind: str) -> None:
    path = tmp_path / name
    path.write_bytes(bytes(range(256)) * 8)
    with pytest.raises(InputError, match=f"is not a readable {kind} file") as caught:
        iter_batches(path)
    assert caught.value.path == str(path)
    assert isinstance(caught.value.__cause__, pa.ArrowException)


def test_parquet_truncated_after_its_header_names_the_file(tmp_path: Path) -> None:
    path = tmp_path / "d.parquet"
    pq.write_table(pa.table({"x": range(1_000)}), path)
    path.write_bytes(path.read_bytes()[:-100])
    with pytest.raises(InputError, match="not a readable Parquet file"):
        to_polars(path)


def test_pandas_column_mixing_types_is_named() -> None:
    data = pd.DataFrame({"ok": [1, 2, 3], "code": pd.Series([1, "x", 2], dtype=object)})
    with pytest.raises(InputError) as caught:
        to_polars(data)
    assert caught.value.column == "code"
    assert "mixes types (int, str)" in str(caught.value)


def test_pandas_duplicate_columns_are_named() -> None:
    data = pd.DataFrame([[1, 2]], columns=["a", "a"])
    with pytest.raises(InputError, match="'a' more than once") as caught:
        to_polars(data)
    assert caught.value.column == "a"


@pytest.mark.parametrize(
    ("data", "type_name"), [([1, 2], "list"), ({"a": [1]}, "dict"), (3, "int")]
)
def test_unsupported_type_is_named(data: object, type_name: str) -> None:
    with pytest.raises(InputError) as caught:
        to_polars(data)
    message = str(caught.value)
    assert f"data of type {type_name};" in message
    assert "polars DataFrame" in message
    assert "pandas DataFrame" in message
    assert "Parquet, CSV or Arrow IPC file" in message


def test_failing_lazy_query_is_an_input_error() -> None:
    query = pl.LazyFrame({"a": ["x"]}).select(pl.col("a").cast(pl.Int64))
    with pytest.raises(InputError, match="LazyFrame could not be collected"):
        to_polars(query)


def test_csv_text_column_of_numbers_with_a_word_is_a_mixed_type_error(tmp_path: Path) -> None:
    path = tmp_path / "small.csv"
    _write_lines(path, ["tag,value"] + [f"T{i},{i * 0.5}" for i in range(50)] + ["T50,n/a?"])
    with pytest.raises(InputError) as caught:
        to_polars(path)
    assert caught.value.column == "value"
    assert "found 'n/a?' on line 52" in str(caught.value)
    frame = to_polars(path, as_text=["value"])
    assert frame["value"].dtype == pl.String
    assert frame["value"][-1] == "n/a?"
    # Codes that are only sometimes numeric stay a text column: too many words to be noise.
    codes = tmp_path / "codes.csv"
    _write_lines(codes, ["code"] + [f"{i}" if i % 3 else f"X{i}" for i in range(60)])
    assert to_polars(codes)["code"].dtype == pl.String


# -- times: to_utc -----------------------------------------------------------------------------

MOMENTS = st.datetimes(min_value=dt.datetime(1973, 3, 4), max_value=dt.datetime(2200, 1, 1))


def _utc(values: object, **kwargs: object) -> list[object]:
    return to_utc(pl.DataFrame({"at": values}), "at", **kwargs)["at"].to_list()  # type: ignore[arg-type]


@settings(max_examples=200, deadline=None)
@given(moment=MOMENTS)
def test_naive_aware_and_iso_text_of_one_instant_agree(moment: dt.datetime) -> None:
    aware = moment.replace(tzinfo=UTC)
    iso = moment.isoformat()
    forms = [
        [moment],
        [aware],
        [aware.astimezone(dt.timezone(dt.timedelta(hours=-5, minutes=-30)))],
        [iso],
        [iso.replace("T", " ")],
        [iso + "Z"],
        [iso + "+00:00"],
        [(aware + dt.timedelta(hours=2)).replace(tzinfo=None).isoformat() + "+02:00"],
        [f" {iso}+0000 "],
    ]
    for values in forms:
        assert _utc(values) == [aware], values


@settings(max_examples=200, deadline=None)
@given(seconds=st.integers(min_value=10**8, max_value=10**11 - 1))
def test_epoch_seconds_and_milliseconds_agree(seconds: int) -> None:
    expected = [dt.datetime(1970, 1, 1, tzinfo=UTC) + dt.timedelta(seconds=seconds)]
    assert _utc([seconds]) == expected
    assert _utc([seconds * 1000]) == expected
    assert _utc([float(seconds)]) == expected
    assert _utc([seconds * 1_000_000_000]) == expected


@settings(max_examples=100, deadline=None)
@given(moment=MOMENTS.filter(lambda m: m.year < 2100))
def test_naive_times_of_a_time_zone_are_its_local_times(moment: dt.datetime) -> None:
    berlin = ZoneInfo("Europe/Berlin")
    local = moment.replace(tzinfo=berlin)
    if local.astimezone(UTC).astimezone(berlin).replace(tzinfo=None) != moment:
        return  # skipped by the clocks when daylight saving time starts: refused, tested below
    expected = (local if moment.fold == 0 else local.replace(fold=0)).astimezone(UTC)
    assert _utc([moment], timezone="Europe/Berlin") == [expected]
    assert _utc([moment.isoformat()], timezone="Europe/Berlin") == [expected]
    # An offset in the text wins over the time zone.
    assert _utc([moment.isoformat() + "Z"], timezone="Europe/Berlin") == [
        moment.replace(tzinfo=UTC)
    ]


def test_every_form_of_a_time_column_becomes_utc() -> None:
    frame = pl.DataFrame(
        {
            "text": ["2024-05-01T08:00:00", "2024-05-01 08:00:00.250", "2024-05-01T10:00+02:00"],
            "date": [dt.date(2024, 5, 1)] * 3,
            "ms": [1714550400000, 1714550400250, 1714550400000],
            "x": [1, 2, 3],
        }
    )
    out = to_utc(to_utc(to_utc(frame, "text"), "date"), "ms")
    assert out.schema == pl.Schema(
        {"text": frames.UTC_TIME, "date": frames.UTC_TIME, "ms": frames.UTC_TIME, "x": pl.Int64}
    )
    at8 = dt.datetime(2024, 5, 1, 8, tzinfo=UTC)
    assert out["text"].to_list() == [at8, at8 + dt.timedelta(milliseconds=250), at8]
    assert out["date"].to_list() == [dt.datetime(2024, 5, 1, tzinfo=UTC)] * 3
    assert out["ms"].to_list() == out["text"].to_list()
    assert to_utc(out, "text") is out  # already UTC: nothing to do


def test_pandas_naive_and_text_times_become_utc() -> None:
    data = pd.DataFrame(
        {
            "naive": pd.date_range("2024-05-01 08:00", periods=3, freq="h"),
            "text": ["2024-05-01 08:00:00", "2024-05-01 09:00:00", None],
        }
    )
    frame = to_polars(data)
    assert to_utc(frame, "naive")["naive"].to_list() == [
        dt.datetime(2024, 5, 1, hour, tzinfo=UTC) for hour in (8, 9, 10)
    ]
    assert to_utc(frame, "text")["text"].to_list() == [
        dt.datetime(2024, 5, 1, 8, tzinfo=UTC),
        dt.datetime(2024, 5, 1, 9, tzinfo=UTC),
        None,
    ]


@pytest.mark.parametrize(
    ("values", "needles"),
    [
        (["2024-05-01 08:00:00", "yesterday", ""], ["'at' of the batch", "'yesterday' in row 2"]),
        (["01/05/2024 08:00"], ["ISO 8601", "'01/05/2024 08:00'"]),
        ([1, 2, 3], ["not epoch times", "found 1 in row 1"]),
        ([1714550400000, 1714550400], ["1714550400 in row 2", "milliseconds"]),
        ([True, False], ["Boolean values such as True"]),
    ],
)
def test_a_column_that_is_not_times_is_named_with_a_value(
    values: list[object], needles: list[str]
) -> None:
    with pytest.raises(InputError) as caught:
        to_utc(pl.DataFrame({"at": values}), "at", source="the batch", path="b.csv")
    message = str(caught.value)
    assert message.startswith("Column 'at' of the batch")
    for needle in needles:
        assert needle in message
    assert (caught.value.column, caught.value.path) == ("at", "b.csv")


def test_a_time_the_clocks_skip_and_an_unknown_time_zone_are_refused() -> None:
    with pytest.raises(InputError, match=r"2024-03-31 02:30:00.*does not exist in Europe/Berlin"):
        _utc(["2024-03-31 02:30:00"], timezone="Europe/Berlin")
    with pytest.raises(ParameterError, match="Did you mean 'Europe/Berlin'") as caught:
        _utc(["2024-03-31 02:30:00"], timezone="Europe/Berln")
    assert caught.value.parameter == "timezone"
    with pytest.raises(InputError, match=r"column 'tme' is not in the data.*Did you mean 'time'"):
        to_utc(pl.DataFrame({"time": [1714550400]}), "tme")
