"""FINN's TFC and a CNV-like net, from Brevitas through QONNX, `mstbnn verilog` and `mstbnn sim` (Verilator), bit-exact.

Each model is built in Brevitas (tests/compiler/brevitas_models.py: Brevitas's
own bnn_pynq TFC_1W1A, 784-64-64-64-10, and a small net with bnn_pynq CNV's
modules: 8-bit Q1.7 input, unpadded binary convs, max-pool after the sign,
TensorNorm), exported by TorchScript, compiled from the .onnx with a test set
whose labels are qonnx's own predictions, then simulated. Three links, each
checked: the compile refuses unless every layer equals qonnx's execution
(tests/compiler/test_qonnx_import.py checks that independently), `sim`
compares every class and score of the hardware with the golden executor, and
the hardware's test-set accuracy against qonnx's labels must be 100 %.

Cost (2-core machine): the unrolled TFC's Verilog is 4.9 MB and one Verilator
build of it takes about a minute, so the default suite runs the unrolled
engine with `--harness cocotb` (one build; every vector through the cocotb
protocol and stress testbench) rather than the default harness's two builds.
The folded engine, and the default harness (cocotb protocol phase, then the
compiled bulk harness), are in the slow set. SFC, LFC and the full CNV are
simulated by benchmarks/bench_qonnx_import.py.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

pytest.importorskip("brevitas")
pytest.importorskip("qonnx")

import torch  # noqa: E402
from qonnx.core.modelwrapper import ModelWrapper  # noqa: E402
from qonnx.core.onnx_exec import execute_onnx  # noqa: E402
from qonnx.transformation.change_batchsize import ChangeBatchSize  # noqa: E402
from qonnx.transformation.infer_shapes import InferShapes  # noqa: E402
from qonnx.util.cleanup import cleanup_model  # noqa: E402

from mstbnn.artefact import result_path  # noqa: E402
from mstbnn.cli import main  # noqa: E402
from mstbnn.compiler.io import load  # noqa: E402
from tests.compiler import brevitas_models as bm  # noqa: E402

TEST_IMAGES = 6  # labelled by qonnx; then RANDOM seeded random vectors (the first two: all-min, all-max)
RANDOM = 6


def _qonnx_classes(path, x: np.ndarray) -> np.ndarray:
    model = cleanup_model(ModelWrapper(str(path)))
    model = model.transform(ChangeBatchSize(len(x))).transform(InferShapes())
    name = model.graph.input[0].name
    out = execute_onnx(model, {name: x.reshape(model.get_tensor_shape(name))})[model.graph.output[0].name]
    return np.argmax(out.reshape(len(x), -1), axis=1)


def _build(name: str, root):
    """Export, label the test images with qonnx's predictions, `mstbnn compile`: the artefact directory."""
    torch.manual_seed(0)
    rng = np.random.default_rng(21)
    if name == "tfc":
        model, flags = bm.bnn_pynq("tfc_1w1a"), ["--input-scale", repr(1 / 255)]
        raw = rng.integers(0, 256, size=(TEST_IMAGES, 784))
        x = (raw.astype(np.float32) * np.float32(1 / 255)).astype(np.float32)
    else:
        model, flags = bm.CNVLike(), []
        raw = rng.integers(-128, 128, size=(TEST_IMAGES, *model.image))
        x = bm.cnv_raw_to_float(raw)
    onnx_path = root / f"{name}.onnx"
    bm.export(model, onnx_path, dynamo=False)
    labels = _qonnx_classes(onnx_path, x)
    np.savez(root / f"{name}-test.npz", x=raw, y=labels)
    out = root / name
    assert main(["compile", str(onnx_path), "-o", str(out), "--test-set", str(root / f"{name}-test.npz"), *flags]) == 0
    return out, labels


@pytest.fixture(scope="module")
def compiled(tmp_path_factory):
    root = tmp_path_factory.mktemp("qonnx-sim")
    cache = {}

    def get(name):
        if name not in cache:
            cache[name] = _build(name, root)
        return cache[name]

    return get


# Default suite: the default (unrolled) engine, one build each. Slow: the folded engine with the default harness
# (two builds each; TFC ~35 s, CNV-like ~45 s on an idle 2-core machine).
CASES = [("tfc", "unrolled", "cocotb"), ("cnv", "unrolled", "cocotb")] + [
    pytest.param(*case, marks=pytest.mark.slow, id="-".join(case))
    for case in (("tfc", "folded", "bulk"), ("cnv", "folded", "bulk"), ("cnv", "unrolled", "bulk"))]


@pytest.mark.parametrize("name,engine,harness", CASES, ids=lambda v: v)
def test_finn_model_bit_exact_in_verilator(compiled, capsys, name, engine, harness):
    d, labels = compiled(name)
    net = load(d)
    kinds = [layer.kind for layer in net.layers]
    if name == "tfc":
        assert net.input.mode == "threshold" and net.input.shape == (784,) and kinds.count("dense") == 4
    else:
        assert net.input.mode == "int" and kinds.count("conv2d") == 4 and kinds.count("maxpool") == 2
    assert len(set(labels.tolist())) >= 2  # the test images do not all land in one class
    assert main(["verilog", str(d), "--engine", engine]) == 0
    rc = main(["sim", str(d), "--engine", engine, "--harness", harness, "--vectors", str(RANDOM),
               "--protocol-vectors", "4"])
    assert rc == 0, capsys.readouterr().err
    fig = json.loads(result_path(d, "sim", engine=engine).read_text())
    assert fig["vectors"] == fig["bit_exact"] == TEST_IMAGES + RANDOM and fig["mismatches"] == 0
    assert fig["test_vectors"] == TEST_IMAGES and fig["timing_ok"] and fig["ok"]
    assert fig["test_accuracy"] == 1.0  # the hardware's classes are qonnx's predictions
