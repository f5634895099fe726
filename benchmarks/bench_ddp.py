"""Data-parallel training on CPU (gloo): K ranks against one process, same seed and global batch.

For every seed and every K in ``--ks`` this launches
``python -m torch.distributed.run --standalone --nproc-per-node K`` on itself
(worker mode), which trains with the ``mstbnn train`` arguments after ``--``
and times the training loop (per epoch: the steps, the sharded test-set
evaluation and rank 0's compile-step cost). Prints one markdown table: seconds
per epoch, final test accuracy and XNORs per inference after reuse, and their
difference against K = 1 on the same seed.

``--float-order`` instead trains one process twice, with ``F.batch_norm`` and
with the summed BatchNorm statistics of the data-parallel path (a 1-rank gloo
group), and prints both histories: how far the float order alone moves a run.

Usage::

    nice python benchmarks/bench_ddp.py --ks 1,2 --seeds 0,1,2 -- --epochs 60
    nice python benchmarks/bench_ddp.py --ks 1,2 --seeds 0 -- --model vgg_small --width 0.125 \\
        --dataset cifar_like.npz --input int --epochs 2
    nice python benchmarks/bench_ddp.py --float-order -- --hidden 128,128 --epochs 6
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _record import Column, Recorder, Table, add_record_argument, render_table


def worker(out: str, train_args: list[str]) -> None:
    """One rank (under torchrun): train as ``mstbnn train`` would, rank 0 writes the figures to ``out``."""
    from mstbnn.cli import build_parser
    from mstbnn.nn.cli import setup, train_config
    from mstbnn.nn.distributed import check_batch_size, init_process_group, launch_from_env, resolve_device
    from mstbnn.nn.train import train

    args = build_parser().parse_args(["train", *train_args, "-o", os.devnull])
    launch = launch_from_env()
    device = resolve_device(args.device, launch)
    check_batch_size(args.batch_size, launch)
    dist = init_process_group(launch, device) if launch.distributed else None
    data, model = setup(args)
    t0 = time.perf_counter()
    history = train(model, data, train_config(args), dist=dist, device=device)
    seconds = time.perf_counter() - t0
    if launch.leader:
        last = history[-1]
        Path(out).write_text(json.dumps({
            "world_size": launch.world_size, "seed": args.seed, "epochs": len(history), "seconds": seconds,
            "test_acc": last["test_acc"], "xnor_reuse": last["xnor_reuse"], "xnor_ratio": last["xnor_ratio"],
            "n_train": len(data.y_train)}))
    if dist is not None:
        dist.close()


def float_order(train_args: list[str]) -> Table:
    """One process, plain BatchNorm against the summed statistics of a 1-rank group: per-epoch loss and XNORs."""
    import socket

    import torch

    from mstbnn.cli import build_parser
    from mstbnn.nn.cli import setup, train_config
    from mstbnn.nn.distributed import Launch, init_process_group
    from mstbnn.nn.train import train

    args = build_parser().parse_args(["train", *train_args, "-o", os.devnull])
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    data, model = setup(args)
    plain = train(model, data, train_config(args))
    dist = init_process_group(Launch(0, 1, 0), torch.device("cpu"))
    data, model = setup(args)
    summed = train(model, data, train_config(args), dist=dist)
    dist.close()
    print(f"mstbnn train {' '.join(train_args)}: F.batch_norm vs summed statistics (1-rank gloo group)\n")
    table = Table([Column("epoch", "epoch", "right"), Column("loss", "loss", "right", "{:.4f}"),
                   Column("loss_summed", "loss (summed)", "right", "{:.4f}"),
                   Column("acc", "test acc %", "right", "{:.2f}"), Column("acc_summed", "test acc % (summed)", "right", "{:.2f}"),
                   Column("xnors", "XNORs", "right", "{:,}"), Column("xnors_summed", "XNORs (summed)", "right", "{:,}")])
    for a, b in zip(plain, summed):
        table.add(epoch=a["epoch"], loss=a["loss"], loss_summed=b["loss"], acc=a["test_acc"], acc_summed=b["test_acc"],
                  xnors=a["xnor_reuse"], xnors_summed=b["xnor_reuse"])
    print(render_table(table))
    return table


def run(k: int, seed: int, train_args: list[str], tmp: Path) -> dict:
    out = tmp / f"k{k}-s{seed}.json"
    env = dict(os.environ, OMP_NUM_THREADS="1")
    env["PYTHONPATH"] = str(Path(__file__).resolve().parents[1]) + os.pathsep + env.get("PYTHONPATH", "")
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc-per-node={k}", __file__,
           "--worker", str(out), "--", *train_args, "--seed", str(seed), "--quiet"]
    subprocess.run(cmd, check=True, env=env)
    return json.loads(out.read_text())


def _model(train_args: list[str]) -> str:
    """The --model among the train arguments (mstbnn train's default: mlp), for the record's name."""
    for i, arg in enumerate(train_args):
        if arg == "--model" and i + 1 < len(train_args):
            return train_args[i + 1]
        if arg.startswith("--model="):
            return arg.split("=", 1)[1]
    return "mlp"


def tables(rows: list[dict], ks: list[int], train_args: list[str]) -> tuple[Table, Table]:
    """Per run (K, seed) against K = ks[0] on the same seed; and one summary row, s / epoch per K."""
    base = {r["seed"]: r for r in rows if r["world_size"] == ks[0]}
    runs = Table([Column("k", "K", "right"), Column("seed", "seed", "right"),
                  Column("s_epoch", "s / epoch", "right", "{:.2f}"), Column("acc", "test acc %", "right", "{:.2f}"),
                  Column("xnors", "XNORs (reuse)", "right", "{:,}"),
                  Column("d_acc", f"acc - K={ks[0]} (points)", "right", "{:+.2f}"),
                  Column("d_xnors", f"XNORs - K={ks[0]}", "right", "{:+,}")])
    for r in rows:
        b = base[r["seed"]]
        runs.add(k=r["world_size"], seed=r["seed"], s_epoch=r["seconds"] / r["epochs"], acc=r["test_acc"],
                 xnors=r["xnor_reuse"], d_acc=r["test_acc"] - b["test_acc"], d_xnors=r["xnor_reuse"] - b["xnor_reuse"])
    per_k = {k: statistics.mean(r["seconds"] / r["epochs"] for r in rows if r["world_size"] == k) for k in ks}
    n_seeds = len(base)
    cols = [Column("run", "run")]
    row = {"run": f"`mstbnn train {' '.join(train_args)}`, s / epoch"
                  + (f", mean of {n_seeds} seeds" if n_seeds > 1 else "")}
    for k in ks:
        header = "1 process" if k == 1 else f"{k} gloo ranks"
        if k == ks[0]:
            cols.append(Column(f"k{k}", header, "right", "{:.2f}"))
            row[f"k{k}"] = per_k[k]
        else:
            cols.append(Column(f"k{k}", header, "right", "{0:.2f} ({1:.2f}x)"))
            row[f"k{k}"] = [per_k[k], per_k[ks[0]] / per_k[k]]
    return runs, Table(cols, rows=[row])


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--ks", default="1,2", help="world sizes, comma-separated (default 1,2)")
    p.add_argument("--seeds", default="0", help="seeds, comma-separated (default 0)")
    p.add_argument("--json", default=None, help="also write the rows here")
    p.add_argument("--float-order", action="store_true",
                   help="one process: F.batch_norm against the summed statistics, per epoch")
    p.add_argument("--worker", default=None, help=argparse.SUPPRESS)
    p.add_argument("train_args", nargs="*", help="mstbnn train arguments (after --)")
    add_record_argument(p, None)
    args = p.parse_args(argv)
    if args.worker:
        worker(args.worker, args.train_args)
        return 0
    # ddp_MODEL (tables runs, summary; float_order), so the conv and the mlp runs keep separate records.
    record = Recorder(f"ddp_{_model(args.train_args)}" if args.record is None else args.record, __file__, argv)
    if args.float_order:
        record.add("float_order", float_order(args.train_args))
        record.write()
        return 0
    ks = [int(k) for k in args.ks.split(",")]
    seeds = [int(s) for s in args.seeds.split(",")]
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for seed in seeds:
            for k in ks:
                r = run(k, seed, args.train_args, Path(tmp))
                print(f"K={k} seed={seed}: {r['seconds'] / r['epochs']:.2f} s/epoch, test {r['test_acc']:.2f}%, "
                      f"{r['xnor_reuse']} XNORs", file=sys.stderr)
                rows.append(r)
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=1))
    base = {r["seed"]: r for r in rows if r["world_size"] == ks[0]}
    print(f"mstbnn train {' '.join(args.train_args)}  (load average {os.getloadavg()[0]:.1f})\n")
    runs, summary = tables(rows, ks, args.train_args)
    print(render_table(runs) + "\n\n" + render_table(summary))
    record.add("runs", runs)
    record.add("summary", summary)
    record.write()
    for k in ks[1:]:
        da = [abs(r["test_acc"] - base[r["seed"]]["test_acc"]) for r in rows if r["world_size"] == k]
        dx = [abs(r["xnor_reuse"] - base[r["seed"]]["xnor_reuse"]) / base[r["seed"]]["xnor_reuse"] * 100
              for r in rows if r["world_size"] == k]
        print(f"\nK={k} vs K={ks[0]}: mean |accuracy difference| {statistics.mean(da):.2f} points, "
              f"mean |XNOR difference| {statistics.mean(dx):.1f} % over {len(da)} seeds")
    return 0


if __name__ == "__main__":
    sys.exit(main())
