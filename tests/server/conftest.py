"""What the server tests share: the app in-process with a model and two tokens (``server``);
the app served by uvicorn on a free port (``serve``, ``serve_public_and_private``) for the
browser and client tests; and a fresh browser page for each dashboard test, failing the test on
a script error in the page or on a request to another host: the dashboard must work offline."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
import uvicorn
from fastapi.testclient import TestClient

from mlwarden.server import Settings, create_app
from mlwarden.store.metadata import Store

API = "/api/v1"
LOCAL = ("http://127.0.0.1:", "http://localhost:")

Server = tuple[TestClient, Store, dict[str, str]]


@pytest.fixture
def server(tmp_path: Path) -> Iterator[Server]:
    """The app with model 'defect-model' version 1 and a 'write' and a 'read' token."""
    settings = Settings(data_dir=tmp_path, max_request_bytes=200_000, max_rows=1_000)
    store = settings.store()
    store.migrate()
    store.create_model("defect-model")
    store.create_version("defect-model", "1")
    tokens = {
        "write": store.create_token("ingest", "write"),
        "read": store.create_token("ui", "read"),
    }
    with TestClient(create_app(settings)) as client:
        yield client, store, tokens
    store.close()


def auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


@contextmanager
def serve(settings: Settings) -> Iterator[str]:
    """The app on a free port of 127.0.0.1, in a background thread, until the block ends."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    server = uvicorn.Server(
        uvicorn.Config(create_app(settings), log_level="warning", lifespan="on")
    )
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        assert thread.is_alive(), "the server stopped while starting"
        assert time.monotonic() < deadline, "the server did not start within 20 s"
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        sock.close()


@contextmanager
def serve_public_and_private(data_dir: Path) -> Iterator[tuple[str, str]]:
    """The URLs of two servers over ``data_dir``: one reads without a token, one asks for one."""
    with (
        serve(Settings(data_dir=data_dir, public_read=True)) as public,
        serve(Settings(data_dir=data_dir, public_read=False)) as private,
    ):
        yield public, private


@contextmanager
def watched(page: Any) -> Iterator[Any]:
    """``page``, failing the test after the block on a script error in it or on a request to
    another host."""
    errors: list[str] = []
    elsewhere: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.on("request", lambda r: None if r.url.startswith(LOCAL) else elsewhere.append(r.url))
    yield page
    assert errors == [], f"script errors in the page: {errors}"
    assert elsewhere == [], f"requests to other hosts: {elsewhere}"


@pytest.fixture
def page(browser: Any) -> Iterator[Any]:
    context = browser.new_context()
    try:
        with watched(context.new_page()) as page:
            yield page
    finally:
        context.close()
