"""The bolt-on client: log what a model saw and predicted, from inside the serving code.

:class:`Monitor` is built never to break or slow its host. :meth:`Monitor.log` takes a snapshot
of its arguments, puts it on a bounded in-memory queue and returns; it never blocks and never
raises. One background thread (the *sender*) turns queued calls into batches of up to
``batch_rows`` rows (or whatever arrived in ``flush_seconds``) and delivers them:

* to an mlwarden server (``url=``) as Arrow IPC streams, or straight into a row log on disk
  (``path=``, for notebooks and batch jobs, no server needed);
* each batch gets a random batch id *before* its first attempt; every retry and every replay
  uses the same id, so the server stores it once however often it arrives;
* rows logged with ``run=`` (a lineage run, its id, or an OpenLineage run id) travel in batches
  of that run only, and the run goes with the batch (and with it into the spool), so the server
  links the predictions to the pipeline run that made their features;
* connection errors, timeouts, HTTP 408, 429 and 5xx are retried with exponential backoff (up
  to ``retry_seconds``); when the destination stays unreachable the batch is written to the
  spool (see :mod:`mlwarden.monitor.spool`) and later batches go there directly, until a probe
  -- the oldest spooled batch, sent again after a backoff that doubles up to ``backoff_max`` --
  succeeds; then the spool is replayed oldest first, each file deleted once the destination
  confirmed it. A new monitor with the same spool replays what an earlier process left;
* any other 4xx means the batch itself is bad (or the token is): it is logged as a warning on
  the ``mlwarden.monitor`` logger, kept under ``spool/rejected/`` with the reason, and not sent
  again.

The version may be an alias (``production``): the server, and a data directory's metadata store
in path mode, file each batch under the version the alias points at when it arrives. In path
mode an unknown model, version or alias is refused when the monitor is made.

Each batch is checked against the logging contract of its version (:mod:`mlwarden.contract`:
the columns it was registered with), fetched once, by the sender, before the first batch
leaves. Where only one reading is possible the batch is made to meet it -- predictions logged
apart (column ``prediction``) are stored under the version's one output, labels (``label``)
under its one target -- and the rename is said once. Any other departure (a missing feature,
score or event time, a column the version does not know) is said once per kind and column as a
warning and counted in :attr:`MonitorStats.contract`. Without a contract (a data directory with
no metadata store, a version registered without columns) batches go as they are, and that is
said once.

When the queue is full (``queue_rows``), the *oldest* queued rows are dropped to make room: a
monitor is most useful about what happens now. Every row is accounted for in
:meth:`Monitor.stats`: once flushed, ``logged = sent + replayed + rejected + dropped + rows still
spooled`` (for a monitor whose spool held nothing from earlier processes; a row counts once
however often it was retried).
"""

from __future__ import annotations

import atexit
import functools
import inspect
import itertools
import logging
import os
import threading
import time
import uuid
import weakref
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final, TypeVar, overload

from mlwarden.exceptions import NotFoundError, ParameterError, StoreError, check_int
from mlwarden.monitor.batch import (
    Batch,
    Chunk,
    RowIds,
    RowTuples,
    assemble,
    labels_chunk,
    rows_chunk,
    single_row,
)
from mlwarden.monitor.spool import Spool, SpoolError
from mlwarden.monitor.transport import (
    HttpTransport,
    PathTransport,
    RejectedError,
    Transport,
    UnreachableError,
)

if TYPE_CHECKING:
    from types import TracebackType

    import pyarrow as pa

    from mlwarden.contract import Contract
    from mlwarden.lineage import Run
    from mlwarden.monitor.batch import Kind

__all__ = ["TOKEN_ENV", "Monitor", "MonitorStats"]

F = TypeVar("F", bound=Callable[..., Any])

TOKEN_ENV: Final = "MLWARDEN_TOKEN"
logger = logging.getLogger("mlwarden.monitor")

_NAME_CHARS: Final = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_.")
_BACKOFF_START: Final = 0.1
# Spooled batches replayed per round while fresh batches wait; all of them during a flush.
_REPLAY_PER_ROUND: Final = 8
# The same warning (a rejection status, an unreadable input) at most this often.
_WARN_EVERY_SECONDS: Final = 60.0


@dataclass(frozen=True, slots=True)
class MonitorStats:
    """What a :class:`Monitor` did with the rows it was given, in rows unless said otherwise.

    Parameters:
        logged: rows accepted by ``log`` and ``log_labels``.
        sent: rows the destination confirmed, from batches sent straight from the queue.
        duplicates: of the rows sent or replayed, those the destination already had (a batch
            whose confirmation was lost and that was sent again).
        spooled: rows written to the spool because the destination was unreachable.
        replayed: rows from the spool that the destination confirmed (including batches that an
            earlier process spooled).
        dropped: rows discarded: queue full (oldest first), a closed monitor, data that could
            not be converted, a spool that could not be written or was over its size.
        rejected: rows the destination refused (HTTP 4xx other than 408/429, or data the row
            log refuses); kept under ``spool/rejected/`` with the reason.
        errors: failures counted: calls whose arguments could not be read, failed attempts to
            deliver, spool writes that failed.
        queued: rows waiting in memory now.
        spool_files: batches waiting on disk now.
        last_error: the most recent failure, or None.
        contract: of the rows delivered (sent or replayed), those that departed from the
            version's logging contract, by ``"<rows|labels>:<kind>:<column>"`` (kinds as in
            :class:`mlwarden.contract.Finding`, e.g. ``"rows:missing_feature:vibration"``), and
            those renamed to meet it (``"rows:renamed:prediction->fail_score"``). The warning
            logged the first time says what each costs.
    """

    logged: int
    sent: int
    duplicates: int
    spooled: int
    replayed: int
    dropped: int
    rejected: int
    errors: int
    queued: int
    spool_files: int
    last_error: str | None
    contract: dict[str, int] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """The statistics as plain JSON-ready values."""
        return asdict(self)


class Monitor:
    """Log a model's inputs, predictions and later labels to mlwarden, without getting in the
    way of the code that serves the model.

    Give exactly one destination: ``url``, an mlwarden server, or ``path``, a data directory
    whose row log (``path / "log"``) is written directly. See the module documentation for
    batching, retries, the spool and the accounting of rows.

    Parameters:
        model: the model's name (letters, digits, ``-``, ``_``, ``.``).
        version: the model version that makes the predictions, or an alias of it
            (``"production"``): each batch is filed under the version the alias points at
            when the batch arrives.
        url: the server, e.g. ``"http://127.0.0.1:8765"``.
        token: a write token (``mlwarden token create``); default ``$MLWARDEN_TOKEN``.
        path: a data directory, instead of a server.
        batch_rows: rows per batch sent.
        flush_seconds: a batch leaves at the latest this long after its first row was logged.
        queue_rows: rows kept in memory at most; beyond, the oldest are dropped.
        spool_dir: where batches wait while the destination is unreachable; default
            ``path / "spool" / model``, or ``~/.cache/mlwarden/spool/<model>`` with a server
            (``$XDG_CACHE_HOME`` is honoured).
        spool_bytes: the spool's size limit; beyond, its oldest batches are deleted.
        timestamp: the column of event times (added as the time of the call when missing):
            datetimes, dates, ISO 8601 text or epoch numbers, sent in UTC (naive times are UTC;
            see :func:`mlwarden.frames.to_utc`).
        id: the column of row ids, which labels refer to (generated when missing).
        feature_names: names of the columns of NumPy features (default ``x0, x1, ...``).
        timeout: seconds to wait for the server on each request.
        retry_seconds: how long a batch is retried before it is spooled.
        backoff_max: the longest wait between two attempts, and between two probes of an
            unreachable destination.

    Raises:
        ParameterError: no destination or two, a missing token, a bad name or number.
        NotFoundError: in path mode, a model, or a version or alias, that the data
            directory's metadata store does not know (the message names those it knows).

    Example:
        >>> import tempfile
        >>> from pathlib import Path
        >>> from mlwarden.store.rowlog import RowLog
        >>> data = tempfile.TemporaryDirectory()
        >>> with Monitor("press-7", "3", path=data.name) as monitor:
        ...     ids = monitor.log({"temperature_c": [231.5, 229.0]}, predictions=[0, 1])
        ...     _ = monitor.log_labels(ids, [0, 0])
        >>> rows = RowLog(Path(data.name) / "log").joined("press-7")
        >>> rows.sort("temperature_c").select("temperature_c", "prediction", "label").rows()
        [(229.0, 1, 0), (231.5, 0, 0)]
        >>> monitor.stats().sent
        4
        >>> data.cleanup()
    """

    def __init__(
        self,
        model: str,
        version: str | int,
        *,
        url: str | None = None,
        token: str | None = None,
        path: str | os.PathLike[str] | None = None,
        batch_rows: int = 1000,
        flush_seconds: float = 2.0,
        queue_rows: int = 100_000,
        spool_dir: str | os.PathLike[str] | None = None,
        spool_bytes: int = 1 << 30,
        timestamp: str = "timestamp",
        id: str = "id",
        feature_names: Sequence[str] | None = None,
        timeout: float = 10.0,
        retry_seconds: float = 5.0,
        backoff_max: float = 30.0,
    ) -> None:
        _check_name(model, "model")
        _check_name(str(version), "version")
        self.model = model
        self.version = str(version)
        self.batch_rows = check_int(batch_rows, "batch_rows", "Monitor", 1)
        self.queue_rows = check_int(queue_rows, "queue_rows", "Monitor", 1)
        self.flush_seconds = _positive(flush_seconds, "flush_seconds")
        self.timeout = _positive(timeout, "timeout")
        self.retry_seconds = _positive(retry_seconds, "retry_seconds", zero=True)
        self.backoff_max = _positive(backoff_max, "backoff_max")
        spool_limit = check_int(spool_bytes, "spool_bytes", "Monitor", 1)
        for value, name in ((timestamp, "timestamp"), (id, "id")):
            if not isinstance(value, str) or not value:
                raise ParameterError(
                    f"The '{name}' parameter of Monitor must be a column name; got {value!r}.",
                    parameter=name,
                )
        self.timestamp = timestamp
        self.id = id
        self.feature_names = tuple(str(n) for n in feature_names) if feature_names else None
        self._transport: Transport
        if (url is None) == (path is None):
            raise ParameterError(
                "Give Monitor exactly one destination: url='http://host:port' (a server) or "
                "path='data-dir' (a row log on this machine).",
                parameter="url",
            )
        if url is not None:
            token = token or os.environ.get(TOKEN_ENV)
            if not token:
                raise ParameterError(
                    f"The 'token' parameter of Monitor is required with a server: pass "
                    f"token=... or set ${TOKEN_ENV} (create one with 'mlwarden token create').",
                    parameter="token",
                )
            self._transport = HttpTransport(url, token, self.timeout)
            default_spool = _cache_dir() / "spool" / model
        else:
            assert path is not None
            transport = PathTransport(Path(path))
            try:
                transport.check(model, self.version)
            except NotFoundError:
                raise
            except StoreError as exc:  # an outage of the store must not stop the host
                logger.warning(
                    "mlwarden monitor: cannot read the metadata store of %s now (%s); %r version "
                    "%r is looked up when its first batch is filed",
                    path,
                    " ".join(str(exc).split()),
                    model,
                    self.version,
                )
            finally:
                transport.close()
            self._transport = transport
            default_spool = Path(path) / "spool" / model
        self._spool = Spool(
            Path(spool_dir) if spool_dir is not None else default_spool, spool_limit
        )

        self._prefix = uuid.uuid4().hex[:16]
        self._calls = itertools.count()
        self._counts = dict.fromkeys(
            ("logged", "sent", "duplicates", "spooled", "replayed", "dropped", "rejected"), 0
        )
        self._errors = 0
        self._last_error: str | None = None
        self._warned: dict[str, float] = {}
        # The version's contract, fetched by the sender before the first batch leaves.
        self._contract: Contract | None = None
        self._contract_known = False
        self._contract_rows: dict[str, int] = {}
        self._said: set[str] = set()
        self._start()
        atexit.register(self._at_exit)
        _forked.add(self)

    def _start(self) -> None:
        """(Re)create the queue and start the sender (at construction, and in a forked child)."""
        self._cond = threading.Condition(threading.Lock())
        self._queue: deque[Chunk] = deque()
        self._queued = 0
        self._seq = 0
        self._nudged = False
        self._flush_asked = 0
        self._flush_done = 0
        self._flush_seq = 0
        self._flush_ok = True
        self._closing = False
        self._down = False
        self._backoff = _BACKOFF_START
        self._retry_at = 0.0
        self._thread = threading.Thread(
            target=self._run, name=f"mlwarden-monitor-{self.model}", daemon=True
        )
        self._thread.start()

    def __repr__(self) -> str:
        return f"Monitor({self.model!r}, {self.version!r}, to={self._transport.describe()!r})"

    @property
    def spool_dir(self) -> Path:
        """Where batches wait while the destination is unreachable."""
        return self._spool.directory

    # -- the caller's side -------------------------------------------------------------------

    def log(
        self,
        features: object,
        predictions: object = None,
        *,
        ids: object = None,
        timestamps: object = None,
        run: Run | int | str | None = None,
    ) -> RowIds | None:
        """Log the rows a model saw and, optionally, what it predicted. Never blocks, never
        raises: a failure is counted in :meth:`stats` and logged as a warning.

        Parameters:
            features: a dict of columns, a dict that is one row (its first value is not a
                list or an array), a list of row dicts, a polars or pandas DataFrame (its index
                is dropped), an Arrow table or a NumPy array (2-D: rows x features; 1-D: one
                row), columns named by ``feature_names``).
            predictions: one value per row (a list, an array, a Series; column
                ``prediction``), a 2-D array (``prediction_0``, ``prediction_1``, ...), or a
                dict or frame of named columns; a scalar for a single row.
            ids: one id per row; default: generated (and returned).
            timestamps: one event time per row, or one for all; default: now (UTC). Ignored
                when the features already hold the ``timestamp`` column.
            run: the pipeline run that made the features: a :class:`mlwarden.lineage.Run`,
                a run id, or an OpenLineage run id (at most 200 printable ASCII characters).
                The server keeps it with the batch, so that ``Lineage.trace_prediction``
                finds the run from a prediction's id (a row log on disk, ``path=``, keeps no
                run).

        Returns:
            The generated row ids (pass them to :meth:`log_labels` when labels arrive), or None
            when the ids came from the caller or the call could not be logged.
        """
        try:
            call = next(self._calls)
            micros = time.time_ns() // 1000
            ref = _run_ref(run)
            if ids is None and timestamps is None:
                row = single_row(features, predictions, self.feature_names, self.id, self.timestamp)
                if row is not None:
                    self._enqueue_row(*row, call, micros, ref)
                    return RowIds(f"{self._prefix}-{call}", 1)
            chunk, generated = rows_chunk(
                features,
                predictions,
                ids,
                timestamps,
                id_name=self.id,
                timestamp_name=self.timestamp,
                feature_names=self.feature_names,
                id_base=f"{self._prefix}-{call}",
                micros=micros,
            )
            chunk.run_ref = ref
            self._enqueue(chunk)
        except Exception as exc:  # logging must never break the host
            self._failed("log", exc)
            return None
        return generated

    def log_labels(self, ids: object, labels: object, *, timestamps: object = None) -> bool:
        """Log labels (true values) that arrived for rows logged before, matched by id. Never
        blocks, never raises.

        Parameters:
            ids: the ids of the labelled rows (as returned by :meth:`log`, or the caller's).
            labels: one label per id (column ``label``), or a dict or frame of named columns.
            timestamps: when each label arrived, or one time for all; default: now (UTC).

        Returns:
            True when the labels were queued, False when they could not be read.
        """
        try:
            chunk = labels_chunk(
                ids,
                labels,
                timestamps,
                id_name=self.id,
                timestamp_name=self.timestamp,
                micros=time.time_ns() // 1000,
            )
            self._enqueue(chunk)
        except Exception as exc:  # logging must never break the host
            self._failed("log_labels", exc)
            return False
        return True

    @overload
    def wrap(self, func: F, /, *, arg: int | str | None = None) -> F: ...

    @overload
    def wrap(self, func: None = None, /, *, arg: int | str | None = None) -> Callable[[F], F]: ...

    def wrap(
        self, func: F | None = None, /, *, arg: int | str | None = None
    ) -> F | Callable[[F], F]:
        """Decorate a ``predict(X)`` function (or an ``async def`` one) so that each call logs
        ``X`` and the result.

        The wrapped function returns exactly what ``predict`` returned (the same object) and
        raises exactly what it raised; logging happens after it returned and can never make it
        fail. ``X`` may be anything :meth:`log` takes (NumPy, pandas, polars, dicts).

        Parameters:
            func: the function (``@monitor.wrap``).
            arg: which argument holds ``X``: a position or a name (``@monitor.wrap(arg="X")``);
                default the first one that is not ``self`` or ``cls``.

        Example:
            >>> import tempfile
            >>> data = tempfile.TemporaryDirectory()
            >>> monitor = Monitor("press-7", "3", path=data.name)
            >>> @monitor.wrap
            ... def predict(X):
            ...     return [x["pressure_bar"] > 3.0 for x in X]
            >>> predict([{"pressure_bar": 2.5}, {"pressure_bar": 3.5}])
            [False, True]
            >>> monitor.close()
            >>> monitor.stats().sent
            2
            >>> data.cleanup()
        """
        if func is None:
            return lambda f: self.wrap(f, arg=arg)
        position, name = _input_argument(func, arg)
        log = self.log
        failed = self._failed

        def logged(args: tuple[Any, ...], kwargs: dict[str, Any], result: Any) -> None:
            try:
                features = args[position] if len(args) > position else kwargs[name or ""]
                log(features, result)
            except Exception as exc:  # the host gets its result whatever happens here
                failed("wrap", exc)

        if inspect.iscoroutinefunction(func):  # an async model server's handler

            @functools.wraps(func)
            async def awaited(*args: Any, **kwargs: Any) -> Any:
                result = await func(*args, **kwargs)
                logged(args, kwargs, result)
                return result

            return awaited  # type: ignore[return-value]

        @functools.wraps(func)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            result = func(*args, **kwargs)
            logged(args, kwargs, result)
            return result

        return wrapper

    def _enqueue(self, chunk: Chunk) -> None:
        n = chunk.n
        if n == 0:
            return
        with self._cond:
            if self._closing or n > self.queue_rows:
                self._counts["logged"] += n
                self._counts["dropped"] += n
                return
            self._seq += 1
            chunk.seq = self._seq
            chunk.enqueued = time.monotonic()
            wake = not self._queue
            self._queue.append(chunk)
            self._queued += n
            self._queued_more(n, wake)

    def _enqueue_row(
        self,
        keys: tuple[str, ...],
        values: tuple[Any, ...],
        with_prediction: bool,
        prediction: object,
        call: int,
        micros: int,
        run_ref: str,
    ) -> None:
        """Add one plain row to the open chunk at the end of the queue, or open one."""
        with self._cond:
            if self._closing:
                self._counts["logged"] += 1
                self._counts["dropped"] += 1
                return
            tail = self._queue[-1] if self._queue else None
            body = tail.body if tail is not None else None
            if (
                type(body) is RowTuples
                and body.keys == keys
                and (body.predictions is not None) == with_prediction
                and tail.n < self.batch_rows  # type: ignore[union-attr]
                and tail.run_ref == run_ref  # type: ignore[union-attr]
            ):
                tail.n += 1  # type: ignore[union-attr]
            else:
                body = RowTuples(
                    keys,
                    with_prediction,
                    prefix=self._prefix,
                    id_name=self.id,
                    timestamp_name=self.timestamp,
                )
                chunk = Chunk(
                    "rows", 1, body, keys, {"prediction": None} if with_prediction else {}
                )
                chunk.run_ref = run_ref
                self._seq += 1
                chunk.seq = self._seq
                chunk.enqueued = time.monotonic()
                self._queue.append(chunk)
            body.add(values, call, micros, prediction)
            self._queued += 1
            self._queued_more(1, self._queued == 1)

    def _queued_more(self, n: int, wake: bool) -> None:
        """Account for ``n`` rows just queued (the lock is held): drop the oldest rows if the
        queue is over its size, and wake the sender when a batch is ready or the queue was
        empty (so that it starts the flush timer)."""
        self._counts["logged"] += n
        while self._queued > self.queue_rows:
            oldest = self._queue.popleft()
            self._queued -= oldest.n
            self._counts["dropped"] += oldest.n
        if self._queued >= self.batch_rows and not self._nudged:
            self._nudged = wake = True
        if wake:
            self._cond.notify()

    # -- control -----------------------------------------------------------------------------

    def flush(self, timeout: float | None = 30.0) -> bool:
        """Wait until every row logged so far was delivered, rejected or spooled, and the spool
        was replayed if the destination answers.

        Returns:
            True when nothing is left waiting (in memory or in the spool); False when the
            destination is unreachable (rows wait in the spool) or ``timeout`` passed.
        """
        if threading.current_thread() is self._thread:
            return False
        with self._cond:
            if self._closing:
                return not self._queue and self._spool.pending == 0
            self._flush_asked += 1
            ticket = self._flush_asked
            self._flush_seq = self._seq
            self._cond.notify_all()
            done = self._cond.wait_for(lambda: self._flush_done >= ticket, timeout)
            return done and self._flush_ok

    def close(self, timeout: float = 10.0) -> None:
        """Deliver (or spool) what is queued, replay the spool if the destination answers, and
        stop the sender. Called at interpreter exit for monitors still open. Rows that could
        not be handled within ``timeout`` seconds are counted as dropped."""
        with self._cond:
            if self._closing:
                return
            self._closing = True
            self._cond.notify_all()
        self._thread.join(timeout)
        with self._cond:
            if self._queued:
                self._counts["dropped"] += self._queued
                self._queue.clear()
                self._queued = 0
        if not self._thread.is_alive():
            self._transport.close()
        atexit.unregister(self._at_exit)

    def stats(self) -> MonitorStats:
        """The counts of rows logged, sent, spooled, replayed, dropped and rejected so far."""
        with self._cond:
            return MonitorStats(
                **self._counts,
                errors=self._errors,
                queued=self._queued,
                spool_files=self._spool.pending,
                last_error=self._last_error,
                contract=dict(self._contract_rows),
            )

    def __enter__(self) -> Monitor:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        value: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    def _at_exit(self) -> None:
        self.close(timeout=self.timeout)

    def _after_fork(self) -> None:
        """In a forked child: the parent's queue is the parent's; start an empty one and a new
        sender (threads do not survive a fork)."""
        self._transport.close()
        self._start()

    # -- the sender's side -------------------------------------------------------------------

    def _run(self) -> None:
        try:
            self._spool.scan()
        except OSError as exc:
            self._error(exc)
        while True:
            try:
                if not self._round():
                    return
            except Exception as exc:  # a bug here must not stop the sender for good
                self._error(exc)
                time.sleep(0.1)

    def _round(self) -> bool:
        """Wait for work, do one round of it; False when the monitor is closed and done."""
        with self._cond:
            while True:
                now = time.monotonic()
                urgent = self._closing or self._flush_asked > self._flush_done
                head = self._queue[0] if self._queue else None
                ready = head is not None and (
                    (urgent and (self._closing or head.seq <= self._flush_seq))
                    or self._queued >= self.batch_rows
                    or now - head.enqueued >= self.flush_seconds
                )
                if ready or urgent or self._replay_due(now):
                    break
                waits = []
                if head is not None:
                    waits.append(head.enqueued + self.flush_seconds - now)
                if self._spool.pending:
                    waits.append(self._retry_at - now)
                self._cond.wait(max(0.001, min(waits)) if waits else None)
            chunks = self._take() if ready else []
            ticket, closing = self._flush_asked, self._closing
            flush_seq = self._flush_seq
        if chunks:
            self._send_chunks(chunks, urgent)
        with self._cond:
            head = self._queue[0] if self._queue else None
            # Rows logged before the flush (or all, when closing) are still queued.
            behind = head is not None and (closing or head.seq <= flush_seq)
        replay = urgent or self._replay_due(time.monotonic())
        if self._spool.pending and replay and not (urgent and behind):
            self._replay(everything=urgent)
        if urgent and not behind:
            with self._cond:
                if ticket > self._flush_done:
                    self._flush_done = ticket
                    self._flush_ok = self._spool.pending == 0
                    self._cond.notify_all()
                if closing and not self._queue:
                    self._flush_done = self._flush_asked
                    self._cond.notify_all()
                    return False
        return True

    def _replay_due(self, now: float) -> bool:
        return self._spool.pending > 0 and (not self._down or now >= self._retry_at)

    def _take(self) -> list[Chunk]:
        """Whole chunks from the queue, up to ``batch_rows`` rows (at least one), of one kind
        and one run."""
        taken = [self._queue.popleft()]
        rows, kind, run_ref = taken[0].n, taken[0].kind, taken[0].run_ref
        while (
            self._queue
            and self._queue[0].kind == kind
            and self._queue[0].run_ref == run_ref
            and rows + self._queue[0].n <= self.batch_rows
        ):
            chunk = self._queue.popleft()
            taken.append(chunk)
            rows += chunk.n
        self._queued -= rows
        self._nudged = False
        return taken

    def _send_chunks(self, chunks: list[Chunk], urgent: bool) -> None:
        tables, failed = assemble(chunks, self.timestamp)
        for chunk, exc in failed:
            self._count(dropped=chunk.n)
            self._failed("log" if chunk.kind == "rows" else "log_labels", exc)
        kind: Kind = chunks[0].kind
        run_ref = chunks[0].run_ref
        for table in tables:
            for offset in range(0, table.num_rows, self.batch_rows):
                part = table.slice(offset, self.batch_rows)
                self._deliver(self._batch(kind, part, run_ref), urgent)

    def _batch(self, kind: Kind, table: pa.Table, run_ref: str) -> Batch:
        return Batch(
            kind=kind,
            model=self.model,
            version=self.version,
            batch_id=uuid.uuid4().hex,  # the idempotency key, fixed before the first attempt
            table=table,
            timestamp=self.timestamp,
            id=self.id,
            run_ref=run_ref,
        )

    def _deliver(self, batch: Batch, urgent: bool) -> None:
        """Send a fresh batch, retrying with backoff; spool it if the destination stays away."""
        if self._down and not urgent and time.monotonic() < self._retry_at:
            self._to_spool(batch)
            return
        batch, departures = self._conform(batch)
        # Known to be down: one probe. A flush or close: one attempt, the spool takes the rest.
        patience = 0.0 if urgent or self._down else self.retry_seconds
        deadline = time.monotonic() + patience
        delay = _BACKOFF_START
        while True:
            try:
                duplicate = self._transport.send(batch)
            except RejectedError as exc:
                self._rejected(batch, exc)
                return
            except UnreachableError as exc:
                self._error(exc)
                if self._interrupted() or time.monotonic() + delay > deadline:
                    self._mark_down()
                    self._to_spool(batch)
                    return
                self._pause(delay)
                delay = min(delay * 2, self.backoff_max)
                continue
            self._mark_up()
            self._count(sent=batch.rows, duplicates=batch.rows if duplicate else 0)
            self._count_contract(departures, batch.rows)
            return

    def _replay(self, everything: bool) -> None:
        """Send spooled batches oldest first (a few, or all of them); stop at the first that
        does not get through."""
        files = self._spool.files()
        for path in files if everything else files[:_REPLAY_PER_ROUND]:
            try:
                batch = self._spool.load(path)
            except FileNotFoundError:
                continue  # another monitor sharing the spool replayed it
            except SpoolError as exc:
                self._error(exc)
                self._spool.reject({"reason": str(exc), "file": path.name}, path=path)
                continue
            batch, departures = self._conform(batch)
            try:
                duplicate = self._transport.send(batch)
            except RejectedError as exc:
                self._rejected(batch, exc, path)
                continue
            except UnreachableError as exc:
                self._error(exc)
                self._mark_down()
                return
            self._mark_up()
            self._spool.remove(path)
            self._count(replayed=batch.rows, duplicates=batch.rows if duplicate else 0)
            self._count_contract(departures, batch.rows)

    def _conform(self, batch: Batch) -> tuple[Batch, tuple[str, ...]]:
        """``batch`` with the renames that make it meet its version's contract, and the keys
        of :attr:`MonitorStats.contract` it counts under; each said once. A batch of another
        model or version (from a spool that an earlier monitor shared) goes as it is."""
        if (batch.model, batch.version) != (self.model, self.version):
            return batch, ()
        try:
            contract = self._version_contract()
            if contract is None:
                return batch, ()
            labels = batch.kind == "labels"
            table = batch.table
            keys: list[str] = []
            renames = contract.renames(table.column_names, labels=labels)
            if renames:
                table = table.rename_columns([renames.get(c, c) for c in table.column_names])
                for source, target in renames.items():
                    key = f"{batch.kind}:renamed:{source}->{target}"
                    keys.append(key)
                    self._say(key, _renamed(contract, source, target, labels), batch)
            check = contract.check_labels if labels else contract.check_rows
            for finding in check(table.column_names, filed_by=batch.timestamp):
                key = f"{batch.kind}:{finding.kind}:{finding.column}"
                keys.append(key)
                self._say(key, finding.message, batch)
        except Exception as exc:  # a check must never cost a batch
            self._error(exc)
            return batch, ()
        return replace(batch, table=table), tuple(keys)

    def _version_contract(self) -> Contract | None:
        """The contract of this monitor's version, asked of the destination once; None when
        there is none (said once) or the destination cannot say now (asked again with the
        next batch)."""
        if self._contract_known:
            return self._contract
        contract: Contract | None = None
        try:
            fetched = self._transport.contract(self.model, self.version)
        except UnreachableError:
            return None
        except RejectedError as exc:
            reason = exc.detail
        else:
            contract = None if fetched.empty else fetched
            reason = "the version was registered without columns"
        self._contract, self._contract_known = contract, True
        if contract is None:
            logger.warning(
                "mlwarden monitor: the batches of %r version %r are not checked against a "
                "logging contract: %s",
                self.model,
                self.version,
                reason,
            )
        return contract

    def _say(self, key: str, message: str, batch: Batch) -> None:
        """Warn about a departure from the contract, the first time it is seen."""
        if key in self._said:
            return
        self._said.add(key)
        logger.warning(
            "mlwarden monitor: %r version %r: %s (%d %s of this batch; counted in "
            "stats().contract)",
            self.model,
            self.version,
            message,
            batch.rows,
            batch.kind,
        )

    def _to_spool(self, batch: Batch) -> None:
        try:
            trimmed = self._spool.put(batch)
        except OSError as exc:
            self._error(exc)
            self._count(dropped=batch.rows)
            self._warn(
                "spool",
                "mlwarden monitor: cannot spool a batch of %d rows to %s (%s); rows dropped",
                batch.rows,
                self._spool.directory,
                exc,
            )
            return
        self._count(spooled=batch.rows, dropped=trimmed)
        if trimmed:
            self._warn(
                "spool-full",
                "mlwarden monitor: the spool %s is over its size; %d old rows dropped",
                self._spool.directory,
                trimmed,
            )

    def _rejected(self, batch: Batch, exc: RejectedError, path: Path | None = None) -> None:
        reason: dict[str, object] = {
            "status": exc.status,
            "detail": exc.detail,
            "destination": self._transport.describe(),
            "batch_id": batch.batch_id,
            "model": batch.model,
            "version": batch.version,
            "kind": batch.kind,
            "rows": batch.rows,
        }
        if path is not None:
            kept = self._spool.reject(reason, path=path)
        else:
            kept = self._spool.reject(reason, batch=batch)
        self._count(rejected=batch.rows)
        self._error(exc)
        where = f"kept in {self._spool.rejected_dir}" if kept else "not kept"
        self._warn(
            f"rejected-{exc.status}",
            "mlwarden monitor: %s refused a batch of %d rows (%s); %s, not retried",
            self._transport.describe(),
            batch.rows,
            exc,
            where,
        )

    def _mark_down(self) -> None:
        if not self._down:
            self._down = True
            self._backoff = _BACKOFF_START
            logger.warning(
                "mlwarden monitor: %s is unreachable; spooling batches to %s",
                self._transport.describe(),
                self._spool.directory,
            )
        else:
            self._backoff = min(self._backoff * 2, self.backoff_max)
        self._retry_at = time.monotonic() + self._backoff

    def _mark_up(self) -> None:
        if self._down:
            self._down = False
            self._backoff = _BACKOFF_START
            logger.info("mlwarden monitor: %s is reachable again", self._transport.describe())

    def _interrupted(self) -> bool:
        with self._cond:
            return self._closing or self._flush_asked > self._flush_done

    def _pause(self, seconds: float) -> None:
        """Sleep, but wake at once for a flush or a close."""
        deadline = time.monotonic() + seconds
        with self._cond:
            while not (self._closing or self._flush_asked > self._flush_done):
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return
                self._cond.wait(remaining)

    # -- accounting --------------------------------------------------------------------------

    def _count(self, **deltas: int) -> None:
        with self._cond:
            for key, delta in deltas.items():
                self._counts[key] += delta

    def _count_contract(self, keys: tuple[str, ...], rows: int) -> None:
        if keys:
            with self._cond:
                for key in keys:
                    self._contract_rows[key] = self._contract_rows.get(key, 0) + rows

    def _error(self, exc: BaseException) -> None:
        with self._cond:
            self._errors += 1
            self._last_error = _describe(exc)

    def _failed(self, where: str, exc: BaseException) -> None:
        """A call whose arguments could not be logged: counted, and a warning now and then."""
        self._error(exc)
        self._warn(
            f"{where}-{type(exc).__name__}",
            "mlwarden monitor: %s(...) could not log this call: %s",
            where,
            _describe(exc),
        )

    def _warn(self, key: str, message: str, *args: object) -> None:
        now = time.monotonic()
        with self._cond:
            last = self._warned.get(key)
            if last is not None and now - last < _WARN_EVERY_SECONDS:
                return
            self._warned[key] = now
        logger.warning(message, *args)


class _Forked:
    """Monitors to restart in a forked child (held weakly, so this keeps none alive)."""

    def __init__(self) -> None:
        self._monitors: weakref.WeakSet[Monitor] = weakref.WeakSet()
        if hasattr(os, "register_at_fork"):
            os.register_at_fork(after_in_child=self._restart)

    def add(self, monitor: Monitor) -> None:
        self._monitors.add(monitor)

    def _restart(self) -> None:
        for monitor in list(self._monitors):
            if not monitor._closing:
                monitor._after_fork()


_forked = _Forked()


def _input_argument(func: Callable[..., Any], arg: int | str | None) -> tuple[int, str | None]:
    """The position and name of the argument of ``func`` that holds ``X``."""
    try:
        parameters = list(inspect.signature(func).parameters.values())
    except (TypeError, ValueError):  # builtins without a signature: the first argument
        parameters = []
    positional = [
        p.name
        for p in parameters
        if p.kind in (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
    ]
    if isinstance(arg, int) and not isinstance(arg, bool):
        return arg, positional[arg] if arg < len(positional) else None
    if isinstance(arg, str):
        return (positional.index(arg) if arg in positional else 1 << 30), arg
    if arg is not None:
        raise ParameterError(
            f"The 'arg' parameter of Monitor.wrap must be a position or a name; got {arg!r}.",
            parameter="arg",
        )
    for position, name in enumerate(positional):
        if name not in ("self", "cls"):
            return position, name
    return 0, None


def _renamed(contract: Contract, source: str, target: str, labels: bool) -> str:
    """What a rename to meet the contract did, and how to make it unnecessary."""
    if labels:
        return (
            f"labels carry {source!r}, stored as {target!r}, the version's target (name it: "
            f"log_labels(ids, {{{target!r}: labels}}))"
        )
    role = "score" if target in contract.scores else "prediction"
    return (
        f"rows carry {source!r}, stored as {target!r}, the version's {role} (name it: "
        f"log(features, {{{target!r}: predictions}}))"
    )


def _check_name(value: object, parameter: str) -> None:
    if (
        not isinstance(value, str)
        or not 0 < len(value) <= 200
        or not _NAME_CHARS.issuperset(value)
        or value[0] in "-_."
    ):
        raise ParameterError(
            f"The '{parameter}' parameter of Monitor must be 1 to 200 letters, digits, '-', '_' "
            f"or '.', starting with a letter or digit; got {value!r}.",
            parameter=parameter,
        )


def _run_ref(run: object) -> str:
    """The reference a batch carries to its pipeline run: the run id of a lineage ``Run`` or
    an int, or an OpenLineage run id as given."""
    if run is None:
        return ""
    if not isinstance(run, str | int) and isinstance(getattr(run, "id", None), int):
        run = run.id  # type: ignore[attr-defined]
    if isinstance(run, int) and not isinstance(run, bool) and run > 0:
        return str(run)
    if isinstance(run, str) and 0 < len(run) <= 200 and run.isascii() and run.isprintable():
        return run
    raise ParameterError(
        "The 'run' parameter of Monitor.log must be a lineage Run, a run id (an int > 0) or an "
        f"OpenLineage run id (1 to 200 printable ASCII characters); got {run!r:.80}.",
        parameter="run",
    )


def _positive(value: object, parameter: str, zero: bool = False) -> float:
    ok = isinstance(value, int | float) and not isinstance(value, bool)
    if ok and not (value >= 0 if zero else value > 0):  # type: ignore[operator]
        ok = False
    if not ok:
        bound = ">= 0" if zero else "> 0"
        raise ParameterError(
            f"The '{parameter}' parameter of Monitor must be a number of seconds {bound}; "
            f"got {value!r}.",
            parameter=parameter,
        )
    return float(value)  # type: ignore[arg-type]


def _cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME")
    return (Path(base) if base else Path.home() / ".cache") / "mlwarden"


def _describe(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__
