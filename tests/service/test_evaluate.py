"""Window evaluation: closed windows judged against the stored reference (quality, drift,
multivariate drift, performance estimated then realized, per segment); alerts grouped into
incidents; only changed windows evaluated again, replacing, never duplicating."""

from __future__ import annotations

import io
import logging
from datetime import timedelta
from pathlib import Path

import polars as pl
import pytest

from mlwarden.datasets import StuckSensor, production_line
from mlwarden.react import Dispatcher
from mlwarden.registry import Registry
from mlwarden.service import evaluate
from mlwarden.store.metadata import Store
from mlwarden.store.rowlog import RowLog


def test_a_stuck_sensor_becomes_an_incident_once(tmp_path: Path) -> None:
    store = Store(f"sqlite:///{tmp_path / 'mlwarden.db'}")
    log = RowLog(tmp_path / "log")
    reference = production_line(30_000, seed=1)
    Registry(store).register("line", "1", reference, timestamp="timestamp")
    store.set_alias("line", "production", "1")
    start = reference["timestamp"].max() + timedelta(seconds=10)
    later = production_line(
        2_160,  # six hours
        seed=2,
        start=start,
        faults=[StuckSensor(column="pressure_bar", start_row=900, n_rows=300)],
    )
    log.append("line", "1", later, batch_id="day-1")
    now = later["timestamp"].max()  # the last hour is still open
    outcomes = evaluate(store, log, "line", "production", window="1h", now=now)
    assert 5 <= len(outcomes) <= 6
    assert all(o.window.end <= now for o in outcomes)
    stuck = [o for o in outcomes if o.alerts]
    assert stuck, "the stuck hours raise alerts"
    alerts = store.alerts("line")
    assert "stuck(pressure_bar)" in alerts["column"].to_list()
    incidents = store.incidents("line")
    flat = alerts.filter(pl.col("column") == "stuck(pressure_bar)")
    assert flat.height == 2, "the 50 minutes of flat pressure span two hours"
    assert flat["incident_id"].n_unique() == 1, "and are one incident"
    assert len(incidents) == len({o.incident for o in stuck})
    drift = store.metric_series("line", "drift.ks", column="temperature_c")
    assert drift.height == len(outcomes)
    assert drift["upper"].null_count() == 0

    assert evaluate(store, log, "line", "production", window="1h", now=now) == []
    again = evaluate(store, log, "line", "production", window="1h", now=now, force=True)
    assert [o.window.id for o in again] == [o.window.id for o in outcomes]
    assert store.alerts("line").height == alerts.height
    assert len(store.incidents("line")) == len(incidents)
    quality = store.metric_series("line", "quality", column="stuck(pressure_bar)")
    assert quality.filter(pl.col("alert")).height == 2


def test_new_incidents_are_notified_once(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    store = Store(f"sqlite:///{tmp_path / 'mlwarden.db'}")
    log = RowLog(tmp_path / "log")
    reference = production_line(20_000, seed=1)
    Registry(store).register("line", "1", reference, timestamp="timestamp")
    later = production_line(
        1_080,
        seed=2,
        start=reference["timestamp"].max() + timedelta(seconds=10),
        faults=[StuckSensor(column="pressure_bar", start_row=400, n_rows=300)],
    )
    log.append("line", "1", later, batch_id="b")
    now = later["timestamp"].max() + timedelta(hours=2)
    with (
        caplog.at_level(logging.WARNING, logger="mlwarden.alerts"),
        Dispatcher(["log"]) as dispatcher,
    ):
        outcomes = evaluate(store, log, "line", "1", now=now, notify=dispatcher)
        evaluate(store, log, "line", "1", now=now, notify=dispatcher)  # again: no new incident
    incidents = {o.incident for o in outcomes if o.incident is not None}
    assert dispatcher.stats()["delivered"] == len(incidents) > 0
    assert "stuck(pressure_bar)" in caplog.text


def test_the_server_evaluates_on_its_schedule(tmp_path: Path) -> None:
    import time

    from fastapi.testclient import TestClient

    from mlwarden.server import Settings, create_app

    settings = Settings(data_dir=tmp_path, evaluate_every=0.2, channels=("log",))
    store = settings.store()
    reference = production_line(10_000, seed=1)
    Registry(store).register("line", "1", reference, timestamp="timestamp")
    store.set_alias("line", "production", "1")
    later = production_line(720, seed=2, start=reference["timestamp"].max() + timedelta(seconds=10))
    RowLog(tmp_path / "log").append("line", "1", later, batch_id="b")
    with TestClient(create_app(settings)) as client:
        deadline = time.monotonic() + 20
        scheduler = client.app.state.scheduler  # type: ignore[attr-defined]
        while scheduler.rounds < 1 and time.monotonic() < deadline:
            time.sleep(0.1)
        assert scheduler.rounds >= 1
    assert len(store.windows("line")) >= 2
    assert store.metric_series("line", "quality_score", column="overall").height >= 2


def test_performance_is_estimated_then_realized_as_late_labels_arrive(tmp_path: Path) -> None:
    store = Store(f"sqlite:///{tmp_path / 'mlwarden.db'}")
    log = RowLog(tmp_path / "log")
    reference = production_line(30_000, seed=1)
    version = Registry(store).register(
        "line", "1", reference, timestamp="timestamp", roles={"defect": "target"}, segment="line"
    )
    summary = version.meta["evaluators"]
    assert (summary["estimator"], summary["target"], summary["segment"]) == (
        "cbpe",
        "defect",
        "line",
    )
    assert summary["segments"] == ["L1", "L2", "L3"]
    later = production_line(
        1_440, seed=2, start=reference["timestamp"].max() + timedelta(seconds=10)
    ).with_row_index("id")
    rows = later.drop("defect").with_columns(pl.col("id").cast(pl.String))
    log.append("line", "1", rows, batch_id="rows")
    now = later["timestamp"].max() + timedelta(hours=1)
    first = evaluate(store, log, "line", "1", now=now)
    n_windows = later["timestamp"].dt.truncate("1h").n_unique()
    assert len(first) == n_windows == 5
    assert all(o.window.n_labelled == 0 for o in first)
    auc = store.metric_series("line", "performance.roc_auc", segment="")
    assert auc.height == n_windows
    # nothing changed in the process: every estimate is within what the reference expects
    assert (auc["lower"] < auc["value"]).all()
    assert (auc["value"] < auc["upper"]).all()
    assert store.metric_series("line", "performance.roc_auc.realized").height == 0
    assert store.metric_series("line", "drift.pca").height == n_windows
    segments = store.metric_series("line", "drift.ks", column="temperature_c")
    seen = set(later["line"].cast(pl.String))
    assert set(segments["segment"]) == {""} | {f"line={line}" for line in seen}
    details = store.details(first[0].window.id)
    assert {"profile", "drift", "multivariate", "performance"} <= set(details)

    # Labels of the first two hours arrive two days later: those windows, and only they, are
    # evaluated again; their performance is now measured.
    labelled = later.filter(pl.col("timestamp") < first[2].window.start)
    labels = labelled.select(
        pl.col("id").cast(pl.String), pl.col("defect"), pl.col("timestamp") + timedelta(days=2)
    )
    log.append_labels("line", labels, batch_id="labels-1")
    second = evaluate(store, log, "line", "1", now=now + timedelta(days=2))
    assert [o.window.id for o in second] == [o.window.id for o in first[:2]]
    assert [o.window.n_labelled for o in second] == [o.window.n_rows for o in second]
    realized = store.metric_series("line", "performance.roc_auc.realized", segment="")
    estimated = store.metric_series("line", "performance.roc_auc", segment="")
    assert realized.height == 2
    # every row labelled: the estimate is the measured value
    assert estimated["value"][:2].to_list() == pytest.approx(realized["value"].to_list())
    assert store.metric_series("line", "performance.roc_auc").height > n_windows  # segments
    assert evaluate(store, log, "line", "1", now=now + timedelta(days=2)) == []


def test_a_late_row_evaluates_its_window_again(tmp_path: Path) -> None:
    store = Store(f"sqlite:///{tmp_path / 'mlwarden.db'}")
    log = RowLog(tmp_path / "log")
    reference = production_line(10_000, seed=1)
    Registry(store).register("line", "1", reference, timestamp="timestamp")
    later = production_line(1_080, seed=2, start=reference["timestamp"].max())
    log.append("line", "1", later[:-1], batch_id="a")
    now = later["timestamp"].max() + timedelta(hours=2)
    first = evaluate(store, log, "line", "1", now=now)
    log.append("line", "1", later[-1:], batch_id="late")
    again = evaluate(store, log, "line", "1", now=now)
    assert [o.window.id for o in again] == [first[-1].window.id]
    assert again[0].window.n_rows == first[-1].window.n_rows + 1


def test_retention_removes_old_rows_but_keeps_windows_and_metrics(tmp_path: Path) -> None:
    from datetime import UTC, datetime

    from mlwarden.service.scheduler import Scheduler

    store = Store(f"sqlite:///{tmp_path / 'mlwarden.db'}")
    log = RowLog(tmp_path / "log")
    reference = production_line(10_000, seed=1)
    Registry(store).register("line", "1", reference, timestamp="timestamp")
    now = datetime.now(UTC)
    old = production_line(720, seed=2, start=now - timedelta(days=10))
    recent = production_line(720, seed=3, start=now - timedelta(hours=3))
    log.append("line", "1", pl.concat([old, recent]), batch_id="b")
    scheduler = Scheduler(store, log, every=60, window="1h", keep_days=2)
    assert scheduler.run_once() >= 3
    assert log.stats("line").rows == recent.height, "the old day was deleted after evaluation"
    evaluated = store.windows("line")
    assert any(w.start < now - timedelta(days=9) for w in evaluated), "its windows are kept"
    kept = store.metric_series("line", "quality_score", column="overall")
    assert kept.height == len(evaluated)
    oldest = min(evaluated, key=lambda w: w.start)
    assert "profile" in store.details(oldest.id), "with their profiles"
    assert scheduler.run_once() == 0, "nothing left to evaluate again"


def test_a_false_alarm_marked_through_the_api_quiets_that_metric(tmp_path: Path) -> None:
    from fastapi.testclient import TestClient

    from mlwarden.server import Settings, create_app

    settings = Settings(data_dir=tmp_path)
    store = settings.store()
    log = RowLog(tmp_path / "log")
    reference = production_line(10_000, seed=1)
    Registry(store).register("line", "1", reference, timestamp="timestamp")
    later = production_line(
        1_080,
        seed=2,
        start=reference["timestamp"].max() + timedelta(seconds=10),
        faults=[StuckSensor(column="pressure_bar", start_row=400, n_rows=300)],
    )
    log.append("line", "1", later, batch_id="b")
    now = later["timestamp"].max() + timedelta(hours=2)
    evaluate(store, log, "line", "1", now=now)
    stuck = store.alerts("line").filter(pl.col("column") == "stuck(pressure_bar)")
    assert stuck.height >= 1
    token = store.create_token("ops", "write")
    headers = {"Authorization": f"Bearer {token}"}
    with TestClient(create_app(settings)) as client:
        api = "/api/v1/models/line"
        reply = client.post(
            f"{api}/alerts/{stuck['id'][0]}/feedback",
            json={"true_alarm": False, "by": "ana", "comment": "sensor under maintenance"},
            headers=headers,
        )
        assert reply.status_code == 200, reply.text
        feedback = reply.json()
        assert feedback["upper"] > 0
        assert client.post(f"{api}/alerts/1/feedback", json={}, headers=headers).status_code == 422
        assert (
            client.post(
                f"{api}/alerts/999999/feedback", json={"true_alarm": True}, headers=headers
            ).status_code
            == 404
        )
        assert (
            client.post(
                f"{api}/alerts/{stuck['id'][0]}/feedback", json={"true_alarm": True}
            ).status_code
            == 401
        )

        evaluate(store, log, "line", "1", now=now, force=True)
        quiet = store.alerts("line").filter(pl.col("column") == "stuck(pressure_bar)")
        assert quiet.height == 0, "the metric marked a false alarm no longer alerts"

        assert (
            client.delete(f"{api}/feedback/{feedback['id']}?by=ana", headers=headers).status_code
            == 200
        )
        evaluate(store, log, "line", "1", now=now, force=True)
        again = store.alerts("line").filter(pl.col("column") == "stuck(pressure_bar)")
        assert again.height == stuck.height, "reverted: it alerts again"
        history = client.get(f"{api}/feedback", headers=headers).json()
        assert [f["active"] for f in history] == [False]
    store.close()


def test_naive_reference_times_and_text_times_in_a_csv_are_evaluated(tmp_path: Path) -> None:
    """A reference from pandas (naive datetime64) and later rows from a CSV of ISO text, as a
    new user has them: both are on one UTC clock, and every closed window is evaluated."""
    import pandas as pd

    store = Store(f"sqlite:///{tmp_path / 'mlwarden.db'}")
    log = RowLog(tmp_path / "log")
    generated = production_line(6_000, seed=1)
    reference = generated.with_columns(pl.col("timestamp").dt.replace_time_zone(None)).to_pandas()
    assert reference["timestamp"].dt.tz is None
    Registry(store).register("line", "1", reference, timestamp="timestamp", window="1h")
    stored = Registry(store).reference_rows("line", "1")
    assert stored is not None
    assert stored["timestamp"].to_list() == generated["timestamp"].to_list()

    later = production_line(1_440, seed=2, start=generated["timestamp"].max())
    later = later.with_columns(pl.col("timestamp").dt.truncate("1s"))  # as text holds them
    text = later.with_columns(
        pl.when(pl.int_range(pl.len()) % 7 == 0)  # a logger that sometimes writes the zone
        .then(pl.col("timestamp").dt.strftime("%Y-%m-%dT%H:%M:%S%.3fZ"))
        .otherwise(pl.col("timestamp").dt.strftime("%Y-%m-%d %H:%M:%S"))
    )
    csv = tmp_path / "later.csv"
    text[:720].write_csv(csv)
    assert log.append("line", "1", csv, batch_id="file") == 720
    rest = pd.read_csv(io.StringIO(text[720:].write_csv()))  # the timestamps as text
    assert pd.api.types.is_string_dtype(rest["timestamp"])
    assert log.append("line", "1", rest, batch_id="frame") == 720

    logged = log.read("line").sort("timestamp")
    assert logged["timestamp"].to_list() == later["timestamp"].to_list()
    now = later["timestamp"].max() + timedelta(hours=2)
    outcomes = evaluate(store, log, "line", "1", window="1h", now=now)
    hours = later["timestamp"].dt.truncate("1h").unique()
    assert [o.window.start for o in outcomes] == hours.sort().to_list()
    assert all(o.metrics > 10 for o in outcomes)
    assert sum(o.window.n_rows for o in outcomes) == later.height
