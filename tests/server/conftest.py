"""A fresh browser page for each dashboard test, failing the test on a script error in the page
or on a request to another host: the dashboard must work offline."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

LOCAL = ("http://127.0.0.1:", "http://localhost:")


@pytest.fixture
def page(browser: Any) -> Iterator[Any]:
    context = browser.new_context()
    page = context.new_page()
    errors: list[str] = []
    elsewhere: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.on("request", lambda r: None if r.url.startswith(LOCAL) else elsewhere.append(r.url))
    yield page
    context.close()
    assert errors == [], f"script errors in the page: {errors}"
    assert elsewhere == [], f"requests to other hosts: {elsewhere}"
