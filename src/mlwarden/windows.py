"""Windows: the rows of one model whose timestamps fall in one interval, or one chunk of N rows.

Every metric in mlwarden is computed per window. :func:`assign_windows` labels each row with its
window, so that a metric is one vectorized ``group_by("window")`` away.
"""

from __future__ import annotations

from dataclasses import dataclass

import polars as pl

from mlwarden.exceptions import ParameterError, check_int
from mlwarden.frames import to_utc

WINDOW = "window"
WINDOW_START = "window_start"
WINDOW_END = "window_end"


@dataclass(frozen=True, slots=True)
class WindowSpec:
    """How rows are cut into windows: by a time interval or by a number of rows.

    Parameters:
        every: a Polars duration string (``"1h"``, ``"1d"``, ``"15m"``, ``"1w"``) for calendar
            windows on ``timestamp``; windows start at multiples of the interval (UTC).
        size: rows per window, in the order given (the last window may be shorter).
        timestamp: the column holding event times, required with ``every``: datetimes, dates,
            ISO 8601 text or epoch numbers, read by :func:`mlwarden.frames.to_utc` (naive
            times are UTC).

    Example:
        >>> import polars as pl
        >>> spec = WindowSpec(size=2)
        >>> assign_windows(pl.DataFrame({"x": [1, 2, 3]}), spec)["window"].to_list()
        [0, 0, 1]
    """

    every: str | None = None
    size: int | None = None
    timestamp: str | None = None

    def __post_init__(self) -> None:
        if (self.every is None) == (self.size is None):
            raise ParameterError(
                "A window needs exactly one of 'every' (a duration such as '1d') and 'size' "
                f"(a number of rows); got every={self.every!r}, size={self.size!r}.",
                parameter="window",
            )
        if self.size is not None:
            check_int(self.size, "size", "a window", 1)
        if self.every is not None:
            if self.timestamp is None:
                raise ParameterError(
                    f"Windows of '{self.every}' need the timestamp column; pass timestamp=...",
                    parameter="timestamp",
                )
            try:
                pl.select(pl.datetime(2020, 1, 1).dt.truncate(self.every))
            except (pl.exceptions.PolarsError, ValueError) as exc:
                raise ParameterError(
                    f"'{self.every}' is not a window duration; expected e.g. '15m', '1h', '1d', "
                    "'1w' or '1mo'.",
                    parameter="every",
                ) from exc

    @classmethod
    def parse(cls, window: str | int | WindowSpec, *, timestamp: str | None = None) -> WindowSpec:
        """From a duration string (``"1d"``), a row count (``5000``) or a spec."""
        if isinstance(window, WindowSpec):
            return window
        if isinstance(window, int) and not isinstance(window, bool):
            return cls(size=window)
        if isinstance(window, str):
            return cls(every=window, timestamp=timestamp)
        raise ParameterError(
            f"A window is a duration such as '1d' or a number of rows; got {window!r}.",
            parameter="window",
        )


def assign_windows(frame: pl.DataFrame, spec: WindowSpec) -> pl.DataFrame:
    """Add ``window`` (0, 1, ... in time order), ``window_start`` and ``window_end`` columns.

    Time windows are half-open ``[start, end)`` in UTC, and the timestamp column comes back as
    UTC datetimes (see :func:`mlwarden.frames.to_utc`); rows with a null timestamp get no window
    (null). Row windows have integer starts and ends (row offsets).
    """
    if spec.size is not None:
        index = pl.int_range(pl.len(), dtype=pl.Int64)
        start = (index // spec.size) * spec.size
        return frame.with_columns(
            (index // spec.size).alias(WINDOW),
            start.alias(WINDOW_START),
            pl.min_horizontal(start + spec.size, pl.len()).alias(WINDOW_END),
        )
    ts = spec.timestamp
    assert ts is not None
    assert spec.every is not None
    frame = to_utc(frame, ts)
    start = pl.col(ts).dt.truncate(spec.every)
    out = frame.with_columns(start.alias(WINDOW_START))
    out = out.with_columns(pl.col(WINDOW_START).dt.offset_by(spec.every).alias(WINDOW_END))
    return out.with_columns(pl.col(WINDOW_START).rank("dense").cast(pl.Int64).sub(1).alias(WINDOW))
