"""--target-fps: the smallest folded configuration meeting a throughput target, against a brute force."""

from __future__ import annotations

import copy
import itertools
import json
from types import SimpleNamespace

import numpy as np
import pytest

from mstbnn.cli import main
from mstbnn.compiler.compile import schedule_network
from mstbnn.compiler.io import save
from mstbnn.compiler.mst import build_schedule
from mstbnn.compiler.random import random_conv_network, random_dense_network
from mstbnn.compiler.storage import storage_edge_cost
from mstbnn.errors import UserError
from mstbnn.hw.folded.network import FoldedEnginePlan
from mstbnn.hw.folded.plan import cycles_edge_cost
from mstbnn.hw.folded.throughput import EXPECTED_FMAX_MHZ, choose_for_target

SIMD, GATHER, FMAX = (4, 16), (1, 2), 50.0


def _nets():
    return {
        "dense": schedule_network(random_dense_network(np.random.default_rng(1), features=16, hidden=(12,), classes=4)),
        "conv": schedule_network(random_conv_network(np.random.default_rng(2), input_shape=(1, 6, 6),
                                                     convs=((6, 3, 1, 1, True),), classes=3)),
    }


def _brute_force(net, reuse):
    """Every (S, G, tree) per layer built as a real engine: (LUT4-eq, BRAM, FF, II, config, trees)."""
    per_layer = []
    for _, layer in net.binary_layers():
        n = layer.fan_in
        opts = []
        for s, g in itertools.product(sorted({min(s, n) for s in SIMD}), GATHER if reuse else (1,)):
            trees = {"compiled": layer.schedule}
            if reuse:
                trees["cycles"] = build_schedule(layer.weight_matrix.astype(bool), edge_cost=cycles_edge_cost(n, s, g))
                trees["storage"] = build_schedule(layer.weight_matrix.astype(bool),
                                                  edge_cost=storage_edge_cost(n, layer.out_channels))
            opts += [(s, g, name, sched) for name, sched in trees.items()]
        per_layer.append(opts)
    rows = []
    for combo in itertools.product(*per_layer):
        for (_, layer), (_, _, _, sched) in zip(net.binary_layers(), combo):
            layer.schedule = sched
        eng = FoldedEnginePlan(net, reuse=reuse, config=[(s, g) for s, g, _, _ in combo])
        est = eng.resource_estimate("ecp5")
        rows.append((est["luts"] + 2 * est["carry"], est["bram"], est["ffs"], eng.initiation_interval,
                     [(s, g) for s, g, _, _ in combo]))
    return rows


@pytest.mark.parametrize("kind", ["dense", "conv"])
@pytest.mark.parametrize("reuse", [True, False])
def test_chosen_config_meets_the_target_and_nothing_cheaper_does(kind, reuse):
    net = _nets()[kind]
    rows = _brute_force(copy.deepcopy(net), reuse)
    iis = sorted({r[3] for r in rows})
    big = SimpleNamespace(name="big", family="ecp5", luts=10**6, ffs=10**6, bram=100)
    # a target between the slowest and the fastest II, and one that needs the fastest
    for ii_goal in {iis[len(iis) // 2], iis[0]}:
        target = FMAX * 1e6 / ii_goal
        # a device just too small for the cheapest way to the fastest II: the LUT limit binds
        meeting = [r for r in rows if r[3] <= ii_goal]
        for device in (big, SimpleNamespace(name="small", family="ecp5", luts=int(min(r[0] for r in meeting) / 0.85) + 1,
                                            ffs=10**6, bram=100)):
            ch = choose_for_target(net, device, target, reuse=reuse, simd_choices=SIMD, gather_choices=GATHER,
                                   fmax_mhz=FMAX)
            assert ch.fps >= target and ch.ii <= ii_goal
            # the engine built from the choice has the modelled II and the estimate the search priced
            eng = FoldedEnginePlan(ch.net, reuse=reuse, config=ch.config)
            est = eng.resource_estimate("ecp5")
            assert eng.initiation_interval == ch.ii
            lut = est["luts"] + 2 * est["carry"]
            fits = [r for r in meeting if r[0] <= 0.85 * device.luts and r[1] <= device.bram]
            assert lut == min(r[0] for r in fits), (lut, sorted(fits)[:3])


def test_unreachable_target_is_refused_with_the_best_figure():
    net = _nets()["dense"]
    rows = _brute_force(copy.deepcopy(net), True)
    best_fps = FMAX * 1e6 / min(r[3] for r in rows)
    big = SimpleNamespace(name="big", family="ecp5", luts=10**6, ffs=10**6, bram=100)
    with pytest.raises(UserError, match=r"cannot be met on big: the fastest configuration found runs ([\d,]+) images/s") as exc:
        choose_for_target(net, big, best_fps * 1.01, simd_choices=SIMD, gather_choices=GATHER, fmax_mhz=FMAX)
    assert f"{best_fps:,.0f} images/s" in str(exc.value)
    ch = choose_for_target(net, big, best_fps, simd_choices=SIMD, gather_choices=GATHER, fmax_mhz=FMAX)
    assert ch.fps == pytest.approx(best_fps)


@pytest.fixture
def artefact(tmp_path):
    d = tmp_path / "net"
    save(_nets()["conv"], d)
    return d


def test_verilog_target_fps_records_the_config_and_refuses_the_unreachable(artefact, capsys):
    assert main(["verilog", str(artefact), "--engine", "folded", "--device", "ecp5-85k", "--target-fps", "1e9"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("mstbnn: error: --target-fps 1,000,000,000 cannot be met on ecp5-85k")
    assert "images/s" in err[0] and "S/G per layer" in err[0]
    assert not (artefact / "rtl-folded").exists()  # nothing written
    assert main(["verilog", str(artefact), "--engine", "folded", "--target-fps", "1000"]) == 2
    assert "--target-fps needs --device" in capsys.readouterr().err

    assert main(["verilog", str(artefact), "--engine", "folded", "--device", "ecp5-85k", "--target-fps", "100000"]) == 0
    desc = json.loads((artefact / "rtl-folded" / "mstbnn_top.json").read_text())
    opts = desc["options"]
    assert opts["target_fps"] == 100000 and opts["expected_fmax_mhz"] == EXPECTED_FMAX_MHZ["ecp5"]
    assert opts["expected_fmax_mhz"] * 1e6 / desc["initiation_interval"] >= 100000
    assert desc["device"] == "ecp5-85k"


def test_synth_builds_the_config_verilog_chose(artefact, tmp_path, monkeypatch, capsys):
    """`synth --target-fps` on a fresh copy generates the engine `verilog --target-fps` did; no yosys run."""
    import shutil

    from mstbnn.boards import synth

    other = tmp_path / "other"
    shutil.copytree(artefact, other)
    assert main(["verilog", str(artefact), "--engine", "folded", "--device", "ecp5-85k", "--target-fps", "100000"]) == 0
    built = []

    def fake_synthesize(engine, device, build_dir, **kw):  # records what would be synthesised
        built.append(engine.config)
        return {"device": device.name, "part": device.part, "package": device.package, "placed": False,
                "resources": {k: {"used": 1, "available": 1} for k in ("lut", "ff", "bram", "dsp", "logic_cells", "io")},
                "fmax_mhz": None, "initiation_interval": engine.initiation_interval, "latency_cycles": engine.latency,
                "throughput_per_s": None}

    monkeypatch.setattr(synth, "synthesize", fake_synthesize)
    for d in (artefact, other):
        assert main(["synth", str(d), "--engine", "folded", "--device", "ecp5-85k", "--target-fps", "100000",
                     "--synth-only"]) == 0
    out = capsys.readouterr().out
    assert "target 100,000 images/s: achieved: not measured (not placed)" in out
    assert built[0] == built[1]
    specs = [json.loads((d / "rtl-folded" / "mstbnn_top.json").read_text()) for d in (artefact, other)]
    assert specs[0]["options"] == specs[1]["options"]
    report = json.loads((other / "synth.json").read_text())
    (entry,) = report["runs"].values()
    assert entry["target_fps"] == 100000 and entry["spec"]["options"]["config"] == [list(c) for c in built[1]]
