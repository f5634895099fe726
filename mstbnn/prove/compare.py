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

from mstbnn.prove.evaluate import ArgOf, Evaluator, Opaque, run_deep
from mstbnn.prove.linear import Lin, Space
from mstbnn.prove.netlist import Netlist
from mstbnn.prove.spec import specify

__all__ = ["prove_netlist", "PROVEN", "DIFFERS", "NOT_PROVEN"]

PROVEN, DIFFERS, NOT_PROVEN = "PROVEN", "DIFFERS", "NOT PROVEN"


class _Failure(Exception):
    def __init__(self, verdict, message, layer=None, channel=None):
        super().__init__(message)
        self.verdict, self.message, self.layer, self.channel = verdict, message, layer, channel


def _issues_of(v):
    return tuple(getattr(v, "issues", ()) or ())


def _form_text(space: Space, lin: Lin, limit: int = 4) -> str:
    items = sorted(lin.form.items())
    parts = [f"{c:+d}*{space.describe(v)}" for v, c in items[:limit]]
    more = f" ... ({len(items)} terms)" if len(items) > limit else ""
    return " ".join(parts) + more + (f" {lin.const:+d}" if lin.const else "")


def _atoms_in(space: Space, lins) -> list:
    """Every atom reachable from ``lins`` through atom definitions, earliest first."""
    seen, order, stack = set(), [], []
    for lin in lins:
        stack.extend(v for v in lin.form if v in space.atom_def)
    while stack:
        v = stack.pop()
        if v in seen:
            continue
        seen.add(v)
        order.append(v)
        d = space.atom_def[v]
        deps = d[1] if d[0] == "lin" else d[1]
        stack.extend(u for u in deps if u in space.atom_def)
    return order


def _diagnose_atom(space: Space, spec, var: int):
    """The specification channel a wrong hardware atom stands for, and how it differs."""
    d = space.atom_def[var]
    issues = space.atom_issues.get(var, ())
    deps = list(d[1])
    dep_layers = [space.label[u][0] for u in deps if u in space.label]
    # The layer whose inputs are the atom's variables: after the latest layer it reads.
    prev = max(dep_layers) if dep_layers else 0
    candidates = [ls for ls in spec.layers if ls.index > prev and ls.outputs and ls is not spec.layers[-1]]
    if not candidates:
        candidates = [ls for ls in spec.layers if ls is not spec.layers[-1]]
    if not dep_layers and spec.quantized:
        feature = min(int(space.names[u].split("[")[1].rstrip("]")) for u in deps) // spec.input_width
        what = "; ".join(issues) if issues else "its compare is not the network's threshold"
        return (NOT_PROVEN if issues else DIFFERS), f"layer 0 (input quantiser) feature {feature}: {what}", 0, feature
    else:
        target = candidates[0] if candidates else None
        layer_name = f"layer {target.index} (dense)" if target else "a hidden layer"
    best, best_score, detail = None, None, ""
    if target is not None and d[0] == "lin":
        form, cut = d[1], d[2]
        for j, bit in enumerate(target.outputs):
            if not bit.form:
                continue
            sv = next(iter(bit.form))
            sd = space.atom_def.get(sv)
            if sd is None or sd[0] != "lin":
                continue
            sform, scut = sd[1], sd[2]
            keys = set(form) | set(sform)
            diff = [k for k in keys if form.get(k, 0) != sform.get(k, 0)]
            score = len(diff) + (cut != scut)
            if best_score is None or score < best_score:
                best, best_score = j, score
                parts = []
                if diff:
                    parts.append("the weights on " + ", ".join(space.describe(k) for k in sorted(diff)[:4]))
                if cut != scut:
                    parts.append(f"the threshold (compare at {cut}, the network's cut is {scut})")
                detail = " and ".join(parts)
    if issues:
        return NOT_PROVEN, f"{layer_name} channel {best if best is not None else '?'}: " + "; ".join(issues), \
            target.index if target else None, best
    if best is None:
        return DIFFERS, f"{layer_name}: the hardware computes a compare no channel of the network makes", \
            target.index if target else None, None
    return DIFFERS, f"{layer_name} channel {best} differs from the network: {detail or 'its compare'}", target.index, best


def _check_scores(space, spec, scores_hw, where):
    for j, (hw, want) in enumerate(zip(scores_hw, spec.scores)):
        if not isinstance(hw, Lin):
            raise _Failure(NOT_PROVEN, f"score {j} ({where}): " + "; ".join(_issues_of(hw) or ("not a linear form",)),
                           spec.layers[-1].index, j)
    # A wrong atom below the scores is the first difference; report the earliest one.
    wrong = [v for v in _atoms_in(space, [s for s in scores_hw]) if v not in space.label]
    if wrong:
        # The first difference: a wrong atom all of whose atom variables are specification atoms.
        def depth(v):
            return max((space.label[u][0] for u in space.atom_def[v][1] if u in space.label), default=-1)

        first = [v for v in wrong if all(u in space.label or u not in space.atom_def for u in space.atom_def[v][1])]
        raise _Failure(*_diagnose_atom(space, spec, min(first or wrong, key=lambda v: (depth(v), v))))
    last = spec.layers[-1]
    for j, (hw, want) in enumerate(zip(scores_hw, spec.scores)):
        if hw.issues:
            raise _Failure(NOT_PROVEN, f"layer {last.index} (scores) channel {j}: " + "; ".join(hw.issues), last.index, j)
        if not hw.same(want):
            keys = set(hw.form) | set(want.form)
            diff = sorted(k for k in keys if hw.form.get(k, 0) != want.form.get(k, 0))
            what = ("the weights on " + ", ".join(space.describe(k) for k in diff[:4])) if diff else \
                f"the constant ({hw.const} vs {want.const})"
            raise _Failure(DIFFERS, f"layer {last.index} (scores) channel {j} differs from the network: {what}",
                           last.index, j)


def prove_netlist(netlist: Netlist, net, desc: dict, progress=None) -> dict:
    """Prove the netlist of an unrolled engine against ``net``; return the report (see docs/prove.md)."""
    say = progress or (lambda msg: None)
    times = {}
    t0 = time.monotonic()
    space = Space()
    spec = specify(net, space)
    times["specify_s"] = round(time.monotonic() - t0, 3)
    say(f"specification: {len(spec.layers)} binary layers, {spec.classes} classes ({times['specify_s']:.1f} s)")

    t0 = time.monotonic()
    ev = Evaluator(netlist, space, {"out_ready": 1, "rst": 0})
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
        elif bad and bad[0] is not None and entry["layer"] < bad[0]:
            entry["status"] = "proven"  # everything it feeds was matched atom for atom
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
    return sorted(names)[0].split(".")[0] if names else "top"
