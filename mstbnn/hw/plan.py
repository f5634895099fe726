"""The IR walk both engines share: which stream stages a compiled network needs.

Each engine turns the items into its own components (unrolled: one
XNOR-popcount tree per layer; folded: a schedule-walking datapath).
"""

from __future__ import annotations

from dataclasses import dataclass

from mstbnn.compiler.ir import BinaryConv2d, BinaryDense, InputQuantizer, Threshold, window_output_size
from mstbnn.compiler.schedule import Schedule
from mstbnn.errors import UserError

__all__ = ["stream_items", "BinaryItem", "PoolItem"]


@dataclass(frozen=True)
class PoolItem:
    """An OR max-pool over ``kernel`` x ``kernel`` windows of a (channels, height, width) bit map."""

    channels: int
    height: int
    width: int
    kernel: int
    stride: int

    def params(self) -> tuple:
        return self.channels, self.height, self.width, self.kernel, self.stride

    @property
    def front(self) -> dict:
        """Its inputs arrive as a window front without padding (the cycle models and estimates read this)."""
        return {"kind": "window", "channels": self.channels, "height": self.height, "width": self.width,
                "kernel": self.kernel, "stride": self.stride, "padding": 0}


@dataclass(frozen=True)
class BinaryItem:
    """One binary layer as a stream stage: what either engine needs to build it.

    ``front`` says how its inputs arrive (``{"kind": "vector"}``, a conv
    ``"window"`` or ``"collect"``-ed pixels, with their geometry);
    ``binary`` / ``elem_bits`` / ``elem_signed`` describe its input elements;
    ``threshold`` is None for the score layer; ``quantizer`` is the input
    quantiser, on the first layer only.
    """

    index: int
    layer: BinaryDense | BinaryConv2d
    schedule: Schedule
    front: dict
    binary: bool
    elem_bits: int
    elem_signed: bool
    threshold: Threshold | None
    quantizer: InputQuantizer | None


def stream_items(net, reuse: bool) -> list[BinaryItem | PoolItem]:
    """Walk the IR into stream stages, checking what the stream engines support.

    Returns :class:`PoolItem` and :class:`BinaryItem` s in stream order (a
    binary item's schedule is plain when not ``reuse``).
    """
    layers = net.layers
    if not layers or layers[0].kind != "input":
        raise UserError("network: the first layer must be an InputQuantizer; recompile the artefact")
    quant = layers[0]
    binary_layers = net.binary_layers()
    if not binary_layers:
        raise UserError("network: no binary layer to generate hardware for")
    last_index = binary_layers[-1][0]
    if layers[last_index].kind != "dense":
        raise UserError(f"layer {last_index}: the score layer must be dense for the stream engine (got conv2d)")
    shape = tuple(quant.shape)
    pixels = len(shape) == 3
    binary = quant.mode == "threshold"
    elem_bits = 1 if binary else quant.bits
    elem_signed = False if binary else quant.signed
    first = True
    items = []
    i = 1
    while i < len(layers):
        layer = layers[i]
        if layer.kind == "maxpool":
            c, h, w = shape
            items.append(PoolItem(c, h, w, layer.kernel, layer.stride))
            shape = (c, *window_output_size(h, w, layer.kernel, layer.stride))
            i += 1
            continue
        if layer.kind not in ("dense", "conv2d"):
            raise UserError(f"layer {i}: unexpected {layer.kind} here; the stream engine expects binary, threshold, maxpool")
        threshold = None
        if i != last_index:
            if i + 1 >= len(layers) or layers[i + 1].kind != "threshold":
                raise UserError(f"layer {i}: a hidden binary layer must be followed by a threshold")
            threshold = layers[i + 1]
        if reuse:
            if layer.schedule is None:
                raise UserError(
                    f"layer {i}: no reuse schedule; compile with schedules (mstbnn compile) or generate the baseline (--baseline)"
                )
            schedule = layer.schedule
        else:
            schedule = Schedule.plain(layer.out_channels)
        if layer.kind == "conv2d":
            if not pixels:
                raise UserError(f"layer {i}: conv2d after a dense layer is not supported")
            c, h, w = shape
            front = {"kind": "window", "channels": c, "height": h, "width": w,
                     "kernel": layer.kernel, "stride": layer.stride, "padding": layer.padding}
            shape = (layer.out_channels, *window_output_size(h, w, layer.kernel, layer.stride, layer.padding))
        else:
            if pixels:
                c, h, w = shape
                front = {"kind": "collect", "channels": c, "height": h, "width": w}
            else:
                front = {"kind": "vector"}
            pixels = False
            shape = (layer.out_channels,)
        items.append(BinaryItem(index=i, layer=layer, schedule=schedule, front=front, binary=binary,
                                elem_bits=elem_bits, elem_signed=elem_signed, threshold=threshold,
                                quantizer=quant if first else None))
        first = False
        binary, elem_bits, elem_signed = True, 1, False
        i += 2 if threshold is not None else 1
    return items
