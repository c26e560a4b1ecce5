"""Arrays decoded from a slow source (60,000 JPEGs, say), kept as an .npz beside it.

The cache is written only from arrays that ``build`` decoded from a verified source (the
loaders verify as they read: checksums, or the compressed stream's CRC), and it records the
source's size, modification time and SHA-256. It is verified when read: a cache whose record
does not match its source (the SHA-256 included, so a source changed in place with its
time stamp kept is caught), or that cannot be read back whole (an npz is a zip: every
member's CRC is checked as it is read), is rebuilt rather than trusted.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
import warnings
import zipfile
from collections.abc import Callable
from pathlib import Path

import numpy as np

from .sources import file_digest, is_writable_dir

CACHE_ENV = "MINIDL_CACHE"
_SIZE_KEY = "__source_size"
_MTIME_KEY = "__source_mtime_ns"
_SHA256_KEY = "__source_sha256"


def cache_root() -> Path:
    """Writable folder for decoded caches: ``$MINIDL_CACHE``, else ``~/.cache/minidl``."""
    env = os.environ.get(CACHE_ENV)
    return Path(env).expanduser() if env else Path.home() / ".cache" / "minidl"


def cache_path(source: Path, suffix: str) -> Path:
    """Where arrays decoded from `source` are kept: beside it if its folder is writable, else
    under ``cache_root()/decoded`` with a tag of the source's absolute path in the name."""
    if is_writable_dir(source.parent):
        return source.with_name(source.name + suffix)
    tag = hashlib.sha256(str(source.resolve()).encode()).hexdigest()[:12]
    return cache_root() / "decoded" / f"{source.name}.{tag}{suffix}"


def _source_stamp(source: Path) -> tuple[int, int]:
    info = source.stat()
    return info.st_size, info.st_mtime_ns


def _read_cache(path: Path, source: Path) -> dict[str, np.ndarray] | None:
    try:
        with np.load(path, allow_pickle=False) as npz:
            arrays = {key: npz[key] for key in npz.files}  # reading checks every member's CRC
    except (OSError, ValueError, EOFError, zipfile.BadZipFile):
        return None
    size, mtime = arrays.pop(_SIZE_KEY, None), arrays.pop(_MTIME_KEY, None)
    digest = arrays.pop(_SHA256_KEY, None)
    if size is None or mtime is None or (int(size), int(mtime)) != _source_stamp(source):
        return None
    if digest is None or str(digest) != file_digest(source):
        return None
    return arrays


def _stamp(source: Path) -> dict[str, np.ndarray]:
    """What identifies the source: size, modification time and SHA-256."""
    size, mtime = _source_stamp(source)
    return {
        _SIZE_KEY: np.int64(size),
        _MTIME_KEY: np.int64(mtime),
        _SHA256_KEY: np.array(file_digest(source)),
    }


def _write_cache(path: Path, stamp: dict[str, np.ndarray], arrays: dict[str, np.ndarray]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".part")
    try:
        with os.fdopen(fd, "wb") as f:
            np.savez(f, **arrays, **stamp)
        os.chmod(tmp, 0o644)  # mkstemp makes files 0600; data is for every user
        os.replace(tmp, path)  # atomic: a reader sees the old cache or the whole new one
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def cached_arrays(
    source: Path, suffix: str, build: Callable[[], dict[str, np.ndarray]]
) -> dict[str, np.ndarray]:
    """Arrays decoded from `source`: read from its cache if that is valid, else `build()`
    them and write the cache (atomically). A cache that cannot be written is skipped."""
    path = cache_path(source, suffix)
    arrays = _read_cache(path, source) if path.is_file() else None
    if arrays is None:
        stamp = _stamp(source)  # before decoding: the stamp of the bytes that get verified
        arrays = build()
        try:
            _write_cache(path, stamp, arrays)
        except OSError as err:  # a read-only home is no reason to fail: the arrays are here
            warnings.warn(
                f"cannot write the cache {path} ({err}); decoding again next time", stacklevel=2
            )
    return arrays
