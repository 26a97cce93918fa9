"""The gate: detect → repair → quarantine, so bad data never reaches a model unnoticed.

:func:`gate` validates a batch and splits its rows three ways: *accepted* (nothing wrong, or only
what the policy accepts), *repaired* (fixed by a recorded repair: a short sensor dropout filled
forward, a value clipped to its physical limits, a spike replaced by its neighbours' mean) and
*quarantined* (with the reasons). Nothing is dropped silently: the three add up to the input.

By default the rows that break a failed check of severity ``error`` are quarantined, rows that
only break warnings (or checks that passed within their tolerance) are accepted, and a failed
error check judged on the whole batch (freshness, a missing column, a distribution band)
quarantines the whole batch. A :class:`GatePolicy` changes any of it, per check.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import polars as pl

from mlwarden.exceptions import ParameterError
from mlwarden.quality.base import Check, Context
from mlwarden.quality.validation import ROW, grouped_parameters, run

if TYPE_CHECKING:
    from datetime import datetime

    from mlwarden.quality.suite import Suite
    from mlwarden.quality.validation import Validation

Action = Literal["accept", "repair", "quarantine"]
ACTIONS: tuple[Action, ...] = ("accept", "repair", "quarantine")
REASONS = "reasons"


@dataclass(frozen=True)
class GatePolicy:
    """What the gate does with rows that break a check.

    Parameters:
        actions: per check, ``"accept"``, ``"repair"`` or ``"quarantine"``; keyed by label
            (``"range(temperature_c)"``) or by check key (``"not_null"``), the label winning.
            Checks not listed: quarantine when an error-severity check failed, else accept.
        fill_limit: repairs of missing readings fill forward at most this many consecutive
            readings of a series; longer dropouts are quarantined.
        batch: what a failed error-severity check judged on the whole batch does:
            ``"quarantine"`` every row, or ``"accept"`` (and let the validation report it).

    Example:
        >>> policy = GatePolicy(actions={"not_null": "repair", "range": "repair"}, fill_limit=3)
        >>> policy.action_for("range", "range(pressure_bar)")
        'repair'
    """

    actions: dict[str, Action] = field(default_factory=dict)
    fill_limit: int = 3
    batch: Literal["accept", "quarantine"] = "quarantine"

    def __post_init__(self) -> None:
        for name, action in self.actions.items():
            if action not in ACTIONS:
                raise ParameterError(
                    f"The gate action for '{name}' must be one of {', '.join(ACTIONS)}; got "
                    f"{action!r}.",
                    parameter="actions",
                )
        if not isinstance(self.fill_limit, int) or self.fill_limit < 0:
            raise ParameterError(
                f"The 'fill_limit' parameter of GatePolicy must be an int >= 0; got "
                f"{self.fill_limit!r}.",
                parameter="fill_limit",
            )
        if self.batch not in ("accept", "quarantine"):
            raise ParameterError(
                f"The 'batch' parameter of GatePolicy must be 'accept' or 'quarantine'; got "
                f"{self.batch!r}.",
                parameter="batch",
            )

    def action_for(self, key: str, label: str) -> Action | None:
        """The configured action for a check, or None for the default."""
        return self.actions.get(label, self.actions.get(key))


@dataclass(frozen=True)
class GateResult:
    """The rows of a batch, split by the gate; the three frames add up to the input.

    Attributes:
        accepted: rows that pass, with the input's columns, in input order.
        repaired: rows fixed by a repair, with the repaired values.
        quarantined: rows held back, with a ``reasons`` column (the checks they broke).
        repairs: one row per repaired value: ``row`` (0-based input row), ``column``,
            ``check``, ``before``, ``after``.
        validation: the validation of the input batch.
    """

    accepted: pl.DataFrame
    repaired: pl.DataFrame
    quarantined: pl.DataFrame
    repairs: pl.DataFrame
    validation: Validation

    @property
    def n_rows(self) -> int:
        return self.accepted.height + self.repaired.height + self.quarantined.height

    def write_quarantine(self, path: str | Path) -> Path:
        """Write the quarantined rows (with their reasons) to a Parquet file, atomically."""
        target = Path(path)
        temporary = target.with_name(target.name + ".tmp")
        self.quarantined.write_parquet(temporary)
        temporary.replace(target)
        return target

    def summary(self) -> str:
        total = self.n_rows
        return (
            f"{total:,} rows: {self.accepted.height:,} accepted, {self.repaired.height:,} "
            f"repaired ({self.repairs.height:,} values), {self.quarantined.height:,} quarantined."
        )

    def __repr__(self) -> str:
        return f"GateResult({self.summary()})"


def gate(
    data: object,
    suite: Suite | str | Path,
    policy: GatePolicy | dict[str, Any] | None = None,
    *,
    now: datetime | None = None,
) -> GateResult:
    """Validate ``data`` with ``suite`` and split its rows into accepted, repaired, quarantined.

    Parameters:
        data: a DataFrame, Arrow table, or a Parquet/CSV path.
        suite: a :class:`Suite`, or the path of a suite YAML file.
        policy: a :class:`GatePolicy` (or its keyword arguments as a dict).
        now: the time freshness is measured against (default: now).

    Example:
        >>> import polars as pl
        >>> from mlwarden.quality import Range, Suite
        >>> frame = pl.DataFrame({"pressure_bar": [141.0, 980.0, 139.5]})
        >>> suite = Suite([Range(column="pressure_bar", min=0, max=400)])
        >>> result = gate(frame, suite)
        >>> result.accepted.height, result.quarantined["reasons"].to_list()
        (2, [['range(pressure_bar)']])
        >>> fixed = gate(frame, suite, GatePolicy(actions={"range": "repair"}))
        >>> fixed.repaired["pressure_bar"].to_list(), fixed.repairs["after"].to_list()
        ([400.0], [400.0])
    """
    if policy is None:
        policy = GatePolicy()
    elif isinstance(policy, dict):
        policy = GatePolicy(**policy)
    outcome = run(data, suite, now=now, keep_series=True)
    validation = outcome.validation
    checks = _suite_of(suite).checks
    frame = outcome.frame
    columns = [c for c in frame.columns if not c.startswith("__")]
    timestamp = _suite_of(suite).timestamp
    entity = list(_suite_of(suite).entity)
    if timestamp is not None and timestamp in frame.columns:
        frame = frame.sort([*entity, timestamp], nulls_last=True, maintain_order=True)

    quarantine: list[tuple[str, pl.Expr]] = []
    held: list[tuple[str, int, Check]] = []
    repairs: list[tuple[int, Check, str]] = []
    for result in validation.results:
        check = checks[result.index]
        action = policy.action_for(check.key, result.label)
        flag = outcome.flags.get(result.index)
        if flag is None:
            batch_failed = not result.passed and result.severity == "error"
            if batch_failed and policy.batch == "quarantine" and action != "accept":
                quarantine.append((result.label, pl.lit(True)))
            continue
        if action is None:
            action = (
                "quarantine" if (not result.passed and result.severity == "error") else "accept"
            )
        if action == "quarantine":
            held.append((result.label, result.index, check))
        elif action == "repair":
            target = _repair_target(check)
            repairs.append((result.index, check, target))

    frame, logs, unrepaired = _apply_repairs(
        frame, repairs, outcome.flags, policy, _suite_of(suite)
    )
    quarantine += unrepaired
    schema = dict(frame.schema)
    for label, index, check in held:
        # A row-local rule is judged again after the repairs, so a filled-in value that breaks
        # it is held back too; rules over neighbours or the whole batch keep their first flags.
        condition = pl.col(outcome.flags[index])
        if check.row_local:
            ctx = _context(index, check, schema, _suite_of(suite))
            condition = condition | check.fails(ctx)  # type: ignore[operator]
        quarantine.append((label, condition.fill_null(False)))
    reasons = (
        pl.concat_list(
            [pl.when(cond).then(pl.lit(label)) for label, cond in quarantine]
        ).list.drop_nulls()
        if quarantine
        else pl.lit([], dtype=pl.List(pl.String))
    )
    repaired_flag = (
        pl.any_horizontal([pl.col(outcome.flags[i]) for i, _, _ in repairs])
        if repairs
        else pl.lit(False)
    )
    frame = frame.with_columns(reasons.alias("__reasons"), repaired_flag.alias("__repaired"))
    frame = frame.with_columns((pl.col("__reasons").list.len() > 0).alias("__quarantined")).sort(
        ROW
    )
    quarantined = frame.filter(pl.col("__quarantined")).select(
        [*columns, pl.col("__reasons").alias(REASONS)]
    )
    repaired = frame.filter(~pl.col("__quarantined") & pl.col("__repaired")).select(columns)
    accepted = frame.filter(~pl.col("__quarantined") & ~pl.col("__repaired")).select(columns)
    kept = frame.filter(~pl.col("__quarantined")).select(ROW)
    log = (
        pl.concat(logs, how="vertical_relaxed").join(kept, left_on="row", right_on=ROW, how="semi")
        if logs
        else pl.DataFrame(
            schema={
                "row": pl.UInt32,
                "column": pl.String,
                "check": pl.String,
                "before": pl.Float64,
                "after": pl.Float64,
            }
        )
    )
    total = accepted.height + repaired.height + quarantined.height
    if total != validation.n_rows:  # pragma: no cover - an invariant, not an input error
        raise AssertionError(f"gate lost rows: {total} of {validation.n_rows}")
    return GateResult(
        accepted=accepted,
        repaired=repaired,
        quarantined=quarantined,
        repairs=log.sort("row", "column"),
        validation=validation,
    )


def _suite_of(suite: Suite | str | Path) -> Suite:
    from mlwarden.quality.suite import Suite

    return suite if isinstance(suite, Suite) else Suite.from_yaml(suite)


def _repair_target(check: Check) -> str:
    column = getattr(check, "column", None)
    if not getattr(check, "repairable", False) or not isinstance(column, str):
        repairable = sorted(
            k for k, c in Check._registry.items() if getattr(c, "repairable", False)
        )
        raise ParameterError(
            f"The check '{check.key}' cannot repair rows; choose 'quarantine' or 'accept' for it. "
            f"Checks that repair: {', '.join(repairable)}.",
            parameter="actions",
        )
    return column


def _apply_repairs(
    frame: pl.DataFrame,
    repairs: list[tuple[int, Check, str]],
    flags: dict[int, str],
    policy: GatePolicy,
    suite: Suite,
) -> tuple[pl.DataFrame, list[pl.DataFrame], list[tuple[str, pl.Expr]]]:
    """Apply repairs in suite order; rows a repair could not fix go to quarantine."""
    logs: list[pl.DataFrame] = []
    unrepaired: list[tuple[str, pl.Expr]] = []
    schema = dict(frame.schema)
    for index, check, column in repairs:
        ctx = _context(index, check, schema, suite)
        flag = pl.col(flags[index])
        if check.row_local:
            # Judged on the values as repaired so far: a value filled in by an earlier repair
            # is clipped too.
            flag = (flag | check.fails(ctx)).fill_null(False)  # type: ignore[operator]
        fixed = check.repair(ctx, policy.fill_limit)  # type: ignore[attr-defined]
        before = pl.col(column)
        after = pl.when(flag).then(fixed).otherwise(before)
        frame = frame.with_columns(after.alias("__after"))
        failed = (
            flag & (pl.col("__after").is_null() | pl.col("__after").is_nan())
            if schema[column].is_float()
            else flag & pl.col("__after").is_null()
        )
        label = f"{check.key}({column})"
        frame = frame.with_columns(failed.alias(f"__unfixed{index}"))
        unrepaired.append((f"{label}: not repairable", pl.col(f"__unfixed{index}")))
        logs.append(
            frame.filter(flag & ~pl.col(f"__unfixed{index}")).select(
                pl.col(ROW).alias("row"),
                pl.lit(column).alias("column"),
                pl.lit(check.key).alias("check"),
                before.cast(pl.Float64, strict=False).alias("before"),
                pl.col("__after").cast(pl.Float64, strict=False).alias("after"),
            )
        )
        frame = frame.with_columns(
            pl.when(pl.col(f"__unfixed{index}"))
            .then(before)
            .otherwise(pl.col("__after"))
            .alias(column)
        ).drop("__after")
    return frame, logs, unrepaired


def _context(index: int, check: Check, schema: dict[str, pl.DataType], suite: Suite) -> Context:
    return Context(
        index,
        schema=schema,
        timestamp=suite.timestamp,
        entity=suite.entity,
        grouped=frozenset(grouped_parameters(check)),
        now=_now(),
    )


def _now() -> datetime:
    from datetime import UTC, datetime

    return datetime.now(UTC)
