"""The bolt-on client: log a model's inputs, predictions and labels from the serving code.

:class:`Monitor` batches what it is given on a background thread and sends it to an mlwarden
server (or writes it to a row log on disk); it never blocks or raises into the host, and spools
to disk while the server is unreachable. See :mod:`mlwarden.monitor.client`.
"""

from __future__ import annotations

from mlwarden.monitor.batch import RowIds
from mlwarden.monitor.client import TOKEN_ENV, Monitor, MonitorStats

__all__ = ["TOKEN_ENV", "Monitor", "MonitorStats", "RowIds"]
