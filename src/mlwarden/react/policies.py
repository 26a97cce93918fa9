"""Reaction policies: when the evaluated windows of a model show a condition, take actions.

A policy file lists policies; each names the models it watches, a condition
(:mod:`mlwarden.react.conditions`) and the actions to take (:mod:`mlwarden.react.actions`)::

    policies:
      - name: stuck-sensor
        model: extrusion-defects        # a name or glob; default every model
        when:
          metric: "quality*"
          column: "*pressure*"
          consecutive: 2
        actions:
          - notify: {channels: ["log"], message: "{model}: stuck pressure sensor"}
          - quarantine: {}
          - rollback: {alias: production}            # waits for approval by default
          - retrain: {command: ["python", "train.py", "--data", "{training_set}"]}
          - webhook: {url: "http://127.0.0.1:9000/hook"}
          - incident: close

:func:`apply_policies` judges every policy over the stored alerts, metrics and incidents and
runs the actions whose condition holds. Each action fires **once** per incident (or, for a
condition over metric values, once per run of windows where it holds), however often the
policies are applied and from however many processes: its audit-log row is its claim
(:mod:`mlwarden.react.audit`). Actions that need **approval** (rollback and retrain unless
``approval: none``) are recorded ``pending`` and run by :func:`decide`. A **dry run** records
what would happen and changes nothing; a later real run still acts. Actions of one policy are
independent: one failing or waiting does not hold up the others. A failed action is not tried
again by later runs (a rollback or a retraining must not repeat on its own); its record says
why. Only conditions holding in windows that ended within ``lookback`` (a day) act, so a new
policy does not act on last month's incidents.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

import yaml

from mlwarden._source import read_source
from mlwarden.exceptions import MlwardenError
from mlwarden.react import audit
from mlwarden.react.actions import Action, ActionContext, ActionError, parse_action
from mlwarden.react.audit import ActionRecord
from mlwarden.react.conditions import Condition, Occurrence, compile_glob, occurrences
from mlwarden.react.spec import PolicyError, SpecReader

if TYPE_CHECKING:
    from collections.abc import Sequence

    from mlwarden.react.dispatch import Dispatcher
    from mlwarden.store.metadata import Store, WindowRecord
    from mlwarden.store.rowlog import RowLog

__all__ = [
    "DEFAULT_LOOKBACK",
    "ActionRecord",
    "Policy",
    "PolicyError",
    "actions",
    "apply_policies",
    "decide",
    "get_action",
    "load_policies",
    "parse_policies",
]

LOGGER = logging.getLogger("mlwarden.react")
DEFAULT_LOOKBACK: Final = timedelta(days=1)
_NAME: Final = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.\-]{0,199}")


@dataclass(frozen=True)
class Policy:
    """One policy: on the models matching ``model`` (a glob), when ``when`` holds, take
    ``actions`` in order.

    Example:
        >>> (policy,) = parse_policies({"policies": [{
        ...     "name": "page-on-drift",
        ...     "when": {"metric": "drift.*", "consecutive": 3},
        ...     "actions": [{"notify": {"channels": ["log"]}}, {"rollback": {}}],
        ... }]})
        >>> policy.applies_to("extrusion-defects"), [a.key for a in policy.actions]
        (True, ['notify', 'rollback'])
        >>> policy.actions[1].approval
        True
    """

    name: str
    when: Condition
    actions: tuple[Action, ...]
    model: str = "*"
    description: str = ""

    def applies_to(self, model: str) -> bool:
        return compile_glob(self.model).fullmatch(model) is not None

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "model": self.model,
            "description": self.description,
            "when": self.when.to_dict(),
            "actions": [{a.key: a.params()} for a in self.actions],
        }


def parse_policies(doc: object) -> list[Policy]:
    """The policies of a parsed policy file (``{"policies": [...]}``), checked field by field.

    Raises :class:`PolicyError` naming the policy, the field and what was expected.
    """
    if not isinstance(doc, dict):
        raise PolicyError(
            "policies: expected a mapping with a 'policies' list, got "
            f"{'an empty file' if doc is None else repr(doc)}",
            field="policies",
        )
    top = SpecReader(None, "", doc)
    items = top.raw("policies")
    top.done()
    if not isinstance(items, list) or not items:
        raise PolicyError(
            "policies: expected a non-empty list of policies under the key 'policies', got "
            f"{'nothing' if items is None else repr(items)}",
            field="policies",
        )
    policies: list[Policy] = []
    seen: dict[str, int] = {}
    for index, item in enumerate(items):
        where = f"policies[{index}]"
        reader = SpecReader(None, where, item)
        name = reader.string("name")
        if not _NAME.fullmatch(name):
            raise reader.error(
                "name",
                "expected 1-200 letters, digits, '.', '_' or '-', starting with a letter or "
                f"digit, got {name!r}",
            )
        if name in seen:
            raise reader.error("name", f"expected a unique name; policies[{seen[name]}] has it too")
        seen[name] = index
        named = SpecReader(name, "", item)
        named.raw("name")
        model = named.string("model", "*")
        description = named.string("description", "")
        when = Condition.parse(name, named.raw("when"))
        listed = named.raw("actions")
        named.done()
        if not isinstance(listed, list) or not listed:
            raise named.error("actions", f"expected a non-empty list of actions, got {listed!r}")
        parsed = tuple(parse_action(name, f"actions[{i}]", a) for i, a in enumerate(listed))
        policies.append(Policy(name, when, parsed, model=model, description=description))
    return policies


def load_policies(source: str | Path) -> list[Policy]:
    """The policies of a YAML file (a path), or of YAML text (a string with a newline).

    Example:
        >>> policies = load_policies('''
        ... policies:
        ...   - name: stuck-sensor
        ...     when: {metric: quality, column: "stuck(*)", consecutive: 2}
        ...     actions: [{quarantine: {}}, {incident: close}]
        ... ''')
        >>> policies[0].when.describe()
        'an alert of quality on column stuck(*) (whole data) in 2 consecutive windows'
        >>> load_policies('''
        ... policies:
        ...   - name: page-on-stuck
        ...     when: {metric: quality, consecutive: 0}
        ...     actions: [{notify: {channels: [log]}}]
        ... ''')
        Traceback (most recent call last):
        ...
        mlwarden.react.spec.PolicyError: policy 'page-on-stuck': when.consecutive: expected an
        integer ≥ 1, got 0
    """
    text, path = read_source(source, what="policy file", error=PolicyError)
    try:
        doc = yaml.safe_load(text)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark
        line = f", line {mark.line + 1}" if mark is not None else ""
        raise PolicyError(
            f"{path or 'policies'}{line}: this is not valid YAML: {exc.problem}.", path=path
        ) from exc
    except yaml.YAMLError as exc:
        raise PolicyError(
            f"{path or 'policies'}: this is not valid YAML: {exc}", path=path
        ) from exc
    try:
        return parse_policies(doc)
    except PolicyError as exc:
        exc.path = str(path) if path is not None else None
        raise


def apply_policies(
    store: Store,
    rowlog: RowLog,
    policies: Sequence[Policy],
    *,
    model: str | None = None,
    dry_run: bool = False,
    now: datetime | None = None,
    data_dir: Path | None = None,
    notify: Dispatcher | None = None,
    lookback: timedelta | None = DEFAULT_LOOKBACK,
) -> list[ActionRecord]:
    """Judge ``policies`` over the evaluated windows of every model (or of ``model``) and take
    the actions whose condition holds and that did not fire before; return their records.

    Parameters:
        dry_run: record what each action would do (status ``dry_run``), change nothing.
        now: the time of the decision (default: now); windows ending later are not judged.
        data_dir: where quarantined rows and training sets go (default: the directory that
            holds the row log).
        notify: the dispatcher for ``notify`` actions without channels of their own.
        lookback: only conditions holding in a window that ended within this time before
            ``now`` act (default one day; None: all history), so a new policy does not act on
            last month's incidents.
    """
    now = now or datetime.now(UTC)
    folder = Path(data_dir) if data_dir is not None else rowlog.root.parent
    names = [store.get_model(model).name] if model is not None else [m.name for m in store.models()]
    records: list[ActionRecord] = []
    for policy in policies:
        for name in names:
            if not policy.applies_to(name):
                continue
            for occurrence in occurrences(store, policy.when, name, now=now, lookback=lookback):
                records += _fire(store, rowlog, policy, occurrence, dry_run, now, folder, notify)
    return records


def decide(
    store: Store,
    rowlog: RowLog,
    action_id: int,
    *,
    approve: bool,
    by: str,
    comment: str = "",
    data_dir: Path | None = None,
    notify: Dispatcher | None = None,
    now: datetime | None = None,
) -> ActionRecord:
    """Approve (run it now; ``done`` or ``failed``) or reject (``rejected``) a pending action.

    Raises :class:`~mlwarden.exceptions.NotFoundError` for an unknown id and
    :class:`~mlwarden.exceptions.ConflictError` when the action is not pending (decided
    before, here or elsewhere, or never waiting for a decision).
    """
    now = now or datetime.now(UTC)
    record = audit.get_action(store, action_id)
    params = dict(record.detail.get("params") or {})
    action = parse_action(record.policy, "detail.params", {record.action: params})
    record = audit.begin_decision(
        store, action_id, approve=approve, by=by, comment=comment, now=now
    )
    if not approve:
        return record
    window: WindowRecord | None = None
    if record.window_id is not None:
        try:
            window = store.window(record.window_id)
        except MlwardenError:
            window = None
    ctx = ActionContext(
        store=store,
        rowlog=rowlog,
        model=record.model,
        version=str(record.detail.get("version") or (window.version if window else "")),
        policy=record.policy,
        condition=record.condition,
        incident=record.incident_id,
        window=window,
        now=now,
        data_dir=Path(data_dir) if data_dir is not None else rowlog.root.parent,
        evidence=tuple(record.detail.get("evidence") or ()),
        notify=notify,
        by=by,
        key=record.key,
    )
    return _execute(store, record, action, ctx)


def actions(
    store: Store,
    model: str | None = None,
    *,
    incident: int | None = None,
    status: str | None = None,
    limit: int = 200,
) -> list[ActionRecord]:
    """The audit log, newest first: every action of every model (or of ``model``, of one
    ``incident``, with one ``status``), at most ``limit``."""
    return audit.list_actions(store, model, incident=incident, status=status, limit=limit)


def get_action(store: Store, action_id: int) -> ActionRecord:
    """One entry of the audit log."""
    return audit.get_action(store, action_id)


def action_key(policy: str, index: int, action: str, subject: str, *, dry_run: bool) -> str:
    """What makes an action once-only: the policy, the action's place and kind, what the
    condition is about, and whether it is a dry run (so a real run still fires after one).

    Example:
        >>> action_key("stuck-sensor", 1, "rollback", "incident-12", dry_run=True)
        'stuck-sensor/1:rollback/incident-12/dry-run'
    """
    return f"{policy}/{index}:{action}/{subject}" + ("/dry-run" if dry_run else "")


def _fire(
    store: Store,
    rowlog: RowLog,
    policy: Policy,
    occurrence: Occurrence,
    dry_run: bool,
    now: datetime,
    data_dir: Path,
    notify: Dispatcher | None,
) -> list[ActionRecord]:
    condition = policy.when.describe()
    keys = [
        action_key(policy.name, i, a.key, occurrence.subject, dry_run=dry_run)
        for i, a in enumerate(policy.actions)
    ]
    taken = audit.taken_keys(store, keys)
    window = occurrence.window
    fired: list[ActionRecord] = []
    for action, key in zip(policy.actions, keys, strict=True):
        if key in taken:
            continue
        ctx = ActionContext(
            store=store,
            rowlog=rowlog,
            model=occurrence.model,
            version=occurrence.version,
            policy=policy.name,
            condition=condition,
            incident=occurrence.incident,
            window=window,
            now=now,
            data_dir=data_dir,
            evidence=occurrence.evidence,
            notify=notify,
            by=f"policy {policy.name}",
            key=key,
        )
        try:
            would = action.describe(ctx)
        except MlwardenError as exc:
            would = f"{action.key}: {exc}"
        status = audit.DRY_RUN if dry_run else audit.PENDING if action.approval else audit.RUNNING
        record = audit.claim(
            store,
            model=occurrence.model,
            policy=policy.name,
            action=action.key,
            key=key,
            condition=condition,
            incident_id=occurrence.incident,
            window_id=window.id,
            status=status,
            dry_run=dry_run,
            detail={
                "version": occurrence.version,
                "params": action.params(),
                "subject": occurrence.subject,
                "window": {
                    "id": window.id,
                    "start": window.start.isoformat(),
                    "end": window.end.isoformat(),
                },
                "evidence": list(occurrence.evidence),
                "evidence_total": occurrence.evidence_total,
                "would": would,
                **({"approval": "required"} if action.approval else {}),
            },
            now=now,
        )
        if record is None:  # claimed by another process in the meantime
            continue
        if status == audit.RUNNING:
            record = _execute(store, record, action, ctx)
        fired.append(record)
    return fired


def _execute(
    store: Store, record: ActionRecord, action: Action, ctx: ActionContext
) -> ActionRecord:
    """Run a claimed action and record how it ended; an action's failure never escapes."""
    try:
        result = action.run(ctx)
    except ActionError as exc:
        return audit.finish(
            store, record.id, audit.FAILED, {"error": str(exc), "result": exc.detail}
        )
    except (MlwardenError, OSError) as exc:
        return audit.finish(store, record.id, audit.FAILED, {"error": " ".join(str(exc).split())})
    except Exception as exc:  # a bug in one action must not leave its record 'running'
        LOGGER.exception("The %s action of policy %s failed", action.key, record.policy)
        return audit.finish(
            store, record.id, audit.FAILED, {"error": f"{type(exc).__name__}: {exc}"}
        )
    return audit.finish(store, record.id, audit.DONE, {"result": result})
