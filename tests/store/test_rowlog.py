"""The row log: what a user sees after appending, retrying, crashing, reading and retaining."""

from __future__ import annotations

import itertools
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from datetime import UTC, date, datetime, timedelta, timezone
from pathlib import Path

import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from polars.testing import assert_frame_equal

from mlwarden.exceptions import InputError, ParameterError
from mlwarden.store import rowlog
from mlwarden.store.rowlog import RowLog

DAY0 = datetime(2024, 3, 1)
MODEL = "press-7"


def batch(n: int, *, start: datetime = DAY0, step: timedelta = timedelta(hours=7), seed: int = 0):
    """``n`` rows with ids, event times every ``step`` from ``start``, and mixed dtypes."""
    index = pl.int_range(n, eager=True)
    return pl.DataFrame(
        {
            "id": (index + seed * 1000).cast(pl.Int64),
            "timestamp": pl.datetime_range(start, start + step * (n - 1), step, eager=True),
            "pressure": index.cast(pl.Float64) * 0.5 + seed,
            "grade": pl.Series(["A", "B", None, "C"] * (n // 4) + ["A"] * (n % 4)),
            "ok": index % 3 == 0,
        }
    )


def files_of(root: Path, kind: str = "rows") -> list[str]:
    """Every file under the model directory, relative to it, temporary ones included."""
    base = root / kind / f"_model={MODEL}"
    return sorted(str(p.relative_to(base)) for p in base.rglob("*") if p.is_file())


def logged(frame: pl.DataFrame) -> pl.DataFrame:
    """The frame as the log returns it: event times in UTC."""
    return frame.with_columns(pl.col("timestamp").dt.replace_time_zone("UTC"))


def sort(frame: pl.DataFrame) -> pl.DataFrame:
    return frame.sort(frame.columns, nulls_last=True)


@pytest.fixture
def log(tmp_path: Path) -> RowLog:
    return RowLog(tmp_path)


def test_round_trip_one_file_per_day_and_batch(log: RowLog, tmp_path: Path) -> None:
    rows = batch(10)  # 7-hourly from 2024-03-01 00:00: three days
    assert log.append(MODEL, "3", rows, batch_id="b-001") == 10
    assert log.append(MODEL, 4, batch(2, start=DAY0 + timedelta(hours=1), seed=1), batch_id="b2")
    assert files_of(tmp_path) == [
        "_date=2024-03-01/b-001.parquet",
        "_date=2024-03-01/b2.parquet",
        "_date=2024-03-02/b-001.parquet",
        "_date=2024-03-03/b-001.parquet",
    ]
    back = log.read(MODEL, version="3")
    assert_frame_equal(back.drop("_model_version", "_ingested_at", "_batch_id"), logged(rows))
    assert back["_model_version"].unique().to_list() == ["3"]
    assert back["_batch_id"].unique().to_list() == ["b-001"]
    assert back.schema["_ingested_at"] == pl.Datetime("us", "UTC")
    assert log.read(MODEL, version=4).height == 2
    assert log.read(MODEL).height == 12


def test_partitions_by_utc_day_of_the_event_time(log: RowLog, tmp_path: Path) -> None:
    eastern = timezone(timedelta(hours=-5))
    rows = pl.DataFrame(
        {
            "timestamp": [datetime(2024, 3, 1, 18, 30), datetime(2024, 3, 1, 19, 30)],
            "x": [1, 2],
        }
    ).with_columns(pl.col("timestamp").dt.replace_time_zone("Etc/GMT+5"))
    assert log.append(MODEL, "1", rows, batch_id="tz") == 2
    # 19:30 at UTC-5 is 00:30 UTC the next day.
    assert files_of(tmp_path) == ["_date=2024-03-01/tz.parquet", "_date=2024-03-02/tz.parquet"]
    back = log.read(MODEL, start=datetime(2024, 3, 2, tzinfo=UTC))
    assert back["timestamp"].to_list() == [datetime(2024, 3, 1, 19, 30, tzinfo=eastern)]


def test_times_as_text_epoch_numbers_or_naive_are_filed_in_utc(log: RowLog, tmp_path: Path) -> None:
    csv = tmp_path / "later.csv"
    # as a logger writes them: naive with T, a fraction, an offset, Z; pyarrow keeps them text
    csv.write_text(
        "id,timestamp,x\n1,2024-03-01T23:30:00,1\n2,2024-03-01 23:45:00.5,2\n"
        "3,2024-03-02T01:30:00+02:00,3\n4,2024-03-02T00:15:00Z,4\n"
    )
    assert log.append(MODEL, "1", csv, batch_id="text") == 4
    epoch = pl.DataFrame({"id": [5, 6], "timestamp": [1709337600, 1709341200], "x": [5, 6]})
    assert log.append(MODEL, "1", epoch, batch_id="epoch") == 2  # 2024-03-02 00:00, 01:00 UTC
    labels = pl.DataFrame({"id": [1], "timestamp": ["2024-03-05 08:00"], "y": [1]})
    assert log.append_labels(MODEL, labels, batch_id="l") == 1
    back = log.read(MODEL).sort("id")
    assert back.schema["timestamp"] == pl.Datetime("us", "UTC")
    day2 = datetime(2024, 3, 2, tzinfo=UTC)
    assert back["timestamp"].to_list() == [
        day2 - timedelta(minutes=30),
        day2 - timedelta(minutes=14, seconds=59.5),
        day2 - timedelta(minutes=30),
        day2 + timedelta(minutes=15),
        day2,
        day2 + timedelta(hours=1),
    ]
    assert "_date=2024-03-01/text.parquet" in files_of(tmp_path)
    assert log.labels(MODEL)["timestamp"].to_list() == [datetime(2024, 3, 5, 8, tzinfo=UTC)]


def test_retry_of_a_batch_writes_nothing_even_after_a_restart(log: RowLog, tmp_path: Path) -> None:
    rows = batch(8)
    assert log.append(MODEL, "1", rows, batch_id="b1") == 8
    assert log.append(MODEL, "1", rows, batch_id="b1") == 0
    assert RowLog(tmp_path).append(MODEL, "1", rows, batch_id="b1") == 0  # a new process
    assert log.read(MODEL).height == 8


def test_retry_after_a_crash_mid_batch_writes_only_the_missing_days(
    log: RowLog, tmp_path: Path
) -> None:
    rows = batch(8)  # days 1-3: 4, 3 and 1 rows
    log.append(MODEL, "1", rows, batch_id="b1")
    # The writer died before its last day landed.
    (tmp_path / "rows" / f"_model={MODEL}" / "_date=2024-03-03" / "b1.parquet").unlink()
    assert log.read(MODEL).height == 7
    assert log.append(MODEL, "1", rows, batch_id="b1") == 1
    assert_frame_equal(log.read(MODEL).select(rows.columns), logged(rows))


def test_a_batch_that_fails_half_way_leaves_nothing_behind(
    log: RowLog, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    write = rowlog._write_parquet
    calls = []

    def disk_full_on_second_day(rows: pl.DataFrame, path: Path) -> None:
        calls.append(path)
        if len(calls) == 2:
            path.write_bytes(b"PAR1 half")
            raise OSError(28, "No space left on device")
        write(rows, path)

    monkeypatch.setattr(rowlog, "_write_parquet", disk_full_on_second_day)
    with pytest.raises(OSError, match="No space"):
        log.append(MODEL, "1", batch(8), batch_id="b1")
    assert files_of(tmp_path) == []  # not even the first day, and no temporary file
    assert log.read(MODEL).is_empty()
    monkeypatch.undo()
    assert log.append(MODEL, "1", batch(8), batch_id="b1") == 8


def test_a_leftover_temporary_file_of_a_killed_writer_is_ignored(
    log: RowLog, tmp_path: Path
) -> None:
    log.append(MODEL, "1", batch(4), batch_id="b1")
    day = tmp_path / "rows" / f"_model={MODEL}" / "_date=2024-03-01"
    # A killed writer leaves a half-written file under its temporary name.
    whole = (day / "b1.parquet").read_bytes()
    leftover = day / ".b2.parquet.4242.0123456789abcdef.tmp"
    leftover.write_bytes(whole[: len(whole) // 2])
    assert log.read(MODEL).height == 4
    assert log.stats(MODEL).rows == 4
    assert log.query("SELECT count(*) AS n FROM rows")["n"].item() == 4
    # The batch it was writing was not logged, so its retry lands.
    assert log.append(MODEL, "1", batch(2, seed=2), batch_id="b2") == 2
    # retain removes it once it is clearly abandoned (an hour old), not before.
    assert log.retain(MODEL, keep_days=30, now=DAY0).swept == 0
    old = time.time() - 2 * 3600
    os.utime(leftover, (old, old))
    assert log.retain(MODEL, keep_days=30, now=DAY0).swept == 1
    assert not leftover.exists()


def test_time_range_is_half_open_and_opens_only_the_days_in_range(
    log: RowLog, tmp_path: Path
) -> None:
    rows = batch(20, step=timedelta(hours=6))  # five days, 00, 06, 12, 18 h
    log.append(MODEL, "1", rows, batch_id="b1")
    start, end = datetime(2024, 3, 2, 6), datetime(2024, 3, 3, 12)
    back = log.read(MODEL, start=start, end=end)
    expected = rows.filter((pl.col("timestamp") >= start) & (pl.col("timestamp") < end))
    assert_frame_equal(back.select(rows.columns), logged(expected))
    assert back["timestamp"].min() == start.replace(tzinfo=UTC)  # start included
    assert back["timestamp"].max() == datetime(2024, 3, 3, 6, tzinfo=UTC)  # end excluded
    # Days outside the range are not opened: corrupting them changes nothing.
    for day in ("2024-03-01", "2024-03-04", "2024-03-05"):
        (tmp_path / "rows" / f"_model={MODEL}" / f"_date={day}" / "b1.parquet").write_bytes(b"x")
    assert_frame_equal(log.read(MODEL, start=start, end=end), back)
    # A date means its midnight (UTC); a range ending at midnight does not open the next day.
    assert log.read(MODEL, start=date(2024, 3, 2), end=date(2024, 3, 4)).height == 8
    assert log.read(MODEL, start=end, end=end).is_empty()


def test_late_labels_are_joined_to_their_rows_latest_first(log: RowLog) -> None:
    rows = batch(4)
    log.append(MODEL, "1", rows, batch_id="r1")
    first = pl.DataFrame(
        {"id": [0, 1, 2], "timestamp": [datetime(2024, 3, 5)] * 3, "defect": [0, 1, 0]}
    )
    corrected = pl.DataFrame({"id": [2], "timestamp": [datetime(2024, 3, 9)], "defect": [1]})
    assert log.append_labels(MODEL, first, batch_id="l1") == 3
    assert log.append_labels(MODEL, corrected, batch_id="l2") == 1
    assert log.append_labels(MODEL, corrected, batch_id="l2") == 0
    joined = log.joined(MODEL)
    assert joined["id"].to_list() == [0, 1, 2, 3]
    assert joined["defect"].to_list() == [0, 1, 1, None]  # id 2 relabelled, id 3 not yet
    assert joined["timestamp_label"][2] == datetime(2024, 3, 9, tzinfo=UTC)
    assert log.labels(MODEL).height == 4
    assert log.labels(MODEL, start=datetime(2024, 3, 6))["id"].to_list() == [2]
    assert log.joined(MODEL, columns=["pressure"]).columns == [
        "pressure",
        "id",
        "timestamp",  # no row column of that name was asked for, so no suffix
        "defect",
    ]


def test_schema_drift_between_batches_is_read_as_a_union(log: RowLog) -> None:
    old = pl.DataFrame({"timestamp": [DAY0], "x": [1], "gone": ["a"]})
    new = pl.DataFrame({"timestamp": [DAY0 + timedelta(hours=1)], "x": [2.5], "added": [True]})
    log.append(MODEL, "1", old, batch_id="old")
    log.append(MODEL, "2", new, batch_id="new")
    back = log.read(MODEL, columns=["timestamp", "x", "gone", "added"])
    assert back.schema["x"] == pl.Float64
    assert back.to_dict(as_series=False) == {
        "timestamp": [datetime(2024, 3, 1, tzinfo=UTC), datetime(2024, 3, 1, 1, tzinfo=UTC)],
        "x": [1.0, 2.5],
        "gone": ["a", None],
        "added": [None, True],
    }


def test_retention_delete_removes_old_days_of_rows_and_labels(log: RowLog, tmp_path: Path) -> None:
    log.append(MODEL, "1", batch(20, step=timedelta(hours=6)), batch_id="b1")  # Mar 1-5
    log.append_labels(
        MODEL,
        pl.DataFrame({"id": [0, 1], "timestamp": [DAY0, DAY0 + timedelta(days=4)], "y": [1, 0]}),
        batch_id="l1",
    )
    report = log.retain(MODEL, keep_days=2, now=datetime(2024, 3, 5, 12))
    assert report.cutoff == date(2024, 3, 3)
    assert report.days == (date(2024, 3, 1), date(2024, 3, 2))
    assert (report.files, report.rows, report.labels) == (3, 8, 1)
    assert report.to_dict()["days"] == ["2024-03-01", "2024-03-02"]
    assert log.read(MODEL)["timestamp"].min() == datetime(2024, 3, 3, tzinfo=UTC)
    assert sorted(p.name for p in (tmp_path / "rows" / f"_model={MODEL}").iterdir()) == [
        "_date=2024-03-03",
        "_date=2024-03-04",
        "_date=2024-03-05",
    ]
    assert log.labels(MODEL)["id"].to_list() == [1]
    assert log.retain(MODEL, keep_days=2, now=datetime(2024, 3, 5, 12)).files == 0


def compacted_log(log: RowLog) -> pl.DataFrame:
    """Three batches over the same three days; return what a reader sees."""
    for seed in range(3):
        log.append(MODEL, "1", batch(9, seed=seed), batch_id=f"b{seed}")
    return log.read(MODEL)


def test_retention_compact_merges_each_old_day_into_one_file(log: RowLog, tmp_path: Path) -> None:
    before = compacted_log(log)
    report = log.retain(MODEL, keep_days=1, now=datetime(2024, 3, 3, 12), mode="compact")
    assert report.days == (date(2024, 3, 1),)
    assert (report.files, report.rows) == (3, 12)
    day1 = [name for name in files_of(tmp_path) if name.startswith("_date=2024-03-01/")]
    assert len(day1) == 1
    assert day1[0].startswith("_date=2024-03-01/@compacted-")
    assert_frame_equal(sort(log.read(MODEL)), sort(before))
    assert log.stats(MODEL).rows == 27
    # Retries of compacted batches are still recognized.
    assert log.append(MODEL, "1", batch(9, seed=1), batch_id="b1") == 0
    # A later batch, then a second compaction that merges it into the compacted file.
    log.append(MODEL, "1", batch(1, seed=5), batch_id="late")
    again = log.retain(MODEL, keep_days=1, now=datetime(2024, 3, 3, 12), mode="compact")
    assert (again.files, again.rows) == (2, 13)
    assert len([n for n in files_of(tmp_path) if n.startswith("_date=2024-03-01/")]) == 1
    assert log.read(MODEL).height == 28
    assert log.append(MODEL, "1", batch(9, seed=0), batch_id="b0") == 0


def test_a_crash_between_compacting_and_deleting_the_parts_duplicates_nothing(
    log: RowLog, tmp_path: Path
) -> None:
    before = compacted_log(log)
    day = tmp_path / "rows" / f"_model={MODEL}" / "_date=2024-03-01"
    saved = tmp_path / "saved"
    shutil.copytree(day, saved)
    log.retain(MODEL, keep_days=0, now=datetime(2024, 3, 4), mode="compact")
    # Put the parts back, as if the process died before deleting them.
    for part in saved.iterdir():
        shutil.copy(part, day / part.name)
    assert len(list(day.glob("*.parquet"))) == 4
    assert_frame_equal(sort(log.read(MODEL)), sort(before))
    assert log.stats(MODEL).rows == 27
    assert log.query("SELECT count(*) AS n FROM rows")["n"].item() == 27
    assert log.append(MODEL, "1", batch(9, seed=2), batch_id="b2") == 0
    # Two compactions of the same day that ran at once: one compacted file is shown.
    (compacted,) = day.glob("@compacted-*.parquet")
    shutil.copy(compacted, day / "@compacted-00000000000000000000000000000000.parquet")
    assert_frame_equal(sort(log.read(MODEL)), sort(before))
    # The next retain removes the redundant files.
    assert log.retain(MODEL, keep_days=30, now=datetime(2024, 3, 4)).swept == 4
    assert len(list(day.glob("*.parquet"))) == 1
    assert_frame_equal(sort(log.read(MODEL)), sort(before))


def test_readers_during_compaction_see_every_row_once(log: RowLog, tmp_path: Path) -> None:
    for seed in range(10):
        log.append(MODEL, "1", batch(8, seed=seed), batch_id=f"b{seed}")
    problems: list[str] = []
    done = threading.Event()

    def reader() -> None:
        other = RowLog(tmp_path)  # as another process would, with its own listing
        seen = 0
        while not done.is_set():
            ids = other.read(MODEL, columns=["id"])["id"]
            counts = other.query("SELECT count(*) AS n, count(DISTINCT id) AS d FROM rows")
            if ids.n_unique() != ids.len() or counts["n"].item() != counts["d"].item():
                problems.append(f"duplicates: {ids.len()} rows, {ids.n_unique()} ids")
            if ids.len() < seen:
                problems.append(f"a gap: {ids.len()} rows after {seen}")
            seen = counts["n"].item()

    readers = [threading.Thread(target=reader) for _ in range(2)]
    for thread in readers:
        thread.start()
    try:
        for seed in range(10, 25):
            # A new batch in the old days each round, so that every round compacts again.
            log.append(MODEL, "1", batch(8, seed=seed), batch_id=f"b{seed}")
            log.retain(MODEL, keep_days=0, now=datetime(2024, 4, 1), mode="compact")
    finally:
        done.set()
        for thread in readers:
            thread.join()
    assert problems == []
    assert log.read(MODEL).height == 25 * 8


def test_stats_count_rows_days_and_bytes(log: RowLog) -> None:
    empty = log.stats(MODEL)
    assert (empty.rows, empty.days, empty.bytes, empty.first_day) == (0, 0, 0, None)
    log.append(MODEL, "1", batch(10), batch_id="b1")
    log.append_labels(MODEL, pl.DataFrame({"id": [1], "timestamp": [DAY0]}), batch_id="l")
    stats = log.stats(MODEL)
    assert (stats.rows, stats.labels, stats.days) == (10, 1, 3)
    assert (stats.first_day, stats.last_day) == (date(2024, 3, 1), date(2024, 3, 3))
    assert stats.bytes > 0
    assert stats.to_dict()["last_day"] == "2024-03-03"


def test_query_binds_parameters_over_all_models(log: RowLog) -> None:
    log.append(MODEL, "1", batch(4), batch_id="b1")
    log.append("oven-2", "1", batch(3), batch_id="b1")
    log.append_labels(MODEL, pl.DataFrame({"id": [1], "timestamp": [DAY0], "y": [1]}), batch_id="l")
    counts = log.query(
        "SELECT _model, count(*) AS n FROM rows WHERE _date >= $day "
        "GROUP BY _model ORDER BY _model",
        day=date(2024, 3, 1),
    )
    assert counts.to_dict(as_series=False) == {"_model": ["oven-2", MODEL], "n": [3, 4]}
    sneaky = log.query("SELECT count(*) AS n FROM rows WHERE _model = $m", m="x' OR '1'='1")
    assert sneaky["n"].item() == 0
    joined = log.query(
        "SELECT r.id, l.y FROM rows r JOIN labels l USING (_model, id) WHERE _model = $m", m=MODEL
    )
    assert joined.to_dict(as_series=False) == {"id": [1], "y": [1]}
    with pytest.raises(ParameterError, match="SQL query failed") as caught:
        log.query("SELECT nope FROM rows")
    assert caught.value.parameter == "sql"


def test_an_empty_batch_or_log_is_not_an_error(log: RowLog, tmp_path: Path) -> None:
    assert log.append(MODEL, "1", batch(4).clear(), batch_id="b1") == 0
    assert log.append(MODEL, "1", pl.DataFrame(), batch_id="b1") == 0
    assert not (tmp_path / "rows").exists()
    assert log.read(MODEL).shape == (0, 0)
    assert log.read(MODEL, columns=["x"]).columns == ["x"]
    assert log.joined(MODEL).is_empty()
    assert log.joined(MODEL, columns=["x"]).columns == ["x", "id"]
    assert log.query("SELECT count(*) AS n FROM rows")["n"].item() == 0


@pytest.mark.parametrize(
    ("call", "parameter"),
    [
        (lambda log: log.append("../etc", "1", batch(1), batch_id="b"), "model"),
        (lambda log: log.append("a b", "1", batch(1), batch_id="b"), "model"),
        (lambda log: log.append(MODEL, "1", batch(1), batch_id="b/../c"), "batch_id"),
        (lambda log: log.append(MODEL, "1", batch(1), batch_id=".hidden"), "batch_id"),
        (lambda log: log.append(MODEL, "", batch(1), batch_id="b"), "version"),
        (lambda log: log.read("x/y"), "model"),
        (lambda log: log.read(MODEL, start=DAY0, end=DAY0 - timedelta(1)), "start"),
        (lambda log: log.read(MODEL, start="2024-03-01"), "start"),
        (lambda log: log.retain(MODEL, keep_days=-1), "keep_days"),
        (lambda log: log.retain(MODEL, keep_days=1, mode="archive"), "mode"),
    ],
)
def test_bad_parameters_are_named(log: RowLog, call, parameter: str) -> None:
    with pytest.raises(ParameterError, match=f"'{parameter}'") as caught:
        call(log)
    assert caught.value.parameter == parameter


@pytest.mark.parametrize(
    ("frame", "column", "message"),
    [
        (pl.DataFrame({"time": [DAY0], "x": [1]}), "timestamp", "No column 'timestamp'"),
        (pl.DataFrame({"timestamp": ["yesterday"]}), "timestamp", "cannot be read as times"),
        (pl.DataFrame({"timestamp": [DAY0, None]}), "timestamp", "1 null values"),
        (pl.DataFrame({"timestamp": [DAY0], "_date": [1]}), "_date", "reserved"),
        (pl.DataFrame({"timestamp": [DAY0], "_batch_id": [1]}), "_batch_id", "reserved"),
    ],
)
def test_bad_batches_are_refused_naming_the_column(
    log: RowLog, tmp_path: Path, frame: pl.DataFrame, column: str, message: str
) -> None:
    with pytest.raises(InputError, match=message) as caught:
        log.append(MODEL, "1", frame, batch_id="b")
    assert caught.value.column == column
    assert not (tmp_path / "rows").exists()  # nothing half-written


def test_reading_a_column_that_was_never_logged_names_it(log: RowLog) -> None:
    log.append(MODEL, "1", batch(2), batch_id="b")
    with pytest.raises(InputError, match=r"No column 'presure'.*Did you mean 'pressure'") as err:
        log.read(MODEL, columns=["presure"])
    assert err.value.column == "presure"
    with pytest.raises(InputError, match="timestamp=") as err:
        log.read(MODEL, timestamp="ts")
    assert err.value.column == "ts"
    with pytest.raises(InputError, match="No column 'id'"):
        log.append_labels(MODEL, pl.DataFrame({"timestamp": [DAY0]}), batch_id="l")


WRITER = """
import sys
import time
from datetime import datetime, timedelta
from pathlib import Path

import polars as pl

from mlwarden.store import rowlog
from mlwarden.store.rowlog import RowLog

root, name = Path(sys.argv[1]), sys.argv[2]
log = RowLog(root)
(root / f"ready-{name}").touch()
while not (root / "go").exists():
    time.sleep(0.001)


def rows(tag, i):
    start = datetime(2024, 3, 1, 23, 50) + timedelta(minutes=i)
    stamps = pl.datetime_range(start, start + timedelta(minutes=19), "1m", eager=True)
    return pl.DataFrame({"id": [f"{tag}-{i}-{j}" for j in range(20)], "timestamp": stamps})


for i in range(15):
    log.append("line-1", "1", rows(name, i), batch_id=f"{name}-{i}")
    # Both writers also send the same batches, as two retrying clients would.
    log.append("line-1", "1", rows("shared", i), batch_id=f"shared-{i}")
"""


def test_two_processes_appending_at_once_both_land(tmp_path: Path) -> None:
    root = tmp_path / "log"
    root.mkdir()
    writers = [
        subprocess.Popen([sys.executable, "-c", WRITER, str(root), name]) for name in ("a", "b")
    ]
    deadline = time.monotonic() + 60
    while not all((root / f"ready-{name}").exists() for name in ("a", "b")):
        assert time.monotonic() < deadline, "the writers did not start"
        time.sleep(0.01)
    (root / "go").touch()
    assert [writer.wait(timeout=60) for writer in writers] == [0, 0]
    rows = RowLog(root).read("line-1")
    assert rows.height == 3 * 15 * 20
    assert rows["id"].n_unique() == rows.height  # every row once
    counts = rows.group_by(pl.col("_batch_id").str.extract(r"^(\w+)-")).len()
    assert dict(counts.iter_rows()) == {"a": 300, "b": 300, "shared": 300}
    assert not list(root.rglob("*.tmp"))


@settings(max_examples=30, deadline=None)
@given(
    stamps=st.lists(st.integers(0, 4 * 24 * 60 - 1), min_size=1, max_size=40),
    data=st.data(),
)
def test_any_order_and_batching_reads_back_the_union(stamps: list[int], data: st.DataObject):
    rows = pl.DataFrame(
        {
            "timestamp": [DAY0 + timedelta(minutes=m) for m in stamps],
            "x": list(range(len(stamps))),
        }
    )
    order = data.draw(st.permutations(range(len(stamps))))
    inner = st.sets(st.integers(1, max(1, len(stamps) - 1)), max_size=3 if len(stamps) > 1 else 0)
    cuts = sorted(data.draw(inner))
    retried = data.draw(st.booleans())
    compact = data.draw(st.booleans())
    shuffled = rows[list(order)]
    bounds = [0, *cuts, len(stamps)]
    with tempfile.TemporaryDirectory() as root:
        log = RowLog(root)
        for index, (low, high) in enumerate(itertools.pairwise(bounds)):
            log.append(MODEL, "1", shuffled[low:high], batch_id=f"b{index}")
            if compact and index == 1:
                log.retain(MODEL, keep_days=0, now=datetime(2024, 4, 1), mode="compact")
        if retried:
            assert log.append(MODEL, "1", shuffled[: bounds[1]], batch_id="b0") == 0
        back = log.read(MODEL, columns=["timestamp", "x"])
    assert_frame_equal(sort(back), sort(logged(rows)))
