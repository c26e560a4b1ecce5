"""Where data sets live on disk, and how a missing file is fetched and checked.

Every loader finds its files under one root folder, laid out as in the project's shared data
(``mnist/train-images-idx3-ubyte.gz``, ``cifar10/...``, ``text/tinyshakespeare.txt``).
A file that is there is checked against its published checksum; a file that is not is
downloaded into a temporary file beside its final place, checked, and only then renamed,
so a half-finished or wrong download never takes the real name.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import shutil
import stat
import tempfile
import urllib.request
from pathlib import Path
from typing import BinaryIO

logger = logging.getLogger(__name__)

DATA_ENV = "MINIDL_DATA"
DATA_HINT = (
    f"{DATA_ENV} is the parent of the per-data-set folders (it holds mnist/, cifar10/, ...), "
    f"not one of them"
)


class DataNotFoundError(FileNotFoundError):
    """A data file is neither on disk nor downloadable (no network, or the server said no)."""


class DataCorruptError(ValueError):
    """A data file is on disk but damaged: wrong checksum, bad magic number, truncated, ..."""


def data_root() -> Path:
    """The folder that holds every data set: ``$MINIDL_DATA``, else ``~/.cache/minidl``."""
    env = os.environ.get(DATA_ENV)
    return Path(env).expanduser() if env else Path.home() / ".cache" / "minidl"


def is_writable_dir(folder: Path) -> bool:
    """True if we may write in `folder`. root passes os.access everywhere, so the mode bits
    count too: a folder with no write bit is shared data to leave as it is, whoever we are."""
    try:
        mode = folder.stat().st_mode
    except OSError:
        return False
    writable_bits = stat.S_IWUSR | stat.S_IWGRP | stat.S_IWOTH
    return os.access(folder, os.W_OK) and bool(mode & writable_bits)


def _make_folder(folder: Path) -> list[Path]:
    """Create `folder` and missing parents, refusing inside a read-only one; returns the
    folders created, deepest first, so that a failed download can remove them again."""
    created, existing = [], folder
    while not existing.exists():
        created.append(existing)
        existing = existing.parent
    if not is_writable_dir(existing):
        raise PermissionError(f"{existing} is read-only")
    folder.mkdir(parents=True, exist_ok=True)
    return created


def resolve_root(root: str | os.PathLike | None) -> Path:
    """The root a loader was given, or `data_root()` when it was given none."""
    return Path(root).expanduser() if root is not None else data_root()


def file_digest(path: str | os.PathLike, algorithm: str = "sha256") -> str:
    """Hex digest of a file, read in 1 MiB chunks so large archives need no memory."""
    digest = hashlib.new(algorithm)
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def verify_file(path: Path, sha256: str | None = None, md5: str | None = None) -> None:
    """Raise `DataCorruptError` unless the file has the given digest(s); None skips a check."""
    for algorithm, expected in (("sha256", sha256), ("md5", md5)):
        if expected is None:
            continue
        actual = file_digest(path, algorithm)
        if actual != expected.lower():
            raise DataCorruptError(
                f"{path}: {algorithm} is {actual}, expected {expected}. The file is damaged or "
                f"is not the published one; delete it so that it is downloaded again."
            )


def fetch(
    relative_path: str,
    url: str,
    sha256: str | None = None,
    *,
    md5: str | None = None,
    root: str | os.PathLike | None = None,
) -> Path:
    """Path of ``root / relative_path``, downloading it from `url` first if it is missing.

    A file already on disk is verified against `sha256` (and `md5`, for sources such as
    MedMNIST that publish only MD5) when given. A download goes to a temporary file in the
    same folder, is verified, then renamed with `os.replace`, which is atomic.
    Raises `DataNotFoundError` (naming the file, the URL and the folder) when the download
    fails, and `DataCorruptError` when a checksum does not match.
    """
    path = resolve_root(root) / relative_path
    if path.is_file():
        verify_file(path, sha256, md5)
        return path
    _download_verified(url, path, sha256, md5, relative_path)
    return path


def _download(url: str, out: BinaryIO) -> None:
    """Copy the body at `url` into `out`. Tests replace this function: there is no network."""
    with urllib.request.urlopen(url, timeout=60) as response:
        shutil.copyfileobj(response, out, 1 << 20)


def _download_verified(
    url: str, path: Path, sha256: str | None, md5: str | None, relative_path: str
) -> None:
    tmp, created = None, []
    try:
        created = _make_folder(path.parent)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".part")
        logger.info("downloading %s to %s", url, path)
        with os.fdopen(fd, "wb") as out:
            _download(url, out)
        os.chmod(tmp, 0o644)  # mkstemp makes files 0600; data is for every user
        verify_file(Path(tmp), sha256, md5)
        os.replace(tmp, path)
        tmp = None
    except DataCorruptError as err:
        raise DataCorruptError(f"download of {path.name} from {url} is wrong: {err}") from err
    except OSError as err:  # URLError, timeouts, refused connections and unwritable folders
        parts = Path(relative_path).parts
        holds = f"{parts[0]}/" if len(parts) > 1 else path.name
        root = path.parents[len(parts) - 1]
        # The usual slip: pointing at the data set's own folder (.../mnist -> .../mnist/mnist).
        slip = (
            f" It points at {root}, the {parts[0]}/ folder itself: set it to {root.parent}."
            if len(parts) > 1 and root.name == parts[0]
            else ""
        )
        raise DataNotFoundError(
            f"{path.name} is not in {path.parent} and could not be downloaded from {url} "
            f"({err}). Download it there, or set {DATA_ENV} to the folder that holds {holds} "
            f"({DATA_HINT}).{slip}"
        ) from err
    finally:
        if tmp is not None and os.path.exists(tmp):
            os.unlink(tmp)
        if not path.exists():
            for folder in created:  # deepest first; leave no empty folders behind
                with contextlib.suppress(OSError):
                    folder.rmdir()
