"""``minidl.save(obj, path)`` and ``minidl.load(path)``: state dicts and checkpoints on disk.

``obj`` is a tree of dicts (any JSON-able keys: an optimizer state dict has int keys),
lists, tuples, scalars, strings, None, tensors and NumPy arrays. No pickle: the file is
a zip archive (readable by ``numpy.load`` as an ``.npz``) holding

- ``0.npy``, ``1.npy``, ...: the arrays, in the order they appear in ``obj``;
- ``structure.json``: the tree, each array replaced by its number and kind;
- ``checksum.sha256``: the SHA-256 of every other member (name and bytes, in order),
  verified by ``load``.

The file is written to a temporary file in the same folder (``.NAME.PID.XXXX.tmp``), flushed
to disk, then renamed over ``path``: a crash leaves the old file or the new one, never a
half-written one. A temporary file left by a killed save (its process is gone) is removed by
the next save to that path or the next load of it. The file gets the mode a plain ``open``
would give (0666 less the umask: 0644 typically).

Loading refuses, with ``SerializationError`` naming the file, anything that is not an intact
file of this format: a foreign or truncated file, a damaged zip (central directory
included), a checksum mismatch, and a structure that does not describe a saved object (an
unknown node, a missing field, an array index out of range, nesting deeper than
``MAX_DEPTH``).
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import os
import re
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
MAX_DEPTH = 100  # containers within containers; a state dict or checkpoint needs under 10
PathOrFile = str | os.PathLike | IO[bytes]


class SerializationError(RuntimeError):
    """A file that is not a complete, intact minidl file."""


# --------------------------------------------------------------------- encoding
def _encode(obj: Any, arrays: list[np.ndarray], where: str, depth: int = 0) -> Any:
    """``obj`` as JSON, with arrays appended to ``arrays`` and replaced by their number.

    JSON's own dicts and lists never stand for themselves here (a container is always
    tagged), so a tagged dict cannot be confused with user data."""
    if depth > MAX_DEPTH:
        raise ValueError(f"save: {where} is nested more than {MAX_DEPTH} containers deep")
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
            [
                _encode(k, arrays, f"{where} key {k!r}", depth + 1),
                _encode(v, arrays, f"{where}[{k!r}]", depth + 1),
            ]
            for k, v in obj.items()
        ]
        return {"kind": "odict" if isinstance(obj, OrderedDict) else "dict", "items": items}
    if isinstance(obj, (list, tuple)):
        values = [_encode(v, arrays, f"{where}[{i}]", depth + 1) for i, v in enumerate(obj)]
        return {"kind": type(obj).__name__, "items": values}
    hint = "; save its state_dict() instead" if hasattr(obj, "state_dict") else ""
    raise TypeError(f"save: cannot store {where} of type {type(obj).__name__}{hint}")


class _Malformed(Exception):
    """A structure that does not describe a saved object (turned into SerializationError)."""


def _field(node: dict, key: str, kind: type | tuple[type, ...], where: str) -> Any:
    if key not in node:
        raise _Malformed(f"{where}: a {node.get('kind')!r} node without {key!r}")
    value = node[key]
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        raise _Malformed(f"{where}: {key!r} is {value!r}, not of type {kind}")
    return value


def _array(node: dict, arrays: list[np.ndarray], where: str) -> np.ndarray:
    index = _field(node, "index", int, where)
    if not 0 <= index < len(arrays):
        raise _Malformed(f"{where}: array index {index} outside 0..{len(arrays) - 1}")
    return arrays[index]


def _hashable(value: Any) -> bool:
    try:
        hash(value)
    except TypeError:
        return False
    return True


def _decode(
    node: Any, arrays: list[np.ndarray], device: str, where: str = "obj", depth: int = 0
) -> Any:
    """The object a structure node stands for; raises ``_Malformed`` naming the node's place
    (``obj[2][1]``) for anything ``_encode`` does not write."""
    if depth > MAX_DEPTH:
        raise _Malformed(f"{where[:40]}...: nested more than {MAX_DEPTH} containers deep")
    if node is None or isinstance(node, (bool, int, float, str)):
        return node
    if not isinstance(node, dict):
        raise _Malformed(f"{where}: a bare JSON {type(node).__name__}; containers are tagged")
    kind = node.get("kind")
    if kind in ("tensor", "parameter"):
        data = backend.to_device(_array(node, arrays, where), device)
        requires_grad = _field(node, "requires_grad", bool, where)
        cls = Parameter if kind == "parameter" else Tensor
        return cls(data, requires_grad=requires_grad)
    if kind == "ndarray":
        return _array(node, arrays, where)
    if kind == "scalar":
        value = _array(node, arrays, where)
        if value.shape != ():
            raise _Malformed(f"{where}: a scalar of shape {value.shape}")
        return value[()]
    if kind not in ("dict", "odict", "list", "tuple"):
        raise _Malformed(f"{where}: unknown node kind {kind!r}")
    items = _field(node, "items", list, where)
    if kind in ("dict", "odict"):
        pairs = []
        for i, pair in enumerate(items):
            if not isinstance(pair, list) or len(pair) != 2:
                raise _Malformed(f"{where}[{i}]: a dict item that is not a [key, value] pair")
            key = _decode(pair[0], arrays, device, f"{where}[{i}][0]", depth + 1)
            if isinstance(key, (np.ndarray, Tensor)) or not _hashable(key):
                raise _Malformed(f"{where}[{i}][0]: a key that cannot be a dict key")
            pairs.append((key, _decode(pair[1], arrays, device, f"{where}[{i}][1]", depth + 1)))
        return OrderedDict(pairs) if kind == "odict" else dict(pairs)
    values = [_decode(v, arrays, device, f"{where}[{i}]", depth + 1) for i, v in enumerate(items)]
    return values if kind == "list" else tuple(values)


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
    remove_stale_temporaries(path)
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=_temp_prefix(path, os.getpid()), suffix=".tmp")
    try:
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600; a saved file is like any other
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


def _temp_prefix(path: str, pid: int) -> str:
    return f".{os.path.basename(path)}.{pid}."


def remove_stale_temporaries(path: str | os.PathLike) -> list[str]:
    """Delete the temporary files that killed saves to ``path`` left behind (their writer's
    process no longer exists); returns their names. A save in progress in a live process
    (this one's included) keeps its file. Processes are told apart by id, so this is for a
    folder written from one machine."""
    path = os.fspath(path)
    folder = os.path.dirname(os.path.abspath(path))
    pattern = re.compile(re.escape(_temp_prefix(path, 0)[:-2]) + r"(\d+)\.[^/]+\.tmp")
    removed = []
    with contextlib.suppress(OSError):
        for name in os.listdir(folder):
            match = pattern.fullmatch(name)
            if match and not _process_alive(int(match[1])):
                with contextlib.suppress(OSError):
                    os.remove(os.path.join(folder, name))
                    removed.append(name)
    return removed


def _process_alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)  # signal 0: only asks whether the process exists
    except ProcessLookupError:
        return False
    except (PermissionError, OSError):
        return True  # it exists (another user's), or we cannot tell: keep its file
    return True


def _umask() -> int:
    """The process's umask, read without changing it where the system says it (Linux)."""
    with contextlib.suppress(OSError, ValueError), open("/proc/self/status") as status:
        for line in status:
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    mask = os.umask(0o022)  # elsewhere: set and put back (not atomic, hence the above)
    os.umask(mask)
    return mask


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
    ``SerializationError`` naming the file for a truncated, corrupted, malformed or foreign
    file (``FileNotFoundError`` for a missing one)."""
    is_path = isinstance(f, (str, os.PathLike))
    name = repr(os.fspath(f)) if is_path else repr(getattr(f, "name", "the given file"))
    device = backend.check_device(map_location or "cpu")
    if is_path:
        remove_stale_temporaries(f)
        if not os.path.isfile(f):
            open(f, "rb").close()  # the OS's own error: missing, a folder, no permission
    try:
        structure, arrays = _read_archive(f, name)
        return _decode(structure["obj"], arrays, device)
    except SerializationError:
        raise
    except _Malformed as error:
        raise SerializationError(f"load: {name} is not a valid minidl file: {error}") from None
    except RecursionError:
        raise SerializationError(
            f"load: {name} is not a valid minidl file: its structure is nested too deeply"
        ) from None
    except Exception as error:
        # zipfile, zlib, json and numpy's .npy reader raise a dozen types (KeyError,
        # NotImplementedError, struct.error, UnicodeDecodeError, ...) on damaged bytes.
        raise SerializationError(
            f"load: {name} is truncated or corrupted ({type(error).__name__}: {error})"
        ) from None


def _read_archive(f: PathOrFile, name: str) -> tuple[dict, list[np.ndarray]]:
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
        return _read_verified(archive, name)


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
    if not isinstance(structure, dict) or "obj" not in structure:
        raise _Malformed(f"{_STRUCTURE} is not an object with an 'obj' entry")
    version = structure.get("version")
    if structure.get("format") != FORMAT or not isinstance(version, int) or version > VERSION:
        raise SerializationError(
            f"load: {name} has format {structure.get('format')!r} version "
            f"{version}; this minidl reads {FORMAT!r} up to version {VERSION}"
        )
    arrays = [np.lib.format.read_array(io.BytesIO(p), allow_pickle=False) for p in payloads[:-1]]
    return structure, arrays
