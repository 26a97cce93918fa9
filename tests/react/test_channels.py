"""Alert channels: contract over the registry, real deliveries to a local HTTP endpoint,
retries with backoff, and a dispatcher that never blocks the caller."""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from mlwarden.exceptions import ParameterError
from mlwarden.react import Dispatcher, Notification, available_channels, make_channel
from mlwarden.react.channels import get_channel

T0 = datetime(2024, 5, 1, 13, tzinfo=UTC)
NOTE = Notification(
    "defect-model",
    "1",
    7,
    "quality stuck(pressure_bar)",
    T0,
    T0 + timedelta(hours=1),
    alerts=({"metric": "quality", "column": "stuck(pressure_bar)", "value": 1.0, "upper": 0.0},),
)


class Endpoint:
    """A local HTTP endpoint that records what it receives; can fail the first N requests."""

    def __init__(self, fail_first: int = 0, delay: float = 0.0) -> None:
        self.received: list[Any] = []
        self.paths: list[str] = []
        self.fail_first = fail_first
        self.delay = delay
        endpoint = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                time.sleep(endpoint.delay)
                if endpoint.fail_first > 0:
                    endpoint.fail_first -= 1
                    self.send_response(503)
                    self.end_headers()
                    return
                endpoint.paths.append(self.path)
                endpoint.received.append(json.loads(body))
                self.send_response(200)
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def endpoint() -> Iterator[Endpoint]:
    e = Endpoint()
    yield e
    e.close()


@pytest.mark.parametrize("key", available_channels())
def test_channel_contract(key: str) -> None:
    cls = get_channel(key)
    assert ">>>" in (cls.__doc__ or ""), "the docstring needs a runnable example"
    channel = make_channel(cls.example)
    assert channel.key == key
    assert make_channel(channel.spec()) == channel
    assert "+" not in repr(channel) or "…" in repr(channel), "reprs hide targets (secrets)"


def test_unknown_and_malformed_specs_are_named() -> None:
    with pytest.raises(ParameterError, match=r"'webhok' is not an alert channel.*'webhook'"):
        make_channel("webhok+http://x")
    with pytest.raises(ParameterError, match="http\\(s\\) URL"):
        make_channel("webhook+ftp://x")
    with pytest.raises(ParameterError, match="apprise understands"):
        make_channel("apprise+nonsense")


def test_webhook_posts_the_incident_as_json(endpoint: Endpoint) -> None:
    make_channel(f"webhook+{endpoint.url}/hook").send(NOTE)
    (doc,) = endpoint.received
    assert doc["incident"] == 7
    assert doc["alerts"][0]["column"] == "stuck(pressure_bar)"
    assert doc["started_at"] == "2024-05-01T13:00:00+00:00"


def test_alertmanager_gets_one_alert_per_metric(endpoint: Endpoint) -> None:
    make_channel(f"alertmanager+{endpoint.url}").send(NOTE)
    assert endpoint.paths == ["/api/v2/alerts"]
    (alerts,) = endpoint.received
    assert alerts[0]["labels"]["alertname"] == "mlwarden_quality"
    assert alerts[0]["labels"]["model"] == "defect-model"
    assert alerts[0]["startsAt"] == "2024-05-01T13:00:00+00:00"


def test_apprise_delivers_through_its_json_service(endpoint: Endpoint) -> None:
    target = endpoint.url.replace("http://", "json://") + "/apprise"
    make_channel(f"apprise+{target}").send(NOTE)
    (doc,) = endpoint.received
    assert doc["title"] == "[mlwarden] defect-model 1: quality stuck(pressure_bar)"
    assert "stuck(pressure_bar): 1 (expected <= 0)" in doc["message"]


def test_log_channel(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="mlwarden.alerts"):
        make_channel("log").send(NOTE)
    assert "quality stuck(pressure_bar)" in caplog.text


def test_failures_are_retried_with_backoff() -> None:
    flaky = Endpoint(fail_first=2)
    try:
        with Dispatcher([f"webhook+{flaky.url}"], backoff=0.05) as dispatcher:
            dispatcher.submit(NOTE)
        assert len(flaky.received) == 1
        stats = dispatcher.stats()
        assert (stats["delivered"], stats["retries"], stats["failed"]) == (1, 2, 0)
    finally:
        flaky.close()


def test_a_dead_or_slow_channel_never_blocks_the_caller(caplog: pytest.LogCaptureFixture) -> None:
    slow = Endpoint(delay=1.0)
    try:
        dispatcher = Dispatcher(
            ["webhook+http://127.0.0.1:9/nobody", f"webhook+{slow.url}"],
            attempts=2,
            backoff=0.05,
        )
        started = time.perf_counter()
        for _ in range(5):
            assert dispatcher.submit(NOTE)
        assert time.perf_counter() - started < 0.05
        with caplog.at_level(logging.WARNING, logger="mlwarden.react"):
            dispatcher.close(timeout=30)
        stats = dispatcher.stats()
        assert stats["failed"] == 5
        assert stats["delivered"] == 5
        assert "Could not deliver incident 7" in caplog.text
    finally:
        slow.close()
