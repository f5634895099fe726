"""Attach reuse schedules to every binary layer of a network."""

from __future__ import annotations

import copy

from mstbnn.compiler.ir import Network
from mstbnn.compiler.schedule import Schedule
from mstbnn.compiler.validate import validate

__all__ = ["schedule_network", "build_layer_schedule", "layer_leaf"]


def layer_leaf(net: Network, index: int) -> tuple[int, int]:
    """Range of one XNOR / signed term of binary layer ``index``: (0, 1), or the integer input's for an int first layer."""
    first = net.binary_layers()[0][0]
    if index == first and net.input.mode == "int":
        lo, hi = net.input.value_range
        return min(lo, -hi), max(hi, -lo)
    return (0, 1)


def build_layer_schedule(bits, *, max_depth=None, negation: bool = False, cost: str = "xnor", leaf=(0, 1),
                         edge_cost=None) -> Schedule:
    """One layer's reuse schedule, its tree minimising ``cost``: ``"xnor"`` (XNOR count) or ``"luts"``.

    ``"luts"`` weighs edges and roots by :func:`mstbnn.compiler.lutcost.lut_edge_cost`
    and keeps the XNOR-weighted tree instead when that one is cheaper under
    the same model (the height-capped search is a heuristic), so a LUT tree
    is never dearer than the XNOR tree. ``edge_cost`` (any callable) wins over ``cost``.
    """
    from mstbnn.compiler.lutcost import edge_cost_for
    from mstbnn.compiler.mst import build_schedule, schedule_cost

    if edge_cost is not None:
        return build_schedule(bits, max_depth=max_depth, negation=negation, edge_cost=edge_cost)
    n = int(bits.shape[1])
    lut = edge_cost_for(cost, n, leaf)
    xnor_tree = build_schedule(bits, max_depth=max_depth, negation=negation)
    if lut is None:
        return xnor_tree
    lut_tree = build_schedule(bits, max_depth=max_depth, negation=negation, edge_cost=lut)
    if schedule_cost(xnor_tree, n, lut) < schedule_cost(lut_tree, n, lut):
        return xnor_tree
    return lut_tree


def schedule_network(
    net: Network,
    *,
    reuse: bool = True,
    max_depth: int | None = None,
    negation: bool = False,
    edge_cost=None,
    cost: str = "xnor",
) -> Network:
    """Return a copy of ``net`` with a schedule on every binary layer.

    Parameters
    ----------
    reuse : bool
        False gives the plain baseline: every channel a root.
    max_depth : int or None
        Tree height limit H (every channel at level <= H).
    negation : bool
        Allow negation edges (edge weight min(d, N - d)).
    edge_cost : callable or None
        Maps correction sizes to hardware cost; see
        :func:`mstbnn.compiler.mst.build_schedule`. Overrides ``cost``.
    cost : {"xnor", "luts"}
        What the trees minimise: XNOR count, or the unrolled engine's LUT
        model (:mod:`mstbnn.compiler.lutcost`); see :func:`build_layer_schedule`.
    """
    from mstbnn.compiler.lutcost import COSTS

    if cost not in COSTS:
        from mstbnn.errors import UserError

        raise UserError(f"--cost: unknown tree cost {cost!r}; use one of {', '.join(COSTS)}")
    validate(net)
    out = copy.deepcopy(net)
    for i, layer in out.binary_layers():
        w = layer.weight_matrix.astype(bool)
        if reuse:
            layer.schedule = build_layer_schedule(w, max_depth=max_depth, negation=negation, cost=cost,
                                                  leaf=layer_leaf(out, i), edge_cost=edge_cost)
        else:
            layer.schedule = Schedule.plain(w.shape[0])
    sched_meta = {"reuse": reuse, "max_depth": max_depth, "negation": negation}
    if cost != "xnor" and edge_cost is None:
        sched_meta["cost"] = cost  # absent for xnor: artefacts compiled as before stay byte for byte the same
    out.meta = dict(out.meta, schedule=sched_meta)
    return out
