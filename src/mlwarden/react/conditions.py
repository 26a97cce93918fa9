"""The condition of a policy, and where it holds in a model's evaluated windows.

A condition picks *signals* of a window and says how many windows in a row must have one::

    when:
      metric: "quality*"      # glob over metric names: quality, drift.ks, performance.roc_auc
      column: "*pressure*"    # glob over the column (for quality: the check, stuck(pressure_bar))
      segment: ""             # "" the whole data only (default), "*" any segment, or a glob
      severity: error         # error | warning
      consecutive: 2          # in this many consecutive evaluated windows (default 1)
      incident: open          # open | closed: the state of the alerts' incident now

By default a signal is an **alert** (a metric outside its bounds, not marked a false alarm).
With ``above`` and/or ``below`` it is a **metric value** beyond a threshold of one's own,
whatever the metric's bounds (``above: 0.3`` holds when the value is greater than 0.3; with
both, when it lies outside ``[below, above]``).

Severity: a quality alert has the severity of its failing check in the window's validation;
performance metrics count as ``error``; drift and everything else as ``warning``.

Globs know ``*`` (any text) and ``?`` (one character), and match the whole name, case-sensitively.
"Consecutive" counts the evaluated windows of one model version in time order: a window without
any logged row was never evaluated and does not break a run.

Example:
    >>> from mlwarden.react.conditions import Condition
    >>> condition = Condition.parse(
    ...     "p", {"metric": "quality*", "column": "*pressure*", "consecutive": 2}
    ... )
    >>> condition.consecutive, condition.segment
    (2, '')
    >>> condition.describe()
    'an alert of quality* on column *pressure* (whole data) in 2 consecutive windows'
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass
from functools import lru_cache
from typing import TYPE_CHECKING, Any, Final

import polars as pl
from sqlalchemy import select

from mlwarden.react.spec import SpecReader

if TYPE_CHECKING:
    from datetime import datetime, timedelta

    from mlwarden.store.metadata import Store, WindowRecord

__all__ = ["Condition", "Occurrence", "compile_glob", "glob_matches", "occurrences"]

SEVERITIES: Final = ("error", "warning")
INCIDENT_STATES: Final = ("open", "closed", "withdrawn")
MAX_EVIDENCE: Final = 50
_NUMBERS: Final = ("value", "lower", "upper")
_SIGNAL_SCHEMA: Final = {
    "window_id": pl.Int64,
    "metric": pl.String,
    "column": pl.String,
    "segment": pl.String,
    "value": pl.Float64,
    "lower": pl.Float64,
    "upper": pl.Float64,
    "incident_id": pl.Int64,
    "incident_status": pl.String,
}


@lru_cache(maxsize=256)
def compile_glob(pattern: str) -> re.Pattern[str]:
    """The regular expression of a glob: ``*`` any text, ``?`` one character, the rest literal.

    Example:
        >>> compile_glob("drift.*").fullmatch("drift.ks") is not None
        True
    """
    wildcards = {"*": ".*", "?": "."}
    return re.compile("".join(wildcards.get(c) or re.escape(c) for c in pattern), re.DOTALL)


def glob_matches(pattern: str, values: pl.Series) -> pl.Expr:
    """A filter: the column's value (one of ``values``) matches the glob ``pattern``.

    The pattern is matched against the distinct values, never row by row.

    Example:
        >>> frame = pl.DataFrame({"metric": ["quality", "drift.ks", "quality_score"]})
        >>> frame.filter(glob_matches("quality*", frame["metric"]))["metric"].to_list()
        ['quality', 'quality_score']
    """
    regex = compile_glob(pattern)
    name = values.name
    hits = [v for v in values.unique().drop_nulls().to_list() if regex.fullmatch(v)]
    return pl.col(name).is_in(pl.Series(name, hits, dtype=pl.String).implode())


@dataclass(frozen=True)
class Condition:
    """When a policy acts; see the module documentation for each field."""

    metric: str
    column: str = "*"
    segment: str = ""
    severity: str | None = None
    consecutive: int = 1
    incident: str | None = None
    above: float | None = None
    below: float | None = None

    @classmethod
    def parse(cls, policy: str, spec: object) -> Condition:
        """The condition from the ``when`` mapping of policy ``policy``."""
        reader = SpecReader(policy, "when", spec)
        metric = reader.string("metric")
        if not metric:
            raise reader.error("metric", "expected a metric name or glob such as 'drift.*', got ''")
        condition = cls(
            metric=metric,
            column=reader.string("column", "*"),
            segment=reader.string("segment", ""),
            severity=reader.choice("severity", SEVERITIES, None),
            consecutive=reader.integer("consecutive", minimum=1, default=1),
            incident=reader.choice("incident", INCIDENT_STATES, None),
            above=reader.number("above", default=None),
            below=reader.number("below", default=None),
        )
        reader.done()
        if condition.on_values and condition.incident is not None:
            raise reader.error(
                "incident",
                "expected no incident state on a condition over metric values (above/below), "
                "which can hold without an alert; remove 'incident' or 'above'/'below'",
            )
        if (
            condition.above is not None
            and condition.below is not None
            and condition.below >= condition.above
        ):
            raise reader.error(
                "below",
                f"expected a number below 'above' ({condition.above:g}): with both, the "
                f"condition holds outside [below, above]; got {condition.below:g}",
            )
        return condition

    @property
    def on_values(self) -> bool:
        """Whether the condition is on metric values (``above``/``below``), not alerts."""
        return self.above is not None or self.below is not None

    def describe(self) -> str:
        """The condition in words, as the audit log records it."""
        if self.on_values:
            bounds = []
            if self.above is not None:
                bounds.append(f"> {self.above:g}")
            if self.below is not None:
                bounds.append(f"< {self.below:g}")
            text = f"{self.metric} {' or '.join(bounds)}"
        else:
            text = f"an alert of {self.metric}"
        if self.column != "*":
            text += f" on column {self.column}"
        if self.segment == "":
            text += " (whole data)"
        elif self.segment != "*":
            text += f" (segment {self.segment})"
        if self.severity is not None:
            text += f", severity {self.severity}"
        if self.consecutive > 1:
            text += f" in {self.consecutive} consecutive windows"
        if self.incident is not None:
            text += f", incident {self.incident}"
        return text

    def to_dict(self) -> dict[str, Any]:
        return {k: v for k, v in asdict(self).items() if v is not None}


@dataclass(frozen=True)
class Occurrence:
    """The condition held: in ``window`` (of ``version``), for the ``consecutive``-th window in
    a row. ``subject`` is what the occurrence is about, once: ``incident-<id>``, or for a
    condition without an incident ``window-<id>`` of the first window of the run."""

    model: str
    version: str
    window: WindowRecord
    incident: int | None
    subject: str
    evidence: tuple[dict[str, Any], ...]
    evidence_total: int


def occurrences(
    store: Store,
    condition: Condition,
    model: str,
    *,
    now: datetime,
    lookback: timedelta | None,
) -> list[Occurrence]:
    """Where ``condition`` holds in the evaluated windows of ``model`` ending in
    ``[now - lookback, now]``: one occurrence per subject (incident, or run of windows), at
    the first window where it held, oldest first."""
    records = {w.id: w for w in store.windows(model) if w.evaluated_at is not None}
    if not records:
        return []
    windows = pl.DataFrame(
        [(w.id, w.version, w.start, w.end) for w in records.values()],
        schema={
            "id": pl.Int64,
            "version": pl.String,
            "start": pl.Datetime("us", "UTC"),
            "end": pl.Datetime("us", "UTC"),
        },
        orient="row",
    )
    signals = _signals(store, condition, model)
    per_window = signals.group_by("window_id").agg(subject_incident=pl.col("incident_id").min())
    runs = (
        windows.sort("version", "start")
        .join(per_window, left_on="id", right_on="window_id", how="left")
        .with_columns(holds=pl.col("id").is_in(signals["window_id"].unique().implode()))
        .with_columns(run=(~pl.col("holds")).cum_sum().over("version"))
        .with_columns(
            streak=pl.col("holds").cast(pl.Int64).cum_sum().over("version", "run"),
            run_start=pl.col("id").filter(pl.col("holds")).first().over("version", "run"),
        )
    )
    firing = runs.filter(
        (pl.col("streak") >= condition.consecutive)
        & (pl.col("end") <= now)
        & (pl.lit(True) if lookback is None else pl.col("end") >= now - lookback)
    )
    if firing.height == 0:
        return []
    firing = (
        firing.with_columns(
            subject=pl.when(pl.col("subject_incident").is_not_null())
            .then(pl.format("incident-{}", pl.col("subject_incident")))
            .otherwise(pl.format("window-{}", pl.col("run_start")))
        )
        .sort("start", "id")
        .unique("subject", keep="first", maintain_order=True)
    )
    found = []
    for row in firing.iter_rows(named=True):  # one per incident or run, not per data row
        streak = runs.filter(
            (pl.col("version") == row["version"])
            & (pl.col("run") == row["run"])
            & (pl.col("streak") > row["streak"] - condition.consecutive)
            & (pl.col("streak") <= row["streak"])
        )
        evidence = _evidence(signals, streak)
        found.append(
            Occurrence(
                model=model,
                version=row["version"],
                window=records[row["id"]],
                incident=row["subject_incident"],
                subject=row["subject"],
                evidence=tuple(evidence.head(MAX_EVIDENCE).to_dicts()),
                evidence_total=evidence.height,
            )
        )
    return found


def _evidence(signals: pl.DataFrame, streak: pl.DataFrame) -> pl.DataFrame:
    """The signals of the windows of a run, oldest window first, as JSON-ready columns."""
    return (
        signals.join(
            streak.select("id", "start", "end"), left_on="window_id", right_on="id", how="inner"
        )
        .sort("start", "metric", "column", "segment")
        .select(
            "window_id",
            pl.col("start").dt.to_string("%Y-%m-%dT%H:%M:%S%:z").alias("window_start"),
            pl.col("end").dt.to_string("%Y-%m-%dT%H:%M:%S%:z").alias("window_end"),
            "metric",
            "column",
            "segment",
            # JSON has no NaN or infinity (PostgreSQL refuses them): such a value is unknown.
            *(pl.when(pl.col(c).is_finite()).then(pl.col(c)).alias(c) for c in _NUMBERS),
            "severity",
            "incident_id",
        )
    )


def _signals(store: Store, condition: Condition, model: str) -> pl.DataFrame:
    """The alerts (or metric values) of the model's evaluated windows that the condition picks,
    with their severity and their incident's state."""
    frame = _values(store, condition, model) if condition.on_values else _alerts(store, model)
    for column, pattern in (
        ("metric", condition.metric),
        ("column", condition.column),
        ("segment", condition.segment),
    ):
        if pattern != "*":
            frame = frame.filter(glob_matches(pattern, frame[column]))
    if condition.incident is not None:
        frame = frame.filter(pl.col("incident_status") == condition.incident)
    if condition.on_values:
        beyond = pl.lit(False)
        if condition.above is not None:
            beyond = beyond | (pl.col("value") > condition.above)
        if condition.below is not None:
            beyond = beyond | (pl.col("value") < condition.below)
        frame = frame.filter(beyond.fill_null(False))
    # Last: it reads the validation of each window still concerned.
    frame = _with_severity(store, frame)
    if condition.severity is not None:
        frame = frame.filter(pl.col("severity") == condition.severity)
    return frame


def _like(pattern: str) -> str:
    """The SQL LIKE prefilter of a glob (exact matching follows, case-sensitively)."""
    escaped = pattern.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return escaped.replace("*", "%").replace("?", "_")


def _alerts(store: Store, model: str) -> pl.DataFrame:
    from mlwarden.store.schema import AlertRow, IncidentRow, WindowRow

    model_id = store.get_model(model).id
    query = (
        select(
            AlertRow.window_id,
            AlertRow.metric,
            AlertRow.column,
            AlertRow.segment,
            AlertRow.value,
            AlertRow.lower,
            AlertRow.upper,
            AlertRow.incident_id,
            IncidentRow.status,
        )
        .join(WindowRow, WindowRow.id == AlertRow.window_id)
        .outerjoin(IncidentRow, IncidentRow.id == AlertRow.incident_id)
        .where(
            AlertRow.model_id == model_id,
            AlertRow.status != "false_alarm",  # a person said so: nothing to act on
            WindowRow.evaluated_at.is_not(None),
        )
    )
    with store.session() as s:
        rows = s.execute(query).all()
    return pl.DataFrame([tuple(r) for r in rows], schema=_SIGNAL_SCHEMA, orient="row")


def _values(store: Store, condition: Condition, model: str) -> pl.DataFrame:
    from mlwarden.store.schema import MetricRow, VersionRow, WindowRow

    model_id = store.get_model(model).id
    query = (
        select(
            MetricRow.window_id,
            MetricRow.name,
            MetricRow.column,
            MetricRow.segment,
            MetricRow.value,
            MetricRow.lower,
            MetricRow.upper,
        )
        .join(WindowRow, WindowRow.id == MetricRow.window_id)
        .join(VersionRow, VersionRow.id == WindowRow.version_id)
        .where(
            VersionRow.model_id == model_id,
            WindowRow.evaluated_at.is_not(None),
            MetricRow.name.like(_like(condition.metric), escape="\\"),
        )
    )
    with store.session() as s:
        rows = s.execute(query).all()
    return pl.DataFrame([(*r, None, None) for r in rows], schema=_SIGNAL_SCHEMA, orient="row")


def _with_severity(store: Store, frame: pl.DataFrame) -> pl.DataFrame:
    """A ``severity`` column: a quality signal's check severity from its window's validation,
    ``error`` for performance, ``warning`` otherwise."""
    quality = frame.filter(pl.col("metric") == "quality")
    checks: list[tuple[int, str, str]] = []
    for window_id in quality["window_id"].unique().to_list():  # per window, not per row
        validation = store.validation(window_id) or {}
        for check in validation.get("checks", []):
            column = check.get("column")
            label = f"{check['check']}({column})" if column else str(check["check"])
            checks.append((window_id, label, str(check.get("severity", "error"))))
    severities = pl.DataFrame(
        checks,
        schema={"window_id": pl.Int64, "column": pl.String, "check_severity": pl.String},
        orient="row",
    ).unique(["window_id", "column"], keep="first")
    return (
        frame.join(severities, on=["window_id", "column"], how="left")
        .with_columns(
            severity=pl.when(pl.col("metric") == "quality")
            .then(pl.col("check_severity").fill_null("error"))
            .when(pl.col("metric").str.starts_with("performance."))
            .then(pl.lit("error"))
            .otherwise(pl.lit("warning"))
        )
        .drop("check_severity")
    )
