"""mstbnn prove: random dense engines are proven; every planted bug is caught with its layer and channel."""

from __future__ import annotations

import copy

import numpy as np
import pytest

from mstbnn.compiler.compile import schedule_network
from mstbnn.compiler.random import random_dense_network
from mstbnn.prove.compare import DIFFERS, NOT_PROVEN, PROVEN
from mstbnn.prove.evaluate import Evaluator, run_deep
from mstbnn.prove.linear import Lin, Space
from mstbnn.prove.netlist import Netlist
from tests.prove.helpers import (
    build,
    cells_of,
    cut_of,
    flip_first_weight,
    live_channel,
    prove,
    readers,
    rewire,
    with_schedule,
)


def _net(seed, *, features=10, hidden=(8,), classes=3, input_mode="threshold", bits=3, signed=False,
         negation=True, max_depth=None, clustered=True):
    rng = np.random.default_rng(seed)
    net = random_dense_network(rng, features=features, hidden=hidden, classes=classes, input_mode=input_mode,
                               bits=bits, signed=signed, clustered=clustered)
    return schedule_network(net, negation=negation, max_depth=max_depth)


CASES = [
    # input mode, bits, signed, engine options, schedule options, reuse
    ("threshold", 4, False, dict(corrections="early"), dict(), True),
    ("threshold", 3, True, dict(corrections="late", adder_levels_per_stage=1, tree_levels_per_stage=2,
                                fuse_leaves=True), dict(max_depth=2), True),
    ("int", 3, True, dict(corrections="inline"), dict(), True),
    ("int", 2, False, dict(corrections="early", adder_levels_per_stage=3, tree_levels_per_stage=2,
                           fuse_leaves=True), dict(negation=False, max_depth=3), True),
    ("threshold", 4, False, dict(), dict(), False),
    ("int", 3, True, dict(adder_levels_per_stage=1), dict(), False),
]


@pytest.mark.parametrize("input_mode,bits,signed,options,sched,reuse", CASES)
def test_random_dense_engines_are_proven(tmp_path, input_mode, bits, signed, options, sched, reuse):
    net = _net(bits + 10 * reuse, features=8, hidden=(10, 6), classes=4, input_mode=input_mode, bits=bits,
               signed=signed, **sched)
    data, desc = build(net, tmp_path, reuse=reuse, **options)
    report = prove(data, net, desc)
    assert report["verdict"] == PROVEN, report["message"]
    assert [entry["status"] for entry in report["layers"]] == ["proven"] * 3
    assert report["stall"]["one_enable_per_stage"]


def test_deep_chain_schedule_with_negations_is_proven(tmp_path):
    from tests.hw.test_network import chain_schedule

    net = _net(3, hidden=(10,), classes=5)
    rng = np.random.default_rng(0)
    for _, layer in net.binary_layers():
        layer.schedule = chain_schedule(layer.weights, rng)
    assert any(layer.schedule.negate.any() for _, layer in net.binary_layers())
    data, desc = build(net, tmp_path, corrections="late", fuse_leaves=True)
    assert prove(data, net, desc)["verdict"] == PROVEN


@pytest.mark.parametrize("classes", [1, 5, 10])
def test_argmax_of_any_class_count_is_proven(tmp_path, classes):
    net = _net(classes, features=6, hidden=(6,), classes=classes)
    data, desc = build(net, tmp_path)
    report = prove(data, net, desc)
    assert report["verdict"] == PROVEN, report["message"]


# --------------------------------------------------------------------------- planted bugs


@pytest.fixture(scope="module")
def engine(tmp_path_factory):
    """A 10-12-8-3 network (threshold inputs), its engine's netlist and spec."""
    # Unclustered weights: no two channels compute the same compare, so a planted bug cannot
    # coincide with another channel and every diagnosis names the channel planted.
    net = _net(7, hidden=(12, 8), classes=3, clustered=False)
    data, desc = build(net, tmp_path_factory.mktemp("engine"), corrections="early")
    assert prove(data, net, desc)["verdict"] == PROVEN
    return net, data, desc


@pytest.mark.parametrize("layer,channel,position", [(1, 4, 3), (3, 2, 7), (5, 1, 5)])
def test_flipped_weight_bit_in_the_specification_is_named(engine, layer, channel, position):
    net, data, desc = engine
    report = prove(data, schedule_network(flip_first_weight(net, layer, channel, position)), desc)
    assert report["verdict"] == DIFFERS
    assert f"layer {layer} " in report["message"] and f"channel {channel} " in report["message"], report["message"]
    entry = next(e for e in report["layers"] if e["layer"] == layer)
    assert entry["status"] == "differs" and entry["channel"] == channel


def test_flipped_weight_bit_in_the_hardware_is_named(tmp_path, engine):
    net, _, _ = engine
    bad = schedule_network(flip_first_weight(net, 3, 5, 2), negation=True)
    data, desc = build(bad, tmp_path, corrections="early")
    report = prove(data, net, desc)
    assert report["verdict"] == DIFFERS
    assert "layer 3 " in report["message"] and "channel 5 " in report["message"], report["message"]


@pytest.mark.parametrize("delta", [1, -1])
def test_threshold_cut_off_by_one_is_named(tmp_path, engine, delta):
    net, _, _ = engine
    bad = copy.deepcopy(net)
    j = live_channel(net, 1)
    bad.layers[2].threshold[j] += 2 * delta  # popcount domain: the cut moves by exactly one
    assert cut_of(bad, 1, j) == cut_of(net, 1, j) + delta * int(net.layers[2].direction[j])
    data, desc = build(bad, tmp_path, corrections="early")
    report = prove(data, net, desc)
    assert report["verdict"] == DIFFERS
    assert f"layer 1 (dense) channel {j} differs" in report["message"] and "threshold" in report["message"]


def test_integer_layer_threshold_off_by_one_is_named(tmp_path):
    net = _net(5, hidden=(8,), input_mode="int", bits=3, signed=True, clustered=False)
    bad = copy.deepcopy(net)
    bad.layers[2].threshold[3] += 1
    data, desc = build(bad, tmp_path)
    report = prove(data, net, desc)
    assert report["verdict"] == DIFFERS and "layer 1 (dense) channel 3 differs" in report["message"], report["message"]


def test_wrong_negation_flag_is_named(tmp_path, engine):
    net, _, _ = engine
    bad = copy.deepcopy(net)
    layer = bad.layers[1]
    # A leaf child: its own sum is the only one the wrong flag changes (a parent's error reaches its children).
    parents = set(layer.schedule.parent.tolist())
    j = int(next(c for c in layer.schedule.order if layer.schedule.parent[c] >= 0 and c not in parents))
    negate = layer.schedule.negate.copy()
    negate[j] = ~negate[j]
    with_schedule(layer, negate=negate)
    data, desc = build(bad, tmp_path, corrections="early")
    report = prove(data, net, desc)
    # The wrong base (N - p instead of p) is a different sum, and may leave the delta unit's range: either way
    # the channel is named.
    assert report["verdict"] in (DIFFERS, NOT_PROVEN)
    assert f"layer 1 (dense) channel {j}" in report["message"], report["message"]


def _stage0_words(data):
    """(cell name, Y bits, interval) of stage 0's arithmetic cells, from one evaluation."""
    netlist = Netlist(copy.deepcopy(data))
    ev = Evaluator(netlist, Space(), {"out_ready": 1, "rst": 0})
    run_deep(lambda: ev.port("out_scores"))
    out = []
    for idx, value in ev._cell_value.items():
        cell = netlist.cells[idx]
        if isinstance(value, Lin) and cell.type in ("$add", "$sub") and "stage0" in cell.name and value.lo >= 0:
            out.append((cell.name, cell.conn["Y"], value.lo, value.hi))
    return sorted(out)


def test_bypassed_pipeline_register_is_not_proven(engine):
    net, data, desc = engine
    bad = copy.deepcopy(data)
    cells = cells_of(bad)
    # A register of a popcount-tree node in stage 0 (layer 1): its readers take its D input directly.
    name, reg = next((n, c) for n, c in sorted(cells.items()) if c["type"] in ("$sdffe", "$dffe")  # data: reset-less
                     and len(c["connections"]["Q"]) > 1 and readers(bad, c["connections"]["Q"][0])
                     and any(nn.startswith("stage0.n") and c["connections"]["Q"] == b["bits"]
                             for nn, b in next(iter(bad["modules"].values()))["netnames"].items()))
    for q, d in zip(reg["connections"]["Q"], reg["connections"]["D"]):
        rewire(bad, q, d)
    del cells[name]
    report = prove(bad, net, desc)
    assert report["verdict"] == NOT_PROVEN
    assert "pipeline alignment" in report["message"] and "layer 1 (dense) channel" in report["message"], report["message"]


def test_dropped_adder_bit_is_caught_only_where_the_range_needs_it(engine):
    net, data, desc = engine
    needed = redundant = None
    for name, ybits, lo, hi in _stage0_words(data):
        for b, bit in enumerate(ybits):
            if not isinstance(bit, int) or not readers(data, bit):
                continue
            if (1 << b) <= hi - lo and hi < (1 << (b + 1)) and needed is None:
                needed = bit
            if hi < (1 << b) and redundant is None:
                redundant = bit
    assert needed is not None and redundant is not None
    bad = copy.deepcopy(data)
    rewire(bad, needed, "0")
    report = prove(bad, net, desc)
    assert report["verdict"] == NOT_PROVEN
    assert "wraps" in report["message"] and "layer 1 (dense) channel" in report["message"], report["message"]
    same = copy.deepcopy(data)
    rewire(same, redundant, "0")
    assert prove(same, net, desc)["verdict"] == PROVEN


def test_out_valid_one_cycle_early_is_caught(engine):
    net, data, desc = engine
    bad = copy.deepcopy(data)
    out_valid = next(iter(bad["modules"].values()))["ports"]["out_valid"]["bits"][0]
    cells = cells_of(bad)
    name, reg = next((n, c) for n, c in cells.items() if c["type"] == "$sdffe" and c["connections"]["Q"] == [out_valid])
    # The output register of valid is bypassed at the port: valid leaves one cycle before the data.
    next(iter(bad["modules"].values()))["ports"]["out_valid"]["bits"] = reg["connections"]["D"]
    report = prove(bad, net, desc)
    assert report["verdict"] == DIFFERS and "latency" in report["message"], report["message"]


@pytest.mark.parametrize("mutation", ["tie_to_higher_index", "picks_the_minimum"])
def test_argmax_bugs_are_not_proven(engine, mutation):
    net, data, desc = engine
    bad = copy.deepcopy(data)
    cells = cells_of(bad)
    compare = next(c for n, c in sorted(cells.items()) if c["type"] == "$gt")
    if mutation == "tie_to_higher_index":
        compare["type"] = "$ge"
    else:
        sel = compare["connections"]["Y"]
        for c in cells.values():
            if c["type"] == "$mux" and c["connections"]["S"] == sel:
                con = c["connections"]
                con["A"], con["B"] = con["B"], con["A"]
    report = prove(bad, net, desc)
    assert report["verdict"] == NOT_PROVEN and "out_class" in report["message"], report["message"]


def test_netlist_ports_that_do_not_match_the_spec_are_bad_input(engine):
    from mstbnn.errors import UserError

    net, data, desc = engine
    bad = copy.deepcopy(data)
    next(iter(bad["modules"].values()))["ports"]["out_scores"]["bits"].pop()
    with pytest.raises(UserError, match="out_scores"):
        prove(bad, net, desc)
