"""8N1 UART receiver and transmitter (Amaranth), ``divisor`` clocks per bit."""

# No `from __future__ import annotations`: wiring reads the port annotations.

from amaranth import Module, Signal
from amaranth.lib import wiring
from amaranth.lib.cdc import FFSynchronizer
from amaranth.lib.wiring import In, Out

__all__ = ["UARTRx", "UARTTx"]


class _UARTPart(wiring.Component):
    """A receiver or transmitter running at ``divisor`` clocks per bit."""

    def __new__(cls, divisor: int, *args, **kwargs):
        # Refused before the component exists, so Amaranth has no unused component to warn about.
        if divisor < 4:
            raise ValueError(f"UART divisor {divisor} < 4 clocks per bit")
        return super().__new__(cls, *args, **kwargs)

    def __init__(self, divisor: int):
        self.divisor = divisor
        super().__init__()


class UARTRx(_UARTPart):
    """Receiver: ``valid`` pulses for one cycle with ``data`` after each good byte.

    The line is synchronised through two flip-flops, the start bit is
    confirmed half a bit after its falling edge, and each data bit is sampled
    in the middle. A byte whose stop bit is 0 (framing error) is dropped.
    """

    rx: In(1, init=1)
    data: Out(8)
    valid: Out(1)


    def elaborate(self, platform):
        m = Module()
        rx = Signal(init=1)
        m.submodules.sync_rx = FFSynchronizer(self.rx, rx, init=1)
        count = Signal(range(self.divisor))
        bits = Signal(range(8))
        shift = Signal(8)
        m.d.sync += self.valid.eq(0)
        with m.If(count != 0):
            m.d.sync += count.eq(count - 1)
        with m.FSM():
            with m.State("IDLE"):
                with m.If(~rx):
                    m.d.sync += count.eq(self.divisor // 2 - 1)
                    m.next = "START"
            with m.State("START"):
                with m.If(count == 0):
                    with m.If(~rx):
                        m.d.sync += [count.eq(self.divisor - 1), bits.eq(0)]
                        m.next = "DATA"
                    with m.Else():  # a glitch, not a start bit
                        m.next = "IDLE"
            with m.State("DATA"):
                with m.If(count == 0):
                    m.d.sync += [shift.eq((shift >> 1) | (rx << 7)), count.eq(self.divisor - 1),
                                 bits.eq(bits + 1)]
                    with m.If(bits == 7):
                        m.next = "STOP"
            with m.State("STOP"):
                with m.If(count == 0):
                    with m.If(rx):
                        m.d.sync += [self.data.eq(shift), self.valid.eq(1)]
                        m.next = "IDLE"
                    with m.Else():
                        m.next = "BREAK"
            with m.State("BREAK"):  # framing error: wait for the line to go idle
                with m.If(rx):
                    m.next = "IDLE"
        return m


class UARTTx(_UARTPart):
    """Transmitter: takes ``data`` when ``valid & ready``, sends start, 8 bits LSB first, stop."""

    tx: Out(1, init=1)
    data: In(8)
    valid: In(1)
    ready: Out(1)


    def elaborate(self, platform):
        m = Module()
        count = Signal(range(self.divisor))
        left = Signal(range(11))
        frame = Signal(10, init=0x3FF)
        m.d.comb += [self.ready.eq(left == 0), self.tx.eq(frame[0])]
        with m.If(left == 0):
            with m.If(self.valid):
                # stop bit (1), data, start bit (0): shifted out from bit 0
                m.d.sync += [frame.eq((1 << 9) | (self.data << 1)), left.eq(10), count.eq(self.divisor - 1)]
        with m.Elif(count == 0):
            m.d.sync += [frame.eq((frame >> 1) | (1 << 9)), left.eq(left - 1), count.eq(self.divisor - 1)]
        with m.Else():
            m.d.sync += count.eq(count - 1)
        return m
