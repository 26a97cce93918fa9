"""Where a monitor's batches go: an mlwarden server over HTTP, or a row log on a local disk.

Both answer :meth:`send` the same way: return whether the destination already had the batch
(a retry it recognized by its batch id), raise :class:`UnreachableError` when trying again later may
succeed (no connection, a timeout, HTTP 408, 429 or 5xx, a full disk) and :class:`RejectedError`
when it will not (any other 4xx: a bad token, an unknown model, data the server refuses).

The HTTP transport uses only the standard library (``http.client``), so the client adds no
dependency to the host, and keeps one connection alive for the sender's thread. Rows travel as
an Arrow IPC stream (``Content-Type: application/vnd.apache.arrow.stream``, the batch id in the
``Idempotency-Key`` header, the pipeline run of the features in ``X-Run``); labels as JSON, the
form the server takes them in. A row log on disk keeps no run: linking predictions to runs needs
the server's metadata store.
"""

from __future__ import annotations

import http.client
import json
import ssl
from datetime import date, datetime
from typing import TYPE_CHECKING, Any, Final
from urllib.parse import quote, urlsplit

import pyarrow as pa

from mlwarden._version import __version__
from mlwarden.exceptions import MlwardenError, ParameterError

if TYPE_CHECKING:
    from pathlib import Path

    from mlwarden.monitor.batch import Batch
    from mlwarden.store.rowlog import RowLog

__all__ = [
    "ARROW_STREAM",
    "HttpTransport",
    "PathTransport",
    "RejectedError",
    "Transport",
    "UnreachableError",
]

ARROW_STREAM: Final = "application/vnd.apache.arrow.stream"
_RETRYABLE: Final = frozenset({408, 429})
_DETAIL_CHARS: Final = 500


class UnreachableError(Exception):
    """The destination could not take the batch now; it may later."""


class RejectedError(Exception):
    """The destination refused the batch; sending it again would not help.

    ``status`` is the HTTP status (None for a local row log), ``detail`` what it said.
    """

    def __init__(self, status: int | None, detail: str) -> None:
        super().__init__(f"HTTP {status}: {detail}" if status is not None else detail)
        self.status = status
        self.detail = detail


class Transport:
    """What the sender needs of a destination."""

    def send(self, batch: Batch) -> bool:  # pragma: no cover - interface
        """Deliver ``batch``; True when the destination had it already."""
        raise NotImplementedError

    def close(self) -> None:
        """Release connections (the transport may be used again afterwards)."""

    def describe(self) -> str:  # pragma: no cover - interface
        raise NotImplementedError


class HttpTransport(Transport):
    """An mlwarden server at ``url`` (``http://host:port``, optionally with a path prefix)."""

    def __init__(self, url: str, token: str, timeout: float) -> None:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ParameterError(
                f"The 'url' parameter of Monitor must be an http:// or https:// address such as "
                f"'http://127.0.0.1:8765'; got {url!r}.",
                parameter="url",
            )
        self.url = url.rstrip("/")
        self._https = parts.scheme == "https"
        self._host = parts.hostname
        self._port = parts.port
        self._prefix = parts.path.rstrip("/")
        self._token = token
        self._timeout = timeout
        self._connection: http.client.HTTPConnection | None = None

    def describe(self) -> str:
        return self.url

    def send(self, batch: Batch) -> bool:
        model = quote(batch.model, safe="")
        headers = {
            "Authorization": f"Bearer {self._token}",
            "Idempotency-Key": batch.batch_id,
            "User-Agent": f"mlwarden-monitor/{__version__}",
        }
        body: bytes | memoryview
        if batch.kind == "rows":
            version = quote(batch.version, safe="")
            target = f"{self._prefix}/api/v1/models/{model}/versions/{version}/rows"
            headers["Content-Type"] = ARROW_STREAM
            headers["X-Timestamp-Column"] = batch.timestamp
            if batch.run_ref:
                headers["X-Run"] = batch.run_ref
            body = memoryview(arrow_stream(batch.table))
        else:
            target = f"{self._prefix}/api/v1/models/{model}/labels"
            headers["Content-Type"] = "application/json"
            body = labels_json(batch)
        status, text = self._post(target, body, headers)
        if 200 <= status < 300:
            try:
                return bool(json.loads(text).get("duplicate", False))
            except (ValueError, AttributeError):
                return False
        detail = _detail(text)
        if status >= 500 or status in _RETRYABLE:
            raise UnreachableError(f"HTTP {status} from {self.url}: {detail}")
        raise RejectedError(status, detail)

    def _post(
        self, target: str, body: bytes | memoryview, headers: dict[str, str]
    ) -> tuple[int, str]:
        """POST on the kept-alive connection; a connection the server closed while idle is
        reopened once (the batch id makes the repeat harmless)."""
        for attempt in range(2):
            reused = self._connection is not None
            connection = self._connect()
            try:
                connection.request("POST", target, body=body, headers=headers)
                response = connection.getresponse()
                text = response.read().decode("utf-8", errors="replace")
            except (OSError, http.client.HTTPException) as exc:
                self.close()
                if reused and attempt == 0:
                    continue
                raise UnreachableError(f"{self.url} unreachable: {_reason(exc)}") from exc
            if response.will_close:
                self.close()
            return response.status, text
        raise AssertionError("unreachable")  # pragma: no cover

    def _connect(self) -> http.client.HTTPConnection:
        if self._connection is None:
            if self._https:
                self._connection = http.client.HTTPSConnection(
                    self._host,
                    self._port,
                    timeout=self._timeout,
                    context=ssl.create_default_context(),
                )
            else:
                self._connection = http.client.HTTPConnection(
                    self._host, self._port, timeout=self._timeout
                )
        return self._connection

    def close(self) -> None:
        if self._connection is not None:
            self._connection.close()
            self._connection = None


class PathTransport(Transport):
    """The row log under ``path / "log"``, written directly (no server)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._rowlog: RowLog | None = None

    def describe(self) -> str:
        return str(self.path / "log")

    def send(self, batch: Batch) -> bool:
        from mlwarden.store.rowlog import RowLog

        if self._rowlog is None:
            self._rowlog = RowLog(self.path / "log")
        try:
            if batch.kind == "rows":
                written = self._rowlog.append(
                    batch.model,
                    batch.version,
                    batch.table,
                    batch_id=batch.batch_id,
                    timestamp=batch.timestamp,
                )
            else:
                written = self._rowlog.append_labels(
                    batch.model,
                    batch.table,
                    batch_id=batch.batch_id,
                    id=batch.id,
                    timestamp=batch.timestamp,
                )
        except MlwardenError as exc:
            raise RejectedError(None, " ".join(str(exc).split())) from exc
        except OSError as exc:
            raise UnreachableError(f"cannot write to {self.describe()}: {_reason(exc)}") from exc
        return written == 0


def arrow_stream(table: pa.Table) -> pa.Buffer:
    """``table`` as the bytes of an Arrow IPC stream."""
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, table.schema) as writer:
        writer.write_table(table)
    return sink.getvalue()


def labels_json(batch: Batch) -> bytes:
    """A batch of labels as the JSON body of ``POST /api/v1/models/{model}/labels``; times as
    ISO 8601 with microseconds (one format per column, as the server parses them)."""
    document = {
        "batch_id": batch.batch_id,
        "id": batch.id,
        "timestamp": batch.timestamp,
        "labels": batch.table.to_pylist(),
    }
    return json.dumps(document, default=_json_value).encode()


def _json_value(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat(timespec="microseconds")
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, bytes):
        return value.decode("utf-8", errors="replace")
    return str(value)


def _detail(text: str) -> str:
    """What an error response said: its ``detail`` if it is JSON, else its text, shortened."""
    try:
        found: Any = json.loads(text).get("detail", text)
    except (ValueError, AttributeError):
        found = text
    detail = " ".join((found if isinstance(found, str) else json.dumps(found)).split())
    return detail if len(detail) <= _DETAIL_CHARS else detail[: _DETAIL_CHARS - 3] + "..."


def _reason(exc: BaseException) -> str:
    text: list[str] = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0]}" if text and text[0] else type(exc).__name__
