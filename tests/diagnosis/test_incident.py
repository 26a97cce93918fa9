"""Diagnosis of an incident: the likeliest cause names the fault and the sensor, with its
evidence; the diagnosis is kept with the incident until the incident changes."""

from __future__ import annotations

import itertools
from datetime import timedelta
from pathlib import Path

import pytest

from mlwarden.datasets import Drift, Fault, StuckSensor, UnitChange, production_line
from mlwarden.diagnosis import Diagnosis, diagnose
from mlwarden.exceptions import NotFoundError
from mlwarden.registry import Registry
from mlwarden.service import evaluate
from mlwarden.store.metadata import Store
from mlwarden.store.rowlog import RowLog


def _incident(tmp_path: Path, fault: Fault) -> tuple[Store, RowLog, int]:
    """A model registered on clean data, six hours with ``fault`` evaluated; the incident
    the fault opened."""
    store = Store(f"sqlite:///{tmp_path / 'mlwarden.db'}")
    log = RowLog(tmp_path / "log")
    reference = production_line(25_000, seed=1)
    Registry(store).register("line", "1", reference, timestamp="timestamp")
    store.set_alias("line", "production", "1")
    later = production_line(
        2_160, seed=2, start=reference["timestamp"].max() + timedelta(seconds=10), faults=[fault]
    )
    log.append("line", "1", later, batch_id="shift-1")
    evaluate(store, log, "line", "production", window="1h", now=later["timestamp"].max())
    incidents = store.incidents("line")
    assert incidents, "the fault opens an incident"
    biggest = max(incidents, key=lambda i: i["alerts"])
    return store, log, int(biggest["id"])


def test_a_stuck_sensor_is_named_first(tmp_path: Path) -> None:
    store, log, incident = _incident(
        tmp_path, StuckSensor(column="pressure_bar", start_row=900, n_rows=400)
    )
    diagnosis = diagnose(store, log, incident)
    top = diagnosis.causes[0]
    assert (top.kind, top.column, top.rank) == ("quality", "pressure_bar", 1)
    assert "stuck" in top.title
    assert any("stuck(pressure_bar) failed" in e for e in top.evidence)
    assert diagnosis.shift == "data_quality"
    assert [c.rank for c in diagnosis.causes] == list(range(1, len(diagnosis.causes) + 1))
    assert all(a.score >= b.score for a, b in itertools.pairwise(diagnosis.causes))


def test_a_unit_change_is_recognized_as_such(tmp_path: Path) -> None:
    store, log, incident = _incident(
        tmp_path, UnitChange(column="temperature_c", start_row=700, factor=1.8, offset=32.0)
    )
    top = diagnose(store, log, incident).causes[0]
    assert top.column == "temperature_c"
    assert top.title == "temperature_c changed unit (°C → °F)"
    assert top.detail["conversion"] == "°C → °F"


def test_drift_of_an_input_is_weighed_by_its_importance(tmp_path: Path) -> None:
    store, log, incident = _incident(
        tmp_path, Drift(column="vibration_mm_s", start_row=0, shift=2.5, ramp_rows=10)
    )
    diagnosis = diagnose(store, log, incident)
    assert diagnosis.causes[0].column == "vibration_mm_s"
    drift = next(c for c in diagnosis.causes if c.kind == "drift")
    assert drift.column == "vibration_mm_s"
    assert 0.0 <= drift.detail["importance"] <= 1.0
    assert any("median" in e for e in drift.evidence)
    # the slices that grew are over the drifted column, ready to reweight a training set
    assert diagnosis.grown
    assert all("vibration_mm_s" in g.columns for g in diagnosis.grown)


def test_the_diagnosis_is_kept_until_the_incident_changes(tmp_path: Path) -> None:
    store, log, incident = _incident(
        tmp_path, StuckSensor(column="pressure_bar", start_row=900, n_rows=400)
    )
    first = diagnose(store, log, incident)
    again = diagnose(store, log, incident)
    assert again.computed_at == first.computed_at, "read back, not computed again"
    assert again.to_dict() == first.to_dict()
    assert Diagnosis.from_dict(first.to_dict()).to_dict() == first.to_dict()
    fresh = diagnose(store, log, incident, refresh=True)
    assert fresh.computed_at > first.computed_at
    assert [c.title for c in fresh.causes] == [c.title for c in first.causes]
    with pytest.raises(NotFoundError, match="No incident with id 999"):
        diagnose(store, log, 999)


def test_mlwarden_diagnose_prints_the_causes_and_writes_json(tmp_path: Path) -> None:
    import json

    from click.testing import CliRunner

    from mlwarden.cli import cli

    store, _, incident = _incident(
        tmp_path, StuckSensor(column="pressure_bar", start_row=900, n_rows=400)
    )
    store.close()
    out = tmp_path / "diagnosis.json"
    result = CliRunner().invoke(
        cli, ["diagnose", str(incident), "--data-dir", str(tmp_path), "--json", str(out)]
    )
    assert result.exit_code == 0, result.output
    assert f"Incident #{incident}" in result.output
    assert "1. pressure_bar is stuck" in result.output
    assert "stuck(pressure_bar) failed in" in result.output
    doc = json.loads(out.read_text())
    assert doc["causes"][0]["column"] == "pressure_bar"
    missing = CliRunner().invoke(cli, ["diagnose", "4242", "--data-dir", str(tmp_path)])
    assert missing.exit_code == 2
    assert "No incident with id 4242" in missing.output
