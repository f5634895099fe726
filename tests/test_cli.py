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
