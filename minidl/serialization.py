"""``minidl.save(obj, path)`` and ``minidl.load(path)``: state dicts and checkpoints on disk.

``obj`` is a tree of dicts (any JSON-able keys: an optimizer state dict has int keys),
lists, tuples, scalars, strings, None, tensors and NumPy arrays. No pickle: the file is
a zip archive (readable by ``numpy.load`` as an ``.npz``) holding

- ``0.npy``, ``1.npy``, ...: the arrays, in the order they appear in ``obj``;
- ``structure.json``: the tree, each array replaced by its number and kind;
- ``checksum.sha256``: the SHA-256 of every other member (name and bytes, in order),
  verified by ``load``.

The file is written to a temporary file in the same folder, flushed to disk, then renamed
over ``path``: a crash leaves the old file or the new one, never a half-written one.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import os
import tempfile
import zipfile
from collections import OrderedDict
from typing import IO, Any

import numpy as np

from minidl import backend
from minidl.nn.module import Parameter
from minidl.tensor import Tensor

FORMAT = "minidl"
VERSION = 1
_STRUCTURE, _CHECKSUM = "structure.json", "checksum.sha256"
PathOrFile = str | os.PathLike | IO[bytes]


class SerializationError(RuntimeError):
    """A file that is not a complete, intact minidl file."""


# --------------------------------------------------------------------- encoding
def _encode(obj: Any, arrays: list[np.ndarray], where: str) -> Any:
    """``obj`` as JSON, with arrays appended to ``arrays`` and replaced by their number.

    JSON's own dicts and lists never stand for themselves here (a container is always
    tagged), so a tagged dict cannot be confused with user data."""
    if obj is None or isinstance(obj, (bool, str)):
        return obj
    if isinstance(obj, (int, float)) and not isinstance(obj, np.generic):
        return obj
    if isinstance(obj, Tensor):
        arrays.append(obj.numpy())
        kind = "parameter" if isinstance(obj, Parameter) else "tensor"
        return {"kind": kind, "index": len(arrays) - 1, "requires_grad": obj.requires_grad}
    if isinstance(obj, (np.ndarray, np.generic)):
        if obj.dtype.hasobject:
            raise TypeError(f"save: {where} is an array of Python objects, which is not saved")
        arrays.append(np.asarray(obj))
        return {
            "kind": "ndarray" if isinstance(obj, np.ndarray) else "scalar",
            "index": len(arrays) - 1,
        }
    if backend.device_of(obj) == "cuda" and hasattr(obj, "shape"):  # a CuPy array
        arrays.append(backend.to_numpy(obj))
        return {"kind": "ndarray", "index": len(arrays) - 1}
    if isinstance(obj, dict):
        items = [
            [_encode(k, arrays, f"{where} key {k!r}"), _encode(v, arrays, f"{where}[{k!r}]")]
            for k, v in obj.items()
        ]
        return {"kind": "odict" if isinstance(obj, OrderedDict) else "dict", "items": items}
    if isinstance(obj, (list, tuple)):
        values = [_encode(v, arrays, f"{where}[{i}]") for i, v in enumerate(obj)]
        return {"kind": type(obj).__name__, "items": values}
    hint = "; save its state_dict() instead" if hasattr(obj, "state_dict") else ""
    raise TypeError(f"save: cannot store {where} of type {type(obj).__name__}{hint}")


def _decode(node: Any, arrays: list[np.ndarray], device: str) -> Any:
    if not isinstance(node, dict):
        return node
    kind = node["kind"]
    if kind in ("tensor", "parameter"):
        data = backend.to_device(arrays[node["index"]], device)
        if kind == "parameter":
            return Parameter(data, requires_grad=node["requires_grad"])
        return Tensor(data, requires_grad=node["requires_grad"])
    if kind == "ndarray":
        return arrays[node["index"]]
    if kind == "scalar":
        return arrays[node["index"]][()]
    if kind in ("dict", "odict"):
        pairs = ((_decode(k, arrays, device), _decode(v, arrays, device)) for k, v in node["items"])
        return OrderedDict(pairs) if kind == "odict" else dict(pairs)
    if kind in ("list", "tuple"):
        values = [_decode(v, arrays, device) for v in node["items"]]
        return values if kind == "list" else tuple(values)
    raise SerializationError(f"unknown node kind {kind!r}")


# --------------------------------------------------------------------- saving
def save(obj: Any, f: PathOrFile) -> None:
    """Write ``obj`` (a state dict, or a nested checkpoint dict) to the path or binary
    file ``f``. A path is replaced atomically; tensors are saved from any device."""
    arrays: list[np.ndarray] = []
    structure = {"format": FORMAT, "version": VERSION, "obj": _encode(obj, arrays, "obj")}
    if not isinstance(f, (str, os.PathLike)):
        _write_zip(f, structure, arrays)
        return
    path = os.fspath(f)
    folder = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=f".{os.path.basename(path)}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as out:
            _write_zip(out, structure, arrays)
            out.flush()
            os.fsync(out.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.remove(tmp)
        raise
    _fsync_folder(folder)


def _write_zip(out: IO[bytes], structure: dict, arrays: list[np.ndarray]) -> None:
    digest = hashlib.sha256()
    # Arrays are stored uncompressed: weights hardly compress and loading stays fast.
    with zipfile.ZipFile(out, "w", zipfile.ZIP_STORED) as archive:
        for i, array in enumerate(arrays):
            buffer = io.BytesIO()
            np.lib.format.write_array(buffer, array, allow_pickle=False)
            _add(archive, digest, f"{i}.npy", buffer.getvalue())
        _add(archive, digest, _STRUCTURE, json.dumps(structure).encode())
        archive.writestr(_CHECKSUM, digest.hexdigest())


def _add(archive: zipfile.ZipFile, digest: Any, name: str, payload: bytes) -> None:
    digest.update(name.encode() + b"\0" + len(payload).to_bytes(8, "little"))
    digest.update(payload)
    archive.writestr(name, payload)


def _fsync_folder(folder: str) -> None:
    """Make the rename itself durable (POSIX); not possible on every platform."""
    with contextlib.suppress(OSError):
        fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


# --------------------------------------------------------------------- loading
def load(f: PathOrFile, map_location: str | None = None) -> Any:
    """Read what ``save`` wrote. Tensors come back as Tensors (Parameters as Parameters)
    on ``map_location`` (default the CPU), arrays as NumPy arrays. Raises
    ``SerializationError`` naming the file for a truncated, corrupted or foreign file."""
    name = repr(os.fspath(f)) if isinstance(f, (str, os.PathLike)) else "the given file"
    device = backend.check_device(map_location or "cpu")
    try:
        archive = zipfile.ZipFile(f)
    except zipfile.BadZipFile:
        raise SerializationError(
            f"load: {name} is not a minidl file (not a zip archive: a foreign or truncated file)"
        ) from None
    with archive:
        members = archive.namelist()
        if _STRUCTURE not in members or _CHECKSUM not in members:
            raise SerializationError(
                f"load: {name} is a zip archive but not a minidl file "
                f"(no {_STRUCTURE} and {_CHECKSUM}; it holds {members[:5]})"
            )
        try:
            structure, arrays = _read_verified(archive, name)
        except (zipfile.BadZipFile, EOFError, OSError, ValueError) as error:
            raise SerializationError(f"load: {name} is truncated or corrupted ({error})") from None
    return _decode(structure["obj"], arrays, device)


def _read_verified(archive: zipfile.ZipFile, name: str) -> tuple[dict, list[np.ndarray]]:
    """The structure and the arrays, after checking the checksum over both."""
    digest = hashlib.sha256()
    count = sum(1 for m in archive.namelist() if m.endswith(".npy"))
    payloads = []
    for member in [*(f"{i}.npy" for i in range(count)), _STRUCTURE]:
        payload = archive.read(member)
        digest.update(member.encode() + b"\0" + len(payload).to_bytes(8, "little"))
        digest.update(payload)
        payloads.append(payload)
    expected = archive.read(_CHECKSUM).decode().strip()
    if digest.hexdigest() != expected:
        raise SerializationError(
            f"load: {name} is corrupted: checksum mismatch (stored {expected[:12]}..., "
            f"content {digest.hexdigest()[:12]}...)"
        )
    structure = json.loads(payloads[-1])
    if structure.get("format") != FORMAT or structure.get("version", 0) > VERSION:
        raise SerializationError(
            f"load: {name} has format {structure.get('format')!r} version "
            f"{structure.get('version')}; this minidl reads {FORMAT!r} up to version {VERSION}"
        )
    arrays = [np.lib.format.read_array(io.BytesIO(p), allow_pickle=False) for p in payloads[:-1]]
    return structure, arrays
