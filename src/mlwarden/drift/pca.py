"""PCA reconstruction error: do the rows still follow the reference's relations between columns?

Principal component analysis, fitted on the reference, keeps the few directions that explain most
of its variance (``variance``, 65% by default). A row that follows the reference's structure is
close to its projection on those directions; when the relations between columns change -- two
sensors that used to move together stop doing so -- rows fall off the subspace and their
reconstruction error grows, even when every column on its own looks as before. The statistic of a
window is the mean reconstruction error of its rows.

Bounds are calibrated on the reference: it is cut into chunks of ``chunk_size`` consecutive rows
and the bounds are the mean ± 3 standard deviations of the chunk statistics. Pass the reference
in time order, so that the bounds include the normal variation between windows. A window smaller
than a chunk is noisier, so its bounds widen by ``sqrt(chunk_size / n)``; a larger window keeps
the chunk bounds, because variation between periods does not shrink with window size.

A shift along the kept directions is reconstructed, not flagged: pair this method with the
per-column tests or the :class:`~mlwarden.drift.domain_classifier.DomainClassifier`.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final

import numpy as np

from mlwarden.alerting.null import NullModel
from mlwarden.drift._features import (
    F64,
    FeatureEncoder,
    check_columns,
    check_fitted,
    format_pair,
    leading_columns,
    single_threaded,
)
from mlwarden.exceptions import InputError, ParameterError, check_int
from mlwarden.frames import to_polars

if TYPE_CHECKING:
    from collections.abc import Sequence

    import numpy.typing as npt

__all__ = ["PCAReconstruction", "PCAResult"]

# The fewest rows in a window or a reference chunk: fewer make the mean error too noisy to read.
MIN_ROWS: Final = 10
# Chunks the reference is cut into when chunk_size is not given.
_DEFAULT_CHUNKS: Final = 10
# Blocks of the reference scored out of sample when calibrating.
_HELD_OUT_BLOCKS: Final = 10


@dataclass(frozen=True, slots=True)
class PCAResult:
    """The outcome of PCA reconstruction on one window.

    Attributes:
        statistic: the mean reconstruction error of the window's rows (in standardized units).
        lower: below this the window counts as drifted (its rows vary less than usual).
        upper: above this the window counts as drifted (its rows leave the reference structure).
        drifted: ``statistic`` is outside ``[lower, upper]``.
        n: rows in the window.
        n_components: principal components kept.
        per_column_contribution: ``(column, value)`` pairs, largest first: how much the column's
            mean squared reconstruction error grew over the reference's (summed over the one-hot
            columns of a categorical column).
        notes: columns that were left out, and why.
    """

    statistic: float
    lower: float
    upper: float
    drifted: bool
    n: int
    n_components: int
    per_column_contribution: tuple[tuple[str, float], ...]
    notes: tuple[str, ...] = ()

    @property
    def message(self) -> str:
        """One line saying what was found, in plain words."""
        if self.statistic > self.upper:
            error, limit = format_pair(self.statistic, self.upper)
            top = leading_columns(self.per_column_contribution)
            by = f"; mostly {', '.join(top)}" if top else ""
            return (
                "Rows no longer follow the reference's relations between columns "
                f"(reconstruction error {error} > {limit}){by}."
            )
        if self.statistic < self.lower:
            error, limit = format_pair(self.statistic, self.lower)
            return (
                f"Rows vary less than in the reference (reconstruction error {error} < {limit}); "
                "look for stuck or constant signals."
            )
        error, low = format_pair(self.statistic, self.lower)
        _, high = format_pair(self.statistic, self.upper)
        return (
            "Rows follow the reference's relations between columns "
            f"(reconstruction error {error}, expected {low} to {high})."
        )

    def to_dict(self) -> dict[str, Any]:
        """Plain, JSON-ready form (with the message); :meth:`from_dict` reads it back."""
        return {
            "method": "pca_reconstruction",
            "statistic": self.statistic,
            "lower": self.lower,
            "upper": self.upper,
            "drifted": self.drifted,
            "n": self.n,
            "n_components": self.n_components,
            "per_column_contribution": [
                {"column": column, "contribution": value}
                for column, value in self.per_column_contribution
            ],
            "notes": list(self.notes),
            "message": self.message,
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> PCAResult:
        """Inverse of :meth:`to_dict`."""
        return cls(
            statistic=float(d["statistic"]),
            lower=float(d["lower"]),
            upper=float(d["upper"]),
            drifted=bool(d["drifted"]),
            n=int(d["n"]),
            n_components=int(d["n_components"]),
            per_column_contribution=tuple(
                (str(item["column"]), float(item["contribution"]))
                for item in d["per_column_contribution"]
            ),
            notes=tuple(str(note) for note in d.get("notes", ())),
        )


class PCAReconstruction:
    """Multivariate drift: the mean PCA reconstruction error of a window, with calibrated bounds.

    Fit once on the reference, then evaluate any number of windows. Columns are encoded by
    :class:`~mlwarden.drift._features.FeatureEncoder`: numeric columns standardized (missing
    values imputed with the reference median, plus a missing indicator), categorical columns
    one-hot (left as 0/1, so that a categorical column weighs no more than a numeric one).

    Parameters:
        columns: the columns to compare (at least 2 usable ones); ``None`` for every numeric,
            categorical and boolean column that is not an id.
        variance: the share of the reference variance the kept components explain, in (0, 1).
        chunk_size: rows per reference chunk when calibrating the bounds, >= 10; ``None`` cuts
            the reference into 10 chunks. Set it to the size of the windows you will evaluate.
        seed: the random state of sklearn's PCA (it matters only for its randomized solver, on
            very wide data).
        threshold: ``None`` calibrates the bounds on the reference; a number is an upper bound
            (no lower one); a pair ``(lower, upper)`` gives both.

    Attributes (after ``fit``):
        encoder_: the fitted encoder.
        pca_: the sklearn PCA fitted on the encoded reference (all components).
        n_components_: the components kept.
        chunk_mean_, chunk_std_: mean and standard deviation of the chunk statistics.
        chunk_rows_: the mean number of rows per chunk.

    Example:
        >>> import numpy as np, polars as pl
        >>> rng = np.random.default_rng(0)
        >>> def line(n, coupled=True):
        ...     speed = rng.normal(50, 5, n)
        ...     noise = rng.normal(0, 1, n)
        ...     current = 0.4 * speed + noise if coupled else rng.normal(20, 2.2, n)
        ...     return pl.DataFrame({"speed_rpm": speed, "current_a": current})
        >>> pca = PCAReconstruction(chunk_size=200).fit(line(2000))
        >>> pca.evaluate(line(200)).drifted
        False
        >>> result = pca.evaluate(line(200, coupled=False))
        >>> result.drifted, sorted(column for column, _ in result.per_column_contribution)
        (True, ['current_a', 'speed_rpm'])
    """

    def __init__(
        self,
        columns: Sequence[str] | None = None,
        variance: float = 0.65,
        chunk_size: int | None = None,
        seed: int = 0,
        threshold: float | tuple[float, float] | None = None,
    ) -> None:
        self.columns = columns
        self.variance = variance
        self.chunk_size = chunk_size
        self.seed = seed
        self.threshold = threshold

    def fit(self, reference: object) -> PCAReconstruction:
        """Fit the encoding and the PCA on the reference, and calibrate the bounds.

        Parameters:
            reference: the reference data, in any form :func:`mlwarden.frames.to_polars`
                accepts, preferably in time order.

        Raises:
            InputError: fewer than 2 usable columns, no variation, or too few rows for 2 chunks.
            ParameterError: a parameter is out of range.
        """
        from sklearn.decomposition import PCA

        self._check_parameters()
        frame = to_polars(reference)
        rows = frame.height
        chunk = self.chunk_size if self.chunk_size is not None else rows // _DEFAULT_CHUNKS
        chunk = max(chunk, MIN_ROWS)
        if rows < 2 * chunk:
            raise InputError(
                f"PCA reconstruction needs at least 2 reference chunks of {chunk} rows "
                f"({2 * chunk} rows) to calibrate its bounds; got {rows}. Give a larger "
                "reference or a smaller chunk_size."
            )
        encoder = FeatureEncoder(self.columns).fit(frame)
        if len(encoder.columns_) < 2:
            used = ", ".join(repr(name) for name in encoder.columns_)
            skipped = (" " + " ".join(encoder.notes_)) if encoder.notes_ else ""
            raise InputError(
                "PCA reconstruction needs at least 2 usable columns, because it measures how "
                f"columns relate to each other; got 1 ({used}).{skipped} For one column, use a "
                "per-column drift test.",
                column=encoder.columns_[0],
            )
        matrix = encoder.transform(frame, one_hot=True)
        if not np.any(np.ptp(matrix, axis=0) > 0):
            raise InputError(
                "PCA reconstruction needs columns that vary in the reference; every compared "
                f"column is constant ({', '.join(encoder.columns_)})."
            )
        with single_threaded():
            pca = PCA(random_state=self.seed).fit(matrix)
        explained = np.cumsum(pca.explained_variance_ratio_)
        # At least one component is dropped: with none left out, every row is rebuilt exactly.
        kept = min(int(np.searchsorted(explained, self.variance)) + 1, matrix.shape[1] - 1)
        self.encoder_ = encoder
        self.pca_ = pca
        self.n_components_ = max(kept, 1)
        self.column_starts_ = _starts(encoder.feature_sources(one_hot=True))
        # Column contributions are compared under the one PCA that scores the windows: PCAs
        # fitted on parts of the reference may keep other directions of near-equal variance.
        with single_threaded():
            self.reference_contribution_ = self._errors(matrix)[1].mean(axis=0)
            errors = self._held_out_errors(matrix)
        chunks = rows // chunk
        edges = np.linspace(0, rows, chunks + 1).astype(np.intp)
        means = np.add.reduceat(errors, edges[:-1]) / np.diff(edges)
        self.chunk_rows_ = rows / chunks
        self.chunk_mean_ = float(means.mean())
        self.row_std_ = float(errors.std(ddof=1))
        # A few chunks can understate the spread; rows drawn independently give its floor.
        self.chunk_std_ = max(
            float(means.std(ddof=1)), float(errors.std(ddof=1)) / math.sqrt(self.chunk_rows_)
        )
        return self

    def evaluate(self, current: object) -> PCAResult:
        """Compare one window with the reference.

        Parameters:
            current: the window, in any form :func:`mlwarden.frames.to_polars` accepts, with
                every compared column of the same kind as in the reference.

        Raises:
            InputError: a compared column is missing or of another kind, or the window has fewer
                than 10 rows.
        """
        check_fitted(self, "pca_")
        matrix = self.encoder_.transform(current, one_hot=True)
        rows = matrix.shape[0]
        if rows < MIN_ROWS:
            raise InputError(
                f"PCA reconstruction needs at least {MIN_ROWS} rows in the current data; got "
                f"{rows}. Evaluate a longer window."
            )
        with single_threaded():
            errors, squared = self._errors(matrix)
        statistic = float(errors.mean())
        lower, upper = self._bounds(rows)
        growth = squared.mean(axis=0) - self.reference_contribution_
        ranking = sorted(
            zip(self.encoder_.columns_, (float(value) for value in growth), strict=True),
            key=lambda pair: (-pair[1], pair[0]),
        )
        return PCAResult(
            statistic=statistic,
            lower=lower,
            upper=upper,
            drifted=not lower <= statistic <= upper,
            n=rows,
            n_components=self.n_components_,
            per_column_contribution=tuple(ranking),
            notes=self.encoder_.notes_,
        )

    def null_model(self, rows: int) -> NullModel:
        """How a window's mean reconstruction error behaves without drift, rows taken as
        independent: centred on the reference's held-out error, with its standard error."""
        check_fitted(self, "pca_")
        row_std = getattr(self, "row_std_", self.chunk_std_ * math.sqrt(self.chunk_rows_))
        scale = max(row_std, 1e-12) / math.sqrt(max(rows, 1))
        return NullModel("gauss", center=self.chunk_mean_, scale=scale, high=math.inf)

    def _errors(self, matrix: F64, pca: Any = None) -> tuple[F64, F64]:
        """Per row: the reconstruction error, and the squared error summed per source column."""
        pca = self.pca_ if pca is None else pca
        centered = matrix - pca.mean_
        components = pca.components_[: self.n_components_]
        residual = centered - (centered @ components.T) @ components
        squared = residual**2
        errors = np.sqrt(squared.sum(axis=1))
        return errors, np.add.reduceat(squared, self.column_starts_, axis=1)

    def _held_out_errors(self, matrix: F64) -> F64:
        """The reconstruction error of each reference row under a PCA fitted without its block.

        Rows a PCA was fitted on are reconstructed a little better than new rows, which would
        centre the bounds too low; the reference is cut into consecutive blocks, and each block
        is scored by a PCA fitted on the others.
        """
        from sklearn.decomposition import PCA

        rows = matrix.shape[0]
        edges = np.linspace(0, rows, _HELD_OUT_BLOCKS + 1).astype(np.intp)
        errors = np.empty(rows, dtype=np.float64)
        for start, stop in itertools.pairwise(edges):
            rest = np.concatenate([matrix[:start], matrix[stop:]])
            pca = PCA(random_state=self.seed).fit(rest)
            errors[start:stop] = self._errors(matrix[start:stop], pca)[0]
        return errors

    def _bounds(self, rows: int) -> tuple[float, float]:
        """Lower and upper bounds for a window of ``rows`` rows."""
        threshold = self.threshold
        if isinstance(threshold, tuple):
            return float(threshold[0]), float(threshold[1])
        if threshold is not None:
            return 0.0, float(threshold)
        widen = math.sqrt(self.chunk_rows_ / min(rows, self.chunk_rows_))
        half_width = 3.0 * self.chunk_std_ * widen
        return max(0.0, self.chunk_mean_ - half_width), self.chunk_mean_ + half_width

    def _check_parameters(self) -> None:
        owner = "PCAReconstruction"
        check_columns(self.columns, owner)
        variance = self.variance
        if isinstance(variance, bool) or not isinstance(variance, int | float):
            variance = -1.0
        if not 0 < variance < 1:
            raise ParameterError(
                f"The 'variance' parameter of {owner} must be a share in (0, 1), e.g. 0.65; "
                f"got {self.variance!r}.",
                parameter="variance",
            )
        if self.chunk_size is not None:
            check_int(self.chunk_size, "chunk_size", owner, MIN_ROWS)
        check_int(self.seed, "seed", owner, 0, 2**31 - 1)
        if self.threshold is not None and not _valid_threshold(self.threshold):
            raise ParameterError(
                f"The 'threshold' parameter of {owner} must be an upper bound > 0, a pair "
                f"(lower, upper) with 0 <= lower < upper, or None to calibrate the bounds on "
                f"the reference; got {self.threshold!r}.",
                parameter="threshold",
            )

    def __repr__(self) -> str:
        return (
            f"PCAReconstruction(columns={self.columns!r}, variance={self.variance!r}, "
            f"chunk_size={self.chunk_size!r}, seed={self.seed!r}, threshold={self.threshold!r})"
        )


def _starts(sources: npt.NDArray[np.intp]) -> npt.NDArray[np.intp]:
    """Where each source column's block of encoded columns starts (blocks are contiguous)."""
    return np.flatnonzero(np.r_[True, sources[1:] != sources[:-1]]).astype(np.intp)


def _valid_threshold(threshold: object) -> bool:
    """Whether ``threshold`` is a number > 0 or a pair ``(lower, upper)``, 0 <= lower < upper."""

    def number(value: object) -> bool:
        return isinstance(value, int | float) and not isinstance(value, bool)

    if isinstance(threshold, tuple):
        return (
            len(threshold) == 2
            and number(threshold[0])
            and number(threshold[1])
            and 0 <= threshold[0] < threshold[1]
        )
    return number(threshold) and threshold > 0  # type: ignore[operator]
