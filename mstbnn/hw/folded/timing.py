"""Exact cycle model of the folded engine: latency and initiation interval.

Like :mod:`mstbnn.hw.timing` for the unrolled engine, the model replays the
RTL's flow control cycle by cycle (no data). A folded stage's rules, exactly
those of :mod:`mstbnn.hw.folded.stage`::

    active      = running or (window_valid and not taken and primed)     stage A (walk)
    window_last = active and step_counter == W - 1
    ctrl_en     = not window_last or (not pending and (not out_valid or out_ready))
    step        = active and ctrl_en
    release     = b_valid and b_window_last                                stage B1 (datapath)
    en_front    = not window_valid or release
    in_ready    = en_front and not (window front on a pad position)
    on step:        step_counter advances (wraps to 0, running <- 0, after W steps)
    b_valid <- step, b_window_last <- step and window_last
    b2_window_last <- b_valid and b_window_last                            stage B2 (datapath)
    finish  <- b2_window_last                                              stage C (finish)
    taken   <- 1 on step and window_last, 0 on release
    pending <- 1 on step and window_last, 0 on finish
    out_valid <- 1 on finish, else 0 when out_ready

Pool stages are the unrolled engine's (one register after the front); the
argmax is :class:`~mstbnn.hw.folded.argmax.SequentialArgmax` (C + 1 cycles
per image, see there). Per window a folded layer therefore needs W cycles of walk
(:func:`mstbnn.hw.folded.plan.window_cycles`) plus one: the front end may
only move once the datapath has read the window's last step. Latency through
a folded stage is W + 4 (front register, two datapath stages, finish); a
window needs W + 1 cycles when W >= 3 and the next window is ready (4 when
W <= 2: the output register must be loaded before the next window's last step).

For networks too large to replay (millions of cycles per image),
:func:`bottleneck_cycles` gives the steady-state bound: the largest
per-image busy time of any stage.
"""

from __future__ import annotations

from mstbnn.hw.timing import FrontCounter

__all__ = ["simulate_flow", "flow_trace", "flow_model", "cycle_model", "bottleneck_cycles", "window_busy_cycles",
           "FLOW_IMAGES"]


def window_busy_cycles(walk: int) -> int:
    """Cycles a folded stage is busy per window in the steady state: W + 1, and 4 when W <= 2.

    The front end moves only once the datapath has the window's last step (+1);
    a window's last step waits until the previous window has loaded the
    output register (``pending`` clears in its finish cycle, three after its
    step), so windows are at least 4 cycles apart. The RTL could only do
    better with a second output register: the finish is unconditional.
    """
    return max(4, walk + 1)


class _Stage:
    # What a stage's future depends on (with ``front.pos``), and what never changes.
    FLOW = ("busy", "valid0", "out_valid", "running", "taken", "pending", "b_valid", "b_wlast", "b2_wlast", "finish",
            "primed", "k")
    CONSTANT = ("argmax", "classes", "folded", "walk", "front")

    def __init__(self, spec: dict):
        self.argmax = spec["kind"] == "argmax"
        self.classes = int(spec.get("classes", 0))
        self.busy = False
        self.front = FrontCounter({"kind": "vector"} if self.argmax else spec)
        self.folded = bool(spec.get("folded"))
        self.walk = int(spec.get("walk", 0))
        self.valid0 = False  # the front's output register (window_valid)
        self.out_valid = False
        self.running = False
        self.k = 0
        self.taken = False
        self.pending = False
        self.b_valid = False
        self.b_wlast = False
        self.b2_wlast = False
        self.finish = False
        self.primed = False

    def comb(self, out_ready: bool):
        """Returns (in_ready, plan) for this cycle given the downstream ready."""
        if self.argmax:
            done = self.busy and self.k == self.classes and ((not self.out_valid) or out_ready)
            return not self.busy, ("argmax", done, out_ready)
        if not self.folded:
            en = (not self.out_valid) or out_ready
            return en and not self.front.on_pad(), ("pipe", en)
        active = self.running or (self.valid0 and not self.taken and self.primed)
        window_last = active and self.k == self.walk - 1
        ctrl_en = (not window_last) or (not self.pending and ((not self.out_valid) or out_ready))
        step = active and ctrl_en
        release = self.b_valid and self.b_wlast
        en_front = (not self.valid0) or release
        return en_front and not self.front.on_pad(), ("folded", en_front, step, window_last, release, out_ready)

    def update(self, plan, in_valid: bool) -> bool:
        """Clock edge; returns whether an input beat was consumed."""
        consumed = False
        if plan[0] == "argmax":
            _, done, out_ready = plan
            if done:
                self.out_valid, self.busy = True, False
            elif out_ready:
                self.out_valid = False
            if in_valid and not self.busy and not done:
                self.busy, self.k, consumed = True, 1, True
            elif self.busy and self.k < self.classes:
                self.k += 1
            return consumed
        if plan[0] == "pipe":
            en = plan[1]
            if en:
                v0, consumed = self.front.step(in_valid)
                self.out_valid = self.valid0
                self.valid0 = v0
            return consumed
        _, en_front, step, window_last, release, out_ready = plan
        if self.finish:
            self.out_valid = True
            self.pending = False
        elif out_ready:
            self.out_valid = False
        self.finish = self.b2_wlast
        self.b2_wlast = self.b_valid and self.b_wlast
        self.b_valid, self.b_wlast = step, step and window_last
        if step and window_last:
            self.taken = self.pending = True
        elif release:
            self.taken = False
        if step:
            if window_last:
                self.running, self.k = False, 0
            else:
                self.running, self.k = True, self.k + 1
        if en_front:
            self.valid0, consumed = self.front.step(in_valid)
        self.primed = True
        return consumed


def simulate_flow(stages: list[dict], beats_per_image: int, images: int, max_steps: int = 5_000_000):
    """Replay the flow control with an always-valid source and an always-ready sink.

    Returns (last_beat, out): the cycle of each image's last input handshake
    and of each output handshake (:func:`flow_trace` also gives the first).
    """
    trace = flow_trace(stages, beats_per_image, images, max_steps)
    return trace["last_in"], trace["out"]


FLOW_IMAGES = 8  # images the spec's flow trace covers (the simulator's timing phase streams 8)

_BUT_COUNTER = _Stage.FLOW[:-1]


def _state(model, source_pos: int) -> tuple:
    """Everything the future flow depends on (an always-valid source: its position in the image)."""
    return (source_pos,) + tuple(tuple(getattr(st, f) for f in _Stage.FLOW) + (st.front.pos,) for st in model)


def _state_but_counters(model, sent: int) -> tuple:
    """:func:`_state` without the step counters ``k``, with the source's whole count."""
    return (sent,) + tuple(tuple(getattr(st, f) for f in _BUT_COUNTER) + (st.front.pos,) for st in model)


def _walk_skip(model, before: tuple, now: tuple) -> int:
    """Cycles that can be skipped from state ``now``, given the state ``before`` one cycle earlier.

    A folded stage in the middle of a walk only counts: the long stretches of a
    big layer's window change nothing but ``k``. When the last cycle changed
    nothing else, and every counter that moved is a folded stage's and moved
    by one, the next cycles repeat that cycle exactly (``k`` enters the rules
    only as ``k == W - 1``) until some walk reaches its last step: those
    cycles are skipped in one go. An unchanged state is a deadlock (the flow
    is deterministic and the source's count is in the state).
    """
    (key0, ks0), (key1, ks1) = before, now
    if key0 != key1:
        return 0
    moved = [st for st, a, b in zip(model, ks0, ks1) if a != b]
    if not moved:
        raise RuntimeError("folded flow model: the pipeline is stuck (no stage can move)")
    if any(not st.folded or b - a != 1 for st, a, b in zip(model, ks0, ks1) if a != b):
        return 0
    return min(st.walk - 1 - st.k for st in moved)


def flow_trace(stages: list[dict], beats_per_image: int, images: int, max_steps: int = 5_000_000, *,
               until_periodic: bool = False, fast_forward: bool = True) -> dict:
    """The cycle of every image's first and last input handshake and of every output handshake.

    Keys ``first_in``, ``last_in``, ``out`` (cycle 0 = the first cycle after
    reset), from an always-valid source and an always-ready sink, as the
    simulator's timing phase streams. The first image enters an empty
    pipeline, so the first intervals can be shorter than the steady state
    (a padded first conv inserts its top pads without waiting).

    With ``until_periodic`` the source never runs dry and the replay goes on
    until the whole flow state at an output handshake repeats an earlier
    one (from then on the flow is periodic: it is deterministic); ``period``
    is then ``(j, k)``, outputs j and k with the same state.

    ``fast_forward`` skips the stretches where only walk counters move
    (:func:`_walk_skip`): a folded LFC replays in milliseconds instead of
    minutes, and flows that become periodic only after a thousand images
    (walks that drift against each other) finish. ``max_steps`` bounds the
    replayed steps, not the cycles; without ``fast_forward`` every cycle is
    replayed (the tests' naive model).
    """
    model = [_Stage(s) for s in stages]
    total = beats_per_image * images
    sent = 0
    first_beat, last_beat, out = [], [], []
    seen: dict = {}
    period = None
    cycle = steps = 0
    before = None
    while len(out) < images or (until_periodic and period is None):
        steps += 1
        if steps > max_steps:
            raise RuntimeError(f"folded flow model did not finish within {max_steps:,} steps ({cycle:,} cycles)")
        ready = True
        plans = [None] * len(model)
        readies = [False] * len(model)
        for k in range(len(model) - 1, -1, -1):
            readies[k], plans[k] = model[k].comb(ready)
            ready = readies[k]
        if model[-1].out_valid:
            if until_periodic and period is None:
                key = _state(model, sent % beats_per_image)
                if key in seen:
                    period = (seen[key], len(out))
                seen[key] = len(out)
            out.append(cycle)
        out_valid = [s.out_valid for s in model]
        for k, st in enumerate(model):
            in_valid = (until_periodic or sent < total) if k == 0 else out_valid[k - 1]
            consumed = st.update(plans[k], in_valid)
            if k == 0 and consumed:
                if sent % beats_per_image == 0:
                    first_beat.append(cycle)
                sent += 1
                if sent % beats_per_image == 0:
                    last_beat.append(cycle)
        cycle += 1
        now = (_state_but_counters(model, sent), [st.k for st in model])
        skip = 0 if before is None or model[-1].out_valid or not fast_forward else _walk_skip(model, before, now)
        if skip > 0:
            for st, a, b in zip(model, before[1], now[1]):
                if a != b:
                    st.k += skip
            cycle += skip
            now = (now[0], [st.k for st in model])
        before = now
    n = len(out)
    return {"first_in": first_beat[:n], "last_in": last_beat[:n], "out": out, "period": period}


def flow_model(stages: list[dict], beats_per_image: int, images: int = FLOW_IMAGES) -> dict:
    """The exact timing of the first ``images`` images and the steady state.

    ``latency``: image 0's last input beat to its output; ``initiation_interval``:
    the largest output gap of the periodic steady state (every gap, when
    the period is one image); ``input_intervals``, ``output_intervals``:
    the gaps between consecutive images' first input beats and outputs;
    ``latencies``: each image's last input beat to its output (``images``
    images; the first intervals may be shorter than the steady state);
    ``steady_from``: the first output interval (index into
    ``output_intervals``) of the periodic steady state.
    """
    tr = flow_trace(stages, beats_per_image, images, until_periodic=True)
    j, k = tr["period"]
    out = tr["out"]
    steady = [b - a for a, b in zip(out[j:k], out[j + 1:k + 1])] or [1]
    first, last = tr["first_in"][:images], tr["last_in"][:images]
    return {
        "latency": out[0] - last[0],
        "initiation_interval": max(steady),
        "images": images,
        "steady_from": j,
        "input_intervals": [b - a for a, b in zip(first, first[1:])],
        "output_intervals": [b - a for a, b in zip(out[:images], out[1:images])],
        "latencies": [o - l for o, l in zip(out, last)],
    }


def cycle_model(stages: list[dict], beats_per_image: int, images: int = FLOW_IMAGES) -> tuple[int, int]:
    """(latency, initiation interval): image 0's last input beat to its output; steady-state output gap."""
    model = flow_model(stages, beats_per_image, images)
    return model["latency"], model["initiation_interval"]


def bottleneck_cycles(stages: list[dict], beats_per_image: int) -> int:
    """Steady-state cycles per image bound: the busiest stage's cycles per image.

    A folded stage is busy W + 1 cycles per window (4 when W <= 2); every
    front end needs at least one cycle per input position (pads included).
    """
    worst = beats_per_image
    for s in stages:
        if s["kind"] == "argmax":
            worst = max(worst, s["classes"] + 1)
            continue
        f = FrontCounter(s)
        windows = sum(f.ends) if f.kind == "window" else 1
        busy = window_busy_cycles(int(s.get("walk", 0))) if s.get("folded") else 1
        worst = max(worst, f.period, windows * busy)
    return worst
