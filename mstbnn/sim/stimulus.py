"""Input vectors, their stream beats, and what the golden executor expects of them.

The top-level stream contract (see :mod:`mstbnn.hw`): raw input integers,
value f of a beat at bits ``[f*input_width +: input_width]`` (two's complement when the input
quantiser is signed). A dense-first network takes one whole (flattened)
vector per beat; a conv-first network takes one pixel with all C_in values
per beat, in raster order, H*W beats per image.
"""

from __future__ import annotations

import numpy as np

from mstbnn.compiler import execute
from mstbnn.compiler.ir import Network

__all__ = [
    "random_vectors",
    "to_beats",
    "pack_beat",
    "expected_outputs",
    "split_scores",
]


def random_vectors(net: Network, n: int, rng: np.random.Generator) -> np.ndarray:
    """``n`` inputs drawn uniformly from the input quantiser's integer range.

    Returns int64 of shape (n, *input.shape).
    """
    lo, hi = net.input.value_range
    return rng.integers(lo, hi, size=(n, *net.input.shape), endpoint=True, dtype=np.int64)


def _first_binary_kind(net: Network) -> str:
    return net.binary_layers()[0][1].kind


def to_beats(net: Network, x: np.ndarray) -> np.ndarray:
    """Raw inputs (B, *input.shape) as stream beats (B, beats_per_image, values_per_beat)."""
    x = np.asarray(x, dtype=np.int64)
    b = x.shape[0]
    if _first_binary_kind(net) == "conv2d":
        _, c, h, w = x.shape
        # one pixel per beat, raster order, all C_in values of the pixel
        return np.ascontiguousarray(x.transpose(0, 2, 3, 1)).reshape(b, h * w, c)
    return x.reshape(b, 1, -1)


def pack_beat(values, width: int) -> int:
    """One beat's values as the unsigned integer on ``in_data`` (value f at [f*input_width +: input_width])."""
    mask = (1 << width) - 1
    word = 0
    for f, v in enumerate(values):
        word |= (int(v) & mask) << (f * width)
    return word


def split_scores(word: int, n_classes: int, width: int) -> list[int]:
    """``out_scores`` (class c at [c*score_width +: score_width], two's complement) as signed integers."""
    mask = (1 << width) - 1
    sign = 1 << (width - 1)
    scores = []
    for c in range(n_classes):
        v = (word >> (c * width)) & mask
        scores.append(v - (1 << width) if v & sign else v)
    return scores


def expected_outputs(net: Network, x: np.ndarray, reuse: bool) -> execute.Trace:
    """Golden trace for ``x``; the reuse executor must agree with the direct one.

    The reuse executor follows the same schedule as the reuse engine; the
    direct one is the plain reference. Any disagreement is a compiler bug, so
    it is raised rather than simulated against.
    """
    direct = execute.run(net, x, mode="direct")
    if not reuse:
        return direct
    reused = execute.run(net, x, mode="reuse")
    if not np.array_equal(direct.scores, reused.scores):
        bad = int(np.flatnonzero((direct.scores != reused.scores).any(axis=1))[0])
        raise AssertionError(f"golden executors disagree (direct vs reuse) on vector {bad}")
    return reused
