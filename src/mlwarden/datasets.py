"""Realistic industrial example data, generated on the spot (never downloaded).

:func:`production_line` simulates the process log of a plastics extrusion plant: a sensor reading
every few seconds, production batches of one recipe on one line, a quality label (``defect``)
that follows from the physics, and the score of a model that predicts it. Faults that mlwarden
detects (stuck sensors, spikes, unit changes, gaps, drift) are injected on request, so examples,
tests and benchmarks can show a detector firing exactly where the fault is.

Everything is vectorized NumPy and seeded: the same arguments give the same frame, bit for bit.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Final

import numpy as np
import polars as pl
from numpy.typing import NDArray
from scipy.signal import lfilter

from mlwarden.exceptions import ParameterError

if TYPE_CHECKING:
    from collections.abc import Sequence

__all__ = [
    "SENSOR_COLUMNS",
    "Drift",
    "Fault",
    "Gap",
    "Spike",
    "StuckSensor",
    "UnitChange",
    "production_line",
]

Floats = NDArray[np.float64]
Ints = NDArray[np.int64]
Bools = NDArray[np.bool_]

SENSOR_COLUMNS: Final = (
    "temperature_c",
    "pressure_bar",
    "vibration_mm_s",
    "line_speed_m_min",
    "humidity_pct",
)
"""The numeric sensor columns of :func:`production_line`; faults can be injected into these."""

_LINES: Final = ("L1", "L2", "L3")
_LINE_SHARES: Final = (0.45, 0.35, 0.20)
_SHIFTS: Final = ("A", "B", "C")

# Per recipe: share of batches, melt temperature (°C), melt pressure (bar), line speed
# (m/min), and how strongly ambient humidity causes defects (polyamide and ABS absorb water).
_RECIPES: Final = ("PP-H100", "PP-C200", "PE-LD30", "PE-HD50", "PA6-GF30", "ABS-X10")
_RECIPE_SHARES: Final = (0.30, 0.22, 0.18, 0.14, 0.10, 0.06)
_SETPOINT_TEMPERATURE: Final = np.array([230.0, 225.0, 190.0, 215.0, 275.0, 235.0])
_SETPOINT_PRESSURE: Final = np.array([140.0, 150.0, 110.0, 160.0, 210.0, 175.0])
_SETPOINT_SPEED: Final = np.array([24.0, 22.0, 30.0, 18.0, 12.0, 16.0])
_HUMIDITY_SENSITIVITY: Final = np.array([0.0, 0.0, 0.0, 0.0, 1.0, 0.5])

_MEAN_BATCH_ROWS: Final = 360.0
_MIN_BATCH_ROWS: Final = 30
_HUMIDITY_DROPOUT: Final = 0.005
_SECONDS_PER_DAY: Final = 86_400
_EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)


@dataclass(frozen=True)
class Fault:
    """A fault injected into :func:`production_line` data; each subclass is one kind of fault.

    Row numbers count the rows as generated, before any :class:`Gap` removes some.
    """

    def _check(self, n_rows: int) -> None:
        """Raise :class:`ParameterError` if the fault does not fit in ``n_rows`` rows."""

    def _shift_process(self, column: str, values: Floats) -> None:
        """Change the real process value of ``column`` in place (before the label is drawn)."""

    def _corrupt_reading(self, readings: dict[str, Floats]) -> None:
        """Change what the sensors report, in place (after the label is drawn)."""

    def _drop_rows(self, keep: Bools) -> None:
        """Clear ``keep`` for rows that never reach the log."""


def _check_span(fault: Fault, start: int, n: int, n_rows: int) -> None:
    if start < 0 or n < 1 or start + n > n_rows:
        raise ParameterError(
            f"{fault!r} covers rows {start}..{start + n - 1}, but the data has rows "
            f"0..{n_rows - 1}. Choose rows inside the data or generate more rows.",
            parameter="faults",
        )


@dataclass(frozen=True)
class _ColumnFault(Fault):
    column: str

    def __post_init__(self) -> None:
        if self.column not in SENSOR_COLUMNS:
            raise ParameterError(
                f"{type(self).__name__} cannot target column {self.column!r}: faults go into a "
                f"sensor column, one of {', '.join(SENSOR_COLUMNS)}.",
                parameter="column",
            )


@dataclass(frozen=True)
class StuckSensor(_ColumnFault):
    """The sensor repeats its last reading for ``n_rows`` rows from ``start_row`` (flat line)."""

    start_row: int
    n_rows: int

    def _check(self, n_rows: int) -> None:
        _check_span(self, self.start_row, self.n_rows, n_rows)

    def _corrupt_reading(self, readings: dict[str, Floats]) -> None:
        values = readings[self.column]
        held = _last_reading(values, self.start_row)
        values[self.start_row : self.start_row + self.n_rows] = held


@dataclass(frozen=True)
class Spike(_ColumnFault):
    """One reading at ``row`` is off by ``magnitude`` (in the column's unit)."""

    row: int
    magnitude: float

    def _check(self, n_rows: int) -> None:
        _check_span(self, self.row, 1, n_rows)

    def _corrupt_reading(self, readings: dict[str, Floats]) -> None:
        values = readings[self.column]
        values[self.row] = _last_reading(values, self.row) + self.magnitude


@dataclass(frozen=True)
class UnitChange(_ColumnFault):
    """From ``start_row`` on, readings arrive as ``value * factor + offset`` (°C→°F: 1.8, 32)."""

    start_row: int
    factor: float
    offset: float = 0.0

    def _check(self, n_rows: int) -> None:
        _check_span(self, self.start_row, 1, n_rows)

    def _corrupt_reading(self, readings: dict[str, Floats]) -> None:
        values = readings[self.column]
        values[self.start_row :] = values[self.start_row :] * self.factor + self.offset


@dataclass(frozen=True)
class Drift(_ColumnFault):
    """The real process mean ramps linearly by ``shift`` from ``start_row`` on.

    The ramp ends ``ramp_rows`` rows later (default: at the last row) and holds from there.
    Unlike the sensor faults, drift changes the process itself, so the defect rate responds.
    """

    start_row: int
    shift: float
    ramp_rows: int | None = None

    def _check(self, n_rows: int) -> None:
        _check_span(self, self.start_row, 1, n_rows)
        if self.ramp_rows is not None and self.ramp_rows < 1:
            raise ParameterError(
                f"The 'ramp_rows' parameter of Drift must be an int >= 1 or None; "
                f"got {self.ramp_rows}.",
                parameter="ramp_rows",
            )

    def _shift_process(self, column: str, values: Floats) -> None:
        if column != self.column:
            return
        ramp_rows = self.ramp_rows or max(values.size - 1 - self.start_row, 1)
        rows = np.arange(values.size, dtype=np.float64)
        values += np.clip((rows - self.start_row) / ramp_rows, 0.0, 1.0) * self.shift


@dataclass(frozen=True)
class Gap(Fault):
    """Rows ``start_row`` .. ``start_row + n_rows - 1`` never reach the log (a hole in time)."""

    start_row: int
    n_rows: int

    def _check(self, n_rows: int) -> None:
        _check_span(self, self.start_row, self.n_rows, n_rows)

    def _drop_rows(self, keep: Bools) -> None:
        keep[self.start_row : self.start_row + self.n_rows] = False


def _last_reading(values: Floats, row: int) -> float:
    """The reading at ``row``, or the latest non-null one before it."""
    seen = values[: row + 1]
    seen = seen[~np.isnan(seen)]
    return float(seen[-1]) if seen.size else float(np.nanmedian(values))


def _ar1(rng: np.random.Generator, n: int, phi: float, std: float) -> Floats:
    """A stationary AR(1) series: coefficient ``phi``, marginal standard deviation ``std``."""
    innovations = rng.normal(0.0, std * np.sqrt(1.0 - phi * phi), n)
    # Start in the stationary distribution, so the beginning looks like the rest.
    innovations[0] = rng.normal(0.0, std)
    series: Floats = lfilter([1.0], [1.0, -phi], innovations)
    return series


def _sigmoid(x: Floats) -> Floats:
    result: Floats = 0.5 * (1.0 + np.tanh(0.5 * x))
    return result


def production_line(
    n_rows: int = 50_000,
    *,
    seed: int = 0,
    start: datetime | None = None,
    freq_seconds: float = 10.0,
    faults: Sequence[Fault] = (),
) -> pl.DataFrame:
    """Generate the process log of a plastics extrusion plant, with optional injected faults.

    Each row is one reading of the plant, every ``freq_seconds`` with a little jitter. Rows
    belong to production batches (``batch_id``, a few hundred rows each) of one ``recipe`` on one
    ``line``. The melt temperature follows the recipe's setpoint with a daily cycle, slow drift
    and AR(1) noise, and is low while a batch starts up; pressure, line speed, vibration (with
    occasional bursts) and ambient humidity (about 0.5 % nulls from sensor dropouts) follow.
    ``operator_shift`` is A (06-14 UTC), B (14-22) or C (22-06). ``defect`` (about 5 %) is drawn
    from a logistic function of the real signals; ``defect_score`` is the probability given by a
    slightly mis-specified model of the recorded signals (ROC AUC about 0.85, calibrated), and
    ``prediction`` is ``defect_score >= 0.5``.

    Faults change what the sensors report but not the real process, so the label does not
    follow them, while the model score does. :class:`Drift` is the exception: it moves the real
    process. A :class:`Gap` removes rows, so the frame is shorter than ``n_rows``.

    Parameters:
        n_rows: Number of rows generated (before any :class:`Gap`); at least 1.
        seed: Seed of the random generator; the same arguments give an identical frame.
        start: Time of the first row, timezone-aware (default 2024-01-01 00:00 UTC).
        freq_seconds: Seconds between readings; positive.
        faults: Faults to inject, applied in order; rows count as generated.

    Returns:
        A Polars DataFrame with the columns ``timestamp`` (UTC), ``batch_id``, ``line``,
        ``recipe``, the :data:`SENSOR_COLUMNS`, ``operator_shift``, ``defect``,
        ``defect_score`` and ``prediction``.

    Examples:
        >>> from mlwarden.datasets import production_line
        >>> df = production_line(1_000, seed=7)
        >>> df.shape
        (1000, 13)
        >>> df.equals(production_line(1_000, seed=7))
        True

        A stuck temperature sensor repeats one reading for 50 rows:

        >>> from mlwarden.datasets import StuckSensor
        >>> df = production_line(1_000, seed=7, faults=(StuckSensor("temperature_c", 200, 50),))
        >>> df["temperature_c"][200:250].n_unique()
        1

        A spike of +40 bar in a single pressure reading:

        >>> from mlwarden.datasets import Spike
        >>> clean = production_line(1_000, seed=7)
        >>> df = production_line(1_000, seed=7, faults=(Spike("pressure_bar", 500, 40.0),))
        >>> round(df["pressure_bar"][500] - clean["pressure_bar"][500], 6)
        40.0

        From row 600 on the temperature arrives in °F instead of °C:

        >>> from mlwarden.datasets import UnitChange
        >>> df = production_line(1_000, seed=7, faults=(UnitChange("temperature_c", 600, 1.8, 32),))
        >>> bool(df["temperature_c"][600:].mean() > 350)
        True

        Ten minutes (60 rows at 10 s) never reach the log:

        >>> from mlwarden.datasets import Gap
        >>> df = production_line(1_000, seed=7, faults=(Gap(300, 60),))
        >>> df.height, df["timestamp"].diff().max().total_seconds() > 600
        (940, True)

        The melt temperature drifts up by 15 °C over the second half:

        >>> from mlwarden.datasets import Drift
        >>> df = production_line(1_000, seed=7, faults=(Drift("temperature_c", 500, 15.0),))
        >>> diff = df["temperature_c"][900:].mean() - clean["temperature_c"][900:].mean()
        >>> bool(12 < diff < 15)
        True
    """
    faults = tuple(faults)
    _check_arguments(n_rows, freq_seconds, start, faults)
    start = datetime(2024, 1, 1, tzinfo=UTC) if start is None else start.astimezone(UTC)
    rng = np.random.default_rng(seed)
    clock = _Clock.draw(rng, n_rows, start, freq_seconds)
    batches = _Batches.draw(rng, n_rows)
    real = _real_process(rng, clock, batches, faults)
    defect = rng.random(n_rows) < _defect_probability(rng, real, batches)
    readings = _readings(rng, real, faults)
    score = _model_score(readings, batches)

    keep = np.ones(n_rows, dtype=np.bool_)
    for fault in faults:
        fault._drop_rows(keep)

    def enum_column(name: str, categories: tuple[str, ...], codes: Ints) -> pl.Series:
        return pl.Series(name, categories, dtype=pl.Enum(categories)).gather(codes[keep])

    timestamp = (
        pl.Series("timestamp", clock.epoch_us[keep])
        .cast(pl.Datetime("us"))
        .dt.replace_time_zone("UTC")
    )
    batch_number = pl.Series("batch_id", batches.batch[keep] + 1).cast(pl.String)
    return pl.DataFrame(
        [
            timestamp,
            ("B" + batch_number.str.zfill(6)).alias("batch_id"),
            enum_column("line", _LINES, batches.line),
            enum_column("recipe", _RECIPES, batches.recipe),
            *(pl.Series(name, readings[name][keep], nan_to_null=True) for name in SENSOR_COLUMNS),
            enum_column("operator_shift", _SHIFTS, clock.shift),
            pl.Series("defect", defect[keep].astype(np.int8)),
            pl.Series("defect_score", score[keep]),
            pl.Series("prediction", (score[keep] >= 0.5).astype(np.int8)),
        ]
    )


@dataclass(frozen=True)
class _Clock:
    """When each row is read: epoch microseconds, phase of the day, operator shift."""

    epoch_us: Ints
    day_phase: Floats
    shift: Ints

    @classmethod
    def draw(cls, rng: np.random.Generator, n: int, start: datetime, freq_seconds: float) -> _Clock:
        # A jitter of at most a fifth of the cadence keeps timestamps strictly increasing.
        offsets_s = (np.arange(n) + rng.uniform(-0.2, 0.2, n)) * freq_seconds
        start_us = (start - _EPOCH) // timedelta(microseconds=1)
        epoch_us = start_us + np.round(offsets_s * 1e6).astype(np.int64)
        seconds_of_day = (epoch_us // 1_000_000) % _SECONDS_PER_DAY
        hour = seconds_of_day // 3600
        shift = np.where((hour >= 6) & (hour < 14), 0, np.where((hour >= 14) & (hour < 22), 1, 2))
        return cls(epoch_us, 2.0 * np.pi * seconds_of_day / _SECONDS_PER_DAY, shift)


@dataclass(frozen=True)
class _Batches:
    """Which production batch each row belongs to, with its line, recipe and start-up phase."""

    n_batches: int
    batch: Ints
    line: Ints
    recipe: Ints
    startup: Floats

    @classmethod
    def draw(cls, rng: np.random.Generator, n: int) -> _Batches:
        # Enough batches to cover every row even if all had the minimum length.
        n_batches = n // _MIN_BATCH_ROWS + 1
        lengths = rng.gamma(4.0, _MEAN_BATCH_ROWS / 4.0, n_batches).astype(np.int64)
        first_row = np.concatenate(([0], np.cumsum(np.maximum(lengths, _MIN_BATCH_ROWS))[:-1]))
        rows = np.arange(n)
        batch = np.searchsorted(first_row, rows, side="right") - 1
        line = rng.choice(len(_LINES), n_batches, p=_LINE_SHARES)[batch]
        recipe = rng.choice(len(_RECIPES), n_batches, p=_RECIPE_SHARES)[batch]
        # 1 at a batch's first row, fading out over its first minutes.
        startup = np.exp(-(rows - first_row[batch]) / 20.0)
        return cls(n_batches, batch, line, recipe, startup)

    def per_batch(self, values: Floats) -> Floats:
        """Spread one value per batch over the batch's rows."""
        spread: Floats = values[self.batch]
        return spread


def _real_process(
    rng: np.random.Generator, clock: _Clock, batches: _Batches, faults: tuple[Fault, ...]
) -> dict[str, Floats]:
    """The real values of the sensor columns; each drifts before the next one depends on it."""
    n, n_batches = batches.batch.size, batches.n_batches

    def drifted(column: str, values: Floats) -> Floats:
        for fault in faults:
            fault._shift_process(column, values)
        return values

    sp_temperature = _SETPOINT_TEMPERATURE[batches.recipe]
    sp_pressure = _SETPOINT_PRESSURE[batches.recipe]
    sp_speed = _SETPOINT_SPEED[batches.recipe]
    speed = drifted(
        "line_speed_m_min",
        sp_speed
        * batches.per_batch(rng.normal(1.0, 0.03, n_batches))
        * (1 - 0.35 * batches.startup)
        + rng.normal(0.0, 0.15, n),
    )
    temperature = drifted(
        "temperature_c",
        sp_temperature
        + batches.per_batch(rng.normal(0.0, 1.2, n_batches))
        + np.sin(clock.day_phase - np.pi / 2)
        + _ar1(rng, n, 0.999, 0.8)
        + _ar1(rng, n, 0.9, 0.8)
        - 4.0 * batches.startup,
    )
    # A hotter melt flows more easily; a faster line needs more pressure.
    pressure = drifted(
        "pressure_bar",
        sp_pressure
        + batches.per_batch(rng.normal(0.0, 4.0, n_batches))
        - 1.2 * (temperature - sp_temperature)
        + 2.5 * (speed - sp_speed)
        + _ar1(rng, n, 0.8, 2.5),
    )
    burst_starts = (rng.random(n) < 0.001) * rng.uniform(2.0, 6.0, n)
    bursts: Floats = lfilter([1.0], [1.0, -0.85], burst_starts)
    vibration = drifted(
        "vibration_mm_s",
        1.8
        * np.sqrt(np.maximum(speed, 0.1) / sp_speed)
        * np.exp(_ar1(rng, n, 0.7, 0.2))
        * (1.0 + bursts),
    )
    ambient = 45.0 + 12.0 * np.sin(clock.day_phase) + _ar1(rng, n, 0.999, 6.0)
    humidity = drifted("humidity_pct", np.clip(ambient + rng.normal(0.0, 1.0, n), 5.0, 95.0))
    return {
        "temperature_c": temperature,
        "pressure_bar": pressure,
        "vibration_mm_s": vibration,
        "line_speed_m_min": speed,
        "humidity_pct": humidity,
    }


# Chosen so that about 5 % of rows are defects.
_DEFECT_INTERCEPT: Final = -4.95


def _defect_probability(
    rng: np.random.Generator, real: dict[str, Floats], batches: _Batches
) -> Floats:
    """The chance of a defect, from the real process and a little unobserved noise."""
    dev_temperature = real["temperature_c"] - _SETPOINT_TEMPERATURE[batches.recipe]
    dev_pressure = real["pressure_bar"] - _SETPOINT_PRESSURE[batches.recipe]
    logit = (
        _DEFECT_INTERCEPT
        + 0.22 * dev_temperature**2
        + 1.6 * np.log(np.maximum(real["vibration_mm_s"], 1e-3) / 1.8)
        + 0.004 * dev_pressure**2
        + 0.10 * _HUMIDITY_SENSITIVITY[batches.recipe] * (real["humidity_pct"] - 45.0)
        + 1.0 * batches.startup
        + rng.normal(0.0, 0.5, batches.batch.size)
    )
    return _sigmoid(logit)


def _readings(
    rng: np.random.Generator, real: dict[str, Floats], faults: tuple[Fault, ...]
) -> dict[str, Floats]:
    """What the sensors report: the real values, humidity dropouts (NaN), injected faults."""
    readings = {column: values.copy() for column, values in real.items()}
    humidity = readings["humidity_pct"]
    humidity[rng.random(humidity.size) < _HUMIDITY_DROPOUT] = np.nan
    for fault in faults:
        fault._corrupt_reading(readings)
    return readings


# A logistic regression of ``defect`` on the model's features, fitted on a large seeded sample.
_SCORE_COEFFICIENTS: Final = (-6.23, 1.21, 1.25, 0.08, 0.014)


def _model_score(readings: dict[str, Floats], batches: _Batches) -> Floats:
    """The defect probability of a model that sees only the readings.

    It gets the shape of two effects wrong (linear where the truth is quadratic), ignores the
    start-up phase, and does not know that only some recipes are sensitive to humidity.
    """
    b0, b_temperature, b_vibration, b_pressure, b_humidity = _SCORE_COEFFICIENTS
    logit = (
        b0
        + b_temperature * np.abs(readings["temperature_c"] - _SETPOINT_TEMPERATURE[batches.recipe])
        + b_vibration * np.log(np.maximum(readings["vibration_mm_s"], 1e-3) / 1.8)
        + b_pressure * np.abs(readings["pressure_bar"] - _SETPOINT_PRESSURE[batches.recipe])
        + b_humidity * (np.nan_to_num(readings["humidity_pct"], nan=45.0) - 45.0)
    )
    return _sigmoid(logit)


def _check_arguments(
    n_rows: int, freq_seconds: float, start: datetime | None, faults: tuple[Fault, ...]
) -> None:
    if isinstance(n_rows, bool) or not isinstance(n_rows, int | np.integer) or n_rows < 1:
        raise ParameterError(
            f"The 'n_rows' parameter of production_line must be an int >= 1; got {n_rows!r}.",
            parameter="n_rows",
        )
    if not freq_seconds > 0:
        raise ParameterError(
            f"The 'freq_seconds' parameter of production_line must be a number > 0; "
            f"got {freq_seconds!r}.",
            parameter="freq_seconds",
        )
    if start is not None and start.utcoffset() is None:
        raise ParameterError(
            f"The 'start' parameter of production_line must be timezone-aware; got {start!r}. "
            f"Pass e.g. datetime(2024, 1, 1, tzinfo=UTC).",
            parameter="start",
        )
    for fault in faults:
        if not isinstance(fault, Fault):
            raise ParameterError(
                f"The 'faults' parameter of production_line must hold Fault objects "
                f"(StuckSensor, Spike, UnitChange, Gap, Drift); got {fault!r}.",
                parameter="faults",
            )
        fault._check(n_rows)
