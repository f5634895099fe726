"""Is a training run reproduced byte for byte across thread counts and CPU kernel families?

For each case (a small ``mstbnn train`` run on digits) this trains once per
configuration, each in a fresh process, and compares the checkpoint with the
reference run (mstbnn's defaults: one torch thread, deterministic algorithms):
its bytes, every float tensor, the binary weights (signs of the latent
weights) and the compiled network (``network.npz`` of ``mstbnn compile``).
Configurations:

- ``OMP_NUM_THREADS=2``: the thread count a user's environment asks for
  (mstbnn pins one thread while training, so this must not matter);
- ``2 torch threads``: training really run at 2 threads (the pin lifted);
- ``ATEN_CPU_CAPABILITY=default / avx2``: PyTorch's CPU kernels compiled for
  another instruction set (what an older x86 machine would run);
- ``MKL_CBWR=AVX2 / COMPATIBLE``: MKL's matrix-multiply code path of another
  CPU, or its portable one; and AVX2 kernels + MKL AVX2 together: the closest
  this machine gets to an AVX2-only machine; and the portable pair
  (``ATEN_CPU_CAPABILITY=default`` + ``MKL_CBWR=COMPATIBLE``) with its cost.

Then the reference checkpoint of each case is compiled under every
configuration (``mstbnn compile`` in a fresh process) and the artefacts compared.

Other architectures (ARM, a different torch or MKL build, GPUs) cannot be
emulated here and are not measured.

Run::

    nice python benchmarks/bench_repro.py            # about 2 minutes
"""

from __future__ import annotations

import argparse
import functools
import hashlib
import os
import shlex
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _record import Column, Recorder, Table, add_record_argument, render_table

CASES = {
    "mlp": "--model mlp --hidden 32,32 --epochs 3",
    "cnn": "--model cnn --channels 8,16 --hidden 32 --epochs 2",
}
# (label, environment, torch threads while training)
CONFIGS = [
    ("reference: 1 thread, deterministic (defaults)", {}, 1),
    ("OMP_NUM_THREADS=2 in the environment", {"OMP_NUM_THREADS": "2", "MKL_NUM_THREADS": "2"}, 1),
    ("2 torch threads while training", {}, 2),
    ("ATEN_CPU_CAPABILITY=default (no SIMD kernels)", {"ATEN_CPU_CAPABILITY": "default"}, 1),
    ("ATEN_CPU_CAPABILITY=avx2", {"ATEN_CPU_CAPABILITY": "avx2"}, 1),
    ("MKL_CBWR=AVX2", {"MKL_CBWR": "AVX2"}, 1),
    ("MKL_CBWR=COMPATIBLE", {"MKL_CBWR": "COMPATIBLE"}, 1),
    ("ATEN avx2 + MKL_CBWR=AVX2 (an AVX2 machine)", {"ATEN_CPU_CAPABILITY": "avx2", "MKL_CBWR": "AVX2"}, 1),
    ("ATEN default + MKL_CBWR=COMPATIBLE (portable kernels)",
     {"ATEN_CPU_CAPABILITY": "default", "MKL_CBWR": "COMPATIBLE"}, 1),
]
COLUMNS = [Column("case", "case"), Column("config", "configuration"), Column("sha", "checkpoint sha256"),
           Column("same_bytes", "checkpoint = reference"), Column("tensors", "float tensors differing", "right",
                                                                   "{0} of {1}"),
           Column("max_diff", "largest difference", "right", "{:.1e}"),
           Column("bits", "binary weights differing", "right", "{0:,} of {1:,}"),
           Column("same_net", "compiled network = reference"), Column("acc", "test acc %", "right", "{:.2f}"),
           Column("seconds", "run s", "right", "{:.1f}")]


def worker(threads: int, train_args: list[str]) -> int:
    """One training run, as `mstbnn train` does it, at ``threads`` torch threads."""
    import mstbnn.nn.train as train_mod
    from mstbnn.cli import main

    if threads != 1:  # lift mstbnn's one-thread pin: what the pin protects against
        train_mod.deterministic = functools.partial(train_mod.deterministic, threads)
    return main(["train", *train_args])


def train(case_args: str, env: dict, threads: int, out: Path) -> Path:
    root = Path(__file__).resolve().parents[1]
    full = dict(os.environ, **env)
    full["PYTHONPATH"] = str(root) + os.pathsep + full.get("PYTHONPATH", "")
    cmd = [sys.executable, __file__, "--worker", str(threads), "--",
           *shlex.split(case_args), "--quiet", "-o", str(out)]
    subprocess.run(cmd, check=True, env=full)
    return out


def compile_under(checkpoint: Path, env: dict, out: Path) -> str:
    """`mstbnn compile` of one checkpoint in a fresh process under ``env``: sha256 of network.npz + network.json."""
    root = Path(__file__).resolve().parents[1]
    full = dict(os.environ, **env)
    full["PYTHONPATH"] = str(root) + os.pathsep + full.get("PYTHONPATH", "")
    subprocess.run([sys.executable, "-m", "mstbnn", "compile", str(checkpoint), "-o", str(out)], check=True,
                   env=full, stdout=subprocess.DEVNULL)
    digest = hashlib.sha256((out / "network.npz").read_bytes() + (out / "network.json").read_bytes())
    return digest.hexdigest()[:12]


def compare(path: Path, ref: Path | None, work: Path) -> dict:
    import torch

    from mstbnn.compiler import io
    from mstbnn.nn.export import load_checkpoint

    payload = torch.load(path, map_location="cpu", weights_only=True)
    net_dir = work / (path.stem + "-net")
    io.save(load_checkpoint(path), net_dir)
    row = {"sha": hashlib.sha256(path.read_bytes()).hexdigest()[:12], "acc": payload["history"][-1]["test_acc"],
           "_net": (net_dir / "network.npz").read_bytes(), "_state": payload["state_dict"]}
    if ref is None:
        return row
    ref_payload = torch.load(ref, map_location="cpu", weights_only=True)
    a, b = payload["state_dict"], ref_payload["state_dict"]
    floats = [k for k in a if a[k].is_floating_point()]
    differing = [k for k in floats if not torch.equal(a[k], b[k])]
    weights = [k for k in floats if k.endswith("layer.weight")]
    flipped = sum(int(((a[k] >= 0) != (b[k] >= 0)).sum()) for k in weights)
    row.update(same_bytes="yes" if path.read_bytes() == ref.read_bytes() else "no",
               tensors=[len(differing), len(floats)],
               max_diff=max((float((a[k] - b[k]).abs().max()) for k in differing), default=0.0),
               bits=[flipped, sum(a[k].numel() for k in weights)])
    return row


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--cases", default=",".join(CASES), help=f"comma-separated among {', '.join(CASES)} "
                                                            "(default %(default)s)")
    p.add_argument("--worker", type=int, default=None, help=argparse.SUPPRESS)
    p.add_argument("train_args", nargs="*", help=argparse.SUPPRESS)
    add_record_argument(p, "repro")
    args = p.parse_args(argv)
    if args.worker is not None:
        return worker(args.worker, args.train_args)
    record = Recorder(args.record, __file__, argv)
    table = Table(COLUMNS)
    compiled = Table([Column("case", "case"), Column("config", "configuration"),
                      Column("sha", "compiled artefact sha256"), Column("same", "= reference")])
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        for case in [c for c in args.cases.split(",") if c]:
            ref_path, ref = None, None
            for i, (label, env, threads) in enumerate(CONFIGS):
                start = time.monotonic()
                path = train(CASES[case], env, threads, tmp / f"{case}-{i}.pt")
                row = compare(path, ref_path, tmp)
                row["seconds"] = time.monotonic() - start  # process start, training and the compile check
                if ref_path is None:
                    ref_path, ref = path, row
                    row.update(same_bytes="(reference)", tensors=None, max_diff=None, bits=None)
                row["same_net"] = "(reference)" if row is ref else ("yes" if row["_net"] == ref["_net"] else "no")
                table.add(case=f"{case} `{CASES[case]}`", config=label,
                          **{k: v for k, v in row.items() if not k.startswith("_")})
                print(render_table(table).split("\n")[-1], flush=True)
            # The other half: one checkpoint (the reference) compiled under every configuration.
            ref_sha = None
            for i, (label, env, _) in enumerate(CONFIGS):
                sha = compile_under(ref_path, env, tmp / f"{case}-compile-{i}")
                ref_sha = ref_sha or sha
                compiled.add(case=f"{case} `{CASES[case]}`", config=label, sha=sha,
                             same="(reference)" if i == 0 else ("yes" if sha == ref_sha else "no"))
    record.add("configs", table)
    record.add("compile", compiled)
    print("\n" + render_table(table) + "\n\n" + render_table(compiled))
    record.write()
    return 0


if __name__ == "__main__":
    sys.exit(main())
