"""Model versions from an MLflow model registry, registered and explained by mlwarden.

Teams that keep MLflow as their model registry keep it: :func:`register_from_mlflow` resolves a
registered model's version (by number, by alias, or the newest), loads the model and registers
an mlwarden version named after the MLflow version number, with its reference, its global
explanation and ``meta["mlflow"]`` (name, version, run, source, aliases, the ``models:/`` URI,
the flavor loaded and the signature's features). The model is loaded natively for the
``sklearn``, ``lightgbm`` and ``xgboost`` flavors, so the exact tree explainer applies; any
other model through ``pyfunc``, explained by model-agnostic sampling.

MLflow aliases are read, never followed: a version MLflow calls ``champion`` or ``production``
is not promoted in mlwarden. Promotion stays an mlwarden decision
(:meth:`~mlwarden.registry.Registry.promote`), kept in the alias history with who, why and the
evidence.

``mlflow`` is optional (``pip install 'mlwarden[mlflow]'``) and imported only when a function of
this module runs. Loading a model runs code from its artifacts (a pickle, a skops file): register
only from registries you trust.

Usage (a registry at ``sqlite:///mlflow.db``, a model ``defect-model`` with alias ``champion``)::

    from mlwarden.registry.mlflow import load_model, register_from_mlflow
    record = register_from_mlflow(
        store, "defect-model", alias="champion", reference="train.parquet",
        timestamp="timestamp", tracking_uri="sqlite:///mlflow.db",
    )
    estimator = load_model(store, "defect-model", record.version)

Example:
    >>> parse_model_spec("defect-model@champion")
    ('defect-model', None, 'champion')
    >>> parse_model_spec("models:/defect-model/3")
    ('defect-model', '3', None)
"""

from __future__ import annotations

import shutil
import tempfile
import warnings
import weakref
from contextlib import AbstractContextManager, contextmanager
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Final, cast
from urllib.parse import urlsplit, urlunsplit

from mlwarden.exceptions import (
    InputError,
    MlwardenError,
    NotFoundError,
    ParameterError,
    StoreError,
)

if TYPE_CHECKING:
    from collections.abc import Iterator, Sequence

    import numpy as np
    from numpy.typing import NDArray

    from mlwarden.store.metadata import Store, VersionRecord

__all__ = [
    "MlflowSource",
    "MlflowVersion",
    "PyfuncPredictor",
    "load_model",
    "parse_model_spec",
    "register_from_mlflow",
]

# Flavors loaded as the library's own model object, in this order of preference: the
# explainers recognise these (exact tree attributions); anything else goes through pyfunc.
NATIVE_FLAVORS: Final = ("sklearn", "lightgbm", "xgboost")
PYFUNC: Final = "python_function"
INSTALL_HINT: Final = "pip install 'mlwarden[mlflow]'"
# What a stored URI's password is replaced with: meta is shown in the dashboard and the API.
REDACTED: Final = "***"


@dataclass(frozen=True)
class MlflowVersion:
    """One version of a model in an MLflow registry, as :meth:`MlflowSource.resolve` found it.

    Attributes:
        name: the registered model's name.
        version: the version number (as text, as mlwarden names versions).
        aliases: the MLflow aliases pointing at this version.
        run_id: the run that logged the model (None when it was registered from elsewhere).
        source: where MLflow says the model's files are (a ``models:/m-…`` or ``runs:/`` URI).
        flavors: the flavors the model was logged with (``sklearn``, ``python_function``, …).
        features: the input names of the model's signature; None without a column signature.
        tags: the version's tags.
        description: the version's description.
        created_at: when the version was registered (UTC).
    """

    name: str
    version: str
    aliases: tuple[str, ...] = ()
    run_id: str | None = None
    source: str = ""
    flavors: tuple[str, ...] = ()
    features: tuple[str, ...] | None = None
    tags: dict[str, str] = field(default_factory=dict)
    description: str = ""
    created_at: datetime | None = None

    @property
    def uri(self) -> str:
        """The version's ``models:/NAME/VERSION`` URI."""
        return f"models:/{self.name}/{self.version}"

    @property
    def flavor(self) -> str:
        """The flavor :meth:`MlflowSource.load` loads: a native one if any, else pyfunc."""
        return next((f for f in NATIVE_FLAVORS if f in self.flavors), PYFUNC)

    def to_dict(self) -> dict[str, Any]:
        doc = asdict(self)
        doc["aliases"] = list(self.aliases)
        doc["flavors"] = list(self.flavors)
        doc["features"] = None if self.features is None else list(self.features)
        doc["created_at"] = None if self.created_at is None else self.created_at.isoformat()
        doc["uri"] = self.uri
        return doc


class MlflowSource:
    """An MLflow tracking server and model registry to read model versions from.

    ``tracking_uri`` and ``registry_uri`` default as in MLflow (``MLFLOW_TRACKING_URI``,
    ``MLFLOW_REGISTRY_URI``, then MLflow's own default: for a registry URI, the tracking URI).
    MLflow's global settings are never changed.
    """

    def __init__(self, tracking_uri: str | None = None, registry_uri: str | None = None) -> None:
        mlflow = _mlflow()
        self.tracking_uri = tracking_uri
        self.registry_uri = registry_uri
        with self._errors():
            self._client = mlflow.MlflowClient(tracking_uri=tracking_uri, registry_uri=registry_uri)

    def __repr__(self) -> str:
        return f"MlflowSource({_redact(self._where())!r})"

    def resolve(
        self, name: str, version: str | int | None = None, alias: str | None = None
    ) -> MlflowVersion:
        """The version ``version`` of the registered model ``name``, or the one its ``alias``
        points at, or (given neither) its newest version."""
        if version is not None and alias is not None:
            raise ParameterError(
                f"Give the MLflow version or the alias of '{name}', not both; got "
                f"version={version!r} and alias={alias!r}.",
                parameter="alias",
            )
        if version is not None and str(version) != "latest" and not str(version).isdigit():
            raise ParameterError(
                f"An MLflow model version is a number (or 'latest'); got {version!r}.",
                parameter="version",
            )
        with self._errors():
            registered = self._registered(name)
            if alias is not None:
                if alias not in registered.aliases:
                    known = ", ".join(sorted(registered.aliases)) or "none"
                    raise NotFoundError(
                        f"The MLflow model '{name}' has no alias '{alias}'. Its aliases: {known}.",
                        what="alias",
                    )
                found = self._client.get_model_version_by_alias(name, alias)
            else:
                numbers = self._numbers(name)
                if not numbers:
                    raise NotFoundError(
                        f"The MLflow model '{name}' has no versions yet.", what="version"
                    )
                if version is None or str(version) == "latest":
                    version = numbers[-1]
                if int(version) not in numbers:
                    raise NotFoundError(
                        f"The MLflow model '{name}' has no version {version}. Its versions: "
                        f"{_span(numbers)}.",
                        what="version",
                    )
                found = self._client.get_model_version(name, str(version))
            return self._version(found)

    def load(self, version: MlflowVersion, features: Sequence[str] | None = None) -> object:
        """The model of ``version``: the library's own estimator for a native flavor, else a
        :class:`PyfuncPredictor` over ``features`` (default: the signature's)."""
        flavor = version.flavor
        names = tuple(features if features is not None else version.features or ())
        if flavor == PYFUNC and not names:
            raise InputError(
                f"The MLflow model {version.uri} is a pyfunc model without a column signature: "
                "pass its input columns as features=[...]."
            )
        module = "mlflow.pyfunc" if flavor == PYFUNC else f"mlflow.{flavor}"
        files = tempfile.mkdtemp(prefix="mlwarden-mlflow-")
        try:
            with self._errors():
                model = _mlflow(module).load_model(self._download(version.uri, files))
        except ImportError as exc:
            shutil.rmtree(files, ignore_errors=True)
            raise MlwardenError(
                f"Loading the MLflow model {version.uri} ({flavor} flavor) needs a package that "
                f"is not installed: {exc}. Install it (or register with explain=False)."
            ) from exc
        except BaseException:
            shutil.rmtree(files, ignore_errors=True)
            raise
        if flavor != PYFUNC:
            # a native model is in memory once loaded
            shutil.rmtree(files, ignore_errors=True)
            return model
        predictor = PyfuncPredictor(model, names, version.uri, self._uris())
        # a pyfunc model may read its artifacts when it predicts: they live as long as it does
        weakref.finalize(predictor, shutil.rmtree, files, ignore_errors=True)
        return predictor

    def _registered(self, name: str) -> Any:
        from mlflow.exceptions import MlflowException

        if not name or "/" in name or ":" in name:
            raise ParameterError(
                f"An MLflow model name is not empty and has no '/' or ':'; got {name!r}.",
                parameter="name",
            )
        try:
            return self._client.get_registered_model(name)
        except MlflowException as exc:
            if exc.error_code != "RESOURCE_DOES_NOT_EXIST":
                raise
            names = sorted(m.name for m in self._client.search_registered_models(max_results=50))
            known = ", ".join(names[:20]) + (", …" if len(names) > 20 else "") or "none"
            raise NotFoundError(
                f"There is no model '{name}' in the MLflow registry at "
                f"{_redact(self._where())}. Its models: {known}.",
                what="model",
            ) from exc

    def _numbers(self, name: str) -> list[int]:
        quote = '"' if "'" in name else "'"
        found = self._client.search_model_versions(f"name={quote}{name}{quote}")
        return sorted(int(v.version) for v in found)

    def _version(self, found: Any) -> MlflowVersion:
        from mlflow.models import Model

        uri = f"models:/{found.name}/{found.version}"
        with tempfile.TemporaryDirectory(prefix="mlwarden-mlflow-") as tmp:
            info = Model.load(self._download(f"{uri}/MLmodel", tmp))
        features = None
        if info.signature is not None and info.signature.inputs is not None:
            names = info.signature.inputs.input_names()
            if names and all(isinstance(n, str) for n in names):
                features = tuple(names)
        created = getattr(found, "creation_timestamp", None)
        return MlflowVersion(
            name=found.name,
            version=str(found.version),
            aliases=tuple(getattr(found, "aliases", None) or ()),
            run_id=found.run_id or None,
            source=found.source or "",
            flavors=tuple(info.flavors),
            features=features,
            tags=dict(found.tags or {}),
            description=found.description or "",
            created_at=None if created is None else datetime.fromtimestamp(created / 1000, UTC),
        )

    def _download(self, uri: str, dst: str) -> str:
        from mlflow.artifacts import download_artifacts

        path = download_artifacts(
            artifact_uri=uri,
            dst_path=dst,
            tracking_uri=self.tracking_uri,
            registry_uri=self.registry_uri,
        )
        return str(path)

    def _uris(self) -> tuple[str | None, str | None]:
        return self.tracking_uri, self.registry_uri

    def _where(self) -> str:
        return self.registry_uri or self.tracking_uri or str(_mlflow().get_registry_uri())

    def _errors(self) -> AbstractContextManager[None]:
        return _mlflow_errors(self._where())


@dataclass(eq=False)
class PyfuncPredictor:
    """A pyfunc model as a function of a feature matrix, for the model-agnostic explainer.

    Called with rows × ``features`` (numbers), it hands the model a pandas frame with those
    column names and returns one number per row: the prediction, or for a model that answers
    one column per class, the last (the positive class of a binary classifier). Pickles as a
    reference to the MLflow model, loaded again when unpickled; a URI's password is left out
    (MLflow's default URI, ``MLFLOW_TRACKING_URI``, is used instead of such a URI).
    """

    model: Any
    features: tuple[str, ...]
    uri: str
    uris: tuple[str | None, str | None] = (None, None)

    def predict(self, rows: NDArray[np.float64]) -> NDArray[np.float64]:
        import numpy as np
        import pandas as pd

        out = np.asarray(self.model.predict(pd.DataFrame(rows, columns=list(self.features))))
        out = out.astype(float)
        if out.ndim == 2:
            out = out[:, -1]
        return cast("NDArray[np.float64]", out.reshape(len(rows)))

    __call__ = predict

    def __reduce__(self) -> tuple[Any, tuple[Any, ...]]:
        return _reload, (self.uri, self.features, *(_redact(u) for u in self.uris))


def parse_model_spec(spec: str) -> tuple[str, str | None, str | None]:
    """``(name, version, alias)`` of ``NAME``, ``NAME/VERSION`` or ``NAME@ALIAS`` (with or
    without MLflow's ``models:/`` prefix)."""
    text = spec.removeprefix("models:/")
    name, slash, version = text.partition("/")
    if slash:
        parsed: tuple[str, str | None, str | None] = (name, version, None)
    else:
        name, at, alias = text.rpartition("@")
        parsed = (name, None, alias) if at else (text, None, None)
    if not parsed[0] or "" in parsed[1:]:
        raise ParameterError(
            f"Expected an MLflow model as NAME, NAME/VERSION or NAME@ALIAS; got {spec!r}.",
            parameter="spec",
        )
    return parsed


def register_from_mlflow(
    store: Store,
    name: str,
    *,
    reference: object,
    version: str | int | None = None,
    alias: str | None = None,
    model: str | None = None,
    as_version: str | None = None,
    tracking_uri: str | None = None,
    registry_uri: str | None = None,
    explain: bool = True,
    features: Sequence[str] | None = None,
    **register_kwargs: Any,
) -> VersionRecord:
    """Register an MLflow model version as a version of mlwarden's model ``model`` (default:
    the MLflow name), named ``as_version`` (default: the MLflow version number).

    The version is resolved by ``version``, by ``alias``, or (neither) as the newest. Its
    reference is fitted on ``reference`` as :meth:`~mlwarden.registry.Registry.register` does,
    with ``register_kwargs`` (``timestamp``, ``roles``, ``groups``, …). With ``explain``, the
    model is loaded and the version's global explanation stored; ``features`` default to the
    MLflow signature's inputs. The MLflow aliases are recorded, not followed: no mlwarden alias
    moves.
    """
    from mlwarden.frames import to_polars
    from mlwarden.registry import Registry

    source = MlflowSource(tracking_uri, registry_uri)
    found = source.resolve(name, version=version, alias=alias)
    frame = to_polars(reference)
    inputs = list(features) if features is not None else list(found.features or ())
    missing = [f for f in inputs if f not in frame.columns]
    if missing:
        origin = "features" if features is not None else f"signature of {found.uri}"
        raise InputError(
            f"The reference lacks the model's input(s) {', '.join(map(repr, missing))} (from "
            f"the {origin}); it has {', '.join(frame.columns[:12])}.",
            column=missing[0],
        )
    estimator = None
    if explain:
        if not inputs and found.flavor == PYFUNC:
            inputs = _feature_columns(frame, register_kwargs.get("roles"))
        estimator = source.load(found, inputs or None)
    meta = {
        "mlflow": {
            "name": found.name,
            "version": found.version,
            "aliases": list(found.aliases),
            "run_id": found.run_id,
            "source": found.source,
            "uri": found.uri,
            "flavor": found.flavor,
            "features": inputs or None,
            "tracking_uri": _redact(tracking_uri),
            "registry_uri": _redact(registry_uri),
        }
    }
    registry = Registry(cast("Store", _WithMeta(store, meta)))
    return registry.register(
        model or found.name,
        as_version or found.version,
        frame,
        estimator=estimator,
        features=inputs or None,
        **register_kwargs,
    )


def load_model(
    store: Store,
    model: str,
    version: str,
    *,
    tracking_uri: str | None = None,
    registry_uri: str | None = None,
) -> object:
    """The model of an mlwarden version (or alias) registered from MLflow, loaded from the
    MLflow registry it came from (``tracking_uri``/``registry_uri`` override the recorded
    ones), ready for :func:`mlwarden.explain`."""
    record = store.resolve(model, version)
    link = record.meta.get("mlflow")
    if not isinstance(link, dict):
        raise NotFoundError(
            f"Version '{record.version}' of '{model}' was not registered from MLflow; "
            "register it with register_from_mlflow (or 'mlwarden register --from-mlflow').",
            what="mlflow",
        )
    uris = []
    for key, given in (("tracking_uri", tracking_uri), ("registry_uri", registry_uri)):
        stored = link.get(key)
        if given is None and stored is not None and REDACTED in stored:
            raise ParameterError(
                f"The recorded MLflow {key} of '{model}' {record.version} had its password "
                f"removed ({stored}): pass {key}= with it.",
                parameter=key,
            )
        uris.append(given if given is not None else stored)
    source = MlflowSource(uris[0], uris[1])
    found = source.resolve(link["name"], version=link["version"])
    return source.load(found, link.get("features"))


class _WithMeta:
    """A store whose new version gets ``extra`` in its meta, in the same write."""

    def __init__(self, store: Store, extra: dict[str, Any]) -> None:
        self._store = store
        self._extra = extra

    def __getattr__(self, name: str) -> Any:
        return getattr(self._store, name)

    def create_version(
        self,
        model: str,
        version: str,
        *,
        artifacts: dict[str, bytes] | None = None,
        meta: dict[str, Any] | None = None,
    ) -> VersionRecord:
        merged = {**(meta or {}), **self._extra}
        return self._store.create_version(model, version, artifacts=artifacts, meta=merged)


def _mlflow(module: str = "mlflow") -> Any:
    """The MLflow module ``module``, imported on first use."""
    import importlib

    try:
        with warnings.catch_warnings():
            # MLflow's pyfunc warns at import about a type hint of its own (in colour, hence
            # the leading '.*'): nothing a user could act on.
            warnings.filterwarnings("ignore", ".*Any type hint is inferred", UserWarning)
            return importlib.import_module(module)
    except ImportError as exc:
        if exc.name is None or exc.name.partition(".")[0] != "mlflow":
            raise
        raise MlwardenError(
            f"Reading an MLflow registry needs the mlflow package: {INSTALL_HINT}."
        ) from exc


@contextmanager
def _mlflow_errors(where: str) -> Iterator[None]:
    """MLflow's own errors (an unreachable server, a refused request) as mlwarden errors."""
    from mlflow.exceptions import MlflowException

    try:
        yield
    except MlflowException as exc:
        raise StoreError(f"The MLflow registry at {_redact(where)} refused: {exc.message}") from exc


def _reload(
    uri: str, features: tuple[str, ...], tracking_uri: str | None, registry_uri: str | None
) -> object:
    usable = [None if u is not None and REDACTED in u else u for u in (tracking_uri, registry_uri)]
    source = MlflowSource(*usable)
    name, version, _ = parse_model_spec(uri)
    return source.load(source.resolve(name, version=version), features)


def _feature_columns(frame: Any, roles: Any) -> list[str]:
    from mlwarden.schema import Role, infer_schema

    return [c.name for c in infer_schema(frame, roles=roles) if c.role is Role.FEATURE]


def _span(numbers: Sequence[int]) -> str:
    shown = ", ".join(str(n) for n in numbers[-10:])
    return ("…, " if len(numbers) > 10 else "") + shown


def _redact(uri: str | None) -> str | None:
    """``uri`` without its password (meta is shown in the dashboard and the API)."""
    if uri is None:
        return None
    parts = urlsplit(uri)
    if parts.password is None:
        return uri
    host = parts.netloc.rpartition("@")[2]
    user = parts.username or ""
    return urlunsplit(parts._replace(netloc=f"{user}:{REDACTED}@{host}"))
