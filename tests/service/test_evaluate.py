"""Window evaluation: closed windows judged against the stored reference; alerts grouped into
incidents; evaluating again replaces, never duplicates."""

from __future__ import annotations

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
    assert len(incidents) == len(stuck), "one incident per window with alerts"
    flat = [i for i in incidents if "stuck(pressure_bar)" in i["title"]]
    assert len(flat) == 2, "the 50 minutes of flat pressure span two hours"
    drift = store.metric_series("line", "drift.ks", column="temperature_c")
    assert drift.height == len(outcomes)
    assert drift["upper"].null_count() == 0

    again = evaluate(store, log, "line", "production", window="1h", now=now)
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
