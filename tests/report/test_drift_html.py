"""The HTML drift report, opened in a real headless browser as a person would open it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
from click.testing import CliRunner

from mlwarden.cli import cli


def make_files(tmp_path: Path) -> tuple[Path, Path]:
    rng = np.random.default_rng(4)

    def side(n: int, shift: float, share_b: float) -> pl.DataFrame:
        return pl.DataFrame(
            {
                "temperature_c": rng.normal(220 + shift, 5, n),
                "pressure_bar": rng.normal(150, 10, n),
                "recipe": rng.choice(["PP-H100", "PA6-GF30"], n, p=[1 - share_b, share_b]),
            }
        )

    ref, cur = tmp_path / "ref.parquet", tmp_path / "cur.parquet"
    side(20_000, 0.0, 0.2).write_parquet(ref)
    side(4_000, 4.0, 0.2).write_parquet(cur)
    return ref, cur


def test_drift_html_is_one_self_contained_file(tmp_path: Path) -> None:
    ref, cur = make_files(tmp_path)
    out = tmp_path / "reports" / "drift.html"
    result = CliRunner().invoke(cli, ["drift", str(ref), str(cur), "--html", str(out)])
    assert result.exit_code == 0, result.output
    page = out.read_text()
    assert "temperature_c" in page
    assert "Drift: 1 of 3 columns drifted (temperature_c)." in page
    assert '<script src="http' not in page  # nothing is fetched from elsewhere
    assert "Plotly" in page


def test_drift_html_renders_in_a_browser_offline(tmp_path: Path, browser: Any) -> None:
    ref, cur = make_files(tmp_path)
    out = tmp_path / "drift.html"
    result = CliRunner().invoke(cli, ["drift", str(ref), str(cur), "--html", str(out)])
    assert result.exit_code == 0, result.output
    page = browser.new_page()
    errors: list[str] = []
    requests: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.on("request", lambda request: requests.append(request.url))
    page.goto(out.as_uri())
    page.wait_for_selector(".js-plotly-plot .main-svg")
    assert errors == []
    assert all(url.startswith("file://") for url in requests), requests
    assert page.locator("#verdict").inner_text().startswith("Drift: 1 of 3")
    assert page.locator(".js-plotly-plot").count() == 3
    drifted = page.locator("tr[data-column='temperature_c'] .tag").inner_text()
    assert drifted == "drift"
    # Each plot shows both sides: a reference and a current bar trace.
    assert page.locator(".js-plotly-plot").first.locator("g.trace.bars").count() == 2
    page.close()


def test_drift_over_time_page_marks_the_drifted_windows(tmp_path: Path, browser: Any) -> None:
    from mlwarden.drift import DriftMonitor

    rng = np.random.default_rng(9)
    reference = pl.DataFrame({"temp": rng.normal(200, 5, 10_000)})
    temp = rng.normal(200, 5, 5_000)
    temp[4_000:] += 5.0
    series = DriftMonitor(reference).evaluate(pl.DataFrame({"temp": temp}), window=1_000)
    out = series.to_html(tmp_path / "series.html")
    page = browser.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.goto(out.as_uri())
    page.wait_for_selector(".js-plotly-plot .main-svg")
    assert errors == []
    assert "drifted in 1 of 5 windows" in page.content()
    assert page.locator("#figures tbody tr").count() == 5
    page.close()
