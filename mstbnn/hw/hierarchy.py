"""Verilog that keeps the engine's structure: one module per stage.

Amaranth's ``back.verilog.convert`` already emits one Verilog module per
elaborated submodule, named by its dotted hierarchy path
(``\\mstbnn_top.stage0.delta7``): for an unrolled engine that is one module
per stage plus one tiny module per delta-update and threshold unit, hundreds
on an MNIST-class layer, each with escaped names. :func:`convert_hierarchical`
keeps the modules down to ``keep_depth`` levels below the top (the stages, for
the engine) under plain, deterministic names (``mstbnn_top_stage0``) and
flattens everything below them into their stage, with yosys' ``flatten``
pass on Amaranth's builtin yosys. So Verilator, yosys and nextpnr see one
module per stage, and a tool can treat stages separately (Verilator's
``hier_block``, yosys' ``keep_hierarchy``), while the top-level ports stay
exactly those of ``verilog.convert``.

Byte-determinism: module names come from the submodule names
(``stage{k}``), the builtin yosys is used (the caller's
:func:`~mstbnn.hw.verilog.builtin_yosys`), and no source locations are emitted.
"""

from __future__ import annotations

import re

__all__ = ["convert_hierarchical", "kept_module_name", "module_names"]

# One RTLIL module name or cell type: a backslash identifier of dotted path components.
_NAME = r"\\([A-Za-z_][A-Za-z0-9_$]*(?:\.[A-Za-z0-9_$]+)*)"
_MODULE_LINE = re.compile(r"^module " + _NAME + r"$", re.MULTILINE)
_CELL_LINE = re.compile(r"^(\s*cell )" + _NAME + r"( )", re.MULTILINE)
_VERILOG_MODULE = re.compile(r"^module \\?([^\s(]+)\s*\(", re.MULTILINE)


def kept_module_name(path: str) -> str:
    """The plain Verilog name of a kept module: ``top.stage0`` -> ``top_stage0``."""
    return path.replace(".", "_")


def _mark_and_rename(il_text: str, top: str, keep_depth: int) -> str:
    """Give modules down to ``keep_depth`` plain names and ``keep_hierarchy``; leave deeper ones to flatten."""

    def kept(path: str) -> bool:
        parts = path.split(".")
        return parts[0] == top and 1 <= len(parts) - 1 <= keep_depth

    taken = set(_MODULE_LINE.findall(il_text))

    def new_name(path: str) -> str:
        name = kept_module_name(path)
        if name in taken:  # a submodule literally named like the plain form
            raise ValueError(f"module name {name!r} of {path!r} is already used")
        return name

    def module(mt):
        path = mt.group(1)
        if not kept(path):
            return mt.group(0)
        return f"attribute \\keep_hierarchy 1\nmodule \\{new_name(path)}"

    def cell(mt):
        path = mt.group(2)
        if not kept(path):
            return mt.group(0)
        return f"{mt.group(1)}\\{new_name(path)}{mt.group(3)}"

    return _CELL_LINE.sub(cell, _MODULE_LINE.sub(module, il_text))


def convert_hierarchical(elaboratable, name: str, *, keep_depth: int = 1) -> str:
    """Verilog of ``elaboratable`` (a wiring.Component) with modules kept ``keep_depth`` levels deep.

    Same ports, same top-level name and same logic as
    ``amaranth.back.verilog.convert(elaboratable, name=name, emit_src=False)``;
    submodules deeper than ``keep_depth`` are flattened into their kept
    ancestor. Call it inside :func:`~mstbnn.hw.verilog.builtin_yosys` for
    reproducible output.
    """
    from amaranth.back import rtlil
    from amaranth.back.verilog import find_yosys

    if keep_depth < 0:
        raise ValueError("keep_depth must be >= 0")
    il_text = _mark_and_rename(rtlil.convert(elaboratable, name=name, emit_src=False), name, keep_depth)
    # The script of amaranth.back.verilog, plus flatten (which stops at keep_hierarchy modules).
    yosys = find_yosys(lambda ver: ver >= (0, 40))
    script = [
        f"read_rtlil <<rtlil\n{il_text}\nrtlil",
        "proc -nomux -norom",
        "memory_collect",
        "flatten",
        "write_verilog -norename",
    ]
    # As in amaranth.back.verilog: yosys warns that some processes are left for write_verilog.
    return yosys.run(["-q", "-"], "\n".join(script), ignore_warnings=True)


def module_names(verilog_text: str) -> list[str]:
    """The module names a Verilog text defines, in order (escaped names without their backslash)."""
    return _VERILOG_MODULE.findall(verilog_text)
