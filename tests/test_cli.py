"""Top-level CLI: help lists commands; `python -m mstbnn` works."""

import subprocess
import sys

from mstbnn.cli import build_parser, main


def test_help_lists_every_command_with_a_description(capsys):
    parser = build_parser()
    sub = next(a for a in parser._actions if a.dest == "command")
    assert "compile" in sub.choices
    for action in sub._choices_actions:
        assert action.help, f"command {action.dest} has no one-line description"


def test_no_command_prints_help_and_exits_2(capsys):
    assert main([]) == 2
    assert "usage: mstbnn" in capsys.readouterr().out


def test_python_dash_m_runs():
    out = subprocess.run([sys.executable, "-m", "mstbnn", "--version"], capture_output=True, text=True, check=True)
    assert out.stdout.startswith("mstbnn ")


import json

import numpy as np
import pytest

from mstbnn.compiler import io
from mstbnn.compiler.compile import schedule_network
from mstbnn.compiler.random import random_dense_network


@pytest.fixture
def artefact(tmp_path):
    io.save(schedule_network(random_dense_network(np.random.default_rng(0), 8, (6,), 3)), tmp_path / "net")
    return tmp_path / "net"


def _old_version(path):
    header = json.loads((path / io.HEADER).read_text())
    header["version"] = 0
    (path / io.HEADER).write_text(json.dumps(header))


@pytest.mark.parametrize(
    "argv, setup, message",
    [
        (["compile", "{tmp}/nope.pt", "-o", "{tmp}/o"], None, "no such file or directory"),
        (["verilog", "{net}"], _old_version, "artefact version 0 is not supported"),
        (["synth", "{net}", "--device", "ice40-xyz"], None, "ice40-xyz"),
        (["train", "--dataset", "{tmp}/missing.npz", "--epochs", "1", "-o", "{tmp}/m.pt"], None, "missing.npz"),
        (["train", "--dataset", "mnist", "--epochs", "1", "-o", "{tmp}/m.pt"], None, "--data-dir"),
        (["sim", "{net}"], None, "run `mstbnn verilog"),
        (["report", "{tmp}"], None, "no compiled network here"),
    ],
)
def test_every_command_fails_with_one_line_and_exit_2(tmp_path, artefact, capsys, argv, setup, message):
    if setup is not None:
        setup(artefact)
    argv = [a.format(tmp=tmp_path, net=artefact) for a in argv]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("mstbnn: error:") and "\n" not in err and message in err
    assert not (tmp_path / "o").exists() and not (tmp_path / "m.pt").exists()
