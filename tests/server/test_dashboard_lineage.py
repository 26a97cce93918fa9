"""The lineage graph and the audit log of policy actions, served by uvicorn and used in a
headless browser: a four-step pipeline (extract, featurize, train, score) whose scoring failed
and whose first extract went stale when the raw file changed, opened run by run; actions of
reaction policies listed, and approved only with a write token."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import polars as pl
import pytest
from fastapi.testclient import TestClient

from mlwarden.datasets import production_line
from mlwarden.lineage import Lineage, component, run
from mlwarden.quality import Suite, validate
from mlwarden.server import Settings, create_app
from mlwarden.store.metadata import MetricValue, Store
from mlwarden.store.schema import PolicyActionRow, RunCheckRow
from tests.server.conftest import serve_public_and_private

MODEL = "press-7"
OTHER = "press-8"
HOSTILE = "<script>x()</script>"


@dataclass(frozen=True)
class Site:
    """The recorded pipeline, the audit log, and the two servers over them."""

    store: Store
    runs: dict[str, int]
    features_sha: str
    incident: int
    actions: dict[str, int]
    read_token: str
    write_token: str
    public: str
    private: str


def _score(store: Store, features: pl.DataFrame) -> None:
    with run("score", store=store) as r:
        r.input({"weights": [0.1, 0.2]}, name="defect-model")
        r.input(features)
        raise ValueError("the scorer expects 12 features; got 11")


def _pipeline(store: Store, raw: Path) -> tuple[dict[str, int], str]:
    """Extract, featurize, train (with checks), score (fails); then the raw file changes and is
    extracted again, which leaves the first extract stale; one score run is still running."""

    @component("extract", store=store)
    def extract(path: Path) -> pl.DataFrame:
        return pl.read_parquet(path)

    @component("featurize", store=store)
    def featurize(frame: pl.DataFrame, *, window: int = 10) -> pl.DataFrame:
        return frame.with_columns(
            pl.col("temperature_c").rolling_mean(window).alias("temperature_mean")
        )

    lineage = Lineage(store)
    production_line(500, seed=1).write_parquet(raw)
    features = featurize(extract(raw), window=10)
    with run(
        "train",
        store=store,
        params={"max_iter": 200, "learning_rate": 0.05},
        owner="ana",
        tags={"ticket": "QA-12"},
        code="train@4f2a9c1",
    ) as r:
        features_ref = r.input(features)
        r.output({"weights": [0.1, 0.2]}, name="defect-model")
        train = r.id
    with pytest.raises(ValueError, match="12 features"):
        _score(store, features)
    score = lineage.runs("score")[0].id
    before = Suite.from_dict({"checks": [{"check": "not_null", "column": "temperature_c"}]})
    after = Suite.from_dict(
        {"checks": [{"check": "range", "column": "temperature_mean", "min": 0, "max": 100}]}
    )
    with store.session() as s:
        for stage, suite in (("before", before), ("after", after)):
            validation = validate(features, suite)
            s.add(
                RunCheckRow(
                    run_id=train,
                    stage=stage,
                    name=f"features-{stage}",
                    passed=validation.passed,
                    result=validation.to_dict(),
                )
            )
    production_line(500, seed=2).write_parquet(raw)
    extract(raw)
    running = lineage.start("score", code="score@9d0e1f2")
    hostile = lineage.start(HOSTILE)
    lineage.finish(hostile)
    first, again = (r.id for r in reversed(lineage.runs("extract")))
    runs = {
        "extract": first,
        "featurize": lineage.runs("featurize")[0].id,
        "train": train,
        "score": score,
        "extract_again": again,
        "running": running,
        "hostile": hostile,
    }
    return runs, features_ref.sha256


def _audit_log(store: Store) -> tuple[int, dict[str, int]]:
    """An incident of MODEL and four actions policies took on it: pending, done, dry run and
    failed, a minute apart (the pending one newest)."""
    store.create_model(MODEL)
    store.create_version(MODEL, "1")
    store.create_model(OTHER)
    start = datetime(2024, 5, 1, 8, tzinfo=UTC)
    window = store.upsert_window(MODEL, "1", start, start + timedelta(hours=1), n_rows=360)
    opened = store.record_alerts(
        window.id, [MetricValue("drift.ks", 0.4, upper=0.1, column="pressure_bar")]
    )
    assert opened is not None
    incident = opened[0]
    model_id = store.get_model(MODEL).id
    rows = {
        "failed": ("page-on-call", "notify", "failed", False, {"error": "webhook answered 502"}),
        "dry_run": ("retrain-on-drift", "retrain", "dry_run", True, {"would": "retrain v1"}),
        "done": ("page-on-call", "notify", "done", False, {"channel": "log"}),
        "pending": ("rollback-on-drift", "rollback", "pending", False, {"to": "0.9"}),
    }
    ids = {}
    with store.session() as s:
        for i, (key, (policy, action, status, dry_run, detail)) in enumerate(rows.items()):
            row = PolicyActionRow(
                model_id=model_id,
                policy=policy,
                action=action,
                key=f"{policy}:{incident}:{key}",
                condition="drift.ks(pressure_bar) > 0.1 for 1 window",
                incident_id=incident,
                window_id=window.id,
                status=status,
                dry_run=dry_run,
                detail=detail,
                created_at=start + timedelta(hours=1, minutes=i),
                decided_by="ops" if status == "done" else "",
                decided_at=start + timedelta(hours=2) if status == "done" else None,
            )
            s.add(row)
            s.flush()
            ids[key] = row.id
    return incident, ids


def _pending(store: Store, action: str) -> int:
    """A new pending action of OTHER, for a test to decide on."""
    model_id = store.get_model(OTHER).id
    with store.session() as s:
        row = PolicyActionRow(
            model_id=model_id,
            policy="rollback-on-drift",
            action=action,
            key=f"{action}:{datetime.now(UTC).isoformat()}",
            condition="drift.ks(pressure_bar) > 0.1",
            status="pending",
        )
        s.add(row)
        s.flush()
        return row.id


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    data_dir = tmp_path_factory.mktemp("lineage")
    store = Settings(data_dir=data_dir).store()
    store.migrate()
    runs, features_sha = _pipeline(store, data_dir / "line.parquet")
    incident, actions = _audit_log(store)
    read_token = store.create_token("viewer", "read")
    write_token = store.create_token("lead", "write")
    try:
        with serve_public_and_private(data_dir) as (public, private):
            yield Site(
                store=store,
                runs=runs,
                features_sha=features_sha,
                incident=incident,
                actions=actions,
                read_token=read_token,
                write_token=write_token,
                public=public,
                private=private,
            )
    finally:
        store.close()


def _sign_in(page: Any, site: Site, token: str, target: str) -> None:
    page.goto(f"{site.private}/login?next={target}")
    page.fill("#token", token)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(f"**{target}")


# -- lineage ----------------------------------------------------------------------------------


def test_the_graph_draws_every_run_with_its_status(site: Site, page: Any) -> None:
    page.goto(site.public + "/lineage")
    lineage = Lineage(site.store)
    everything = lineage.runs()
    nodes = page.locator("svg#lineage-graph g.run")
    assert nodes.count() == len(everything) == 7
    for record in everything:
        node = page.locator(f'svg#lineage-graph g.run[data-run="{record.id}"]')
        assert record.status in node.get_attribute("class").split(), record
    assert page.locator("g.run.failed").get_attribute("data-run") == str(site.runs["score"])
    assert page.locator("g.run.running").get_attribute("data-run") == str(site.runs["running"])
    artifacts = {a.sha256 for r in everything for a in (*r.inputs, *r.outputs)}
    assert page.locator("svg#lineage-graph g.artifact").count() == len(artifacts)
    # The first raw file was read again in a newer version: its artifact is marked older.
    assert page.locator("svg#lineage-graph g.artifact.superseded").count() == 1


def test_the_stale_run_is_marked_as_lineage_says(site: Site, page: Any) -> None:
    page.goto(site.public + "/lineage")
    lineage = Lineage(site.store)
    marked = {
        int(n.get_attribute("data-run"))
        for n in page.locator("svg#lineage-graph g.run.stale").all()
    }
    assert marked == {r.id for r in lineage.runs() if lineage.stale(r.id)} == {site.runs["extract"]}
    stale = page.locator(f'g.run[data-run="{site.runs["extract"]}"]')
    assert stale.locator("text.stale-mark").text_content() == "stale"
    checked = page.locator(f'g.run[data-run="{site.runs["train"]}"]')
    assert "check-failed" in checked.get_attribute("class").split()
    assert checked.locator("text.check-mark").text_content() == "✗ checks 1/2"


def test_the_graph_flows_left_to_right_without_overlaps(site: Site, page: Any) -> None:
    page.goto(site.public + "/lineage")
    boxes = {
        int(n.get_attribute("data-run")): n.locator("rect.box").bounding_box()
        for n in page.locator("svg#lineage-graph g.run").all()
    }
    steps = [site.runs[s] for s in ("extract", "featurize", "train", "score")]
    lefts = [boxes[i]["x"] for i in steps]
    assert lefts == sorted(lefts), lefts
    assert len(set(lefts)) == 4, lefts
    every = [
        n.locator("rect.box").bounding_box() for n in page.locator("svg#lineage-graph g.node").all()
    ]
    for i, a in enumerate(every):
        for b in every[i + 1 :]:
            apart = (
                a["x"] + a["width"] <= b["x"]
                or b["x"] + b["width"] <= a["x"]
                or a["y"] + a["height"] <= b["y"]
                or b["y"] + b["height"] <= a["y"]
            )
            assert apart, (a, b)


def test_a_run_page_shows_what_the_run_did(site: Site, page: Any) -> None:
    page.goto(site.public + "/lineage")
    page.locator(f'svg#lineage-graph g.run[data-run="{site.runs["train"]}"]').click()
    page.wait_for_url(f"**/lineage/runs/{site.runs['train']}")
    assert page.locator("#code-version").inner_text() == "train@4f2a9c1"
    facts = page.locator("#run-facts").inner_text()
    assert "ana" in facts
    assert "succeeded" in facts
    assert page.locator("#params").inner_text().split() == [
        "learning_rate",
        "0.05",
        "max_iter",
        "200",
    ]
    assert "QA-12" in page.locator("#tags").inner_text()
    assert page.locator("#input-list code").inner_text() == site.features_sha[:12]
    assert page.locator("#output-list td.key").inner_text() == "defect-model"
    checks = page.locator("#check-list tbody tr")
    assert checks.count() == 2
    assert checks.nth(0).get_attribute("data-stage") == "before"
    assert "passed" in checks.nth(0).inner_text()
    assert checks.nth(1).get_attribute("class") == "bad"
    assert "range(temperature_mean)" in checks.nth(1).inner_text()
    upstream = page.locator("#upstream-list").inner_text()
    assert f"featurize #{site.runs['featurize']}" in upstream
    assert f"extract #{site.runs['extract']}" in upstream
    assert f"score #{site.runs['score']}" in page.locator("#downstream-list").inner_text()
    assert page.locator("#stale").count() == 0

    page.get_by_role("link", name=f"extract #{site.runs['extract']}").click()
    page.wait_for_url(f"**/lineage/runs/{site.runs['extract']}")
    reasons = page.locator("#stale li").all_inner_texts()
    assert reasons == Lineage(site.store).stale(site.runs["extract"])
    assert "has a newer version" in reasons[0]


def test_the_failed_run_shows_its_error(site: Site, page: Any) -> None:
    page.goto(f"{site.public}/lineage/runs/{site.runs['score']}")
    assert page.locator("#run-status").get_attribute("data-status") == "failed"
    assert page.locator("pre.error").inner_text() == (
        "ValueError: the scorer expects 12 features; got 11"
    )


def test_steps_and_unknown_runs(site: Site, page: Any) -> None:
    page.goto(site.public + "/lineage?step=extract")
    assert page.locator("svg#lineage-graph g.run").count() == 2
    for path in ("/lineage/runs/999999", "/lineage/runs/latest", "/lineage?step=no-such-step"):
        response = page.goto(site.public + path)
        assert response.status == 404, path
        assert page.locator("#problem").count() == 1, path
    response = page.goto(site.public + "/lineage?days=-1")
    assert response.status == 422


# -- policy actions ---------------------------------------------------------------------------


def test_the_audit_log_lists_actions_newest_first(site: Site, page: Any) -> None:
    page.goto(f"{site.public}/actions?model={MODEL}")
    rows = page.locator("#action-list tbody tr")
    assert [r.get_attribute("data-status") for r in rows.all()] == [
        "pending",
        "done",
        "dry_run",
        "failed",
    ]
    assert "dry run" in rows.nth(2).inner_text()
    assert "webhook answered 502" in rows.nth(3).inner_text()
    assert "ops" in rows.nth(1).inner_text()

    page.locator("#status-filter").get_by_role("link", name="pending (1)").click()
    page.wait_for_url("**status=pending*")
    assert page.locator("#action-list tbody tr").count() == 1

    page.locator("#action-list").get_by_role("link", name=f"incident {site.incident}").click()
    page.wait_for_url(f"**/models/{MODEL}/incidents/{site.incident}")
    taken = page.locator("#incident-actions tbody tr")
    assert [r.get_attribute("data-action") for r in taken.all()] == [
        str(site.actions[k]) for k in ("pending", "done", "dry_run", "failed")
    ]
    assert page.get_by_role("link", name="approve or reject").count() == 1


def test_a_missing_model_or_status_is_refused(site: Site, page: Any) -> None:
    response = page.goto(site.public + "/actions?model=press-9")
    assert response.status == 404
    assert "Did you mean" in page.locator("#problem").inner_text()
    response = page.goto(site.public + "/actions?status=approved")
    assert response.status == 422


def test_a_read_only_viewer_cannot_approve(site: Site, page: Any) -> None:
    _sign_in(page, site, site.read_token, f"/actions?model={MODEL}")
    pending = page.locator(f'tr[data-action="{site.actions["pending"]}"]')
    assert pending.get_by_role("button", name="Approve").is_disabled()
    assert pending.get_by_role("button", name="Reject").is_disabled()
    assert "read token 'viewer'" in page.locator("#read-only").inner_text()
    # Sent anyway, with the read token's cookie: refused, and nothing changes.
    response = page.context.request.post(
        f"{site.private}/actions/{site.actions['pending']}/decide",
        form={"decision": "approve", "comment": "", "back": "/actions"},
        max_redirects=0,
    )
    assert response.status == 403
    page.reload()
    assert pending.get_attribute("data-status") == "pending"


def test_decisions_from_another_site_are_refused(site: Site, page: Any) -> None:
    response = page.context.request.post(
        f"{site.private}/actions/{site.actions['pending']}/decide",
        form={"decision": "approve"},
        headers={
            "Authorization": f"Bearer {site.write_token}",
            "Origin": "https://elsewhere.example",
        },
        max_redirects=0,
    )
    assert response.status == 403
    assert site.store.verify_token(site.write_token, "write") is not None
    with site.store.session() as s:
        row = s.get(PolicyActionRow, site.actions["pending"])
        assert row is not None
        assert row.status == "pending"


def test_a_decided_action_is_not_decided_again(site: Site, page: Any) -> None:
    _sign_in(page, site, site.write_token, f"/actions?model={MODEL}")
    response = page.context.request.post(
        f"{site.private}/actions/{site.actions['done']}/decide",
        form={"decision": "reject", "back": f"/actions?model={MODEL}"},
        headers={"Origin": site.private},
    )
    assert response.url.endswith(f"/actions?model={MODEL}")
    flash = "is no longer pending: it is done, decided by ops at 2024-05-01 10:00 UTC"
    assert flash in response.text()
    page.reload()
    assert page.locator("#flash").count() == 0  # shown once


def test_a_write_token_approves_a_pending_action(site: Site, page: Any) -> None:
    pytest.importorskip("mlwarden.react.policies")
    action = _pending(site.store, "notify")
    _sign_in(page, site, site.write_token, f"/actions?model={OTHER}")
    row = page.locator(f'tr[data-action="{action}"]')
    row.get_by_role("textbox").fill("checked with the line lead")
    row.get_by_role("button", name="Approve").click()
    page.wait_for_url(f"**/actions?model={OTHER}")
    assert (
        f"Action {action} (notify of policy 'rollback-on-drift' on {OTHER}) approved by lead"
        in (page.locator("#flash").inner_text())
    )
    with site.store.session() as s:
        stored = s.get(PolicyActionRow, action)
        assert stored is not None
        assert stored.status != "pending"
        assert stored.decided_by == "lead"


# -- escaping ---------------------------------------------------------------------------------


def test_pages_escape_run_and_policy_names(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path, public_read=True)
    store = settings.store()
    store.migrate()
    with run(HOSTILE, store=store, params={HOSTILE: HOSTILE}, code=HOSTILE) as r:
        r.input(b"raw", name=HOSTILE)
        r.output(b"table", name="</text><script>y()</script>")
    store.create_model("m")
    with store.session() as s:
        s.add(
            PolicyActionRow(
                model_id=store.get_model("m").id,
                policy=HOSTILE,
                action="notify",
                key="k",
                condition=HOSTILE,
                status="pending",
                detail={HOSTILE: HOSTILE},
            )
        )
    with TestClient(create_app(settings)) as client:
        for path in ("/lineage", f"/lineage/runs/{r.id}", "/actions"):
            page = client.get(path)
            assert page.status_code == 200, path
            assert "<script>" not in page.text, path
            assert "&lt;script&gt;x()&lt;/script&gt;" in page.text, path
    store.close()
