"""The ``mlwarden`` command line: thin commands over the public functions.

Heavy libraries load inside the commands, so that ``mlwarden --help`` starts in a blink.
Errors a user can cause print one line and exit with status 2.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from mlwarden._cli_common import (
    DATA_DIR_OPTION,
    DATABASE_OPTION,
    build_settings,
    friendly_errors,
)
from mlwarden._cli_data import ENCODING_OPTION, check_columns, read_data, require_rows, text_columns
from mlwarden._version import __version__

if TYPE_CHECKING:
    from collections.abc import Sequence

    from mlwarden._cli_data import Named
    from mlwarden.store.metadata import Scope


def _pairs(values: Sequence[str], option: str) -> dict[str, str]:
    out = {}
    for item in values:
        name, sep, value = item.partition("=")
        if not sep or not name or not value:
            raise click.BadParameter(f"expected COLUMN=VALUE, got '{item}'", param_hint=option)
        out[name] = value
    return out


def _columns(values: Sequence[str]) -> list[str] | None:
    names = [n.strip() for v in values for n in v.split(",") if n.strip()]
    return names or None


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, "-V", "--version", prog_name="mlwarden")
def cli() -> None:
    """mlwarden: quality assurance and observability for ML models in production."""


@cli.command("profile")
@click.argument("path", type=click.Path(path_type=Path))
@click.option("--json", "json_out", type=click.Path(path_type=Path), help="Write the summary here.")
@click.option(
    "--columns", multiple=True, help="Profile only these columns (comma-separated or repeated)."
)
@click.option("--kind", "kinds", multiple=True, metavar="COLUMN=KIND", help="Override a kind.")
@click.option("--role", "roles", multiple=True, metavar="COLUMN=ROLE", help="Override a role.")
@ENCODING_OPTION
@click.option("--batch-rows", type=click.IntRange(min=1), default=1 << 18, show_default=True)
@click.option("--progress/--no-progress", default=None, help="Progress bar (default: on a TTY).")
@click.option("--quiet", "-q", is_flag=True, help="Do not print the tables.")
@friendly_errors
def profile_command(
    path: Path,
    json_out: Path | None,
    columns: tuple[str, ...],
    kinds: tuple[str, ...],
    roles: tuple[str, ...],
    encoding: str | None,
    batch_rows: int,
    progress: bool | None,
    quiet: bool,
) -> None:
    """Profile a Parquet, CSV or Arrow IPC file: counts, moments, quantiles, distinct, top values.

    The file is streamed in batches, so files larger than memory work.
    """
    from mlwarden.frames import iter_batches
    from mlwarden.profiling import profile
    from mlwarden.profiling.display import print_profile

    kind_of, role_of = _pairs(kinds, "--kind"), _pairs(roles, "--role")
    header = iter_batches(path, encoding=encoding).names
    check_columns(
        header, path, {"--columns": _columns(columns) or [], "--kind": kind_of, "--role": role_of}
    )
    result = profile(
        path,
        columns=_columns(columns),
        kinds=kind_of,
        roles=role_of,
        encoding=encoding,
        batch_rows=batch_rows,
        progress=progress,
    )
    require_rows(result.n_rows, path)
    if not quiet:
        print_profile(result)
    if json_out is not None:
        _write_json(json_out, result.summary())
        if not quiet:
            click.echo(f"Summary written to {json_out}")


@cli.command("drift")
@click.argument("reference", type=click.Path(path_type=Path))
@click.argument("current", type=click.Path(path_type=Path))
@click.option("--json", "json_out", type=click.Path(path_type=Path), help="Write the report here.")
@click.option("--html", "html_out", type=click.Path(path_type=Path), help="Write an HTML report.")
@click.option("--columns", multiple=True, help="Test only these columns (comma-separated).")
@click.option("--test", "tests", multiple=True, metavar="COLUMN=TEST", help="Test per column.")
@click.option(
    "--threshold", "thresholds", multiple=True, metavar="COLUMN=X", help="Fixed threshold."
)
@click.option(
    "--alarm",
    type=click.Choice(["calibrated", "threshold", "p_value"]),
    default="calibrated",
    show_default=True,
    help="How a column is judged drifted.",
)
@click.option("--kind", "kinds", multiple=True, metavar="COLUMN=KIND", help="Override a kind.")
@click.option("--role", "roles", multiple=True, metavar="COLUMN=ROLE", help="Override a role.")
@click.option("--fail-on-drift", is_flag=True, help="Exit with status 1 on dataset drift.")
@click.option("--timestamp", help="Event-time column: read as times (UTC), not tested.")
@ENCODING_OPTION
@friendly_errors
def drift_command(
    reference: Path,
    current: Path,
    json_out: Path | None,
    html_out: Path | None,
    columns: tuple[str, ...],
    tests: tuple[str, ...],
    thresholds: tuple[str, ...],
    alarm: str,
    kinds: tuple[str, ...],
    roles: tuple[str, ...],
    fail_on_drift: bool,
    timestamp: str | None,
    encoding: str | None,
) -> None:
    """Compare CURRENT with REFERENCE column by column, with thresholds calibrated on REFERENCE.

    Files may be Parquet, CSV or Arrow IPC.
    """
    from mlwarden.drift import Reference, compare
    from mlwarden.drift.display import print_report

    threshold_values = {}
    for name, value in _pairs(thresholds, "--threshold").items():
        try:
            threshold_values[name] = float(value)
        except ValueError:
            raise click.BadParameter(
                f"expected a number for '{name}', got '{value}'", param_hint="--threshold"
            ) from None
    chosen, kind_of, test_of = _columns(columns), _pairs(kinds, "--kind"), _pairs(tests, "--test")
    role_of = _pairs(roles, "--role")
    named = {
        "--columns": chosen or [],
        "--test": test_of,
        "--threshold": threshold_values,
        "--kind": kind_of,
        "--role": role_of,
    }
    as_text = text_columns(kind_of)
    ref_rows = read_data(
        reference, encoding=encoding, named=named, timestamp=timestamp, as_text=as_text
    )
    current_rows = read_data(
        current,
        encoding=encoding,
        named={"--columns": chosen or []},
        timestamp=timestamp,
        as_text=as_text,
    )
    if timestamp is not None and (chosen is None or timestamp in chosen):
        role_of.setdefault(timestamp, "timestamp")
    ref = Reference.fit(ref_rows, columns=chosen, kinds=kind_of, roles=role_of)
    report = compare(
        ref,
        current_rows,
        columns=chosen,
        tests=test_of,
        thresholds=threshold_values,
        alarm=alarm,  # type: ignore[arg-type]
    )
    print_report(report)
    if json_out is not None:
        _write_json(json_out, report.to_dict())
        click.echo(f"Report written to {json_out}")
    if html_out is not None:
        report.to_html(html_out)
        click.echo(f"HTML report written to {html_out}")
    if fail_on_drift and report.dataset_drift:
        sys.exit(1)


@cli.command("estimate")
@click.argument("reference", type=click.Path(path_type=Path))
@click.argument("analysis", type=click.Path(path_type=Path))
@click.option("--task", type=click.Choice(["binary", "multiclass", "regression"]), required=True)
@click.option("--y-true", required=True, help="Label column (may be missing from ANALYSIS).")
@click.option(
    "--y-score",
    multiple=True,
    help="Score column; for multiclass one per class, in the order of --classes.",
)
@click.option("--y-pred", help="Predicted class or value (required for regression).")
@click.option("--classes", help="Comma-separated classes of the score columns (multiclass).")
@click.option("--features", help="Comma-separated input columns of the loss model (regression).")
@click.option("--chunk-size", type=click.IntRange(min=1), help="Rows per window.")
@click.option("--window", help="Window duration such as 1h or 1d (needs --timestamp).")
@click.option("--timestamp", help="Event-time column for --window.")
@click.option("--json", "json_out", type=click.Path(path_type=Path), help="Write the result here.")
@click.option("--html", "html_out", type=click.Path(path_type=Path), help="Write an HTML report.")
@ENCODING_OPTION
@friendly_errors
def estimate_command(
    reference: Path,
    analysis: Path,
    task: str,
    y_true: str,
    y_score: tuple[str, ...],
    y_pred: str | None,
    classes: str | None,
    features: str | None,
    chunk_size: int | None,
    window: str | None,
    timestamp: str | None,
    json_out: Path | None,
    html_out: Path | None,
    encoding: str | None,
) -> None:
    """Estimate a model's performance on ANALYSIS without labels, from REFERENCE with labels.

    Classification uses confidence-based estimation (CBPE) from the scores; regression uses
    direct loss estimation (DLE) from the inputs and predictions (by default every feature
    column: not the id, time, label, score or prediction columns). Where ANALYSIS has labels,
    the realized metric is shown alongside.
    """
    from mlwarden.exceptions import ParameterError
    from mlwarden.frames import to_utc
    from mlwarden.performance.cbpe import CBPE
    from mlwarden.performance.display import print_estimate
    from mlwarden.performance.dle import DLE

    if (chunk_size is None) == (window is None):
        raise ParameterError("Give exactly one of --chunk-size N and --window DURATION.")
    windowing: str | int = chunk_size if chunk_size is not None else str(window)
    inputs = _columns((features,)) if features else None
    named = {"--y-score": y_score, "--y-pred": [y_pred], "--features": inputs or []}
    ref = read_data(reference, encoding=encoding, named={**named, "--y-true": [y_true]})
    if timestamp is not None and timestamp in ref.columns:
        ref = to_utc(ref, timestamp, source=f"'{reference}'", path=reference)
    rows = read_data(analysis, encoding=encoding, named=named, timestamp=timestamp)
    estimator: CBPE | DLE
    if task == "regression":
        if y_pred is None:
            raise ParameterError("Regression needs --y-pred, the column of the predicted value.")
        inputs = _loss_inputs(ref, inputs, y_true, y_pred, y_score, timestamp)
        estimator = DLE(y_pred=y_pred, y_true=y_true, features=inputs)
    else:
        if not y_score:
            raise ParameterError("Classification needs --y-score, the score column(s).")
        class_list = [c.strip() for c in classes.split(",")] if classes else None
        scores: str | list[str] = y_score[0] if task == "binary" else list(y_score)
        estimator = CBPE(
            task,  # type: ignore[arg-type]
            y_score=scores,
            y_true=y_true,
            y_pred=y_pred,
            classes=class_list,
        )
    result = estimator.fit(ref).estimate(rows, window=windowing, timestamp=timestamp)
    print_estimate(result)
    if json_out is not None:
        _write_json(json_out, result.to_dict())
        click.echo(f"Result written to {json_out}")
    if html_out is not None:
        result.to_html(html_out)
        click.echo(f"HTML report written to {html_out}")


def _loss_inputs(
    reference: Any,
    features: list[str] | None,
    y_true: str,
    y_pred: str,
    y_score: Sequence[str],
    timestamp: str | None,
) -> list[str]:
    """The inputs of the loss model: ``features`` if given (never the label, prediction, score
    or time column), else the reference's feature columns: not ids, labels, scores, predictions
    or segments (by their names), nor times (by their names, even as text, or their types)."""
    from mlwarden.exceptions import ParameterError
    from mlwarden.schema import Kind, Role, infer_role, infer_schema

    given = {y_true: "--y-true", y_pred: "--y-pred", **dict.fromkeys(y_score, "--y-score")}
    if timestamp is not None:
        given[timestamp] = "--timestamp"
    if features:
        clash = next((name for name in features if name in given), None)
        if clash is not None:
            raise ParameterError(
                f"--features names {clash!r}, the {given[clash]} column; the loss model learns "
                "from the model's inputs only. Leave it out of --features.",
                parameter="features",
            )
        return features
    roles = {y_true: "target", y_pred: "prediction", **dict.fromkeys(y_score, "score")}
    if timestamp is not None:
        roles[timestamp] = "timestamp"
    inputs = [
        column.name
        for column in infer_schema(reference, roles=roles)
        if column.role is Role.FEATURE
        and column.kind is not Kind.DATETIME
        and infer_role(column.name, Kind.DATETIME) is not Role.TIMESTAMP
    ]
    if not inputs:
        raise ParameterError(
            "The reference has no feature column for the loss model (every column is an id, "
            "time, label, score, prediction or segment); name the inputs with --features.",
            parameter="features",
        )
    return inputs


@cli.command("suggest")
@click.argument("reference", type=click.Path(path_type=Path))
@click.option(
    "-o", "--out", type=click.Path(path_type=Path), required=True, help="Suite file to write."
)
@click.option("--timestamp", help="Event-time column: enables sensor, gap and cadence checks.")
@click.option("--entity", "entities", multiple=True, help="Column naming one series (repeatable).")
@click.option("--tag", help="Long data (tag, timestamp, value): the column naming the sensor.")
@click.option("--id", "ids", multiple=True, help="Key column: checked unique, names rows.")
@click.option("--window", help="Window of the bands and the held-out test: '1h' or a row count.")
@click.option("--holdout", type=click.FloatRange(0.05, 0.8), default=0.3, show_default=True)
@click.option("--name", help="The suite's name.")
@click.option(
    "--role",
    "roles",
    multiple=True,
    metavar="COLUMN=ROLE",
    help="What a column is (target, score, prediction, id, ...); inferred from names otherwise.",
)
@ENCODING_OPTION
@friendly_errors
def suggest_command(
    reference: Path,
    out: Path,
    timestamp: str | None,
    entities: tuple[str, ...],
    tag: str | None,
    ids: tuple[str, ...],
    window: str | None,
    holdout: float,
    name: str | None,
    roles: tuple[str, ...],
    encoding: str | None,
) -> None:
    """Learn a data-quality suite from clean REFERENCE data and write it as YAML.

    Learns on the older part of REFERENCE, validates the held-out newer part window by window
    and prints the estimated false-failure rate; the suite written is learned on all of it.
    """
    from mlwarden.quality import suggest_suite

    role_of = _pairs(roles, "--role")
    named: Named = {
        "--entity": _columns(entities) or [],
        "--tag": [tag],
        "--id": _columns(ids) or [],
        "--role": role_of,
    }
    rows = read_data(reference, encoding=encoding, named=named, timestamp=timestamp)
    suite = suggest_suite(
        rows,
        timestamp=timestamp,
        entity=_columns(entities),
        tag=tag,
        id=_columns(ids),
        roles=role_of,
        window=_window(window),
        holdout=holdout,
        name=name,
    )
    suite.to_yaml(out)
    meta = suite.meta
    families: dict[str, int] = {}
    for check in suite.checks:
        families[check.dimension.value] = families.get(check.dimension.value, 0) + 1
    counts = ", ".join(f"{n} {family}" for family, n in families.items())
    click.echo(f"Suite of {len(suite.checks)} checks ({counts}) written to {out}")
    click.echo(
        f"Held-out test: {meta['holdout_windows']} windows of {meta['window']}; "
        f"{meta['false_failure_rate']:.1%} failed an error check, "
        f"{meta['warning_rate']:.1%} had any failure."
    )
    for label, n in list(meta.get("holdout_failures", {}).items())[:5]:
        click.echo(f"  {label}: failed in {n} held-out window(s)")


@cli.command("slices")
@click.argument("data", type=click.Path(path_type=Path))
@click.argument("outcome")
@click.option("--column", "columns", multiple=True, help="Column to search (default: all).")
@click.option("--bins", type=click.IntRange(2, 100), default=5, show_default=True)
@click.option("--alpha", type=click.FloatRange(0, 1, min_open=True, max_open=True), default=0.05)
@click.option("--no-pairs", is_flag=True, help="Single slices only.")
@click.option("--json", "json_path", type=click.Path(path_type=Path, dir_okay=False))
@ENCODING_OPTION
@friendly_errors
def slices_command(
    data: Path,
    outcome: str,
    columns: tuple[str, ...],
    bins: int,
    alpha: float,
    no_pairs: bool,
    json_path: Path | None,
    encoding: str | None,
) -> None:
    """Find where OUTCOME (a per-row error, flag or 0/1 membership; higher is worse) is
    concentrated in DATA: categories, numeric ranges and pairs of them, each tested against the
    rest of the data (false-discovery rate ALPHA)."""
    from rich.console import Console
    from rich.table import Table

    from mlwarden.diagnosis import slice_search

    named = {"OUTCOME": [outcome], "--column": columns}
    rows = read_data(data, encoding=encoding, named=named)
    report = slice_search(
        rows, outcome, columns=list(columns) or None, bins=bins, alpha=alpha, pairs=not no_pairs
    )
    console = Console()
    if not report.slices:
        console.print(
            f"No slice of the {report.n_rows:,} rows has a significantly higher '{outcome}' "
            f"({report.n_tested:,} slices tested, mean {report.overall_mean:.4g})."
        )
    else:
        table = Table(title=f"Where '{outcome}' is concentrated (mean {report.overall_mean:.4g})")
        for name in ("slice", "rows", "share", "mean", "rest", "q-value"):
            table.add_column(name, justify="left" if name == "slice" else "right")
        for found in report.slices:
            table.add_row(
                found.description,
                f"{found.n:,}",
                f"{found.share:.1%}",
                f"{found.mean:.4g}",
                f"{found.rest_mean:.4g}",
                f"{found.q_value:.2g}",
            )
        console.print(table)
    if json_path is not None:
        _write_json(json_path, report.to_dict())


@cli.command("check")
@click.argument("data", type=click.Path(path_type=Path))
@click.option(
    "--suite", "suite_path", type=click.Path(path_type=Path), required=True, help="Suite YAML."
)
@click.option("--json", "json_out", type=click.Path(path_type=Path), help="Write the result here.")
@click.option("--html", "html_out", type=click.Path(path_type=Path), help="Write an HTML report.")
@click.option(
    "--quarantine",
    "quarantine_out",
    type=click.Path(path_type=Path),
    help="Write the rows the gate holds back (with reasons) to this Parquet file.",
)
@click.option("--window", help="Also judge each window: '1h' (on the suite's timestamp) or rows.")
@click.option(
    "--now",
    type=click.DateTime(formats=["%Y-%m-%dT%H:%M:%S", "%Y-%m-%d %H:%M:%S", "%Y-%m-%d"]),
    help="Validation time for freshness (UTC; default: now).",
)
@click.option("--quiet", "-q", is_flag=True, help="Print only the verdict.")
@click.option("--all", "show_all", is_flag=True, help="List every passed check too.")
@ENCODING_OPTION
@friendly_errors
def check_command(
    data: Path,
    suite_path: Path,
    json_out: Path | None,
    html_out: Path | None,
    quarantine_out: Path | None,
    window: str | None,
    now: Any,
    quiet: bool,
    show_all: bool,
    encoding: str | None,
) -> None:
    """Validate DATA against a suite; exit 1 when a check of severity error fails.

    The exit status lets an orchestrator stop a pipeline on bad data: 0 passed (warnings
    allowed), 1 an error check failed, 2 the command could not run (bad file, bad suite).
    """
    import datetime as dt

    from mlwarden.frames import to_utc
    from mlwarden.quality import Suite, gate, validate

    suite = Suite.from_yaml(suite_path)
    moment = now.replace(tzinfo=dt.UTC) if now is not None else None
    rows = read_data(data, encoding=encoding)
    if suite.timestamp is not None and suite.timestamp in rows.columns:
        rows = to_utc(rows, suite.timestamp, source=f"'{data}'", path=data)
    if quarantine_out is not None:
        result = gate(rows, suite, now=moment)
        result.write_quarantine(quarantine_out)
        validation = (
            result.validation
            if window is None
            else validate(rows, suite, window=_window(window), now=moment)
        )
    else:
        validation = validate(rows, suite, window=_window(window), now=moment)
    if quiet:
        click.echo("PASSED" if validation.passed else "FAILED")
    else:
        click.echo(validation.summary(passed_shown=None if show_all else 10))
    if json_out is not None:
        _write_json(json_out, validation.to_dict())
        click.echo(f"Result written to {json_out}")
    if html_out is not None:
        validation.to_html(html_out)
        click.echo(f"HTML report written to {html_out}")
    if quarantine_out is not None:
        click.echo(f"{result.summary()} Quarantined rows written to {quarantine_out}")
    if not validation.passed:
        sys.exit(1)


def _window(value: str | None) -> str | int | None:
    """A window option: a row count when it is a number, else a duration."""
    if value is None:
        return None
    return int(value) if value.isdigit() else value


@cli.command("runs")
@click.option("--name", help="Only the runs of this step.")
@click.option("--limit", type=click.IntRange(1, 10_000), default=50, show_default=True)
@DATA_DIR_OPTION
@DATABASE_OPTION
@friendly_errors
def runs_command(
    name: str | None, limit: int, data_dir: Path | None, database_url: str | None
) -> None:
    """The newest recorded pipeline runs, with their inputs and outputs."""
    from rich.console import Console
    from rich.table import Table

    from mlwarden.lineage import Lineage

    lineage = Lineage(build_settings(data_dir, database_url).store())
    table = Table(title="Pipeline runs, newest first")
    for column in ("id", "step", "status", "started", "code", "inputs", "outputs"):
        table.add_column(column)
    for r in lineage.runs(name, limit=limit):
        table.add_row(
            str(r.id),
            r.name,
            r.status,
            f"{r.started_at:%Y-%m-%d %H:%M:%S}",
            r.code_version[:14],
            ", ".join(a.name or a.sha256[:12] for a in r.inputs),
            ", ".join(a.name or a.sha256[:12] for a in r.outputs),
        )
    Console().print(table)


@cli.command("trace")
@click.argument("target")
@click.option("--model", help="TARGET is the id of a prediction of this model.")
@DATA_DIR_OPTION
@DATABASE_OPTION
@friendly_errors
def trace_command(
    target: str, model: str | None, data_dir: Path | None, database_url: str | None
) -> None:
    """Where TARGET (a run id, or an artifact's sha256 prefix) came from and what was made
    from it. With --model, TARGET is a prediction's row id: the pipeline run that made its
    features, and everything upstream."""
    from mlwarden.lineage import Lineage

    settings = build_settings(data_dir, database_url)
    lineage = Lineage(settings.store())
    if model is not None:
        from mlwarden.store.rowlog import RowLog

        found = lineage.trace_prediction(model, target, RowLog(settings.data_dir / "log"))
        click.echo(f"prediction {target} of {model} came from run {found.upstream[0].id}")
    else:
        found = lineage.trace(int(target) if target.isdigit() else target)
    click.echo("upstream (nearest first):")
    for r in found.upstream:
        click.echo(f"  run {r.id} {r.name} [{r.status}] {r.started_at:%Y-%m-%d %H:%M:%S}")
    click.echo("raw inputs:")
    for a in found.raw_inputs:
        click.echo(f"  {a.name or a.kind} {a.sha256[:12]}")
    click.echo("downstream:")
    for r in found.downstream:
        click.echo(f"  run {r.id} {r.name} [{r.status}] {r.started_at:%Y-%m-%d %H:%M:%S}")


@cli.command("lineage-ingest")
@click.argument("path", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@DATA_DIR_OPTION
@DATABASE_OPTION
@friendly_errors
def lineage_ingest_command(path: Path, data_dir: Path | None, database_url: str | None) -> None:
    """Record the OpenLineage RunEvents in PATH: one JSON event, a JSON list of events, or
    JSON lines (one event per line). Every event is checked before the first is stored."""
    from mlwarden.lineage import Lineage

    events = _json_events(path)
    lineage = Lineage(build_settings(data_dir, database_url).store())
    run_ids = lineage.ingest_openlineage_many(events)
    for run_id in dict.fromkeys(run_ids):
        r = lineage.get(run_id)
        ended = f" ended {r.ended_at:%Y-%m-%d %H:%M:%S}" if r.ended_at else ""
        error = f": {r.error}" if r.error else ""
        click.echo(
            f"run {r.id} {r.name} [{r.status}{error}] {r.external_id} started "
            f"{r.started_at:%Y-%m-%d %H:%M:%S}{ended}, {len(r.inputs)} input(s), "
            f"{len(r.outputs)} output(s)"
        )
    click.echo(f"{len(run_ids)} event(s), {len(set(run_ids))} run(s).")


def _json_events(path: Path) -> list[Any]:
    """The events of a file: one JSON document (an event or a list), else JSON lines."""
    import json

    from mlwarden.exceptions import InputError

    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"Cannot read {path}: {exc}", path=path) from exc
    try:
        document = json.loads(text)
    except ValueError:
        events = []
        for number, line in enumerate(text.splitlines(), start=1):
            if line.strip():
                try:
                    events.append(json.loads(line))
                except ValueError as exc:
                    raise InputError(
                        f"{path}, line {number}: not JSON ({exc}); expected an OpenLineage "
                        "event, a JSON list of events, or one event per line.",
                        path=path,
                    ) from exc
        return events
    return document if isinstance(document, list) else [document]


@cli.command("serve")
@click.option("--host", default="127.0.0.1", show_default=True, help="Interface to bind.")
@click.option("--port", type=click.IntRange(1, 65535), default=8765, show_default=True)
@click.option("--public-read", is_flag=True, help="Serve reads without a token.")
@click.option(
    "--evaluate-every",
    type=click.FloatRange(min=1),
    default=300.0,
    show_default=True,
    help="Seconds between evaluation rounds of every model.",
)
@click.option(
    "--window", help="Window of the evaluation (default: each version's, from registration)."
)
@click.option("--notify", "channels", multiple=True, metavar="SPEC", help="Alert channel.")
@click.option(
    "--keep-days",
    type=click.IntRange(min=1),
    help="Keep logged rows and labels this many days (default: forever); windows, their "
    "profiles and metrics are kept.",
)
@click.option(
    "--retention",
    type=click.Choice(["delete", "compact"]),
    default="delete",
    show_default=True,
    help="What happens to older days: deleted, or compacted into one file per day.",
)
@click.option(
    "--policies",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="Reaction policies (YAML) applied after every evaluation round.",
)
@click.option(
    "--explain/--no-explain",
    default=True,
    show_default=True,
    help="Explain logged predictions of versions registered with their model, in the "
    "background after each batch.",
)
@DATA_DIR_OPTION
@DATABASE_OPTION
@friendly_errors
def serve_command(
    host: str,
    port: int,
    public_read: bool,
    evaluate_every: float,
    window: str | None,
    channels: tuple[str, ...],
    keep_days: int | None,
    retention: str,
    policies: Path | None,
    explain: bool,
    data_dir: Path | None,
    database_url: str | None,
) -> None:
    """Run the mlwarden server (ingest and query API, scheduled evaluation) until Ctrl-C."""
    import uvicorn

    from mlwarden.server import create_app

    if policies is not None:
        from mlwarden.react.policies import load_policies

        loaded = load_policies(policies)  # a broken file stops here, with the field named
        click.echo(f"{len(loaded)} reaction policies from {policies}")

    settings = build_settings(
        data_dir,
        database_url,
        public_read=public_read,
        evaluate_every=evaluate_every,
        window=window,
        channels=channels,
        keep_days=keep_days,
        retention=retention,
        policies=policies,
        explain=explain,
    )
    click.echo(
        f"mlwarden {__version__} serving on http://{host}:{port} (data in {settings.data_dir})"
    )
    uvicorn.run(create_app(settings), host=host, port=port, log_level="warning")


@cli.command("diagnose")
@click.argument("incident", type=int)
@click.option("--refresh", is_flag=True, help="Compute again even when nothing changed.")
@click.option("--top", type=click.IntRange(min=1), default=5, show_default=True)
@click.option("--json", "json_path", type=click.Path(path_type=Path), help="Write it as JSON.")
@DATA_DIR_OPTION
@DATABASE_OPTION
@friendly_errors
def diagnose_command(
    incident: int,
    refresh: bool,
    top: int,
    json_path: Path | None,
    data_dir: Path | None,
    database_url: str | None,
) -> None:
    """The likely causes of INCIDENT, likeliest first, each with its evidence."""
    from rich.console import Console

    from mlwarden.diagnosis import diagnose
    from mlwarden.store.rowlog import RowLog

    settings = build_settings(data_dir, database_url)
    store = settings.store()
    try:
        result = diagnose(store, RowLog(settings.data_dir / "log"), incident, refresh=refresh)
    finally:
        store.close()
    console = Console()
    end = "open" if result.ended_at is None else f"{result.ended_at:%Y-%m-%d %H:%M}"
    console.print(
        f"[bold]Incident #{result.incident}[/] of {result.model} {result.version}: "
        f"{result.started_at:%Y-%m-%d %H:%M} → {end}, {result.windows} windows; "
        f"shift: [bold]{result.shift.replace('_', ' ')}[/]"
    )
    if not result.causes:
        console.print("No cause stands out in what was stored for it.")
    for cause in result.causes[:top]:
        console.print(
            f"\n[bold]{cause.rank}.[/] {cause.title}  [dim]({cause.kind}, score "
            f"{cause.score:.2f})[/]",
            highlight=False,
        )
        for item in cause.evidence:
            console.print(f"   • {item}", highlight=False)
    if json_path is not None:
        _write_json(json_path, result.to_dict())


@cli.group("token")
def token_group() -> None:
    """API tokens: writes need one; reads too unless the server runs with --public-read."""


@token_group.command("create")
@click.argument("name")
@click.option("--scope", type=click.Choice(["read", "write"]), default="write", show_default=True)
@DATA_DIR_OPTION
@DATABASE_OPTION
@friendly_errors
def token_create(name: str, scope: Scope, data_dir: Path | None, database_url: str | None) -> None:
    """Create a token called NAME; it is printed once and stored only as a hash."""
    store = build_settings(data_dir, database_url).store()
    store.migrate()
    token = store.create_token(name, scope)
    click.echo(token)
    click.echo(f"({scope} token '{name}'; keep it: it cannot be shown again)", err=True)


@token_group.command("list")
@DATA_DIR_OPTION
@DATABASE_OPTION
@friendly_errors
def token_list(data_dir: Path | None, database_url: str | None) -> None:
    """List tokens (never their values)."""
    store = build_settings(data_dir, database_url).store()
    store.migrate()
    for t in store.tokens():
        state = "revoked" if t.revoked else "active"
        used = t.last_used_at.isoformat(timespec="seconds") if t.last_used_at else "never"
        click.echo(f"{t.id:>4}  {t.name:<30} {t.scope:<6} {state:<8} last used {used}")


@token_group.command("revoke")
@click.argument("token_id", type=int)
@DATA_DIR_OPTION
@DATABASE_OPTION
@friendly_errors
def token_revoke(token_id: int, data_dir: Path | None, database_url: str | None) -> None:
    """Revoke the token with id TOKEN_ID (see 'mlwarden token list')."""
    store = build_settings(data_dir, database_url).store()
    store.migrate()
    store.revoke_token(token_id)
    click.echo(f"Token {token_id} revoked.")


@cli.command("register")
@click.argument("model")
@click.argument("version")
@click.argument("reference", type=click.Path(path_type=Path))
@click.option("--timestamp", help="Event-time column of the reference.")
@click.option("--entity", "entities", multiple=True, help="Column naming one series.")
@click.option(
    "--id",
    "id_column",
    help="Row id column of the reference (checked unique); logged rows join labels on 'id'.",
)
@click.option("--role", "roles", multiple=True, metavar="COLUMN=ROLE", help="Override a role.")
@click.option("--segment", help="Column whose values get metrics of their own (e.g. line).")
@click.option("--window", default="1h", show_default=True, help="Window of the evaluation.")
@click.option(
    "--false-incidents",
    type=click.FloatRange(min=0, min_open=True, max=1000),
    default=1.0,
    show_default=True,
    help="The alert budget: false incidents per 90 days the team accepts, shared by every "
    "metric family and segment.",
)
@click.option("--alias", help="Point this alias (e.g. production) at the new version.")
@click.option(
    "--from-mlflow",
    "mlflow_model",
    metavar="NAME[@ALIAS|/VERSION]",
    help="Take the model from an MLflow registry (default: its newest version): explained and "
    "linked in the version's meta. MLflow aliases are recorded, not followed (see --alias).",
)
@click.option("--tracking-uri", help="MLflow tracking URI (default: $MLFLOW_TRACKING_URI).")
@ENCODING_OPTION
@DATA_DIR_OPTION
@DATABASE_OPTION
@friendly_errors
def register_command(
    model: str,
    version: str,
    reference: Path,
    timestamp: str | None,
    entities: tuple[str, ...],
    id_column: str | None,
    roles: tuple[str, ...],
    segment: str | None,
    window: str,
    false_incidents: float,
    alias: str | None,
    mlflow_model: str | None,
    tracking_uri: str | None,
    encoding: str | None,
    data_dir: Path | None,
    database_url: str | None,
) -> None:
    """Register VERSION of MODEL with its reference data, fitted on REFERENCE: profile, quality
    suite, drift reference, performance estimator (with a target and a score or prediction
    column), multivariate drift and per-segment references; the reference is replayed window by
    window to calibrate every bound under the alert budget. Times without a time zone are
    taken as UTC, as they are in the logged rows."""
    from mlwarden.registry import Registry

    if tracking_uri and not mlflow_model:
        raise click.UsageError("--tracking-uri goes with --from-mlflow.")
    role_of = _pairs(roles, "--role")
    named: Named = {
        "--entity": _columns(entities) or [],
        "--id": [id_column],
        "--role": role_of,
        "--segment": [segment],
    }
    rows = read_data(reference, encoding=encoding, named=named, timestamp=timestamp)
    registry = Registry(build_settings(data_dir, database_url).store())
    options: dict[str, Any] = {
        "timestamp": timestamp,
        "entity": _columns(entities),
        "id": id_column,
        "roles": role_of,
        "segment": segment,
        "window": window,
        "false_incidents": false_incidents,
    }
    if mlflow_model:
        import os

        from mlwarden.registry.mlflow import parse_model_spec, register_from_mlflow

        # MLflow draws a progress bar per download: noise in a command's output.
        os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
        name, mlflow_version, mlflow_alias = parse_model_spec(mlflow_model)
        record = register_from_mlflow(
            registry.store,
            name,
            version=mlflow_version,
            alias=mlflow_alias,
            reference=rows,
            model=model,
            as_version=version,
            tracking_uri=tracking_uri,
            **options,
        )
        link = record.meta["mlflow"]
        source = f" from MLflow {link['uri']} ({link['flavor']})"
    else:
        record = registry.register(model, version, rows, **options)
        source = ""
    click.echo(f"Registered {model} {version}{source}: {', '.join(record.artifacts)}")
    _echo_contract(record.meta)
    _echo_budget(record.meta.get("alerting") or {})
    for note in record.meta.get("evaluators", {}).get("notes", []):
        click.echo(f"  note: {note}")
    if alias:
        registry.promote(model, version, alias=alias)
        click.echo(f"{alias} -> {version}")


def _echo_contract(meta: dict[str, Any]) -> None:
    """What the version's logged rows and labels must carry: monitoring reads these names."""
    from mlwarden.contract import Contract

    click.echo("Logging contract (rows and labels are monitored under these names):")
    for line in Contract.from_meta(meta).lines():
        click.echo(f"  {line}")


def _echo_budget(alerting: dict[str, Any]) -> None:
    """The alert budget of a version in a few lines: the budget, the held-out measurement,
    what cannot alarm."""
    from mlwarden.alerting.calibration import AlertBudget, count

    budget = alerting.get("budget") or {}
    held = alerting.get("held_out")
    if budget:
        line = f"Alert budget: {AlertBudget.from_dict(budget)}"
        if held:
            line += (
                f"; on {held['windows']} held-out reference windows: "
                f"{count(held['incidents'], 'false incident')} "
                f"({held['rate']:.2g} per {budget['days']:g} days)"
            )
        click.echo(line + ".")
    for text in alerting.get("regimes", []):
        click.echo(f"  like with like: {text}")
    for adjusted in alerting.get("adjustments", []):
        click.echo(f"  check {adjusted['check']}: {adjusted['action']}, {adjusted['detail']}")
    for note in alerting.get("notes", []):
        click.echo(f"  note: {note}")


@cli.command("budget")
@click.argument("model")
@click.argument("version")
@click.argument("false_incidents", type=click.FloatRange(min=0, min_open=True, max=1000))
@click.option("--days", type=click.FloatRange(1, 3650), default=90.0, show_default=True)
@DATA_DIR_OPTION
@DATABASE_OPTION
@friendly_errors
def budget_command(
    model: str,
    version: str,
    false_incidents: float,
    days: float,
    data_dir: Path | None,
    database_url: str | None,
) -> None:
    """Set the alert budget of VERSION (or alias) of MODEL to FALSE_INCIDENTS per --days: its
    bounds are recalibrated from the replay stored at registration."""
    from mlwarden.registry import Registry

    registry = Registry(build_settings(data_dir, database_url).store())
    record = registry.set_budget(model, version, false_incidents, days)
    click.echo(f"{model} {record.version}:")
    _echo_budget(record.meta.get("alerting") or {})


@cli.command("evaluate")
@click.argument("model")
@click.option(
    "--version",
    "version",
    default="production",
    show_default=True,
    help="Version or alias to evaluate.",
)
@click.option("--window", help="Window duration (default: the version's, from registration).")
@click.option(
    "--notify",
    "channels",
    multiple=True,
    metavar="SPEC",
    help="Alert channel for new incidents: log, webhook+URL, alertmanager+URL, apprise+URL.",
)
@click.option(
    "--all",
    "force",
    is_flag=True,
    help="Evaluate every closed window again, not only new and changed ones.",
)
@DATA_DIR_OPTION
@DATABASE_OPTION
@friendly_errors
def evaluate_command(
    model: str,
    version: str,
    window: str | None,
    channels: tuple[str, ...],
    force: bool,
    data_dir: Path | None,
    database_url: str | None,
) -> None:
    """Evaluate the closed windows of MODEL's logged rows: quality, drift, performance
    (estimated, then realized as labels arrive), per segment; alerts and incidents.

    Safe to run again (from cron or an orchestrator): only windows that are new or received rows
    or labels since are evaluated, and a window evaluated again replaces its metrics and alerts.
    """
    from mlwarden.service import evaluate
    from mlwarden.store.rowlog import RowLog

    settings = build_settings(data_dir, database_url)
    store = settings.store()
    store.migrate()
    from mlwarden.react import Dispatcher

    with Dispatcher(channels) as dispatcher:
        outcomes = evaluate(
            store,
            RowLog(settings.data_dir / "log"),
            model,
            version,
            window=window,
            notify=dispatcher if channels else None,
            force=force,
        )
    for o in outcomes:
        state = "ok" if not o.alerts else f"{o.alerts} alert(s), incident {o.incident}"
        click.echo(f"{o.window.start:%Y-%m-%d %H:%M}  {o.window.n_rows:>7,} rows  {state}")
    click.echo(f"{len(outcomes)} window(s) evaluated.")


@cli.command("demo")
@click.option(
    "--days",
    type=click.IntRange(min=1, max=60),
    default=30,
    show_default=True,
    help="Simulated days of production.",
)
@click.option("--seed", type=int, default=0, show_default=True)
@click.option(
    "--out",
    type=click.Path(path_type=Path, file_okay=False),
    default=Path(".mlwarden/demo"),
    show_default=True,
    help="Where the demo keeps its service data (replaced on each run).",
)
@click.option("--serve/--no-serve", default=True, help="Serve the dashboard until Ctrl-C.")
@click.option(
    "--json",
    "json_path",
    type=click.Path(path_type=Path, dir_okay=False),
    help="Write the injected faults and the incidents detected as JSON.",
)
@click.option(
    "--port",
    type=click.IntRange(0, 65535),
    default=8765,
    show_default=True,
    help="Port of the demo server (another free one when taken; 0: any).",
)
@friendly_errors
def demo_command(
    days: int, seed: int, out: Path, serve: bool, json_path: Path | None, port: int
) -> None:
    """Run the full loop on a simulated extrusion line: a trained defect model streamed through
    the client into the server for 30 days with injected faults and late labels; print what was
    detected when, then serve the dashboard."""
    from mlwarden.demo import run_demo

    run_demo(days=days, seed=seed, out=out, serve=serve, json_path=json_path, port=port)


def _write_json(path: Path, doc: Any) -> None:
    import json

    from mlwarden.exceptions import InputError

    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(path.name + ".tmp")
        text = json.dumps(doc, indent=2, allow_nan=False, default=_json_default)
        tmp.write_text(text + "\n", encoding="utf-8")
        tmp.replace(path)  # never leave a half-written file behind
    except OSError as exc:
        raise InputError(f"Cannot write '{path}': {exc.strerror}.", path=path) from exc


def _json_default(value: Any) -> Any:
    """Dates and times as ISO 8601 text; anything else JSON cannot hold is a bug."""
    import datetime as dt

    if isinstance(value, dt.date | dt.datetime):
        return value.isoformat()
    raise TypeError(f"{type(value).__name__} is not JSON serializable")


def _add_groups() -> None:
    from mlwarden.feedback_cli import feedback_group, promotion_group
    from mlwarden.react.cli import policy_group

    cli.add_command(policy_group)
    cli.add_command(feedback_group)
    cli.add_command(promotion_group)


_add_groups()


def main(argv: Sequence[str] | None = None) -> None:
    """Entry point of the ``mlwarden`` console script."""
    cli.main(args=list(argv) if argv is not None else None, prog_name="mlwarden")
