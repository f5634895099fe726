"""Import a QONNX model (as Brevitas's ``export_qonnx`` writes it) into the compiler IR, bit-exact.

What is read
------------
A chain of layers from the graph input to its output:

- input: optional float pre-processing (Mul / Add / Sub / Div by constants,
  e.g. FINN's ``2 x - 1``), then ``BipolarQuant`` (binary input: the IR's
  threshold quantiser, given the user's integer-to-float mapping
  ``float = raw * input_scale + input_offset``) or an integer ``Quant`` of up
  to 16 bits (the IR's ``int`` input: the raw inputs are the quantiser's
  integers ``q``, the float model sees ``(q - zero_point) * scale``);
- per layer: ``MatMul`` (weights through ``Transpose``, TorchScript export),
  ``Gemm`` (``transB`` 0 or 1, alpha, bias: the dynamo export) or ``Conv``,
  each with ``BipolarQuant`` weights of positive scale; then a float tail
  of per-channel element-wise nodes (bias ``Add``, ``BatchNormalization``,
  ``Mul`` / ``Div`` / ``Sub``); then ``BipolarQuant`` (sign) and optionally
  ``MaxPool`` (OR on bits; a max-pool before the tail is moved after the sign
  when every channel's bit is non-decreasing in the sum); ``Flatten`` /
  ``Reshape`` before a dense layer;
- the last binary layer's output is the class scores.

How the float tail becomes an integer threshold
-----------------------------------------------
As :mod:`mstbnn.nn.export` does for torch, the tail is not turned into a
formula: its own ONNX nodes are executed (onnxruntime, one node at a time,
as qonnx executes them) on the float value every reachable integer sum
produces, ``scale_j * (y - offset_j)``, and the bit ``tail >= 0`` is read off
as a step: rising (``y >= t``), falling (``y <= t``) or constant. The score
layer's tail must be one strictly monotone function shared by all classes
(argmax unchanged; a decreasing one flips the weight bits); a per-class
affine (BatchNorm, per-class bias or weight scale) on the score layer is
refused, because the IR's scores are the plain integer sums.

Validation
----------
Before anything is returned, the QONNX model is executed with qonnx
(``qonnx.core.onnx_exec.execute_onnx``) on the test set or on seeded random
raw inputs, and every layer's bits and the predictions are compared with the
IR's golden executor. Any difference is a :class:`UserError`.

Only onnx, qonnx, onnxruntime and numpy are imported (no torch).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from mstbnn.compiler.ir import BinaryConv2d, BinaryDense, InputQuantizer, MaxPool, Network, Threshold, step_threshold
from mstbnn.compiler.validate import validate
from mstbnn.errors import UserError

__all__ = ["import_qonnx", "step_threshold", "FINN_HINT"]

QUANT_DOMAIN = "qonnx.custom_op.general"
ELEMENTWISE = ("Add", "Sub", "Mul", "Div")
PASS_THROUGH = ("Identity", "Dropout")
LAYOUT = ("Flatten", "Reshape")
# Float activation functions as torch exports them: a binary layer's output through one of these is not binary.
FLOAT_ACTIVATIONS = ("Relu", "Clip", "Tanh", "Sigmoid", "HardSigmoid", "HardSwish", "LeakyRelu", "PRelu", "Elu",
                     "Selu", "Celu", "Gelu", "Softplus", "Softsign", "Mish")
BINARY_ACT = "a QuantIdentity or QuantHardTanh with act_quant=SignedBinaryActPerTensorConst"
FINN_HINT = ("float = raw * input_scale + input_offset; for 8-bit pixels and a model that applies FINN's 2x - 1 "
             "itself give --input-scale 0.00392156862745098 (raw / 255), for a model trained on [-1, 1] inputs "
             "--input-scale 0.00784313725490196 --input-offset -1")


def _libs():
    try:
        import onnx  # noqa: F401
        import onnxruntime  # noqa: F401
        import qonnx  # noqa: F401
    except ModuleNotFoundError as exc:
        raise UserError(f"reading .onnx models needs {exc.name}: pip install 'mstbnn[onnx]'") from None


# --------------------------------------------------------------------------- graph access


class _Graph:
    """The cleaned QONNX model with producer / consumer / constant look-ups and error naming."""

    def __init__(self, model, path: Path):
        self.model = model
        self.path = path
        self.nodes = list(model.graph.node)
        self.producer = {o: n for n in self.nodes for o in n.output}
        self.consumers: dict[str, list] = {}
        for n in self.nodes:
            for i in n.input:
                self.consumers.setdefault(i, []).append(n)
        self.outputs = [o.name for o in model.graph.output]

    def name(self, node) -> str:
        label = node.name or f"{node.op_type}#{self.nodes.index(node)}"
        return f"node {label!r} ({node.op_type})"

    def error(self, node, text: str) -> UserError:
        return UserError(f"{self.path.name}: {self.name(node)}: {text}")

    def const(self, tensor: str):
        """The value of a constant tensor (an initializer), else None."""
        if not tensor:
            return None
        value = self.model.get_initializer(tensor)
        return None if value is None else np.asarray(value)

    def attr(self, node, name, default=None):
        from onnx import helper

        for a in node.attribute:
            if a.name == name:
                value = helper.get_attribute_value(a)
                return value.decode() if isinstance(value, bytes) else value
        return default

    def shape(self, tensor: str) -> tuple:
        return tuple(self.model.get_tensor_shape(tensor) or ())

    def next(self, tensor: str):
        """The one node reading ``tensor`` (None at the graph output); a branch is refused."""
        users = self.consumers.get(tensor, [])
        if tensor in self.outputs and not users:
            return None
        if len(users) != 1 or tensor in self.outputs:
            where = self.producer.get(tensor)
            text = f"its output feeds {len(users) + (tensor in self.outputs)} consumers; mstbnn imports a chain of layers"
            if where is None:
                raise UserError(f"{self.path.name}: graph input {tensor!r}: {text}")
            raise self.error(where, text)
        return users[0]

    def dynamic_input(self, node, extra=()) -> tuple[int, str]:
        """(index, name) of the node's one non-constant input."""
        dyn = [(k, t) for k, t in enumerate(node.input) if t and t not in extra and self.const(t) is None]
        if len(dyn) != 1:
            raise self.error(node, f"has {len(dyn)} non-constant inputs; expected exactly one")
        return dyn[0]


def _prepare(path: Path):
    """Load and clean the model with qonnx's own transformations, keeping node names for the messages."""
    from qonnx.core.modelwrapper import ModelWrapper
    from qonnx.transformation.fold_constants import FoldConstants
    from qonnx.transformation.general import RemoveStaticGraphInputs, RemoveUnusedTensors, SortGraph
    from qonnx.transformation.infer_shapes import InferShapes

    try:
        model = ModelWrapper(str(path))
    except Exception as exc:  # noqa: BLE001 - any failure means the file is not a readable ONNX model
        raise UserError(f"{path}: not a readable ONNX model ({type(exc).__name__}: {str(exc).splitlines()[0][:200]})") from None
    for node in model.graph.node:
        if node.op_type in ("Quant", "BipolarQuant", "Trunc"):
            node.domain = QUANT_DOMAIN
    try:
        for t in (InferShapes(), FoldConstants(exclude_op_types=["Quant", "BipolarQuant"]), RemoveUnusedTensors(),
                  RemoveStaticGraphInputs(), SortGraph(), InferShapes()):
            model = model.transform(t)
    except Exception as exc:  # noqa: BLE001
        raise UserError(f"{path}: qonnx cannot clean up this model ({type(exc).__name__}: "
                        f"{str(exc).splitlines()[0][:200]}); export it with brevitas.export.export_qonnx") from None
    if len(model.graph.input) != 1 or len(model.graph.output) != 1:
        raise UserError(f"{path}: the model has {len(model.graph.input)} inputs and {len(model.graph.output)} outputs; "
                        "mstbnn imports one input and one output (the class scores)")
    return model


def _run_nodes(g: _Graph, nodes: list, x: np.ndarray, extra: dict | None = None) -> np.ndarray:
    """Execute the chain ``nodes`` on ``x`` one node at a time with onnxruntime, as qonnx executes a graph."""
    import onnxruntime as ort
    from onnx import TensorProto, helper, numpy_helper

    extra = extra or {}
    value = np.ascontiguousarray(x, dtype=np.float32)
    opsets = [o for o in g.model.model.opset_import if o.domain in ("", "ai.onnx")]
    for node in nodes:
        _, name = g.dynamic_input(node, extra)
        inits = [numpy_helper.from_array(np.asarray(extra[t] if t in extra else g.const(t)), t)
                 for t in node.input if t and t != name]
        graph = helper.make_graph([node], "mstbnn-tail", [helper.make_tensor_value_info(name, TensorProto.FLOAT, None)],
                                  [helper.make_tensor_value_info(node.output[0], TensorProto.FLOAT, None)], inits)
        model = helper.make_model(graph, opset_imports=opsets)
        try:
            sess = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
            value = sess.run([node.output[0]], {name: value})[0]
        except Exception as exc:  # noqa: BLE001
            raise g.error(node, f"onnxruntime cannot evaluate it on the integer sums ({type(exc).__name__}: "
                                f"{str(exc).splitlines()[0][:200]})") from None
    return value


# --------------------------------------------------------------------------- parsing


@dataclass
class _Stage:
    """One binary layer of the graph and what follows it up to (and including) its sign and pool."""

    node: object
    kind: str  # dense | conv2d
    bits: np.ndarray  # (C, N) or (C, Cin, k, k), 1 = +1
    scale: np.ndarray  # (C,) float32: graph value of a +-1 product, per output channel
    offset: np.ndarray  # (C,) int64: graph sum = scale * (y - offset) (zero point of an int input)
    stride: int = 1
    padding: int = 0
    tail: list = field(default_factory=list)  # element-wise nodes
    extra: dict = field(default_factory=dict)  # synthesized constants for Gemm / Conv bias
    pool_before: tuple | None = None  # (kernel, stride, node)
    sign: object = None  # the BipolarQuant node (None for the score layer)
    pool_after: tuple | None = None
    bits_tensor: str = ""  # graph tensor whose sign is this stage's output bits


def _binary_weight(g: _Graph, node, tensor: str) -> np.ndarray:
    """The weight tensor as ``node`` consumes it: +-scale values from a BipolarQuant of constants."""
    from qonnx.custom_op.general.bipolar_quant import binary_quant

    perm = None
    src = g.producer.get(tensor)
    if src is not None and src.op_type == "Transpose":
        perm = g.attr(src, "perm")
        src = g.producer.get(src.input[0])
    if src is None:
        raise g.error(node, "its weights are plain floats, not binary; quantise them with "
                            "SignedBinaryWeightPerTensorConst (a BipolarQuant on the weights)")
    if src.op_type != "BipolarQuant":
        bits = g.const(src.input[3]) if src.op_type == "Quant" and len(src.input) > 3 else None
        what = f"a {int(bits.ravel()[0])}-bit Quant" if bits is not None else f"{src.op_type}"
        raise g.error(node, f"its weights come from {what} ({g.name(src)}); mstbnn needs binary weights (BipolarQuant)")
    w, s = g.const(src.input[0]), g.const(src.input[1])
    if w is None or s is None:
        raise g.error(src, "weights or scale are not constants")
    if not (np.all(np.isfinite(s)) and np.all(s > 0)):
        raise g.error(src, "weight scale must be positive")
    value = binary_quant(w.astype(np.float32), s.astype(np.float32))
    return np.transpose(value, perm) if perm is not None else value


def _per_channel(g, node, value: np.ndarray, axis: int) -> tuple[np.ndarray, np.ndarray]:
    """(bits, |scale| per output channel) of a +-scale weight tensor whose output channels lie on ``axis``."""
    v = np.moveaxis(value, axis, 0).reshape(value.shape[axis], -1)
    mag = np.abs(v)
    if not np.all(mag == mag[:, :1]):
        raise g.error(node, "weight scale varies within an output channel; use a per-tensor or per-channel scale")
    return v > 0, mag[:, 0].astype(np.float32)


def _act_scale(g: _Graph, node) -> np.float32:
    s = g.const(node.input[1])
    if s is None or s.size == 0 or not np.all(s == s.ravel()[0]) or not s.ravel()[0] > 0:
        raise g.error(node, "activation scale must be one positive constant (per tensor)")
    return np.float32(s.ravel()[0])


def _pool(g: _Graph, node) -> tuple:
    k = g.attr(node, "kernel_shape")
    s = g.attr(node, "strides", k)
    pads = g.attr(node, "pads", [0, 0, 0, 0])
    if (len(k) != 2 or k[0] != k[1] or len(s) != 2 or s[0] != s[1] or any(pads) or g.attr(node, "ceil_mode", 0)
            or any(d != 1 for d in g.attr(node, "dilations", [1, 1])) or g.attr(node, "auto_pad", "NOTSET") != "NOTSET"):
        raise g.error(node, f"only square, unpadded max-pools are supported (kernel {k}, strides {s}, pads {pads})")
    return int(k[0]), int(s[0]), node


def _parse_input(g: _Graph, input_name: str) -> tuple[dict, str]:
    """The pre-processing chain and the input quantiser; returns (spec, tensor after the quantiser)."""
    pre = []
    t = input_name
    node = g.next(t)
    while node is not None and node.op_type in ELEMENTWISE + PASS_THROUGH + LAYOUT:
        g.dynamic_input(node)
        if node.op_type in LAYOUT:
            _check_flatten(g, node)
        pre.append(node)
        t = node.output[0]
        node = g.next(t)
    if node is None or node.op_type not in ("BipolarQuant", "Quant"):
        found = g.name(node) if node is not None else "the graph output"
        raise UserError(f"{g.path.name}: {found}: the first layer needs a quantised input (BipolarQuant for binary "
                        "inputs or an integer Quant) before it; add a QuantIdentity at the model's input")
    if node.input[0] != t:
        raise g.error(node, "quantises a constant, not the input")
    shape = tuple(int(v) for v in g.shape(t)[1:])  # per sample, after any flatten: the IR's input shape
    if node.op_type == "BipolarQuant":
        spec = {"mode": "threshold", "pre": pre, "quant": node, "act_scale": _act_scale(g, node), "shape": shape}
        return spec, node.output[0]
    # Integer Quant: the raw inputs are its integers q; the model sees (q - zero_point) * scale.
    scale, zero, bw = (g.const(x) for x in node.input[1:4])
    if scale is None or zero is None or bw is None or max(a.size for a in (scale, zero, bw)) != 1:
        raise g.error(node, "input quantiser needs one constant scale, zero point and bit width (per tensor)")
    scale, zero, bw = np.float32(scale.ravel()[0]), float(zero.ravel()[0]), float(bw.ravel()[0])
    # Float pre-processing before it (bnn_pynq CNV's 2x - 1) is outside the IR: the raw inputs are the integers q
    # the quantiser produces, computed by the host; validation feeds the quantiser's input directly.
    if not scale > 0 or zero != round(zero) or bw != round(bw) or not 2 <= bw <= 16:
        raise g.error(node, f"input quantiser must have a positive scale, an integer zero point and 2..16 bits "
                            f"(scale {scale}, zero point {zero}, {bw} bits)")
    signed, narrow = bool(g.attr(node, "signed", 1)), bool(g.attr(node, "narrow", 0))
    spec = {"mode": "int", "quant": node, "pre": pre, "scale": scale, "zero": int(zero), "bits": int(bw), "signed": signed,
            "narrow": narrow, "shape": shape}
    return spec, node.output[0]


def _parse_layer(g: _Graph, node, t: str, in_scale: np.float32, zero: int) -> _Stage:
    """The binary op ``node`` reading activation ``t``; its tail, sign and pool are filled by the caller."""
    op = node.op_type
    if op == "MatMul":
        if node.input[0] != t:
            raise g.error(node, "the activation must be the first operand")
        bits, mag = _per_channel(g, node, _binary_weight(g, node, node.input[1]), axis=1)
        stage = _Stage(node, "dense", bits.astype(np.uint8), mag, np.zeros(len(mag), np.int64))
    elif op == "Gemm":
        if node.input[0] != t or g.attr(node, "transA", 0):
            raise g.error(node, "only Gemm(activation, weights) with transA = 0 is supported")
        transb = bool(g.attr(node, "transB", 0))
        bits, mag = _per_channel(g, node, _binary_weight(g, node, node.input[1]), axis=0 if transb else 1)
        stage = _Stage(node, "dense", bits.astype(np.uint8), mag, np.zeros(len(mag), np.int64))
        # Gemm = alpha * (A @ B) + beta * C: the same arithmetic as a MatMul followed by Mul and Add nodes.
        alpha, beta = np.float32(g.attr(node, "alpha", 1.0)), np.float32(g.attr(node, "beta", 1.0))
        _add_synth(g, stage, node, "Mul", alpha if alpha != 1 else None)
        bias = g.const(node.input[2]) if len(node.input) > 2 and node.input[2] else None
        if len(node.input) > 2 and node.input[2] and bias is None:
            raise g.error(node, "bias is not a constant")
        _add_synth(g, stage, node, "Add", None if bias is None else (beta * bias.astype(np.float32)))
    elif op == "Conv":
        if node.input[0] != t:
            raise g.error(node, "the activation must be the first operand")
        value = _binary_weight(g, node, node.input[1])
        k = g.attr(node, "kernel_shape", list(value.shape[2:]))
        strides = g.attr(node, "strides", [1, 1])
        pads = g.attr(node, "pads", [0, 0, 0, 0])
        if (g.attr(node, "group", 1) != 1 or any(d != 1 for d in g.attr(node, "dilations", [1, 1]))
                or len(k) != 2 or k[0] != k[1] or len(set(strides)) != 1 or len(set(pads)) != 1
                or g.attr(node, "auto_pad", "NOTSET") != "NOTSET"):
            raise g.error(node, f"only square, ungrouped, undilated convs with equal strides and pads are supported "
                                f"(kernel {k}, strides {strides}, pads {pads})")
        bits, mag = _per_channel(g, node, value, axis=0)
        stage = _Stage(node, "conv2d", bits.reshape(value.shape).astype(np.uint8), mag, np.zeros(len(mag), np.int64),
                       stride=int(strides[0]), padding=int(pads[0]))
        bias = g.const(node.input[2]) if len(node.input) > 2 and node.input[2] else None
        if len(node.input) > 2 and node.input[2] and bias is None:
            raise g.error(node, "bias is not a constant")
        _add_synth(g, stage, node, "Add", None if bias is None else bias.astype(np.float32).reshape(1, -1, 1, 1))
    else:
        raise g.error(node, "is not a layer mstbnn can import (expected MatMul, Gemm or Conv with binary weights, "
                            "after a BipolarQuant activation)")
    # Graph value of one product term (activation value * weight value), rounded as onnxruntime rounds it.
    stage.scale = (np.float32(in_scale) * stage.scale).astype(np.float32)
    if zero:
        w_pm = stage.bits.reshape(len(stage.scale), -1).astype(np.int64) * 2 - 1
        stage.offset = zero * w_pm.sum(axis=1)
    return stage


def _add_synth(g: _Graph, stage: _Stage, node, op: str, const) -> None:
    """Append a synthesized element-wise node (Gemm's alpha / bias, Conv's bias) to the stage's tail."""
    if const is None:
        return
    from onnx import helper

    k = len(stage.extra)
    prev = stage.tail[-1].output[0] if stage.tail else node.output[0]
    cname, out = f"{node.output[0]}::c{k}", f"{node.output[0]}::t{k}"
    stage.extra[cname] = np.asarray(const, dtype=np.float32)
    stage.tail.append(helper.make_node(op, [prev, cname], [out], name=f"{node.name}:{op.lower()}"))


def _check_flatten(g: _Graph, node) -> None:
    out_shape, in_shape = g.shape(node.output[0]), g.shape(node.input[0])
    if len(out_shape) != 2 or (in_shape and int(np.prod(in_shape[1:])) != out_shape[1]):
        raise g.error(node, f"only flattening (batch, ...) -> (batch, features) is supported, got {out_shape}")


def _parse(g: _Graph) -> tuple[dict, list[_Stage]]:
    input_name = g.model.graph.input[0].name
    spec, t = _parse_input(g, input_name)
    stages: list[_Stage] = []
    in_scale = spec["act_scale"] if spec["mode"] == "threshold" else spec["scale"]
    zero = 0 if spec["mode"] == "threshold" else spec["zero"]
    flattened = False
    while True:
        node = g.next(t)
        if node is None:
            raise UserError(f"{g.path.name}: the graph ends with an activation quantiser; mstbnn needs the last binary "
                            "layer's sums as the class scores (end the model with a QuantLinear)")
        while node.op_type in LAYOUT + PASS_THROUGH:
            if node.op_type in LAYOUT:
                _check_flatten(g, node)
                flattened = True
            t = node.output[0]
            node = g.next(t)
            if node is None:
                raise UserError(f"{g.path.name}: the graph ends without a binary score layer")
        stage = _parse_layer(g, node, t, in_scale, zero)
        binary_input = bool(stages) or spec["mode"] == "threshold"
        if stage.kind == "conv2d" and stage.padding and (binary_input or zero):
            if binary_input:
                raise g.error(node, f"zero-padded binary conv (pads {stage.padding}): ONNX pads with 0, mstbnn pads "
                                    "binary activations with -1; export the conv with padding=0 (pad the input yourself)")
            raise g.error(node, f"padded conv on an integer input with zero point {zero}: the graph pads with q = "
                                f"{zero}, mstbnn with q = 0; use a zero point of 0 or padding=0")
        if stage.kind == "dense" and not flattened and stages and stages[-1].kind == "conv2d":
            raise g.error(node, "a dense layer after a conv needs a Flatten")
        stages.append(stage)
        t = node.output[0]
        # Float tail: per-channel element-wise nodes (and a max-pool) up to the sign.
        while True:
            nxt = g.next(t)
            if nxt is None or nxt.op_type not in ELEMENTWISE + PASS_THROUGH + ("BatchNormalization", "MaxPool"):
                break
            if nxt.op_type == "MaxPool":
                if stage.pool_before is not None or stage.kind != "conv2d":
                    raise g.error(nxt, "only one max-pool per conv layer is supported")
                stage.pool_before = _pool(g, nxt)
            else:
                k, _ = g.dynamic_input(nxt)
                if nxt.op_type == "BatchNormalization" and (k != 0 or g.attr(nxt, "training_mode", 0)):
                    raise g.error(nxt, "only inference-mode BatchNormalization of the layer's sums is supported")
                _check_per_channel(g, nxt, stage)
                stage.tail.append(nxt)
            t = nxt.output[0]
        if nxt is None:
            stage.bits_tensor = t
            if stage.kind != "dense":
                raise UserError(f"{g.path.name}: {g.name(node)}: the score layer must be dense")
            if stage.pool_before is not None:
                raise g.error(stage.pool_before[2], "a max-pool on the score layer is not supported")
            return spec, stages
        if nxt.op_type == "Quant":
            bw = g.const(nxt.input[3])
            raise g.error(nxt, f"a {int(bw.ravel()[0]) if bw is not None else '?'}-bit activation; mstbnn's hidden "
                               f"layers take binary activations (BipolarQuant: {BINARY_ACT})")
        if nxt.op_type in FLOAT_ACTIVATIONS:
            raise g.error(nxt, f"a float activation ({nxt.op_type}) after a binary layer; mstbnn's hidden layers "
                               f"take binary activations (BipolarQuant: {BINARY_ACT})")
        if nxt.op_type in ("MatMul", "Gemm", "Conv"):
            raise g.error(node, f"feeds the next layer ({g.name(nxt)}) float activations, with no quantiser between "
                                f"them; mstbnn's hidden layers take binary activations (BipolarQuant: {BINARY_ACT})")
        if nxt.op_type != "BipolarQuant":
            raise g.error(nxt, "cannot follow a binary layer; expected per-channel element-wise nodes, then a "
                               "BipolarQuant activation")
        stage.sign = nxt
        in_scale = _act_scale(g, nxt)
        zero = 0
        t = nxt.output[0]
        nxt = g.next(t)
        if nxt is not None and nxt.op_type == "MaxPool":
            if stage.kind != "conv2d" or stage.pool_before is not None:
                raise g.error(nxt, "only one max-pool per conv layer is supported")
            stage.pool_after = _pool(g, nxt)
            t = nxt.output[0]
        stage.bits_tensor = t


def _check_per_channel(g: _Graph, node, stage: _Stage) -> None:
    """A tail constant must be per channel (or scalar): the bit of channel j may depend only on its sum."""
    c_out = len(stage.scale)
    for t in node.input:
        c = g.const(t)
        if c is None:
            continue
        if node.op_type == "BatchNormalization":
            ok = c.size in (1, c_out)
        elif stage.kind == "dense":  # broadcast against (batch, C)
            ok = c.size == 1 or (c.ndim <= 2 and c.shape[-1] == c_out and c.size == c_out)
        else:  # broadcast against (batch, C, H, W): only (C, 1, 1) / (1, C, 1, 1) or a scalar
            ok = c.size == 1 or (c.ndim >= 3 and c.shape[-2:] == (1, 1) and c.shape[-3] == c_out and c.size == c_out)
        if not ok:
            raise g.error(node, f"constant {t!r} of shape {c.shape} is not per channel; only per-channel or scalar "
                                "constants fold into thresholds")


# --------------------------------------------------------------------------- folding


def _tail_values(g: _Graph, stage: _Stage, y_min: int, y_max: int) -> np.ndarray:
    """The tail's float output (R, C) for every integer sum y_min..y_max (the graph value scale * (y - offset))."""
    ys = np.arange(y_min, y_max + 1, dtype=np.float64)[:, None]
    v = (stage.scale.astype(np.float64)[None] * (ys - stage.offset[None])).astype(np.float32)
    if stage.kind == "conv2d":
        v = v[:, :, None, None]
    out = _run_nodes(g, stage.tail, v, stage.extra) if stage.tail else v
    return out.reshape(out.shape[0], -1)


def _sum_range(stage: _Stage, in_range) -> tuple[int, int]:
    n = int(np.prod(stage.bits.shape[1:]))
    if in_range is None:
        return -n, n
    m = max(abs(v) for v in in_range)
    return -n * m, n * m


def _input_thresholds(g: _Graph, spec: dict, shape: tuple, lo: int, hi: int, scale, offset) -> np.ndarray:
    """Per-feature thresholds: the smallest raw integer whose float (after pre-processing) binarises to +1."""
    raw = np.arange(lo, hi + 1)
    x = _raw_to_float(raw, scale, offset)
    in_shape = tuple(int(v) for v in g.shape(g.model.graph.input[0].name)[1:])
    val = np.broadcast_to(x.reshape((-1,) + (1,) * len(in_shape)), (len(raw),) + in_shape).astype(np.float32)
    for node in spec["pre"]:  # every feature sees every raw value: one row per raw integer
        val = val.reshape(len(raw), -1) if node.op_type in LAYOUT else _run_nodes(g, [node], val)
    bits = val.reshape(len(raw), -1) >= 0
    quant = spec["quant"]
    t, d = step_threshold(bits, lo, lambda j: f"{g.path.name}: {g.name(quant)}, input feature {j}")
    if np.any(d < 0):
        j = int(np.flatnonzero(d < 0)[0])
        raise g.error(quant, f"input feature {j}: the bit falls as the raw input grows; mstbnn's input quantiser "
                             "computes raw >= threshold (use a positive --input-scale)")
    return t.reshape(shape)


def _raw_to_float(raw: np.ndarray, scale, offset) -> np.ndarray:
    """The documented integer-to-float mapping, in float32: raw * scale + offset."""
    return (np.asarray(raw).astype(np.float32) * np.float32(scale) + np.float32(offset)).astype(np.float32)


def _build(g: _Graph, spec: dict, stages: list[_Stage], input_scale, input_offset, input_bits: int):
    shape = spec["shape"]
    if not shape or len(shape) not in (1, 3):
        raise UserError(f"{g.path.name}: input shape {shape} is not (features,) or (channels, height, width)")
    if spec["mode"] == "threshold":
        if input_scale is None:
            raise UserError(f"{g.path.name}: {g.name(spec['quant'])} binarises float inputs: give --input-scale "
                            f"(and --input-offset) to map the raw integers to floats: {FINN_HINT}")
        lo, hi = 0, (1 << input_bits) - 1
        thresholds = _input_thresholds(g, spec, shape, lo, hi, input_scale, input_offset or 0.0)
        layers = [InputQuantizer(shape=shape, mode="threshold", thresholds=thresholds, bits=input_bits, signed=False)]
        in_range = None
    else:
        if input_scale is not None or input_offset is not None:
            raise UserError(f"{g.path.name}: {g.name(spec['quant'])} is an integer input quantiser: its scale and zero "
                            "point fix the mapping; drop --input-scale/--input-offset and give its integers as raw inputs")
        inq = InputQuantizer(shape=shape, mode="int", thresholds=None, bits=spec["bits"], signed=spec["signed"])
        layers = [inq]
        in_range = inq.value_range
        bound = int(np.prod(stages[0].bits.shape[1:])) * max(abs(v) for v in in_range)
        if bound >= 1 << 24:
            raise g.error(stages[0].node, f"integer-input sums up to {bound} exceed float32's exact range (2^24)")
    record = []  # (IR layer index, graph tensor, stage, "bits" | "scores") for the layer-by-layer check
    for k, stage in enumerate(stages):
        last = k == len(stages) - 1
        y_min, y_max = _sum_range(stage, in_range)
        values = _tail_values(g, stage, y_min, y_max)
        if stage.kind == "dense":
            binary = BinaryDense(weights=stage.bits.copy())
        else:
            binary = BinaryConv2d(weights=stage.bits.copy(), stride=stage.stride, padding=stage.padding)
        layers.append(binary)
        if last:
            culprit = stage.tail[0] if stage.tail else stage.node
            culprit = stage.node if culprit.name.endswith((":mul", ":add")) else culprit
            if not np.all(values == values[:, :1]):
                raise g.error(culprit, "a per-class affine on the score layer (BatchNorm, per-class bias or weight "
                                       "scale) has no exact integer form in mstbnn's scores; end the model with the "
                                       "QuantLinear (bias=False, per-tensor weight scale) and retrain or fine-tune")
            col = values[:, 0]
            diff = np.diff(col.astype(np.float64))
            if np.all(diff < 0):
                binary.weights = (1 - binary.weights).astype(np.uint8)  # scores -y: the same order as the tail's
            elif not np.all(diff > 0):
                raise g.error(culprit, "the score layer's float tail is not strictly monotone in the integer sums, "
                                       "so its argmax differs from the sums'; remove it")
            record.append((len(layers) - 1, stage.bits_tensor, stage, "scores"))
            continue
        t, d = step_threshold(values >= 0, y_min,
                              lambda j, s=stage: f"{g.path.name}: {g.name(s.sign)}, channel {j}")
        if stage.pool_before is not None and np.any(d < 0):
            j = int(np.flatnonzero(d < 0)[0])
            raise g.error(stage.pool_before[2], f"max-pool before a negative-scale BatchNorm (channel {j}): the max "
                                                "does not commute with a falling sign; pool after the activation")
        layers.append(Threshold(threshold=t, direction=d))
        pool = stage.pool_before or stage.pool_after
        if pool is not None:
            layers.append(MaxPool(kernel=pool[0], stride=pool[1]))
        record.append((len(layers) - 1, stage.bits_tensor, stage, "bits"))  # after the pool: what the graph signs
        in_range = None
    net = Network(layers=layers, meta={"source": {"format": "qonnx", "file": g.path.name}})
    validate(net)
    return net, record


# --------------------------------------------------------------------------- validation


def _check_against_qonnx(g: _Graph, spec: dict, net: Network, record: list, raw: np.ndarray, input_scale,
                         input_offset) -> None:
    from qonnx.core.onnx_exec import execute_onnx
    from qonnx.transformation.change_batchsize import ChangeBatchSize
    from qonnx.transformation.infer_shapes import InferShapes

    from mstbnn.compiler.execute import run

    if spec["mode"] == "threshold":
        x = _raw_to_float(raw, input_scale, input_offset or 0.0)
    else:
        x = ((raw.astype(np.float64) - spec["zero"]) * float(spec["scale"])).astype(np.float32)
    quant = spec["quant"]
    model = g.model
    if spec["mode"] == "int":
        model = _bypass_arithmetic(model, spec["pre"])
    model = model.transform(ChangeBatchSize(len(raw))).transform(InferShapes())
    name = model.graph.input[0].name
    x = x.reshape(tuple(model.get_tensor_shape(name)))
    try:
        ctx = execute_onnx(model, {name: x}, return_full_exec_context=True)
    except Exception as exc:  # noqa: BLE001
        raise UserError(f"{g.path.name}: qonnx cannot execute the model ({type(exc).__name__}: "
                        f"{str(exc).splitlines()[0][:200]})") from None
    trace = run(net, raw)
    got = ctx[quant.output[0]]
    if spec["mode"] == "threshold":
        mine = trace.layers[0].bits.reshape(len(raw), -1)
        _compare(g, quant, "input bits", mine, got.reshape(len(raw), -1) > 0)
    else:
        expect = ((raw.astype(np.float64) - spec["zero"]) * float(spec["scale"])).astype(np.float32)
        if not np.array_equal(got.reshape(len(raw), -1), expect.reshape(len(raw), -1)):
            raise g.error(quant, "quantises the raw integers to other values than (q - zero_point) * scale; "
                                 "mstbnn's int input cannot reproduce it")
    for index, tensor, stage, what in record:
        if what == "bits":
            mine = trace.layers[index].bits.reshape(len(raw), -1)
            node = stage.pool_after[2] if stage.pool_after else stage.sign
            _compare(g, node, f"layer {index} bits", mine, ctx[tensor].reshape(len(raw), -1) > 0)
        else:
            scores = ctx[tensor].reshape(len(raw), -1)
            pred, mine = np.argmax(scores, axis=1), trace.classes
            bad = pred != mine
            if not _power_of_two(stage.scale):
                # The float graph sums non-dyadic products (e.g. Brevitas's default weight scale 0.1) with rounding
                # noise, which breaks exact ties of the integer scores at random. mstbnn keeps the exact model's
                # answer (lowest class among equal scores); only such ties may differ, nothing else.
                rows = np.arange(len(raw))
                ties = trace.scores[rows, pred] == trace.scores[rows, mine]
                ties_broken = int(np.sum(bad & ties))
                bad &= ~ties
                net.meta["source"]["float_tie_breaks"] = ties_broken
            bad = np.flatnonzero(bad)
            if bad.size:
                i = int(bad[0])
                raise g.error(stage.node, f"predictions differ from qonnx's execution on {bad.size} of {len(raw)} "
                                          f"inputs (first: input {i}, class {mine[i]} vs {pred[i]}); {_REFUSED}")


def _bypass_arithmetic(model, pre: list):
    """A copy of ``model`` without the float pre-processing before an integer input quantiser.

    The IR's raw inputs are that quantiser's integers q, so validation feeds (q - zero_point) * scale to
    the quantiser itself; layout nodes (Flatten, Reshape) stay, so the graph input keeps its shape.
    """
    import copy

    model = copy.deepcopy(model)
    names = {n.output[0] for n in pre if n.op_type not in LAYOUT}
    for node in [n for n in model.graph.node if n.output[0] in names]:
        src = next(t for t in node.input if t and model.get_initializer(t) is None)
        for user in model.graph.node:
            for k, t in enumerate(user.input):
                if t == node.output[0]:
                    user.input[k] = src
        model.graph.node.remove(node)
    return model


def _power_of_two(c: np.ndarray) -> bool:
    """Every value a power of two, so a sum of +-c terms is exact in float32."""
    return bool(np.all(np.frexp(np.asarray(c, dtype=np.float64))[0] == 0.5))


_REFUSED = ("nothing written (scales that are not powers of two make the float graph round its sums; "
            "otherwise this is an mstbnn bug: please report it)")


def _compare(g: _Graph, node, what: str, mine: np.ndarray, theirs: np.ndarray) -> None:
    bad = np.argwhere(mine != theirs)
    if bad.size:
        i, j = (int(v) for v in bad[0])
        raise g.error(node, f"{what} differ from qonnx's execution at {len(bad)} places (first: input {i}, element "
                            f"{j}); {_REFUSED}")


# --------------------------------------------------------------------------- entry point


def import_qonnx(path, *, input_scale: float | None = None, input_offset: float | None = None,
                 test_set=None, vectors: int = 256, seed: int = 0, input_bits: int = 8) -> tuple[Network, dict | None]:
    """Read a QONNX model into an (unscheduled) :class:`Network`, validated against qonnx's execution.

    Parameters
    ----------
    path : .onnx file from ``brevitas.export.export_qonnx`` (either exporter).
    input_scale, input_offset : the raw-integer-to-float mapping of a binary-input model
        (``float = raw * input_scale + input_offset``, in float32); refused for an integer-input model.
    test_set : optional .npz of raw integer inputs ``x`` (and labels ``y``), read with
        :func:`mstbnn.artefact.read_testset`; validation runs on it, else on ``vectors`` seeded random inputs.
    input_bits : raw input width of a binary-input model (unsigned).

    Returns
    -------
    (network, testset) where testset is ``{"x", "y"}`` from ``test_set`` or None.
    """
    from mstbnn.artefact import read_testset

    _libs()
    path = Path(path)
    if not path.is_file():
        raise UserError(f"{path}: no such file; give a QONNX model from brevitas.export.export_qonnx")
    if input_scale is not None and not (np.isfinite(input_scale) and input_scale != 0):
        raise UserError(f"--input-scale must be a finite non-zero number, got {input_scale}")
    if test_set is None and vectors < 1:
        raise UserError(f"--vectors must be at least 1 (random inputs to validate the import on), got {vectors}")
    if input_offset is not None and not np.isfinite(input_offset):
        raise UserError(f"--input-offset must be finite, got {input_offset}")
    g = _Graph(_prepare(path), path)
    spec, stages = _parse(g)
    net, record = _build(g, spec, stages, input_scale, input_offset, input_bits)
    testset = None
    inp = net.input
    if test_set is not None:
        x, y = read_testset(test_set, inp.shape, inp.value_range)
        if len(x) == 0:
            raise UserError(f"{test_set}: the test set is empty")
        testset = {"x": x} if y is None else {"x": x, "y": y}
        raw = x
    else:
        lo, hi = inp.value_range
        raw = np.random.default_rng(seed).integers(lo, hi + 1, size=(vectors,) + tuple(inp.shape), dtype=np.int64)
    _check_against_qonnx(g, spec, net, record, raw, input_scale, input_offset)
    net.meta["source"]["validated_inputs"] = int(len(raw))
    net.meta["source"]["validated_on"] = "test set" if test_set is not None else f"random (seed {seed})"
    return net, testset
