"""Lineage of pipeline runs: which step made what, from what, with which code.

Instrument any step of an existing pipeline, as a decorator or a context manager::

    @component("featurize")
    def featurize(raw: pl.DataFrame) -> pl.DataFrame: ...

    with run("train", params={"max_iter": 200}) as r:
        r.input(features)                 # a frame, a file path, bytes, any picklable object
        model = fit(features)
        r.output(model, name="defect-model")

Each run is stored with its name, status (``running``, ``succeeded``, ``failed`` with the
error), start and end, code version (the git commit of the working directory when there is
one, else a hash of the step's source), parameters, owner and tags. Inputs and outputs are
*content-hashed* artifacts: the same table read by two steps is one artifact, so dependencies
between runs are inferred from the artifacts they share, without declaring a graph.
:meth:`Lineage.trace` walks from a run or an artifact backward to the raw inputs and forward
to everything derived; :meth:`Lineage.stale` says why a run's result may be out of date (an
input with a newer version under the same name, or a run older than a limit).

Artifacts are hashed by content: a Polars frame by its schema and row hashes (stable within a
Polars version), a file by its bytes, bytes as they are, anything else by its pickle.

Runs made elsewhere come in as OpenLineage events (:meth:`Lineage.ingest_openlineage`): a run
is kept by its OpenLineage run id, whatever order its events arrive in, and its datasets become
artifacts identified by namespace, name and ``datasetVersion``, so that jobs sharing a dataset
link up with each other and with the steps recorded here.

A step may be checked: ``@component(checks_before=suite, checks_after=suite)`` validates its
input tables and its returned table with a quality :class:`~mlwarden.quality.Suite`, and
:meth:`Run.check` does the same inside a :func:`run`; every result is stored with the run, and
``on_fail="raise"`` stops the step (the run is recorded as failed).

Predictions link to the run that made their features: ``Monitor.log(..., run=r)`` sends the
run's reference with the batch, the server keeps it with the batch's time span, and
:meth:`Lineage.batch_runs` and :meth:`Lineage.trace_prediction` follow it back.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import inspect
import pickle
import subprocess
import uuid
from collections import deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final, Literal, TypeVar

from sqlalchemy import func, select

from mlwarden.exceptions import ConflictError, InputError, NotFoundError, ParameterError
from mlwarden.store.metadata import Store, as_utc
from mlwarden.store.schema import (
    BatchRow,
    LineageArtifactRow,
    RunCheckRow,
    RunIORow,
    RunRow,
    utcnow,
)

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Iterator
    from datetime import timedelta

    from mlwarden.quality import Suite, Validation
    from mlwarden.store.rowlog import RowLog

    SuiteLike = Suite | str | Path
    Checks = SuiteLike | Sequence[SuiteLike] | Mapping[str, SuiteLike | Sequence[SuiteLike]]

__all__ = [
    "ArtifactRef",
    "CheckRecord",
    "Lineage",
    "Run",
    "RunRecord",
    "Trace",
    "component",
    "run",
]

F = TypeVar("F", bound="Callable[..., Any]")
Stage = Literal["before", "after"]
_CHUNK: Final = 1 << 20
# OpenLineage: the run states, and the bounds of one event.
EVENT_TYPES: Final = ("START", "RUNNING", "COMPLETE", "FAIL", "ABORT", "OTHER")
MAX_NAME: Final = 500
MAX_DATASETS: Final = 1000
_TERMINAL: Final = {"COMPLETE": "succeeded", "FAIL": "failed", "ABORT": "failed"}
_ERROR_CHARS: Final = 4000
_ATTEMPTS: Final = 3


@dataclass(frozen=True)
class ArtifactRef:
    """A content-hashed artifact."""

    sha256: str
    name: str
    kind: str


@dataclass(frozen=True)
class CheckRecord:
    """A check of a run: a quality suite validated on a table before or after its step.

    ``result`` is the validation as :meth:`~mlwarden.quality.Validation.to_dict` gives it.
    """

    id: int
    stage: str
    name: str
    passed: bool
    result: dict[str, Any]
    created_at: datetime


@dataclass(frozen=True)
class RunRecord:
    """A stored run with its inputs, outputs and checks; ``external_id`` is its OpenLineage run
    id when it came from an OpenLineage event."""

    id: int
    name: str
    status: str
    started_at: datetime
    ended_at: datetime | None
    code_version: str
    params: dict[str, Any]
    owner: str
    tags: dict[str, Any]
    error: str
    inputs: tuple[ArtifactRef, ...] = ()
    outputs: tuple[ArtifactRef, ...] = ()
    checks: tuple[CheckRecord, ...] = ()
    external_id: str | None = None


@dataclass(frozen=True)
class Trace:
    """What a run or artifact came from (``upstream``) and what was made from it
    (``downstream``): runs in the order they were reached, nearest first."""

    upstream: list[RunRecord] = field(default_factory=list)
    downstream: list[RunRecord] = field(default_factory=list)

    @property
    def raw_inputs(self) -> list[ArtifactRef]:
        """The upstream inputs that no traced run produced: where the data entered."""
        produced = {a.sha256 for r in self.upstream for a in r.outputs}
        seen: dict[str, ArtifactRef] = {}
        for r in self.upstream:
            for a in r.inputs:
                if a.sha256 not in produced:
                    seen.setdefault(a.sha256, a)
        return list(seen.values())


def content_hash(obj: object) -> tuple[str, str, str]:
    """``(sha256, kind, default name)`` of an artifact, by its content."""
    import polars as pl

    from mlwarden.frames import to_polars

    digest = hashlib.sha256()
    if isinstance(obj, (str, Path)) and Path(obj).is_file():
        path = Path(obj)
        with path.open("rb") as handle:
            while chunk := handle.read(_CHUNK):
                digest.update(chunk)
        return digest.hexdigest(), "file", str(path)
    if isinstance(obj, bytes | bytearray | memoryview):
        digest.update(bytes(obj))
        return digest.hexdigest(), "bytes", ""
    frame = None
    if isinstance(obj, pl.DataFrame):
        frame = obj
    elif type(obj).__module__.startswith(("pandas", "pyarrow")):
        frame = to_polars(obj)
    if frame is not None:
        digest.update(repr(list(frame.schema.items())).encode())
        if frame.height:
            digest.update(frame.hash_rows(seed=0).to_numpy().tobytes())
        return digest.hexdigest(), "table", ""
    digest.update(pickle.dumps(obj, protocol=pickle.HIGHEST_PROTOCOL))
    return digest.hexdigest(), "object", type(obj).__name__


def dataset_hash(namespace: str, name: str, version: str | None = None) -> str:
    """The sha256 that names an OpenLineage dataset: of its namespace and name, and of its
    ``datasetVersion`` when one is given (each version is then an artifact of its own)."""
    parts = ["openlineage-dataset", namespace, name] + ([version] if version is not None else [])
    return hashlib.sha256("\0".join(parts).encode()).hexdigest()


def code_version(source: object = None) -> str:
    """The git commit of the working directory (``+dirty`` with uncommitted changes), else the
    sha256 of ``source``'s code (a function or module), else ``""``."""
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "HEAD"], capture_output=True, text=True, timeout=2, check=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            capture_output=True,
            text=True,
            timeout=2,
            check=True,
        ).stdout.strip()
        return commit + ("+dirty" if dirty else "")
    except (OSError, subprocess.SubprocessError):
        pass
    if source is not None:
        with contextlib.suppress(OSError, TypeError):
            text = inspect.getsource(source)  # type: ignore[arg-type]
            return "source:" + hashlib.sha256(text.encode()).hexdigest()[:16]
    return ""


class Lineage:
    """Runs and artifacts in a :class:`~mlwarden.store.metadata.Store`."""

    def __init__(self, store: Store | None = None) -> None:
        self.store = store or Store()
        self.store.migrate()

    # -- writing -------------------------------------------------------------------------------

    def start(
        self,
        name: str,
        *,
        params: Mapping[str, Any] | None = None,
        owner: str = "",
        tags: Mapping[str, Any] | None = None,
        code: str = "",
    ) -> int:
        if not name or len(name) > 200:
            raise ParameterError(
                f"A run's name is 1-200 characters; got {name!r}.", parameter="name"
            )
        with self.store.session() as s:
            row = RunRow(
                name=name,
                params=_jsonable(dict(params or {})),
                owner=owner,
                tags=_jsonable(dict(tags or {})),
                code_version=code[:100],
            )
            s.add(row)
            s.flush()
            return row.id

    def record(self, run_id: int, obj: object, direction: str, name: str = "") -> ArtifactRef:
        """Record that run ``run_id`` read (``"in"``) or wrote (``"out"``) ``obj``."""
        if direction not in ("in", "out"):
            raise ParameterError(
                f"direction is 'in' or 'out'; got {direction!r}.", parameter="direction"
            )
        sha, kind, default = content_hash(obj)
        name = (name or default)[:500]
        with self.store.session() as s:
            (artifact,) = _link(s, run_id, [(sha, name, kind, direction)], utcnow())
            return ArtifactRef(sha, artifact.name, kind)

    def finish(self, run_id: int, *, error: BaseException | None = None) -> None:
        with self.store.session() as s:
            row = s.get(RunRow, run_id)
            if row is None:
                raise NotFoundError(f"No run with id {run_id}.", what="run")
            row.status = "failed" if error is not None else "succeeded"
            row.error = "" if error is None else f"{type(error).__name__}: {error}"[:_ERROR_CHARS]
            row.ended_at = utcnow()

    def record_check(
        self,
        run_id: int,
        suite: SuiteLike,
        data: object,
        *,
        stage: Stage = "after",
        name: str = "",
    ) -> Validation:
        """Validate ``data`` with ``suite`` (a quality suite or the path of its YAML) and store
        the result with run ``run_id``, as a check ``before`` or ``after`` its step; return the
        validation."""
        from mlwarden.quality import validate

        if stage not in ("before", "after"):
            raise ParameterError(
                f"The 'stage' of a check is 'before' or 'after'; got {stage!r}.",
                parameter="stage",
            )
        loaded = _suite(suite)
        validation = validate(data, loaded)
        label = name or loaded.name or (Path(suite).name if isinstance(suite, str | Path) else "")
        with self.store.session() as s:
            if s.get(RunRow, run_id) is None:
                raise NotFoundError(f"No run with id {run_id}.", what="run")
            s.add(
                RunCheckRow(
                    run_id=run_id,
                    stage=stage,
                    name=label[:200],
                    passed=validation.passed,
                    result=validation.to_dict(),
                    created_at=utcnow(),
                )
            )
        return validation

    # -- OpenLineage ---------------------------------------------------------------------------

    def ingest_openlineage(self, event: Mapping[str, Any]) -> int:
        """Record an OpenLineage RunEvent; return the id of its run.

        The run is kept by ``run.runId`` (its ``external_id``), so its events may arrive in any
        order, or only the last one: ``START`` and every other event move ``started_at`` back
        to the earliest event time seen, ``COMPLETE`` makes it ``succeeded``, ``FAIL``
        ``failed`` with the ``errorMessage`` facet's message, ``ABORT`` ``failed`` with
        ``"aborted"`` (a terminal event older than the one recorded changes nothing). The run's
        name is the job's name, its namespace is in the tags (with the parent run and the
        nominal time when the event has them), its code version is the ``sourceCodeLocation``
        version, else a hash of the ``sourceCode``, and its owner the ``ownership`` facet's
        owners.

        Input and output datasets become artifacts of kind ``"dataset"`` named
        ``namespace/name`` and identified by namespace, name and the ``version`` facet's
        ``datasetVersion`` when given: jobs that share a dataset link up (give the version on
        both sides or on neither), and a new version makes the runs that read an older one
        :meth:`stale`.

        Raises:
            InputError: a malformed event; the message names the field (``run.runId:
                expected a UUID string; got 42.``) and ``column`` holds its path.

        Example:
            >>> lineage = Lineage(Store("sqlite://"))
            >>> job = {"namespace": "plant-7", "name": "featurize"}
            >>> run_id = lineage.ingest_openlineage({
            ...     "eventType": "COMPLETE", "eventTime": "2024-05-01T08:00:00Z",
            ...     "run": {"runId": "3f5e2a8c-8a5b-4b8e-9a57-1f4b1c2d3e4f"}, "job": job,
            ...     "inputs": [{"namespace": "s3://line", "name": "raw/2024-05-01.parquet"}]})
            >>> found = lineage.get(run_id)
            >>> found.name, found.status, found.inputs[0].name
            ('featurize', 'succeeded', 's3://line/raw/2024-05-01.parquet')
        """
        return self._store_event(_parse_event(event, ""))

    def ingest_openlineage_many(self, events: Sequence[Mapping[str, Any]]) -> list[int]:
        """Record several OpenLineage RunEvents, in order; return their runs' ids. Every event
        is checked before the first is stored, so a malformed one stores nothing (its error
        names it: ``[3].run.runId: ...``)."""
        if isinstance(events, Mapping) or not isinstance(events, Sequence):
            raise InputError(
                f"Expected a list of OpenLineage events; got {type(events).__name__}.",
            )
        parsed = [_parse_event(e, f"[{i}].") for i, e in enumerate(events)]
        return [self._store_event(e) for e in parsed]

    def _store_event(self, event: _Event) -> int:
        # Two events of one run (or two runs sharing a new dataset) stored at once both insert;
        # the loser finds the winner's rows on the next attempt.
        for attempt in range(_ATTEMPTS):
            try:
                with self.store.session() as s:
                    return _apply(s, event)
            except ConflictError:
                if attempt == _ATTEMPTS - 1:
                    raise
        raise AssertionError("unreachable")  # pragma: no cover

    # -- reading -------------------------------------------------------------------------------

    def runs(self, name: str | None = None, *, limit: int = 100) -> list[RunRecord]:
        """The newest runs (of one step with ``name``), newest first."""
        with self.store.session() as s:
            query = select(RunRow).order_by(RunRow.started_at.desc(), RunRow.id.desc())
            if name is not None:
                query = query.where(RunRow.name == name)
            rows = list(s.scalars(query.limit(limit)))
            return [self._record(s, r) for r in rows]

    def get(self, run_id: int) -> RunRecord:
        with self.store.session() as s:
            row = s.get(RunRow, run_id)
            if row is None:
                raise NotFoundError(f"No run with id {run_id}.", what="run")
            return self._record(s, row)

    def resolve(self, ref: int | str) -> int:
        """The id of the run that ``ref`` names: a run id (an int, or its digits) or an
        OpenLineage run id."""
        with self.store.session() as s:
            found = _resolve(s, [str(ref)]).get(str(ref))
        if found is None:
            raise NotFoundError(f"No run with id or OpenLineage run id {ref!r}.", what="run")
        return found

    def checks(self, run_id: int) -> list[CheckRecord]:
        """The checks of a run, in the order they were made."""
        with self.store.session() as s:
            if s.get(RunRow, run_id) is None:
                raise NotFoundError(f"No run with id {run_id}.", what="run")
            return _checks(s, run_id)

    def trace(self, target: int | str) -> Trace:
        """Walk from a run (its id) or an artifact (its sha256, or a prefix of 8 or more hex
        digits) backward to the raw inputs and forward to everything derived from it."""
        with self.store.session() as s:
            if isinstance(target, int):
                if s.get(RunRow, target) is None:
                    raise NotFoundError(f"No run with id {target}.", what="run")
                up_start = self._artifacts_of(s, [target], "in")
                down_start = self._artifacts_of(s, [target], "out")
                first = [target]
            else:
                artifact = self._artifact(s, target)
                up_start = down_start = {artifact}
                first = []
            upstream = self._walk(s, up_start, backward=True)
            downstream = self._walk(s, down_start, backward=False)
            return Trace(
                upstream=[self._record(s, s.get(RunRow, i)) for i in first + upstream],  # type: ignore[arg-type]
                downstream=[self._record(s, s.get(RunRow, i)) for i in downstream],  # type: ignore[arg-type]
            )

    def stale(self, run_id: int, *, max_age: timedelta | None = None) -> list[str]:
        """Why a run's results may be out of date (empty when they are not): an input that has
        a newer version under the same name, or the run being older than ``max_age``."""
        record = self.get(run_id)
        reasons = []
        with self.store.session() as s:
            for ref in record.inputs:
                if not ref.name:
                    continue
                mine = s.scalar(
                    select(LineageArtifactRow).where(LineageArtifactRow.sha256 == ref.sha256)
                )
                assert mine is not None
                newer = s.scalar(
                    select(LineageArtifactRow)
                    .where(
                        LineageArtifactRow.name == ref.name,
                        LineageArtifactRow.first_seen > mine.first_seen,
                    )
                    .order_by(LineageArtifactRow.first_seen.desc())
                    .limit(1)
                )
                if newer is not None:
                    reasons.append(
                        f"input '{ref.name}' has a newer version ({newer.sha256[:12]}, seen "
                        f"{newer.first_seen:%Y-%m-%d %H:%M})"
                    )
        if max_age is not None and utcnow() - record.started_at > max_age:
            reasons.append(f"the run is older than {max_age}")
        return reasons

    # -- predictions ---------------------------------------------------------------------------

    def batch_runs(self, model: str, start: datetime, end: datetime) -> list[tuple[RunRecord, int]]:
        """The runs that produced the features of ``model``'s prediction batches overlapping
        ``[start, end)``, each with the rows of those batches, most rows first.

        A batch names its run when it was logged with ``Monitor.log(..., run=...)``; a
        reference that names no recorded run is left out.
        """
        first, last = as_utc(start, "start"), as_utc(end, "end")
        model_id = self.store.get_model(model).id
        with self.store.session() as s:
            sums = s.execute(
                select(BatchRow.run_ref, func.sum(BatchRow.n_rows))
                .where(
                    BatchRow.model_id == model_id,
                    BatchRow.kind == "rows",
                    BatchRow.run_ref != "",
                    BatchRow.first_at < last,
                    BatchRow.last_at >= first,
                )
                .group_by(BatchRow.run_ref)
            ).all()
            resolved = _resolve(s, [ref for ref, _ in sums])
            rows: dict[int, int] = {}
            for ref, n in sums:
                if ref in resolved:
                    rows[resolved[ref]] = rows.get(resolved[ref], 0) + int(n or 0)
            ordered = sorted(rows.items(), key=lambda item: (-item[1], -item[0]))
            return [(self._record(s, s.get(RunRow, i)), n) for i, n in ordered]  # type: ignore[arg-type]

    def trace_prediction(
        self,
        model: str,
        prediction_id: str,
        rowlog: RowLog,
        *,
        id: str = "id",
        timestamp: str = "timestamp",
    ) -> Trace:
        """Trace one prediction upstream: the row with ``prediction_id`` in ``model``'s row log,
        the batch it came in (or, for rows the store has no batch of, the batch of the model
        whose time span covers the row's time), the run that batch names, and that run's
        :meth:`trace` (``upstream[0]`` is the run itself).

        Raises:
            NotFoundError: no row has the id, or its batch names no run, or a run that is not
                recorded.
        """
        import polars as pl

        from mlwarden.store.rowlog import BATCH_ID

        logged = rowlog.read(model, columns=[id, timestamp, BATCH_ID], timestamp=timestamp)
        # One vectorized comparison over the id column; the newest match wins.
        found = logged.filter(pl.col(id).cast(pl.String) == str(prediction_id)).tail(1)
        if found.height == 0:
            raise NotFoundError(
                f"Model '{model}' logged no row with {id} = {prediction_id!r}.", what="prediction"
            )
        at, batch_id = found.select(timestamp, BATCH_ID).row(0)
        at = at.replace(tzinfo=UTC) if at.tzinfo is None else at.astimezone(UTC)
        model_id = self.store.get_model(model).id
        with self.store.session() as s:
            own = s.scalar(
                select(BatchRow).where(
                    BatchRow.model_id == model_id,
                    BatchRow.batch_id == batch_id,
                    BatchRow.kind == "rows",
                )
            )
            if own is None:
                own = s.scalar(
                    select(BatchRow)
                    .where(
                        BatchRow.model_id == model_id,
                        BatchRow.kind == "rows",
                        BatchRow.run_ref != "",
                        BatchRow.first_at <= at,
                        BatchRow.last_at >= at,
                    )
                    .order_by(BatchRow.received_at.desc(), BatchRow.id.desc())
                    .limit(1)
                )
            if own is None or not own.run_ref:
                raise NotFoundError(
                    f"Prediction {prediction_id!r} of model '{model}' (logged "
                    f"{at:%Y-%m-%d %H:%M:%S}) came in a batch linked to no pipeline run; log with "
                    "Monitor.log(..., run=...) to link predictions to the run that made their "
                    "features.",
                    what="run",
                )
            ref = own.run_ref
            run_id = _resolve(s, [ref]).get(ref)
        if run_id is None:
            raise NotFoundError(
                f"Prediction {prediction_id!r} of model '{model}' came in a batch linked to run "
                f"{ref!r}, which is not recorded (no run has that id or OpenLineage run id).",
                what="run",
            )
        return self.trace(run_id)

    # -- helpers -------------------------------------------------------------------------------

    def _artifact(self, s: Any, sha: str) -> int:
        if len(sha) < 8:
            raise ParameterError(
                f"An artifact is named by its sha256 or a prefix of at least 8 hex digits; got "
                f"{sha!r}.",
                parameter="target",
            )
        rows = list(
            s.scalars(
                select(LineageArtifactRow.id).where(LineageArtifactRow.sha256.startswith(sha))
            ).all()
        )
        if not rows:
            raise NotFoundError(f"No artifact whose sha256 starts with {sha!r}.", what="artifact")
        if len(rows) > 1:
            raise ParameterError(f"{sha!r} names {len(rows)} artifacts; give more digits.")
        return int(rows[0])

    @staticmethod
    def _artifacts_of(s: Any, runs: list[int], direction: str) -> set[int]:
        return set(
            s.scalars(
                select(RunIORow.artifact_id).where(
                    RunIORow.run_id.in_(runs), RunIORow.direction == direction
                )
            )
        )

    def _walk(self, s: Any, start: set[int], *, backward: bool) -> list[int]:
        """Runs reached from ``start`` artifacts: backward through the runs that wrote them and
        their inputs, or forward through the runs that read them and their outputs."""
        reached: list[int] = []
        seen_runs: set[int] = set()
        seen_artifacts = set(start)
        queue = deque(start)
        via, onward = ("out", "in") if backward else ("in", "out")
        while queue:
            artifact = queue.popleft()
            runs = s.scalars(
                select(RunIORow.run_id).where(
                    RunIORow.artifact_id == artifact, RunIORow.direction == via
                )
            )
            for run_id in runs:
                if run_id in seen_runs:
                    continue
                seen_runs.add(run_id)
                reached.append(run_id)
                for nxt in self._artifacts_of(s, [run_id], onward) - seen_artifacts:
                    seen_artifacts.add(nxt)
                    queue.append(nxt)
        return reached

    @staticmethod
    def _record(s: Any, row: RunRow) -> RunRecord:
        io = s.execute(
            select(RunIORow.direction, LineageArtifactRow)
            .join(LineageArtifactRow, LineageArtifactRow.id == RunIORow.artifact_id)
            .where(RunIORow.run_id == row.id)
            .order_by(RunIORow.id)
        ).all()
        refs = {
            d: tuple(ArtifactRef(a.sha256, a.name, a.kind) for direction, a in io if direction == d)
            for d in ("in", "out")
        }
        return RunRecord(
            id=row.id,
            name=row.name,
            status=row.status,
            started_at=row.started_at,
            ended_at=row.ended_at,
            code_version=row.code_version,
            params=dict(row.params),
            owner=row.owner,
            tags=dict(row.tags),
            error=row.error,
            inputs=refs["in"],
            outputs=refs["out"],
            checks=tuple(_checks(s, row.id)),
            external_id=row.external_id,
        )


class Run:
    """An open run: record what it reads and writes, and check its data; closed by
    :func:`run`."""

    def __init__(self, lineage: Lineage, run_id: int) -> None:
        self.lineage = lineage
        self.id = run_id

    def input(self, obj: object, *, name: str = "") -> ArtifactRef:
        return self.lineage.record(self.id, obj, "in", name)

    def output(self, obj: object, *, name: str = "") -> ArtifactRef:
        return self.lineage.record(self.id, obj, "out", name)

    def check(
        self, suite: SuiteLike, data: object, *, stage: Stage = "after", name: str = ""
    ) -> Validation:
        """Validate ``data`` with ``suite`` (a :class:`~mlwarden.quality.Suite` or the path of
        its YAML) and store the result with this run; return the validation (the caller
        decides what a failure means: raise, and the run is recorded as failed)."""
        return self.lineage.record_check(self.id, suite, data, stage=stage, name=name)


@contextlib.contextmanager
def run(
    name: str,
    *,
    store: Store | None = None,
    params: Mapping[str, Any] | None = None,
    owner: str = "",
    tags: Mapping[str, Any] | None = None,
    code: str | None = None,
) -> Iterator[Run]:
    """A run of the step ``name``: succeeded when the block ends, failed (with the error, which
    is raised on) when it raises."""
    lineage = Lineage(store)
    current = Run(
        lineage,
        lineage.start(
            name,
            params=params,
            owner=owner,
            tags=tags,
            code=code_version() if code is None else code,
        ),
    )
    try:
        yield current
    except BaseException as exc:
        lineage.finish(current.id, error=exc)
        raise
    lineage.finish(current.id)


def component(
    name: str | None = None,
    *,
    store: Store | None = None,
    owner: str = "",
    checks_before: Checks | None = None,
    checks_after: SuiteLike | Sequence[SuiteLike] | None = None,
    on_fail: Literal["record", "raise"] = "record",
) -> Callable[[F], F]:
    """Decorate a pipeline step: each call is a run; its arguments that are tables, files or
    bytes are its inputs, its return value (when not None) its output, keyword arguments of
    plain values its parameters.

    Parameters:
        checks_before: quality suites (a :class:`~mlwarden.quality.Suite`, the path of its
            YAML, or a list of them) validated on every table argument before the step runs,
            or a dict from argument name to suites, validated on that argument only.
        checks_after: suites validated on the table the step returns.
        on_fail: ``"record"`` stores a failed check with the run and goes on; ``"raise"``
            raises :class:`~mlwarden.exceptions.InputError` (a failed check before the step
            keeps it from running), and the run is recorded as failed.

    Example:
        >>> import polars as pl
        >>> from mlwarden.quality import Suite
        >>> positive = Suite.from_dict({"name": "positive", "checks": [
        ...     {"check": "range", "column": "temperature_c", "min": 0, "max": 400}]})
        >>> store = Store("sqlite://")
        >>> @component("featurize", store=store, checks_before=positive)
        ... def featurize(raw: pl.DataFrame) -> pl.DataFrame:
        ...     return raw.with_columns(kelvin=pl.col("temperature_c") + 273.15)
        >>> _ = featurize(pl.DataFrame({"temperature_c": [231.0, -4.0]}))
        >>> (check,) = Lineage(store).runs("featurize")[0].checks
        >>> check.stage, check.name, check.passed
        ('before', 'positive(raw)', False)
    """
    if on_fail not in ("record", "raise"):
        raise ParameterError(
            f"The 'on_fail' parameter of component is 'record' or 'raise'; got {on_fail!r}.",
            parameter="on_fail",
        )
    before = _check_plan(checks_before, "checks_before")
    if isinstance(checks_after, Mapping):
        raise ParameterError(
            "The 'checks_after' parameter of component is a suite or a list of suites (they "
            "validate the returned table); got a dict.",
            parameter="checks_after",
        )
    after = _check_plan(checks_after, "checks_after").get(None, [])

    def decorate(func: F) -> F:
        step = name or func.__name__
        version = code_version(func)
        signature = inspect.signature(func)
        unknown = sorted(k for k in before if k is not None and k not in signature.parameters)
        if unknown:
            raise ParameterError(
                f"checks_before names {', '.join(map(repr, unknown))}, not a parameter of "
                f"{func.__name__}{signature}.",
                parameter="checks_before",
            )

        def checked(current: Run, stage: Stage, label: str, suite: Suite, data: object) -> None:
            validation = current.check(suite, data, stage=stage, name=label)
            if on_fail == "raise" and not validation.passed:
                failed = validation.failed("error")
                shown = ", ".join(r.label for r in failed[:5])
                raise InputError(
                    f"The check '{label}' {stage} step '{step}' failed ({shown}); its result "
                    f"is stored with run {current.id} (Lineage.checks({current.id})).",
                    column=failed[0].column if failed else None,
                )

        @functools.wraps(func)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            params = {k: v for k, v in kwargs.items() if isinstance(v, int | float | str | bool)}
            with run(step, store=store, params=params, owner=owner, code=version) as current:
                for value in [*args, *kwargs.values()]:
                    if _is_artifact(value):
                        current.input(value)
                if before:
                    for argument, value in _arguments(signature, args, kwargs):
                        parameter = argument.split("[")[0]  # rest[2] is checked as rest
                        suites = before.get(parameter, []) + before.get(None, [])
                        if suites and not _is_frame(value):
                            if parameter in before:
                                raise InputError(
                                    f"checks_before of step '{step}' validate argument "
                                    f"'{argument}', which is a {type(value).__name__}, not a "
                                    "table."
                                )
                            continue
                        for label, suite in suites:
                            checked(current, "before", f"{label}({argument})", suite, value)
                result = func(*args, **kwargs)
                if result is not None:
                    current.output(result)
                if after and not _is_frame(result):
                    raise InputError(
                        f"checks_after of step '{step}' validate the table it returns; it "
                        f"returned a {type(result).__name__}."
                    )
                for label, suite in after:
                    checked(current, "after", label, suite, result)
                return result

        return wrapper  # type: ignore[return-value]

    return decorate


# -- checks ------------------------------------------------------------------------------------


def _is_suite(value: object) -> bool:
    from mlwarden.quality import Suite

    return isinstance(value, Suite)


def _suite(value: object) -> Suite:
    from mlwarden.quality import Suite

    if isinstance(value, Suite):
        return value
    if isinstance(value, str | Path):
        return Suite.from_yaml(Path(value))
    raise ParameterError(
        f"A check is a quality Suite or the path of its YAML file; got {type(value).__name__}.",
        parameter="suite",
    )


def _check_plan(value: object, parameter: str) -> dict[str | None, list[tuple[str, Suite]]]:
    """Suites loaded once, with their labels, by the argument they check (None: every table
    argument, or the returned table)."""
    if value is None:
        return {}
    targets = value.items() if isinstance(value, Mapping) else [(None, value)]
    plan: dict[str | None, list[tuple[str, Suite]]] = {}
    for argument, suites in targets:
        if _is_suite(suites) or isinstance(suites, str | Path):
            listed: list[object] = [suites]
        elif isinstance(suites, Sequence):
            listed = list(suites)
        else:
            raise ParameterError(
                f"{parameter} takes a quality Suite, the path of its YAML, or a list of them; "
                f"got {type(suites).__name__}.",
                parameter=parameter,
            )
        if not listed:
            continue
        for i, item in enumerate(listed):
            try:
                suite = _suite(item)
            except ParameterError as exc:
                raise ParameterError(f"{parameter}: {exc}", parameter=parameter) from exc
            default = Path(item).stem if isinstance(item, str | Path) else f"suite-{i + 1}"
            plan.setdefault(argument, []).append((suite.name or default, suite))
    return plan


def _arguments(
    signature: inspect.Signature, args: tuple[Any, ...], kwargs: dict[str, Any]
) -> list[tuple[str, object]]:
    """The call's arguments by name (``rest[0]`` for the items of ``*rest``)."""
    try:
        bound = signature.bind(*args, **kwargs)
    except TypeError:
        return []  # the call itself raises the error
    named: list[tuple[str, object]] = []
    for key, value in bound.arguments.items():
        kind = signature.parameters[key].kind
        if kind is inspect.Parameter.VAR_POSITIONAL:
            named.extend((f"{key}[{i}]", v) for i, v in enumerate(value))
        elif kind is inspect.Parameter.VAR_KEYWORD:
            named.extend((str(k), v) for k, v in value.items())
        else:
            named.append((key, value))
    return named


def _checks(s: Any, run_id: int) -> list[CheckRecord]:
    rows = s.scalars(
        select(RunCheckRow).where(RunCheckRow.run_id == run_id).order_by(RunCheckRow.id)
    )
    return [
        CheckRecord(r.id, r.stage, r.name, r.passed, dict(r.result), r.created_at) for r in rows
    ]


# -- OpenLineage -------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Event:
    """An OpenLineage RunEvent, checked, with what mlwarden keeps of it."""

    run_id: str
    type: str
    time: datetime
    job: str
    tags: dict[str, Any]
    code: str
    owner: str
    error: str
    datasets: tuple[tuple[str, str, str, str], ...]  # sha256, name, kind, direction


class _Reader:
    """Reads the fields of one event; every error names the field's path (after ``where``,
    the event's place in a list) and what was expected."""

    def __init__(self, where: str) -> None:
        self.where = where

    def bad(self, path: str, expected: str, value: object, shown: str | None = None) -> InputError:
        got = shown if shown is not None else "nothing" if value is _MISSING else _shown(value)
        return InputError(
            f"{self.where}{path}: expected {expected}; got {got}.", column=self.where + path
        )

    def field(self, parent: Mapping[str, Any], key: str, path: str, expected: str) -> Any:
        """A required field."""
        value = parent.get(key, _MISSING)
        if value is _MISSING or value is None:
            raise self.bad(path, expected, _MISSING)
        return value

    def text(self, parent: Mapping[str, Any], key: str, path: str, *, limit: int = MAX_NAME) -> str:
        """A required non-empty string of at most ``limit`` characters."""
        expected = f"a string of 1-{limit} characters"
        value = self.field(parent, key, path, expected)
        if not isinstance(value, str) or not value or len(value) > limit:
            raise self.bad(path, expected, value)
        return value

    def optional_text(
        self, parent: Mapping[str, Any], key: str, path: str, *, limit: int = MAX_NAME
    ) -> str | None:
        return None if parent.get(key) is None else self.text(parent, key, path, limit=limit)

    def obj(self, parent: Mapping[str, Any], key: str, path: str) -> Mapping[str, Any]:
        """An optional object (empty when missing)."""
        value = parent.get(key)
        if value is None:
            return {}
        if not isinstance(value, Mapping):
            raise self.bad(path, "an object", value)
        return value


def _parse_event(event: object, where: str) -> _Event:
    """Check an OpenLineage RunEvent and keep what mlwarden stores of it."""
    r = _Reader(where)
    if not isinstance(event, Mapping):
        raise r.bad("(event)", "an OpenLineage RunEvent (a JSON object)", event)
    kind = event.get("eventType") or "OTHER"
    if kind not in EVENT_TYPES:
        raise r.bad("eventType", f"one of {', '.join(EVENT_TYPES)}", kind)
    expected_time = "an ISO 8601 time such as 2024-05-01T08:00:00Z"
    raw_time = r.field(event, "eventTime", "eventTime", expected_time)
    try:
        moment = datetime.fromisoformat(raw_time) if isinstance(raw_time, str) else None
    except ValueError:
        moment = None
    if moment is None:
        raise r.bad("eventTime", expected_time, raw_time)
    moment = moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)

    run_part = r.obj(event, "run", "run")
    raw_id = r.field(run_part, "runId", "run.runId", "a UUID string")
    try:
        run_id = str(uuid.UUID(raw_id)) if isinstance(raw_id, str) and len(raw_id) <= 64 else None
    except ValueError:
        run_id = None
    if run_id is None:
        raise r.bad("run.runId", "a UUID string", raw_id)
    run_facets = r.obj(run_part, "facets", "run.facets")

    if not isinstance(event.get("job"), Mapping):
        raise r.bad("job", "an object with a namespace and a name", event.get("job", _MISSING))
    job = event["job"]
    tags: dict[str, Any] = {"namespace": r.text(job, "namespace", "job.namespace")}
    name = r.text(job, "name", "job.name", limit=200)
    tags.update(_run_tags(r, run_facets))
    code, owner = _job_facets(r, r.obj(job, "facets", "job.facets"))

    error = ""
    if kind == "FAIL":
        failure = r.obj(run_facets, "errorMessage", "run.facets.errorMessage")
        message = r.optional_text(
            failure, "message", "run.facets.errorMessage.message", limit=1 << 20
        )
        error = (message or "failed")[:_ERROR_CHARS]
    elif kind == "ABORT":
        error = "aborted"
    return _Event(
        run_id=run_id,
        type=kind,
        time=moment,
        job=name,
        tags=tags,
        code=code,
        owner=owner,
        error=error,
        datasets=_datasets(r, event),
    )


def _run_tags(r: _Reader, facets: Mapping[str, Any]) -> dict[str, str]:
    """The parent run and job, and the nominal start time, of the run facets."""
    tags = {}
    parent = r.obj(facets, "parent", "run.facets.parent")
    if parent:
        parent_run = r.obj(parent, "run", "run.facets.parent.run")
        tags["parent_run"] = r.text(parent_run, "runId", "run.facets.parent.run.runId", limit=200)
        parent_job = r.obj(parent, "job", "run.facets.parent.job")
        if parent_job:
            tags["parent_job"] = "/".join(
                r.text(parent_job, key, f"run.facets.parent.job.{key}")
                for key in ("namespace", "name")
            )
    nominal = r.obj(facets, "nominalTime", "run.facets.nominalTime")
    start = r.optional_text(
        nominal, "nominalStartTime", "run.facets.nominalTime.nominalStartTime", limit=100
    )
    if start is not None:
        tags["nominal_start"] = start
    return tags


def _job_facets(r: _Reader, facets: Mapping[str, Any]) -> tuple[str, str]:
    """The code version (the source location's version, else a hash of the source code, else
    ``""``) and the owners of the job facets."""
    location = r.obj(facets, "sourceCodeLocation", "job.facets.sourceCodeLocation")
    source = r.obj(facets, "sourceCode", "job.facets.sourceCode")
    code = r.optional_text(location, "version", "job.facets.sourceCodeLocation.version", limit=100)
    if code is None:
        text = r.optional_text(
            source, "sourceCode", "job.facets.sourceCode.sourceCode", limit=1 << 24
        )
        code = "" if text is None else "source:" + hashlib.sha256(text.encode()).hexdigest()[:16]
    ownership = r.obj(facets, "ownership", "job.facets.ownership")
    owners = ownership.get("owners") or []
    if not isinstance(owners, list):
        raise r.bad("job.facets.ownership.owners", "a list of owners", owners)
    names = []
    for i, item in enumerate(owners[:20]):
        path = f"job.facets.ownership.owners[{i}]"
        if not isinstance(item, Mapping):
            raise r.bad(path, "an object with a name", item)
        names.append(r.text(item, "name", f"{path}.name", limit=200))
    return code, ", ".join(names)[:200]


def _datasets(r: _Reader, event: Mapping[str, Any]) -> tuple[tuple[str, str, str, str], ...]:
    """The event's input and output datasets as ``(sha256, name, kind, direction)``."""
    found: dict[tuple[str, str], tuple[str, str, str, str]] = {}
    total = 0
    for side, direction in (("inputs", "in"), ("outputs", "out")):
        listed = event.get(side) or []
        if not isinstance(listed, list):
            raise r.bad(side, "a list of datasets", listed)
        total += len(listed)
        if total > MAX_DATASETS:
            raise r.bad(
                side,
                f"at most {MAX_DATASETS:,} datasets in inputs and outputs together",
                listed,
                shown=f"{total:,}",
            )
        for i, item in enumerate(listed):
            path = f"{side}[{i}]"
            if not isinstance(item, Mapping):
                raise r.bad(path, "a dataset: an object with a namespace and a name", item)
            namespace = r.text(item, "namespace", f"{path}.namespace")
            name = r.text(item, "name", f"{path}.name")
            full = f"{namespace}/{name}"
            if len(full) > MAX_NAME:
                raise r.bad(
                    path,
                    f"a namespace and a name of at most {MAX_NAME} characters together",
                    full,
                    shown=f"{len(full):,}",
                )
            facets = r.obj(item, "facets", f"{path}.facets")
            version = r.optional_text(
                r.obj(facets, "version", f"{path}.facets.version"),
                "datasetVersion",
                f"{path}.facets.version.datasetVersion",
            )
            sha = dataset_hash(namespace, name, version)
            found.setdefault((sha, direction), (sha, full, "dataset", direction))
    return tuple(found.values())


def _apply(s: Any, event: _Event) -> int:
    """Upsert the event's run and link its datasets, in the session ``s``; return the run id."""
    row = s.scalar(select(RunRow).where(RunRow.external_id == event.run_id))
    if row is None:
        row = RunRow(
            name=event.job,
            external_id=event.run_id,
            status="running",
            started_at=event.time,
            code_version=event.code,
            params={},
            owner=event.owner,
            tags=event.tags,
            error="",
        )
        s.add(row)
        s.flush()
    else:
        row.started_at = min(row.started_at, event.time)
        if event.code:
            row.code_version = event.code
        if event.owner:
            row.owner = event.owner
        row.tags = {**row.tags, **event.tags}
    terminal = _TERMINAL.get(event.type)
    if terminal is not None and (row.ended_at is None or event.time >= row.ended_at):
        row.status, row.error, row.ended_at = terminal, event.error, event.time
    if event.datasets:
        _link(s, row.id, list(event.datasets), event.time)
    return int(row.id)


def _link(
    s: Any, run_id: int, items: list[tuple[str, str, str, str]], seen: datetime
) -> list[LineageArtifactRow]:
    """Find or create the artifacts ``(sha256, name, kind, direction)`` and link them to the
    run; an artifact first seen now gets ``seen`` as its first sighting (an earlier ``seen``
    moves an existing one back: events may arrive late). Returns the artifacts, in order."""
    if s.get(RunRow, run_id) is None:
        raise NotFoundError(f"No run with id {run_id}.", what="run")
    shas = list(dict.fromkeys(sha for sha, _, _, _ in items))
    known = {
        a.sha256: a
        for a in s.scalars(select(LineageArtifactRow).where(LineageArtifactRow.sha256.in_(shas)))
    }
    for sha, name, kind, _ in items:
        artifact = known.get(sha)
        if artifact is None:
            artifact = LineageArtifactRow(sha256=sha, name=name, kind=kind, first_seen=seen)
            s.add(artifact)
            known[sha] = artifact
        else:
            if name and not artifact.name:
                artifact.name = name
            if seen < artifact.first_seen:
                artifact.first_seen = seen
    s.flush()
    linked = set(
        s.execute(
            select(RunIORow.artifact_id, RunIORow.direction).where(RunIORow.run_id == run_id)
        ).all()
    )
    for sha, _, _, direction in items:
        key = (known[sha].id, direction)
        if key not in linked:
            s.add(RunIORow(run_id=run_id, artifact_id=known[sha].id, direction=direction))
            linked.add(key)
    return [known[sha] for sha, _, _, _ in items]


def _resolve(s: Any, refs: Iterable[str]) -> dict[str, int]:
    """The run ids that run references name: digits are a run id, anything else an OpenLineage
    run id (compared in its canonical UUID form when it is one)."""
    refs = set(refs)
    numbers = {r: int(r) for r in refs if r.isascii() and r.isdigit() and len(r) <= 18}
    external: dict[str, list[str]] = {}
    for r in refs - set(numbers):
        external.setdefault(_canonical(r), []).append(r)
    found: dict[str, int] = {}
    if numbers:
        ids = set(s.scalars(select(RunRow.id).where(RunRow.id.in_(set(numbers.values())))))
        found.update({r: n for r, n in numbers.items() if n in ids})
    if external:
        for external_id, run_id in s.execute(
            select(RunRow.external_id, RunRow.id).where(RunRow.external_id.in_(list(external)))
        ):
            found.update(dict.fromkeys(external[external_id], int(run_id)))
    return found


def _canonical(ref: str) -> str:
    try:
        return str(uuid.UUID(ref))
    except ValueError:
        return ref


_MISSING: Final = object()


def _shown(value: object) -> str:
    text = repr(value) if not isinstance(value, str) or value else "''"
    if isinstance(value, Mapping | list):
        text = f"a {'JSON object' if isinstance(value, Mapping) else 'list'}"
        if isinstance(value, list):
            text += f" of {len(value)}"
    return text if len(text) <= 80 else text[:77] + "..."


# -- small helpers -----------------------------------------------------------------------------


def _is_frame(value: object) -> bool:
    import polars as pl

    return isinstance(value, pl.DataFrame) or (
        type(value).__module__.startswith(("pandas", "pyarrow"))
        and type(value).__name__ in ("DataFrame", "Table")
    )


def _is_artifact(value: object) -> bool:
    import polars as pl

    if isinstance(value, (str, Path)):
        return Path(value).is_file()
    return isinstance(value, pl.DataFrame | bytes) or type(value).__module__.startswith(
        ("pandas", "pyarrow")
    )


def _jsonable(values: dict[str, Any]) -> dict[str, Any]:
    return {
        str(k): v if isinstance(v, int | float | str | bool | None) else repr(v)
        for k, v in values.items()
    }
