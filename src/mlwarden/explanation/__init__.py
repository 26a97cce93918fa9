"""Feature attributions: why a model gave each prediction, feature by feature and sensor by
sensor.

``explain(model, data)`` picks an explainer from the model and returns an :class:`Explanation`:
per-row attributions (rows × features) that add up, with ``base_value``, to the model's output
for the row. The explainers, chosen in this order, are those of ``shap``:

* ``tree`` — the exact path-dependent algorithm for tree ensembles (scikit-learn forests and
  gradient boosting, LightGBM, XGBoost); attributions in the model's raw output (log-odds for
  gradient-boosted classifiers, probability for forests). LightGBM and scikit-learn trees,
  forests and gradient boosting are computed by a compiled implementation
  (``mlwarden.explanation._fasttree``) with the same values, many times faster (see
  ``bench/explain_bench.py``);
* ``linear`` — exact for linear models, against a background sample of the data;
* ``sampling`` — model-agnostic permutation sampling for anything else, with a bounded budget
  of model evaluations per row (``max_evals``).

Adding an explainer is one subclass registered by key. Feature groups map engineered columns
back to physical sensors (``temp_lag_1``, ``temp_mean_10m`` → ``temperature``);
:meth:`Explanation.by_group` sums attributions per group, which is exact since attributions add.

Example:
    >>> import numpy as np
    >>> from sklearn.ensemble import GradientBoostingRegressor
    >>> rng = np.random.default_rng(0)
    >>> X = rng.normal(size=(400, 3))
    >>> model = GradientBoostingRegressor(random_state=0).fit(X, 3 * X[:, 0] + X[:, 1])
    >>> e = explain(model, X[:5], feature_names=["temp_lag_1", "temp_mean_10m", "pressure"])
    >>> e.method, e.values.shape
    ('tree', (5, 3))
    >>> bool(np.allclose(e.values.sum(axis=1) + e.base_value, model.predict(X[:5])))
    True
    >>> e.by_group({"temperature": ["temp_lag_1", "temp_mean_10m"]}).feature_names
    ('temperature', 'pressure')
"""

from __future__ import annotations

import difflib
import warnings
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar, Final

import numpy as np
import polars as pl

from mlwarden.exceptions import InputError, ParameterError

if TYPE_CHECKING:
    from numpy.typing import NDArray

__all__ = ["Explainer", "Explanation", "available_explainers", "explain"]

BACKGROUND_ROWS: Final = 200
Groups = Mapping[str, Sequence[str]] | Callable[[str], str]


@dataclass(frozen=True, eq=False)
class Explanation:
    """Per-row feature attributions.

    Attributes:
        values: rows × features; ``values.sum(axis=1) + base_value`` is the model's output for
            each row (in the explainer's output space, see the module docstring).
        base_value: the expected output over the background (one per row).
        feature_names: the name of each column of ``values``.
        method: the explainer's key.
        output: what the values explain (``"raw"``, ``"probability"``, ``"prediction"``).
    """

    values: NDArray[np.float64]
    base_value: NDArray[np.float64]
    feature_names: tuple[str, ...]
    method: str
    output: str = "raw"
    data: NDArray[np.float64] | None = field(default=None, repr=False)

    @property
    def n_rows(self) -> int:
        return int(self.values.shape[0])

    def by_group(self, groups: Groups) -> Explanation:
        """Attributions summed per group of features (a mapping from group name to columns, or
        a function naming each column's group); columns in no group keep their own name."""
        owner = _owners(self.feature_names, groups)
        names = tuple(dict.fromkeys(owner[f] for f in self.feature_names))
        index = {name: i for i, name in enumerate(names)}
        membership = np.zeros((len(self.feature_names), len(names)))
        for j, name in enumerate(self.feature_names):  # one per feature, not per row
            membership[j, index[owner[name]]] = 1.0
        return Explanation(
            values=self.values @ membership,
            base_value=self.base_value,
            feature_names=names,
            method=self.method,
            output=self.output,
        )

    def global_importance(self) -> pl.DataFrame:
        """Per feature: mean absolute attribution, its share of the total, and the direction
        of its effect (the correlation of the feature's value with its attribution, when the
        data is known), most important first."""
        mean_abs = np.abs(self.values).mean(axis=0)
        total = float(mean_abs.sum()) or 1.0
        direction = np.full(len(self.feature_names), np.nan)
        if self.data is not None and self.n_rows > 2:
            x = self.data - np.nanmean(self.data, axis=0)
            v = self.values - self.values.mean(axis=0)
            with np.errstate(invalid="ignore", divide="ignore"):
                direction = np.nansum(x * v, axis=0) / np.sqrt(
                    np.nansum(x * x, axis=0) * np.nansum(v * v, axis=0)
                )
        return pl.DataFrame(
            {
                "feature": list(self.feature_names),
                "mean_abs": mean_abs,
                "share": mean_abs / total,
                "direction": direction,
            }
        ).sort("mean_abs", descending=True)

    def to_df(self) -> pl.DataFrame:
        """One row per explained row: ``base_value`` and one column of attributions per
        feature."""
        return pl.DataFrame(
            {"base_value": self.base_value}
            | {name: self.values[:, j] for j, name in enumerate(self.feature_names)}
        )


class Explainer(ABC):
    """A way to attribute a model's output to its features, registered by ``key``."""

    key: ClassVar[str] = ""
    registry: ClassVar[dict[str, type[Explainer]]] = {}
    # A scikit-learn regressor this explainer explains, for the contract tests.
    example: ClassVar[str] = "sklearn.ensemble.GradientBoostingRegressor"

    def __init_subclass__(cls, *, key: str = "", **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if key:
            if key in Explainer.registry:
                raise TypeError(f"The explainer key '{key}' is taken.")
            cls.key = key
            Explainer.registry[key] = cls

    @classmethod
    @abstractmethod
    def supports(cls, model: object) -> bool:
        """Whether this explainer can explain ``model``."""

    @abstractmethod
    def explain(
        self,
        model: object,
        x: NDArray[np.float64],
        background: NDArray[np.float64],
        class_index: int | None,
    ) -> tuple[NDArray[np.float64], NDArray[np.float64], str]:
        """``(values, base_value per row, output)`` for the rows ``x``."""


class TreeShap(Explainer, key="tree"):
    """Exact path-dependent attributions of a tree ensemble (the values of
    ``shap.TreeExplainer``): compiled for LightGBM and scikit-learn trees, forests and gradient
    boosting (histogram-based too, whose categorical splits shap misreads), by shap itself for
    the rest."""

    _MODULES: ClassVar[tuple[str, ...]] = (
        "sklearn.ensemble",
        "sklearn.tree",
        "lightgbm",
        "xgboost",
    )

    @classmethod
    def supports(cls, model: object) -> bool:
        module = type(model).__module__
        name = type(model).__name__
        return module.startswith(cls._MODULES) and (
            "Forest" in name
            or "Tree" in name
            or "Boost" in name
            or name in ("LGBMClassifier", "LGBMRegressor", "Booster", "XGBClassifier")
        )

    def explain(
        self,
        model: object,
        x: NDArray[np.float64],
        background: NDArray[np.float64],
        class_index: int | None,
    ) -> tuple[NDArray[np.float64], NDArray[np.float64], str]:
        from mlwarden.explanation._fasttree import fast_tree

        fast = fast_tree(model)
        if fast is not None:
            # one class at a time: a classifier forest's probability, a multiclass booster's margin
            k = 0 if fast.n_classes is None else _class(class_index, fast.n_classes)
            ensemble = fast.ensemble(k)
            if ensemble is not None:
                return ensemble.shap_values(x), np.full(len(x), ensemble.base_value), fast.output
        import shap

        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)  # shap's notes on output shapes
            explainer = shap.TreeExplainer(model)
            values = np.asarray(explainer.shap_values(x, check_additivity=False), dtype=float)
        # forests give one slice per class, in probabilities
        return _one_class(values, explainer.expected_value, class_index, "probability")


class LinearShap(Explainer, key="linear"):
    """Exact attributions of a linear model against a background (``shap.LinearExplainer``)."""

    example: ClassVar[str] = "sklearn.linear_model.Ridge"

    @classmethod
    def supports(cls, model: object) -> bool:
        return type(model).__module__.startswith("sklearn.linear_model") and hasattr(model, "coef_")

    def explain(
        self,
        model: object,
        x: NDArray[np.float64],
        background: NDArray[np.float64],
        class_index: int | None,
    ) -> tuple[NDArray[np.float64], NDArray[np.float64], str]:
        import shap

        masker = shap.maskers.Independent(background, max_samples=len(background))
        explainer = shap.LinearExplainer(model, masker)
        values = np.asarray(explainer.shap_values(x), dtype=float)
        return _one_class(values, explainer.expected_value, class_index, "raw")


@dataclass
class SamplingShap(Explainer, key="sampling"):
    """Model-agnostic attributions by permutation sampling (``shap.PermutationExplainer``),
    with at most ``max_evals`` model evaluations per row."""

    max_evals: int = 500
    example: ClassVar[str] = "sklearn.neighbors.KNeighborsRegressor"

    @classmethod
    def supports(cls, model: object) -> bool:
        return hasattr(model, "predict") or callable(model)

    def explain(
        self,
        model: object,
        x: NDArray[np.float64],
        background: NDArray[np.float64],
        class_index: int | None,
    ) -> tuple[NDArray[np.float64], NDArray[np.float64], str]:
        import shap

        predict_proba = getattr(model, "predict_proba", None)
        if predict_proba is not None:
            k = _class(class_index, len(getattr(model, "classes_", (0, 1))))

            def function(rows: NDArray[np.float64]) -> NDArray[np.float64]:
                return np.asarray(predict_proba(rows))[:, k]

            output = "probability"
        else:
            predict = getattr(model, "predict", model)
            assert callable(predict)

            def function(rows: NDArray[np.float64]) -> NDArray[np.float64]:
                return np.asarray(predict(rows), dtype=float)

            output = "prediction"
        evals = max(self.max_evals, 2 * x.shape[1] + 1)
        explainer = shap.PermutationExplainer(
            function, shap.maskers.Independent(background), seed=0
        )
        result = explainer(x, max_evals=evals, silent=True)
        return (
            np.asarray(result.values, dtype=float),
            np.asarray(result.base_values, dtype=float).reshape(len(x)),
            output,
        )


def available_explainers() -> list[str]:
    return sorted(Explainer.registry)


def explain(
    model: object,
    data: object,
    *,
    method: str = "auto",
    feature_names: Sequence[str] | None = None,
    background: object = None,
    class_index: int | None = None,
    max_evals: int = 500,
) -> Explanation:
    """Attributions of ``model``'s output for every row of ``data`` (a Polars or pandas frame,
    an Arrow table or a 2-D array).

    Parameters:
        method: ``"auto"`` (tree, then linear, then sampling), or an explainer's key.
        feature_names: the model's features, in its order (default: the model's
            ``feature_names_in_``, else the frame's columns).
        background: rows standing for "no information" (linear and sampling; default: up to
            200 rows of ``data``).
        class_index: the class explained for a classifier with more than two classes (for two,
            the positive class).
        max_evals: the sampling explainer's budget of model evaluations per row.
    """
    if method != "auto" and method not in Explainer.registry:
        close = difflib.get_close_matches(method, available_explainers(), n=1)
        hint = f" Did you mean '{close[0]}'?" if close else ""
        raise ParameterError(
            f"'{method}' is not an explainer. Available: auto, "
            f"{', '.join(available_explainers())}.{hint}",
            parameter="method",
        )
    names, x = _matrix(data, feature_names or _model_features(model))
    if x.shape[0] == 0:
        raise InputError("There are no rows to explain.")
    if background is None:
        pool = x[np.random.default_rng(0).permutation(len(x))[:BACKGROUND_ROWS]]
    else:
        pool = _matrix(background, names)[1]
    if method == "auto":
        method = next(
            k for k in ("tree", "linear", "sampling") if Explainer.registry[k].supports(model)
        )
    kind = Explainer.registry[method]
    if not kind.supports(model):
        raise ParameterError(
            f"The '{method}' explainer cannot explain a {type(model).__name__}; use "
            "method='auto' or 'sampling'.",
            parameter="method",
        )
    explainer = SamplingShap(max_evals=max_evals) if kind is SamplingShap else kind()
    values, base, output = explainer.explain(model, x, pool, class_index)
    return Explanation(
        values=values,
        base_value=base,
        feature_names=tuple(names),
        method=method,
        output=output,
        data=x,
    )


def _model_features(model: object) -> list[str] | None:
    names = getattr(model, "feature_names_in_", None)
    if names is None:
        names = getattr(model, "feature_name_", None)  # LightGBM's scikit-learn API
    return None if names is None else [str(n) for n in names]


def _matrix(data: object, names: Sequence[str] | None) -> tuple[list[str], NDArray[np.float64]]:
    """The model's input matrix: the named columns, categories as their codes."""
    if isinstance(data, np.ndarray):
        if data.ndim != 2:
            raise InputError(f"Expected rows × features (a 2-D array); got {data.ndim} dimensions.")
        width = data.shape[1]
        if names is not None and len(names) != width:
            raise InputError(
                f"The data has {width} columns but {len(names)} feature names were given."
            )
        return (
            list(names) if names is not None else [f"x{i}" for i in range(width)],
            data.astype(float),
        )
    from mlwarden.frames import to_polars

    frame = to_polars(data)
    columns = list(names) if names is not None else frame.columns
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise InputError(
            f"The data lacks the model's feature(s) {', '.join(repr(m) for m in missing)}; it "
            f"has {', '.join(frame.columns[:12])}.",
            column=missing[0],
        )
    series = []
    for name in columns:
        column = frame[name]
        if column.dtype in (pl.Enum, pl.Categorical):
            column = column.to_physical()
        elif column.dtype == pl.String:
            raise InputError(
                f"The feature '{name}' holds text; encode it as the model was trained (numbers "
                "or a categorical).",
                column=name,
            )
        series.append(column.cast(pl.Float64))
    return columns, pl.DataFrame(series).to_numpy()


def _one_class(
    values: NDArray[np.float64], expected_value: object, class_index: int | None, per_class: str
) -> tuple[NDArray[np.float64], NDArray[np.float64], str]:
    """The attributions of one class (``per_class`` names their output space when the
    explainer gave one slice per class), with the base value repeated per row."""
    expected = np.atleast_1d(np.asarray(expected_value, dtype=float))
    rows = values.shape[0]
    if values.ndim == 3:
        k = _class(class_index, values.shape[2])
        return values[:, :, k], np.full(rows, expected[k]), per_class
    return values, np.full(rows, expected[-1]), "raw"


def _class(class_index: int | None, n_classes: int) -> int:
    if class_index is None:
        if n_classes <= 2:
            return n_classes - 1
        raise ParameterError(
            f"The model has {n_classes} classes: say which one to explain with class_index.",
            parameter="class_index",
        )
    if not 0 <= class_index < n_classes:
        raise ParameterError(
            f"class_index is 0 to {n_classes - 1}; got {class_index}.", parameter="class_index"
        )
    return class_index


def _owners(features: Sequence[str], groups: Groups) -> dict[str, str]:
    if callable(groups):
        return {f: str(groups(f)) for f in features}
    owner = {f: f for f in features}
    for group, members in groups.items():
        for member in members:
            if member not in owner:
                raise InputError(
                    f"The group '{group}' names '{member}', which is not a feature.",
                    column=member,
                )
            owner[member] = group
    return owner
