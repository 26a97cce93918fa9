"""``mlwarden feedback`` and ``mlwarden promotion``: people's feedback on predictions, the
training set it labels, and the promotion gate with its review.

Thin commands over :mod:`mlwarden.feedback` and :mod:`mlwarden.registry.promotion`. Errors a
user can cause print one line and exit with status 2.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import click

from mlwarden._cli_common import DATA_DIR_OPTION, DATABASE_OPTION, build_settings, friendly_errors
from mlwarden._cli_data import ENCODING_OPTION, read_data

if TYPE_CHECKING:
    from datetime import datetime


@click.group("feedback")
def feedback_group() -> None:
    """Feedback on predictions and their explanations: list it, export what it labelled."""


@feedback_group.command("export")
@click.argument("model")
@click.argument("out", type=click.Path(path_type=Path))
@click.option("--version", help="Only feedback on predictions of this version.")
@click.option("--start", type=click.DateTime(), help="Predictions made from this time (UTC).")
@click.option("--end", type=click.DateTime(), help="Predictions made before this time (UTC).")
@DATA_DIR_OPTION
@DATABASE_OPTION
@friendly_errors
def export_command(
    model: str,
    out: Path,
    version: str | None,
    start: datetime | None,
    end: datetime | None,
    data_dir: Path | None,
    database_url: str | None,
) -> None:
    """Write the rows of MODEL that feedback labelled, with their labels and who gave them, to
    OUT (Parquet, or CSV for a .csv name): a training set for the next version."""
    from mlwarden.feedback import export_training_set
    from mlwarden.store.metadata import as_utc
    from mlwarden.store.rowlog import RowLog

    settings = build_settings(data_dir, database_url)
    store = settings.store()
    store.migrate()
    frame = export_training_set(
        store,
        RowLog(settings.data_dir / "log"),
        model,
        out,
        version=version,
        start=None if start is None else as_utc(_utc(start), "start"),
        end=None if end is None else as_utc(_utc(end), "end"),
    )
    click.echo(f"Wrote {frame.height:,} labelled rows to {out}.")


@feedback_group.command("list")
@click.argument("model")
@click.option("--limit", type=click.IntRange(1, 100_000), default=50, show_default=True)
@DATA_DIR_OPTION
@DATABASE_OPTION
@friendly_errors
def list_command(model: str, limit: int, data_dir: Path | None, database_url: str | None) -> None:
    """The latest feedback on MODEL's predictions."""
    from mlwarden.feedback import list_feedback

    store = build_settings(data_dir, database_url).store()
    store.migrate()
    for f in list_feedback(store, model, limit=limit):
        said = [f.decision + (f"({f.reason})" if f.reason else "")] if f.decision else []
        if f.correct is not None:
            said.append("correct" if f.correct else "incorrect")
        if f.true_value is not None:
            said.append(f"true={f.true_value}")
        if f.plausible is not None:
            said.append("plausible" if f.plausible else "implausible")
        click.echo(
            f"{f.id:>5}  {f.created_at:%Y-%m-%d %H:%M}  {f.prediction_id:<14} v{f.version:<6} "
            f"{f.role:<13} {f.by or '-':<12} {', '.join(said)}"
        )


@click.group("promotion")
def promotion_group() -> None:
    """Promote a version through the gate: held-out evaluation, then an expert's review."""


@promotion_group.command("request")
@click.argument("model")
@click.argument("version")
@click.argument("holdout", type=click.Path(path_type=Path))
@click.option("--alias", default="production", show_default=True)
@click.option(
    "--threshold",
    "thresholds",
    multiple=True,
    metavar="METRIC=VALUE",
    help="A value the candidate must reach (minimum, or maximum for error metrics).",
)
@click.option("--tolerance", type=float, default=0.01, show_default=True)
@click.option("--segment-tolerance", type=float, default=0.03, show_default=True)
@click.option("--no-review", is_flag=True, help="Promote at once when the gate passes.")
@click.option("--by", default="", help="Who asks.")
@ENCODING_OPTION
@DATA_DIR_OPTION
@DATABASE_OPTION
@friendly_errors
def request_command(
    model: str,
    version: str,
    holdout: Path,
    alias: str,
    thresholds: tuple[str, ...],
    tolerance: float,
    segment_tolerance: float,
    no_review: bool,
    by: str,
    encoding: str | None,
    data_dir: Path | None,
    database_url: str | None,
) -> None:
    """Ask to point ALIAS of MODEL at VERSION, judged on the labelled rows in HOLDOUT against
    the version ALIAS points at now."""
    from mlwarden.exceptions import ParameterError
    from mlwarden.registry.promotion import PromotionGate, request_promotion

    limits = {}
    for pair in thresholds:
        name, sep, value = pair.partition("=")
        try:
            limits[name.strip()] = float(value)
        except ValueError:
            sep = ""
        if not sep:
            raise ParameterError(
                f"--threshold takes METRIC=VALUE (e.g. roc_auc=0.8); got {pair!r}.",
                parameter="threshold",
            )
    rows = read_data(holdout, encoding=encoding)
    store = build_settings(data_dir, database_url).store()
    store.migrate()
    gate = PromotionGate(
        thresholds=limits,
        tolerance=tolerance,
        segment_tolerance=segment_tolerance,
        require_review=not no_review,
    )
    found = request_promotion(store, model, version, rows, alias=alias, gate=gate, by=by)
    click.echo(f"Promotion {found.id}: {model} {version} -> {alias}: {found.status}")
    for m in found.gate["metrics"]:
        if m["segment"] and m["passed"]:
            continue
        other = "-" if m["baseline"] is None else f"{m['baseline']:.4g}"
        own = "-" if m["candidate"] is None else f"{m['candidate']:.4g}"
        mark = "ok" if m["passed"] else "FAIL"
        where = m["segment"] or "overall"
        click.echo(f"  {mark:<4} {m['metric']:<12} {where:<14} {own:>8} (now {other})")
    for failure in found.gate["failures"]:
        click.echo(f"  blocked: {failure}")


@promotion_group.command("review")
@click.argument("promotion_id", type=int)
@click.option("--approve/--reject", required=True)
@click.option("--by", required=True, help="Who reviews.")
@click.option("--comment", default="")
@DATA_DIR_OPTION
@DATABASE_OPTION
@friendly_errors
def review_command(
    promotion_id: int,
    approve: bool,
    by: str,
    comment: str,
    data_dir: Path | None,
    database_url: str | None,
) -> None:
    """Approve (the alias moves) or reject a pending promotion."""
    from mlwarden.registry.promotion import review_promotion

    store = build_settings(data_dir, database_url).store()
    store.migrate()
    found = review_promotion(store, promotion_id, approve=approve, by=by, comment=comment)
    click.echo(
        f"Promotion {found.id}: {found.model} {found.version} -> {found.alias}: {found.status}"
    )


def _utc(moment: datetime) -> datetime:
    from datetime import UTC

    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)
