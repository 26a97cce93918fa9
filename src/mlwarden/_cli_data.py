"""How ``mlwarden`` commands read the data files they are given: one way for every command.

A file is read in its ``--encoding``; it must hold at least one row; every column an option
names must be one of its columns (else the closest is suggested); its time column is read as UTC
(:func:`mlwarden.frames.to_utc`). Each failure is an :class:`~mlwarden.exceptions.InputError`
naming the file, which ``friendly_errors`` prints on one line.

Only click and the standard library load here, so that ``mlwarden --help`` starts in a blink.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING

import click

if TYPE_CHECKING:
    from pathlib import Path

    import polars as pl

ENCODING_OPTION = click.option(
    "--encoding", help="Text encoding of CSV files, e.g. latin-1 or cp1252 (default utf-8)."
)
_TEXT_KINDS = ("categorical", "text")

Named = Mapping[str, Iterable[str | None]]
"""The columns each option names, by option (``{"--timestamp": ["ts"]}``); None is skipped."""


def read_data(
    path: Path,
    *,
    encoding: str | None,
    named: Named | None = None,
    timestamp: str | None = None,
    as_text: Sequence[str] = (),
) -> pl.DataFrame:
    """The rows of the data file ``path``, checked, with ``timestamp`` (if given) in UTC.

    Parameters:
        path: a Parquet, CSV or Arrow IPC file.
        encoding: the text encoding of a CSV file (None: UTF-8).
        named: the columns options name, which must be columns of the file.
        timestamp: the column of times, read by :func:`mlwarden.frames.to_utc`.
        as_text: CSV columns read as text whatever they hold.

    Raises:
        InputError: the file cannot be read, has no rows, or lacks a named column.
    """
    from mlwarden.frames import to_polars, to_utc

    frame = to_polars(path, encoding=encoding, as_text=as_text)
    require_rows(frame.height, path)
    check_columns(frame.columns, path, {**(named or {}), "--timestamp": [timestamp]})
    if timestamp is not None:
        frame = to_utc(frame, timestamp, source=f"'{path}'", path=path)
    return frame


def require_rows(n_rows: int, path: Path) -> None:
    """Refuse a file with column names but no rows: nothing could be computed from it."""
    from mlwarden.exceptions import InputError

    if n_rows == 0:
        raise InputError(
            f"'{path}' has column names but no rows; expected a file with at least one row of "
            "data. Check that the program writing it has finished.",
            path=path,
        )


def check_columns(available: Sequence[str], path: Path, named: Named) -> None:
    """Refuse an option that names a column ``path`` does not have, suggesting the closest."""
    from mlwarden.exceptions import InputError

    for option, names in named.items():
        for name in names:
            if name is None or name in available:
                continue
            close = difflib.get_close_matches(name, available, n=1)
            hint = f" Did you mean {close[0]!r}?" if close else ""
            from mlwarden.frames import listed_columns

            listed = listed_columns(available)
            raise InputError(
                f"{option} names the column {name!r}, which '{path}' does not have.{hint} Its "
                f"columns: {listed}.",
                path=path,
                column=name,
            )


def text_columns(kinds: Mapping[str, str]) -> list[str]:
    """The columns ``--kind`` makes categorical or text: read from a CSV file as text."""
    return [name for name, kind in kinds.items() if kind.strip().lower() in _TEXT_KINDS]
