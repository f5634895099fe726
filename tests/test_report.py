"""`mstbnn report`: report.md with plots from an artefact; clear errors otherwise."""

import numpy as np

from mstbnn.cli import main
from mstbnn.compiler import io
from mstbnn.compiler.compile import schedule_network
from mstbnn.compiler.random import random_dense_network


def test_report_writes_markdown_and_plots(tmp_path, capsys):
    rng = np.random.default_rng(2)
    net = random_dense_network(rng, 16, (20,), 4)
    io.save(schedule_network(net), tmp_path / "mst")
    io.save(schedule_network(random_dense_network(rng, 16, (20,), 4, clustered=False)), tmp_path / "plain")
    assert main(["report", str(tmp_path / "mst"), "--compare", str(tmp_path / "plain")]) == 0
    text = (tmp_path / "mst" / "report.md").read_text()
    assert "## XNOR reduction" in text and "| total |" in text
    for png in ("xnor_per_layer.png", "mst_tree.png", "hamming_hist.png"):
        assert (tmp_path / "mst" / png).read_bytes()[:4] == b"\x89PNG"


def test_report_on_missing_artefact_exits_2(tmp_path, capsys):
    assert main(["report", str(tmp_path)]) == 2
    assert "no compiled network here" in capsys.readouterr().err


def test_report_needs_schedules(tmp_path, capsys):
    io.save(random_dense_network(np.random.default_rng(0), 8, (4,), 2), tmp_path)
    assert main(["report", str(tmp_path)]) == 2
    assert "run `mstbnn compile`" in capsys.readouterr().err
