"""The repository's basics: the version the package reports is the one it is installed as,
and the licence file says what pyproject.toml says."""

from __future__ import annotations

from pathlib import Path

import pytest

import minidl

try:
    import tomllib
except ImportError:  # Python 3.10
    tomllib = pytest.importorskip("tomli")

ROOT = Path(__file__).resolve().parents[1]


def _pyproject() -> dict:
    return tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]


def test_version_matches_pyproject():
    assert minidl.__version__ == _pyproject()["version"]


def test_license_file_is_the_declared_licence():
    declared = _pyproject()["license"]["text"]
    assert declared == "MIT"
    assert (ROOT / "LICENSE").read_text().startswith("MIT License")


def test_changelog_has_an_entry_for_this_version():
    assert f"## {minidl.__version__}" in (ROOT / "CHANGELOG.md").read_text()
