"""The monitoring loop's schedule: evaluating closed windows of every model version."""

from __future__ import annotations

from mlwarden.service.evaluate import WindowOutcome, evaluate

__all__ = ["WindowOutcome", "evaluate"]
