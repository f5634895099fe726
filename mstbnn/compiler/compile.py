"""Attach reuse schedules to every binary layer of a network."""

from __future__ import annotations

import copy

from mstbnn.compiler.ir import Network
from mstbnn.compiler.schedule import Schedule
from mstbnn.compiler.validate import validate

__all__ = ["schedule_network"]


def schedule_network(
    net: Network,
    *,
    reuse: bool = True,
    max_depth: int | None = None,
    negation: bool = False,
    edge_cost=None,
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
        :func:`mstbnn.compiler.mst.build_schedule`.
    """
    from mstbnn.compiler.mst import build_schedule

    validate(net)
    out = copy.deepcopy(net)
    for _, layer in out.binary_layers():
        w = layer.weight_matrix.astype(bool)
        if reuse:
            layer.schedule = build_schedule(w, max_depth=max_depth, negation=negation, edge_cost=edge_cost)
        else:
            layer.schedule = Schedule.plain(w.shape[0])
    out.meta = dict(out.meta, schedule={"reuse": reuse, "max_depth": max_depth, "negation": negation})
    return out
