"""Minimum-spanning-tree reuse schedules for binary layers.

A binary layer's output channels form a complete graph whose edge weight is
the Hamming distance between two channels' weight bits: the number of XNORs
a child pays to reconstruct its sum from its parent's (docs/mst.md). This
module builds that distance matrix bit-packed, and from it a
:class:`~mstbnn.compiler.schedule.Schedule`:

- unconstrained: a spanning tree of exactly minimum total weight, chosen among
  the equal-weight minimum spanning trees for small height (Prim with ties
  broken toward the shallower attachment point, from several roots, each tree
  re-rooted at its centre and shallowed by equal-weight re-attachment);
- ``max_depth=H``: a forest of height <= H over the virtual-source graph
  (every channel joined to a virtual node by the root cost N): starts from
  depth-capped Prim (with level penalties), farthest-first hub hierarchies
  and the unconstrained tree cut bottom-up, the cheapest polished by local
  search (subtree moves and facility-location "hub" moves);
- ``negation=True``: edge weight min(d, N - d), the child negating its
  parent's sum where N - d < d;
- ``edge_cost``: edges weighed by hardware cost instead of XNOR count, roots
  by ``edge_cost(N)``, cost ties broken by XNOR count.

All choices are deterministic: ties go to the lowest channel index.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from mstbnn.compiler.schedule import Schedule
from mstbnn.errors import UserError

__all__ = [
    "hamming_matrix",
    "build_schedule",
    "mst_weight",
    "min_forest_cost",
    "schedule_cost",
]

# Bytes of XOR/popcount temporaries per chunk of rows in hamming_matrix.
_CHUNK_BYTES = 16 << 20
# Rounds of "Prim from the previous tree's centre" tried per build.
_ROOT_ROUNDS = 4
# Bound on local-search sweeps for max_depth (each sweep visits every channel).
_MAX_SWEEPS = 50
# Depth-limited starts polished by local search (the cheapest ones).
_POLISHED_STARTS = 3


# ---------------------------------------------------------------------------
# Input checks
# ---------------------------------------------------------------------------


def _as_bits(weights, where: str = "weights") -> np.ndarray:
    """Validate a (C, N) binary array and return it as bool."""
    arr = np.asarray(weights)
    if arr.ndim != 2:
        raise UserError(
            f"{where}: expected a 2-D (C_out, N) array of weight bits, got shape {arr.shape}; "
            "reshape conv weights to (C_out, C_in*k*k)"
        )
    if arr.shape[0] < 1 or arr.shape[1] < 1:
        raise UserError(f"{where}: need at least one channel and one input, got shape {arr.shape}")
    if arr.dtype == bool:
        return arr
    if not (np.issubdtype(arr.dtype, np.integer) or np.issubdtype(arr.dtype, np.floating)):
        raise UserError(f"{where}: dtype {arr.dtype} is not numeric; pass bits as bool or 0/1 integers")
    bad = (arr != 0) & (arr != 1)
    if bad.any():
        row, col = np.argwhere(bad)[0]
        raise UserError(
            f"{where}: value {arr[row, col]!r} at [{row}, {col}] is not a bit; "
            "pass 0/1 (bit 1 = +1, bit 0 = -1), e.g. weights > 0"
        )
    return arr.astype(bool)


# ---------------------------------------------------------------------------
# Distance matrix
# ---------------------------------------------------------------------------


def _pack_rows(bits: np.ndarray) -> np.ndarray:
    """Pack each row of a (C, N) bool array into uint64 words, zero-padded."""
    c, n = bits.shape
    n_words = -(-n // 64)
    packed = np.zeros((c, n_words * 8), dtype=np.uint8)
    packed[:, : -(-n // 8)] = np.packbits(bits, axis=1)
    # Padding bits are 0 in every row, so they never show up in an XOR.
    return packed.view(np.uint64)


def hamming_matrix(weights) -> np.ndarray:
    """Pairwise Hamming distances between the rows of a bit matrix.

    Parameters
    ----------
    weights : array_like, shape (C, N)
        Weight bits (bool or 0/1) of C channels with N inputs each.

    Returns
    -------
    ndarray of int64, shape (C, C)
        ``D[i, j] = popcount(w_i XOR w_j)``; symmetric with a zero diagonal.

    Notes
    -----
    Rows are packed into 64-bit words and compared with ``np.bitwise_count``
    on their XOR, a chunk of rows at a time so the temporaries stay within a
    few tens of megabytes whatever C is.
    """
    bits = _as_bits(weights)
    words = _pack_rows(bits)
    c, n_words = words.shape
    dist = np.empty((c, c), dtype=np.int64)
    rows_per_chunk = max(1, _CHUNK_BYTES // (8 * c * n_words))
    for start in range(0, c, rows_per_chunk):
        stop = min(c, start + rows_per_chunk)
        xor = np.bitwise_xor(words[start:stop, None, :], words[None, :, :])
        np.sum(np.bitwise_count(xor), axis=2, dtype=np.int64, out=dist[start:stop])
    return dist


# ---------------------------------------------------------------------------
# Cost model of one layer's graph
# ---------------------------------------------------------------------------


def _apply_edge_cost(edge_cost: Callable, sizes: np.ndarray) -> np.ndarray:
    """Call a user cost function on an int array and check what comes back."""
    try:
        out = np.asarray(edge_cost(sizes))
    except Exception as exc:  # a user callable may raise anything
        raise UserError(f"edge_cost: calling it on an int64 array of correction sizes failed: {exc}") from exc
    if out.shape != sizes.shape:
        raise UserError(
            f"edge_cost: returned shape {out.shape} for input shape {sizes.shape}; "
            "it must map an int array elementwise (e.g. lambda d: -(-d // G))"
        )
    if not np.issubdtype(out.dtype, np.integer):
        if not np.issubdtype(out.dtype, np.number) or not np.all(out == np.round(out)):
            raise UserError(f"edge_cost: returned non-integer costs (dtype {out.dtype}); return integer cycle/LUT counts")
    out = out.astype(np.int64)
    if (out < 0).any():
        raise UserError("edge_cost: returned a negative cost; costs must be >= 0")
    return out


def _graph(weights, negation: bool, edge_cost: Callable | None):
    """Cost matrix, negation choice and root cost of a layer's reuse graph.

    Returns
    -------
    bits : ndarray of bool (C, N)
    cost : ndarray of int64 (C, C)
        Cost of reconstructing column channel from row channel (symmetric).
    neg : ndarray of bool (C, C)
        True where that edge is a negation edge.
    root_cost : int
        Cost of computing a channel from scratch (``N`` or ``edge_cost(N)``).
    size : ndarray of int64 (C, C)
        Correction-set size of that edge (d, or N - d for a negation edge).
    """
    bits = _as_bits(weights)
    n = bits.shape[1]
    dist = hamming_matrix(bits)
    if edge_cost is None:
        plain, flipped = dist, n - dist
        root_cost = n
    else:
        plain = _apply_edge_cost(edge_cost, dist)
        flipped = _apply_edge_cost(edge_cost, n - dist)
        root_cost = int(_apply_edge_cost(edge_cost, np.array([n], dtype=np.int64))[0])
    if negation:
        # Negate when strictly cheaper; on equal cost, when the correction set is smaller.
        neg = (flipped < plain) | ((flipped == plain) & (n - dist < dist))
        cost = np.where(neg, flipped, plain)
    else:
        neg = np.zeros(dist.shape, dtype=bool)
        cost = plain
    np.fill_diagonal(neg, False)
    size = np.where(neg, n - dist, dist)
    return bits, np.ascontiguousarray(cost, dtype=np.int64), neg, root_cost, size


# Keys in _prim reach cost * (C + 2) * (1 + 4 * depth); stay clear of int64.
_KEY_LIMIT = 1 << 62


def _check_key_range(cost: np.ndarray, root_cost: int, depth_factor: int) -> int:
    """Largest cost; UserError if Prim's keys could overflow int64."""
    c = cost.shape[0]
    top = max(int(cost.max()), int(root_cost))
    if top * (c + 2) * depth_factor >= _KEY_LIMIT:
        raise UserError(
            f"edge_cost: costs up to {top} are too large to schedule {c} channels; scale the cost function down"
        )
    return top


def _refine_by_size(cost: np.ndarray, root_cost: int, size: np.ndarray, n: int, max_depth: int | None):
    """Break hardware-cost ties by XNOR count (correction size, N for a root).

    Weights become cost * M + size with M = C * N + 1, larger than any
    forest's total size, so a minimum forest under the new weights is a
    minimum-cost forest that, among those, has the fewest XNORs. Returned
    unchanged if the keys could overflow int64.
    """
    c = cost.shape[0]
    depth_factor = 4 * (max_depth if max_depth is not None else 0) + 2
    top = _check_key_range(cost, root_cost, depth_factor)
    mult = c * n + 1
    if (top * mult + n) * (c + 2) * depth_factor >= _KEY_LIMIT:
        return cost, root_cost
    return cost * mult + size, root_cost * mult + n


# ---------------------------------------------------------------------------
# Forest utilities (parent arrays: -1 marks a root)
# ---------------------------------------------------------------------------


def _levels(parent: np.ndarray) -> np.ndarray:
    """Depth of every node of a forest, by pointer walking (O(height) numpy ops)."""
    level = np.zeros(parent.shape[0], dtype=np.int64)
    anc = parent.copy()
    alive = anc >= 0
    while alive.any():
        level[alive] += 1
        anc[alive] = parent[anc[alive]]
        alive = anc >= 0
    return level


def _height(parent: np.ndarray) -> int:
    return int(_levels(parent).max())


def _forest_cost(cost: np.ndarray, root_cost: int, parent: np.ndarray) -> int:
    child = np.flatnonzero(parent >= 0)
    return int(root_cost) * int(parent.shape[0] - child.size) + int(cost[parent[child], child].sum())


def _adjacency(parent: np.ndarray) -> list[list[int]]:
    adj: list[list[int]] = [[] for _ in range(parent.shape[0])]
    for child, par in enumerate(parent.tolist()):
        if par >= 0:
            adj[child].append(par)
            adj[par].append(child)
    return adj


def _bfs(adj: list[list[int]], start: int) -> tuple[list[int], dict[int, int]]:
    """Breadth-first order and predecessor map of the component holding start."""
    order = [start]
    pred = {start: -1}
    for node in order:
        for nxt in adj[node]:
            if nxt not in pred:
                pred[nxt] = node
                order.append(nxt)
    return order, pred


def _recentre(parent: np.ndarray) -> np.ndarray:
    """Re-root every tree of a forest at its centre.

    The centre (middle of a longest path) has the least eccentricity, so the
    height never grows; edges only change direction, so cost is unchanged.
    """
    adj = _adjacency(parent)
    new_parent = parent.copy()
    for root in np.flatnonzero(parent < 0).tolist():
        order, _ = _bfs(adj, root)
        far, pred = _bfs(adj, order[-1])
        path = [far[-1]]
        while pred[path[-1]] >= 0:
            path.append(pred[path[-1]])
        # Of two middle nodes (odd path length) take the lower index: determinism.
        mid = len(path) // 2
        centre = path[mid] if len(path) % 2 else min(path[mid - 1], path[mid])
        _, pred_c = _bfs(adj, centre)
        for node, par in pred_c.items():
            new_parent[node] = par
    return new_parent


def _prim(
    cost: np.ndarray,
    root_cost: int,
    first: int,
    *,
    tie_break: bool,
    max_level: int | None,
    level_penalty: int = 0,
) -> np.ndarray:
    """Prim's algorithm from a virtual source joined to every channel by root_cost.

    The first channel taken is ``first`` (as a root: every virtual edge costs
    the same, so any channel may be first in some minimum spanning tree).
    With ``tie_break``, candidates are compared on (cost, level they would
    get), else on cost only; remaining ties go to the lowest index. With
    ``max_level``, only channels of level < max_level may take children.
    A ``level_penalty`` p > 0 compares candidates on cost + p * level instead
    (no longer a minimum spanning tree: a bushier start for depth limits).
    Vectorised: one pass of a few length-C numpy operations per channel.
    """
    c = cost.shape[0]
    scale = np.int64(c + 2)  # level < c + 1, so key order is (cost, level)
    step = np.int64(level_penalty) * scale
    big = np.iinfo(np.int64).max
    key = np.full(c, root_cost * scale, dtype=np.int64)
    best_parent = np.full(c, -1, dtype=np.int64)
    parent = np.full(c, -1, dtype=np.int64)
    level = np.zeros(c, dtype=np.int64)
    outside = np.ones(c, dtype=bool)
    u = first
    for _ in range(c):
        par = int(best_parent[u])
        parent[u] = par
        level[u] = 0 if par < 0 else level[par] + 1
        key[u] = big
        outside[u] = False
        if max_level is None or level[u] < max_level:
            cand = cost[u] * scale
            if tie_break:
                cand += (level[u] + 1) * (step + 1)
            better = (cand < key) & outside
            key[better] = cand[better]
            best_parent[better] = u
        u = int(np.argmin(key))
    return parent


def _shallow(cost: np.ndarray, root_cost: int, parent: np.ndarray) -> np.ndarray:
    """Re-attach channels to shallower parents of equal edge cost, until none is left.

    A channel at level L may move to any q of level < L - 1 with the same
    edge cost (or become a root if its edge costs exactly root_cost): such q
    is never in its own subtree, total cost is unchanged and the sum of
    levels strictly drops, so this terminates.
    """
    parent = parent.copy()
    changed = True
    while changed:
        changed = False
        level = _levels(parent)
        for lvl in range(1, int(level.max()) + 1):
            nodes = np.flatnonzero(level == lvl)
            if nodes.size == 0:
                continue
            edge = cost[parent[nodes], nodes]
            ok = (cost[nodes] == edge[:, None]) & (level[None, :] < lvl - 1)
            cand_level = np.where(ok, level[None, :], np.iinfo(np.int64).max)
            best = np.argmin(cand_level, axis=1)
            has = ok[np.arange(nodes.size), best]
            to_root = edge == root_cost
            move_root = to_root
            move_q = has & ~to_root
            if move_root.any() or move_q.any():
                parent[nodes[move_root]] = -1
                parent[nodes[move_q]] = best[move_q]
                changed = True
                level = _levels(parent)
    return parent


def _polish(cost: np.ndarray, root_cost: int, parent: np.ndarray) -> np.ndarray:
    """Alternate re-centring and shallowing while the height keeps dropping."""
    best = _shallow(cost, root_cost, _recentre(parent))
    best_h = _height(best)
    for _ in range(8):
        parent = _shallow(cost, root_cost, _recentre(best))
        h = _height(parent)
        if h >= best_h:
            break
        best, best_h = parent, h
    return best


def _centre_of_first_tree(parent: np.ndarray) -> int:
    """Root of the tree holding channel 0 after re-centring."""
    rp = _recentre(parent)
    node = 0
    while rp[node] >= 0:
        node = int(rp[node])
    return node


def _min_height_forest(cost: np.ndarray, root_cost: int) -> np.ndarray:
    """A minimum-cost forest with a small height (see module docstring)."""
    # Baseline guarantee: plain Prim from channel 0, polished (never taller).
    candidates = [_polish(cost, root_cost, _prim(cost, root_cost, 0, tie_break=False, max_level=None))]
    seen = set()
    first = 0
    for _ in range(_ROOT_ROUNDS):
        if first in seen:
            break
        seen.add(first)
        tree = _polish(cost, root_cost, _prim(cost, root_cost, first, tie_break=True, max_level=None))
        candidates.append(tree)
        first = _centre_of_first_tree(tree)
    return min(candidates, key=lambda p: (_height(p), int(_levels(p).sum())))


# ---------------------------------------------------------------------------
# Depth-limited forests
# ---------------------------------------------------------------------------


def _cut_to_height(parent: np.ndarray, max_depth: int) -> np.ndarray:
    """Make channels roots, bottom-up, until every tree has height <= max_depth.

    Cut a channel from its parent as soon as the subtree below it reaches
    height max_depth: as high as possible, so as few cuts as possible on this
    tree.
    """
    parent = parent.copy()
    level = _levels(parent)
    sub_height = np.zeros(parent.shape[0], dtype=np.int64)
    for lvl in range(int(level.max()), 0, -1):
        nodes = np.flatnonzero(level == lvl)
        cut = nodes[sub_height[nodes] >= max_depth]
        parent[cut] = -1
        keep = nodes[sub_height[nodes] < max_depth]
        np.maximum.at(sub_height, parent[keep], sub_height[keep] + 1)
    return parent


def _hub_forest(cost: np.ndarray, root_cost: int, max_depth: int, first: int, branching: float) -> np.ndarray:
    """A hierarchy of hubs: farthest-first order cut into geometrically growing levels.

    The first channel is level 0, the next ``branching`` - 1 farthest-first
    channels level <= 1, up to ``branching ** 2`` level <= 2, and so on to
    max_depth; every channel attaches to its cheapest channel of a lower
    target level (or becomes a root if that is cheaper). Farthest-first
    prefixes are good k-centre sets, so each level spreads its hubs evenly,
    which depth-capped Prim (nearest first) does not.
    """
    c = cost.shape[0]
    order = np.empty(c, dtype=np.int64)
    near = cost[first].astype(np.int64).copy()
    taken = np.zeros(c, dtype=bool)
    order[0] = first
    taken[first] = True
    near[first] = -1
    for i in range(1, c):
        u = int(np.argmax(near))
        order[i] = u
        taken[u] = True
        np.minimum(near, cost[u], out=near)
        near[taken] = -1
    bounds = np.ceil(branching ** np.arange(1, max_depth + 1)).astype(np.int64)
    target = np.full(c, max_depth, dtype=np.int64)
    target[order] = np.minimum(np.searchsorted(bounds, np.arange(c), side="right"), max_depth)
    parent = np.full(c, -1, dtype=np.int64)
    level = np.zeros(c, dtype=np.int64)
    for lvl in range(1, max_depth + 1):
        nodes = np.flatnonzero(target == lvl)
        hubs = np.flatnonzero(target < lvl)
        if nodes.size == 0 or hubs.size == 0:
            continue
        sub = cost[np.ix_(hubs, nodes)]
        pick = np.argmin(sub, axis=0)
        edge = sub[pick, np.arange(nodes.size)]
        attach = edge < root_cost
        parent[nodes[attach]] = hubs[pick[attach]]
        level[nodes[attach]] = level[hubs[pick[attach]]] + 1
    return parent


def _single_moves(cost: np.ndarray, root_cost: int, parent: np.ndarray, max_depth: int) -> np.ndarray:
    """Move single subtrees to cheaper (or equally cheap but shallower) places.

    For each channel v, its subtree S and subtree height h: a new parent q
    must lie outside S with level(q) + 1 + h <= max_depth; becoming a root is
    always allowed. Moves strictly lower (total cost, sum of levels), so the
    search terminates; it is bounded by _MAX_SWEEPS sweeps anyway.
    """
    c = cost.shape[0]
    parent = parent.copy()
    level = _levels(parent)
    idx = np.arange(c)
    scale = np.int64(c + 2)
    big = np.iinfo(np.int64).max
    for _ in range(_MAX_SWEEPS):
        moved = False
        # One C x C pass finds the channels that could move at all (subtrees
        # ignored, so a superset); moves during the sweep may stale it, the
        # next sweep recomputes it, and the search stops only on a fresh one.
        cur_all = np.full(c, root_cost, dtype=np.int64)
        kids = np.flatnonzero(parent >= 0)
        cur_all[kids] = cost[parent[kids], kids]
        sub_height = _subtree_heights(parent, level)
        fits = level[None, :] + 1 + sub_height[:, None] <= max_depth
        reach = np.where(fits, cost * scale + (level + 1)[None, :], big)
        np.fill_diagonal(reach, big)
        hopeful = np.flatnonzero(
            (reach.min(axis=1) < cur_all * scale + level) | (root_cost * scale < cur_all * scale + level)
        )
        for v in hopeful.tolist():
            lv = int(level[v])
            cur_cost = root_cost if parent[v] < 0 else int(cost[parent[v], v])
            cur_key = cur_cost * scale + lv
            # Quick reject before computing the subtree: no q at all beats v's place.
            room = max_depth - 1 - level
            cand = cost[v] * scale + level + 1
            cand = np.where(room >= 0, cand, np.iinfo(np.int64).max)
            cand[v] = np.iinfo(np.int64).max
            root_key = root_cost * scale
            if cand.min() >= cur_key and root_key >= cur_key:
                continue
            # Subtree of v: nodes whose ancestor chain meets v within max_depth steps.
            in_sub = idx == v
            anc = parent.copy()
            for _ in range(max_depth):
                alive = anc >= 0
                if not alive.any():
                    break
                in_sub |= anc == v
                anc = np.where(alive, parent[np.maximum(anc, 0)], -1)
            h = int(level[in_sub].max()) - lv
            cand = np.where(in_sub | (room < h), np.iinfo(np.int64).max, cand)
            q = int(np.argmin(cand))
            best_key = int(cand[q])
            if root_key <= best_key:
                q, best_key = -1, int(root_key)
            if best_key < cur_key:
                new_level = 0 if q < 0 else int(level[q]) + 1
                parent[v] = q
                level[in_sub] += new_level - lv
                moved = True
        if not moved:
            break
    return parent


def _subtree_heights(parent: np.ndarray, level: np.ndarray) -> np.ndarray:
    """Height of the subtree below every node (0 for a leaf), bottom-up by level."""
    sub_height = np.zeros(parent.shape[0], dtype=np.int64)
    for lvl in range(int(level.max()), 0, -1):
        nodes = np.flatnonzero(level == lvl)
        np.maximum.at(sub_height, parent[nodes], sub_height[nodes] + 1)
    return sub_height


def _hub_moves(cost: np.ndarray, root_cost: int, parent: np.ndarray, max_depth: int) -> tuple[np.ndarray, bool]:
    """Facility-location moves: lift a channel v to a shallower place and let it adopt.

    v moves to level t <= its level (t = 0: v becomes a root, cost root_cost;
    else below the cheapest q of level < t, which cannot lie in v's subtree),
    then adopts every channel u it serves more cheaply, when u's subtree
    still fits below v and u is not an ancestor of v's new place. Single
    moves cannot find these: lifting v costs more than any one channel saves.
    Applied only when the total cost drops.
    """
    c = cost.shape[0]
    parent = parent.copy()
    changed = False
    big = np.iinfo(np.int64).max

    def state():
        level = _levels(parent)
        # u fits below a lifted v at level t iff t <= max_depth - 1 - height below u.
        fit = max_depth - 1 - _subtree_heights(parent, level)
        cur = np.full(c, root_cost, dtype=np.int64)
        kids = np.flatnonzero(parent >= 0)
        cur[kids] = cost[parent[kids], kids]
        by_level = np.argsort(level, kind="stable")
        below = np.searchsorted(level[by_level], np.arange(max_depth), side="left")  # count of level < t
        return level, fit, cur, by_level, below

    level, fit, cur, by_level, below = state()
    # Prefilter (a superset, refreshed on every call): v can only pay off if what
    # it could save others, plus its own edge, exceeds its cheapest new edge.
    saving = np.maximum(cur[None, :] - cost, 0).sum(axis=1)
    off_diag = cost + np.diag(np.full(c, root_cost, dtype=np.int64))
    cheapest_lift = np.minimum(off_diag.min(axis=0), root_cost)
    hopeful = np.flatnonzero((level > 0) & (cheapest_lift - cur - saving < 0))
    for v in hopeful.tolist():
        lv = int(level[v])
        top = min(lv, max_depth - 1)  # highest level v may be lifted to
        gain = cur - cost[v]
        gain[v] = 0
        pos = gain > 0
        # Savings for every t at once: bucket gains by the deepest t each u allows.
        buckets = np.bincount(np.clip(fit[pos], -1, max_depth - 1) + 1, weights=gain[pos], minlength=max_depth + 1)
        saved = np.cumsum(buckets[::-1])[::-1].astype(np.int64)  # saved[k] = gains with fit >= k - 1
        # Cheapest lift to every t: root for t = 0, else a running minimum over levels < t.
        run_min = np.minimum.accumulate(cost[v][by_level])
        lift = np.full(top + 1, big, dtype=np.int64)
        lift[0] = root_cost
        for t in range(1, top + 1):
            if below[t] > 0:
                lift[t] = run_min[below[t] - 1]
        delta = np.where(lift < big, lift - cur[v] - saved[1 : top + 2], big)
        t = int(np.argmin(delta))
        if delta[t] >= 0:
            continue
        # Exact check for the chosen t (the estimate ignored q's ancestors).
        if t == 0:
            q = -1
        else:
            allowed = by_level[: below[t]]
            q = int(allowed[np.argmin(cost[v][allowed])])
        ok = pos & (fit >= t)
        a = q
        while a >= 0:  # adopting q or its ancestors would close a cycle
            ok[a] = False
            a = int(parent[a])
        exact = int(lift[t]) - int(cur[v]) - int(gain[ok].sum())
        if exact < 0:
            parent[v] = q
            parent[ok] = v
            level, fit, cur, by_level, below = state()
            changed = True
    return parent, changed


def _local_search(cost: np.ndarray, root_cost: int, parent: np.ndarray, max_depth: int) -> np.ndarray:
    """Alternate single-subtree moves and hub moves until neither helps."""
    for _ in range(_MAX_SWEEPS):
        parent = _single_moves(cost, root_cost, parent, max_depth)
        parent, changed = _hub_moves(cost, root_cost, parent, max_depth)
        if not changed:
            break
    return parent


def _depth_limited_forest(cost: np.ndarray, root_cost: int, max_depth: int, unconstrained: np.ndarray) -> np.ndarray:
    """A small-cost forest of height <= max_depth (heuristic; exact problem is NP-hard)."""
    if _height(unconstrained) <= max_depth:
        return unconstrained
    c = cost.shape[0]
    if max_depth == 0:
        return np.full(c, -1, dtype=np.int64)
    # Level penalties scaled to a typical tree edge: 0 is plain depth-capped Prim,
    # larger ones grow bushier trees that the cap cuts less.
    child = np.flatnonzero(unconstrained >= 0)
    typical = max(1, int(np.median(cost[unconstrained[child], child]))) if child.size else 1
    centre = _centre_of_first_tree(unconstrained)
    starts = [_cut_to_height(unconstrained, max_depth)]
    for frac in (0, 1, 2, 4, 8, 16):
        penalty = typical * frac // 4
        starts.append(_prim(cost, root_cost, centre, tie_break=True, max_level=max_depth, level_penalty=penalty))
    for factor in (0.5, 1.0, 2.0):
        branching = max(2.0, factor * c ** (1.0 / max_depth))
        starts.append(_hub_forest(cost, root_cost, max_depth, centre, branching))
    # Local search dominates the time: polish only the cheapest few starts.
    starts.sort(key=lambda p: _forest_cost(cost, root_cost, p))
    candidates = [_local_search(cost, root_cost, p, max_depth) for p in starts[:_POLISHED_STARTS]]
    return min(
        candidates,
        key=lambda p: (_forest_cost(cost, root_cost, p), _height(p), int(_levels(p).sum())),
    )


# ---------------------------------------------------------------------------
# Public API
# ---------------------------------------------------------------------------


def _check_max_depth(max_depth) -> int | None:
    if max_depth is None:
        return None
    if isinstance(max_depth, bool) or not isinstance(max_depth, (int, np.integer)):
        raise UserError(f"max_depth: expected a non-negative integer or None, got {max_depth!r}")
    if max_depth < 0:
        raise UserError(f"max_depth: {max_depth} is negative; use 0 (every channel a root) or more, or None")
    return int(max_depth)


def build_schedule(
    weights,
    *,
    max_depth: int | None = None,
    negation: bool = False,
    edge_cost: Callable | None = None,
) -> Schedule:
    """Reuse schedule of one binary layer: a minimum-cost spanning forest of small height.

    Parameters
    ----------
    weights : array_like, shape (C, N)
        Weight bits (bool or 0/1), one row per output channel.
    max_depth : int or None
        Height limit H. None: one spanning tree of exactly minimum total
        Hamming weight (a forest of minimum cost with ``edge_cost``), of
        small height among those. An int: every level <= H; channels that
        cannot be reached cheaply within H levels become roots (cost N, or
        ``edge_cost(N)``). H = 0 makes every channel a root.
    negation : bool
        Allow negation edges: weight min(d, N - d), the child negating its
        parent's sum where N - d < d.
    edge_cost : callable or None
        Maps an int64 array of correction sizes to an integer array of
        hardware costs of the same shape (e.g. ``lambda d: -(-d // G)`` for a
        gather unit fetching G positions per cycle). Edges are then weighed
        by cost, roots by ``edge_cost(N)``, and a channel becomes a root when
        its correction would cost more than computing it afresh. Among forests
        of equal cost, the one with fewer XNORs (correction positions, N per
        root) wins. Positions in the schedule are still the true correction
        sets.

    Returns
    -------
    Schedule
        Parent, negation flag, level, order and correction positions.

    Raises
    ------
    UserError
        Weights not 2-D or not binary, max_depth negative, or an edge_cost
        returning something other than non-negative integers of the same shape.
    """
    max_depth = _check_max_depth(max_depth)
    bits, cost, neg, root_cost, size = _graph(weights, bool(negation), edge_cost)
    if edge_cost is not None:
        cost, root_cost = _refine_by_size(cost, root_cost, size, bits.shape[1], max_depth)
    if edge_cost is None and max_depth is None:
        # A single tree: roots cost more than any edge, so Prim never opens a second one.
        root_cost = int(cost.max()) + 1
    parent = _min_height_forest(cost, root_cost)
    if max_depth is not None:
        parent = _depth_limited_forest(cost, root_cost, max_depth, parent)
    c = parent.shape[0]
    negate = np.zeros(c, dtype=bool)
    child = np.flatnonzero(parent >= 0)
    negate[child] = neg[parent[child], child]
    return Schedule.from_parents(bits, parent, negate)


def mst_weight(weights, negation: bool = False) -> int:
    """Total Hamming weight of a minimum spanning tree over the channels.

    With ``negation``, edges weigh min(d, N - d). This is the weight of
    ``build_schedule(weights, negation=negation)``; a depth-limited schedule
    ``s`` costs ``s.xnors(N) - (N + mst_weight(weights, negation))`` extra XNORs.
    """
    _, cost, _, _, _ = _graph(weights, bool(negation), None)
    parent = _prim(cost, int(cost.max()) + 1, 0, tie_break=False, max_level=None)
    return _forest_cost(cost, 0, parent)


def min_forest_cost(weights, *, negation: bool = False, edge_cost: Callable | None = None) -> int:
    """Least total cost of any reuse forest: roots * root cost + sum of edge costs.

    Without ``edge_cost`` this is ``N + mst_weight(weights, negation)`` (the
    XNOR count of the best unconstrained schedule); with it, costs are
    ``edge_cost`` of the correction sizes and ``edge_cost(N)`` per root.
    """
    _, cost, _, root_cost, _ = _graph(weights, bool(negation), edge_cost)
    _check_key_range(cost, root_cost, 2)
    parent = _prim(cost, root_cost, 0, tie_break=False, max_level=None)
    return _forest_cost(cost, root_cost, parent)


def schedule_cost(schedule: Schedule, n_inputs: int, edge_cost: Callable | None = None) -> int:
    """Total cost of a schedule: root cost per root plus edge cost per child.

    Without ``edge_cost`` this is the XNOR count ``schedule.xnors(n_inputs)``.
    """
    if edge_cost is None:
        return schedule.xnors(n_inputs)
    children = np.flatnonzero(schedule.parent >= 0)
    sizes = np.array([len(schedule.positions[j]) for j in children.tolist()], dtype=np.int64)
    root_cost = int(_apply_edge_cost(edge_cost, np.array([n_inputs], dtype=np.int64))[0])
    return root_cost * len(schedule.roots) + int(_apply_edge_cost(edge_cost, sizes).sum())
