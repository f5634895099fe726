"""Golden executors: the bit-exact software reference for everything downstream.

Two modes over the same IR:

``direct``
    Plain integer dot products, one per channel.
``reuse``
    Follows each binary layer's schedule literally: a root is a full dot
    product, a child is its parent's sum (negated on a negation edge) plus
    twice the signed sum over its correction positions.

Both return every layer's integer sums and output bits and the final scores;
they must agree bit for bit.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from mstbnn.compiler.ir import Network
from mstbnn.compiler.schedule import Schedule

__all__ = ["LayerTrace", "Trace", "run", "im2col"]

MODES = ("direct", "reuse")


@dataclass
class LayerTrace:
    """What one IR layer produced for a batch.

    ``sums`` (int64) for binary layers; ``bits`` (bool) for the input
    quantiser in threshold mode, thresholds and max-pools; ``values`` (int64)
    for the input quantiser in int mode.
    """

    kind: str
    sums: np.ndarray | None = None
    bits: np.ndarray | None = None
    values: np.ndarray | None = None


@dataclass
class Trace:
    """Per-layer results plus final scores (B, classes) and classes (B,)."""

    layers: list = field(default_factory=list)
    scores: np.ndarray | None = None
    classes: np.ndarray | None = None


def im2col(act: np.ndarray, kernel: int, stride: int, padding: int, pad_value: int) -> np.ndarray:
    """Conv windows of ``act`` (B, C, H, W) as rows (B, H', W', C * k * k).

    Row layout is C-major, then kernel row, then kernel column: the same
    flattening as the conv weights (C_out, C_in, k, k).
    """
    if padding:
        act = np.pad(act, ((0, 0), (0, 0), (padding, padding), (padding, padding)), constant_values=pad_value)
    win = np.lib.stride_tricks.sliding_window_view(act, (kernel, kernel), axis=(2, 3))
    win = win[:, :, ::stride, ::stride]  # (B, C, H', W', k, k)
    b, c, ho, wo = win.shape[:4]
    return np.ascontiguousarray(win.transpose(0, 2, 3, 1, 4, 5)).reshape(b, ho, wo, c * kernel * kernel)


def _dot(x: np.ndarray, w_pm: np.ndarray) -> np.ndarray:
    # float64 matmul is exact here (|sum| << 2**53) and uses BLAS; int64 matmul does not.
    return np.rint(x.astype(np.float64) @ w_pm.astype(np.float64).T).astype(np.int64)


def _layer_sums(x: np.ndarray, weights: np.ndarray, schedule: Schedule | None, mode: str) -> np.ndarray:
    """Integer sums (rows, C) for input rows x (rows, N) of +-1 or integers."""
    w_pm = weights.astype(np.int64) * 2 - 1
    if mode == "direct" or schedule is None:
        return _dot(x, w_pm)
    y = np.zeros((x.shape[0], w_pm.shape[0]), dtype=np.int64)
    for j in schedule.order:
        p = schedule.parent[j]
        if p < 0:
            y[:, j] = _dot(x, w_pm[j : j + 1])[:, 0]
            continue
        pos = schedule.positions[j]
        correction = _dot(x[:, pos], w_pm[j : j + 1, pos])[:, 0] if len(pos) else 0
        base = -y[:, p] if schedule.negate[j] else y[:, p]
        y[:, j] = base + 2 * correction
    return y


def run(net: Network, x: np.ndarray, mode: str = "direct") -> Trace:
    """Execute ``net`` on a batch of raw integer inputs.

    Parameters
    ----------
    net : Network
    x : array of int, shape (B, *net.input.shape)
        Raw inputs in the input quantiser's integer range.
    mode : {"direct", "reuse"}
        ``"reuse"`` needs a schedule on every binary layer (see
        :func:`mstbnn.compiler.compile.schedule_network`); a layer without
        one is computed directly.

    Returns
    -------
    Trace
    """
    if mode not in MODES:
        raise ValueError(f"unknown executor mode {mode!r}; expected one of {MODES}")
    inp = net.layers[0]
    x = np.asarray(x)
    if x.ndim != len(inp.shape) + 1 or tuple(x.shape[1:]) != tuple(inp.shape):
        raise ValueError(f"input batch has shape {x.shape}; expected (B, {', '.join(map(str, inp.shape))})")
    x = x.astype(np.int64)
    trace = Trace()
    if inp.mode == "threshold":
        bits = x >= inp.thresholds[None]
        trace.layers.append(LayerTrace("input", bits=bits))
        act, act_is_bits = bits, True
    else:
        trace.layers.append(LayerTrace("input", values=x))
        act, act_is_bits = x, False

    last_sums = None
    for layer in net.layers[1:]:
        if layer.kind in ("dense", "conv2d"):
            # Binary activations enter as +-1; integer inputs unchanged.
            vals = act.astype(np.int64) * 2 - 1 if act_is_bits else act
            if layer.kind == "dense":
                rows = vals.reshape(vals.shape[0], -1)
                sums = _layer_sums(rows, layer.weights, layer.schedule, mode)
            else:
                pad_value = -1 if act_is_bits else 0
                cols = im2col(vals, layer.kernel, layer.stride, layer.padding, pad_value)
                b, ho, wo, n = cols.shape
                sums = _layer_sums(cols.reshape(-1, n), layer.weight_matrix, layer.schedule, mode)
                sums = sums.reshape(b, ho, wo, -1).transpose(0, 3, 1, 2)
            trace.layers.append(LayerTrace(layer.kind, sums=sums))
            last_sums = sums
            act = None
        elif layer.kind == "threshold":
            shape = (1, -1) + (1,) * (last_sums.ndim - 2)
            t = layer.threshold.reshape(shape)
            up = layer.direction.reshape(shape) > 0
            bits = np.where(up, last_sums >= t, last_sums <= t)
            trace.layers.append(LayerTrace("threshold", bits=bits))
            act, act_is_bits = bits, True
        elif layer.kind == "maxpool":
            win = np.lib.stride_tricks.sliding_window_view(act, (layer.kernel, layer.kernel), axis=(2, 3))
            bits = win[:, :, :: layer.stride, :: layer.stride].any(axis=(4, 5))
            trace.layers.append(LayerTrace("maxpool", bits=bits))
            act = bits
        else:  # pragma: no cover - validate() rejects unknown kinds
            raise ValueError(f"unknown layer kind {layer.kind!r}")
    trace.scores = last_sums
    # argmax returns the first maximum: ties go to the lowest class index, as in hardware.
    trace.classes = np.argmax(last_sums, axis=1)
    return trace
