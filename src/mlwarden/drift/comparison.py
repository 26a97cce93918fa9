"""Compare a current batch with a reference, column by column: the drift report."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
import polars as pl
from scipy import stats

from mlwarden.drift.base import DriftTest, make_test
from mlwarden.drift.location import location_null, location_shift
from mlwarden.drift.reference import Reference, as_reference, tail_probability
from mlwarden.drift.regimes import PHASE
from mlwarden.exceptions import InputError, ParameterError
from mlwarden.profiling import Profile, profile
from mlwarden.schema import Kind, Role

if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence
    from pathlib import Path

    from mlwarden.alerting.null import NullModel

Alarm = Literal["calibrated", "threshold", "p_value"]
Correction = Literal["fdr_bh", "holm", "bonferroni", "none"]

DEFAULT_TESTS: dict[Kind, str] = {
    Kind.NUMERIC: "ks",
    Kind.CATEGORICAL: "jensen_shannon",
    Kind.BOOLEAN: "jensen_shannon",
}
_TESTED_ROLES = {Role.FEATURE, Role.PREDICTION, Role.SCORE, Role.TARGET, Role.SEGMENT}
_STRING_KINDS = {Kind.CATEGORICAL, Kind.TEXT}


@dataclass(frozen=True, slots=True)
class ColumnDrift:
    """The drift verdict on one column; for a numeric column also ``shift``, how far and which
    way its median moved, in reference standard deviations
    (:func:`~mlwarden.drift.location.location_shift`)."""

    column: str
    kind: Kind
    test: str
    statistic: float
    effect_size: float
    p_value: float | None
    threshold: float
    threshold_source: str
    drifted: bool
    p_value_adjusted: float | None = None
    approximate: bool = False
    note: str = ""
    null: NullModel | None = field(default=None, compare=False, repr=False)
    shift: float | None = None
    shift_null: NullModel | None = field(default=None, compare=False, repr=False)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form (non-finite numbers become None)."""
        return {
            "kind": self.kind.value,
            "test": self.test,
            "statistic": _finite(self.statistic),
            "effect_size": _finite(self.effect_size),
            "p_value": _finite(self.p_value),
            "p_value_adjusted": _finite(self.p_value_adjusted),
            "threshold": _finite(self.threshold),
            "threshold_source": self.threshold_source,
            "drifted": self.drifted,
            "approximate": self.approximate,
            "note": self.note,
            "shift": _finite(self.shift),
        }


@dataclass(frozen=True, slots=True)
class DriftReport:
    """Per-column drift verdicts of one current batch against a reference.

    ``dataset_drift`` is True when at least ``dataset_share`` of the tested columns drifted.
    Columns that could not be tested are listed in ``skipped`` with the reason.
    """

    columns: dict[str, ColumnDrift]
    skipped: dict[str, str]
    dataset_share: float
    alarm: Alarm
    reference_rows: int
    current_rows: int
    notes: list[str] = field(default_factory=list)
    reference_profile: Profile | None = field(default=None, repr=False, compare=False)
    current_profile: Profile | None = field(default=None, repr=False, compare=False)

    @property
    def drifted_columns(self) -> list[str]:
        """Names of the drifted columns, largest effect relative to its threshold first."""
        drifted = [c for c in self.columns.values() if c.drifted]
        drifted.sort(key=lambda c: -(c.effect_size / c.threshold if c.threshold else math.inf))
        return [c.column for c in drifted]

    @property
    def share_drifted(self) -> float:
        """Share of tested columns that drifted."""
        return len(self.drifted_columns) / len(self.columns) if self.columns else 0.0

    @property
    def dataset_drift(self) -> bool:
        """True when the share of drifted columns reaches ``dataset_share``."""
        return bool(self.columns) and self.share_drifted >= self.dataset_share

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form: ``columns: {name: {test, statistic, effect_size, p_value, ...}}``."""
        return {
            "dataset_drift": self.dataset_drift,
            "share_drifted": self.share_drifted,
            "n_drifted": len(self.drifted_columns),
            "n_tested": len(self.columns),
            "dataset_share": self.dataset_share,
            "alarm": self.alarm,
            "reference_rows": self.reference_rows,
            "current_rows": self.current_rows,
            "drifted_columns": self.drifted_columns,
            "columns": {name: c.to_dict() for name, c in self.columns.items()},
            "skipped": dict(self.skipped),
            "notes": list(self.notes),
        }

    def to_df(self) -> pl.DataFrame:
        """One row per tested column."""
        rows = [{"column": name, **c.to_dict()} for name, c in self.columns.items()]
        if not rows:
            return pl.DataFrame(schema={"column": pl.String, "drifted": pl.Boolean})
        return pl.DataFrame(rows)

    def to_html(self, path: str | Path) -> Path:
        """Write the report as one self-contained HTML file with each column's distributions."""
        from mlwarden.report import html
        from mlwarden.report.drift import drift_html

        if self.reference_profile is None or self.current_profile is None:
            raise InputError("This report carries no profiles to plot; make it with compare().")
        return html.write(path, drift_html(self, self.reference_profile, self.current_profile))

    @property
    def message(self) -> str:
        """One line a person reads first."""
        if not self.columns:
            return "No column could be tested."
        names = ", ".join(self.drifted_columns[:5]) + (
            ", ..." if len(self.drifted_columns) > 5 else ""
        )
        if not self.drifted_columns:
            return f"No drift in {len(self.columns)} columns."
        verdict = "Dataset drift" if self.dataset_drift else "Drift"
        return (
            f"{verdict}: {len(self.drifted_columns)} of {len(self.columns)} columns drifted "
            f"({names})."
        )


def compare(
    reference: object,
    current: object,
    *,
    columns: Sequence[str] | None = None,
    tests: Mapping[str, str | DriftTest | dict[str, Any]] | None = None,
    thresholds: Mapping[str, float] | None = None,
    alarm: Alarm = "calibrated",
    alpha: float = 0.05,
    correction: Correction = "fdr_bh",
    dataset_share: float = 0.5,
    kinds: Mapping[str, str | Kind] | None = None,
    roles: Mapping[str, str | Role] | None = None,
) -> DriftReport:
    """Compare ``current`` with ``reference`` column by column.

    Parameters:
        reference: a fitted :class:`~mlwarden.drift.reference.Reference`, or reference data
            (any input :func:`mlwarden.profile` accepts; it is fitted on the fly).
        current: the batch to judge: data, or a :class:`~mlwarden.profiling.Profile`.
        columns: the columns to test (default: features, predictions, scores, targets and
            segments of numeric, categorical or boolean kind).
        tests: a drift test per column (``{"pressure": "psi"}``); defaults: ``ks`` for numeric,
            ``jensen_shannon`` for categorical and boolean columns.
        thresholds: a fixed effect-size threshold per column (overrides calibration).
        alarm: ``"calibrated"`` (effect size above a threshold learned on the reference),
            ``"threshold"`` (each test's conventional threshold), or ``"p_value"`` (adjusted
            p-value below ``alpha``; tests without p-values fall back to calibration).
        alpha: family-wise false-alarm level of calibrated thresholds, and the level of p-values.
        correction: multiple-testing correction of p-values across columns.
        dataset_share: share of drifted columns that makes the whole dataset drifted.
        kinds, roles: override inferred kinds and roles (as in :func:`mlwarden.profile`).

    Example:
        >>> import numpy as np, polars as pl
        >>> rng = np.random.default_rng(0)
        >>> def line(n, temp):
        ...     return pl.DataFrame({"temp": rng.normal(temp, 5, n), "speed": rng.normal(20, 2, n)})
        >>> ref, cur = line(20_000, 200.0), line(2_000, 203.0)
        >>> report = compare(ref, cur)
        >>> report.drifted_columns, report.columns["speed"].drifted
        (['temp'], False)
    """
    if alarm not in ("calibrated", "threshold", "p_value"):
        raise ParameterError(
            f"'{alarm}' is not an alarm mode. Available: calibrated, threshold, p_value.",
            parameter="alarm",
        )
    if correction not in ("fdr_bh", "holm", "bonferroni", "none"):
        raise ParameterError(
            f"'{correction}' is not a correction. Available: fdr_bh, holm, bonferroni, none.",
            parameter="correction",
        )
    if not 0 < alpha < 1 or not 0 < dataset_share <= 1:
        raise ParameterError(
            f"'alpha' must lie in (0, 1) and 'dataset_share' in (0, 1]; got {alpha}, "
            f"{dataset_share}.",
            parameter="alpha",
        )
    ref = as_reference(reference, kinds=kinds, roles=roles)
    ref_profile = ref.profile
    chosen = _choose_columns(ref_profile, columns)
    cur_profile = _profile_current(current, ref, chosen)
    if cur_profile.n_rows == 0:
        raise InputError("The current data has no rows; there is nothing to compare.")

    skipped: dict[str, str] = {}
    planned: list[tuple[str, DriftTest]] = []
    for name in chosen:
        reason = _untestable(name, ref_profile, cur_profile)
        if reason:
            skipped[name] = reason
            continue
        kind = ref_profile[name].kind
        test = make_test((tests or {}).get(name, DEFAULT_TESTS.get(kind, "ks")))
        if not test.applies_to(kind):
            skipped[name] = f"test '{test.key}' does not apply to {kind} columns"
            continue
        planned.append((name, test))

    results: dict[str, ColumnDrift] = {}
    tail = tail_probability(alpha, len(planned))
    for name, test in planned:
        r, c = ref_profile[name], cur_profile[name]
        note = ""
        within = ref.within(name, cur_profile, test)
        if within is not None:
            r, note = within
        outcome = test.compute(r, c)
        if thresholds and name in thresholds:
            threshold, source = float(thresholds[name]), "user"
        elif test.threshold is not None:
            threshold, source = test.threshold, "user"
        elif alarm == "threshold":
            threshold, source = test.default_threshold, "default"
        else:
            spread = ref.spread(name, test, n_rows=c.count)
            threshold, source = spread.threshold(tail, c.count, test), "calibrated"
        results[name] = ColumnDrift(
            column=name,
            kind=r.kind,
            test=test.key,
            statistic=outcome.statistic,
            effect_size=outcome.effect_size,
            p_value=outcome.p_value,
            threshold=threshold,
            threshold_source=source,
            drifted=bool(outcome.effect_size > threshold),
            approximate=outcome.approximate,
            note="; ".join(n for n in (note, outcome.note) if n),
            null=test.null_model(r, c),
            shift=location_shift(r, c) if r.kind is Kind.NUMERIC else None,
            shift_null=location_null(r, c) if r.kind is Kind.NUMERIC else None,
        )
    notes: list[str] = []
    if alarm == "p_value":
        results = _p_value_verdicts(results, alpha, correction)
        notes.append(f"verdicts by p-value ({correction}) where a test has one")
    return DriftReport(
        results,
        skipped,
        dataset_share,
        alarm,
        ref_profile.n_rows,
        cur_profile.n_rows,
        notes,
        ref_profile,
        cur_profile,
    )


def _choose_columns(ref: Profile, columns: Sequence[str] | None) -> list[str]:
    if columns is not None:
        for name in columns:
            ref[name]  # raises an InputError naming the column
        return list(columns)
    return [c.name for c in ref if c.role in _TESTED_ROLES]


def _profile_current(current: object, reference: Reference, chosen: list[str]) -> Profile:
    if isinstance(current, Profile):
        return current
    from mlwarden import frames

    ref = reference.profile
    frame = reference.regimes.prepare(frames.to_polars(current))
    present = [n for n in chosen if n in frame.columns]
    # The regimes a conditioned column is compared within, profiled but not tested.
    regimes = [r for r in [*reference.regimes.columns, PHASE] if r in frame.columns]
    extra = [r for r in regimes if r not in present]
    # Strings are read as the reference read them, so that categorical/text choices agree.
    kinds = {n: ref[n].kind for n in present if ref[n].kind in _STRING_KINDS}
    kinds |= dict.fromkeys(extra, Kind.CATEGORICAL)
    return profile(frame.select(present + extra), kinds=kinds, config=ref.config)


def _untestable(name: str, ref: Profile, cur: Profile) -> str:
    if name not in cur.columns:
        return "missing in the current data"
    r, c = ref[name], cur[name]
    if r.kind not in DEFAULT_TESTS:
        return f"{r.kind} columns are not tested for drift"
    if c.kind != r.kind and c.count != 0:
        return f"kind differs: {r.kind} in the reference, {c.kind} in the current data"
    if r.count == 0:
        return "no values in the reference"
    if c.count == 0:
        return "no values in the current data"
    return ""


def _p_value_verdicts(
    results: dict[str, ColumnDrift], alpha: float, correction: Correction
) -> dict[str, ColumnDrift]:
    with_p = [name for name, r in results.items() if r.p_value is not None]
    if not with_p:
        return results
    p = np.asarray([results[n].p_value for n in with_p], dtype=np.float64)
    if correction == "fdr_bh":
        adjusted = stats.false_discovery_control(p, method="bh")
    elif correction == "holm":
        order = np.argsort(p)
        scaled = p[order] * (p.size - np.arange(p.size))
        adjusted = np.empty_like(p)
        adjusted[order] = np.minimum(1.0, np.maximum.accumulate(scaled))
    elif correction == "bonferroni":
        adjusted = np.minimum(1.0, p * p.size)
    else:
        adjusted = p
    out = dict(results)
    for name, adj in zip(with_p, adjusted, strict=True):
        r = results[name]
        out[name] = ColumnDrift(
            **{
                **{f: getattr(r, f) for f in r.__dataclass_fields__},
                "p_value_adjusted": float(adj),
                "drifted": bool(adj < alpha),
                "threshold": alpha,
                "threshold_source": f"p-value ({correction})",
            }
        )
    return out


def _finite(x: float | None) -> float | None:
    return x if x is not None and math.isfinite(x) else None


__all__ = ["ColumnDrift", "DriftReport", "compare"]
