"""Retrain: write the suggested training set, then run the training command on it."""

from __future__ import annotations

import logging
import subprocess
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar, Final

from mlwarden.exceptions import MlwardenError
from mlwarden.react.actions.base import Action, ActionContext, ActionError
from mlwarden.react.spec import check_template, render

if TYPE_CHECKING:
    from collections.abc import Sequence

    from mlwarden.diagnosis.slices import Slice
    from mlwarden.react.spec import SpecReader

LOGGER = logging.getLogger("mlwarden.react")
TAIL: Final = 2_000


def _tail(text: str | bytes | None) -> str:
    if text is None:
        return ""
    if isinstance(text, bytes):
        text = text.decode("utf-8", errors="replace")
    return text[-TAIL:]


def diagnosed(ctx: ActionContext) -> tuple[str, Sequence[Slice], str]:
    """The kind of shift behind the incident and the slices that grew, from the incident
    diagnosis when it is available; ``unknown`` (and why) otherwise."""
    if ctx.incident is None:
        return "unknown", (), "the condition names no incident to diagnose"
    try:
        # The incident diagnosis is optional: without it, retraining uses the plain reference.
        from mlwarden.diagnosis.incident import (  # type: ignore[import-not-found,unused-ignore]
            diagnose,
        )
    except ImportError:
        return "unknown", (), "the incident diagnosis is not available"
    try:
        diagnosis = diagnose(ctx.store, ctx.rowlog, ctx.incident)
    except Exception as exc:  # the diagnosis advises; retraining goes on without it
        if not isinstance(exc, MlwardenError):
            LOGGER.exception("Diagnosing incident %s failed", ctx.incident)
        return "unknown", (), f"the incident could not be diagnosed: {exc}"
    shift = str(getattr(diagnosis, "shift", "unknown"))
    grown: Sequence[Slice] = tuple(getattr(diagnosis, "grown", ()) or ())
    return shift, grown, ""


@dataclass(frozen=True)
class Retrain(Action, key="retrain"):
    """Write a suggested training set (:func:`mlwarden.react.training.suggest_training_set`,
    chosen by the incident's diagnosis) under ``<data_dir>/training/``, then run ``command`` — an
    argument list, never a shell — with ``{training_set}``, ``{model}``, ``{version}`` and
    ``{incident}`` filled in, for at most ``timeout`` seconds. The exit code and the tail of its
    output go into the audit log; a non-zero exit or a timeout fails the action. Waits for
    approval unless the policy says ``approval: none``.

    Example:
        >>> Retrain.parse(
        ...     "p", "actions[0].retrain", {"command": ["python", "train.py", "{training_set}"]}
        ... )
        Retrain(command=('python', 'train.py', '{training_set}'), timeout=3600.0, approval=True)
    """

    command: tuple[str, ...]
    timeout: float = 3600.0
    approval: bool = True

    approval_default = True
    example: ClassVar[dict[str, object]] = {
        "command": ["python", "train.py", "--data", "{training_set}"],
        "timeout": 600,
    }
    placeholders = frozenset((*Action.placeholders, "training_set"))

    @classmethod
    def read(cls, reader: SpecReader, *, approval: bool) -> Retrain:
        command = reader.strings("command", non_empty=True)
        for i, argument in enumerate(command):
            check_template(reader, f"command[{i}]", argument, cls.placeholders)
        timeout = reader.number("timeout", positive=True, default=3600.0)
        return cls(command=command, timeout=timeout, approval=approval)

    def describe(self, ctx: ActionContext) -> str:
        return (
            f"write a training set under {ctx.data_dir / 'training'}, then run {list(self.command)}"
        )

    def run(self, ctx: ActionContext) -> dict[str, Any]:
        from mlwarden.react.training import suggest_training_set

        shift, grown, why = diagnosed(ctx)
        subject = f"incident-{ctx.incident}" if ctx.incident is not None else "window"
        if ctx.incident is None and ctx.window is not None:
            subject = f"window-{ctx.window.id}"
        out = ctx.data_dir / "training" / f"{ctx.model}-{subject}-{ctx.now:%Y%m%dT%H%M%SZ}.parquet"
        training = suggest_training_set(
            ctx.store,
            ctx.rowlog,
            ctx.model,
            shift=shift,
            grown=grown,
            out=out,
            now=ctx.now,
            version=ctx.version,
        )
        values = {**ctx.values(), "training_set": str(training.path)}
        arguments = [render(a, values) for a in self.command]
        detail: dict[str, Any] = {
            "command": arguments,
            "training_set": training.to_dict(),
            **({"diagnosis": why} if why else {}),
        }
        started = time.monotonic()
        try:
            completed = subprocess.run(
                arguments,
                capture_output=True,
                text=True,
                timeout=self.timeout,
                check=False,
                stdin=subprocess.DEVNULL,
            )
        except subprocess.TimeoutExpired as exc:
            detail.update(
                exit_code=None,
                stdout_tail=_tail(exc.stdout),
                stderr_tail=_tail(exc.stderr),
                seconds=round(time.monotonic() - started, 3),
            )
            raise ActionError(
                f"The training command did not finish within {self.timeout:g} seconds.", detail
            ) from exc
        except OSError as exc:  # not found, not executable
            raise ActionError(f"The training command could not start: {exc}", detail) from exc
        detail.update(
            exit_code=completed.returncode,
            stdout_tail=_tail(completed.stdout),
            stderr_tail=_tail(completed.stderr),
            seconds=round(time.monotonic() - started, 3),
        )
        if completed.returncode != 0:
            raise ActionError(
                f"The training command exited with status {completed.returncode}.", detail
            )
        return detail
