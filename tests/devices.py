"""The ``device`` fixture: a test module that imports it runs each of its tests twice, on
the CPU and on the simulated CUDA device (CuPy-like arrays that refuse NumPy mixing), so
code that would break on CuPy breaks here."""

import pytest

from minidl import backend


@pytest.fixture(autouse=True, params=["cpu", "simulated-cuda"])
def device(request, monkeypatch):
    if request.param == "simulated-cuda":
        monkeypatch.setenv("MINIDL_SIMULATED_CUDA", "1")
        monkeypatch.setenv("MINIDL_DEVICE", "cuda")
    return backend.default_device()
