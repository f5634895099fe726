"""Small MST networks with generated Verilog, shared by the simulation tests of one worker."""

from __future__ import annotations

import numpy as np
import pytest

from mstbnn.compiler.compile import schedule_network
from mstbnn.compiler.io import save
from mstbnn.compiler.random import random_conv_network, random_dense_network


def small_network(kind: str):
    """A scheduled (MST) network: dense (int input, 2 hidden layers) or conv (padded conv + pool, dense)."""
    rng = np.random.default_rng(2026)
    if kind == "dense":
        net = random_dense_network(rng, features=12, hidden=(16, 10), classes=4, input_mode="int", bits=3, signed=True)
    else:
        net = random_conv_network(rng, input_shape=(2, 6, 6), convs=((4, 3, 1, 1, True),), hidden=(), classes=3, bits=4)
    return schedule_network(net)


@pytest.fixture(scope="session")
def artefacts(tmp_path_factory):
    """kind -> artefact directory holding network.{json,npz}, rtl/ and rtl-baseline/."""
    from mstbnn.hw.spec import EngineSpec, generate

    root = tmp_path_factory.mktemp("artefacts")
    out = {}
    for kind in ("dense", "conv"):
        net = small_network(kind)
        d = root / kind
        save(net, d)
        generate(d, EngineSpec("unrolled", reuse=True))
        generate(d, EngineSpec("unrolled", reuse=False))
        out[kind] = d
    return out
