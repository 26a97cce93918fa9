"""Data-quality benchmark: ``mlwarden.quality.validate`` side by side with Great Expectations and
Pandera.

How to run (from the repository root, after ``make install-dev``)::

    .venv/bin/python bench/quality_bench.py --quick              # 100k rows only, a smoke run
    .venv/bin/python bench/quality_bench.py                      # 1M and 10M rows
    .venv/bin/python bench/quality_bench.py --sizes 1000000 --tools mlwarden,pandera-polars

What is measured. One seeded, synthetic table of sensor readings from a plant (1M and 10M rows;
100k with ``--quick``): ``reading_id`` (int), ``event_time`` and ``ingest_time`` (UTC, one
reading every 50 ms, the newest 5 minutes before ``NOW``), ``line`` (L1-L3), ``tag`` (like
``TI-1042``, 120 tags), ``status`` (OK / WARN / ALARM), ``temperature_c`` (0.2 % nulls),
``pressure_bar`` (no nulls) and ``humidity_pct`` (1.5 % nulls). The faults in ``FAULTS`` are
planted at seeded random rows, so that 5 of the 12 checks of ``CHECKS`` fail and 7 pass (see
``EXPECTED``). Every tool validates the same suite of 12 checks, each translated into the tool's
own idiom, and gives one pass/fail verdict per check:

* ``mlwarden``: ``validate(frame, Suite.from_dict(...), now=NOW)`` on a polars DataFrame;
* ``great-expectations`` 1.x: an ephemeral context, a pandas data source with a dataframe asset
  and a whole-dataframe batch definition, an ``ExpectationSuite`` and a ``ValidationDefinition``
  whose ``run(batch_parameters={"dataframe": df})`` is timed, with its default result format
  (``SUMMARY``); a null tolerance is ``mostly``, freshness is ``expect_column_max_to_be_between``
  with ``min_value = NOW - max_age``;
* ``pandera-polars``: ``pandera.polars.DataFrameSchema.validate(df, lazy=True)`` on a polars
  DataFrame; ``SchemaErrors`` is caught and its errors give the failed checks. A null tolerance
  is a custom check of the null share (``ignore_na=False``) on a nullable column, the cross-column
  rule a dataframe-level check, freshness a custom check of the column's maximum;
* ``pandera-pandas``: the same schema for Pandera's pandas backend on a pandas DataFrame.

Nulls are a completeness concern only: every column is nullable except the one whose null share
must be 0, and the range, set, pattern and length checks ignore nulls in every tool (Great
Expectations and Pandera do so by default). The bench reports, per tool, whether its verdicts are
identical to mlwarden's and to the planted faults, and which checks differ; the number of failing
values behind a verdict is each tool's own count (Great Expectations and Pandera count both rows
of a duplicated id, for instance) and is reported, not compared.

Each tool runs in a fresh worker process (the peers in their own venvs, ``.bench-venv-<name>/``,
made on first use from ``bench/requirements-<name>.txt``; Great Expectations' analytics off).
The worker reads the Parquet file (polars or pandas; reported apart), imports the tool and
builds the suite or schema (untimed; reported as setup), warms up on the first 10,000 and
100,000 rows, then times the validation alone with ``time.perf_counter``: best of 3 runs at every
size (a single run at 10M rows would mostly measure first-touch page faults), fewer once the
runs have taken a minute. Peak memory is the worker's peak RSS (VmHWM),
which includes the frame. A peer is skipped, with its estimate, when its time extrapolated from
the warm-up (or from the largest size already measured) exceeds ``--peer-budget`` seconds (900
by default), and is stopped when it runs past twice that. A failing tool is reported in its row;
the others still run.

Targets: at every size, every tool's verdicts identical to mlwarden's and to the planted faults;
mlwarden at least 20x faster than Great Expectations and faster than Pandera (both backends).

Results are printed as a table, followed by the verdict of every tool on every check, and written
to ``bench/results/quality_bench.json``.
"""

from __future__ import annotations

import argparse
import copy
import os
import sys
import time
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from _common import (
    DATA_DIR,
    RESULTS_DIR,
    TIMING_HEADER,
    Tool,
    add_run_options,
    add_worker_options,
    cached_parquet,
    chunks,
    head,
    machine_info,
    print_machine,
    print_targets,
    progress,
    read_parquet,
    run_budgeted_worker,
    set_ratios,
    sizes_and_tools,
    timed,
    timed_runs,
    timing_cells,
    venv_line,
    versions,
    warmup_estimate,
    within_budget,
    worker_command,
    worker_facts,
    write_results,
)

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator
    from pathlib import Path

    import pyarrow as pa

SEED = 20_240_303
# Bump when the generated table changes, so stale cached files are not reused.
DATA_VERSION = 1
SIZES = (1_000_000, 10_000_000)
QUICK_ROWS = 100_000
WARMUP_ROWS = 10_000
RESULTS_FILE = RESULTS_DIR / "quality_bench.json"
# Timed runs per tool at every size: a single run at 10M rows pays first-touch page faults that
# a validation in a long-running pipeline does not, and every peer fits 3 runs in its budget.
REPEATS = 3
# How many times faster than each peer mlwarden should be (at every size).
SPEED_TARGETS = {"great-expectations": 20.0}

# The validation time of every tool, fixed so that the freshness verdict never depends on when
# the bench runs; the newest reading is NEWEST_AGE older, one reading every EVENT_STEP before.
NOW = datetime(2025, 1, 1, tzinfo=UTC)
NEWEST_AGE = timedelta(minutes=5)
EVENT_STEP = timedelta(milliseconds=50)
LINES = ("L1", "L2", "L3")
STATUSES = ("OK", "WARN", "ALARM")
TAG_PREFIXES = ("TI", "PI", "FI", "LI")
N_TAGS = 120
TEMPERATURE_NULL_SHARE = 0.002
HUMIDITY_NULL_SHARE = 0.015

# What is planted in the table, and how many rows of each.
FAULTS = {
    "temperature_c": (7, "readings of 999.9 (a saturated sensor) against a range of -20..400"),
    "reading_id": (3, "rows repeating the id of the row before"),
    "ingest_time": (5, "rows ingested 2 s before their event_time (clock skew)"),
    "tag": (6, "lower-case tags (ti-1042: 7 characters, but not the pattern)"),
}
HUMIDITY_NOTE = f"{HUMIDITY_NULL_SHARE:.1%} nulls in humidity_pct against a tolerance of 1 %"

# The suite, in mlwarden's form; the peers translate each check into their own idiom.
CHECKS: tuple[dict[str, Any], ...] = (
    {"check": "not_null", "column": "pressure_bar", "max_share": 0.0},
    {"check": "not_null", "column": "humidity_pct", "max_share": 0.01},
    {"check": "range", "column": "temperature_c", "min": -20.0, "max": 400.0},
    {"check": "range", "column": "pressure_bar", "min": 0.0, "max": 16.0},
    {"check": "range", "column": "humidity_pct", "min": 0.0, "max": 100.0},
    {"check": "allowed_values", "column": "line", "values": list(LINES)},
    {"check": "allowed_values", "column": "status", "values": list(STATUSES)},
    {"check": "unique", "columns": ["reading_id"]},
    {"check": "rule", "rule": "ingest_time >= event_time"},
    {"check": "pattern", "column": "tag", "regex": r"^[A-Z]{2}-\d{4}$"},
    {"check": "length", "column": "tag", "min": 7, "max": 7},
    {"check": "freshness", "column": "event_time", "max_age": "1h"},
)
# The verdict each check must get on the planted faults (True: passes).
EXPECTED = (True, False, False, True, True, True, True, False, False, False, True, True)


def check_label(check: dict[str, Any]) -> str:
    """A short name of one check of ``CHECKS``, as printed."""
    kind = check["check"]
    if kind == "rule":
        return f"rule {check['rule']}"
    target = check.get("column") or ",".join(check["columns"])
    detail = {
        "not_null": lambda: f"<= {check['max_share']:.0%} nulls",
        "range": lambda: f"[{check['min']:g}, {check['max']:g}]",
        "allowed_values": lambda: "{" + ",".join(check["values"]) + "}",
        "pattern": lambda: check["regex"],
        "length": lambda: f"[{check['min']}, {check['max']}]",
        "freshness": lambda: f"max age {check['max_age']}",
    }.get(kind, lambda: "")()
    return f"{kind} {target} {detail}".strip()


def max_age(check: dict[str, Any]) -> timedelta:
    """The ``max_age`` of a freshness check ("90s", "5m", "1h", "2d") as a timedelta."""
    text: str = check["max_age"]
    units = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days"}
    return timedelta(**{units[text[-1]]: float(text[:-1])})


def rule_columns(check: dict[str, Any]) -> tuple[str, str]:
    """The two columns of a rule ``"a >= b"``, the only form this suite uses."""
    left, operator, right = check["rule"].split()
    if operator != ">=":
        raise ValueError(f"quality_bench translates only 'a >= b' rules; got {check['rule']!r}")
    return left, right


PANDERA_ENV = {"PANDERA_VALIDATION_DEPTH": "SCHEMA_AND_DATA"}
TOOLS = {
    tool.key: tool
    for tool in (
        Tool("mlwarden", "mlwarden validate", "polars", packages=("mlwarden", "polars")),
        Tool(
            "great-expectations",
            "Great Expectations ValidationDefinition.run",
            "pandas",
            "requirements-great-expectations.txt",
            "great-expectations",
            {"GX_ANALYTICS_ENABLED": "false"},
            ("great_expectations", "pandas", "numpy", "pyarrow"),
        ),
        Tool(
            "pandera-polars",
            "pandera.polars validate(lazy=True)",
            "polars",
            "requirements-pandera.txt",
            "pandera",
            PANDERA_ENV,
            ("pandera", "polars", "pyarrow"),
        ),
        Tool(
            "pandera-pandas",
            "pandera.pandas validate(lazy=True)",
            "pandas",
            "requirements-pandera.txt",
            "pandera",
            PANDERA_ENV,
            ("pandera", "pandas", "numpy", "pyarrow"),
        ),
    )
}


@dataclass
class Result:
    rows: int
    tool: str
    seconds: float | None
    runs: int = 0
    ratio_to_mlwarden: float | None = None
    peak_rss_bytes: int | None = None
    rss_after_read_bytes: int | None = None
    read_seconds: float | None = None
    setup_seconds: float | None = None
    verdicts: list[bool] | None = None
    n_failed: list[int | None] | None = None
    identical_to_mlwarden: bool | None = None
    differs_from_mlwarden: list[str] = field(default_factory=list)
    identical_to_expected: bool | None = None
    differs_from_expected: list[str] = field(default_factory=list)
    note: str = ""
    extra: dict[str, Any] = field(default_factory=dict)


# ---------------------------------------------------------------------------------------------
# The synthetic table


def _micros(moment: datetime) -> int:
    return (moment - datetime(1970, 1, 1, tzinfo=UTC)) // timedelta(microseconds=1)


def _fault_rows(rows: int) -> dict[str, Any]:
    """The rows of each planted fault in ``FAULTS``: distinct, seeded, never row 0."""
    import numpy as np

    rng = np.random.default_rng([SEED, 0xFA17])
    counts = [count for count, _ in FAULTS.values()]
    chosen = rng.choice(np.arange(1, rows), sum(counts), replace=False)
    bounds = np.cumsum([0, *counts])
    return {
        name: np.sort(chosen[start:stop])
        for name, start, stop in zip(FAULTS, bounds[:-1], bounds[1:], strict=True)
    }


def _tag_pool() -> list[str]:
    import numpy as np

    rng = np.random.default_rng([SEED, 0x7A6])
    numbers = rng.choice(np.arange(1000, 10_000), N_TAGS, replace=False)
    return [f"{TAG_PREFIXES[k % len(TAG_PREFIXES)]}-{n}" for k, n in enumerate(numbers)]


def _table_chunk(
    rows: int, chunk: int, first: int, n: int, faults: dict[str, Any], tags: list[str]
) -> pa.Table:
    import numpy as np
    import pyarrow as pa

    rng = np.random.default_rng([SEED, chunk])
    position = np.arange(first, first + n, dtype=np.int64)

    def planted(name: str) -> Any:
        rows_of_fault = faults[name]
        return rows_of_fault[(rows_of_fault >= first) & (rows_of_fault < first + n)] - first

    reading_id = position + 1
    reading_id[planted("reading_id")] -= 1  # the id of the row before: a duplicate

    step = EVENT_STEP // timedelta(microseconds=1)
    newest = _micros(NOW - NEWEST_AGE)
    event = newest - (rows - 1 - position) * step - rng.integers(0, step // 2, n)
    delay = (rng.lognormal(np.log(800_000.0), 0.6, n)).astype(np.int64)  # ~0.8 s, in us
    ingest = event + delay
    skewed = planted("ingest_time")
    ingest[skewed] = event[skewed] - 2_000_000

    line_codes = rng.choice(len(LINES), n, p=[0.5, 0.3, 0.2])
    status_codes = rng.choice(len(STATUSES), n, p=[0.96, 0.03, 0.01])
    tag_codes = rng.integers(0, len(tags), n)
    tag = pa.array(tags).take(pa.array(tag_codes))
    bad_tags = planted("tag")
    if len(bad_tags):
        tag_values = tag.to_pylist()
        for row in bad_tags:
            tag_values[row] = tag_values[row].lower()
        tag = pa.array(tag_values, pa.string())

    temperature = np.clip(rng.normal(180.0, 35.0, n), 20.0, 340.0)
    temperature[planted("temperature_c")] = 999.9
    temperature_nulls = rng.random(n) < TEMPERATURE_NULL_SHARE
    temperature_nulls[planted("temperature_c")] = False
    pressure = np.clip(rng.gamma(9.0, 0.6, n), 0.5, 12.0)
    humidity = 100.0 * rng.beta(5.0, 5.0, n)
    humidity_nulls = rng.random(n) < HUMIDITY_NULL_SHARE

    timestamp = pa.timestamp("us", tz="UTC")
    return pa.table(
        {
            "reading_id": pa.array(reading_id),
            "event_time": pa.array(event, timestamp),
            "ingest_time": pa.array(ingest, timestamp),
            "line": pa.array(LINES).take(pa.array(line_codes)),
            "tag": tag,
            "status": pa.array(STATUSES).take(pa.array(status_codes)),
            "temperature_c": pa.array(temperature, mask=temperature_nulls),
            "pressure_bar": pa.array(pressure),
            "humidity_pct": pa.array(humidity, mask=humidity_nulls),
        }
    )


def _table_chunks(rows: int) -> Iterator[pa.Table]:
    faults, tags = _fault_rows(rows), _tag_pool()
    for chunk, first, n in chunks(rows):
        yield _table_chunk(rows, chunk, first, n, faults, tags)


def dataset(rows: int) -> Path:
    """The Parquet file of the table of ``rows`` rows, generated on first use."""
    path = DATA_DIR / f"quality_v{DATA_VERSION}_{rows}.parquet"
    return cached_parquet(path, f"{rows:,} rows", _table_chunks(rows))


# ---------------------------------------------------------------------------------------------
# The tools. Each ``_setup_*`` builds the tool's suite once (untimed) and returns the timed
# validation of a frame and, untimed, the verdict (passed?) and failing count of every check of
# ``CHECKS``, in its order, from what the validation returned.


@dataclass(frozen=True)
class Runner:
    validate: Callable[[Any], Any]
    verdicts: Callable[[Any], tuple[list[bool], list[int | None]]]


def _setup_mlwarden() -> Runner:
    from mlwarden.quality import Suite, validate

    suite = Suite.from_dict({"checks": copy.deepcopy(list(CHECKS))})

    def verdicts(validation: Any) -> tuple[list[bool], list[int | None]]:
        results = list(validation.results)
        if len(results) != len(CHECKS):
            raise RuntimeError(f"mlwarden gave {len(results)} results for {len(CHECKS)} checks")
        return [bool(r.passed) for r in results], [r.n_failed for r in results]

    return Runner(lambda frame: validate(frame, suite, now=NOW), verdicts)


def _gx_expectation(gxe: Any, check: dict[str, Any], index: int) -> Any:
    """One check of ``CHECKS`` as a Great Expectations 1.x expectation; ``meta`` keeps its index."""
    kind, column, meta = check["check"], check.get("column"), {"check": index}
    if kind == "not_null":
        # mostly: the share of rows that must pass; 1.0 (the default) for no nulls at all.
        share = check["max_share"]
        mostly = {"mostly": 1.0 - share} if share > 0 else {}
        return gxe.ExpectColumnValuesToNotBeNull(column=column, meta=meta, **mostly)
    if kind == "range":
        return gxe.ExpectColumnValuesToBeBetween(
            column=column, min_value=check["min"], max_value=check["max"], meta=meta
        )
    if kind == "allowed_values":
        return gxe.ExpectColumnValuesToBeInSet(column=column, value_set=check["values"], meta=meta)
    if kind == "unique":
        (only,) = check["columns"]
        return gxe.ExpectColumnValuesToBeUnique(column=only, meta=meta)
    if kind == "rule":
        left, right = rule_columns(check)
        return gxe.ExpectColumnPairValuesAToBeGreaterThanB(
            column_A=left, column_B=right, or_equal=True, meta=meta
        )
    if kind == "pattern":
        return gxe.ExpectColumnValuesToMatchRegex(column=column, regex=check["regex"], meta=meta)
    if kind == "length":
        return gxe.ExpectColumnValueLengthsToBeBetween(
            column=column, min_value=check["min"], max_value=check["max"], meta=meta
        )
    if kind == "freshness":
        return gxe.ExpectColumnMaxToBeBetween(
            column=column, min_value=NOW - max_age(check), meta=meta
        )
    raise ValueError(f"no Great Expectations translation of {kind!r}")


def _gx_raised(info: Any) -> str | None:
    """The exception message in a Great Expectations ``exception_info``, if one was raised."""
    if not isinstance(info, dict):
        return None
    if info.get("raised_exception"):
        return str(info.get("exception_message") or "raised an exception")
    return next((m for v in info.values() if (m := _gx_raised(v))), None)


def _setup_great_expectations() -> Runner:
    import great_expectations as gx
    import great_expectations.expectations as gxe
    from great_expectations.data_context.types.base import ProgressBarsConfig

    context = gx.get_context(mode="ephemeral")
    context.variables.progress_bars = ProgressBarsConfig(globally=False)
    asset = context.data_sources.add_pandas("bench").add_dataframe_asset("readings")
    batch = asset.add_batch_definition_whole_dataframe("whole")
    suite = context.suites.add(gx.ExpectationSuite(name="quality_bench"))
    for index, check in enumerate(CHECKS):
        suite.add_expectation(_gx_expectation(gxe, check, index))
    definition = context.validation_definitions.add(
        gx.ValidationDefinition(name="quality_bench", data=batch, suite=suite)
    )

    def verdicts(outcome: Any) -> tuple[list[bool], list[int | None]]:
        passed: list[bool | None] = [None] * len(CHECKS)
        counts: list[int | None] = [None] * len(CHECKS)
        for r in outcome.results:
            index = r.expectation_config.meta["check"]
            if message := _gx_raised(r.exception_info):
                raise RuntimeError(f"{check_label(CHECKS[index])}: {message}")
            passed[index], counts[index] = bool(r.success), r.result.get("unexpected_count")
        if None in passed:
            raise RuntimeError("Great Expectations returned no result for some checks")
        return [bool(p) for p in passed], counts

    return Runner(lambda df: definition.run(batch_parameters={"dataframe": df}), verdicts)


def _pandera_schema(backend: str) -> tuple[Any, list[tuple[str | None, str]]]:
    """The suite as a Pandera schema for ``backend`` ("polars" or "pandas"), and the key of each
    check of ``CHECKS`` in Pandera's errors: (column or None, the check's name)."""
    if backend == "polars":
        import pandera.polars as pa
        import polars as pl

        def null_share_at_most(share: float) -> Callable[[Any], Any]:
            return lambda data: data.lazyframe.select(pl.col(data.key).is_null().mean() <= share)

        def max_at_least(cutoff: datetime) -> Callable[[Any], Any]:
            return lambda data: data.lazyframe.select(pl.col(data.key).max() >= cutoff)

        def at_least(left: str, right: str) -> Callable[[Any], Any]:
            return lambda data: data.lazyframe.select(pl.col(left) >= pl.col(right))

    else:
        import pandas as pd
        import pandera.pandas as pa

        def null_share_at_most(share: float) -> Callable[[Any], Any]:
            return lambda series: bool(series.isna().mean() <= share)

        def max_at_least(cutoff: datetime) -> Callable[[Any], Any]:
            return lambda series: bool(series.max() >= pd.Timestamp(cutoff))

        def at_least(left: str, right: str) -> Callable[[Any], Any]:
            return lambda frame: frame[left] >= frame[right]

    # Nullable unless a check says otherwise: a null is a completeness concern only.
    columns: dict[str, dict[str, Any]] = {}
    frame_checks: list[Any] = []
    keys: list[tuple[str | None, str]] = []

    def column(name: str) -> dict[str, Any]:
        return columns.setdefault(name, {"nullable": True, "checks": []})

    for check in CHECKS:
        kind, name = check["check"], check.get("column")
        if kind == "not_null" and check["max_share"] == 0:
            column(name)["nullable"] = False
            keys.append((name, "not_nullable"))
            continue
        if kind == "unique":
            (only,) = check["columns"]
            column(only)["unique"] = True
            keys.append((only, "field_uniqueness"))
            continue
        if kind == "rule":
            frame_checks.append(pa.Check(at_least(*rule_columns(check)), name="rule"))
            keys.append((None, "rule"))
            continue
        if kind == "not_null":
            # ignore_na=False: the pandas backend would drop the nulls before the check sees them.
            made = pa.Check(
                null_share_at_most(check["max_share"]), name="null_share", ignore_na=False
            )
        elif kind == "range":
            made = pa.Check.in_range(check["min"], check["max"])
        elif kind == "allowed_values":
            made = pa.Check.isin(check["values"])
        elif kind == "pattern":
            made = pa.Check.str_matches(check["regex"])
        elif kind == "length":
            made = pa.Check.str_length(check["min"], check["max"])
        elif kind == "freshness":
            made = pa.Check(max_at_least(NOW - max_age(check)), name="freshness")
        else:
            raise ValueError(f"no Pandera translation of {kind!r}")
        column(name)["checks"].append(made)
        keys.append((name, made.name))
    if len(set(keys)) != len(keys):
        raise RuntimeError(f"two checks of the Pandera schema share a key: {keys}")
    schema = pa.DataFrameSchema(
        {name: pa.Column(**spec) for name, spec in columns.items()}, checks=frame_checks
    )
    return schema, keys


def _pandera_count(check: dict[str, Any], cases: Any) -> int | None:
    """Failing rows behind a Pandera error: None for a check of one aggregate (a null share, a
    maximum), the distinct rows of the pandas backend's long table of failure cases."""
    if check["check"] in ("not_null", "freshness") and check.get("max_share") != 0:
        return None
    if cases is None or not hasattr(cases, "shape"):
        return None
    if "index" in cases.columns and "column" in cases.columns:  # one row per failing cell
        return int(cases["index"].nunique())
    return len(cases)


def _setup_pandera(backend: str) -> Runner:
    from pandera.errors import SchemaErrors

    schema, keys = _pandera_schema(backend)

    def validate(frame: Any) -> Any:
        try:
            schema.validate(frame, lazy=True)
        except SchemaErrors as errors:
            return errors
        return None

    def verdicts(errors: Any) -> tuple[list[bool], list[int | None]]:
        counts: list[int | None] = [0] * len(keys)
        failed: set[int] = set()
        for error in [] if errors is None else errors.schema_errors:
            if str(getattr(error.reason_code, "value", "")) == "check_error":
                raise RuntimeError(f"a Pandera check raised: {error}")
            check = error.check if isinstance(error.check, str) else error.check.name
            key = (error.column_name, check)
            if key not in keys:
                raise RuntimeError(f"a Pandera error outside the suite: {key}: {error}")
            index = keys.index(key)
            failed.add(index)
            counts[index] = _pandera_count(CHECKS[index], error.failure_cases)
        return [i not in failed for i in range(len(keys))], counts

    return Runner(validate, verdicts)


SETUPS: dict[str, Callable[[], Runner]] = {
    "mlwarden": _setup_mlwarden,
    "great-expectations": _setup_great_expectations,
    "pandera-polars": lambda: _setup_pandera("polars"),
    "pandera-pandas": lambda: _setup_pandera("pandas"),
}


# ---------------------------------------------------------------------------------------------
# The worker: runs one tool in a fresh process and prints one JSON line.


def _worker(args: argparse.Namespace) -> None:
    tool = TOOLS[args.worker]
    os.environ.update(tool.env)  # before the tool is imported: no analytics
    started = time.perf_counter()
    frame = read_parquet(args.data, tool.reader)
    read_at = time.perf_counter()
    runner = SETUPS[tool.key]()
    setup_seconds = time.perf_counter() - read_at
    out = worker_facts(read_at - started, tool.packages, setup_seconds=setup_seconds)
    rows = len(frame)
    estimate = warmup_estimate(
        lambda n: timed(runner.validate, head(frame, n)),
        rows,
        warmup_rows=WARMUP_ROWS,
        known=None if args.per_row is None else args.per_row * rows,
    )
    if not within_budget(out, estimate, args.budget, digits=1):
        return

    def record(raw: Any, seconds: float, earlier: list[float]) -> None:
        if not earlier:  # the verdicts do not change from run to run
            out["verdicts"], out["n_failed"] = runner.verdicts(raw)

    timed_runs(out, lambda: runner.validate(frame), args.repeats, record)


# ---------------------------------------------------------------------------------------------
# The driver


def run_tool(
    tool: str, rows: int, path: Path, python: Path, budget: float, per_row: float | None
) -> Result:
    """Run one tool on the table of ``rows`` rows in a fresh worker; its verdicts per check."""
    progress(f"{rows:,} rows", TOOLS[tool].label)
    result = Result(rows, tool, None)
    command = worker_command(
        python,
        __file__,
        tool,
        rows=rows,
        inputs={"--data": path},
        budget=None if tool == "mlwarden" else budget,  # ours always runs; a peer within budget
        rate_option="--per-row",
        rate=per_row,
        repeats=REPEATS,
    )
    out = run_budgeted_worker(result, command, env=TOOLS[tool].env, budget=budget)
    if out is None:
        return result
    result.setup_seconds = out["setup_seconds"]
    if "skipped" not in out:
        result.verdicts, result.n_failed = out["verdicts"], out["n_failed"]
    return result


def _differences(verdicts: list[bool], other: list[bool] | tuple[bool, ...]) -> list[str]:
    return [
        check_label(check)
        for check, mine, theirs in zip(CHECKS, verdicts, other, strict=True)
        if mine != theirs
    ]


def score(results: list[Result]) -> None:
    """Compare every tool's verdicts with mlwarden's and with the planted faults, in place."""
    ours = next((r.verdicts for r in results if r.tool == "mlwarden"), None)
    set_ratios(results)
    for r in results:
        if r.verdicts is None:
            continue
        r.differs_from_expected = _differences(r.verdicts, EXPECTED)
        r.identical_to_expected = not r.differs_from_expected
        if ours is not None:
            r.differs_from_mlwarden = _differences(r.verdicts, ours)
            r.identical_to_mlwarden = not r.differs_from_mlwarden
        notes = [f"best of {r.runs}", f"read {r.read_seconds:.2f} s"]
        notes.append(f"setup {r.setup_seconds:.2f} s")
        if r.differs_from_mlwarden:
            notes.append("differs from mlwarden on: " + "; ".join(r.differs_from_mlwarden))
        if r.differs_from_expected:
            notes.append("differs from expected on: " + "; ".join(r.differs_from_expected))
        r.note = ", ".join(notes[:3]) + ("; " + "; ".join(notes[3:]) if notes[3:] else "")


def targets(results: list[Result]) -> list[dict[str, Any]]:
    """Check the targets of the module docstring against what this run measured."""
    checks: list[dict[str, Any]] = []
    for rows in sorted({r.rows for r in results}):
        at_size = [r for r in results if r.rows == rows]
        measured = [r for r in at_size if r.verdicts is not None]
        met = None
        if measured and any(r.tool == "mlwarden" for r in measured):
            met = all(r.identical_to_expected and r.identical_to_mlwarden for r in measured)
        tools = ", ".join(r.tool for r in measured) or "no tool"
        checks.append(
            {
                "target": f"verdicts identical to mlwarden's and to the planted faults on all "
                f"{len(CHECKS)} checks at {rows:,} rows ({tools})",
                "met": met,
            }
        )
    for rows in sorted({r.rows for r in results}):
        ours = next((r for r in results if (r.tool, r.rows) == ("mlwarden", rows)), None)
        for key in TOOLS:
            peer = next((r for r in results if (r.tool, r.rows) == (key, rows)), None)
            if key == "mlwarden" or peer is None:
                continue
            factor = SPEED_TARGETS.get(key, 1.0)
            met = None
            if ours is not None and ours.seconds is not None and peer.seconds is not None:
                met = ours.seconds * factor <= peer.seconds
            wanted = f"at least {factor:g}x faster than" if factor > 1 else "faster than"
            checks.append({"target": f"mlwarden {wanted} {key} at {rows:,} rows", "met": met})
    return checks


def _yes_no(value: bool | None) -> str:
    return "-" if value is None else ("yes" if value else "NO")


def _format_table(results: list[Result]) -> str:
    header = f"{'rows':>10}  {'tool':<44} {TIMING_HEADER}"
    lines = [f"{header}  {'failed':>6}  {'= mlwarden':>10}  {'= expected':>10}  note"]
    for r in results:
        failed = "-" if r.verdicts is None else f"{r.verdicts.count(False)}/{len(CHECKS)}"
        lines.append(
            f"{r.rows:>10,}  {TOOLS[r.tool].label:<44} {timing_cells(r, digits=3)}  "
            f"{failed:>6}  {_yes_no(r.identical_to_mlwarden):>10}  "
            f"{_yes_no(r.identical_to_expected):>10}  {r.note}"
        )
    return "\n".join(lines)


def _format_verdicts(results: list[Result]) -> str:
    """Every tool's verdict on every check, with its own count of failing values."""
    blocks = []
    for rows in sorted({r.rows for r in results}):
        measured = [r for r in results if r.rows == rows and r.verdicts is not None]
        if not measured:
            continue
        width = max(len(check_label(c)) for c in CHECKS)
        names = ["expected", *(r.tool for r in measured)]
        lines = [f"verdicts at {rows:,} rows (FAIL n: that tool's count of failing values)"]
        lines.append(f"  {'check':<{width}}  " + "  ".join(f"{n:<18}" for n in names))
        for index, check in enumerate(CHECKS):
            cells = ["pass" if EXPECTED[index] else "FAIL"]
            for r in measured:
                count = (r.n_failed or [None] * len(CHECKS))[index]
                if (r.verdicts or [])[index]:
                    cells.append("pass")
                else:
                    cells.append("FAIL" + ("" if count is None else f" {count:,}"))
            lines.append(
                f"  {check_label(check):<{width}}  " + "  ".join(f"{c:<18}" for c in cells)
            )
        identical = len({tuple(r.verdicts or ()) for r in measured}) == 1
        as_planted = all(r.verdicts == list(EXPECTED) for r in measured)
        tools = ", ".join(r.tool for r in measured)
        lines.append(f"  verdicts identical across {tools}: {_yes_no(identical)}")
        lines.append(f"  verdicts as expected from the planted faults: {_yes_no(as_planted)}")
        blocks.append("\n".join(lines))
    return "\n\n".join(blocks)


def _print_header(machine: dict[str, Any], ours: dict[str, str], results: list[Result]) -> None:
    print_machine(machine, ours)
    venvs: dict[str, tuple[str, dict[str, str]]] = {}
    for r in results:
        venv = TOOLS[r.tool].venv
        if venv and "versions" in r.extra:
            python, found = venvs.setdefault(venv, (r.extra["python"], {}))
            found.update(r.extra["versions"])
    for venv, (python, found) in venvs.items():
        print(venv_line(venv, python, found))
    faults = [f"{count} {what} ({column})" for column, (count, what) in FAULTS.items()]
    print("planted: " + "; ".join([*faults, HUMIDITY_NOTE]))
    print(f"now = {NOW.isoformat()}; the newest event_time is {NEWEST_AGE} older")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description="Time data-quality validation of mlwarden against Great Expectations and "
        "Pandera on the same suite of checks, and compare their verdicts check by check.",
        epilog="Targets: every tool's verdicts identical to mlwarden's and to the planted faults; "
        "mlwarden at least 20x faster than Great Expectations and faster than Pandera.",
    )
    add_run_options(
        parser,
        sizes=SIZES,
        quick_help=f"{QUICK_ROWS:,} rows only",
        tools=TOOLS,
        budget_option="--peer-budget",
        budget_default=900.0,
        budget_skips="a peer on a table",
        results_file=RESULTS_FILE,
    )
    add_worker_options(parser, TOOLS, ["--data"], rate_option="--per-row")
    args = parser.parse_args(argv)

    if args.worker:
        _worker(args)
        return 0

    sizes, tools = sizes_and_tools(parser, args, QUICK_ROWS, TOOLS)
    pythons = {key: TOOLS[key].python() for key in tools}
    ours = versions(["mlwarden", "polars", "numpy", "pyarrow"])
    machine = machine_info()

    results: list[Result] = []
    per_row: dict[str, float] = {}  # seconds per row of each tool at the largest size so far
    for rows in sorted(sizes):
        path = dataset(rows)
        at_size = []
        for key in tools:
            r = run_tool(key, rows, path, pythons[key], args.peer_budget, per_row.get(key))
            if r.seconds is not None:
                per_row[key] = r.seconds / rows
            at_size.append(r)
        score(at_size)
        results.extend(at_size)

    print()
    _print_header(machine, ours, results)
    print()
    print(_format_table(results))
    print()
    print(_format_verdicts(results))
    checks = targets(results)
    print()
    print_targets(checks)

    write_results(
        args.output,
        "quality",
        machine,
        ours,
        settings={
            "sizes": sorted(sizes),
            "tools": tools,
            "seed": SEED,
            "data_version": DATA_VERSION,
            "now": NOW.isoformat(),
            "checks": [{"label": check_label(c), **c} for c in CHECKS],
            "expected": list(EXPECTED),
            "faults": {k: {"rows": n, "what": w} for k, (n, w) in FAULTS.items()},
            "humidity_null_share": HUMIDITY_NULL_SHARE,
            "temperature_null_share": TEMPERATURE_NULL_SHARE,
            "great_expectations_result_format": "SUMMARY",
            "warmup_rows": WARMUP_ROWS,
            "peer_budget_seconds": args.peer_budget,
        },
        results=[asdict(r) for r in results],
        targets=checks,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
