"""The symbolic domain of the proof: exact linear forms over boolean variables, and compare atoms.

Every variable is boolean (0 or 1): a raw input bit, the input valid, or an
*atom*, the truth value of a predicate ``sum c_i v_i >= k`` over earlier
variables. A :class:`Lin` is an exact integer ``const + sum c_i v_i`` with the
cycle delay at which its variables were sampled; its interval follows from
the coefficients, since every variable is 0 or 1.

Atoms are interned by a canonical key, so two predicates that are the same
function get the same variable whichever circuit (hardware or specification)
built them: coefficients are divided by their gcd (the cut rounded up), the
sign is fixed by the first variable (``[F >= k] = 1 - [-F >= 1 - k]``), a
predicate decided by the interval is a constant, and a function of at most
``SMALL_SUPPORT`` variables is keyed by its truth table over the variables it
depends on (so ``x >= 4`` on three bits is the top bit itself, however it is
written). Equal keys imply equal functions; that is all the proof relies on.
"""

from __future__ import annotations

from math import gcd

import numpy as np

__all__ = ["SMALL_SUPPORT", "Lin", "Space", "merge_issues"]

SMALL_SUPPORT = 10
MAX_ISSUES = 3


def merge_issues(*groups) -> tuple:
    out = {}
    for g in groups:
        for issue in g:
            out[issue] = None
    return tuple(out)[:MAX_ISSUES]


class Lin:
    """``const + sum form[v] * v`` over boolean variables, sampled ``delay`` cycles ago (None: a constant).

    ``issues`` are reasons the value is not proven exact (a wrap the interval
    does not rule out, terms of two delays, an enable that is not constant);
    they travel with the value to the atom or output it reaches.
    """

    __slots__ = ("_hi", "_lo", "const", "delay", "form", "issues")

    def __init__(self, form=None, const: int = 0, delay=None, issues: tuple = ()):
        self.form = {v: c for v, c in (form or {}).items() if c}
        self.const = int(const)
        self.delay = None if not self.form else delay
        self.issues = issues
        self._lo = None
        self._hi = None

    # -- interval ---------------------------------------------------------------------------
    def _bounds(self):
        lo = hi = self.const
        for c in self.form.values():
            if c < 0:
                lo += c
            else:
                hi += c
        self._lo, self._hi = lo, hi

    @property
    def lo(self) -> int:
        if self._lo is None:
            self._bounds()
        return self._lo

    @property
    def hi(self) -> int:
        if self._hi is None:
            self._bounds()
        return self._hi

    @property
    def is_const(self) -> bool:
        return not self.form

    @property
    def is_boolean(self) -> bool:
        return 0 <= self.lo and self.hi <= 1

    def key(self) -> tuple:
        return (tuple(sorted(self.form.items())), self.const)

    def same(self, other: Lin) -> bool:
        return self.const == other.const and self.form == other.form

    # -- arithmetic -------------------------------------------------------------------------
    def with_delay(self, extra: int) -> Lin:
        if not extra or self.is_const:
            return self
        out = Lin.__new__(Lin)
        out.form, out.const, out.delay, out.issues = self.form, self.const, self.delay + extra, self.issues
        out._lo, out._hi = self._lo, self._hi
        return out

    def with_issue(self, issue: str) -> Lin:
        out = Lin.__new__(Lin)
        out.form, out.const, out.delay = self.form, self.const, self.delay
        out.issues = merge_issues(self.issues, (issue,))
        out._lo, out._hi = self._lo, self._hi
        return out

    def scaled(self, k: int) -> Lin:
        k = int(k)
        return Lin({v: c * k for v, c in self.form.items()}, self.const * k, self.delay, self.issues)

    def plus_const(self, k: int) -> Lin:
        out = Lin.__new__(Lin)
        out.form, out.const, out.delay, out.issues = self.form, self.const + int(k), self.delay, self.issues
        out._lo = None if self._lo is None else self._lo + int(k)
        out._hi = None if self._hi is None else self._hi + int(k)
        return out

    @staticmethod
    def combine(terms, describe=None) -> Lin:
        """``sum k * value`` over ``terms`` of (k, Lin); an issue when two non-constant terms differ in delay."""
        form: dict = {}
        const = 0
        delay = None
        issues: tuple = ()
        delays = set()
        for k, v in terms:
            if not k:
                continue
            const += k * v.const
            if v.issues:
                issues = merge_issues(issues, v.issues)
            if v.form:
                delays.add(v.delay)
                if delay is None or v.delay > delay:
                    delay = v.delay
                get = form.get
                for var, c in v.form.items():
                    form[var] = get(var, 0) + k * c
        if len(delays) > 1:
            detail = ""
            if describe is not None:
                early = min(delays)
                names = [describe(var) for k, v in terms if v.form and v.delay == early for var in list(v.form)[:2]]
                detail = f" (the earlier term holds {', '.join(names[:3])})"
            issues = merge_issues(issues, (f"pipeline alignment: one word adds terms sampled {sorted(delays)} cycles ago{detail}",))
        return Lin(form, const, delay, issues)


class Space:
    """The variables of one proof: input bits, atoms (interned by canonical key) and their names."""

    def __init__(self):
        self.names: list = []  # var id -> human-readable name
        self.atom_of_key: dict = {}
        self.atom_def: dict = {}  # var id -> ("lin", form, cut) | ("tt", vars, table)
        self.atom_issues: dict = {}  # var id -> issues of a tainted atom
        self.inputs: dict = {}  # (port, bit) -> var id
        self.label: dict = {}  # var id -> (layer index, channel) for specification atoms
        self.predicate: dict = {}  # atom var -> (form, const): the atom is [form + const >= 0]

    def input_var(self, port: str, bit: int) -> int:
        key = (port, int(bit))
        if key not in self.inputs:
            self.inputs[key] = len(self.names)
            self.names.append(f"{port}[{bit}]")
        return self.inputs[key]

    def bit(self, var: int) -> Lin:
        return Lin({var: 1}, 0, 0)

    def describe(self, var: int) -> str:
        if var in self.label:
            layer, channel = self.label[var]
            return f"layer {layer} channel {channel}"
        return self.names[var]

    def _intern(self, key, definition, issues=()) -> int:
        var = self.atom_of_key.get(key)
        if var is None:
            var = len(self.names)
            self.atom_of_key[key] = var
            self.atom_def[var] = definition
            self.names.append(f"atom{var}")
            if issues:
                self.atom_issues[var] = issues
        return var

    def _literal(self, var: int, positive: bool, delay) -> Lin:
        return Lin({var: 1}, 0, delay) if positive else Lin({var: -1}, 1, delay)

    def atom(self, value: Lin) -> Lin:
        """The boolean ``[value >= 0]`` as a Lin (an atom, its complement or a constant), at value's delay.

        A value carrying issues gives a fresh *tainted* atom: it matches no
        specification atom, so the proof fails there, naming the issues.
        """
        if value.lo >= 0:
            return Lin(const=1)
        if value.hi < 0:
            return Lin(const=0)
        if len(value.form) <= SMALL_SUPPORT:
            out = self._table_literal(self._table_key(value), value)
            for var, c in out.form.items():
                if var in self.atom_def and var not in self.predicate:
                    # atom = [value >= 0] for a positive literal, [value < 0] = [-value - 1 >= 0] otherwise
                    self.predicate[var] = (dict(value.form), value.const) if c > 0 else \
                        ({v: -k for v, k in value.form.items()}, -value.const - 1)
            return out
        g = 0
        for c in value.form.values():
            g = gcd(g, c)
        form = {v: c // g for v, c in value.form.items()}
        cut = -((value.const) // g)  # sum form >= ceil(-const / g)
        first = min(form)
        positive = form[first] > 0
        if not positive:
            form = {v: -c for v, c in form.items()}
            cut = 1 - cut
        key = ("lin", tuple(sorted(form.items())), cut)
        if value.issues:
            key = ("tainted", value.issues, key)
        var = self._intern(key, ("lin", form, cut), value.issues)
        self.predicate.setdefault(var, (form, -cut))
        return self._literal(var, positive, value.delay)

    # -- small-support functions: keyed by truth table ---------------------------------------
    def _table_key(self, value: Lin, predicate=True):
        variables = sorted(value.form)
        n = len(variables)
        assign = ((np.arange(1 << n)[:, None] >> np.arange(n)[None, :]) & 1).astype(np.int64)
        coefs = np.array([value.form[v] for v in variables], dtype=np.int64)
        table = (assign @ coefs + value.const) >= 0 if predicate else (assign @ coefs + value.const).astype(bool)
        return variables, table

    def table_function(self, variables, table, delay, issues=()) -> Lin:
        """The boolean function ``table`` (indexed by the bits of ``variables``, LSB first) as a Lin."""
        variables = list(variables)
        table = np.asarray(table, dtype=bool)
        # Drop variables the function does not depend on.
        i = 0
        while i < len(variables):
            n = len(variables)
            t = table.reshape((2,) * (n - i - 1) + (2,) + (2,) * i) if n else table
            lo = np.take(t, 0, axis=n - 1 - i)
            hi = np.take(t, 1, axis=n - 1 - i)
            if np.array_equal(lo, hi):
                table = lo.reshape(-1)
                del variables[i]
            else:
                i += 1
        if not variables:
            return Lin(const=int(table[0]))
        complement = bool(table[0])
        if complement:
            table = ~table
        if len(variables) == 1 and not issues:  # table is [0, 1]: the variable itself
            return self._literal(variables[0], not complement, delay)
        key = ("tt", tuple(variables), np.packbits(table).tobytes(), len(table))
        if issues:
            key = ("tainted", issues, key)
        var = self._intern(key, ("tt", tuple(variables), table), issues)
        return self._literal(var, not complement, delay)

    def _table_literal(self, table_key, value: Lin) -> Lin:
        variables, table = table_key
        return self.table_function(variables, table, value.delay, value.issues)
