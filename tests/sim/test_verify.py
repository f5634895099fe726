"""The simulation flow on a hand-written stand-in engine: values, cycles, protocol, failures.

These need no hardware generator, so they pin down the testbench itself: a
correct engine passes under random gaps and backpressure, and a wrong weight,
a wrong latency model or a wrong II model each fail.
"""

from __future__ import annotations

import copy

import numpy as np
import pytest

from mstbnn.sim import toolchain
from mstbnn.sim.stimulus import random_vectors
from mstbnn.sim.verify import simulate, simulate_and_locate
from tests.sim.standin import standin_network, write_standin

SIMULATORS = [
    pytest.param("verilator"),
    pytest.param(
        "icarus",
        marks=pytest.mark.skipif("icarus" not in toolchain.available_simulators(), reason="iverilog not installed"),
    ),
]


@pytest.mark.parametrize("simulator", SIMULATORS)
@pytest.mark.parametrize(
    "features, classes, bits, signed, latency, interval",
    [(12, 5, 4, False, 2, 1), (9, 3, 5, True, 1, 3)],
)
def test_standin_bit_exact_and_on_model(tmp_path, simulator, features, classes, bits, signed, latency, interval):
    rng = np.random.default_rng(features)
    net = standin_network(rng, features=features, classes=classes, bits=bits, signed=signed)
    design = write_standin(net, tmp_path / "rtl", latency=latency, interval=interval)
    x = random_vectors(net, 150, rng)
    seen = []
    res = simulate(net, design, x, simulator=simulator, build_dir=tmp_path / "build", seed=3, progress=lambda d, t: seen.append((d, t)))
    assert res.ok, res.problems()
    assert res.n_exact == 150 and res.n_vectors == 150
    assert res.latency == latency and res.initiation_interval == interval
    assert np.array_equal(res.classes, res.expected_classes)
    assert seen and seen[-1] == (150 + res.timing_vectors, 150 + res.timing_vectors)
    # random gaps and backpressure really happened: more cycles than a stall-free stream
    assert res.cycles > (150 + res.timing_vectors) * interval + 2 * latency


@pytest.fixture(scope="module")
def flipped(tmp_path_factory):
    """A stand-in whose Verilog has one weight inverted, and its network."""
    tmp = tmp_path_factory.mktemp("flipped")
    rng = np.random.default_rng(7)
    net = standin_network(rng, features=10, classes=4)
    design = write_standin(net, tmp / "rtl", latency=2, interval=1, flip=(2, 5))
    x = random_vectors(net, 60, rng)
    return net, design, x, tmp


def test_wrong_weight_is_reported_with_vector_and_channel(flipped):
    net, design, x, tmp = flipped
    res = simulate_and_locate(
        net, design, x, simulator="verilator", build_dir=tmp / "build",
        generate=lambda prefix, out: write_standin(prefix, out, latency=2, flip=(2, 5)),
    )
    assert not res.ok and not res.bit_exact
    # a flipped weight moves channel 2's sum by +-2 on every vector
    assert len({m.vector for m in res.mismatches if m.phase == "stress"}) == 60
    first = res.mismatches[0]
    assert first.vector == 0 and first.first_class == 2
    assert abs(first.got_score - first.expected_score) == 2
    assert res.divergence == "vector 0: layer 1 (dense, scores), channel 2"
    assert any("vector 0" in p for p in res.problems())


def test_wrong_latency_or_interval_model_fails(flipped):
    net, design, x, tmp = flipped  # values are wrong too; the cycle checks are independent of them
    design = copy.copy(design)
    design.latency = 1  # the model claims one cycle less than the engine takes
    res = simulate(net, design, x, simulator="verilator", build_dir=tmp / "build")
    assert not res.timing_ok and not res.ok
    assert res.latencies == [2]
    assert any("latency measured [2] cycles, analytic model says 1" in p for p in res.problems())
    design.latency, design.initiation_interval = 2, 3  # same build, wrong II model
    res = simulate(net, design, x, simulator="verilator", build_dir=tmp / "build")
    assert res.latencies == [2] and res.intervals == [1] and not res.timing_ok
    assert any("initiation interval measured [1] cycles, analytic model says 3" in p for p in res.problems())
    assert res.build_seconds < 5  # the build was reused


def test_mismatched_design_shape_is_refused(tmp_path):
    rng = np.random.default_rng(0)
    net = standin_network(rng, features=8, classes=3)
    design = write_standin(net, tmp_path / "rtl")
    design.values_per_beat = 7
    with pytest.raises(ValueError, match="design expects 1 of 7"):
        simulate(net, design, random_vectors(net, 2, rng), build_dir=tmp_path / "build")


# --- the real engine (mstbnn.hw) -------------------------------------------------


def _real(artefacts, kind, baseline):
    from mstbnn.compiler.io import load
    from mstbnn.sim.design import Design

    d = artefacts[kind]
    sub = "rtl-baseline" if baseline else "rtl"
    return load(d), Design.from_hw_json(d / sub / "mstbnn_top.json"), d / "sim_build" / sub


@pytest.mark.parametrize("simulator", SIMULATORS)
@pytest.mark.parametrize("kind, baseline", [("dense", False), ("dense", True), ("conv", False)])
def test_generated_engine_is_bit_exact_and_on_its_cycle_model(artefacts, simulator, kind, baseline):
    net, design, build = _real(artefacts, kind, baseline)
    assert design.reuse is not baseline
    rng = np.random.default_rng(4)
    x = random_vectors(net, 60 if kind == "conv" else 300, rng)
    lo, hi = net.input.value_range
    x[0], x[1] = lo, hi
    res = simulate(net, design, x, simulator=simulator, build_dir=build, seed=1)
    assert res.ok, res.problems()
    assert res.n_exact == len(x)
    assert res.latency == design.latency and res.initiation_interval == design.initiation_interval
    if kind == "conv":
        # one pixel per beat: an image takes at least H*W cycles
        assert design.beats_per_image == 36 and design.initiation_interval >= 36


@pytest.mark.slow
@pytest.mark.parametrize("simulator", SIMULATORS)
def test_generated_conv_baseline_is_bit_exact(artefacts, simulator):
    net, design, build = _real(artefacts, "conv", True)
    x = random_vectors(net, 60, np.random.default_rng(5))
    res = simulate(net, design, x, simulator=simulator, build_dir=build, seed=2)
    assert res.ok, res.problems()


@pytest.mark.slow
def test_generator_bug_in_a_hidden_layer_is_located(tmp_path):
    """Hardware generated with one weight of hidden layer 3 flipped: the report names layer 3 and the channel."""
    from mstbnn.compiler import execute
    from mstbnn.compiler.schedule import Schedule
    from mstbnn.hw.spec import EngineSpec
    from mstbnn.sim.generate import design_generator
    from tests.sim.conftest import small_network

    net = small_network("dense")
    assert [l.kind for l in net.layers] == ["input", "dense", "threshold", "dense", "threshold", "dense"]
    broken_layer = 3
    x = random_vectors(net, 40, np.random.default_rng(8))

    def flipped(prefix, channel):
        bad = copy.deepcopy(prefix)
        if len(bad.layers) > broken_layer:
            layer = bad.layers[broken_layer]
            layer.weights[channel, 0] ^= True
            # same tree, correction sets recomputed: the engine really uses the flipped weight
            layer.schedule = Schedule.from_parents(layer.weights, layer.schedule.parent, layer.schedule.negate)
        return bad

    # a channel whose flipped weight changes some vector's scores (through its threshold)
    golden = execute.run(net, x).scores
    channel = next(c for c in range(10) if not np.array_equal(execute.run(flipped(net, c), x).scores, golden))

    generate = design_generator(EngineSpec("unrolled", reuse=True))

    def buggy_generate(prefix, out_dir):
        return generate(flipped(prefix, channel), out_dir)

    design = buggy_generate(net, tmp_path / "rtl")
    res = simulate_and_locate(net, design, x, simulator="verilator", build_dir=tmp_path / "build", generate=buggy_generate)
    assert res.mismatches and not res.ok
    assert f"layer {broken_layer} (dense), channel {channel}:" in res.divergence, res.divergence
