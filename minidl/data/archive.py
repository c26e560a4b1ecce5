"""Read the files of a folder tree from a folder, a .tar(.gz) or a .zip, without unpacking.

Data sets ship as trees (``train/<class>/0001.jpg``, ``movie_reviews/pos/cv000.txt``), either
unpacked or in an archive. Reading members straight from the archive keeps shared, read-only
data untouched and needs no scratch space.

Verification: a compressed tar (.tar.gz, .tar.bz2, .tar.xz) is read to the end of its
compressed stream, so that the stream's own check (gzip's CRC-32 and length trailer) runs:
``tarfile`` stops at the end-of-archive blocks, before the trailer, and ends quietly at a
damaged header, so without this one flipped byte gives damaged data and no error. A zip
member's CRC is checked as it is read.
"""

from __future__ import annotations

import os
import tarfile
import zipfile
import zlib
from collections.abc import Callable
from pathlib import Path

from .sources import DataCorruptError, DataNotFoundError

# What a damaged archive raises from inside tarfile, gzip, zlib and zipfile (a damaged zip
# central directory: KeyError for a member it names but cannot find, NotImplementedError
# for a compression method it garbles, ValueError for impossible sizes).
_ARCHIVE_ERRORS = (
    tarfile.TarError,
    zipfile.BadZipFile,
    zlib.error,
    EOFError,
    OSError,
    KeyError,
    NotImplementedError,
    ValueError,
)


def read_files(
    source: str | os.PathLike,
    under: str = "",
    select: Callable[[str], bool] | None = None,
) -> dict[str, bytes]:
    """Bytes of every file below the folder `under` of `source`, keyed and sorted by path.

    source: a folder, or a tar/zip archive. Keys are POSIX paths relative to `under`; only
    keys for which `select(key)` is true are read. Raises `DataNotFoundError` if `source` is
    missing and `DataCorruptError` (naming the archive) if it cannot be read to the end.
    """
    source = Path(source)
    prefix = under.strip("/") + "/" if under.strip("/") else ""
    keep = select or (lambda key: True)
    if source.is_dir():
        files = _read_folder(source / prefix, keep)
    elif not source.exists():
        raise DataNotFoundError(f"{source} does not exist")
    else:
        reader = _read_zip if source.name.lower().endswith(".zip") else _read_tar
        try:
            files = reader(source, prefix, keep)
        except _ARCHIVE_ERRORS as err:
            raise DataCorruptError(f"{source}: cannot read the archive to its end ({err})") from err
    return dict(sorted(files.items()))


def _read_folder(folder: Path, keep: Callable[[str], bool]) -> dict[str, bytes]:
    if not folder.is_dir():
        return {}
    keys = (path.relative_to(folder).as_posix() for path in folder.rglob("*") if path.is_file())
    return {key: (folder / key).read_bytes() for key in keys if keep(key)}


def _read_tar(source: Path, prefix: str, keep: Callable[[str], bool]) -> dict[str, bytes]:
    # One pass over the members: a .gz stream cannot seek back cheaply.
    files = {}
    with tarfile.open(source, "r:*") as tar:
        for member in tar:
            name = member.name.removeprefix("./")
            key = name[len(prefix) :]
            if member.isfile() and name.startswith(prefix) and keep(key):
                files[key] = tar.extractfile(member).read()
        # To the end of the compressed stream: its CRC is checked there (module docstring).
        while tar.fileobj.read(1 << 20):
            pass
    return files


def _read_zip(source: Path, prefix: str, keep: Callable[[str], bool]) -> dict[str, bytes]:
    files = {}
    with zipfile.ZipFile(source) as archive:
        for info in archive.infolist():
            key = info.filename[len(prefix) :]
            if not info.is_dir() and info.filename.startswith(prefix) and keep(key):
                files[key] = archive.read(info)  # checks the member's CRC
    return files
