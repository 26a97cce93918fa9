"""The check contract and its registry: adding a data-quality check is one new class.

A check is one data-quality rule, configured by keyword parameters (a frozen dataclass, so it
compares, hashes, pickles and round-trips through ``to_dict``). It does not scan data itself: it
hands the validation engine Polars expressions — helper columns, a per-row failure flag and
aggregates — and the engine fuses the expressions of every check of a suite into one query. The
check then turns the aggregated numbers into a verdict and a message a plant engineer
understands.
"""

from __future__ import annotations

import dataclasses
import difflib
import types
import typing
from abc import ABC
from dataclasses import dataclass
from enum import StrEnum
from typing import TYPE_CHECKING, Any, ClassVar, Literal, Union, get_args, get_origin

import polars as pl

from mlwarden.exceptions import ParameterError
from mlwarden.quality._relax import check_margin, widen_share

if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence
    from datetime import datetime

Severity = Literal["warning", "error"]
SEVERITIES: tuple[Severity, ...] = ("warning", "error")


class Dimension(StrEnum):
    """The data-quality dimension a check measures; each gets its own score."""

    COMPLETENESS = "completeness"
    VALIDITY = "validity"
    CONSISTENCY = "consistency"
    UNIQUENESS = "uniqueness"
    TIMELINESS = "timeliness"


@dataclass(frozen=True, slots=True)
class Stats:
    """What the engine measured for one check on one batch or window.

    Attributes:
        n_rows: rows in the batch or window.
        n_failed: rows flagged by the check's row rule (0 for checks without one).
        n_checked: rows the row rule applied to (non-null values), else ``n_rows``.
        values: the check's own aggregates, by the names it gave them.
        schema: the batch's columns and dtypes.
        now: the time of the validation (UTC).
    """

    n_rows: int
    n_failed: int
    n_checked: int
    values: Mapping[str, Any]
    schema: Mapping[str, pl.DataType]
    now: datetime


@dataclass(frozen=True, slots=True)
class Sparse:
    """A helper stage computed only on the rows where ``where`` holds (null elsewhere).

    For work that matters on a few candidate rows of a large batch (matching a level shift to
    unit conversions, say): the engine evaluates ``columns`` on those rows alone and joins them
    back by row number, instead of computing them for every row.
    """

    where: pl.Expr
    columns: dict[str, pl.Expr]


@dataclass(frozen=True, slots=True)
class Verdict:
    """A check's judgement: passed or not, the observed value, and the message."""

    passed: bool
    observed: Any
    message: str


class Context:
    """What a check can refer to while it builds its expressions.

    ``name(part)`` gives a helper column name private to the check; ``param(name, value)`` the
    value of a parameter, either a literal or — for a check with per-group parameters — the
    column the engine joined in; ``timestamp``/``entity``/``same``/``dt`` describe the series
    order of ordered checks (rows sorted by entity, then timestamp).
    """

    def __init__(
        self,
        index: int,
        *,
        schema: Mapping[str, pl.DataType],
        timestamp: str | None,
        entity: tuple[str, ...],
        grouped: frozenset[str] = frozenset(),
        now: datetime,
        frame: pl.DataFrame | None = None,
    ) -> None:
        self.index = index
        self.schema = schema
        self.timestamp = timestamp
        self.entity = entity
        self.grouped = grouped
        self.now = now
        self._frame = frame

    @property
    def failed(self) -> pl.Expr:
        """The check's own row flag, for aggregates over the failing rows (in ``observe``)."""
        return pl.col(f"__f{self.index}")

    def is_sorted(self, column: str) -> bool:
        """Whether the batch arrives sorted by ``column`` (a cheap fact that picks a faster
        plan; False when unknown)."""
        if self._frame is None or column not in self._frame.columns:
            return False
        return bool(self._frame[column].is_sorted())

    def name(self, part: str) -> str:
        """A helper column name private to this check."""
        return f"__c{self.index}_{part}"

    def param(self, name: str, value: Any) -> pl.Expr:
        """The parameter as an expression: its joined per-group column, or the literal."""
        if name in self.grouped:
            return pl.col(self.param_column(name))
        return pl.lit(value)

    def param_column(self, name: str) -> str:
        return f"__p{self.index}_{name}"

    @property
    def same(self) -> pl.Expr:
        """True where the previous row (in series order) belongs to the same series."""
        return pl.col("__same")

    @property
    def dt(self) -> pl.Expr:
        """Seconds since the previous reading of the same series (null at a series' start)."""
        return pl.col("__dt")

    @property
    def ts(self) -> pl.Expr:
        """The suite's timestamp column."""
        assert self.timestamp is not None
        return pl.col(self.timestamp)


@dataclass(frozen=True, kw_only=True)
class Check(ABC):
    """Base class of the data-quality checks; subclasses register themselves by ``key``.

    A subclass is a ``@dataclass(frozen=True, kw_only=True)`` whose fields are its parameters
    (``severity`` comes from this base). It declares its :class:`Dimension`, and overrides:

    * ``reads()`` — the columns it reads (a missing one fails the check with a clear message);
    * ``helpers(ctx)`` — helper columns computed before the row flags (optional);
    * ``fails(ctx)`` — a boolean expression, True where a row breaks the rule (optional);
    * ``checked(ctx)`` — the rows the rule applies to (default: every row);
    * ``observe(ctx)`` — named aggregate expressions (optional);
    * ``judge(stats)`` — the verdict, from the measured numbers.

    ``ordered = True`` asks the engine to sort rows by the suite's entity and timestamp first.

    A check whose limit can move past what clean data showed also overrides ``relaxed`` and
    names the parameters that hold its limit in ``limit_parameters``.
    """

    key: ClassVar[str]
    dimension: ClassVar[Dimension]
    ordered: ClassVar[bool] = False
    default_severity: ClassVar[Severity] = "error"
    windowed: ClassVar[bool] = True
    repairable: ClassVar[bool] = False
    row_local: ClassVar[bool] = False
    example: ClassVar[dict[str, Any]] = {}
    limit_parameters: ClassVar[dict[str, str]] = {}
    """The parameters that hold the check's limit, each with the unit of a plain number in it
    ("s" for a duration given in seconds, else ""): what :meth:`describe_limit` reports."""
    _registry: ClassVar[dict[str, type[Check]]] = {}

    severity: Severity | None = None

    def __init_subclass__(cls, key: str | None = None, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if key is None:
            return
        if key in Check._registry:
            raise TypeError(
                f"Check key '{key}' is taken by {Check._registry[key].__qualname__}; "
                f"{cls.__qualname__} needs another key."
            )
        cls.key = key
        Check._registry[key] = cls

    def __post_init__(self) -> None:
        values = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        for name, value in coerce_parameters(type(self), values).items():
            if value is not values[name]:
                object.__setattr__(self, name, value)
        if self.severity is not None and self.severity not in SEVERITIES:
            raise ParameterError(
                f"The 'severity' parameter of {type(self).__name__} must be 'warning' or "
                f"'error'; got {self.severity!r}.",
                parameter="severity",
            )

    # -- what subclasses override ------------------------------------------------------------

    def reads(self) -> tuple[str, ...]:
        """The columns this check reads."""
        return ()

    def helpers(self, ctx: Context) -> dict[str, pl.Expr] | list[dict[str, pl.Expr] | Sparse]:
        """Helper columns (named with ``ctx.name``) computed before the row flags.

        A list is evaluated stage by stage, so a later stage may use an earlier one; a
        :class:`Sparse` stage is computed on its candidate rows only.
        """
        return {}

    def fails(self, ctx: Context) -> pl.Expr | None:
        """True where a row breaks the rule; None for checks judged on aggregates only."""
        return None

    def checked(self, ctx: Context) -> pl.Expr | None:
        """True where the row rule applies (e.g. non-null values); None means every row."""
        return None

    def observe(self, ctx: Context) -> dict[str, pl.Expr]:
        """Aggregate expressions the verdict needs, by name."""
        return {}

    def judge(self, stats: Stats) -> Verdict:
        """Passed when no row fails; subclasses with tolerances or aggregates override."""
        return Verdict(stats.n_failed == 0, stats.n_failed, self.describe_failures(stats))

    def group_value(self, name: str, value: Any) -> Any:
        """A per-group parameter value as the expressions use it (e.g. a duration in seconds)."""
        return value

    def threshold(self) -> Any:
        """The limit the observed value is held to, as plain data (for reports and JSON)."""
        return None

    def relaxed(self, observed: Sequence[Any], margin: float) -> Check | None:
        """A copy of this check whose limit lies ``margin`` times as far out as the worst of
        ``observed`` (what the failing windows measured: ``CheckResult.observed`` of each failed
        result of this check), so that those windows would pass with room to spare; None when
        the check has no limit that can move (the caller then makes it warn instead).

        The limit only ever moves outward. Checks with a limit override this; the others (an
        allowed set, a pattern, a rule, the schema: a new category is not a wider limit) keep
        this default.

        Parameters:
            observed: the observed value of each failing window (entries that carry no
                measurement, such as None, are skipped).
            margin: how many times as far out as the worst observation the new limit lies; a
                finite number > 1.

        Example:
            >>> from mlwarden.quality import AllowedValues, Spike
            >>> Spike(column="pressure_bar", max_z=8.0).relaxed([12.0, 9.5], 1.5).max_z
            18.0
            >>> print(AllowedValues(column="line", values=["L1"]).relaxed([0.5], 1.5))
            None
        """
        check_margin(margin)
        return None

    def describe_limit(self) -> str:
        """The check's limit in words, for a note on what was widened (e.g. 'max_duration 2h').

        Example:
            >>> from mlwarden.quality import Range, Stuck
            >>> Stuck(column="temperature_c", max_duration="2h").describe_limit()
            'max_duration 2h'
            >>> Range(column="temperature_c", min=150, max=320.5).describe_limit()
            'min 150, max 320.5'
        """
        if not self.limit_parameters:
            return f"limit {_plain(self.threshold())}"
        groups = getattr(self, "groups", None) or {}
        parts = []
        for name, unit in self.limit_parameters.items():
            value = getattr(self, name)
            if any(name in g for g in groups.values()):
                parts.append(f"{name} set per {getattr(self, 'by', None)}")
            elif value is not None:
                parts.append(f"{name} {_limit_text(value, unit)}")
        return ", ".join(parts) or "no limit"

    # -- shared behaviour ----------------------------------------------------------------------

    @property
    def level(self) -> Severity:
        """The severity in force: the configured one, or the check's default."""
        return self.severity if self.severity is not None else self.default_severity

    @property
    def subject(self) -> str | None:
        """The column the result is reported under (the first one read), if any."""
        cols = self.reads()
        return ", ".join(cols) if cols else None

    def describe_failures(self, stats: Stats) -> str:
        return f"{stats.n_failed:,} of {stats.n_checked:,} rows break the rule."

    def to_dict(self) -> dict[str, Any]:
        """Configuration as plain data: ``{"check": key, **parameters}``, defaults left out."""
        d: dict[str, Any] = {"check": self.key}
        fields = dataclasses.fields(self)
        common = [f for f in fields if f.name in _COMMON]
        for f in [*(f for f in fields if f.name not in _COMMON), *common]:
            value = getattr(self, f.name)
            if f.default is not dataclasses.MISSING and value == f.default:
                continue
            d[f.name] = _plain(value)
        return d

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Check:
        """Inverse of :meth:`to_dict`; parameters are type-checked with clear errors."""
        if "check" not in d:
            raise ParameterError("A check needs its 'check' key, e.g. check: not_null.")
        target = get_check(d["check"])
        params = {k: v for k, v in d.items() if k != "check"}
        return target(**coerce_parameters(target, params))


_COMMON = ("by", "groups", "max_share", "severity")


def _limit_text(value: Any, unit: str) -> str:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return str(_plain(value))
    text = f"{value:.10g}"
    return f"{text} {unit}" if unit else text


def _plain(value: Any) -> Any:
    if isinstance(value, tuple):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    return value


def available_checks() -> list[str]:
    """Keys of every registered check, sorted."""
    return sorted(Check._registry)


def get_check(key: object) -> type[Check]:
    """The check class registered under ``key``, with a suggestion for a typo."""
    try:
        return Check._registry[key]  # type: ignore[index]
    except (KeyError, TypeError):
        options = available_checks()
        hint = difflib.get_close_matches(str(key), options, n=1)
        suggestion = f" Did you mean '{hint[0]}'?" if hint else ""
        raise ParameterError(
            f"'{key}' is not a check. Available: {', '.join(options)}.{suggestion}",
            parameter="check",
        ) from None


def parameters(cls: type[Check]) -> dict[str, Any]:
    """Parameter name -> type hint of a check class."""
    hints = typing.get_type_hints(cls)
    return {f.name: hints[f.name] for f in dataclasses.fields(cls)}


def required_parameters(cls: type[Check]) -> list[str]:
    return [
        f.name
        for f in dataclasses.fields(cls)
        if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
    ]


def coerce_parameters(cls: type[Check], params: Mapping[str, Any]) -> dict[str, Any]:
    """Check names and types of ``params`` against the fields of ``cls``.

    Raises :class:`ParameterError` (with ``parameter`` set) for an unknown name, a missing
    required one, or a value of the wrong type; lists become tuples.
    """
    hints = parameters(cls)
    for name in params:
        if name not in hints:
            hint = difflib.get_close_matches(str(name), list(hints), n=1)
            suggestion = f" Did you mean '{hint[0]}'?" if hint else ""
            raise ParameterError(
                f"'{name}' is not a parameter of the check '{cls.key}'. Its parameters: "
                f"{', '.join(hints)}.{suggestion}",
                parameter=str(name),
            )
    for name in required_parameters(cls):
        if name not in params:
            raise ParameterError(
                f"The check '{cls.key}' needs the parameter '{name}' ({_describe(hints[name])}).",
                parameter=name,
            )
    out: dict[str, Any] = {}
    for name, value in params.items():
        ok, converted = _conform(value, hints[name])
        if not ok:
            raise ParameterError(
                f"The '{name}' parameter of the check '{cls.key}' must be "
                f"{_describe(hints[name])}; got {value!r}.",
                parameter=name,
            )
        out[name] = converted
    return out


def _conform(value: Any, hint: Any) -> tuple[bool, Any]:
    origin = get_origin(hint)
    args = get_args(hint)
    if hint is Any:
        return True, value
    if hint is type(None):
        return value is None, value
    if origin in (Union, types.UnionType):
        for arg in args:
            ok, converted = _conform(value, arg)
            if ok:
                return True, converted
        return False, value
    if origin is Literal:
        return value in args, value
    if hint is bool:
        return isinstance(value, bool), value
    if hint is int:
        return isinstance(value, int) and not isinstance(value, bool), value
    if hint is float:
        ok = isinstance(value, int | float) and not isinstance(value, bool)
        return ok, float(value) if ok else value
    if hint is str:
        return isinstance(value, str), value
    if origin is tuple:
        if not isinstance(value, list | tuple):
            return False, value
        item = args[0] if args else Any
        converted = []
        for v in value:
            ok, c = _conform(v, item)
            if not ok:
                return False, value
            converted.append(c)
        return True, tuple(converted)
    if origin is dict:
        if not isinstance(value, dict):
            return False, value
        key_hint, value_hint = args if args else (Any, Any)
        result = {}
        for k, v in value.items():
            ok_k, ck = _conform(k, key_hint)
            ok_v, cv = _conform(v, value_hint)
            if not (ok_k and ok_v):
                return False, value
            result[ck] = cv
        return True, result
    if isinstance(hint, type):
        return isinstance(value, hint), value
    return True, value


def _describe(hint: Any) -> str:
    origin = get_origin(hint)
    args = get_args(hint)
    if origin in (Union, types.UnionType):
        parts = [_describe(a) for a in args if a is not type(None)]
        optional = " or null" if type(None) in args else ""
        return " or ".join(parts) + optional
    if origin is Literal:
        return "one of " + ", ".join(repr(a) for a in args)
    if origin is tuple:
        return f"a list of {_describe(args[0]) if args else 'values'}"
    if origin is dict:
        return "a mapping"
    names = {bool: "true or false", int: "an integer", float: "a number", str: "a string"}
    return names.get(hint, getattr(hint, "__name__", str(hint)))


def share(n: int, total: int) -> str:
    """``n`` of ``total`` as a percentage a person reads at a glance."""
    if total <= 0:
        return "0 %"
    p = 100.0 * n / total
    return f"{p:.2g} %" if p < 1 else f"{p:.1f} %"


def number(x: Any) -> str:
    """A value as a short string (numbers to 4 significant digits)."""
    if isinstance(x, float):
        return f"{x:.4g}"
    return str(x)


@dataclass(frozen=True, kw_only=True)
class RowCheck(Check):
    """A check whose rows each pass or fail; it passes when at most ``max_share`` fail.

    ``max_share`` is a share of the rows the rule applies to (0 means not one row may fail).
    """

    max_share: float = 0.0

    def __post_init__(self) -> None:
        super().__post_init__()
        if not 0.0 <= self.max_share <= 1.0:
            raise ParameterError(
                f"The 'max_share' parameter of the check '{self.key}' must be a share in "
                f"[0, 1]; got {self.max_share!r}.",
                parameter="max_share",
            )

    def tolerated(self, stats: Stats) -> bool:
        return stats.n_failed <= self.max_share * stats.n_checked + 1e-9

    def judge(self, stats: Stats) -> Verdict:
        passed = self.tolerated(stats)
        return Verdict(passed, self.observed(stats), self.explain(stats, passed))

    def observed(self, stats: Stats) -> Any:
        """The observed value reported (default: the share of failing rows)."""
        return stats.n_failed / stats.n_checked if stats.n_checked else 0.0

    def relaxed_share(self, observed: Sequence[Any], margin: float) -> Check | None:
        """This check made rate-based: ``max_share`` raised to ``margin`` times the worst
        observed share of failing rows (at most 1), for checks whose observed value is that
        share; None when no observed share exceeds the current ``max_share``.

        Example:
            >>> from mlwarden.quality import NotNull
            >>> NotNull(column="humidity_pct").relaxed_share([0.02, 0.01], 1.5).max_share
            0.03
        """
        share = widen_share(self.max_share, observed, check_margin(margin))
        return None if share is None else dataclasses.replace(self, max_share=share)

    def explain(self, stats: Stats, passed: bool) -> str:
        tolerance = (
            f" (tolerated: {share(round(self.max_share * stats.n_checked), stats.n_checked)})"
        )
        if stats.n_failed == 0:
            return f"All {stats.n_checked:,} rows pass: {self.rule_text()}."
        verdict = "within tolerance" if passed else "too many"
        return (
            f"{stats.n_failed:,} of {stats.n_checked:,} rows "
            f"({share(stats.n_failed, stats.n_checked)})"
            f" break the rule {self.rule_text()}{self.detail(stats)}; {verdict}"
            f"{tolerance if self.max_share else ''}."
        )

    def rule_text(self) -> str:
        return self.key

    def detail(self, stats: Stats) -> str:
        """Extra words after the count (e.g. the extreme values seen)."""
        return ""


@dataclass(frozen=True, kw_only=True)
class Grouped(Check):
    """Parameters that may differ per group: per sensor tag in long data, per machine, ...

    ``groups`` maps a value of the ``by`` column to parameter overrides, e.g. ``{"TI-101":
    {"min": 0, "max": 300}}``; groups not listed use the check's own parameters. The engine joins
    the parameters in as columns, so one check covers thousands of tags in the same pass.
    """

    by: str | None = None
    groups: dict[Any, dict[str, Any]] | None = None

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.groups is None:
            return
        if self.by is None:
            raise ParameterError(
                f"The check '{self.key}' has per-group parameters ('groups'): name the column "
                "that holds the group (e.g. by: tag).",
                parameter="by",
            )
        names = {f.name for f in dataclasses.fields(self)} - {"by", "groups", "severity"}
        groups = {}
        for group, values in self.groups.items():
            if not isinstance(values, dict):
                raise ParameterError(
                    f"In the check '{self.key}', group {group!r} must map parameter names to "
                    f"values; got {values!r}.",
                    parameter="groups",
                )
            for name in values:
                if name not in names:
                    hint = difflib.get_close_matches(str(name), sorted(names), n=1)
                    suggestion = f" Did you mean '{hint[0]}'?" if hint else ""
                    raise ParameterError(
                        f"In the check '{self.key}', group {group!r} sets '{name}', which is not "
                        f"one of its parameters ({', '.join(sorted(names))}).{suggestion}",
                        parameter="groups",
                    )
            groups[str(group)] = dict(values)
        object.__setattr__(self, "groups", groups)

    def reads(self) -> tuple[str, ...]:
        own = super().reads()
        return (*own, self.by) if self.by is not None and self.by not in own else own

    def sets_per_group(self, *names: str) -> bool:
        """Whether a group overrides one of the parameters ``names``."""
        return any(name in values for values in (self.groups or {}).values() for name in names)

    def limit_text(self, text: str) -> str:
        """``text`` (the check's own limit), or a note that each group has its own limit."""
        return f"set per {self.by}" if self.groups else text

    @property
    def subject(self) -> str | None:
        cols = [c for c in self.reads() if c != self.by]
        return ", ".join(cols) if cols else None
