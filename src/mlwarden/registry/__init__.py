"""The model registry: models, versions, aliases, and what each version is judged against.

Registering a version fits its reference once — the reference profile, the quality suite
learned from the reference data (with its held-out false-failure rate), the drift reference with
its calibrated thresholds — and stores them with the version, so every later window is judged
against the same, stored reference. Aliases (``production``, ``staging``, any name) point at
versions, and every move is recorded with who, when, why and the evidence.

Example:
    >>> from mlwarden.datasets import production_line
    >>> from mlwarden.store.metadata import Store
    >>> registry = Registry(Store("sqlite://"))
    >>> version = registry.register(
    ...     "defect-model", "1", production_line(5_000), timestamp="timestamp"
    ... )
    >>> version.artifacts
    ('drift_reference', 'profile', 'suite')
    >>> registry.promote("defect-model", "1", alias="production").version
    '1'
    >>> reference = registry.reference("defect-model", "production")
    >>> reference.suite.timestamp, reference.profile.n_rows
    ('timestamp', 5000)
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from mlwarden.exceptions import NotFoundError

if TYPE_CHECKING:
    from collections.abc import Sequence

    from mlwarden.drift import Reference
    from mlwarden.profiling import Profile
    from mlwarden.quality import Suite
    from mlwarden.store.metadata import AliasChange, Store, VersionRecord

__all__ = ["Registry", "VersionReference"]

PROFILE = "profile"
SUITE = "suite"
DRIFT_REFERENCE = "drift_reference"


@dataclass(frozen=True)
class VersionReference:
    """What a model version is judged against, loaded from the store."""

    version: VersionRecord
    profile: Profile
    suite: Suite
    drift: Reference


class Registry:
    """Models, versions and aliases on a :class:`~mlwarden.store.metadata.Store`."""

    def __init__(self, store: Store) -> None:
        self.store = store
        store.migrate()

    def register(
        self,
        model: str,
        version: str,
        reference: object,
        *,
        timestamp: str | None = None,
        entity: str | Sequence[str] | None = None,
        tag: str | None = None,
        id: str | Sequence[str] | None = None,
        roles: dict[str, str] | None = None,
        suite: Suite | None = None,
        description: str = "",
    ) -> VersionRecord:
        """Register ``version`` of ``model`` (created when new) with its reference fitted on
        ``reference`` (a frame or a file): profile, quality suite (learned unless given) and
        drift reference."""
        from mlwarden.drift import Reference
        from mlwarden.frames import to_polars
        from mlwarden.quality import suggest_suite

        frame = to_polars(reference)
        drift = Reference.fit(frame, roles=roles)
        if suite is None:
            suite = suggest_suite(frame, timestamp=timestamp, entity=entity, tag=tag, id=id)
        try:
            self.store.get_model(model)
        except NotFoundError:
            self.store.create_model(model, description)
        meta: dict[str, Any] = {
            "rows": frame.height,
            "columns": frame.columns,
            "timestamp": timestamp,
            "suite_checks": len(suite.checks),
            "suite_false_failure_rate": suite.meta.get("false_failure_rate"),
        }
        return self.store.create_version(
            model,
            version,
            artifacts={
                PROFILE: drift.profile.to_bytes(),
                SUITE: suite.to_yaml().encode("utf-8"),
                DRIFT_REFERENCE: drift.to_bytes(),
            },
            meta=meta,
        )

    def promote(
        self,
        model: str,
        version: str,
        *,
        alias: str = "production",
        by: str = "",
        note: str = "",
        evidence: dict[str, Any] | None = None,
    ) -> AliasChange:
        """Point ``alias`` at ``version``; the move is kept in the alias history."""
        return self.store.set_alias(model, alias, version, by=by, note=note, evidence=evidence)

    def rollback(self, model: str, *, alias: str = "production", by: str = "") -> AliasChange:
        """Move ``alias`` back to the version it held before its last move."""
        history = [h for h in self.store.alias_history(model, alias) if h.version is not None]
        if not history or history[-1].previous is None:
            raise NotFoundError(
                f"The alias '{alias}' of '{model}' has no earlier version to go back to.",
                what="alias",
            )
        return self.store.set_alias(
            model, alias, history[-1].previous, by=by, note=f"rollback from {history[-1].version}"
        )

    def reference(self, model: str, version_or_alias: str) -> VersionReference:
        """The stored reference of a version (or of the version an alias points at)."""
        from mlwarden.drift import Reference
        from mlwarden.profiling import Profile
        from mlwarden.quality import Suite

        record = self.store.resolve(model, version_or_alias)
        load = self.store.artifact
        return VersionReference(
            version=record,
            profile=Profile.from_bytes(load(model, record.version, PROFILE)),
            suite=Suite.from_yaml(load(model, record.version, SUITE).decode("utf-8")),
            drift=Reference.from_bytes(load(model, record.version, DRIFT_REFERENCE)),
        )
