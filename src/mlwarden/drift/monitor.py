"""Drift over a series of windows: the per-window statistic of every column with its bounds."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import polars as pl

from mlwarden import frames
from mlwarden.drift.comparison import Alarm, DriftReport, compare
from mlwarden.drift.reference import Reference, as_reference
from mlwarden.windows import WINDOW, WINDOW_END, WINDOW_START, WindowSpec, assign_windows

if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence
    from pathlib import Path

    from mlwarden.drift.base import DriftTest
    from mlwarden.schema import Kind, Role


@dataclass(frozen=True, slots=True)
class DriftSeries:
    """Drift reports of consecutive windows; :meth:`to_df` gives one row per window and column."""

    windows: list[tuple[int, Any, Any, int]]
    reports: list[DriftReport]

    def to_df(self) -> pl.DataFrame:
        """Columns: window, window_start, window_end, n, column, test, effect_size, p_value,
        lower, upper (the alert bounds of the effect size), drifted."""
        rows = []
        for (index, start, end, n), report in zip(self.windows, self.reports, strict=True):
            for name, c in report.columns.items():
                rows.append(
                    {
                        WINDOW: index,
                        WINDOW_START: start,
                        WINDOW_END: end,
                        "n": n,
                        "column": name,
                        "test": c.test,
                        "effect_size": c.effect_size,
                        "p_value": c.p_value,
                        "lower": 0.0,
                        "upper": c.threshold,
                        "drifted": c.drifted,
                    }
                )
        return pl.DataFrame(rows) if rows else pl.DataFrame(schema={WINDOW: pl.Int64})

    def dataset_drift(self) -> pl.DataFrame:
        """One row per window: share of drifted columns and the dataset verdict."""
        return pl.DataFrame(
            {
                WINDOW: [w[0] for w in self.windows],
                WINDOW_START: [w[1] for w in self.windows],
                "n": [w[3] for w in self.windows],
                "share_drifted": [r.share_drifted for r in self.reports],
                "dataset_drift": [r.dataset_drift for r in self.reports],
                "drifted_columns": [r.drifted_columns for r in self.reports],
            }
        )

    def to_html(self, path: str | Path) -> Path:
        """Write one self-contained HTML page: each column's effect size per window against its
        calibrated bound, drifted windows marked."""
        from mlwarden.report import html
        from mlwarden.report.series import Panel, series_figure, series_html

        table = self.to_df()
        panels = []
        x = WINDOW_START if WINDOW_START in table.columns else WINDOW
        for name in dict.fromkeys(table["column"].to_list() if table.height else []):
            part = table.filter(pl.col("column") == name)
            n_drifted = int(part["drifted"].sum())
            panels.append(
                Panel(
                    title=name,
                    subtitle=f"{part['test'][0]} effect size per window; drifted in {n_drifted} "
                    f"of {part.height} windows",
                    figure=series_figure(
                        part,
                        x=x,
                        y="effect_size",
                        y_label="effect size",
                        upper="upper",
                        alert="drifted",
                    ),
                )
            )
        days = self.dataset_drift()
        n_bad = int(days["dataset_drift"].sum()) if days.height else 0
        verdict = (
            f"Dataset drift in {n_bad} of {days.height} windows."
            if n_bad
            else f"No dataset drift in {days.height} windows."
        )
        page = series_html(
            "Drift over time",
            f"{len(panels)} columns",
            verdict,
            n_bad > 0,
            panels,
            table.drop("lower"),
        )
        return html.write(path, page)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form: one entry per window with its report."""
        return {
            "windows": [
                {
                    "window": index,
                    "window_start": str(start),
                    "window_end": str(end),
                    "n": n,
                    **report.to_dict(),
                }
                for (index, start, end, n), report in zip(self.windows, self.reports, strict=True)
            ]
        }


class DriftMonitor:
    """Judge windows of production data against one reference, fitted once.

    Parameters:
        reference: a fitted :class:`~mlwarden.drift.reference.Reference` or reference data.
        columns, tests, thresholds, alarm, alpha, dataset_share: as in
            :func:`~mlwarden.drift.comparison.compare`.

    Example:
        >>> import numpy as np, polars as pl
        >>> rng = np.random.default_rng(3)
        >>> ref = pl.DataFrame({"temp": rng.normal(200, 5, 20_000)})
        >>> temp = np.r_[rng.normal(200, 5, 3000), rng.normal(206, 5, 1000)]
        >>> later = pl.DataFrame({"temp": temp})
        >>> series = DriftMonitor(ref).evaluate(later, window=1000)
        >>> series.to_df()["drifted"].to_list()
        [False, False, False, True]
    """

    def __init__(
        self,
        reference: object,
        *,
        columns: Sequence[str] | None = None,
        tests: Mapping[str, str | DriftTest | dict[str, Any]] | None = None,
        thresholds: Mapping[str, float] | None = None,
        alarm: Alarm = "calibrated",
        alpha: float = 0.05,
        dataset_share: float = 0.5,
        kinds: Mapping[str, str | Kind] | None = None,
        roles: Mapping[str, str | Role] | None = None,
    ) -> None:
        self.reference: Reference = as_reference(reference, kinds=kinds, roles=roles)
        self.columns = columns
        self.tests = tests
        self.thresholds = thresholds
        self.alarm: Alarm = alarm
        self.alpha = alpha
        self.dataset_share = dataset_share

    def evaluate(
        self, data: object, *, window: str | int | WindowSpec, timestamp: str | None = None
    ) -> DriftSeries:
        """Compare every window of ``data`` (by time with ``"1d"``, or by row count) with the
        reference."""
        spec = WindowSpec.parse(window, timestamp=timestamp)
        frame = assign_windows(frames.to_polars(data), spec).filter(pl.col(WINDOW).is_not_null())
        windows: list[tuple[int, Any, Any, int]] = []
        reports: list[DriftReport] = []
        helper = [WINDOW, WINDOW_START, WINDOW_END]
        for part in frame.sort(WINDOW, maintain_order=True).partition_by(
            WINDOW, maintain_order=True
        ):
            first = part.row(0, named=True)
            windows.append((first[WINDOW], first[WINDOW_START], first[WINDOW_END], part.height))
            reports.append(
                compare(
                    self.reference,
                    part.drop(helper),
                    columns=self.columns,
                    tests=self.tests,
                    thresholds=self.thresholds,
                    alarm=self.alarm,
                    alpha=self.alpha,
                    dataset_share=self.dataset_share,
                )
            )
        return DriftSeries(windows, reports)
