"""Compare the evaluated engine with the specification; name the first layer and channel that differ.

The engine is proven when its scores are the specification's linear forms
(over the same atoms, which forces every hidden layer's output bits to be
the specification's compares), its class is the lowest-index argmax of those
scores, and its valid, scores and class leave the pipeline together at the
spec's latency. Otherwise the first difference is named: the earliest
hardware atom that is no specification atom although everything it reads is
(a wrong weight, threshold or negation shows up there), or the score channel
whose form differs, or the value that could not be proven exact.
"""

from __future__ import annotations

import time
from math import gcd

from mstbnn.prove.evaluate import ArgOf, Evaluator, run_deep
from mstbnn.prove.linear import Lin, Space
from mstbnn.prove.netlist import Netlist
from mstbnn.prove.spec import specify

__all__ = ["DIFFERS", "NOT_PROVEN", "PROVEN", "prove_netlist"]

PROVEN, DIFFERS, NOT_PROVEN = "PROVEN", "DIFFERS", "NOT PROVEN"


class _Failure(Exception):
    def __init__(self, verdict, message, layer=None, channel=None):
        super().__init__(message)
        self.verdict, self.message, self.layer, self.channel = verdict, message, layer, channel


def _issues_of(v):
    return tuple(getattr(v, "issues", ()) or ())


def _layer_name(spec, layer: int) -> str:
    if layer == 0:
        return "layer 0 (input quantiser) feature"
    kind = "scores" if layer == spec.layers[-1].index else "dense"
    return f"layer {layer} ({kind}) channel"


def _explain(space: Space, spec, layer: int, channel: int, hw_form: dict, hw_cut, spec_form: dict, spec_cut,
             hw_var=None, depth: int = 0):
    """Why the hardware's (layer, channel) differs: descend to the earliest channel that does.

    ``hw_form`` / ``spec_form`` are the channel's forms over the previous
    layer's output atoms. A specification atom the hardware form lacks is a
    channel of an earlier layer that the hardware computes differently: the
    explanation continues there with the hardware's own atom in its place.
    """
    name = f"{_layer_name(spec, layer)} {channel}"
    if hw_var is not None and hw_var in space.atom_issues:
        return NOT_PROVEN, f"{name}: " + "; ".join(space.atom_issues[hw_var]), layer, channel
    if hw_form is not None and spec_form is not None and depth < 64:
        missing = sorted((space.label[v], v) for v in spec_form if v not in hw_form and v in space.label)
        if missing:
            (lay, ch), sv = missing[0]
            # The hardware's literal in its place: an unknown atom with the same (or opposite) coefficient.
            k = spec_form[sv]
            extra = [v for v in hw_form if v not in spec_form and v not in space.label]
            pick = next((v for v in extra if abs(hw_form[v]) == abs(k)), extra[0] if extra else None)
            if pick is None or pick not in space.atom_def:
                other = [space.describe(v) for v in hw_form if hw_form.get(v) != spec_form.get(v) and v != sv]
                more = f"; the hardware's bit there is {other[0]}'s" if other else ""
                return DIFFERS, f"{_layer_name(spec, lay)} {ch} differs from the network{more}", lay, ch
            hd, sd = _normal(space.predicate.get(pick)), _normal(space.predicate.get(sv))
            if hd is not None and sd is not None:
                return _explain(space, spec, lay, ch, hd[0], hd[1], sd[0], sd[1], pick, depth + 1)
            return _explain(space, spec, lay, ch, None, None, None, None, pick, depth + 1)
    if hw_form is None or spec_form is None:
        return DIFFERS, f"{name} differs from the network: its compare is not the network's", layer, channel
    # Same inputs: the weights (coefficients) or the cut differ. The form may be negated (a complement literal).
    best = None
    for sign in (1, -1):
        form = {v: sign * c for v, c in hw_form.items()}
        diff = sorted(v for v in set(form) | set(spec_form) if form.get(v, 0) != spec_form.get(v, 0))
        if best is None or len(diff) < len(best):
            best = diff
            negated = sign < 0
    parts = []
    if best:
        parts.append("the weights on " + ", ".join(space.describe(v) for v in best[:4]) +
                     (f" and {len(best) - 4} more" if len(best) > 4 else ""))
    if hw_cut is not None and not negated and hw_cut != spec_cut:
        parts.append(f"the threshold (the hardware compares at {hw_cut}, the network at {spec_cut})")
    if negated and not best:
        parts.append("the compare's direction")
    return DIFFERS, f"{name} differs from the network: " + (" and ".join(parts) or "its compare"), layer, channel


def _normal(pred):
    """(form, cut) of ``[form + const >= 0]`` with the gcd divided out: ``form / g >= cut``."""
    if pred is None:
        return None
    form, const = pred
    g = 0
    for c in form.values():
        g = gcd(g, c)
    g = g or 1
    return {v: c // g for v, c in form.items()}, -(const // g)


def _check_scores(space, spec, scores_hw, where):
    last = spec.layers[-1]
    for j, hw in enumerate(scores_hw):
        if not isinstance(hw, Lin):
            raise _Failure(NOT_PROVEN, f"layer {last.index} (scores) channel {j} ({where}): " +
                           "; ".join(_issues_of(hw) or ("not a linear form",)), last.index, j)
    for j, (hw, want) in enumerate(zip(scores_hw, spec.scores)):
        if hw.same(want) and not hw.issues:
            continue
        verdict, message, layer, channel = _explain(space, spec, last.index, j, hw.form, None, want.form, None)
        if layer == last.index and hw.issues:
            raise _Failure(NOT_PROVEN, f"layer {last.index} (scores) channel {j}: " + "; ".join(hw.issues), last.index, j)
        if layer == last.index and not [v for v in set(hw.form) | set(want.form) if hw.form.get(v) != want.form.get(v)]:
            message = f"layer {last.index} (scores) channel {j} differs from the network: the constant ({hw.const} vs {want.const})"
        raise _Failure(verdict, message, layer, channel)


def prove_netlist(netlist: Netlist, net, desc: dict, progress=None) -> dict:
    """Prove the netlist of an unrolled engine against ``net``; return the report (see docs/prove.md)."""
    say = progress or (lambda msg: None)
    times = {}
    _check_ports(netlist, net, desc)
    t0 = time.monotonic()
    space = Space()
    spec = specify(net, space)
    times["specify_s"] = round(time.monotonic() - t0, 3)
    say(f"specification: {len(spec.layers)} binary layers, {spec.classes} classes ({times['specify_s']:.1f} s)")

    t0 = time.monotonic()
    ev = Evaluator(netlist, space, {"out_ready": 1, "rst": 0}, progress=say)
    classes, s = int(desc["classes"]), int(desc["score_width"])

    def evaluate():
        valid = ev.port("out_valid")
        scores = [ev.port("out_scores", j * s, (j + 1) * s, signed=True) for j in range(classes)]
        cls = ev.port("out_class")
        return valid, scores, cls

    valid, scores_hw, cls = run_deep(evaluate)
    times["evaluate_s"] = round(time.monotonic() - t0, 3)
    say(f"netlist evaluated: {len(ev.registers)} registers, {len(space.atom_def)} atoms ({times['evaluate_s']:.1f} s)")

    t0 = time.monotonic()
    report = {"latency": int(desc["latency"]), "classes": classes}
    report["stall"] = _stall_report(netlist, ev)
    layers = [{"layer": ls.index, "kind": ls.kind, "channels": ls.channels, "fan_in": ls.fan_in,
               "output": "scores" if ls is spec.layers[-1] else "bits"} for ls in spec.layers]
    try:
        _check_valid(space, valid, int(desc["latency"]))
        _check_scores(space, spec, scores_hw, "out_scores")
        delays = {v.delay for v in scores_hw if isinstance(v, Lin) and not v.is_const}
        if delays and delays != {valid.delay}:
            raise _Failure(DIFFERS, f"pipeline alignment: out_scores leave {sorted(delays)} cycles after their input, "
                                    f"out_valid {valid.delay}", spec.layers[-1].index, None)
        _check_class(space, spec, cls, valid.delay)
        verdict, message, bad = PROVEN, "every output equals the network's specification for every input", None
    except _Failure as f:
        verdict, message, bad = f.verdict, f.message, (f.layer, f.channel)
    for entry in layers:
        if verdict == PROVEN:
            entry["status"] = "proven"
        elif bad and entry["layer"] == bad[0]:
            entry["status"] = "differs" if verdict == DIFFERS else "not proven"
            if bad[1] is not None:
                entry["channel"] = bad[1]
        else:
            entry["status"] = "not proven"
    times["compare_s"] = round(time.monotonic() - t0, 3)
    report.update(verdict=verdict, proven=verdict == PROVEN, message=message, layers=layers,
                  argmax="proven" if verdict == PROVEN else "not proven", times=times)
    return report


def _check_ports(netlist: Netlist, net, desc: dict) -> None:
    """The netlist's ports are the spec's, and in_data is the network's raw input: else the artefact is inconsistent."""
    import numpy as np

    from mstbnn.errors import UserError

    quant = net.layers[0]
    want = dict(desc["ports"])
    want["in_data"] = int(np.prod(quant.shape)) * int(quant.bits)
    want["out_scores"] = int(desc["classes"]) * int(desc["score_width"])
    for name, width in want.items():
        port = netlist.ports.get(name)
        if port is None or len(port[1]) != int(width):
            got = "missing" if port is None else f"{len(port[1])} bits"
            raise UserError(f"netlist port {name}: {got}, the engine spec and network say {width} bits; "
                            "re-run `mstbnn verilog DIR`")


def _check_valid(space, valid, latency):
    want = space.input_var("in_valid", 0)
    if not isinstance(valid, Lin) or valid.issues or valid.form != {want: 1} or valid.const != 0:
        raise _Failure(NOT_PROVEN, "out_valid is not the input valid delayed: " +
                       ("; ".join(_issues_of(valid)) or "it depends on something else"))
    if valid.delay != latency:
        raise _Failure(DIFFERS, f"latency: out_valid follows in_valid by {valid.delay} cycles, the engine spec says {latency}")


def _check_class(space, spec, cls, delay):
    n = spec.classes
    if n == 1:
        if isinstance(cls, Lin) and cls.is_const and cls.const == 0:
            return
        raise _Failure(DIFFERS, "out_class of a one-class network is not constant 0")
    if isinstance(cls, Lin) and cls.is_const and not cls.issues:
        _check_constant_class(spec, cls.const)
        return
    if not isinstance(cls, ArgOf):
        raise _Failure(NOT_PROVEN, "out_class is not shown to be an argmax: " +
                       ("; ".join(_issues_of(cls)) or f"it evaluates to {type(cls).__name__}"), spec.layers[-1].index, None)
    if cls.issues:
        raise _Failure(NOT_PROVEN, "out_class: " + "; ".join(cls.issues), spec.layers[-1].index, None)
    idx = [i for i, _ in cls.members]
    if idx != list(range(n)):
        raise _Failure(DIFFERS, f"out_class is the argmax over classes {idx}, not 0..{n - 1}")
    for i, form in cls.members:
        if not form.same(spec.scores[i]):
            raise _Failure(DIFFERS, f"out_class compares class {i} by a score that is not the network's", spec.layers[-1].index, i)
    if cls.delay != delay:
        raise _Failure(DIFFERS, f"pipeline alignment: out_class leaves {cls.delay} cycles after its input, out_valid {delay}")


def _check_constant_class(spec, k: int) -> None:
    """A constant ``out_class`` k is right when class k is the lowest-index argmax for every input.

    The argmax's compares are decided when the scores make the class constant
    (e.g. two classes with the same weights: ``s1 > s0`` is ``0``). The scores are
    already proven to be the specification's forms, so it is enough that
    ``s_k - s_i`` (an exact form) is > 0 for every i < k and >= 0 for every
    i > k over every input; the form's interval is a sound bound for that.
    """
    last = spec.layers[-1].index
    if not 0 <= k < spec.classes:
        raise _Failure(DIFFERS, f"out_class is the constant {k}, not a class index 0..{spec.classes - 1}", last, None)
    for i in range(spec.classes):
        if i == k:
            continue
        a, b = spec.scores[k], spec.scores[i]
        form = dict(a.form)
        for v, c in b.form.items():
            form[v] = form.get(v, 0) - c
        diff = Lin(form, a.const - b.const)
        need = 1 if i < k else 0  # ties go to the lower index
        if diff.lo >= need:
            continue
        exact = diff.is_const  # then the bound is the value: some input (every input) picks class i
        raise _Failure(DIFFERS if exact else NOT_PROVEN,
                       f"out_class is the constant {k}, but class {i}'s score is " +
                       ("above it" if exact and i > k else "not below it" if exact else
                        "not shown to be " + ("below" if i < k else "at most") + " it for every input"), last, i)


def _stall_report(netlist: Netlist, ev: Evaluator) -> dict:
    """Registers per stage and the enables they use: one enable per stage is the stall argument."""
    stages: dict = {}
    for idx, en in ev.registers:
        cell = netlist.cells[idx]
        stage = _stage_of(netlist, cell.conn["Q"])
        entry = stages.setdefault(stage, {"registers": 0, "enables": set()})
        entry["registers"] += 1
        entry["enables"].add(str(en))
    out = {name: {"registers": e["registers"], "enables": len(e["enables"])} for name, e in sorted(stages.items())}
    return {"one_enable_per_stage": all(e["enables"] == 1 for e in out.values()), "stages": out}


def _stage_of(netlist: Netlist, q_bits) -> str:
    names = []
    for b in q_bits:
        for n in netlist.netnames.get(b, []):
            if "." in n and not n.split(".")[-1].startswith(("in_", "port$")):
                names.append(n)
    return min(names).split(".")[0] if names else "top"
