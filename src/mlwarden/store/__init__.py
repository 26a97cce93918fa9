"""Where mlwarden keeps what it learns and sees.

Metadata (models, versions, aliases, windows, metrics, validations, alerts, incidents) lives in a
relational database through SQLAlchemy, with Alembic migrations: SQLite in the data directory by
default, PostgreSQL in production. Row-level logs (features, predictions, ids, timestamps,
labels) are Parquet files partitioned by model and day, queried with DuckDB.
"""

from __future__ import annotations

from mlwarden.store.metadata import MetricValue, Store
from mlwarden.store.rowlog import RowLog

__all__ = ["MetricValue", "RowLog", "Store"]
