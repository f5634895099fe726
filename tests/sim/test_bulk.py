"""The compiled bulk harness (mstbnn.sim.bulk): real Verilator runs on small engines, judged bit for bit."""

from __future__ import annotations

import hashlib
import json
import re

import numpy as np
import pytest

from mstbnn.cli import main
from mstbnn.compiler import execute
from mstbnn.compiler.compile import schedule_network
from mstbnn.compiler.io import load, save
from mstbnn.compiler.random import random_dense_network, random_inputs
from mstbnn.sim.bulk import pack_words, simulate_bulk, unpack_signed
from mstbnn.sim.design import Design
from mstbnn.sim.stimulus import pack_beat, split_scores


@pytest.mark.parametrize("width,count,signed", [(3, 12, True), (8, 784, False), (5, 4, True), (1, 64, False),
                                                (17, 3, True)])
def test_pack_and_unpack_agree_with_the_testbench_encoding(width, count, signed):
    rng = np.random.default_rng(width * count)
    lo, hi = (-(1 << (width - 1)), (1 << (width - 1)) - 1) if signed else (0, (1 << width) - 1)
    values = rng.integers(lo, hi, size=(5, count), endpoint=True)
    values[0] = lo
    values[1] = hi
    bits = width * count
    words = 1 if bits <= 32 else 2 if bits <= 64 else (bits + 31) // 32
    packed = pack_words(values, width, words)
    assert packed.shape == (5, words) and packed.dtype == np.dtype("<u4")
    for row, got in zip(values, packed):
        as_int = sum(int(w) << (32 * i) for i, w in enumerate(got))
        assert as_int == pack_beat(row, width)  # the cocotb testbench's encoding
        if signed:
            assert split_scores(as_int, count, width) == row.tolist()
    if signed:
        assert np.array_equal(unpack_signed(packed, count, width), values)


def _bulk_dir(d, sub):
    return d / "sim_build" / sub / "bulk"


@pytest.mark.parametrize("engine", ["unrolled", "folded"])
def test_bulk_is_bit_exact_and_gaps_do_not_change_results(artefacts, engine):
    """Both engines (one port signature): heavy gaps vs none give the same, golden, outputs."""
    d = artefacts["dense"]
    net = load(d)
    sub = "rtl"
    if engine == "folded":
        from mstbnn.hw.spec import EngineSpec, generate

        generate(d, EngineSpec("folded"))
        sub = "rtl-folded"
    design = Design.from_hw_json(d / sub / "mstbnn_top.json")
    x = random_inputs(net, np.random.default_rng(7), 600)
    heavy = simulate_bulk(net, design, x, build_dir=_bulk_dir(d, sub), seed=5, p_valid=0.25, p_ready=0.25)
    free = simulate_bulk(net, design, x, build_dir=_bulk_dir(d, sub), seed=5, p_valid=1.0, p_ready=1.0)
    assert free.build_reused and free.build_seconds == 0.0
    golden = execute.run(net, x, mode="reuse")
    for r in (heavy, free):
        assert r.ok, r.problems()
        assert r.n_exact == 600 and not r.mismatches and r.timeout is None
        assert np.array_equal(r.scores, golden.scores) and np.array_equal(r.classes, golden.classes)
    assert np.array_equal(heavy.scores, free.scores) and np.array_equal(heavy.classes, free.classes)
    # gaps cost cycles; without them the engine's own latency and II show, as the cycle model says
    assert heavy.cycles > free.cycles
    assert set((free.out_cycles - free.last_in_cycles).tolist()) == {design.latency}
    assert set(np.diff(free.out_cycles).tolist()) == {design.initiation_interval}
    summary = heavy.phase_summary()
    assert summary["vectors"] == summary["bit_exact"] == 600 and summary["vectors_per_second"] > 0


def _plant_score_bug(verilog_path, design: Design, trigger_bit: int) -> None:
    """Wrap the top so class 0's score bit 0 flips whenever ``out_scores[trigger_bit]`` is set.

    The engine spec is made to vouch for the planted Verilog (its ``verilog_sha256``), as
    a generator bug would: the spec's own integrity check must not be what catches it.
    """
    text = verilog_path.read_text()
    text, n = re.subn(r"^module mstbnn_top\(", "module mstbnn_top_inner(", text, count=1, flags=re.M)
    assert n == 1
    sw = design.n_classes * design.score_width
    cw = max(1, (design.n_classes - 1).bit_length())
    text += f"""
module mstbnn_top(input clk, input rst, input in_valid, output in_ready, input [{design.in_data_width - 1}:0] in_data,
                  output out_valid, input out_ready, output [{cw - 1}:0] out_class, output [{sw - 1}:0] out_scores);
  wire [{sw - 1}:0] s;
  mstbnn_top_inner inner(.clk(clk), .rst(rst), .in_valid(in_valid), .in_ready(in_ready), .in_data(in_data),
                         .out_valid(out_valid), .out_ready(out_ready), .out_class(out_class), .out_scores(s));
  assign out_scores = s ^ {{{{{sw - 1}{{1'b0}}}}, s[{trigger_bit}]}};
endmodule
"""
    verilog_path.write_text(text)
    spec_file = verilog_path.with_suffix(".json")
    spec = json.loads(spec_file.read_text())
    spec["verilog_sha256"] = hashlib.sha256(text.encode()).hexdigest()
    spec_file.write_text(json.dumps(spec))


def test_planted_rtl_bug_is_caught_by_the_bulk_phase(tmp_path, capsys):
    from mstbnn.hw.spec import EngineSpec, generate

    net = schedule_network(random_dense_network(np.random.default_rng(3), features=10, hidden=(), classes=4))
    save(net, tmp_path)
    generate(tmp_path, EngineSpec("unrolled"))
    design = Design.from_hw_json(tmp_path / "rtl" / "mstbnn_top.json")
    s = design.score_width
    trigger = s + 1  # bit 1 of class 1's score
    x = random_inputs(net, np.random.default_rng(11), 300)
    golden = execute.run(net, x)
    hit = ((golden.scores[:, 1] & ((1 << s) - 1)) >> 1) & 1 == 1
    # vector 0 is clean (so the 1-vector protocol phase passes), later ones are hit
    x = np.concatenate([x[~hit][:1], x])
    hit = np.concatenate([[False], hit])
    first = int(np.flatnonzero(hit)[0])
    assert 0 < first and hit.sum() > 10
    np.savez(tmp_path / "testset.npz", x=x)
    _plant_score_bug(tmp_path / "rtl" / "mstbnn_top.v", design, trigger)
    before = (tmp_path / "rtl" / "mstbnn_top.v").read_text()

    rc = main(["sim", str(tmp_path), "--vectors", "0", "--protocol-vectors", "1"])
    out, err = capsys.readouterr()
    assert rc == 1
    assert f"FAIL: vector {first} (bulk): class" in err and "score of class 0 is" in err
    fig = json.loads((tmp_path / "sim.json").read_text())
    assert fig["ok"] is False and fig["mismatches"] == int(hit.sum()) and fig["bit_exact"] == len(x) - hit.sum()
    assert fig["phases"]["protocol"]["mismatches"] == 0 and fig["phases"]["bulk"]["mismatches"] == int(hit.sum())
    assert fig["divergence"].startswith(f"vector {first}: ")
    assert (tmp_path / "rtl" / "mstbnn_top.v").read_text() == before


def test_bulk_default_writes_both_phases(artefacts, capsys):
    d = artefacts["dense"]
    rc = main(["sim", str(d), "--vectors", "300", "--no-testset", "--protocol-vectors", "12", "--seed", "2"])
    out, err = capsys.readouterr()
    assert rc == 0, err
    assert "300/300 vectors bit-exact" in out and "bulk phase (bulk, verilator): 300/300 bit-exact" in out
    assert "protocol phase (cocotb, verilator): 12/12 bit-exact" in out
    fig = json.loads((d / "sim.json").read_text())
    assert fig["harness"] == "bulk" and fig["protocol_vectors"] == 12 and fig["ok"] is True
    assert fig["vectors"] == fig["bit_exact"] == 300 and fig["timing_ok"] and fig["latency"] == fig["latency_model"]
    bulk, proto = fig["phases"]["bulk"], fig["phases"]["protocol"]
    assert bulk["vectors"] == 300 and proto["vectors"] == 12 and proto["timing_vectors"] == 8
    for key in ("build_seconds", "run_seconds", "vectors_per_second"):
        assert bulk[key] >= 0 and proto[key] >= 0
    assert fig["build_seconds"] == pytest.approx(bulk["build_seconds"] + proto["build_seconds"], abs=0.01)


def test_protocol_vectors_must_be_positive(artefacts, capsys):
    rc = main(["sim", str(artefacts["dense"]), "--protocol-vectors", "0"])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2 and len(err) == 1 and "--protocol-vectors 0" in err[0]


def test_build_dir_with_a_space_is_refused_before_any_work(artefacts, tmp_path):
    from mstbnn.errors import UserError
    from mstbnn.sim.bulk import build_bulk

    design = Design.from_hw_json(artefacts["dense"] / "rtl" / "mstbnn_top.json")
    with pytest.raises(UserError, match="has a space in its path"):
        build_bulk(design, tmp_path / "with space" / "bulk")
    assert not (tmp_path / "with space").exists()
