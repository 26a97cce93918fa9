"""The HTML data-quality report, opened in a real headless browser as a person would open it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import polars as pl
import pytest

from mlwarden.datasets import Spike, StuckSensor, UnitChange, production_line
from mlwarden.quality import Suite, Validation, validate

SUITE = {
    "name": "extruder <line 1>",
    "timestamp": "timestamp",
    "entity": ["line"],
    "checks": [
        {"check": "not_null", "column": "temperature_c"},
        {"check": "range", "column": "temperature_c", "min": 150, "max": 320},
        {"check": "range", "column": "pressure_bar", "min": 50, "max": 260},
        {"check": "stuck", "column": "temperature_c", "max_duration": "5m"},
        {"check": "spike", "column": "pressure_bar", "max_z": 8},
        {"check": "unit_change", "column": "temperature_c"},
        {
            "check": "mean",
            "column": "temperature_c",
            "min": 150,
            "max": 320,
            "window": "1h",
            "severity": "warning",
        },
    ],
}
FAILING = [
    "range(temperature_c)",
    "stuck(temperature_c)",
    "spike(pressure_bar)",
    "unit_change(temperature_c)",
    "mean(temperature_c)",
]


@pytest.fixture(scope="module")
def failing() -> Validation:
    faults = [
        StuckSensor("temperature_c", 3_000, 400),
        Spike("pressure_bar", 8_000, 80.0),
        UnitChange("temperature_c", 15_000, 1.8, 32.0),
    ]
    data = production_line(20_000, seed=1, faults=faults)
    return validate(data, Suite.from_dict(SUITE), window="1h")


@pytest.fixture(scope="module")
def passing() -> Validation:
    return validate(production_line(5_000, seed=3), Suite.from_dict(SUITE), window="1h")


def open_page(browser: Any, path: Path) -> tuple[Any, list[str], list[str]]:
    page = browser.new_page()
    errors: list[str] = []
    requests: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.on("console", lambda msg: errors.append(msg.text) if msg.type == "error" else None)
    page.on("request", lambda request: requests.append(request.url))
    page.goto(path.as_uri())
    page.wait_for_selector(".js-plotly-plot .main-svg")
    return page, errors, requests


def test_quality_html_is_one_self_contained_escaped_file(
    tmp_path: Path, failing: Validation
) -> None:
    out = tmp_path / "reports" / "quality.html"
    text = failing.to_html(out)
    assert out.read_text(encoding="utf-8") == text
    assert not (tmp_path / "reports" / "quality.html.tmp").exists()
    assert '<script src="http' not in text  # nothing is fetched from elsewhere
    assert "Plotly" in text
    assert "FAILED: 4 error checks and 1 warning check failed of 7 checks." in text
    assert "extruder &lt;line 1&gt;" in text
    assert "extruder <line 1>" not in text


def test_report_without_time_or_windows_still_renders() -> None:
    suite = Suite.from_dict(
        {"checks": [{"check": "range", "column": "reading", "min": 0, "max": 10}]}
    )
    frame = pl.DataFrame({"reading": [1.0, 2.0, 99.0, None], "tag": ["a", "<b>", "c", "d"]})
    text = validate(frame, suite).to_html()
    assert "range(reading)" in text
    assert "FAILED: 1 error check failed of 1 check." in text
    assert 'data-figure="' not in text  # no time column, no windows: nothing to plot


def test_failing_report_renders_in_a_browser_offline(
    tmp_path: Path, browser: Any, failing: Validation
) -> None:
    out = tmp_path / "quality.html"
    failing.to_html(out)
    page, errors, requests = open_page(browser, out)
    assert errors == []
    assert all(url.startswith("file://") for url in requests), requests
    assert page.locator("#verdict").inner_text().startswith("FAILED")
    # The table lists failed checks first, each linked to its section.
    labels = page.locator("#checks tbody tr").evaluate_all("rows => rows.map(r => r.dataset.check)")
    assert labels[: len(FAILING)] == FAILING
    for label in FAILING:
        row = page.locator(f"#checks tr[data-check='{label}']")
        assert row.get_attribute("data-passed") == "false"
    assert page.locator("#checks tr[data-passed='true']").count() == 2
    assert page.locator("[data-dimension='overall'] .score").inner_text().endswith("%")
    # Plots: scores per window, each failing sensor over time, the mean per window.
    assert page.locator(".js-plotly-plot").count() == 6
    assert page.locator(".plot.series.js-plotly-plot").count() == 4
    stuck = page.locator("section[data-check='stuck(temperature_c)']")
    assert stuck.locator(".js-plotly-plot path.js-line").count() > 0
    assert stuck.locator(".js-plotly-plot .point").count() > 0  # failing readings marked
    assert stuck.locator("table.sample tbody tr").count() == 10
    assert "failed window" in page.locator("#windows").inner_text()
    page.close()


def test_passing_report_says_so_and_plots_no_failing_series(
    tmp_path: Path, browser: Any, passing: Validation
) -> None:
    out = tmp_path / "quality.html"
    passing.to_html(out)
    page, errors, requests = open_page(browser, out)
    assert errors == []
    assert all(url.startswith("file://") for url in requests), requests
    assert page.locator("#verdict").inner_text() == "PASSED: all 7 checks passed."
    assert page.locator("#checks tr[data-passed='false']").count() == 0
    assert page.locator("section.failure").count() == 0
    assert page.locator(".plot.series").count() == 0
    assert page.locator(".js-plotly-plot").count() == 1  # only the scores per window
    page.close()


def test_a_column_named_failed_is_reported_like_any_other() -> None:
    """A plant's own ``failed`` flag fails its range check; the report draws its readings."""
    rows = production_line(2_000, seed=3).with_columns(
        failed=pl.when(pl.int_range(pl.len()) == 1_500).then(0.5).otherwise(0.0)
    )
    suite = Suite.from_dict(
        {
            "timestamp": "timestamp",
            "checks": [{"check": "range", "column": "failed", "min": 0, "max": 0}],
        }
    )
    result = validate(rows, suite)
    assert result["range(failed)"].n_failed == 1
    assert "readings over time, failing readings in red" in result.to_html()
