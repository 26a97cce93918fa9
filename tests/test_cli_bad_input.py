"""Bad input, everywhere alike: every command that reads a data file answers a missing, empty,
header-only, wrongly encoded or mixed-type file, and an option naming a column the file does not
have, with one line on stderr naming the file, and exit status 2."""

from __future__ import annotations

from pathlib import Path

import click
import numpy as np
import polars as pl
import pytest
from click.testing import CliRunner

from mlwarden.cli import cli

# Each command that reads a data file, with the file in each place it takes one: DATA is the
# file under test, GOOD a readable file, DIR a data directory. Every command with --encoding
# must be here (checked below), so a new command that reads data is walked the day it exists.
INVOCATIONS = {
    "profile": [["profile", "DATA"]],
    "drift": [["drift", "DATA", "GOOD"], ["drift", "GOOD", "DATA"]],
    "estimate": [
        [*est, "--task", "binary", "--y-true", "target", "--y-score", "score", "--chunk-size", "50"]
        for est in (["estimate", "DATA", "GOOD"], ["estimate", "GOOD", "DATA"])
    ],
    "suggest": [["suggest", "DATA", "-o", "DIR/suite.yaml"]],
    "slices": [["slices", "DATA", "target"]],
    "check": [["check", "DATA", "--suite", "SUITE"]],
    "register": [["register", "m", "1", "DATA", "--data-dir", "DIR"]],
    "promotion request": [["promotion", "request", "m", "1", "DATA", "--data-dir", "DIR"]],
}


def line(n: int, seed: int = 0) -> pl.DataFrame:
    """A model's log as a user's CSV holds it: text ids, ISO text times, sensors, outputs."""
    rng = np.random.default_rng(seed)
    temp = rng.normal(20, 2, n)
    score = 1 / (1 + np.exp(-(temp - 20)))
    return pl.DataFrame(
        {
            "id": [f"r{seed}-{i}" for i in range(n)],
            "timestamp": [f"2024-05-01T{i // 60:02d}:{i % 60:02d}:00" for i in range(n)],
            "temp": temp,
            "pressure": rng.normal(5, 1, n),
            "target": (rng.random(n) < score).astype(int),
            "score": score,
            "prediction": (score >= 0.5).astype(int),
            "load": temp * 3 + rng.normal(0, 1, n),
            "load_pred": temp * 3,
        }
    )


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("files")
    good = root / "good.csv"
    line(600).write_csv(good)
    empty = root / "empty.csv"
    empty.write_bytes(b"")
    header = root / "header_only.csv"
    header.write_text(line(1).write_csv().splitlines()[0] + "\n")
    latin = root / "latin1.csv"
    sites = line(30).with_columns(site=pl.Series(["Köln", "Zürich", "Malmö"] * 10))
    latin.write_bytes(sites.write_csv().encode("latin-1"))
    stray = root / "stray_word.csv"
    text = line(30).with_columns(pl.col("pressure").cast(pl.String))
    text.with_columns(text["pressure"].scatter(17, "n/a?")).write_csv(stray)
    suite = root / "suite.yaml"
    suite.write_text("checks:\n  - check: not_null\n    column: temp\n", encoding="utf-8")
    return {
        "GOOD": good,
        "missing": root / "missing.csv",
        "empty": empty,
        "header-only": header,
        "latin-1": latin,
        "stray word": stray,
        "SUITE": suite,
    }


BINARY = [
    "estimate",
    "GOOD",
    "GOOD",
    "--task",
    "binary",
    "--y-true",
    "target",
    "--y-score",
    "score",
]
REGRESSION = ["estimate", "GOOD", "GOOD", "--task", "regression", "--y-true", "load"]
REGRESSION += ["--y-pred", "load_pred"]

# What the one line says about each bad file, besides its name.
BAD = {
    "missing": "does not exist",
    "empty": "is empty",
    "header-only": "no rows",
    "latin-1": "--encoding",
    "stray word": "'n/a?'",
}


def run(args: list[str], files: dict[str, Path], data: Path, tmp_path: Path) -> tuple[int, str]:
    """Run a command with DATA, GOOD, SUITE and DIR (also as DIR/name) put in place."""
    named = {"DATA": data, "GOOD": files["GOOD"], "SUITE": files["SUITE"], "DIR": tmp_path}

    def placed(arg: str) -> str:
        head, sep, rest = arg.partition("/")
        return str(named[head]) + sep + rest if head in named else arg

    result = CliRunner().invoke(cli, [placed(arg) for arg in args])
    return result.exit_code, result.stderr


def commands_with_encoding() -> set[str]:
    found = set()

    def walk(group: click.Group, prefix: tuple[str, ...]) -> None:
        for name, command in group.commands.items():
            if isinstance(command, click.Group):
                walk(command, (*prefix, name))
            elif any(param.name == "encoding" for param in command.params):
                found.add(" ".join((*prefix, name)))

    walk(cli, ())
    return found


def test_every_command_that_reads_data_takes_an_encoding_and_is_walked() -> None:
    assert commands_with_encoding() == set(INVOCATIONS)


@pytest.mark.parametrize("bad", list(BAD))
@pytest.mark.parametrize(
    "args", [a for runs in INVOCATIONS.values() for a in runs], ids=lambda a: " ".join(a[:4])
)
def test_a_bad_file_is_one_line_naming_it(
    args: list[str], bad: str, files: dict[str, Path], tmp_path: Path
) -> None:
    code, err = run(args, files, files[bad], tmp_path)
    assert code == 2, err
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("mlwarden: error: ")
    assert str(files[bad]) in lines[0]
    assert BAD[bad] in lines[0]


@pytest.mark.parametrize(
    "args", [a for runs in INVOCATIONS.values() for a in runs], ids=lambda a: " ".join(a[:4])
)
def test_the_encoding_option_reads_a_latin1_file(
    args: list[str], files: dict[str, Path], tmp_path: Path
) -> None:
    code, err = run([*args, "--encoding", "latin-1"], files, files["latin-1"], tmp_path)
    # the command may still stop later (no such model to promote), but not on the encoding
    assert "UTF-8" not in err, err
    assert "encoding" not in err, err
    assert code in (0, 1, 2)


@pytest.mark.parametrize(
    ("args", "option", "wrong", "meant"),
    [
        (["drift", "GOOD", "GOOD", "--test", "nosuch=ks"], "--test", "nosuch", None),
        (["drift", "GOOD", "GOOD", "--test", "tmp=ks"], "--test", "tmp", "temp"),
        (
            ["drift", "GOOD", "GOOD", "--columns", "temp,presure"],
            "--columns",
            "presure",
            "pressure",
        ),
        (["drift", "GOOD", "GOOD", "--threshold", "tmep=0.1"], "--threshold", "tmep", "temp"),
        (["drift", "GOOD", "GOOD", "--kind", "scre=numeric"], "--kind", "scre", "score"),
        (["drift", "GOOD", "GOOD", "--timestamp", "time"], "--timestamp", "time", "timestamp"),
        (["profile", "GOOD", "--role", "targt=target"], "--role", "targt", "target"),
        (["profile", "GOOD", "--kind", "pressur=text"], "--kind", "pressur", "pressure"),
        (
            [*REGRESSION, "--features", "temp,pressur", "--chunk-size", "50"],
            "--features",
            "pressur",
            "pressure",
        ),
        (
            [*BINARY[:6], "targte", *BINARY[7:], "--chunk-size", "50"],
            "--y-true",
            "targte",
            "target",
        ),
        (
            [*BINARY, "--window", "1h", "--timestamp", "timestmp"],
            "--timestamp",
            "timestmp",
            "timestamp",
        ),
        (["suggest", "GOOD", "-o", "DIR/s.yaml", "--timestamp", "ts"], "--timestamp", "ts", None),
        (["suggest", "GOOD", "-o", "DIR/s.yaml", "--id", "idd"], "--id", "idd", "id"),
        (["suggest", "GOOD", "-o", "DIR/s.yaml", "--entity", "lnie"], "--entity", "lnie", None),
        (["slices", "GOOD", "traget"], "OUTCOME", "traget", "target"),
        (["slices", "GOOD", "target", "--column", "tmp"], "--column", "tmp", "temp"),
        (["register", "m", "1", "GOOD", "--segment", "sgment"], "--segment", "sgment", None),
        (["register", "m", "1", "GOOD", "--role", "scor=score"], "--role", "scor", "score"),
    ],
    ids=lambda value: value if isinstance(value, str) else None,
)
def test_an_option_naming_a_missing_column_suggests_the_closest(
    args: list[str],
    option: str,
    wrong: str,
    meant: str | None,
    files: dict[str, Path],
    tmp_path: Path,
) -> None:
    if args[0] == "register":
        args = [*args, "--data-dir", "DIR"]
    code, err = run(args, files, files["GOOD"], tmp_path)
    assert code == 2, err
    assert len(err.strip().splitlines()) == 1, err
    assert f"{option} names the column '{wrong}'" in err
    assert str(files["GOOD"]) in err
    if meant is not None:
        assert f"Did you mean '{meant}'?" in err


def test_estimate_never_learns_from_ids_times_labels_or_outputs(
    files: dict[str, Path], tmp_path: Path
) -> None:
    analysis = tmp_path / "analysis.csv"
    line(300, seed=1).write_csv(analysis)
    base = ["estimate", "GOOD", str(analysis), "--task", "regression", "--y-true", "load"]
    base += ["--y-pred", "load_pred", "--chunk-size", "100", "--json", str(tmp_path / "e.json")]
    # text ids (600 categories) and text times would not even fit the loss model as features
    code, err = run(base, files, files["GOOD"], tmp_path)
    assert code == 0, err
    code, err = run([*base, "--features", "temp,load"], files, files["GOOD"], tmp_path)
    assert code == 2
    assert "--features names 'load', the --y-true column" in err


def test_header_only_estimate_and_check_are_errors_not_empty_results(
    files: dict[str, Path], tmp_path: Path
) -> None:
    header = str(files["header-only"])
    for args in (
        ["estimate", "GOOD", "DATA", *BINARY[3:], "--chunk-size", "10"],
        ["check", "DATA", "--suite", "SUITE"],
    ):
        code, err = run(args, files, files["header-only"], tmp_path)
        assert code == 2
        assert err.strip() == (
            f"mlwarden: error: '{header}' has column names but no rows; expected a file with at "
            "least one row of data. Check that the program writing it has finished."
        )
