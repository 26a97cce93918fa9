"""Feedback on predictions, per-prediction explanations stored by the service, explanation
drift, and the promotion gate — on a real store, row log and model."""

from __future__ import annotations

import json
import sys
from datetime import timedelta
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
import pytest
from fastapi.testclient import TestClient
from sklearn.ensemble import GradientBoostingClassifier

from mlwarden.datasets import production_line
from mlwarden.diagnosis import diagnose
from mlwarden.exceptions import InputError, NotFoundError, ParameterError
from mlwarden.feedback import export_training_set, give_feedback, list_feedback, record_feedback
from mlwarden.react.policies import apply_policies, load_policies
from mlwarden.registry import Registry
from mlwarden.registry.promotion import (
    PromotionGate,
    list_promotions,
    request_promotion,
    review_promotion,
)
from mlwarden.server import Settings, create_app
from mlwarden.service import evaluate
from mlwarden.service.explain import explain_batch, explain_missing
from mlwarden.store.metadata import Store
from mlwarden.store.rowlog import RowLog
from tests.plant_model import FEATURES, ROLES, fit_model, line_rows, scored
from tests.server.conftest import API, auth


@pytest.fixture(scope="module")
def registered(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, pl.DataFrame, Any]:
    """Version 1 of 'line' registered once with its model, trained on ``reference``; the
    version's own reference is longer (two days of hourly windows, replayed for its alert
    budget). Each test works on a copy of the store."""
    reference = (
        line_rows(4_000, seed=1).with_row_index("id").with_columns(pl.col("id").cast(pl.String))
    )
    model = fit_model(reference)
    reference = scored(model, reference)
    start = reference["timestamp"].min() - timedelta(days=2)
    history = line_rows(17_280, seed=11, start=start).with_row_index("id")
    history = scored(model, history.with_columns(pl.format("h{}", "id")))
    path = tmp_path_factory.mktemp("feedback") / "db.sqlite"
    store = Store(f"sqlite:///{path}")
    registry = Registry(store)
    registry.register(
        "line",
        "1",
        pl.concat([history, reference]),
        timestamp="timestamp",
        id="id",
        roles=ROLES,
        segment="line",
        estimator=model,
        features=FEATURES,
        groups={"thermal": ["temperature_c", "humidity_pct"]},
    )
    registry.promote("line", "1")
    store.close()
    return path, reference, model


@pytest.fixture
def world(tmp_path: Path, registered: tuple[Path, pl.DataFrame, Any]) -> dict[str, Any]:
    """The registered version in a store of its own; 600 later rows logged and explained."""
    import shutil

    template, reference, model = registered
    shutil.copy(template, tmp_path / "db.sqlite")
    store = Store(f"sqlite:///{tmp_path / 'db.sqlite'}")
    rows = line_rows(600, seed=2, start=reference["timestamp"].max() + timedelta(seconds=10))
    rows = scored(model, rows.with_row_index("id").with_columns(pl.format("p{}", "id")))
    rows = rows.drop("defect")
    log = RowLog(tmp_path / "log")
    log.append("line", "1", rows, batch_id="b1")
    first, last = rows["timestamp"].min(), rows["timestamp"].max()
    explained = explain_batch(store, log, "line", "1", "b1", first, last)
    return {
        "store": store,
        "log": log,
        "rows": rows,
        "model": model,
        "reference": reference,
        "explained": explained,
        "tmp": tmp_path,
    }


def test_the_service_explains_logged_predictions_once(world: dict[str, Any]) -> None:
    store, log, rows = world["store"], world["log"], world["rows"]
    assert world["explained"] == rows.height
    stored = log.explanations("line")
    assert stored.height == rows.height
    # attributions add up to the model's log-odds for every prediction
    proba = rows["defect_score"].to_numpy()
    total = stored.select(FEATURES).to_numpy().sum(axis=1) + stored["base_value"].to_numpy()
    assert np.allclose(1 / (1 + np.exp(-total)), proba, atol=1e-6)
    # a retry and the catch-up write nothing more
    first, last = rows["timestamp"].min(), rows["timestamp"].max()
    assert explain_batch(store, log, "line", "1", "b1", first, last) == 0
    assert explain_missing(store, log, "line", "1") == 0


def test_feedback_is_validated_and_names_the_field(world: dict[str, Any]) -> None:
    store, log = world["store"], world["log"]
    with pytest.raises(NotFoundError) as missing:
        give_feedback(store, log, "line", "nope", role="operator", decision="accepted")
    assert missing.value.what == "prediction_id"
    with pytest.raises(ParameterError) as role:
        give_feedback(store, log, "line", "p1", role="manager", decision="accepted")
    assert role.value.parameter == "role"
    with pytest.raises(ParameterError) as reason:
        give_feedback(store, log, "line", "p1", role="operator", decision="overridden")
    assert reason.value.parameter == "reason"
    with pytest.raises(ParameterError) as code:
        give_feedback(
            store, log, "line", "p1", role="operator", decision="overridden", reason="bored"
        )
    assert code.value.parameter == "reason"
    with pytest.raises(InputError) as label:
        give_feedback(store, log, "line", "p1", role="domain_expert", true_value="broken")
    assert label.value.column == "true_value"
    with pytest.raises(ParameterError):
        give_feedback(store, log, "line", "p1", role="operator")  # says nothing
    assert list_feedback(store, "line") == []


def test_feedback_keeps_what_was_shown_and_labels_the_row(world: dict[str, Any]) -> None:
    store, log = world["store"], world["log"]
    record = give_feedback(
        store,
        log,
        "line",
        "p7",
        role="domain_expert",
        by="eva",
        true_value=1,
        plausible=False,
        explanation_comment="pressure cannot matter this much",
    )
    assert record.version == "1"
    assert record.segment.startswith("line=")
    shown = record.shown
    assert shown["prediction"] is not None
    sensors = [s["sensor"] for s in shown["explanation"]["sensors"]]
    assert "thermal" in sensors
    assert "temperature_c" not in sensors
    assert isinstance(shown["quality_flags"], list)
    labels = log.labels("line")
    assert labels.filter(pl.col("id") == "p7")["defect"].to_list() == [1]
    # "incorrect" on a binary classifier labels the row with the other class
    prediction = world["rows"].filter(pl.col("id") == "p8")["prediction"][0]
    give_feedback(store, log, "line", "p8", role="operator", correct=False)
    latest = log.labels("line").filter(pl.col("id") == "p8")["defect"].to_list()
    assert latest == [1 - prediction]


def test_overrides_raise_an_alert_and_re_evaluate_the_window(world: dict[str, Any]) -> None:
    store, log, rows = world["store"], world["log"], world["rows"]
    now = rows["timestamp"].max() + timedelta(hours=2)
    evaluate(store, log, "line", "production", window="1h", now=now)
    hour = pl.col("timestamp").dt.truncate("1h")
    first_hour = rows.filter(hour == hour.min())
    # people doubted the predictions that lean most on the pressure reading
    leaning = log.explanations("line").filter(pl.col("id").is_in(first_hour["id"].implode()))
    ids = leaning.sort(pl.col("pressure_bar").abs(), descending=True)["id"].to_list()[:30]
    for i, prediction_id in enumerate(ids):  # people overrode most of one hour's predictions
        give_feedback(
            store,
            log,
            "line",
            prediction_id,
            role="operator",
            by=f"op{i % 3}",
            decision="overridden" if i % 5 else "accepted",
            reason="sensor_fault" if i % 5 else "",
            plausible=i % 5 == 0,
        )
    outcomes = evaluate(store, log, "line", "production", window="1h", now=now)
    assert len(outcomes) == 1  # only the window that got feedback
    # a policy keyed on the override rate asks for a retraining, which waits for approval
    retrain = [sys.executable, "-c", "print('trained')", "{training_set}"]
    (asked,) = apply_policies(
        store,
        log,
        load_policies(
            "policies:\n"
            "  - name: retrain-when-overridden\n"
            "    when: {metric: override_rate, segment: ''}\n"
            f"    actions:\n      - retrain: {{command: {json.dumps(retrain)}}}\n"
        ),
        now=now,
        data_dir=world["tmp"],
    )
    assert asked.action == "retrain"
    assert asked.status == "pending"
    metrics = store.window_metrics(outcomes[0].window.id)
    override = next(m for m in metrics if m.name == "override_rate" and not m.segment)
    assert override.value == pytest.approx(24 / 30)
    assert override.alert
    plausible = next(m for m in metrics if m.name == "explanation_plausibility" and not m.segment)
    assert plausible.alert
    assert any(m.name == "override_rate" and m.segment.startswith("line=") for m in metrics)
    # explanation drift is measured on the window's stored attributions
    assert any(m.name == "explanation_auc" for m in metrics)
    assert evaluate(store, log, "line", "production", window="1h", now=now) == []
    # without a shift in the data, the calibrated explanation-drift bounds stay quiet; a
    # feature's own attribution shift is evidence, not an alarm (its values' drift alarms)
    quiet = [
        m
        for w in store.windows("line")
        for m in store.window_metrics(w.id)
        if m.name in ("explanation_shift", "explanation_auc", "importance_rank")
    ]
    notes = " ".join(store.get_version("line", "1").meta["alerting"]["notes"])
    for m in quiet:
        if m.name == "explanation_shift":
            assert m.upper is None
        elif m.upper is None and m.lower is None:  # what cannot alarm is said
            assert f"{m.name.replace('_', ' ')} cannot be" in notes
    assert [m for m in quiet if m.alert] == []
    # the diagnosis names the sensor the overridden predictions leaned on
    diagnosis = diagnose(store, log, outcomes[0].incident)
    people = next(c for c in diagnosis.causes if c.kind == "feedback")
    assert people.column == "pressure_bar"
    assert any("overridden" in e for e in people.evidence)


def test_explanation_drift_names_the_feature_the_model_now_leans_on(
    world: dict[str, Any],
) -> None:
    store, log, rows, model = world["store"], world["log"], world["rows"], world["model"]
    later = rows["timestamp"].max() + timedelta(minutes=5)
    fahrenheit = line_rows(400, seed=3, start=later).with_columns(
        pl.col("temperature_c") * 1.8 + 32  # a firmware update reports °F
    )
    fahrenheit = scored(model, fahrenheit.with_row_index("id").with_columns(pl.format("q{}", "id")))
    log.append("line", "1", fahrenheit.drop("defect"), batch_id="b2")
    assert explain_missing(store, log, "line", "1") == fahrenheit.height
    now = fahrenheit["timestamp"].max() + timedelta(hours=2)
    outcomes = evaluate(store, log, "line", "production", window="1h", now=now)
    metrics = store.window_metrics(outcomes[-1].window.id)
    shifts = {m.column: m.value or 0.0 for m in metrics if m.name == "explanation_shift"}
    assert max(shifts, key=shifts.__getitem__) == "temperature_c"
    auc = next(m for m in metrics if m.name == "explanation_auc")
    assert auc.value is not None
    assert auc.value > 0.9  # the classifier tells the window's attributions apart
    assert auc.alert
    details = store.details(outcomes[-1].window.id)["explanation"][0]
    assert {f["feature"] for f in details["features"]} == set(FEATURES)
    diagnosis = diagnose(store, log, outcomes[-1].incident)
    assert any(c.kind == "explanation" and c.column == "temperature_c" for c in diagnosis.causes)


def test_export_writes_the_rows_people_labelled(world: dict[str, Any]) -> None:
    store, log, tmp = world["store"], world["log"], world["tmp"]
    give_feedback(store, log, "line", "p3", role="domain_expert", true_value=0)
    give_feedback(store, log, "line", "p4", role="operator", correct=True)
    give_feedback(store, log, "line", "p5", role="operator", decision="accepted")  # no label
    path = tmp / "out" / "training.parquet"
    exported = export_training_set(store, log, "line", path)
    written = pl.read_parquet(path)
    assert sorted(written["id"].to_list()) == ["p3", "p4"]
    assert set(FEATURES) <= set(written.columns)
    assert written.filter(pl.col("id") == "p3")["defect"].to_list() == [0]
    assert written["feedback_role"].to_list() == exported["feedback_role"].to_list()


def test_promotion_waits_for_review_and_is_blocked_on_regression(world: dict[str, Any]) -> None:
    store, reference = world["store"], world["reference"]
    registry = Registry(store)
    holdout = scored(world["model"], line_rows(1_500, seed=9).with_row_index("id"))
    better = fit_model(reference, depth=4)
    registry.register(
        "line",
        "2",
        reference,
        timestamp="timestamp",
        id="id",
        roles=ROLES,
        segment="line",
        estimator=better,
        features=FEATURES,
    )
    pending = request_promotion(
        store, "line", "2", holdout, gate=PromotionGate(tolerance=0.05, segment_tolerance=0.2)
    )
    assert pending.status == "pending", pending.gate["failures"]
    assert store.resolve("line", "production").version == "1"
    rows = {(m["metric"], m["segment"]) for m in pending.gate["metrics"]}
    assert ("roc_auc", "") in rows
    assert any(s.startswith("line=") for _, s in rows)
    with pytest.raises(ParameterError):
        review_promotion(store, pending.id, approve=True, by=" ")
    done = review_promotion(store, pending.id, approve=True, by="eva", comment="plausible")
    assert done.status == "promoted"
    change = store.alias_history("line", "production")[-1]
    assert change.version == "2"
    assert change.evidence["review"]["comment"] == "plausible"
    assert change.evidence["gate"]["passed"]

    # a useless model regresses and is blocked: production stays
    constant = GradientBoostingClassifier(n_estimators=1, max_depth=1, learning_rate=1e-6)
    constant.fit(reference.select(FEATURES).to_numpy(), reference["defect"].to_numpy())
    registry.register(
        "line",
        "3",
        reference,
        timestamp="timestamp",
        id="id",
        roles=ROLES,
        estimator=constant,
        features=FEATURES,
    )
    blocked = request_promotion(
        store, "line", "3", holdout, gate=PromotionGate(require_review=False)
    )
    assert blocked.status == "blocked"
    assert any("roc_auc" in f for f in blocked.gate["failures"])
    assert store.resolve("line", "production").version == "2"
    assert [p.status for p in list_promotions(store, "line")] == ["blocked", "promoted"]


def test_feedback_api_answers_4xx_with_the_field(world: dict[str, Any]) -> None:
    store, tmp = world["store"], world["tmp"]
    tokens = {"write": store.create_token("ops", "write"), "read": store.create_token("ui", "read")}
    settings = Settings(data_dir=tmp, database_url=store.url, explain=False)
    with TestClient(create_app(settings)) as client:
        url = f"{API}/models/line/predictions"
        w, r = auth(tokens["write"]), auth(tokens["read"])
        ok = client.post(
            f"{url}/p2/feedback",
            json={"role": "operator", "decision": "overridden", "reason": "sensor_fault"},
            headers=w,
        )
        assert ok.status_code == 201, ok.text
        assert ok.json()["by"] == "ops"
        assert (
            client.post(f"{url}/p2/feedback", json={"role": "operator"}, headers=r).status_code
            == 403
        )
        cases = [
            ("nope", {"role": "operator", "decision": "accepted"}, 404, "prediction_id"),
            ("p2", {"role": "boss", "decision": "accepted"}, 422, "role"),
            ("p2", {"role": "operator", "true_value": "yes"}, 422, "true_value"),
            ("p2", {"role": "operator", "decision": "maybe"}, 422, "decision"),
        ]
        for prediction_id, body, status, field in cases:
            answer = client.post(f"{url}/{prediction_id}/feedback", json=body, headers=w)
            assert answer.status_code == status, answer.text
            assert answer.json()["field"] == field
        doc = client.get(f"{url}/p2", headers=r).json()
        assert doc["version"] == "1"
        assert doc["explanation"]["sensors"]
        assert doc["feedback"][0]["decision"] == "overridden"
        assert "sensor_fault" in doc["reasons"]
        listed = client.get(f"{API}/models/line/prediction-feedback", headers=r).json()
        assert [f["prediction_id"] for f in listed] == ["p2"]
        log_url = f"{API}/models/line/prediction-feedback"
        shift = [
            {"prediction_id": "p20", "role": "operator", "decision": "accepted"},
            {"prediction_id": "p21", "role": "operator", "plausible": False},
        ]
        logged = client.post(log_url, json={"records": shift}, headers=w)
        assert logged.status_code == 201, logged.text
        assert logged.json() == {"records": 2}
        shift.append({"prediction_id": "p22", "role": "boss", "decision": "accepted"})
        refused = client.post(log_url, json={"records": shift}, headers=w)
        assert refused.status_code == 422
        assert refused.json()["field"] == "role"
        assert len(client.get(log_url, headers=r).json()) == 3  # nothing of the refused log
        explanation = client.get(f"{API}/models/line/versions/1/explanation", headers=r).json()
        assert {g["feature"] for g in explanation["groups"]} >= {"thermal"}


def test_cli_exports_feedback_and_reviews_a_promotion(world: dict[str, Any]) -> None:
    from click.testing import CliRunner

    from mlwarden.cli import cli

    store, log, tmp, reference = world["store"], world["log"], world["tmp"], world["reference"]
    give_feedback(store, log, "line", "p3", role="domain_expert", true_value=1)
    where = ["--data-dir", str(tmp), "--database-url", store.url]
    # the row log of the fixture lives in tmp/log, where the CLI looks for it
    runner = CliRunner()
    out = tmp / "labelled.csv"
    result = runner.invoke(cli, ["feedback", "export", "line", str(out), *where])
    assert result.exit_code == 0, result.output
    assert "1 labelled rows" in result.output
    assert pl.read_csv(out)["id"].to_list() == ["p3"]
    listed = runner.invoke(cli, ["feedback", "list", "line", *where])
    assert "true=1" in listed.output

    Registry(store).register(
        "line",
        "2",
        reference,
        timestamp="timestamp",
        id="id",
        roles=ROLES,
        estimator=fit_model(reference, depth=4),
        features=FEATURES,
    )
    holdout = tmp / "holdout.parquet"
    scored(world["model"], line_rows(1_000, seed=9)).write_parquet(holdout)
    asked = runner.invoke(
        cli,
        ["promotion", "request", "line", "2", str(holdout), "--tolerance", "0.1", *where],
    )
    assert asked.exit_code == 0, asked.output
    assert ": pending" in asked.output
    bad = runner.invoke(
        cli, ["promotion", "request", "line", "2", str(holdout), "--threshold", "auc", *where]
    )
    assert bad.exit_code == 2
    assert "METRIC=VALUE" in bad.output
    promotion_id = list_promotions(store, "line")[0].id
    reviewed = runner.invoke(
        cli,
        ["promotion", "review", str(promotion_id), "--approve", "--by", "eva", *where],
    )
    assert reviewed.exit_code == 0, reviewed.output
    assert store.resolve("line", "production").version == "2"


def test_a_shift_log_of_feedback_is_recorded_at_once_or_not_at_all(
    world: dict[str, Any],
) -> None:
    store, log, rows = world["store"], world["log"], world["rows"]
    shift = pl.DataFrame(
        {
            "prediction_id": ["p10", "p11", "p12"],
            "role": ["operator"] * 3,
            "by": ["ana", "ana", "ben"],
            "decision": ["overridden", "accepted", None],
            "reason": ["sensor_fault", None, None],
            "plausible": [False, True, True],
            "at": rows.filter(pl.col("id").is_in(["p10", "p11", "p12"]))["timestamp"],
        }
    )
    assert record_feedback(store, log, "line", shift) == 3
    given = {f.prediction_id: f for f in list_feedback(store, "line")}
    assert given["p10"].reason == "sensor_fault"
    assert given["p10"].segment.startswith("line=")
    assert given["p12"].decision == ""
    cases = [
        (shift.with_columns(pl.lit("chief").alias("role")), ParameterError, "role"),
        (shift.with_columns(pl.lit("p999").alias("prediction_id")), NotFoundError, None),
        (shift.with_columns(pl.lit("overridden").alias("decision")), ParameterError, "reason"),
        (shift.with_columns(pl.lit(1).alias("shoe_size")), ParameterError, "shoe_size"),
    ]
    for frame, error, field in cases:
        with pytest.raises(error) as raised:
            record_feedback(store, log, "line", frame)
        if field is not None:
            assert raised.value.parameter == field  # type: ignore[attr-defined]
    assert len(list_feedback(store, "line")) == 3  # nothing half-written


def test_a_row_shows_the_series_checks_its_batch_fails(world: dict[str, Any]) -> None:
    from mlwarden.datasets import StuckSensor
    from mlwarden.feedback import find_prediction, shown_with

    store, log, rows, model = world["store"], world["log"], world["rows"], world["model"]
    later = rows["timestamp"].max() + timedelta(minutes=5)
    stuck = production_line(
        480,
        seed=4,
        start=later,
        faults=[StuckSensor(column="pressure_bar", start_row=100, n_rows=300)],
    ).with_columns(pl.col(FEATURES).fill_null(strategy="mean"))
    stuck = scored(model, stuck.with_row_index("id").with_columns(pl.format("s{}", "id")))
    log.append("line", "1", stuck.drop("defect"), batch_id="b3")
    store.record_batch(
        "line",
        "b3",
        stuck.height,
        first_at=stuck["timestamp"].min(),
        last_at=stuck["timestamp"].max(),
    )
    flags = {}
    for prediction_id in ("s250", "s20"):  # inside the frozen stretch, and before it
        row, version, id_column = find_prediction(store, log, "line", prediction_id)
        shown = shown_with(store, log, "line", version, row, id_column, "timestamp")
        flags[prediction_id] = shown["quality_flags"]
    assert "stuck(pressure_bar)" in flags["s250"]
    assert "stuck(pressure_bar)" not in flags["s20"]


def test_the_server_explains_ingested_batches_in_the_background(world: dict[str, Any]) -> None:
    store, tmp, rows = world["store"], world["tmp"], world["rows"]
    token = store.create_token("ingest", "write")
    later = rows["timestamp"].max() + timedelta(minutes=5)
    batch = scored(
        world["model"], line_rows(40, seed=5, start=later).with_row_index("id")
    ).with_columns(
        pl.format("w{}", "id"), pl.col("timestamp").dt.to_string("%Y-%m-%dT%H:%M:%S%.f+00:00")
    )
    body = {"batch_id": "api-1", "rows": batch.drop("defect").to_dicts()}
    settings = Settings(data_dir=tmp, database_url=store.url)
    with TestClient(create_app(settings)) as client:
        answer = client.post(f"{API}/models/line/versions/1/rows", json=body, headers=auth(token))
        assert answer.status_code == 200, answer.text
        client.app.state.explainer.join()  # type: ignore[attr-defined]
        assert client.app.state.explainer.failed == 0  # type: ignore[attr-defined]
    explained = world["log"].explanations("line").filter(pl.col("id").str.starts_with("w"))
    assert explained.height == 40
    assert set(FEATURES) <= set(explained.columns)
