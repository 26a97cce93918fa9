"""The evaluation schedule inside ``mlwarden serve``: every few minutes, the closed windows of
every model's production version (or its newest version when it has no ``production`` alias)
are evaluated; new incidents go to the alert channels. Reaction policies, when given, are
applied to each model right after its evaluation (each action fires once per incident, however
many rounds see it). With ``keep_days``, logged rows and labels older than that are then deleted
or compacted (windows, profiles and metrics stay).

A failing model is logged and skipped; the schedule never stops the server.
"""

from __future__ import annotations

import logging
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from mlwarden.exceptions import MlwardenError

if TYPE_CHECKING:
    from collections.abc import Sequence

    from mlwarden.react.dispatch import Dispatcher
    from mlwarden.react.policies import Policy
    from mlwarden.store.metadata import Store
    from mlwarden.store.rowlog import RowLog

LOGGER = logging.getLogger("mlwarden.service")


class Scheduler:
    """Evaluate every model every ``every`` seconds in a background thread.

    Parameters:
        policies: reaction policies applied to each model after its evaluation.
        data_dir: where the policies' actions write quarantined rows and training sets
            (default: the directory holding the row log).
    """

    def __init__(
        self,
        store: Store,
        rowlog: RowLog,
        *,
        every: float,
        window: str | None = None,
        notify: Dispatcher | None = None,
        keep_days: int | None = None,
        retention: Literal["delete", "compact"] = "delete",
        policies: Sequence[Policy] = (),
        data_dir: Path | None = None,
    ) -> None:
        self.store = store
        self.rowlog = rowlog
        self.every = every
        self.window = window
        self.notify = notify
        self.keep_days = keep_days
        self.retention: Literal["delete", "compact"] = retention
        self.policies = tuple(policies)
        self.data_dir = Path(data_dir) if data_dir is not None else rowlog.root.parent
        self.rounds = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="mlwarden-evaluate", daemon=True)

    def start(self) -> Scheduler:
        self._thread.start()
        return self

    def stop(self, timeout: float = 10.0) -> None:
        self._stop.set()
        self._thread.join(timeout)

    def run_once(self) -> int:
        """Evaluate every model once; the number of windows evaluated."""
        from mlwarden.service.evaluate import evaluate

        windows = 0
        for model in self.store.models():
            versions = self.store.versions(model.name)
            if not versions:
                continue
            target = "production" if "production" in self.store.aliases(model.name) else None
            version = target or versions[-1].version
            try:
                windows += len(
                    evaluate(
                        self.store,
                        self.rowlog,
                        model.name,
                        version,
                        window=self.window,
                        notify=self.notify,
                    )
                )
            except (MlwardenError, OSError) as exc:
                LOGGER.warning("Evaluating %s %s failed: %s", model.name, version, exc)
                continue
            if self.policies:
                self._react(model.name)
            if self.keep_days is not None:  # after the evaluation: no window loses unseen rows
                try:
                    self.rowlog.retain(model.name, keep_days=self.keep_days, mode=self.retention)
                except (MlwardenError, OSError) as exc:
                    LOGGER.warning("Retention of %s failed: %s", model.name, exc)
        return windows

    def _react(self, model: str) -> None:
        """Apply the policies to one model; an action's failure is in its audit record."""
        from mlwarden.react.policies import apply_policies

        try:
            apply_policies(
                self.store,
                self.rowlog,
                self.policies,
                model=model,
                data_dir=self.data_dir,
                notify=self.notify,
            )
        except (MlwardenError, OSError) as exc:
            LOGGER.warning("Applying the policies to %s failed: %s", model, exc)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self.run_once()
            except Exception:  # the schedule outlives any bug in one round
                LOGGER.exception("An evaluation round failed")
            self.rounds += 1
            self._stop.wait(self.every)
