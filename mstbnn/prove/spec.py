"""What the network specifies, in the proof's domain: every output bit an atom, every score a linear form.

Straight from the IR (:mod:`mstbnn.compiler.ir`, the semantics of
:func:`mstbnn.compiler.execute.run` in ``direct`` mode), never from a
schedule: channel j of a binary layer is ``y_j = sum_k (+-1) e_k`` over its
weights, with ``e_k = 2 b_k - 1`` for bits and the raw integer for an
integer input; a hidden layer's output bit is ``[y_j >= t_j]`` (direction
+1) or ``[y_j <= t_j]`` (-1); the scores are the last layer's ``y``; the
class is the lowest-index argmax. Raw input value f is bits
``[f*input_width, (f+1)*input_width)`` of ``in_data`` (two's complement when signed).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from mstbnn.errors import UserError
from mstbnn.prove.linear import Lin, Space

__all__ = ["LayerSpec", "NetworkSpec", "specify"]


@dataclass
class LayerSpec:
    index: int  # position in net.layers
    kind: str
    channels: int
    fan_in: int
    outputs: list = field(default_factory=list)  # Lin per channel: a bit (hidden) or a score


@dataclass
class NetworkSpec:
    layers: list
    scores: list
    classes: int
    quantized: bool  # threshold-mode input: layer 0's outputs are atoms
    input_width: int


def _input_values(space: Space, quant) -> list:
    w = int(quant.bits)
    count = int(np.prod(quant.shape))
    values = []
    for f in range(count):
        form = {space.input_var("in_data", f * w + b): 1 << b for b in range(w)}
        if quant.signed:
            form[space.input_var("in_data", f * w + w - 1)] = -(1 << (w - 1))
        values.append(Lin(form, 0, 0))
    return values


def specify(net, space: Space) -> NetworkSpec:
    """The specification of a dense network (raises UserError for layers the proof does not cover)."""
    quant = net.layers[0]
    if quant.kind != "input":
        raise UserError("network: the first layer must be an InputQuantizer; recompile the artefact")
    if len(tuple(quant.shape)) != 1:
        raise UserError("network: conv networks are not covered by mstbnn prove yet (dense networks only)")
    raw = _input_values(space, quant)
    if quant.mode == "threshold":
        thr = np.asarray(quant.thresholds, dtype=np.int64).ravel()
        elems = []
        for f, x in enumerate(raw):
            bit = space.atom(x.plus_const(-int(thr[f])))
            for var in bit.form:
                space.label.setdefault(var, (0, f))
            elems.append(bit.scaled(2).plus_const(-1))
    else:
        elems = raw
    layers = []
    binary = net.binary_layers()
    last = binary[-1][0]
    i = 1
    scores = None
    while i < len(net.layers):
        layer = net.layers[i]
        if layer.kind != "dense":
            raise UserError(f"layer {i}: {layer.kind} layers are not covered by mstbnn prove yet (dense networks only)")
        w = np.asarray(layer.weights, dtype=bool)
        spec = LayerSpec(i, "dense", int(w.shape[0]), int(w.shape[1]))
        sums = []
        for j in range(w.shape[0]):
            sums.append(Lin.combine([(1 if w[j, k] else -1, elems[k]) for k in range(w.shape[1])]))
        if i == last:
            spec.outputs = sums
            scores = sums
            layers.append(spec)
            break
        th = net.layers[i + 1]
        if th.kind != "threshold":
            raise UserError(f"layer {i}: a hidden binary layer must be followed by a threshold")
        bits = []
        for j, y in enumerate(sums):
            t = int(th.threshold[j])
            d = y.plus_const(-t) if int(th.direction[j]) > 0 else y.scaled(-1).plus_const(t)
            bit = space.atom(d)
            for var in bit.form:
                space.label.setdefault(var, (i, j))
            bits.append(bit)
        spec.outputs = bits
        layers.append(spec)
        elems = [b.scaled(2).plus_const(-1) for b in bits]
        i += 2
    return NetworkSpec(layers, scores, len(scores), quant.mode == "threshold", int(quant.bits))
