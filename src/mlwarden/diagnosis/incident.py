"""Diagnosis of an incident: its likely causes, ranked, each with its evidence.

An incident says *that* something is wrong; its diagnosis says *what* most likely is, by
weighing everything the service stored about the incident's windows:

* **quality** — the checks that failed in the incident's windows (which check, which sensor),
  weighted by severity and by how many of the windows they failed in; a range failure whose
  level matches a known unit conversion is named a unit change (°C → °F);
* **drift** — the features that drifted, weighted by their importance to the model (mutual
  information between the feature and the model's score on the reference: *drift impact*);
  a drifted model output is reported as a consequence, not a cause;
* **upstream** — the pipeline runs that produced the incident's rows (prediction batches are
  linked to runs, see :mod:`mlwarden.lineage`) compared with those that produced the rows just
  before: a new code version, new parameters, a changed input, a failed or stale run. A change
  that coincides with the first window where a check or a feature went wrong is ranked above
  that symptom, which names the change in its evidence;
* **segments** — where the incident's rows differ from the reference (a slice search of
  current against reference rows: categories and binned ranges that grew), and where
  segment-level alerts fired;
* **explanations** — features whose attributions shifted against the reference's (the model
  leans on them differently: ``explanation_shift`` alerts);
* **people** — when operators overrode predictions or found their explanations implausible
  more than usual (``override_rate``, ``explanation_plausibility`` alerts), the sensor the
  overridden predictions leaned on most, against its usual weight, and their reason codes;
* **concept drift** — once labels exist, whether the realized performance departs from what
  the inputs predict (the estimator's concept-drift test on the labelled rows): then the
  relation between inputs and outcome changed, and retraining on recent labels is the remedy.

Scores are in [0, 1] and comparable across kinds; they order causes, they are not
probabilities. The diagnosis is kept with the incident and recomputed when its alerts or labels
change.

Example (``tests/diagnosis/test_incident.py`` runs it on generated data)::

    diagnosis = diagnose(store, rowlog, incident_id=8)
    diagnosis.causes[0].title
    # 'featurize changed: code version featurize 1.4.0 → featurize 1.5.0; humidity_pct broke
    #  with it'
"""

from __future__ import annotations

import math
import threading
from collections import OrderedDict, defaultdict
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Final

import numpy as np
import polars as pl
from sqlalchemy import select

from mlwarden.diagnosis.slices import Slice, slice_search
from mlwarden.exceptions import MlwardenError, NotFoundError
from mlwarden.store.schema import (
    AlertRow,
    IncidentRow,
    MetricRow,
    ModelRow,
    VersionRow,
    WindowRow,
)

if TYPE_CHECKING:
    from collections.abc import Sequence

    from mlwarden.lineage import RunRecord
    from mlwarden.registry import VersionReference
    from mlwarden.store.metadata import Store
    from mlwarden.store.rowlog import RowLog

__all__ = ["Cause", "Diagnosis", "diagnose"]

SHIFTS: Final = ("data_quality", "input_drift", "concept_drift", "unknown")
MAX_ROWS: Final = 200_000
_IMPORTANCE_ROWS: Final = 5_000
_FORMAT: Final = 3  # bump when the cached shape changes
# The prefix of a CUSUM's metric name: its alerts count as its metric's.
_CUSUM: Final = "cusum."
# The drift metrics that are distances to a bound (not sums, not signed shifts).
_DISTANCE: Final = ~pl.col("summed") & (pl.col("name") != "drift.location")

# What a failing check says about the data, in words.
_CHECK_WORDS: Final = {
    "stuck": "{col} is stuck (a frozen sensor)",
    "spike": "{col} has spikes",
    "rate_of_change": "{col} changes faster than it can",
    "gap": "{col} has gaps in its readings",
    "jitter": "{col} jitters",
    "unit_change": "{col} changed unit",
    "range": "{col} is out of its range",
    "allowed_values": "{col} has unexpected values",
    "pattern": "{col} breaks its pattern",
    "length": "{col} has values of unexpected length",
    "not_null": "{col} is missing",
    "row_completeness": "rows are incomplete",
    "unique": "{col} has duplicates",
    "duplicate_rows": "rows are duplicated",
    "duplicate_timestamps": "timestamps are duplicated",
    "column_type": "{col} changed type",
    "required_columns": "a required column is missing",
    "no_extra_columns": "unexpected columns arrived",
    "freshness": "the data is stale",
    "arrival_delay": "rows arrive late",
    "volume": "the volume of rows changed",
    "mean": "{col}'s mean moved",
    "std": "{col}'s spread changed",
    "quantile": "{col}'s distribution moved",
    "category_shares": "{col}'s category shares changed",
    "monotonic": "{col} is no longer monotonic",
    "rule": "a consistency rule is broken",
}


@dataclass(frozen=True)
class Cause:
    """A likely cause of an incident.

    Attributes:
        kind: ``quality``, ``upstream``, ``drift``, ``concept_drift``, ``segment``,
            ``multivariate``, ``output``, ``explanation`` or ``feedback``.
        title: the cause in one line.
        score: how strongly the evidence points at it, in [0, 1] (orders causes).
        column: the column (sensor) it names, ``""`` when none.
        columns: every column it names.
        evidence: what was found, one finding per item.
        detail: the numbers behind it (check label, run ids, slice, ...).
        rank: 1 for the likeliest cause.
    """

    kind: str
    title: str
    score: float
    column: str = ""
    columns: tuple[str, ...] = ()
    evidence: tuple[str, ...] = ()
    detail: dict[str, Any] = field(default_factory=dict)
    rank: int = 0

    def to_dict(self) -> dict[str, Any]:
        return {
            "rank": self.rank,
            "kind": self.kind,
            "title": self.title,
            "score": round(self.score, 4),
            "column": self.column,
            "columns": list(self.columns),
            "evidence": list(self.evidence),
            "detail": self.detail,
        }

    @classmethod
    def from_dict(cls, doc: dict[str, Any]) -> Cause:
        return cls(
            kind=doc["kind"],
            title=doc["title"],
            score=float(doc["score"]),
            column=doc.get("column", ""),
            columns=tuple(doc.get("columns", ())),
            evidence=tuple(doc.get("evidence", ())),
            detail=dict(doc.get("detail", {})),
            rank=int(doc.get("rank", 0)),
        )


@dataclass(frozen=True)
class Diagnosis:
    """The ranked causes of one incident.

    Attributes:
        incident: the incident's id.
        model: its model; ``version`` the version its windows were evaluated with.
        started_at: its first window's start; ``ended_at`` its end (None while open).
        windows: the windows it spans.
        shift: ``data_quality`` (the data is broken), ``input_drift`` (the inputs moved, the
            relation to the outcome holds), ``concept_drift`` (the relation changed, labels
            show it) or ``unknown``.
        causes: likeliest first.
        grown: the slices of the data that grew against the reference, strongest first — what
            a retraining set is reweighted toward for input drift.
        computed_at: when the diagnosis was made.
    """

    incident: int
    model: str
    version: str
    started_at: datetime
    ended_at: datetime | None
    windows: int
    shift: str
    causes: tuple[Cause, ...]
    grown: tuple[Slice, ...] = ()
    computed_at: datetime = field(default_factory=lambda: datetime.now(UTC))

    @property
    def top(self) -> Cause | None:
        return self.causes[0] if self.causes else None

    def to_dict(self) -> dict[str, Any]:
        return {
            "incident": self.incident,
            "model": self.model,
            "version": self.version,
            "started_at": self.started_at.isoformat(),
            "ended_at": None if self.ended_at is None else self.ended_at.isoformat(),
            "windows": self.windows,
            "shift": self.shift,
            "causes": [c.to_dict() for c in self.causes],
            "grown": [s.to_dict() for s in self.grown],
            "computed_at": self.computed_at.isoformat(),
        }

    @classmethod
    def from_dict(cls, doc: dict[str, Any]) -> Diagnosis:
        def when(text: str | None) -> datetime | None:
            return None if text is None else datetime.fromisoformat(text)

        started = when(doc["started_at"])
        computed = when(doc["computed_at"])
        assert started is not None
        assert computed is not None
        return cls(
            incident=int(doc["incident"]),
            model=doc["model"],
            version=doc["version"],
            started_at=started,
            ended_at=when(doc.get("ended_at")),
            windows=int(doc["windows"]),
            shift=doc["shift"],
            causes=tuple(Cause.from_dict(c) for c in doc["causes"]),
            grown=tuple(_slice(s) for s in doc.get("grown", ())),
            computed_at=computed,
        )


def diagnose(store: Store, rowlog: RowLog, incident_id: int, *, refresh: bool = False) -> Diagnosis:
    """The ranked likely causes of incident ``incident_id`` (see the module docstring).

    The result is kept with the incident; it is computed again when the incident gained
    alerts or labels since, or with ``refresh``."""
    with store.session() as s:
        incident = s.get(IncidentRow, incident_id)
        if incident is None:
            raise NotFoundError(f"No incident with id {incident_id}.", what="incident")
        model = s.get(ModelRow, incident.model_id)
        assert model is not None
        alert_rows = list(s.scalars(select(AlertRow).where(AlertRow.incident_id == incident_id)))
        if not alert_rows:
            raise NotFoundError(
                f"Incident {incident_id} has no alerts left to diagnose.", what="incident"
            )
        window_ids = sorted({a.window_id for a in alert_rows})
        windows = list(
            s.scalars(select(WindowRow).where(WindowRow.id.in_(window_ids)).order_by("start"))
        )
        version_row = s.get(VersionRow, windows[0].version_id)
        assert version_row is not None
        fingerprint = [
            len(alert_rows),
            max(a.id for a in alert_rows),
            sum(w.n_labelled for w in windows),
            incident.status,
        ]
        cached = dict(incident.summary or {}).get("diagnosis")
        if (
            not refresh
            and cached is not None
            and cached.get("fingerprint") == fingerprint
            and cached.get("format") == _FORMAT
        ):
            return Diagnosis.from_dict(cached["result"])
        previous = s.scalar(
            select(WindowRow)
            .where(WindowRow.version_id == version_row.id, WindowRow.start < windows[0].start)
            .order_by(WindowRow.start.desc())
            .limit(1)
        )
        metric_windows = [w.id for w in windows] + ([previous.id] if previous else [])
        metrics = pl.DataFrame(
            [
                (m.window_id, m.name, m.column, m.segment, m.value, m.upper, m.lower)
                for m in s.scalars(select(MetricRow).where(MetricRow.window_id.in_(metric_windows)))
            ],
            schema={
                "window_id": pl.Int64,
                "name": pl.String,
                "column": pl.String,
                "segment": pl.String,
                "value": pl.Float64,
                "upper": pl.Float64,
                "lower": pl.Float64,
            },
            orient="row",
        )
        alerts = pl.DataFrame(
            [(a.window_id, a.metric, a.column, a.segment, a.value) for a in alert_rows],
            schema={
                "window_id": pl.Int64,
                "metric": pl.String,
                "column": pl.String,
                "segment": pl.String,
                "value": pl.Float64,
            },
            orient="row",
        )
        span = [(w.id, w.start, w.end) for w in windows]
        previous_span = None if previous is None else (previous.id, previous.start, previous.end)
        model_name, version = model.name, version_row.version
        started_at, ended_at, status = incident.started_at, incident.ended_at, incident.status

    case = _Case(
        store=store,
        rowlog=rowlog,
        model=model_name,
        version=version,
        windows=span,
        previous=previous_span,
        metrics=metrics.with_columns(
            alert=(pl.col("value") > pl.col("upper")) | (pl.col("value") < pl.col("lower"))
        ),
        alerts=alerts,
    )
    diagnosis = case.run(incident_id, started_at, None if status == "open" else ended_at)
    with store.session() as s:
        row = s.get(IncidentRow, incident_id)
        if row is not None:
            summary = dict(row.summary or {})
            summary["diagnosis"] = {
                "format": _FORMAT,
                "fingerprint": fingerprint,
                "result": diagnosis.to_dict(),
            }
            row.summary = summary
    return diagnosis


# -- the case ------------------------------------------------------------------------------------


@dataclass
class _Case:
    """Everything known about one incident, and the finders of each kind of cause."""

    store: Store
    rowlog: RowLog
    model: str
    version: str
    windows: list[tuple[int, datetime, datetime]]
    previous: tuple[int, datetime, datetime] | None
    metrics: pl.DataFrame
    alerts: pl.DataFrame
    _suspects: list[str] = field(default_factory=list)

    def run(self, incident: int, started_at: datetime, ended_at: datetime | None) -> Diagnosis:
        from mlwarden.service.evaluate import load_reference

        reference = load_reference(self.store, self.model, self.version)
        self.reference = reference
        self.roles = dict(reference.version.meta.get("roles", {}))
        self.timestamp = reference.suite.timestamp or "timestamp"
        self.rows = self._read(reference)
        self.reference_rows = _reference_rows(self.store, self.model, self.version)

        causes = self._quality()
        causes += self._drift()
        self._suspects = [c.column for c in causes if c.column]
        causes += self._multivariate()
        causes += self._explanations()
        causes += self._feedback(causes)
        concept = self._concept_drift()
        causes += concept
        segments, grown = self._segments()
        causes += segments
        causes = self._upstream(causes)
        causes = sorted(causes, key=lambda c: -c.score)
        causes = [replace(c, rank=i + 1) for i, c in enumerate(causes)]

        top = causes[0].kind if causes else ""
        if top in ("quality", "upstream"):
            shift = "data_quality"
        elif concept:
            shift = "concept_drift"
        elif any(c.kind in ("drift", "multivariate") for c in causes):
            shift = "input_drift"
        else:
            shift = "unknown"
        return Diagnosis(
            incident=incident,
            model=self.model,
            version=self.version,
            started_at=started_at,
            ended_at=ended_at,
            windows=len(self.windows),
            shift=shift,
            causes=tuple(causes),
            grown=tuple(grown),
        )

    # -- data ----------------------------------------------------------------------------------

    @property
    def ids(self) -> list[int]:
        return [w[0] for w in self.windows]

    def _read(self, reference: VersionReference) -> pl.DataFrame:
        from mlwarden.service.evaluate import read_rows

        start, end = self.windows[0][1], self.windows[-1][2]
        rows = read_rows(
            self.rowlog,
            self.model,
            self.version,
            start,
            end,
            self.timestamp,
            reference.evaluators,
        )
        if rows.height > MAX_ROWS:
            rows = rows.sample(MAX_ROWS, seed=0)
        return rows

    def _features(self) -> list[str]:
        features = [c for c, role in self.roles.items() if role in ("feature", "segment")]
        return [c for c in features if c in self.rows.columns]

    def _outputs(self) -> set[str]:
        return {c for c, role in self.roles.items() if role in ("score", "prediction")}

    # -- quality -------------------------------------------------------------------------------

    def _quality(self) -> list[Cause]:
        failures: dict[str, dict[str, Any]] = {}
        before: set[str] = set()
        validations = {wid: self.store.validation(wid) for wid in self.ids}
        if self.previous is not None:
            earlier = self.store.validation(self.previous[0]) or {}
            before = {_label(c) for c in earlier.get("checks", []) if not c.get("passed", True)}
        first_failing: dict[str, datetime] = {}
        for wid, start, _ in self.windows:
            for check in (validations.get(wid) or {}).get("checks", []):
                if check.get("passed", True):
                    continue
                label = _label(check)
                entry = failures.setdefault(
                    label, {"check": check, "windows": 0, "n_failed": 0, "n_checked": 0}
                )
                entry["windows"] += 1
                entry["n_failed"] += int(check.get("n_failed") or 0)
                entry["n_checked"] += int(check.get("n_checked") or 0)
                first_failing.setdefault(label, start)
        alerted = set(self.alerts.filter(pl.col("metric") == "quality")["column"])
        n = len(self.windows)
        causes = []
        for label, entry in failures.items():
            check = entry["check"]
            key, column = check.get("check", ""), check.get("column") or ""
            severity = 1.0 if check.get("severity") == "error" else 0.6
            share = entry["windows"] / n
            score = 0.9 * severity * (0.5 + 0.5 * share)
            evidence = [
                f"{label} failed in {entry['windows']} of {n} windows"
                + (
                    f" ({entry['n_failed']:,} of {entry['n_checked']:,} rows)"
                    if entry["n_checked"]
                    else ""
                ),
            ]
            if check.get("message"):
                evidence.append(str(check["message"]))
            if label in alerted:
                score += 0.05
            if label in before:
                score *= 0.6
                evidence.append("it was already failing in the window before the incident")
            title = _CHECK_WORDS.get(key, "{col} failed " + key).format(col=column or "the data")
            detail: dict[str, Any] = {
                "check": key,
                "label": label,
                "windows": entry["windows"],
                "first_window": first_failing[label].isoformat(),
                "new": label not in before,
            }
            if column and key in ("range", "mean", "quantile", "unit_change"):
                unit = self._unit_change(column)
                if unit is not None:
                    title = f"{column} changed unit ({unit[0]})"
                    evidence.append(unit[1])
                    detail["conversion"] = unit[0]
            if key == "not_null" and column in self.rows.columns and self.rows.height:
                nulls = self.rows[column].null_count() / self.rows.height
                evidence.append(f"{nulls:.0%} of the incident's rows have no {column}")
            causes.append(
                Cause(
                    "quality",
                    title,
                    min(score, 1.0),
                    column=column,
                    columns=(column,) if column else (),
                    evidence=tuple(evidence),
                    detail=detail,
                )
            )
        return _merge_by_column(causes)

    def _unit_change(self, column: str) -> tuple[str, str] | None:
        """A known unit conversion that maps the reference's level onto the incident's."""
        from mlwarden.quality.sensor import CONVERSIONS

        reference = self.reference_rows
        if reference is None or column not in reference.columns or column not in self.rows:
            return None
        if not (self.rows[column].dtype.is_numeric() and reference[column].dtype.is_numeric()):
            return None
        before = reference[column].cast(pl.Float64).median()
        after = self.rows[column].cast(pl.Float64).median()
        if not isinstance(before, float) or not isinstance(after, float) or before == 0:
            return None
        # The incident's rows may mix converted and unconverted readings: use the level of the
        # readings far from the reference's.
        spread = reference[column].cast(pl.Float64).std() or 0.0
        values = self.rows[column].cast(pl.Float64)
        moved = values.filter((values - before).abs() > 4 * spread)
        if moved.len() >= 0.2 * self.rows.height:
            median = moved.median()
            if isinstance(median, float):
                after = median
        for factor, offset, label in CONVERSIONS:
            expected = factor * before + offset
            if abs(expected - after) <= 0.03 * max(abs(after), 1e-9):
                return (
                    label,
                    f"its level went from {before:.4g} to {after:.4g}: {label} maps "
                    f"{before:.4g} to {expected:.4g}",
                )
        return None

    # -- drift ---------------------------------------------------------------------------------

    def _drift(self) -> list[Cause]:
        # a CUSUM's alert is its metric's: the change showed as a sum over windows
        summed = pl.col("name").str.starts_with(_CUSUM)
        drift = self.metrics.filter(
            pl.col("name").str.strip_prefix(_CUSUM).str.starts_with("drift."),
            pl.col("name").str.strip_prefix(_CUSUM) != "drift.pca",
            pl.col("window_id").is_in(self.ids),
            pl.col("column") != "",
        ).with_columns(
            summed.alias("summed"), pl.col("name").str.strip_prefix(_CUSUM).alias("name")
        )
        if drift.height == 0:
            return []
        sequential = dict(
            drift.filter(pl.col("summed"), pl.col("alert"), pl.col("segment") == "")
            .group_by("column")
            .agg(pl.col("window_id").n_unique())
            .iter_rows()
        )
        whole = drift.filter(pl.col("segment") == "")
        per_column = (
            whole.group_by("column")
            .agg(
                test=pl.col("name").filter(_DISTANCE).first().str.strip_prefix("drift."),
                windows=pl.col("window_id").filter(pl.col("alert")).n_unique(),
                # how far past its bound: read on the distances (a sum or a signed shift has
                # no comparable scale)
                ratio=(pl.col("value") / pl.col("upper")).filter(_DISTANCE).max(),
                first=pl.col("window_id").filter(pl.col("alert")).min(),
            )
            .filter(pl.col("windows") > 0)
        )
        segments = (
            drift.filter(pl.col("segment") != "", pl.col("alert"))
            .group_by("column")
            .agg(pl.col("segment").unique().sort())
        )
        where = dict(zip(segments["column"], segments["segment"].to_list(), strict=True))
        # a column that drifted in segments only
        for column in set(where) - set(per_column["column"]):
            part = drift.filter(pl.col("column") == column, pl.col("alert"))
            per_column = pl.concat(
                [
                    per_column,
                    pl.DataFrame(
                        {
                            "column": [column],
                            "test": [part["name"][0].removeprefix("drift.")],
                            "windows": [part["window_id"].n_unique()],
                            "ratio": [
                                part.filter(_DISTANCE)
                                .select((pl.col("value") / pl.col("upper")).max())
                                .item()
                            ],
                            "first": [part["window_id"].min()],
                        },
                        schema=per_column.schema,
                    ),
                ]
            )
        importance = self._importance()
        outputs = self._outputs()
        n = len(self.windows)
        starts = {w[0]: w[1] for w in self.windows}
        causes = []
        for row in per_column.iter_rows(named=True):  # one per drifted column
            column = row["column"]
            share = min(1.0, row["windows"] / n)
            weight = importance.get(column, 0.5)
            segment_only = column in where and row["windows"] and column not in set(whole["column"])
            past = "" if row["ratio"] is None else f" (up to {row['ratio']:.3g}x its threshold)"
            test = row["test"] or "location"  # a column judged on its shift alone
            evidence = [f"{test} drift in {row['windows']} of {n} windows{past}"]
            if column in where:
                evidence.append("drifted in " + ", ".join(where[column]))
            if column in sequential:
                evidence.append(
                    f"a slow change summed over windows (CUSUM) past its threshold in "
                    f"{sequential[column]} of {n} windows"
                )
            evidence += self._levels(column)
            detail = {
                "test": row["test"],
                "windows": row["windows"],
                "importance": round(weight, 4),
                "first_window": None if row["first"] is None else starts[row["first"]].isoformat(),
            }
            if column in outputs:
                causes.append(
                    Cause(
                        "output",
                        f"the model's output {column} shifted (a consequence of its inputs)",
                        0.25 * (0.5 + 0.5 * share),
                        column=column,
                        columns=(column,),
                        evidence=tuple(evidence),
                        detail=detail,
                    )
                )
                continue
            evidence.append(
                f"importance to the model {weight:.2f} (of 1 for the most important feature)"
            )
            # how often, how far beyond the threshold, and how much the model relies on it
            magnitude = min(1.0, max(0.0, (row["ratio"] or 1.0) - 1.0) / 2.0)
            score = 0.9 * (0.4 + 0.3 * share + 0.3 * magnitude) * (0.5 + 0.5 * weight)
            if segment_only:
                score *= 0.7
            causes.append(
                Cause(
                    "drift",
                    f"{column} drifted",
                    score,
                    column=column,
                    columns=(column,),
                    evidence=tuple(evidence),
                    detail=detail,
                )
            )
        return causes

    def _levels(self, column: str) -> list[str]:
        reference = self.reference_rows
        if reference is None or column not in reference.columns or column not in self.rows:
            return []
        if not (reference[column].dtype.is_numeric() and self.rows[column].dtype.is_numeric()):
            return []
        before = reference[column].cast(pl.Float64).median()
        after = self.rows[column].cast(pl.Float64).median()
        if not isinstance(before, float) or not isinstance(after, float):
            return []
        return [f"median {before:.4g} in the reference, {after:.4g} in the incident"]

    def _importance(self) -> dict[str, float]:
        """Importance of each feature to the model, 1 for the most important."""
        given = self.reference.version.meta.get("importance")
        if isinstance(given, dict) and given:
            top = max(float(v) for v in given.values()) or 1.0
            return {str(k): float(v) / top for k, v in given.items()}
        return _mutual_information(
            self.store, self.model, self.version, self.reference_rows, self.roles
        )

    def _multivariate(self) -> list[Cause]:
        pca = self.metrics.filter(
            pl.col("name").is_in(["drift.pca", f"{_CUSUM}drift.pca"]),
            pl.col("window_id").is_in(self.ids),
        )
        hits = pca.filter(pl.col("alert"))
        if hits.height == 0:
            return []
        share = hits["window_id"].n_unique() / len(self.windows)
        ratio = (hits["value"] / hits["upper"]).max()
        return [
            Cause(
                "multivariate",
                "the relations between the features changed",
                0.45 * (0.5 + 0.5 * share),
                evidence=(
                    f"PCA reconstruction error above its bound in {hits['window_id'].n_unique()} "
                    f"of {len(self.windows)} windows (up to "
                    f"{ratio if isinstance(ratio, float) else 0.0:.3g}x)",
                ),
                detail={"windows": hits["window_id"].n_unique()},
            )
        ]

    # -- concept drift -------------------------------------------------------------------------

    # -- explanations and people ---------------------------------------------------------------

    def _explanations(self) -> list[Cause]:
        """Features whose attributions shifted in the incident's windows: a shift past its own
        bound, or, where the window's attributions as a whole told it apart from the
        reference's (``explanation_auc``, ``importance_rank``), the feature that shifted most."""
        shift = self.metrics.filter(
            pl.col("name") == "explanation_shift",
            pl.col("window_id").is_in(self.ids),
            pl.col("segment") == "",
        )
        if shift.height == 0:
            return []
        whole = self.metrics.filter(
            pl.col("name").is_in(["explanation_auc", "importance_rank"]),
            pl.col("window_id").is_in(self.ids),
            pl.col("alert"),
        )
        told_apart = set(whole["window_id"].to_list())
        top = pl.col("value") == pl.col("value").max().over("window_id")
        shifted = shift.with_columns(
            (pl.col("alert") | (pl.col("window_id").is_in(list(told_apart)) & top)).alias("moved")
        )
        per_column = (
            shifted.group_by("column")
            .agg(
                windows=pl.col("moved").sum(),
                ratio=(pl.col("value") / pl.col("upper")).max(),
                distance=pl.col("value").max(),
            )
            .filter(pl.col("windows") > 0)
            .sort("distance", descending=True)
        )
        n = len(self.windows)
        causes = []
        for column, windows, ratio, distance in per_column.iter_rows():  # per feature
            strength = 0.5 + 0.25 * ratio if ratio is not None else 0.5 + distance
            score = 0.35 * (0.5 + 0.5 * windows / n) * min(1.0, strength)
            bound = f", {ratio:.1f}× the bound" if ratio is not None else ""
            causes.append(
                Cause(
                    "explanation",
                    f"the model leans on {column} differently",
                    score,
                    column=column,
                    columns=(column,),
                    evidence=(
                        f"{column}'s attributions shifted from the reference's in {windows} of "
                        f"{n} windows (KS distance up to {distance:.2f}{bound})",
                    ),
                    detail={"windows": int(windows), "distance": float(distance)},
                )
            )
        return causes

    def _feedback(self, found: Sequence[Cause]) -> list[Cause]:
        """People overrode predictions or doubted explanations: which sensor, which reasons."""
        from mlwarden.feedback import list_feedback

        fired = self.alerts.filter(
            pl.col("metric").is_in(["override_rate", "explanation_plausibility"])
        )
        if fired.height == 0:
            return []
        start, end = self.windows[0][1], self.windows[-1][2]
        given = list_feedback(self.store, self.model, version=self.version, start=start, end=end)
        doubted = [f for f in given if f.decision == "overridden" or f.plausible is False]
        decided = [f for f in given if f.decision]
        if not doubted:
            return []
        overridden = sum(f.decision == "overridden" for f in decided)
        reasons: dict[str, int] = defaultdict(int)
        for f in doubted:  # one per piece of feedback, a few hundred at most
            if f.reason:
                reasons[f.reason] += 1
        weights = self._leaning([f.prediction_id for f in doubted])
        evidence = []
        if decided:
            evidence.append(
                f"{overridden} of {len(decided)} predictions with a decision were overridden "
                f"({overridden / len(decided):.0%})"
            )
        implausible = sum(f.plausible is False for f in given)
        judged = sum(f.plausible is not None for f in given)
        if judged:
            evidence.append(f"{implausible} of {judged} explanations were found implausible")
        if reasons:
            common = sorted(reasons.items(), key=lambda kv: -kv[1])
            evidence.append("reasons: " + ", ".join(f"{r} ×{n}" for r, n in common))
        column, why = "", ""
        # What people saw: the failed checks shown with the predictions they doubted.
        flagged: dict[str, int] = defaultdict(int)
        for f in doubted:  # one per piece of feedback
            for flag in {_flag_column(x) for x in (f.shown or {}).get("quality_flags") or []}:
                if flag:
                    flagged[flag] += 1
        if flagged:
            top, count = max(flagged.items(), key=lambda kv: kv[1])
            if count >= len(doubted) / 2:
                column, why = top, "were shown with a failed check on"
                evidence.append(
                    f"{count} of {len(doubted)} doubted predictions were shown with a failed "
                    f"check on {top}"
                )
        if weights:
            leaning, (share, usual) = max(weights.items(), key=lambda kv: kv[1][0] - kv[1][1])
            if share > usual:
                evidence.append(
                    f"the predictions people doubted owe {share:.0%} of their attribution to "
                    f"{leaning}, against {usual:.0%} usually"
                )
                if not column:
                    column, why = leaning, "lean on"
        if column:
            same = [c for c in found if c.column == column and c.kind != "explanation"]
            if same:
                evidence.append(f"{column} is also named by: {same[0].title}")
        title = "operators stopped following the model"
        if column:
            title += f"; the doubted predictions {why} {column}"
        return [
            Cause(
                "feedback",
                title,
                0.5,
                column=column,
                columns=(column,) if column else (),
                evidence=tuple(evidence),
                detail={
                    "overridden": overridden,
                    "decided": len(decided),
                    "implausible": implausible,
                    "reasons": dict(reasons),
                    "leaning": {f: list(v) for f, v in weights.items()},
                },
            )
        ]

    def _leaning(self, ids: Sequence[str]) -> dict[str, tuple[float, float]]:
        """Per feature: its share of the absolute attribution in the predictions ``ids``, and
        its usual share (the version's global importance); empty without stored
        attributions."""
        importance = self.reference.version.meta.get("importance") or {}
        id_column = self.reference.evaluators.id if self.reference.evaluators else "id"
        start, end = self.windows[0][1], self.windows[-1][2]
        stored = self.rowlog.explanations(
            self.model, start=start, end=end, version=self.version, timestamp=self.timestamp
        )
        features = [f for f in importance if f in stored.columns]
        if stored.height == 0 or id_column not in stored.columns or not features:
            return {}
        picked = stored.filter(pl.col(id_column).cast(pl.String).is_in(list(ids)))
        if picked.height == 0:
            return {}
        weights = picked.select(pl.col(features).cast(pl.Float64).abs().mean()).row(0)
        total = sum(w or 0.0 for w in weights) or 1.0
        usual_total = sum(float(importance[f] or 0.0) for f in features) or 1.0
        return {
            f: (round((w or 0.0) / total, 4), round(float(importance[f] or 0.0) / usual_total, 4))
            for f, w in zip(features, weights, strict=True)
        }

    def _concept_drift(self) -> list[Cause]:
        found = []
        for wid, start, _ in self.windows:
            details = self.store.details(wid).get("performance")
            if details is None:
                continue
            for estimate in details[0].get("estimates", []):
                for warning in estimate.get("warnings", []):
                    if str(warning).startswith("concept_drift"):
                        found.append((start, estimate))
        if not found:
            return []
        first, estimate = found[0]
        windows = len({start for start, _ in found})
        return [
            Cause(
                "concept_drift",
                "the relation between the inputs and the outcome changed (concept drift)",
                0.8 * (0.5 + 0.5 * windows / len(self.windows)),
                evidence=(
                    f"in {windows} of {len(self.windows)} windows the realized "
                    f"{estimate.get('metric')} departs from what the inputs predict; first in "
                    f"the window of {first:%Y-%m-%d %H:%M}",
                    next(
                        str(w).split(": ", 1)[1].split(": the relation")[0]
                        for w in estimate.get("warnings", [])
                        if str(w).startswith("concept_drift")
                    ),
                ),
                detail={"windows": windows, "metric": estimate.get("metric")},
            )
        ]

    # -- segments ------------------------------------------------------------------------------

    def _segments(self) -> tuple[list[Cause], list[Slice]]:
        causes = []
        segment_alerts = (
            self.alerts.filter(pl.col("segment") != "")
            .group_by("segment")
            .agg(metrics=pl.col("metric").unique().sort(), windows=pl.col("window_id").n_unique())
            .sort("windows", descending=True)
        )
        whole_metrics = set(self.alerts.filter(pl.col("segment") == "")["metric"])
        for row in segment_alerts.iter_rows(named=True):  # one per segment value
            only_here = [m for m in row["metrics"] if m not in whole_metrics]
            if not only_here:
                continue
            causes.append(
                Cause(
                    "segment",
                    f"{row['segment']}: {', '.join(only_here)} alerted there only",
                    0.35 * (0.5 + 0.5 * row["windows"] / len(self.windows)),
                    column=row["segment"].split("=", 1)[0],
                    columns=(row["segment"].split("=", 1)[0],),
                    evidence=(f"in {row['windows']} of {len(self.windows)} windows",),
                    detail={"segment": row["segment"], "metrics": only_here},
                )
            )
        # Only slices over a column already suspected: a few hours of a plant's rows always
        # sit in some corner of the reference, which is no cause.
        grown = [g for g in self._grown() if set(g.columns) & set(self._suspects)]
        for item in grown[:3]:
            n_current = self.rows.height
            n_reference = self._n_reference
            inside_current = item.mean * item.n
            share_current = inside_current / n_current
            share_reference = (item.n - inside_current) / max(n_reference, 1)
            lift = share_current / max(share_reference, 1e-3)
            causes.append(
                Cause(
                    "segment",
                    f"rows with {item.description} grew",
                    0.1 + 0.2 * min(1.0, math.log10(max(lift, 1.0)) / 2.0),
                    column=item.columns[0],
                    columns=item.columns,
                    evidence=(
                        f"{share_current:.1%} of the incident's rows against "
                        f"{share_reference:.1%} of the reference's",
                    ),
                    detail={
                        "slice": item.description,
                        "share_current": share_current,
                        "share_reference": share_reference,
                    },
                )
            )
        return causes, grown

    @property
    def _n_reference(self) -> int:
        return 0 if self.reference_rows is None else self.reference_rows.height

    def _grown(self) -> list[Slice]:
        """Slices where the incident's rows are over-represented against the reference's."""
        reference = self.reference_rows
        features = [
            c
            for c in self._features()
            if reference is not None and c in reference.columns and c != self.timestamp
        ]
        if reference is None or not features or self.rows.height < 100:
            return []
        features = [c for c in features if not _identifier(reference[c], self.rows[c])]
        if not features:
            return []
        both = pl.concat(
            [
                reference.select(features).with_columns(__current=pl.lit(0.0)),
                self.rows.select(features).with_columns(__current=pl.lit(1.0)),
            ],
            how="diagonal_relaxed",
        )
        try:
            report = slice_search(both, "__current", min_rows=50, alpha=0.01, top=10)
        except MlwardenError:
            return []
        overall = report.overall_mean
        # a slice counts as grown when current rows are at least twice as common in it
        return [
            s for s in report.slices if s.mean >= min(1.0, 2 * overall) and s.expr() is not None
        ]

    # -- upstream ------------------------------------------------------------------------------

    def _upstream(self, causes: list[Cause]) -> list[Cause]:
        """Changes in the pipeline runs that produced the incident's rows, against those that
        produced the rows just before."""
        from mlwarden.lineage import Lineage

        lineage = Lineage(self.store)
        first_start, first_end = self.windows[0][1], self.windows[0][2]
        length = first_end - first_start
        during = _expand(lineage, lineage.batch_runs(self.model, first_start, first_end))
        if not during:
            return causes
        before = _expand(
            lineage, lineage.batch_runs(self.model, first_start - 2 * length, first_start)
        )
        by_name: dict[str, list[RunRecord]] = defaultdict(list)
        for record in before:
            by_name[record.name].append(record)
        # symptoms that began with the incident's first window, not before
        fresh = [
            c
            for c in causes
            if c.kind in ("quality", "drift")
            and c.column
            and c.detail.get("first_window") == first_start.isoformat()
            and c.detail.get("new", True)
        ]
        out = list(causes)
        for record in during:
            changes = _changes(record, by_name.get(record.name, []))
            if record.status == "failed":
                changes.append(f"the run failed: {record.error}")
            stale = lineage.stale(record.id)
            changes += [f"stale: {reason}" for reason in stale]
            if not changes:
                continue
            columns = tuple(dict.fromkeys(c.column for c in fresh))
            score = 0.5
            evidence = [f"run #{record.id} of {record.name}: " + "; ".join(changes)]
            if fresh:
                strongest = max(fresh, key=lambda c: c.score)
                score = min(1.0, strongest.score + 0.05)
                evidence.append(
                    "what broke in the same window: "
                    + ", ".join(f"{c.title} ({c.detail.get('label', c.kind)})" for c in fresh)
                )
            title = f"{record.name} changed: {changes[0]}"
            if columns:
                title += f"; {', '.join(columns)} broke with it"
            out.append(
                Cause(
                    "upstream",
                    title,
                    score,
                    column=columns[0] if columns else "",
                    columns=columns,
                    evidence=tuple(evidence),
                    detail={
                        "run": record.id,
                        "step": record.name,
                        "code_version": record.code_version,
                        "changes": changes,
                    },
                )
            )
            note = f"began with run #{record.id} of {record.name} ({changes[0]})"
            out = [replace(c, evidence=(*c.evidence, note)) if c in fresh else c for c in out]
        return out


# -- helpers -------------------------------------------------------------------------------------


def _identifier(reference: pl.Series, current: pl.Series) -> bool:
    """A column of labels that name rows or batches rather than describe them: most current
    values never occur in the reference (batch ids, serial numbers)."""
    if reference.dtype.is_numeric() and reference.dtype != pl.Boolean:
        return False
    values = current.drop_nulls().cast(pl.String)
    if values.len() == 0:
        return False
    known = reference.drop_nulls().cast(pl.String).unique()
    return int(values.is_in(known.implode()).sum()) < 0.5 * values.len()


def _merge_by_column(causes: list[Cause]) -> list[Cause]:
    """One cause per column: the strongest, with the other failures of the column as
    evidence (a °F reading fails the range and the mean check alike)."""
    best: dict[str, Cause] = {}
    others: dict[str, list[Cause]] = defaultdict(list)
    for cause in sorted(causes, key=lambda c: -c.score):
        key = cause.column or cause.detail.get("label", cause.title)
        if key in best:
            others[key].append(cause)
        else:
            best[key] = cause
    out = []
    for key, cause in best.items():
        extra = others.get(key, [])
        if extra:
            also = "also failing: " + ", ".join(c.evidence[0] for c in extra)
            cause = replace(
                cause,
                evidence=(*cause.evidence, also),
                detail={**cause.detail, "also": [c.detail.get("label") for c in extra]},
            )
        out.append(cause)
    return out


def _flag_column(label: object) -> str:
    """The column a check label names: ``range(temperature_c)`` → ``temperature_c``."""
    text = str(label)
    if "(" not in text or not text.endswith(")"):
        return ""
    inner = text[text.index("(") + 1 : -1]
    return inner.split(",")[0].strip()


def _label(check: dict[str, Any]) -> str:
    column = check.get("column")
    return f"{check.get('check')}({column})" if column else str(check.get("check"))


def _slice(doc: dict[str, Any]) -> Slice:
    return Slice(
        conditions=tuple((str(c[0]), str(c[1])) for c in doc["conditions"]),
        n=int(doc["n"]),
        share=float(doc["share"]),
        mean=float(doc["mean"]),
        rest_mean=float(doc["rest_mean"]),
        effect=float(doc["effect"]),
        p_value=float(doc["p_value"]),
        q_value=float(doc["q_value"]),
    )


def _expand(lineage: Any, linked: Sequence[tuple[RunRecord, int]]) -> list[RunRecord]:
    """The linked runs and every run upstream of them, each once."""
    seen: dict[int, RunRecord] = {}
    for record, _ in linked:
        for item in [record, *lineage.trace(record.id).upstream]:
            seen.setdefault(item.id, item)
    return list(seen.values())


def _changes(record: RunRecord, earlier: Sequence[RunRecord]) -> list[str]:
    """How a run differs from the earlier runs of its step."""
    if not earlier:
        return []
    changes = []
    versions = {r.code_version for r in earlier}
    if record.code_version not in versions:
        old = sorted(versions)[-1] or "unknown"
        changes.append(f"code version {old} → {record.code_version or 'unknown'}")
    last = max(earlier, key=lambda r: r.started_at)
    params = {
        k: (last.params.get(k), record.params.get(k))
        for k in set(last.params) | set(record.params)
        if last.params.get(k) != record.params.get(k)
    }
    if params:
        changes.append(
            "parameters changed: "
            + ", ".join(f"{k} {a!r} → {b!r}" for k, (a, b) in sorted(params.items()))
        )
    named = {a.name: a.sha256 for r in earlier for a in r.inputs if a.name}
    for artifact in record.inputs:
        if artifact.name in named and named[artifact.name] != artifact.sha256:
            changes.append(f"input '{artifact.name}' changed ({artifact.sha256[:12]})")
    return changes


_cache_lock = threading.Lock()
_rows_cache: OrderedDict[tuple[str, str, str], pl.DataFrame | None] = OrderedDict()
_importance_cache: OrderedDict[tuple[str, str, str], dict[str, float]] = OrderedDict()


def _reference_rows(store: Store, model: str, version: str) -> pl.DataFrame | None:
    from mlwarden.registry import Registry

    key = (store.url, model, version)
    with _cache_lock:
        if key in _rows_cache:
            return _rows_cache[key]
    rows = Registry(store).reference_rows(model, version)
    with _cache_lock:
        _rows_cache[key] = rows
        while len(_rows_cache) > 8:
            _rows_cache.popitem(last=False)
    return rows


def _mutual_information(
    store: Store,
    model: str,
    version: str,
    reference: pl.DataFrame | None,
    roles: dict[str, str],
) -> dict[str, float]:
    """Mutual information between each feature and the model's score (or prediction) on the
    reference, scaled to 1 for the largest: how much the model's output depends on it."""
    key = (store.url, model, version)
    with _cache_lock:
        if key in _importance_cache:
            return _importance_cache[key]
    out: dict[str, float] = {}
    output = next((c for c, r in roles.items() if r == "score"), None) or next(
        (c for c, r in roles.items() if r == "prediction"), None
    )
    features = [c for c, r in roles.items() if r in ("feature", "segment")]
    if reference is not None and output in reference.columns and features:
        from sklearn.feature_selection import mutual_info_regression

        frame = reference.select([c for c in features if c in reference.columns] + [output])
        frame = frame.drop_nulls(output)
        if frame.height > _IMPORTANCE_ROWS:
            frame = frame.sample(_IMPORTANCE_ROWS, seed=0)
        columns, matrix, discrete = [], [], []
        for name in frame.columns[:-1]:
            series = frame[name]
            if series.dtype.is_numeric() and series.dtype != pl.Boolean:
                values = series.cast(pl.Float64)
                values = values.fill_null(values.median() or 0.0).fill_nan(0.0)
                discrete.append(False)
            elif series.dtype in (pl.String, pl.Categorical, pl.Enum, pl.Boolean):
                values = series.cast(pl.String).fill_null("").rank("dense").cast(pl.Float64)
                discrete.append(True)
            else:
                continue
            columns.append(name)
            matrix.append(values.to_numpy())
        if columns and frame.height >= 50:
            scores = mutual_info_regression(
                np.column_stack(matrix),
                frame[output].cast(pl.Float64).to_numpy(),
                discrete_features=np.array(discrete),
                random_state=0,
            )
            top = float(scores.max()) or 1.0
            out = {c: float(v) / top for c, v in zip(columns, scores, strict=True)}
    with _cache_lock:
        _importance_cache[key] = out
        while len(_importance_cache) > 8:
            _importance_cache.popitem(last=False)
    return out
