"""``mstbnn sweep``: the accuracy-vs-LUTs frontier of plain and MST engines over a training grid.

For one dataset and one device family, train plain networks (lambda 0) over
a width sweep and MST networks over width x lambda x height cap x seed;
compile each; synthesise BOTH engines of every network with yosys (reuse
and baseline, ``synth --synth-only``); and compare the two Pareto frontiers
of accuracy against LUT4-eq:

- plain frontier: baseline (no reuse) engines of every network;
- MST frontier: reuse engines of every network (a plain network's reuse
  engine is an MST point too).

At each accuracy the plain frontier reaches, the ratio is (LUT4-eq of the
cheapest plain engine at >= that accuracy) / (LUT4-eq of the cheapest MST
engine at >= that accuracy).

Like :mod:`mstbnn.flow`, this module sits above the stages and calls them in
process. Each network is one *point*: :func:`measure_point` is a pure
top-level function of a small JSON-able spec returning a JSON-able record.
:mod:`mstbnn.executors` runs it, in this process or a local process pool
(``--jobs``) or as one task per point on a Dask distributed cluster
(``--scheduler``); the executor is the only difference between the three. A
point keeps its files in ``DIR/points/<id>/`` and is not redone when its
record holds measurements for the network's current digest
(:func:`mstbnn.artefact.network_digest`) and the generator version
(``mstbnn.__version__``). A point that still fails after ``--retries`` is
listed under ``failed`` in sweep.json (and the command exits 1); it is never
left out silently.

Outputs: ``DIR/sweep.json`` (every point, both frontiers, the ratios),
``DIR/frontier.md`` and ``DIR/frontier.png``.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
import traceback
from pathlib import Path

from mstbnn import __version__
from mstbnn.errors import UserError

__all__ = [
    "SWEEP_JSON", "FRONTIER_MD", "FRONTIER_PNG", "FAMILY_DEVICES",
    "Grid", "parse_grid", "point_specs", "measure_point", "place_point", "place_network", "point_is_measured",
    "pareto_frontier", "frontier_ratios", "analyse", "format_frontier", "plot_frontier", "run_sweep",
    "add_commands",
]

SWEEP_JSON = "sweep.json"
FRONTIER_MD = "frontier.md"
FRONTIER_PNG = "frontier.png"
POINTS_DIR = "points"
POINT_RECORD = "point.json"
POINT_LOG = "log.txt"
MODEL_FILE = "model.pt"
NET_DIR = "net"
SWEEP_FORMAT = "mstbnn-sweep"
SWEEP_FORMAT_VERSION = 1

# Synthesis (yosys only) runs on the family's largest part, forced past the fit
# check: LUT and FF counts do not depend on the part, and every point is counted
# even when it would not fit. Placement (--place) picks the smallest part that fits.
FAMILY_DEVICES = {
    "ecp5": ("ecp5-12k", "ecp5-25k", "ecp5-45k", "ecp5-85k"),
    "ice40": ("ice40-up5k", "ice40-hx8k"),
}
ENGINES = ("reuse", "baseline")

DEFAULTS = {
    "widths": "16,32,64,128",
    "lambdas": "0,2,8",
    "max_depths": "6",
    "seeds": "0",
    "epochs": 40,
    "layers": 1,
}


# --------------------------------------------------------------------------- grid


class Grid:
    """The training grid, validated: every value is checked before any work starts."""

    def __init__(self, *, dataset: str, data_dir, family: str, widths, layers: int, lambdas, max_depths, seeds,
                 epochs: int, cost: str = "xnor", mst_warmup: int = 5, mst_ramp: int = 10):
        self.dataset = dataset
        self.data_dir = data_dir
        self.family = family
        self.widths = list(widths)
        self.layers = int(layers)
        self.lambdas = list(lambdas)
        self.max_depths = list(max_depths)
        self.seeds = list(seeds)
        self.epochs = int(epochs)
        self.cost = cost
        self.mst_warmup = int(mst_warmup)
        self.mst_ramp = int(mst_ramp)

    def as_dict(self) -> dict:
        return {"dataset": self.dataset, "data_dir": self.data_dir, "family": self.family, "widths": self.widths,
                "layers": self.layers, "lambdas": self.lambdas, "max_depths": self.max_depths, "seeds": self.seeds,
                "epochs": self.epochs, "cost": self.cost, "mst_warmup": self.mst_warmup, "mst_ramp": self.mst_ramp}


def _int_list(flag: str, text: str, lo: int, *, allow_none: bool = False) -> list:
    out = []
    for item in str(text).split(","):
        item = item.strip()
        if not item:
            continue
        if allow_none and item.lower() == "none":
            out.append(None)
            continue
        try:
            value = int(item)
        except ValueError:
            extra = " or none" if allow_none else ""
            raise UserError(f"{flag}: {item!r} is not an integer; give comma-separated integers >= {lo}{extra}, "
                            f"e.g. {flag} {DEFAULTS[flag[2:].replace('-', '_')]}") from None
        if value < lo:
            raise UserError(f"{flag}: {value} is below {lo}; give comma-separated integers >= {lo}")
        out.append(value)
    if not out:
        raise UserError(f"{flag}: empty list; give at least one value, e.g. {flag} {DEFAULTS[flag[2:].replace('-', '_')]}")
    if len(set(out)) != len(out):
        raise UserError(f"{flag}: {text!r} repeats a value; give each value once")
    return out


def _one_int(flag: str, value, lo: int) -> int:
    try:
        v = int(str(value).strip())
    except ValueError:
        raise UserError(f"{flag}: {value!r} is not an integer; give an integer >= {lo}") from None
    if v < lo:
        raise UserError(f"{flag}: {v} is below {lo}; give an integer >= {lo}")
    return v


def _float_list(flag: str, text: str) -> list[float]:
    out = []
    for item in str(text).split(","):
        item = item.strip()
        if not item:
            continue
        try:
            value = float(item)
        except ValueError:
            raise UserError(f"{flag}: {item!r} is not a number; give comma-separated lambdas >= 0, e.g. {flag} 0,2,8") from None
        if not value >= 0 or value == float("inf"):
            raise UserError(f"{flag}: {item} is not a finite lambda >= 0; give comma-separated lambdas >= 0")
        out.append(value)
    if not out:
        raise UserError(f"{flag}: empty list; give at least one lambda, e.g. {flag} 0,2,8")
    if len(set(out)) != len(out):
        raise UserError(f"{flag}: {text!r} repeats a value; give each value once")
    return out


def parse_grid(*, dataset="digits", data_dir=None, family="ecp5", widths=DEFAULTS["widths"],
               layers=DEFAULTS["layers"], lambdas=DEFAULTS["lambdas"], max_depths=DEFAULTS["max_depths"],
               seeds=DEFAULTS["seeds"], epochs=DEFAULTS["epochs"], cost="xnor", mst_warmup=5, mst_ramp=10) -> Grid:
    """Validate the grid flags (comma-separated strings) into a :class:`Grid`; UserError on the first bad one."""
    if family not in FAMILY_DEVICES:
        raise UserError(f"--family: unknown device family {family!r}; use one of {', '.join(FAMILY_DEVICES)}")
    if cost not in ("xnor", "luts"):
        raise UserError(f"--cost: unknown tree cost {cost!r}; use xnor or luts")
    w = _int_list("--widths", widths, 1)
    lam = _float_list("--lambdas", lambdas)
    h = _int_list("--max-depths", max_depths, 1, allow_none=True)
    s = _int_list("--seeds", seeds, 0)
    epochs = _one_int("--epochs", epochs, 1)
    layers = _one_int("--layers", layers, 1)
    warmup = _one_int("--mst-warmup", mst_warmup, 0)
    ramp = _one_int("--mst-ramp", mst_ramp, 0)
    return Grid(dataset=dataset, data_dir=data_dir, family=family, widths=w, layers=layers, lambdas=lam,
                max_depths=h, seeds=s, epochs=epochs, cost=cost, mst_warmup=warmup, mst_ramp=ramp)


def _depth_key(h):
    return float("inf") if h is None else h


def _point_id(net: dict) -> str:
    h = "none" if net["max_depth"] is None else net["max_depth"]
    return f"w{net['width']}x{net['layers']}-lam{net['lambda']:g}-h{h}-s{net['seed']}"


def point_specs(grid: Grid, out_dir) -> list[dict]:
    """One spec per network, in a fixed order (width, lambda, height cap, seed).

    A lambda-0 network does not depend on the height cap in training: it is
    one point per (width, seed), compiled with the grid's loosest cap (none
    if ``none`` is in --max-depths).
    """
    out_dir = Path(out_dir)
    inputs = _absolute_inputs(grid)
    lambdas = sorted(set([0.0] + [float(x) for x in grid.lambdas]))
    loosest = max(grid.max_depths, key=_depth_key)
    specs = []
    for width in sorted(grid.widths):
        for lam in lambdas:
            depths = [loosest] if lam == 0 else sorted(grid.max_depths, key=_depth_key)
            for h in depths:
                for seed in sorted(grid.seeds):
                    net = {"dataset": grid.dataset, "data_dir": grid.data_dir, "model": "mlp", "width": width,
                           "layers": grid.layers, "lambda": lam, "max_depth": h, "seed": seed,
                           "epochs": grid.epochs, "cost": grid.cost, "mst_warmup": grid.mst_warmup,
                           "mst_ramp": grid.mst_ramp}
                    pid = _point_id(net)
                    specs.append({"id": pid, "dir": str(out_dir / POINTS_DIR / pid), "network": net,
                                  "inputs": inputs, "device": FAMILY_DEVICES[grid.family][-1]})
    return specs


def _absolute_inputs(grid: Grid) -> dict:
    """The dataset file and --data-dir as absolute paths, for workers whose working directory is not ours.

    The network's settings (its identity in point.json and sweep.json) keep
    the paths as given; only the ``mstbnn train`` a worker runs reads these.
    """
    from mstbnn.nn.data import dataset_file

    f = dataset_file(grid.dataset)
    return {"dataset": grid.dataset if f is None else str(f.absolute()),
            "data_dir": None if grid.data_dir is None else str(Path(grid.data_dir).absolute())}


# --------------------------------------------------------------------------- one point


def _read_record(point_dir: Path) -> dict | None:
    path = point_dir / POINT_RECORD
    if not path.is_file():
        return None
    try:
        return json.loads(path.read_text())
    except (OSError, json.JSONDecodeError):
        return None  # a damaged record is remeasured, never trusted


def _write_record(point_dir: Path, record: dict) -> None:
    from mstbnn.artefact import atomic_write

    atomic_write(point_dir / POINT_RECORD, json.dumps(record, indent=1, sort_keys=True) + "\n")


def _current_network(record: dict | None, spec: dict) -> bool:
    """The record describes this spec's network as it is on disk now, built by this generator."""
    from mstbnn.artefact import HEADER, network_digest

    if not record or record.get("network") != spec["network"] or record.get("generator") != __version__:
        return False
    net_dir = Path(spec["dir"]) / NET_DIR
    if not (net_dir / HEADER).is_file() or not record.get("digest"):
        return False
    try:
        return network_digest(net_dir) == record["digest"]
    except UserError:
        return False


def _measured(record: dict, key: str) -> bool:
    m = (record.get("engines") or {}).get(key)
    return bool(m) and m.get("digest") == record.get("digest") and m.get("generator") == __version__


def point_is_measured(spec: dict) -> bool:
    """True when the point's record has both engines counted for its current network and generator version."""
    record = _read_record(Path(spec["dir"]))
    if not _current_network(record, spec):
        return False
    return all(_measured(record, f"{spec['device']}/{e}") for e in ENGINES)


def _train_point(net: dict, model_path: Path, log, inputs: dict | None = None) -> None:
    """``mstbnn train`` in process, its output to the point's log; ``inputs``: the data paths to read."""
    from mstbnn.cli import main

    inputs = inputs or {"dataset": net["dataset"], "data_dir": net["data_dir"]}
    argv = ["train", "--model", net["model"], "--dataset", inputs["dataset"],
            "--hidden", ",".join([str(net["width"])] * net["layers"]), "--epochs", str(net["epochs"]),
            "--seed", str(net["seed"]), "--mst-lambda", f"{net['lambda']:g}", "--mst-warmup", str(net["mst_warmup"]),
            "--mst-ramp", str(net["mst_ramp"]), "--quiet", "-o", str(model_path)]
    if inputs["data_dir"] is not None:
        argv += ["--data-dir", str(inputs["data_dir"])]
    if net["lambda"] > 0 and net["max_depth"] is not None:
        argv += ["--max-depth", str(net["max_depth"])]
    if net.get("cost", "xnor") != "xnor":
        argv += ["--cost", net["cost"]]
    with contextlib.redirect_stdout(log), contextlib.redirect_stderr(log):
        code = main(argv)
    if code != 0:
        raise UserError(f"sweep point: `mstbnn {' '.join(argv)}` failed (exit {code}); see {log.name}")


def _compile_point(net: dict, model_path: Path, net_dir: Path, log) -> dict:
    """Compile (schedule) the model; return accuracy and XNOR figures of the compiled network."""
    import numpy as np

    from mstbnn.compiler.cost import network_cost
    from mstbnn.compiler.execute import run
    from mstbnn.flow import compile_model

    kwargs = {}
    if net.get("cost", "xnor") != "xnor":
        kwargs["cost"] = net["cost"]
    scheduled = compile_model(model_path, net_dir, max_depth=net["max_depth"], log=lambda s: print(s, file=log),
                              **kwargs)
    from mstbnn.flow import load_model

    _, testset = load_model(net_dir)
    correct = int(np.sum(run(scheduled, testset["x"], mode="reuse").classes == testset["y"]))
    cost = network_cost(scheduled)
    return {"correct": correct, "tested": int(len(testset["y"])),
            "accuracy": 100.0 * correct / len(testset["y"]),
            "xnor_plain": cost["xnor_plain"], "xnor_reuse": cost["xnor_reuse"],
            "xnor_ratio": cost["xnor_ratio"], "max_height": cost["max_height"]}


def _synth_engine(net_dir: Path, device: str, baseline: bool, log, place: bool = False) -> dict:
    """Count (yosys only) or place and route one engine; the figures the sweep keeps."""
    from mstbnn.boards.cli import synth_network

    report = synth_network(net_dir, device, baseline=baseline, force=True, place=place, stream=log)
    r = report["resources"]
    out = {"luts": int(r["lut"]["used"]), "ffs": int(r["ff"]["used"]),
           "estimate_luts": int(report["estimate"]["luts"]), "estimate_ffs": int(report["estimate"]["ffs"]),
           "latency_cycles": int(report["latency_cycles"]), "initiation_interval": int(report["initiation_interval"]),
           "yosys": report["options"]["yosys"]}
    if place:
        out["fmax_mhz"] = report["fmax_mhz"]
        out["nextpnr"] = report["options"]["nextpnr"]
    return out


def measure_point(spec: dict) -> dict:
    """Train, compile and count both engines of one network; return its record.

    ``spec``: ``{"id", "dir", "network": {...training settings...}, "device"}``
    (see :func:`point_specs`). Steps already done for the same network digest
    and generator version are skipped; the record is saved after every step
    (``DIR/points/<id>/point.json``), so an interrupted point resumes.
    """
    point_dir = Path(spec["dir"])
    point_dir.mkdir(parents=True, exist_ok=True)
    with open(point_dir / POINT_LOG, "a") as log:
        try:
            return _measure(spec, point_dir, log)
        except Exception:
            # sweep.json keeps one line of the error; the whole story stays beside the point.
            traceback.print_exc(file=log)
            raise


def _measure(spec: dict, point_dir: Path, log) -> dict:
    from mstbnn.artefact import network_digest

    net_dir = point_dir / NET_DIR
    record = _read_record(point_dir)
    if not _current_network(record, spec):
        model_path = point_dir / MODEL_FILE
        _train_point(spec["network"], model_path, log, spec.get("inputs"))
        figures = _compile_point(spec["network"], model_path, net_dir, log)
        record = {"id": spec["id"], "network": spec["network"], "generator": __version__,
                  "digest": network_digest(net_dir), **figures, "engines": {}}
        _write_record(point_dir, record)
    for engine in ENGINES:
        key = f"{spec['device']}/{engine}"
        if _measured(record, key):
            continue
        m = _synth_engine(net_dir, spec["device"], engine == "baseline", log)
        record["engines"][key] = {**m, "device": spec["device"], "digest": record["digest"],
                                  "generator": __version__}
        _write_record(point_dir, record)
    return record


def place_point(spec: dict, engine: str, devices) -> dict:
    """Place and route one engine of a measured point on the smallest of ``devices`` it fits; return its record.

    A point that fits none of them is recorded as ``{"fits": False}``. Not
    redone for the same digest and generator version.
    """
    from mstbnn.boards.cli import engine_of
    from mstbnn.boards.synth import estimate_fit
    from mstbnn.boards.wrapper import choose_chunk, harness_ffs
    from mstbnn.devices import get_device

    point_dir = Path(spec["dir"])
    record = _read_record(point_dir)
    placed = record.setdefault("placed", {})
    old = placed.get(engine)
    if old and old.get("digest") == record["digest"] and old.get("generator") == __version__:
        return record
    net_dir = point_dir / NET_DIR
    entry = {"fits": False}
    with open(point_dir / POINT_LOG, "a") as log:
        # The engine synth builds (from the artefact's engine spec), counted by synth's own fit rule.
        plan, _ = engine_of(net_dir, engine == "baseline", device=None, step="sweep --place", stream=log)
    in_width = plan.input_values * plan.input_width
    for name in devices:
        device = get_device(name)
        chunk = choose_chunk(in_width, plan.input_width, plan.class_width, device.io_pins)
        fit = estimate_fit(plan.resource_estimate(device.family), device, harness_ffs(in_width, chunk, plan.class_width))
        if fit["fits"] and fit.get("routable", True):
            with open(point_dir / POINT_LOG, "a") as log:
                entry = {"fits": True, "device": name,
                         **_synth_engine(net_dir, name, engine == "baseline", log, place=True)}
            break
    placed[engine] = {**entry, "digest": record["digest"], "generator": __version__}
    _write_record(point_dir, record)
    return record


def place_network(task: dict) -> dict:
    """Place and route the frontier engines of one network, one after the other; return its record.

    ``task``: ``{"id", "spec", "engines", "devices"}``. One task per network
    (not per engine): both engines of a network write the same point.json.
    """
    record = None
    for engine in task["engines"]:
        record = place_point(task["spec"], engine, task["devices"])
    return record


# --------------------------------------------------------------------------- frontier (pure)


def _order(p: dict):
    return (p["luts"], -p["accuracy"], p["id"])


def pareto_frontier(points: list[dict]) -> list[dict]:
    """The points no other point beats: each strictly more accurate than every point of fewer or equal LUTs.

    ``points``: dicts with ``id``, ``luts`` and ``accuracy``. Returned in
    ascending LUT order; ties go to the higher accuracy, then the lower id.
    """
    out = []
    best = None
    for p in sorted(points, key=_order):
        if best is None or p["accuracy"] > best:
            out.append(p)
            best = p["accuracy"]
    return out


def _cheapest_at(points: list[dict], accuracy: float) -> dict | None:
    ok = [p for p in points if p["accuracy"] >= accuracy]
    return min(ok, key=_order) if ok else None


def frontier_ratios(plain: list[dict], mst: list[dict]) -> list[dict]:
    """At each accuracy the plain frontier reaches: cheapest plain / cheapest MST engine at >= that accuracy.

    Returns one row per plain frontier point, in ascending accuracy:
    ``accuracy``, ``plain_id``, ``plain_luts``, ``mst_id``, ``mst_luts`` and
    ``ratio`` (``mst_*`` and ``ratio`` are None where no MST point reaches it).
    """
    rows = []
    for p in pareto_frontier(plain):
        m = _cheapest_at(mst, p["accuracy"])
        rows.append({"accuracy": p["accuracy"], "plain_id": p["id"], "plain_luts": p["luts"],
                     "mst_id": None if m is None else m["id"], "mst_luts": None if m is None else m["luts"],
                     "ratio": None if m is None else p["luts"] / m["luts"]})
    return rows


def engine_points(records: list[dict], device: str) -> dict:
    """Plain points (baseline engines) and MST points (reuse engines) of the measured records."""
    out = {"plain": [], "mst": []}
    for r in records:
        for engine, side in (("baseline", "plain"), ("reuse", "mst")):
            m = r["engines"].get(f"{device}/{engine}")
            if m is None:
                continue
            out[side].append({"id": f"{r['id']}/{engine}", "network": r["id"], "engine": engine,
                              "accuracy": r["accuracy"], "luts": m["luts"], "ffs": m["ffs"],
                              "lambda": r["network"]["lambda"], "width": r["network"]["width"],
                              "xnor_ratio": r["xnor_ratio"],
                              "fmax_mhz": ((r.get("placed") or {}).get(engine) or {}).get("fmax_mhz"),
                              "fmax_device": ((r.get("placed") or {}).get(engine) or {}).get("device")})
    return out


def analyse(records: list[dict], device: str) -> dict:
    """Both frontiers and the ratios of a set of measured records."""
    pts = engine_points(records, device)
    return {"plain_frontier": pareto_frontier(pts["plain"]), "mst_frontier": pareto_frontier(pts["mst"]),
            "ratios": frontier_ratios(pts["plain"], pts["mst"]), "points": pts}


# --------------------------------------------------------------------------- outputs


def _fmt_ratio(r):
    return "not reached" if r is None else f"{r:.2f}x"


def format_frontier(result: dict, grid: Grid, command: str) -> str:
    """frontier.md: the ratio table, both frontiers and every point."""
    a = result["analysis"]
    lines = [
        f"# Accuracy vs LUT4-eq frontier: {grid.dataset}, {grid.family}",
        "",
        f"Command: `{command}`",
        "",
        f"mstbnn {__version__}; LUT4-eq and FFs from yosys (`{result['yosys']}`, not placed) on "
        f"{result['device']}; accuracy of the compiled network on the test set. Plain points: the baseline "
        "(no reuse) engine of every network; MST points: the reuse engine of every network.",
        "",
    ]
    if result.get("failed"):
        lines += [f"**Incomplete: {len(result['failed'])} network(s) failed** (after a failed measure step a "
                  "network is left out of every table below; after a failed place step it has no Fmax). Rerun "
                  "the command to retry them; tracebacks are in each point's log.txt:", ""]
        lines += [f"- {f['id']} ({f['stage']}): {f['error']}" for f in result["failed"]] + [""]
    lines += [
        "## Ratio at each accuracy the plain frontier reaches",
        "",
        "| accuracy >= | cheapest plain engine | LUT4-eq | cheapest MST engine | LUT4-eq | plain / MST |",
        "|---:|---|---:|---|---:|---:|",
    ]
    for r in a["ratios"]:
        mst = "none reaches it" if r["mst_id"] is None else r["mst_id"]
        mst_luts = "" if r["mst_luts"] is None else f"{r['mst_luts']:,}"
        lines.append(f"| {r['accuracy']:.2f} % | {r['plain_id']} | {r['plain_luts']:,} | {mst} | {mst_luts} | "
                     f"{_fmt_ratio(r['ratio'])} |")
    for title, key in (("Plain frontier", "plain_frontier"), ("MST frontier", "mst_frontier")):
        lines += ["", f"## {title}", "", "| engine | accuracy | LUT4-eq | FF | XNOR reduction | Fmax |",
                  "|---|---:|---:|---:|---:|---:|"]
        for p in a[key]:
            fmax = "" if p.get("fmax_mhz") is None else f"{p['fmax_mhz']:.1f} MHz ({p['fmax_device']})"
            lines.append(f"| {p['id']} | {p['accuracy']:.2f} % | {p['luts']:,} | {p['ffs']:,} | "
                         f"{p['xnor_ratio']:.2f}x | {fmax} |")
    lines += ["", "## Every network", "",
              "| network | lambda | height cap | accuracy | XNOR reduction | reuse LUT4-eq | reuse FF | "
              "baseline LUT4-eq | baseline FF |",
              "|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for r in result["points"]:
        e = r["engines"]
        reuse, base = e[f"{result['device']}/reuse"], e[f"{result['device']}/baseline"]
        h = r["network"]["max_depth"]
        lines.append(f"| {r['id']} | {r['network']['lambda']:g} | {'none' if h is None else h} | "
                     f"{r['accuracy']:.2f} % | {r['xnor_ratio']:.2f}x | {reuse['luts']:,} | {reuse['ffs']:,} | "
                     f"{base['luts']:,} | {base['ffs']:,} |")
    return "\n".join(lines) + "\n"


def plot_frontier(analysis: dict, path, title: str) -> None:
    """frontier.png: accuracy against LUT4-eq, every point and both frontiers (matplotlib, Agg)."""
    import io as _io

    import matplotlib
    import matplotlib.ticker

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from mstbnn.artefact import atomic_write

    fig, ax = plt.subplots(figsize=(7, 4.5), dpi=110)
    styles = (("plain", "plain_frontier", "tab:gray", "o", "plain engine"),
              ("mst", "mst_frontier", "tab:blue", "^", "MST (reuse) engine"))
    for side, front, color, marker, label in styles:
        pts = analysis["points"][side]
        ax.scatter([p["luts"] for p in pts], [p["accuracy"] for p in pts], color=color, marker=marker,
                   alpha=0.45, s=24)
        f = analysis[front]
        if f:
            ax.step([p["luts"] for p in f], [p["accuracy"] for p in f], where="post", color=color, lw=1.8,
                    label=f"{label} frontier", marker=marker)
    if analysis["points"]["plain"] or analysis["points"]["mst"]:  # (every point failed: an empty linear plot)
        ax.set_xscale("log")
        plain_numbers = matplotlib.ticker.FuncFormatter(lambda v, _: f"{v:,.0f}")
        ax.xaxis.set_major_formatter(plain_numbers)
        lo, hi = ax.get_xlim()
        # Label minor ticks only when the plot spans less than a decade (else no major tick may show).
        ax.xaxis.set_minor_formatter(plain_numbers if hi / lo < 10 else matplotlib.ticker.NullFormatter())
        ax.tick_params(axis="x", which="minor", labelsize=7)
    ax.set_xlabel("LUT4-eq (yosys)")
    ax.set_ylabel("test accuracy (%)")
    ax.set_title(title)
    ax.grid(True, which="both", alpha=0.3)
    if ax.get_legend_handles_labels()[0]:
        ax.legend(loc="lower right")
    fig.tight_layout()
    buf = _io.BytesIO()
    # No software/date metadata: the same sweep gives the same bytes.
    fig.savefig(buf, format="png", metadata={"Software": None})
    plt.close(fig)
    atomic_write(path, buf.getvalue())


def _write_outputs(out: Path, grid: Grid, specs: list[dict], records: dict, command: str, final: bool,
                   failed: dict | None = None) -> dict:
    from mstbnn.artefact import atomic_write

    failed = failed or {}
    device = specs[0]["device"] if specs else FAMILY_DEVICES[grid.family][-1]
    done = [records[s["id"]] for s in specs if s["id"] in records]
    analysis = analyse(done, device)
    yosys = next((m["yosys"] for r in done for m in r["engines"].values()), "")
    # Failed points, in grid order: what failed (measure or place) and its error, one line each.
    failures = [{"id": s["id"], **failed[s["id"]]} for s in specs if s["id"] in failed]
    result = {"format": SWEEP_FORMAT, "format_version": SWEEP_FORMAT_VERSION, "generator": __version__,
              "grid": grid.as_dict(), "device": device, "yosys": yosys,
              "complete": final and len(done) == len(specs) and not failures,
              "points": done, "failed": failures,
              "analysis": {k: analysis[k] for k in ("plain_frontier", "mst_frontier", "ratios")}}
    atomic_write(out / SWEEP_JSON, json.dumps(result, indent=1, sort_keys=True) + "\n")
    if final:
        atomic_write(out / FRONTIER_MD, format_frontier({**result, "analysis": analysis}, grid, command))
        plot_frontier(analysis, out / FRONTIER_PNG, f"{Path(grid.dataset).name} on {grid.family}: accuracy vs LUT4-eq")
    result["analysis"] = analysis
    return result


def _check_out_dir(out: Path) -> None:
    if out.exists() and not out.is_dir():
        raise UserError(f"{out}: exists and is not a directory; choose another -o")
    path = out / SWEEP_JSON
    if path.is_file():
        try:
            fmt = json.loads(path.read_text()).get("format")
        except (OSError, json.JSONDecodeError, AttributeError):
            fmt = None
        if fmt != SWEEP_FORMAT:
            raise UserError(f"{path}: not an mstbnn sweep; choose another -o or delete the file")


def run_sweep(out, grid: Grid, *, jobs: int = 1, place: bool = False, command: str | None = None,
              progress: bool = True, scheduler: str | None = None, retries: int = 1,
              connect_timeout: float | None = None, measure=None) -> dict:
    """Measure every point of ``grid`` in ``out`` (resuming), then write sweep.json, frontier.md and frontier.png.

    Points run in this process (``jobs`` 1), a local process pool (``jobs``
    > 1) or, with ``scheduler`` (a Dask scheduler address), one task per
    point on that cluster; see :mod:`mstbnn.executors`. A point that raises
    is retried ``retries`` times, then listed in the result's ``failed``
    (``place``: the same for its place-and-route task). ``measure``: the point
    function, :func:`measure_point` unless a test wraps it (a picklable
    top-level function of one spec).
    """
    from tqdm import tqdm

    from mstbnn.executors import DEFAULT_CONNECT_TIMEOUT, open_executor

    out = Path(out)
    jobs = _one_int("--jobs", jobs, 1)
    retries = _one_int("--retries", retries, 0)
    if scheduler is not None and jobs != 1:
        raise UserError("--jobs counts local processes; with --scheduler the cluster's workers run the points "
                        "(drop --jobs)")
    timeout = DEFAULT_CONNECT_TIMEOUT if connect_timeout is None else _positive("--connect-timeout", connect_timeout)
    measure = measure or measure_point
    command = command or command_line(grid, out, place=place)
    # Point specs carry absolute directories: a cluster worker's working directory is not ours.
    out = out.absolute()
    _check_out_dir(out)
    from mstbnn.nn.data import load_dataset

    load_dataset(grid.dataset, grid.data_dir)  # a bad dataset fails here, before any work
    # Connect before anything is written: an unreachable scheduler leaves no trace.
    with open_executor(jobs=jobs, scheduler=scheduler, connect_timeout=timeout) as executor:
        created = not out.exists()
        out.mkdir(parents=True, exist_ok=True)
        try:
            executor.prepare(out)
        except UserError:
            if created:
                with contextlib.suppress(OSError):
                    out.rmdir()
            raise
        return _run_points(out, grid, executor, measure, retries=retries, place=place, command=command,
                           progress=progress, tqdm=tqdm)


def _positive(flag: str, value) -> float:
    try:
        v = float(value)
    except (TypeError, ValueError):
        raise UserError(f"{flag}: {value!r} is not a number of seconds") from None
    if not 0 < v < float("inf"):
        raise UserError(f"{flag}: {value} must be a positive number of seconds")
    return v


def _run_points(out: Path, grid: Grid, executor, measure, *, retries: int, place: bool, command: str,
                progress: bool, tqdm) -> dict:
    specs = point_specs(grid, out)
    records, failed, todo = {}, {}, []
    for s in specs:
        if point_is_measured(s):
            records[s["id"]] = _read_record(Path(s["dir"]))
        else:
            todo.append(s)
    bar = tqdm(total=len(specs), initial=len(specs) - len(todo), unit="point", desc="sweep", file=sys.stderr,
               dynamic_ncols=True, disable=not progress)
    for outcome in executor.map(measure, todo, retries=retries):
        pid = outcome.item["id"]
        if outcome.ok:
            records[pid] = outcome.result
            bar.set_postfix_str(f"{pid} {outcome.result['accuracy']:.1f}%")
        else:
            failed[pid] = {"stage": "measure", "error": outcome.error}
            bar.set_postfix_str(f"{pid} FAILED")
        bar.update(1)
        _write_outputs(out, grid, specs, records, command, final=False, failed=failed)
    bar.close()
    if place:
        by_id = {s["id"]: s for s in specs}
        result = _write_outputs(out, grid, specs, records, command, final=False, failed=failed)
        engines: dict[str, list[str]] = {}
        for p in result["analysis"]["plain_frontier"] + result["analysis"]["mst_frontier"]:
            engines.setdefault(p["network"], []).append(p["engine"])
        tasks = [{"id": pid, "spec": by_id[pid], "engines": sorted(engines[pid]),
                  "devices": list(FAMILY_DEVICES[grid.family])} for pid in sorted(engines)]
        bar = tqdm(total=len(tasks), unit="network", desc="place", file=sys.stderr, disable=not progress)
        for outcome in executor.map(place_network, tasks, retries=retries):
            pid = outcome.item["id"]
            if outcome.ok:
                records[pid] = outcome.result
            else:
                failed[pid] = {"stage": "place", "error": outcome.error}
            bar.update(1)
        bar.close()
    return _write_outputs(out, grid, specs, records, command, final=True, failed=failed)


# --------------------------------------------------------------------------- CLI


def command_line(grid: Grid, out, *, place: bool = False) -> str:
    """The ``mstbnn sweep`` command that measures ``grid`` (recorded in frontier.md)."""
    fmt_h = lambda h: "none" if h is None else str(h)  # noqa: E731
    parts = ["mstbnn sweep", "-o", str(out), "--dataset", grid.dataset]
    if grid.data_dir is not None:
        parts += ["--data-dir", str(grid.data_dir)]
    parts += ["--family", grid.family, "--widths", ",".join(map(str, grid.widths)), "--layers", str(grid.layers),
              "--lambdas", ",".join(f"{x:g}" for x in grid.lambdas),
              "--max-depths", ",".join(fmt_h(h) for h in grid.max_depths),
              "--seeds", ",".join(map(str, grid.seeds)), "--epochs", str(grid.epochs)]
    if (grid.mst_warmup, grid.mst_ramp) != (5, 10):
        parts += ["--mst-warmup", str(grid.mst_warmup), "--mst-ramp", str(grid.mst_ramp)]
    if grid.cost != "xnor":
        parts += ["--cost", grid.cost]
    if place:
        parts.append("--place")
    return " ".join(parts)


def _cmd_sweep(args) -> int:
    grid = parse_grid(dataset=args.dataset, data_dir=args.data_dir, family=args.family, widths=args.widths,
                      layers=args.layers, lambdas=args.lambdas, max_depths=args.max_depths, seeds=args.seeds,
                      epochs=args.epochs, cost=args.cost, mst_warmup=args.mst_warmup, mst_ramp=args.mst_ramp)
    result = run_sweep(Path(args.output), grid, jobs=args.jobs, place=args.place, scheduler=args.scheduler,
                       retries=args.retries, connect_timeout=args.connect_timeout)
    out = Path(args.output)
    for r in result["analysis"]["ratios"]:
        print(f"accuracy >= {r['accuracy']:.2f} %: plain {r['plain_luts']:,} LUT4-eq ({r['plain_id']}), "
              + ("no MST engine reaches it" if r["ratio"] is None else
                 f"MST {r['mst_luts']:,} ({r['mst_id']}), {r['ratio']:.2f}x"))
    print(f"wrote {out / SWEEP_JSON}, {out / FRONTIER_MD}, {out / FRONTIER_PNG}")
    failed = result["failed"]
    if failed:
        first = failed[0]
        print(f"mstbnn: error: {len(failed)} sweep point(s) failed after {args.retries} retries, first "
              f"{first['id']} ({first['stage']}: "
              f"{first['error']}); all are listed in {out / SWEEP_JSON}; rerun to retry them", file=sys.stderr)
        return 1
    return 0


def add_commands(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "sweep",
        help="accuracy-vs-LUTs frontier: train a grid, compile, count both engines with yosys",
        description="Train plain networks (lambda 0) over a width sweep and MST networks over width x lambda x "
                    "height cap x seed, compile them, count LUT4-eq and FFs of both engines of every network "
                    "with yosys, and write DIR/sweep.json, DIR/frontier.md and DIR/frontier.png (the plain and "
                    "MST Pareto frontiers and their LUT ratio at every accuracy the plain frontier reaches). "
                    "Resumable: points already measured for the same network and generator version are kept.",
    )
    p.add_argument("-o", "--output", required=True, help="sweep directory (created; rerun to resume)")
    p.add_argument("--dataset", default="digits",
                   help="dataset passed to `mstbnn train` (digits, mnist5k, mnist, ... or an .npz; default digits)")
    p.add_argument("--data-dir", default=None, help="directory of local dataset files, as for `mstbnn train`")
    p.add_argument("--family", default="ecp5", help="device family: ecp5 (default) or ice40")
    p.add_argument("--widths", default=DEFAULTS["widths"], help=f"hidden widths (default {DEFAULTS['widths']})")
    p.add_argument("--layers", default=DEFAULTS["layers"],
                   help=f"hidden layers, each of the point's width (default {DEFAULTS['layers']})")
    p.add_argument("--lambdas", default=DEFAULTS["lambdas"],
                   help=f"regulariser strengths; 0 (plain training) is always included (default {DEFAULTS['lambdas']})")
    p.add_argument("--max-depths", default=DEFAULTS["max_depths"],
                   help=f"tree height caps of the MST networks, or none (default {DEFAULTS['max_depths']}); "
                        "lambda-0 networks are compiled with the loosest")
    p.add_argument("--seeds", default=DEFAULTS["seeds"], help=f"training seeds (default {DEFAULTS['seeds']})")
    p.add_argument("--epochs", default=DEFAULTS["epochs"],
                   help=f"training epochs per network (default {DEFAULTS['epochs']})")
    p.add_argument("--mst-warmup", default=5, help="epochs of plain training before the regulariser (default 5)")
    p.add_argument("--mst-ramp", default=10, help="epochs over which lambda ramps up (default 10)")
    p.add_argument("--cost", default="xnor", help="tree cost for training and compile: xnor (default) or luts")
    p.add_argument("--jobs", default=1, help="points measured in parallel (local processes; default 1)")
    p.add_argument("--scheduler", default=None, metavar="ADDRESS",
                   help="run the points on the Dask distributed cluster of this scheduler (tcp://HOST:PORT), one "
                        "task per point, instead of local processes; -o must be on a filesystem every worker "
                        "mounts at the same path (needs mstbnn[dask])")
    p.add_argument("--retries", default=1,
                   help="times a point that fails is run again before it is reported as failed (default 1)")
    p.add_argument("--connect-timeout", default=None, metavar="SECONDS",
                   help="seconds to wait for the --scheduler and its first worker (default 10)")
    p.add_argument("--place", action="store_true",
                   help="also place and route the frontier engines (nextpnr) for Fmax on the smallest part that fits")
    p.set_defaults(func=_cmd_sweep)
