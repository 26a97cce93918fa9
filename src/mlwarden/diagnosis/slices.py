"""Slice search: where in the data is an outcome concentrated?

Given one number per row — a model's error (0/1 or absolute), a drift membership (1 for current
rows against 0 for reference rows), a quality flag — find the *slices* (a category of a column,
a range of a numeric column, and pairs of them) where its mean is significantly worse than in
the rest of the data. This is how an incident gets a "where": performance dropped for recipe
PA6-GF30 on line L2, the rows that grew are those with humidity above 60 %.

How it works, column by column and never row by row:

* numeric columns are cut into ``bins`` quantile ranges of the data, categorical and boolean
  columns keep their (most frequent ``max_categories``) values; nulls are a slice of their own;
* for every column, one ``group_by`` gives count, sum and sum of squares of the outcome per
  slice; the rest of the data is the total minus the slice, so each slice is compared with its
  complement at no extra pass;
* pairs are formed from the columns of the strongest single slices (``max_pair_columns``), again
  one ``group_by`` per pair;
* each slice with at least ``min_rows`` rows (and as many outside it) gets Welch's t-test of its
  mean against its complement's (for a 0/1 outcome this is the two-proportion test), one-sided
  toward "worse"; the p-values of all slices tested are corrected together by
  Benjamini-Hochberg, so on data where nothing is concentrated the search reports nothing at a
  false-discovery rate of ``alpha``;
* a pair is kept only when it is significantly worse than both of its single slices would make
  it (its effect exceeds each parent's by the parent's standard error), so that ``line = L2``
  does not come back once per other column.

Example:
    >>> import numpy as np, polars as pl
    >>> rng = np.random.default_rng(0)
    >>> n = 20_000
    >>> frame = pl.DataFrame({
    ...     "line": rng.choice(["L1", "L2", "L3"], n),
    ...     "temperature": rng.normal(230, 5, n),
    ... })
    >>> bad = (frame["line"] == "L2").to_numpy() & (frame["temperature"].to_numpy() > 234)
    >>> error = rng.random(n) < np.where(bad, 0.30, 0.05)
    >>> report = slice_search(frame.with_columns(error=pl.Series(error)), "error")
    >>> report.slices[0].description
    'line = L2 and temperature ≥ 234.2'
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Final

import numpy as np
import polars as pl
from scipy import stats

from mlwarden.exceptions import InputError, ParameterError, check_int
from mlwarden.frames import to_polars
from mlwarden.schema import unknown_column_message

if TYPE_CHECKING:
    from collections.abc import Sequence

__all__ = ["Slice", "SliceReport", "slice_search"]

_NULL: Final = "is null"


@dataclass(frozen=True, slots=True)
class Slice:
    """A part of the data where the outcome is worse than in the rest.

    Attributes:
        conditions: ``(column, condition)`` pairs, e.g. ``(("line", "= L2"),)``.
        n: rows in the slice.
        share: the slice's share of all rows.
        mean: the outcome's mean in the slice.
        rest_mean: its mean in the rest of the data.
        effect: ``mean - rest_mean`` (positive: worse, when higher is worse).
        p_value: one-sided Welch test of the slice against the rest.
        q_value: the p-value corrected for every slice tested (Benjamini-Hochberg).
    """

    conditions: tuple[tuple[str, str], ...]
    n: int
    share: float
    mean: float
    rest_mean: float
    effect: float
    p_value: float
    q_value: float

    @property
    def description(self) -> str:
        return " and ".join(f"{column} {condition}" for column, condition in self.conditions)

    @property
    def columns(self) -> tuple[str, ...]:
        return tuple(column for column, _ in self.conditions)

    def expr(self) -> pl.Expr | None:
        """A Polars filter selecting the slice's rows (ranges with the printed, 4-digit bounds);
        None for a slice of "another value", which names no value."""
        parts = [_condition_expr(column, condition) for column, condition in self.conditions]
        if any(p is None for p in parts):
            return None
        out = parts[0]
        for part in parts[1:]:
            out = out & part  # type: ignore[operator]
        return out

    def to_dict(self) -> dict[str, Any]:
        return {
            "description": self.description,
            "conditions": [list(c) for c in self.conditions],
            "n": self.n,
            "share": self.share,
            "mean": self.mean,
            "rest_mean": self.rest_mean,
            "effect": self.effect,
            "p_value": self.p_value,
            "q_value": self.q_value,
        }


@dataclass(frozen=True)
class SliceReport:
    """The significant slices, strongest first, and how many slices were tested."""

    outcome: str
    overall_mean: float
    n_rows: int
    n_tested: int
    slices: list[Slice] = field(default_factory=list)

    def to_df(self) -> pl.DataFrame:
        return pl.DataFrame(
            [s.to_dict() for s in self.slices],
            schema={
                "description": pl.String,
                "conditions": pl.List(pl.List(pl.String)),
                "n": pl.Int64,
                "share": pl.Float64,
                "mean": pl.Float64,
                "rest_mean": pl.Float64,
                "effect": pl.Float64,
                "p_value": pl.Float64,
                "q_value": pl.Float64,
            },
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "outcome": self.outcome,
            "overall_mean": self.overall_mean,
            "n_rows": self.n_rows,
            "n_tested": self.n_tested,
            "slices": [s.to_dict() for s in self.slices],
        }


def slice_search(
    data: object,
    outcome: str,
    *,
    columns: Sequence[str] | None = None,
    bins: int = 5,
    max_categories: int = 30,
    min_rows: int = 50,
    alpha: float = 0.05,
    pairs: bool = True,
    max_pair_columns: int = 6,
    top: int = 10,
) -> SliceReport:
    """Find the slices where ``outcome`` (a numeric or boolean column; higher is worse) is
    significantly higher than in the rest of ``data``. See the module docstring."""
    frame = to_polars(data)
    check_int(bins, "bins", "slice_search", 2, 100)
    check_int(max_categories, "max_categories", "slice_search", 2, 10_000)
    check_int(min_rows, "min_rows", "slice_search", 2)
    check_int(top, "top", "slice_search", 1)
    check_int(max_pair_columns, "max_pair_columns", "slice_search", 2, 50)
    if not 0.0 < alpha < 1.0:
        raise ParameterError(
            f"The 'alpha' parameter of slice_search must lie in (0, 1); got {alpha!r}.",
            parameter="alpha",
        )
    if outcome not in frame.columns:
        raise InputError(unknown_column_message(outcome, frame.columns), column=outcome)
    dtype = frame.schema[outcome]
    if not (dtype.is_numeric() or dtype == pl.Boolean):
        raise InputError(
            f"The outcome '{outcome}' must be numeric or boolean (higher is worse); got {dtype}.",
            column=outcome,
        )
    chosen = [c for c in (columns or frame.columns) if c != outcome]
    for name in chosen:
        if name not in frame.columns:
            raise InputError(unknown_column_message(name, frame.columns), column=name)
    frame = frame.filter(pl.col(outcome).is_not_null()).with_columns(
        pl.col(outcome).cast(pl.Float64).alias("__y")
    )
    n = frame.height
    if n < 2 * min_rows:
        return SliceReport(outcome, float("nan"), n, 0)
    keyed, names = _slice_keys(frame, chosen, bins, max_categories)
    y = keyed["__y"]
    total = (n, float(y.sum()), float((y * y).sum()))
    singles = pl.concat([_stats(keyed, [key], names) for key in names], how="vertical_relaxed")
    tested = [_tested(singles, total, min_rows)]
    if pairs:
        strongest = (
            tested[0]
            .filter(pl.col("t") > 0)
            .sort("t", descending=True)
            .unique("key0", keep="first", maintain_order=True)
            .head(max_pair_columns)["key0"]
            .to_list()
        )
        pair_stats = [
            _stats(keyed, [a, b], names)
            for i, a in enumerate(strongest)
            for b in strongest[i + 1 :]
        ]
        if pair_stats:
            tested.append(_tested(pl.concat(pair_stats, how="vertical_relaxed"), total, min_rows))
    found = pl.concat(tested, how="diagonal_relaxed")
    if found.height == 0:
        return SliceReport(outcome, total[1] / n, n, 0)
    q = _benjamini_hochberg(found["p"].to_numpy())
    found = found.with_columns(pl.Series("q", q))
    significant = found.filter((pl.col("q") <= alpha) & (pl.col("t") > 0))
    significant = _without_redundant_pairs(significant)
    ordered = significant.sort(["effect", "n"], descending=[True, True]).head(top)
    slices = [
        Slice(
            # conditions in the order of the columns in the data
            conditions=tuple(
                (names[key], value)
                for key, value in sorted(
                    (
                        (row[f"key{i}"], row[f"value{i}"])
                        for i in range(2)
                        if row.get(f"key{i}") is not None
                    ),
                    key=lambda pair: int(pair[0].removeprefix("__k")),
                )
            ),
            n=int(row["n"]),
            share=row["n"] / n,
            mean=row["mean"],
            rest_mean=row["rest_mean"],
            effect=row["effect"],
            p_value=row["p"],
            q_value=row["q"],
        )
        for row in ordered.iter_rows(named=True)  # the few reported slices, not rows
    ]
    return SliceReport(outcome, total[1] / n, n, found.height, slices)


def _slice_keys(
    frame: pl.DataFrame, columns: list[str], bins: int, max_categories: int
) -> tuple[pl.DataFrame, dict[str, str]]:
    """One string column per searched column naming each row's slice (``≥ 234.2``, ``= L2``)."""
    expressions = []
    names: dict[str, str] = {}
    for i, name in enumerate(columns):
        key = f"__k{i}"
        names[key] = name
        series = frame[name]
        dtype = series.dtype
        if dtype.is_numeric() and dtype != pl.Boolean and series.n_unique() > max_categories:
            expressions.append(_binned(series, bins).alias(key))
        elif dtype.is_temporal() or dtype in (pl.List, pl.Struct, pl.Object):
            names.pop(key)
        else:
            text = pl.col(name).cast(pl.String)
            frequent = (
                series.cast(pl.String).drop_nulls().value_counts(sort=True).head(max_categories)
            )[name]
            expressions.append(
                pl.when(text.is_null())
                .then(pl.lit(_NULL))
                .when(text.is_in(frequent.implode()))
                .then(pl.lit("= ") + text)
                .otherwise(pl.lit("is another value"))
                .alias(key)
            )
    return frame.select("__y", *expressions), names


def _binned(series: pl.Series, bins: int) -> pl.Expr:
    """Quantile ranges of a numeric column, named by their bounds."""
    values = series.drop_nulls().drop_nans() if series.dtype.is_float() else series.drop_nulls()
    quantiles = np.unique(np.quantile(values.to_numpy(), np.linspace(0, 1, bins + 1)[1:-1]))
    column = pl.col(series.name)
    labels = [f"< {_short(quantiles[0])}"] + [
        f"in [{_short(lo)}, {_short(hi)})" for lo, hi in itertools.pairwise(quantiles)
    ]
    labels.append(f"≥ {_short(quantiles[-1])}")
    expr: Any = pl.when(column.is_null()).then(pl.lit(_NULL))
    if series.dtype.is_float():
        expr = expr.when(column.is_nan()).then(pl.lit(_NULL))
    for edge, label in zip(quantiles, labels[:-1], strict=True):
        expr = expr.when(column < float(edge)).then(pl.lit(label))
    return expr.otherwise(pl.lit(labels[-1]))  # type: ignore[no-any-return]


def _condition_expr(column: str, condition: str) -> pl.Expr | None:
    """The filter of one printed slice condition (``= L2``, ``< 3.1``, ``in [1, 2)``, …)."""
    col = pl.col(column)
    if condition == _NULL:
        return col.is_null() | (col.cast(pl.Float64, strict=False).is_nan().fill_null(False))
    if condition.startswith("= "):
        return col.cast(pl.String) == condition[2:]
    if condition.startswith("< "):
        return col < float(condition[2:])
    if condition.startswith("≥ "):
        return col >= float(condition[2:])
    if condition.startswith("in [") and condition.endswith(")"):
        low, high = (float(v) for v in condition[4:-1].split(", "))
        return (col >= low) & (col < high)
    return None


def _short(value: float) -> str:
    return f"{value:.4g}" if abs(value) < 1e5 else f"{value:.3e}"


def _stats(keyed: pl.DataFrame, keys: list[str], names: dict[str, str]) -> pl.DataFrame:
    """Count, sum and sum of squares of the outcome per slice of ``keys``."""
    grouped = keyed.group_by(keys).agg(
        pl.len().alias("n"),
        pl.col("__y").sum().alias("s"),
        (pl.col("__y") ** 2).sum().alias("ss"),
    )
    return grouped.select(
        *[pl.lit(key).alias(f"key{i}") for i, key in enumerate(keys)],
        *[pl.col(key).alias(f"value{i}") for i, key in enumerate(keys)],
        "n",
        "s",
        "ss",
    )


def _tested(groups: pl.DataFrame, total: tuple[int, float, float], min_rows: int) -> pl.DataFrame:
    """Welch's t of each slice against its complement, one-sided toward a higher outcome."""
    n_all, s_all, ss_all = total
    table = groups.filter((pl.col("n") >= min_rows) & (n_all - pl.col("n") >= min_rows))
    if table.height == 0:
        return table
    n1 = table["n"].to_numpy().astype(np.float64)
    s1 = table["s"].to_numpy()
    ss1 = table["ss"].to_numpy()
    n2, s2, ss2 = n_all - n1, s_all - s1, ss_all - ss1
    m1, m2 = s1 / n1, s2 / n2
    v1 = np.maximum(ss1 / n1 - m1**2, 0.0) * n1 / np.maximum(n1 - 1, 1)
    v2 = np.maximum(ss2 / n2 - m2**2, 0.0) * n2 / np.maximum(n2 - 1, 1)
    se2 = v1 / n1 + v2 / n2
    se = np.sqrt(np.maximum(se2, 1e-300))
    t = (m1 - m2) / se
    dof = se2**2 / np.maximum(
        (v1 / n1) ** 2 / np.maximum(n1 - 1, 1) + (v2 / n2) ** 2 / np.maximum(n2 - 1, 1), 1e-300
    )
    p = stats.t.sf(t, np.maximum(dof, 1.0))
    p = np.where(se2 > 0, p, np.where(m1 > m2, 0.0, 1.0))
    return table.with_columns(
        pl.Series("mean", m1),
        pl.Series("rest_mean", m2),
        pl.Series("effect", m1 - m2),
        pl.Series("se", np.sqrt(v1 / n1)),
        pl.Series("t", t),
        pl.Series("p", p),
    )


def _benjamini_hochberg(p: np.ndarray[Any, np.dtype[np.float64]]) -> np.ndarray[Any, Any]:
    order = np.argsort(p)
    m = p.size
    ranked = p[order] * m / np.arange(1, m + 1)
    q_sorted = np.minimum.accumulate(ranked[::-1])[::-1]
    q = np.empty(m)
    q[order] = np.minimum(q_sorted, 1.0)
    return q


def _without_redundant_pairs(found: pl.DataFrame) -> pl.DataFrame:
    """Drop a pair whose effect does not beat each of its single slices' by a standard error."""
    if "key1" not in found.columns:
        return found
    singles = found.filter(pl.col("key1").is_null())
    pairs = found.filter(pl.col("key1").is_not_null())
    if pairs.height == 0:
        return singles
    parent = singles.select(
        pl.col("key0").alias("pk"), pl.col("value0").alias("pv"), "effect", "se"
    )
    for i in range(2):
        pairs = pairs.join(
            parent.rename({"effect": f"e{i}", "se": f"se{i}"}),
            left_on=[f"key{i}", f"value{i}"],
            right_on=["pk", "pv"],
            how="left",
        )
    beats = pl.lit(True)
    for i in range(2):
        beats = beats & (
            pl.col(f"e{i}").is_null() | (pl.col("effect") > pl.col(f"e{i}") + pl.col(f"se{i}"))
        )
    kept = pairs.filter(beats).drop("e0", "se0", "e1", "se1")
    # A single slice that a kept pair explains better is dropped in turn.
    explained = kept.select(
        pl.concat_list("key0", "key1").alias("k"), pl.concat_list("value0", "value1").alias("v")
    ).explode("k", "v")
    singles = singles.join(
        explained.unique(), left_on=["key0", "value0"], right_on=["k", "v"], how="anti"
    )
    return pl.concat([singles, kept], how="diagonal_relaxed")
