"""Registering versions from a real MLflow model registry (SQLite, artifacts in a temp dir): by
alias, by number or the newest; the MLflow link, the global explanation and the model itself
come back from the store; unknown names, versions and aliases are clear errors."""

from __future__ import annotations

import pickle
import subprocess
import sys
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from importlib.util import find_spec
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import polars as pl
import pytest
from click.testing import CliRunner

from mlwarden.cli import cli
from mlwarden.datasets import production_line
from mlwarden.exceptions import InputError, MlwardenError, NotFoundError, ParameterError
from mlwarden.registry import Registry
from mlwarden.registry.mlflow import (
    MlflowSource,
    PyfuncPredictor,
    load_model,
    parse_model_spec,
    register_from_mlflow,
)
from mlwarden.store.metadata import Store

pytestmark = [
    # found, not imported: MLflow is imported inside the tests, with its telemetry turned off
    pytest.mark.skipif(find_spec("mlflow") is None, reason="needs mlwarden[mlflow]"),
    # MLflow's own tracking store uses an SQLAlchemy loader option SQLAlchemy 2.1 deprecates.
    pytest.mark.filterwarnings("ignore:The ``noload`` loader strategy:DeprecationWarning"),
    # and its pyfunc module warns at import about one of its own type hints.
    pytest.mark.filterwarnings("ignore:.*Any type hint is inferred:UserWarning"),
]

FEATURES = ["temperature_c", "pressure_bar", "vibration_mm_s", "humidity_pct"]
TRUSTED = ["sklearn.ensemble._hist_gradient_boosting.predictor.TreePredictor"]


@dataclass(frozen=True)
class Mlflow:
    uri: str
    line: pl.DataFrame
    models: dict[str, Any]


def _score(frame: Any) -> Any:
    return 0.02 * frame["temperature_c"] - 0.01 * frame["pressure_bar"]


@pytest.fixture(scope="module")
def mlflow_registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Mlflow]:
    """An MLflow registry with two versions of an sklearn model (alias ``champion`` on the
    first), a LightGBM model and a pyfunc model, all with column signatures."""
    root = tmp_path_factory.mktemp("mlflow")
    uri = f"sqlite:///{root / 'mlflow.db'}"
    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(root)  # whatever MLflow writes by default lands here
        mp.setenv("MLFLOW_TRACKING_URI", uri)
        mp.setenv("MLFLOW_DISABLE_TELEMETRY", "true")
        mp.setenv("DO_NOT_TRACK", "true")
        mp.setenv("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
        with warnings.catch_warnings():
            # MLflow's advice while logging (input examples, type hints) is not under test here
            warnings.simplefilter("ignore")
            logged = _log_models(root, uri)
        yield logged


def _log_models(root: Path, uri: str) -> Mlflow:
    import lightgbm
    import mlflow
    import mlflow.lightgbm
    import mlflow.pyfunc
    import mlflow.sklearn
    from mlflow.models import ModelSignature
    from mlflow.types import ColSpec, Schema
    from sklearn.ensemble import HistGradientBoostingClassifier

    line = production_line(1_500, seed=3)
    x = line.select(FEATURES).to_pandas()
    y = line["defect"].to_numpy()
    signature = ModelSignature(
        inputs=Schema([ColSpec("double", f) for f in FEATURES]),
        outputs=Schema([ColSpec("double")]),
    )
    client = mlflow.MlflowClient()
    experiment = client.create_experiment("defects", artifact_location=(root / "art").as_uri())
    models: dict[str, Any] = {}
    for version, iterations in ((1, 20), (2, 40)):
        model = HistGradientBoostingClassifier(max_iter=iterations, random_state=0).fit(x, y)
        with mlflow.start_run(experiment_id=experiment):
            mlflow.sklearn.log_model(
                model,
                name="model",
                registered_model_name="defect-model",
                signature=signature,
                skops_trusted_types=TRUSTED,
                pip_requirements=["scikit-learn"],
            )
        models[f"defect-model/{version}"] = model
    client.set_registered_model_alias("defect-model", "champion", "1")
    booster = lightgbm.LGBMClassifier(n_estimators=20, verbose=-1, random_state=0).fit(x, y)
    with mlflow.start_run(experiment_id=experiment):
        mlflow.lightgbm.log_model(
            booster,
            name="model",
            registered_model_name="defect-lgbm",
            signature=signature,
            pip_requirements=["lightgbm"],
        )
    models["defect-lgbm/1"] = booster

    class LinearScore(mlflow.pyfunc.PythonModel):  # type: ignore[misc]
        """A custom pyfunc model, as a team logs one."""

        def predict(self, context: Any, model_input: pd.DataFrame, params: Any = None) -> Any:
            return _score(model_input).to_numpy()

    with mlflow.start_run(experiment_id=experiment):
        mlflow.pyfunc.log_model(
            name="model",
            python_model=LinearScore(),
            registered_model_name="defect-score",
            signature=signature,
            pip_requirements=["pandas"],
        )
    return Mlflow(uri=uri, line=line, models=models)


def test_register_by_alias_records_the_link_and_explains_the_model(
    store: Store, mlflow_registry: Mlflow
) -> None:
    record = register_from_mlflow(
        store,
        "defect-model",
        alias="champion",
        reference=mlflow_registry.line,
        timestamp="timestamp",
        tracking_uri=mlflow_registry.uri,
    )
    assert (record.model, record.version) == ("defect-model", "1")
    link = record.meta["mlflow"]
    assert {k: link[k] for k in ("name", "version", "aliases", "uri", "flavor")} == {
        "name": "defect-model",
        "version": "1",
        "aliases": ["champion"],
        "uri": "models:/defect-model/1",
        "flavor": "sklearn",
    }
    assert link["features"] == FEATURES  # from the MLflow signature
    assert link["run_id"]
    assert link["source"].startswith("models:/")
    # an MLflow alias is recorded, never followed: promotion stays an mlwarden decision
    assert store.aliases("defect-model") == {}

    explanation = Registry(store).explanation("defect-model", "1")
    assert explanation is not None
    assert explanation["method"] == "tree"
    assert {f["feature"] for f in explanation["features"]} == set(FEATURES)

    estimator = load_model(store, "defect-model", "1")
    x = mlflow_registry.line.select(FEATURES).to_pandas()
    original = mlflow_registry.models["defect-model/1"]
    np.testing.assert_array_equal(estimator.predict_proba(x), original.predict_proba(x))  # type: ignore[attr-defined]


@pytest.mark.parametrize("store", ["sqlite"], indirect=True)
def test_register_by_number_or_the_newest_under_a_name_of_ours(
    store: Store, mlflow_registry: Mlflow
) -> None:
    second = register_from_mlflow(
        store, "defect-model", version=2, reference=mlflow_registry.line, explain=False
    )
    assert second.version == "2"
    assert second.meta["mlflow"]["aliases"] == []
    assert "explanation" not in second.artifacts
    newest = register_from_mlflow(
        store,
        "defect-model",
        reference=mlflow_registry.line,
        model="line-3-defects",
        as_version="2024-06",
        explain=False,
    )
    assert (newest.model, newest.version) == ("line-3-defects", "2024-06")
    assert newest.meta["mlflow"]["version"] == "2"
    # loaded from the MLflow registry recorded with the version, without its explanation
    estimator = load_model(store, "line-3-defects", "2024-06")
    x = mlflow_registry.line.select(FEATURES).to_pandas()
    np.testing.assert_array_equal(
        estimator.predict(x),  # type: ignore[attr-defined]
        mlflow_registry.models["defect-model/2"].predict(x),
    )


@pytest.mark.parametrize("store", ["sqlite"], indirect=True)
def test_a_lightgbm_model_is_loaded_natively(store: Store, mlflow_registry: Mlflow) -> None:
    record = register_from_mlflow(store, "defect-lgbm", version="1", reference=mlflow_registry.line)
    assert record.meta["mlflow"]["flavor"] == "lightgbm"
    explanation = Registry(store).explanation("defect-lgbm", "1")
    assert explanation is not None
    assert explanation["method"] == "tree"
    x = mlflow_registry.line.select(FEATURES).to_pandas()
    estimator = load_model(store, "defect-lgbm", "1")
    np.testing.assert_allclose(
        estimator.predict_proba(x),  # type: ignore[attr-defined]
        mlflow_registry.models["defect-lgbm/1"].predict_proba(x),
    )


@pytest.mark.parametrize("store", ["sqlite"], indirect=True)
def test_a_pyfunc_model_is_explained_by_sampling(store: Store, mlflow_registry: Mlflow) -> None:
    # a small reference: sampling costs rows × evaluations × background rows
    reference = mlflow_registry.line.head(30)
    record = register_from_mlflow(store, "defect-score", reference=reference)
    assert record.meta["mlflow"]["flavor"] == "python_function"
    explanation = Registry(store).explanation("defect-score", "1")
    assert explanation is not None
    assert explanation["method"] == "sampling"
    # the score uses two features: the other two get no attribution
    shares = {f["feature"]: f["share"] for f in explanation["features"]}
    assert shares["vibration_mm_s"] == pytest.approx(0.0, abs=1e-6)
    assert shares["humidity_pct"] == pytest.approx(0.0, abs=1e-6)
    assert shares["temperature_c"] + shares["pressure_bar"] == pytest.approx(1.0)

    predictor = load_model(store, "defect-score", "1")
    assert isinstance(predictor, PyfuncPredictor)
    rows = reference.select(FEATURES).fill_null(0.0).to_numpy()
    expected = _score(reference.select(FEATURES).fill_null(0.0).to_pandas()).to_numpy()
    np.testing.assert_allclose(predictor(rows), expected)
    again = pickle.loads(pickle.dumps(predictor))  # a reference to the MLflow model
    np.testing.assert_allclose(again.predict(rows), expected)


def test_unknown_names_versions_and_aliases_are_clear_errors(mlflow_registry: Mlflow) -> None:
    source = MlflowSource(mlflow_registry.uri)
    with pytest.raises(NotFoundError, match=r"no model 'defect'.*defect-lgbm, defect-model") as e:
        source.resolve("defect")
    assert e.value.what == "model"
    with pytest.raises(NotFoundError, match=r"no alias 'prod'\. Its aliases: champion") as e:
        source.resolve("defect-model", alias="prod")
    assert e.value.what == "alias"
    with pytest.raises(NotFoundError, match=r"no version 7\. Its versions: 1, 2") as e:
        source.resolve("defect-model", version=7)
    assert e.value.what == "version"
    with pytest.raises(ParameterError, match="not both") as p:
        source.resolve("defect-model", version=1, alias="champion")
    assert p.value.parameter == "alias"
    with pytest.raises(ParameterError, match="is a number") as p:
        source.resolve("defect-model", version="v1")
    assert p.value.parameter == "version"
    newest = source.resolve("defect-model", version="latest").to_dict()
    assert (newest["version"], newest["aliases"], newest["uri"]) == (
        "2",
        [],
        "models:/defect-model/2",
    )
    assert newest["features"] == FEATURES
    assert newest["flavors"] == ["python_function", "sklearn"]


@pytest.mark.parametrize("store", ["sqlite"], indirect=True)
def test_inputs_missing_from_the_reference_and_versions_not_from_mlflow(
    store: Store, mlflow_registry: Mlflow
) -> None:
    with pytest.raises(InputError, match=r"lacks the model's input.*'humidity_pct'.*sign") as e:
        register_from_mlflow(
            store,
            "defect-model",
            alias="champion",
            reference=mlflow_registry.line.drop("humidity_pct"),
            tracking_uri=mlflow_registry.uri,
        )
    assert e.value.column == "humidity_pct"
    assert store.models() == []  # nothing half-written
    Registry(store).register("own-model", "1", mlflow_registry.line)
    with pytest.raises(NotFoundError, match="not registered from MLflow"):
        load_model(store, "own-model", "1")


def test_model_specs() -> None:
    assert parse_model_spec("defect-model") == ("defect-model", None, None)
    assert parse_model_spec("defect-model/2") == ("defect-model", "2", None)
    assert parse_model_spec("models:/defect-model@champion") == ("defect-model", None, "champion")
    for bad in ("defect-model@", "models:/", "/2", "defect-model/", "@champion"):
        with pytest.raises(ParameterError, match="NAME, NAME/VERSION or NAME@ALIAS"):
            parse_model_spec(bad)


def test_a_password_in_the_tracking_uri_is_not_stored() -> None:
    from mlwarden.registry.mlflow import _redact

    assert _redact("postgresql://ml:s3cret@db:5432/mlflow") == "postgresql://ml:***@db:5432/mlflow"
    assert _redact("https://mlflow.plant.example") == "https://mlflow.plant.example"


def test_without_mlflow_the_error_says_what_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "mlflow", None)
    with pytest.raises(MlwardenError, match=r"pip install 'mlwarden\[mlflow\]'"):
        MlflowSource()


def test_mlwarden_and_its_cli_start_without_importing_mlflow() -> None:
    code = (
        "import sys, mlwarden, mlwarden.registry, mlwarden.cli\n"
        "from click.testing import CliRunner\n"
        "assert CliRunner().invoke(mlwarden.cli.cli, ['register', '--help']).exit_code == 0\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] == 'mlflow'))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_cli_registers_from_mlflow(tmp_path: Path, mlflow_registry: Mlflow) -> None:
    reference = tmp_path / "reference.parquet"
    mlflow_registry.line.write_parquet(reference)
    database = f"sqlite:///{tmp_path / 'mlwarden.db'}"
    args = ["register", "defect-model", "1", str(reference), "--timestamp", "timestamp"]
    args += ["--tracking-uri", mlflow_registry.uri, "--database-url", database]
    result = CliRunner().invoke(cli, [*args, "--from-mlflow", "defect-model@champion"])
    assert result.exit_code == 0, result.output
    assert "from MLflow models:/defect-model/1 (sklearn)" in result.stdout
    assert "explanation" in result.stdout
    store = Store(database)
    assert store.get_version("defect-model", "1").meta["mlflow"]["aliases"] == ["champion"]
    store.close()
    result = CliRunner().invoke(cli, [*args, "--from-mlflow", "defect-model@prod"])
    assert result.exit_code == 2
    assert "has no alias 'prod'. Its aliases: champion." in result.stderr
