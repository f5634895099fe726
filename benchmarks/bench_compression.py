"""Accuracy vs total XNOR reduction on digits: the MST regulariser against plain training.

Trains, per seed:

- ``mlp`` (64-H-H-10) at every lambda in ``--lambdas`` (0 = plain training), trees unconstrained;
  each model is also compiled afterwards with the depth caps of ``--depths`` ("cap after");
- ``mlp`` trained *against* depth-capped trees (``--max-depth``) for each cap in ``--depths``
  at every lambda in ``--depth-lambdas``;
- ``mlp`` plain (lambda 0) at the narrower widths of ``--widths``: the honest rival,
  a smaller network a user would try first;
- ``cnn`` at every lambda in ``--cnn-lambdas``.

Prints one markdown table (mean over seeds): test accuracy (mean +- sd), the drop
against lambda 0 of the same architecture, total XNORs per inference after
reuse, the reduction plain -> reuse of that network, the reduction against the
reference plain network (the lambda-0 mlp at ``--hidden``, no reuse), storage
ratio with index overhead, and the tallest tree.

Usage::

    nice python benchmarks/bench_compression.py --jobs 2
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from concurrent.futures import ProcessPoolExecutor

from _record import Column, Recorder, Table, add_record_argument, render_table


def _ints(text: str) -> list[int]:
    return [int(t) for t in text.split(",") if t.strip()]


def _floats(text: str) -> list[float]:
    return [float(t) for t in text.split(",") if t.strip()]


def run_point(job: dict) -> dict:
    """Train one model; return accuracy and compiled costs (trained depth cap, plus caps applied after)."""
    import torch

    from mstbnn.compiler import network_cost, schedule_network
    from mstbnn.nn.data import load_digits
    from mstbnn.nn.export import to_network
    from mstbnn.nn.models import build_model
    from mstbnn.nn.train import TrainConfig, train

    data = load_digits()
    if job["model"] != "mlp":
        data = data.as_images()
    torch.manual_seed(job["seed"])
    model = build_model(job["model"], data.sample_shape, data.n_classes, hidden=job.get("hidden"),
                        channels=job.get("channels"), input_threshold=4)
    cfg = TrainConfig(epochs=job["epochs"], seed=job["seed"], mst_lambda=job["lambda"], max_depth=job["depth"],
                      distance=job["distance"], finetune_epochs=job["finetune"],
                      weighting=job.get("weighting", "layer"))
    t0 = time.time()
    hist = train(model, data, cfg)
    net = to_network(model)
    out = dict(job, acc=hist[-1]["test_acc"], seconds=time.time() - t0, after={})
    for cap in [job["depth"]] + ([d for d in job["after_caps"]] if job["depth"] is None else []):
        cost = network_cost(schedule_network(net, max_depth=cap))
        entry = {k: cost[k] for k in ("xnor_plain", "xnor_reuse", "xnor_ratio", "storage_ratio", "max_height")}
        if cap == job["depth"]:
            out.update(entry)
        else:
            out["after"][cap] = entry
    return out


def _mean_sd(values):
    m = statistics.fmean(values)
    sd = statistics.stdev(values) if len(values) > 1 else 0.0
    return m, sd


def make_table(results: list[dict], ref_hidden: list[int]) -> Table:
    groups: dict = {}
    for r in results:
        arch = ",".join(map(str, r.get("hidden") or [])) if r["model"] == "mlp" else \
            ",".join(map(str, r["channels"])) + "/" + ",".join(map(str, r["hidden"]))
        reg = "-" if r["lambda"] == 0 else f"{r['distance']}/{r.get('weighting', 'layer')}"
        arch = f"{arch} ({r['epochs']} ep)"
        groups.setdefault((r["model"], arch, reg, r["lambda"], r["depth"]), []).append(r)
    ref = next((rs for (m, a, reg, lam, d), rs in groups.items()
                if m == "mlp" and a.startswith(",".join(map(str, ref_hidden)) + " (") and lam == 0.0 and d is None),
               None)
    ref_plain = ref[0]["xnor_plain"] if ref else None
    base_acc = {}
    for (model, arch, _, lam, depth), rs in groups.items():
        if lam == 0.0 and depth is None:
            base_acc[(model, arch)] = statistics.fmean(r["acc"] for r in rs)
    table = Table([Column("model", "model"), Column("arch", "hidden / conv (epochs)"),
                   Column("reg", "distance / weighting"), Column("lam", "lambda", "right", "{:g}"),
                   Column("cap", "depth cap"), Column("seeds", "seeds", "right"),
                   Column("acc", "test acc %", "right", "{0:.2f} +- {1:.2f}"),
                   Column("drop", "drop vs lambda 0", "right", "{:+.2f}", none="n/a"),
                   Column("reuse", "XNORs (reuse)", "right", "{:,.0f}"),
                   Column("ratio", "reduction plain->reuse", "right", "{:.1f}x"),
                   Column("vs_ref", "vs ref plain", "right", "{:.1f}x", none="n/a"),
                   Column("storage", "storage ratio", "right", "{:.1f}x"), Column("height", "max height", "right")])

    def row(model, arch, reg, lam, cap_label, rs, key=None):
        get = (lambda r: r) if key is None else (lambda r: r["after"][key])
        acc_m, acc_sd = _mean_sd([r["acc"] for r in rs])
        reuse = statistics.fmean(get(r)["xnor_reuse"] for r in rs)
        base = base_acc.get((model, arch))
        table.add(model=model, arch=arch, reg=reg, lam=lam, cap=cap_label, seeds=len(rs), acc=[acc_m, acc_sd],
                  drop=None if base is None else base - acc_m, reuse=reuse,
                  ratio=statistics.fmean(get(r)["xnor_ratio"] for r in rs),
                  vs_ref=ref_plain / reuse if ref_plain and model == "mlp" else None,
                  storage=statistics.fmean(get(r)["storage_ratio"] for r in rs),
                  height=max(get(r)["max_height"] for r in rs))

    def order(k):
        model, arch, reg, lam, depth = k
        width = sum(int(w) for w in arch.split(" (")[0].replace("/", ",").split(",") if w)
        return (model != "mlp", -width, depth is not None, depth or 0, reg, lam)

    for key in sorted(groups, key=order):
        model, arch, reg, lam, depth = key
        rs = groups[key]
        row(model, arch, reg, lam, "none" if depth is None else f"{depth} (trained)", rs)
        for cap in sorted(rs[0]["after"]):
            row(model, arch, reg, lam, f"{cap} (after)", rs, key=cap)
    return table


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--seeds", type=_ints, default=[0, 1, 2])
    p.add_argument("--epochs", type=int, default=60)
    p.add_argument("--finetune", type=int, default=0, help="BN-only fine-tune epochs after training")
    p.add_argument("--distance", default="l1")
    p.add_argument("--weighting", default="xnor", choices=("xnor", "layer"))
    p.add_argument("--hidden", type=_ints, default=[256, 256], help="reference mlp hidden widths")
    p.add_argument("--lambdas", type=_floats, default=[0.0, 1.0, 3.0, 5.0])
    p.add_argument("--depths", type=_ints, default=[4, 8])
    p.add_argument("--depth-lambdas", type=_floats, default=[3.0])
    p.add_argument("--widths", type=_ints, default=[32, 64, 96, 128], help="plain mlp widths (both hidden layers)")
    p.add_argument("--cnn-lambdas", type=_floats, default=[0.0, 3.0])
    p.add_argument("--cnn-channels", type=_ints, default=[32, 64])
    p.add_argument("--cnn-hidden", type=_ints, default=[128])
    p.add_argument("--cnn-epochs", type=int, default=30)
    p.add_argument("--jobs", type=int, default=2)
    p.add_argument("--json", default=None, help="also write the raw per-run results here")
    p.add_argument("--from-json", nargs="+", default=None,
                   help="only print the table of earlier --json results (several files are merged)")
    p.add_argument("--table", default="main", help="table key in the record (default %(default)s)")
    add_record_argument(p, "compression")
    args = p.parse_args(argv)
    record = Recorder(args.record, __file__, argv)
    if args.from_json:
        results = []
        for path in args.from_json:
            with open(path) as f:
                for r in json.load(f):
                    r["after"] = {int(k): v for k, v in r["after"].items()}
                    r["depth"] = None if r["depth"] in (None, "None") else int(r["depth"])
                    results.append(r)
        print(render_table(record.add(args.table, make_table(results, args.hidden))))
        record.write()
        return 0

    common = dict(distance=args.distance, weighting=args.weighting, finetune=args.finetune, after_caps=args.depths)
    jobs = []
    for seed in args.seeds:
        for lam in args.lambdas:
            jobs.append(dict(common, model="mlp", hidden=args.hidden, **{"lambda": lam}, depth=None, seed=seed,
                             epochs=args.epochs))
        for depth in args.depths:
            for lam in args.depth_lambdas:
                jobs.append(dict(common, model="mlp", hidden=args.hidden, **{"lambda": lam}, depth=depth, seed=seed,
                                 epochs=args.epochs))
        for w in args.widths:
            jobs.append(dict(common, model="mlp", hidden=[w] * len(args.hidden), **{"lambda": 0.0}, depth=None,
                             seed=seed, epochs=args.epochs))
        for lam in args.cnn_lambdas:
            jobs.append(dict(common, model="cnn", channels=args.cnn_channels, hidden=args.cnn_hidden,
                             **{"lambda": lam}, depth=None, seed=seed, epochs=args.cnn_epochs))
    # Longest first keeps both workers busy to the end.
    jobs.sort(key=lambda j: (j["model"] != "cnn", -j["epochs"]))
    results = []
    t0 = time.time()
    with ProcessPoolExecutor(max_workers=args.jobs) as pool:
        for i, r in enumerate(pool.map(run_point, jobs), 1):
            results.append(r)
            print(f"[{i}/{len(jobs)} {time.time() - t0:.0f}s] {r['model']} {r.get('hidden')} lambda {r['lambda']:g} "
                  f"depth {r['depth']} seed {r['seed']}: acc {r['acc']:.2f}% reduction {r['xnor_ratio']:.1f}x "
                  f"height {r['max_height']}", file=sys.stderr, flush=True)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=1, default=str)
    print(render_table(record.add(args.table, make_table(results, args.hidden))))
    record.write()
    return 0


if __name__ == "__main__":
    sys.exit(main())
