"""Suites: lists of configured checks, saved as human-editable YAML that round-trips.

A suite file looks like this::

    version: 1
    name: extrusion line 1
    timestamp: timestamp        # orders sensor readings; needed by sensor and timeliness checks
    entity: [line]              # one series per entity (add the tag column for long data)
    id: [reading_id]            # how failing rows are named in reports (else entity+timestamp)
    checks:
      - check: not_null
        column: pressure_bar
      - check: range
        column: temperature_c
        min: 150
        max: 320

An invalid file is rejected with the file, the line and a suggestion.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from mlwarden._source import read_source
from mlwarden.exceptions import ParameterError, SuiteError
from mlwarden.quality.base import Check

if TYPE_CHECKING:
    from collections.abc import Iterable, Iterator, Mapping

FORMAT_VERSION = 1
_TOP_LEVEL = ("version", "name", "timestamp", "entity", "id", "checks", "meta")


@dataclass(frozen=True)
class Suite:
    """A list of configured checks, and how the rows of a batch are ordered and named.

    Parameters:
        checks: the checks, in the order results are reported.
        timestamp: the event-time column; orders the readings of each series.
        entity: columns that identify one series (a machine, a line, a sensor tag).
        id: columns that name a row in reports; default entity + timestamp, else row number.
        name: a label for reports.
        meta: free-form notes kept with the suite (``suggest_suite`` records how it was learned
            and its estimated false-failure rate here).

    Example:
        >>> from mlwarden.quality import Suite
        >>> suite = Suite.from_dict({"checks": [{"check": "not_null", "column": "pressure_bar"}]})
        >>> Suite.from_yaml(suite.to_yaml()) == suite
        True
    """

    checks: tuple[Check, ...]
    timestamp: str | None = None
    entity: tuple[str, ...] = ()
    id: tuple[str, ...] = ()
    name: str | None = None
    meta: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        checks = tuple(self.checks)
        for check in checks:
            if not isinstance(check, Check):
                raise ParameterError(
                    f"A suite holds checks; got {check!r}. Build checks with their class "
                    "(Range(column=..., min=...)) or use Suite.from_dict.",
                    parameter="checks",
                )
        object.__setattr__(self, "checks", checks)
        object.__setattr__(self, "entity", _names(self.entity, "entity"))
        object.__setattr__(self, "id", _names(self.id, "id"))
        object.__setattr__(self, "meta", dict(self.meta))

    def __iter__(self) -> Iterator[Check]:
        return iter(self.checks)

    def __len__(self) -> int:
        return len(self.checks)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Suite) and self.to_dict() == other.to_dict()

    def __hash__(self) -> int:
        return hash(yaml.safe_dump(self.to_dict()))

    def with_checks(self, checks: Iterable[Check]) -> Suite:
        """The same suite with other checks."""
        return dataclasses.replace(self, checks=tuple(checks))

    # -- plain data --------------------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {"version": FORMAT_VERSION}
        if self.name is not None:
            d["name"] = self.name
        if self.timestamp is not None:
            d["timestamp"] = self.timestamp
        if self.entity:
            d["entity"] = list(self.entity)
        if self.id:
            d["id"] = list(self.id)
        d["checks"] = [c.to_dict() for c in self.checks]
        if self.meta:
            d["meta"] = dict(self.meta)
        return d

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Suite:
        """A suite from its plain form; errors name the check (by position) and the key."""
        return _build(d, path=None, lines=None)

    # -- YAML ------------------------------------------------------------------------------------

    def to_yaml(self, path: str | Path | None = None) -> str:
        """The suite as YAML (written to ``path`` too when given)."""
        header = (
            "# mlwarden quality suite. Edit freely: every check is one list item with its\n"
            "# parameters; `mlwarden check DATA --suite THIS_FILE` validates data against it.\n"
        )
        text = header + yaml.dump(
            _flowing(self.to_dict()), Dumper=_Dumper, sort_keys=False, allow_unicode=True
        )
        if path is not None:
            target = Path(path)
            temporary = target.with_name(target.name + ".tmp")
            temporary.write_text(text, encoding="utf-8")
            temporary.replace(target)
        return text

    @classmethod
    def from_yaml(cls, source: str | Path) -> Suite:
        """A suite from a YAML file path, or from YAML text (a string with a newline).

        Raises :class:`SuiteError` with the file, the line and what to change.
        """
        text, path = read_source(source, what="suite file", error=SuiteError)
        try:
            node = yaml.compose(text, Loader=_Loader)
        except yaml.MarkedYAMLError as exc:
            line = exc.problem_mark.line + 1 if exc.problem_mark is not None else None
            where = _where(path, line)
            raise SuiteError(
                f"{where}this is not valid YAML: {exc.problem}.", path=path, line=line
            ) from exc
        if node is None:
            raise SuiteError(f"{_where(path, None)}the suite is empty.", path=path)
        data = _Loader("").construct_document(node)
        return _build(data, path=path, lines=_Lines(node))


def _names(value: object, what: str) -> tuple[str, ...]:
    if value is None:
        return ()
    if isinstance(value, str):
        return (value,)
    if isinstance(value, list | tuple) and all(isinstance(v, str) for v in value):
        return tuple(value)
    raise ParameterError(
        f"The suite's '{what}' must be a column name or a list of column names; got {value!r}.",
        parameter=what,
    )


def _where(path: Path | None, line: int | None) -> str:
    if path is None and line is None:
        return ""
    parts = [str(path) if path is not None else "suite"]
    if line is not None:
        parts.append(f"line {line}")
    return ", ".join(parts) + ": "


class _Lines:
    """Line numbers (1-based) of the suite's keys and of each check's keys."""

    def __init__(self, root: yaml.Node) -> None:
        self.top: dict[str, int] = {}
        self.checks: list[tuple[int, dict[str, int]]] = []
        if not isinstance(root, yaml.MappingNode):
            return
        for key, value in root.value:
            self.top[str(key.value)] = key.start_mark.line + 1
            if key.value == "checks" and isinstance(value, yaml.SequenceNode):
                for item in value.value:
                    keys: dict[str, int] = {}
                    if isinstance(item, yaml.MappingNode):
                        for k, v in item.value:
                            keys[str(k.value)] = k.start_mark.line + 1
                            keys[f"{k.value}="] = v.start_mark.line + 1
                    self.checks.append((item.start_mark.line + 1, keys))

    def of_check(self, index: int, key: str | None = None) -> int | None:
        if index >= len(self.checks):
            return None
        start, keys = self.checks[index]
        if key is None:
            return start
        return keys.get(f"{key}=", keys.get(key, start))


def _build(d: Any, *, path: Path | None, lines: _Lines | None) -> Suite:
    def fail(message: str, line: int | None, parameter: str | None = None) -> SuiteError:
        return SuiteError(
            f"{_where(path, line)}{message}", path=path, line=line, parameter=parameter
        )

    if not isinstance(d, dict):
        raise fail("a suite is a mapping with a 'checks' list.", 1)
    for key in d:
        if key not in _TOP_LEVEL:
            import difflib

            hint = difflib.get_close_matches(str(key), _TOP_LEVEL, n=1)
            suggestion = f" Did you mean '{hint[0]}'?" if hint else ""
            raise fail(
                f"'{key}' is not a suite key. Suite keys: {', '.join(_TOP_LEVEL)}.{suggestion}",
                lines.top.get(str(key)) if lines else None,
                str(key),
            )
    version = d.get("version", FORMAT_VERSION)
    if version != FORMAT_VERSION:
        raise fail(
            f"suite format version {version!r} is not supported (this mlwarden reads version "
            f"{FORMAT_VERSION}).",
            lines.top.get("version") if lines else None,
            "version",
        )
    raw_checks = d.get("checks")
    if not isinstance(raw_checks, list):
        raise fail(
            "the suite needs a 'checks' list (each item: check: KEY plus its parameters).",
            lines.top.get("checks") if lines else None,
            "checks",
        )
    checks = []
    for i, raw in enumerate(raw_checks):
        line_of = (lambda key, i=i: lines.of_check(i, key)) if lines else (lambda key: None)
        label = f"check #{i + 1}"
        if not isinstance(raw, dict):
            raise fail(f"{label} must be a mapping such as 'check: not_null'.", line_of(None))
        try:
            checks.append(Check.from_dict(raw))
        except ParameterError as exc:
            key = exc.parameter
            if key is not None and key not in raw and key != "check":
                line = line_of(None)
            else:
                line = line_of(key)
            context = "" if lines else f"{label}: "
            raise fail(f"{context}{exc}", line, key) from None
    for name in ("timestamp", "name"):
        value = d.get(name)
        if value is not None and not isinstance(value, str):
            raise fail(
                f"the suite's '{name}' must be a string; got {value!r}.",
                lines.top.get(name) if lines else None,
                name,
            )
    try:
        return Suite(
            checks=tuple(checks),
            timestamp=d.get("timestamp"),
            entity=d.get("entity") or (),
            id=d.get("id") or (),
            name=d.get("name"),
            meta=d.get("meta") or {},
        )
    except ParameterError as exc:
        key = exc.parameter
        raise fail(str(exc), lines.top.get(key or "") if lines else None, key) from None


_Loader: Any = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


class _Dumper(yaml.SafeDumper):
    """Block style for the suite, flow style for short mappings and lists of scalars."""


class _Flow(dict[str, Any]):
    pass


class _FlowList(list[Any]):
    pass


def _flowing(value: Any, depth: int = 0) -> Any:
    if isinstance(value, dict):
        items = {k: _flowing(v, depth + 1) for k, v in value.items()}
        scalar = all(not isinstance(v, dict | list) for v in value.values())
        if depth >= 3 and scalar:
            return _Flow(items)
        return items
    if isinstance(value, list):
        items_list = [_flowing(v, depth + 1) for v in value]
        if all(not isinstance(v, dict | list) for v in value) and len(value) <= 20:
            return _FlowList(items_list)
        return items_list
    return value


def _represent_flow(dumper: yaml.SafeDumper, data: _Flow) -> yaml.Node:
    return dumper.represent_mapping("tag:yaml.org,2002:map", data, flow_style=True)


def _represent_flow_list(dumper: yaml.SafeDumper, data: _FlowList) -> yaml.Node:
    return dumper.represent_sequence("tag:yaml.org,2002:seq", data, flow_style=True)


_Dumper.add_representer(_Flow, _represent_flow)
_Dumper.add_representer(_FlowList, _represent_flow_list)
