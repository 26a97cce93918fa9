"""The dashboard, served by uvicorn and used in a headless browser as an operator would: a
stuck pressure sensor in the newest hour of a production line, found from the models page down
to the sample rows of the failing check; sign-in with a read token."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import polars as pl
import pytest
from fastapi.testclient import TestClient

from mlwarden.datasets import StuckSensor, production_line
from mlwarden.registry import Registry
from mlwarden.report.html import format_number
from mlwarden.report.quality import reading_text
from mlwarden.server import Settings, create_app
from mlwarden.service.evaluate import evaluate
from mlwarden.store.metadata import MetricValue, Store, WindowRecord
from mlwarden.store.rowlog import RowLog
from tests.server.conftest import serve_public_and_private

MODEL = "extruder-3"
STUCK = "stuck(pressure_bar)"


@dataclass(frozen=True)
class Site:
    """The evaluated data and the two servers over it."""

    store: Store
    windows: list[WindowRecord]
    stuck_window: WindowRecord
    read_token: str
    public: str
    private: str


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    data_dir = tmp_path_factory.mktemp("dashboard")
    store = Settings(data_dir=data_dir).store()
    store.migrate()
    registry = Registry(store)
    reference = production_line(6_000, seed=1)
    registry.register(
        MODEL, "1", reference, timestamp="timestamp", roles={"defect": "target"}, segment="line"
    )
    registry.promote(MODEL, "1")
    # Six hours of readings; pressure flat-lines from 21:23 into the hour that is still open, so
    # the newest evaluated window (21:00-22:00) is the one with the fault. Labels arrive for the
    # first three hours only.
    later = production_line(
        2_160,
        seed=2,
        start=reference["timestamp"].max() + timedelta(seconds=10),
        faults=[StuckSensor(column="pressure_bar", start_row=1_700, n_rows=300)],
    ).with_columns(pl.int_range(pl.len()).cast(pl.String).alias("id"))
    log = RowLog(data_dir / "log")
    log.append(MODEL, "1", later.drop("defect"), batch_id="rows")
    labelled = later.filter(pl.col("timestamp") < later["timestamp"].min() + timedelta(hours=3))
    log.append_labels(MODEL, labelled.select("id", "defect", "timestamp"), batch_id="labels")
    outcomes = evaluate(store, log, MODEL, "1", window="1h", now=later["timestamp"].max())
    windows = [o.window for o in outcomes]
    read_token = store.create_token("dashboard", "read")
    try:
        with serve_public_and_private(data_dir) as (public, private):
            yield Site(
                store=store,
                windows=windows,
                stuck_window=windows[-1],
                read_token=read_token,
                public=public,
                private=private,
            )
    finally:
        store.close()


def test_the_newest_window_holds_the_stuck_sensor(site: Site) -> None:
    # The premise of the browser tests below.
    assert site.windows[-1].start.hour == 21
    alerts = site.store.alerts(MODEL)
    assert STUCK in alerts.filter(pl.col("started_at") == site.stuck_window.start)["column"]


def test_the_models_page_shows_the_model_alerting(site: Site, page: Any) -> None:
    page.goto(site.public + "/")
    row = page.locator(f'tr[data-model="{MODEL}"]')
    assert row.locator(".badge").inner_text() == "alerting"
    cells = row.locator("td")
    assert cells.nth(2).inner_text() == "1"  # the production version
    assert cells.nth(3).inner_text() == site.stuck_window.end.strftime("%Y-%m-%d %H:%M")
    newest = site.store.alerts(MODEL).filter(pl.col("started_at") == site.stuck_window.start)
    assert cells.nth(4).inner_text() == str(newest.height)  # out of bounds in the newest window
    assert row.locator("svg.spark polyline").count() == 1


def test_from_the_model_down_to_the_stuck_readings(site: Site, page: Any) -> None:
    page.goto(site.public + "/")
    page.get_by_role("link", name=MODEL, exact=True).click()
    page.wait_for_url(f"**/models/{MODEL}")
    page.wait_for_selector("#plot-quality .main-svg")
    assert page.locator("#plot-drifted .main-svg").count() >= 1
    listed = page.locator("#window-list tbody tr")
    assert listed.count() == len(site.windows)
    newest = listed.first
    assert newest.get_attribute("data-window") == str(site.stuck_window.id)
    assert newest.locator("td").first.inner_text() == site.stuck_window.start.strftime(
        "%Y-%m-%d %H:%M"
    )

    newest.get_by_role("link", name="details").click()
    page.wait_for_url(f"**/windows/{site.stuck_window.id}")
    failing = page.locator(f'#failing-checks tr[data-check="{STUCK}"]')
    assert "did not change" in failing.inner_text()

    failing.get_by_role("link", name=STUCK).click()
    page.wait_for_selector("#sample")
    assert page.locator("h1").inner_text() == STUCK
    validation = site.store.validation(site.stuck_window.id)
    assert validation is not None
    check = next(
        c for c in validation["checks"] if (c["check"], c["column"]) == ("stuck", "pressure_bar")
    )
    headers = page.locator("#sample thead th").all_inner_texts()
    column = headers.index("pressure_bar")
    shown = [
        row.locator("td").nth(column).inner_text() for row in page.locator("#sample tbody tr").all()
    ]
    assert shown == [reading_text(r["pressure_bar"]) for r in check["sample"]]
    assert len(set(shown)) == 1, "a stuck sensor repeats one reading"


def test_the_window_shows_drift_with_distributions(site: Site, page: Any) -> None:
    page.goto(f"{site.public}/models/{MODEL}/windows/{site.stuck_window.id}")
    drift = page.locator("#drift-list tbody tr")
    tested = {r.get_attribute("data-column") for r in drift.all()}
    assert {"pressure_bar", "temperature_c"} <= tested
    page.wait_for_selector("#drift-0-panel .main-svg")
    first = drift.first.get_attribute("data-column")
    assert page.locator("#drift-0-panel h3").inner_text() == first
    assert page.locator("#drift-0-panel .legendtext").all_text_contents() == [
        "reference",
        "current",
    ]


def test_performance_is_estimated_beside_its_realized_value(site: Site, page: Any) -> None:
    page.goto(f"{site.public}/models/{MODEL}")
    panel = page.locator("section.panel").filter(
        has=page.get_by_role("heading", name="Performance · roc_auc", exact=True)
    )
    panel.locator(".main-svg").first.wait_for()
    legend = set(panel.locator(".legendtext").all_text_contents())
    assert {"roc_auc", "realized"} <= legend
    # Sixteen hourly reference windows leave the whole table's ROC AUC too uneven to bound at
    # the budget: the chart draws no band and says so rather than a band nothing can leave.
    assert not {"upper bound", "lower bound"} & legend
    assert "no alert bound" in panel.inner_text()

    labelled = site.windows[1]  # every row of the second hour has its label
    realized = site.store.metric_series(MODEL, "performance.roc_auc.realized", segment="")
    value = realized.filter(pl.col("window_start") == labelled.start)["value"].item()
    page.goto(f"{site.public}/models/{MODEL}/windows/{labelled.id}")
    row = page.locator("#performance-list tbody tr").filter(has_text="roc_auc")
    assert row.locator("td.num").nth(1).inner_text() == format_number(value)
    auc = site.store.metric_series(MODEL, "performance.roc_auc")
    expected = auc.filter((pl.col("window_start") == labelled.start) & (pl.col("segment") != ""))
    assert expected.height > 0
    table = page.locator("#segment-tables section.panel").filter(
        has=page.get_by_role("heading", name="performance.roc_auc", exact=True)
    )
    assert sorted(table.locator("tbody td:first-child").all_inner_texts()) == sorted(
        expected["segment"]
    )


def test_a_window_without_a_profile_says_so(site: Site, page: Any) -> None:
    window = site.windows[0]
    details = site.store.details(window.id)
    site.store.save_details(window.id, "profile", {}, None)
    try:
        page.goto(f"{site.public}/models/{MODEL}/windows/{window.id}")
        assert "No profile is stored" in page.locator("#drift-note").inner_text()
        assert page.locator("#drift-list tbody tr").count() > 0
    finally:
        result, blob = details["profile"]
        site.store.save_details(window.id, "profile", result, blob)


def test_incidents_list_the_stuck_sensor(site: Site, page: Any) -> None:
    page.goto(site.public + "/incidents")
    incidents = site.store.incidents(MODEL)
    rows = page.locator("#incident-list tbody tr")
    assert rows.count() == len(incidents)
    stuck = [i for i in incidents if STUCK in i["title"]]
    assert stuck
    link = page.get_by_role("link", name=stuck[-1]["title"]).first
    link.click()
    page.wait_for_selector("#alert-list")
    alerts = page.locator("#alert-list tbody tr")
    assert alerts.count() == stuck[-1]["alerts"]
    assert STUCK in page.locator("#alert-list").inner_text()
    # the diagnosis names the stuck sensor first, with its evidence
    first = page.locator("#causes > li").first
    assert first.get_attribute("data-kind") == "quality"
    assert first.get_attribute("data-column") == "pressure_bar"
    assert "stuck" in first.locator(".cause-head").inner_text()
    assert f"{STUCK} failed in" in first.locator(".evidence").inner_text()
    assert page.locator("#shift").inner_text() == "data quality"
    alerts.filter(has_text=STUCK).get_by_role("link").click()
    page.wait_for_url(f"**/models/{MODEL}/windows/*")
    assert page.locator(f'#failing-checks tr[data-check="{STUCK}"]').count() == 1


def test_a_missing_model_window_or_incident_is_a_404_page(site: Site, page: Any) -> None:
    response = page.goto(site.public + "/models/extruder-9")
    assert response.status == 404
    assert (
        "No model named 'extruder-9'. Did you mean 'extruder-3'?"
        in page.locator("#problem").inner_text()
    )
    for path in (
        f"/models/{MODEL}/windows/999999",
        f"/models/{MODEL}/windows/latest",
        f"/models/{MODEL}/windows/{site.stuck_window.id}/checks/no-such-check",
        f"/models/{MODEL}/incidents/999999",
    ):
        response = page.goto(site.public + path)
        assert response.status == 404, path
        assert page.locator("#problem").count() == 1, path


def test_pages_need_a_read_token_without_public_read(site: Site, page: Any) -> None:
    page.goto(f"{site.private}/models/{MODEL}")
    page.wait_for_url("**/login?next=*")
    assert "Sign in with a read token" in page.locator("#message").inner_text()

    page.fill("#token", "mlw_not-a-token")
    page.get_by_role("button", name="Sign in").click()
    assert "not valid" in page.locator("#error").inner_text()

    page.fill("#token", site.read_token)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(f"**/models/{MODEL}")
    page.wait_for_selector("#plot-quality .main-svg")
    cookie = next(c for c in page.context.cookies() if c["name"] == "mlwarden_token")
    assert cookie["httpOnly"] is True
    assert cookie["sameSite"] == "Strict"

    page.get_by_role("link", name="Sign out").click()
    page.wait_for_url("**/login?signed_out=true")
    page.goto(site.private + "/")
    page.wait_for_url("**/login?next=*")


def test_the_api_keeps_its_bearer_tokens(site: Site, page: Any) -> None:
    api = page.context.request
    assert api.get(f"{site.private}/api/v1/models").status == 401
    headers = {"Authorization": f"Bearer {site.read_token}"}
    assert api.get(f"{site.private}/api/v1/models", headers=headers).status == 200
    dashboard = api.get(f"{site.private}/", headers=headers, max_redirects=0)
    assert dashboard.status == 200
    assert MODEL in dashboard.text()


def test_pages_escape_what_the_data_holds(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path, public_read=True)
    store = settings.store()
    store.migrate()
    store.create_model("fresh", description="registered, never evaluated")
    store.create_version("fresh", "1")
    store.create_model("odd")
    store.create_version("odd", "1")
    start = datetime(2024, 5, 1, 8, tzinfo=UTC)
    window = store.upsert_window("odd", "1", start, start + timedelta(hours=1), n_rows=10)
    hostile = "</script><img src=x onerror=alert(1)>"
    metrics = [
        MetricValue("quality_score", 0.5, column="overall"),
        MetricValue(f"performance.{hostile}", 0.4, lower=0.6, upper=1.0),
        MetricValue("drift.ks", 0.9, upper=0.1, column=hostile),
        MetricValue("drift.ks", 0.9, upper=0.1, column="x", segment=f"line={hostile}"),
    ]
    store.write_metrics(window.id, metrics)
    store.record_alerts(window.id, metrics)
    with TestClient(create_app(settings)) as client:
        models = client.get("/").text
        assert 'data-status="no data"' in models
        assert 'data-status="alerting"' in models
        fresh = client.get("/models/fresh")
        assert fresh.status_code == 200
        assert "No metric to plot yet" in fresh.text
        for path in ("/models/odd", f"/models/odd/windows/{window.id}", "/incidents"):
            page = client.get(path)
            assert page.status_code == 200, path
            assert "<img src=x" not in page.text, path
            assert "</script><img" not in page.text, path
        assert "&lt;img src=x onerror=alert(1)&gt;" in client.get("/incidents").text
        script = client.get("/static/plotly.min.js", headers={"Accept-Encoding": "gzip"})
        assert script.headers["content-encoding"] == "gzip"
        assert "immutable" in script.headers["cache-control"]
        assert "Plotly" in script.text[:5000]
    store.close()
