"""The spool: batches that wait on disk while their destination cannot be reached.

Each batch is one Arrow IPC file, ``<nanoseconds>-<batch_id>.arrow``, so that a listing sorted
by name is oldest first; the schema's metadata says where the batch goes (model, version, kind,
timestamp and id columns, and the pipeline run of its features when it has one) and keeps its
batch id, the idempotency key it was first sent with.
A file is written under a hidden temporary name, synced, and renamed: a reader sees it whole or
not at all, and a crash leaves at most a temporary file, deleted by the next scan an hour later.

Files are deleted only after the destination confirmed the batch, so a crash between sending
and deleting sends the batch again -- under the same batch id, which the server recognizes.
Several monitors (or processes) may share a spool: a file that another replayed and deleted is
skipped.

Batches that the destination refused (a client error other than 408/429) are moved to
``rejected/`` with a ``.reason.json`` beside them, and never sent again; at most
``REJECTED_KEPT`` are kept there, so that a misconfigured monitor cannot fill the disk.
"""

from __future__ import annotations

import json
import os
import time
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Final

import pyarrow as pa

from mlwarden.monitor.batch import Batch

if TYPE_CHECKING:
    from pathlib import Path

__all__ = ["REJECTED_KEPT", "Spool", "SpoolError"]

REJECTED_KEPT: Final = 100
SUFFIX: Final = ".arrow"
_PREFIX: Final = "mlwarden."
_KEYS: Final = ("kind", "model", "version", "batch_id", "timestamp", "id")
# Optional: files spooled before batches named their run have no run.
_RUN: Final = _PREFIX + "run"
_STALE_SECONDS: Final = 3600.0


class SpoolError(Exception):
    """A spool file that is not a batch written by the spool (truncated, foreign, corrupt)."""


class Spool:
    """A directory of batches waiting to be sent, oldest first.

    Parameters:
        directory: where the files live (created on the first write).
        max_bytes: when the files take more than this, the oldest are deleted.
    """

    def __init__(self, directory: Path, max_bytes: int) -> None:
        self.directory = directory
        self.rejected_dir = directory / "rejected"
        self.max_bytes = max_bytes
        self._bytes = 0
        self._rejected = 0
        self.pending = 0

    def scan(self) -> None:
        """Count what earlier processes left; delete their stale temporary files."""
        total = 0
        files = self.files()
        for path in files:
            total += _size(path)
        self._bytes, self.pending = total, len(files)
        stale = time.time() - _STALE_SECONDS
        for path in _entries(self.directory):
            if path.name.startswith(".") and path.name.endswith(".tmp"):
                try:
                    if path.stat().st_mtime < stale:
                        path.unlink()
                except OSError:
                    pass
        self._rejected = sum(1 for p in _entries(self.rejected_dir) if p.suffix == SUFFIX)

    def files(self) -> list[Path]:
        """The spooled batches, oldest first."""
        found = sorted(
            p
            for p in _entries(self.directory)
            if p.name.endswith(SUFFIX) and not p.name.startswith(".") and p.is_file()
        )
        self.pending = len(found)
        return found

    def put(self, batch: Batch) -> int:
        """Write ``batch`` to the spool; return the rows of old batches deleted to make room.

        Raises:
            OSError: the file cannot be written (the batch is then not in the spool).
        """
        name = f"{time.time_ns():020d}-{batch.batch_id}{SUFFIX}"
        size = _write(self.directory, name, batch)
        self._bytes += size
        self.pending += 1
        return self._trim()

    def load(self, path: Path) -> Batch:
        """The batch in ``path``.

        Raises:
            FileNotFoundError: another monitor replayed it meanwhile.
            SpoolError: the file is not a spooled batch.
        """
        try:
            with pa.OSFile(str(path), "rb") as source:
                table = pa.ipc.open_file(source).read_all()
        except FileNotFoundError:
            raise
        except (OSError, pa.ArrowException) as exc:
            raise SpoolError(f"unreadable Arrow IPC file ({exc})") from exc
        meta = {k.decode(): v.decode() for k, v in (table.schema.metadata or {}).items()}
        missing = [key for key in _KEYS if _PREFIX + key not in meta]
        if missing or meta[_PREFIX + "kind"] not in ("rows", "labels"):
            raise SpoolError(f"not a spooled batch (metadata {', '.join(missing)} missing)")
        return Batch(
            kind=meta[_PREFIX + "kind"],
            model=meta[_PREFIX + "model"],
            version=meta[_PREFIX + "version"],
            batch_id=meta[_PREFIX + "batch_id"],
            table=table.replace_schema_metadata(None),
            timestamp=meta[_PREFIX + "timestamp"],
            id=meta[_PREFIX + "id"],
            run_ref=meta.get(_RUN, ""),
        )

    def remove(self, path: Path) -> None:
        """Delete a batch that its destination confirmed (already gone is fine)."""
        size = _size(path)
        path.unlink(missing_ok=True)
        self._bytes = max(0, self._bytes - size)
        self.pending = max(0, self.pending - 1)

    def reject(
        self, reason: dict[str, object], *, batch: Batch | None = None, path: Path | None = None
    ) -> bool:
        """Keep a refused batch -- ``batch``, or the spooled file ``path`` -- under
        ``rejected/`` with ``reason``; return False when it was not kept (too many kept
        already, or the disk refused). A spooled file leaves the spool either way."""
        kept = False
        if self._rejected < REJECTED_KEPT:
            if path is not None:
                name = path.name
            else:
                assert batch is not None
                name = f"{time.time_ns():020d}-{batch.batch_id}{SUFFIX}"
            try:
                self.rejected_dir.mkdir(parents=True, exist_ok=True)
                if path is not None:
                    size = _size(path)
                    os.replace(path, self.rejected_dir / name)
                    self._bytes = max(0, self._bytes - size)
                    self.pending = max(0, self.pending - 1)
                else:
                    assert batch is not None
                    _write(self.rejected_dir, name, batch)
                document = {**reason, "rejected_at": datetime.now(UTC).isoformat()}
                text = json.dumps(document, indent=2, default=str)
                reason_path = self.rejected_dir / f"{name[: -len(SUFFIX)]}.reason.json"
                reason_path.write_text(text + "\n", encoding="utf-8")
                self._rejected += 1
                kept = True
            except OSError:
                kept = False
        if path is not None and path.exists():
            self.remove(path)
        return kept

    def _trim(self) -> int:
        """Delete the oldest batches while the spool is over its size; return their rows."""
        dropped = 0
        if self._bytes <= self.max_bytes:
            return 0
        files = self.files()
        self._bytes = sum(_size(p) for p in files)
        for path in files[:-1]:
            if self._bytes <= self.max_bytes:
                break
            dropped += _rows(path)
            self.remove(path)
        return dropped


def _write(directory: Path, name: str, batch: Batch) -> int:
    """Write ``batch`` to ``directory / name`` atomically and durably; return its size."""
    directory.mkdir(parents=True, exist_ok=True)
    temporary = directory / f".{name}.{os.getpid()}.tmp"
    meta = {
        _PREFIX + "kind": batch.kind,
        _PREFIX + "model": batch.model,
        _PREFIX + "version": batch.version,
        _PREFIX + "batch_id": batch.batch_id,
        _PREFIX + "timestamp": batch.timestamp,
        _PREFIX + "id": batch.id,
        _PREFIX + "rows": str(batch.rows),
    }
    if batch.run_ref:
        meta[_RUN] = batch.run_ref
    table = batch.table.replace_schema_metadata(meta)
    try:
        with pa.OSFile(str(temporary), "wb") as sink, pa.ipc.new_file(sink, table.schema) as w:
            w.write_table(table)
        descriptor = os.open(temporary, os.O_RDONLY)
        try:
            os.fsync(descriptor)
        finally:
            os.close(descriptor)
        os.replace(temporary, directory / name)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise
    _fsync_dir(directory)
    return _size(directory / name)


def _rows(path: Path) -> int:
    """The rows of a spooled batch, from its footer (0 if it cannot be read)."""
    try:
        with pa.OSFile(str(path), "rb") as source:
            reader = pa.ipc.open_file(source)
            meta = reader.schema.metadata or {}
            return int(meta.get((_PREFIX + "rows").encode(), b"0"))
    except (OSError, pa.ArrowException, ValueError):
        return 0


def _fsync_dir(directory: Path) -> None:
    if os.name == "nt":
        return
    try:
        descriptor = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


def _entries(directory: Path) -> list[Path]:
    try:
        return list(directory.iterdir())
    except (FileNotFoundError, NotADirectoryError):
        return []


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except OSError:
        return 0
