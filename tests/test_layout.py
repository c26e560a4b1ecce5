"""The README's maps stay true: the files its table of tests names exist, and the listing of
ops (``python -m minidl.ops``) reaches every op class."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_table_of_tests_names_existing_files():
    readme = (ROOT / "README.md").read_text()
    table = readme.split("**Where the tests of a file are.**", 1)[1].split("\n\n", 2)[1]
    rows = [line for line in table.splitlines() if line.startswith("| `")]
    named_code, named_tests = set(), set()
    for row in rows:
        code, tests = row.split(" | ", 1)
        named_code |= set(re.findall(r"`(ops/\w+\.py)`", code))
        named_tests |= set(re.findall(r"`(tests/[\w/]+\.py)`", tests))
    assert named_tests, "the table names no test file"
    for path in named_tests:
        assert (ROOT / path).is_file(), f"README names {path}, which does not exist"
    for path in named_code:
        assert (ROOT / "minidl" / path).is_file(), f"README names minidl/{path}: no such file"


def test_op_listing_covers_every_op_class():
    """Every op class in minidl/ops/ is built by a public name (or is the base class of
    ops that are), and the README's table names only op classes and files that exist."""
    from minidl.ops.__main__ import by_op, entries, location, op_classes

    table = entries()
    rows = dict(by_op(table))
    assert set(rows) == set(op_classes()) and len(rows) > 50
    unreached = [op.__name__ for op, names in rows.items() if not names]
    assert not unreached, f"no public name builds {unreached} (python -m minidl.ops)"
    found = {e.name: e for e in table}
    assert [location(op)[0] for op in found["F.conv2d"].ops] == ["minidl/ops/conv.py"]
    assert [op.__name__ for op in found["Tensor.__add__"].ops] == ["Add"]
    assert "LSTMLayer" in {op.__name__ for op in found["nn.LSTM"].ops}
    assert not found["F.cross_entropy"].ops and "F.nll_loss" in found["F.cross_entropy"].uses
    readme = (ROOT / "README.md").read_text()
    names = {op.__name__ for op in rows}
    for name, path in re.findall(r"^\| `(\w+)` \| `(minidl/ops/\w+\.py)` \|", readme, re.M):
        assert name in names, f"README's op table names {name}, which is no op class"
        assert (ROOT / path).is_file(), f"README's op table names {path}: no such file"


def test_op_listing_runs(capsys):
    from minidl.ops.__main__ import main

    assert main(["--op", "conv2d"]) == 0
    out = capsys.readouterr().out
    assert "F.conv2d" in out and "minidl/ops/conv.py" in out and "F.relu" not in out


def test_engine_reads_in_one_sitting_and_imports_no_op():
    """minidl/tensor.py (the engine and Tensor's core) stays under 450 lines, and the
    dependency runs one way: it imports no op and none of the files that call ops."""
    source = (ROOT / "minidl" / "tensor.py").read_text()
    assert len(source.splitlines()) < 450
    imports = re.findall(r"^(?:from|import) (minidl[\w.]*)", source, re.M)
    assert imports, "tensor.py imports nothing of minidl?"
    for module in imports:
        assert not module.startswith("minidl.ops"), module
        assert module not in ("minidl.tensor_methods", "minidl.tensor_functions", "minidl.nn")


def test_readme_op_table_is_the_listing():
    """The README's op table is exactly ``python -m minidl.ops --markdown``: an op added,
    renamed or reached from a new name shows in the table (regenerate it with that command
    and paste it over the table under "Every op: from a name to its backward")."""
    from minidl.ops.__main__ import entries, markdown

    readme = (ROOT / "README.md").read_text()
    start = readme.index("| op class | file | built by |")
    table = readme[start : readme.index("\n\n", start)]
    assert table == markdown(entries()).strip(), "README's op table is stale: see the docstring"
