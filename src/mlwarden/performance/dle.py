"""Direct loss estimation (DLE) of a regressor's MAE and RMSE without labels.

A second model -- the loss model -- learns on the reference how large the regressor's error is
for given inputs: one gradient-boosted model predicts the absolute error (for MAE), another the
squared error (for RMSE), from the features and the regressor's own prediction. On unlabelled
data the estimated MAE of a window is the mean predicted absolute error, the estimated RMSE the
square root of the mean predicted squared error. When data moves into a region where the
regressor errs more (heteroscedastic noise, sparse training data), the estimate rises with it.

The loss models are histogram gradient boosting (scikit-learn, seeded) with a Poisson loss: a
log link fits losses that differ by factors between regions, and its fit is the mean loss, which
is what MAE and RMSE need. They run on one thread (see ``_one_thread``).

The loss models are checked on the reference by cross-fitting (each fold predicted by models
that did not see it): when their predicted losses disagree with the realized ones bin by bin by
more than ``calibration_limit`` of the mean loss, ``poor_calibration`` is warned. Like CBPE, the
estimate assumes the relation between inputs and outcome is as in the reference; labels, where
some exist, are used and checked for concept drift.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, ClassVar, Final

import numpy as np
import polars as pl
from sklearn.ensemble import HistGradientBoostingRegressor
from sklearn.model_selection import KFold
from threadpoolctl import threadpool_limits  # type: ignore[import-untyped]

from mlwarden.exceptions import InputError, ParameterError, check_int
from mlwarden.frames import to_polars
from mlwarden.performance.estimation import (
    CHANCE_FACTOR,
    POOR_CALIBRATION,
    PerformanceEstimator,
    RowArrays,
    Support,
    numeric_column,
    reliability,
    require_columns,
    window_sizes,
    window_sums,
)

if TYPE_CHECKING:
    from typing import Self

    from numpy.typing import NDArray

__all__ = ["DLE"]

# HistGradientBoosting bins a categorical feature into at most 255 bins, one kept for missing.
MAX_CATEGORIES: Final = 254
_TEXT_TYPES: Final = (pl.String, pl.Categorical, pl.Enum)


def _one_thread() -> Any:
    """Run the loss models on one OpenMP thread.

    They are small (15 leaves, early stopping): on two cores one thread fits them 2-4x faster
    than OpenMP's team, and 10x faster when other jobs share the machine, as a monitoring
    service usually does.
    """
    return threadpool_limits(limits=1, user_api="openmp")


class DLE(PerformanceEstimator):
    """Estimate a regressor's MAE and RMSE per window from its inputs and predictions, unlabelled.

    Parameters:
        y_pred: the column of the regressor's prediction.
        y_true: the column of the true value (required in the reference; optional, and may be
            partly null, in the analysis data).
        features: the input columns the loss model learns from (numeric, boolean or text /
            categorical with at most 254 categories); the prediction is always added.
        metrics: any of ``"mae"``, ``"rmse"``.
        folds: the folds of the cross-fitting that checks the loss models on the reference.
        sigmas: the half-width of bands and alert bounds, in sampling errors; also the
            difference between realized and estimated that counts as concept drift.
        min_window_rows: windows with fewer rows get a ``small_window`` warning.
        calibration_limit: the bin-wise disagreement between predicted and realized losses on
            the reference, relative to the mean loss, above which ``poor_calibration`` is warned.
        support_limit: the share of rows with an input outside the reference's range (or in an
            empty reference bin, or an unseen category) above which ``out_of_support`` is warned.
        min_labels: the labelled rows a window needs before concept drift is checked.
        max_iter: the most boosting iterations of each loss model (early stopping applies).
        random_state: the seed of the folds, the loss models and the sampling-error bootstrap.

    Example:
        >>> import numpy as np
        >>> import polars as pl
        >>> rng = np.random.default_rng(0)
        >>> shifted = rng.uniform(0, 0.5, (2, 1000)) + [[0.0], [0.5]]  # low x, then high x
        >>> x = np.concatenate([rng.uniform(0, 1, 2000), shifted.ravel()])
        >>> y = x + rng.normal(0, 0.1 + 0.4 * x)  # the error grows with x
        >>> frame = pl.DataFrame({"x": x, "pred": x, "y": y})
        >>> dle = DLE(y_pred="pred", y_true="y", features=["x"], metrics=("mae",))
        >>> result = dle.fit(frame[:2000]).estimate(frame[2000:].drop("y"), window=1000)
        >>> [round(v, 2) for v in result.to_df()["estimated"]]
        [0.16, 0.33]
    """

    method: ClassVar[str] = "dle"
    available_metrics: ClassVar[tuple[str, ...]] = ("mae", "rmse")
    domain: ClassVar[tuple[float, float]] = (0.0, math.inf)

    features_: tuple[str, ...]
    categories_: dict[str, tuple[str, ...]]
    loss_models_: dict[str, HistGradientBoostingRegressor | None]

    def __init__(
        self,
        *,
        y_pred: str,
        y_true: str,
        features: Sequence[str],
        metrics: Sequence[str] = ("mae", "rmse"),
        folds: int = 5,
        sigmas: float = 3.0,
        min_window_rows: int = 100,
        calibration_limit: float = 0.1,
        support_limit: float = 0.05,
        min_labels: int = 30,
        max_iter: int = 200,
        random_state: int = 0,
    ) -> None:
        self.y_pred = y_pred
        self.y_true = y_true
        self.features = features
        self.metrics = metrics
        self.folds = folds
        self.sigmas = sigmas
        self.min_window_rows = min_window_rows
        self.calibration_limit = calibration_limit
        self.support_limit = support_limit
        self.min_labels = min_labels
        self.max_iter = max_iter
        self.random_state = random_state

    def __repr__(self) -> str:
        return (
            f"DLE(y_pred={self.y_pred!r}, y_true={self.y_true!r}, features={self.features!r}, "
            f"metrics={tuple(self.metrics)!r})"
        )

    def fit(self, reference: object) -> Self:
        """Train the loss models on a labelled reference and measure its sampling errors.

        Parameters:
            reference: data with the features, the prediction and the true value in every row
                (anything :func:`mlwarden.frames.to_polars` reads), typically the test data.

        Raises:
            ParameterError: a parameter is outside its allowed values.
            InputError: a column is missing, not numeric, or the prediction or true value has
                nulls.
        """
        self.metrics_ = self._check_common()
        check_int(self.max_iter, "max_iter", "DLE", 1)
        features = self._check_features()
        frame = to_polars(reference)
        require_columns(frame, self._roles(features, reference=True), "DLE")
        self._check_reference_size(frame)
        self.features_ = features
        self.categories_ = {
            name: _categories(frame[name]) for name in features if _is_text(frame[name])
        }
        rows = self._rows(frame, reference=True)
        x, error = rows["x"], rows["y"] - rows["pred"]
        folds = KFold(n_splits=self.folds, shuffle=True, random_state=self.random_state)
        splits = list(folds.split(x))
        self.loss_models_ = {}
        worst, warnings = 0.0, []
        for metric in self.metrics_:
            loss = _loss(error, metric)
            scale = float(loss.mean())
            if scale <= 0.0:  # a reference without error: nothing to learn, 0 is the estimate
                self.loss_models_[metric] = None
                continue
            crossed = np.empty_like(loss)
            for train, test in splits:
                crossed[test] = _predict(self._fitted_model(x[train], loss[train]), x[test])
            self.loss_models_[metric] = self._fitted_model(x, loss)
            error_in_bins, chance = reliability(loss, crossed)
            relative, relative_chance = error_in_bins / scale, chance / scale
            worst = max(worst, relative)
            if relative > self.calibration_limit and relative > CHANCE_FACTOR * relative_chance:
                warnings.append(
                    f"{POOR_CALIBRATION}: the loss model for {metric} misjudges the reference's "
                    f"errors: its cross-fitted predictions are off by {relative:.1%} of the mean "
                    f"loss per bin (limit {self.calibration_limit:.0%}, chance level "
                    f"{relative_chance:.1%}). Estimates of {metric} may be biased; give the loss "
                    "model the features that explain where the regressor errs, or more data."
                )
        self.calibration_error_ = worst
        self.fit_warnings_ = tuple(warnings)
        self.support_ = Support.fit(x[:, self._numeric_mask()])
        self._fit_reference(rows)
        return self

    def _check_features(self) -> tuple[str, ...]:
        features = self.features
        if isinstance(features, str) or not isinstance(features, Sequence):
            raise ParameterError(
                "The 'features' parameter of DLE must be a list of column names; got "
                f"{features!r}.",
                parameter="features",
            )
        names = tuple(features)
        if len(set(names)) != len(names) or self.y_pred in names or self.y_true in names:
            raise ParameterError(
                "The 'features' parameter of DLE must name distinct columns other than y_pred "
                f"and y_true (the prediction is added by itself); got {features!r}.",
                parameter="features",
            )
        return names

    def _roles(self, features: Sequence[str], *, reference: bool) -> dict[str, str | None]:
        roles: dict[str, str | None] = {f"a feature (#{i})": f for i, f in enumerate(features)}
        roles["the predictions (y_pred)"] = self.y_pred
        if reference:
            roles["the true values (y_true)"] = self.y_true
        return roles

    def _loss_model(self) -> HistGradientBoostingRegressor:
        mask = [name in self.categories_ for name in self.features_] + [False]
        # Losses are positive, noisy and vary by factors between regions: a Poisson loss (log
        # link) fits their mean multiplicatively, and small trees with large leaves steadily.
        return HistGradientBoostingRegressor(
            loss="poisson",
            max_iter=self.max_iter,
            max_leaf_nodes=15,
            min_samples_leaf=50,
            early_stopping=True,
            categorical_features=np.array(mask) if any(mask) else None,
            random_state=self.random_state,
        )

    def _fitted_model(
        self, x: NDArray[np.float64], loss: NDArray[np.float64]
    ) -> HistGradientBoostingRegressor | None:
        """A loss model fitted on these rows, or None when they have no loss at all."""
        if not np.any(loss > 0.0):
            return None
        with _one_thread():
            return self._loss_model().fit(x, loss)

    def _numeric_mask(self) -> NDArray[np.bool_]:
        return np.array([name not in self.categories_ for name in self.features_] + [True])

    def _rows(self, frame: pl.DataFrame, *, reference: bool) -> RowArrays:
        require_columns(frame, self._roles(self.features_, reference=reference), "DLE")
        columns: list[NDArray[np.float64]] = []
        unseen = np.zeros(frame.height, dtype=bool)
        for name in self.features_:
            if name in self.categories_:
                codes, new = _codes(frame[name], self.categories_[name])
                columns.append(codes)
                unseen |= new
            else:
                columns.append(numeric_column(frame, name, "a feature", nulls=True))
        pred = numeric_column(frame, self.y_pred, "the predictions (y_pred)")
        columns.append(pred)
        if self.y_true in frame.columns:
            role = "the true values (y_true)"
            y = numeric_column(frame, self.y_true, role, nulls=not reference)
        else:
            y = np.full(frame.height, np.nan)
        x = np.column_stack(columns).reshape(frame.height, len(columns))
        arrays: dict[str, NDArray[Any]] = {"x": x, "pred": pred, "y": y, "unseen": unseen}
        if not reference:
            for metric, model in self.loss_models_.items():
                arrays[f"hat_{metric}"] = _predict(model, x)
        return RowArrays(arrays, ~np.isnan(y))

    def _outside_support(self, rows: RowArrays) -> NDArray[np.bool_]:
        outside = self.support_.outside(rows["x"][:, self._numeric_mask()])
        combined: NDArray[np.bool_] = np.logical_or(outside, rows["unseen"])
        return combined

    def _realized(
        self, rows: RowArrays, starts: NDArray[np.int64]
    ) -> dict[str, NDArray[np.float64]]:
        error = rows["y"] - rows["pred"]
        return {metric: _summary(_loss(error, metric), starts, metric) for metric in self.metrics_}

    def _estimated(
        self, rows: RowArrays, starts: NDArray[np.int64], *, use_labels: bool
    ) -> dict[str, NDArray[np.float64]]:
        error = rows["y"] - rows["pred"]
        out = {}
        for metric in self.metrics_:
            predicted = rows[f"hat_{metric}"]
            if use_labels:
                predicted = np.where(rows.labelled, _loss(error, metric), predicted)
            out[metric] = _summary(predicted, starts, metric)
        return out


def _is_text(series: pl.Series) -> bool:
    return isinstance(series.dtype, _TEXT_TYPES)


def _categories(series: pl.Series) -> tuple[str, ...]:
    values = series.cast(pl.String).drop_nulls().unique().sort()
    if values.len() > MAX_CATEGORIES:
        raise InputError(
            f"Column '{series.name}' (a feature) has {values.len()} categories in the reference; "
            f"DLE's loss model takes at most {MAX_CATEGORIES}. Group rare categories, or encode "
            "the column as numbers first.",
            column=series.name,
        )
    return tuple(values.to_list())


def _codes(
    series: pl.Series, categories: Sequence[str]
) -> tuple[NDArray[np.float64], NDArray[np.bool_]]:
    """Category codes as floats (NaN for null or unseen), and which rows hold an unseen one."""
    text = series.cast(pl.String)
    codes = text.replace_strict(
        list(categories), list(range(len(categories))), default=None, return_dtype=pl.Float64
    )
    unseen = (text.is_not_null() & codes.is_null()).to_numpy()
    return codes.to_numpy().astype(np.float64, copy=False), unseen


def _loss(error: NDArray[np.float64], metric: str) -> NDArray[np.float64]:
    return np.abs(error) if metric == "mae" else error * error


def _summary(
    loss: NDArray[np.float64], starts: NDArray[np.int64], metric: str
) -> NDArray[np.float64]:
    """MAE (mean absolute error) or RMSE (root of the mean squared error) per window."""
    mean = window_sums(loss, starts) / window_sizes(starts, loss.shape[0])
    return mean if metric == "mae" else np.sqrt(mean)


def _predict(
    model: HistGradientBoostingRegressor | None, x: NDArray[np.float64]
) -> NDArray[np.float64]:
    """The model's predicted loss (0 without a model)."""
    if model is None or x.shape[0] == 0:
        return np.zeros(x.shape[0])
    with _one_thread():
        predicted = model.predict(x)
    return np.maximum(np.asarray(predicted, dtype=np.float64), 0.0)
