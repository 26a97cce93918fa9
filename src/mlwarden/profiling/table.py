"""Profiles of tables: mergeable summaries of a batch, the currency of mlwarden.

``profile(data)`` summarizes every column of a DataFrame, Arrow table or file; a file is streamed
in batches with bounded memory. ``Profile.merge`` combines two profiles into the profile of the
union of their rows: exactly for counts, moments, distinct sketches and histograms, within the
stated rank error for quantiles and the stated undercount for approximate frequent items.
"""

from __future__ import annotations

import base64
import json
import math
import os
import sys
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import msgpack
import polars as pl

from mlwarden import frames
from mlwarden.exceptions import FormatError, InputError, MergeError, ParameterError, check_int
from mlwarden.profiling.column import ColumnProfile, ProfileConfig, profile_series
from mlwarden.profiling.histogram import AlignedHistogram, FixedHistogram
from mlwarden.profiling.kll import rank_error_bound
from mlwarden.schema import (
    ColumnSchema,
    Kind,
    Role,
    Schema,
    infer_role,
    kind_of_dtype,
    parse_kind,
    parse_role,
    unknown_column_message,
)

if TYPE_CHECKING:
    import numpy as np

FORMAT_VERSION = 1
_MAGIC = b"MLWPROF"
_PARALLEL_MIN_ROWS = 20_000
SUMMARY_QUANTILES = (0.01, 0.05, 0.25, 0.5, 0.75, 0.95, 0.99)


@dataclass(frozen=True, slots=True, eq=False)
class Profile:
    """Mergeable summary of a batch of rows, column by column.

    Example:
        >>> import polars as pl
        >>> a = profile(pl.DataFrame({"temp": [20.0, 21.5, None], "line": ["L1", "L2", "L1"]}))
        >>> b = profile(pl.DataFrame({"temp": [22.0, 80.0, 21.0], "line": ["L1", "L3", "L3"]}))
        >>> both = a.merge(b)
        >>> both.n_rows, both["temp"].null_count, both["temp"].moments.max
        (6, 1, 80.0)
        >>> both["line"].items.top(2)
        [('L1', 3), ('L3', 2)]
        >>> Profile.from_bytes(both.to_bytes()) == both
        True
    """

    n_rows: int
    columns: dict[str, ColumnProfile]
    config: ProfileConfig

    @property
    def schema(self) -> Schema:
        """Kinds and roles of the profiled columns."""
        return Schema(tuple(ColumnSchema(c.name, c.kind, c.role) for c in self.columns.values()))

    def __getitem__(self, name: str) -> ColumnProfile:
        try:
            return self.columns[name]
        except KeyError:
            raise InputError(
                unknown_column_message(name, list(self.columns)), column=name
            ) from None

    def __iter__(self) -> Any:
        return iter(self.columns.values())

    def __len__(self) -> int:
        return len(self.columns)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Profile):
            return NotImplemented
        return (
            self.n_rows == other.n_rows
            and self.config == other.config
            and list(self.columns) == list(other.columns)
            and all(self.columns[n] == other.columns[n] for n in self.columns)
        )

    __hash__ = None  # type: ignore[assignment]

    def merge(self, other: Profile) -> Profile:
        """The profile of the rows of both profiles (columns must match)."""
        if self.config != other.config:
            raise MergeError(
                f"Cannot merge profiles made with different sketch sizes ({self.config} and "
                f"{other.config}); profile both with the same configuration."
            )
        missing = [n for n in self.columns if n not in other.columns]
        extra = [n for n in other.columns if n not in self.columns]
        if missing or extra:
            parts = []
            if missing:
                parts.append(f"only the first has {missing}")
            if extra:
                parts.append(f"only the second has {extra}")
            raise MergeError(
                f"Cannot merge profiles with different columns: {'; '.join(parts)}. "
                "Profile the same columns (columns=[...]) to merge.",
                column=(missing or extra)[0],
            )
        columns = {name: col.merge(other.columns[name]) for name, col in self.columns.items()}
        return Profile(self.n_rows + other.n_rows, columns, self.config)

    def bin_edges(self) -> dict[str, list[float]]:
        """Histogram edges of every numeric column, to profile later windows on the same bins."""
        return {
            c.name: c.histogram.edges.tolist()
            for c in self.columns.values()
            if c.kind is Kind.NUMERIC and c.histogram is not None
        }

    # -- summary --------------------------------------------------------------------------------

    def summary(self, quantiles: Sequence[float] = SUMMARY_QUANTILES) -> dict[str, Any]:
        """A plain JSON-ready summary: per column kind, counts, moments, quantiles, distinct, top.

        Non-finite numbers become None; datetimes are ISO 8601 strings.
        """
        return {
            "format_version": FORMAT_VERSION,
            "n_rows": self.n_rows,
            "rank_error": rank_error_bound(self.config.k),
            "columns": {c.name: _column_summary(c, quantiles) for c in self.columns.values()},
        }

    # -- serialization --------------------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        """Full serializable form, sketches included (bytes values where compact)."""
        return {
            "format_version": FORMAT_VERSION,
            "n_rows": self.n_rows,
            "config": self.config.to_dict(),
            "columns": [c.to_dict() for c in self.columns.values()],
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Profile:
        """Inverse of :meth:`to_dict`; rejects unknown format versions."""
        version = d.get("format_version") if isinstance(d, Mapping) else None
        if version != FORMAT_VERSION:
            raise FormatError(
                f"Unsupported profile format version {version!r}; this mlwarden reads version "
                f"{FORMAT_VERSION}. Re-create the profile or upgrade mlwarden."
            )
        try:
            columns = [ColumnProfile.from_dict(c) for c in d["columns"]]
            return cls(
                int(d["n_rows"]),
                {c.name: c for c in columns},
                ProfileConfig.from_dict(d["config"]),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise FormatError(f"Corrupt profile: {exc}.") from exc

    def to_json(self, indent: int | None = None) -> str:
        """JSON text; sketch bytes as base64, non-finite floats as strings."""
        return json.dumps(_to_jsonable(self.to_dict()), indent=indent, allow_nan=False)

    @classmethod
    def from_json(cls, text: str | bytes) -> Profile:
        """Inverse of :meth:`to_json`."""
        try:
            tree = json.loads(text)
        except ValueError as exc:
            raise FormatError(f"A profile must be JSON text: {exc}.") from exc
        return cls.from_dict(_from_jsonable(tree))

    def to_bytes(self) -> bytes:
        """Compact binary form (MessagePack after a magic header)."""
        packed: bytes = msgpack.packb(self.to_dict(), use_bin_type=True)
        return _MAGIC + packed

    @classmethod
    def from_bytes(cls, data: bytes) -> Profile:
        """Inverse of :meth:`to_bytes`."""
        if not data.startswith(_MAGIC):
            raise FormatError("Not a binary mlwarden profile (wrong header).")
        try:
            tree = msgpack.unpackb(data[len(_MAGIC) :], raw=False, strict_map_key=False)
        except (ValueError, msgpack.ExtraData, msgpack.FormatError, msgpack.StackError) as exc:
            raise FormatError(f"Corrupt binary profile: {exc}.") from exc
        return cls.from_dict(tree)

    def __repr__(self) -> str:
        kinds = ", ".join(f"{c.name}: {c.kind}" for c in list(self.columns.values())[:6])
        more = ", ..." if len(self.columns) > 6 else ""
        return f"Profile(n_rows={self.n_rows}, columns={{{kinds}{more}}})"


# -- profiling ------------------------------------------------------------------------------------


def profile(
    data: object,
    *,
    columns: Sequence[str] | None = None,
    kinds: Mapping[str, str | Kind] | None = None,
    roles: Mapping[str, str | Role] | None = None,
    bins: Profile | Mapping[str, Sequence[float]] | None = None,
    config: ProfileConfig | None = None,
    batch_rows: int = 1 << 18,
    encoding: str | None = None,
    progress: bool | None = None,
    workers: int | None = None,
) -> Profile:
    """Profile a batch: a DataFrame (Polars or pandas), an Arrow table, or a Parquet/CSV/IPC file.

    Parameters:
        data: the rows to profile; a path is streamed in batches of ``batch_rows`` rows.
        columns: profile only these columns.
        kinds: override inferred kinds, e.g. ``{"code": "categorical"}``.
        roles: override inferred roles, e.g. ``{"defect": "target"}``.
        bins: histogram edges per numeric column, or a reference profile whose bins to reuse, so
            that windows are binned like their reference.
        config: sketch sizes (see :class:`ProfileConfig`).
        batch_rows: rows per batch when streaming a file.
        encoding: text encoding of a CSV file (default UTF-8).
        progress: show a progress bar; by default only when standard error is a terminal.
        workers: threads used to profile columns in parallel (default: all cores).

    Example:
        >>> import polars as pl
        >>> p = profile(pl.DataFrame({"pressure": [1.0, 2.0, 3.0, 4.0]}))
        >>> p["pressure"].quantile_values([0.5])
        [2.0]
    """
    config = config or ProfileConfig()
    check_int(batch_rows, "batch_rows", "profile", 1)
    n_workers = workers or os.cpu_count() or 1
    edges = _edges_by_column(bins)
    if frames.is_path(data):
        as_text = [
            name
            for name, kind in (kinds or {}).items()
            if parse_kind(kind, column=name) in (Kind.CATEGORICAL, Kind.TEXT)
        ]
        stream = frames.iter_batches(
            data, batch_rows=batch_rows, columns=columns, encoding=encoding, as_text=as_text
        )
        batches: Iterable[frames.Batch] = stream
        show = sys.stderr.isatty() if progress is None else progress
        label = os.path.basename(os.fspath(data))  # type: ignore[call-overload]
    else:
        frame = frames.to_polars(data, columns=columns)
        batches = [frames.Batch(frame, frame.height)]
        stream = None
        show = bool(progress)
        label = "profiling"
    result: Profile | None = None
    spec: _Spec | None = None
    with ThreadPoolExecutor(max_workers=n_workers) as pool, _Progress(show, stream, label) as tick:
        for batch in batches:
            if spec is None:
                spec = _Spec.infer(batch.frame, kinds, roles, edges)
            part = _profile_frame(batch.frame, spec, config, pool)
            result = part if result is None else result.merge(part)
            tick(batch.advance)
    if result is None:  # a source with no batches at all still has no columns to report
        return Profile(0, {}, config)
    return result


@dataclass(frozen=True, slots=True)
class _Spec:
    """Kinds and roles decided once (from the first batch) for every batch of a stream."""

    kinds: dict[str, Kind | None]
    roles: dict[str, Role]
    fixed: frozenset[str]
    edges: dict[str, np.ndarray[Any, np.dtype[np.float64]]]

    @classmethod
    def infer(
        cls,
        frame: pl.DataFrame,
        kinds: Mapping[str, str | Kind] | None,
        roles: Mapping[str, str | Role] | None,
        edges: Mapping[str, Sequence[float]],
    ) -> _Spec:
        kinds, roles = dict(kinds or {}), dict(roles or {})
        for name in (*kinds, *roles, *edges):
            if name not in frame.columns:
                raise InputError(unknown_column_message(name, frame.columns), column=name)
        chosen: dict[str, Kind | None] = {}
        for name, dtype in frame.schema.items():
            if name in kinds:
                chosen[name] = parse_kind(kinds[name], column=name)
            elif dtype == pl.Null:
                chosen[name] = None  # all null so far: later batches decide
            else:
                chosen[name] = kind_of_dtype(dtype)
        out_roles = {
            name: parse_role(roles[name], column=name)
            if name in roles
            else infer_role(name, chosen[name] or Kind.CATEGORICAL)
            for name in frame.columns
        }
        checked = {}
        for name, e in edges.items():
            if chosen[name] is not Kind.NUMERIC:
                raise ParameterError(
                    f"Histogram bins were given for column '{name}', which is "
                    f"{chosen[name] or 'text'}; bins apply to numeric columns only.",
                    parameter="bins",
                )
            checked[name] = FixedHistogram.check_edges(e, column=name)
        return cls(chosen, out_roles, frozenset(kinds), checked)


def _profile_frame(
    frame: pl.DataFrame, spec: _Spec, config: ProfileConfig, pool: ThreadPoolExecutor
) -> Profile:
    missing = [n for n in spec.kinds if n not in frame.columns]
    if missing:
        raise InputError(f"A later batch lacks columns {missing}.", column=missing[0])

    def one(name: str) -> ColumnProfile:
        kind = spec.kinds[name]
        series = frame[name]
        if kind is None and series.dtype != pl.String:
            kind = kind_of_dtype(series.dtype)
        series = _coerce(series, kind)
        return profile_series(
            series,
            kind,
            spec.roles[name],
            config,
            edges=spec.edges.get(name),
            kind_fixed=name in spec.fixed,
        )

    names = list(spec.kinds)
    if frame.height < _PARALLEL_MIN_ROWS:  # threads cost more than they save on small batches
        results = {name: one(name) for name in names}
    else:
        results = dict(zip(names, pool.map(one, names), strict=True))
    return Profile(frame.height, {n: results[n] for n in names}, config)


def _coerce(series: pl.Series, kind: Kind | None) -> pl.Series:
    """Cast a column to what its (possibly user-given) kind needs, naming it on failure."""
    dtype = series.dtype
    try:
        if kind is Kind.NUMERIC and not (
            dtype.is_numeric() or isinstance(dtype, pl.Duration) or dtype == pl.Null
        ):
            if dtype == pl.Boolean:
                return series.cast(pl.Float64)
            return series.cast(pl.Float64, strict=True)
        if kind is Kind.DATETIME and not isinstance(dtype, pl.Datetime | pl.Date):
            if dtype == pl.String:
                return series.str.to_datetime(strict=True, time_zone="UTC")
            return series.cast(pl.Datetime("us"), strict=True)
        if kind is Kind.BOOLEAN and dtype != pl.Boolean:
            return series.cast(pl.Boolean, strict=True)
        if kind in (Kind.CATEGORICAL, Kind.TEXT) and not isinstance(
            dtype, pl.String | pl.Categorical | pl.Enum
        ):
            return series.cast(pl.String, strict=True)
        if dtype == pl.Null:
            return series.cast(pl.Float64) if kind is Kind.NUMERIC else series.cast(pl.String)
    except pl.exceptions.PolarsError as exc:
        first_line = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise InputError(
            f"Column '{series.name}' ({dtype}) cannot be read as {kind}: {first_line}. "
            "Fix the values or choose another kind.",
            column=series.name,
        ) from exc
    return series


def _edges_by_column(
    bins: Profile | Mapping[str, Sequence[float]] | None,
) -> dict[str, Sequence[float]]:
    if bins is None:
        return {}
    if isinstance(bins, Profile):
        return dict(bins.bin_edges())
    if not isinstance(bins, Mapping):
        raise ParameterError(
            "The 'bins' parameter must be a reference Profile or a mapping of column name to "
            f"edges; got {type(bins).__name__}.",
            parameter="bins",
        )
    return dict(bins)


class _Progress:
    """A rich progress bar over a batch stream, or nothing."""

    def __init__(self, show: bool, stream: frames.BatchStream | None, label: str) -> None:
        self.show = show and stream is not None
        self.stream = stream
        self.label = label
        self._bar: Any = None

    def __enter__(self) -> Callable[[int], None]:
        if not self.show or self.stream is None:
            return lambda advance: None
        from rich.console import Console
        from rich.progress import (
            BarColumn,
            DownloadColumn,
            MofNCompleteColumn,
            Progress,
            TextColumn,
            TimeRemainingColumn,
        )

        unit_column = DownloadColumn() if self.stream.unit == "bytes" else MofNCompleteColumn()
        console = Console(stderr=True)
        # On a terminal the bar disappears when done; in a log the final state is kept.
        self._bar = Progress(
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            unit_column,
            TimeRemainingColumn(),
            console=console,
            transient=console.is_terminal,
        )
        self._bar.__enter__()
        task = self._bar.add_task(f"Profiling {self.label}", total=self.stream.total)
        bar = self._bar
        return lambda advance: bar.advance(task, advance)

    def __exit__(self, *exc: object) -> None:
        if self._bar is not None:
            self._bar.__exit__(None, None, None)


# -- summary helpers ------------------------------------------------------------------------


def _finite(x: float | None) -> float | None:
    return x if x is not None and math.isfinite(x) else None


def _column_summary(c: ColumnProfile, qs: Sequence[float]) -> dict[str, Any]:
    is_time = c.kind is Kind.DATETIME
    fmt: Callable[[float | None], Any] = _iso if is_time else _finite
    m = c.moments
    out: dict[str, Any] = {
        "kind": c.kind.value,
        "role": c.role.value,
        "dtype": c.dtype,
        "count": c.count,
        "null_count": c.null_count,
        "nan_count": c.nan_count,
        "inf_count": c.inf_count,
        "mean": fmt(m.mean if m and m.count else None),
        "std": _finite(m.std) if m and not is_time else None,
        "min": fmt(m.min if m and m.count else None),
        "max": fmt(m.max if m and m.count else None),
        "quantiles": None,
        "distinct": c.distinct,
        "distinct_exact": c.distinct_is_exact,
        "top": None,
    }
    values = c.quantile_values(list(qs))
    if values is not None:
        out["quantiles"] = {_q_key(q): fmt(v) for q, v in zip(qs, values, strict=True)}
    if c.items is not None:
        out["top"] = [[v, n] for v, n in c.items.top(10)]
        out["top_exact"] = c.items.is_exact
    if c.lengths is not None and c.lengths.count:
        out["length"] = {"min": c.lengths.min, "mean": c.lengths.mean, "max": c.lengths.max}
    if c.gaps is not None:
        g = c.gaps
        out["gaps_seconds"] = {
            "median": g.quantiles.quantile(0.5) if g.moments.count else None,
            "p99": g.quantiles.quantile(0.99) if g.moments.count else None,
            "max": g.moments.max if g.moments.count else None,
            "zero": g.zero_gaps,
            "exact": g.exact,
        }
    if c.time_zone:
        out["time_zone"] = c.time_zone
    if isinstance(c.histogram, AlignedHistogram | FixedHistogram):
        out["histogram"] = {
            "edges": [fmt(float(e)) for e in c.histogram.edges],
            "counts": c.histogram.counts.tolist(),
        }
    return out


def _q_key(q: float) -> str:
    return f"{q:g}"


def _iso(x: float | None) -> str | None:
    if x is None or not math.isfinite(x):
        return None
    return datetime.fromtimestamp(x, tz=UTC).isoformat()


def _to_jsonable(tree: Any) -> Any:
    if isinstance(tree, bytes):
        return {"$bytes": base64.b64encode(tree).decode("ascii")}
    if isinstance(tree, float) and not math.isfinite(tree):
        return {"$float": repr(tree)}
    if isinstance(tree, dict):
        return {k: _to_jsonable(v) for k, v in tree.items()}
    if isinstance(tree, list | tuple):
        return [_to_jsonable(v) for v in tree]
    return tree


def _from_jsonable(tree: Any) -> Any:
    if isinstance(tree, dict):
        if len(tree) == 1 and "$bytes" in tree:
            return base64.b64decode(tree["$bytes"])
        if len(tree) == 1 and "$float" in tree:
            return float(tree["$float"])
        return {k: _from_jsonable(v) for k, v in tree.items()}
    if isinstance(tree, list):
        return [_from_jsonable(v) for v in tree]
    return tree


__all__ = ["FORMAT_VERSION", "Profile", "ProfileConfig", "profile"]
