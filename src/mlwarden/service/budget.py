"""A version's alert budget: its reference replayed, its learned checks kept inside the budget,
its bounds calibrated and its false-incident rate measured on held-out windows.

:func:`fit_alerting` runs at registration (``Registry.register``): it replays the reference
(:mod:`mlwarden.service.replay`), adjusts the learned checks that failed on held-out windows,
adds the explanation metrics' own replay, and returns the replay table (stored with the version
as the ``alert_replay`` artifact), the adjusted suite and the summary kept in the version's
metadata under ``alerting``: the budget and its allocation, the measured held-out rate, the
regimes and cycles found, and the metrics that cannot alarm at this window size.

:func:`calibration` rebuilds the :class:`~mlwarden.alerting.calibration.Calibration` of a stored
version from its replay table and its current budget (a changed budget needs no new replay).
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final

import polars as pl

from mlwarden.alerting.calibration import (
    ALLOCATION,
    AlertBudget,
    Calibration,
    HeldOut,
    Tuned,
    replay_frame,
    tune,
)
from mlwarden.service.replay import (
    Adjustment,
    adjust_suite,
    block_starts,
    explanation_records,
    replay,
)

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence

    from mlwarden.quality import Suite
    from mlwarden.service.judge import Judged
    from mlwarden.service.replay import VersionSpec

REPLAY_ARTIFACT: Final = "alert_replay"
META_KEY: Final = "alerting"


@dataclass(frozen=True)
class AlertingFit:
    """What registration keeps of the alert budget."""

    table: pl.DataFrame
    suite: Suite
    meta: dict[str, Any]

    def table_bytes(self) -> bytes:
        buffer = io.BytesIO()
        self.table.write_parquet(buffer, compression="zstd")
        return buffer.getvalue()


def extra_metrics(segments: int) -> int:
    """Bounded metrics without a replay: override rate and plausibility, overall and per
    segment (feedback on the reference does not exist)."""
    return 2 * (1 + segments)


def fit_alerting(
    frame: pl.DataFrame,
    spec: VersionSpec,
    judged: Judged,
    *,
    budget: AlertBudget,
    attributions: pl.DataFrame | None = None,
    features: Sequence[str] = (),
    progress: Callable[[str], None] | None = None,
) -> AlertingFit | None:
    """Replay, adjust, calibrate and measure (see the module docstring); None when the
    reference cannot be replayed (no timestamp, or too few windows)."""
    replayed = replay(frame, spec, progress=progress)
    if replayed is None:
        return None
    table = replayed.table
    failing = table.filter(pl.col("failed").fill_null(False))["window_start"].n_unique()
    suite, adjustments = judged.suite, list[Adjustment]()
    if spec.suite is None:  # a suite the user wrote is theirs: reported, never changed
        checks = sum(c.level == "error" for c in judged.suite.checks)
        chance = ALLOCATION["quality"] * budget.per_window(_seconds(spec.window)) / max(1, checks)
        suite, adjustments = adjust_suite(
            judged.suite, table, replayed.observed, replayed.measured, chance
        )
        table = _cleared(table, adjustments)
    if attributions is not None and spec.timestamp is not None:
        starts = block_starts(frame, spec.timestamp, spec.window)
        records = explanation_records(attributions, features, replayed.fold_of, starts)
        if records:
            table = pl.concat([table, replay_frame(records)], how="vertical")
    segments = len(judged.evaluators.segments) if judged.evaluators is not None else 0
    extra = extra_metrics(segments)
    tuned = tune(table, budget=budget, window=spec.window, extra_metrics=extra)
    measured = tuned.measured
    fitted = Calibration.fit(
        table,
        budget=budget,
        window=spec.window,
        extra_metrics=extra,
        widening=tuned.widening,
        widened=tuned.widened,
    )
    notes = fitted.notes(table)
    if measured.lower > budget.false_incidents * 90.0 / budget.days:
        notes.insert(0, _over_budget(measured, budget, spec.window))
    meta = {
        "budget": budget.to_dict(),
        "extra_metrics": extra,
        **_widenings(tuned),
        "summary": fitted.summary(),
        "held_out": measured.to_dict(),
        "notes": notes,
        "regimes": judged.drift.regimes.describe(),
        "volume": _volume(judged),
        "adjustments": [a.to_dict() for a in adjustments],
        # the learned suite's held-out failure rate before its checks were fitted to the budget
        "quality_failure_rate": failing / replayed.windows if replayed.windows else None,
        "replay": {
            "windows": replayed.windows,
            "folds": replayed.folds,
            "seconds": round(replayed.seconds, 2),
        },
    }
    return AlertingFit(table, suite, meta)


def calibration(meta: dict[str, Any], table: pl.DataFrame, window: str) -> Calibration:
    """The calibration of a stored version under the budget in its metadata."""
    alerting = meta.get(META_KEY) or {}
    return Calibration.fit(
        table,
        budget=AlertBudget.from_dict(alerting.get("budget")),
        window=window,
        extra_metrics=int(alerting.get("extra_metrics", 0)),
        widening=float(alerting.get("widening", 1.0)),
        widened={(n, c, s): float(f) for n, c, s, f in alerting.get("widened", [])},
    )


def _widenings(tuned: Tuned) -> dict[str, Any]:
    """How :func:`tune` widened the thresholds, as stored in a version's metadata."""
    widened = [[*key, factor] for key, factor in sorted(tuned.widened.items())]
    return {"widening": tuned.widening, "widened": widened}


def rebudget(
    meta: dict[str, Any], table: pl.DataFrame, window: str, budget: AlertBudget
) -> dict[str, Any]:
    """The ``alerting`` metadata of a version under a new budget: thresholds and the held-out
    measurement recomputed from the stored replay."""
    alerting = dict(meta.get(META_KEY) or {})
    extra = int(alerting.get("extra_metrics", 0))
    tuned = tune(table, budget=budget, window=window, extra_metrics=extra)
    measured = tuned.measured
    fitted = Calibration.fit(
        table,
        budget=budget,
        window=window,
        extra_metrics=extra,
        widening=tuned.widening,
        widened=tuned.widened,
    )
    notes = fitted.notes(table)
    if measured.lower > budget.false_incidents * 90.0 / budget.days:
        notes.insert(0, _over_budget(measured, budget, window))
    alerting |= {
        "budget": budget.to_dict(),
        **_widenings(tuned),
        "summary": fitted.summary(),
        "held_out": measured.to_dict(),
        "notes": notes,
    }
    return alerting


def _over_budget(measured: HeldOut, budget: AlertBudget, window: str) -> str:
    """The note for a reference whose held-out windows raise more than the budget allows."""
    return (
        f"On the reference's own held-out {window} windows the bounds raised "
        f"{measured.incidents} false incidents in {measured.windows} windows: "
        f"{measured.rate:.3g} per 90 days (at least {measured.lower:.3g} at 95 % confidence) "
        f"against a budget of {budget.false_incidents:g} per {budget.days:g} days. The "
        "reference is too short or too uneven to calibrate them: register with a longer "
        "reference (weeks, covering every recipe, shift and season the model meets) or "
        "longer windows."
    )


def _seconds(window: str) -> float:
    from mlwarden.quality._durations import parse_duration

    return parse_duration(window, "window", "register")


def read_table(content: bytes) -> pl.DataFrame:
    return pl.read_parquet(io.BytesIO(content))


def _cleared(table: pl.DataFrame, adjustments: list[Adjustment]) -> pl.DataFrame:
    """The replay with the failures of adjusted checks cleared: widened past them, or set to
    warn, those checks would not have alarmed on those windows."""
    if not adjustments:
        return table
    labels = [a.check for a in adjustments]
    return table.with_columns(
        pl.when(pl.col("column").is_in(labels) & pl.col("failed").is_not_null())
        .then(False)
        .otherwise(pl.col("failed"))
        .alias("failed")
    )


def _volume(judged: Judged) -> dict[str, Any] | None:
    evaluators = judged.evaluators
    volume = None if evaluators is None else evaluators.volume
    if volume is None:
        return None
    return {
        "rows": dict(volume.rows),
        "phase": None if volume.phase is None else volume.phase.describe(),
    }


__all__ = [
    "META_KEY",
    "REPLAY_ARTIFACT",
    "AlertingFit",
    "calibration",
    "fit_alerting",
    "read_table",
    "rebudget",
]
