"""The one place that knows NumPy from CuPy.

Op code asks ``get_array_module(x)`` for the array module of its inputs (``xp``) and
writes plain array code against it. Everything that differs between the two libraries
(moving arrays between devices, ``erf``, scatter-add, random numbers) is a function here.

Devices are ``"cpu"`` (NumPy) and ``"cuda"`` (CuPy). Without a GPU, setting
``MINIDL_SIMULATED_CUDA=1`` makes ``"cuda"`` a simulated device (``backend.simulated``):
NumPy arrays wrapped in a type that, like CuPy's, refuses implicit conversion to
``numpy.ndarray`` and refuses to mix with NumPy arrays, so code that would break on CuPy
breaks in tests too.
"""

from __future__ import annotations

import contextlib
import math
import os
import threading
from collections.abc import Iterator
from types import ModuleType
from typing import Any

import numpy as np

from minidl.backend import host_memory, simulated  # host_memory acts when imported

try:  # CuPy is optional: the `gpu` extra.
    import cupy
    import cupyx
except ImportError:  # pragma: no cover - depends on the machine
    cupy = None
    cupyx = None

DEVICES = ("cpu", "cuda")

# What op code computes on: a NumPy or CuPy ndarray (the simulated device's array in tests).
# Op signatures say ``Array`` where they take raw arrays and ``Tensor`` where they take
# tensors; a backward that may record a graph (create_graph) takes ``Array | Tensor``.
Array = Any


def simulating_cuda() -> bool:
    """True when ``"cuda"`` means the simulated device (``MINIDL_SIMULATED_CUDA=1``)."""
    return os.environ.get("MINIDL_SIMULATED_CUDA", "") not in ("", "0")


def cupy_usable() -> bool:
    """True when CuPy is installed and sees at least one CUDA device."""
    if cupy is None:
        return False
    try:
        return cupy.cuda.runtime.getDeviceCount() > 0
    except Exception:  # CuPy raises its own CUDA errors when no driver is present
        return False


def check_device(device: str) -> str:
    """Normalise a device name (``"cuda:0"`` -> ``"cuda"``) or raise naming the choices."""
    name = str(device).split(":")[0]
    if name not in DEVICES:
        raise ValueError(f"unknown device {device!r}: expected one of {DEVICES}")
    if name == "cuda" and not simulating_cuda() and not cupy_usable():
        why = (
            "CuPy is not installed (pip install minidl[gpu])"
            if cupy is None
            else ("CuPy found no CUDA device")
        )
        raise RuntimeError(
            f"device 'cuda' is not available: {why}; "
            "set MINIDL_SIMULATED_CUDA=1 to test the CuPy code path on the CPU"
        )
    return name


def default_device() -> str:
    """The device new tensors go to: ``MINIDL_DEVICE`` (default ``"cpu"``)."""
    return check_device(os.environ.get("MINIDL_DEVICE", "cpu"))


def get_array_module(*arrays: Any) -> ModuleType:
    """The array module (numpy, cupy or the simulated one) of the first array given."""
    for a in arrays:
        if isinstance(a, (np.ndarray, np.generic)):
            return np
        if isinstance(a, simulated.SimArray):
            return simulated.xp
        if cupy is not None and isinstance(a, cupy.ndarray):
            return cupy
    return np


def device_of(array: Any) -> str:
    """``"cpu"`` for NumPy arrays, ``"cuda"`` for CuPy (or simulated) arrays."""
    return "cpu" if get_array_module(array) is np else "cuda"


def cuda_module() -> ModuleType:
    """The array module behind ``"cuda"``: the simulated one, or CuPy."""
    check_device("cuda")
    return simulated.xp if simulating_cuda() else cupy


def module_for(device: str) -> ModuleType:
    """The array module that holds arrays on ``device``."""
    return np if check_device(device) == "cpu" else cuda_module()


def to_numpy(array: Any) -> np.ndarray:
    """A host (NumPy) array with the same values; no copy for a NumPy array."""
    if isinstance(array, (np.ndarray, np.generic)):
        return np.asarray(array)
    if isinstance(array, simulated.SimArray):
        return array.get()
    if cupy is not None and isinstance(array, cupy.ndarray):
        return cupy.asnumpy(array)
    return np.asarray(array)


def to_device(array: Any, device: str) -> Any:
    """``array`` on ``device``; the same object when it is already there."""
    if device_of(array) == check_device(device) and not isinstance(array, (list, tuple)):
        return array
    host = to_numpy(array)
    return host if device == "cpu" else cuda_module().asarray(host)


def scatter_add(target: Any, index: Any, values: Any) -> None:
    """``target[index] += values`` with repeated indices summed (in place)."""
    xp = get_array_module(target)
    if xp is np:
        np.add.at(target, index, values)
    elif xp is simulated.xp:
        simulated.scatter_add(target, index, values)
    else:
        cupyx.scatter_add(target, index, values)


_vector_erf = np.vectorize(math.erf, otypes=[np.float64])


def erf(x: Any) -> Any:
    """The error function, elementwise, in the array module of ``x``."""
    xp = get_array_module(x)
    if xp is np:
        try:
            from scipy.special import erf as scipy_erf
        except ImportError:  # exact but slower: math.erf per element
            return _vector_erf(x).astype(x.dtype, copy=False)
        return scipy_erf(x)
    if xp is simulated.xp:
        return simulated.xp.asarray(erf(x.get()))
    import cupyx.scipy.special

    return cupyx.scipy.special.erf(x)


# Random numbers are drawn on the host from one NumPy generator, then moved to the
# device: one seed then gives the same initialisation and dropout masks on every device.
_generator = np.random.default_rng()


def manual_seed(seed: int) -> np.random.Generator:
    """Seed the generator behind every random factory, initializer and dropout mask."""
    global _generator
    _generator = np.random.default_rng(seed)
    return _generator


# A thread may draw from a generator of its own instead (``nn.DataParallel`` gives each part
# of a batch one, seeded from the global generator, so its dropout masks do not depend on
# which thread draws first).
_thread = threading.local()


def generator() -> np.random.Generator:
    """This thread's generator if it has one (``thread_generator``), else the global NumPy
    generator (see :func:`manual_seed`)."""
    own = getattr(_thread, "generator", None)
    return _generator if own is None else own


@contextlib.contextmanager
def thread_generator(own: np.random.Generator) -> Iterator[None]:
    """Inside this block the calling thread draws from ``own``."""
    previous, _thread.generator = getattr(_thread, "generator", None), own
    try:
        yield
    finally:
        _thread.generator = previous
