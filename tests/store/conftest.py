"""The store contract runs on every backend: SQLite in a temporary directory, and PostgreSQL
at ``MLWARDEN_TEST_POSTGRES_URL`` (each test in a schema of its own, dropped afterwards).

CI sets the URL (``make test`` does, and starts the local server when it is down), so there the
PostgreSQL tests run for real; a run without the URL skips them, except under CI, where a missing
URL is an error.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text

from mlwarden.store.metadata import Store, normalize_url

POSTGRES_ENV = "MLWARDEN_TEST_POSTGRES_URL"


def postgres_url() -> str | None:
    url = os.environ.get(POSTGRES_ENV)
    if not url and os.environ.get("CI"):
        raise RuntimeError(f"CI runs the PostgreSQL store tests: set {POSTGRES_ENV}.")
    return url


@pytest.fixture(params=["sqlite", "postgresql"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Store]:
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
