"""UART top: images in over the serial line, class index out (framing: :mod:`.protocol`).

Received bytes are assembled into one engine beat; a full beat moves to a
holding register that the engine takes through its ``in_valid/in_ready``
handshake, so the engine has a whole byte time (``10 * divisor`` cycles) to
accept before the next beat could complete. Each result's ``out_class`` is
sent back as one byte. After ``timeout_cycles`` of silence in the middle of
an image, the partial image is dropped and the engine is reset, so host and
board cannot stay out of step.
"""

from __future__ import annotations

from amaranth import Module, ResetInserter, Signal
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from mstbnn.boards.protocol import InputFormat
from mstbnn.boards.uart import UARTRx, UARTTx

__all__ = ["UartClassifier"]


class UartClassifier(wiring.Component):
    """Engine + UART receiver/transmitter + framing.

    Parameters
    ----------
    engine : amaranth wiring.Component
        Stream port contract (``in_data`` of ``values_per_beat`` values of
        ``value_width`` bits; ``out_class``).
    fmt : InputFormat
    divisor : int
        Clock cycles per UART bit (clock frequency / baud rate).
    timeout_cycles : int
        Silence that drops a partial image.

    Ports: ``rx`` (in), ``tx`` (out), ``last_class`` (out, for LEDs).
    """

    def __init__(self, engine, fmt: InputFormat, divisor: int, timeout_cycles: int):
        want = fmt.values_per_beat * fmt.value_width
        if len(engine.in_data) != want:
            raise ValueError(f"engine in_data has {len(engine.in_data)} bits; the format needs {want}")
        if fmt.n_classes > 256:
            raise ValueError(f"{fmt.n_classes} classes do not fit the one-byte answer")
        self.engine, self.fmt = engine, fmt
        self.divisor, self.timeout_cycles = divisor, timeout_cycles
        super().__init__({"rx": In(1, init=1), "tx": Out(1, init=1), "last_class": Out(len(engine.out_class))})

    def elaborate(self, platform):
        m = Module()
        fmt = self.fmt
        m.submodules.rx = rx = UARTRx(self.divisor)
        m.submodules.tx = tx = UARTTx(self.divisor)
        m.d.comb += [rx.rx.eq(self.rx), self.tx.eq(tx.tx)]

        engine_reset = Signal()
        m.submodules.engine = ResetInserter(engine_reset)(self.engine)
        engine = self.engine

        nbytes = fmt.bytes_per_beat
        assembly = Signal(8 * nbytes)
        byte_count = Signal(range(nbytes + 1))
        beat_count = Signal(range(fmt.beats_per_image + 1))
        hold = Signal(len(self.engine.in_data))
        hold_valid = Signal()

        # The beat as the engine wants it: the low value_width bits of each value.
        full = Signal(8 * nbytes)
        m.d.comb += full.eq((assembly >> 8) | (rx.data << (8 * (nbytes - 1))))
        bpv, w = 8 * fmt.bytes_per_value, fmt.value_width
        beat = [full[f * bpv:f * bpv + w] for f in range(fmt.values_per_beat)]

        with m.If(engine.in_valid & engine.in_ready):
            m.d.sync += hold_valid.eq(0)
        with m.If(rx.valid):
            with m.If(byte_count == nbytes - 1):
                m.d.sync += [byte_count.eq(0), hold_valid.eq(1)]
                for f, v in enumerate(beat):
                    m.d.sync += hold[f * w:(f + 1) * w].eq(v)
                with m.If(beat_count == fmt.beats_per_image - 1):
                    m.d.sync += beat_count.eq(0)
                with m.Else():
                    m.d.sync += beat_count.eq(beat_count + 1)
            with m.Else():
                m.d.sync += [byte_count.eq(byte_count + 1), assembly.eq(full)]

        # Silence in the middle of an image: drop it and reset the engine.
        idle = Signal(range(self.timeout_cycles + 1))
        mid_image = (byte_count != 0) | (beat_count != 0)
        with m.If(rx.valid | ~mid_image):
            m.d.sync += idle.eq(0)
        with m.Elif(idle == self.timeout_cycles):
            m.d.sync += [idle.eq(0), byte_count.eq(0), beat_count.eq(0), hold_valid.eq(0)]
            m.d.comb += engine_reset.eq(1)
        with m.Else():
            m.d.sync += idle.eq(idle + 1)

        m.d.comb += [
            engine.in_valid.eq(hold_valid),
            engine.in_data.eq(hold),
            tx.data.eq(engine.out_class),
            tx.valid.eq(engine.out_valid),
            engine.out_ready.eq(tx.ready),
        ]
        with m.If(engine.out_valid & tx.ready):
            m.d.sync += self.last_class.eq(engine.out_class)
        return m
