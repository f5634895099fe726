"""Board bitstreams through amaranth-boards: the UART top on iCEBreaker or ULX3S.

The board's own clock drives the design (12 MHz iCEBreaker, 25 MHz ULX3S);
the build fails, naming its log, when nextpnr cannot meet that clock. The
toolchain is the YoWASP one (``YOSYS``, ``NEXTPNR_*``, ``ICEPACK``, ``ECPPACK``
point at the yowasp-* commands; Amaranth's own Verilog comes from its builtin
yosys so it is reproducible).
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path

from amaranth import Elaboratable, Module
from amaranth.build import ResourceError

from mstbnn.devices import DEVICES, Device
from mstbnn.boards.protocol import BOARD_TIMEOUT_SECONDS, InputFormat
from mstbnn.boards.synth import SYNTH_OPTIONS, NEXTPNR_SEED
from mstbnn.boards.uart_top import UartClassifier
from mstbnn.boards.toolchain import board_build_env, run_tool
from mstbnn.hw.verilog import builtin_yosys
from mstbnn.errors import UserError

__all__ = ["Board", "BOARDS", "get_board", "BoardTop", "uart_divisor", "build_bitstream"]

NAME = "mstbnn"


@dataclass(frozen=True)
class Board:
    """A board amaranth-boards knows, with the device it carries."""

    name: str
    platform: str  # class name in amaranth_boards.<module>
    module: str
    device: str  # key into DEVICES
    clock_hz: float
    bitstream: str  # file name the build writes

    def make_platform(self):
        import importlib

        return getattr(importlib.import_module(f"amaranth_boards.{self.module}"), self.platform)()


BOARDS: dict[str, Board] = {
    b.name: b
    for b in (
        Board("icebreaker", "ICEBreakerPlatform", "icebreaker", "ice40-up5k", 12e6, f"{NAME}.bin"),
        Board("ulx3s-12f", "ULX3S_12F_Platform", "ulx3s", "ecp5-12k", 25e6, f"{NAME}.bit"),
        Board("ulx3s-25f", "ULX3S_25F_Platform", "ulx3s", "ecp5-25k", 25e6, f"{NAME}.bit"),
        Board("ulx3s-45f", "ULX3S_45F_Platform", "ulx3s", "ecp5-45k", 25e6, f"{NAME}.bit"),
        Board("ulx3s-85f", "ULX3S_85F_Platform", "ulx3s", "ecp5-85k", 25e6, f"{NAME}.bit"),
    )
}
_ALIASES = {"ulx3s": "ulx3s-85f"}


def get_board(name: str) -> Board:
    """The board called ``name`` (``ulx3s`` means the 85F); a UserError otherwise."""
    board = BOARDS.get(_ALIASES.get(name, name))
    if board is None:
        raise UserError(f"unknown board {name!r}; choose one of: {', '.join([*BOARDS, *_ALIASES])}")
    return board


def uart_divisor(clock_hz: float, baud: int) -> int:
    """Clocks per UART bit; refuses a baud rate the clock cannot make within 2%."""
    divisor = round(clock_hz / baud)
    if divisor < 4 or abs(clock_hz / divisor - baud) / baud > 0.02:
        raise UserError(f"baud rate {baud} is not reachable within 2% from a {clock_hz / 1e6:g} MHz clock; "
                        f"choose a lower --baud (e.g. 115200)")
    return divisor


class BoardTop(Elaboratable):
    """The UART top on a board: pins from the platform, class shown on the LEDs."""

    def __init__(self, engine, fmt: InputFormat, clock_hz: float, baud: int):
        self.classifier = UartClassifier(engine, fmt, uart_divisor(clock_hz, baud),
                                         max(1, round(clock_hz * BOARD_TIMEOUT_SECONDS)))

    def elaborate(self, platform):
        m = Module()
        m.submodules.classifier = top = self.classifier
        uart = platform.request("uart", 0)
        m.d.comb += [top.rx.eq(uart.rx.i), uart.tx.o.eq(top.tx)]
        for bit in range(len(top.last_class)):
            try:
                led = platform.request("led", bit)
            except ResourceError:
                break
            m.d.comb += led.o.eq(top.last_class[bit])
        return m


def build_bitstream(engine, fmt: InputFormat, board: Board, build_dir, *, baud: int = 115200,
                    stream=None) -> Path:
    """Build ``board``'s bitstream for the UART top around ``engine`` in ``build_dir``.

    Returns the bitstream's path. Tool output goes to ``build_dir/build.log``.
    """
    stream = sys.stderr if stream is None else stream
    device: Device = DEVICES[board.device]
    build_dir = Path(build_dir)
    build_dir.mkdir(parents=True, exist_ok=True)
    (build_dir / board.bitstream).unlink(missing_ok=True)
    top = BoardTop(engine, fmt, board.clock_hz, baud)
    platform = board.make_platform()
    synth_opts = " ".join(SYNTH_OPTIONS[device.family][1:])
    with builtin_yosys():
        plan = platform.prepare(top, name=NAME, synth_opts=synth_opts, nextpnr_opts=f"--seed {NEXTPNR_SEED}")
    plan.extract(build_dir)
    run_tool(["sh", f"{plan.script}.sh"], build_dir, "build.log", f"{board.name} build (yosys, nextpnr, pack)",
             env=board_build_env(device.family), stream=stream)
    out = build_dir / board.bitstream
    if not out.is_file():
        raise UserError(f"{board.name} build finished without {out.name}; see {build_dir / 'build.log'}")
    return out
