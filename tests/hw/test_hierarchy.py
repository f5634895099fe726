"""Hierarchical RTL: one Verilog module per stage, plain stable names, ports of the flat conversion."""

import re

import numpy as np
import pytest

from mstbnn.compiler.compile import schedule_network
from mstbnn.compiler.random import random_dense_network
from mstbnn.hw.hierarchy import convert_hierarchical, module_names
from mstbnn.hw.network import NetworkEngine
from mstbnn.hw.verilog import TOP_NAME, builtin_yosys, describe, write_rtl


def _three_layer_engine(reuse=True):
    rng = np.random.default_rng(5)
    net = schedule_network(random_dense_network(rng, features=12, hidden=(10, 8), classes=4, bits=4))
    return NetworkEngine(net, reuse=reuse)


def _top_ports(text: str, top: str) -> list[str]:
    """The top module's header and its input / output declarations, in order."""
    body = text[text.index(f"module {top}(") :]
    body = body[: body.index("endmodule")]
    return [body.splitlines()[0]] + [ln.strip() for ln in body.splitlines() if re.match(r"\s*(input|output)\b", ln)]


@pytest.mark.parametrize("reuse", [True, False])
def test_three_layer_engine_has_one_module_per_stage_and_is_byte_identical(tmp_path, reuse):
    paths = []
    for run in ("a", "b"):
        engine = _three_layer_engine(reuse)  # a fresh engine each run: nothing cached between them
        paths.append(write_rtl(engine, describe(engine), tmp_path / run))
    a, b = (p.read_bytes() for p in paths)
    assert a == b
    stages = len(engine.stages)
    assert stages == 4  # three binary layers and the argmax
    names = module_names(a.decode())
    assert names == [TOP_NAME] + [f"{TOP_NAME}_stage{k}" for k in range(stages)]
    # every stage module is instantiated once, from the top
    for k in range(stages):
        assert len(re.findall(rf"^\s*{TOP_NAME}_stage{k} stage{k} \(", a.decode(), re.MULTILINE)) == 1


def test_top_level_ports_are_those_of_the_flat_conversion():
    from amaranth.back import verilog

    engine = _three_layer_engine()
    with builtin_yosys():
        flat = verilog.convert(engine, name=TOP_NAME, emit_src=False)
        ours = convert_hierarchical(_three_layer_engine(), TOP_NAME)
    assert _top_ports(ours, TOP_NAME) == _top_ports(flat, TOP_NAME)
    # Amaranth alone keeps a module for every delta-update and threshold unit
    assert len(module_names(flat)) > 20 > len(module_names(ours))


def test_keep_depth_zero_is_one_flat_module():
    with builtin_yosys():
        text = convert_hierarchical(_three_layer_engine(), TOP_NAME, keep_depth=0)
    assert module_names(text) == [TOP_NAME]
