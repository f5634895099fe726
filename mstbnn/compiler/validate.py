"""Structural validation of a :class:`~mstbnn.compiler.ir.Network`.

Every problem is reported as one :class:`~mstbnn.errors.UserError` line
naming the layer (index and kind) and the field.
"""

from __future__ import annotations

import numpy as np

from mstbnn.compiler.ir import BINARY_KINDS, Network
from mstbnn.compiler.schedule import Schedule
from mstbnn.errors import UserError

__all__ = ["validate"]

KINDS = ("input", "dense", "conv2d", "threshold", "maxpool")


def _where(i: int, kind: str) -> str:
    return f"layer {i} ({kind})"


def _check_bits(arr, where: str, field: str, ndim: int) -> None:
    if not isinstance(arr, np.ndarray):
        raise UserError(f"{where}: {field} must be a numpy array, got {type(arr).__name__}")
    if arr.ndim != ndim:
        raise UserError(f"{where}: {field} has {arr.ndim} dimensions, expected {ndim}")
    if arr.size == 0:
        raise UserError(f"{where}: {field} is empty")
    if arr.dtype != bool and not np.issubdtype(arr.dtype, np.integer):
        raise UserError(f"{where}: {field} has dtype {arr.dtype}; weights must be bits (0 = -1, 1 = +1)")
    if arr.dtype != bool and not np.isin(arr, (0, 1)).all():
        bad = np.unique(arr[~np.isin(arr, (0, 1))])[:3].tolist()
        raise UserError(f"{where}: {field} is not binary (found values {bad}); weights must be bits 0/1")


def _check_int_vector(arr, where: str, field: str, length: int) -> None:
    if not isinstance(arr, np.ndarray) or not np.issubdtype(arr.dtype, np.integer):
        raise UserError(f"{where}: {field} must be an integer array")
    if arr.shape != (length,):
        raise UserError(f"{where}: {field} has shape {arr.shape}, expected ({length},) (one per channel)")


def _positive_int(value, where: str, field: str, minimum: int = 1) -> None:
    if not isinstance(value, (int, np.integer)) or isinstance(value, bool) or value < minimum:
        raise UserError(f"{where}: {field} must be an integer >= {minimum}, got {value!r}")


def _check_schedule(sched, weights: np.ndarray, where: str) -> None:
    if not isinstance(sched, Schedule):
        raise UserError(f"{where}: schedule must be a Schedule, got {type(sched).__name__}")
    c = weights.shape[0]
    for name in ("parent", "negate", "level", "order"):
        arr = getattr(sched, name)
        if not isinstance(arr, np.ndarray) or arr.shape != (c,):
            raise UserError(f"{where}: schedule.{name} must have shape ({c},) (one per output channel)")
        if name == "negate" and arr.dtype != bool:
            raise UserError(f"{where}: schedule.negate has dtype {arr.dtype}, expected bool")
        if name != "negate" and not np.issubdtype(arr.dtype, np.integer):
            raise UserError(f"{where}: schedule.{name} has dtype {arr.dtype}, expected integers")
    if not isinstance(sched.positions, (tuple, list)) or len(sched.positions) != c:
        raise UserError(f"{where}: schedule.positions must hold {c} correction sets (one per output channel)")
    for j, pos in enumerate(sched.positions):
        if not isinstance(pos, np.ndarray) or pos.ndim != 1 or not np.issubdtype(pos.dtype, np.integer):
            raise UserError(f"{where}: schedule.positions[{j}] must be a 1-D integer array")
    parent = sched.parent
    if (sched.negate & (parent < 0)).any():
        j = int(np.flatnonzero(sched.negate & (parent < 0))[0])
        raise UserError(f"{where}: schedule.negate is set on root channel {j}; a root has no parent sum to negate")
    if ((parent < -1) | (parent >= c)).any():
        raise UserError(f"{where}: schedule.parent holds channel ids outside [-1, {c - 1}]")
    if (parent == np.arange(c)).any():
        raise UserError(f"{where}: schedule.parent makes a channel its own parent")
    try:
        expected = Schedule.from_parents(weights, parent, sched.negate)
    except ValueError as exc:
        raise UserError(f"{where}: schedule.parent: {exc}") from None
    if not np.array_equal(expected.level, sched.level):
        raise UserError(f"{where}: schedule.level does not match the tree described by schedule.parent")
    if sorted(sched.order.tolist()) != list(range(c)):
        raise UserError(f"{where}: schedule.order is not a permutation of the {c} channels")
    seen = np.zeros(c, dtype=bool)
    for j in sched.order:
        if parent[j] >= 0 and not seen[parent[j]]:
            raise UserError(f"{where}: schedule.order computes channel {j} before its parent {parent[j]}")
        seen[j] = True
    for j in range(c):
        if not np.array_equal(np.asarray(sched.positions[j]), expected.positions[j]):
            raise UserError(
                f"{where}: schedule.positions[{j}] is not the correction set between channel {j} and its parent"
            )


def validate(net: Network) -> Network:
    """Check ``net`` end to end; return it unchanged or raise UserError."""
    layers = net.layers
    if not layers:
        raise UserError("network has no layers; expected an input quantiser followed by binary layers")
    for i, layer in enumerate(layers):
        kind = getattr(layer, "kind", None)
        if kind not in KINDS:
            raise UserError(f"layer {i}: unknown kind {kind!r}; expected one of {', '.join(KINDS)}")
        if (kind == "input") != (i == 0):
            raise UserError(f"{_where(i, kind)}: the input quantiser must be the first layer and only the first")

    if not isinstance(net.meta, dict):
        raise UserError(f"network meta must be a dict, got {type(net.meta).__name__}")
    inp = layers[0]
    where = _where(0, "input")
    shape = tuple(inp.shape) if isinstance(inp.shape, (tuple, list)) else None
    if not shape or len(shape) not in (1, 3) or any(not isinstance(s, (int, np.integer)) or s < 1 for s in shape):
        raise UserError(f"{where}: shape must be (F,) or (C, H, W) of positive integers, got {inp.shape!r}")
    if inp.mode not in ("threshold", "int"):
        raise UserError(f"{where}: mode must be 'threshold' or 'int', got {inp.mode!r}")
    if not isinstance(inp.signed, (bool, np.bool_)):
        raise UserError(f"{where}: signed must be true or false, got {inp.signed!r}")
    _positive_int(inp.bits, where, "bits")
    if inp.bits > 16:
        raise UserError(f"{where}: bits must be at most 16, got {inp.bits}")
    if inp.mode == "threshold":
        t = inp.thresholds
        if not isinstance(t, np.ndarray) or not np.issubdtype(t.dtype, np.integer):
            raise UserError(f"{where}: thresholds must be an integer array in threshold mode")
        if tuple(t.shape) != shape:
            raise UserError(f"{where}: thresholds have shape {t.shape}, expected {shape} (one per input feature)")

    binary = [i for i, l in enumerate(layers) if l.kind in BINARY_KINDS]
    if not binary:
        raise UserError("network has no binary layer; the last binary layer produces the class scores")
    if binary[-1] != len(layers) - 1:
        i = len(layers) - 1
        raise UserError(f"{_where(i, layers[i].kind)}: the network must end with the binary layer that gives the scores")
    if inp.mode == "int" and layers[1].kind not in BINARY_KINDS:
        raise UserError(f"{_where(1, layers[1].kind)}: an 'int' input must feed a binary layer directly")

    act = shape  # activation shape per sample
    act_kind = "bits" if inp.mode == "threshold" else "int"
    for i, layer in enumerate(layers[1:], start=1):
        where = _where(i, layer.kind)
        if layer.kind in BINARY_KINDS:
            if act_kind == "sums":
                raise UserError(f"{where}: follows a binary layer directly; insert a threshold layer between them")
            if layer.kind == "dense":
                _check_bits(layer.weights, where, "weights", 2)
                n_in = int(np.prod(act))
                if layer.weights.shape[1] != n_in:
                    raise UserError(
                        f"{where}: weights have fan-in {layer.weights.shape[1]}, but the incoming activation has {n_in} values"
                    )
                act = (layer.weights.shape[0],)
            else:
                _check_bits(layer.weights, where, "weights", 4)
                c_out, c_in, kh, kw = layer.weights.shape
                if kh != kw:
                    raise UserError(f"{where}: weights have a {kh}x{kw} kernel; only square kernels are supported")
                if len(act) != 3:
                    raise UserError(f"{where}: conv2d needs a (C, H, W) input, got a flat activation of shape {act}")
                if c_in != act[0]:
                    raise UserError(f"{where}: weights expect {c_in} input channels, the incoming activation has {act[0]}")
                _positive_int(layer.stride, where, "stride")
                _positive_int(layer.padding, where, "padding", minimum=0)
                ho = (act[1] + 2 * layer.padding - kh) // layer.stride + 1
                wo = (act[2] + 2 * layer.padding - kw) // layer.stride + 1
                if ho < 1 or wo < 1:
                    raise UserError(f"{where}: kernel {kh} does not fit the {act[1]}x{act[2]} input with padding {layer.padding}")
                act = (c_out, ho, wo)
            if layer.schedule is not None:
                _check_schedule(layer.schedule, layer.weight_matrix.astype(bool), where)
            act_kind = "sums"
        elif layer.kind == "threshold":
            if act_kind != "sums":
                raise UserError(f"{where}: a threshold must directly follow a binary layer")
            _check_int_vector(layer.threshold, where, "threshold", act[0])
            _check_int_vector(layer.direction, where, "direction", act[0])
            if not np.isin(layer.direction, (-1, 1)).all():
                raise UserError(f"{where}: direction must hold only +1 (y >= t) or -1 (y <= t)")
            act_kind = "bits"
        elif layer.kind == "maxpool":
            if act_kind != "bits" or len(act) != 3:
                raise UserError(f"{where}: max-pool needs a (C, H, W) bit activation (put it after a conv's threshold)")
            _positive_int(layer.kernel, where, "kernel")
            _positive_int(layer.stride, where, "stride")
            ho = (act[1] - layer.kernel) // layer.stride + 1
            wo = (act[2] - layer.kernel) // layer.stride + 1
            if ho < 1 or wo < 1:
                raise UserError(f"{where}: kernel {layer.kernel} does not fit the {act[1]}x{act[2]} input")
            act = (act[0], ho, wo)
    return net
