"""The reads behind the dashboard pages, each a few SQL statements over the metadata store.

The :class:`~mlwarden.store.metadata.Store` answers one question per method; a page asks many at
once and over long ranges (90 days of hourly windows hold some 200,000 metric rows), so these
queries select only what a page shows: the metrics it plots, by name through the
``ix_metrics_name`` index; the per-window counts (alerts, drifted columns) with one ``GROUP BY``
each. Results come back as Polars frames or frozen dataclasses, never as live ORM rows.

Example:
    >>> from datetime import UTC, datetime, timedelta
    >>> from mlwarden.store.metadata import MetricValue, Store
    >>> store = Store("sqlite://")
    >>> store.migrate()
    >>> _ = store.create_model("m"), store.create_version("m", "1")
    >>> t = datetime(2024, 5, 1, tzinfo=UTC)
    >>> w = store.upsert_window("m", "1", t, t + timedelta(hours=1), n_rows=360)
    >>> _ = store.write_metrics(w.id, [
    ...     MetricValue("quality_score", 0.98, column="overall"),
    ...     MetricValue("drift.ks", 0.3, upper=0.1, column="pressure_bar"),
    ... ])
    >>> _ = store.record_alerts(w.id, [MetricValue("drift.ks", 0.3, upper=0.1, column="x")])
    >>> [(h.name, h.status, h.alerts) for h in model_health(store)]
    [('m', 'alerting', 1)]
    >>> timeline(store, "m").windows.select("n_rows", "alerts", "drifted").row(0)
    (360, 1, 1)
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, Final, Literal

import polars as pl
from sqlalchemy import Integer, and_, func, select, tuple_, union_all

from mlwarden.exceptions import NotFoundError
from mlwarden.store.schema import (
    AlertRow,
    AliasRow,
    IncidentRow,
    MetricRow,
    ModelRow,
    VersionRow,
    WindowRow,
)

if TYPE_CHECKING:
    from collections.abc import Sequence

    from sqlalchemy import ColumnElement, Select
    from sqlalchemy.orm import Session

    from mlwarden.store.metadata import Store

Status = Literal["ok", "warning", "alerting", "no data"]

PRODUCTION: Final = "production"
SPARKLINE_WINDOWS: Final = 48
# Names of a family of metrics ('performance.f1', 'drift.ks', ...) as an index range: '/' is the
# character after '.', so [prefix + '.', prefix + '/') holds every name with that prefix.
_AFTER_DOT: Final = "/"

_UTC: Final = pl.Datetime("us", "UTC")
_WINDOW_SCHEMA: Final[dict[str, Any]] = {
    "id": pl.Int64,
    "version": pl.String,
    "start": _UTC,
    "end": _UTC,
    "n_rows": pl.Int64,
    "n_labelled": pl.Int64,
}
_METRIC_SCHEMA: Final[dict[str, Any]] = {
    "window_id": pl.Int64,
    "name": pl.String,
    "column": pl.String,
    "segment": pl.String,
    "value": pl.Float64,
    "lower": pl.Float64,
    "upper": pl.Float64,
    "alert": pl.Boolean,
}


def _family(prefix: str) -> ColumnElement[bool]:
    """Metric names that start with ``prefix.``, as a range the name index can seek."""
    return and_(MetricRow.name >= f"{prefix}.", MetricRow.name < f"{prefix}{_AFTER_DOT}")


# -- the models page ----------------------------------------------------------------------------


@dataclass(frozen=True)
class ModelHealth:
    """A model at a glance: its newest evaluated window and what is wrong in it.

    Attributes:
        name: the model.
        description: as registered.
        aliases: alias -> version.
        version: the version summarized (the production version when it has windows, else the
            version evaluated last); None without any window.
        last_window: id of the newest window of that version.
        last_end: when that window ends.
        alerts: metrics outside their bounds in that window.
        warnings: quality checks of severity ``warning`` that failed in that window.
        open_incidents: incidents of the model that are still open.
        scores: the overall quality score of the newest windows, oldest first.
    """

    name: str
    description: str
    aliases: dict[str, str]
    version: str | None
    last_window: int | None
    last_end: datetime | None
    alerts: int
    warnings: int
    open_incidents: int
    scores: tuple[float | None, ...]

    @property
    def production(self) -> str | None:
        return self.aliases.get(PRODUCTION)

    @property
    def status(self) -> Status:
        """``alerting`` when the newest window has alerts, ``warning`` when it has failed
        warning checks or older incidents are open, ``no data`` before any evaluation."""
        if self.last_window is None:
            return "no data"
        if self.alerts:
            return "alerting"
        if self.warnings or self.open_incidents:
            return "warning"
        return "ok"


def model_health(store: Store, spark: int = SPARKLINE_WINDOWS) -> list[ModelHealth]:
    """Every model with the state of its newest window: seven statements, however many models."""
    with store.session() as s:
        models = s.execute(
            select(ModelRow.id, ModelRow.name, ModelRow.description).order_by(ModelRow.name)
        ).all()
        aliases: dict[int, dict[str, str]] = {}
        alias_versions: dict[int, dict[str, int]] = {}
        for model_id, alias, version_id, version in s.execute(
            select(AliasRow.model_id, AliasRow.name, VersionRow.id, VersionRow.version)
            .join(VersionRow, VersionRow.id == AliasRow.version_id)
            .order_by(AliasRow.name)
        ):
            aliases.setdefault(model_id, {})[alias] = version
            alias_versions.setdefault(model_id, {})[alias] = version_id
        rank = (
            func.row_number()
            .over(partition_by=WindowRow.version_id, order_by=WindowRow.start.desc())
            .label("rank")
        )
        ranked = (
            select(
                VersionRow.model_id,
                VersionRow.version,
                WindowRow.version_id,
                WindowRow.id,
                WindowRow.start,
                WindowRow.end,
                rank,
            )
            .join(VersionRow, VersionRow.id == WindowRow.version_id)
            .subquery()
        )
        recent = pl.DataFrame(
            s.execute(select(ranked).where(ranked.c.rank <= max(spark, 1))).all(),
            schema={
                "model_id": pl.Int64,
                "version": pl.String,
                "version_id": pl.Int64,
                "window_id": pl.Int64,
                "start": _UTC,
                "end": _UTC,
                "rank": pl.Int64,
            },
            orient="row",
        )
        chosen = _summarized_versions(recent, alias_versions)
        recent = recent.filter(pl.col("version_id").is_in(list(chosen.values())))
        newest = recent.filter(pl.col("rank") == 1)
        newest_ids = newest["window_id"].to_list()
        alert_counts = _counts(
            s,
            select(AlertRow.window_id, func.count())
            .where(
                # An alert starts with its window: (model, start) is the alerts' index.
                tuple_(AlertRow.model_id, AlertRow.started_at).in_(
                    newest.select("model_id", "start").rows()
                ),
                AlertRow.window_id.in_(newest_ids),
            )
            .group_by(AlertRow.window_id),
        )
        warning_counts = _counts(
            s,
            select(MetricRow.window_id, func.count())
            .where(
                MetricRow.name == "quality",
                MetricRow.window_id.in_(newest_ids),
                MetricRow.value > 0,
                MetricRow.alert.is_(False),
            )
            .group_by(MetricRow.window_id),
        )
        scores = dict(
            s.execute(
                select(MetricRow.window_id, MetricRow.value).where(
                    MetricRow.name == "quality_score",
                    MetricRow.window_id.in_(recent["window_id"].to_list()),
                    MetricRow.column == "overall",
                    MetricRow.segment == "",
                )
            ).all()
        )
        incidents = _counts(
            s,
            select(IncidentRow.model_id, func.count())
            .where(IncidentRow.status == "open")
            .group_by(IncidentRow.model_id),
        )
    health = []
    for model_id, name, description in models:
        mine = recent.filter(pl.col("model_id") == model_id).sort("rank", descending=True)
        last = mine.row(-1, named=True) if mine.height else None
        last_id = None if last is None else int(last["window_id"])
        health.append(
            ModelHealth(
                name=name,
                description=description,
                aliases=aliases.get(model_id, {}),
                version=None if last is None else str(last["version"]),
                last_window=last_id,
                last_end=None if last is None else last["end"],
                alerts=alert_counts.get(last_id, 0) if last_id is not None else 0,
                warnings=warning_counts.get(last_id, 0) if last_id is not None else 0,
                open_incidents=incidents.get(model_id, 0),
                scores=tuple(scores.get(i) for i in mine["window_id"].to_list()),
            )
        )
    return health


def _summarized_versions(
    recent: pl.DataFrame, alias_versions: dict[int, dict[str, int]]
) -> dict[int, int]:
    """Model id -> the version id to summarize: production when it has windows, else the version
    with the newest window."""
    newest = recent.filter(pl.col("rank") == 1).sort("end", descending=True)
    chosen: dict[int, int] = {}
    evaluated = set(newest["version_id"].to_list())
    for model_id, version_id in newest.select("model_id", "version_id").iter_rows():
        production = alias_versions.get(model_id, {}).get(PRODUCTION)
        if production is not None and production in evaluated:
            chosen[model_id] = production
        else:
            chosen.setdefault(model_id, version_id)
    return chosen


def _counts(s: Session, query: Select[Any, Any]) -> dict[int, int]:
    """A ``(key, count)`` query as a mapping."""
    return {int(key): int(n) for key, n in s.execute(query).all()}


# -- the model page -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Timeline:
    """A model's windows and the metrics its page plots.

    Attributes:
        windows: one row per window, oldest first: ``id``, ``version``, ``start``, ``end``,
            ``n_rows``, ``n_labelled``, ``alerts`` (metrics out of bounds), ``drift_tested``
            (columns tested for drift; null when none was) and ``drifted`` (those out of bounds).
        metrics: the plotted metrics (``quality_score`` overall, every ``performance.*``, every
            table-wide ``drift.*`` such as ``drift.pca``), with the window ``start``, oldest first.
    """

    windows: pl.DataFrame
    metrics: pl.DataFrame


def timeline(
    store: Store,
    model: str,
    *,
    versions: Sequence[str] | None = None,
    days: float | None = None,
) -> Timeline:
    """The windows and plotted metrics of ``model``'s ``versions`` (all by default) over the
    last ``days`` before its newest window (all of them by default)."""
    model_id = store.get_model(model).id
    with store.session() as s:
        version_ids = _version_ids(s, model_id, model, versions)
        scope: list[ColumnElement[bool]] = [WindowRow.version_id.in_(version_ids)]
        # An alert starts with its window: the same range on the alerts' own index.
        alert_scope: list[ColumnElement[bool]] = [
            AlertRow.model_id == model_id,
            AlertRow.version_id.in_(version_ids),
        ]
        if days is not None:
            newest = s.scalar(select(func.max(WindowRow.start)).where(*scope))
            if newest is not None:
                since = newest - timedelta(days=days)
                scope.append(WindowRow.start > since)
                alert_scope.append(AlertRow.started_at > since)
        windows = pl.DataFrame(
            s.execute(
                select(
                    WindowRow.id,
                    VersionRow.version,
                    WindowRow.start,
                    WindowRow.end,
                    WindowRow.n_rows,
                    WindowRow.n_labelled,
                )
                .join(VersionRow, VersionRow.id == WindowRow.version_id)
                .where(*scope)
                .order_by(WindowRow.start, WindowRow.version_id)
            ).all(),
            schema=_WINDOW_SCHEMA,
            orient="row",
        )
        alerts = pl.DataFrame(
            s.execute(
                select(AlertRow.window_id, func.count())
                .where(*alert_scope)
                .group_by(AlertRow.window_id)
            ).all(),
            schema={"id": pl.Int64, "alerts": pl.Int64},
            orient="row",
        )
        drifted = pl.DataFrame(
            s.execute(
                select(
                    MetricRow.window_id,
                    func.count(),
                    func.sum(MetricRow.alert.cast(Integer)),
                )
                .join(WindowRow, WindowRow.id == MetricRow.window_id)
                .where(_family("drift"), MetricRow.column != "", MetricRow.segment == "", *scope)
                .group_by(MetricRow.window_id)
            ).all(),
            schema={"id": pl.Int64, "drift_tested": pl.Int64, "drifted": pl.Int64},
            orient="row",
        )
        # One index seek per plotted name: an OR of the three would scan every metric of every
        # window on SQLite.
        plotted = [
            and_(MetricRow.name == "quality_score", MetricRow.column == "overall"),
            and_(_family("drift"), MetricRow.column == ""),
            _family("performance"),
        ]
        metrics = pl.DataFrame(
            s.execute(
                union_all(
                    *(
                        select(*_metric_columns())
                        .join(WindowRow, WindowRow.id == MetricRow.window_id)
                        .where(condition, MetricRow.segment == "", *scope)
                        for condition in plotted
                    )
                )
            ).all(),
            schema=_METRIC_SCHEMA,
            orient="row",
        )
    windows = (
        windows.join(alerts, on="id", how="left")
        .join(drifted, on="id", how="left")
        .with_columns(pl.col("alerts").fill_null(0))
    )
    metrics = (
        metrics.join(windows.select(pl.col("id").alias("window_id"), "start"), on="window_id")
        .drop("segment")
        .sort("start", "name", "column")
    )
    return Timeline(windows, metrics)


def _metric_columns() -> tuple[Any, ...]:
    return (
        MetricRow.window_id,
        MetricRow.name,
        MetricRow.column,
        MetricRow.segment,
        MetricRow.value,
        MetricRow.lower,
        MetricRow.upper,
        MetricRow.alert,
    )


def _version_ids(
    s: Session, model_id: int, model: str, versions: Sequence[str] | None
) -> list[int]:
    query = select(VersionRow.id, VersionRow.version).where(VersionRow.model_id == model_id)
    known = {str(v): int(i) for i, v in s.execute(query).all()}
    if versions is None:
        return list(known.values())
    missing = [v for v in versions if v not in known]
    if missing:
        raise NotFoundError(
            f"Model '{model}' has no version '{missing[0]}' (versions: "
            f"{', '.join(known) or 'none'}).",
            what="version",
        )
    return [known[v] for v in versions]


# -- the window page ----------------------------------------------------------------------------


def window_metrics(store: Store, window_id: int) -> pl.DataFrame:
    """Every metric of one window: ``name``, ``column``, ``segment``, ``value``, ``lower``,
    ``upper``, ``alert``, sorted by name, column and segment."""
    with store.session() as s:
        rows = s.execute(
            select(*_metric_columns())
            .where(MetricRow.window_id == window_id)
            .order_by(MetricRow.name, MetricRow.column, MetricRow.segment)
        ).all()
    return pl.DataFrame(rows, schema=_METRIC_SCHEMA, orient="row").drop("window_id")


# -- incidents ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class IncidentSummary:
    """One incident in a list: its title, state and number of alerts, the rule that opened it
    and how surprising its first window was (the chance of one as extreme on reference-like
    data; ``window_seconds`` is that window's length)."""

    id: int
    model: str
    title: str
    status: str
    started_at: datetime
    ended_at: datetime | None
    alerts: int
    rule: str = ""
    surprise: float | None = None
    window_seconds: float | None = None

    @property
    def rarity(self) -> str:
        """The surprise in words (:func:`mlwarden.alerting.calibration.rarity`)."""
        from mlwarden.alerting.calibration import rarity

        return rarity(self.surprise, self.window_seconds)


@dataclass(frozen=True)
class Incident:
    """One incident with its alerts (``metric``, ``column``, ``segment``, ``value``, ``lower``,
    ``upper``, ``window_id``, ``window_start``, ``version``)."""

    summary: IncidentSummary
    alerts: list[dict[str, Any]]


def incidents(
    store: Store, model: str | None = None, *, limit: int = 200
) -> tuple[list[IncidentSummary], int]:
    """The newest ``limit`` incidents (of one model, or of all) and how many there are."""
    with store.session() as s:
        scope: list[ColumnElement[bool]] = []
        if model is not None:
            model_id = s.scalar(select(ModelRow.id).where(ModelRow.name == model))
            if model_id is None:
                store.get_model(model)  # raises the store's error, with its "did you mean"
            scope.append(IncidentRow.model_id == model_id)
        total = int(s.scalar(select(func.count()).select_from(IncidentRow).where(*scope)) or 0)
        rows = s.execute(
            select(
                IncidentRow.id,
                ModelRow.name,
                IncidentRow.title,
                IncidentRow.status,
                IncidentRow.started_at,
                IncidentRow.ended_at,
                IncidentRow.rule,
                IncidentRow.surprise,
            )
            .join(ModelRow, ModelRow.id == IncidentRow.model_id)
            .where(*scope)
            .order_by(IncidentRow.started_at.desc(), IncidentRow.id.desc())
            .limit(limit)
        ).all()
        counts = _counts(
            s,
            select(AlertRow.incident_id, func.count())
            .where(AlertRow.incident_id.in_([row[0] for row in rows]))
            .group_by(AlertRow.incident_id),
        )
    return [
        IncidentSummary(*row[:6], alerts=counts.get(row[0], 0), rule=row[6], surprise=row[7])
        for row in rows
    ], total


def incident(store: Store, model: str, incident_id: int) -> Incident:
    """One incident of ``model`` with its alerts, or :class:`NotFoundError`."""
    model_id = store.get_model(model).id
    with store.session() as s:
        row = s.get(IncidentRow, incident_id)
        if row is None or row.model_id != model_id:
            raise NotFoundError(f"Model '{model}' has no incident {incident_id}.", what="incident")
        alerts = [
            r._asdict()
            for r in s.execute(
                select(
                    AlertRow.metric,
                    AlertRow.column,
                    AlertRow.segment,
                    AlertRow.value,
                    AlertRow.lower,
                    AlertRow.upper,
                    AlertRow.window_id,
                    WindowRow.start.label("window_start"),
                    WindowRow.end.label("window_end"),
                    VersionRow.version,
                )
                .join(WindowRow, WindowRow.id == AlertRow.window_id)
                .join(VersionRow, VersionRow.id == AlertRow.version_id)
                .where(AlertRow.model_id == model_id, AlertRow.incident_id == incident_id)
                .order_by(WindowRow.start, AlertRow.metric, AlertRow.column, AlertRow.segment)
            )
        ]
        seconds = None
        if alerts:
            seconds = (alerts[0]["window_end"] - alerts[0]["window_start"]).total_seconds()
        summary = IncidentSummary(
            row.id,
            model,
            row.title,
            row.status,
            row.started_at,
            row.ended_at,
            len(alerts),
            rule=row.rule,
            surprise=row.surprise,
            window_seconds=seconds,
        )
    return Incident(summary, alerts)
