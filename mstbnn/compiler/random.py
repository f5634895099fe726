"""Random valid networks for tests and benchmarks.

Thresholds are set at each channel's median sum over a sample batch, so the
output bits are balanced and every layer carries information downstream.
"""

from __future__ import annotations

import numpy as np

from mstbnn.compiler.execute import run
from mstbnn.compiler.ir import BinaryConv2d, BinaryDense, InputQuantizer, MaxPool, Network, Threshold

__all__ = ["random_dense_network", "random_conv_network", "random_inputs", "similar_weights"]


def similar_weights(rng: np.random.Generator, c_out: int, n: int, flip: float = 0.05) -> np.ndarray:
    """(c_out, n) bits clustered around a few prototypes: trees with real reuse.

    Pure random weights give MSTs with little reuse (about 2x); trained,
    regularised weights look more like this.
    """
    protos = rng.integers(0, 2, size=(max(1, c_out // 8), n), dtype=np.uint8).astype(bool)
    w = protos[rng.integers(0, len(protos), size=c_out)]
    return w ^ (rng.random((c_out, n)) < flip)


def random_inputs(net: Network, rng: np.random.Generator, batch: int) -> np.ndarray:
    """A batch of raw inputs spread over the input quantiser's integer range."""
    lo, hi = net.layers[0].value_range
    return rng.integers(lo, hi + 1, size=(batch, *net.layers[0].shape), dtype=np.int64)


def _append_threshold(net: Network, rng: np.random.Generator, sample: np.ndarray) -> None:
    sums = run(net, sample).layers[-1].sums
    axes = (0,) + tuple(range(2, sums.ndim))
    t = np.median(sums, axis=axes).astype(np.int64)
    direction = np.where(rng.random(t.shape[0]) < 0.8, 1, -1).astype(np.int64)
    net.layers.append(Threshold(threshold=t, direction=direction))


def _input(rng, shape, input_mode, bits, signed):
    lo, hi = (-(1 << (bits - 1)), (1 << (bits - 1)) - 1) if signed else (0, (1 << bits) - 1)
    thresholds = rng.integers(lo, hi + 1, size=shape, dtype=np.int64) if input_mode == "threshold" else None
    return InputQuantizer(shape=tuple(shape), mode=input_mode, thresholds=thresholds, bits=bits, signed=signed)


def _weights(rng, shape, clustered):
    c_out, n = shape[0], int(np.prod(shape[1:]))
    w = similar_weights(rng, c_out, n) if clustered else rng.integers(0, 2, size=(c_out, n)).astype(bool)
    return w.reshape(shape)


def random_dense_network(
    rng: np.random.Generator,
    features: int = 16,
    hidden: tuple = (12,),
    classes: int = 4,
    *,
    input_mode: str = "threshold",
    bits: int = 4,
    signed: bool = False,
    clustered: bool = True,
    sample: int = 64,
) -> Network:
    """An MLP: input quantiser, dense + threshold per hidden width, dense scores."""
    net = Network(layers=[_input(rng, (features,), input_mode, bits, signed)])
    x = random_inputs(net, rng, sample)
    fan_in = features
    for width in hidden:
        net.layers.append(BinaryDense(weights=_weights(rng, (width, fan_in), clustered)))
        _append_threshold(net, rng, x)
        fan_in = width
    net.layers.append(BinaryDense(weights=_weights(rng, (classes, fan_in), clustered)))
    return net


def random_conv_network(
    rng: np.random.Generator,
    input_shape: tuple = (1, 8, 8),
    convs: tuple = ((4, 3, 1, 1, False),),
    hidden: tuple = (),
    classes: int = 4,
    *,
    input_mode: str = "threshold",
    bits: int = 4,
    signed: bool = False,
    clustered: bool = True,
    sample: int = 16,
) -> Network:
    """A CNN: each conv given as (C_out, kernel, stride, padding, maxpool 2x2?), then dense layers."""
    net = Network(layers=[_input(rng, tuple(input_shape), input_mode, bits, signed)])
    x = random_inputs(net, rng, sample)
    for c_out, k, stride, pad, pool in convs:
        c_in = net.shapes()[-1][0]
        net.layers.append(BinaryConv2d(weights=_weights(rng, (c_out, c_in, k, k), clustered), stride=stride, padding=pad))
        _append_threshold(net, rng, x)
        if pool:
            net.layers.append(MaxPool(kernel=2, stride=2))
    fan_in = int(np.prod(net.shapes()[-1]))
    for width in hidden:
        net.layers.append(BinaryDense(weights=_weights(rng, (width, fan_in), clustered)))
        _append_threshold(net, rng, x)
        fan_in = width
    net.layers.append(BinaryDense(weights=_weights(rng, (classes, fan_in), clustered)))
    return net
