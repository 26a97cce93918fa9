"""The error hierarchy of mlwarden, drawn in one place.

Every error a user can cause derives from :class:`MlwardenError` and carries the context that
explains it as attributes (``path``, ``column``, ``parameter``), so that callers can react without
parsing messages. Messages say what happened, what was expected, and what to do next.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pathlib import Path


class MlwardenError(Exception):
    """Base class of every error raised by mlwarden on purpose."""


class InputError(MlwardenError, ValueError):
    """Data handed to mlwarden cannot be read or does not have the expected shape.

    ``path`` names the file (when the data came from one) and ``column`` the column at fault.
    """

    def __init__(
        self, message: str, *, path: str | Path | None = None, column: str | None = None
    ) -> None:
        super().__init__(message)
        self.path = str(path) if path is not None else None
        self.column = column


class ParameterError(MlwardenError, ValueError):
    """A function or class was given a parameter outside its allowed values."""

    def __init__(self, message: str, *, parameter: str | None = None) -> None:
        super().__init__(message)
        self.parameter = parameter


class SchemaError(MlwardenError, ValueError):
    """A schema is inconsistent, or data does not match the schema it is checked against."""

    def __init__(self, message: str, *, column: str | None = None) -> None:
        super().__init__(message)
        self.column = column


class MergeError(MlwardenError, ValueError):
    """Two summaries cannot be merged (different columns, kinds, histogram bins or sketch sizes)."""

    def __init__(self, message: str, *, column: str | None = None) -> None:
        super().__init__(message)
        self.column = column


class SuiteError(MlwardenError, ValueError):
    """A quality suite (a YAML file or its dict form) is invalid.

    ``path`` and ``line`` locate the fault in the file (1-based), ``parameter`` names the key.
    """

    def __init__(
        self,
        message: str,
        *,
        path: str | Path | None = None,
        line: int | None = None,
        parameter: str | None = None,
    ) -> None:
        super().__init__(message)
        self.path = str(path) if path is not None else None
        self.line = line
        self.parameter = parameter


class StoreError(MlwardenError):
    """The metadata store cannot do what was asked (the database is unreachable, a record
    conflicts with one already stored, or the schema is older than this mlwarden)."""


class NotFoundError(StoreError, LookupError):
    """A model, version, alias or other record does not exist; ``what`` names it."""

    def __init__(self, message: str, *, what: str | None = None) -> None:
        super().__init__(message)
        self.what = what


class ConflictError(StoreError):
    """A record with the same key already exists (a version registered twice, say)."""


class NotFittedError(MlwardenError, RuntimeError):
    """A detector or estimator was used before ``fit(reference)`` was called."""


class FormatError(MlwardenError, ValueError):
    """A serialized profile or sketch is corrupt or was written by an unknown format version."""


def check_int(value: object, name: str, owner: str, low: int, high: int | None = None) -> int:
    """Return ``value`` if it is an int in ``[low, high]``, else raise a :class:`ParameterError`.

    The message names the parameter, its owner and the allowed range, e.g. ``The 'k' parameter of
    KLLSketch must be an int in [8, 65536]; got 2.``
    """
    ok = isinstance(value, int) and not isinstance(value, bool) and value >= low
    if ok and high is not None:
        ok = value <= high  # type: ignore[operator]
    if not ok:
        allowed = f"in [{low}, {high}]" if high is not None else f">= {low}"
        raise ParameterError(
            f"The '{name}' parameter of {owner} must be an int {allowed}; got {value!r}.",
            parameter=name,
        )
    return value  # type: ignore[return-value]
