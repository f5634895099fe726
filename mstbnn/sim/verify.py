"""Simulate a generated top on input vectors and judge it against the golden executor.

:func:`simulate` builds the Verilog (build directory kept and reused), runs
:mod:`mstbnn.sim.tb_network` through cocotb's runner, and returns a
:class:`SimResult`: every output compared with the golden executor (class and
every integer score, no tolerance), the measured latency and initiation
interval against the generator's analytic model, protocol checks on the
output stream, and the simulation speed.
"""

from __future__ import annotations

import json
import os
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from mstbnn.compiler.ir import Network
from mstbnn.sim import toolchain
from mstbnn.sim.design import Design
from mstbnn.sim.stimulus import expected_outputs, pack_beat, to_beats

__all__ = ["Mismatch", "SimResult", "simulate", "simulate_and_locate", "locate", "TB_MODULE", "TIMING_VECTORS"]

TB_MODULE = "mstbnn.sim.tb_network"
TIMING_VECTORS = 8  # streamed first, without stalls, to measure latency and II


@dataclass
class Mismatch:
    """One output that differs from the golden executor."""

    vector: int
    phase: str
    expected_class: int
    got_class: int
    first_class: int  # lowest class index whose score differs (-1: only the argmax differs)
    expected_score: int
    got_score: int | None  # None: X/Z on the port

    def describe(self) -> str:
        if self.got_score is None:
            return f"vector {self.vector} ({self.phase}): score of class {self.first_class} is X/Z, expected {self.expected_score}"
        if self.first_class >= 0:
            return (
                f"vector {self.vector} ({self.phase}): class {self.got_class} (expected {self.expected_class}); "
                f"score of class {self.first_class} is {self.got_score}, expected {self.expected_score}"
            )
        return f"vector {self.vector} ({self.phase}): class {self.got_class}, expected {self.expected_class} (scores equal)"


@dataclass
class SimResult:
    """Outcome of one simulation run."""

    simulator: str
    n_vectors: int
    n_exact: int
    mismatches: list
    latency_model: int
    ii_model: int
    latencies: list  # distinct latencies measured without stalls
    intervals: list  # distinct image-to-image intervals measured without stalls
    cycles: int
    sim_seconds: float
    build_seconds: float
    protocol_errors: list
    timeout: str | None
    classes: np.ndarray
    scores: np.ndarray
    expected_classes: np.ndarray
    timing_vectors: int
    divergence: str | None = None
    extra: dict = field(default_factory=dict)
    # the generator's exact model of the first images (folded engine: the first image enters an empty
    # pipeline, so its interval may be shorter than the II), and what the timing phase measured
    flow_model: dict | None = None
    measured_flow: dict = field(default_factory=dict)

    @property
    def latency(self) -> int | None:
        return self.latencies[0] if len(self.latencies) == 1 else None

    @property
    def initiation_interval(self) -> int | None:
        """The measured II: the one interval seen, or (with a flow model) the last, steady-state one."""
        if len(self.intervals) == 1:
            return self.intervals[0]
        if self.flow_model is None:
            return None
        steady = self.measured_flow.get("output_intervals", [])[int(self.flow_model["steady_from"]):]
        return max(steady) if steady else None

    @property
    def timing_ok(self) -> bool:
        return not self._timing_problems()

    def _timing_problems(self) -> list[str]:
        if self.flow_model is None:  # one latency, one interval throughout
            out = []
            if self.latencies != [self.latency_model]:
                out.append(f"latency measured {self.latencies} cycles, analytic model says {self.latency_model}")
            if self.timing_vectors >= 2 and self.intervals != [self.ii_model]:
                out.append(f"initiation interval measured {self.intervals} cycles, analytic model says {self.ii_model}")
            return out
        # every image of the timing phase against the model, then the steady state against the II
        out, n = [], self.timing_vectors
        for key, what, count in (("latencies", "latency per image", n), ("input_intervals", "input interval", n - 1),
                                 ("output_intervals", "output interval", n - 1)):
            got, want = self.measured_flow.get(key, []), list(self.flow_model[key][:count])
            if got != want:
                out.append(f"{what} measured {got} cycles, analytic model says {want}")
        steady = self.measured_flow.get("output_intervals", [])[int(self.flow_model["steady_from"]):]
        if steady and max(steady) != self.ii_model:
            out.append(f"initiation interval measured {max(steady)} cycles in the steady state, "
                       f"analytic model says {self.ii_model}")
        return out

    @property
    def bit_exact(self) -> bool:
        return self.timeout is None and not self.mismatches and self.n_exact == self.n_vectors

    @property
    def ok(self) -> bool:
        return self.bit_exact and self.timing_ok and not self.protocol_errors

    @property
    def vectors_per_second(self) -> float:
        streamed = self.n_vectors + self.timing_vectors
        return streamed / self.sim_seconds if self.sim_seconds > 0 else 0.0

    def problems(self) -> list[str]:
        """Every failed check, one line each (empty when :attr:`ok`)."""
        out = []
        if self.timeout:
            out.append(f"simulation stalled: {self.timeout}")
        out += [m.describe() for m in self.mismatches[:10]]
        if len(self.mismatches) > 10:
            out.append(f"... {len(self.mismatches) - 10} more mismatching vectors")
        if self.divergence:
            out.append(f"first divergence: {self.divergence}")
        out += self._timing_problems()
        out += [f"stream protocol: {e}" for e in self.protocol_errors]
        return out

    def summary(self) -> dict:
        """The JSON-able figures (what ``sim.json`` holds)."""
        return {
            "simulator": self.simulator,
            "vectors": self.n_vectors,
            "bit_exact": self.n_exact,
            "mismatches": len(self.mismatches),
            "first_mismatches": [m.describe() for m in self.mismatches[:10]],
            "divergence": self.divergence,
            # measured values are None unless one value was seen throughout
            "latency": self.latency,
            "latency_model": self.latency_model,
            "latencies_seen": self.latencies,
            "initiation_interval": self.initiation_interval,
            "initiation_interval_model": self.ii_model,
            "intervals_seen": self.intervals,
            # per image of the timing phase: latencies, input and output intervals (what the flow model is checked on)
            "timing_per_image": self.measured_flow or None,
            "timing_ok": self.timing_ok,
            "protocol_errors": self.protocol_errors,
            "timeout": self.timeout,
            "cycles": self.cycles,
            "sim_seconds": round(self.sim_seconds, 3),
            "build_seconds": round(self.build_seconds, 3),
            "vectors_per_second": round(self.vectors_per_second, 1),
            "ok": self.ok,
            **self.extra,  # e.g. the per-phase figures of mstbnn.sim.bulk.simulate_phases
        }


def _run_in_thread(fn, progress_path: Path, total: int, progress) -> None:
    """Run ``fn`` (a blocking simulator call) while reporting the testbench's progress file."""
    box: dict = {}

    def target():
        try:
            fn()
        except BaseException as exc:  # noqa: BLE001 - SystemExit from cocotb's runner too
            box["exc"] = exc

    worker = threading.Thread(target=target, daemon=True)
    worker.start()
    last = -1
    while worker.is_alive():
        worker.join(0.2)
        if progress is not None and progress_path.is_file():
            try:
                done = int(progress_path.read_text().split()[0])
            except (ValueError, IndexError, OSError):
                continue
            if done != last:
                progress(done, total)
                last = done
    if "exc" in box:
        raise box["exc"]


def _compare(phase: str, indices, classes, scores, exp_classes, exp_scores) -> list[Mismatch]:
    out = []
    for k, i in enumerate(indices[: len(classes)]):
        unknown = [c for c, v in enumerate(scores[k]) if v is None]  # X/Z in a 4-state simulator
        if unknown:
            c = unknown[0]
            out.append(Mismatch(int(i), phase, int(exp_classes[i]), int(classes[k]), c, int(exp_scores[i, c]), None))
            continue
        got_s = np.asarray(scores[k], dtype=np.int64)
        bad = np.flatnonzero(got_s != exp_scores[i])
        if bad.size or classes[k] != exp_classes[i]:
            c = int(bad[0]) if bad.size else -1
            out.append(
                Mismatch(
                    vector=int(i),
                    phase=phase,
                    expected_class=int(exp_classes[i]),
                    got_class=int(classes[k]),
                    first_class=c,
                    expected_score=int(exp_scores[i, c]) if c >= 0 else 0,
                    got_score=int(got_s[c]) if c >= 0 else 0,
                )
            )
    return out


def simulate(
    net: Network,
    design: Design,
    x: np.ndarray,
    *,
    simulator: str = "verilator",
    build_dir: Path,
    seed: int = 0,
    p_valid: float = 0.7,
    p_ready: float = 0.7,
    timing_vectors: int = TIMING_VECTORS,
    progress=None,
) -> SimResult:
    """Stream ``x`` through ``design`` in ``simulator`` and judge every output.

    Parameters
    ----------
    net : Network
        The network the design was generated from (scheduled, for a reuse design).
    design : Design
    x : ndarray of int, shape (B, *net.input.shape)
        Raw inputs within the input quantiser's range.
    simulator : {"verilator", "icarus"}
    build_dir : Path
        Kept between runs: ``<build_dir>/<simulator>`` holds the compiled model.
    seed : int
        Seeds the valid gaps and the backpressure pattern.
    p_valid, p_ready : float
        Per-cycle probability of ``in_valid`` (while vectors remain) and of
        ``out_ready`` in the stress phase.
    timing_vectors : int
        Vectors streamed first without any stall to measure latency and II.
    progress : callable(done, total) or None

    Returns
    -------
    SimResult
    """
    design.check_sources()
    x = np.asarray(x, dtype=np.int64)
    n = int(x.shape[0])
    if n == 0:
        raise ValueError("no vectors to simulate")
    trace = expected_outputs(net, x, design.reuse)
    exp_scores = np.asarray(trace.scores, dtype=np.int64)
    exp_classes = np.asarray(trace.classes, dtype=np.int64)
    if exp_scores.shape[1] != design.n_classes:
        raise ValueError(f"design has {design.n_classes} classes, network {exp_scores.shape[1]}")
    beats = to_beats(net, x)
    if beats.shape[1:] != (design.beats_per_image, design.values_per_beat):
        raise ValueError(
            f"network streams {beats.shape[1]} beats of {beats.shape[2]} values, "
            f"design expects {design.beats_per_image} of {design.values_per_beat}"
        )
    lo, hi = net.input.value_range
    if x.min() < lo or x.max() > hi:
        raise ValueError(f"input values outside the input quantiser's range [{lo}, {hi}]")

    build_dir = Path(build_dir).resolve()
    sim_dir = build_dir / simulator
    sim_dir.mkdir(parents=True, exist_ok=True)
    toolchain.prepare_path()
    runner = toolchain.make_runner(simulator)
    n_timing = min(timing_vectors, n)
    if progress is not None:
        progress(0, n + n_timing)  # shows up during the build, which can take minutes for a large engine
    t0 = time.monotonic()
    try:
        toolchain.build(runner, simulator, design.sources, design.top, sim_dir, log_file=sim_dir / "build.log")
    except (RuntimeError, SystemExit, OSError) as exc:
        raise toolchain.SimulatorFailure(f"{simulator} build of {design.top}", toolchain.exit_detail(exc),
                                         sim_dir / "build.log") from None
    build_seconds = time.monotonic() - t0

    run_dir = sim_dir / "run"
    run_dir.mkdir(exist_ok=True)
    result_path = run_dir / "result.json"
    progress_path = run_dir / "progress"
    for stale in (result_path, progress_path):
        stale.unlink(missing_ok=True)
    per_image_cycles = design.latency + design.initiation_interval + design.beats_per_image
    config = {
        "beats": [[pack_beat(b, design.input_width) for b in img] for img in beats],
        "n_classes": design.n_classes,
        "score_width": design.score_width,
        "seed": int(seed),
        "p_valid": float(p_valid),
        "p_ready": float(p_ready),
        "timing_vectors": n_timing,
        # generous: random stalls at p=0.7 last a few cycles, a hung engine forever
        "stall_limit": 1000 + 20 * per_image_cycles,
        # after the last output, watch this long for spurious ones
        "drain_cycles": per_image_cycles + 8,
        "result": str(result_path),
        "progress": str(progress_path),
        "progress_total": n + n_timing,
    }
    config_path = run_dir / "config.json"
    config_path.write_text(json.dumps(config))

    log_path = run_dir / "sim.log"

    def run():
        runner.test(
            test_module=TB_MODULE,
            hdl_toplevel=design.top,
            build_dir=sim_dir,
            test_dir=run_dir,
            extra_env={"MSTBNN_SIM_CONFIG": str(config_path)},
            results_xml=str(run_dir / "results.xml"),
            log_file=log_path,
            seed=int(seed),
        )

    # cocotb's runner reads PYTEST_CURRENT_TEST and would then judge (and
    # sys.exit) on its own; the verdict here comes from result.json.
    saved = os.environ.pop("PYTEST_CURRENT_TEST", None)
    try:
        _run_in_thread(run, progress_path, n + n_timing, progress)
    except (RuntimeError, SystemExit, OSError) as exc:
        if not result_path.is_file():
            raise toolchain.SimulatorFailure(f"{simulator} testbench run", toolchain.exit_detail(exc), log_path,
                                             first=False) from None
    finally:
        if saved is not None:
            os.environ["PYTEST_CURRENT_TEST"] = saved
    if not result_path.is_file():
        raise toolchain.SimulatorFailure(f"{simulator} testbench run", "it wrote no result", log_path, first=False)
    res = json.loads(result_path.read_text())

    timing = res["timing"]
    stress = res.get("stress") or {"classes": [], "scores": [], "timeout": None}
    timing_idx = list(range(n_timing))
    mismatches = _compare("timing", timing_idx, timing["classes"], timing["scores"], exp_classes, exp_scores)
    mismatches += _compare("stress", list(range(n)), stress["classes"], stress["scores"], exp_classes, exp_scores)
    got = len(stress["classes"])
    # a vector is bit-exact when every pass of it through the engine matched
    bad = {m.vector for m in mismatches}
    n_exact = sum(1 for i in range(got) if i not in bad)

    latencies = sorted({o - l for o, l in zip(timing["out_cycles"], timing["last_in"])})
    intervals = sorted(set(np.diff(timing["first_in"]).tolist()) | set(np.diff(timing["out_cycles"]).tolist()))

    classes = np.full(n, -1, dtype=np.int64)
    classes[:got] = stress["classes"]
    scores = np.zeros((n, design.n_classes), dtype=np.int64)
    if got:
        scores[:got] = [[0 if v is None else v for v in row] for row in stress["scores"]]
    timeout = timing["timeout"] or stress.get("timeout")
    return SimResult(
        simulator=simulator,
        n_vectors=n,
        n_exact=n_exact,
        mismatches=mismatches,
        latency_model=int(design.latency),
        ii_model=int(design.initiation_interval),
        latencies=[int(v) for v in latencies],
        intervals=[int(v) for v in intervals],
        cycles=int(res["cycles"]),
        sim_seconds=float(res["wall_seconds"]),
        build_seconds=build_seconds,
        protocol_errors=list(res.get("protocol_errors", [])),
        timeout=timeout,
        classes=classes,
        scores=scores,
        expected_classes=exp_classes,
        timing_vectors=n_timing,
        flow_model=_flow_model(design, n_timing),
        measured_flow={
            "latencies": [int(o - l) for o, l in zip(timing["out_cycles"], timing["last_in"])],
            "input_intervals": [int(v) for v in np.diff(timing["first_in"])],
            "output_intervals": [int(v) for v in np.diff(timing["out_cycles"])],
        },
    )


def _flow_model(design: Design, n_timing: int) -> dict | None:
    """The design's model of the first images' timing, when it has one covering the timing phase."""
    flow = design.extra.get("flow_model")
    if flow is None:
        return None
    if int(flow["images"]) < n_timing:
        raise ValueError(f"the design's flow model covers {flow['images']} images, the timing phase streams {n_timing}")
    return flow


def simulate_and_locate(
    net: Network,
    design: Design,
    x: np.ndarray,
    *,
    generate=None,
    simulator: str = "verilator",
    build_dir: Path,
    seed: int = 0,
    **kwargs,
) -> SimResult:
    """:func:`simulate`, then on a mismatch locate the first divergent layer and channel.

    Parameters
    ----------
    generate : callable(net, out_dir) -> Design, or None
        Generates hardware for a prefix network the same way ``design`` was
        generated (see :mod:`mstbnn.sim.diagnose`). Without it a mismatch is
        reported by vector and class score only.
    """
    result = simulate(net, design, x, simulator=simulator, build_dir=build_dir, seed=seed, **kwargs)
    if result.mismatches and generate is not None:
        result.divergence = locate(net, x, result.mismatches[0], generate=generate, simulator=simulator,
                                   build_dir=build_dir, seed=seed)
    return result


def locate(net: Network, x: np.ndarray, first: Mismatch, *, generate, simulator: str, build_dir: Path,
           seed: int = 0) -> str:
    """The first divergent layer and channel of vector ``first.vector`` of ``x``, by simulating network prefixes."""
    from mstbnn.sim.diagnose import locate_divergence

    one = np.asarray(x)[first.vector : first.vector + 1]

    def simulate_prefix(prefix: Network, tag: str):
        where = Path(build_dir) / "diagnose" / tag
        prefix_design = generate(prefix, where / "rtl")
        r = simulate(prefix, prefix_design, one, simulator=simulator, build_dir=where, seed=seed, timing_vectors=1)
        return r.classes, r.scores

    return f"vector {first.vector}: " + locate_divergence(net, one, simulate_prefix, first.first_class)
