"""Fixtures in each canonical format, written small into tmp_path; and no network."""

import gzip
import io
import struct
import urllib.error
from types import SimpleNamespace

import numpy as np
import pytest

from minidl.data import sources


@pytest.fixture(autouse=True)
def no_network(monkeypatch, tmp_path):
    """Every download fails as it would offline, and caches go to a per-test folder."""

    def offline(url, out):
        raise urllib.error.URLError("network is unreachable (test)")

    monkeypatch.setattr(sources, "_download", offline)
    monkeypatch.setenv("MINIDL_CACHE", str(tmp_path / "user-cache"))
    monkeypatch.delenv("MINIDL_DATA", raising=False)


def idx_bytes(array: np.ndarray) -> bytes:
    """An IDX file: 00 00, type 0x08 (uint8), ndim, big-endian dims, then the values."""
    header = bytes([0, 0, 0x08, array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape)
    return header + array.astype(np.uint8).tobytes()


def write_idx_gz(path, array: np.ndarray) -> bytes:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(gzip.compress(idx_bytes(array), mtime=0))
    return path.read_bytes()


def image_bytes(pixels: np.ndarray, fmt: str) -> bytes:
    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format=fmt)
    return buffer.getvalue()


@pytest.fixture
def fmt():
    """The writers above, for tests (conftest modules are not imported by name)."""
    return SimpleNamespace(idx_bytes=idx_bytes, write_idx_gz=write_idx_gz, image_bytes=image_bytes)
