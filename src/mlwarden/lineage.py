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
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import inspect
import pickle
import subprocess
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final, TypeVar

from sqlalchemy import select

from mlwarden.exceptions import NotFoundError, ParameterError
from mlwarden.store.metadata import Store
from mlwarden.store.schema import LineageArtifactRow, RunIORow, RunRow, utcnow

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator, Mapping
    from datetime import datetime, timedelta

__all__ = ["ArtifactRef", "Lineage", "Run", "RunRecord", "Trace", "component", "run"]

F = TypeVar("F", bound="Callable[..., Any]")
_CHUNK: Final = 1 << 20


@dataclass(frozen=True)
class ArtifactRef:
    """A content-hashed artifact."""

    sha256: str
    name: str
    kind: str


@dataclass(frozen=True)
class RunRecord:
    """A stored run with its inputs and outputs."""

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
            artifact = s.scalar(select(LineageArtifactRow).where(LineageArtifactRow.sha256 == sha))
            if artifact is None:
                artifact = LineageArtifactRow(sha256=sha, name=name, kind=kind)
                s.add(artifact)
                s.flush()
            elif name and not artifact.name:
                artifact.name = name
            known = s.scalar(
                select(RunIORow).where(
                    RunIORow.run_id == run_id,
                    RunIORow.artifact_id == artifact.id,
                    RunIORow.direction == direction,
                )
            )
            if known is None:
                s.add(RunIORow(run_id=run_id, artifact_id=artifact.id, direction=direction))
            return ArtifactRef(sha, artifact.name, kind)

    def finish(self, run_id: int, *, error: BaseException | None = None) -> None:
        with self.store.session() as s:
            row = s.get(RunRow, run_id)
            if row is None:
                raise NotFoundError(f"No run with id {run_id}.", what="run")
            row.status = "failed" if error is not None else "succeeded"
            row.error = "" if error is None else f"{type(error).__name__}: {error}"[:4000]
            row.ended_at = utcnow()

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
        )


class Run:
    """An open run: record what it reads and writes; closed by :func:`run`."""

    def __init__(self, lineage: Lineage, run_id: int) -> None:
        self.lineage = lineage
        self.id = run_id

    def input(self, obj: object, *, name: str = "") -> ArtifactRef:
        return self.lineage.record(self.id, obj, "in", name)

    def output(self, obj: object, *, name: str = "") -> ArtifactRef:
        return self.lineage.record(self.id, obj, "out", name)


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
    name: str | None = None, *, store: Store | None = None, owner: str = ""
) -> Callable[[F], F]:
    """Decorate a pipeline step: each call is a run; its arguments that are tables, files or
    bytes are its inputs, its return value (when not None) its output, keyword arguments of
    plain values its parameters."""

    def decorate(func: F) -> F:
        step = name or func.__name__
        version = code_version(func)

        @functools.wraps(func)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            params = {k: v for k, v in kwargs.items() if isinstance(v, int | float | str | bool)}
            with run(step, store=store, params=params, owner=owner, code=version) as current:
                for value in [*args, *kwargs.values()]:
                    if _is_artifact(value):
                        current.input(value)
                result = func(*args, **kwargs)
                if result is not None:
                    current.output(result)
                return result

        return wrapper  # type: ignore[return-value]

    return decorate


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
