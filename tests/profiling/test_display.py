"""The terminal view of a profile: what an engineer reads first."""

from __future__ import annotations

import io
from datetime import UTC, datetime, timedelta

import polars as pl
from rich.console import Console

from mlwarden.profiling import profile
from mlwarden.profiling.display import print_profile, sparkline


def test_sparkline_shapes() -> None:
    assert sparkline([]) == ""
    assert sparkline([0, 0]) == ""
    assert sparkline([1, 8]) == "▁█"
    assert len(sparkline(list(range(100)), width=12)) == 12


def test_tables_show_every_column_with_its_key_figures() -> None:
    t0 = datetime(2026, 3, 1, tzinfo=UTC)
    frame = pl.DataFrame(
        {
            "timestamp": [t0 + timedelta(seconds=10 * i) for i in range(100)],
            "pressure_bar": [150.0 + i % 7 for i in range(100)],
            "recipe": ["PP-H100" if i % 4 else "PA6-GF30" for i in range(100)],
        }
    )
    out = io.StringIO()
    print_profile(profile(frame), Console(file=out, width=200))
    text = out.getvalue()
    assert "100 rows × 3 columns" in text
    assert "pressure_bar" in text
    assert "150" in text
    assert "PP-H100 (75%)" in text
    assert "2026-03-01 00:00:00 UTC" in text
    assert "10 s" in text  # the median gap between readings
