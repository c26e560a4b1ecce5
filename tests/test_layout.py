"""The README's map of where the tests of a file are stays true: every file it names exists."""

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
