"""Lineage: runs of a four-step pipeline recorded by decorator and context manager, traced
backward to the raw file and forward to the model; staleness; failed runs; the command line."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import polars as pl
import pytest
from click.testing import CliRunner

from mlwarden.cli import cli
from mlwarden.datasets import production_line
from mlwarden.exceptions import NotFoundError
from mlwarden.lineage import Lineage, component, content_hash, run
from mlwarden.store.metadata import Store


@pytest.fixture
def store(tmp_path: Path) -> Store:
    return Store(f"sqlite:///{tmp_path / 'mlwarden.db'}")


def pipeline(store: Store, raw: Path) -> dict[str, object]:
    @component("extract", store=store)
    def extract(path: Path) -> pl.DataFrame:
        return pl.read_parquet(path)

    @component("featurize", store=store)
    def featurize(frame: pl.DataFrame, *, window: int = 10) -> pl.DataFrame:
        return frame.with_columns(
            pl.col("temperature_c").rolling_mean(window).alias("temperature_mean")
        )

    extracted = extract(raw)
    features = featurize(extracted, window=10)
    with run("train", store=store, params={"max_iter": 200}, owner="ana") as r:
        r.input(features)
        model = {"weights": [0.1, 0.2]}
        r.output(model, name="defect-model")
    with run("score", store=store) as r:
        r.input(model, name="defect-model")
        r.input(features)
        scores = features.select(pl.col("temperature_mean") * 0.01)
        r.output(scores, name="scores")
    return {"raw": raw, "extracted": extracted, "features": features, "scores": scores}


def test_a_four_step_pipeline_is_traced_both_ways(store: Store, tmp_path: Path) -> None:
    raw = tmp_path / "line.parquet"
    production_line(2_000, seed=1).write_parquet(raw)
    made = pipeline(store, raw)
    lineage = Lineage(store)
    runs = {r.name: r for r in lineage.runs()}
    assert set(runs) == {"extract", "featurize", "train", "score"}
    assert all(r.status == "succeeded" for r in runs.values())
    assert runs["featurize"].params == {"window": 10}
    assert runs["train"].owner == "ana"
    assert runs["extract"].inputs[0].kind == "file"

    scores_sha = content_hash(made["scores"])[0]
    back = lineage.trace(scores_sha[:12])
    assert [r.name for r in back.upstream] == ["score", "featurize", "train", "extract"]
    assert [a.name for a in back.raw_inputs] == [str(raw)]
    forward = lineage.trace(runs["extract"].id)
    assert {r.name for r in forward.downstream} == {"featurize", "train", "score"}
    assert forward.upstream[0].name == "extract"


def test_a_run_is_stale_when_its_input_changed_or_it_is_old(store: Store, tmp_path: Path) -> None:
    lineage = Lineage(store)
    with run("train", store=store) as first:
        first.input(pl.DataFrame({"x": [1, 2, 3]}), name="features")
    assert lineage.stale(first.id) == []
    with run("featurize", store=store) as again:
        again.output(pl.DataFrame({"x": [1, 2, 4]}), name="features")
    reasons = lineage.stale(first.id)
    assert len(reasons) == 1
    assert "input 'features' has a newer version" in reasons[0]
    assert "older than" in lineage.stale(first.id, max_age=timedelta(0))[-1]


def test_a_failed_step_is_recorded_with_its_error(store: Store) -> None:
    @component("load", store=store)
    def load(data: bytes) -> None:
        raise ValueError("no such table")

    with pytest.raises(ValueError, match="no such table"):
        load(b"raw bytes")
    (failed,) = Lineage(store).runs("load")
    assert failed.status == "failed"
    assert failed.error == "ValueError: no such table"
    assert failed.ended_at is not None
    assert failed.inputs[0].kind == "bytes"
    with pytest.raises(NotFoundError, match="No artifact"):
        Lineage(store).trace("0123456789abcdef")


def test_runs_and_trace_on_the_command_line(store: Store, tmp_path: Path) -> None:
    raw = tmp_path / "line.parquet"
    production_line(500, seed=2).write_parquet(raw)
    pipeline(store, raw)
    url = ["--database-url", f"sqlite:///{tmp_path / 'mlwarden.db'}"]
    listed = CliRunner().invoke(cli, ["runs", *url])
    assert listed.exit_code == 0, listed.output
    for step in ("extract", "featurize", "train", "score"):
        assert step in listed.output
    score = Lineage(store).runs("score")[0]
    traced = CliRunner().invoke(cli, ["trace", str(score.id), *url])
    assert traced.exit_code == 0, traced.output
    assert "extract" in traced.output
    assert str(raw) in traced.output
