"""Exact cost model: XNOR counts, tree shape and storage, per layer and in total.

Counts are per evaluation of a layer (one input vector, or one conv window)
and per inference (times the number of output pixels for conv).

Storage of a scheduled layer (the packed format a folded engine reads):
per channel 1 bit root/child flag; a root stores its N weight bits; a child
stores its parent id (ceil(log2 C) bits), its correction-set length
(ceil(log2(N + 1)) bits), a negation flag when the layer uses negation
edges, and ceil(log2 N) + 1 bits per correction position: the index and the
child's weight bit there (a folded engine never holds the parent's weight
vector, so it cannot infer that bit; see :mod:`mstbnn.compiler.storage`).
Plain storage is C * N.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from mstbnn.compiler.ir import Network
from mstbnn.compiler.schedule import Schedule

__all__ = ["LayerCost", "layer_costs", "network_cost", "storage_bits", "format_table", "clog2"]


def clog2(n: int) -> int:
    """Bits to index n things (at least 1)."""
    return max(1, int(np.ceil(np.log2(n)))) if n > 1 else 1


_clog2 = clog2


def storage_bits(schedule: Schedule, n_inputs: int) -> int:
    """Bits to store a layer's weights in the packed reuse format (see module docstring)."""
    c = schedule.n_channels
    children = schedule.parent >= 0
    n_children = int(children.sum())
    neg_bit = 1 if schedule.negate.any() else 0
    per_child = _clog2(c) + _clog2(n_inputs + 1) + neg_bit
    return c + len(schedule.roots) * n_inputs + n_children * per_child + schedule.weight * (_clog2(n_inputs) + 1)


@dataclass
class LayerCost:
    index: int
    kind: str
    out_channels: int
    fan_in: int
    evaluations: int  # per inference: 1 for dense, output pixels for conv
    roots: int
    mst_weight: int
    height: int
    xnor_plain: int  # per evaluation
    xnor_reuse: int  # per evaluation
    storage_plain_bits: int
    storage_reuse_bits: int

    @property
    def ratio(self) -> float:
        return self.xnor_plain / self.xnor_reuse if self.xnor_reuse else float("inf")

    def as_dict(self) -> dict:
        d = asdict(self)
        d["ratio"] = self.ratio
        return d


def layer_costs(net: Network) -> list[LayerCost]:
    """Cost of every binary layer; a layer without a schedule counts as plain."""
    shapes = net.shapes()
    out = []
    for i, layer in net.binary_layers():
        c, n = layer.out_channels, layer.fan_in
        sched = layer.schedule or Schedule.plain(c)
        evals = 1 if layer.kind == "dense" else int(shapes[i][1] * shapes[i][2])
        out.append(
            LayerCost(
                index=i,
                kind=layer.kind,
                out_channels=c,
                fan_in=n,
                evaluations=evals,
                roots=len(sched.roots),
                mst_weight=sched.weight,
                height=sched.height,
                xnor_plain=c * n,
                xnor_reuse=sched.xnors(n),
                storage_plain_bits=c * n,
                storage_reuse_bits=storage_bits(sched, n) if layer.schedule is not None else c * n,
            )
        )
    return out


def network_cost(net: Network) -> dict:
    """Totals per inference: XNORs plain and reuse, their ratio, storage, max height."""
    costs = layer_costs(net)
    plain = sum(c.xnor_plain * c.evaluations for c in costs)
    reuse = sum(c.xnor_reuse * c.evaluations for c in costs)
    sp = sum(c.storage_plain_bits for c in costs)
    sr = sum(c.storage_reuse_bits for c in costs)
    return {
        "xnor_plain": plain,
        "xnor_reuse": reuse,
        "xnor_ratio": plain / reuse if reuse else float("inf"),
        "storage_plain_bits": sp,
        "storage_reuse_bits": sr,
        "storage_ratio": sp / sr if sr else float("inf"),
        "max_height": max((c.height for c in costs), default=0),
        "layers": [c.as_dict() for c in costs],
    }


def format_table(net: Network) -> str:
    """A per-layer table (markdown) of C_out, N, MST weight, height, XNORs and ratio."""
    rows = [
        "| layer | kind | C_out | N | MST weight | height | roots | XNORs plain | XNORs reuse | ratio |",
        "|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for c in layer_costs(net):
        rows.append(
            f"| {c.index} | {c.kind} | {c.out_channels} | {c.fan_in} | {c.mst_weight} | {c.height} | {c.roots} | "
            f"{c.xnor_plain * c.evaluations:,} | {c.xnor_reuse * c.evaluations:,} | {c.ratio:.2f}x |"
        )
    total = network_cost(net)
    rows.append(
        f"| total | | | | | {total['max_height']} | | {total['xnor_plain']:,} | {total['xnor_reuse']:,} | "
        f"{total['xnor_ratio']:.2f}x |"
    )
    return "\n".join(rows)
