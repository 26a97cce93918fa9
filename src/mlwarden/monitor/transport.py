"""Where a monitor's batches go: an mlwarden server over HTTP, or a row log on a local disk.

Both answer :meth:`send` the same way: return whether the destination already had the batch
(a retry it recognized by its batch id), raise :class:`UnreachableError` when trying again later may
succeed (no connection, a timeout, HTTP 408, 429 or 5xx, a full disk) and :class:`RejectedError`
when it will not (any other 4xx: a bad token, an unknown model, data the server refuses). Both
file rows logged under an alias (``production``) under the version the alias points at when the
batch arrives, and both give the logging contract of the version (:meth:`Transport.contract`),
which the monitor checks its batches against.

The HTTP transport uses only the standard library (``http.client``), so the client adds no
dependency to the host, and keeps one connection alive for the sender's thread. Rows travel as
an Arrow IPC stream (``Content-Type: application/vnd.apache.arrow.stream``, the batch id in the
``Idempotency-Key`` header, the pipeline run of the features in ``X-Run``); labels as JSON, the
form the server takes them in. A row log on disk keeps no run: linking predictions to runs needs
the server's metadata store.
"""

from __future__ import annotations

import difflib
import http.client
import json
import os
import ssl
from contextlib import contextmanager
from datetime import date, datetime
from typing import TYPE_CHECKING, Any, Final
from urllib.parse import quote, urlsplit

import pyarrow as pa

from mlwarden._version import __version__
from mlwarden.contract import Contract
from mlwarden.exceptions import MlwardenError, NotFoundError, ParameterError, StoreError

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path

    from mlwarden.monitor.batch import Batch
    from mlwarden.store.metadata import Store, VersionRecord
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
# As mlwarden.store.metadata names it (not imported here: it loads SQLAlchemy).
DATABASE_URL_ENV: Final = "MLWARDEN_DATABASE_URL"
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

    def contract(self, model: str, version: str) -> Contract:  # pragma: no cover - interface
        """The logging contract of ``version`` (or of the version an alias points at).

        Raises:
            UnreachableError: the destination cannot say now; it may later.
            RejectedError: there is no contract to check against (an unknown model or
                version, no metadata store); ``detail`` says why.
        """
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
        status, text = self._request("POST", target, body, headers)
        if 200 <= status < 300:
            try:
                return bool(json.loads(text).get("duplicate", False))
            except (ValueError, AttributeError):
                return False
        raise self._failure(status, text)

    def contract(self, model: str, version: str) -> Contract:
        """The version's contract from ``GET .../versions/{version}/contract``; from the
        version's registration (``GET .../versions/{version}``) on a server without it."""
        base = f"{self._prefix}/api/v1/models/{quote(model, safe='')}"
        target = f"{base}/versions/{quote(version, safe='')}"
        headers = {
            "Authorization": f"Bearer {self._token}",
            "Accept": "application/json",
            "User-Agent": f"mlwarden-monitor/{__version__}",
        }
        status, text = self._request("GET", f"{target}/contract", None, headers)
        if status == 404:
            status, text = self._request("GET", target, None, headers)
            if 200 <= status < 300:
                return Contract.from_meta(_document(text, status).get("meta") or {})
        if 200 <= status < 300:
            try:
                return Contract.from_dict(_document(text, status))
            except (KeyError, TypeError, ValueError) as exc:
                raise RejectedError(status, f"an unreadable contract ({exc})") from exc
        raise self._failure(status, text)

    def _failure(self, status: int, text: str) -> UnreachableError | RejectedError:
        detail = _detail(text)
        if status >= 500 or status in _RETRYABLE:
            return UnreachableError(f"HTTP {status} from {self.url}: {detail}")
        return RejectedError(status, detail)

    def _request(
        self, method: str, target: str, body: bytes | memoryview | None, headers: dict[str, str]
    ) -> tuple[int, str]:
        """A request on the kept-alive connection; a connection the server closed while idle
        is reopened once (the batch id makes the repeat of a POST harmless)."""
        for attempt in range(2):
            reused = self._connection is not None
            connection = self._connect()
            try:
                connection.request(method, target, body=body, headers=headers)
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
    """The row log under ``path / "log"``, written directly (no server).

    The data directory's metadata store -- ``$MLWARDEN_DATABASE_URL``, else the SQLite file
    ``path / "mlwarden.db"``, as the server and the command line find it -- says which models,
    versions and aliases exist: rows logged under an alias are filed under the version it points
    at, and an unknown model or version is refused. A data directory without a metadata store
    is a bare row log: rows are filed under the version as given, and there is no contract.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        url = os.environ.get(DATABASE_URL_ENV)
        database = path / "mlwarden.db"
        self.database_url = url or (f"sqlite:///{database}" if database.is_file() else None)
        self._rowlog: RowLog | None = None
        self._store: Store | None = None
        self._versions: set[tuple[str, str]] = set()

    def describe(self) -> str:
        return str(self.path / "log")

    def check(self, model: str, version: str) -> None:
        """Refuse a model, or a version or alias, that the metadata store does not know.

        Raises:
            NotFoundError: in one line, naming the models (or the model's versions and
                aliases) that exist.
            StoreError: the metadata store cannot be read.
        """
        if self.database_url is None:
            return
        store = self._open()
        try:
            store.resolve(model, version)
        except NotFoundError as exc:
            raise NotFoundError(
                _unknown(store, model, version, self._where()), what=exc.what
            ) from exc

    def contract(self, model: str, version: str) -> Contract:
        if self.database_url is None:
            raise RejectedError(
                None,
                f"the data directory '{self.path}' has no metadata store (mlwarden.db): the "
                "version was not registered there; register it (mlwarden register, or "
                "mlwarden.registry.Registry) to have its rows monitored",
            )
        return Contract.from_meta(self._resolve(model, version).meta)

    def send(self, batch: Batch) -> bool:
        from mlwarden.store.rowlog import RowLog

        if self._rowlog is None:
            self._rowlog = RowLog(self.path / "log")
        try:
            if batch.kind == "rows":
                version = batch.version
                if self.database_url is not None:
                    version = self._filed_under(batch.model, batch.version)
                written = self._rowlog.append(
                    batch.model,
                    version,
                    batch.table,
                    batch_id=batch.batch_id,
                    timestamp=batch.timestamp,
                )
            else:
                if self.database_url is not None:
                    self._known_model(batch.model)
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

    def close(self) -> None:
        if self._store is not None:
            self._store.close()
            self._store = None

    def _open(self) -> Store:
        if self._store is None:
            from mlwarden.store.metadata import Store

            assert self.database_url is not None
            self._store = Store(self.database_url)
        return self._store

    def _filed_under(self, model: str, name: str) -> str:
        """The version a batch logged under ``name`` is filed under: the version an alias
        points at now (it may have moved since the monitor was made), else ``name``. Only the
        model's aliases are read for each batch; a version is looked up once."""
        with self._reading():
            aliases = self._open().aliases(model)
        if name in aliases:
            return aliases[name]
        if (model, name) not in self._versions:
            self._resolve(model, name)
            self._versions.add((model, name))
        return name

    def _resolve(self, model: str, version: str) -> VersionRecord:
        """The version ``version`` is, or points at (an alias)."""
        with self._reading():
            return self._open().resolve(model, version)

    def _known_model(self, model: str) -> None:
        with self._reading():
            self._open().get_model(model)

    @contextmanager
    def _reading(self) -> Iterator[None]:
        """Store errors as the sender understands them: an unknown name rejects the batch, a
        locked or unreachable database is tried again later."""
        try:
            yield
        except NotFoundError as exc:
            raise RejectedError(None, " ".join(str(exc).split())) from exc
        except StoreError as exc:
            raise UnreachableError(
                f"cannot read the metadata store ({self._where()}): {exc}"
            ) from exc

    def _where(self) -> str:
        if os.environ.get(DATABASE_URL_ENV):
            return f"the database of ${DATABASE_URL_ENV}"
        return f"the data directory '{self.path}'"


def _unknown(store: Store, model: str, version: str, where: str) -> str:
    """One line on a model, or a version or alias, that ``store`` does not know, naming what
    it does know."""
    names = [m.name for m in store.models()]
    if model not in names:
        return (
            f"No model {model!r} is registered in {where} (models: "
            f"{', '.join(names) or 'none'}).{_hint(model, names)} Register it first (mlwarden "
            "register, or mlwarden.registry.Registry), or give a registered model."
        )
    versions = [v.version for v in store.versions(model)]
    aliases = store.aliases(model)
    pointers = ", ".join(f"{a} -> {v}" for a, v in sorted(aliases.items()))
    return (
        f"Model {model!r} has no version or alias {version!r} in {where} (versions: "
        f"{', '.join(versions) or 'none'}; aliases: {pointers or 'none'})."
        f"{_hint(version, [*versions, *aliases])}"
    )


def _hint(name: str, names: list[str]) -> str:
    """A suggestion among ``names``: one that ``name`` begins (``prod``), or a close one."""
    found = [n for n in names if n.startswith(name)][:1] or difflib.get_close_matches(
        name, names, n=1
    )
    return f" Did you mean {found[0]!r}?" if found else ""


def _document(text: str, status: int) -> dict[str, Any]:
    try:
        found = json.loads(text)
    except ValueError:
        found = None
    if not isinstance(found, dict):
        raise RejectedError(status, f"not a JSON object: {_detail(text)}")
    return found


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
