"""cocotb testbench for a generated network top (run through :mod:`mstbnn.sim.verify`).

Not collected by pytest (the name is tb_*). The parent process writes a JSON
config and names it in the environment variable ``MSTBNN_SIM_CONFIG``; this
module streams the vectors through the DUT and writes what it saw to the
config's ``result`` path. Judging (bit-exactness, cycle model) happens in the
parent, from that file, so the verdict does not depend on how cocotb reports.

Two phases, one clock:

1. timing: the first ``timing_vectors`` vectors back to back, ``in_valid``
   held high and ``out_ready`` high: no stalls, so every image's latency
   (cycles from the handshake of its last input beat to its ``out_valid``)
   and the spacing of consecutive outputs are the engine's own.
2. stress: every vector, with random gaps on ``in_valid`` (probability
   ``p_valid`` per cycle) and random backpressure on ``out_ready``
   (``p_ready``).

Signals are driven just after the falling edge and sampled in the read-only
phase before the next rising edge, so a handshake seen here is the one the
DUT takes at that rising edge, whatever the simulator's scheduling.
"""

from __future__ import annotations

import json
import os
import random
import time

import cocotb
from cocotb.clock import Clock
from cocotb.triggers import FallingEdge, ReadOnly, Timer

from mstbnn.artefact import atomic_write

CONFIG_ENV = "MSTBNN_SIM_CONFIG"


def _signed_scores(word: int, n_classes: int, width: int) -> list[int]:
    mask = (1 << width) - 1
    sign = 1 << (width - 1)
    out = []
    for c in range(n_classes):
        v = (word >> (c * width)) & mask
        out.append(v - (1 << width) if v & sign else v)
    return out


def _unsigned(value) -> int:
    """A port value as an unsigned integer, whatever its width.

    cocotb hands back a ``Logic`` for a 1-bit port (a 2-class network's
    ``out_class``, a 1-input layer's ``in_data``) and a ``LogicArray`` for a
    wider one; only the array has ``to_unsigned``.
    """
    to_unsigned = getattr(value, "to_unsigned", None)
    return int(to_unsigned()) if to_unsigned is not None else int(value)


def _unknown_signals(dut, limit: int = 40) -> list[str]:
    """Names of internal signals currently holding X/Z (a hint where they come from)."""
    found = []
    stack = [dut]
    while stack and len(found) < limit:
        handle = stack.pop()
        try:
            children = list(handle)
        except TypeError:
            children = []
        for child in children:
            try:
                value = child.value
            except Exception:  # noqa: BLE001 - scopes, arrays, constants: descend instead
                stack.append(child)
                continue
            if hasattr(value, "is_resolvable") and not value.is_resolvable:
                found.append(f"{child._path}={value}")
            elif not hasattr(value, "is_resolvable"):
                stack.append(child)
    return found


async def _settle_combinational_blocks(dut) -> int:
    """Evaluate every ``always @*`` block once at time 0 (4-state simulators).

    yosys' write_verilog makes each ``always @*`` block read a reg declared
    ``= 0`` so that the initialisation wakes it at time 0; Icarus applies
    declaration initialisers without an event, so blocks whose inputs keep
    their initial values stay X until an input changes (amaranth#418,
    yosys#2271). Toggling those trigger regs performs the wake-up the
    generated code intends. Returns how many were toggled.
    """
    triggers = []
    stack = [dut]
    while stack:
        handle = stack.pop()
        try:
            children = list(handle)
        except TypeError:
            continue
        for child in children:
            name = child._name
            if "dump_module" in name and "verilog_backend" in name:
                triggers.append(child)
            elif not hasattr(child, "value") or type(child).__name__ == "HierarchyObject":
                stack.append(child)
    for value in (1, 0):
        for t in triggers:
            t.value = value
        await Timer(1, unit="ns")
    return len(triggers)


class _Streamer:
    def __init__(self, dut, cfg: dict):
        self.dut = dut
        self.cfg = cfg
        self.beats = cfg["beats"]
        self.n_classes = cfg["n_classes"]
        self.score_width = cfg["score_width"]
        self.cycle = 0
        self.progress_path = cfg.get("progress")
        self.progress_total = cfg["progress_total"]
        self.progress_done = 0
        self.last_progress_write = 0.0
        self.protocol_errors: list[str] = []
        self.x_report: list[str] = []  # internal signals holding X/Z when an output first did

    def _report_progress(self, force: bool = False) -> None:
        if not self.progress_path:
            return
        now = time.monotonic()
        if force or now - self.last_progress_write > 0.2:
            self.last_progress_write = now
            atomic_write(self.progress_path, f"{self.progress_done} {self.progress_total}\n")

    async def drain(self, cycles: int) -> None:
        """Idle with ``out_ready`` high: every vector is out, so ``out_valid`` must stay low."""
        dut = self.dut
        for _ in range(cycles):
            await FallingEdge(dut.clk)
            self.cycle += 1
            dut.in_valid.value = 0
            dut.out_ready.value = 1
            await ReadOnly()
            if dut.out_valid.value:
                self.protocol_errors.append(f"cycle {self.cycle}: out_valid with no vector left to answer (spurious output)")
                return

    async def stream(self, indices: list[int], p_valid: float, p_ready: float, rng: random.Random) -> dict:
        """Send the vectors ``indices`` in order; collect one output per vector."""
        dut = self.dut
        beats = [(i, b, word) for i in indices for b, word in enumerate(self.beats[i])]
        last_beat = {i: len(self.beats[i]) - 1 for i in indices}
        n_out = len(indices)
        pos = 0
        offering = False  # in_valid is high and must stay so (with its data) until taken
        pending_out = None  # (class, scores) seen with out_valid high but out_ready low
        first_in, last_in, out_cycles = [], [], []
        classes, scores = [], []
        stall_limit = self.cfg["stall_limit"]
        idle = 0
        while len(classes) < n_out:
            await FallingEdge(dut.clk)
            self.cycle += 1
            if pos < len(beats):
                if not offering:
                    offering = p_valid >= 1.0 or rng.random() < p_valid
                    if offering:
                        dut.in_data.value = beats[pos][2]
                dut.in_valid.value = 1 if offering else 0
            else:
                offering = False
                dut.in_valid.value = 0
            ready = p_ready >= 1.0 or rng.random() < p_ready
            dut.out_ready.value = 1 if ready else 0
            await ReadOnly()
            idle += 1
            if offering and dut.in_ready.value:
                img, beat, _ = beats[pos]
                if beat == 0:
                    first_in.append(self.cycle)
                if beat == last_beat[img]:
                    last_in.append(self.cycle)
                pos += 1
                offering = False
                idle = 0
            if dut.out_valid.value:
                cls_v, sc_v = dut.out_class.value, dut.out_scores.value
                if cls_v.is_resolvable and sc_v.is_resolvable:
                    cls = _unsigned(cls_v)
                    sc = _signed_scores(_unsigned(sc_v), self.n_classes, self.score_width)
                else:
                    # X/Z under a 4-state simulator: an output that depends on uninitialised state
                    if len(self.protocol_errors) < 20:
                        self.protocol_errors.append(
                            f"cycle {self.cycle}: out_valid high with X/Z on out_class={cls_v} or out_scores={sc_v}"
                        )
                    cls, sc = -1, [None] * self.n_classes
                    if not self.x_report:
                        self.x_report = _unknown_signals(dut)
                if pending_out is not None and pending_out != (cls, sc):
                    self.protocol_errors.append(
                        f"cycle {self.cycle}: out_class/out_scores changed while out_valid was held without out_ready"
                    )
                if ready:
                    classes.append(cls)
                    scores.append(sc)
                    out_cycles.append(self.cycle)
                    pending_out = None
                    idle = 0
                    self.progress_done += 1
                    self._report_progress()
                else:
                    pending_out = (cls, sc)
            elif pending_out is not None:
                self.protocol_errors.append(f"cycle {self.cycle}: out_valid dropped before out_ready took the output")
                pending_out = None
            if idle > stall_limit:
                return {
                    "timeout": f"no handshake for {stall_limit} cycles after {len(classes)}/{n_out} outputs",
                    "classes": classes,
                    "scores": scores,
                    "first_in": first_in,
                    "last_in": last_in,
                    "out_cycles": out_cycles,
                }
        return {
            "timeout": None,
            "classes": classes,
            "scores": scores,
            "first_in": first_in,
            "last_in": last_in,
            "out_cycles": out_cycles,
        }


@cocotb.test()
async def stream_vectors(dut):
    """Stream every configured vector through the DUT and record what comes out."""
    with open(os.environ[CONFIG_ENV]) as f:
        cfg = json.load(f)
    rng = random.Random(cfg["seed"])
    # inputs defined before the first clock edge: a 4-state simulator would
    # otherwise clock X into registers that reset does not clear
    dut.rst.value = 1
    dut.in_valid.value = 0
    dut.out_ready.value = 0
    dut.in_data.value = 0
    await Timer(1, unit="ns")
    if "icarus" in cocotb.SIM_NAME.lower():
        await _settle_combinational_blocks(dut)
    Clock(dut.clk, 10, unit="ns").start()
    for _ in range(3):
        await FallingEdge(dut.clk)
    dut.rst.value = 0

    streamer = _Streamer(dut, cfg)
    n = len(cfg["beats"])
    result = {"n_vectors": n}

    timing_idx = list(range(min(cfg["timing_vectors"], n)))
    t0 = time.monotonic()
    start = streamer.cycle
    result["timing"] = await streamer.stream(timing_idx, 1.0, 1.0, rng)
    result["timing"]["start_cycle"] = start

    if result["timing"]["timeout"] is None:
        await streamer.drain(cfg["drain_cycles"])  # the stress phase starts from an idle engine
        start = streamer.cycle
        result["stress"] = await streamer.stream(list(range(n)), cfg["p_valid"], cfg["p_ready"], rng)
        result["stress"]["start_cycle"] = start
        if result["stress"]["timeout"] is None:
            await streamer.drain(cfg["drain_cycles"])
    result["cycles"] = streamer.cycle
    result["wall_seconds"] = time.monotonic() - t0
    result["protocol_errors"] = streamer.protocol_errors[:20]
    result["x_signals"] = streamer.x_report
    streamer._report_progress(force=True)

    atomic_write(cfg["result"], json.dumps(result))
