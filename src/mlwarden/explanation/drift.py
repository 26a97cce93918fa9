"""Explanation drift: has the model started to decide *differently*, not only on other data?

A window's per-prediction attributions are compared with those of the version's reference
sample (kept at registration) in three ways, each a metric with an alert bound:

* ``explanation_shift`` per feature — the Kolmogorov–Smirnov distance between the feature's
  attributions in the window and in the reference; the bound is the KS critical distance at
  ``alpha`` shared over the features (Bonferroni) for the two sample sizes;
* ``importance_rank`` — the Spearman correlation between the reference's ranking of features by
  mean absolute attribution and the window's; the bound is the 1 % quantile of the same
  correlation between the whole reference and resamples of it of the window's size;
* ``explanation_auc`` — the cross-validated ROC AUC of a logistic regression telling window
  attributions from reference ones (an explanation-shift detector); the bound is the AUC
  expected without shift, ``0.5 + 3.5 σ`` with σ the Mann–Whitney standard deviation for the
  two sizes (never below 0.55).

Example:
    >>> import numpy as np, polars as pl
    >>> rng = np.random.default_rng(0)
    >>> def attributions(n, scales, shift=0.0):
    ...     return pl.DataFrame(
    ...         {f: rng.normal(shift * (f == "c"), s, n) for f, s in zip("abc", scales)}
    ...     )
    >>> reference = attributions(2000, (1.0, 0.5, 0.2))
    >>> same, moved = attributions(300, (1.0, 0.5, 0.2)), attributions(300, (0.1, 0.5, 0.2), 1.5)
    >>> [m.alert for m in explanation_drift(reference, same, ["a", "b", "c"])[0]]
    [False, False, False, False, False]
    >>> [(m.name, m.column) for m in explanation_drift(reference, moved, ["a", "b", "c"])[0]
    ...  if m.alert]  # doctest: +NORMALIZE_WHITESPACE
    [('explanation_shift', 'a'), ('explanation_shift', 'c'), ('importance_rank', ''),
     ('explanation_auc', '')]
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any, Final

import numpy as np
import polars as pl

from mlwarden.store.metadata import MetricValue

if TYPE_CHECKING:
    from collections.abc import Sequence

    from numpy.typing import NDArray

__all__ = ["MIN_ROWS", "explanation_drift"]

SHIFT: Final = "explanation_shift"
RANK: Final = "importance_rank"
AUC: Final = "explanation_auc"
# Fewer explained predictions in a window than this give no explanation-drift metrics.
MIN_ROWS: Final = 20
_RESAMPLES: Final = 100
_FOLDS: Final = 3
_MAX_ROWS: Final = 5_000


def explanation_drift(
    reference: pl.DataFrame,
    current: pl.DataFrame,
    features: Sequence[str],
    *,
    alpha: float = 0.01,
    seed: int = 0,
) -> tuple[list[MetricValue], dict[str, Any]]:
    """The explanation-drift metrics of ``current`` attributions against ``reference`` ones
    (one column per feature in both), and the details: per feature its mean absolute
    attribution in both and its KS distance, largest shift first."""
    features = [f for f in features if f in reference.columns and f in current.columns]
    if current.height < MIN_ROWS or reference.height < MIN_ROWS or not features:
        return [], {}
    ref = _matrix(reference, features)
    cur = _matrix(current, features)
    n, m = ref.shape[0], cur.shape[0]
    metrics: list[MetricValue] = []
    distances = _ks(ref, cur)
    critical = math.sqrt(-math.log(alpha / (2 * len(features))) / 2) * math.sqrt((n + m) / (n * m))
    for feature, distance in zip(features, distances, strict=True):  # per feature, not per row
        metrics.append(MetricValue(SHIFT, float(distance), upper=critical, column=feature))
    ref_importance = np.abs(ref).mean(axis=0)
    cur_importance = np.abs(cur).mean(axis=0)
    if len(features) >= 3:
        rng = np.random.default_rng(seed)
        rho = _spearman(ref_importance, cur_importance)
        null = [
            _spearman(ref_importance, np.abs(ref[rng.integers(0, n, m)]).mean(axis=0))
            for _ in range(_RESAMPLES)
        ]
        lower = float(np.quantile(null, 0.01)) if np.isfinite(null).all() else None
        metrics.append(MetricValue(RANK, rho, lower=lower))
    auc = _shift_auc(ref, cur, seed)
    if auc is not None:
        sigma = math.sqrt((n + m + 1) / (12 * n * m))
        metrics.append(MetricValue(AUC, auc, upper=max(0.55, 0.5 + 3.5 * sigma)))
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


def _matrix(frame: pl.DataFrame, features: Sequence[str]) -> NDArray[np.float64]:
    data = frame.select(pl.col(f).cast(pl.Float64).fill_null(0.0) for f in features).to_numpy()
    if data.shape[0] > _MAX_ROWS:
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
    """Cross-validated AUC of a logistic regression telling current from reference rows."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import roc_auc_score
    from sklearn.model_selection import StratifiedKFold

    x = np.vstack([ref, cur])
    y = np.concatenate([np.zeros(ref.shape[0]), np.ones(cur.shape[0])])
    scale = x.std(axis=0)
    scale[scale == 0] = 1.0
    x = (x - x.mean(axis=0)) / scale
    if min(ref.shape[0], cur.shape[0]) < _FOLDS * 2:
        return None
    scores = np.empty(y.shape[0])
    folds = StratifiedKFold(_FOLDS, shuffle=True, random_state=seed)
    for train, test in folds.split(x, y):  # per fold
        model = LogisticRegression(max_iter=200, class_weight="balanced")
        model.fit(x[train], y[train])
        scores[test] = model.decision_function(x[test])
    return float(roc_auc_score(y, scores))
