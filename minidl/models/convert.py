"""``python -m minidl.models.convert FILE.pth OUT [--arch NAME]``: a PyTorch checkpoint
(torchvision's ImageNet files, or ``torch.save(model.state_dict(), ...)``) to a minidl
checkpoint (``minidl.save``: a zip of .npy arrays and JSON, see minidl/serialization.py).

A ``.pth`` file is a pickle, and unpickling can call any function the file names. This
reader never runs code from the file and needs no torch: its unpickler resolves only the
names a tensor state dict uses (``collections.OrderedDict``, ``torch._utils._rebuild_tensor_v2``,
``torch._utils._rebuild_parameter``, the ``torch.*Storage`` dtypes) to functions of its own,
and refuses every other name. Both of torch's layouts are read:

- the zip layout (torch >= 1.6): ``ARCHIVE/data.pkl`` with the storages in
  ``ARCHIVE/data/KEY``, raw little-endian bytes (``ARCHIVE/byteorder`` says otherwise);
- the legacy layout (torch < 1.6, which many torchvision ImageNet files still are): the
  pickled magic number, protocol version and system information, the pickled object, the
  pickled list of storage keys, then each storage as an int64 element count and its bytes.

A tensor comes back as a NumPy array (bfloat16 is widened to float32). Where the file holds
a training checkpoint, the state dict is taken from its ``state_dict`` or ``model`` entry;
``module.`` prefixes (DataParallel) are dropped, old DenseNet names (``norm.1``) become
torchvision's current ones (``norm1``), as torchvision's own loader renames them, and a
BatchNorm saved before torch counted its steps gets ``num_batches_tracked`` = 0, as torch's
loader gives it.
"""

from __future__ import annotations

import argparse
import io
import math
import pickle
import re
import sys
import zipfile
from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import IO, Any

import numpy as np

from minidl.serialization import save

_LEGACY_MAGIC = 0x1950A86A20F9469CFC6C
_LEGACY_PROTOCOL = 1001
_STORAGE_DTYPES = {
    "DoubleStorage": np.float64, "FloatStorage": np.float32, "HalfStorage": np.float16,
    "BFloat16Storage": np.uint16, "LongStorage": np.int64, "IntStorage": np.int32,
    "ShortStorage": np.int16, "CharStorage": np.int8, "ByteStorage": np.uint8,
    "BoolStorage": np.bool_,
}  # fmt: skip
# DenseNet layers were once "norm.1", "conv.2"; torchvision renames them when it loads.
_DENSENET_OLD = re.compile(
    r"^(.*denselayer\d+\.(?:norm|relu|conv))\.((?:[12])\.(?:weight|bias|running_mean|running_var))$"
)


class CheckpointError(ValueError):
    """A file that is not a PyTorch tensor checkpoint this reader accepts."""


# ------------------------------------------------------------------ what the pickle builds
@dataclass(frozen=True)
class _StorageType:
    """What ``torch.FloatStorage`` and the like stand for: an element dtype."""

    name: str


@dataclass(frozen=True)
class _Storage:
    """A storage the pickle names by a persistent id; its bytes are read after unpickling.
    bfloat16 elements are held as uint16 and widened to float32 at the end."""

    key: str
    dtype: np.dtype
    numel: int
    bfloat16: bool = False
    view: tuple[int, int] | None = None  # a legacy view of storage ``key``: (offset, size)


@dataclass(frozen=True)
class _TensorRef:
    """``_rebuild_tensor_v2``'s arguments, turned into an array once storages are read."""

    storage: _Storage
    offset: int
    size: tuple[int, ...]
    stride: tuple[int, ...]


def _rebuild_tensor_v2(
    storage: _Storage,
    storage_offset: int,
    size: tuple[int, ...],
    stride: tuple[int, ...],
    requires_grad: bool = False,
    backward_hooks: Any = None,
    metadata: Any = None,
) -> _TensorRef:
    if not isinstance(storage, _Storage):
        raise CheckpointError(f"a tensor rebuilt from {type(storage).__name__}, not a storage")
    return _TensorRef(storage, int(storage_offset), tuple(size), tuple(stride))


def _rebuild_parameter(data: _TensorRef, requires_grad: bool, backward_hooks: Any) -> _TensorRef:
    return data


def _rebuild_parameter_with_state(
    data: _TensorRef, requires_grad: bool, backward_hooks: Any, state: Any
) -> _TensorRef:
    return data


_GLOBALS = {
    ("collections", "OrderedDict"): OrderedDict,
    ("torch._utils", "_rebuild_tensor_v2"): _rebuild_tensor_v2,
    ("torch._utils", "_rebuild_parameter"): _rebuild_parameter,
    ("torch._utils", "_rebuild_parameter_with_state"): _rebuild_parameter_with_state,
    **{("torch", name): _StorageType(name) for name in _STORAGE_DTYPES},
}


class _Unpickler(pickle.Unpickler):
    """Resolves only ``_GLOBALS``; storages become ``_Storage`` handles, and the dtype of
    each storage key is kept in ``dtypes`` (the legacy layout's bytes need it)."""

    def __init__(self, file: IO[bytes]) -> None:
        super().__init__(file)
        self.dtypes: dict[str, np.dtype] = {}

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) not in _GLOBALS:
            raise CheckpointError(
                f"refusing to load {module}.{name}: only tensors, storages and (ordered) dicts "
                "of a state dict are read from a checkpoint"
            )
        return _GLOBALS[(module, name)]

    def persistent_load(self, pid: Any) -> _Storage:
        """Zip layout: ('storage', type, key, location, numel); legacy: the same and a view
        (view key, offset, size) or None."""
        if not isinstance(pid, tuple) or len(pid) < 5 or pid[0] != "storage":
            raise CheckpointError(f"unknown persistent id {pid!r:.80}")
        kind, key, numel = pid[1], str(pid[2]), int(pid[4])
        if not isinstance(kind, _StorageType):
            raise CheckpointError(f"storage of unknown type {kind!r:.80}")
        dtype = np.dtype(_STORAGE_DTYPES[kind.name])
        self.dtypes[key] = dtype
        view = None
        if len(pid) > 5 and pid[5] is not None:
            _, offset, numel = pid[5]
            view = (int(offset), int(numel))
        return _Storage(key, dtype, numel, kind.name == "BFloat16Storage", view)


# ------------------------------------------------------------------ the two file layouts
def read_checkpoint(path: str | Path) -> Any:
    """The object pickled in the PyTorch checkpoint ``path``, every tensor a NumPy array.
    Raises ``CheckpointError`` for anything else (a foreign file, a pickle naming code)."""
    data = Path(path).read_bytes()
    try:
        if zipfile.is_zipfile(io.BytesIO(data)):
            return _read_zip(data, str(path))
        return _read_legacy(data, str(path))
    except CheckpointError:
        raise
    except Exception as error:  # pickle, zipfile and struct raise a dozen types on bad bytes
        raise CheckpointError(
            f"{path}: not a readable PyTorch checkpoint ({type(error).__name__}: {error})"
        ) from None


def _read_zip(data: bytes, name: str) -> Any:
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        pickles = [m for m in archive.namelist() if m.endswith("data.pkl")]
        if len(pickles) != 1:
            raise CheckpointError(f"{name}: a zip without exactly one data.pkl ({pickles[:3]})")
        prefix = pickles[0][: -len("data.pkl")]
        byteorder = "little"
        if f"{prefix}byteorder" in archive.namelist():
            byteorder = archive.read(f"{prefix}byteorder").decode().strip()
        obj = _Unpickler(io.BytesIO(archive.read(pickles[0]))).load()
        return _resolve(obj, lambda s: _array(archive.read(f"{prefix}data/{s.key}"), s, byteorder))


def _read_legacy(data: bytes, name: str) -> Any:
    stream = io.BytesIO(data)
    if _Unpickler(stream).load() != _LEGACY_MAGIC:
        raise CheckpointError(f"{name}: not a PyTorch checkpoint (no zip, no magic number)")
    protocol = _Unpickler(stream).load()
    if protocol != _LEGACY_PROTOCOL:
        raise CheckpointError(f"{name}: legacy protocol {protocol}, not {_LEGACY_PROTOCOL}")
    sys_info = _Unpickler(stream).load()
    byteorder = "little" if sys_info.get("little_endian", True) else "big"
    unpickler = _Unpickler(stream)
    obj = unpickler.load()
    raw: dict[str, bytes] = {}
    for key in _Unpickler(stream).load():  # each storage: int64 element count, the elements
        count = int.from_bytes(stream.read(8), byteorder, signed=True)
        size = count * unpickler.dtypes.get(str(key), np.dtype(np.uint8)).itemsize
        raw[str(key)] = stream.read(size)
        if len(raw[str(key)]) != size:
            raise CheckpointError(f"{name}: storage {key} is truncated")

    def storage(s: _Storage) -> np.ndarray:
        whole = _array(raw[s.key], replace(s, numel=-1), byteorder)
        return whole if s.view is None else whole[s.view[0] : s.view[0] + s.view[1]]

    return _resolve(obj, storage)


# ------------------------------------------------------------------ storages to arrays
def _array(raw: bytes, s: _Storage, byteorder: str) -> np.ndarray:
    """Storage bytes as a 1-D array of ``s.dtype`` in the machine's byte order."""
    stored = s.dtype.newbyteorder("<" if byteorder == "little" else ">")
    if len(raw) % stored.itemsize or len(raw) // stored.itemsize < s.numel:
        raise CheckpointError(f"storage {s.key} holds {len(raw)} bytes, too few for {s.numel}")
    return np.frombuffer(raw, dtype=stored).astype(s.dtype)


def _tensor(ref: _TensorRef, storage: np.ndarray) -> np.ndarray:
    """A copy of the array of ``size`` and ``stride`` (in elements) at ``offset``; the
    extent is checked first, so a hostile file cannot make it read outside the storage."""
    if any(n < 0 for n in ref.size) or any(st < 0 for st in ref.stride) or ref.offset < 0:
        raise CheckpointError(f"a tensor of size {ref.size}, stride {ref.stride}")
    if len(ref.size) != len(ref.stride):
        raise CheckpointError(f"a tensor of size {ref.size} with stride {ref.stride}")
    if math.prod(ref.size):
        last = ref.offset + sum((n - 1) * st for n, st in zip(ref.size, ref.stride))
        if last >= storage.size:
            raise CheckpointError(
                f"a tensor of size {ref.size} reaches element {last} of a storage of {storage.size}"
            )
        view = np.lib.stride_tricks.as_strided(
            storage[ref.offset :],
            shape=ref.size,
            strides=[st * storage.itemsize for st in ref.stride],
            writeable=False,
        )
        array = np.array(view)
    else:
        array = np.zeros(ref.size, storage.dtype)
    if ref.storage.bfloat16:  # bfloat16 is the upper half of a float32
        array = (array.astype(np.uint32) << 16).view(np.float32)
    return array


def _resolve(obj: Any, storage: Callable[[_Storage], np.ndarray]) -> Any:
    """``obj`` with every ``_TensorRef`` replaced by its array (each storage read once)."""
    cache: dict[_Storage, np.ndarray] = {}

    def walk(node: Any) -> Any:
        if isinstance(node, _TensorRef):
            if node.storage not in cache:
                cache[node.storage] = storage(node.storage)
            return _tensor(node, cache[node.storage])
        if isinstance(node, Mapping):
            return type(node)((k, walk(v)) for k, v in node.items())
        if isinstance(node, (list, tuple)):
            return type(node)(walk(v) for v in node)
        return node

    return walk(obj)


# ------------------------------------------------------------------ checkpoint -> state dict
def state_dict_from(obj: Any, name: str = "the checkpoint") -> OrderedDict[str, np.ndarray]:
    """The state dict in a loaded checkpoint: the object itself when it maps names to
    arrays, else its ``state_dict`` or ``model`` entry; ``module.`` prefixes dropped, old
    DenseNet names renamed, missing BatchNorm step counters set to 0."""
    if isinstance(obj, Mapping) and not _is_state_dict(obj):
        for entry in ("state_dict", "model"):
            if entry in obj and _is_state_dict(obj[entry]):
                obj = obj[entry]
                break
    if not isinstance(obj, Mapping) or not _is_state_dict(obj):
        raise CheckpointError(f"{name} holds no state dict (a mapping of names to tensors)")
    out: OrderedDict[str, np.ndarray] = OrderedDict()
    for key, value in obj.items():
        key = _DENSENET_OLD.sub(r"\1\2", key.removeprefix("module."))
        out[key] = value
        # Files older than BatchNorm's step counter lack it; torch loads them with 0.
        if key.endswith(".running_var"):
            counter = key.removesuffix("running_var") + "num_batches_tracked"
            if counter not in obj and f"module.{counter}" not in obj:
                out[counter] = np.array(0, np.int64)
    return out


def _is_state_dict(obj: Any) -> bool:
    return (
        isinstance(obj, Mapping)
        and len(obj) > 0
        and all(isinstance(k, str) and isinstance(v, np.ndarray) for k, v in obj.items())
    )


def convert(source: str | Path, target: str | Path) -> OrderedDict[str, np.ndarray]:
    """Read the PyTorch checkpoint ``source`` and ``minidl.save`` its state dict (NumPy
    arrays by torchvision's names) to ``target``; returns the state dict."""
    state = state_dict_from(read_checkpoint(source), str(source))
    save(state, target)
    return state


def check_loads(state: Mapping[str, np.ndarray], arch: str) -> str:
    """Build ``minidl.models.<arch>`` with the class count (and GoogLeNet's auxiliary heads)
    the state dict has, and load it strictly; returns the call that was built."""
    from minidl import models  # here: the converter itself needs no model code

    kwargs: dict[str, Any] = {}
    for head in ("fc.weight", "classifier.weight", "classifier.1.weight", "classifier.6.weight"):
        if head in state:
            kwargs["num_classes"] = int(state[head].shape[0])
            break
    if arch == "googlenet" and "aux1.fc2.weight" not in state:
        kwargs["aux_logits"] = False
    model = models.get_model(arch, **kwargs)
    model.load_state_dict(state)
    settings = ", ".join(f"{k}={v!r}" for k, v in kwargs.items())
    return f"minidl.models.{arch}({settings})"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m minidl.models.convert",
        description="Convert a PyTorch/torchvision .pth checkpoint to a minidl checkpoint "
        "(no code from the file is run; torch is not needed).",
    )
    parser.add_argument("source", help="the .pth file (torch.save of a state dict)")
    parser.add_argument("target", help="the minidl checkpoint to write")
    parser.add_argument(
        "--arch", help="a minidl.models name (e.g. resnet50): check that the weights load into it"
    )
    args = parser.parse_args(argv)
    try:
        state = convert(args.source, args.target)
        built = check_loads(state, args.arch) if args.arch else None
    except (CheckpointError, RuntimeError, ValueError) as error:
        print(f"convert: {error}", file=sys.stderr)
        return 1
    count = sum(v.size for v in state.values())
    print(f"{args.source}: {len(state)} tensors, {count:,} numbers -> {args.target}")
    if built:
        print(f"it loads into {built} (pass weights={args.target!r})")
    print("torchvision's weights expect minidl.models.preprocess(arch, images, mode='torch')")
    return 0


if __name__ == "__main__":
    sys.exit(main())
