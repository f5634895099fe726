"""The engine spec: the hw stage's artefact, one description from ``verilog`` to the bitstream.

``mstbnn verilog DIR`` writes, beside the Verilog (``DIR/rtl[-folded][-baseline]/``),
``mstbnn_top.json``: the engine's ports and cycle model (what a simulator
needs) plus everything needed to rebuild exactly that engine:

- ``engine``: ``"unrolled"`` or ``"folded"``; ``reuse``: False for the plain baseline;
- ``options``: every generator option (unrolled: adder and tree levels per
  stage, corrections, fused leaves; folded: ``config``, the (S, G) pair per
  binary layer, and with a throughput target ``target_fps`` and the
  ``expected_fmax_mhz`` it was met at) and ``device``, the device a
  configuration pass chose them for;
- ``network``: ``null`` when the engine computes DIR's schedules as compiled,
  else the file name of the network (beside the spec) carrying the schedules
  a pass re-treed (the folded configuration pass keeps, per layer, the tree
  with fewer cycles);
- ``network_sha256``: :func:`mstbnn.artefact.network_digest` of DIR when the
  engine was generated; ``generator``: the mstbnn version;
- ``verilog_sha256``: the Verilog's digest. The spec is written last, so an
  interrupted generation leaves a spec that does not match its Verilog, and
  every reader refuses it.

Every later step (sim, prove, synth, bitstream, run) reads the spec with
:func:`load_spec` (which refuses a stale or incomplete one with one line),
plans the engine with :func:`plan_engine` (what estimates and fit checks
read, nothing built) and builds it with :func:`engine_hardware`
(:func:`build_engine` does both): none rebuilds from defaults.
Choosing options for a device is the pass :func:`configure`, run by
``verilog --device D``; its choice is written into the spec.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path

from mstbnn import __version__
from mstbnn.artefact import network_digest, rtl_dir, spec_path, verilog_path
from mstbnn.errors import UserError

__all__ = ["EngineSpec", "UNROLLED_DEFAULTS", "configure", "plan_engine", "engine_hardware", "build_engine", "write_engine", "generate", "load_spec", "verilog_flags"]

SPEC_FORMAT = "mstbnn-engine"
SPEC_VERSION = 1
ENGINES = ("unrolled", "folded")
# The network a configuration pass re-treed, beside the spec (compiler.io format).
PASS_NETWORK = "network.json"

# config: (S, G) per binary layer; target_fps and expected_fmax_mhz: the throughput target it was chosen for
# (mstbnn.hw.folded.throughput) and the clock assumed for it
FOLDED_OPTIONS = {"config", "target_fps", "expected_fmax_mhz"}

UNROLLED_DEFAULTS = {
    "adder_levels_per_stage": 2,
    "tree_levels_per_stage": 1,
    "corrections": "auto",
    "fuse_leaves": False,
}


@dataclass
class EngineSpec:
    """What to build: engine kind, reuse, options; and, once generated, which network it is of."""

    engine: str = "unrolled"
    reuse: bool = True
    options: dict = field(default_factory=dict)
    device: str | None = None
    network_sha256: str | None = None
    generator: str = __version__

    def __post_init__(self):
        if self.engine not in ENGINES:
            raise UserError(f"engine {self.engine!r}: choose one of {', '.join(ENGINES)}")
        if self.engine == "unrolled":
            unknown = set(self.options) - set(UNROLLED_DEFAULTS)
            if unknown:
                raise UserError(f"unrolled engine: unknown option(s) {', '.join(sorted(unknown))}")
            self.options = {**UNROLLED_DEFAULTS, **self.options}
        elif set(self.options) - FOLDED_OPTIONS:
            raise UserError(f"folded engine: unknown option(s) {', '.join(sorted(set(self.options) - FOLDED_OPTIONS))}")

    def fields(self) -> dict:
        return {
            "format": SPEC_FORMAT,
            "spec_version": SPEC_VERSION,
            "engine": self.engine,
            "reuse": self.reuse,
            "options": self.options,
            "device": self.device,
            "network_sha256": self.network_sha256,
            "generator": self.generator,
        }


def verilog_flags(spec: EngineSpec) -> str:
    """The ``mstbnn verilog`` flags that regenerate an engine of this kind (for error messages)."""
    flags = (" --engine folded" if spec.engine == "folded" else "") + ("" if spec.reuse else " --baseline")
    flags += f" --device {spec.device}" if spec.device else ""
    return flags + (f" --target-fps {spec.options['target_fps']:g}" if "target_fps" in spec.options else "")


def configure(net, spec: EngineSpec, device=None):
    """The configuration pass: fill in the options a device decides; return ``(net, spec)``.

    For the folded engine without an explicit ``config``, S and G per layer
    come from the device's LUT and block-RAM budget
    (:func:`mstbnn.hw.folded.estimate.choose_config`), which may also re-tree
    layers: the returned ``net`` carries the schedules the engine uses. With
    no device, the folded defaults (:func:`mstbnn.hw.folded.network.layer_plans`).
    With a ``target_fps`` option, the smallest configuration that meets it
    on the device's expected clock (:func:`mstbnn.hw.folded.throughput.choose_for_target`),
    recorded with ``expected_fmax_mhz``; refused with one line when the
    target cannot be met. The unrolled engine has no device-dependent options.
    """
    if spec.engine == "folded" and "config" not in spec.options and "target_fps" in spec.options:
        if device is None:
            raise UserError("--target-fps needs --device D: images/s depend on the device's clock and size")
        from mstbnn.hw.folded.throughput import choose_for_target

        target = spec.options["target_fps"]
        choice = choose_for_target(net, device, float(target), reuse=spec.reuse)
        net = choice.net
        spec.device = device.name
        spec.options = {"target_fps": target, "expected_fmax_mhz": choice.fmax_mhz,
                        "config": [[int(s), int(g)] for s, g in choice.config]}
    elif spec.engine == "folded" and "config" not in spec.options:
        if device is not None:
            from mstbnn.hw.folded.estimate import choose_config

            net, config, _ = choose_config(net, device, reuse=spec.reuse)
            spec.device = device.name
        else:
            from mstbnn.hw.folded.network import FoldedEnginePlan

            config = FoldedEnginePlan(net, reuse=spec.reuse).config
        spec.options = {"config": [[int(s), int(g)] for s, g in config]}
    elif device is not None:
        spec.device = device.name
    return net, spec


def plan_engine(net, spec: EngineSpec):
    """The plan of the engine that ``spec`` describes, for ``net``: everything decided, nothing built.

    A folded spec's ``config`` is set to the (S, G) pairs the engine really
    uses (S is capped at each layer's fan-in), so the spec records them.
    """
    if spec.engine == "folded":
        from mstbnn.hw.folded.network import FoldedEnginePlan

        config = spec.options.get("config")
        if config is not None:  # one (S, G) pair for every layer, or one pair per layer
            config = tuple(config) if isinstance(config[0], int) else [tuple(c) for c in config]
        plan = FoldedEnginePlan(net, reuse=spec.reuse, config=config)
        spec.options = {**spec.options, "config": [[int(s), int(g)] for s, g in plan.config]}
        return plan
    from mstbnn.hw.network import UnrolledEnginePlan

    return UnrolledEnginePlan(net, reuse=spec.reuse, **spec.options)


def engine_hardware(plan):
    """The Amaranth engine of a plan from :func:`plan_engine`."""
    if plan.kind == "folded":
        from mstbnn.hw.folded.network import FoldedNetworkEngine

        return FoldedNetworkEngine(plan=plan)
    from mstbnn.hw.network import NetworkEngine

    return NetworkEngine(plan=plan)


def build_engine(net, spec: EngineSpec):
    """The one factory: the Amaranth engine that ``spec`` describes, for ``net`` (see :func:`plan_engine`)."""
    return engine_hardware(plan_engine(net, spec))


def write_engine(engine, spec: EngineSpec, rtl, *, network=None, before_spec=None) -> Path:
    """Write ``engine``'s Verilog and its spec into ``rtl``; return the Verilog path."""
    from mstbnn.hw.verilog import write_rtl

    if spec.engine == "folded":
        from mstbnn.hw.folded.verilog import describe
    else:
        from mstbnn.hw.verilog import describe
    desc = dict(describe(engine), **spec.fields(), network=network)
    return write_rtl(engine, desc, Path(rtl), before_spec=before_spec)


def generate(directory, spec: EngineSpec, *, device=None, net=None, out=None) -> Path:
    """Generate the engine of the artefact in ``directory``: Verilog, pass network, spec (last).

    ``net`` defaults to the artefact's network; ``out`` to its
    :func:`mstbnn.artefact.rtl_dir`. Returns the Verilog path.
    """
    from mstbnn.compiler import io

    directory = Path(directory)
    if net is None:
        net = io.load(directory)
    compiled = net
    spec.network_sha256 = network_digest(directory)
    net, spec = configure(net, spec, device)
    engine = build_engine(net, spec)
    out = Path(out) if out is not None else rtl_dir(directory, not spec.reuse, spec.engine)
    retreed = net is not compiled and _schedules_differ(net, compiled)

    def before_spec(rtl: Path) -> None:
        if retreed:
            io.save(net, rtl)
        else:
            for name in (PASS_NETWORK, io.ARRAYS):
                (rtl / name).unlink(missing_ok=True)

    return write_engine(engine, spec, out, network=PASS_NETWORK if retreed else None, before_spec=before_spec)


def _schedules_differ(a, b) -> bool:
    import numpy as np

    for (_, la), (_, lb) in zip(a.binary_layers(), b.binary_layers()):
        sa, sb = la.schedule, lb.schedule
        if (sa is None) != (sb is None):
            return True
        if sa is not None and not (np.array_equal(sa.parent, sb.parent) and np.array_equal(sa.negate, sb.negate)
                                   and np.array_equal(sa.order, sb.order)):
            return True
    return False


def load_spec(directory, *, baseline: bool = False, engine: str = "unrolled", step: str = "this step"):
    """Read the spec of a generated engine; return ``(spec, net, desc)``.

    ``net`` is the network the engine computes (with a pass's re-treed
    schedules when there are some); ``desc`` the whole JSON. Refused with one
    line: no generated engine, an interrupted generation, a network changed
    since (digest), a spec of another mstbnn version's format.
    """
    from mstbnn.compiler import io

    directory = Path(directory)
    io.read_header(directory)  # no compiled network at all: say that first
    path = spec_path(directory, baseline, engine)
    regen = f"mstbnn verilog {directory}" + (" --engine folded" if engine == "folded" else "") + (
        " --baseline" if baseline else "")
    if not path.is_file():
        raise UserError(f"{path}: no generated engine; run `{regen}` before {step}")
    try:
        desc = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise UserError(f"{path}: not a valid engine spec ({exc}); run `{regen}` again") from None
    if not isinstance(desc, dict) or desc.get("format") != SPEC_FORMAT or desc.get("spec_version") != SPEC_VERSION:
        raise UserError(f"{path}: not an engine spec of this mstbnn (format {SPEC_FORMAT} v{SPEC_VERSION}); "
                        f"run `{regen}` again")
    try:
        spec = EngineSpec(engine=desc["engine"], reuse=bool(desc["reuse"]), options=dict(desc["options"]),
                          device=desc.get("device"), network_sha256=desc.get("network_sha256"),
                          generator=str(desc.get("generator")))
    except (KeyError, TypeError, ValueError) as exc:
        raise UserError(f"{path}: malformed engine spec ({type(exc).__name__}: {exc}); run `{regen}` again") from None
    regen = f"mstbnn verilog {directory}" + verilog_flags(spec)
    if spec.engine != engine or spec.reuse == baseline:
        raise UserError(f"{path}: describes a {spec.engine} {'reuse' if spec.reuse else 'baseline'} engine; "
                        f"run `{regen}` again")
    vpath = verilog_path(directory, baseline, engine)
    if not vpath.is_file() or hashlib.sha256(vpath.read_bytes()).hexdigest() != desc.get("verilog_sha256"):
        raise UserError(f"{vpath}: does not match its engine spec (generation interrupted or file edited); "
                        f"run `{regen}` again")
    if spec.network_sha256 is None or spec.network_sha256 != network_digest(directory):
        raise UserError(f"{directory}: the network changed after `mstbnn verilog` (stale engine); "
                        f"run `{regen}` again before {step}")
    net = io.load(path.parent) if desc.get("network") else io.load(directory)
    return spec, net, desc
