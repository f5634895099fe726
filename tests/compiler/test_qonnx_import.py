"""QONNX import: Brevitas 1W1A models, exported both ways, compile to IRs whose every layer equals qonnx's execution.

The reference here is computed independently of the importer: qonnx's own
``cleanup_model`` and ``execute_onnx`` on the exported file (and the Brevitas
model's torch forward for the predictions), never the importer's internals.
"""

from __future__ import annotations

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

from mstbnn.cli import main  # noqa: E402
from mstbnn.compiler import qonnx_import  # noqa: E402
from mstbnn.compiler.execute import run  # noqa: E402
from mstbnn.compiler.io import load  # noqa: E402
from mstbnn.errors import UserError  # noqa: E402
from tests.compiler import brevitas_models as bm  # noqa: E402

SCALE = 1 / 255  # raw pixel / 255; the models apply FINN's 2x - 1 themselves


@pytest.fixture(scope="session")
def exported(tmp_path_factory):
    """Export a model once per session: exported(key, builder, dynamo) -> (path, model)."""
    root = tmp_path_factory.mktemp("qonnx")
    cache = {}

    def get(key, build, dynamo=False):
        if (key, dynamo) not in cache:
            torch.manual_seed(0)
            model = build()
            path = root / f"{key}-{'dynamo' if dynamo else 'ts'}.onnx"
            bm.export(model, path, dynamo=dynamo)
            cache[key, dynamo] = (path, model)
        return cache[key, dynamo]

    return get


def _float_inputs(raw, scale=SCALE, offset=0.0):
    return (raw.astype(np.float32) * np.float32(scale) + np.float32(offset)).astype(np.float32)


def qonnx_reference(path, x):
    """qonnx's execution of the file: the bits after every hidden activation (after its pool) and the scores."""
    model = cleanup_model(ModelWrapper(str(path)))
    model = model.transform(ChangeBatchSize(len(x))).transform(InferShapes())
    name = model.graph.input[0].name
    ctx = execute_onnx(model, {name: x.reshape(model.get_tensor_shape(name))}, return_full_exec_context=True)
    acts = [n for n in model.graph.node if n.op_type == "BipolarQuant" and model.get_initializer(n.input[0]) is None]
    stage_bits = []
    for n in acts:
        t = n.output[0]
        users = model.find_consumers(t)
        if users and users[0].op_type == "MaxPool":
            t = users[0].output[0]
        stage_bits.append(ctx[t].reshape(len(x), -1) > 0)
    return stage_bits, ctx[model.graph.output[0].name].reshape(len(x), -1)


def ir_stage_bits(net, raw):
    trace = run(net, raw)
    out = []
    for i, layer in enumerate(net.layers):
        if layer.kind == "threshold":
            j = i + 1 if i + 1 < len(net.layers) and net.layers[i + 1].kind == "maxpool" else i
            out.append(trace.layers[j].bits.reshape(len(raw), -1))
    return out, trace


def assert_matches_qonnx(path, net, raw, x, model=None, first_is_input=True):
    ref_bits, ref_scores = qonnx_reference(path, x)
    mine, trace = ir_stage_bits(net, raw)
    if first_is_input:
        ref_bits = ref_bits[1:]  # the input quantiser's own BipolarQuant
    assert len(mine) == len(ref_bits) > 0
    for k, (a, b) in enumerate(zip(mine, ref_bits)):
        assert np.array_equal(a, b), f"stage {k}: {np.sum(a != b)} bits differ"
    assert np.array_equal(trace.classes, np.argmax(ref_scores, axis=1))
    if model is not None:
        with torch.no_grad():
            torch_pred = model(torch.from_numpy(x.reshape((len(x),) + tuple(net.input.shape)))).argmax(1).numpy()
        assert np.array_equal(trace.classes, torch_pred)
    return trace


def _mlp():
    return bm.BinaryMLP()


@pytest.mark.parametrize("dynamo", [False, True], ids=["torchscript", "dynamo"])
def test_mlp_compiles_bit_exact_against_qonnx(exported, tmp_path, capsys, dynamo):
    path, model = exported("mlp", _mlp, dynamo)
    raw = np.random.default_rng(1).integers(0, 256, size=(400, 16))
    np.savez(tmp_path / "test.npz", x=raw, y=np.zeros(len(raw), dtype=np.int64))
    out = tmp_path / "art"
    rc = main(["compile", str(path), "-o", str(out), "--input-scale", repr(SCALE), "--test-set", str(tmp_path / "test.npz")])
    assert rc == 0, capsys.readouterr().err
    net = load(out)
    assert [l.kind for l in net.layers] == ["input", "dense", "threshold", "dense", "threshold", "dense"]
    assert net.input.mode == "threshold" and np.all(net.input.thresholds == 128)  # 2 * raw / 255 - 1 >= 0
    # Negative BN scales fold to falling thresholds, zero scales to constant bits.
    for layer in (net.layers[2], net.layers[4]):
        assert (layer.direction == -1).any() and (layer.direction == 1).any()
        assert layer.threshold[1] in (-layer_fan_in(net, layer) , layer_fan_in(net, layer) + 1)
    assert_matches_qonnx(path, net, raw, _float_inputs(raw), model)
    assert net.meta["source"]["validated_inputs"] == 400
    with np.load(out / "testset.npz") as f:
        assert np.array_equal(f["x"], raw)
    again = tmp_path / "again"
    assert main(["compile", str(path), "-o", str(again), "--input-scale", repr(SCALE), "--test-set",
                 str(tmp_path / "test.npz")]) == 0
    for name in ("network.json", "network.npz", "testset.npz"):
        assert (out / name).read_bytes() == (again / name).read_bytes(), name


def layer_fan_in(net, threshold):
    i = net.layers.index(threshold)
    return net.layers[i - 1].fan_in


def test_both_export_paths_give_the_same_network(exported):
    a, _ = qonnx_import.import_qonnx(exported("mlp", _mlp, False)[0], input_scale=SCALE)
    b, _ = qonnx_import.import_qonnx(exported("mlp", _mlp, True)[0], input_scale=SCALE)
    for la, lb in zip(a.layers, b.layers):
        for field in ("weights", "threshold", "direction", "thresholds"):
            if getattr(la, field, None) is not None:
                assert np.array_equal(getattr(la, field), getattr(lb, field)), field


@pytest.mark.parametrize("dynamo", [False, pytest.param(True, marks=pytest.mark.slow)], ids=["torchscript", "dynamo"])
def test_mlp_flattening_images_first_like_bnn_pynq(exported, dynamo):
    path, model = exported("mlp-image", lambda: bm.BinaryMLP(image=(1, 4, 4), seed=9), dynamo)
    net, _ = qonnx_import.import_qonnx(path, input_scale=SCALE)
    assert net.input.shape == (16,)
    raw = np.random.default_rng(9).integers(0, 256, size=(200, 16))
    assert_matches_qonnx(path, net, raw, _float_inputs(raw), model)


def test_input_mapping_for_a_model_trained_on_minus_one_to_one(exported):
    """No 2x - 1 in the model: --input-scale 2/255 --input-offset -1 gives the same input bits (raw >= 128)."""
    path, model = exported("mlp-pm1", lambda: bm.BinaryMLP(preprocess=False, seed=10))
    net, _ = qonnx_import.import_qonnx(path, input_scale=2 / 255, input_offset=-1.0)
    assert np.all(net.input.thresholds == 128)
    raw = np.random.default_rng(10).integers(0, 256, size=(200, 16))
    assert_matches_qonnx(path, net, raw, _float_inputs(raw, 2 / 255, -1.0), model)


def _finn(name):
    return bm.CNVLike() if name == "cnv_like" else bm.bnn_pynq(name)


# FINN's models: Brevitas's own bnn_pynq TFC / SFC / LFC / CNV (1W1A) and the small CNV-like net (the one that also
# goes through Verilator, tests/sim/test_qonnx_models.py). Compile takes seconds for each; the dynamo exports of the
# large ones are slow only to export.
FINN_CASES = [("tfc_1w1a", False), ("tfc_1w1a", True), ("sfc_1w1a", False), ("lfc_1w1a", False), ("cnv_1w1a", False),
              ("cnv_like", False), ("cnv_like", True)] + [
    pytest.param(name, True, marks=pytest.mark.slow) for name in ("sfc_1w1a", "lfc_1w1a", "cnv_1w1a")]
FINN_LAYERS = {  # (dense, conv2d, maxpool) layers; TFC/SFC/LFC: 784-H-H-H-10
    "tfc_1w1a": (4, 0, 0), "sfc_1w1a": (4, 0, 0), "lfc_1w1a": (4, 0, 0), "cnv_1w1a": (3, 6, 2), "cnv_like": (3, 4, 2)}
FINN_HIDDEN = {"tfc_1w1a": 64, "sfc_1w1a": 256, "lfc_1w1a": 1024}


@pytest.mark.parametrize("name,dynamo", FINN_CASES, ids=lambda v: {False: "torchscript", True: "dynamo"}.get(v, v))
def test_finn_models_compile_bit_exact(exported, tmp_path, capsys, name, dynamo):
    """`mstbnn compile` on FINN's standard 1W1A models: the scheduled artefact's every layer equals qonnx's execution.

    The MLPs flatten the image, apply 2x - 1, binarise it (the IR's threshold input), use Dropout and end in a
    TensorNorm; the conv nets apply 2x - 1 before an 8-bit Q1.7 input quantiser (the IR's int input: the raw inputs
    are its integers q) and pool after the sign.
    """
    path, model = exported(name, lambda: _finn(name), dynamo)
    conv = name.startswith("cnv")
    rng = np.random.default_rng(11)
    n = 8 if name == "cnv_1w1a" else 100  # compile checks the reuse executor on the test set: 4 s per CNV image
    if conv:
        raw = rng.integers(-128, 128, size=(n, *model.image))
        x, flags = bm.cnv_raw_to_float(raw), []  # the model's own 2x - 1 maps x back to q / 128 exactly
    else:
        raw = rng.integers(0, 256, size=(n, 784))
        x, flags = _float_inputs(raw), ["--input-scale", repr(SCALE)]
    np.savez(tmp_path / "test.npz", x=raw)
    out = tmp_path / "art"
    rc = main(["compile", str(path), "-o", str(out), "--test-set", str(tmp_path / "test.npz"), *flags])
    assert rc == 0, capsys.readouterr().err
    net = load(out)
    kinds = [layer.kind for layer in net.layers]
    assert (kinds.count("dense"), kinds.count("conv2d"), kinds.count("maxpool")) == FINN_LAYERS[name]
    assert net.input.mode == ("int" if conv else "threshold")
    if name in FINN_HIDDEN:
        h = FINN_HIDDEN[name]
        assert [layer.weights.shape for _, layer in net.binary_layers()] == [(h, 784), (h, h), (h, h), (10, h)]
    assert all(layer.schedule is not None for _, layer in net.binary_layers())  # compiled: MST trees built
    trace = assert_matches_qonnx(path, net, raw, x, model, first_is_input=not conv)
    # Calibrated BatchNorms (brevitas_models.calibrate_norms): no degenerate model that predicts one class.
    assert len(set(trace.classes.tolist())) >= 3
    for i, layer in enumerate(net.layers):
        if layer.kind == "threshold":
            assert (layer.direction == -1).any() and (layer.direction == 1).any()


def test_onnx_options_are_refused_for_other_models(tmp_path, capsys):
    assert main(["compile", str(tmp_path), "-o", str(tmp_path / "a"), "--input-scale", "1"]) == 2
    assert "only for a QONNX model" in capsys.readouterr().err


def test_int8_input_becomes_int_mode(exported):
    path, model = exported("int8", lambda: bm.BinaryMLP(first="int8", seed=2))
    net, _ = qonnx_import.import_qonnx(path, vectors=64)
    assert net.input.mode == "int" and net.input.bits == 8 and net.input.signed
    q = np.random.default_rng(2).integers(-128, 128, size=(300, 16))
    scale = float(model.input_quant.act_quant.scale())
    assert_matches_qonnx(path, net, q, (q * scale).astype(np.float32), model, first_is_input=False)
    with pytest.raises(UserError, match="integer input quantiser"):
        qonnx_import.import_qonnx(path, input_scale=SCALE)


def test_score_layer_shared_negative_affine_flips_weights(exported):
    path, model = exported("neg", lambda: bm.BinaryMLP(score_affine=(-0.5, 0.25), seed=3))
    net, _ = qonnx_import.import_qonnx(path, input_scale=SCALE)
    raw = np.random.default_rng(3).integers(0, 256, size=(300, 16))
    assert_matches_qonnx(path, net, raw, _float_inputs(raw), model)
    plain, _ = qonnx_import.import_qonnx(exported("mlp3", lambda: bm.BinaryMLP(seed=3))[0], input_scale=SCALE)
    assert np.array_equal(net.layers[-1].weights, 1 - plain.layers[-1].weights)


def test_default_weight_scale_keeps_exact_scores(exported):
    """Brevitas's default binary weight scale 0.1: the float graph breaks exact score ties by rounding noise."""
    path, model = exported("w01", lambda: bm.BinaryMLP(weight_quant=bm.SignedBinaryWeightPerTensorConst, seed=4))
    net, _ = qonnx_import.import_qonnx(path, input_scale=SCALE)
    raw = np.random.default_rng(4).integers(0, 256, size=(300, 16))
    ref_bits, ref_scores = qonnx_reference(path, _float_inputs(raw))
    mine, trace = ir_stage_bits(net, raw)
    for a, b in zip(mine, ref_bits[1:]):
        assert np.array_equal(a, b)
    pred = np.argmax(ref_scores, axis=1)
    rows = np.arange(len(raw))
    differ = pred != trace.classes
    assert np.array_equal(trace.scores[rows, pred][differ], trace.scores[rows, trace.classes][differ])  # only ties
    assert np.allclose(ref_scores, trace.scores * 0.1, atol=1e-5)
    assert net.meta["source"]["float_tie_breaks"] >= 0


def _cnv():
    return bm.BinaryCNV()


@pytest.mark.parametrize("dynamo", [False, pytest.param(True, marks=pytest.mark.slow)], ids=["torchscript", "dynamo"])
def test_cnv_without_padding_bit_exact(exported, dynamo):
    path, model = exported("cnv", _cnv, dynamo)
    net, _ = qonnx_import.import_qonnx(path, input_scale=SCALE, vectors=32)
    assert [l.kind for l in net.layers] == ["input", "conv2d", "threshold", "conv2d", "threshold", "maxpool", "dense",
                                            "threshold", "dense"]
    raw = np.random.default_rng(5).integers(0, 256, size=(200, 1, 10, 10))
    assert_matches_qonnx(path, net, raw, _float_inputs(raw), model)


def test_int8_input_conv_pads_with_zero(exported):
    path, model = exported("cnv-int8", lambda: bm.BinaryCNV(first="int8", first_padding=1, seed=8))
    net, _ = qonnx_import.import_qonnx(path, vectors=32)
    assert net.input.mode == "int" and net.layers[1].padding == 1 and net.layers[3].padding == 0
    q = np.random.default_rng(8).integers(-128, 128, size=(100, 1, 10, 10))
    scale = float(model.input_quant.act_quant.scale())
    assert_matches_qonnx(path, net, q, (q * scale).astype(np.float32), model, first_is_input=False)


def test_pool_before_positive_norm_moves_after_the_sign(exported):
    def build():
        m = bm.BinaryCNV(pool_before_norm=True, seed=6)
        with torch.no_grad():  # every BN scale of the pooled layer positive: the pool commutes with the sign
            m.features[5].weight.abs_().add_(0.1)
        return m

    path, model = exported("poolpos", build)
    net, _ = qonnx_import.import_qonnx(path, input_scale=SCALE)
    raw = np.random.default_rng(6).integers(0, 256, size=(200, 1, 10, 10))
    assert_matches_qonnx(path, net, raw, _float_inputs(raw), model)


REFUSALS = {
    "padded-conv": (lambda: bm.BinaryCNV(padding=1), "zero-padded binary conv"),
    "padded-hidden-conv-after-int8": (lambda: bm.BinaryCNV(first="int8", first_padding=0, padding=1),
                                      "zero-padded binary conv"),
    "pool-before-negative-bn": (lambda: bm.BinaryCNV(pool_before_norm=True), "max-pool before a negative-scale"),
    "int8-weights": (lambda: bm.BinaryMLP(weight_quant=bm.Int8WeightPerTensorFloat), "8-bit Quant"),
    "uint8-activation": (lambda: bm.BinaryMLP(hidden_act=bm.uint8_activation), "8-bit activation"),
    "per-class-bn": (lambda: bm.BinaryMLP(last_norm=True), "per-class affine on the score layer"),
    "per-class-bias": (lambda: bm.BinaryMLP(last_bias=True), "per-class affine on the score layer"),
    "float-weights": (lambda: bm.BinaryMLP(weight_quant=None), "weights are plain floats"),
    "float-activation": (lambda: bm.BinaryMLP(hidden_act=torch.nn.Hardtanh), "a float activation (Clip)"),
    "no-activation": (lambda: bm.BinaryMLP(hidden_act=torch.nn.Identity), "float activations, with no quantiser"),
}


@pytest.mark.parametrize("case", sorted(REFUSALS))
def test_refusals_are_one_line_naming_the_node_and_write_nothing(exported, tmp_path, capsys, case):
    build, text = REFUSALS[case]
    path, _ = exported(case, build)
    out = tmp_path / "art"
    rc = main(["compile", str(path), "-o", str(out), "--input-scale", repr(SCALE)])
    err = capsys.readouterr().err
    assert rc == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("mstbnn: error: ") and text in lines[0], err
    assert "node '" in lines[0]
    assert not out.exists()


def test_bad_options_are_refused(exported, tmp_path, capsys):
    path, _ = exported("mlp", _mlp)
    cases = [
        (["compile", str(path), "-o", str(tmp_path / "a")], "give --input-scale"),
        (["compile", str(path), "-o", str(tmp_path / "a"), "--input-scale", "-0.004", "--input-offset", "1"],
         "bit falls"),
        (["compile", str(path), "-o", str(tmp_path / "a"), "--input-scale", "0.1", "--vectors", "0"], "--vectors"),
        (["compile", str(tmp_path / "x.onnx"), "-o", str(tmp_path / "a")], "no such file"),
    ]
    (tmp_path / "bad.onnx").write_bytes(b"not onnx")
    cases.append((["compile", str(tmp_path / "bad.onnx"), "-o", str(tmp_path / "a"), "--input-scale", "1"],
                  "not a readable ONNX model"))
    for argv, text in cases:
        assert main(argv) == 2
        err = capsys.readouterr().err
        assert len(err.strip().splitlines()) == 1 and text in err, (argv, err)
        assert not (tmp_path / "a").exists()


def test_validation_catches_a_planted_folding_bug(exported, monkeypatch):
    """Shift one channel's threshold by one: the layer-by-layer check against qonnx must refuse the import."""
    path, _ = exported("mlp", _mlp)
    real = qonnx_import.step_threshold

    def off_by_one(bits, y_min, where):
        t, d = real(bits, y_min, where)
        moving = np.flatnonzero((t > y_min + 1) & (t < y_min + bits.shape[0] - 2))
        t = t.copy()
        t[moving] += 2 * d[moving]  # sums move in steps of 2
        return t, d

    monkeypatch.setattr(qonnx_import, "step_threshold", off_by_one)
    with pytest.raises(UserError, match="differ from qonnx's execution"):
        qonnx_import.import_qonnx(path, input_scale=SCALE)


@pytest.mark.slow
def test_imported_network_is_bit_exact_in_verilator(exported, tmp_path, capsys):
    """The imported network through `mstbnn verilog` and `mstbnn sim`: the hardware equals the golden executor."""
    import json

    from mstbnn.artefact import result_path

    path, _ = exported("mlp", _mlp)
    raw = np.random.default_rng(7).integers(0, 256, size=(20, 16))
    np.savez(tmp_path / "test.npz", x=raw)
    out = tmp_path / "art"
    assert main(["compile", str(path), "-o", str(out), "--input-scale", repr(SCALE), "--test-set",
                 str(tmp_path / "test.npz")]) == 0
    assert main(["verilog", str(out)]) == 0
    rc = main(["sim", str(out), "--vectors", "30", "--seed", "1"])
    assert rc == 0, capsys.readouterr().err
    fig = json.loads(result_path(out, "sim").read_text())
    assert fig["vectors"] == fig["bit_exact"] == 50 and fig["mismatches"] == 0 and fig["test_vectors"] == 20
