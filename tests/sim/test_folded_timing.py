"""The timing check against the folded engine's flow model: the first image enters an empty pipeline.

Issue 16: a 28x28 MNIST cnn's folded engine was bit-exact, yet `sim` failed with
`initiation interval measured [30441, 50597] cycles, analytic model says 50597`: a
padded first conv inserts image 0's top pads at once, so the first input interval is
shorter than the II. The model now predicts every interval of the timing phase, and
the check compares each one, then the steady state against the II.
"""

from __future__ import annotations

import numpy as np
import pytest

from mstbnn.sim.verify import SimResult

II, LAT = 50597, 1234


def _result(measured: dict, model: dict, ii_model: int = II, n: int = 8) -> SimResult:
    gaps = sorted(set(measured["input_intervals"]) | set(measured["output_intervals"]))
    return SimResult(
        simulator="verilator", n_vectors=n, n_exact=n, mismatches=[], latency_model=LAT, ii_model=ii_model,
        latencies=sorted(set(measured["latencies"])), intervals=gaps, cycles=0, sim_seconds=1.0, build_seconds=0.0,
        protocol_errors=[], timeout=None, classes=np.zeros(n, dtype=np.int64), scores=np.zeros((n, 1), dtype=np.int64),
        expected_classes=np.zeros(n, dtype=np.int64), timing_vectors=n, flow_model=model, measured_flow=measured)


def _flow(first: int = 30441, ii: int = II, lat: int = LAT) -> dict:
    return {"input_intervals": [first] + [ii] * 6, "output_intervals": [ii] * 7, "latencies": [lat] * 8, "steady_from": 0}


def test_short_first_interval_predicted_by_the_model_passes():
    res = _result(_flow(), dict(_flow(), images=8))
    assert res.timing_ok and res.ok, res.problems()
    assert res.initiation_interval == II and res.intervals == [30441, II]


@pytest.mark.parametrize("measured, model, ii_model, says", [
    (_flow(first=30442), _flow(), II, "input interval measured [30442, "),   # first interval off by one
    (_flow(), _flow(), II - 1, "initiation interval measured 50597 cycles in the steady state, analytic model says 50596"),  # wrong II
    (_flow(ii=II + 1, first=30441), _flow(), II, "output interval measured [50598, "),  # steady state off
    (_flow(lat=LAT + 1), _flow(), II, "latency per image measured [1235, "),
])
def test_any_interval_off_the_model_fails(measured, model, ii_model, says):
    res = _result(measured, dict(model, images=8), ii_model)
    assert not res.timing_ok and not res.ok
    assert any(says in p for p in res.problems()), res.problems()


@pytest.mark.slow
def test_folded_conv_engine_in_verilator_on_its_flow_model(tmp_path):
    """The real folded engine of a padded conv network: the first input interval is shorter than the II,
    and the simulation passes because the model predicts it."""
    from mstbnn.compiler.compile import schedule_network
    from mstbnn.compiler.io import save
    from mstbnn.compiler.random import random_conv_network
    from mstbnn.hw.spec import EngineSpec, generate
    from mstbnn.sim.design import Design
    from mstbnn.sim.stimulus import random_vectors
    from mstbnn.sim.verify import simulate

    rng = np.random.default_rng(0)
    net = schedule_network(random_conv_network(rng, input_shape=(1, 8, 8), convs=((4, 3, 1, 1, True), (8, 3, 1, 1, True)),
                                               classes=4))
    save(net, tmp_path)
    verilog = generate(tmp_path, EngineSpec("folded", reuse=True, options={"config": [[8, 2]] * 3}))
    design = Design.from_hw_json(verilog.with_suffix(".json"))
    res = simulate(net, design, random_vectors(net, 12, rng), build_dir=tmp_path / "build", seed=1)
    assert res.ok, res.problems()
    assert res.measured_flow["input_intervals"][0] < design.initiation_interval == res.initiation_interval
    # two intervals seen: the check before the fix (one interval throughout, equal to the II) failed here
    assert res.intervals == [res.measured_flow["input_intervals"][0], design.initiation_interval]
