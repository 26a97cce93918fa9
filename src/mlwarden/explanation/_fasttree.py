"""Exact path-dependent TreeSHAP for tree ensembles, compiled, with per-leaf precomputation.

The attributions are those of ``shap.TreeExplainer`` (Lundberg et al., Nature Machine
Intelligence 2, 2020), computed another way.
Path-dependent TreeSHAP decomposes over the root-to-leaf paths of every tree. On the path of a
leaf with value ``v``, the ``d`` distinct features split on each have a *zero fraction* ``z_k``
(the product, over the path's edges on feature ``k``, of the child's cover over its parent's)
and a *one fraction* ``o_k`` (1 when the row follows every edge of feature ``k`` on the path,
else 0). With ``A`` the features whose one fraction is 1, ``w(s) = s!(d-s-1)!/d!`` and

    F(A) = v * sum over S ⊆ A of w(|S|) * prod over j not in S of z_j,

the leaf adds ``-F(A)`` to every path feature not in ``A`` and ``(1 - z_i) / z_i * F(A \\ {i})``
to every ``i`` in ``A``. So each leaf gets a table of its contribution to each of its ``d``
features for each of the ``2^d`` subsets, built once per model in O(2^d d) (``F`` is a sum over
subsets), and a row costs O(d) per leaf: one bitmask ``A`` from the row's decisions at the
path's nodes (each node's decision evaluated once, the masks passed down the tree), then ``d``
lookups. This is the idea of Fast TreeSHAP v2 (Yang, 2021), in a flat layout: all trees'
nodes, leaves, path features and tables in a few arrays, rows in blocks that vectorize.

Leaves too wide for a table (or whose zero fractions are so small that the division above would
underflow) use an identity instead: ``w(s)`` is the Beta integral of ``u^s (1-u)^(d-1-s)`` over
[0, 1], so ``F`` and the per-feature sums are integrals of polynomials of degree ``d - 1`` in
``u``, which Gauss-Legendre quadrature with ``d // 2 + 1`` nodes computes exactly, at O(d^2) per
row and leaf, with positive terms only.

Supported: LightGBM boosters (numeric splits with their zero and NaN handling, categorical
splits, several trees per iteration for multiclass), scikit-learn decision trees, random and
extra-trees forests, gradient boosting and histogram gradient boosting (categorical features
included, which shap gets wrong: it reads a categorical split as a numeric one, on the wrong
column). Anything else (linear trees, random-forest mode of LightGBM, other libraries) is left
to shap: :func:`fast_tree` answers ``None``.
"""

from __future__ import annotations

import math
import threading
import weakref
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Final, TypeVar, cast

import numba
import numpy as np
from numba import prange

from mlwarden.exceptions import InputError

if TYPE_CHECKING:
    from collections.abc import Callable

    from numpy.typing import NDArray

F = TypeVar("F", bound="Callable[..., Any]")

__all__ = ["FastTree", "fast_tree"]

# How a split sends a row left.
NUMERIC: Final = 0  # x <= threshold; NaN to the default child
NUMERIC_ZERO: Final = 1  # LightGBM's missing type "Zero": NaN counts as 0, and 0 takes the default
NUMERIC_NAN_AS_ZERO: Final = 2  # LightGBM's missing type "None": NaN counts as 0
CATEGORICAL: Final = 3  # left when the truncated value is in the node's category set
CATEGORY_CODE: Final = 4  # left when the category's code is in the set; NaN to the default child
# LightGBM's kZeroThreshold, a float literal widened to double.
LIGHTGBM_ZERO: Final = float(np.float32(1e-35))
# Widest leaf (distinct features on its path) that gets a table of d * 2^d values; wider
# leaves are computed per row by quadrature, which is as fast once the tables outgrow the cache.
# Measured (CPU time, 200 trees of up to 31 leaves, 5,000 rows): 4 -> 0.31 s, 6 -> 0.24 s,
# 8 -> 0.20 s, 10 -> 0.20 s with 5x the memory of 8; no tables at all 1.4x slower than 6.
TABLE_WIDTH: Final = 8
# At most this many table values (8 bytes each) per model; the narrowest leaves come first.
TABLE_BUDGET: Final = 1 << 22
# A table leaf divides by its zero fractions: below this product, underflow would cost digits.
TABLE_SMALLEST_PRODUCT: Final = 1e-250
# A path's distinct features are bits of an int64.
MAX_WIDTH: Final = 62
# Quadrature nodes for the widest path: exact for polynomials of degree MAX_WIDTH - 1.
MAX_POINTS: Final = MAX_WIDTH // 2 + 1
# numba's fallback thread pool (when neither OpenMP nor TBB is found) must not be entered by
# two threads at once.
_KERNEL_LOCK: Final = threading.Lock()
# Rows handled together, so a tree's tables stay in cache across them (on the model above,
# 64 rows -> 0.36 s, 128 -> 0.26 s, 256 -> 0.21 s, 512 -> 0.20 s); a block's node masks take
# at most MASK_BUDGET int64 values, and every thread gets a block.
BLOCK_ROWS: Final = 256
MASK_BUDGET: Final = 1 << 18


# ---------------------------------------------------------------------------------------------
# Trees as arrays


@dataclass(frozen=True, eq=False)
class Tree:
    """One tree, its nodes numbered so that a parent comes before its children.

    ``left``/``right`` are -1 at a leaf; ``kind`` says how a split decides (``NUMERIC`` ...);
    ``categories`` holds, per categorical node, the category codes that go left; ``cover`` is
    the training weight (or count) reaching each node, ``value`` the output of each leaf.
    """

    left: NDArray[np.int64]
    right: NDArray[np.int64]
    feature: NDArray[np.int64]
    threshold: NDArray[np.float64]
    kind: NDArray[np.int8]
    default_left: NDArray[np.bool_]
    cover: NDArray[np.float64]
    value: NDArray[np.float64]
    categories: dict[int, list[int]] = field(default_factory=dict)


@dataclass(frozen=True, eq=False)
class Ensemble:
    """Trees flattened into the arrays the kernels read, made by :func:`flatten`.

    Nodes of all trees follow each other (``tree_nodes`` holds each tree's first node), with
    children as global indices, the category bitset of a categorical split at
    ``cat_words[cat_start:cat_end]`` and ``bit``, the bit of the split's feature in the masks of
    the leaves below. Leaves that can move an attribution follow each other too
    (``tree_leaves``), each with its node, its number ``width`` of distinct path features (at
    ``leaf_slot`` in ``slot_feature`` and ``slot_zero``, the zero fractions), and either the
    offset of its table (``leaf_table``) or, -1 there, of its quadrature values
    (``leaf_quad``). ``base_value`` is the output expected before any feature is known.
    ``category_values`` holds, per column read as codes by ``CATEGORY_CODE`` splits, the
    column's known values in order: a row's value becomes its position there, or NaN.
    """

    n_features: int
    base_value: float
    float32_input: bool
    small_as_zero: bool
    tree_nodes: NDArray[np.int64]
    tree_leaves: NDArray[np.int64]
    max_nodes: int
    left: NDArray[np.int64]
    right: NDArray[np.int64]
    feature: NDArray[np.int64]
    threshold: NDArray[np.float64]
    kind: NDArray[np.int8]
    default_left: NDArray[np.bool_]
    cat_start: NDArray[np.int64]
    cat_end: NDArray[np.int64]
    cat_words: NDArray[np.uint32]
    bit: NDArray[np.int64]
    leaf_node: NDArray[np.int64]
    leaf_width: NDArray[np.int64]
    leaf_slot: NDArray[np.int64]
    leaf_table: NDArray[np.int64]
    leaf_quad: NDArray[np.int64]
    leaf_value: NDArray[np.float64]
    slot_feature: NDArray[np.int64]
    slot_zero: NDArray[np.float64]
    table: NDArray[np.float64]
    quad: NDArray[np.float64]
    category_values: tuple[tuple[int, NDArray[np.float64]], ...] = ()

    def shap_values(self, x: NDArray[np.float64]) -> NDArray[np.float64]:
        """Attributions of the rows ``x`` (rows × features), in the trees' output."""
        if x.ndim != 2 or x.shape[1] != self.n_features:
            raise InputError(
                f"The data has {x.shape[-1]} columns but the model was trained on "
                f"{self.n_features} features; pass the model's features in its order."
            )
        if self.float32_input:  # scikit-learn compares float32 values with its thresholds
            x = x.astype(np.float32)
        x = np.ascontiguousarray(x, dtype=np.float64)
        if self.category_values:
            x = x.copy()
            for column, known in self.category_values:
                x[:, column] = _codes(x[:, column], known)
        if self.small_as_zero:  # LightGBM reads rows as sparse: it drops values this small
            x = np.where(np.abs(x) <= LIGHTGBM_ZERO, 0.0, x)
        out = np.zeros((x.shape[0], self.n_features))
        per_thread = -(-x.shape[0] // numba.get_num_threads())
        block = max(1, min(BLOCK_ROWS, per_thread, MASK_BUDGET // max(1, self.max_nodes)))
        with _KERNEL_LOCK:
            self._run(x, out, block)
        return out

    def _run(self, x: NDArray[np.float64], out: NDArray[np.float64], block: int) -> None:
        _attribute(
            x,
            out,
            block,
            self.tree_nodes,
            self.tree_leaves,
            self.max_nodes,
            self.left,
            self.right,
            self.feature,
            self.threshold,
            self.kind,
            self.default_left,
            self.cat_start,
            self.cat_end,
            self.cat_words,
            self.bit,
            self.leaf_node,
            self.leaf_width,
            self.leaf_slot,
            self.leaf_table,
            self.leaf_quad,
            self.leaf_value,
            self.slot_feature,
            self.slot_zero,
            self.table,
            self.quad,
        )


def flatten(
    trees: list[Tree],
    n_features: int,
    base_offset: float = 0.0,
    *,
    float32_input: bool = False,
    small_as_zero: bool = False,
    category_values: tuple[tuple[int, NDArray[np.float64]], ...] = (),
) -> Ensemble | None:
    """The trees as flat arrays with their leaves' tables, or None when a path has more than
    ``MAX_WIDTH`` distinct features or a tree's nodes are not numbered parents first.

    Parameters:
        base_offset: added to the base value (an initial prediction outside the trees).
        float32_input: the model rounds its input to float32 (scikit-learn).
        small_as_zero: the model reads values within ``LIGHTGBM_ZERO`` of 0 as 0 (LightGBM).
        category_values: per column that ``CATEGORY_CODE`` splits read, its known values in
            the order of their codes (scikit-learn's histogram gradient boosting).
    """
    sizes = np.array([len(t.left) for t in trees], dtype=np.int64)
    tree_nodes = np.concatenate([[0], np.cumsum(sizes)]).astype(np.int64)
    local = [np.asarray(t.left) for t in trees]
    for t, left in zip(trees, local, strict=True):
        inner = np.flatnonzero(left >= 0)
        if (left[inner] <= inner).any() or (t.right[inner] <= inner).any():
            return None
    shift = np.repeat(tree_nodes[:-1], sizes)
    left = np.concatenate(local)
    right = np.concatenate([t.right for t in trees])
    is_inner = left >= 0
    left = np.where(is_inner, left + shift, -1)
    right = np.where(is_inner, right + shift, -1)
    feature = np.where(is_inner, np.concatenate([t.feature for t in trees]), 0).astype(np.int64)
    if is_inner.any() and (feature[is_inner].max() >= n_features or feature.min() < 0):
        return None
    cover = np.concatenate([t.cover for t in trees]).astype(np.float64)
    value = np.concatenate([t.value for t in trees]).astype(np.float64)
    cat_start = np.zeros(len(left), dtype=np.int64)
    cat_end = np.zeros(len(left), dtype=np.int64)
    words: list[int] = []
    for t, start in zip(trees, tree_nodes[:-1], strict=True):
        for node, codes in t.categories.items():
            bits = _bitset(codes)
            cat_start[start + node] = len(words)
            words.extend(bits)
            cat_end[start + node] = len(words)

    parent = np.full(len(left), -1, dtype=np.int64)
    inner = np.flatnonzero(is_inner)
    parent[left[inner]] = inner
    parent[right[inner]] = inner
    leaves = np.flatnonzero(~is_inner).astype(np.int64)
    depth = _depths(parent)
    width, bit = _widths(parent, feature, leaves, depth, n_features)
    if len(width) and width.max() > MAX_WIDTH:
        return None
    roots = tree_nodes[:-1]
    tree_of = np.repeat(np.arange(len(trees)), sizes)
    root_cover = cover[roots][tree_of[leaves]]
    with np.errstate(invalid="ignore", divide="ignore"):
        reach = np.where(root_cover > 0, cover[leaves] / root_cover, 0.0)
    base_value = float(base_offset + np.sum(value[leaves] * reach))

    # Only leaves that move an attribution: a nonzero value below at least one split.
    keep = (value[leaves] != 0.0) & (width > 0)
    leaves, width = leaves[keep], width[keep]
    leaf_slot = np.concatenate([[0], np.cumsum(width)]).astype(np.int64)
    slot_feature, slot_zero = _slots(parent, feature, cover, leaves, depth, leaf_slot, n_features)
    leaf_value = value[leaves]
    tree_leaves = np.searchsorted(leaves, tree_nodes).astype(np.int64)

    product = np.multiply.reduceat(slot_zero, leaf_slot[:-1]) if len(leaves) else np.ones(0)
    tabled = (width <= TABLE_WIDTH) & (product >= TABLE_SMALLEST_PRODUCT)
    order = np.argsort(np.where(tabled, width, MAX_WIDTH + 1), kind="stable")
    wide = np.where(tabled, width << np.minimum(width, TABLE_WIDTH), 0)
    within = np.cumsum(wide[order]) <= TABLE_BUDGET
    tabled[order[~within]] = False
    table_size = np.where(tabled, wide, 0)
    leaf_table = np.where(tabled, np.cumsum(table_size) - table_size, -1).astype(np.int64)
    points = width // 2 + 1
    quad_size = np.where(tabled, 0, (3 * width + 1) * points)
    leaf_quad = np.where(tabled, -1, np.cumsum(quad_size) - quad_size).astype(np.int64)
    table = np.empty(int(table_size.sum()))
    quad = np.empty(int(quad_size.sum()))
    _fill_tables(
        np.flatnonzero(tabled), width, leaf_slot, leaf_table, leaf_value, slot_zero, _WEIGHTS, table
    )
    _fill_quadrature(
        np.flatnonzero(~tabled),
        width,
        leaf_slot,
        leaf_quad,
        slot_zero,
        _GAUSS_NODES,
        _GAUSS_WEIGHTS,
        quad,
    )
    return Ensemble(
        n_features=n_features,
        base_value=base_value,
        float32_input=float32_input,
        small_as_zero=small_as_zero,
        tree_nodes=tree_nodes,
        tree_leaves=tree_leaves,
        max_nodes=int(sizes.max()) if len(sizes) else 1,
        left=left.astype(np.int64),
        right=right.astype(np.int64),
        feature=feature,
        threshold=np.concatenate([t.threshold for t in trees]).astype(np.float64),
        kind=np.concatenate([t.kind for t in trees]).astype(np.int8),
        default_left=np.concatenate([t.default_left for t in trees]).astype(np.bool_),
        cat_start=cat_start,
        cat_end=cat_end,
        cat_words=np.array(words, dtype=np.uint32),
        bit=bit,
        leaf_node=leaves,
        leaf_width=width,
        leaf_slot=leaf_slot,
        leaf_table=leaf_table,
        leaf_quad=leaf_quad,
        leaf_value=leaf_value,
        slot_feature=slot_feature,
        slot_zero=slot_zero,
        table=table,
        quad=quad,
        category_values=category_values,
    )


def _codes(values: NDArray[np.float64], known: NDArray[np.float64]) -> NDArray[np.float64]:
    """Each value's position among the sorted ``known`` values, NaN when it is none of them."""
    if not len(known):
        return np.full(len(values), np.nan)
    position = np.minimum(np.searchsorted(known, values), len(known) - 1)
    return np.where(known[position] == values, position, np.nan)


def _bitset(codes: list[int]) -> list[int]:
    words = [0] * (max(codes) // 32 + 1 if codes else 0)
    for code in codes:
        words[code >> 5] |= 1 << (code & 31)
    return words


def _weights() -> NDArray[np.float64]:
    """``w[d, s] = s! (d-s-1)! / d!``, the Shapley weight of a coalition of ``s`` among ``d``."""
    w = np.zeros((MAX_WIDTH + 1, MAX_WIDTH + 1))
    for d in range(1, MAX_WIDTH + 1):
        for s in range(d):
            w[d, s] = 1.0 / (d * math.comb(d - 1, s))
    return w


def _gauss() -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """Gauss-Legendre nodes and weights on [0, 1], row ``n`` holding the rule of ``n`` nodes."""
    rules = MAX_POINTS + 1
    nodes, weights = np.zeros((rules, rules)), np.zeros((rules, rules))
    for n in range(1, rules):
        x, w = np.polynomial.legendre.leggauss(n)
        nodes[n, :n] = (x + 1.0) / 2.0
        weights[n, :n] = w / 2.0
    return nodes, weights


_WEIGHTS: Final = _weights()
_GAUSS_NODES, _GAUSS_WEIGHTS = _gauss()


# ---------------------------------------------------------------------------------------------
# Precomputation kernels


def _compiled(*, parallel: bool = False) -> Callable[[F], F]:
    """numba's ``njit``, cached on disk, keeping the function's type for the type checker."""
    return cast("Callable[[F], F]", numba.njit(cache=True, parallel=parallel))


@_compiled()
def _depths(parent: NDArray[np.int64]) -> NDArray[np.int64]:  # pragma: no cover - compiled
    depth = np.zeros(len(parent), dtype=np.int64)
    for node in range(len(parent)):  # parents come first
        if parent[node] >= 0:
            depth[node] = depth[parent[node]] + 1
    return depth


@_compiled()
def _path(parent: Any, depth: Any, leaf: int, path: Any) -> int:  # pragma: no cover - compiled
    """Fill ``path`` with the nodes from the root to ``leaf``; their number."""
    n: int = depth[leaf] + 1
    node = leaf
    for i in range(n - 1, -1, -1):
        path[i] = node
        node = parent[node]
    return n


@_compiled()
def _widths(
    parent: Any, feature: Any, leaves: Any, depth: Any, n_features: int
) -> tuple[Any, Any]:  # pragma: no cover - compiled
    """The number of distinct features on each leaf's path, and each split's bit: the slot of
    its feature, numbered by first appearance from the root (the same for every leaf below)."""
    width = np.zeros(len(leaves), dtype=np.int64)
    bit = np.zeros(len(parent), dtype=np.int64)
    slot_of = np.full(n_features, -1, dtype=np.int64)
    seen = np.empty(depth.max() + 1 if len(depth) else 1, dtype=np.int64)
    path = np.empty(depth.max() + 1 if len(depth) else 1, dtype=np.int64)
    for i in range(len(leaves)):
        n = _path(parent, depth, leaves[i], path)
        d = 0
        for j in range(n - 1):
            f = feature[path[j]]
            s = slot_of[f]
            if s < 0:
                s = d
                slot_of[f] = d
                seen[d] = f
                d += 1
            bit[path[j]] = np.int64(1) << min(s, 62)
        for k in range(d):
            slot_of[seen[k]] = -1
        width[i] = d
    return width, bit


@_compiled()
def _slots(
    parent: Any, feature: Any, cover: Any, leaves: Any, depth: Any, start: Any, n_features: int
) -> tuple[Any, Any]:  # pragma: no cover - compiled
    """Each leaf's path features in slot order, and their zero fractions."""
    slot_feature = np.empty(start[-1], dtype=np.int64)
    slot_zero = np.empty(start[-1], dtype=np.float64)
    slot_of = np.full(n_features, -1, dtype=np.int64)
    path = np.empty(depth.max() + 1 if len(depth) else 1, dtype=np.int64)
    for i in range(len(leaves)):
        n = _path(parent, depth, leaves[i], path)
        s0 = start[i]
        d = 0
        for j in range(n - 1):
            node, child = path[j], path[j + 1]
            f = feature[node]
            s = slot_of[f]
            if s < 0:
                s = d
                slot_of[f] = d
                slot_feature[s0 + d] = f
                slot_zero[s0 + d] = 1.0
                d += 1
            ratio = cover[child] / cover[node] if cover[node] > 0 else 0.0
            slot_zero[s0 + s] *= ratio
        for k in range(d):
            slot_of[slot_feature[s0 + k]] = -1
    return slot_feature, slot_zero


@_compiled()
def _fill_tables(
    tabled: Any,
    width: Any,
    start: Any,
    offset: Any,
    value: Any,
    zero: Any,
    weights: Any,
    table: Any,
) -> None:  # pragma: no cover - compiled
    """Each table leaf's contribution to its ``j``-th feature for every subset ``A``, at
    ``offset + j * 2^d + A``: ``(1 - z_j) / z_j * F(A - {j})`` if ``j`` is in ``A``, else
    ``-F(A)``, with ``F(A) = v * sum over S ⊆ A of w(|S|) * prod over k not in S of z_k``."""
    for i in prange(len(tabled)):
        leaf = tabled[i]
        d = width[leaf]
        s0 = start[leaf]
        size = 1 << d
        full = size - 1
        f = np.empty(size)
        f[full] = 1.0
        for mask in range(full - 1, -1, -1):  # the product over k not in the mask
            k = 0
            while (mask >> k) & 1:
                k += 1
            f[mask] = f[mask | (1 << k)] * zero[s0 + k]
        for mask in range(size):
            count = 0
            rest = mask
            while rest:
                rest &= rest - 1
                count += 1
            f[mask] *= weights[d, count]
        for k in range(d):  # sum over subsets, one feature at a time
            b = 1 << k
            for mask in range(size):
                if mask & b:
                    f[mask] += f[mask ^ b]
        v = value[leaf]
        for j in range(d):
            z = zero[s0 + j]
            ratio = (1.0 - z) / z
            b = 1 << j
            t0 = offset[leaf] + j * size
            for mask in range(size):
                table[t0 + mask] = v * (ratio * f[mask ^ b] if mask & b else -f[mask])


@_compiled()
def _fill_quadrature(
    leaves: Any, width: Any, start: Any, offset: Any, zero: Any, nodes: Any, weights: Any, quad: Any
) -> None:  # pragma: no cover - compiled
    """Per leaf, at each node ``u`` of the Gauss-Legendre rule with ``n = d // 2 + 1`` nodes:
    ``u + z_k (1 - u)`` per feature ``k``; ``(1 - z_k) (1 - u) / (u + z_k (1 - u))``; and the
    node's weight times ``(1 - u)^e`` for ``e`` from -1 to ``d - 1`` (``d`` rows of ``n``,
    ``d`` more, then ``d + 1``)."""
    for i in prange(len(leaves)):
        leaf = leaves[i]
        d = width[leaf]
        n = d // 2 + 1
        q0 = offset[leaf]
        for k in range(d):
            z = zero[start[leaf] + k]
            for q in range(n):
                u = nodes[n, q]
                factor = u + z * (1.0 - u)
                quad[q0 + k * n + q] = factor
                quad[q0 + (d + k) * n + q] = (1.0 - z) * (1.0 - u) / factor
        for q in range(n):
            power = weights[n, q] / (1.0 - nodes[n, q])
            for e in range(d + 1):
                quad[q0 + (2 * d + e) * n + q] = power
                power *= 1.0 - nodes[n, q]


# ---------------------------------------------------------------------------------------------
# The attribution kernel


@_compiled(parallel=True)
def _attribute(
    x: Any,
    out: Any,
    block: int,
    tree_nodes: Any,
    tree_leaves: Any,
    max_nodes: int,
    left: Any,
    right: Any,
    feature: Any,
    threshold: Any,
    kind: Any,
    default_left: Any,
    cat_start: Any,
    cat_end: Any,
    cat_words: Any,
    bit: Any,
    leaf_node: Any,
    leaf_width: Any,
    leaf_slot: Any,
    leaf_table: Any,
    leaf_quad: Any,
    leaf_value: Any,
    slot_feature: Any,
    slot_zero: Any,
    table: Any,
    quad: Any,
) -> None:  # pragma: no cover - compiled
    """The attributions of the rows ``x`` into ``out``, blocks of rows in parallel."""
    n_blocks = (x.shape[0] + block - 1) // block
    for b in prange(n_blocks):
        r0 = b * block
        _block(
            x,
            out,
            r0,
            min(block, x.shape[0] - r0),
            tree_nodes,
            tree_leaves,
            max_nodes,
            left,
            right,
            feature,
            threshold,
            kind,
            default_left,
            cat_start,
            cat_end,
            cat_words,
            bit,
            leaf_node,
            leaf_width,
            leaf_slot,
            leaf_table,
            leaf_quad,
            leaf_value,
            slot_feature,
            slot_zero,
            table,
            quad,
        )


@_compiled()
def _block(
    x: Any,
    out: Any,
    r0: int,
    nb: int,
    tree_nodes: Any,
    tree_leaves: Any,
    max_nodes: int,
    left: Any,
    right: Any,
    feature: Any,
    threshold: Any,
    kind: Any,
    default_left: Any,
    cat_start: Any,
    cat_end: Any,
    cat_words: Any,
    bit: Any,
    leaf_node: Any,
    leaf_width: Any,
    leaf_slot: Any,
    leaf_table: Any,
    leaf_quad: Any,
    leaf_value: Any,
    slot_feature: Any,
    slot_zero: Any,
    table: Any,
    quad: Any,
) -> None:  # pragma: no cover - compiled
    """The attributions of rows ``r0`` to ``r0 + nb``, tree by tree: every split's decision
    for every row, then every leaf's contributions for every row."""
    n_features = x.shape[1]
    xt = np.empty((n_features, nb))  # feature-major, so that a split reads its rows in a line
    for r in range(nb):
        for f in range(n_features):
            xt[f, r] = x[r0 + r, f]
    acc = np.zeros((n_features, nb))
    # masks[node, row]: bit k set while the row follows every edge of the path's k-th
    # feature down to the node
    masks = np.empty((max_nodes, nb), dtype=np.int64)
    work = np.empty((MAX_POINTS + 3, nb))
    ones = np.empty(nb, dtype=np.int64)
    for t in range(len(tree_nodes) - 1):
        n0 = tree_nodes[t]
        for r in range(nb):
            masks[0, r] = -1
        for p in range(n0, tree_nodes[t + 1]):
            if left[p] >= 0:
                _split(
                    xt[feature[p]],
                    masks[p - n0],
                    masks[left[p] - n0],
                    masks[right[p] - n0],
                    ~bit[p],
                    kind[p],
                    threshold[p],
                    default_left[p],
                    cat_words[cat_start[p] : cat_end[p]],
                )
        for leaf in range(tree_leaves[t], tree_leaves[t + 1]):
            node = leaf_node[leaf] - n0
            d = leaf_width[leaf]
            s0 = leaf_slot[leaf]
            if leaf_table[leaf] >= 0:
                _table_leaf(acc, masks[node], d, slot_feature[s0 : s0 + d], table, leaf_table[leaf])
            else:
                _quadrature_leaf(
                    acc,
                    masks[node],
                    d,
                    slot_feature[s0 : s0 + d],
                    slot_zero[s0 : s0 + d],
                    leaf_value[leaf],
                    quad,
                    leaf_quad[leaf],
                    work,
                    ones,
                )
    for r in range(nb):
        for f in range(n_features):
            out[r0 + r, f] = acc[f, r]


@_compiled()
def _split(
    values: Any,
    mask: Any,
    left: Any,
    right: Any,
    keep: int,
    kind: int,
    threshold: float,
    default_left: bool,
    words: Any,
) -> None:  # pragma: no cover - compiled
    """Pass the rows' masks down one split: the child a row does not go to loses the bit of
    the split's feature. One loop per kind of split, branch-free, so that the rows vectorize."""
    if kind == NUMERIC:
        for r in range(len(values)):
            v = values[r]
            go = (v <= threshold) | ((v != v) & default_left)
            m = mask[r]
            left[r] = m if go else m & keep
            right[r] = m & keep if go else m
    elif kind == NUMERIC_NAN_AS_ZERO:
        nan_left = threshold >= 0.0
        for r in range(len(values)):
            v = values[r]
            go = (v <= threshold) | ((v != v) & nan_left)
            m = mask[r]
            left[r] = m if go else m & keep
            right[r] = m & keep if go else m
    elif kind == NUMERIC_ZERO:
        for r in range(len(values)):
            v = values[r]
            zero = (v != v) | ((v >= -LIGHTGBM_ZERO) & (v <= LIGHTGBM_ZERO))
            go = default_left if zero else v <= threshold
            m = mask[r]
            left[r] = m if go else m & keep
            right[r] = m & keep if go else m
    elif kind == CATEGORICAL:
        for r in range(len(values)):
            go = _in_categories(values[r], words)
            m = mask[r]
            left[r] = m if go else m & keep
            right[r] = m & keep if go else m
    else:
        for r in range(len(values)):
            v = values[r]
            go = default_left if v != v else _in_categories(v, words)
            m = mask[r]
            left[r] = m if go else m & keep
            right[r] = m & keep if go else m


@_compiled()
def _in_categories(v: float, words: Any) -> bool:  # pragma: no cover - compiled
    """LightGBM's categorical decision: the value truncated to int is in the bitset ``words``;
    NaN, negatives and values past int32 are not."""
    if not (v > -1.0) or v >= 2147483648.0:
        return False
    code = int(v)
    word = code >> 5
    if word >= len(words):
        return False
    return bool((words[word] >> np.uint32(code & 31)) & np.uint32(1))


@_compiled()
def _table_leaf(
    acc: Any, mask: Any, d: int, features: Any, table: Any, offset: int
) -> None:  # pragma: no cover - compiled
    """A table leaf's contributions: one lookup per row and path feature."""
    low = (np.int64(1) << d) - 1
    for r in range(len(mask)):  # the leaf's masks become offsets (a leaf has no children)
        mask[r] = offset + (mask[r] & low)
    for j in range(d):
        row = acc[features[j]]
        shift = j << d
        for r in range(len(mask)):
            row[r] += table[mask[r] + shift]


@_compiled()
def _quadrature_leaf(
    acc: Any,
    mask: Any,
    d: int,
    features: Any,
    zero: Any,
    v: float,
    quad: Any,
    offset: int,
    work: Any,
    ones: Any,
) -> None:  # pragma: no cover - compiled
    """A wide leaf's contributions, all rows at once:
    ``F(A) = v C(A) ∫ (1-u)^(d-1-|A|) prod_{k in A} (u + z_k (1-u)) du`` by quadrature."""
    nb = len(mask)
    n = d // 2 + 1
    scale, total, part, poly = work[0], work[1], work[2], work[3:]
    low = (np.int64(1) << d) - 1
    for r in range(nb):
        mask[r] &= low
        scale[r] = v
        ones[r] = 0
    for q in range(n):
        for r in range(nb):
            poly[q, r] = 1.0
    for j in range(d):
        z = zero[j]
        for r in range(nb):
            inside = (mask[r] >> j) & 1
            ones[r] += inside
            scale[r] *= 1.0 if inside else z
        for q in range(n):
            factor = quad[offset + j * n + q]
            for r in range(nb):
                poly[q, r] *= factor if (mask[r] >> j) & 1 else 1.0
    powers = offset + 2 * d * n
    for r in range(nb):
        total[r] = 0.0
    for q in range(n):
        for r in range(nb):
            g = poly[q, r] * quad[powers + (d - ones[r]) * n + q]
            poly[q, r] = g
            total[r] += g
    for r in range(nb):
        total[r] *= scale[r]
    for j in range(d):
        row = acc[features[j]]
        for r in range(nb):
            part[r] = 0.0
        for q in range(n):
            ratio = quad[offset + (d + j) * n + q]
            for r in range(nb):
                part[r] += poly[q, r] * ratio
        for r in range(nb):
            row[r] += scale[r] * part[r] if (mask[r] >> j) & 1 else -total[r]


# ---------------------------------------------------------------------------------------------
# Models


class FastTree:
    """A supported tree model, flattened once per output and kept for later calls.

    ``n_classes`` is the number of per-class outputs when the model is explained one class at
    a time (shap's slices of a classifier forest, a multiclass booster), else None; ``output``
    is what the trees add up to: ``"raw"`` (a booster's margin) or ``"probability"`` (a
    classifier forest's).
    """

    def __init__(
        self,
        build: Callable[[int], Ensemble | None],
        n_classes: int | None,
        source: object,
        version: tuple[Any, ...],
        output: str = "raw",
    ) -> None:
        self._build = build
        self.n_classes = n_classes
        self.output = output
        self._source = source
        self._version = version
        self._ensembles: dict[int, Ensemble | None] = {}

    def ensemble(self, class_index: int = 0) -> Ensemble | None:
        """The flattened trees of one output (built on first use), or None if unsupported."""
        if class_index not in self._ensembles:
            self._ensembles[class_index] = self._build(class_index)
        return self._ensembles[class_index]

    def matches(self, other: FastTree) -> bool:
        """Whether ``other`` describes the same fitted trees (not refitted since)."""
        return self._source is other._source and self._version == other._version


# Per model object; an entry holds no strong reference to its model.
_CACHE: weakref.WeakKeyDictionary[object, FastTree] = weakref.WeakKeyDictionary()


def fast_tree(model: object) -> FastTree | None:
    """The fast explainer of ``model``, kept per model object (and made anew when the model was
    refitted), or None when this module does not reproduce the model exactly."""
    found = _describe(model)
    if found is None:
        return None
    try:
        cached = _CACHE.get(model)
    except TypeError:  # not weakly referenceable: nothing is kept
        return found
    if cached is not None and cached.matches(found):
        return cached
    _CACHE[model] = found
    return found


def _describe(model: object) -> FastTree | None:
    module = type(model).__module__
    if module.startswith("lightgbm"):
        return _lightgbm(model)
    if module.startswith("sklearn"):
        return _sklearn(model)
    return None


def _lightgbm(model: object) -> FastTree | None:
    import lightgbm

    if isinstance(model, lightgbm.LGBMRegressor | lightgbm.LGBMClassifier):
        try:
            booster = model.booster_
        except (AttributeError, ValueError):  # not fitted: shap will say so
            return None
        source: object = booster
    elif isinstance(model, lightgbm.Booster):
        booster, source = model, None
    else:
        return None
    per_iteration = int(booster.num_model_per_iteration())
    booster_ref = weakref.ref(booster)

    def build(class_index: int) -> Ensemble | None:
        booster = booster_ref()
        if booster is None:
            return None
        info = booster.dump_model()
        if info.get("average_output"):  # random-forest mode: contributions are not averaged
            return None
        trees = []
        for tree in info["tree_info"][class_index::per_iteration]:
            parsed = _lightgbm_tree(tree["tree_structure"])
            if parsed is None:
                return None
            trees.append(parsed)
        if not trees:
            return None
        return flatten(trees, int(info["max_feature_idx"]) + 1, small_as_zero=True)

    version = (booster.current_iteration(), booster.best_iteration, booster.num_trees())
    return FastTree(build, per_iteration if per_iteration > 1 else None, source, version)


def _lightgbm_tree(structure: dict[str, Any]) -> Tree | None:
    """A tree of ``Booster.dump_model()`` as arrays, nodes in preorder; None when a node is of
    a kind this module does not reproduce (linear leaves, unknown decision types)."""
    left: list[int] = []
    right: list[int] = []
    feature: list[int] = []
    threshold: list[float] = []
    kind: list[int] = []
    default_left: list[bool] = []
    cover: list[float] = []
    value: list[float] = []
    categories: dict[int, list[int]] = {}
    stack: list[tuple[dict[str, Any], int, bool]] = [(structure, -1, True)]
    while stack:
        node, parent, is_left = stack.pop()
        index = len(left)
        if parent >= 0:
            (left if is_left else right)[parent] = index
        left.append(-1)
        right.append(-1)
        if "leaf_value" in node or "split_feature" not in node:
            if "leaf_const" in node or "leaf_coeff" in node:
                return None
            feature.append(0)
            threshold.append(0.0)
            kind.append(NUMERIC)
            default_left.append(True)
            cover.append(float(node.get("leaf_count", 1.0)))
            value.append(float(node.get("leaf_value", 0.0)))
            continue
        feature.append(int(node["split_feature"]))
        default_left.append(bool(node.get("default_left", True)))
        cover.append(float(node["internal_count"]))
        value.append(0.0)
        decision = node.get("decision_type")
        if decision == "==":
            kind.append(CATEGORICAL)
            threshold.append(0.0)
            categories[index] = [int(c) for c in str(node["threshold"]).split("||") if c != ""]
        elif decision == "<=":
            missing = node.get("missing_type", "None")
            if missing == "NaN":
                kind.append(NUMERIC)
            elif missing == "Zero":
                kind.append(NUMERIC_ZERO)
            elif missing == "None":
                kind.append(NUMERIC_NAN_AS_ZERO)
            else:
                return None
            threshold.append(float(node["threshold"]))
        else:
            return None
        stack.append((node["right_child"], index, False))
        stack.append((node["left_child"], index, True))
    return Tree(
        left=np.array(left, dtype=np.int64),
        right=np.array(right, dtype=np.int64),
        feature=np.array(feature, dtype=np.int64),
        threshold=np.array(threshold, dtype=np.float64),
        kind=np.array(kind, dtype=np.int8),
        default_left=np.array(default_left, dtype=np.bool_),
        cover=np.array(cover, dtype=np.float64),
        value=np.array(value, dtype=np.float64),
        categories=categories,
    )


def _sklearn(model: object) -> FastTree | None:
    from sklearn.dummy import DummyClassifier, DummyRegressor
    from sklearn.ensemble import (
        ExtraTreesClassifier,
        ExtraTreesRegressor,
        GradientBoostingClassifier,
        GradientBoostingRegressor,
        HistGradientBoostingClassifier,
        HistGradientBoostingRegressor,
        RandomForestClassifier,
        RandomForestRegressor,
    )
    from sklearn.tree import DecisionTreeClassifier, DecisionTreeRegressor

    if isinstance(model, HistGradientBoostingRegressor | HistGradientBoostingClassifier):
        return _histogram(model)

    forests = (
        RandomForestRegressor,
        RandomForestClassifier,
        ExtraTreesRegressor,
        ExtraTreesClassifier,
    )
    if getattr(model, "n_outputs_", 1) != 1 or not hasattr(model, "n_features_in_"):
        return None
    n_features = int(model.n_features_in_)
    source: object
    if isinstance(model, DecisionTreeRegressor | DecisionTreeClassifier):
        trees, source = [model.tree_], model.tree_
    elif isinstance(model, forests):
        trees, source = [e.tree_ for e in model.estimators_], model.estimators_
    elif isinstance(model, GradientBoostingRegressor | GradientBoostingClassifier):
        if model.estimators_.shape[1] != 1:
            return None
        trees, source = [e.tree_ for e in model.estimators_[:, 0]], model.estimators_
    else:
        return None
    version = (len(trees),)

    if isinstance(model, DecisionTreeClassifier | RandomForestClassifier | ExtraTreesClassifier):
        share = 1.0 / len(trees)  # a forest averages its trees' class probabilities

        def build_class(class_index: int) -> Ensemble | None:
            flat = []
            for tree in trees:
                counts = tree.value[:, 0, :]
                with np.errstate(invalid="ignore", divide="ignore"):
                    probability = counts[:, class_index] / counts.sum(axis=1)
                flat.append(_sklearn_tree(tree, probability * share))
            return flatten(flat, n_features, float32_input=True)

        return FastTree(build_class, int(model.n_classes_), source, version, "probability")

    scale, offset = 1.0 / len(trees), 0.0
    if isinstance(model, GradientBoostingRegressor):
        if not isinstance(model.init_, DummyRegressor):
            return None
        scale, offset = float(model.learning_rate), float(np.ravel(model.init_.constant_)[0])
    elif isinstance(model, GradientBoostingClassifier):
        if not isinstance(model.init_, DummyClassifier) or model.loss != "log_loss":
            return None
        prior = float(model.init_.class_prior_[1])
        scale, offset = float(model.learning_rate), math.log(prior / (1.0 - prior))

    def build(class_index: int) -> Ensemble | None:
        flat = [_sklearn_tree(tree, tree.value[:, 0, 0] * scale) for tree in trees]
        return flatten(flat, n_features, offset, float32_input=True)

    return FastTree(build, None, source, version)


def _sklearn_tree(tree: Any, value: NDArray[np.float64]) -> Tree:
    left = np.asarray(tree.children_left, dtype=np.int64)
    missing_left = getattr(tree, "missing_go_to_left", None)
    return Tree(
        left=left,
        right=np.asarray(tree.children_right, dtype=np.int64),
        feature=np.asarray(tree.feature, dtype=np.int64),
        threshold=np.asarray(tree.threshold, dtype=np.float64),
        kind=np.zeros(len(left), dtype=np.int8),
        default_left=(
            np.ones(len(left), dtype=np.bool_)
            if missing_left is None
            else np.asarray(missing_left).astype(np.bool_)
        ),
        cover=np.asarray(tree.weighted_n_node_samples, dtype=np.float64),
        value=np.asarray(value, dtype=np.float64),
    )


def _histogram(model: Any) -> FastTree | None:
    """scikit-learn's histogram gradient boosting, read from its fitted predictors.

    The model encodes its input before the trees see it: the categorical columns first, each
    value replaced by its position among the column's known categories (NaN when unknown or
    missing), then the numeric columns as they are. The trees' columns are mapped back to the
    model's, and the categorical columns encoded the same way when rows are explained. A split
    then routes as the model does: numeric ``x <= threshold`` left; a category's code left when
    in the split's set, right otherwise; NaN to the split's missing side.
    """
    predictors = getattr(model, "_predictors", None)
    if not predictors:  # not fitted: shap will say so
        return None
    columns = _histogram_columns(
        getattr(model, "_preprocessor", None), model._bin_mapper, int(model.n_features_in_)
    )
    if columns is None:
        return None
    column_of, category_values = columns
    iterations = list(predictors)
    baseline = np.ravel(model._baseline_prediction).astype(np.float64)
    per_iteration = len(iterations[0])

    def build(class_index: int) -> Ensemble | None:
        trees = [_histogram_tree(p[class_index], column_of) for p in iterations]
        return flatten(
            trees, len(column_of), float(baseline[class_index]), category_values=category_values
        )

    n_classes = per_iteration if per_iteration > 1 else None
    return FastTree(build, n_classes, predictors, (len(iterations),))


def _histogram_columns(
    preprocessor: Any, bin_mapper: Any, n_features: int
) -> tuple[NDArray[np.int64], tuple[tuple[int, NDArray[np.float64]], ...]] | None:
    """The model's column behind each column the trees read, and each categorical column's
    known values (in the order of their codes); None when the input is encoded in a way this
    module does not reproduce (non-numeric categories, grouped infrequent ones, other
    transformers)."""
    from sklearn.preprocessing import FunctionTransformer, OrdinalEncoder

    is_categorical = np.asarray(bin_mapper.is_categorical_, dtype=bool)
    if preprocessor is None:
        if is_categorical.any():
            return None
        return np.arange(n_features, dtype=np.int64), ()
    known_bits, known_row = bin_mapper.make_known_categories_bitsets()
    column_of = np.full(n_features, -1, dtype=np.int64)
    category_values: list[tuple[int, NDArray[np.float64]]] = []
    for name, transformer, selected in preprocessor.transformers_:
        if isinstance(transformer, str):
            if transformer != "drop":
                return None
            continue
        inputs = np.arange(n_features)[selected]
        outputs = np.arange(n_features)[preprocessor.output_indices_[name]]
        if len(inputs) != len(outputs):
            return None
        column_of[outputs] = inputs
        if isinstance(transformer, FunctionTransformer):
            if is_categorical[outputs].any():
                return None
            continue
        if not (
            isinstance(transformer, OrdinalEncoder)
            and transformer.handle_unknown == "use_encoded_value"
            and _is_nan(transformer.unknown_value)
            and _is_nan(transformer.encoded_missing_value)
            and transformer.min_frequency is None
            and transformer.max_categories is None
        ):
            return None
        for output, column, categories in zip(
            outputs, inputs, transformer.categories_, strict=True
        ):
            if np.asarray(categories).dtype.kind not in "fiu" or not is_categorical[output]:
                return None
            known = np.asarray(categories, dtype=np.float64)
            known = known[~np.isnan(known)]
            codes = np.arange(len(known))
            bits = known_bits[known_row[output]]
            if (
                len(known) > 32 * len(bits)
                or (np.diff(known) <= 0).any()  # codes are positions in sorted order
                or not ((bits[codes >> 5] >> (codes & 31)) & 1).all()
            ):
                return None
            category_values.append((int(column), known))
    if (np.sort(column_of) != np.arange(n_features)).any():
        return None
    return column_of, tuple(category_values)


def _is_nan(value: object) -> bool:
    return isinstance(value, float) and math.isnan(value)


def _histogram_tree(predictor: Any, column_of: NDArray[np.int64]) -> Tree:
    nodes = predictor.nodes
    leaf = nodes["is_leaf"].astype(np.bool_)
    categorical = nodes["is_categorical"].astype(np.bool_) & ~leaf
    # bit k of word w is category 32 w + k
    bits = np.unpackbits(
        np.ascontiguousarray(predictor.raw_left_cat_bitsets, dtype="<u4").view(np.uint8),
        axis=1,
        bitorder="little",
    )
    return Tree(
        left=np.where(leaf, -1, nodes["left"].astype(np.int64)),
        right=np.where(leaf, -1, nodes["right"].astype(np.int64)),
        feature=np.where(leaf, 0, column_of[nodes["feature_idx"]]).astype(np.int64),
        threshold=np.where(leaf | categorical, 0.0, nodes["num_threshold"]),
        kind=np.where(categorical, CATEGORY_CODE, NUMERIC).astype(np.int8),
        default_left=nodes["missing_go_to_left"].astype(np.bool_),
        cover=nodes["count"].astype(np.float64),
        value=np.where(leaf, nodes["value"], 0.0),
        categories={
            int(node): np.flatnonzero(bits[nodes["bitset_idx"][node]]).tolist()
            for node in np.flatnonzero(categorical)
        },
    )
