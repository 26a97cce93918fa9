"""Encode mixed-type columns as one numeric matrix: learned on a reference, reused on every window.

The multivariate drift methods (:mod:`mlwarden.drift.domain_classifier`,
:mod:`mlwarden.drift.pca`) need numbers. :class:`FeatureEncoder` learns from the reference how to
turn each usable column into numeric columns, and applies the same encoding to any later window,
so that reference and windows are compared column for column:

- numeric columns are standardized with the reference mean and standard deviation; for PCA
  (``one_hot=True``) missing values get the reference median and, where the reference has
  missing values, a 0/1 missing-indicator column; for trees (``one_hot=False``) they stay NaN,
  which gradient-boosted trees route on their own, so a sensor that starts dropping out is seen;
- categorical and boolean columns keep their ``max_categories`` most frequent reference levels;
  any other level (and a level never seen in the reference) counts as ``(other)``. They become
  0/1 columns (``one_hot=True``; not standardized, so that a categorical column's total variance
  stays below 1, like one standardized numeric column) or ordinal codes (``one_hot=False``);
- datetime and free-text columns, columns with the ``id`` role (when columns are not named
  explicitly) and columns without any value in the reference are skipped, each with a note.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Final

import numpy as np
import numpy.typing as npt
import polars as pl

from mlwarden.exceptions import InputError, NotFittedError, ParameterError, check_int
from mlwarden.frames import to_polars
from mlwarden.schema import Kind, Role, infer_schema, kind_of_dtype

if TYPE_CHECKING:
    from collections.abc import Sequence
    from contextlib import AbstractContextManager

    from mlwarden.schema import Schema

__all__ = [
    "CategoricalEncoding",
    "FeatureEncoder",
    "NumericEncoding",
    "check_columns",
    "check_fitted",
    "format_pair",
    "leading_columns",
    "single_threaded",
]

F64 = npt.NDArray[np.float64]
Intp = npt.NDArray[np.intp]

OTHER: Final = "(other)"
MISSING: Final = "(missing)"
# Ordinal codes must stay below the 255 bins of HistGradientBoostingClassifier.
_MAX_LEVELS: Final = 250


@dataclass(frozen=True, slots=True)
class NumericEncoding:
    """How one numeric column is encoded.

    Attributes:
        name: the column.
        median: the reference median, which replaces missing values in the one-hot encoding.
        mean: the reference mean, subtracted.
        scale: the reference standard deviation (1 for a constant column), divided by.
        has_nulls: whether the reference has missing values (then a missing indicator is added).
    """

    name: str
    median: float
    mean: float
    scale: float
    has_nulls: bool


@dataclass(frozen=True, slots=True)
class CategoricalEncoding:
    """How one categorical or boolean column is encoded.

    Attributes:
        name: the column.
        kind: categorical or boolean.
        levels: the most frequent reference levels, as text, most frequent first.
        has_nulls: whether the reference has missing values (then they get their own one-hot
            column; otherwise a missing value counts as ``(other)``).
    """

    name: str
    kind: Kind
    levels: tuple[str, ...]
    has_nulls: bool


Encoding = NumericEncoding | CategoricalEncoding


class FeatureEncoder:
    """Learns from a reference how to encode its columns as numbers, then encodes any window.

    Parameters:
        columns: the columns to encode; ``None`` takes every column except datetime, free-text
            and id columns.
        max_categories: how many of the most frequent levels of a categorical column keep their
            own code; the rest count as ``(other)``. An int in [1, 250].

    Attributes (after ``fit``):
        encodings_: one :class:`NumericEncoding` or :class:`CategoricalEncoding` per used
            column, in order.
        columns_: the names of the used columns.
        notes_: one sentence per skipped column, saying why.
        dtypes_: the reference dtype of each used column (a window must hold the same kind).

    Example:
        >>> import polars as pl
        >>> ref = pl.DataFrame({"temp": [19.0, None, 21.0, 20.0], "recipe": ["A", "B", "A", "A"]})
        >>> enc = FeatureEncoder().fit(ref)
        >>> enc.feature_names(one_hot=True)
        ['temp', 'temp=(missing)', 'recipe=A', 'recipe=B', 'recipe=(other)']
        >>> enc.transform(pl.DataFrame({"temp": [23.0], "recipe": ["C"]}), one_hot=True).tolist()
        [[3.0, 0.0, 0.0, 0.0, 1.0]]
        >>> enc.transform(pl.DataFrame({"temp": [None], "recipe": ["B"]}), one_hot=False).tolist()
        [[nan, 1.0]]
    """

    def __init__(self, columns: Sequence[str] | None = None, max_categories: int = 20) -> None:
        self.columns = columns
        self.max_categories = max_categories

    def fit(self, data: object) -> FeatureEncoder:
        """Learn the encoding of each usable column from the reference ``data``.

        Parameters:
            data: the reference, in any form :func:`mlwarden.frames.to_polars` accepts.

        Raises:
            InputError: a named column is missing, or no column can be encoded.
        """
        check_int(self.max_categories, "max_categories", "FeatureEncoder", 1, _MAX_LEVELS)
        named = check_columns(self.columns, "FeatureEncoder")
        frame = to_polars(data, columns=named)
        schema = infer_schema(frame)
        notes: list[str] = []
        numeric: list[str] = []
        categorical: list[str] = []
        for column in schema:
            name = column.name
            if frame[name].null_count() == frame.height or frame.schema[name] == pl.Null:
                notes.append(f"Skipped {name!r}: it has no values in the reference.")
            elif column.kind is Kind.DATETIME:
                notes.append(
                    f"Skipped {name!r}: a datetime column (timestamps separate any two windows)."
                )
            elif column.kind is Kind.TEXT:
                notes.append(f"Skipped {name!r}: free text (most values are distinct or long).")
            elif named is None and column.role is Role.ID:
                notes.append(
                    f"Skipped {name!r}: an id column (ids differ between any two batches); "
                    "name it in columns=[...] to include it."
                )
            elif column.kind is Kind.NUMERIC:
                numeric.append(name)
            else:
                categorical.append(name)
        learned: dict[str, Encoding] = {
            **_fit_numeric(frame, numeric, notes),
            **_fit_categorical(frame, categorical, schema, self.max_categories),
        }
        encodings = tuple(learned[name] for name in frame.columns if name in learned)
        if not encodings:
            raise InputError(
                "No column of the reference can be encoded for a multivariate drift test; "
                "expected at least one numeric, categorical or boolean column. " + " ".join(notes)
            )
        self.encodings_ = encodings
        self.columns_ = tuple(encoding.name for encoding in encodings)
        self.notes_ = tuple(notes)
        self.dtypes_ = {name: frame.schema[name] for name in self.columns_}
        return self

    def transform(self, data: object, *, one_hot: bool) -> F64:
        """Encode ``data`` as a float matrix, one row per row of ``data``.

        Parameters:
            data: a window (or the reference), in any form :func:`mlwarden.frames.to_polars`
                accepts; it must hold every used column, of the same kind as in the reference.
            one_hot: ``True`` for the imputed, one-hot encoding (linear methods such as PCA);
                ``False`` for one column per source column, ordinal codes for categories and
                NaN for missing values (tree models).

        Raises:
            InputError: a used column is missing from ``data`` or holds another kind of value.
        """
        frame = self.select(data)
        expressions: list[pl.Expr] = []
        for encoding in self.encodings_:
            expressions.extend(_expressions(encoding, frame.schema[encoding.name], one_hot))
        if frame.height == 0:
            return np.empty((0, len(expressions)), dtype=np.float64)
        matrix = frame.select(expressions).to_numpy().astype(np.float64, copy=False)
        return np.ascontiguousarray(matrix)

    def select(self, data: object) -> pl.DataFrame:
        """The used columns of ``data``, checked against the reference (missing, kind).

        Raises:
            InputError: a used column is missing from ``data`` or holds another kind of value.
        """
        check_fitted(self, "encodings_")
        frame = to_polars(data)
        missing = [name for name in self.columns_ if name not in frame.columns]
        if missing:
            quoted = ", ".join(repr(name) for name in missing)
            what = f"Column {quoted} is" if len(missing) == 1 else f"Columns {quoted} are"
            raise InputError(
                f"{what} in the reference but missing from the current data; expected every "
                f"compared column ({', '.join(self.columns_)}). Add it, or fit on columns=[...] "
                "without it.",
                column=missing[0],
            )
        for name in self.columns_:
            expected = _family(self.dtypes_[name])
            found = _family(frame.schema[name])
            if found is not None and expected is not None and found != expected:
                raise InputError(
                    f"Column {name!r} holds {_describe(found)} in the current data but "
                    f"{_describe(expected)} in the reference; expected the same kind. Cast it "
                    f"back to {self.dtypes_[name]}, or fit on columns=[...] without it.",
                    column=name,
                )
        return frame.select(self.columns_)

    def feature_names(self, *, one_hot: bool) -> list[str]:
        """Names of the encoded columns, in the order of :meth:`transform`."""
        check_fitted(self, "encodings_")
        return [name for encoding in self.encodings_ for name in _names(encoding, one_hot)]

    def feature_sources(self, *, one_hot: bool) -> Intp:
        """For each encoded column, the index in ``columns_`` of the column it comes from."""
        check_fitted(self, "encodings_")
        sizes = [len(_names(encoding, one_hot)) for encoding in self.encodings_]
        return np.repeat(np.arange(len(sizes), dtype=np.intp), sizes)

    def categorical_mask(self) -> npt.NDArray[np.bool_]:
        """For the ordinal encoding (``one_hot=False``): which columns hold category codes."""
        check_fitted(self, "encodings_")
        return np.array([isinstance(e, CategoricalEncoding) for e in self.encodings_], dtype=bool)

    def __repr__(self) -> str:
        return f"FeatureEncoder(columns={self.columns!r}, max_categories={self.max_categories!r})"


def single_threaded() -> AbstractContextManager[object]:
    """Run the enclosed OpenMP and BLAS code on one thread.

    On cores shared with other work, their threads spin while waiting for each other and run
    several times slower than one thread (measured: 8x for a PCA, 4x for the tree model); alone on
    two cores they would save a quarter at most.
    """
    from threadpoolctl import threadpool_limits  # type: ignore[import-untyped]

    limits: AbstractContextManager[object] = threadpool_limits(1)
    return limits


def check_fitted(estimator: object, attribute: str) -> None:
    """Raise :class:`~mlwarden.exceptions.NotFittedError` when ``fit`` has not run yet."""
    if not hasattr(estimator, attribute):
        name = type(estimator).__name__
        raise NotFittedError(f"This {name} is not fitted yet; call fit(reference) first.")


def format_pair(value: float, limit: float) -> tuple[str, str]:
    """Two numbers with enough decimals (2 to 4) to tell them apart, for result messages."""
    for digits in (2, 3):
        a, b = f"{value:.{digits}f}", f"{limit:.{digits}f}"
        if a != b:
            return a, b
    return f"{value:.4f}", f"{limit:.4f}"


def leading_columns(ranking: Sequence[tuple[str, float]]) -> list[str]:
    """The columns a message names: positive, at least a third of the top, at most three."""
    if not ranking or ranking[0][1] <= 0:
        return []
    top = ranking[0][1]
    return [column for column, value in ranking[:3] if value > 0 and value >= top / 3]


def check_columns(columns: Sequence[str] | None, owner: str) -> list[str] | None:
    """The ``columns`` parameter of ``owner`` as a list without repeats; None stays None."""
    if columns is None:
        return None
    named = [columns] if isinstance(columns, str) else list(columns)
    if not named or not all(isinstance(name, str) for name in named):
        raise ParameterError(
            f"The 'columns' parameter of {owner} must be a non-empty list of column names, or "
            f"None for all usable columns; got {columns!r}.",
            parameter="columns",
        )
    return list(dict.fromkeys(named))


def _fit_numeric(
    frame: pl.DataFrame, names: list[str], notes: list[str]
) -> dict[str, NumericEncoding]:
    """Median, mean and standard deviation of the finite values of each numeric column."""
    if not names:
        return {}
    clean = frame.select([_finite(name, frame.schema[name]) for name in names])
    median, mean, std = clean.median().row(0), clean.mean().row(0), clean.std().row(0)
    nulls = clean.null_count().row(0)
    learned: dict[str, NumericEncoding] = {}
    for i, name in enumerate(names):
        if nulls[i] == clean.height:
            notes.append(f"Skipped {name!r}: it has no finite values in the reference.")
            continue
        scale = float(std[i]) if std[i] is not None and std[i] > 0 else 1.0
        learned[name] = NumericEncoding(
            name, float(median[i]), float(mean[i]), scale, bool(nulls[i] > 0)
        )
    return learned


def _fit_categorical(
    frame: pl.DataFrame, names: list[str], schema: Schema, max_categories: int
) -> dict[str, CategoricalEncoding]:
    """The most frequent levels of each categorical or boolean column (ties by level)."""
    learned: dict[str, CategoricalEncoding] = {}
    for name in names:
        counts = (
            frame.select(pl.col(name).cast(pl.String).drop_nulls().value_counts())
            .unnest(name)
            .sort(["count", name], descending=[True, False])
            .head(max_categories)
        )
        levels = tuple(str(level) for level in counts[name].to_list())
        has_nulls = frame[name].null_count() > 0
        learned[name] = CategoricalEncoding(name, schema[name].kind, levels, has_nulls)
    return learned


def _finite(name: str, dtype: pl.DataType) -> pl.Expr:
    """The column as Float64, with NaN and infinities as missing values."""
    column = pl.col(name)
    if isinstance(dtype, pl.Duration):
        column = column.to_physical()
    values = column.cast(pl.Float64)
    return pl.when(values.is_finite()).then(values).alias(name)


def _expressions(encoding: Encoding, dtype: pl.DataType, one_hot: bool) -> list[pl.Expr]:
    """The Polars expressions computing the encoded columns of one source column."""
    names = _names(encoding, one_hot)
    if isinstance(encoding, NumericEncoding):
        values = _finite(encoding.name, dtype)
        if not one_hot:
            return [((values - encoding.mean) / encoding.scale).alias(names[0])]
        filled = (values.fill_null(encoding.median) - encoding.mean) / encoding.scale
        out = [filled.alias(names[0])]
        if encoding.has_nulls:
            out.append(values.is_null().cast(pl.Float64).alias(names[1]))
        return out
    text = pl.col(encoding.name).cast(pl.String)
    levels = list(encoding.levels)
    if not one_hot:
        codes = text.replace_strict(
            levels, list(range(len(levels))), default=len(levels), return_dtype=pl.Float64
        )
        return [pl.when(text.is_null()).then(None).otherwise(codes).alias(names[0])]
    out = [(text == level).fill_null(False).cast(pl.Float64) for level in levels]
    other = text.is_not_null() & ~text.is_in(levels)
    if encoding.has_nulls:
        out += [other.cast(pl.Float64), text.is_null().cast(pl.Float64)]
    else:
        out.append((other | text.is_null()).cast(pl.Float64))
    return [expression.alias(name) for expression, name in zip(out, names, strict=True)]


def _names(encoding: Encoding, one_hot: bool) -> list[str]:
    """The names of the encoded columns of one source column."""
    name = encoding.name
    if not one_hot:
        return [name]
    if isinstance(encoding, NumericEncoding):
        return [name, f"{name}={MISSING}"] if encoding.has_nulls else [name]
    extra = [OTHER, MISSING] if encoding.has_nulls else [OTHER]
    return [f"{name}={level}" for level in (*encoding.levels, *extra)]


def _family(dtype: pl.DataType) -> Kind | None:
    """The kind a dtype can hold (strings count as categorical); None for an all-null column."""
    if dtype == pl.Null:
        return None
    kind = kind_of_dtype(dtype)
    return Kind.CATEGORICAL if kind is None else kind


def _describe(kind: Kind) -> str:
    """A kind in words, for error messages."""
    return {
        Kind.NUMERIC: "numbers",
        Kind.CATEGORICAL: "categories (text)",
        Kind.BOOLEAN: "true/false values",
        Kind.DATETIME: "dates or times",
        Kind.TEXT: "text",
    }[kind]
