"""Performance without labels: the result type, the confidence band and the applicability checks.

An estimator (:class:`~mlwarden.performance.cbpe.CBPE` for classifiers,
:class:`~mlwarden.performance.dle.DLE` for regressors) is fitted once on a reference with labels
and then estimates any number of analysis batches, window by window. Everything they share lives
here:

* :class:`EstimatedPerformance`, the result: one :class:`MetricEstimate` per window and metric,
  with its confidence band, its alert bounds, the realized value where labels exist and the
  applicability warnings;
* the sampling error of a metric, measured once on the reference by a seeded bootstrap of
  ``SAMPLING_ROWS`` rows and scaled to a window of ``n`` rows by ``sqrt(SAMPLING_ROWS / n)``;
* the checks that say when an estimate cannot be trusted, each a warning string that starts with
  its code: ``poor_calibration``, ``out_of_support``, ``concept_drift``, ``small_window`` (and
  ``no_window`` for rows without a timestamp).

How a window is estimated, whatever the estimator:

* ``estimated`` is the best estimate of the metric on *all* the window's rows: where a row has a
  label the label is used, elsewhere the estimator's expectation. With no labels it is the pure
  estimate; with every label it equals ``realized``.
* ``lower``/``upper`` is ``estimated`` plus or minus ``sigmas`` sampling errors of a window of
  ``n`` rows, shrunk by ``sqrt(1 - n_labelled / n)`` since labelled rows are known exactly.
* ``alert_lower``/``alert_upper`` is the reference's realized metric plus or minus ``sigmas``
  sampling errors of a window of ``n`` rows; ``alert`` is true when ``estimated`` is outside.
* ``realized`` is the metric on the window's labelled rows (None without labels).
* ``concept_drift`` is raised when, on the labelled rows, the realized metric and the pure
  estimate for *those same rows* differ by more than ``sigmas`` sampling errors of
  ``n_labelled`` rows (at least ``min_labels`` of them). Comparing on the same rows keeps the
  check fair when labels arrive for some rows only, as long as which rows get labels does not
  depend on the outcome itself.
"""

from __future__ import annotations

import difflib
import math
from abc import ABC, abstractmethod
from dataclasses import asdict, dataclass
from functools import partial
from typing import TYPE_CHECKING, Any, ClassVar, Final, NamedTuple

import numpy as np
import polars as pl
from scipy import stats

from mlwarden.exceptions import InputError, NotFittedError, ParameterError, check_int
from mlwarden.frames import to_polars
from mlwarden.schema import unknown_column_message
from mlwarden.windows import WINDOW, WINDOW_END, WINDOW_START, WindowSpec, assign_windows

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping, Sequence
    from pathlib import Path
    from typing import Self

    from numpy.typing import NDArray

    from mlwarden.alerting.null import NullModel

__all__ = [
    "CONCEPT_DRIFT",
    "NO_WINDOW",
    "OUT_OF_SUPPORT",
    "POOR_CALIBRATION",
    "SAMPLING_DRAWS",
    "SAMPLING_ROWS",
    "SMALL_WINDOW",
    "EstimatedPerformance",
    "MetricEstimate",
    "NotFittedError",
    "PerformanceEstimator",
    "RowArrays",
    "Support",
    "numeric_column",
    "probability_column",
    "reliability",
    "require_columns",
    "row_means",
    "safe_divide",
    "window_sizes",
    "window_sums",
]

POOR_CALIBRATION: Final = "poor_calibration"
OUT_OF_SUPPORT: Final = "out_of_support"
CONCEPT_DRIFT: Final = "concept_drift"
SMALL_WINDOW: Final = "small_window"
NO_WINDOW: Final = "no_window"

# The sampling error is the standard deviation of the realized metric over SAMPLING_DRAWS
# bootstrap samples of SAMPLING_ROWS reference rows (fewer when the reference is smaller),
# scaled like 1/sqrt(n): 200 draws put it within about 5 % of its true value.
SAMPLING_ROWS: Final = 2000
SAMPLING_DRAWS: Final = 200
MIN_REFERENCE_ROWS: Final = 100
RELIABILITY_BINS: Final = 10
# A check on the reference warns only when its statistic exceeds both the limit and this many
# times what chance alone would give, so that a small reference does not warn for noise.
CHANCE_FACTOR: Final = 3.0
# Windows are processed in blocks of about this many rows (see _in_blocks).
BLOCK_ROWS: Final = 1 << 15
_SUPPORT_BINS: Final = 20
_SUPPORT_ROWS_PER_BIN: Final = 100

_SCHEMA: Final[dict[str, pl.DataType]] = {
    "window": pl.Int64(),
    "n": pl.Int64(),
    "metric": pl.String(),
    "estimated": pl.Float64(),
    "lower": pl.Float64(),
    "upper": pl.Float64(),
    "alert_lower": pl.Float64(),
    "alert_upper": pl.Float64(),
    "alert": pl.Boolean(),
    "realized": pl.Float64(),
    "n_labelled": pl.Int64(),
    "warnings": pl.List(pl.String()),
}
_COLUMNS: Final = (
    "window",
    "window_start",
    "window_end",
    "n",
    "metric",
    "estimated",
    "lower",
    "upper",
    "alert_lower",
    "alert_upper",
    "alert",
    "realized",
    "n_labelled",
    "warnings",
)


@dataclass(frozen=True, slots=True)
class MetricEstimate:
    """The estimate of one metric in one window.

    Attributes:
        window: the window number (0, 1, ... in time or row order).
        window_start: the window's first timestamp, or its first row offset.
        window_end: the window's end (exclusive): a timestamp, or a row offset.
        n: the rows in the window.
        metric: the metric's name (``"roc_auc"``, ``"mae"``, ...).
        estimated: the estimate on all ``n`` rows (labels used where present); NaN where the
            metric is undefined (precision without a predicted positive).
        lower: the lower end of the confidence band.
        upper: the upper end of the confidence band.
        alert_lower: the lowest value the reference makes expected for a window of ``n`` rows.
        alert_upper: the highest such value.
        alert: True when ``estimated`` is outside ``[alert_lower, alert_upper]``.
        realized: the metric on the window's labelled rows, None without (or with too few
            distinct) labels.
        n_labelled: the rows with a label.
        warnings: every applicability warning for this estimate (global ones included), each
            starting with its code, e.g. ``"small_window: ..."``.
    """

    window: int
    window_start: Any
    window_end: Any
    n: int
    metric: str
    estimated: float
    lower: float
    upper: float
    alert_lower: float
    alert_upper: float
    alert: bool
    realized: float | None
    n_labelled: int
    warnings: tuple[str, ...] = ()

    @property
    def codes(self) -> tuple[str, ...]:
        """The codes of the warnings, e.g. ``("small_window",)``."""
        return tuple(warning.split(":", 1)[0] for warning in self.warnings)

    def to_dict(self) -> dict[str, Any]:
        """Plain data: NaN becomes None, the warnings a list."""
        out = {key: _none_if_nan(value) for key, value in asdict(self).items()}
        out["warnings"] = list(self.warnings)
        return out


@dataclass(frozen=True, slots=True)
class EstimatedPerformance:
    """Estimated performance per window, with bands, alert bounds and applicability warnings.

    An analysis with no rows gives a result with no estimates, whose :meth:`to_df` has the
    columns below and no rows.

    Attributes:
        method: the estimator's key, ``"cbpe"`` or ``"dle"``.
        metrics: the metrics estimated, in order.
        estimates: one :class:`MetricEstimate` per window and metric, window by window.
        warnings: the warnings that concern the whole result (poor calibration on the reference,
            rows without a window); they are repeated in each estimate's ``warnings``.

    Example:
        >>> result = EstimatedPerformance("cbpe", ("accuracy",), ())
        >>> result.to_df().columns[:6]
        ['window', 'window_start', 'window_end', 'n', 'metric', 'estimated']
    """

    method: str
    metrics: tuple[str, ...]
    estimates: tuple[MetricEstimate, ...]
    warnings: tuple[str, ...] = ()

    @property
    def alerts(self) -> tuple[MetricEstimate, ...]:
        """The estimates outside their alert bounds."""
        return tuple(estimate for estimate in self.estimates if estimate.alert)

    def to_df(self) -> pl.DataFrame:
        """One row per window and metric; NaN values are nulls.

        Columns: window, window_start, window_end, n, metric, estimated, lower, upper,
        alert_lower, alert_upper, alert, realized, n_labelled, warnings (a list of strings).
        """
        columns: dict[str, list[Any]] = {name: [] for name in _COLUMNS}
        for estimate in self.estimates:
            for name in _COLUMNS:
                value = getattr(estimate, name)
                columns[name].append(list(value) if name == "warnings" else _none_if_nan(value))
        return pl.DataFrame(
            {
                name: pl.Series(name, values, dtype=_SCHEMA.get(name))
                for name, values in columns.items()
            }
        )

    def to_html(self, path: str | Path) -> Path:
        """Write one self-contained HTML page: each metric per window with its band, alert
        bounds, the realized value where labels exist, and alerts marked."""
        from mlwarden.report import html
        from mlwarden.report.series import Panel, series_figure, series_html

        table = self.to_df()
        x = "window_start" if table.height and table["window_start"].null_count() == 0 else "window"
        panels = []
        for name in self.metrics:
            part = table.filter(pl.col("metric") == name)
            n_alerts = int(part["alert"].sum()) if part.height else 0
            panels.append(
                Panel(
                    title=name,
                    subtitle=f"estimated by {self.method.upper()}; outside the expected range in "
                    f"{n_alerts} of {part.height} windows",
                    figure=series_figure(
                        part,
                        x=x,
                        y="estimated",
                        y_label=f"estimated {name}",
                        lower="alert_lower",
                        upper="alert_upper",
                        band=("lower", "upper"),
                        alert="alert",
                        second=("realized", f"realized {name}"),
                    ),
                )
            )
        n_alerts = len(self.alerts)
        verdict = (
            f"{n_alerts} estimates outside their expected range."
            if n_alerts
            else "Every estimate is within its expected range."
        )
        if self.warnings:
            verdict += " Warnings: " + ", ".join(self.warnings) + "."
        shown = table.with_columns(pl.col("warnings").list.join(", "))
        page = series_html(
            "Estimated performance",
            f"{len(self.metrics)} metrics",
            verdict,
            n_alerts > 0,
            panels,
            shown,
        )
        return html.write(path, page)

    def to_dict(self) -> dict[str, Any]:
        """Plain data (NaN becomes None), e.g. for JSON."""
        return {
            "method": self.method,
            "metrics": list(self.metrics),
            "warnings": list(self.warnings),
            "estimates": [estimate.to_dict() for estimate in self.estimates],
        }


@dataclass(frozen=True, slots=True, eq=False)
class RowArrays:
    """The NumPy arrays an estimator works on, one entry per row, and which rows have a label.

    Parameters:
        arrays: named arrays whose first axis is the rows.
        labelled: True for the rows whose label is known.
    """

    arrays: dict[str, NDArray[Any]]
    labelled: NDArray[np.bool_]

    def __len__(self) -> int:
        return int(self.labelled.shape[0])

    def __getitem__(self, name: str) -> NDArray[Any]:
        return self.arrays[name]

    def take(self, index: slice | NDArray[Any]) -> RowArrays:
        """The same arrays for the rows selected by a slice, a mask or row numbers."""
        return RowArrays({k: v[index] for k, v in self.arrays.items()}, self.labelled[index])


@dataclass(frozen=True, slots=True, eq=False)
class Support:
    """Where the reference has data, per numeric column: its range, and its non-empty bins.

    A value is outside the support when it is below the reference's minimum, above its maximum,
    or in one of equal-width bins over that range that holds no reference row. NaN is never
    outside (missing values are another check's business).

    Example:
        >>> import numpy as np
        >>> support = Support.fit(np.linspace(0.0, 1.0, 1000)[:, None])
        >>> support.outside(np.array([[0.5], [1.5], [-0.1]])).tolist()
        [False, True, True]
    """

    low: NDArray[np.float64]
    high: NDArray[np.float64]
    occupied: NDArray[np.bool_]

    @classmethod
    def fit(cls, values: NDArray[np.float64]) -> Support:
        """Learn the support of the columns of a 2-D array of reference values."""
        bins = int(np.clip(values.shape[0] // _SUPPORT_ROWS_PER_BIN, 1, _SUPPORT_BINS))
        columns = values.shape[1]
        low, high = np.full(columns, np.nan), np.full(columns, np.nan)
        occupied = np.zeros((columns, bins), dtype=bool)
        for column in range(columns):
            x = values[:, column]
            x = x[np.isfinite(x)]
            if x.size == 0:
                continue
            low[column], high[column] = x.min(), x.max()
            index = _bin_index(x, low[column], high[column], bins)
            occupied[column, index] = True
        return cls(low, high, occupied)

    def outside(self, values: NDArray[np.float64]) -> NDArray[np.bool_]:
        """True for the rows with a value outside the support in any column."""
        out = np.zeros(values.shape[0], dtype=bool)
        bins = self.occupied.shape[1]
        for column in range(values.shape[1]):
            x = values[:, column]
            low, high = self.low[column], self.high[column]
            if math.isnan(low):
                out |= ~np.isnan(x)
                continue
            known = ~np.isnan(x)
            beyond = known & ((x < low) | (x > high))
            index = _bin_index(np.where(beyond, np.nan, x), low, high, bins)
            empty = (index >= 0) & ~self.occupied[column][np.maximum(index, 0)]
            out |= beyond | empty
        return out


def reliability(
    outcome: NDArray[np.float64], predicted: NDArray[np.float64], bins: int = RELIABILITY_BINS
) -> tuple[float, float]:
    """Expected calibration error of ``predicted`` against ``outcome``, and its chance level.

    The rows are cut into ``bins`` equal-mass bins of ``predicted``; the error is the
    row-weighted mean of ``|mean outcome - mean predicted|`` over the bins. The chance level is
    what a perfect prediction would show from sampling alone (``sqrt(2 / pi)`` standard errors of
    each bin's mean outcome, weighted the same way).

    Parameters:
        outcome: what happened (0/1 for a class, a loss for a regression).
        predicted: its prediction (a probability, a predicted loss).
        bins: the number of equal-mass bins.

    Example:
        >>> import numpy as np
        >>> rng = np.random.default_rng(0)
        >>> p = rng.uniform(size=20_000)
        >>> y = (rng.uniform(size=20_000) < p).astype(float)
        >>> error, chance = reliability(y, p)
        >>> error < 0.02, round(reliability(y, p**3)[0], 2)
        (True, 0.25)
    """
    n = outcome.shape[0]
    if n == 0:
        return math.nan, math.nan
    order = np.argsort(predicted, kind="stable")
    starts = np.unique(np.linspace(0, n, bins + 1).astype(np.int64)[:-1])
    counts = np.diff(np.append(starts, n)).astype(np.float64)
    y, p = outcome[order], predicted[order]
    mean_y = np.add.reduceat(y, starts) / counts
    mean_p = np.add.reduceat(p, starts) / counts
    variance = np.maximum(np.add.reduceat(y * y, starts) / counts - mean_y**2, 0.0)
    weights = counts / n
    error = float(np.sum(weights * np.abs(mean_y - mean_p)))
    chance = float(np.sum(weights * np.sqrt(2.0 / math.pi * variance / counts)))
    return error, chance


class PerformanceEstimator(ABC):
    """Fit once on a reference with labels, then estimate metrics per window without them.

    Subclasses implement :meth:`fit` (which ends with :meth:`_fit_reference`), read their
    columns into :class:`RowArrays`, and compute their metrics from those arrays; windowing,
    bands, alert bounds, realized values and the applicability checks are shared. As in
    scikit-learn, ``__init__`` only stores parameters and learned state ends with ``_``.
    """

    method: ClassVar[str]
    available_metrics: ClassVar[tuple[str, ...]]
    # The range a metric can take: bands and alert bounds are clipped to it.
    domain: ClassVar[tuple[float, float]]

    metrics: Sequence[str]
    folds: int
    sigmas: float
    min_window_rows: int
    calibration_limit: float
    support_limit: float
    min_labels: int
    random_state: int

    metrics_: tuple[str, ...]
    reference_metrics_: dict[str, float]
    sampling_std_: dict[str, float]
    sampling_rows_: int
    support_: Support
    calibration_error_: float
    fit_warnings_: tuple[str, ...]
    n_reference_: int
    window_std_: dict[str, float]
    window_rows_: float

    @abstractmethod
    def fit(self, reference: object) -> Self:
        """Learn from a reference with labels; returns the estimator itself."""

    @abstractmethod
    def _rows(self, frame: pl.DataFrame, *, reference: bool) -> RowArrays:
        """Validate and read the columns of a frame (after fitting, expectations included)."""

    @abstractmethod
    def _estimated(
        self, rows: RowArrays, starts: NDArray[np.int64], *, use_labels: bool
    ) -> dict[str, NDArray[np.float64]]:
        """Estimate every metric in each window, from labels where known if ``use_labels``.

        The windows are contiguous, non-empty runs of rows beginning at ``starts``; the result
        holds one value per window for each metric.
        """

    @abstractmethod
    def _realized(
        self, rows: RowArrays, starts: NDArray[np.int64]
    ) -> dict[str, NDArray[np.float64]]:
        """Compute every metric in each window from the labels (every row labelled)."""

    @abstractmethod
    def _outside_support(self, rows: RowArrays) -> NDArray[np.bool_]:
        """True for the rows whose inputs lie outside what the reference covered."""

    # -- shared parts of fit --------------------------------------------------------------------

    @property
    def _name(self) -> str:
        return type(self).__name__

    def _check_common(self) -> tuple[str, ...]:
        """Validate the shared parameters; return the metrics as a tuple."""
        metrics = (self.metrics,) if isinstance(self.metrics, str) else tuple(self.metrics)
        if not metrics:
            raise ParameterError(
                f"The 'metrics' parameter of {self._name} must name at least one metric; "
                f"available: {', '.join(self.available_metrics)}.",
                parameter="metrics",
            )
        for metric in metrics:
            if metric not in self.available_metrics:
                hint = difflib.get_close_matches(str(metric), self.available_metrics, n=1)
                suggestion = f" Did you mean '{hint[0]}'?" if hint else ""
                raise ParameterError(
                    f"'{metric}' is not a metric {self._name} estimates. Available: "
                    f"{', '.join(self.available_metrics)}.{suggestion}",
                    parameter="metrics",
                )
        if len(set(metrics)) != len(metrics):
            raise ParameterError(
                f"The 'metrics' parameter of {self._name} names a metric twice: {metrics!r}.",
                parameter="metrics",
            )
        check_int(self.folds, "folds", self._name, 2, 20)
        check_int(self.min_window_rows, "min_window_rows", self._name, 1)
        check_int(self.min_labels, "min_labels", self._name, 1)
        check_int(self.random_state, "random_state", self._name, 0)
        _check_number(self.sigmas, "sigmas", self._name, 0.0, math.inf)
        _check_number(self.calibration_limit, "calibration_limit", self._name, 0.0, math.inf)
        _check_number(self.support_limit, "support_limit", self._name, 0.0, 1.0)
        return metrics

    def _fit_reference(self, rows: RowArrays) -> None:
        """Measure the reference's realized metrics and their sampling error (seeded bootstrap)."""
        n = len(rows)
        whole = _in_blocks(self._realized, rows, np.zeros(1, dtype=np.int64))
        self.reference_metrics_ = {metric: float(values[0]) for metric, values in whole.items()}
        size = min(n, SAMPLING_ROWS)
        rng = np.random.default_rng(self.random_state)
        # All bootstrap samples at once, each one window of ``size`` rows.
        draws = rows.take(rng.integers(0, n, SAMPLING_DRAWS * size))
        starts = np.arange(SAMPLING_DRAWS, dtype=np.int64) * size
        values = _in_blocks(self._realized, draws, starts)
        self.sampling_std_ = {metric: _finite_std(values[metric]) for metric in self.metrics_}
        self.sampling_rows_ = size
        self.n_reference_ = n

    def _check_reference_size(self, frame: pl.DataFrame) -> None:
        if frame.height < MIN_REFERENCE_ROWS:
            raise InputError(
                f"{self._name} needs a reference of at least {MIN_REFERENCE_ROWS} labelled rows "
                f"to calibrate and to measure sampling error; got {frame.height}. Use more of "
                "the model's validation or test data."
            )

    # -- estimate -------------------------------------------------------------------------------

    def estimate(
        self,
        analysis: object,
        *,
        window: str | int | WindowSpec,
        timestamp: str | None = None,
    ) -> EstimatedPerformance:
        """Estimate every metric in every window of ``analysis``.

        Parameters:
            analysis: the data to judge (anything :func:`mlwarden.frames.to_polars` reads), with
                the same columns as the reference; its label column may be absent or partly
                null, and the labels it has are used.
            window: a number of rows per window (``5000``), a duration (``"1d"``, with
                ``timestamp``) or a :class:`~mlwarden.windows.WindowSpec`.
            timestamp: the column of event times, for windows given as a duration. Rows with a
                null timestamp belong to no window: they are left out and counted in a
                ``no_window`` warning.

        Returns:
            One estimate per window and metric; no estimates when ``analysis`` has no rows.

        Raises:
            NotFittedError: the estimator was not fitted.
            InputError: a column is missing or holds values of the wrong kind.
        """
        if not hasattr(self, "n_reference_"):
            raise NotFittedError(
                f"This {self._name} is not fitted yet; call fit(reference) with labelled "
                "reference data first."
            )
        spec = WindowSpec.parse(window, timestamp=timestamp)
        windowed = assign_windows(to_polars(analysis), spec)
        warnings = list(self.fit_warnings_)
        unassigned = windowed[WINDOW].null_count()
        if unassigned:
            windowed = windowed.filter(pl.col(WINDOW).is_not_null())
            warnings.append(
                f"{NO_WINDOW}: {unassigned} rows have a null '{spec.timestamp}' and belong to no "
                "window; they were left out."
            )
        if spec.every is not None:
            windowed = windowed.sort(WINDOW, maintain_order=True)
        rows = self._rows(windowed, reference=False)
        if len(rows) == 0:
            return EstimatedPerformance(self.method, self.metrics_, (), tuple(warnings))
        # The rows are in window order: each window starts where the window number changes.
        number = windowed[WINDOW].to_numpy()
        starts = np.flatnonzero(np.concatenate(([True], number[1:] != number[:-1])))
        counts = np.diff(np.append(starts, number.size))
        summary = windowed.select(WINDOW, WINDOW_START, WINDOW_END)[starts].rows()
        outside = _in_blocks(self._outside_counts, rows, starts)["outside"] / counts
        n_labelled = np.add.reduceat(rows.labelled.astype(np.int64), starts)
        use_labels = bool(n_labelled.any())
        estimated = _in_blocks(partial(self._estimated, use_labels=use_labels), rows, starts)
        realized, pure = self._on_labelled_rows(rows, n_labelled)
        estimates: list[MetricEstimate] = []
        for position, (window_number, start, end) in enumerate(summary):
            n, n_lab = int(counts[position]), int(n_labelled[position])
            context = _Window(window_number, start, end, n, n_lab)
            window_warnings = warnings + self._window_warnings(n, float(outside[position]))
            estimates.extend(
                self._metric_estimate(
                    context,
                    metric,
                    float(estimated[metric][position]),
                    float(realized[metric][position]),
                    float(pure[metric][position]),
                    window_warnings,
                )
                for metric in self.metrics_
            )
        return EstimatedPerformance(self.method, self.metrics_, tuple(estimates), tuple(warnings))

    def _on_labelled_rows(
        self, rows: RowArrays, n_labelled: NDArray[np.int64]
    ) -> tuple[dict[str, NDArray[np.float64]], dict[str, NDArray[np.float64]]]:
        """Per window, the realized metrics of the labelled rows and their pure estimates."""
        realized = {metric: np.full(n_labelled.size, np.nan) for metric in self.metrics_}
        pure = {metric: np.full(n_labelled.size, np.nan) for metric in self.metrics_}
        with_labels = n_labelled > 0
        if with_labels.any():
            labelled = rows.take(rows.labelled)
            starts = np.cumsum(n_labelled[with_labels]) - n_labelled[with_labels]
            real = _in_blocks(self._realized, labelled, starts)
            expected = _in_blocks(partial(self._estimated, use_labels=False), labelled, starts)
            for metric in self.metrics_:
                realized[metric][with_labels] = real[metric]
                pure[metric][with_labels] = expected[metric]
        return realized, pure

    def _outside_counts(
        self, rows: RowArrays, starts: NDArray[np.int64]
    ) -> dict[str, NDArray[np.float64]]:
        return {"outside": window_sums(self._outside_support(rows), starts)}

    def _window_warnings(self, n: int, outside: float) -> list[str]:
        found = []
        if n < self.min_window_rows:
            found.append(
                f"{SMALL_WINDOW}: the window has {n} rows, fewer than min_window_rows="
                f"{self.min_window_rows}; its estimate is noisy and its band wide."
            )
        if outside > self.support_limit:
            found.append(
                f"{OUT_OF_SUPPORT}: {outside:.1%} of the rows lie outside what the reference "
                f"covered (limit {self.support_limit:.1%}); the estimate extrapolates there. "
                "Refit on a reference that covers the current data."
            )
        return found

    def _metric_estimate(
        self,
        window: _Window,
        metric: str,
        value: float,
        realized: float,
        pure: float,
        warnings: list[str],
    ) -> MetricEstimate:
        """One window's estimate with its band, alert bounds and concept-drift check."""
        n, n_labelled = window.n, window.n_labelled
        error = self.sampling_std_[metric] * math.sqrt(self.sampling_rows_ / n)
        half = self.sigmas * error * math.sqrt(1.0 - n_labelled / n)
        center = self.reference_metrics_[metric]
        low, high = self.domain
        spread = max(error, self._window_error(metric, n))
        alert_lower = _clip(center - self.sigmas * spread, low, high)
        alert_upper = _clip(center + self.sigmas * spread, low, high)
        drift = self._concept_drift(metric, n_labelled, realized, pure)
        return MetricEstimate(
            window=window.number,
            window_start=window.start,
            window_end=window.end,
            n=n,
            metric=metric,
            estimated=value,
            lower=_clip(value - half, low, high),
            upper=_clip(value + half, low, high),
            alert_lower=alert_lower,
            alert_upper=alert_upper,
            alert=not math.isnan(value) and not alert_lower <= value <= alert_upper,
            realized=None if math.isnan(realized) else realized,
            n_labelled=n_labelled,
            warnings=(*warnings, drift) if drift else tuple(warnings),
        )

    def null_model(self, metric: str, n: int, n_labelled: int = 0) -> NullModel | None:
        """How the window's value of ``metric`` behaves when nothing changed, rows taken as
        independent: centred on the reference's realized value, with the sampling error of
        ``n`` rows; the bad side is down for a metric where higher is better (an AUC at or
        below 0.5 is no better than chance, so no bound goes there). None for a window of
        fewer than ``min_window_rows`` rows: too few to judge."""
        from mlwarden.alerting.null import NullModel
        from mlwarden.performance.metrics import metric as registered

        if not hasattr(self, "n_reference_") or n < max(1, self.min_window_rows):
            return None  # a window too small to judge (its estimate warns small_window)
        error = self.sampling_std_[metric] * math.sqrt(self.sampling_rows_ / n)
        center = self.reference_metrics_[metric]
        if not (error > 0 and math.isfinite(error) and math.isfinite(center)):
            return None
        if self.domain[1] == math.inf:
            higher_is_better = registered(metric, "regression").higher_is_better
        elif getattr(self, "task", "binary") == "multiclass":
            higher_is_better = registered(metric, "multiclass").higher_is_better
        else:
            higher_is_better = registered(metric, "binary").higher_is_better
        low, high = self.domain
        if metric == "roc_auc":
            low = 0.5
        return NullModel(
            "gauss",
            side="lower" if higher_is_better else "upper",
            center=center,
            scale=error,
            low=low,
            high=high,
            labelled=min(1.0, n_labelled / n),
        )

    def _window_error(self, metric: str, n: int) -> float:
        """The spread of the metric between reference windows, for a window of ``n`` rows (0
        until :meth:`calibrate_windows`); a shorter window varies more, as ``1 / sqrt(n)``."""
        spread = getattr(self, "window_std_", {}).get(metric)
        if spread is None or not math.isfinite(spread):
            return 0.0
        return float(spread * math.sqrt(max(1.0, self.window_rows_ / n)))

    def calibrate_windows(
        self,
        reference: object,
        *,
        window: str | int | WindowSpec,
        timestamp: str | None = None,
        min_windows: int = 5,
    ) -> Self:
        """Widen the alert bounds to the reference's own variation between windows.

        The sampling error measured by :meth:`fit` treats rows as independent. Plant data is
        not: consecutive rows share a batch, a recipe, a shift, so a metric varies more from
        one window to the next than independent rows would make it. Cut the labelled
        ``reference`` into the windows that will be monitored; the standard deviation of the
        realized metric across them (the upper end of its 95 % confidence interval, scaled to a
        window's size) becomes a floor of the error behind the alert bounds. Without
        ``min_windows`` windows of at least half the usual size nothing changes.

        Example:
            >>> import numpy as np, polars as pl
            >>> rng = np.random.default_rng(0)
            >>> p = np.repeat(rng.uniform(0.05, 0.95, 40), 200)  # 40 runs of similar rows
            >>> frame = pl.DataFrame({"score": p, "y": (rng.uniform(size=p.size) < p).astype(int)})
            >>> from mlwarden.performance.cbpe import CBPE
            >>> cbpe = CBPE(y_score="score", y_true="y", metrics=("accuracy",)).fit(frame)
            >>> before = cbpe.estimate(frame[:400], window=400).estimates[0]
            >>> after = cbpe.calibrate_windows(frame, window=400).estimate(frame[:400], window=400)
            >>> after.estimates[0].alert_lower < before.alert_lower
            True
        """
        if not hasattr(self, "n_reference_"):
            raise NotFittedError(f"Fit this {self._name} before calibrating its windows.")
        result = self.estimate(reference, window=window, timestamp=timestamp).to_df()
        sizes = result.group_by("window").agg(pl.col("n").first())["n"]
        full = float(sizes.median() or 0)  # type: ignore[arg-type]
        usable = result.filter(pl.col("n") >= 0.5 * full, pl.col("realized").is_not_null())
        spreads: dict[str, float] = {}
        for metric in self.metrics_:
            values = usable.filter(pl.col("metric") == metric)["realized"]
            k = values.len()
            if k >= min_windows:
                # A spread seen in few windows is itself uncertain: take the upper end of its
                # 95 % confidence interval, so that a short reference widens the bounds.
                upper = math.sqrt((k - 1) / float(stats.chi2.ppf(0.05, k - 1)))
                spread = float(np.std(values.to_numpy(), ddof=1))
                spreads[metric] = spread * upper
        self.window_std_ = spreads
        self.window_rows_ = full
        return self

    def _concept_drift(
        self, metric: str, n_labelled: int, real: float, expected: float
    ) -> str | None:
        if n_labelled < self.min_labels:
            return None
        error = self.sampling_std_[metric] * math.sqrt(self.sampling_rows_ / n_labelled)
        if math.isnan(real) or math.isnan(expected) or math.isnan(error):
            return None
        if abs(real - expected) <= self.sigmas * error:
            return None
        return (
            f"{CONCEPT_DRIFT}: on the {n_labelled} labelled rows the realized {metric} is "
            f"{real:.4g} but the estimate for the same rows is {expected:.4g}, more than "
            f"{self.sigmas:g} sampling errors ({error:.3g}) apart: the relation between the "
            "model's outputs and the outcomes has changed since the reference, so estimates "
            "cannot be trusted. Retrain, or refit on recent labelled data."
        )


def _in_blocks(
    compute: Callable[[RowArrays, NDArray[np.int64]], dict[str, NDArray[np.float64]]],
    rows: RowArrays,
    starts: NDArray[np.int64],
) -> dict[str, NDArray[np.float64]]:
    """Run a per-window computation over blocks of whole windows of about BLOCK_ROWS rows.

    Each block's arrays stay in the processor's cache through the dozen passes a metric makes
    over them, which is 2-3x faster than passes over all rows at once.
    """
    n = len(rows)
    block = starts // BLOCK_ROWS
    cuts = np.flatnonzero(np.diff(block)) + 1
    parts = []
    for first, last in zip(np.concatenate(([0], cuts)), np.append(cuts, starts.size), strict=True):
        begin = int(starts[first])
        end = int(starts[last]) if last < starts.size else n
        parts.append(compute(rows.take(slice(begin, end)), starts[first:last] - begin))
    return {metric: np.concatenate([part[metric] for part in parts]) for metric in parts[0]}


class _Window(NamedTuple):
    number: int
    start: Any
    end: Any
    n: int
    n_labelled: int


# -- input checks shared by the estimators ------------------------------------------------------


def require_columns(frame: pl.DataFrame, roles: Mapping[str, str | None], owner: str) -> None:
    """Raise an InputError naming the first column (by its role) that ``frame`` lacks."""
    for role, name in roles.items():
        if name is not None and name not in frame.columns:
            raise InputError(
                f"{unknown_column_message(name, frame.columns)} {owner} reads {role} from it.",
                column=name,
            )


def numeric_column(
    frame: pl.DataFrame, name: str, role: str, *, nulls: bool = False
) -> NDArray[np.float64]:
    """Column ``name`` as float64, or an InputError if it is not numeric (or has nulls/NaN).

    With ``nulls=True`` null values become NaN instead of raising.
    """
    series = frame[name]
    if not (series.dtype.is_numeric() or series.dtype == pl.Boolean or series.dtype == pl.Null):
        raise InputError(
            f"Column '{name}' ({role}) must hold numbers; it holds {series.dtype}. Cast it to a "
            "numeric type first.",
            column=name,
        )
    values = series.cast(pl.Float64).to_numpy().astype(np.float64, copy=False)
    if nulls:
        return values
    missing = int(np.count_nonzero(np.isnan(values)))
    if missing:
        raise InputError(
            f"Column '{name}' ({role}) has {missing} null or NaN values of {len(values)}; "
            "expected a value in every row. Drop or fill those rows first.",
            column=name,
        )
    return values


def probability_column(frame: pl.DataFrame, name: str, role: str) -> NDArray[np.float64]:
    """Column ``name`` as float64 probabilities, or an InputError counting values outside [0, 1]."""
    values = numeric_column(frame, name, role)
    bad = np.flatnonzero((values < 0.0) | (values > 1.0))
    if bad.size:
        raise InputError(
            f"Column '{name}' ({role}) must hold probabilities in [0, 1]; {bad.size} of "
            f"{len(values)} values are outside (e.g. {float(values[bad[0]])!r} in row "
            f"{bad[0]}). Pass the model's probability (predict_proba), not a raw margin or logit.",
            column=name,
        )
    return values


def _bin_index(
    values: NDArray[np.float64], low: float, high: float, bins: int
) -> NDArray[np.int64]:
    """Equal-width bin of each value in [low, high]; -1 for NaN."""
    width = high - low
    scaled = (values - low) / width * bins if width > 0 else np.zeros_like(values)
    index = np.clip(np.floor(np.nan_to_num(scaled, nan=-1.0)), -1, bins - 1).astype(np.int64)
    index[np.isnan(values)] = -1
    return index


def _check_number(value: object, name: str, owner: str, low: float, high: float) -> float:
    ok = isinstance(value, int | float) and not isinstance(value, bool)
    if not ok or not low <= float(value) <= high or math.isnan(float(value)):  # type: ignore[arg-type]
        allowed = f">= {low:g}" if math.isinf(high) else f"in [{low:g}, {high:g}]"
        raise ParameterError(
            f"The '{name}' parameter of {owner} must be a number {allowed}; got {value!r}.",
            parameter=name,
        )
    return float(value)  # type: ignore[arg-type]


def _finite_std(values: NDArray[np.float64]) -> float:
    finite = values[np.isfinite(values)]
    return float(np.std(finite, ddof=1)) if finite.size > 1 else math.nan


def _clip(value: float, low: float, high: float) -> float:
    return value if math.isnan(value) else min(max(value, low), high)


def _none_if_nan(value: Any) -> Any:
    return None if isinstance(value, float) and math.isnan(value) else value


def safe_divide(numerator: NDArray[Any], denominator: NDArray[Any]) -> NDArray[np.float64]:
    """``numerator / denominator``, NaN where the denominator is 0 (no warning)."""
    out = np.full(np.broadcast(numerator, denominator).shape, np.nan)
    np.divide(numerator, denominator, out=out, where=denominator != 0)
    return out


def window_sums(values: NDArray[Any], starts: NDArray[np.int64]) -> NDArray[np.float64]:
    """The sum of ``values`` (along the first axis) over each window starting at ``starts``."""
    return np.add.reduceat(np.asarray(values, dtype=np.float64), starts, axis=0)


def window_sizes(starts: NDArray[np.int64], n: int) -> NDArray[np.float64]:
    """The rows in each window, from the window starts and the total number of rows."""
    return np.diff(np.append(starts, n)).astype(np.float64)


def row_means(values: NDArray[np.float64]) -> NDArray[np.float64]:
    """The mean of each row's non-NaN values, NaN for a row without any (no warning)."""
    defined = ~np.isnan(values)
    return safe_divide(np.where(defined, values, 0.0).sum(axis=1), defined.sum(axis=1))
