"""Consistency: cross-column rules and time that only moves forward.

Rules are SQL expressions over the columns (``end_time >= start_time``,
``feed_kg + additive_kg = total_kg``); ``tolerance`` widens comparisons for measured values.

Example:
    >>> import polars as pl
    >>> from mlwarden.quality import Suite, validate
    >>> frame = pl.DataFrame({"start_time": [1, 5, 9], "end_time": [2, 4, 9]})
    >>> validate(frame, Suite([Rule(rule="end_time >= start_time")])).results[0].n_failed
    1
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import polars as pl

from mlwarden.exceptions import ParameterError
from mlwarden.quality.base import Dimension, RowCheck

if TYPE_CHECKING:
    from mlwarden.quality.base import Context

_COMPARISON = re.compile(r"(==|!=|<>|>=|<=|=|>|<)")


def _split_comparison(rule: str) -> tuple[str, str, str] | None:
    """``(left, operator, right)`` of a rule's one top-level comparison, if it has exactly one."""
    depth = 0
    quote: str | None = None
    found: list[tuple[int, str]] = []
    i = 0
    while i < len(rule):
        ch = rule[i]
        if quote:
            quote = None if ch == quote else quote
        elif ch in "'\"":
            quote = ch
        elif ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
        elif depth == 0:
            match = _COMPARISON.match(rule, i)
            if match:
                found.append((i, match.group(1)))
                i += len(match.group(1))
                continue
        i += 1
    if len(found) != 1:
        return None
    at, op = found[0]
    return rule[:at].strip(), op, rule[at + len(op) :].strip()


def rule_expression(rule: str, tolerance: float = 0.0) -> pl.Expr:
    """The Polars expression of a rule, with comparisons widened by ``tolerance``."""
    text = rule
    if tolerance:
        parts = _split_comparison(rule)
        if parts is None:
            raise ParameterError(
                f"A tolerance needs a rule with one comparison (such as 'a + b = total'); "
                f"got {rule!r}.",
                parameter="tolerance",
            )
        left, op, right = parts
        t = repr(float(tolerance))
        text = {
            "==": f"abs(({left}) - ({right})) <= {t}",
            "=": f"abs(({left}) - ({right})) <= {t}",
            "!=": f"abs(({left}) - ({right})) > {t}",
            "<>": f"abs(({left}) - ({right})) > {t}",
            ">=": f"({left}) >= ({right}) - {t}",
            ">": f"({left}) > ({right}) - {t}",
            "<=": f"({left}) <= ({right}) + {t}",
            "<": f"({left}) < ({right}) + {t}",
        }[op]
    elif "==" in rule:
        text = rule.replace("==", "=")
    try:
        return pl.sql_expr(text)
    except (pl.exceptions.PolarsError, ValueError) as exc:
        raise ParameterError(
            f"The rule {rule!r} is not an expression mlwarden can read: write it like SQL, e.g. "
            f"'end_time >= start_time' or 'a + b = total'; a column named like an SQL word "
            f"(end, order, value...) goes in double quotes ({str(exc).splitlines()[0]}).",
            parameter="rule",
        ) from exc


@dataclass(frozen=True, kw_only=True)
class Rule(RowCheck, key="rule"):
    """Every row satisfies ``rule``, an SQL expression over its columns.

    Rows where the rule cannot be evaluated (a null input) are not judged. ``tolerance`` widens
    the comparison: ``a + b = total`` with tolerance 0.5 accepts ``|a + b - total| <= 0.5``.

    Example:
        >>> import polars as pl
        >>> from mlwarden.quality import Suite, validate
        >>> frame = pl.DataFrame(
        ...     {"feed": [10.0, 4.0], "additive": [1.0, 1.0], "total": [11.2, 9.0]}
        ... )
        >>> check = Rule(rule="feed + additive = total", tolerance=0.5)
        >>> validate(frame, Suite([check])).results[0].n_failed
        1
    """

    row_local = True
    dimension = Dimension.CONSISTENCY
    example = {"rule": "numeric = numeric"}
    rule: str
    tolerance: float = 0.0

    def __post_init__(self) -> None:
        super().__post_init__()
        rule_expression(self.rule, self.tolerance)

    def reads(self) -> tuple[str, ...]:
        return tuple(rule_expression(self.rule, self.tolerance).meta.root_names())

    @property
    def subject(self) -> str | None:
        return ", ".join(dict.fromkeys(self.reads())) or None

    def fails(self, ctx: Context) -> pl.Expr:
        return ~rule_expression(self.rule, self.tolerance)

    def checked(self, ctx: Context) -> pl.Expr:
        return rule_expression(self.rule, self.tolerance).is_not_null()

    def threshold(self) -> Any:
        return self.rule if not self.tolerance else f"{self.rule} (± {self.tolerance:g})"

    def rule_text(self) -> str:
        return f"'{self.rule}'" + (f" (± {self.tolerance:g})" if self.tolerance else "")


@dataclass(frozen=True, kw_only=True)
class Monotonic(RowCheck, key="monotonic"):
    """Timestamps never go back in arrival order, within each series (the suite's entity).

    ``column`` defaults to the suite's timestamp. Equal timestamps pass (see
    ``duplicate_timestamps``).

    Example:
        >>> import polars as pl
        >>> from datetime import datetime
        >>> from mlwarden.quality import Suite, validate
        >>> t = [datetime(2024, 1, 1, 8, m) for m in (0, 1, 5, 3, 6)]
        >>> frame = pl.DataFrame({"timestamp": t})
        >>> validate(frame, Suite([Monotonic()], timestamp="timestamp")).results[0].n_failed
        1
    """

    dimension = Dimension.CONSISTENCY
    example = {"column": "time"}
    column: str | None = None

    def reads(self) -> tuple[str, ...]:
        return (self.column,) if self.column is not None else ()

    def _column(self, ctx: Context) -> str:
        column = self.column or ctx.timestamp
        if column is None:
            raise ParameterError(
                "The check 'monotonic' needs a 'column', or the suite's timestamp.",
                parameter="column",
            )
        return column

    def fails(self, ctx: Context) -> pl.Expr:
        t = pl.col(self._column(ctx))
        previous = t.shift(1)
        if ctx.entity:
            previous = previous.over(list(ctx.entity))
        return t < previous

    def threshold(self) -> Any:
        return self.max_share

    def rule_text(self) -> str:
        return "'time never goes back within a series'"
