"""The simulated processes and faults of ``alerting_bench.py``: seeded NumPy generators of
model-months, a fault injected on request (never downloaded data).

Each process is a function ``generate(instance, month, start, days, injection)``: ``instance``
fixes the model's own process (levels, spreads, autocorrelations, the label's relation),
``month`` the noise, so a fault month is a clean month of the same instance with one fault
injected. Every random draw is made before the fault is applied, so the rows before the fault
are the clean month's, bit for bit.

Only the standard library is imported at module level, so the NannyML worker (which runs the
benchmark inside the peer's venv) can import it too.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, Final

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence

    import numpy as np
    import polars as pl

SEED: Final = 20_250_301
STUCK_HOURS: Final = 6
NULL_HOURS: Final = 6
RAMP_DAYS: Final = 5
RAMP_SD: Final = 2.0


# ---------------------------------------------------------------------------------------------
# Faults


@dataclass(frozen=True)
class Fault:
    """One kind of fault injected into a month: ``kind`` says how, ``size`` how much."""

    key: str
    kind: str
    size: float
    label: str


FAULTS: Final = (
    Fault("step_0.5", "step", 0.5, "step 0.5 sd"),
    Fault("step_1", "step", 1.0, "step 1 sd"),
    Fault("step_2", "step", 2.0, "step 2 sd"),
    Fault("ramp", "ramp", RAMP_SD, f"ramp +{RAMP_SD:g} sd / {RAMP_DAYS} d"),
    Fault("variance", "variance", 2.0, "sd x 2"),
    Fault("stuck", "stuck", STUCK_HOURS, f"stuck {STUCK_HOURS} h"),
    Fault("unit_change", "unit_change", 1.8, "unit °C->°F"),
    Fault("nulls", "nulls", NULL_HOURS, f"nulls {NULL_HOURS} h"),
    Fault("category", "category", 0.5, "category share"),
    Fault("concept", "concept", 0.5, "concept (labels +2 d)"),
)
FAULT_BY_KEY: Final = {f.key: f for f in FAULTS}


@dataclass(frozen=True)
class Injection:
    """A fault placed in a month: its column, start and the reference's mean and standard
    deviation of that column (a step of 1 sd is one ``sd`` of the reference's marginal)."""

    fault: Fault
    column: str
    at: datetime
    mean: float
    sd: float

    def start_index(self, timestamps_us: np.ndarray) -> int:
        """The first row at or after the fault's start."""
        import numpy as np

        at_us = (self.at - datetime(1970, 1, 1, tzinfo=UTC)) // timedelta(microseconds=1)
        return int(np.searchsorted(timestamps_us, at_us))


# ---------------------------------------------------------------------------------------------
# The processes


@dataclass(frozen=True)
class Process:
    """A simulated process: its columns, roles, the columns its faults go into and its
    generator ``generate(instance, month, start, days, injection) -> frame``."""

    name: str
    kind: str  # "binary", "multiclass" or "regression"
    roles: dict[str, str]
    target: str
    outputs: tuple[str, ...]  # the model's output columns: score(s) and prediction
    fault_columns: dict[str, str]  # fault kind -> column; "" the default
    category: str | None  # the categorical column whose shares shift
    skip: tuple[str, ...]  # columns neither tool drifts (ids)
    generate: Callable[[int, int, datetime, int, Injection | None], pl.DataFrame]

    def column_for(self, kind: str) -> str:
        if kind == "category":
            return self.category or ""
        return self.fault_columns.get(kind, self.fault_columns[""])

    def faults(self) -> list[Fault]:
        """The faults that fit this process (no share shift without a categorical column)."""
        return [f for f in FAULTS if f.kind != "category" or self.category is not None]


def _rng(*key: int) -> np.random.Generator:
    import numpy as np

    return np.random.default_rng([SEED, *key])


def _ar1(rng: np.random.Generator, n: int, phi: float, sd: float) -> np.ndarray:
    """A stationary AR(1) series of ``n`` values: coefficient ``phi``, marginal sd ``sd``."""
    import numpy as np
    from scipy.signal import lfilter

    innovations = rng.normal(0.0, sd * math.sqrt(1.0 - phi * phi), n)
    innovations[0] = rng.normal(0.0, sd)
    return np.asarray(lfilter([1.0], [1.0, -phi], innovations))


def _sigmoid(x: np.ndarray) -> np.ndarray:
    import numpy as np

    return np.asarray(0.5 * (1.0 + np.tanh(0.5 * x)))


def _clock(rng: np.random.Generator, start: datetime, days: int) -> tuple[np.ndarray, np.ndarray]:
    """A row a minute (with a jitter of up to 12 s) for ``days`` days from ``start``: epoch
    microseconds and the hour of the day (fractional, UTC)."""
    import numpy as np

    n = days * 1440
    offsets = (np.arange(n) + rng.uniform(-0.2, 0.2, n)) * 60.0
    start_us = (start - datetime(1970, 1, 1, tzinfo=UTC)) // timedelta(microseconds=1)
    epoch_us = start_us + np.round(offsets * 1e6).astype(np.int64)
    hour = (epoch_us / 3.6e9) % 24.0
    return epoch_us, hour


def _runs(rng: np.random.Generator, n: int, mean_rows: float) -> tuple[np.ndarray, np.ndarray]:
    """Runs of rows (a product made for a while): each row's run and one uniform draw per run
    (which category the run makes comes from it and the shares in force when it starts)."""
    import numpy as np

    lengths = rng.geometric(1.0 / mean_rows, n)
    first = np.concatenate(([0], np.cumsum(lengths)[:-1]))
    run = np.searchsorted(first, np.arange(n), side="right") - 1
    return run, rng.random(n)[run]


PRODUCTS: Final = ("P1", "P2", "P3", "P4")
PRODUCT_SHARES: Final = (0.45, 0.30, 0.15, 0.10)


def _shares_after(shares: Sequence[float], size: float) -> list[float]:
    """The shares after the share shift: the second most common category takes ``size`` of the
    most common one's share."""
    out = list(shares)
    order = sorted(range(len(out)), key=lambda i: -out[i])
    moved = out[order[0]] * size
    out[order[0]] -= moved
    out[order[1]] += moved
    return out


def _products(
    rng: np.random.Generator, n: int, epoch_us: np.ndarray, injection: Injection | None
) -> np.ndarray:
    """The product of each row (runs of about 45 rows), codes into ``PRODUCTS``; a share shift
    changes what the runs starting after the fault make."""
    import numpy as np

    run, u = _runs(rng, n, 45.0)
    cuts = np.cumsum(PRODUCT_SHARES)[:-1]
    codes = np.searchsorted(cuts, u, side="right")
    if injection is not None and injection.fault.kind == "category":
        start = injection.start_index(epoch_us)
        after = run >= run[min(start, n - 1)]
        shifted = np.cumsum(_shares_after(PRODUCT_SHARES, injection.fault.size))[:-1]
        codes = np.where(after, np.searchsorted(shifted, u, side="right"), codes)
    return np.asarray(codes)


def _process_fault(
    values: np.ndarray, start: int, injection: Injection | None, column: str
) -> None:
    """Faults of the real process, in place: steps and the ramp (the label follows them)."""
    import numpy as np

    if injection is None or injection.column != column:
        return
    fault = injection.fault
    if fault.kind == "step":
        values[start:] += fault.size * injection.sd
    elif fault.kind == "ramp":
        minutes = np.arange(values.size - start, dtype=np.float64)
        values[start:] += (
            np.clip(minutes / (RAMP_DAYS * 1440), 0.0, 1.0) * fault.size * (injection.sd)
        )


def _sensor_fault(
    values: np.ndarray, start: int, injection: Injection | None, column: str, rows_per_hour: float
) -> None:
    """Faults of the reading, in place (the label does not follow them, the model's score
    does): variance, stuck, unit change, nulls."""
    import numpy as np

    if injection is None or injection.column != column:
        return
    fault = injection.fault
    if fault.kind == "variance":
        values[start:] = injection.mean + fault.size * (values[start:] - injection.mean)
    elif fault.kind == "stuck":
        values[start : start + int(fault.size * rows_per_hour)] = values[max(start - 1, 0)]
    elif fault.kind == "unit_change":
        values[start:] = values[start:] * fault.size + 32.0
    elif fault.kind == "nulls":
        values[start : start + int(fault.size * rows_per_hour)] = np.nan


def _relabel(
    labels: np.ndarray, start: int, injection: Injection | None, key: Sequence[int]
) -> None:
    """Concept drift, in place: from the fault on, a share ``size`` of the labels are shuffled
    among themselves (their base rate stays; their relation to the features weakens)."""
    if injection is None or injection.fault.kind != "concept" or start >= labels.size:
        return
    rng = _rng(*key, 99)
    rows = (
        start
        + rng.permutation(labels.size - start)[: int(injection.fault.size * (labels.size - start))]
    )
    labels[rows] = labels[rng.permutation(rows)]


def _frame(
    epoch_us: np.ndarray, columns: dict[str, Any], keep: np.ndarray | None = None
) -> pl.DataFrame:
    import numpy as np
    import polars as pl

    keep = np.ones(epoch_us.size, dtype=bool) if keep is None else keep
    series = [
        pl.Series("timestamp", epoch_us[keep]).cast(pl.Datetime("us")).dt.replace_time_zone("UTC")
    ]
    for name, values in columns.items():
        values = np.asarray(values)[keep]
        if values.dtype.kind == "f":
            series.append(pl.Series(name, values, nan_to_null=True))
        else:
            series.append(pl.Series(name, values))
    return pl.DataFrame(series)


def _z(values: np.ndarray, mean: float, sd: float) -> np.ndarray:
    """Standardized values; a missing reading counts as the mean (what the model imputes)."""
    import numpy as np

    return np.asarray(np.nan_to_num((values - mean) / sd, nan=0.0))


AR_SENSORS: Final = (
    "temp_c",
    "pressure_bar",
    "flow_l_min",
    "vibration_mm_s",
    "level_pct",
    "current_a",
)
AR_MEANS: Final = (60.0, 5.0, 120.0, 2.5, 50.0, 16.0)
AR_SDS: Final = (2.0, 0.3, 8.0, 0.4, 6.0, 1.5)


def _ar_sensors(
    instance: int, month: int, start: datetime, days: int, injection: Injection | None
) -> pl.DataFrame:
    """Six AR(1) sensors a minute apart and a binary classifier of them."""
    import numpy as np

    own = _rng(0, instance)  # the model's own process: levels, spreads, autocorrelations
    phis = own.permutation(np.linspace(0.0, 0.95, len(AR_SENSORS)))
    means = np.asarray(AR_MEANS) * own.uniform(0.9, 1.1, len(AR_SENSORS))
    sds = np.asarray(AR_SDS) * own.uniform(0.8, 1.25, len(AR_SENSORS))
    weights = own.normal(0.0, 0.7, len(AR_SENSORS))
    weights[0] = 1.2
    rng = _rng(0, instance, month)
    epoch_us, _ = _clock(rng, start, days)
    n = epoch_us.size
    noise = [_ar1(rng, n, float(phi), 1.0) for phi in phis]
    draw = rng.random(n)
    at = injection.start_index(epoch_us) if injection is not None else n
    real = {name: means[i] + sds[i] * noise[i] for i, name in enumerate(AR_SENSORS)}
    for name, values in real.items():
        _process_fault(values, at, injection, name)
    z = [_z(real[name], means[i], sds[i]) for i, name in enumerate(AR_SENSORS)]
    logit = -2.3 + sum(w * zi for w, zi in zip(weights, z, strict=True)) + 0.6 * z[0] * z[1]
    label = (draw < _sigmoid(logit)).astype(np.int8)
    readings = {name: values.copy() for name, values in real.items()}
    for name, values in readings.items():
        _sensor_fault(values, at, injection, name, 60.0)
    zr = [_z(readings[name], means[i], sds[i]) for i, name in enumerate(AR_SENSORS)]
    score = _sigmoid(-2.1 + sum(w * zi for w, zi in zip(weights, zr, strict=True)))
    _relabel(label, at, injection, (0, instance, month))
    return _frame(
        epoch_us,
        {**readings, "score": score, "prediction": (score >= 0.5).astype(np.int8), "label": label},
    )


def _shift_of(hour: np.ndarray) -> np.ndarray:
    """The operator shift of each row: A 06-14, B 14-22, C 22-06 (UTC)."""
    import numpy as np

    return np.where((hour >= 6) & (hour < 14), "A", np.where((hour >= 14) & (hour < 22), "B", "C"))


def _daily_cycle(
    instance: int, month: int, start: datetime, days: int, injection: Injection | None
) -> pl.DataFrame:
    """Sensors with a daily cycle, a night shift that idles (a third of the rows from 22:00 to
    06:00), the shift, a product made in runs, and a binary classifier."""
    import numpy as np

    own = _rng(1, instance)
    temp_mean, ambient_mean = 60.0 * own.uniform(0.95, 1.05), 18.0 + own.uniform(-3.0, 3.0)
    load_mean, phi = 40.0 * own.uniform(0.8, 1.2), own.uniform(0.6, 0.95)
    effects = own.normal(0.0, 0.5, len(PRODUCTS))
    rng = _rng(1, instance, month)
    epoch_us, hour = _clock(rng, start, days)
    n = epoch_us.size
    night = (hour >= 22) | (hour < 6)
    keep = ~night | (rng.random(n) < 1.0 / 3.0)
    cycle = np.sin(2.0 * np.pi * (hour - 9.0) / 24.0)
    ambient = ambient_mean + 5.0 * cycle + _ar1(rng, n, 0.995, 1.0)
    load = load_mean * np.where(night, 0.4, 1.0) + _ar1(rng, n, 0.7, 3.0)
    temp = temp_mean + 0.4 * (ambient - ambient_mean) + 0.08 * (load - load_mean)
    temp += _ar1(rng, n, phi, 1.2)
    pressure = 3.0 + _ar1(rng, n, 0.3, 0.2)
    products = _products(rng, n, epoch_us, injection)
    draw = rng.random(n)
    at = injection.start_index(epoch_us) if injection is not None else n
    real = {"ambient_c": ambient, "load_kw": load, "temp_c": temp, "pressure_bar": pressure}
    for name, values in real.items():
        _process_fault(values, at, injection, name)
    zt, zl = _z(real["temp_c"], temp_mean, 2.0), _z(real["load_kw"], 0.7 * load_mean, 12.0)
    logit = -2.0 + 1.0 * zt + 0.5 * zl + effects[products] + 0.4 * zt * zt
    label = (draw < _sigmoid(logit)).astype(np.int8)
    readings = {name: values.copy() for name, values in real.items()}
    for name, values in readings.items():
        _sensor_fault(values, at, injection, name, 60.0)
    ztr = _z(readings["temp_c"], temp_mean, 2.0)
    zlr = _z(readings["load_kw"], 0.7 * load_mean, 12.0)
    score = _sigmoid(-1.6 + 1.0 * ztr + 0.5 * zlr + effects[products])
    _relabel(label, at, injection, (1, instance, month))
    columns = {
        **readings,
        "shift": _shift_of(hour),
        "product": np.asarray(PRODUCTS)[products],
        "score": score,
        "prediction": (score >= 0.5).astype(np.int8),
        "label": label,
    }
    return _frame(epoch_us, columns, keep)


MC_SENSORS: Final = ("temp_c", "pressure_bar", "flow_l_min", "speed_m_min")
MC_MEANS: Final = (60.0, 5.0, 120.0, 20.0)
MC_SDS: Final = (2.0, 0.3, 8.0, 1.5)
CLASSES: Final = ("low", "mid", "high")


def _multiclass(
    instance: int, month: int, start: datetime, days: int, injection: Injection | None
) -> pl.DataFrame:
    """Four AR(1) sensors, a product, and a three-class (ordered) classifier of them."""
    import numpy as np

    own = _rng(3, instance)
    means = np.asarray(MC_MEANS) * own.uniform(0.9, 1.1, len(MC_SENSORS))
    sds = np.asarray(MC_SDS) * own.uniform(0.8, 1.25, len(MC_SENSORS))
    phis = own.uniform(0.3, 0.95, len(MC_SENSORS))
    weights = own.normal(0.0, 0.6, len(MC_SENSORS))
    weights[0] = 1.0
    effects = own.normal(0.0, 0.4, len(PRODUCTS))
    rng = _rng(3, instance, month)
    epoch_us, _ = _clock(rng, start, days)
    n = epoch_us.size
    noise = [_ar1(rng, n, float(phi), 1.0) for phi in phis]
    products = _products(rng, n, epoch_us, injection)
    draw = rng.random(n)
    at = injection.start_index(epoch_us) if injection is not None else n
    real = {name: means[i] + sds[i] * noise[i] for i, name in enumerate(MC_SENSORS)}
    for name, values in real.items():
        _process_fault(values, at, injection, name)
    z = [_z(real[name], means[i], sds[i]) for i, name in enumerate(MC_SENSORS)]
    eta = sum(w * zi for w, zi in zip(weights, z, strict=True)) + effects[products]
    eta = eta + 0.5 * z[0] * z[1]
    low, upto_mid = _sigmoid(-0.7 - eta), _sigmoid(0.9 - eta)
    label = np.where(draw < low, 0, np.where(draw < upto_mid, 1, 2))
    readings = {name: values.copy() for name, values in real.items()}
    for name, values in readings.items():
        _sensor_fault(values, at, injection, name, 60.0)
    zr = [_z(readings[name], means[i], sds[i]) for i, name in enumerate(MC_SENSORS)]
    eta_model = sum(w * zi for w, zi in zip(weights, zr, strict=True)) + effects[products]
    low_m, upto_mid_m = _sigmoid(-0.7 - eta_model), _sigmoid(0.9 - eta_model)
    probas = np.stack([low_m, upto_mid_m - low_m, 1.0 - upto_mid_m], axis=1)
    _relabel(label, at, injection, (3, instance, month))
    names = np.asarray(CLASSES)
    columns = {
        **readings,
        "product": np.asarray(PRODUCTS)[products],
        **{f"proba_{c}": probas[:, i] for i, c in enumerate(CLASSES)},
        "prediction": names[probas.argmax(axis=1)],
        "label": names[label],
    }
    return _frame(epoch_us, columns)


RG_SENSORS: Final = ("temp_c", "pressure_bar", "flow_l_min", "speed_m_min", "level_pct")
RG_MEANS: Final = (60.0, 5.0, 120.0, 20.0, 50.0)
RG_SDS: Final = (2.0, 0.3, 8.0, 1.5, 6.0)


def _regressor(
    instance: int, month: int, start: datetime, days: int, injection: Injection | None
) -> pl.DataFrame:
    """Five AR(1) sensors, a product, a numeric target and a slightly mis-specified model's
    prediction of it (it misses the curvature in the first sensor)."""
    import numpy as np

    own = _rng(4, instance)
    means = np.asarray(RG_MEANS) * own.uniform(0.9, 1.1, len(RG_SENSORS))
    sds = np.asarray(RG_SDS) * own.uniform(0.8, 1.25, len(RG_SENSORS))
    phis = own.permutation(np.linspace(0.2, 0.95, len(RG_SENSORS)))
    weights = np.asarray([4.0, 2.5, -2.0, 1.5, 0.5]) * own.uniform(0.7, 1.3, len(RG_SENSORS))
    effects = own.normal(0.0, 1.0, len(PRODUCTS))
    rng = _rng(4, instance, month)
    epoch_us, _ = _clock(rng, start, days)
    n = epoch_us.size
    noise = [_ar1(rng, n, float(phi), 1.0) for phi in phis]
    products = _products(rng, n, epoch_us, injection)
    residual = rng.normal(0.0, 2.0, n)
    at = injection.start_index(epoch_us) if injection is not None else n
    real = {name: means[i] + sds[i] * noise[i] for i, name in enumerate(RG_SENSORS)}
    for name, values in real.items():
        _process_fault(values, at, injection, name)
    z = [_z(real[name], means[i], sds[i]) for i, name in enumerate(RG_SENSORS)]
    linear = sum(w * zi for w, zi in zip(weights, z, strict=True))
    target = 50.0 + linear + 1.2 * (z[0] * z[0] - 1.0) + effects[products] + residual
    readings = {name: values.copy() for name, values in real.items()}
    for name, values in readings.items():
        _sensor_fault(values, at, injection, name, 60.0)
    zr = [_z(readings[name], means[i], sds[i]) for i, name in enumerate(RG_SENSORS)]
    prediction = 50.0 + sum(w * zi for w, zi in zip(weights, zr, strict=True)) + effects[products]
    _relabel(target, at, injection, (4, instance, month))
    columns = {
        **readings,
        "product": np.asarray(PRODUCTS)[products],
        "prediction": prediction,
        "label": target,
    }
    return _frame(epoch_us, columns)


def _batch_recipes(
    instance: int, month: int, start: datetime, days: int, injection: Injection | None
) -> pl.DataFrame:
    """``production_line`` at a 60 s cadence; steps and the ramp are its ``Drift`` (the real
    process moves, the label follows), stuck and unit change its sensor faults; sd x 2 and the
    nulls change the recorded column (the score, computed inside the generator, does not
    follow them); the share shift moves half of line L1's batches to L2 from the fault on."""
    import numpy as np
    import polars as pl

    from mlwarden.datasets import Drift, StuckSensor, UnitChange, production_line

    faults: list[Any] = []
    at = days * 1440
    if injection is not None:
        at = int((injection.at - start).total_seconds() // 60)
        kind, column, size = injection.fault.kind, injection.column, injection.fault.size
        if kind == "step":
            faults.append(Drift(column, at, size * injection.sd, ramp_rows=1))
        elif kind == "ramp":
            faults.append(Drift(column, at, size * injection.sd, ramp_rows=RAMP_DAYS * 1440))
        elif kind == "stuck":
            faults.append(StuckSensor(column, at, int(size * 60)))
        elif kind == "unit_change":
            faults.append(UnitChange(column, at, size, 32.0))
    frame = production_line(
        days * 1440,
        seed=SEED + 1000 * instance + month,
        start=start,
        freq_seconds=60.0,
        faults=faults,
    )
    if injection is None or injection.fault.kind not in (
        "variance",
        "nulls",
        "category",
        "concept",
    ):
        return frame
    kind, column, size = injection.fault.kind, injection.column, injection.fault.size
    after = pl.int_range(pl.len()) >= at
    if kind == "variance":
        moved = injection.mean + size * (pl.col(column) - injection.mean)
        return frame.with_columns(
            pl.when(after).then(moved).otherwise(pl.col(column)).alias(column)
        )
    if kind == "nulls":
        during = after & (pl.int_range(pl.len()) < at + int(size * 60))
        return frame.with_columns(
            pl.when(during).then(None).otherwise(pl.col(column)).alias(column)
        )
    if kind == "category":
        batches = frame["batch_id"][at:].unique().sort().to_numpy()
        chosen = batches[_rng(2, instance, month, 98).random(batches.size) < size]
        moved = after & (pl.col("line") == "L1") & pl.col("batch_id").is_in(chosen.tolist())
        dtype = frame.schema["line"]
        return frame.with_columns(
            pl.when(moved).then(pl.lit("L2", dtype=dtype)).otherwise(pl.col("line")).alias("line")
        )
    labels = frame["defect"].to_numpy().copy()
    _relabel(labels, at, injection, (2, instance, month))
    return frame.with_columns(pl.Series("defect", labels.astype(np.int8)))


BINARY_ROLES: Final = {"label": "target", "score": "score", "prediction": "prediction"}
PROCESSES: Final = (
    Process(
        name="ar_sensors",
        kind="binary",
        roles=BINARY_ROLES,
        target="label",
        outputs=("score", "prediction"),
        fault_columns={"": "temp_c"},
        category=None,
        skip=(),
        generate=_ar_sensors,
    ),
    Process(
        name="daily_cycle",
        kind="binary",
        roles=BINARY_ROLES,
        target="label",
        outputs=("score", "prediction"),
        fault_columns={"": "temp_c"},
        category="product",
        skip=(),
        generate=_daily_cycle,
    ),
    Process(
        name="batch_recipes",
        kind="binary",
        roles={"defect": "target", "defect_score": "score", "prediction": "prediction"},
        target="defect",
        outputs=("defect_score", "prediction"),
        # The recipes explain 99 % of the temperature's variance: a step of its marginal sd
        # would be a new recipe, so the steps, the ramp and sd x 2 go into the humidity.
        fault_columns={
            "": "humidity_pct",
            "stuck": "temperature_c",
            "unit_change": "temperature_c",
            "nulls": "temperature_c",
        },
        category="line",
        skip=("batch_id",),
        generate=_batch_recipes,
    ),
    Process(
        name="multiclass",
        kind="multiclass",
        roles={
            "label": "target",
            "prediction": "prediction",
            **{f"proba_{c}": "score" for c in CLASSES},
        },
        target="label",
        outputs=(*(f"proba_{c}" for c in CLASSES), "prediction"),
        fault_columns={"": "temp_c"},
        category="product",
        skip=(),
        generate=_multiclass,
    ),
    Process(
        name="regressor",
        kind="regression",
        roles={"label": "target", "prediction": "prediction"},
        target="label",
        outputs=("prediction",),
        fault_columns={"": "temp_c"},
        category="product",
        skip=(),
        generate=_regressor,
    ),
)
PROCESS_BY_NAME: Final = {p.name: p for p in PROCESSES}
