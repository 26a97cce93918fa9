"""Delivery of notifications in the background, with retries, never blocking the caller.

Example:
    >>> from datetime import UTC, datetime
    >>> from mlwarden.react import Dispatcher, Notification
    >>> t = datetime(2024, 5, 1, tzinfo=UTC)
    >>> with Dispatcher(["log"]) as dispatcher:
    ...     dispatcher.submit(Notification("m", "1", 1, "quality stuck(pressure_bar)", t, t))
    True
    >>> dispatcher.stats()["delivered"]
    1
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from typing import TYPE_CHECKING, Any

from mlwarden.exceptions import ParameterError
from mlwarden.react.channels.base import Channel, Notification, make_channel

if TYPE_CHECKING:
    from collections.abc import Sequence
    from types import TracebackType

LOGGER = logging.getLogger("mlwarden.react")


class Dispatcher:
    """Send each submitted notification to every channel, retrying failures with backoff.

    Parameters:
        channels: channels or their specs (``"log"``, ``"webhook+https://…"``, …).
        attempts: tries per channel and notification before giving up (logged, counted).
        backoff: seconds before the first retry; doubled after each failure, up to ``max_wait``.
        max_wait: longest wait between tries.
        queue_size: notifications waiting at most; beyond, new ones are dropped (counted).
    """

    def __init__(
        self,
        channels: Sequence[str | Channel],
        *,
        attempts: int = 5,
        backoff: float = 1.0,
        max_wait: float = 60.0,
        queue_size: int = 1_000,
    ) -> None:
        if attempts < 1:
            raise ParameterError(
                f"'attempts' must be at least 1; got {attempts}.", parameter="attempts"
            )
        self.channels = [make_channel(c) for c in channels]
        self.attempts = attempts
        self.backoff = backoff
        self.max_wait = max_wait
        self._queue: queue.Queue[tuple[Channel, Notification] | None] = queue.Queue(queue_size)
        self._counts = {"submitted": 0, "delivered": 0, "failed": 0, "dropped": 0, "retries": 0}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="mlwarden-alerts", daemon=True)
        self._thread.start()

    def submit(self, notification: Notification) -> bool:
        """Queue the notification for every channel; never blocks. False if any was dropped."""
        accepted = True
        for channel in self.channels:
            try:
                self._queue.put_nowait((channel, notification))
                self._count("submitted")
            except queue.Full:
                self._count("dropped")
                accepted = False
        return accepted

    def flush(self, timeout: float = 30.0) -> bool:
        """Wait until every queued notification was delivered or given up; True if so."""
        deadline = time.monotonic() + timeout
        while self._queue.unfinished_tasks and time.monotonic() < deadline:
            time.sleep(0.01)
        return self._queue.unfinished_tasks == 0

    def close(self, timeout: float = 30.0) -> None:
        self.flush(timeout)
        self._stop.set()
        self._queue.put(None)
        self._thread.join(timeout=1.0)

    def stats(self) -> dict[str, int]:
        with self._lock:
            return dict(self._counts)

    def __enter__(self) -> Dispatcher:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    def _count(self, key: str) -> None:
        with self._lock:
            self._counts[key] += 1

    def _run(self) -> None:
        while True:
            item = self._queue.get()
            try:
                if item is None:
                    return
                self._deliver(*item)
            finally:
                self._queue.task_done()

    def _deliver(self, channel: Channel, notification: Notification) -> None:
        wait = self.backoff
        for attempt in range(1, self.attempts + 1):
            try:
                channel.send(notification)
            except Exception as exc:  # any failure of a channel is retried, never raised
                if attempt == self.attempts or self._stop.is_set():
                    self._count("failed")
                    LOGGER.warning(
                        "Could not deliver incident %s of %s to %r after %d attempts: %s",
                        notification.incident,
                        notification.model,
                        channel,
                        attempt,
                        exc,
                    )
                    return
                self._count("retries")
                self._stop.wait(min(wait, self.max_wait))
                wait *= 2
            else:
                self._count("delivered")
                return


def notification_from(
    model: str,
    version: str,
    incident: int,
    title: str,
    window: Any,
    alerts: list[dict[str, Any]],
    surprise: float | None = None,
) -> Notification:
    """A notification for an incident of a window (``window`` has ``start`` and ``end``), with
    the chance of a window as extreme on reference-like data (``surprise``)."""
    return Notification(
        model=model,
        version=version,
        incident=incident,
        title=title,
        started_at=window.start,
        ended_at=window.end,
        alerts=tuple(alerts),
        surprise=surprise,
    )
