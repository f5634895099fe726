"""Exact cycle model of the stream engine: latency and initiation interval.

The model replays the engine's flow control, not its data: per stage the
valid bits of its pipeline registers and its front end's position counter,
with exactly the RTL's rules (see :mod:`mstbnn.hw.layers`)::

    en_k       = not out_valid_k or ready_k          (ready of the last stage = out_ready)
    in_ready_k = en_k and not (window front on a pad position)
    on en_k:     valid_k[0] <- front completes an input/window/image this cycle
                 valid_k[i] <- valid_k[i - 1]

Closed forms for the common cases (checked against this model and the
Amaranth simulation in the tests):

- dense-only network of stages with depths D_k (binary stages, then the
  argmax stage with D = 1): latency = sum_k (D_k + 1), II = 1;
- a first conv layer on an H x W image with padding p has
  (H + 2p) * (W + 2p) positions per image, so II = (H + 2p) * (W + 2p)
  (pad positions are inserted while ``in_ready`` is low).

Later padded convs can stall their upstream stage in some cycles; the model
captures that exactly, which a closed form would not.
"""

from __future__ import annotations

from mstbnn.compiler.ir import window_output_size

__all__ = ["simulate_flow", "cycle_model"]


class FrontCounter:
    """Position counter of a front end: which beat completes a vector/window/image, where the pads are."""

    def __init__(self, spec: dict):
        self.kind = spec["kind"]
        self.pos = 0
        if self.kind == "window":
            h, w, k, s, p = (spec[key] for key in ("height", "width", "kernel", "stride", "padding"))
            self.hp, self.wp = h + 2 * p, w + 2 * p
            oh, ow = window_output_size(h, w, k, s, p)
            self.pad = [
                (y < p or y >= h + p) or (x < p or x >= w + p) for y in range(self.hp) for x in range(self.wp)
            ]
            self.ends = [
                y >= k - 1 and (y - k + 1) % s == 0 and (y - k + 1) // s < oh and x >= k - 1 and (x - k + 1) % s == 0 and (x - k + 1) // s < ow
                for y in range(self.hp)
                for x in range(self.wp)
            ]
            self.period = self.hp * self.wp
        elif self.kind == "collect":
            self.period = spec["height"] * spec["width"]
        else:
            self.period = 1

    def on_pad(self) -> bool:
        return self.kind == "window" and self.pad[self.pos]

    def step(self, in_valid: bool) -> tuple[bool, bool]:
        """One enabled cycle: returns (valid into stage 0, consumed an input beat)."""
        if self.kind == "vector":
            return in_valid, in_valid
        if self.kind == "collect":
            if not in_valid:
                return False, False
            done = self.pos == self.period - 1
            self.pos = (self.pos + 1) % self.period
            return done, True
        pad = self.pad[self.pos]
        if not (pad or in_valid):
            return False, False
        done = self.ends[self.pos]
        self.pos = (self.pos + 1) % self.period
        return done, not pad


def simulate_flow(stages: list[dict], beats_per_image: int, images: int, max_cycles: int = 10_000_000):
    """Replay the flow control with a source that is always valid and a sink always ready.

    Parameters
    ----------
    stages : list of dict
        Each stage's ``timing`` (front end spec plus ``depth``).
    beats_per_image : int
        Input beats per image (1 for dense-first, H * W for conv-first).
    images : int

    Returns
    -------
    (last_beat, out) : lists of int
        Cycle of each image's last input handshake, and of each output beat.
    """
    fronts = [FrontCounter(s) for s in stages]
    valids = [[False] * (s["depth"] + 1) for s in stages]
    total = beats_per_image * images
    sent = 0
    last_beat, out = [], []
    cycle = 0
    while len(out) < images:
        if cycle > max_cycles:
            raise RuntimeError("flow model did not finish: the pipeline is stuck")
        n = len(stages)
        en = [False] * n
        ready = True  # sink
        for k in range(n - 1, -1, -1):
            en[k] = (not valids[k][-1]) or ready
            ready = en[k] and not fronts[k].on_pad()
        out_valid = [v[-1] for v in valids]
        if out_valid[-1]:
            out.append(cycle)
        updates = []
        for k in range(n):
            if not en[k]:
                updates.append(None)
                continue
            in_valid = (sent < total) if k == 0 else out_valid[k - 1]
            v0, consumed = fronts[k].step(in_valid)
            if k == 0 and consumed:
                sent += 1
                if sent % beats_per_image == 0:
                    last_beat.append(cycle)
            updates.append(v0)
        for k in range(n):
            if updates[k] is not None:
                valids[k] = [updates[k]] + valids[k][:-1]
        cycle += 1
    return last_beat, out


def cycle_model(stages: list[dict], beats_per_image: int, images: int = 6) -> tuple[int, int]:
    """(latency, initiation interval) of the engine.

    latency: cycles from the handshake of image 0's last input beat to its
    ``out_valid``, with an always-valid source and always-ready sink.
    II: cycles between consecutive outputs in steady state (the largest gap
    among the later images, which is the period once the pipeline is full).
    """
    last_beat, out = simulate_flow(stages, beats_per_image, images)
    latency = out[0] - last_beat[0]
    gaps = [b - a for a, b in zip(out[1:], out[2:])] or [out[-1] - out[0] if len(out) > 1 else 1]
    return latency, max(gaps)
