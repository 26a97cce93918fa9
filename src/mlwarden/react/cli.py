"""``mlwarden policy``: check and run reaction policies, read the audit log, approve or reject.

Thin commands over :mod:`mlwarden.react.policies`. Errors a user can cause print one line and
exit with status 2.
"""

from __future__ import annotations

import functools
import sys
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar

import click

from mlwarden._cli_common import (
    DATA_DIR_OPTION,
    DATABASE_OPTION,
    build_settings,
    friendly_errors,
)

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence

    from mlwarden.react.audit import ActionRecord

T = TypeVar("T")


@click.group("policy")
def policy_group() -> None:
    """Reaction policies: when the evaluated windows show a condition, act (notify,
    quarantine, roll back, retrain, call a webhook, open or close the incident)."""


@policy_group.command("check")
@click.argument("file", type=click.Path(path_type=Path))
@friendly_errors
def check_command(file: Path) -> None:
    """Validate the policy FILE and print its policies."""
    from mlwarden.react.policies import load_policies

    policies = load_policies(file)
    for policy in policies:
        click.echo(f"{policy.name}  (models: {policy.model})")
        if policy.description:
            click.echo(f"  {policy.description}")
        click.echo(f"  when {policy.when.describe()}")
        for action in policy.actions:
            params = {k: v for k, v in action.params().items() if k != "approval"}
            shown = ", ".join(f"{k}={v}" for k, v in params.items())
            wait = "  [approval required]" if action.approval else ""
            click.echo(f"  - {action.key}{' ' + shown if shown else ''}{wait}")
    click.echo(f"{len(policies)} polic{'y' if len(policies) == 1 else 'ies'} OK.")


@policy_group.command("run")
@click.argument("file", type=click.Path(path_type=Path))
@click.option("--model", help="Only this model (default: every model).")
@click.option("--dry-run", is_flag=True, help="Record what would happen; change nothing.")
@click.option(
    "--notify",
    "channels",
    multiple=True,
    metavar="SPEC",
    help="Channel for notify actions that name none: log, webhook+URL, apprise+URL.",
)
@click.option(
    "--lookback-hours",
    type=click.FloatRange(min=0),
    default=24.0,
    show_default=True,
    help="Act only on conditions holding in windows that ended this recently (0: any time).",
)
@DATA_DIR_OPTION
@DATABASE_OPTION
@friendly_errors
def run_command(
    file: Path,
    model: str | None,
    dry_run: bool,
    channels: tuple[str, ...],
    lookback_hours: float,
    data_dir: Path | None,
    database_url: str | None,
) -> None:
    """Apply the policies of FILE to the evaluated windows: each action fires once per
    incident, however often this runs; actions that need approval wait for 'policy approve'."""
    from mlwarden.react.policies import apply_policies, load_policies

    policies = load_policies(file)
    records = _react(
        functools.partial(
            apply_policies,
            policies=policies,
            model=model,
            dry_run=dry_run,
            lookback=timedelta(hours=lookback_hours) if lookback_hours else None,
        ),
        channels,
        data_dir,
        database_url,
    )
    if records:
        _table(records, "Actions taken" if not dry_run else "Actions a real run would take")
    click.echo(f"{len(records)} action(s) recorded{' (dry run)' if dry_run else ''}.")


@policy_group.command("actions")
@click.option("--model", help="Only this model's actions.")
@click.option("--incident", type=int, help="Only the actions about this incident.")
@click.option("--limit", type=click.IntRange(1, 10_000), default=50, show_default=True)
@DATA_DIR_OPTION
@DATABASE_OPTION
@friendly_errors
def actions_command(
    model: str | None,
    incident: int | None,
    limit: int,
    data_dir: Path | None,
    database_url: str | None,
) -> None:
    """The audit log of policy actions, newest first."""
    from mlwarden.react.policies import actions

    store = build_settings(data_dir, database_url).store()
    store.migrate()
    records = actions(store, model, incident=incident, limit=limit)
    if records:
        _table(records, "Policy actions, newest first")
    else:
        click.echo("No policy action recorded.")


@policy_group.command("approve")
@click.argument("action_id", type=int)
@click.option("--by", required=True, help="Who approves (kept in the audit log).")
@click.option("--comment", default="", help="Why.")
@click.option("--notify", "channels", multiple=True, metavar="SPEC", help="Channel for notify.")
@DATA_DIR_OPTION
@DATABASE_OPTION
@friendly_errors
def approve_command(
    action_id: int,
    by: str,
    comment: str,
    channels: tuple[str, ...],
    data_dir: Path | None,
    database_url: str | None,
) -> None:
    """Approve the pending action ACTION_ID: it runs now."""
    _decide(action_id, True, by, comment, channels, data_dir, database_url)


@policy_group.command("reject")
@click.argument("action_id", type=int)
@click.option("--by", required=True, help="Who rejects (kept in the audit log).")
@click.option("--comment", default="", help="Why.")
@DATA_DIR_OPTION
@DATABASE_OPTION
@friendly_errors
def reject_command(
    action_id: int, by: str, comment: str, data_dir: Path | None, database_url: str | None
) -> None:
    """Reject the pending action ACTION_ID: it never runs."""
    _decide(action_id, False, by, comment, (), data_dir, database_url)


def _decide(
    action_id: int,
    approve: bool,
    by: str,
    comment: str,
    channels: Sequence[str],
    data_dir: Path | None,
    database_url: str | None,
) -> None:
    from mlwarden.react.policies import decide

    record = _react(
        functools.partial(decide, action_id=action_id, approve=approve, by=by, comment=comment),
        channels,
        data_dir,
        database_url,
    )
    click.echo(f"Action {record.id} ({record.policy}: {record.action}) is {record.status}.")
    if record.summary:
        click.echo(f"  {record.summary}")
    if record.status == "failed":
        sys.exit(1)


def _react(
    call: Callable[..., T],
    channels: Sequence[str],
    data_dir: Path | None,
    database_url: str | None,
) -> T:
    """``call(store, rowlog, data_dir=..., notify=...)`` on the store the options name.

    Notify actions go to ``channels`` when there are any, else to the channels each names.
    """
    from mlwarden.react.dispatch import Dispatcher
    from mlwarden.store.rowlog import RowLog

    settings = build_settings(data_dir, database_url)
    store = settings.store()
    store.migrate()
    with Dispatcher(channels) as dispatcher:
        return call(
            store,
            RowLog(settings.data_dir / "log"),
            data_dir=settings.data_dir,
            notify=dispatcher if channels else None,
        )


def _table(records: Sequence[ActionRecord], title: str) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title=title)
    for column in ("id", "when", "model", "policy", "action", "status", "incident", "what"):
        table.add_column(column, overflow="fold")
    for r in records:
        table.add_row(
            str(r.id),
            f"{r.created_at:%Y-%m-%d %H:%M}",
            r.model,
            r.policy,
            r.action,
            r.status,
            "" if r.incident_id is None else str(r.incident_id),
            r.summary,
        )
    Console().print(table)
