"""The model registry: models, versions, aliases, and what each version is judged against.

Registering a version fits its reference once — the reference profile, the quality suite
learned from the reference data (with its held-out false-failure rate), the drift reference with
its calibrated thresholds — and stores them with the version, so every later window is judged
against the same, stored reference. Aliases (``production``, ``staging``, any name) point at
versions, and every move is recorded with who, when, why and the evidence.

Example:
    >>> from mlwarden.datasets import production_line
    >>> from mlwarden.store.metadata import Store
    >>> registry = Registry(Store("sqlite://"))
    >>> version = registry.register(
    ...     "defect-model", "1", production_line(5_000), timestamp="timestamp"
    ... )
    >>> version.artifacts
    ('alert_replay', 'drift_reference', 'evaluators', 'profile', 'reference_rows', 'suite')
    >>> registry.promote("defect-model", "1", alias="production").version
    '1'
    >>> reference = registry.reference("defect-model", "production")
    >>> reference.suite.timestamp, reference.profile.n_rows
    ('timestamp', 5000)
"""

from __future__ import annotations

import json
import pickle
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from mlwarden.exceptions import NotFoundError

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping, Sequence

    import polars as pl

    from mlwarden.alerting.calibration import Calibration
    from mlwarden.drift import Reference
    from mlwarden.profiling import Profile
    from mlwarden.quality import Suite
    from mlwarden.service.evaluators import Evaluators
    from mlwarden.store.metadata import AliasChange, Store, VersionRecord

__all__ = ["Registry", "VersionReference"]

PROFILE = "profile"
SUITE = "suite"
DRIFT_REFERENCE = "drift_reference"
EVALUATORS = "evaluators"
REFERENCE_ROWS = "reference_rows"
EXPLANATION = "explanation"
# The per-row attributions of the reference sample the global explanation was computed on:
# what the attributions of production windows are compared with (explanation drift).
REFERENCE_ATTRIBUTIONS = "reference_attributions"
# The fitted model itself (pickled), so the service can explain logged predictions.
ESTIMATOR = "estimator"
EXPLAIN_ROWS = 2_000
# Windows of the reference the explained rows come from, and the fewest that calibrate.
EXPLAIN_BLOCKS = 20
MIN_EXPLAIN_BLOCKS = 8
# Rows of the reference kept with a version (a seeded sample when it has more): what the
# diagnosis compares an incident's rows with, and what a retraining is handed to reweight.
MAX_REFERENCE_ROWS = 200_000


@dataclass(frozen=True)
class VersionReference:
    """What a model version is judged against, loaded from the store."""

    version: VersionRecord
    profile: Profile
    suite: Suite
    drift: Reference
    evaluators: Evaluators | None = None
    calibration: Calibration | None = None


class Registry:
    """Models, versions and aliases on a :class:`~mlwarden.store.metadata.Store`."""

    def __init__(self, store: Store) -> None:
        self.store = store
        store.migrate()

    def register(
        self,
        model: str,
        version: str,
        reference: object,
        *,
        timestamp: str | None = None,
        entity: str | Sequence[str] | None = None,
        tag: str | None = None,
        id: str | Sequence[str] | None = None,
        roles: dict[str, str] | None = None,
        segment: str | None = None,
        window: str = "1h",
        suite: Suite | None = None,
        description: str = "",
        estimator: object = None,
        features: Sequence[str] | None = None,
        groups: Mapping[str, Sequence[str]] | None = None,
        keep_estimator: bool = True,
        explain_sample: float = 1.0,
        feedback_reasons: Sequence[str] | None = None,
        false_incidents: float = 1.0,
        progress: Callable[[str], None] | None = None,
    ) -> VersionRecord:
        """Register ``version`` of ``model`` (created when new) with its reference fitted on
        ``reference`` (a frame or a file): profile, quality suite (learned unless given), drift
        reference, and the evaluators of :mod:`mlwarden.service.evaluators` (performance
        estimator from the labels, multivariate drift, per-``segment`` references).

        ``timestamp`` names the column of event times: datetimes, dates, ISO 8601 text or epoch
        numbers, read by :func:`mlwarden.frames.to_utc` and stored in UTC (naive times are UTC,
        as in the row log, so that the reference and the logged rows share one clock).
        ``roles`` names what columns are (``{"defect": "target", "defect_score": "score"}``;
        inferred from the names otherwise); ``window`` is the window the version will be
        evaluated in, which sizes the multivariate detector's reference chunks.

        With ``estimator`` (the fitted model; ``features`` its inputs in order, default its own
        feature names or the reference's feature columns), the version's global explanation is
        computed on up to ``EXPLAIN_ROWS`` reference rows and stored with it: mean absolute
        attribution, share and direction of effect per feature and per group of ``groups``
        (engineered columns → sensors). Its importances weigh drift in the diagnosis. The
        attributions of that sample are kept (explanation drift compares production with
        them), and with ``keep_estimator`` the model too (pickled: only ever loaded from this
        store), so that the service explains ``explain_sample`` (a share, 0–1) of the logged
        predictions. ``feedback_reasons`` are the reason codes people choose from when they
        override a prediction (default :data:`mlwarden.feedback.DEFAULT_REASONS`).

        ``false_incidents`` is the version's alert budget: the false incidents per 90 days its
        team accepts, shared by every metric family and segment. The reference is replayed
        window by window (:mod:`mlwarden.service.budget`) to calibrate every bound under that
        budget; learned checks that fail on held-out reference windows are widened or set to
        warn; what cannot alarm at this window size is said in ``meta["alerting"]["notes"]``.
        ``progress`` receives a line per step of the replay."""
        from mlwarden.alerting.calibration import AlertBudget
        from mlwarden.exceptions import ParameterError
        from mlwarden.frames import to_polars, to_utc
        from mlwarden.schema import Role
        from mlwarden.service.budget import META_KEY, REPLAY_ARTIFACT, fit_alerting
        from mlwarden.service.replay import VersionSpec, fit_parts

        if not 0.0 <= explain_sample <= 1.0:
            raise ParameterError(
                f"The 'explain_sample' parameter of register must be a share between 0 and 1; "
                f"got {explain_sample!r}.",
                parameter="explain_sample",
            )
        budget = AlertBudget(false_incidents)
        frame = to_polars(reference)
        if timestamp is not None:
            frame = to_utc(frame, timestamp, source="the reference")
            frame = frame.sort(timestamp, maintain_order=True)
        spec = VersionSpec(
            roles=roles,
            timestamp=timestamp,
            entity=entity,
            tag=tag,
            id=id,
            segment=segment,
            window=window,
            suite=suite,
        )
        judged, schema = fit_parts(frame, spec)
        drift, evaluators = judged.drift, judged.evaluators
        assert evaluators is not None
        try:
            self.store.get_model(model)
        except NotFoundError:
            self.store.create_model(model, description)
        meta: dict[str, Any] = {
            "rows": frame.height,
            "columns": frame.columns,
            "timestamp": timestamp,
            "roles": {c.name: c.role.value for c in schema},
            "window": window,
            "evaluators": evaluators.summary(),
        }
        artifacts = {
            PROFILE: drift.profile.to_bytes(),
            DRIFT_REFERENCE: drift.to_bytes(),
            EVALUATORS: evaluators.to_bytes(),
            REFERENCE_ROWS: _parquet(frame),
        }
        if feedback_reasons is not None:
            meta["feedback_reasons"] = [str(r) for r in feedback_reasons]
        attributions = None
        inputs: list[str] = []
        if estimator is not None:
            inputs = list(features or [c.name for c in schema if c.role is Role.FEATURE])
            summary, attributions = _explained(estimator, frame, inputs, groups, timestamp, window)
            artifacts[EXPLANATION] = json.dumps(summary).encode("utf-8")
            artifacts[REFERENCE_ATTRIBUTIONS] = _parquet(attributions)
            meta["importance"] = {f["feature"]: f["mean_abs"] for f in summary["features"]}
            meta["explanation"] = {
                "method": summary["method"],
                "rows": summary["rows"],
                "features": list(inputs),
                "groups": {k: list(v) for k, v in (groups or {}).items()},
                "sample": explain_sample,
            }
            if keep_estimator:
                artifacts[ESTIMATOR] = pickle.dumps(estimator, protocol=pickle.HIGHEST_PROTOCOL)
        suite_used = judged.suite
        alerting = fit_alerting(
            frame,
            spec,
            judged,
            budget=budget,
            attributions=attributions,
            features=inputs,
            progress=progress,
        )
        if alerting is not None:
            suite_used = alerting.suite
            artifacts[REPLAY_ARTIFACT] = alerting.table_bytes()
            meta[META_KEY] = alerting.meta
        else:
            meta[META_KEY] = {
                "budget": budget.to_dict(),
                "notes": [
                    "The bounds are not calibrated against the alert budget: the reference "
                    "needs a timestamp and at least 4 windows of "
                    f"{window} to be replayed; register with timestamp= and a longer reference."
                ],
            }
        artifacts[SUITE] = suite_used.to_yaml().encode("utf-8")
        meta["suite_checks"] = len(suite_used.checks)
        meta["suite_false_failure_rate"] = (
            meta[META_KEY].get("quality_failure_rate")
            if alerting is not None
            else suite_used.meta.get("false_failure_rate")
        )
        return self.store.create_version(
            model,
            version,
            artifacts=artifacts,
            meta=meta,
        )

    def promote(
        self,
        model: str,
        version: str,
        *,
        alias: str = "production",
        by: str = "",
        note: str = "",
        evidence: dict[str, Any] | None = None,
    ) -> AliasChange:
        """Point ``alias`` at ``version``; the move is kept in the alias history."""
        return self.store.set_alias(model, alias, version, by=by, note=note, evidence=evidence)

    def rollback(self, model: str, *, alias: str = "production", by: str = "") -> AliasChange:
        """Move ``alias`` back to the version it held before its last move."""
        history = [h for h in self.store.alias_history(model, alias) if h.version is not None]
        if not history or history[-1].previous is None:
            raise NotFoundError(
                f"The alias '{alias}' of '{model}' has no earlier version to go back to.",
                what="alias",
            )
        return self.store.set_alias(
            model, alias, history[-1].previous, by=by, note=f"rollback from {history[-1].version}"
        )

    def explanation(self, model: str, version_or_alias: str) -> dict[str, Any] | None:
        """The global explanation stored with a version (None when registered without its
        estimator): ``method``, ``rows``, and ``features``/``groups`` lists of ``{feature,
        mean_abs, share, direction}``, most important first."""
        record = self.store.resolve(model, version_or_alias)
        if EXPLANATION not in record.artifacts:
            return None
        doc = json.loads(self.store.artifact(model, record.version, EXPLANATION))
        assert isinstance(doc, dict)
        return doc

    def reference_attributions(self, model: str, version_or_alias: str) -> pl.DataFrame | None:
        """The attributions (one column per feature, and ``base_value``) of the reference
        sample the global explanation was computed on; None without an explanation."""
        import io

        import polars as pl

        record = self.store.resolve(model, version_or_alias)
        if REFERENCE_ATTRIBUTIONS not in record.artifacts:
            return None
        content = self.store.artifact(model, record.version, REFERENCE_ATTRIBUTIONS)
        return pl.read_parquet(io.BytesIO(content))

    def estimator(self, model: str, version_or_alias: str) -> object | None:
        """The fitted model kept with a version (None when it was not kept)."""
        record = self.store.resolve(model, version_or_alias)
        if ESTIMATOR not in record.artifacts:
            return None
        # The store's own artifact, written by register(); never bytes from a request.
        estimator: object = pickle.loads(self.store.artifact(model, record.version, ESTIMATOR))
        return estimator

    def reference_rows(self, model: str, version_or_alias: str) -> pl.DataFrame | None:
        """The reference rows stored with a version (up to ``MAX_REFERENCE_ROWS``, a seeded
        sample of a larger reference); None for a version registered without them."""
        import io

        import polars as pl

        record = self.store.resolve(model, version_or_alias)
        if REFERENCE_ROWS not in record.artifacts:
            return None
        content = self.store.artifact(model, record.version, REFERENCE_ROWS)
        return pl.read_parquet(io.BytesIO(content))

    def reference(self, model: str, version_or_alias: str) -> VersionReference:
        """The stored reference of a version (or of the version an alias points at)."""
        from mlwarden.drift import Reference
        from mlwarden.profiling import Profile
        from mlwarden.quality import Suite
        from mlwarden.service.budget import REPLAY_ARTIFACT, calibration, read_table
        from mlwarden.service.evaluators import Evaluators

        record = self.store.resolve(model, version_or_alias)
        load = self.store.artifact
        evaluators = None
        if EVALUATORS in record.artifacts:
            evaluators = Evaluators.from_bytes(load(model, record.version, EVALUATORS))
        calibrated = None
        if REPLAY_ARTIFACT in record.artifacts:
            table = read_table(load(model, record.version, REPLAY_ARTIFACT))
            calibrated = calibration(record.meta, table, record.meta.get("window") or "1h")
        return VersionReference(
            version=record,
            profile=Profile.from_bytes(load(model, record.version, PROFILE)),
            suite=Suite.from_yaml(load(model, record.version, SUITE).decode("utf-8")),
            drift=Reference.from_bytes(load(model, record.version, DRIFT_REFERENCE)),
            evaluators=evaluators,
            calibration=calibrated,
        )

    def set_budget(
        self, model: str, version_or_alias: str, false_incidents: float, days: float = 90.0
    ) -> VersionRecord:
        """Change a version's alert budget: its bounds are recalibrated from the stored replay
        of its reference (no new replay), and the held-out rate measured again."""
        from mlwarden.alerting.calibration import AlertBudget
        from mlwarden.exceptions import ParameterError
        from mlwarden.service.budget import META_KEY, REPLAY_ARTIFACT, read_table, rebudget

        budget = AlertBudget(false_incidents, days)
        record = self.store.resolve(model, version_or_alias)
        if REPLAY_ARTIFACT not in record.artifacts:
            raise ParameterError(
                f"Version '{record.version}' of '{model}' has no replayed reference, so it has "
                "no alert budget to change; register it again with a timestamp column.",
                parameter="false_incidents",
            )
        table = read_table(self.store.artifact(model, record.version, REPLAY_ARTIFACT))
        window = record.meta.get("window") or "1h"
        alerting = rebudget(record.meta, table, window, budget)
        return self.store.update_version_meta(model, record.version, {META_KEY: alerting})


def global_explanation(
    estimator: object,
    frame: pl.DataFrame,
    features: Sequence[str],
    groups: Mapping[str, Sequence[str]] | None = None,
) -> dict[str, Any]:
    """A model's global explanation on (a seeded sample of) ``frame``: per feature and per
    group the mean absolute attribution, its share and the direction of the effect."""
    return _explained(estimator, frame, features, groups)[0]


def _explained(
    estimator: object,
    frame: pl.DataFrame,
    features: Sequence[str],
    groups: Mapping[str, Sequence[str]] | None,
    timestamp: str | None = None,
    window: str | None = None,
) -> tuple[dict[str, Any], pl.DataFrame]:
    """The global explanation, and the per-row attributions it summarizes.

    With a ``timestamp`` and the evaluation ``window``, the rows are taken from up to
    ``EXPLAIN_BLOCKS`` windows of the reference spread over its time (an evenly spaced subset
    of each, numbered in ``__block``): explanation drift compares every block with the rest to
    learn how much one window's attributions differ from the reference's without a shift.
    Otherwise they are a seeded random sample."""
    import polars as pl

    from mlwarden.explanation import explain

    rows, blocks = frame, None
    if timestamp is not None and window is not None and timestamp in frame.columns:
        keyed = frame.sort(timestamp).with_columns(
            pl.col(timestamp).dt.truncate(window).rank("dense").cast(pl.Int64).alias("__block")
        )
        n_blocks = keyed["__block"].n_unique()
        if n_blocks >= MIN_EXPLAIN_BLOCKS:
            picked = sorted(
                {
                    round(i * (n_blocks - 1) / (EXPLAIN_BLOCKS - 1)) + 1
                    for i in range(EXPLAIN_BLOCKS)
                }
            )
            per_block = max(1, EXPLAIN_ROWS // len(picked))
            chosen = keyed.filter(pl.col("__block").is_in(picked))
            # an evenly spaced subset of each window: one vectorized filter on the row's place
            place = pl.int_range(pl.len()).over("__block")
            step = (pl.len().over("__block") // per_block).clip(lower_bound=1)
            chosen = chosen.filter(place % step == 0, place // step < per_block)
            rows, blocks = chosen.drop("__block"), chosen["__block"]
    if blocks is None and frame.height > EXPLAIN_ROWS:
        rows = frame.sample(EXPLAIN_ROWS, seed=0)
    explanation = explain(estimator, rows, feature_names=list(features))

    def table(e: Any) -> list[dict[str, Any]]:
        return [
            {k: (None if isinstance(v, float) and v != v else v) for k, v in row.items()}
            for row in e.global_importance().to_dicts()
        ]

    summary = {
        "method": explanation.method,
        "output": explanation.output,
        "rows": explanation.n_rows,
        "features": table(explanation),
        "groups": table(explanation.by_group(groups)) if groups else [],
    }
    attributions = explanation.to_df()
    if blocks is not None:
        attributions = attributions.with_columns(blocks)
    return summary, attributions


def _parquet(frame: pl.DataFrame) -> bytes:
    import io

    if frame.height > MAX_REFERENCE_ROWS:
        frame = frame.with_row_index("__order").sample(MAX_REFERENCE_ROWS, seed=0)
        frame = frame.sort("__order").drop("__order")
    buffer = io.BytesIO()
    frame.write_parquet(buffer, compression="zstd")
    return buffer.getvalue()
