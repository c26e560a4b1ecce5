"""The scaling report of ``python -m benchmarks.distributed``: the allreduce cost model and
the tables it prints (from made-up timings; the measured ones are in benchmarks/RESULTS.md)."""

import pytest

from benchmarks.distributed import configs, fit_allreduce, report, ring_allreduce


def test_ring_allreduce_cost():
    assert ring_allreduce(1e6, 1, 1e-5, 1e9) == 0.0
    # K = 4: 6 steps of latency, each byte sent 2 * 3 / 4 times
    assert ring_allreduce(1e6, 4, 1e-5, 1e9) == pytest.approx(6e-5 + 1.5e-3)


def test_fit_recovers_latency_and_bandwidth():
    sweep = {str(n): 2e-6 + n / 5e9 for n in (4, 1024, 2**20, 2**24)}
    latency, bandwidth = fit_allreduce(sweep)
    assert latency == pytest.approx(2e-6, rel=1e-3) and bandwidth == pytest.approx(5e9, rel=1e-3)


def test_report_has_a_row_per_workload_and_network():
    job = {"W1": {"step_s": 0.002, "comm_s": 0.0005, "grad_bytes": 940584}}
    rounds = [{name: job for name in configs(2)}]
    text = report({"rounds": rounds}, {"4": 1e-5, "4194304": 1e-3}, 2)
    assert text.count("| W1 |") == 1 + 3  # the measured row, then one per network
    assert "| 2.00 | 2.00 | 2.00 | 2.00 | 0.50 |" in text
