"""The command line as a user meets it: output, files written, exit codes, one-line errors."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import polars as pl
import pytest
from click.testing import CliRunner

from mlwarden import __version__
from mlwarden.cli import cli


def run(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(cli, list(args))
    return result.exit_code, result.stdout, result.stderr


@pytest.fixture
def line_parquet(tmp_path: Path) -> Path:
    rng = np.random.default_rng(0)
    n = 3_000
    frame = pl.DataFrame(
        {
            "temperature_c": rng.normal(220, 15, n),
            "pressure_bar": pl.Series(rng.normal(150, 20, n)).scatter(
                np.flatnonzero(rng.random(n) < 0.02), None
            ),
            "recipe": rng.choice(["PP-H100", "PE-LD30", "PA6-GF30"], n),
            "defect": rng.integers(0, 2, n),
        }
    )
    path = tmp_path / "line.parquet"
    frame.write_parquet(path)
    return path


def test_version_and_help() -> None:
    code, out, _ = run("--version")
    assert code == 0
    assert __version__ in out
    code, out, _ = run("--help")
    assert code == 0
    assert "profile" in out
    assert "demo" in out


def test_help_does_not_import_heavy_libraries() -> None:
    # `mlwarden --help` must start fast: the data libraries load inside commands only.
    code = (
        "import sys, mlwarden.cli; "
        "heavy = [m for m in ('polars', 'numpy', 'pyarrow', 'scipy', 'rich') if m in sys.modules]; "
        "print(','.join(heavy))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""


def test_profile_prints_tables_and_writes_the_json_document(
    line_parquet: Path, tmp_path: Path
) -> None:
    out_json = tmp_path / "out" / "summary.json"
    code, out, err = run("profile", str(line_parquet), "--json", str(out_json))
    assert code == 0, err
    assert "temperature_c" in out
    assert "PP-H100" in out
    doc = json.loads(out_json.read_text())
    assert doc["n_rows"] == 3_000
    temp = doc["columns"]["temperature_c"]
    for key in ("kind", "count", "null_count", "mean", "std", "min", "max", "distinct", "top"):
        assert key in temp
    assert set(temp["quantiles"]) >= {"0.01", "0.5", "0.99"}
    assert temp["mean"] == pytest.approx(220, abs=2)
    assert doc["columns"]["pressure_bar"]["null_count"] > 0
    assert doc["columns"]["recipe"]["kind"] == "categorical"
    assert doc["columns"]["defect"]["role"] == "feature"


def test_profile_options_select_columns_and_override_roles(
    line_parquet: Path, tmp_path: Path
) -> None:
    out_json = tmp_path / "s.json"
    code, _, err = run(
        "profile",
        str(line_parquet),
        "--columns",
        "recipe,defect",
        "--role",
        "defect=target",
        "--kind",
        "defect=categorical",
        "--json",
        str(out_json),
        "--quiet",
    )
    assert code == 0, err
    doc = json.loads(out_json.read_text())
    assert list(doc["columns"]) == ["recipe", "defect"]
    defect = doc["columns"]["defect"]
    assert (defect["role"], defect["kind"]) == ("target", "categorical")
    assert defect["top"][0][0] in {"0", "1"}


def assert_one_line_error(code: int, err: str, *needles: str) -> None:
    assert code == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("mlwarden: error:")
    assert "Traceback" not in err
    for needle in needles:
        assert needle in lines[0]


def test_bad_inputs_get_one_line_errors(tmp_path: Path) -> None:
    code, _, err = run("profile", str(tmp_path / "missing.parquet"))
    assert_one_line_error(code, err, "missing.parquet", "does not exist")

    unknown = tmp_path / "data.xlsx"
    unknown.write_bytes(b"PK\x03\x04 not a table")
    code, _, err = run("profile", str(unknown))
    assert_one_line_error(code, err, "data.xlsx", "Parquet")

    empty = tmp_path / "empty.csv"
    empty.write_bytes(b"")
    code, _, err = run("profile", str(empty))
    assert_one_line_error(code, err, "empty.csv", "empty")

    mixed = tmp_path / "mixed.csv"
    rows = "\n".join(f"{i},{i * 0.5}" for i in range(200_000))
    mixed.write_text(f"id,pressure\n{rows}\n7,abc\n")
    code, _, err = run("profile", str(mixed))
    assert_one_line_error(code, err, "mixed.csv", "'pressure'", "abc", "line 200,002")
    code, out, err = run("profile", str(mixed), "--kind", "pressure=text")
    assert code == 0, err

    latin = tmp_path / "latin.csv"
    latin.write_bytes("site,temp\nMünchen,21.5\nKöln,19.0\n".encode("latin-1"))
    code, _, err = run("profile", str(latin))
    assert_one_line_error(code, err, "latin.csv", "'site'", "UTF-8", "--encoding")
    code, out, err = run("profile", str(latin), "--encoding", "latin-1")
    assert code == 0, err
    assert "München" in out

    code, _, err = run("profile", str(latin), "--encoding", "latin-1", "--columns", "tmp")
    assert_one_line_error(code, err, "'tmp'", "temp")


def test_all_null_column_is_profiled(tmp_path: Path) -> None:
    path = tmp_path / "gaps.csv"
    path.write_text("temp,dead\n1.5,\n2.5,\n")
    out_json = tmp_path / "s.json"
    code, _, err = run("profile", str(path), "--json", str(out_json), "-q")
    assert code == 0, err
    dead = json.loads(out_json.read_text())["columns"]["dead"]
    assert (dead["count"], dead["null_count"]) == (0, 2)


def test_console_script_runs_as_a_process(line_parquet: Path) -> None:
    exe = Path(sys.executable).with_name("mlwarden")
    result = subprocess.run(
        [str(exe), "profile", str(line_parquet), "-q"], capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr
    missing = subprocess.run(
        [str(exe), "profile", "nope.csv"], capture_output=True, text=True, check=False
    )
    assert missing.returncode == 2
    assert missing.stderr.startswith("mlwarden: error:")


def test_drift_command_writes_the_json_report_and_can_gate_a_pipeline(tmp_path: Path) -> None:
    rng = np.random.default_rng(5)
    ref, cur, moved = tmp_path / "ref.parquet", tmp_path / "cur.parquet", tmp_path / "moved.csv"
    pl.DataFrame(
        {"temp": rng.normal(200, 5, 10_000), "line": rng.choice(["L1", "L2"], 10_000)}
    ).write_parquet(ref)
    pl.DataFrame(
        {"temp": rng.normal(200, 5, 2_000), "line": rng.choice(["L1", "L2"], 2_000)}
    ).write_parquet(cur)
    pl.DataFrame({"temp": rng.normal(230, 5, 2_000), "line": ["L3"] * 2_000}).write_csv(moved)
    out = tmp_path / "drift.json"
    code, stdout, err = run("drift", str(ref), str(cur), "--json", str(out), "--fail-on-drift")
    assert code == 0, err
    assert "No drift in 2 columns" in stdout
    doc = json.loads(out.read_text())
    assert doc["dataset_drift"] is False
    for key in ("test", "statistic", "effect_size", "p_value", "threshold", "drifted"):
        assert key in doc["columns"]["temp"]
    code, stdout, _ = run("drift", str(ref), str(moved), "--fail-on-drift", "--test", "line=chi2")
    assert code == 1
    assert "Dataset drift: 2 of 2" in stdout
    code, _, err = run("drift", str(ref), str(cur), "--test", "temp=kss")
    assert_one_line_error(code, err, "'kss' is not a drift test", "Did you mean 'ks'")
    code, _, err = run("drift", str(ref), str(tmp_path / "none.parquet"))
    assert_one_line_error(code, err, "none.parquet", "does not exist")


def test_estimate_command_per_window_with_realized_where_labelled(tmp_path: Path) -> None:
    rng = np.random.default_rng(8)

    def side(n: int, shift: float) -> pl.DataFrame:
        x = rng.normal(shift, 1, n)
        p = 1 / (1 + np.exp(-(2 * x - 2)))
        return pl.DataFrame({"x": x, "score": p, "y": (rng.random(n) < p).astype(int)})

    ref, ana = tmp_path / "ref.parquet", tmp_path / "analysis.parquet"
    side(20_000, 0.0).write_parquet(ref)
    analysis = side(6_000, 0.5)
    labelled = pl.int_range(pl.len()) < 2_000
    analysis.with_columns(pl.when(labelled).then(pl.col("y")).alias("y")).write_parquet(ana)
    out, page = tmp_path / "est.json", tmp_path / "est.html"
    args = ["estimate", str(ref), str(ana), "--task", "binary", "--y-true", "y"]
    code, stdout, err = run(
        *args, "--y-score", "score", "--chunk-size", "2000", "--json", str(out), "--html", str(page)
    )
    assert code == 0, err
    assert "roc_auc" in stdout
    doc = json.loads(out.read_text())
    auc = [e for e in doc["estimates"] if e["metric"] == "roc_auc"]
    assert len(auc) == 3
    assert auc[0]["realized"] is not None  # the first window is labelled
    assert auc[1]["realized"] is None
    assert all(e["lower"] <= e["estimated"] <= e["upper"] for e in auc)
    assert "Estimated performance" in page.read_text()
    code, _, err = run(*args, "--y-score", "score")
    assert_one_line_error(code, err, "--chunk-size", "--window")
    code, _, err = run(*args, "--y-score", "nope", "--chunk-size", "100")
    assert_one_line_error(code, err, "nope")


def test_suggest_then_check_gates_a_pipeline(tmp_path: Path) -> None:
    from mlwarden.datasets import StuckSensor, production_line

    plant = production_line(60_000, seed=4)
    reference, later = tmp_path / "reference.parquet", tmp_path / "later.parquet"
    plant.head(50_000).write_parquet(reference)
    plant.tail(10_000).write_parquet(later)
    suite = tmp_path / "suite.yaml"
    code, out, err = run("suggest", str(reference), "-o", str(suite), "--timestamp", "timestamp")
    assert code == 0, err
    assert f"written to {suite}" in out
    assert "Held-out test:" in out
    assert suite.read_text().startswith("# mlwarden quality suite")

    code, out, err = run(
        "check", str(later), "--suite", str(suite), "--json", str(tmp_path / "ok.json")
    )
    assert code == 0, out + err
    assert json.loads((tmp_path / "ok.json").read_text())["passed"] is True

    broken = tmp_path / "broken.parquet"
    production_line(
        10_000, seed=5, faults=[StuckSensor(column="pressure_bar", start_row=2_000, n_rows=500)]
    ).write_parquet(broken)
    held = tmp_path / "held.parquet"
    code, out, err = run(
        "check",
        str(broken),
        "--suite",
        str(suite),
        "--json",
        str(tmp_path / "bad.json"),
        "--quarantine",
        str(held),
        "--window",
        "1h",
    )
    assert code == 1, out + err
    doc = json.loads((tmp_path / "bad.json").read_text())
    stuck = next(
        c for c in doc["checks"] if c["check"] == "stuck" and c["column"] == "pressure_bar"
    )
    assert stuck["passed"] is False
    assert stuck["n_failed"] == 500
    assert {
        "check",
        "column",
        "passed",
        "observed",
        "threshold",
        "n_failed",
        "severity",
        "message",
    } <= set(stuck)
    assert doc["windows"]
    quarantined = pl.read_parquet(held)
    assert quarantined.height >= 500
    assert "stuck(pressure_bar)" in quarantined["reasons"].explode().to_list()


def test_check_rejects_a_bad_suite_in_one_line(tmp_path: Path, line_parquet: Path) -> None:
    suite = tmp_path / "suite.yaml"
    suite.write_text("checks:\n  - check: not_nul\n    column: pressure_bar\n", encoding="utf-8")
    code, _, err = run("check", str(line_parquet), "--suite", str(suite))
    assert_one_line_error(code, err, f"{suite}, line 2", "Did you mean 'not_null'?")


def test_register_and_tokens(tmp_path: Path) -> None:
    from mlwarden.datasets import production_line

    reference = tmp_path / "reference.parquet"
    production_line(4_000, seed=2).write_parquet(reference)
    data = str(tmp_path / "data")
    code, out, err = run(
        "register",
        "defect-model",
        "1",
        str(reference),
        "--timestamp",
        "timestamp",
        "--alias",
        "production",
        "--data-dir",
        data,
    )
    assert code == 0, err
    assert "drift_reference, evaluators, profile, reference_rows, suite" in out
    assert "  rows must carry: event time 'timestamp', features 'line', 'recipe', " in out
    assert "'operator_shift', 'defect', score 'defect_score', prediction 'prediction'\n" in out
    assert "  labels: none (the version was registered without a target)\n" in out
    assert "production -> 1" in out
    code, out, _ = run("token", "create", "ingest", "--data-dir", data)
    assert code == 0
    assert out.strip().startswith("mlw_")
    code, out, _ = run("token", "list", "--data-dir", data)
    assert "ingest" in out
    assert out.strip().split()[0] == "1"
    assert run("token", "revoke", "1", "--data-dir", data)[0] == 0
    code, _, err = run("token", "revoke", "7", "--data-dir", data)
    assert_one_line_error(code, err, "No token with id 7")


def test_suggest_takes_roles_from_the_command_line(tmp_path: Path) -> None:
    """A score the names do not reveal, declared with --role, keeps its range inside [0, 1];
    a misspelled column is named with its closest match."""
    rng = np.random.default_rng(2)
    data = tmp_path / "scored.csv"
    pl.DataFrame(
        {"p_fail": rng.uniform(0.3, 0.95, 2_000), "temp": rng.normal(60.0, 5.0, 2_000)}
    ).write_csv(data)
    suite = tmp_path / "suite.yaml"
    from mlwarden.quality import Suite

    def learned(*role: str) -> tuple[float, float]:
        code, _, err = run("suggest", str(data), "-o", str(suite), *role)
        assert code == 0, err
        checks = Suite.from_yaml(suite).checks
        return next((c.min, c.max) for c in checks if c.key == "range" and c.column == "p_fail")

    assert learned("--role", "p_fail=score")[1] == 1.0
    assert learned()[1] > 1.0  # read as a measurement, its range is widened past 1
    code, _, err = run("suggest", str(data), "-o", str(suite), "--role", "p_fial=score")
    assert code == 2
    assert "Did you mean 'p_fail'?" in err
