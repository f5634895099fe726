"""The serial framing between a host and the board's UART top (no hardware imports).

Host to board, per image: every raw input value, ``bytes_per_value`` bytes
each, little-endian two's complement (the board keeps the low ``value_width``
bits). Value order is the engine's beat order: a dense-first network sends
the flattened input; a conv-first network sends pixels in raster order
(row, then column), all channels of a pixel together, channel 0 first.

Board to host, per image: one byte, the class index.

There is no header: the board drops a partly received image (and resets the
engine) after ``timeout`` of silence on its receive line, so a host
resynchronises by pausing longer than that (see :data:`RESYNC_SECONDS`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from mstbnn.compiler.ir import int_range

__all__ = ["InputFormat", "format_from_network", "encode_image", "encode_images", "RESYNC_SECONDS",
           "BOARD_TIMEOUT_SECONDS"]

# The board's silence timeout; a host pausing RESYNC_SECONDS always resynchronises.
BOARD_TIMEOUT_SECONDS = 0.02
RESYNC_SECONDS = 0.1


@dataclass(frozen=True)
class InputFormat:
    """How one image travels on the wire and into the engine.

    Attributes
    ----------
    shape : tuple of int
        One input's shape, ``(F,)`` or ``(C, H, W)``.
    value_width : int
        Bits per value in the engine's ``in_data``.
    signed : bool
    values_per_beat : int
        Values in one engine beat: F for dense-first, C for conv-first.
    n_classes : int
    """

    shape: tuple
    value_width: int
    signed: bool
    values_per_beat: int
    n_classes: int

    @property
    def bytes_per_value(self) -> int:
        return (self.value_width + 7) // 8

    @property
    def beats_per_image(self) -> int:
        return int(np.prod(self.shape)) // self.values_per_beat

    @property
    def bytes_per_beat(self) -> int:
        return self.values_per_beat * self.bytes_per_value

    @property
    def bytes_per_image(self) -> int:
        return self.beats_per_image * self.bytes_per_beat

    @property
    def is_conv(self) -> bool:
        return len(self.shape) == 3


def format_from_network(net) -> InputFormat:
    """The wire format of a compiled :class:`~mstbnn.compiler.ir.Network`."""
    inp = net.layers[0]
    shape = tuple(int(s) for s in inp.shape)
    per_beat = shape[0] if len(shape) == 3 else int(np.prod(shape))
    return InputFormat(shape=shape, value_width=int(inp.bits), signed=bool(inp.signed),
                       values_per_beat=per_beat, n_classes=int(net.n_classes))


def beat_values(fmt: InputFormat, x: np.ndarray) -> np.ndarray:
    """One image's values in wire / beat order, shape (beats, values_per_beat)."""
    x = np.asarray(x, dtype=np.int64)
    if x.shape != fmt.shape:
        raise ValueError(f"image has shape {x.shape}; expected {fmt.shape}")
    if fmt.is_conv:
        return x.transpose(1, 2, 0).reshape(-1, fmt.values_per_beat)
    return x.reshape(1, -1)


def encode_image(fmt: InputFormat, x: np.ndarray) -> bytes:
    """The bytes the host sends for one image."""
    vals = beat_values(fmt, x).reshape(-1)
    lo, hi = int_range(fmt.value_width, fmt.signed)
    if vals.size and (vals.min() < lo or vals.max() > hi):
        raise ValueError(f"input values span {vals.min()}..{vals.max()}; the network takes {lo}..{hi}")
    mask = (1 << (8 * fmt.bytes_per_value)) - 1
    out = bytearray()
    for v in vals.tolist():
        out += (int(v) & mask).to_bytes(fmt.bytes_per_value, "little")
    return bytes(out)


def encode_images(fmt: InputFormat, xs) -> bytes:
    """The bytes for a batch of images, back to back."""
    return b"".join(encode_image(fmt, x) for x in xs)
