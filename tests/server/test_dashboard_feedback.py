"""Feedback, explanations and promotions on the dashboard, served by uvicorn and used in a
headless browser: a defect classifier of a production line whose predictions are explained by
sensor; people override most predictions of one hour, which the model page shows as an
override-rate alert; a candidate version waits for review and is promoted from its page."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import polars as pl
import pytest

from mlwarden.feedback import DEFAULT_REASONS, ROLES, give_feedback, list_feedback
from mlwarden.registry import Registry
from mlwarden.registry.promotion import PromotionGate, request_promotion
from mlwarden.server import Settings
from mlwarden.server.dashboard import COOKIE
from mlwarden.service.evaluate import evaluate
from mlwarden.service.explain import explain_batch
from mlwarden.store.metadata import Store
from mlwarden.store.rowlog import RowLog
from tests.plant_model import FEATURES, fit_model, line_rows, scored
from tests.plant_model import ROLES as PLANT_ROLES
from tests.server.conftest import serve, watched

MODEL = "line"
GROUPS = {"thermal": ["temperature_c", "humidity_pct"]}
FLAGGED = "p3"  # logged with a pressure far outside the reference's range


@dataclass(frozen=True)
class Site:
    """The logged, explained and evaluated model, its pending promotion, and the server."""

    store: Store
    rows: pl.DataFrame
    promotion: int
    read_token: str
    write_token: str
    url: str


def _register(registry: Registry, version: str, reference: pl.DataFrame, depth: int) -> Any:
    model = fit_model(reference, depth)
    registry.register(
        MODEL,
        version,
        scored(model, reference),
        timestamp="timestamp",
        id="id",
        roles=PLANT_ROLES,
        segment="line",
        estimator=model,
        features=FEATURES,
        groups=GROUPS,
    )
    return model


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    data_dir = tmp_path_factory.mktemp("feedback")
    store = Settings(data_dir=data_dir).store()
    store.migrate()
    registry = Registry(store)
    reference = (
        line_rows(4_000, seed=1).with_row_index("id").with_columns(pl.col("id").cast(pl.String))
    )
    model = _register(registry, "1", reference, depth=3)
    registry.promote(MODEL, "1")
    # 600 predictions after the reference, one of them on a pressure reading out of range.
    rows = line_rows(600, seed=2, start=reference["timestamp"].max() + timedelta(seconds=10))
    rows = rows.with_row_index("id").with_columns(pl.format("p{}", "id"))
    rows = rows.with_columns(
        pressure_bar=pl.when(pl.col("id") == FLAGGED).then(400.0).otherwise("pressure_bar")
    )
    rows = scored(model, rows).drop("defect")
    log = RowLog(data_dir / "log")
    log.append(MODEL, "1", rows, batch_id="b1")
    explain_batch(store, log, MODEL, "1", "b1", rows["timestamp"].min(), rows["timestamp"].max())
    # People overrode 8 of 10 predictions of the first hour: the override rate alerts.
    hour = pl.col("timestamp").dt.truncate("1h")
    first_hour = rows.filter(hour == hour.min()).tail(10)
    for i, (prediction_id, at) in enumerate(first_hour.select("id", "timestamp").iter_rows()):
        give_feedback(
            store,
            log,
            MODEL,
            prediction_id,
            role="operator",
            by=f"op{i % 3}",
            decision="overridden" if i % 5 else "accepted",
            reason="sensor_fault" if i % 5 else "",
            plausible=i % 5 == 0,
            at=at,
        )
    evaluate(store, log, MODEL, "1", window="1h", now=rows["timestamp"].max() + timedelta(hours=2))
    # A deeper model asks to replace production and waits for a review.
    _register(registry, "2", reference, depth=4)
    holdout = scored(model, line_rows(1_500, seed=9).with_row_index("id"))
    pending = request_promotion(
        store, MODEL, "2", holdout, gate=PromotionGate(tolerance=0.05, segment_tolerance=0.2)
    )
    assert pending.status == "pending", pending.gate["failures"]
    read_token = store.create_token("viewer", "read")
    write_token = store.create_token("lead", "write")
    try:
        with serve(Settings(data_dir=data_dir, explain=False)) as url:
            yield Site(
                store=store,
                rows=rows,
                promotion=pending.id,
                read_token=read_token,
                write_token=write_token,
                url=url,
            )
    finally:
        store.close()


@pytest.fixture(scope="module")
def context(browser: Any) -> Iterator[Any]:
    """One browser context for the module's tests: Plotly.js is fetched and compiled once, not
    once per test (some 2 s each on a small machine)."""
    context = browser.new_context()
    yield context
    context.close()


@pytest.fixture
def page(context: Any) -> Iterator[Any]:
    """A new page, signed out, in the module's context; like the shared ``page`` fixture it
    fails the test on a script error or on a request to another host."""
    context.clear_cookies()
    page = context.new_page()
    try:
        with watched(page):
            yield page
    finally:
        page.close()


def _sign_in(page: Any, site: Site, token: str) -> None:
    """Sign the page in with ``token``: the cookie the sign-in form sets (the form itself is
    tested with the other pages)."""
    page.context.add_cookies(
        [{"name": COOKIE, "value": token, "url": site.url, "httpOnly": True, "sameSite": "Strict"}]
    )


def _ticks(page: Any, plot: str) -> list[str]:
    page.wait_for_selector(f"#{plot} .main-svg")
    texts: list[str] = page.locator(f"#{plot} g.xtick text").all_text_contents()
    return texts


# -- the prediction page ----------------------------------------------------------------------


def test_the_prediction_page_shows_why_flags_and_the_form(site: Site, page: Any) -> None:
    _sign_in(page, site, site.write_token)
    page.goto(f"{site.url}/models/{MODEL}/predictions/{FLAGGED}")
    sensors = _ticks(page, "waterfall-sensors")
    assert sensors[0] == "base value"
    assert sensors[-1] == "output"
    assert set(sensors[1:-1]) == {"thermal", "pressure_bar", "vibration_mm_s", "line_speed_m_min"}
    features = _ticks(page, "waterfall-features")
    assert set(features[1:-1]) == set(FEATURES)
    flags = page.locator("#quality-flags .tag").all_inner_texts()
    assert flags == ["range(pressure_bar)"]
    assert page.locator('#inputs tr[data-column="pressure_bar"]').get_attribute("class") == "bad"
    score = site.rows.filter(pl.col("id") == FLAGGED)["defect_score"][0]
    assert page.locator("#prediction").inner_text() == f"{score:.3f}"
    form = page.locator("#feedback-form")
    assert form.locator("#role option").all_inner_texts() == [r.replace("_", " ") for r in ROLES]
    reasons = form.locator("#reason option").all_inner_texts()
    assert reasons == ["–", *(r.replace("_", " ") for r in DEFAULT_REASONS)]
    assert page.locator("#no-feedback").count() == 1


def test_feedback_from_the_form_is_stored_with_what_was_shown(site: Site, page: Any) -> None:
    _sign_in(page, site, site.write_token)
    page.goto(f"{site.url}/models/{MODEL}/predictions/p100")
    shown = _ticks(page, "waterfall-sensors")[1:-1]
    page.select_option("#role", "domain_expert")
    page.check('input[name="correct"][value="false"]')
    page.fill("#true_value", "1")
    page.check('input[name="decision"][value="overridden"]')
    page.select_option("#reason", "sensor_fault")
    page.fill('textarea[name="comment"]', "pressure <b>frozen</b> since the shift change")
    page.check('input[name="plausible"][value="false"]')
    page.fill('textarea[name="explanation_comment"]', "pressure cannot matter this much")
    page.get_by_role("button", name="Give feedback").click()
    page.wait_for_url("**/predictions/p100#feedback")
    assert page.locator("#flash").inner_text() == "Feedback recorded, by lead."

    [stored] = list_feedback(site.store, MODEL, prediction_id="p100")
    assert (stored.role, stored.by, stored.decision, stored.reason) == (
        "domain_expert",
        "lead",
        "overridden",
        "sensor_fault",
    )
    assert (stored.correct, stored.true_value, stored.plausible) == (False, 1, False)
    assert [s["sensor"] for s in stored.shown["explanation"]["sensors"]] == shown
    assert stored.shown["quality_flags"] == []
    assert stored.shown["prediction"] == pytest.approx(
        site.rows.filter(pl.col("id") == "p100")["defect_score"][0]
    )
    row = page.locator(f'#feedback-list tr[data-feedback="{stored.id}"]')
    text = row.inner_text()
    assert "domain expert" in text
    assert "overridden" in text
    assert "pressure <b>frozen</b> since the shift change" in text  # escaped, shown as typed
    assert "implausible" in text
    page.reload()
    assert page.locator("#flash").count() == 0  # shown once


def test_an_override_without_a_reason_is_refused_naming_it(site: Site, page: Any) -> None:
    _sign_in(page, site, site.write_token)
    page.goto(f"{site.url}/models/{MODEL}/predictions/p101")
    page.check('input[name="decision"][value="overridden"]')
    page.fill('textarea[name="comment"]', "kept after the error")
    with page.expect_navigation() as navigation:
        page.get_by_role("button", name="Give feedback").click()
    assert navigation.value.status == 422
    flash = page.locator("#flash")
    assert flash.get_attribute("data-field") == "reason"
    assert "An override needs a 'reason' code" in flash.inner_text()
    assert "Traceback" not in page.content()
    assert page.locator("#reason").get_attribute("aria-invalid") == "true"
    assert page.locator('textarea[name="comment"]').input_value() == "kept after the error"
    assert page.locator('input[name="decision"][value="overridden"]').is_checked()
    assert list_feedback(site.store, MODEL, prediction_id="p101") == []


def test_a_read_only_viewer_sees_no_form_and_is_refused(site: Site, page: Any) -> None:
    _sign_in(page, site, site.read_token)
    page.goto(f"{site.url}/models/{MODEL}/predictions/p102")
    assert page.locator("#feedback-form").count() == 0
    assert "read token 'viewer'" in page.locator("#read-only").inner_text()
    form = {"role": "operator", "decision": "accepted", "shown": "{}"}
    refused = page.context.request.post(
        f"{site.url}/models/{MODEL}/predictions/p102/feedback", form=form, max_redirects=0
    )
    assert refused.status == 403
    elsewhere = page.context.request.post(
        f"{site.url}/models/{MODEL}/predictions/p102/feedback",
        form=form,
        headers={
            "Authorization": f"Bearer {site.write_token}",
            "Origin": "https://elsewhere.example",
        },
        max_redirects=0,
    )
    assert elsewhere.status == 403
    assert list_feedback(site.store, MODEL, prediction_id="p102") == []
    page.goto(f"{site.url}/models/{MODEL}/versions/2")
    assert page.locator(f"#promotion-{site.promotion} form").count() == 0
    review = page.context.request.post(
        f"{site.url}/promotions/{site.promotion}/review",
        form={"decision": "approve", "comment": ""},
        max_redirects=0,
    )
    assert review.status == 403
    assert site.store.resolve(MODEL, "production").version in ("1", "2")


def test_an_unknown_prediction_or_version_is_a_404_page(site: Site, page: Any) -> None:
    _sign_in(page, site, site.read_token)
    for path, said in (
        (f"/models/{MODEL}/predictions/nope", "no prediction with id = 'nope'"),
        (f"/models/{MODEL}/versions/9", "9"),
        ("/models/press-9/predictions/p1", "press-9"),
    ):
        response = page.goto(site.url + path)
        assert response.status == 404, path
        assert said in page.locator("#problem").inner_text(), path


# -- the version page -------------------------------------------------------------------------


def test_the_version_page_compares_explanations_and_a_review_promotes(
    site: Site, page: Any
) -> None:
    _sign_in(page, site, site.write_token)
    page.goto(f"{site.url}/models/{MODEL}/versions/2")
    this, other = page.locator("#explanation-this"), page.locator("#explanation-other")
    assert this.locator("h3").inner_text() == "version 2"
    assert other.locator("h3").inner_text() == "version 1 (production)"
    for plot in ("this-groups", "this-features", "other-groups", "other-features"):
        page.wait_for_selector(f"#{plot} .main-svg")
    ours = this.bounding_box()
    theirs = other.bounding_box()
    assert ours["x"] + ours["width"] <= theirs["x"]  # side by side
    assert abs(ours["y"] - theirs["y"]) < 1
    groups = page.locator("#this-groups g.ytick text").all_text_contents()
    assert "thermal" in groups
    table = page.locator("#importance-table tbody tr")
    assert sorted(r.get_attribute("data-feature") for r in table.all()) == sorted(FEATURES)
    assert "higher value → higher output" in page.locator("#importance-table").inner_text()

    promotion = page.locator(f"#promotion-{site.promotion}")
    assert promotion.get_attribute("data-status") == "pending"
    overall = promotion.locator('tr[data-metric="roc_auc"][data-segment=""]')
    assert "passed" in overall.inner_text()
    comment = "checked on a week of line L2 data"
    promotion.get_by_role("textbox").fill(comment)
    promotion.get_by_role("button", name="Approve").click()
    page.wait_for_url(f"**/models/{MODEL}/versions/2#promotion-{site.promotion}")
    assert page.locator("#flash").inner_text() == (
        f"Promotion {site.promotion} of version 2 approved by lead: 'production' now points at "
        "version 2."
    )
    assert site.store.resolve(MODEL, "production").version == "2"
    change = site.store.alias_history(MODEL, "production")[-1]
    assert change.version == "2"
    assert change.changed_by == "lead"
    assert change.evidence["review"]["comment"] == comment
    assert comment in change.note
    assert page.locator(f"#promotion-{site.promotion}").get_attribute("data-status") == "promoted"
    assert comment in page.locator(f"#promotion-{site.promotion} .review").inner_text()
    # Production now: compared with the version it replaced.
    assert "version 1 (production before it)" in page.locator("#explanation-other h3").inner_text()


# -- the model page ---------------------------------------------------------------------------


def test_the_model_page_shows_the_override_rate_trend(site: Site, page: Any) -> None:
    alerts = site.store.alerts(MODEL)
    assert "override_rate" in alerts["metric"].to_list()
    _sign_in(page, site, site.read_token)
    page.goto(f"{site.url}/models/{MODEL}?version=1")
    page.wait_for_selector("#trend-override-rate .main-svg")
    legend = page.locator("#trend-override-rate .legendtext").all_text_contents()
    assert "override rate" in legend
    assert "outside bounds" in legend
    assert "upper bound" in legend
    for plot in ("explanation-plausibility", "explanation-auc", "explanation-shift"):
        page.wait_for_selector(f"#trend-{plot} .main-svg")
    versions = page.locator("#version-list a")
    assert versions.all_inner_texts() == ["version 1", "version 2"]
    assert versions.first.get_attribute("href") == f"/models/{MODEL}/versions/1"
    page.fill("#prediction-id", FLAGGED)
    page.locator("#find-prediction").get_by_role("button", name="Open").click()
    page.wait_for_url(f"**/models/{MODEL}/predictions/{FLAGGED}")
    assert page.locator("h1").inner_text() == f"Prediction {FLAGGED}"
