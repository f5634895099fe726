"""The fit check's figures against yosys: small engines held to ESTIMATE_ERROR.

Fit refusals rest on the resource estimate and quote its error; this runs
real yosys on the engine in its pin harness (as ``mstbnn synth`` builds it)
for both engines, both trees and both families. benchmarks/bench_estimate.py
measures the same on larger designs and sets ESTIMATE_ERROR.
"""

import io

import numpy as np
import pytest

from mstbnn.boards.synth import harness_fit, synthesize
from mstbnn.compiler.lutcost import COEFF
from mstbnn.compiler.compile import schedule_network
from mstbnn.compiler.random import random_conv_network, random_dense_network
from mstbnn.devices import get_device
from mstbnn.hw import estimate
from mstbnn.hw.estimate import ESTIMATE_ERROR
from mstbnn.hw.spec import EngineSpec, build_engine

DEVICES = {"ecp5": "ecp5-25k", "ice40": "ice40-hx8k"}
NETS = {
    "dense int3": lambda: random_dense_network(np.random.default_rng(1), 16, (24,), 4, input_mode="int", bits=3),
    "conv": lambda: random_conv_network(np.random.default_rng(4), (1, 8, 8), ((4, 3, 1, 1, True),), classes=10),
}
CASES = [("dense int3", engine, tree, family) for engine in ("unrolled", "folded") for tree in ("plain", "reuse")
         for family in ("ecp5", "ice40")]
CASES += [("conv", engine, "reuse", "ecp5") for engine in ("unrolled", "folded")]


def _engine(name, engine, tree):
    options = {"config": [16, 2]} if engine == "folded" else {}
    return build_engine(schedule_network(NETS[name]()), EngineSpec(engine, reuse=tree == "reuse", options=options))


def _yosys(eng, family, build_dir):
    device = get_device(DEVICES[family])
    got = synthesize(eng, device, build_dir, place=False, stream=io.StringIO())["resources"]
    return device, got["lut"]["used"], got["ff"]["used"]


def _errors(eng, device, luts, ffs):
    fit = harness_fit(eng.plan, device)
    return (fit["luts"] - luts) / luts, (fit["ffs"] - ffs) / ffs


@pytest.mark.parametrize("name,engine,tree,family", CASES)
def test_fit_estimate_is_within_its_quoted_error_of_yosys(tmp_path, name, engine, tree, family):
    eng = _engine(name, engine, tree)
    lut_err, ff_err = _errors(eng, *_yosys(eng, family, tmp_path))
    bound = ESTIMATE_ERROR[engine]
    assert abs(lut_err) <= bound and abs(ff_err) <= bound, (lut_err, ff_err, bound)


def test_check_fails_when_the_estimate_drops_a_part(tmp_path, monkeypatch):
    eng = _engine("dense int3", "unrolled", "reuse")
    measured = _yosys(eng, "ecp5", tmp_path)
    bound = ESTIMATE_ERROR["unrolled"]
    lut_err, ff_err = _errors(eng, *measured)
    assert abs(lut_err) <= bound and abs(ff_err) <= bound
    # Planted faults: the unregistered adders priced at nothing; the first layer's registers forgotten.
    with monkeypatch.context() as m:
        m.setitem(COEFF["ecp5"]["luts"], "comb_add_bits", 0.0)
        assert abs(_errors(eng, *measured)[0]) > bound
    first = eng.plan.stages[0]
    with monkeypatch.context() as m:
        m.setattr(estimate, "stage_features",
                  lambda stage, real=estimate.stage_features: {**real(stage), "ffs": 0} if stage is first else real(stage))
        assert abs(_errors(eng, *measured)[1]) > bound
