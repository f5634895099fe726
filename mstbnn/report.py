"""``mstbnn report DIR``: a readable report.md with plots for one artefact.

Reads what the stages left in DIR (network.json/.npz from ``compile``,
sim.json from ``sim``, synth.json from ``synth``) and writes DIR/report.md
with PNG plots beside it. ``--compare DIR0`` adds a second artefact (typically
the same model trained with lambda = 0) to the Hamming-distance histogram.
"""

from __future__ import annotations

import json
from pathlib import Path

from mstbnn.artefact import SYNTH_REPORT, atomic_write, result_path
from mstbnn.errors import UserError

__all__ = ["write_report", "add_commands"]


def _read_json(path: Path):
    if not path.is_file():
        return None
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise UserError(f"{path}: not valid JSON ({exc.msg}); rerun the stage that wrote it") from None


def _read_results(directory: Path) -> tuple[dict | None, dict]:
    """DIR/sim.json and the runs of DIR/synth.json, checked before any plot is drawn."""
    sim_path, synth_path = result_path(directory, "sim"), directory / SYNTH_REPORT
    sim = _read_json(sim_path)
    if sim is not None and not isinstance(sim, dict):
        raise UserError(f"{sim_path}: expected a JSON object; rerun `mstbnn sim {directory}`")
    synth = _read_json(synth_path)
    runs = synth.get("runs", {}) if isinstance(synth, dict) else synth
    if runs is None:
        runs = {}
    ok = isinstance(runs, dict) and all(
        isinstance(r, dict) and isinstance(r.get("resources"), dict)
        and all(isinstance(r["resources"].get(k), dict) and isinstance(r["resources"][k].get("used"), (int, type(None)))
                and isinstance(r["resources"][k].get("available"), int) for k in ("lut", "ff", "bram"))
        and isinstance(r.get("device"), str)
        for r in runs.values())
    if not ok:
        raise UserError(f"{synth_path}: not the runs `mstbnn synth` records; delete it and rerun `mstbnn synth`")
    return sim, runs


def _tree_edges(layer):
    s = layer.schedule
    return [(int(s.parent[j]), j, len(s.positions[j])) for j in range(s.n_channels) if s.parent[j] >= 0]


def _plot_reduction(plt, costs, path):
    fig, ax = plt.subplots(figsize=(6, 3.2))
    labels = [f"L{c.index} {c.kind}\n{c.out_channels}x{c.fan_in}" for c in costs]
    x = range(len(costs))
    ax.bar([i - 0.2 for i in x], [c.xnor_plain * c.evaluations for c in costs], 0.4, label="plain")
    ax.bar([i + 0.2 for i in x], [c.xnor_reuse * c.evaluations for c in costs], 0.4, label="MST reuse")
    for i, c in enumerate(costs):
        ax.text(i + 0.2, c.xnor_reuse * c.evaluations, f"{c.ratio:.1f}x", ha="center", va="bottom", fontsize=8)
    ax.set_xticks(list(x), labels, fontsize=8)
    ax.set_ylabel("XNORs per inference")
    ax.set_title("XNOR count per layer")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _plot_tree(plt, index, layer, path):
    s = layer.schedule
    by_level: dict[int, list[int]] = {}
    for j in s.order:
        by_level.setdefault(int(s.level[j]), []).append(int(j))
    pos = {}
    for lvl, chans in by_level.items():
        for k, j in enumerate(chans):
            pos[j] = ((k + 0.5) / len(chans), -lvl)
    fig, ax = plt.subplots(figsize=(7, max(2.5, 0.35 * (s.height + 2))))
    for p, j, d in _tree_edges(layer):
        (x0, y0), (x1, y1) = pos[p], pos[j]
        ax.plot([x0, x1], [y0, y1], color="red" if s.negate[j] else "0.6", lw=0.5)
    roots = set(s.roots.tolist())
    ax.scatter([pos[j][0] for j in pos], [pos[j][1] for j in pos], s=6,
               c=["black" if j in roots else "tab:blue" for j in pos], zorder=3)
    ax.set_yticks([-lvl for lvl in by_level], [str(lvl) for lvl in by_level], fontsize=7)
    ax.set_ylabel("tree level")
    ax.set_xticks([])
    ax.set_title(f"layer {index}: {len(roots)} root(s), height {s.height}, weight {s.weight} (black = root)")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _plot_histogram(plt, nets, path):
    fig, ax = plt.subplots(figsize=(6, 3.2))
    for label, net in nets:
        d = [e[2] / layer.fan_in for _, layer in net.binary_layers() if layer.schedule is not None
             for e in _tree_edges(layer)]
        ax.hist(d, bins=40, range=(0, 0.6), alpha=0.6, label=f"{label} (mean {sum(d) / max(1, len(d)):.3f})")
    ax.set_xlabel("tree edge Hamming distance d / N")
    ax.set_ylabel("edges")
    ax.set_title("MST edge distances")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _plot_utilisation(plt, runs, path):
    devices = sorted({r["device"] for r in runs.values()})
    fig, ax = plt.subplots(figsize=(6, 3.2))
    width = 0.4
    for k, engine in enumerate(("baseline", "reuse")):
        vals = [next((r["resources"]["lut"]["used"] or 0 for r in runs.values()
                      if r["device"] == dev and r.get("engine") == engine), 0) for dev in devices]
        ax.bar([i + (k - 0.5) * width for i in range(len(devices))], vals, width, label=engine)
    ax.set_xticks(range(len(devices)), devices)
    ax.set_ylabel("LUTs used")
    ax.set_title("Utilisation: baseline vs reuse engine")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def write_report(directory, compare=None) -> Path:
    """Write DIR/report.md and its plots; return the report's path."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from mstbnn.compiler import io
    from mstbnn.compiler.cost import format_table, layer_costs, network_cost

    directory = Path(directory)
    net = io.load(directory)
    if not all(l.schedule is not None for _, l in net.binary_layers()):
        raise UserError(f"{directory}: the network has no schedules; run `mstbnn compile` on it first")
    sim, runs = _read_results(directory)
    costs = layer_costs(net)
    total = network_cost(net)
    lines = [f"# mstbnn report: {directory.name}", ""]
    meta = net.meta or {}
    if meta:
        keep = {k: v for k, v in meta.items() if isinstance(v, (str, int, float, bool)) or k == "schedule"}
        lines += ["Model: `" + json.dumps(keep, sort_keys=True) + "`", ""]
    lines += ["## XNOR reduction", "", format_table(net), "",
              f"Storage with index overhead: {total['storage_plain_bits']:,} -> {total['storage_reuse_bits']:,} bits "
              f"({total['storage_ratio']:.2f}x).", "", "![XNORs per layer](xnor_per_layer.png)", ""]
    _plot_reduction(plt, costs, directory / "xnor_per_layer.png")

    biggest = max(net.binary_layers(), key=lambda il: il[1].out_channels * il[1].fan_in)
    _plot_tree(plt, biggest[0], biggest[1], directory / "mst_tree.png")
    lines += [f"## MST of layer {biggest[0]}, level by level", "", "![MST](mst_tree.png)", ""]

    nets = [("this network", net)]
    if compare is not None:
        other = io.load(compare)
        if not all(l.schedule is not None for _, l in other.binary_layers()):
            raise UserError(f"{compare}: the comparison network has no schedules; run `mstbnn compile` on it first")
        nets.insert(0, (Path(compare).name, other))
    _plot_histogram(plt, nets, directory / "hamming_hist.png")
    lines += ["## Hamming distances along tree edges", "", "![histogram](hamming_hist.png)", ""]

    if sim:
        lines += ["## Simulation", "", "| key | value |", "|---|---|"]
        lines += [f"| {k} | {v} |" for k, v in sorted(sim.items()) if not isinstance(v, (dict, list))]
        lines.append("")
    if runs:
        lines += ["## Synthesis", "", "| run | LUTs | FFs | BRAM | Fmax (MHz) | II | inferences/s |",
                  "|---|---:|---:|---:|---:|---:|---:|"]
        def count(v):  # None: a yosys-only run, not placed
            return "n/a" if v is None else f"{v:,}"

        for key, r in sorted(runs.items()):
            res = r["resources"]
            lines.append(f"| {key} | {count(res['lut']['used'])} / {res['lut']['available']:,} | {count(res['ff']['used'])} | "
                         f"{res['bram']['used']} | {r.get('fmax_mhz')} | {r.get('initiation_interval')} | "
                         f"{r.get('throughput_per_s')} |")
        lines.append("")
        _plot_utilisation(plt, runs, directory / "utilisation.png")
        lines += ["![utilisation](utilisation.png)", ""]
    out = directory / "report.md"
    atomic_write(out, "\n".join(lines))
    return out


def _cmd_report(args) -> int:
    path = write_report(args.directory, compare=args.compare)
    print(f"wrote {path}")
    return 0


def add_commands(sub) -> None:
    p = sub.add_parser("report", help="write DIR/report.md with plots (XNORs, MST, distances, sim, synth)",
                       description="Summarise a compiled artefact and whatever sim / synth results it holds.")
    p.add_argument("directory", help="artefact directory (from `mstbnn compile`)")
    p.add_argument("--compare", metavar="DIR0", help="second artefact for the distance histogram (e.g. lambda = 0)")
    p.set_defaults(func=_cmd_report)
