"""Symbolic evaluation of a netlist in steady streaming: enables high, reset low.

Fixed inputs (``out_ready = 1``, ``rst = 0``) are constants; the others
(``in_data``, ``in_valid``) are free boolean variables. A register passes its
D input on with one more cycle of delay, once its enable is shown constant
high and its resets constant inactive; otherwise the value is marked.

Every word is an exact :class:`~mstbnn.prove.linear.Lin`; its bits are the
low bits of that integer. A cell reading bits as an integer (signed or not,
possibly sign- or zero-extended, possibly from several words) gets the exact
value only where the interval proves it: a slice or wrap ``v - q * 2**m`` is
accepted when every value of the interval lies in one window of ``2**m``,
a single high bit when the interval makes it a sign (``[v < 0]``) or a
threshold (``[v >= 2**o]``). Comparators become atoms. Anything else becomes
an issue carried by the value to where it is used: never a silent pass.

The argmax is proven by structure: a compare ``B > A`` of two maxima selects
in a multiplexer between ``max A`` and ``max B`` (and between their indices);
with the tie going to the lower indices that is the lowest-index argmax of
``A ++ B``. See :class:`MaxOf`, :class:`ArgOf`, :class:`Cmp`.
"""

from __future__ import annotations

import sys
import threading
import time
from dataclasses import dataclass

from mstbnn.prove.linear import Lin, Space, merge_issues
from mstbnn.prove.netlist import Netlist

__all__ = ["ArgOf", "Cmp", "Evaluator", "MaxOf", "Opaque", "run_deep"]


@dataclass(frozen=True)
class MaxOf:
    """``max(members)`` of exact score forms, in index order."""
    members: tuple
    delay: int | None
    issues: tuple = ()

    @property
    def lo(self):
        return max(m.lo for m in self.members)

    @property
    def hi(self):
        return max(m.hi for m in self.members)

    def with_delay(self, extra):
        return MaxOf(self.members, None if self.delay is None else self.delay + extra, self.issues)


@dataclass(frozen=True)
class ArgOf:
    """The index of the first maximum of ``members`` ((index, form) pairs, ascending index)."""
    members: tuple
    delay: int | None
    issues: tuple = ()

    @property
    def lo(self):
        return min(i for i, _ in self.members)

    @property
    def hi(self):
        return max(i for i, _ in self.members)

    def with_delay(self, extra):
        return ArgOf(self.members, None if self.delay is None else self.delay + extra, self.issues)


@dataclass(frozen=True)
class Cmp:
    """``max(right) > max(left)`` (strict) or ``>=``: a compare of two maxima, as a mux select."""
    left: MaxOf
    right: MaxOf
    strict: bool
    delay: int | None
    issues: tuple = ()
    lo = 0
    hi = 1

    def with_delay(self, extra):
        return Cmp(self.left, self.right, self.strict, None if self.delay is None else self.delay + extra, self.issues)

    def negated(self):
        # not (R > L)  ==  L >= R ;  not (R >= L)  ==  L > R
        return Cmp(self.right, self.left, not self.strict, self.delay, self.issues)


@dataclass(frozen=True)
class Opaque:
    """A value the method cannot express; ``issues`` say why."""
    issues: tuple
    delay: int | None = None
    lo = 0
    hi = 0

    def with_delay(self, extra):
        return self


_SEQ = {"$dff", "$dffe", "$sdff", "$sdffe", "$sdffce", "$adff", "$adffe"}


def run_deep(fn, *args):
    """Run ``fn`` in a thread with a deep stack: the evaluator recurses along datapath chains."""
    result, error = [], []

    def target():
        try:
            result.append(fn(*args))
        except BaseException as exc:  # noqa: BLE001 - re-raised in the caller's thread
            error.append(exc)

    old_limit = sys.getrecursionlimit()
    old_size = threading.stack_size()
    sys.setrecursionlimit(max(old_limit, 400_000))
    threading.stack_size(512 * 1024 * 1024)
    try:
        t = threading.Thread(target=target)
        t.start()
        t.join()
    finally:
        threading.stack_size(old_size)
        sys.setrecursionlimit(old_limit)
    if error:
        raise error[0]
    return result[0]


def _wrap(v: Lin, m: int, signed: bool, what: str, space: Space, plain: bool = False) -> Lin:
    """``v``'s low m bits read as an m-bit (signed) integer, exactly.

    In one window of ``2**m`` the read is ``v - q * 2**m``; across one window
    edge E (an interval narrower than ``2**m``) it is
    ``v - q * 2**m - 2**m * [v >= E]``; wider intervals lose information and
    are an issue.
    """
    base = -(1 << (m - 1)) if signed else 0
    q = (v.lo - base) >> m
    if (v.hi - base) >> m == q:
        return v.plus_const(-q << m) if q else v
    kind = "signed" if signed else "unsigned"
    if v.hi - v.lo >= (1 << m) or plain:
        return v.with_issue(f"{what}: a {m}-bit {kind} read of a value in [{v.lo}, {v.hi}] wraps")
    edge = base + ((q + 1) << m)
    above = space.atom(v.plus_const(-edge))
    return Lin.combine([(1, v.plus_const(-q << m)), (-(1 << m), above.with_delay(0) if above.is_const else above)])


class Evaluator:
    """Evaluates output ports of a :class:`Netlist` to symbolic values.

    Parameters
    ----------
    netlist : Netlist
    space : Space
    fixed : dict port -> int, the constant inputs (``{"out_ready": 1, "rst": 0}``)
    """

    def __init__(self, netlist: Netlist, space: Space, fixed: dict, follow_registers: bool = True, progress=None):
        self.progress = progress
        self._count = 0
        self._last_beat = time.monotonic()
        self.net = netlist
        self.space = space
        self.fixed = dict(fixed)
        self.follow_registers = follow_registers
        self._cell_value: dict = {}
        self._bit_cache: dict = {}
        self._busy: set = set()
        self.registers: list = []  # (cell index, enable bit) of every register passed
        self._seen_regs: set = set()
        self.register_issues: list = []
        # Enables and resets are judged with every register a free variable: an
        # enable must be high whatever the state, given out_ready high.
        self.control = Evaluator(netlist, Space(), fixed, follow_registers=False) if follow_registers else None

    # -- ports ------------------------------------------------------------------------------
    def port(self, name: str, lo: int = 0, hi: int | None = None, signed: bool = False):
        bits = self.net.ports[name][1]
        bits = bits[lo:hi]
        return self.read(bits, signed, f"port {name}[{lo}:{lo + len(bits)}]")

    # -- bit resolution --------------------------------------------------------------------
    def _source(self, bit):
        """(kind, ref, offset, delay, issues) of a bit: through registers to the word that makes it."""
        if not isinstance(bit, int):
            return ("const", 1 if bit == "1" else 0, 0, 0, () if bit in ("0", "1") else (f"undriven constant {bit!r}",))
        hit = self._bit_cache.get(bit)
        if hit is not None:
            return hit
        if bit in self._busy:
            return ("const", 0, 0, 0, (f"{self._bitname(bit)}: a feedback loop (a counter or state machine) is not a pipeline",))
        self._busy.add(bit)
        try:
            out = self._resolve(bit)
        finally:
            self._busy.discard(bit)
        self._bit_cache[bit] = out
        return out

    def _resolve(self, bit):
        drv = self.net.driver.get(bit)
        if drv is None:
            out = ("const", 0, 0, 0, (f"bit {bit} ({self._bitname(bit)}) has no driver",))
        elif drv[0] == "port":
            name, off = drv[1], drv[2]
            if name in self.fixed:
                out = ("const", (self.fixed[name] >> off) & 1, 0, 0, ())
            else:
                out = ("var", self.space.input_var(name, off), 0, 0, ())
        else:
            _, idx, port, off = drv
            cell = self.net.cells[idx]
            if cell.type in _SEQ and port == "Q":
                if not self.follow_registers:
                    return ("var", self.space.input_var("state", bit), 0, 0, ())
                issues = self._register_ok(idx)
                kind, ref, o, d, iss = self._source(cell.conn["D"][off])
                out = (kind, ref, o, d + 1, merge_issues(iss, issues))
            elif cell.type == "$mux" and port == "Y":
                s = self.read(cell.conn["S"], False, f"{cell.name}.S")
                if isinstance(s, Lin) and s.is_const:  # a wire to the chosen input
                    kind, ref, o, d, iss = self._source(cell.conn["B" if s.const else "A"][off])
                    out = (kind, ref, o, d, merge_issues(iss, s.issues))
                else:
                    out = ("cell", idx, off, 0, ())
            else:
                out = ("cell", idx, off, 0, ())
        return out

    def _bitname(self, bit) -> str:
        names = self.net.netnames.get(bit, [])
        return names[0] if names else f"bit {bit}"

    def _register_ok(self, idx: int) -> tuple:
        """Issues of a register whose enable is not constant high or whose reset is not constant low."""
        cell = self.net.cells[idx]
        issues = []
        if idx not in self._seen_regs:
            self._seen_regs.add(idx)
            self.registers.append((idx, cell.conn["EN"][0] if "EN" in cell.conn else None))
        for port, active_param in (("EN", "EN_POLARITY"), ("SRST", "SRST_POLARITY"), ("ARST", "ARST_POLARITY")):
            if port not in cell.conn:
                continue
            v = self.control.read(cell.conn[port], False, f"{cell.name}.{port}")
            active = int(cell.params.get(active_param, 1))
            want = active if port == "EN" else 1 - active
            if not (isinstance(v, Lin) and v.is_const and v.const == want):
                issues.append(f"register {self._bitname(cell.conn['Q'][0])}: {port} is not constant "
                              f"{'high' if want == active else 'inactive'} with out_ready high and reset low")
        if issues:
            self.register_issues.extend(issues)
        return tuple(issues)

    # -- reading bits as an integer ----------------------------------------------------------
    def read(self, bits, signed: bool, what: str, plain: bool = False):
        """The integer value of ``bits`` (LSB first) read as signed or unsigned."""
        n = len(bits)
        if n == 0:
            return Lin(const=0)
        srcs = [self._source(b) for b in bits]
        # Group into runs: consecutive bits of one word at one delay, then repeats of its top bit.
        runs = []  # [kind, ref, first offset, distinct count, total length, delay, issues, position]
        for pos, (kind, ref, off, delay, iss) in enumerate(srcs):
            if runs:
                r = runs[-1]
                if kind != "const" and r[0] == kind and r[1] == ref and r[5] == delay:
                    if off == r[2] + r[3] and r[4] == r[3]:
                        r[3] += 1
                        r[4] += 1
                        r[6] = merge_issues(r[6], iss) if iss else r[6]
                        continue
                    if off == r[2] + r[3] - 1:
                        r[4] += 1
                        r[6] = merge_issues(r[6], iss) if iss else r[6]
                        continue
            runs.append([kind, ref, off, 1, 1, delay, iss, pos])
        if len(runs) == 1 and runs[0][0] == "cell":
            value = self.cell_value(runs[0][1])
            if not isinstance(value, Lin):
                return self._read_whole(value, runs[0], n, signed, what)
        terms = []
        issues = ()
        for kind, ref, off, k, length, delay, iss, pos in runs:
            top = pos + length == n
            issues = merge_issues(issues, iss)
            if kind == "const":
                bit = Lin(const=ref)
                v = self._run_value(bit, 0, 1, length, signed and top, what, plain)
            elif kind == "var":
                v = self._run_value(self.space.bit(ref), 0, 1, length, signed and top, what, plain)
            else:
                word = self.cell_value(ref)
                if not isinstance(word, Lin):
                    return Opaque(merge_issues(getattr(word, "issues", ()),
                                               (f"{what}: a part of a non-linear word ({type(word).__name__}) read as an integer",)))
                v = self._run_value(word, off, k, length, signed and top, what, plain)
            terms.append((1 << pos, v.with_delay(delay)))
        out = Lin.combine(terms, self.space.describe)
        if issues:
            out = Lin(out.form, out.const, out.delay, merge_issues(out.issues, issues))
        return out

    def _run_value(self, word: Lin, off: int, k: int, length: int, signed: bool, what: str, plain: bool = False) -> Lin:
        """Bits [off, off + k) of ``word``, the last one repeated to ``length`` bits, as an integer."""
        if off == 0:
            v = word
            if length > k:
                v = _wrap(v, k, True, what, self.space, plain)
            return _wrap(v, length, signed, what, self.space, plain)
        if k == 1:
            # One high bit o of v: a sign when v is in [-2^o, 2^o), a threshold when v is in [0, 2^(o+1)).
            if -(1 << off) <= word.lo and word.hi < (1 << off):
                bit = self.space.atom(word.scaled(-1).plus_const(-1))  # [v < 0] = [-v - 1 >= 0]
            elif 0 <= word.lo and word.hi < (1 << (off + 1)):
                bit = self.space.atom(word.plus_const(-(1 << off)))
            else:
                return word.with_issue(f"{what}: bit {off} of a value in [{word.lo}, {word.hi}] is not a sign or a threshold")
            bit = bit.with_delay(word.delay) if bit.delay is None and bit.form else bit
            if signed:
                return bit.scaled(-1)
            return bit.scaled((1 << length) - 1)
        return word.with_issue(f"{what}: bits [{off}, {off + k}) of a value in [{word.lo}, {word.hi}] are not linear in it")

    def _read_whole(self, value, run, n, signed, what):
        _kind, _ref, off, k, length, delay, iss, pos = run
        issues = merge_issues(getattr(value, "issues", ()), iss)
        if isinstance(value, Opaque):
            return Opaque(issues or (f"{what}: unsupported value",))
        if off != 0 or pos != 0:
            return Opaque(merge_issues(issues, (f"{what}: a slice of a {type(value).__name__} word",)))
        base = -(1 << (n - 1)) if signed else 0
        if not (base <= value.lo and value.hi < base + (1 << n)) or (length > k and not (
                -(1 << (k - 1)) <= value.lo and value.hi < (1 << (k - 1)))):
            return Opaque(merge_issues(issues, (f"{what}: a {n}-bit read of a {type(value).__name__} in [{value.lo}, {value.hi}] is not exact",)))
        out = value.with_delay(delay)
        if iss:
            out = type(out)(**{**out.__dict__, "issues": issues})
        return out

    # -- cells -------------------------------------------------------------------------------
    def cell_value(self, idx: int):
        v = self._cell_value.get(idx)
        if v is None:
            cell = self.net.cells[idx]
            if ("cell", idx) in self._busy:
                return Opaque((f"{cell.name}: a combinational loop",))
            self._busy.add(("cell", idx))
            try:
                v = self._evaluate(cell)
            finally:
                self._busy.discard(("cell", idx))
            self._cell_value[idx] = v
            self._count += 1
            if self.progress is not None and not self._count % 5000 and time.monotonic() - self._last_beat > 20:
                self._last_beat = time.monotonic()
                self.progress(f"{self._count} of {len(self.net.cells)} cells evaluated")
        return v

    def _in(self, cell, port):
        """An operand as an integer; a binary cell is signed only when both operands are (yosys' rule)."""
        if "B" in cell.conn and cell.type not in ("$shl", "$sshl", "$mux"):
            signed = bool(cell.params.get("A_SIGNED", 0)) and bool(cell.params.get("B_SIGNED", 0))
        else:
            signed = bool(cell.params.get(f"{port}_SIGNED", 0))
        return self.read(cell.conn[port], signed, f"{cell.name}.{port}")

    def _evaluate(self, cell):
        t = cell.type
        where = cell.name
        if t in ("$add", "$sub", "$mul", "$neg", "$pos", "$not", "$shl", "$sshl"):
            a = self._in(cell, "A")
            b = self._in(cell, "B") if "B" in cell.conn else None
            if t == "$not" and isinstance(a, Cmp) and int(cell.params.get("Y_WIDTH", 1)) == 1:
                return a.negated()
            for v in (a, b):
                if v is not None and not isinstance(v, Lin):
                    return Opaque(merge_issues(v.issues, (f"{where}: arithmetic on a non-linear value",)))
            if t == "$add":
                return Lin.combine([(1, a), (1, b)], self.space.describe)
            if t == "$sub":
                return Lin.combine([(1, a), (-1, b)], self.space.describe)
            if t == "$neg":
                return a.scaled(-1)
            if t == "$pos":
                return a
            if t == "$not":
                return a.scaled(-1).plus_const(-1)
            if t == "$mul":
                if b.is_const:
                    return a.scaled(b.const)
                if a.is_const:
                    return b.scaled(a.const)
                return Opaque(merge_issues(a.issues, b.issues, (f"{where}: product of two variable words",)))
            if b.is_const and b.const >= 0:  # shifts by a constant
                return a.scaled(1 << b.const)
            return Opaque(merge_issues(a.issues, b.issues, (f"{where}: shift by a variable amount",)))
        if t in ("$ge", "$gt", "$le", "$lt"):
            return self._compare(cell)
        if t in ("$eq", "$ne"):
            a, b = self._in(cell, "A"), self._in(cell, "B")
            if isinstance(a, Lin) and isinstance(b, Lin):
                d = Lin.combine([(1, a), (-1, b)], self.space.describe)
                if d.is_const or d.lo > 0 or d.hi < 0:
                    eq = int(d.is_const and d.const == 0)
                    return Lin(const=eq if t == "$eq" else 1 - eq)
                if d.is_boolean or (-1 <= d.lo and d.hi <= 0):
                    # [d == 0] for d in {0, 1} is 1 - d; for d in {-1, 0} it is 1 + d.
                    eq = d.scaled(-1).plus_const(1) if d.lo >= 0 else d.plus_const(1)
                    return eq if t == "$eq" else eq.scaled(-1).plus_const(1)
                if len(d.form) <= 10:
                    return self._boolean(cell, [d], lambda x: x[0] == 0 if t == "$eq" else x[0] != 0, raw=True)
            return self._opaque(cell, "equality of words")
        if t in ("$and", "$or", "$xor", "$xnor", "$reduce_or", "$reduce_and", "$reduce_bool", "$reduce_xor",
                 "$logic_not", "$logic_and", "$logic_or"):
            return self._logic(cell)
        if t == "$mux":
            return self._mux(cell)
        return self._opaque(cell, f"unsupported cell type {t}")

    def _opaque(self, cell, why):
        return Opaque((f"{cell.name}: {why}",))

    # -- comparators -------------------------------------------------------------------------
    def _compare(self, cell):
        t = cell.type
        a, b = self._in(cell, "A"), self._in(cell, "B")
        if isinstance(a, Opaque) or isinstance(b, Opaque):
            return Opaque(merge_issues(a.issues if isinstance(a, Opaque) else (), b.issues if isinstance(b, Opaque) else ()))
        literal = all(isinstance(x, str) for x in cell.conn["A"]) or all(isinstance(x, str) for x in cell.conn["B"])
        if isinstance(a, Lin) and isinstance(b, Lin) and (literal or (a.is_const and b.is_const)):
            # a >= b : a - b >= 0 ; a > b : a - b - 1 >= 0 ; a <= b : b - a >= 0 ; a < b : b - a - 1 >= 0
            if t in ("$ge", "$gt"):
                d = Lin.combine([(1, a), (-1, b)], self.space.describe)
            else:
                d = Lin.combine([(1, b), (-1, a)], self.space.describe)
            if t in ("$gt", "$lt"):
                d = d.plus_const(-1)
            out = self.space.atom(d)
            return out if out.is_const or out.delay == d.delay else out.with_delay(d.delay - (out.delay or 0))
        # Two variable operands: a compare of maxima (the argmax).
        ma, mb = self._as_max(a), self._as_max(b)
        if ma is None or mb is None:
            return self._opaque(cell, "compare of two non-linear words")
        delays = {m.delay for m in (ma, mb) if m.delay is not None}
        issues = merge_issues(ma.issues, mb.issues)
        if len(delays) > 1:
            issues = merge_issues(issues, (f"{cell.name}: pipeline alignment: compares maxima of delays {sorted(delays)}",))
        delay = max(delays) if delays else None
        if t == "$gt":
            return Cmp(mb, ma, True, delay, issues)  # a > b
        if t == "$lt":
            return Cmp(ma, mb, True, delay, issues)  # b > a
        if t == "$ge":
            return Cmp(mb, ma, False, delay, issues)  # a >= b
        return Cmp(ma, mb, False, delay, issues)  # b >= a

    @staticmethod
    def _as_max(v):
        if isinstance(v, MaxOf):
            return v
        if isinstance(v, Lin):
            return MaxOf((Lin(v.form, v.const, v.delay),), v.delay, v.issues)
        return None

    # -- bit logic ---------------------------------------------------------------------------
    def _logic(self, cell):
        t = cell.type
        if t in ("$and", "$or", "$xor", "$xnor"):
            width = int(cell.params.get("Y_WIDTH", 1))
            if width != 1:
                return self._bitwise_wide(cell)
            ops = [self._in(cell, "A"), self._in(cell, "B")]
            fn = {"$and": lambda x: x[0] & x[1], "$or": lambda x: x[0] | x[1],
                  "$xor": lambda x: x[0] ^ x[1], "$xnor": lambda x: 1 - (x[0] ^ x[1])}[t]
            return self._boolean(cell, ops, fn)
        if t in ("$logic_and", "$logic_or"):
            ops = [self._truth(cell, "A"), self._truth(cell, "B")]
            fn = (lambda x: x[0] & x[1]) if t == "$logic_and" else (lambda x: x[0] | x[1])
            return self._boolean(cell, ops, fn)
        if t in ("$logic_not", "$reduce_bool", "$reduce_or"):
            v = self._truth(cell, "A")
            return self._boolean(cell, [v], (lambda x: 1 - x[0]) if t == "$logic_not" else (lambda x: x[0]))
        # $reduce_and / $reduce_xor over the bits of A
        bits = [self.read([b], False, f"{cell.name}.A") for b in cell.conn["A"]]
        fn = (lambda x: int(all(x))) if t == "$reduce_and" else (lambda x: sum(x) & 1)
        return self._boolean(cell, bits, fn)

    def _truth(self, cell, port):
        """``A != 0`` as a boolean Lin: 1 - [A == 0]."""
        bits = [self.read([b], False, f"{cell.name}.{port}") for b in cell.conn[port]]
        if any(not isinstance(b, Lin) for b in bits):
            return Opaque(merge_issues(*(b.issues for b in bits if not isinstance(b, Lin))))
        consts = [b for b in bits if b.is_const]
        if any(b.const for b in consts):
            return Lin(const=1)
        rest = [b for b in bits if not b.is_const]
        if not rest:
            return Lin(const=0)
        if len(rest) == 1:
            return rest[0]
        return self._boolean(cell, rest, lambda x: int(any(x)))

    def _bitwise_wide(self, cell):
        """A multi-bit bitwise op whose other operand is constant all-ones or all-zeros."""
        return self._opaque(cell, "multi-bit bitwise logic")

    def _boolean(self, cell, ops, fn, raw: bool = False):
        """A boolean function of boolean Lins: folded on constants, else by truth table over their variables."""
        for v in ops:
            if not isinstance(v, Lin):
                return Opaque(merge_issues(getattr(v, "issues", ()), (f"{cell.name}: logic on a non-linear value",)))
            if not raw and not v.is_boolean:
                return self._opaque(cell, f"logic on a value in [{v.lo}, {v.hi}]")
        issues = merge_issues(*(v.issues for v in ops))
        delays = {v.delay for v in ops if not v.is_const}
        if len(delays) > 1:
            issues = merge_issues(issues, (f"{cell.name}: pipeline alignment: logic on delays {sorted(delays)}",))
        variables = sorted({var for v in ops for var in v.form})
        if not variables:
            return Lin(const=int(fn([v.const for v in ops])))
        if len(variables) > 12:
            return self._opaque(cell, f"logic over {len(variables)} variables")
        import numpy as np

        n = len(variables)
        assign = ((np.arange(1 << n)[:, None] >> np.arange(n)[None, :]) & 1).astype(np.int64)
        index = {var: i for i, var in enumerate(variables)}
        vals = []
        for v in ops:
            col = np.full(1 << n, v.const, dtype=np.int64)
            for var, c in v.form.items():
                col = col + c * assign[:, index[var]]
            vals.append(col)
        table = np.array(fn(vals), dtype=np.int64).astype(bool)
        delay = max(delays) if delays else None
        return self.space.table_function(variables, table, delay, issues)

    # -- multiplexers ------------------------------------------------------------------------
    def _mux(self, cell):
        s = self.read(cell.conn["S"], False, f"{cell.name}.S")
        if isinstance(s, Lin) and s.is_const:
            return self._pass(cell, "B" if s.const else "A")
        f = self._pass(cell, "A")
        tv = self._pass(cell, "B")
        if isinstance(s, Cmp):
            # The argmax step first: with two equal scores the value is the same either way, but the
            # structure (which maxima are merged) must still be tracked for the index.
            picked = self._select(cell, s, tv, f)
            if not isinstance(picked, Opaque):
                return picked
        if isinstance(f, Lin) and isinstance(tv, Lin) and f.same(tv):
            return f
        if isinstance(s, Cmp):
            return picked
        if isinstance(s, Lin) and s.is_boolean and isinstance(f, Lin) and isinstance(tv, Lin) and f.is_boolean and tv.is_boolean:
            return self._boolean(cell, [s, tv, f], lambda x: x[0] * x[1] + (1 - x[0]) * x[2])
        return self._opaque(cell, "a multiplexer with a variable select outside the argmax pattern")

    def _pass(self, cell, port):
        """A multiplexer input as a word whose low bits are the input's bits: any exact read will do."""
        for signed in (False, True):
            v = self.read(cell.conn[port], signed, f"{cell.name}.{port}", plain=True)
            if not isinstance(v, Opaque) and not v.issues:
                return v
        return self.read(cell.conn[port], False, f"{cell.name}.{port}")

    def _select(self, cell, cmp: Cmp, t, f):
        """``cmp ? t : f`` where cmp is ``max(R) > max(L)`` (or ``>=``): the argmax step."""
        issues = merge_issues(cmp.issues, getattr(t, "issues", ()), getattr(f, "issues", ()))
        delays = {d for d in (cmp.delay, getattr(t, "delay", None), getattr(f, "delay", None)) if d is not None}
        if len(delays) > 1:
            issues = merge_issues(issues, (f"{cell.name}: pipeline alignment: selects by a compare of delays {sorted(delays)}",))
        left, right = cmp.left, cmp.right
        # The side that wins a tie: left for a strict compare, right otherwise.
        tie = left if cmp.strict else right
        tie_is_t = tie is right  # t is chosen when the compare holds, i.e. for the right side

        def same(a, b):
            return len(a) == len(b) and all(x.same(y) for x, y in zip(a, b))

        mt, mf = self._as_max(t), self._as_max(f)
        consts = isinstance(t, Lin) and isinstance(f, Lin) and t.is_const and f.is_const
        if mt is not None and mf is not None and same(mt.members, right.members) and same(mf.members, left.members) \
                and (not consts or len(right.members) == 1 == len(left.members)):
            members = (mt if tie_is_t else mf).members + (mf if tie_is_t else mt).members
            return MaxOf(members, cmp.delay, issues)
        at, af = self._as_arg(t, right), self._as_arg(f, left)
        if at is not None and af is not None:
            first, second = (at, af) if tie_is_t else (af, at)
            if max(i for i, _ in first.members) >= min(i for i, _ in second.members):
                return Opaque(merge_issues(issues, (f"{cell.name}: argmax ties go to the higher index",)))
            return ArgOf(first.members + second.members, cmp.delay, issues)
        return Opaque(merge_issues(issues, (f"{cell.name}: a multiplexer on a compare of maxima that does not pick the maximum or its index",)))

    @staticmethod
    def _as_arg(v, side: MaxOf):
        """``v`` as the index of side's maximum: an ArgOf over the same forms, or a constant for one form."""
        if isinstance(v, ArgOf):
            if len(v.members) == len(side.members) and all(f.same(m) for (_, f), m in zip(v.members, side.members)):
                return v
            return None
        if isinstance(v, Lin) and v.is_const and len(side.members) == 1:
            return ArgOf(((v.const, side.members[0]),), side.delay)
        return None
