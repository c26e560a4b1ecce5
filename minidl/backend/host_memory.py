"""Keep freed host memory for the next training step (glibc's malloc, set once at import).

A training step allocates the same large arrays every time (activations, im2col columns,
their gradients) and frees them by the end of it. glibc hands freed memory at the top of a
heap back to the kernel once it exceeds a threshold, and the next step faults every page
in again and the kernel zeroes it: on the 2-core virtual machine of benchmarks/RESULTS.md,
7,300 page faults and 14-26 ms of system time in a 60-90 ms step of W2, and with two
threads the faults of both serialise on the process's memory map. PyTorch's and
TensorFlow's allocators keep freed blocks for reuse; minidl, which allocates through NumPy,
asks glibc to do the same: no heap trimming below ``TRIM_BYTES``, and no fresh mapping per
array below ``MMAP_BYTES`` (glibc's ceiling), so a step reuses the previous step's memory.
The process then keeps its peak heap instead of shrinking after each step.

Skipped when the C library is not glibc, when the environment already sets glibc's own
variables (``MALLOC_TRIM_THRESHOLD_``, ``MALLOC_MMAP_THRESHOLD_``: the user's choice wins),
or when ``MINIDL_KEEP_FREED_MEMORY=0``.
"""

from __future__ import annotations

import ctypes
import os
import platform

# <malloc.h>: mallopt's parameter numbers.
M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3
MMAP_BYTES = 32 << 20  # the largest mmap threshold glibc accepts on 64-bit systems
TRIM_BYTES = 1 << 30


def keep_freed_memory() -> bool:
    """Ask glibc to keep freed memory for reuse; True if it was set (see the module)."""
    if os.environ.get("MINIDL_KEEP_FREED_MEMORY", "1").strip() == "0":
        return False
    if any(name in os.environ for name in ("MALLOC_TRIM_THRESHOLD_", "MALLOC_MMAP_THRESHOLD_")):
        return False
    if platform.system() != "Linux" or platform.libc_ver()[0] != "glibc":
        return False
    libc = ctypes.CDLL(None)
    # Both: setting either one turns off glibc's own adjustment of the other.
    return bool(
        libc.mallopt(M_MMAP_THRESHOLD, MMAP_BYTES) and libc.mallopt(M_TRIM_THRESHOLD, TRIM_BYTES)
    )


kept = keep_freed_memory()
