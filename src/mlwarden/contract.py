"""What the rows and labels of a model version must carry: its logging contract.

A version is registered with named columns: an id that labels refer to, an event time, the
features, the model's outputs (one score per class or a probability, a prediction) and the
target that arrives later as labels. Monitoring works on those names only: rows logged without
the score column get no estimated performance, labels logged under another name are never
joined, rows without event time are stamped with the time they were logged. :class:`Contract`
says what the version expects, and :meth:`Contract.check_rows` and :meth:`Contract.check_labels`
say, per batch, what is missing or unknown and what that costs, in words a person can act on.

The contract is derived from what registration stored (``meta["columns"]``, ``meta["roles"]``,
``meta["timestamp"]`` and the id the evaluation joins labels on, ``meta["evaluators"]["id"]``),
so every version has one.

Example:
    >>> contract = Contract.from_meta(
    ...     {
    ...         "columns": ["id", "timestamp", "temp", "fail_score", "failed"],
    ...         "roles": {"id": "id", "timestamp": "timestamp", "temp": "feature",
    ...                   "fail_score": "score", "failed": "target"},
    ...         "timestamp": "timestamp",
    ...     }
    ... )
    >>> contract.outputs
    ('fail_score',)
    >>> [f.message for f in contract.check_rows(["id", "timestamp", "temp", "prediction"])]
    ... # doctest: +NORMALIZE_WHITESPACE
    ["rows carry no 'fail_score' (the model's score): performance is not estimated and the
      score's drift is not judged",
     "rows carry 'prediction', which the version was not registered with: it is stored but
      not monitored"]
    >>> contract.renames(["id", "timestamp", "temp", "prediction"])
    {'prediction': 'fail_score'}
    >>> for line in contract.lines():
    ...     print(line)
    rows must carry: id 'id', event time 'timestamp', feature 'temp', score 'fail_score'
    labels: 'id' and 'failed'
    >>> Contract.from_dict(contract.to_dict()) == contract
    True
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any, Final

if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence

ROW_ID: Final = "id"
"""The column rows are joined to their labels on, unless the version names another."""
DEFAULT_TIMESTAMP: Final = "timestamp"
DEFAULT_PREDICTION: Final = "prediction"
"""The column :meth:`mlwarden.Monitor.log` stores predictions under when given apart."""
DEFAULT_LABEL: Final = "label"
"""The column :meth:`mlwarden.Monitor.log_labels` stores labels under."""
_INTERNAL_PREFIX: Final = "_"


@dataclass(frozen=True, slots=True)
class Finding:
    """One way a batch departs from the contract: ``kind`` (``missing_output``,
    ``missing_feature``, ``missing_timestamp``, ``missing_id``, ``missing_target``,
    ``unknown``), the column, and what it costs, in words."""

    kind: str
    column: str
    message: str

    def to_dict(self) -> dict[str, str]:
        return {"kind": self.kind, "column": self.column, "message": self.message}


@dataclass(frozen=True, slots=True)
class Part:
    """One column of a contract: its ``role``, the batches that carry it (``rows``,
    ``labels`` or ``rows and labels``) and what monitoring does with it (``purpose``)."""

    column: str
    role: str
    carried_by: str
    purpose: str

    def to_dict(self) -> dict[str, str]:
        return {
            "column": self.column,
            "role": self.role,
            "carried_by": self.carried_by,
            "purpose": self.purpose,
        }


@dataclass(frozen=True, slots=True)
class Contract:
    """The columns a version's rows and labels must carry (see the module docstring);
    ``extra`` are the other columns it was registered with (a second id, a second time):
    accepted in rows, never required."""

    id: str
    timestamp: str | None
    features: tuple[str, ...]
    scores: tuple[str, ...]
    predictions: tuple[str, ...]
    targets: tuple[str, ...]
    segments: tuple[str, ...] = ()
    extra: tuple[str, ...] = ()

    @property
    def empty(self) -> bool:
        """Whether the version was registered without columns: no batch can be checked."""
        return not (self.features or self.outputs or self.targets or self.segments)

    @property
    def outputs(self) -> tuple[str, ...]:
        """The model's output columns: its scores, then its predictions."""
        return (*self.scores, *self.predictions)

    @property
    def row_columns(self) -> tuple[str, ...]:
        """Every column a row of this version should carry."""
        time = () if self.timestamp is None else (self.timestamp,)
        return (self.id, *time, *self.features, *self.segments, *self.outputs)

    @classmethod
    def from_meta(cls, meta: Mapping[str, Any]) -> Contract:
        """The contract of a version from what its registration stored."""
        roles: Mapping[str, str] = meta.get("roles") or {}
        columns: Sequence[str] = meta.get("columns") or list(roles)

        def having(role: str) -> tuple[str, ...]:
            return tuple(c for c in columns if roles.get(c, "feature") == role)

        ids = having("id")
        # The evaluation joins labels on the id it was fitted with, whatever the roles say.
        joined_on = (meta.get("evaluators") or {}).get("id")
        timestamp = meta.get("timestamp")
        contract = cls(
            id=joined_on or (ids[0] if len(ids) == 1 else ROW_ID),
            timestamp=timestamp,
            features=tuple(c for c in having("feature") if c not in (timestamp, joined_on)),
            scores=having("score"),
            predictions=having("prediction"),
            targets=having("target"),
            segments=having("segment"),
        )
        named = {*contract.row_columns, *contract.targets}
        return replace(contract, extra=tuple(c for c in columns if c not in named))

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Contract:
        """The contract from :meth:`to_dict`; the keys that only describe it are ignored."""
        return cls(
            id=str(data["id"]),
            timestamp=data.get("timestamp"),
            features=tuple(data.get("features") or ()),
            scores=tuple(data.get("scores") or ()),
            predictions=tuple(data.get("predictions") or ()),
            targets=tuple(data.get("targets") or ()),
            segments=tuple(data.get("segments") or ()),
            extra=tuple(data.get("extra") or ()),
        )

    def to_dict(self) -> dict[str, Any]:
        """The contract as the API returns it, with what each part is for
        (:meth:`from_dict` reads it back)."""
        return {
            "id": self.id,
            "timestamp": self.timestamp,
            "features": list(self.features),
            "segments": list(self.segments),
            "scores": list(self.scores),
            "predictions": list(self.predictions),
            "targets": list(self.targets),
            "extra": list(self.extra),
            "rows": list(self.row_columns),
            "labels": [self.id, *self.targets],
            "columns": [part.to_dict() for part in self.parts()],
        }

    def parts(self) -> list[Part]:
        """Every column of the contract with its role and what monitoring does with it: the
        row columns, then the labels' (the id, the targets), then the extra columns."""
        labelled = bool(self.targets)
        parts = [
            Part(
                self.id,
                "id",
                "rows and labels" if labelled else "rows",
                "labels are joined to their rows by it"
                if labelled
                else "names a row (the version has no target: no labels to join)",
            )
        ]
        if self.timestamp is not None:
            parts.append(
                Part(
                    self.timestamp,
                    "timestamp",
                    "rows",
                    "files each row in its window by event time",
                )
            )
        parts += [
            Part(c, "feature", "rows", "its quality and drift are judged") for c in self.features
        ]
        parts += [
            Part(c, "segment", "rows", "metrics are computed per value") for c in self.segments
        ]
        parts += [
            Part(c, "score", "rows", "performance is estimated from it and its drift is judged")
            for c in self.scores
        ]
        parts += [
            Part(
                c,
                "prediction",
                "rows",
                "its drift is judged; realized performance is measured when labels arrive",
            )
            for c in self.predictions
        ]
        parts += [
            Part(c, "target", "labels", "realized performance is measured against it")
            for c in self.targets
        ]
        parts += [
            Part(c, "other", "rows", "registered with the version, not monitored: accepted")
            for c in self.extra
        ]
        return parts

    def lines(self, *, limit: int = 12) -> list[str]:
        """The contract in two lines a person reads at registration: what rows must carry,
        and what labels must; at most ``limit`` columns of a role are named."""

        def named(role: str, columns: Sequence[str]) -> list[str]:
            if not columns:
                return []
            noun = role if len(columns) == 1 else f"{role}s"
            shown = ", ".join(map(repr, columns[:limit]))
            more = f" and {len(columns) - limit} more" if len(columns) > limit else ""
            return [f"{noun} {shown}{more}"]

        needs = [f"id {self.id!r}"] if self.targets else []
        if self.timestamp is not None:
            needs.append(f"event time {self.timestamp!r}")
        needs += named("feature", self.features)
        needs += named("segment", self.segments)
        needs += named("score", self.scores)
        needs += named("prediction", self.predictions)
        if self.targets:
            labels = f"labels: {self.id!r} and {' or '.join(map(repr, self.targets))}"
        else:
            labels = "labels: none (the version was registered without a target)"
        return [f"rows must carry: {', '.join(needs) or 'nothing the version monitors'}", labels]

    def check_rows(self, columns: Sequence[str], *, filed_by: str | None = None) -> list[Finding]:
        """How a batch of rows with ``columns`` departs from the contract, worst first;
        ``filed_by``, the column the batch's rows are filed by, is never unknown."""
        have = set(columns)
        findings: list[Finding] = []
        for column in self.scores:
            if column not in have:
                findings.append(
                    Finding(
                        "missing_output",
                        column,
                        f"rows carry no {column!r} (the model's score): performance is not "
                        "estimated and the score's drift is not judged",
                    )
                )
        for column in self.predictions:
            if column not in have:
                findings.append(
                    Finding(
                        "missing_output",
                        column,
                        f"rows carry no {column!r} (the model's prediction): its drift is not "
                        "judged and realized performance cannot be measured when labels arrive",
                    )
                )
        if self.timestamp is not None and self.timestamp not in have:
            findings.append(
                Finding(
                    "missing_timestamp",
                    self.timestamp,
                    f"rows carry no {self.timestamp!r} (the event time): they are stored but "
                    "fall in no window of the version, so they are not evaluated",
                )
            )
        if self.targets and self.id not in have:
            findings.append(
                Finding(
                    "missing_id",
                    self.id,
                    f"rows carry no {self.id!r} (the row id): labels cannot be joined to them",
                )
            )
        for column in self.features:
            if column not in have:
                findings.append(
                    Finding(
                        "missing_feature",
                        column,
                        f"rows carry no {column!r} (a feature): its quality and drift are not "
                        "judged",
                    )
                )
        known = {*self.row_columns, *self.targets, *self.extra, filed_by}
        for column in columns:
            if column not in known and not column.startswith(_INTERNAL_PREFIX):
                findings.append(
                    Finding(
                        "unknown",
                        column,
                        f"rows carry {column!r}, which the version was not registered with: it "
                        "is stored but not monitored",
                    )
                )
        return findings

    def check_labels(self, columns: Sequence[str], *, filed_by: str | None = None) -> list[Finding]:
        """How a batch of labels with ``columns`` departs from the contract; ``filed_by`` is
        the labels' arrival-time column."""
        have = set(columns)
        findings: list[Finding] = []
        if self.id not in have:
            findings.append(
                Finding(
                    "missing_id",
                    self.id,
                    f"labels carry no {self.id!r} (the row id): they cannot be joined to rows",
                )
            )
        if self.targets and not have & set(self.targets):
            others = sorted(have - {self.id, self.timestamp or DEFAULT_TIMESTAMP, filed_by})
            under = f"; they carry {', '.join(map(repr, others))}" if others else ""
            findings.append(
                Finding(
                    "missing_target",
                    self.targets[0],
                    f"labels carry no {self.targets[0]!r} (the target{under}): realized "
                    "performance is not measured",
                )
            )
        return findings

    def renames(self, columns: Sequence[str], *, labels: bool = False) -> dict[str, str]:
        """Renames that make a batch meet the contract where only one reading is possible:
        the default ``prediction`` column (``label`` for labels) taken as the version's one
        output (one target) that the batch lacks. Empty when nothing is unambiguous."""
        have = set(columns)
        if labels:
            source, wanted = DEFAULT_LABEL, self.targets
        else:
            source, wanted = DEFAULT_PREDICTION, self.outputs
        missing = [c for c in wanted if c not in have]
        if source in have and source not in wanted and len(wanted) == 1 and len(missing) == 1:
            return {source: missing[0]}
        return {}
