import hashlib
import os
import urllib.error
from pathlib import Path

import numpy as np
import pytest

from minidl.data import (
    DataCorruptError,
    DataNotFoundError,
    cached_arrays,
    data_root,
    fetch,
    sources,
)
from minidl.data.cache import cache_path

URL = "https://example.org/files/thing.bin"


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def test_data_root_is_env_or_home_cache(monkeypatch, tmp_path):
    monkeypatch.setenv("MINIDL_DATA", str(tmp_path))
    assert data_root() == tmp_path
    monkeypatch.delenv("MINIDL_DATA")
    assert data_root() == Path.home() / ".cache" / "minidl"


def test_fetch_returns_a_present_file_after_checking_it(tmp_path):
    (tmp_path / "set").mkdir()
    (tmp_path / "set" / "thing.bin").write_bytes(b"payload")
    path = fetch("set/thing.bin", URL, sha(b"payload"), root=tmp_path)
    assert path == tmp_path / "set" / "thing.bin"
    assert (
        fetch("set/thing.bin", URL, md5=hashlib.md5(b"payload").hexdigest(), root=tmp_path) == path
    )


def test_fetch_wrong_checksum_names_file_expected_and_actual(tmp_path):
    (tmp_path / "thing.bin").write_bytes(b"damaged")
    expected = sha(b"payload")
    with pytest.raises(DataCorruptError) as err:
        fetch("thing.bin", URL, expected, root=tmp_path)
    message = str(err.value)
    assert "thing.bin" in message and expected in message and sha(b"damaged") in message


def test_missing_file_offline_names_file_url_and_folder(tmp_path):
    with pytest.raises(DataNotFoundError) as err:
        fetch("set/thing.bin", URL, sha(b"payload"), root=tmp_path)
    message = str(err.value)
    assert "thing.bin" in message and URL in message and str(tmp_path / "set") in message
    assert os.listdir(tmp_path) == []  # no half-written file, no empty folder left behind


def test_missing_file_says_what_minidl_data_must_be_and_catches_the_usual_slip(tmp_path):
    """MINIDL_DATA is the parent of the per-data-set folders; a user who points it at the
    data set's own folder (.../mnist, so files are looked for in .../mnist/mnist) is told."""
    with pytest.raises(DataNotFoundError) as err:
        fetch("set/thing.bin", URL, root=tmp_path)
    assert "set MINIDL_DATA to the folder that holds set/" in str(err.value)
    assert "parent of the per-data-set folders" in str(err.value)
    assert "folder itself" not in str(err.value)
    (tmp_path / "set").mkdir()
    with pytest.raises(DataNotFoundError) as err:
        fetch("set/thing.bin", URL, root=tmp_path / "set")
    assert f"It points at {tmp_path / 'set'}, the set/ folder itself: set it to {tmp_path}." in (
        str(err.value)
    )


def test_no_folder_is_made_inside_read_only_data(tmp_path):
    shared = tmp_path / "shared"
    shared.mkdir(mode=0o555)
    try:
        with pytest.raises(DataNotFoundError, match=r"read-only"):
            fetch("cifar100/thing.bin", URL, root=shared)
        assert os.listdir(shared) == []
    finally:
        shared.chmod(0o755)


def test_download_is_verified_then_renamed(monkeypatch, tmp_path):
    seen = []

    def serve(url, out):
        seen.append(url)
        out.write(b"payload")

    monkeypatch.setattr(sources, "_download", serve)
    path = fetch("set/thing.bin", URL, sha(b"payload"), root=tmp_path)
    assert seen == [URL]
    assert path.read_bytes() == b"payload"
    assert os.listdir(tmp_path / "set") == ["thing.bin"]


def test_wrong_download_is_discarded(monkeypatch, tmp_path):
    monkeypatch.setattr(sources, "_download", lambda url, out: out.write(b"truncat"))
    with pytest.raises(DataCorruptError) as err:
        fetch("set/thing.bin", URL, sha(b"payload"), root=tmp_path)
    assert URL in str(err.value) and sha(b"truncat") in str(err.value)
    assert os.listdir(tmp_path) == []


def test_interrupted_download_leaves_nothing(monkeypatch, tmp_path):
    def drop(url, out):
        out.write(b"pay")
        raise urllib.error.URLError("connection reset")

    monkeypatch.setattr(sources, "_download", drop)
    with pytest.raises(DataNotFoundError, match="connection reset"):
        fetch("thing.bin", URL, root=tmp_path)
    assert os.listdir(tmp_path) == []


def test_cache_is_built_once_and_rebuilt_when_the_source_changes(tmp_path):
    source = tmp_path / "source.bin"
    source.write_bytes(b"v1")
    builds = []

    def build():
        builds.append(1)
        return {"x": np.arange(len(builds) + 2)}

    first = cached_arrays(source, ".cache.npz", build)
    again = cached_arrays(source, ".cache.npz", build)
    assert len(builds) == 1 and np.array_equal(first["x"], again["x"])
    source.write_bytes(b"v2 is longer")
    assert len(cached_arrays(source, ".cache.npz", build)["x"]) == 4
    assert len(builds) == 2


def test_damaged_cache_is_rebuilt(tmp_path):
    source = tmp_path / "source.bin"
    source.write_bytes(b"v1")
    cached_arrays(source, ".cache.npz", lambda: {"x": np.arange(1000)})
    cache = tmp_path / "source.bin.cache.npz"
    cache.write_bytes(cache.read_bytes()[:-50])  # truncated
    again = cached_arrays(source, ".cache.npz", lambda: {"x": np.arange(7)})
    assert np.array_equal(again["x"], np.arange(7))


def test_cache_of_read_only_data_goes_to_the_user_cache(tmp_path):
    shared = tmp_path / "shared"
    shared.mkdir()
    source = shared / "source.bin"
    source.write_bytes(b"v1")
    shared.chmod(0o555)
    try:
        path = cache_path(source, ".cache.npz")
        cached_arrays(source, ".cache.npz", lambda: {"x": np.zeros(3)})
        assert path.parent == tmp_path / "user-cache" / "decoded" and path.is_file()
        assert os.listdir(shared) == ["source.bin"]
    finally:
        shared.chmod(0o755)
