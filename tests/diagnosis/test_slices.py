"""Slice search: a planted bad segment is found and named, clean data gives nothing, and the
numbers reported are those of the rows they describe."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import polars as pl
import pytest

from mlwarden.datasets import production_line
from mlwarden.diagnosis import slice_search
from mlwarden.exceptions import InputError


def line_with_errors(seed: int, bad: pl.Expr | None, rate: float = 0.25) -> pl.DataFrame:
    frame = production_line(20_000, seed=seed).drop("timestamp", "batch_id")
    rng = np.random.default_rng(seed)
    base = np.full(frame.height, 0.05)
    if bad is not None:
        base = np.where(frame.select(bad).to_series().to_numpy(), rate, base)
    return frame.with_columns(error=pl.Series(rng.random(frame.height) < base))


def test_a_bad_line_is_found_and_its_numbers_are_its_rows() -> None:
    frame = line_with_errors(1, pl.col("line") == "L2")
    report = slice_search(frame, "error", columns=["line", "recipe", "temperature_c"])
    top = report.slices[0]
    assert top.description == "line = L2"
    rows = frame.filter(pl.col("line") == "L2")
    assert top.n == rows.height
    assert top.mean == pytest.approx(rows["error"].mean())
    rest = frame.filter(pl.col("line") != "L2")
    assert top.rest_mean == pytest.approx(rest["error"].mean())
    assert top.q_value < 1e-6
    assert report.n_tested > 10


def test_a_bad_corner_is_named_by_both_of_its_conditions() -> None:
    frame = line_with_errors(2, (pl.col("line") == "L3") & (pl.col("humidity_pct") > 50), rate=0.5)
    report = slice_search(frame, "error", columns=["line", "humidity_pct", "recipe"])
    top = report.slices[0]
    assert top.columns == ("line", "humidity_pct")
    assert top.conditions[0] == ("line", "= L3")
    assert top.conditions[1][1].startswith("≥"), "the highest humidity range"
    assert "line = L3" not in [s.description for s in report.slices], "the pair explains it"


@pytest.mark.parametrize("seed", range(5))
def test_clean_data_gives_no_slice(seed: int) -> None:
    frame = line_with_errors(seed, None)
    report = slice_search(frame, "error")
    assert report.slices == [], [s.description for s in report.slices]
    assert report.n_tested > 50


def test_where_the_current_data_grew() -> None:
    reference = production_line(10_000, seed=3)
    current = production_line(10_000, seed=4).with_columns(
        pl.when(pl.int_range(pl.len()) % 3 == 0)
        .then(pl.col("humidity_pct") + 25)
        .otherwise(pl.col("humidity_pct"))
    )
    both = pl.concat(
        [reference.with_columns(current=pl.lit(0)), current.with_columns(current=pl.lit(1))]
    )
    report = slice_search(both, "current", columns=["humidity_pct", "line", "recipe"])
    assert report.slices[0].columns == ("humidity_pct",)
    assert report.slices[0].conditions[0][1].startswith("≥")


def test_numeric_outcomes_nulls_and_bad_input() -> None:
    rng = np.random.default_rng(5)
    n = 5_000
    sensor = rng.normal(0, 1, n)
    sensor[:400] = np.nan
    frame = pl.DataFrame(
        {"sensor": sensor, "abs_error": np.abs(rng.normal(0, 1, n)) + np.isnan(sensor) * 2.0}
    ).with_columns(pl.col("sensor").fill_nan(None))
    report = slice_search(frame, "abs_error")
    assert report.slices[0].description == "sensor is null"
    with pytest.raises(InputError, match="numeric or boolean"):
        slice_search(frame.with_columns(pl.lit("x").alias("label")), "label")
    with pytest.raises(InputError, match="abs_eror"):
        slice_search(frame, "abs_eror")
    assert slice_search(frame.head(60), "abs_error").slices == []


def test_the_command_line_prints_and_writes_the_slices(tmp_path: Path) -> None:
    import json

    from click.testing import CliRunner

    from mlwarden.cli import cli

    path = tmp_path / "errors.parquet"
    line_with_errors(1, pl.col("line") == "L2").write_parquet(path)
    out = tmp_path / "slices.json"
    result = CliRunner().invoke(
        cli, ["slices", str(path), "error", "--column", "line", "--json", str(out)]
    )
    assert result.exit_code == 0, result.output
    assert "line = L2" in result.output
    assert json.loads(out.read_text())["slices"][0]["description"] == "line = L2"
    missing = CliRunner().invoke(cli, ["slices", str(path), "eror"])
    assert missing.exit_code == 2
    assert "eror" in missing.output


def test_a_slice_selects_its_rows_as_a_polars_filter() -> None:
    rng = np.random.default_rng(3)
    n = 20_000
    frame = pl.DataFrame(
        {"line": rng.choice(["L1", "L2", "L3"], n), "temperature": rng.normal(230, 5, n)}
    )
    bad = (frame["line"] == "L2").to_numpy() & (frame["temperature"].to_numpy() > 234)
    error = rng.random(n) < np.where(bad, 0.30, 0.05)
    top = slice_search(frame.with_columns(error=pl.Series(error)), "error").slices[0]
    expr = top.expr()
    assert expr is not None
    selected = frame.filter(expr)
    # the printed bounds have 4 digits: the filter selects the slice's rows up to that rounding
    assert abs(selected.height - top.n) <= 0.01 * top.n
    assert set(selected["line"]) == {"L2"}
