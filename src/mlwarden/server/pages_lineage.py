"""The lineage pages of the dashboard: the graph of pipeline runs and the artifacts they read and
wrote (``/lineage``), and one run with its inputs, outputs, checks, staleness and the runs
upstream and downstream of it (``/lineage/runs/{id}``).

The graph is bipartite (artifact → run → artifact) and laid out here, in Python, in columns from
left to right, following the layered method of Sugiyama, Tagawa and Toda (1981): each node's
column is its longest path from the raw inputs (a raw input is then pulled next to its first
reader); an edge that spans several columns passes through invisible waypoints; the order within
each column is improved by barycenter sweeps, keeping the order with the fewest crossings; then
each node moves towards the heights of its neighbours as far as the spacing allows (an isotonic
fit). The page draws the result as inline SVG, with no script.

The page reads the newest :data:`MAX_RUNS` runs, their inputs and outputs, the newest version of
each artifact name and the runs' checks in five statements, however many runs it shows.
"""

from __future__ import annotations

import heapq
import itertools
import math
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, Final

import numpy as np
import polars as pl
from fastapi import APIRouter, Request
from sqlalchemy import func, select

from mlwarden.exceptions import NotFoundError
from mlwarden.server.dashboard import MAX_DAYS, Viewer, _problem, _render, _store, _when
from mlwarden.store.schema import LineageArtifactRow, RunCheckRow, RunIORow, RunRow

if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence

    from fastapi.responses import Response

    from mlwarden.store.metadata import Store

__all__ = ["MAX_RUNS", "Graph", "LineageData", "layout", "lineage_data", "router"]

MAX_RUNS: Final = 200
STATUSES: Final = ("succeeded", "failed", "running")

RUN_WIDTH: Final = 184.0
RUN_HEIGHT: Final = 44.0
ARTIFACT_WIDTH: Final = 156.0
ARTIFACT_HEIGHT: Final = 30.0
COLUMN_GAP: Final = 72.0
BOX_GAP: Final = 26.0  # room for the marks drawn above a run
WAYPOINT_GAP: Final = 10.0
MARGIN: Final = 24.0
_LABEL_CHARS: Final = 24
_SWEEPS: Final = 16
_PLACEMENT_ROUNDS: Final = 8

_UTC: Final = pl.Datetime("us", "UTC")

router = APIRouter(include_in_schema=False)


# -- reading --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class LineageData:
    """The runs of the lineage page and what they read and wrote.

    Attributes:
        runs: one row per run, newest first: ``id``, ``name``, ``status``, ``started_at``,
            ``ended_at``, ``code_version``, ``owner``, ``checks`` and ``failed_checks`` (check
            results attached to the run, and those that failed), ``stale_inputs`` (names of the
            inputs that have a newer version: the rule of :meth:`mlwarden.lineage.Lineage.stale`).
        io: ``run_id``, ``artifact_id``, ``direction`` (``in`` or ``out``).
        artifacts: ``id``, ``sha256``, ``name``, ``kind``, ``first_seen`` and ``superseded`` (a
            newer artifact has the same name).
        total: runs that match the filters (more than ``runs`` beyond the limit).
        steps: every step name with its number of runs.
    """

    runs: pl.DataFrame
    io: pl.DataFrame
    artifacts: pl.DataFrame
    total: int
    steps: list[tuple[str, int]]


def lineage_data(
    store: Store,
    *,
    step: str | None = None,
    since: datetime | None = None,
    limit: int = MAX_RUNS,
) -> LineageData:
    """The newest ``limit`` runs (of one step, started after ``since``) with their artifacts.

    Example:
        >>> from mlwarden.lineage import run
        >>> from mlwarden.store.metadata import Store
        >>> store = Store("sqlite://")
        >>> store.migrate()
        >>> with run("extract", store=store, code="v1") as r:
        ...     _ = r.input(b"raw v1", name="raw")
        ...     _ = r.output(b"table", name="table")
        >>> with run("extract", store=store, code="v1") as r:
        ...     _ = r.input(b"raw v2", name="raw")
        >>> data = lineage_data(store)
        >>> data.runs.select("id", "stale_inputs").sort("id").rows()
        [(1, ['raw']), (2, [])]
        >>> data.artifacts.sort("id").select("name", "superseded").rows()
        [('raw', True), ('table', False), ('raw', False)]
    """
    with store.session() as s:
        scope = []
        if step is not None:
            scope.append(RunRow.name == step)
        if since is not None:
            scope.append(RunRow.started_at >= since)
        total = int(s.scalar(select(func.count()).select_from(RunRow).where(*scope)) or 0)
        runs = pl.DataFrame(
            s.execute(
                select(
                    RunRow.id,
                    RunRow.name,
                    RunRow.status,
                    RunRow.started_at,
                    RunRow.ended_at,
                    RunRow.code_version,
                    RunRow.owner,
                )
                .where(*scope)
                .order_by(RunRow.started_at.desc(), RunRow.id.desc())
                .limit(limit)
            ).all(),
            schema={
                "id": pl.Int64,
                "name": pl.String,
                "status": pl.String,
                "started_at": _UTC,
                "ended_at": _UTC,
                "code_version": pl.String,
                "owner": pl.String,
            },
            orient="row",
        )
        ids = runs["id"].to_list()
        io_rows = pl.DataFrame(
            s.execute(
                select(
                    RunIORow.run_id,
                    RunIORow.artifact_id,
                    RunIORow.direction,
                    LineageArtifactRow.sha256,
                    LineageArtifactRow.name,
                    LineageArtifactRow.kind,
                    LineageArtifactRow.first_seen,
                )
                .join(LineageArtifactRow, LineageArtifactRow.id == RunIORow.artifact_id)
                .where(RunIORow.run_id.in_(ids))
                .order_by(RunIORow.id)
            ).all(),
            schema={
                "run_id": pl.Int64,
                "artifact_id": pl.Int64,
                "direction": pl.String,
                "sha256": pl.String,
                "name": pl.String,
                "kind": pl.String,
                "first_seen": _UTC,
            },
            orient="row",
        )
        names = io_rows.filter(pl.col("name") != "")["name"].unique().to_list()
        newest = pl.DataFrame(
            s.execute(
                select(LineageArtifactRow.name, func.max(LineageArtifactRow.first_seen))
                .where(LineageArtifactRow.name.in_(names))
                .group_by(LineageArtifactRow.name)
            ).all(),
            schema={"name": pl.String, "newest": _UTC},
            orient="row",
        )
        checks = pl.DataFrame(
            s.execute(
                select(RunCheckRow.run_id, RunCheckRow.passed).where(RunCheckRow.run_id.in_(ids))
            ).all(),
            schema={"run_id": pl.Int64, "passed": pl.Boolean},
            orient="row",
        )
        steps = [
            (str(name), int(n))
            for name, n in s.execute(
                select(RunRow.name, func.count()).group_by(RunRow.name).order_by(RunRow.name)
            ).all()
        ]
    artifacts = (
        io_rows.select("artifact_id", "sha256", "name", "kind", "first_seen")
        .unique("artifact_id", maintain_order=True)
        .rename({"artifact_id": "id"})
        .join(newest, on="name", how="left")
        .with_columns(superseded=(pl.col("newest") > pl.col("first_seen")).fill_null(False))
        .drop("newest")
    )
    stale = (
        io_rows.filter(pl.col("direction") == "in")
        .join(
            artifacts.filter("superseded").select(pl.col("id").alias("artifact_id"), "name"),
            on="artifact_id",
        )
        .group_by("run_id")
        .agg(pl.col("name").unique().sort().alias("stale_inputs"))
    )
    counts = checks.group_by("run_id").agg(
        pl.len().cast(pl.Int64).alias("checks"),
        (~pl.col("passed")).sum().cast(pl.Int64).alias("failed_checks"),
    )
    runs = (
        runs.join(counts, left_on="id", right_on="run_id", how="left")
        .join(stale, left_on="id", right_on="run_id", how="left")
        .with_columns(
            pl.col("checks", "failed_checks").fill_null(0),
            pl.col("stale_inputs").fill_null([]),
        )
    )
    return LineageData(
        runs=runs,
        io=io_rows.select("run_id", "artifact_id", "direction"),
        artifacts=artifacts,
        total=total,
        steps=steps,
    )


# -- layout ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Box:
    """A node to lay out: its kind (``run`` or ``artifact``), height, and a key that orders it
    among its column's nodes before the sweeps (its start, or its first sight)."""

    kind: str
    height: float
    rank: tuple[Any, ...]


@dataclass(frozen=True)
class Placed:
    """A laid-out node: its column and the centre of its left edge."""

    layer: int
    x: float
    y: float
    width: float
    height: float


@dataclass(frozen=True)
class Graph:
    """A laid-out graph: each node's place, each edge as an SVG path, the drawing's size and
    the edge crossings left."""

    nodes: dict[str, Placed]
    edges: list[tuple[str, str, str]]
    width: float
    height: float
    crossings: int


def layout(boxes: Mapping[str, Box], edges: Sequence[tuple[str, str]]) -> Graph:
    """Lay ``boxes`` out in columns, edges from left to right, with few crossings.

    Runs sit in odd columns and artifacts in even ones, since every edge joins the two kinds.
    Edges that would close a cycle (an artifact read and written by one run) are drawn but do
    not constrain the layout.

    Example:
        >>> boxes = {
        ...     "raw": Box("artifact", 30, (0,)), "labels": Box("artifact", 30, (1,)),
        ...     "featurize": Box("run", 44, (2,)), "features": Box("artifact", 30, (3,)),
        ...     "train": Box("run", 44, (4,)), "model": Box("artifact", 30, (5,)),
        ... }
        >>> graph = layout(boxes, [("raw", "featurize"), ("featurize", "features"),
        ...     ("features", "train"), ("labels", "train"), ("train", "model")])
        >>> {k: p.layer for k, p in graph.nodes.items()}
        {'raw': 0, 'labels': 2, 'featurize': 1, 'features': 2, 'train': 3, 'model': 4}
        >>> graph.crossings
        0
    """
    keys = list(boxes)
    forward, backward = _acyclic(keys, boxes, edges)
    layer = _layers(keys, boxes, forward)
    n_layers = max(layer.values(), default=0) + 1
    columns: list[list[str]] = [[] for _ in range(n_layers)]
    heights = {k: b.height for k, b in boxes.items()}
    ranks = {k: b.rank for k, b in boxes.items()}
    chains: list[tuple[str, str, list[str]]] = []
    pairs: list[tuple[str, str]] = []
    for u, v in forward:
        chain = [u]
        for step in range(layer[u] + 1, layer[v]):
            waypoint = f"{u}>{v}@{step}"
            layer[waypoint] = step
            heights[waypoint] = 0.0
            ranks[waypoint] = ranks[u]
            chain.append(waypoint)
        chain.append(v)
        pairs.extend(itertools.pairwise(chain))
        chains.append((u, v, chain))
    for key in sorted(layer, key=lambda k: ranks[k]):
        columns[layer[key]].append(key)
    up: dict[str, list[str]] = {k: [] for k in layer}
    down: dict[str, list[str]] = {k: [] for k in layer}
    for a, b in pairs:
        down[a].append(b)
        up[b].append(a)
    order, crossings = _order(columns, up, down)
    ys = _place(order, up, down, heights)
    lefts = []
    x = MARGIN
    for i in range(n_layers):
        lefts.append(x)
        x += (RUN_WIDTH if i % 2 else ARTIFACT_WIDTH) + COLUMN_GAP
    width = x - COLUMN_GAP + MARGIN
    top = min((ys[k] - heights[k] / 2 for k in ys), default=0.0) - MARGIN
    placed = {}
    for key, box in boxes.items():
        w = RUN_WIDTH if box.kind == "run" else ARTIFACT_WIDTH
        placed[key] = Placed(layer[key], lefts[layer[key]], ys[key] - top, w, box.height)
    height = max((p.y + p.height / 2 for p in placed.values()), default=0.0) + MARGIN
    paths = []
    for u, v, chain in chains:
        points = []
        for key in chain:
            left = lefts[layer[key]]
            y = ys[key] - top
            if key == u:
                points.append((left + placed[u].width, y))
            elif key == v:
                points.append((left, y))
            else:
                w = RUN_WIDTH if layer[key] % 2 else ARTIFACT_WIDTH
                points.extend([(left, y), (left + w, y)])
        paths.append((u, v, _path(points)))
    for u, v in backward:
        source, target = placed[u], placed[v]
        paths.append((u, v, _loop(source.x + source.width, source.y, target.x, target.y)))
    return Graph(placed, paths, width, height, crossings)


def _acyclic(
    keys: list[str], boxes: Mapping[str, Box], edges: Sequence[tuple[str, str]]
) -> tuple[list[tuple[str, str]], list[tuple[str, str]]]:
    """Split the edges into those of a topological order and those that close a cycle (taken
    out at the earliest node of the cycle, by rank)."""
    outgoing: dict[str, list[int]] = {k: [] for k in keys}
    incoming: dict[str, list[int]] = {k: [] for k in keys}
    for i, (u, v) in enumerate(edges):
        outgoing[u].append(i)
        incoming[v].append(i)
    waiting = {k: len(incoming[k]) for k in keys}
    ready = [(boxes[k].rank, k) for k in keys if waiting[k] == 0]
    heapq.heapify(ready)
    done: set[str] = set()
    back: set[int] = set()
    while len(done) < len(keys):
        if not ready:
            first = min((k for k in keys if k not in done), key=lambda k: boxes[k].rank)
            back.update(i for i in incoming[first] if edges[i][0] not in done)
            waiting[first] = 0
            heapq.heappush(ready, (boxes[first].rank, first))
        _, key = heapq.heappop(ready)
        if key in done:
            continue
        done.add(key)
        for i in outgoing[key]:
            target = edges[i][1]
            if i in back or target in done:
                back.add(i)
                continue
            waiting[target] -= 1
            if waiting[target] == 0:
                heapq.heappush(ready, (boxes[target].rank, target))
    forward = [e for i, e in enumerate(edges) if i not in back]
    return forward, [e for i, e in enumerate(edges) if i in back]


def _layers(
    keys: list[str], boxes: Mapping[str, Box], edges: list[tuple[str, str]]
) -> dict[str, int]:
    """Longest path from the sources (artifacts in column 0, runs without inputs in column 1),
    then each raw input pulled to the column before its first reader."""
    preds: dict[str, list[str]] = {k: [] for k in keys}
    succs: dict[str, list[str]] = {k: [] for k in keys}
    for u, v in edges:
        preds[v].append(u)
        succs[u].append(v)
    layer: dict[str, int] = {}
    pending = {k: len(preds[k]) for k in keys}
    queue = [k for k in keys if pending[k] == 0]
    while queue:
        key = queue.pop()
        base = 1 if boxes[key].kind == "run" else 0
        layer[key] = max([layer[p] + 1 for p in preds[key]] + [base])
        for s in succs[key]:
            pending[s] -= 1
            if pending[s] == 0:
                queue.append(s)
    for key in keys:
        if not preds[key] and succs[key] and boxes[key].kind != "run":
            layer[key] = min(layer[s] for s in succs[key]) - 1
    return layer


def _crossings(order: list[list[str]], down: Mapping[str, list[str]]) -> int:
    """Edge crossings between adjacent columns: pairs of edges whose ends swap order."""
    total = 0
    for left, right in itertools.pairwise(order):
        where = {k: i for i, k in enumerate(right)}
        ends = np.array(
            [(i, where[b]) for i, a in enumerate(left) for b in down[a]], dtype=np.int64
        )
        if len(ends) < 2:
            continue
        u, v = ends[:, 0], ends[:, 1]
        total += int(np.sum((u[:, None] < u[None, :]) & (v[:, None] > v[None, :])))
    return total


def _order(
    columns: list[list[str]], up: Mapping[str, list[str]], down: Mapping[str, list[str]]
) -> tuple[list[list[str]], int]:
    """Barycenter sweeps, alternately left to right and back; the order with the fewest
    crossings wins."""
    order = [list(c) for c in columns]
    best = [list(c) for c in order]
    fewest = _crossings(order, down)
    for sweep in range(_SWEEPS):
        if fewest == 0:
            break
        forward = sweep % 2 == 0
        indices = range(1, len(order)) if forward else range(len(order) - 2, -1, -1)
        neighbours = up if forward else down
        for i in indices:
            fixed = order[i - 1] if forward else order[i + 1]
            where = {k: j for j, k in enumerate(fixed)}
            keyed = []
            for j, key in enumerate(order[i]):
                ends = [where[n] for n in neighbours[key]]
                keyed.append((sum(ends) / len(ends) if ends else float(j), j, key))
            order[i] = [key for _, _, key in sorted(keyed)]
        crossings = _crossings(order, down)
        if crossings < fewest:
            fewest = crossings
            best = [list(c) for c in order]
    return best, fewest


def _isotonic(values: list[float]) -> list[float]:
    """The non-decreasing sequence nearest ``values`` in squared error (pool adjacent
    violators)."""
    blocks: list[list[float]] = []  # [mean, size]
    for v in values:
        blocks.append([v, 1.0])
        while len(blocks) > 1 and blocks[-2][0] > blocks[-1][0]:
            mean, size = blocks.pop()
            total = blocks[-1][1] + size
            blocks[-1][0] = (blocks[-1][0] * blocks[-1][1] + mean * size) / total
            blocks[-1][1] = total
    fitted: list[float] = []
    for mean, size in blocks:
        fitted.extend([mean] * int(size))
    return fitted


def _gap(a: str, b: str, heights: Mapping[str, float]) -> float:
    both_boxes = heights[a] > 0 and heights[b] > 0
    return (heights[a] + heights[b]) / 2 + (BOX_GAP if both_boxes else WAYPOINT_GAP)


def _place(
    order: list[list[str]],
    up: Mapping[str, list[str]],
    down: Mapping[str, list[str]],
    heights: Mapping[str, float],
) -> dict[str, float]:
    """Heights of the nodes' centres: each column keeps its order and spacing and moves its
    nodes as near to the mean height of their neighbours as that allows."""
    ys: dict[str, float] = {}
    offsets: list[list[float]] = []
    for column in order:
        offset = [0.0] * len(column)
        for j in range(1, len(column)):
            offset[j] = offset[j - 1] + _gap(column[j - 1], column[j], heights)
        offsets.append(offset)
        ys.update(zip(column, offset, strict=True))
    for rounds in range(_PLACEMENT_ROUNDS):
        last = rounds == _PLACEMENT_ROUNDS - 1
        forward = rounds % 2 == 0
        indices = range(len(order)) if forward else range(len(order) - 1, -1, -1)
        for i in indices:
            column = order[i]
            wanted = []
            for key in column:
                sides = up[key] + down[key] if last else (up[key] if forward else down[key])
                near = sides or up[key] + down[key]
                wanted.append(sum(ys[n] for n in near) / len(near) if near else ys[key])
            offset = offsets[i]
            fitted = _isotonic([w - o for w, o in zip(wanted, offset, strict=True)])
            ys.update((k, f + o) for k, f, o in zip(column, fitted, offset, strict=True))
    return ys


def _path(points: list[tuple[float, float]]) -> str:
    """An SVG path through ``points``: curves between columns, straight lines through a
    waypoint's column."""
    (x0, y0), *rest = points
    parts = [f"M{x0:.1f},{y0:.1f}"]
    for (xa, ya), (xb, yb) in zip(points, rest, strict=False):
        if ya == yb:
            parts.append(f"L{xb:.1f},{yb:.1f}")
        else:
            mid = (xa + xb) / 2
            parts.append(f"C{mid:.1f},{ya:.1f} {mid:.1f},{yb:.1f} {xb:.1f},{yb:.1f}")
    return " ".join(parts)


def _loop(xa: float, ya: float, xb: float, yb: float) -> str:
    """An edge drawn against the flow (it closes a cycle): out to the right, back to the left."""
    reach = max(60.0, abs(xa - xb) / 2)
    return (
        f"M{xa:.1f},{ya:.1f} C{xa + reach:.1f},{ya - 50:.1f} {xb - reach:.1f},{yb - 50:.1f} "
        f"{xb:.1f},{yb:.1f}"
    )


# -- the graph page ------------------------------------------------------------------------------


@dataclass(frozen=True)
class RunNode:
    """A run as drawn: where, what it says, and its marks."""

    id: int
    place: Placed
    label: str
    sub: str
    status: str
    stale: str
    failed_checks: int
    checks: int
    tooltip: str


@dataclass(frozen=True)
class ArtifactNode:
    """An artifact as drawn."""

    id: int
    place: Placed
    label: str
    sub: str
    superseded: bool
    tooltip: str


@dataclass(frozen=True)
class Edge:
    """An edge as drawn: an SVG path, and whether it enters a stale run from a superseded
    input."""

    path: str
    outdated: bool


def _short(text: str, n: int = _LABEL_CHARS) -> str:
    """``text`` cut to ``n`` characters with an ellipsis; a long file path keeps its end."""
    if len(text) <= n:
        return text
    if "/" in text:
        return "…" + text[-(n - 1) :]
    return text[: n - 1] + "…"


def _status_class(status: str) -> str:
    return status if status in STATUSES else "other"


def duration(seconds: float | None) -> str:
    """How long a run took, for a table cell.

    Example:
        >>> [duration(s) for s in (0.0042, 12.34, 75, 7_500, None)]
        ['4 ms', '12.3 s', '1 min 15 s', '2 h 5 min', '–']
    """
    if seconds is None or not math.isfinite(seconds):
        return "–"
    if seconds < 1:
        return f"{seconds * 1000:.0f} ms"
    if seconds < 60:
        return f"{seconds:.1f} s"
    if seconds < 3600:
        return f"{int(seconds // 60)} min {int(seconds % 60)} s"
    return f"{int(seconds // 3600)} h {int(seconds % 3600 // 60)} min"


def artifact_label(name: str, kind: str, sha256: str) -> str:
    """What names an artifact on the page: its name, else its kind and hash prefix."""
    return name or f"{kind or 'artifact'} {sha256[:8]}"


def draw(data: LineageData) -> tuple[Graph, list[RunNode], list[ArtifactNode], list[Edge]]:
    """The lineage graph of ``data``, laid out, with what each node shows."""
    boxes: dict[str, Box] = {}
    for r in data.runs.sort("started_at", "id").iter_rows(named=True):
        boxes[f"r{r['id']}"] = Box("run", RUN_HEIGHT, (r["started_at"], 1, r["id"]))
    for a in data.artifacts.sort("first_seen", "id").iter_rows(named=True):
        boxes[f"a{a['id']}"] = Box("artifact", ARTIFACT_HEIGHT, (a["first_seen"], 0, a["id"]))
    edges = [
        (f"a{a}", f"r{r}") if d == "in" else (f"r{r}", f"a{a}")
        for r, a, d in data.io.select("run_id", "artifact_id", "direction").iter_rows()
    ]
    graph = layout(boxes, edges)
    runs = []
    for r in data.runs.iter_rows(named=True):
        stale = ", ".join(r["stale_inputs"])
        parts = [f"{r['name']} (run {r['id']}): {r['status']}", f"started {_when(r['started_at'])}"]
        if r["code_version"]:
            parts.append(f"code {r['code_version']}")
        if r["checks"]:
            parts.append(f"{r['failed_checks']} of {r['checks']} checks failed")
        if stale:
            parts.append(f"stale: newer version of {stale}")
        runs.append(
            RunNode(
                id=r["id"],
                place=graph.nodes[f"r{r['id']}"],
                label=_short(r["name"]),
                sub=f"#{r['id']} · {_when(r['started_at'])}",
                status=_status_class(r["status"]),
                stale=stale,
                failed_checks=r["failed_checks"],
                checks=r["checks"],
                tooltip=" · ".join(parts),
            )
        )
    artifacts = []
    for a in data.artifacts.iter_rows(named=True):
        name, kind, sha = a["name"], a["kind"], a["sha256"]
        # A file is named by its path: the node shows the file's own name, the tooltip all of it.
        shown = name.replace("\\", "/").rsplit("/", 1)[-1] if kind == "file" else name
        artifacts.append(
            ArtifactNode(
                id=a["id"],
                place=graph.nodes[f"a{a['id']}"],
                label=_short(shown or kind or "artifact", 20),
                sub=(f"{kind} " if name else "")
                + sha[:8]
                + (" · older" if a["superseded"] else ""),
                superseded=a["superseded"],
                tooltip=f"{artifact_label(name, kind, sha)} · {kind} · sha256 {sha} · first "
                f"seen {_when(a['first_seen'])}"
                + (" · a newer version exists" if a["superseded"] else ""),
            )
        )
    superseded = set(data.artifacts.filter("superseded")["id"].to_list())
    drawn = [
        Edge(path, u.startswith("a") and int(u[1:]) in superseded) for u, _, path in graph.edges
    ]
    return graph, runs, artifacts, drawn


def _since(days: str | None) -> datetime | None:
    if days is None or days in ("", "all"):
        return None
    if days.isdigit() and 1 <= int(days) <= MAX_DAYS:
        return datetime.now(UTC) - timedelta(days=int(days))
    raise ValueError(f"'days' is a number of days from 1 to {MAX_DAYS:,} or 'all'; got {days!r}.")


@router.get("/lineage")
def lineage_page(
    request: Request, _: Viewer, step: str | None = None, days: str | None = None
) -> Response:
    """The graph of pipeline runs and the artifacts they read and wrote."""
    try:
        since = _since(days)
    except ValueError as exc:
        return _problem(request, 422, "Bad request", str(exc))
    step = step or None
    data = lineage_data(_store(request), step=step, since=since)
    if step is not None and step not in dict(data.steps):
        known = ", ".join(name for name, _ in data.steps) or "none"
        return _problem(
            request, 404, "Not found", f"No run of a step named '{step}' (steps: {known})."
        )
    graph, runs, artifacts, edges = draw(data)
    table = data.runs.with_columns(
        seconds=(pl.col("ended_at") - pl.col("started_at")).dt.total_microseconds() / 1e6
    )
    scope = []
    if step:
        scope.append(f"step {step}")
    if since is not None:
        scope.append(f"runs of the last {days} days")
    return _render(
        request,
        "lineage.html.j2",
        title="Lineage",
        subtitle=f"{data.total:,} run{'s' if data.total != 1 else ''}"
        + (f" · {' · '.join(scope)}" if scope else ""),
        step=step,
        days=days or "all",
        steps=data.steps,
        graph=graph,
        run_nodes=runs,
        artifact_nodes=artifacts,
        edges=edges,
        runs=table.to_dicts(),
        shown=data.runs.height,
        total=data.total,
        max_runs=MAX_RUNS,
        duration=duration,
    )


# -- the run page ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class CheckEntry:
    """A check result attached to a run, with its failing checks."""

    stage: str
    name: str
    passed: bool
    created_at: datetime
    failing: list[dict[str, Any]]
    n_checks: int
    result: dict[str, Any]


def run_checks(store: Store, run_id: int) -> list[CheckEntry]:
    """The check results attached before and after run ``run_id``, in the order recorded."""
    with store.session() as s:
        rows = s.execute(
            select(
                RunCheckRow.stage,
                RunCheckRow.name,
                RunCheckRow.passed,
                RunCheckRow.created_at,
                RunCheckRow.result,
            )
            .where(RunCheckRow.run_id == run_id)
            .order_by(RunCheckRow.created_at, RunCheckRow.id)
        ).all()
    entries = []
    for stage, name, passed, created_at, result in rows:
        listed = result.get("checks") if isinstance(result, dict) else None
        checks = [c for c in listed or [] if isinstance(c, dict)]
        failing = [c for c in checks if not c.get("passed", True)]
        entries.append(
            CheckEntry(
                stage, name, bool(passed), created_at, failing, len(checks), dict(result or {})
            )
        )
    return entries


def _value(value: Any) -> str:
    """A parameter or tag value for a table cell."""
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    return value if isinstance(value, str) else repr(value)


@router.get("/lineage/runs/{run_id}")
def run_page(request: Request, run_id: str, _: Viewer) -> Response:
    """One run: what it was, what it read and wrote, its checks, its staleness, and the runs
    upstream and downstream of it."""
    from mlwarden.lineage import Lineage

    store = _store(request)
    lineage = Lineage(store)
    try:
        if not run_id.isdigit():
            raise NotFoundError(f"'{run_id}' is not a run id (a number).", what="run")
        record = lineage.get(int(run_id))
    except NotFoundError as exc:
        return _problem(request, 404, "Not found", str(exc))
    trace = lineage.trace(record.id)
    upstream = [r for r in trace.upstream if r.id != record.id]
    return _render(
        request,
        "run.html.j2",
        title=f"{record.name} · run {record.id}",
        subtitle=f"{record.status} · started {_when(record.started_at, seconds=True)} UTC",
        run=record,
        status=_status_class(record.status),
        took=duration(
            None
            if record.ended_at is None
            else (record.ended_at - record.started_at).total_seconds()
        ),
        params=[(k, _value(v)) for k, v in sorted(record.params.items())],
        tags=[(k, _value(v)) for k, v in sorted(record.tags.items())],
        checks=run_checks(store, record.id),
        stale=lineage.stale(record.id),
        upstream=upstream,
        downstream=trace.downstream,
        raw_inputs=trace.raw_inputs,
        artifact_label=artifact_label,
    )
