"""The backend switch and the simulated CUDA device."""

from __future__ import annotations

import os
import platform
import subprocess
import sys

import numpy as np
import pytest

import minidl as md
from minidl import backend
from minidl.backend import simulated


@pytest.fixture
def simulated_cuda(monkeypatch):
    monkeypatch.setenv("MINIDL_SIMULATED_CUDA", "1")


def test_simulated_array_refuses_implicit_host_conversion():
    a = simulated.xp.asarray(np.arange(3.0))
    with pytest.raises(TypeError, match="Implicit conversion"):
        np.asarray(a)
    with pytest.raises(TypeError):
        np.exp(a)
    with pytest.raises(TypeError, match=r"host numpy\.ndarray"):
        a + np.ones(3)
    with pytest.raises(TypeError, match=r"host numpy\.ndarray"):
        simulated.xp.maximum(a, np.ones(3))


def test_simulated_reductions_give_device_arrays_like_cupy():
    a = simulated.xp.asarray(np.arange(4.0))
    total = a.sum()
    assert isinstance(total, simulated.SimArray) and total.shape == ()
    assert float(total) == 6.0 and total.item() == 6.0


def test_to_moves_between_devices_and_back_with_gradients(simulated_cuda):
    x = md.tensor([1.0, 2.0], requires_grad=True)
    y = x.to("cuda")
    assert y.device == "cuda" and isinstance(y.data, simulated.SimArray)
    z = (y * y).sum().to("cpu")
    assert z.device == "cpu"
    z.backward()
    assert x.grad.device == "cpu"
    np.testing.assert_allclose(x.grad.numpy(), [2.0, 4.0])
    assert isinstance(y.numpy(), np.ndarray)  # .numpy() always gives a host array


def test_mixing_devices_is_a_clear_error(simulated_cuda):
    with pytest.raises(RuntimeError, match="different devices"):
        md.tensor([1.0]) + md.tensor([1.0], device="cuda")


def test_cuda_without_cupy_or_simulation_is_a_clear_error(monkeypatch):
    monkeypatch.delenv("MINIDL_SIMULATED_CUDA", raising=False)
    if backend.cupy_usable():
        pytest.skip("a real GPU is present")
    with pytest.raises(RuntimeError, match="device 'cuda' is not available"):
        md.tensor([1.0], device="cuda")


def test_default_device_from_the_environment(monkeypatch, simulated_cuda):
    monkeypatch.setenv("MINIDL_DEVICE", "cuda")
    assert md.zeros(2).device == "cuda"
    monkeypatch.setenv("MINIDL_DEVICE", "cpu")
    assert md.zeros(2).device == "cpu"


def test_erf_matches_math_erf():
    import math

    x = np.linspace(-3, 3, 13)
    np.testing.assert_allclose(backend.erf(x), [math.erf(v) for v in x], rtol=1e-12)


@pytest.mark.cupy
@pytest.mark.skipif(not backend.cupy_usable(), reason="needs CuPy and a CUDA device")
def test_real_cupy_matches_numpy(monkeypatch):
    monkeypatch.delenv("MINIDL_SIMULATED_CUDA", raising=False)
    x = np.random.default_rng(0).standard_normal((4, 5))
    cpu = md.tensor(x, requires_grad=True)
    gpu = md.tensor(x, device="cuda", requires_grad=True)
    for t in (cpu, gpu):
        (t.tanh() @ t.T).logsumexp(dim=1).sum().backward()
    np.testing.assert_allclose(gpu.grad.numpy(), cpu.grad.numpy(), rtol=1e-10)


def test_moving_a_host_array_to_the_device_copies_it(simulated_cuda):
    host = np.zeros(3)
    t = md.tensor(host, device="cuda")
    with md.no_grad():
        t.add_(1)
    np.testing.assert_array_equal(host, 0)


_CHURN = """
import resource, sys
import numpy as np
import minidl.backend.host_memory as host_memory

def churn():  # three 12 MiB arrays alive together, then freed: a step's large temporaries
    arrays = [np.ones(3 << 20, np.float32) for _ in range(3)]
    del arrays

churn(); churn()
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(20):
    churn()
print(host_memory.kept, (resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before) // 20)
"""


@pytest.mark.skipif(
    platform.system() != "Linux" or platform.libc_ver()[0] != "glibc", reason="glibc only"
)
def test_freed_memory_is_kept_for_the_next_step_unless_turned_off():
    def faults(**env: str) -> tuple[str, int]:
        clean = {k: v for k, v in os.environ.items() if not k.startswith("MALLOC_")}
        out = subprocess.run(
            [sys.executable, "-c", _CHURN],
            env={**clean, **env},
            capture_output=True,
            text=True,
            check=True,
        ).stdout.split()
        return out[0], int(out[1])

    kept, kept_faults = faults()
    off, off_faults = faults(MINIDL_KEEP_FREED_MEMORY="0")
    users, _ = faults(MALLOC_TRIM_THRESHOLD_="131072")  # the user's own setting wins
    assert (kept, off, users) == ("True", "False", "False")
    # 36 MiB faulted in again per round when glibc trims (9,216 pages, or 18 huge pages)
    assert kept_faults <= 2 < 10 <= off_faults
