"""Suites round-trip through YAML; invalid files are rejected with file, line and suggestion."""

from __future__ import annotations

from pathlib import Path

import pytest

from mlwarden.exceptions import SuiteError
from mlwarden.quality import NotNull, Range, Stuck, Suite

SUITE = """\
version: 1
name: extrusion line 1
timestamp: timestamp
entity: [line]
checks:
  - check: not_null
    column: pressure_bar
  - check: range
    column: temperature_c
    min: 150
    max: 320
  - check: stuck
    column: value
    max_duration: 30m
    by: tag
    groups:
      TI-101: {max_duration: 2h}
      TI-102: {max_duration: 45m, tolerance: 0.05}
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "suite.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def test_a_hand_written_suite_loads_and_round_trips(tmp_path: Path) -> None:
    suite = Suite.from_yaml(write(tmp_path, SUITE))
    assert suite.name == "extrusion line 1"
    assert suite.entity == ("line",)
    assert suite.checks[0] == NotNull(column="pressure_bar")
    assert suite.checks[1] == Range(column="temperature_c", min=150.0, max=320.0)
    stuck = suite.checks[2]
    assert isinstance(stuck, Stuck)
    assert stuck.groups == {
        "TI-101": {"max_duration": "2h"},
        "TI-102": {"max_duration": "45m", "tolerance": 0.05},
    }
    again = tmp_path / "again.yaml"
    suite.to_yaml(again)
    assert Suite.from_yaml(again) == suite
    text = again.read_text()
    assert text.startswith("# mlwarden quality suite")
    assert "TI-101: {max_duration: 2h}" in text, "short per-tag settings stay on one line"


@pytest.mark.parametrize(
    ("old", "new", "line", "expected"),
    [
        (
            "check: not_null",
            "check: not_nul",
            6,
            "'not_nul' is not a check.*Did you mean 'not_null'",
        ),
        (
            "    min: 150",
            "    min: hot",
            10,
            "'min' parameter of the check 'range' must be a number",
        ),
        ("    column: temperature_c\n", "", 8, "needs the parameter 'column'"),
        (
            "    max: 320",
            "    maximum: 320",
            11,
            "'maximum' is not a parameter.*Did you mean 'max'",
        ),
        ("timestamp: timestamp", "timestamps: timestamp", 3, "Did you mean 'timestamp'"),
        (
            "TI-102: {max_duration: 45m",
            "TI-102: {max_durations: 45m",
            17,
            "Did you mean 'max_duration'",
        ),
        ("version: 1", "version: 7", 1, "version 7 is not supported"),
        ("  - check: range", "  - check: [range", 9, "not valid YAML"),
    ],
)
def test_invalid_files_name_the_file_line_and_fix(
    tmp_path: Path, old: str, new: str, line: int, expected: str
) -> None:
    assert old in SUITE
    path = write(tmp_path, SUITE.replace(old, new, 1))
    with pytest.raises(SuiteError, match=expected) as info:
        Suite.from_yaml(path)
    assert info.value.line == line, str(info.value)
    assert str(info.value).startswith(f"{path}, line {line}: ")


def test_missing_and_empty_files(tmp_path: Path) -> None:
    with pytest.raises(SuiteError, match="No suite file"):
        Suite.from_yaml(tmp_path / "nope.yaml")
    with pytest.raises(SuiteError, match="empty"):
        Suite.from_yaml(write(tmp_path, "# nothing here\n"))
    with pytest.raises(SuiteError, match="needs a 'checks' list"):
        Suite.from_yaml(write(tmp_path, "name: x\n"))


def test_dict_form_names_the_check_by_position() -> None:
    with pytest.raises(SuiteError, match=r"check #2: 'rnage' is not a check.*'range'"):
        Suite.from_dict(
            {"checks": [{"check": "not_null", "column": "a"}, {"check": "rnage", "column": "a"}]}
        )
