"""Figures that cannot go stale: every doc table is render(record) or marked not-figures (benchmarks/_record.py)."""

from __future__ import annotations

import importlib.util
import json
import shutil
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _load_record_module():
    if "_record" in sys.modules:  # the benchmarks import it by this name
        return sys.modules["_record"]
    spec = importlib.util.spec_from_file_location("_record", ROOT / "benchmarks" / "_record.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules["_record"] = module  # dataclasses look their module up here
    spec.loader.exec_module(module)
    return module


R = _load_record_module()


@pytest.fixture
def tree(tmp_path):
    """A copy of the docs and records, to plant bugs in."""
    shutil.copy(ROOT / "README.md", tmp_path / "README.md")
    shutil.copytree(ROOT / "docs", tmp_path / "docs")
    shutil.copytree(ROOT / R.RECORDS, tmp_path / R.RECORDS)
    return tmp_path


def test_real_tree_passes():
    assert R.check(ROOT) == []


def test_every_figure_block_names_an_existing_table():
    records = R.load_records(ROOT)
    blocks = [m.groups() for p in R.doc_files(ROOT) for line in p.read_text().split("\n")
              if (m := R.OPEN_RE.match(line))]
    assert len(blocks) >= 30
    for name, key in blocks:
        assert key in records[name]["tables"], (name, key)


def test_changed_figure_in_a_doc_fails_and_update_restores_it(tree):
    doc = tree / "docs" / "mst.md"
    text = doc.read_text()
    start = text.index("<!-- figures:mst:random -->")
    row = text.index("\n| ", text.index("\n|---", start)) + 1  # first data row of the block
    end = text.index("\n", row)
    line = text[row:end]
    cells = line.split(" | ")
    cells[3] = cells[3] + "9"  # one figure, one digit more
    doc.write_text(text[:row] + " | ".join(cells) + text[end:])
    problems = R.check(tree)
    assert len(problems) == 1
    lineno = text[:row].count("\n") + 1
    assert problems[0].startswith(f"docs/mst.md:{lineno}: figures:mst:random differs from its record")
    assert R.main(["check", "--root", str(tree)]) == 1
    assert R.main(["update", "--root", str(tree)]) == 0
    assert doc.read_text() == text
    assert R.check(tree) == []


def test_changed_record_fails_in_every_doc_that_shows_it(tree):
    path = tree / R.RECORDS / "synth.json"
    rec = json.loads(path.read_text())
    table = rec["tables"]["readme"]
    key = table["columns"][5]["key"]
    table["rows"][0][key] = "1"  # a re-measured figure
    path.write_text(R.dump(rec))
    problems = R.check(tree)
    assert any(p.startswith("README.md:") and "figures:synth:readme differs" in p for p in problems)
    assert f"{R.RECORDS}/synth.md: differs from render(synth.json)" in problems
    R.check(tree, fix=True)
    assert R.check(tree) == []
    assert "| 1 |" in (tree / "README.md").read_text()


def test_unmarked_table_fails(tree):
    doc = tree / "docs" / "prove.md"
    doc.write_text(doc.read_text() + "\n| a | b |\n|---|---|\n| 1 | 2 |\n")
    problems = R.check(tree)
    assert len(problems) == 1 and "table without a marker" in problems[0]
    assert problems[0].startswith("docs/prove.md:")
    # update cannot fix it: a human decides whether it is a figure
    assert R.main(["update", "--root", str(tree)]) == 1


def test_removed_not_figures_marker_fails(tree):
    doc = tree / "docs" / "qonnx.md"
    text = doc.read_text()
    marker = next(line for line in text.split("\n") if R.NOT_FIGURES_RE.match(line))
    doc.write_text(text.replace(marker + "\n", "", 1))
    problems = R.check(tree)
    assert len(problems) == 1 and "table without a marker" in problems[0]


def test_tables_in_code_fences_are_not_tables(tree):
    doc = tree / "docs" / "prove.md"
    doc.write_text(doc.read_text() + "\n```\n| a | b |\n|---|---|\n```\n")
    assert R.check(tree) == []


@pytest.mark.parametrize("plant, message", [
    ("<!-- figures:mst:random -->\n| x |\n", "has no `<!-- /figures -->`"),
    ("<!-- figures:nosuch:t -->\n<!-- /figures -->\n", "no record benchmarks/records/nosuch.json"),
    ("<!-- figures:mst:nosuch -->\n<!-- /figures -->\n", "has no table 'nosuch'"),
    ("<!-- /figures -->\n", "without an opening figure block"),
    ("<!-- not-figures: stray -->\n\ntext\n", "not directly above a table"),
])
def test_malformed_blocks_fail(tree, plant, message):
    doc = tree / "docs" / "prove.md"
    doc.write_text(doc.read_text() + "\n" + plant)
    problems = R.check(tree)
    assert problems and any(message in p for p in problems), problems


def test_recorder_writes_record_and_fragment_a_doc_can_paste(tmp_path):
    (tmp_path / "docs").mkdir()
    table = R.Table([R.Column("size", "C x N"), R.Column("t", "time (s)", "right", "{:.3f}"),
                     R.Column("span", "min-max (s)", "right", "{0:.3f}-{1:.3f}"),
                     R.Column("n", "XNORs", "right", "{:,}"), R.Column("v", "verdict", none="not run")])
    table.add(size="64 x 576", t=0.0123, span=[0.01, 0.0149], n=16418, v="PROVEN")
    table.add(size="512 x 4608", t=0.2, span=[0.1, 0.3], n=1126476)
    rec = R.Recorder("demo_bench", str(tmp_path / "benchmarks" / "bench_x.py"), ["--quick"], root=tmp_path)
    rec.add("main", table)
    path = rec.write()
    data = json.loads(path.read_text())
    main = data["tables"]["main"]
    assert main["command"] == "python benchmarks/bench_x.py --quick"
    assert main["provenance"] == R.MEASURED
    assert main["rows"][0]["n"] == 16418  # rows are data, not text
    assert {"start", "end"} <= set(main["load_average"]) and "python" in main["versions"]
    text = R.render(data, "main")
    assert text.split("\n")[:4] == ["| C x N | time (s) | min-max (s) | XNORs | verdict |",
                                    "|---|---:|---:|---:|---|",
                                    "| 64 x 576 | 0.012 | 0.010-0.015 | 16,418 | PROVEN |",
                                    "| 512 x 4608 | 0.200 | 0.100-0.300 | 1,126,476 | not run |"]
    assert "`python benchmarks/bench_x.py --quick`" in text.split("\n")[-1]
    fragment = (tmp_path / R.RECORDS / "demo_bench.md").read_text()
    body = fragment.split("\n", 2)[2]  # the fragment's blocks, pasted into a doc as they are
    (tmp_path / "README.md").write_text("# x\n\n" + body)
    assert R.check(tmp_path) == []


def test_cells_that_would_break_a_table_are_refused():
    t = R.Table([R.Column("a", "a")])
    t.add(a="x | y")
    with pytest.raises(ValueError):
        R.render_table(t)
    with pytest.raises(ValueError):
        R.Table([R.Column("a", "a")], rows=[{"b": 1}]).to_json()


def test_a_run_replaces_its_own_tables_and_keeps_the_others(tmp_path):
    def run(argv, tables):
        rec = R.Recorder("merged", str(tmp_path / "benchmarks" / "bench_x.py"), argv, root=tmp_path)
        for key, value in tables.items():
            t = R.Table([R.Column("v", "v", "right")])
            t.add(v=value)
            rec.add(key, t)
        return json.loads(rec.write().read_text())

    run(["--a"], {"one": 1, "two": 2})
    data = run(["--b"], {"two": 20, "three": 3})
    assert list(data["tables"]) == ["one", "two", "three"]
    assert [data["tables"][k]["rows"][0]["v"] for k in ("one", "two", "three")] == [1, 20, 3]
    assert data["tables"]["one"]["command"].endswith("--a") and data["tables"]["two"]["command"].endswith("--b")
    assert "`python benchmarks/bench_x.py --a`" in R.render(data, "one")  # each table's own caption
    assert "`python benchmarks/bench_x.py --b`" in R.render(data, "two")


def test_indented_tables_and_blocks_inside_list_items(tree):
    doc = tree / "docs" / "training.md"
    text = doc.read_text()
    assert "  <!-- figures:ddp_mlp:runs -->" in text  # a block inside a list item, checked like any other
    start = text.index("  <!-- figures:ddp_mlp:runs -->")
    row = text.index("\n  | 1 | 0 | ", start) + 1  # first data row, whatever its figures
    changed = text[:row] + "  | 1 | 0 | 9" + text[row + len("  | 1 | 0 | "):]
    doc.write_text(changed)
    assert any("figures:ddp_mlp:runs differs" in p for p in R.check(tree))
    doc.write_text(text + "\n- a list item\n\n  | a | b |\n  |---|---|\n")
    problems = R.check(tree)
    assert len(problems) == 1 and "table without a marker" in problems[0]


def test_table_from_markdown_renders_back():
    lines = ["| model | LUTs | verdict |", "|---|---:|:---:|", "| a | 1,234 | no fit (est. 9 LUT) |", "| b | - | ok |"]
    t = R.table_from_markdown(lines)
    assert R.render_table(t) == "\n".join(lines)
    assert t.rows[0] == {"model": "a", "luts": "1,234", "verdict": "no fit (est. 9 LUT)"}
    with pytest.raises(ValueError):
        R.table_from_markdown(["| a | b |", "|---|---|", "| 1 |"])
