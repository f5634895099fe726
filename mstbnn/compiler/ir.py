"""The compiled-network IR: a sequence of layers over bits and small integers.

A :class:`Network` is a list of layers. The first is an :class:`InputQuantizer`;
then binary layers (:class:`BinaryDense`, :class:`BinaryConv2d`), each
followed by a :class:`Threshold` (BN + sign folded) and optionally a
:class:`MaxPool` (OR on bits), except the last binary layer, whose integer sums
are the class scores (argmax, lowest index on ties).

Conventions
-----------
- A weight bit 1 means +1, 0 means -1. Activation bits likewise.
- Dense after conv flattens the (C, H, W) activation in C-major order.
- Conv padding is with -1 (bit 0) for binary activations, with 0 for the
  integer input of a multi-bit first layer.
- A channel's integer sum is y_j = sum_k x_k * w_j[k] with x_k in {-1, +1}
  (or the integer input), so 2 * popcount(XNOR) - N for binary x.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from mstbnn.compiler.schedule import Schedule

__all__ = [
    "InputQuantizer",
    "BinaryDense",
    "BinaryConv2d",
    "Threshold",
    "MaxPool",
    "Network",
    "Layer",
    "int_range",
    "window_output_size",
    "step_threshold",
]


def int_range(bits: int, signed: bool) -> tuple[int, int]:
    """The values of a ``bits``-bit integer: two's complement when ``signed``."""
    bits = int(bits)
    if signed:
        return -(1 << (bits - 1)), (1 << (bits - 1)) - 1
    return 0, (1 << bits) - 1


def step_threshold(bits: np.ndarray, y_min: int, where) -> tuple[np.ndarray, np.ndarray]:
    """Thresholds and directions from ``bits`` (R, C): the bit of each channel at sums y_min .. y_min + R - 1.

    Rising step -> (t, +1) with bit = y >= t; falling -> (t, -1) with bit = y <= t;
    constant -> always true (y_min, +1) or always false (y_max + 1, +1).
    ``where(j)`` names channel j for the error when a channel is not a single step. The one fold of
    a float tail into an integer threshold (torch export and QONNX import both evaluate the tail on every sum).
    """
    from mstbnn.errors import UserError

    bits = np.asarray(bits, dtype=bool)
    steps = np.diff(bits.astype(np.int8), axis=0)
    c = bits.shape[1]
    y_max = y_min + bits.shape[0] - 1
    threshold = np.zeros(c, dtype=np.int64)
    direction = np.ones(c, dtype=np.int64)
    for j in range(c):
        rises = np.flatnonzero(steps[:, j] > 0)
        falls = np.flatnonzero(steps[:, j] < 0)
        if len(rises) + len(falls) > 1:
            raise UserError(f"{where(j)}: the bit is not monotone in the integer sum (it changes "
                            f"{len(rises) + len(falls)} times); only monotone float tails fold into a threshold")
        if rises.size:
            threshold[j] = y_min + rises[0] + 1
        elif falls.size:
            threshold[j], direction[j] = y_min + falls[0], -1
        elif bits[0, j]:
            threshold[j] = y_min
        else:
            threshold[j] = y_max + 1
    return threshold, direction


def window_output_size(height: int, width: int, kernel: int, stride: int, padding: int = 0) -> tuple[int, int]:
    """Output height and width of a kernel x kernel window (conv or pool) sliding with ``stride``."""
    return ((height + 2 * padding - kernel) // stride + 1, (width + 2 * padding - kernel) // stride + 1)


@dataclass(eq=False)
class InputQuantizer:
    """How raw integer inputs enter the network.

    Parameters
    ----------
    shape : tuple of int
        Shape of one input: ``(F,)`` for a dense first layer, ``(C, H, W)`` for conv.
    mode : {"threshold", "int"}
        ``"threshold"``: bit = x >= thresholds (per feature, same shape as an input).
        ``"int"``: pass the integers unchanged to the first binary layer
        (range given by ``bits`` and ``signed``).
    thresholds : ndarray of int64 or None
        Per-feature thresholds for ``mode="threshold"``.
    bits, signed :
        Integer range for ``mode="int"`` (and of the raw inputs in either mode).
    """

    shape: tuple
    mode: str = "threshold"
    thresholds: np.ndarray | None = None
    bits: int = 8
    signed: bool = False
    kind = "input"

    @property
    def value_range(self) -> tuple[int, int]:
        return int_range(self.bits, self.signed)


@dataclass(eq=False)
class BinaryDense:
    """Binary fully-connected layer: weights (C_out, N) of bits."""

    weights: np.ndarray
    schedule: Schedule | None = None
    kind = "dense"

    @property
    def out_channels(self) -> int:
        return int(self.weights.shape[0])

    @property
    def fan_in(self) -> int:
        return int(self.weights.shape[1])

    @property
    def weight_matrix(self) -> np.ndarray:
        """Weights as (C_out, N) bits: the matrix the schedule is built over."""
        return self.weights


@dataclass(eq=False)
class BinaryConv2d:
    """Binary 2-D convolution: weights (C_out, C_in, k, k) of bits.

    The schedule is over the flattened (C_out, C_in * k * k) matrix, in
    C_in-major, then row, then column order (torch's layout).
    """

    weights: np.ndarray
    stride: int = 1
    padding: int = 0
    schedule: Schedule | None = None
    kind = "conv2d"

    @property
    def out_channels(self) -> int:
        return int(self.weights.shape[0])

    @property
    def in_channels(self) -> int:
        return int(self.weights.shape[1])

    @property
    def kernel(self) -> int:
        return int(self.weights.shape[2])

    @property
    def fan_in(self) -> int:
        return int(np.prod(self.weights.shape[1:]))

    @property
    def weight_matrix(self) -> np.ndarray:
        return self.weights.reshape(self.weights.shape[0], -1)


@dataclass(eq=False)
class Threshold:
    """Per-channel integer threshold with direction (BN + sign folded).

    bit_j = y_j >= threshold[j]   where direction[j] == +1
    bit_j = y_j <= threshold[j]   where direction[j] == -1
    """

    threshold: np.ndarray
    direction: np.ndarray
    kind = "threshold"


@dataclass(eq=False)
class MaxPool:
    """Max-pool on bits: the OR over each ``kernel x kernel`` window (no padding)."""

    kernel: int = 2
    stride: int = 2
    kind = "maxpool"


Layer = InputQuantizer | BinaryDense | BinaryConv2d | Threshold | MaxPool

BINARY_KINDS = ("dense", "conv2d")


@dataclass(eq=False)
class Network:
    """A compiled binary network.

    Build one from numpy arrays with the layer classes, then call
    :func:`mstbnn.compiler.validate.validate` (``save`` and ``load`` validate
    too) and :func:`mstbnn.compiler.compile.schedule_network` to attach schedules.
    """

    layers: list = field(default_factory=list)
    meta: dict = field(default_factory=dict)

    @property
    def input(self) -> InputQuantizer:
        return self.layers[0]

    def binary_layers(self) -> list[tuple[int, BinaryDense | BinaryConv2d]]:
        """(index, layer) of every binary layer, in order."""
        return [(i, l) for i, l in enumerate(self.layers) if l.kind in BINARY_KINDS]

    @property
    def n_classes(self) -> int:
        return self.binary_layers()[-1][1].out_channels

    def shapes(self) -> list[tuple]:
        """Output shape (per sample) of every layer, computed from the input shape."""
        shapes = []
        shape = tuple(self.layers[0].shape)
        for layer in self.layers:
            if layer.kind == "dense":
                shape = (layer.out_channels,)
            elif layer.kind == "conv2d":
                _, h, w = shape
                shape = (layer.out_channels, *window_output_size(h, w, layer.kernel, layer.stride, layer.padding))
            elif layer.kind == "maxpool":
                c, h, w = shape
                shape = (c, *window_output_size(h, w, layer.kernel, layer.stride))
            shapes.append(shape)
        return shapes
