"""The logging contract over HTTP: what a version's rows and labels must carry, and how the
batches logged so far depart from it.

``GET .../versions/{version}/contract`` answers :meth:`mlwarden.contract.Contract.to_dict` (the
version may be an alias); ``GET .../contract-findings`` the counted findings
(:meth:`mlwarden.store.metadata.Store.contract_findings`). The ingest routes check every batch
with :func:`check_rows` and :func:`check_labels` and count it with :func:`count`: a batch is
stored whatever it lacks, and its answer says what that costs. A version's contract is derived
once per server from what its registration stored (a version never changes after it).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from fastapi import APIRouter, Request

from mlwarden.contract import DEFAULT_TIMESTAMP, ROW_ID, Contract

# FastAPI reads the dependencies from the annotations at runtime.
from mlwarden.server.app import ReadToken  # noqa: TC001

if TYPE_CHECKING:
    from collections.abc import Sequence

    from starlette.datastructures import State

    from mlwarden.contract import Finding
    from mlwarden.store.metadata import LoggedBatch, Store, VersionRecord

__all__ = [
    "check_labels",
    "check_rows",
    "contract_of",
    "count",
    "labels_id",
    "router",
    "rows_time",
    "warnings",
]

router = APIRouter()


@router.get("/models/{model}/versions/{version}/contract", tags=["models"])
def get_contract(request: Request, model: str, version: str, _: ReadToken) -> dict[str, Any]:
    """What the rows and labels of a version (or of the version an alias points at) must
    carry: its id, event time, features, segments, scores, predictions and targets, and each
    column's role and what monitoring does with it (``columns``)."""
    record = request.app.state.store.resolve(model, version)
    contract = contract_of(request.app.state, record)
    return {"model": record.model, "version": record.version, **contract.to_dict()}


@router.get("/models/{model}/contract-findings", tags=["models"])
def contract_findings(
    request: Request,
    model: str,
    _: ReadToken,
    version: str | None = None,
    open_only: bool = True,
) -> list[dict[str, Any]]:
    """How the model's logged batches depart from their version's contract (of one version
    or alias), one item per finding: since when, in how many batches and rows, and when a
    later batch met that part of the contract again (``cleared_at``; open findings only
    unless ``open_only=false``)."""
    store: Store = request.app.state.store
    if version is not None:
        version = store.resolve(model, version).version
    return [f.to_dict() for f in store.contract_findings(model, version, open_only)]


def contract_of(state: State, version: VersionRecord) -> Contract:
    """The contract of a version, derived once per server from its registration."""
    cache: dict[int, Contract] = state.contracts
    found = cache.get(version.id)
    if found is None:
        found = cache[version.id] = Contract.from_meta(version.meta)
    return found


def rows_time(given: str | None, contract: Contract, columns: Sequence[str]) -> str:
    """The column a batch of rows is filed by: the one its sender named, else the version's
    event time when the rows carry it, else ``timestamp``."""
    if given is not None:
        return given
    if contract.timestamp is not None and contract.timestamp in columns:
        return contract.timestamp
    return DEFAULT_TIMESTAMP


def labels_id(given: str | None, contracts: Sequence[Contract], columns: Sequence[str]) -> str:
    """The column a batch of labels is joined to its rows by: the one its sender named, else
    the id of a version's contract that the labels carry, else ``id``."""
    if given is not None:
        return given
    return next((c.id for c in contracts if c.id in columns), ROW_ID)


def check_rows(
    state: State, version: VersionRecord, columns: Sequence[str], filed_by: str
) -> dict[str, list[Finding]]:
    """The version a batch of rows with ``columns``, filed by ``filed_by``, is held to, with
    how the batch departs from its contract; none for a version registered without columns."""
    contract = contract_of(state, version)
    if contract.empty:
        return {}
    return {version.version: contract.check_rows(columns, filed_by=filed_by)}


def check_labels(
    state: State, versions: Sequence[VersionRecord], columns: Sequence[str], filed_by: str
) -> dict[str, list[Finding]]:
    """The versions a batch of labels of a model is held to, each with how the batch departs
    from its contract.

    Labels belong to a model, not to one version: a batch that meets the contract of some
    versions is theirs, and held to theirs only (others were registered with another target);
    a batch that meets none is held to the contract of every version with a target.
    """
    judged = {
        v.version: contract.check_labels(columns, filed_by=filed_by)
        for v in versions
        if (contract := contract_of(state, v)).targets
    }
    met = {version: found for version, found in judged.items() if not found}
    return met or judged


def warnings(held: dict[str, list[Finding]]) -> list[str]:
    """What a batch's answer says: the message of each finding, once."""
    return list(dict.fromkeys(f.message for found in held.values() for f in found))


def count(
    store: Store,
    model: str,
    held: dict[str, list[Finding]],
    n_rows: int,
    *,
    batch: LoggedBatch,
) -> None:
    """Count a stored batch against the contract of each version it is held to (opening,
    counting and clearing the versions' findings)."""
    at = datetime.now(UTC)
    for version, findings in held.items():
        store.record_contract_findings(model, version, findings, n_rows, at, batch=batch)
