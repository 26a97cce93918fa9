"""Explanation drift: has the model started to decide *differently*, not only on other data?

A window's per-prediction attributions are compared with those of the version's reference
sample (kept at registration) in three ways, each a metric with an alert bound:

* ``explanation_shift`` per feature — the Kolmogorov–Smirnov distance between the feature's
  attributions in the window and in the reference (for a version with an alert budget, evidence
  the diagnosis weighs rather than an alarm of its own: it moves with the feature's values,
  whose drift alarms already);
* ``importance_rank`` — the Spearman correlation between the reference's ranking of features by
  mean absolute attribution and the window's;
* ``explanation_auc`` — the cross-validated ROC AUC of a linear discriminant telling window
  attributions from reference ones (an explanation-shift detector).

The rows of a plant's window are not independent draws: readings minutes apart resemble each
other, so textbook critical values (which assume independent rows) would alarm on every window.
The bounds are therefore calibrated on the reference itself, as the drift thresholds are: its
attributions are computed on whole windows of the reference (``__block``, see
``Registry.register``), each window is compared with the others as a production window would
be, and the bound is the mean of what they show plus ``SIGMAS`` standard deviations (minus,
for the rank correlation), rescaled to each window's size by ``sqrt(1/n + 1/m)``. A reference
without blocks gives the values without bounds.

Example:
    >>> import numpy as np, polars as pl
    >>> rng = np.random.default_rng(0)
    >>> def attributions(n, scales, shift=0.0):
    ...     return pl.DataFrame(
    ...         {f: rng.normal(shift * (f == "c"), s, n) for f, s in zip("abc", scales)}
    ...     )
    >>> reference = attributions(2000, (1.0, 0.5, 0.2)).with_columns(
    ...     __block=pl.int_range(2000) // 100)
    >>> same, moved = attributions(300, (1.0, 0.5, 0.2)), attributions(300, (0.1, 0.5, 0.2), 1.5)
    >>> null = calibrate(reference, ["a", "b", "c"])
    >>> [m.alert for m in explanation_drift(reference, same, ["a", "b", "c"], null)[0]]
    [False, False, False, False, False]
    >>> [(m.name, m.column) for m in explanation_drift(reference, moved, ["a", "b", "c"], null)[0]
    ...  if m.alert]  # doctest: +NORMALIZE_WHITESPACE
    [('explanation_shift', 'a'), ('explanation_shift', 'c'), ('importance_rank', ''),
     ('explanation_auc', '')]
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final

import numpy as np
import polars as pl

from mlwarden.alerting.null import NullModel
from mlwarden.store.metadata import MetricValue

if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence

    from numpy.typing import NDArray

__all__ = ["MIN_ROWS", "Calibration", "calibrate", "explanation_drift", "replay"]

SHIFT: Final = "explanation_shift"
RANK: Final = "importance_rank"
AUC: Final = "explanation_auc"
# Fewer explained predictions in a window than this give no explanation-drift metrics.
MIN_ROWS: Final = 20
_FOLDS: Final = 3
_MAX_ROWS: Final = 5_000
BLOCK: Final = "__block"
# Standard deviations of the reference windows' statistics between their mean and a bound, and
# the fewest reference windows that calibrate.
SIGMAS: Final = 6.0
MIN_BLOCKS: Final = 6


@dataclass(frozen=True)
class Calibration:
    """What the reference's own windows show without a shift, each statistic divided by
    ``sqrt(1/n + 1/m)``: per feature the bound on the KS distance, the bound on the AUC's
    edge over 0.5, and the lower bound of the rank correlation (unscaled)."""

    ks: dict[str, float]
    auc: float | None
    rank: float | None


def calibrate(reference: pl.DataFrame, features: Sequence[str]) -> Calibration | None:
    """Calibrate the bounds on the reference's windows (None without enough of them)."""
    features = [f for f in features if f in reference.columns]
    if BLOCK not in reference.columns or not features:
        return None
    blocks = reference[BLOCK].to_numpy()
    data = _matrix(reference, features, cap=False)
    full_importance = np.abs(data).mean(axis=0)
    ks: list[NDArray[np.float64]] = []
    edges: list[float] = []
    ranks: list[float] = []
    for block in np.unique(blocks):  # one per reference window, twenty or so
        inside = blocks == block
        a, b = data[~inside], data[inside]
        if b.shape[0] < MIN_ROWS or a.shape[0] < MIN_ROWS:
            continue
        scale = math.sqrt(1 / a.shape[0] + 1 / b.shape[0])
        ks.append(_ks(a, b) / scale)
        auc = _shift_auc(a, b, 0)
        if auc is not None:
            edges.append((auc - 0.5) / scale)
        if len(features) >= 3:
            ranks.append(_spearman(full_importance, np.abs(b).mean(axis=0)))
    if len(ks) < MIN_BLOCKS:
        return None
    null = np.vstack(ks)
    bound = null.mean(axis=0) + SIGMAS * null.std(axis=0, ddof=1)
    return Calibration(
        ks=dict(zip(features, bound.tolist(), strict=True)),
        auc=float(np.mean(edges) + SIGMAS * np.std(edges, ddof=1)) if len(edges) > 2 else None,
        rank=float(np.mean(ranks) - SIGMAS * np.std(ranks, ddof=1)) if len(ranks) > 2 else None,
    )


def replay(
    reference: pl.DataFrame,
    features: Sequence[str],
    folds: Mapping[int, int] | None = None,
) -> list[tuple[int, list[MetricValue]]]:
    """Each window (``__block``) of the reference's attributions judged against the others by
    :func:`explanation_drift`, as a production window is judged against the reference: what
    the alert calibration learns the explanation metrics' usual values from. With ``folds``
    (block → fold), a block is judged against the blocks of other folds only, as the rest of a
    version's replay is cross-fitted (its next-door windows resemble it most)."""
    features = [f for f in features if f in reference.columns]
    if BLOCK not in reference.columns or not features:
        return []
    out = []
    blocks = reference[BLOCK]
    fold = None
    if folds is not None:
        fold = blocks.replace_strict(dict(folds), default=-1, return_dtype=pl.Int64)
    for block in blocks.unique().sort().to_list():  # one per reference window, twenty or so
        inside = blocks == block
        rest = ~inside if fold is None else fold != (folds or {}).get(int(block), -1)
        metrics = explanation_drift(reference.filter(rest), reference.filter(inside), features)
        if metrics[0]:
            out.append((int(block), metrics[0]))
    return out


def explanation_drift(
    reference: pl.DataFrame,
    current: pl.DataFrame,
    features: Sequence[str],
    calibration: Calibration | None = None,
    *,
    seed: int = 0,
) -> tuple[list[MetricValue], dict[str, Any]]:
    """The explanation-drift metrics of ``current`` attributions against ``reference`` ones
    (one column per feature in both), bounded by ``calibration`` (:func:`calibrate`; none:
    values only), and the details: per feature its mean absolute attribution in both and its
    KS distance, largest shift first."""
    features = [f for f in features if f in reference.columns and f in current.columns]
    if current.height < MIN_ROWS or reference.height < MIN_ROWS or not features:
        return [], {}
    ref = _matrix(reference, features)
    cur = _matrix(current, features)
    n, m = ref.shape[0], cur.shape[0]
    metrics: list[MetricValue] = []
    distances = _ks(ref, cur)
    scale = math.sqrt(1 / n + 1 / m)
    for feature, distance in zip(features, distances, strict=True):  # per feature, not per row
        upper = None
        if calibration is not None and feature in calibration.ks:
            upper = min(1.0, calibration.ks[feature] * scale)
        # Evidence, not an alarm of its own under an alert budget (no null model): a feature's
        # attributions move with the feature's values, whose drift alarms already, and twenty
        # reference windows cannot calibrate one more bound per feature.
        metrics.append(MetricValue(SHIFT, float(distance), upper=upper, column=feature))
    ref_importance = np.abs(ref).mean(axis=0)
    cur_importance = np.abs(cur).mean(axis=0)
    if len(features) >= 3:
        rho = _spearman(ref_importance, cur_importance)
        lower = None
        if calibration is not None and calibration.rank is not None:
            lower = calibration.rank
        # No sampling theory for a rank correlation of importances: a nominal unit scale,
        # which the calibration on the reference's own windows rescales.
        rank_null = NullModel("gauss", side="lower", center=1.0, low=-1.0, high=1.0)
        metrics.append(MetricValue(RANK, rho, lower=lower, null=rank_null))
    auc = _shift_auc(ref, cur, seed)
    if auc is not None:
        upper = None
        if calibration is not None and calibration.auc is not None:
            upper = min(1.0, max(0.55, 0.5 + calibration.auc * scale))
        # the Mann-Whitney standard error of an AUC of 0.5, on the normal quantile scale
        # (where an AUC of 1 lies infinitely far)
        se = math.sqrt((n + m + 1) / (12.0 * n * m)) * math.sqrt(2.0 * math.pi)
        auc_null = NullModel("gauss", center=0.5, scale=se, probit=True)
        metrics.append(MetricValue(AUC, auc, upper=upper, null=auc_null))
    order = np.argsort(-distances)
    details = {
        "rows": m,
        "reference_rows": n,
        "features": [
            {
                "feature": features[j],
                "shift": float(distances[j]),
                "mean_abs": float(cur_importance[j]),
                "reference_mean_abs": float(ref_importance[j]),
            }
            for j in order
        ],
    }
    return metrics, details


def _matrix(
    frame: pl.DataFrame, features: Sequence[str], *, cap: bool = True
) -> NDArray[np.float64]:
    data = frame.select(pl.col(f).cast(pl.Float64).fill_null(0.0) for f in features).to_numpy()
    if cap and data.shape[0] > _MAX_ROWS:
        rows = np.random.default_rng(0).choice(data.shape[0], _MAX_ROWS, replace=False)
        data = data[np.sort(rows)]
    return np.ascontiguousarray(data, dtype=np.float64)


def _ks(a: NDArray[np.float64], b: NDArray[np.float64]) -> NDArray[np.float64]:
    """The two-sample KS distance of every column at once (sorted columns, one searchsorted
    per column)."""
    a_sorted = np.sort(a, axis=0)
    b_sorted = np.sort(b, axis=0)
    out = np.empty(a.shape[1])
    for j in range(a.shape[1]):  # per feature
        points = np.concatenate([a_sorted[:, j], b_sorted[:, j]])
        cdf_a = np.searchsorted(a_sorted[:, j], points, side="right") / a.shape[0]
        cdf_b = np.searchsorted(b_sorted[:, j], points, side="right") / b.shape[0]
        out[j] = np.abs(cdf_a - cdf_b).max()
    return out


def _spearman(a: NDArray[np.float64], b: NDArray[np.float64]) -> float:
    from scipy.stats import spearmanr

    if np.ptp(a) == 0 or np.ptp(b) == 0:
        return 1.0 if np.array_equal(np.argsort(a), np.argsort(b)) else 0.0
    return float(spearmanr(a, b).statistic)


def _shift_auc(ref: NDArray[np.float64], cur: NDArray[np.float64], seed: int) -> float | None:
    """Cross-validated AUC of a linear discriminant (Fisher's, ridge-regularized) telling
    current from reference rows: closed-form per fold, so cheap enough for every window."""
    from scipy.stats import rankdata

    if min(ref.shape[0], cur.shape[0]) < _FOLDS * 2:
        return None
    x = np.vstack([ref, cur])
    y = np.concatenate([np.zeros(ref.shape[0], dtype=bool), np.ones(cur.shape[0], dtype=bool)])
    scale = x.std(axis=0)
    scale[scale == 0] = 1.0
    x = (x - x.mean(axis=0)) / scale
    rng = np.random.default_rng(seed)
    # stratified folds: each class's rows dealt round-robin after a shuffle
    fold = np.empty(y.shape[0], dtype=np.int64)
    for label in (False, True):  # two classes
        rows = np.flatnonzero(y == label)
        fold[rng.permutation(rows)] = np.arange(rows.shape[0]) % _FOLDS
    scores = np.empty(y.shape[0])
    ridge = 1e-3 * np.eye(x.shape[1])
    for k in range(_FOLDS):  # per fold
        train, test = fold != k, fold == k
        a, b = x[train & ~y], x[train & y]
        pooled = np.cov(np.vstack([a - a.mean(axis=0), b - b.mean(axis=0)]), rowvar=False)
        pooled = np.atleast_2d(pooled) + ridge
        w = np.linalg.solve(pooled, b.mean(axis=0) - a.mean(axis=0))
        scores[test] = x[test] @ w
    ranks = rankdata(scores)
    n_pos, n_neg = int(y.sum()), int((~y).sum())
    return float((ranks[y].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))
