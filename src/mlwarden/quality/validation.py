"""Validation in one pass: every check of a suite fused into one vectorized Polars query.

The engine asks each check for expressions (helper columns, a per-row failure flag, aggregates),
evaluates all helper columns and flags in a few ``with_columns`` stages over the whole batch —
one sort by entity and timestamp first when a suite has sensor or sequence checks — and all
aggregates in a single ``select`` (and a single ``group_by`` per window). No check scans the data
on its own. Checks then judge their numbers; the result is a :class:`Validation`.
"""

from __future__ import annotations

import json
import math
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

import polars as pl

from mlwarden.exceptions import InputError, ParameterError
from mlwarden.frames import to_polars
from mlwarden.quality.base import (
    Check,
    Context,
    Dimension,
    RowCheck,
    Severity,
    Sparse,
    Stats,
    Verdict,
)
from mlwarden.schema import unknown_column_message
from mlwarden.windows import WindowSpec

SERIES_FLAG: Final = "__mlwarden_failed"
"""The column of :attr:`Validation.series` frames that marks failing readings (named so that no
data column, such as one called ``failed``, can clash with it)."""

if TYPE_CHECKING:
    from collections.abc import Sequence

    from mlwarden.quality.suite import Suite

ROW = "__row"
SAMPLE_SIZE = 10


@dataclass(frozen=True)
class CheckResult:
    """The outcome of one check on one batch.

    Attributes:
        index: position of the check in its suite.
        check: the check's key (``"range"``, ``"stuck"``, ...).
        column: the column(s) it checked, or None for table-wide checks.
        passed: whether the data met the rule.
        observed: the measured value the verdict rests on.
        threshold: the limit it was held to.
        n_failed: rows that broke the rule (0 for checks judged on aggregates).
        n_checked: rows the rule applied to.
        severity: ``"error"`` (fails the validation) or ``"warning"``.
        dimension: the quality dimension the check measures.
        message: what was found, in words.
        sample: up to ``sample_size`` failing rows, each with its key columns and the values
            checked.
    """

    index: int
    check: str
    column: str | None
    passed: bool
    observed: Any
    threshold: Any
    n_failed: int
    n_checked: int
    severity: Severity
    dimension: Dimension
    message: str
    sample: tuple[dict[str, Any], ...] = ()

    @property
    def label(self) -> str:
        """``key(column)``, e.g. ``range(temperature_c)``."""
        return f"{self.check}({self.column})" if self.column else self.check

    def to_dict(self) -> dict[str, Any]:
        return {
            "check": self.check,
            "column": self.column,
            "passed": self.passed,
            "observed": _jsonable(self.observed),
            "threshold": _jsonable(self.threshold),
            "n_failed": self.n_failed,
            "n_checked": self.n_checked,
            "severity": self.severity,
            "dimension": self.dimension.value,
            "message": self.message,
            "sample": [{k: _jsonable(v) for k, v in row.items()} for row in self.sample],
        }


@dataclass(frozen=True)
class Validation:
    """The outcome of a suite on a batch: one :class:`CheckResult` per check, and scores.

    ``passed`` is False when a check of severity ``error`` failed. ``scores`` holds a score in
    [0, 1] per quality dimension present in the suite and ``overall`` (their mean); a check's
    score is the share of its rows that pass (1 or 0 for checks judged on aggregates). With a
    window, ``windows`` has one row per window and check, and ``window_scores`` one row per
    window with the same scores.
    """

    results: tuple[CheckResult, ...]
    n_rows: int
    scores: dict[str, float]
    validated_at: datetime
    windows: pl.DataFrame | None = None
    window_scores: pl.DataFrame | None = None
    suite_name: str | None = None
    timestamp: str | None = None
    series: dict[int, pl.DataFrame] = field(default_factory=dict, repr=False)

    @property
    def passed(self) -> bool:
        return all(r.passed or r.severity == "warning" for r in self.results)

    def failed(self, severity: Severity | None = None) -> list[CheckResult]:
        """The failed checks, optionally only those of one severity."""
        return [
            r for r in self.results if not r.passed and (severity is None or r.severity == severity)
        ]

    def __getitem__(self, label: str) -> CheckResult:
        """A result by label (``"range(temperature_c)"``) or by key when it is unique."""
        matches = [r for r in self.results if label in (r.label, r.check)]
        if len(matches) != 1:
            labels = ", ".join(r.label for r in self.results)
            what = "No" if not matches else "More than one"
            raise KeyError(f"{what} result '{label}'. Results: {labels}.")
        return matches[0]

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {
            "passed": self.passed,
            "n_rows": self.n_rows,
            "validated_at": self.validated_at.isoformat(),
            "suite": self.suite_name,
            "scores": {k: round(v, 6) for k, v in self.scores.items()},
            "checks": [r.to_dict() for r in self.results],
        }
        if self.windows is not None and self.window_scores is not None:
            d["windows"] = [
                {k: _jsonable(v) for k, v in row.items()} for row in self.window_scores.to_dicts()
            ]
        return d

    def to_json(self, path: str | Path | None = None) -> str:
        """The validation as JSON (written to ``path`` too when given)."""
        text = json.dumps(self.to_dict(), indent=2, allow_nan=False)
        if path is not None:
            Path(path).write_text(text + "\n", encoding="utf-8")
        return text

    def to_html(self, path: str | Path | None = None) -> str:
        """A self-contained HTML report: verdicts, scores, failing sensors over time, samples."""
        from mlwarden.report.quality import validation_html

        return validation_html(self, path)

    def summary(self, passed_shown: int | None = None) -> str:
        """A plain-text table of the results: failed checks in full, then passed ones (all of
        them, or the first ``passed_shown`` and a count of the rest)."""
        from mlwarden.quality.display import summary_text

        return summary_text(self, passed_shown=passed_shown)

    def __repr__(self) -> str:
        failed = len(self.failed())
        return (
            f"Validation(passed={self.passed}, checks={len(self.results)}, failed={failed}, "
            f"rows={self.n_rows:,}, overall={self.scores.get('overall', 1.0):.3f})"
        )


def validate(
    data: object,
    suite: Suite | str | Path,
    *,
    window: str | int | None = None,
    now: datetime | None = None,
    sample_size: int = SAMPLE_SIZE,
) -> Validation:
    """Evaluate every check of ``suite`` on ``data`` in one fused pass.

    Parameters:
        data: a Polars/pandas DataFrame, an Arrow table, or a Parquet/CSV/IPC path.
        suite: a :class:`Suite`, or the path of a suite YAML file.
        window: also evaluate per window: a duration on the suite's timestamp (``"1h"``) or a
            number of rows.
        now: the time freshness is measured against (default: the current time, UTC).
        sample_size: failing rows kept per check.

    Example:
        >>> import polars as pl
        >>> from mlwarden.quality import Suite, validate
        >>> suite = Suite.from_dict({"checks": [
        ...     {"check": "range", "column": "temperature_c", "min": 0, "max": 400}]})
        >>> v = validate(pl.DataFrame({"temperature_c": [231.0, 229.5, 4120.0]}), suite)
        >>> v.passed, v.results[0].n_failed
        (False, 1)
    """
    return run(
        data, suite, window=window, now=now, sample_size=sample_size, keep_series=True
    ).validation


@dataclass
class Run:
    """A validation and the prepared frame it came from (with every row flag), for the gate."""

    validation: Validation
    frame: pl.DataFrame
    flags: dict[int, str]


def run(
    data: object,
    suite: Suite | str | Path,
    *,
    window: str | int | None = None,
    now: datetime | None = None,
    sample_size: int = SAMPLE_SIZE,
    keep_series: bool = False,
) -> Run:
    """Evaluate ``suite`` on ``data``; also return the prepared frame with its flag columns."""
    from mlwarden.quality.suite import Suite

    if not isinstance(suite, Suite):
        suite = Suite.from_yaml(suite)
    if not isinstance(sample_size, int) or isinstance(sample_size, bool) or sample_size < 0:
        raise ParameterError(
            f"The 'sample_size' parameter of validate must be an int >= 0; got {sample_size!r}.",
            parameter="sample_size",
        )
    now = _utc(now) if now is not None else datetime.now(UTC)
    frame = to_polars(data)
    spec = _window_spec(window, suite, frame)
    plan = _Plan(frame, suite, now)
    prepared = plan.prepare()
    validation = plan.evaluate(prepared, spec, sample_size, keep_series)
    return Run(validation, prepared, plan.flags)


def _utc(moment: datetime) -> datetime:
    if not isinstance(moment, datetime):
        raise ParameterError(f"'now' must be a datetime; got {moment!r}.", parameter="now")
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def _window_spec(window: str | int | None, suite: Suite, frame: pl.DataFrame) -> WindowSpec | None:
    if window is None:
        return None
    if isinstance(window, str) and suite.timestamp is None:
        raise ParameterError(
            f"Windows of '{window}' need the suite's timestamp column; set 'timestamp' in the "
            "suite (or pass a number of rows as the window).",
            parameter="window",
        )
    spec = WindowSpec.parse(window, timestamp=suite.timestamp)
    if spec.timestamp is not None and spec.timestamp not in frame.columns:
        raise InputError(
            unknown_column_message(spec.timestamp, frame.columns), column=spec.timestamp
        )
    return spec


class _Plan:
    """The fused query of one suite on one frame."""

    def __init__(self, frame: pl.DataFrame, suite: Suite, now: datetime) -> None:
        self.frame = frame
        self.suite = suite
        self.now = now
        self.schema = dict(frame.schema)
        self.missing: dict[int, list[str]] = {}
        self.contexts: dict[int, Context] = {}
        self.flags: dict[int, str] = {}
        self.checked: dict[int, str] = {}
        self.observed: dict[int, list[tuple[str, str]]] = {}
        self.reordered = False
        for i, check in enumerate(suite.checks):
            needed = list(check.reads())
            if check.ordered:
                if suite.timestamp is None:
                    raise ParameterError(
                        f"The check '{check.key}' on '{check.subject}' reads readings in time "
                        "order: set the suite's timestamp column ('timestamp:' in the suite "
                        "file, or Suite(timestamp=...)).",
                        parameter="timestamp",
                    )
                needed += [suite.timestamp, *suite.entity]
            missing = [c for c in dict.fromkeys(needed) if c not in self.schema]
            if missing:
                self.missing[i] = missing
                continue
            grouped = grouped_parameters(check)
            self.contexts[i] = Context(
                i,
                schema=self.schema,
                timestamp=suite.timestamp,
                entity=suite.entity,
                grouped=frozenset(grouped),
                now=now,
                frame=frame,
            )

    def _active(self, ordered: bool) -> list[tuple[int, Check, Context]]:
        return [
            (i, self.suite.checks[i], ctx)
            for i, ctx in self.contexts.items()
            if self.suite.checks[i].ordered == ordered
        ]

    def prepare(self) -> pl.DataFrame:
        lf = self.frame.lazy().with_row_index(ROW)
        lf = lf.with_columns(_utc_columns(self.schema, self._time_columns()))
        lf = self._join_parameters(lf)
        lf = self._stage(lf, self._active(ordered=False))
        ordered = self._active(ordered=True)
        if ordered:
            ts = self.suite.timestamp
            assert ts is not None
            keys = [*self.suite.entity, ts]
            lf = lf.sort(keys, nulls_last=True, maintain_order=True)
            self.reordered = True
            same = pl.lit(True)
            for e in self.suite.entity:
                same = same & (pl.col(e) == pl.col(e).shift(1)).fill_null(False)
            same = same & (pl.int_range(pl.len()) > 0)
            lf = lf.with_columns(same.alias("__same")).with_columns(
                pl.when(pl.col("__same"))
                .then((pl.col(ts) - pl.col(ts).shift(1)).dt.total_microseconds() / 1e6)
                .alias("__dt")
            )
            lf = self._stage(lf, ordered)
        return lf.collect()

    def _time_columns(self) -> set[str]:
        columns = {c for i, _ in self.contexts.items() for c in self.suite.checks[i].reads()}
        if self.suite.timestamp is not None:
            columns.add(self.suite.timestamp)
        return {c for c in columns if c in self.schema}

    def _join_parameters(self, lf: pl.LazyFrame) -> pl.LazyFrame:
        by_column: dict[str, list[tuple[int, Check, Context]]] = defaultdict(list)
        for i, ctx in self.contexts.items():
            if ctx.grouped:
                check = self.suite.checks[i]
                by = getattr(check, "by", None)
                if by is None or by not in self.schema:
                    raise ParameterError(
                        f"The check '{check.key}' has per-group parameters ('groups') but its "
                        f"'by' column {by!r} is not in the data.",
                        parameter="by",
                    )
                by_column[by].append((i, check, ctx))
        for by, members in by_column.items():
            keys = sorted({str(k) for _, c, _ in members for k in getattr(c, "groups", {})})
            table: dict[str, list[Any]] = {"__key": keys}
            for _, check, ctx in members:
                groups = getattr(check, "groups", {})
                for name in sorted(ctx.grouped):
                    default = check.group_value(name, getattr(check, name))
                    table[ctx.param_column(name)] = [
                        check.group_value(name, groups.get(k, {}).get(name, getattr(check, name)))
                        if k in groups
                        else default
                        for k in keys
                    ]
            right = pl.DataFrame(table, strict=False).lazy()
            lf = lf.join(
                right,
                left_on=pl.col(by).cast(pl.String),
                right_on="__key",
                how="left",
                maintain_order="left",
            )
            defaults = []
            for _, check, ctx in members:
                for name in ctx.grouped:
                    default = check.group_value(name, getattr(check, name))
                    if default is not None:
                        column = ctx.param_column(name)
                        defaults.append(pl.col(column).fill_null(default))
            if defaults:
                lf = lf.with_columns(defaults)
        return lf

    def _stage(self, lf: pl.LazyFrame, active: list[tuple[int, Check, Context]]) -> pl.LazyFrame:
        stages: list[dict[str, pl.Expr]] = []
        sparse: list[list[Sparse]] = []
        for _, check, ctx in active:
            for k, helpers in enumerate(_staged(check.helpers(ctx))):
                if len(stages) <= k:
                    stages.append({})
                    sparse.append([])
                if isinstance(helpers, Sparse):
                    sparse[k].append(helpers)
                else:
                    stages[k].update(helpers)
        for helpers, candidates in zip(stages, sparse, strict=True):
            if helpers:
                lf = lf.with_columns(**helpers)
            if candidates:
                # Materialized once, so the rows before this stage are not computed twice.
                lf = lf.collect().lazy()
            for stage in candidates:
                rows = lf.filter(stage.where).select(
                    pl.col(ROW), *(e.alias(name) for name, e in stage.columns.items())
                )
                lf = lf.join(rows, on=ROW, how="left", maintain_order="left")
        flags: dict[str, pl.Expr] = {}
        for i, check, ctx in active:
            fail = check.fails(ctx)
            if fail is not None:
                self.flags[i] = f"__f{i}"
                flags[self.flags[i]] = fail.fill_null(False)
            applies = check.checked(ctx)
            if applies is not None:
                self.checked[i] = f"__k{i}"
                flags[self.checked[i]] = applies.fill_null(False)
        return lf.with_columns(**flags) if flags else lf

    def _aggregates(self) -> list[pl.Expr]:
        exprs = [pl.len().alias("__n")]
        for i, ctx in self.contexts.items():
            check = self.suite.checks[i]
            if i in self.flags:
                exprs.append(pl.col(self.flags[i]).sum().alias(f"__nf{i}"))
            if i in self.checked:
                exprs.append(pl.col(self.checked[i]).sum().alias(f"__nk{i}"))
            names = []
            for name, expr in check.observe(ctx).items():
                exprs.append(expr.alias(f"__o{i}_{name}"))
                names.append((f"__o{i}_{name}", name))
            self.observed[i] = names
        return exprs

    def evaluate(
        self, prepared: pl.DataFrame, spec: WindowSpec | None, sample_size: int, keep_series: bool
    ) -> Validation:
        aggregates = self._aggregates()
        samples = [
            pl.col(ROW).filter(pl.col(flag)).head(sample_size).implode().alias(f"__s{i}")
            for i, flag in self.flags.items()
        ]
        totals = prepared.select(aggregates + samples).row(0, named=True)
        n_rows = int(totals["__n"])
        sample_rows = self._sample_rows(prepared, totals)
        results = []
        for i, check in enumerate(self.suite.checks):
            verdict, stats = self._judge(i, check, totals, n_rows)
            results.append(self._result(i, check, verdict, stats, sample_rows.get(i, ())))
        scores = _scores(results, n_rows)
        windows = window_scores = None
        if spec is not None:
            windows, window_scores = self._windows(prepared, spec, aggregates)
        series = self._series(prepared, results) if keep_series else {}
        return Validation(
            results=tuple(results),
            n_rows=n_rows,
            scores=scores,
            validated_at=self.now,
            windows=windows,
            window_scores=window_scores,
            suite_name=self.suite.name,
            timestamp=self.suite.timestamp,
            series=series,
        )

    def _judge(
        self, i: int, check: Check, totals: dict[str, Any], n_rows: int
    ) -> tuple[Verdict, Stats]:
        if i in self.missing:
            names = ", ".join(f"'{c}'" for c in self.missing[i])
            hints = [unknown_column_message(c, list(self.schema)) for c in self.missing[i]]
            hint = next((h[h.index("Did") :] for h in hints if "Did you mean" in h), "")
            stats = Stats(n_rows, 0, 0, {}, self.schema, self.now)
            message = f"The data has no column {names}, which this check reads. {hint}".strip()
            return Verdict(False, None, message), stats
        n_failed = int(totals.get(f"__nf{i}") or 0)
        n_checked = int(totals[f"__nk{i}"]) if i in self.checked else n_rows
        values = {name: totals[alias] for alias, name in self.observed.get(i, ())}
        stats = Stats(n_rows, n_failed, n_checked, values, self.schema, self.now)
        return check.judge(stats), stats

    def _result(
        self,
        i: int,
        check: Check,
        verdict: Verdict,
        stats: Stats,
        sample: Sequence[dict[str, Any]],
    ) -> CheckResult:
        return CheckResult(
            index=i,
            check=check.key,
            column=check.subject,
            passed=bool(verdict.passed),
            observed=verdict.observed,
            threshold=check.threshold(),
            n_failed=stats.n_failed,
            n_checked=stats.n_checked,
            severity=check.level,
            dimension=check.dimension,
            message=verdict.message,
            sample=tuple(sample),
        )

    def _keys(self, prepared: pl.DataFrame) -> list[str]:
        suite = self.suite
        if suite.id and all(c in prepared.columns for c in suite.id):
            return list(suite.id)
        if suite.timestamp is not None and suite.timestamp in prepared.columns:
            return [c for c in suite.entity if c in prepared.columns] + [suite.timestamp]
        return []

    def _sample_rows(
        self, prepared: pl.DataFrame, totals: dict[str, Any]
    ) -> dict[int, list[dict[str, Any]]]:
        wanted = {i: list(totals[f"__s{i}"] or []) for i in self.flags}
        every = sorted({r for rows in wanted.values() for r in rows})
        if not every:
            return {}
        keys = self._keys(prepared)
        columns = list(
            dict.fromkeys([ROW, *keys, *(c for c in self.schema if not c.startswith("__"))])
        )
        if self.reordered:
            rows = prepared.filter(pl.col(ROW).is_in(every)).select(columns)
        else:  # rows are still in input order: row numbers are positions
            rows = prepared.select(columns)[every]
        by_row = {r[ROW]: r for r in rows.to_dicts()}
        samples: dict[int, list[dict[str, Any]]] = {}
        for i, row_numbers in wanted.items():
            check = self.suite.checks[i]
            shown = list(dict.fromkeys([*keys, *check.reads()]))
            samples[i] = [
                {"row": r, **{c: by_row[r][c] for c in shown}} for r in sorted(row_numbers)
            ]
        return samples

    def _windows(
        self, prepared: pl.DataFrame, spec: WindowSpec, aggregates: list[pl.Expr]
    ) -> tuple[pl.DataFrame, pl.DataFrame]:
        if spec.every is not None:
            assert spec.timestamp is not None
            start = pl.col(spec.timestamp).dt.truncate(spec.every)
            end = pl.col(spec.timestamp).dt.offset_by(spec.every).dt.truncate(spec.every)
            keyed = prepared.with_columns(start.alias("__ws"), end.alias("__we"))
            grouped = (
                keyed.group_by("__ws")
                .agg([*aggregates, pl.col("__we").first()])
                .filter(pl.col("__ws").is_not_null())
            )
        else:
            assert spec.size is not None
            size = spec.size
            keyed = prepared.with_columns((pl.col(ROW) // size).alias("__w"))
            grouped = (
                keyed.group_by("__w")
                .agg(aggregates)
                .with_columns(
                    (pl.col("__w") * size).alias("__ws"),
                    (pl.col("__w") * size + pl.col("__n")).alias("__we"),
                )
            )
        grouped = grouped.sort("__ws")
        n = grouped["__n"].cast(pl.Int64)
        zeros = pl.Series([0] * grouped.height, dtype=pl.Int64)
        parts = []
        window_rows: list[dict[str, Any]] | None = None
        for i, check in enumerate(self.suite.checks):
            if not check.windowed:
                continue
            n_failed = grouped[f"__nf{i}"].cast(pl.Int64) if i in self.flags else zeros
            n_checked = grouped[f"__nk{i}"].cast(pl.Int64) if i in self.checked else n
            if i in self.missing:
                passed = pl.Series([False] * grouped.height)
                observed = pl.Series([None] * grouped.height, dtype=pl.Float64)
            elif isinstance(check, RowCheck) and type(check).judge is RowCheck.judge:
                passed = n_failed <= check.max_share * n_checked + 1e-9
                observed = (n_failed / n_checked).fill_nan(0.0)
            else:
                if window_rows is None:
                    window_rows = grouped.rows(named=True)
                verdicts = [self._judge(i, check, w, int(w["__n"]))[0] for w in window_rows]
                passed = pl.Series([bool(v.passed) for v in verdicts])
                observed = pl.Series([_scalar(v.observed) for v in verdicts], dtype=pl.Float64)
            parts.append(
                pl.DataFrame(
                    {
                        "window_start": grouped["__ws"],
                        "window_end": grouped["__we"],
                        "index": pl.Series([i] * grouped.height, dtype=pl.Int64),
                        "check": check.key,
                        "column": pl.Series([check.subject] * grouped.height, dtype=pl.String),
                        "dimension": check.dimension.value,
                        "severity": check.level,
                        "passed": passed,
                        "observed": observed,
                        "n_failed": n_failed,
                        "n_checked": n_checked,
                        "n_rows": n,
                    }
                )
            )
        windows = pl.concat(parts) if parts else pl.DataFrame()
        if not parts:
            return windows, grouped.select(
                pl.col("__ws").alias("window_start"),
                pl.col("__we").alias("window_end"),
                pl.col("__n").alias("n_rows"),
                pl.lit(True).alias("passed"),
                pl.lit(0).alias("n_failed_checks"),
                pl.lit(1.0).alias("overall"),
            )
        score = (
            pl.when(pl.col("passed"))
            .then(1.0)
            .when((pl.col("n_failed") > 0) & (pl.col("n_checked") > 0))
            .then((1.0 - pl.col("n_failed") / pl.col("n_checked")).clip(0.0, 1.0))
            .otherwise(0.0)
        )
        keys = ["window_start", "window_end", "n_rows"]
        per_dimension = (
            windows.with_columns(score.alias("score"))
            .group_by([*keys, "dimension"])
            .agg(pl.col("score").mean())
            .pivot(on="dimension", index=keys, values="score")
        )
        present = [d.value for d in Dimension if d.value in per_dimension.columns]
        outcome = windows.group_by(keys).agg(
            (~(~pl.col("passed") & (pl.col("severity") == "error")).any()).alias("passed"),
            (~pl.col("passed")).sum().alias("n_failed_checks"),
        )
        window_scores = (
            outcome.join(per_dimension, on=keys, how="left")
            .with_columns(pl.mean_horizontal(present).alias("overall"))
            .select([*keys, "passed", "n_failed_checks", *present, "overall"])
            .sort("window_start")
        )
        return windows.drop("dimension"), window_scores

    def _series(
        self, prepared: pl.DataFrame, results: list[CheckResult]
    ) -> dict[int, pl.DataFrame]:
        """For reports: the values of each failing check's column over time, thinned."""
        ts = self.suite.timestamp
        if ts is None or ts not in prepared.columns:
            return {}
        out: dict[int, pl.DataFrame] = {}
        for r in results:
            if r.passed or r.index not in self.flags:
                continue
            check = self.suite.checks[r.index]
            cols = [c for c in check.reads() if c in prepared.columns and c != ts]
            if not cols or not self.schema[cols[0]].is_numeric():
                continue
            flag = self.flags[r.index]
            keep = [ts, cols[0], flag, *[e for e in self.suite.entity if e in prepared.columns]]
            frame = prepared.select(keep).rename({flag: SERIES_FLAG})
            step = max(1, frame.height // 5000)
            thinned = frame.filter((pl.int_range(pl.len()) % step == 0) | pl.col(SERIES_FLAG))
            out[r.index] = thinned.head(20_000)
            if len(out) >= 12:
                break
        return out


def _staged(
    helpers: dict[str, pl.Expr] | list[dict[str, pl.Expr] | Sparse],
) -> list[dict[str, pl.Expr] | Sparse]:
    return helpers if isinstance(helpers, list) else [helpers] if helpers else []


def grouped_parameters(check: Check) -> set[str]:
    """Names of the parameters a check sets per group (joined in as columns)."""
    groups = getattr(check, "groups", None)
    if not groups:
        return set()
    return {name for values in groups.values() for name in values}


def _utc_columns(schema: dict[str, pl.DataType], columns: set[str]) -> list[pl.Expr]:
    exprs = []
    for c in sorted(columns):
        dtype = schema[c]
        if isinstance(dtype, pl.Datetime):
            if dtype.time_zone is None:
                exprs.append(pl.col(c).dt.replace_time_zone("UTC"))
            elif dtype.time_zone != "UTC":
                exprs.append(pl.col(c).dt.convert_time_zone("UTC"))
        elif dtype == pl.Date:
            exprs.append(pl.col(c).cast(pl.Datetime("us")).dt.replace_time_zone("UTC"))
    return exprs


def _scores(results: Sequence[CheckResult], n_rows: int) -> dict[str, float]:
    by_dimension: dict[str, list[float]] = defaultdict(list)
    for r in results:
        if r.passed:
            score = 1.0
        elif r.n_failed > 0 and r.n_checked > 0:
            score = max(0.0, 1.0 - r.n_failed / r.n_checked)
        else:
            score = 0.0
        by_dimension[r.dimension.value].append(score)
    scores = {d.value: sum(v) / len(v) for d in Dimension if (v := by_dimension.get(d.value))}
    scores["overall"] = sum(scores.values()) / len(scores) if scores else 1.0
    return scores


def _scalar(value: Any) -> float | None:
    if isinstance(value, bool):
        return float(value)
    if isinstance(value, int | float):
        return float(value) if math.isfinite(value) else None
    return None


def _jsonable(value: Any) -> Any:
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, timedelta):
        return value.total_seconds()
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if value is None or isinstance(value, bool | int | str):
        return value
    return str(value)
