"""The plain-text summary of a validation (what ``print(validation.summary())`` shows)."""

from __future__ import annotations

import polars as pl

from mlwarden.datasets import Spike, StuckSensor, production_line
from mlwarden.quality import Suite, validate
from mlwarden.quality.display import shorten

SUITE = Suite.from_dict(
    {
        "timestamp": "timestamp",
        "checks": [
            {"check": "not_null", "column": "temperature_c"},
            {"check": "range", "column": "temperature_c", "min": 150, "max": 320},
            {"check": "stuck", "column": "temperature_c", "max_duration": "5m"},
            {"check": "spike", "column": "pressure_bar", "max_z": 8},
            {
                "check": "mean",
                "column": "pressure_bar",
                "min": 160,
                "max": 400,
                "severity": "warning",
            },
        ],
    }
)


def test_failed_checks_come_first_with_their_labels_and_the_verdict() -> None:
    faults = [StuckSensor("temperature_c", 1_000, 300), Spike("pressure_bar", 3_000, 80.0)]
    v = validate(production_line(5_000, seed=1, faults=faults), SUITE)
    text = v.summary()
    lines = text.splitlines()
    assert lines[0].startswith("FAILED: 2 error checks and 1 warning check failed of 5 checks.")
    assert "Overall score" in lines[0]
    assert "completeness 100%" in lines[1]
    rows = [line for line in lines if line[:1] in ("✓", "✗")]
    assert len(rows) == 5
    assert [row.split()[1] for row in rows[:3]] == [
        "stuck(temperature_c)",
        "spike(pressure_bar)",
        "mean(pressure_bar)",
    ]
    assert all(row.startswith("✗") for row in rows[:3])
    assert all(row.startswith("✓") for row in rows[3:])
    assert "300" in rows[0].split()  # rows that failed
    assert rows[2].split()[2:4] == ["warning", "–"]  # judged on an aggregate: no row count
    assert max(len(line) for line in lines) <= 100
    assert "\x1b" not in text  # plain text, no colour codes


def test_passing_validation_says_so() -> None:
    suite = SUITE.with_checks(SUITE.checks[:4])
    text = validate(production_line(2_000, seed=3), suite).summary()
    assert text.splitlines()[0] == "PASSED: all 4 checks passed. Overall score 100% on 2,000 rows."
    assert "✗" not in text


def test_failed_warnings_alone_pass_with_warnings() -> None:
    suite = Suite.from_dict(
        {"checks": [{"check": "range", "column": "x", "min": 0, "max": 1, "severity": "warning"}]}
    )
    text = validate(pl.DataFrame({"x": [0.5, 7.0]}), suite).summary()
    assert text.startswith("PASSED with warnings: 1 warning check failed of 1 check.")
    assert "range(x)" in text


def test_long_messages_are_cut_at_a_word() -> None:
    assert shorten("short message", 40) == "short message"
    cut = shorten("temperature_c did not change for 47 min 31 s (limit 4 min)", 30)
    assert cut == "temperature_c did not change…"
    assert len(cut) <= 30
