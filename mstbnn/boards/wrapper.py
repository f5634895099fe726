"""A pin-fitting harness that wraps an engine for standalone synthesis.

An engine's ports are far wider than any package (the digits mlp takes 64
five-bit values in one beat, 320 pins; an iCE40 UP5K in SG48 has 39), and
nextpnr measures Fmax on register-to-register paths only. The harness
therefore registers every pin and loads the input beat through a shift
register, ``chunk`` bits per ``load`` cycle (the whole beat at once where the
package has the pins). Its ports::

    load, data[chunk]   shift ``data`` into the beat register (first chunk ends lowest)
    go                  offer the beat register to the engine (held until accepted)
    take                the engine's out_ready
    busy                a beat is waiting for the engine
    out_valid, out_class   registered result

The engine's full logic stays live: ``out_class`` is the argmax over every
score bit. Only the flip-flops of the harness (beat register, a few control
bits and the class register) are added, and :func:`harness_ffs` counts them.
"""

from __future__ import annotations

from amaranth import Module, Signal
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

__all__ = ["SynthHarness", "choose_chunk", "harness_ffs", "CONTROL_PINS"]

# clk, rst, load, go, take, busy, out_valid
CONTROL_PINS = 7
# Pins kept free on top of the harness' own (nextpnr needs none, but a margin
# keeps a design placeable when a bank is half used by the clock input).
_PIN_MARGIN = 2


def choose_chunk(in_width: int, value_width: int, class_width: int, io_pins: int) -> int:
    """Width of the harness' data port on a package with ``io_pins`` user pins.

    The whole beat when it fits; otherwise one input value per load; otherwise
    as many bits as there are pins left.
    """
    free = io_pins - CONTROL_PINS - class_width - _PIN_MARGIN
    if free < 1:
        raise ValueError(f"{io_pins} pins leave none for data")
    if in_width <= free:
        return in_width
    return min(value_width, free)


def harness_ffs(in_width: int, chunk: int, class_width: int) -> int:
    """Flip-flops the harness adds around the engine."""
    # beat register + data/load/go/take input registers + pending + out_valid/class registers
    return in_width + chunk + 3 + 1 + 1 + class_width


class SynthHarness(wiring.Component):
    """Registered, pin-limited I/O around an engine with the stream port contract.

    Parameters
    ----------
    engine : amaranth wiring.Component
        Has ``in_valid``, ``in_ready``, ``in_data``, ``out_valid``, ``out_ready``,
        ``out_class`` (and ``out_scores``) in the sync domain.
    chunk : int
        Data pins per load cycle (see :func:`choose_chunk`).
    """

    def __init__(self, engine, chunk: int):
        self.engine = engine
        self.in_width = len(engine.in_data)
        self.class_width = len(engine.out_class)
        if not 1 <= chunk <= self.in_width:
            raise ValueError(f"chunk {chunk} outside 1..{self.in_width}")
        self.chunk = chunk
        super().__init__({
            "load": In(1),
            "data": In(chunk),
            "go": In(1),
            "take": In(1),
            "busy": Out(1),
            "out_valid": Out(1),
            "out_class": Out(self.class_width),
        })

    def elaborate(self, platform):
        m = Module()
        m.submodules.engine = engine = self.engine

        load_r = Signal()
        data_r = Signal(self.chunk, reset_less=True)
        go_r = Signal()
        take_r = Signal()
        m.d.sync += [load_r.eq(self.load), data_r.eq(self.data), go_r.eq(self.go), take_r.eq(self.take)]

        beat = Signal(self.in_width, reset_less=True)  # data: no reset net to thousands of FFs
        with m.If(load_r):
            if self.chunk == self.in_width:
                m.d.sync += beat.eq(data_r)
            else:
                # New chunk enters at the top, so the first chunk loaded ends lowest.
                m.d.sync += beat.eq((beat >> self.chunk) | (data_r << (self.in_width - self.chunk)))

        pending = Signal()
        with m.If(engine.in_valid & engine.in_ready):
            m.d.sync += pending.eq(0)
        with m.If(go_r):
            m.d.sync += pending.eq(1)
        m.d.comb += [
            engine.in_valid.eq(pending),
            engine.in_data.eq(beat),
            engine.out_ready.eq(take_r),
            self.busy.eq(pending),
        ]

        valid_r = Signal()
        class_r = Signal(self.class_width, reset_less=True)
        m.d.sync += valid_r.eq(engine.out_valid & take_r)
        with m.If(engine.out_valid & take_r):
            m.d.sync += class_r.eq(engine.out_class)
        m.d.comb += [self.out_valid.eq(valid_r), self.out_class.eq(class_r)]
        return m
