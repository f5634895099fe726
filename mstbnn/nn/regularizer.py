"""MST-distance regulariser: pull every channel's latent weights toward its tree parent.

Every K steps the tree of each binary layer is rebuilt from the signs of the
latent weights with the compiler's own MST code
(:func:`mstbnn.compiler.compile.build_layer_schedule`, the same trees the
compile step will build, with the same depth limit, negation option and tree
cost). Between rebuilds
the penalty is

    sum over layers  a_l * sum over edges (parent i -> child j)  dist(w_j, s * w_i)

with s = -1 on a negation edge, +1 otherwise. The layer factor a_l is
either 1 / (C * N) (``weighting="layer"``: every layer counts the same) or
evaluations_l / total plain XNORs (``weighting="xnor"``: each weight counts
as much as the XNORs it costs per inference; see :func:`xnor_layer_weights`).

Distances (``distance=``):

``"l2"``
    sum_k (w_j[k] - s w_i[k])^2: pulls the whole vectors together.
``"l1"``
    sum_k |w_j[k] - s w_i[k]|.
``"hinge"``
    Only positions where the signs disagree or sit within ``margin`` of
    disagreeing: sum_k relu(margin - s * w_j[k] * sign(w_i[k]))
    + relu(margin - s * w_i[k] * sign(w_j[k])). Agreeing weights are left
    alone, so the penalty counts (a soft version of) the Hamming distance the
    hardware pays for, and whichever of the two weights is weaker flips.
"""

from __future__ import annotations

import numpy as np
import torch

__all__ = ["MSTRegularizer", "DISTANCES", "lambda_at", "xnor_layer_weights"]

DISTANCES = ("l2", "l1", "hinge")


def lambda_at(epoch: int, lam: float, warmup: int = 0, ramp: int = 0) -> float:
    """Lambda schedule: 0 for ``warmup`` epochs, then a linear ramp over ``ramp`` epochs, then ``lam``."""
    if epoch < warmup:
        return 0.0
    if ramp <= 0:
        return float(lam)
    return float(lam) * min(1.0, (epoch - warmup + 1) / ramp)


def xnor_layer_weights(evaluations: list[int], sizes: list[int]) -> list[float]:
    """Per-layer multipliers ``evaluations_l / total plain XNORs``.

    Every latent weight is then pulled in proportion to the XNORs it costs
    per inference (conv weights count once per output pixel), so the penalty
    tracks the total XNOR count, the figure the reduction is measured on,
    and small layers (the classifier) are not over-regularised.

    Parameters
    ----------
    evaluations : per layer, 1 for dense, output pixels for conv
    sizes : per layer, C * N
    """
    total = sum(e * n for e, n in zip(evaluations, sizes))
    return [e / total for e in evaluations]


class MSTRegularizer:
    """Tree-edge penalty over a list of binary layers (anything with ``latent_matrix()``).

    Parameters
    ----------
    layers : list of BinaryLinear / BinaryConv2d
    max_depth : int or None
        Tree height limit passed to ``build_schedule``: train against the
        trees the hardware will actually use.
    negation : bool
        Allow negation edges (then the child is pulled toward -parent).
    distance : {"l2", "l1", "hinge"}
    margin : float
        Margin of the ``"hinge"`` distance.
    layer_weights : list of float or None
        Multiplier of each layer's edge sum. Default ``1 / (C * N)`` (every
        layer counts the same); :func:`xnor_layer_weights` weighs each weight
        by the XNORs it costs per inference instead.
    cost : {"xnor", "luts"}
        What the trees minimise, as in ``mstbnn compile --cost``
        (:func:`mstbnn.compiler.compile.build_layer_schedule`).
    leaves : list of (int, int) or None
        Per layer, the range of one term for the LUT model ((0, 1) for XNOR
        bits, the default; an integer-input first layer's is wider).
    """

    def __init__(self, layers, *, max_depth: int | None = None, negation: bool = False, distance: str = "l1",
                 margin: float = 0.05, layer_weights=None, cost: str = "xnor", leaves=None):
        if distance not in DISTANCES:
            raise ValueError(f"unknown distance {distance!r}; expected one of {DISTANCES}")
        self.layers = list(layers)
        if layer_weights is None:
            layer_weights = [1.0 / layer.latent_matrix().numel() for layer in self.layers]
        if len(layer_weights) != len(self.layers):
            raise ValueError("need one weight per layer")
        self.layer_weights = [float(w) for w in layer_weights]
        self.max_depth = max_depth
        self.negation = negation
        self.distance = distance
        self.margin = float(margin)
        self.cost = cost
        self.leaves = [(0, 1)] * len(self.layers) if leaves is None else [tuple(x) for x in leaves]
        self.schedules = [None] * len(self.layers)
        self._edges = [None] * len(self.layers)

    def rebuild(self) -> None:
        """Rebuild every layer's tree from sign(latent weights)."""
        self.set_schedules(self.build_schedules())

    def build_schedules(self) -> list:
        """Each layer's tree (a compiler Schedule) from sign(latent weights), without installing them."""
        from mstbnn.compiler.compile import build_layer_schedule

        return [build_layer_schedule((layer.latent_matrix().detach() >= 0).cpu().numpy(), max_depth=self.max_depth,
                                     negation=self.negation, cost=self.cost, leaf=self.leaves[li])
                for li, layer in enumerate(self.layers)]

    def set_schedules(self, schedules: list) -> None:
        """Pull toward these trees from now on (one per layer; e.g. rank 0's, broadcast to every rank)."""
        if len(schedules) != len(self.layers):
            raise ValueError("need one schedule per layer")
        for li, (layer, sched) in enumerate(zip(self.layers, schedules)):
            children = np.flatnonzero(sched.parent >= 0)
            parents = sched.parent[children]
            sign = np.where(sched.negate[children], -1.0, 1.0)
            device = layer.latent_matrix().device
            self.schedules[li] = sched
            self._edges[li] = (torch.as_tensor(children, dtype=torch.long, device=device),
                               torch.as_tensor(parents, dtype=torch.long, device=device),
                               torch.as_tensor(sign, dtype=torch.float32, device=device)[:, None])

    @property
    def built(self) -> bool:
        return all(e is not None for e in self._edges)

    def _edge_distance(self, child: torch.Tensor, parent: torch.Tensor, s: torch.Tensor) -> torch.Tensor:
        if self.distance == "l2":
            return ((child - s * parent) ** 2).sum()
        if self.distance == "l1":
            return (child - s * parent).abs().sum()
        # hinge: sign() of the partner with sign(0) = +1, as everywhere else.
        sp = torch.where(parent >= 0, 1.0, -1.0).detach()
        sc = torch.where(child >= 0, 1.0, -1.0).detach()
        m = self.margin
        return (torch.relu(m - s * child * sp) + torch.relu(m - s * parent * sc)).sum()

    def penalty(self) -> torch.Tensor:
        """The differentiable penalty over the current trees (call :meth:`rebuild` first)."""
        total = None
        for layer, edges, scale in zip(self.layers, self._edges, self.layer_weights):
            if edges is None:
                raise RuntimeError("MSTRegularizer.penalty() before rebuild()")
            children, parents, s = edges
            w = layer.latent_matrix()
            if len(children) == 0:
                term = w.sum() * 0.0
            else:
                term = self._edge_distance(w[children], w[parents], s) * scale
            total = term if total is None else total + term
        return total

    def mst_weight(self) -> int:
        """Total tree weight (sum of correction-set sizes) over all layers, from the last rebuild."""
        return int(sum(s.weight for s in self.schedules if s is not None))
