"""``mlwarden serve``: the ingest and query API (FastAPI), bound to 127.0.0.1 unless told
otherwise."""

from __future__ import annotations

from mlwarden.server.app import Settings, create_app

__all__ = ["Settings", "create_app"]
