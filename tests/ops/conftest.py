"""Every op test runs on the CPU and on the simulated CUDA device."""

from devices import device  # noqa: F401
