"""Locate the first layer and channel where hardware and golden executor diverge.

The generated top only shows the final scores, so a mismatch is located by
re-generating and simulating *prefixes* of the network on the failing
vector, in layer order, and comparing each with the golden executor run on the
same prefix:

- a prefix ending in a binary dense layer exposes that layer's integer sums
  directly as its scores: the first differing score is the channel;
- a prefix ending in a conv layer keeps the conv's threshold (and max-pool)
  and appends a *probe*: a dense layer whose channel 0 has all weights +1 and
  whose channel k+1 differs from channel 0 in position k only, so
  ``bit_k = (y_0 - y_{k+1}) / 2`` recovers every output bit of the conv stage
  (C-major order, so the channel is ``k // (H * W)``). Its reuse schedule is
  one root and single-position children: tiny in hardware.

If every prefix agrees, the divergence is in the last layer and its channel is
the first differing class score.
"""

from __future__ import annotations

import copy

import numpy as np

from mstbnn.compiler import execute
from mstbnn.compiler.ir import BinaryDense, Network
from mstbnn.compiler.schedule import Schedule

__all__ = ["probe_layer", "prefixes", "locate_divergence"]


def probe_layer(n_bits: int) -> BinaryDense:
    """Dense layer over ``n_bits`` +-1 inputs from which every input bit can be read back."""
    w = np.ones((n_bits + 1, n_bits), dtype=bool)
    w[np.arange(1, n_bits + 1), np.arange(n_bits)] = False
    parent = np.zeros(n_bits + 1, dtype=np.int64)
    parent[0] = -1
    return BinaryDense(weights=w, schedule=Schedule.from_parents(w, parent))


def prefixes(net: Network) -> list[tuple[int, str, Network]]:
    """(layer index, kind, prefix network) for every binary layer but the last.

    The prefix of a dense layer ends in that layer (its sums become scores);
    the prefix of a conv layer ends in its threshold / max-pool plus a probe.
    """
    binary = net.binary_layers()
    out = []
    for pos, (i, layer) in enumerate(binary[:-1]):
        if layer.kind == "dense":
            layers = copy.deepcopy(net.layers[: i + 1])
        else:
            end = binary[pos + 1][0]  # the next binary layer: the conv stage is everything before it
            layers = copy.deepcopy(net.layers[:end])
            shape = Network(layers=layers).shapes()[-1]
            layers.append(probe_layer(int(np.prod(shape))))
        out.append((i, layer.kind, Network(layers=layers, meta={})))
    return out


def _probe_bits(scores: np.ndarray) -> np.ndarray:
    return (scores[:, :1] - scores[:, 1:]) // 2 > 0


def locate_divergence(net: Network, x: np.ndarray, simulate_prefix, last_mismatch_class: int) -> str:
    """Describe where hardware first diverges on input ``x`` (one vector, shape (1, ...)).

    Parameters
    ----------
    simulate_prefix : callable(prefix_net, tag) -> (classes, scores)
        Generates the prefix network's hardware and simulates ``x`` on it.
    last_mismatch_class : int
        First differing class score of the full network (-1 if only the class differed).
    """
    for i, kind, prefix in prefixes(net):
        _, got = simulate_prefix(prefix, f"L{i}")
        golden = execute.run(prefix, x, mode="direct").scores
        got = np.asarray(got, dtype=np.int64).reshape(golden.shape)
        if np.array_equal(got, golden):
            continue
        if kind == "dense":
            ch = int(np.flatnonzero(got[0] != golden[0])[0])
            return f"layer {i} (dense), channel {ch}: sum {int(got[0, ch])}, golden {int(golden[0, ch])}"
        shape = Network(layers=prefix.layers[:-1]).shapes()[-1]
        hw_bits, gold_bits = _probe_bits(got), _probe_bits(golden)
        diff = np.flatnonzero(hw_bits[0] != gold_bits[0])
        if diff.size == 0:
            return f"layer {i} (conv2d) stage: probe sums differ but decoded bits agree (probe layer itself suspect)"
        k = int(diff[0])
        c, rem = divmod(k, int(np.prod(shape[1:])))
        h, w = divmod(rem, shape[2])
        return f"layer {i} (conv2d), channel {c}: output bit at ({h}, {w}) is {int(hw_bits[0, k])}, golden {int(gold_bits[0, k])}"
    i_last = net.binary_layers()[-1][0]
    if last_mismatch_class >= 0:
        return f"layer {i_last} ({net.layers[i_last].kind}, scores), channel {last_mismatch_class}"
    return f"argmax after layer {i_last}: scores agree, class differs"
