"""Domain classifier: can a model tell the current data from the reference, and by which columns?

A gradient-boosted tree classifier is trained to predict "this row is from the current window"
on a seeded sample of both. Its cross-validated ROC AUC is the drift statistic: 0.5 when the two
cannot be told apart, 1.0 when they are fully separated. It sees every change a model could see:
shifted columns, but also changed relations between columns whose own distributions stay put,
which per-column tests miss. The columns that separate the two are ranked by permutation
importance on the held-out folds.

The threshold is calibrated on the reference: the same procedure is run ``calibration_rounds``
times on two random halves of the reference (of up to 5,000 rows each), which gives the AUCs to
expect without drift. Their spread shrinks with the sample sizes like the Mann-Whitney
statistic's, ``sqrt(1/n + 1/m)``, so it is rescaled to the sizes of each evaluated window; the
threshold is never below 0.55, an edge too small to act on.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final

import numpy as np
import polars as pl
from scipy.stats import rankdata

from mlwarden.drift._features import (
    F64,
    FeatureEncoder,
    Intp,
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

__all__ = ["DomainClassifier", "DomainClassifierResult"]

# The smallest threshold: below an AUC of 0.55 the two samples are too alike to act on, however
# large they are (at 50,000 rows a side, noise alone stays below 0.51).
MIN_THRESHOLD: Final = 0.55
# Held-out rows (half of each class, at most) on which column importances are measured.
_IMPORTANCE_ROWS: Final = 4096
# Calibration halves hold at most this many rows: the spread of the AUC without drift scales like
# the Mann-Whitney statistic's, so it is measured on halves this large and rescaled to each
# window, which keeps fitting a large reference to a few seconds.
CALIBRATION_ROWS: Final = 5_000
# A small, deterministic model: separating two samples needs no tuning, and early stopping would
# make the result depend on a random validation split. 64 bins hold the ordinal codes of the
# encoder's default 20 levels (plus "other").
_MODEL: Final[dict[str, Any]] = {
    "max_iter": 50,
    "learning_rate": 0.2,
    "max_leaf_nodes": 15,
    "max_bins": 64,
    "early_stopping": False,
}


@dataclass(frozen=True, slots=True)
class DomainClassifierResult:
    """The outcome of a domain classifier on one window.

    Attributes:
        statistic: the cross-validated ROC AUC of telling current rows from reference rows.
        threshold: the AUC above which the window counts as drifted.
        drifted: ``statistic > threshold``.
        feature_ranking: ``(column, importance)`` pairs, most important first; the importance
            is the drop in held-out AUC when the column's values are shuffled.
        null_mean: the mean AUC without drift, from the reference (None for a given threshold).
        null_std: its standard deviation at this window's sample sizes (None likewise).
        sampled: whether either side was sampled down to ``max_rows`` rows.
        n_reference: reference rows used.
        n_current: current rows used.
        seconds: how long the evaluation took.
        notes: columns that were left out, and why.
    """

    statistic: float
    threshold: float
    drifted: bool
    feature_ranking: tuple[tuple[str, float], ...]
    null_mean: float | None
    null_std: float | None
    sampled: bool
    n_reference: int
    n_current: int
    seconds: float
    notes: tuple[str, ...] = ()

    @property
    def message(self) -> str:
        """One line saying what was found, in plain words."""
        auc, limit = format_pair(self.statistic, self.threshold)
        if not self.drifted:
            return f"Current data cannot be told apart from the reference (AUC {auc} ≤ {limit})."
        top = leading_columns(self.feature_ranking)
        by = f"; mostly by {', '.join(top)}" if top else ""
        return f"Current data can be told apart from the reference (AUC {auc} > {limit}){by}."

    def to_dict(self) -> dict[str, Any]:
        """Plain, JSON-ready form (with the message); :meth:`from_dict` reads it back."""
        return {
            "method": "domain_classifier",
            "statistic": self.statistic,
            "threshold": self.threshold,
            "drifted": self.drifted,
            "feature_ranking": [
                {"column": column, "importance": importance}
                for column, importance in self.feature_ranking
            ],
            "null_mean": self.null_mean,
            "null_std": self.null_std,
            "sampled": self.sampled,
            "n_reference": self.n_reference,
            "n_current": self.n_current,
            "seconds": self.seconds,
            "notes": list(self.notes),
            "message": self.message,
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> DomainClassifierResult:
        """Inverse of :meth:`to_dict`."""
        return cls(
            statistic=float(d["statistic"]),
            threshold=float(d["threshold"]),
            drifted=bool(d["drifted"]),
            feature_ranking=tuple(
                (str(item["column"]), float(item["importance"])) for item in d["feature_ranking"]
            ),
            null_mean=None if d["null_mean"] is None else float(d["null_mean"]),
            null_std=None if d["null_std"] is None else float(d["null_std"]),
            sampled=bool(d["sampled"]),
            n_reference=int(d["n_reference"]),
            n_current=int(d["n_current"]),
            seconds=float(d["seconds"]),
            notes=tuple(str(note) for note in d.get("notes", ())),
        )


class DomainClassifier:
    """Multivariate drift: the cross-validated AUC of a classifier telling current from reference.

    Fit once on the reference (this calibrates the threshold), then evaluate any number of
    windows. Each side is sampled down to ``max_rows`` rows with a seeded sampler; a
    ``HistGradientBoostingClassifier`` is trained with stratified K-fold cross-validation; the
    statistic is the mean held-out ROC AUC. Columns are encoded by
    :class:`~mlwarden.drift._features.FeatureEncoder` (ordinal categories, missing values kept).

    Parameters:
        columns: the columns to compare; ``None`` for every numeric, categorical and boolean
            column that is not an id.
        n_splits: folds of the cross-validation, an int >= 2.
        max_rows: the most rows taken from each side; larger inputs are sampled.
        seed: seeds the samplers, the folds and the model; the same seed gives the same result.
        threshold: an AUC in [0.5, 1] above which to alarm; ``None`` calibrates it on the
            reference as ``max(0.55, mean + 3 std)`` of the AUCs between random halves.
        calibration_rounds: how many pairs of random halves calibrate the threshold, >= 2.

    Attributes (after ``fit``):
        encoder_: the fitted encoder.
        reference_: the encoded reference sample every window is compared with.
        n_reference_rows_: the rows of the whole reference.
        null_mean_, null_std_: mean and standard deviation of the AUC between reference halves
            of ``calibration_rows_`` rows each (None when ``threshold`` is given).

    Example:
        >>> import numpy as np, polars as pl
        >>> rng = np.random.default_rng(0)
        >>> def plant(n, shift=0.0):
        ...     return pl.DataFrame({
        ...         "temperature_c": rng.normal(80 + shift, 2, n),
        ...         "pressure_bar": rng.normal(5, 0.5, n),
        ...     })
        >>> dc = DomainClassifier(n_splits=3, calibration_rounds=3).fit(plant(400))
        >>> dc.evaluate(plant(200)).drifted
        False
        >>> result = dc.evaluate(plant(200, shift=3.0))
        >>> result.drifted, result.feature_ranking[0][0]
        (True, 'temperature_c')
    """

    def __init__(
        self,
        columns: Sequence[str] | None = None,
        n_splits: int = 5,
        max_rows: int = 50_000,
        seed: int = 0,
        threshold: float | None = None,
        calibration_rounds: int = 10,
    ) -> None:
        self.columns = columns
        self.n_splits = n_splits
        self.max_rows = max_rows
        self.seed = seed
        self.threshold = threshold
        self.calibration_rounds = calibration_rounds

    @property
    def min_rows(self) -> int:
        """The fewest rows a window needs: two per fold."""
        return 2 * self.n_splits

    def fit(self, reference: object) -> DomainClassifier:
        """Encode and sample the reference; calibrate the threshold unless one was given.

        Parameters:
            reference: the reference data, in any form :func:`mlwarden.frames.to_polars`
                accepts.

        Raises:
            InputError: no usable column, or too few rows to calibrate.
            ParameterError: a parameter is out of range.
        """
        self._check_parameters()
        frame = to_polars(reference)
        calibrate = self.threshold is None
        needed = 2 * self.min_rows if calibrate else self.min_rows
        if frame.height < needed:
            why = (
                " (two halves of 2 × n_splits rows, to calibrate the threshold)"
                if calibrate
                else ""
            )
            raise InputError(
                f"DomainClassifier needs at least {needed} reference rows{why}; got "
                f"{frame.height}. Give a larger reference, or fewer n_splits."
            )
        encoder = FeatureEncoder(self.columns).fit(frame)
        rng = np.random.default_rng(self.seed)
        pool_rows = min(frame.height, max(self.max_rows, 2 * CALIBRATION_ROWS if calibrate else 0))
        pool = encoder.transform(_take(frame, _sample(frame.height, pool_rows, rng)), one_hot=False)
        self.encoder_ = encoder
        self.reference_ = pool[: self.max_rows]
        self.n_reference_rows_ = frame.height
        self.null_mean_: float | None = None
        self.null_std_: float | None = None
        self.calibration_rows_ = min(frame.height // 2, self.max_rows, CALIBRATION_ROWS)
        if calibrate:
            half = self.calibration_rows_
            aucs = []
            for round_ in range(self.calibration_rounds):
                rows = rng.permutation(pool.shape[0])[: 2 * half]
                auc, _ = self._cross_validate(
                    pool[rows[:half]], pool[rows[half:]], self.seed + 1 + round_, rank=False
                )
                aucs.append(auc)
            self.null_mean_ = float(np.mean(aucs))
            self.null_std_ = float(np.std(aucs, ddof=1))
        return self

    def evaluate(self, current: object) -> DomainClassifierResult:
        """Compare one window with the reference.

        Parameters:
            current: the window, in any form :func:`mlwarden.frames.to_polars` accepts, with
                every compared column of the same kind as in the reference.

        Raises:
            InputError: a compared column is missing or of another kind, or the window has fewer
                than ``min_rows`` rows.
        """
        check_fitted(self, "reference_")
        start = time.perf_counter()
        frame = self.encoder_.select(current)
        if frame.height < self.min_rows:
            raise InputError(
                f"DomainClassifier needs at least {self.min_rows} rows in the current data "
                f"(2 × n_splits); got {frame.height}. Evaluate a longer window."
            )
        rng = np.random.default_rng(self.seed)
        rows = _sample(frame.height, self.max_rows, rng)
        current_matrix = self.encoder_.transform(_take(frame, rows), one_hot=False)
        auc, drops = self._cross_validate(self.reference_, current_matrix, self.seed, rank=True)
        assert drops is not None
        n_reference, n_current = self.reference_.shape[0], current_matrix.shape[0]
        null_mean, null_std, threshold = self._threshold(n_reference, n_current)
        ranking = sorted(
            zip(self.encoder_.columns_, (float(d) for d in drops), strict=True),
            key=lambda pair: (-pair[1], pair[0]),
        )
        return DomainClassifierResult(
            statistic=auc,
            threshold=threshold,
            drifted=auc > threshold,
            feature_ranking=tuple(ranking),
            null_mean=null_mean,
            null_std=null_std,
            sampled=frame.height > self.max_rows or self.n_reference_rows_ > self.max_rows,
            n_reference=n_reference,
            n_current=n_current,
            seconds=time.perf_counter() - start,
            notes=self.encoder_.notes_,
        )

    def _threshold(
        self, n_reference: int, n_current: int
    ) -> tuple[float | None, float | None, float]:
        """Null mean and spread at these sample sizes, and the threshold they give."""
        if self.threshold is not None:
            return None, None, float(self.threshold)
        assert self.null_mean_ is not None
        assert self.null_std_ is not None
        calibrated = 2.0 / self.calibration_rows_
        std = self.null_std_ * math.sqrt((1 / n_reference + 1 / n_current) / calibrated)
        return self.null_mean_, std, max(MIN_THRESHOLD, self.null_mean_ + 3.0 * std)

    def _cross_validate(
        self, reference: F64, current: F64, seed: int, *, rank: bool
    ) -> tuple[float, F64 | None]:
        """Mean held-out AUC of telling ``current`` from ``reference``, and column importances."""
        from sklearn.ensemble import HistGradientBoostingClassifier
        from sklearn.model_selection import StratifiedKFold

        features = np.vstack([reference, current])
        labels = np.repeat(np.array([False, True]), [reference.shape[0], current.shape[0]])
        categorical = self.encoder_.categorical_mask()
        folds = StratifiedKFold(n_splits=self.n_splits, shuffle=True, random_state=seed)
        rng = np.random.default_rng(seed)
        aucs: list[float] = []
        drops: list[F64] = []
        with single_threaded():
            for train, test in folds.split(features, labels):
                model = HistGradientBoostingClassifier(
                    **_MODEL, categorical_features=categorical, random_state=seed
                ).fit(features[train], labels[train])
                scores = model.decision_function(features[test])
                aucs.append(float(_auc(scores[np.newaxis, :], labels[test])[0]))
                if rank:
                    drops.append(_permutation_drops(model, features[test], labels[test], rng))
        importances = np.mean(drops, axis=0) if rank else None
        return float(np.mean(aucs)), importances

    def _check_parameters(self) -> None:
        owner = "DomainClassifier"
        check_columns(self.columns, owner)
        check_int(self.n_splits, "n_splits", owner, 2)
        check_int(self.max_rows, "max_rows", owner, 2 * self.n_splits)
        check_int(self.seed, "seed", owner, 0, 2**31 - 1)
        check_int(self.calibration_rounds, "calibration_rounds", owner, 2)
        threshold = self.threshold
        if threshold is not None and (
            isinstance(threshold, bool)
            or not isinstance(threshold, int | float)
            or not 0.5 <= threshold <= 1.0
        ):
            raise ParameterError(
                f"The 'threshold' parameter of {owner} must be an AUC in [0.5, 1], or None to "
                f"calibrate it on the reference; got {threshold!r}.",
                parameter="threshold",
            )

    def __repr__(self) -> str:
        return (
            f"DomainClassifier(columns={self.columns!r}, n_splits={self.n_splits!r}, "
            f"max_rows={self.max_rows!r}, seed={self.seed!r}, threshold={self.threshold!r}, "
            f"calibration_rounds={self.calibration_rounds!r})"
        )


def _sample(n: int, cap: int, rng: np.random.Generator) -> Intp:
    """At most ``cap`` of ``n`` row positions, drawn without replacement, in random order."""
    return rng.permutation(n)[:cap].astype(np.intp)


def _take(frame: pl.DataFrame, rows: Intp) -> pl.DataFrame:
    """The rows of ``frame`` at ``rows``."""
    return frame.select(pl.all().gather(rows))


def _auc(scores: F64, labels: npt.NDArray[np.bool_]) -> F64:
    """ROC AUC of each row of ``scores`` (ties count half), for the same boolean labels."""
    positives = int(labels.sum())
    negatives = labels.size - positives
    ranks = rankdata(scores, axis=1)
    wins = ranks[:, labels].sum(axis=1) - positives * (positives + 1) / 2
    return np.asarray(wins / (positives * negatives), dtype=np.float64)


def _permutation_drops(
    model: Any, features: F64, labels: npt.NDArray[np.bool_], rng: np.random.Generator
) -> F64:
    """The drop in held-out AUC when each column is shuffled, on a capped, balanced subset."""
    keep = []
    for value in (False, True):
        rows = np.flatnonzero(labels == value)
        keep.append(rng.permutation(rows)[: _IMPORTANCE_ROWS // 2])
    subset = np.sort(np.concatenate(keep))
    x, y = features[subset], labels[subset]
    n, width = x.shape
    shuffled = np.repeat(x[np.newaxis], width, axis=0)
    order = rng.permutation(n)
    columns = np.arange(width)
    shuffled[columns, :, columns] = x[order].T
    scores = model.decision_function(np.vstack([x, shuffled.reshape(-1, width)]))
    aucs = _auc(scores.reshape(width + 1, n), y)
    return np.asarray(aucs[0] - aucs[1:], dtype=np.float64)
