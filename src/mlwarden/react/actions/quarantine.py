"""Quarantine: the window's rows through the quality gate, the rejected ones set aside."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

import polars as pl

from mlwarden.react.actions.base import Action, ActionContext, ActionError

if TYPE_CHECKING:
    from pathlib import Path

    from mlwarden.react.spec import SpecReader

_SERVICE = ("_model", "_date", "_model_version", "_ingested_at", "_batch_id")


def quarantine_path(data_dir: Path, model: str, start: Any) -> Path:
    """``<data_dir>/quarantine/<model>/<window start>.parquet`` (the start as 20240501T130000Z)."""
    return data_dir / "quarantine" / model / f"{start:%Y%m%dT%H%M%SZ}.parquet"


@dataclass(frozen=True)
class Quarantine(Action, key="quarantine"):
    """Run the logged rows of the window that fired the policy through the quality gate
    (:func:`mlwarden.quality.gate`) with the version's suite; the rows it rejects are written,
    with their reasons, to ``<data_dir>/quarantine/<model>/<window start>.parquet``, and the
    counts (accepted, repaired, quarantined, per reason) go into the audit log.

    Example:
        >>> Quarantine.parse("p", "actions[0].quarantine", {})
        Quarantine(approval=False)
    """

    approval: bool = False

    example: ClassVar[dict[str, object]] = {}

    @classmethod
    def read(cls, reader: SpecReader, *, approval: bool) -> Quarantine:
        return cls(approval=approval)

    def describe(self, ctx: ActionContext) -> str:
        if ctx.window is None:
            return "quarantine: no window to gate"
        path = quarantine_path(ctx.data_dir, ctx.model, ctx.window.start)
        return f"gate the rows of window {ctx.window.start:%Y-%m-%d %H:%M}; rejected rows to {path}"

    def run(self, ctx: ActionContext) -> dict[str, Any]:
        from mlwarden.quality import gate
        from mlwarden.registry import Registry

        window = ctx.window
        if window is None:
            raise ActionError("The quarantine action needs the window that fired the policy.")
        registry = Registry(ctx.store)
        reference = registry.reference(ctx.model, window.version)
        timestamp = reference.suite.timestamp or "timestamp"
        rows = ctx.rowlog.read(
            ctx.model,
            start=window.start,
            end=window.end,
            version=window.version,
            timestamp=timestamp,
        )
        # Labels arrive apart from the rows: the suite judges the rows as the model saw them.
        target = reference.evaluators.target if reference.evaluators is not None else None
        rows = rows.drop([c for c in (*_SERVICE, target) if c is not None and c in rows.columns])
        if rows.height == 0:
            raise ActionError(
                f"The row log holds no rows of window {window.start:%Y-%m-%d %H:%M} (retention "
                "may have removed them)."
            )
        result = gate(rows, reference.suite, now=window.end)
        detail: dict[str, Any] = {
            "window": window.id,
            "rows": result.n_rows,
            "accepted": result.accepted.height,
            "repaired": result.repaired.height,
            "quarantined": result.quarantined.height,
            "reasons": {},
            "path": None,
        }
        if result.quarantined.height:
            counts = (
                result.quarantined.select(pl.col("reasons").explode().alias("reason"))
                .group_by("reason")
                .len()
                .sort("len", "reason", descending=[True, False])
            )
            detail["reasons"] = dict(zip(counts["reason"], counts["len"], strict=True))
            path = quarantine_path(ctx.data_dir, ctx.model, window.start)
            path.parent.mkdir(parents=True, exist_ok=True)
            detail["path"] = str(result.write_quarantine(path))
        return detail
