"""Shared test settings: hypothesis profiles (``--hypothesis-profile=deep`` for long runs); one
headless Chromium per test process for the browser tests (Debian's chromium, driven by
Playwright; its sync API allows one browser per thread, so every browser test shares it); and
the ``store`` every store backend runs the tests on.

The backends are SQLite in a temporary directory, and PostgreSQL at
``MLWARDEN_TEST_POSTGRES_URL`` (each test in a schema of its own, dropped afterwards). CI sets the
URL (``make test`` does, and starts the local server when it is down), so there the PostgreSQL
tests run for real; a run without the URL skips them, except under CI, where a missing URL is an
error.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, settings
from sqlalchemy import create_engine, text

from mlwarden.store.metadata import Store, normalize_url

settings.register_profile("default", deadline=None)
settings.register_profile(
    "deep", max_examples=3000, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
settings.load_profile("default")

CHROMIUM = Path("/usr/bin/chromium")


@pytest.fixture(scope="session")
def browser() -> Iterator[Any]:
    if not CHROMIUM.exists():
        if os.environ.get("CI"):
            pytest.fail("Chromium is missing: 'make test' installs the Debian package 'chromium'.")
        pytest.skip("Chromium is not installed (make test installs it)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(
            executable_path=str(CHROMIUM),
            args=["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"],
        )
        yield browser
        browser.close()


POSTGRES_ENV = "MLWARDEN_TEST_POSTGRES_URL"


def postgres_url() -> str | None:
    url = os.environ.get(POSTGRES_ENV)
    if not url and os.environ.get("CI"):
        raise RuntimeError(f"CI runs the PostgreSQL store tests: set {POSTGRES_ENV}.")
    return url


@pytest.fixture(params=["sqlite", "postgresql"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Store]:
    """A migrated store on each backend; ``@pytest.mark.parametrize("store", ["sqlite"],
    indirect=True)`` keeps a test to SQLite (``sqlite:///{tmp_path}/mlwarden.db``)."""
    if request.param == "sqlite":
        s = Store(f"sqlite:///{tmp_path / 'mlwarden.db'}")
        s.migrate()
        yield s
        s.close()
        return
    url = postgres_url()
    if not url:
        pytest.skip(f"{POSTGRES_ENV} is not set")
    schema = f"t_{uuid.uuid4().hex[:16]}"
    s = Store(url, schema=schema)
    s.migrate()
    try:
        yield s
    finally:
        s.close()
        engine = create_engine(normalize_url(url))
        with engine.begin() as connection:
            connection.execute(text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
        engine.dispose()
