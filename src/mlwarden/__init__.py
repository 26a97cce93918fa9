"""mlwarden: quality assurance and observability for machine-learning models in production."""

from __future__ import annotations

from mlwarden._version import __version__

__all__ = ["__version__"]
