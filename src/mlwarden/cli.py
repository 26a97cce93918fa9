"""Command-line interface (placeholder until the profile command lands)."""

from __future__ import annotations


def main() -> None:
    """Entry point of the ``mlwarden`` console script."""
