"""DataLoader worker processes: the same batches as without workers, per-worker seeds
derived as PyTorch derives them, errors re-raised with the worker's traceback, dead or
stuck workers reported within a bound, persistent workers reused. Small on purpose: each
test starts at most a few processes."""

from __future__ import annotations

import multiprocessing
import os
import time

import numpy as np
import pytest

import minidl as md
from minidl import backend
from minidl.data import DataLoader, Dataset, get_worker_info


class Probe(Dataset):
    """Item i: (i, worker id, worker seed, pid, one draw of the global generator)."""

    def __len__(self) -> int:
        return 12

    def __getitem__(self, i: int) -> tuple:
        info = get_worker_info()
        worker = -1 if info is None else info.id
        seed = -1 if info is None else info.seed
        return i, worker, seed, os.getpid(), backend.generator().random()


class Failing(Dataset):
    def __init__(self, how: str) -> None:
        self.how = how

    def __len__(self) -> int:
        return 8

    def __getitem__(self, i: int) -> int:
        if i == 5:
            if self.how == "raise":
                raise ValueError(f"sample {i} is corrupt")
            if self.how == "key":
                raise KeyError(i)
            if self.how == "die":
                os._exit(3)
            time.sleep(30)  # "hang": stuck far longer than the timeout
        return i


def _no_children_left() -> bool:
    deadline = time.monotonic() + 5
    while multiprocessing.active_children() and time.monotonic() < deadline:
        time.sleep(0.05)
    return not multiprocessing.active_children()


def test_workers_give_the_same_batches_in_order():
    plain = DataLoader(Probe(), batch_size=3, shuffle=True, generator=4)
    workers = DataLoader(Probe(), batch_size=3, shuffle=True, generator=4, num_workers=2)
    assert [b[0].tolist() for b in plain] == [b[0].tolist() for b in workers]
    assert get_worker_info() is None  # in the main process
    assert _no_children_left()


def test_worker_seeds_are_base_seed_plus_id_and_follow_manual_seed():
    def run():
        md.manual_seed(21)
        batches = list(DataLoader(Probe(), batch_size=2, num_workers=2))
        return [np.concatenate(col) for col in zip(*[b[1:] for b in batches])]

    (ids, seeds, pids, draws), again = run(), run()
    assert set(ids.tolist()) == {0, 1}
    assert ids.tolist() == [0, 0, 1, 1] * 3  # batches go round-robin
    base = seeds[ids == 0][0]
    assert (seeds == base + ids).all()  # PyTorch: seed = base_seed + worker_id
    assert len(set(pids.tolist())) == 2 and os.getpid() not in pids
    np.testing.assert_array_equal(draws, again[3])  # reproducible under one seed
    assert not np.allclose(draws[ids == 0][:2], draws[ids == 1][:2])  # workers differ
    md.manual_seed(22)
    other = np.concatenate([b[2] for b in DataLoader(Probe(), batch_size=2, num_workers=2)])
    assert other[0] != base


def test_an_exception_in_a_worker_is_raised_with_its_traceback():
    loader = DataLoader(Failing("raise"), batch_size=2, num_workers=2)
    with pytest.raises(ValueError) as caught:
        list(loader)
    text = str(caught.value)
    assert "Caught ValueError in DataLoader worker process 0" in text
    assert "Traceback" in text and "sample 5 is corrupt" in text
    assert 'raise ValueError(f"sample {i} is corrupt")' in text  # the worker's own line
    assert _no_children_left()


def test_a_key_error_keeps_its_traceback_readable():
    with pytest.raises(KeyError) as caught:
        list(DataLoader(Failing("key"), batch_size=4, num_workers=1))
    text = str(caught.value)
    assert text.startswith("Caught KeyError in DataLoader worker process 0.\nOriginal Traceback")
    assert "raise KeyError(i)" in text


def test_a_dead_worker_is_reported_not_waited_for():
    start = time.monotonic()
    with pytest.raises(RuntimeError, match=r"DataLoader worker 0 \(pid \d+\) exited .*code 3"):
        list(DataLoader(Failing("die"), batch_size=2, num_workers=2))
    assert time.monotonic() - start < 10
    assert _no_children_left()


def test_timeout_bounds_the_wait_for_a_batch():
    start = time.monotonic()
    with pytest.raises(RuntimeError, match=r"timed out after 0\.5 seconds"):
        list(DataLoader(Failing("hang"), batch_size=2, num_workers=1, timeout=0.5))
    assert time.monotonic() - start < 10
    assert _no_children_left()


def _remember_init(worker_id: int) -> None:
    backend.manual_seed(1000 + worker_id)  # worker_init_fn runs after the seeding


def test_persistent_workers_are_reused_and_worker_init_fn_runs():
    loader = DataLoader(
        Probe(),
        batch_size=4,
        num_workers=2,
        persistent_workers=True,
        worker_init_fn=_remember_init,
    )
    first = list(loader)
    for _ in loader:  # leave an epoch early: its leftovers must not leak into the next
        break
    second = list(loader)
    assert [b[0].tolist() for b in second] == [b[0].tolist() for b in first]
    pids = {int(p) for b in first + second for p in b[3]}
    assert len(pids) == 2  # the same two processes served every epoch
    fresh = np.random.default_rng(1000).random()
    assert first[0][4][0] == fresh  # worker 0's first draw after worker_init_fn's seed
    del loader
    assert _no_children_left()


def test_non_persistent_workers_are_new_each_epoch():
    loader = DataLoader(Probe(), batch_size=6, num_workers=1)
    pids = [{int(p) for b in loader for p in b[3]} for _ in range(2)]
    assert pids[0] != pids[1]
    assert _no_children_left()


def test_spawned_workers_need_only_picklable_pieces():
    from minidl.data import TensorDataset

    ds = TensorDataset(np.arange(7))
    loader = DataLoader(ds, batch_size=3, num_workers=1, multiprocessing_context="spawn")
    assert [b[0].tolist() for b in loader] == [[0, 1, 2], [3, 4, 5], [6]]


ORPHAN = """
import os
from minidl.data import DataLoader, Dataset

class Pid(Dataset):
    def __len__(self):
        return 4
    def __getitem__(self, i):
        return os.getpid()

loader = DataLoader(Pid(), batch_size=2, num_workers=2, persistent_workers=True)
print(" ".join(str(int(p)) for b in loader for p in b), flush=True)
os._exit(0)  # no clean-up at all: the workers must notice and leave on their own
"""


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/status") as f:
            return "\tZ" not in next(line for line in f if line.startswith("State:"))
    except (FileNotFoundError, StopIteration):
        return False


@pytest.mark.skipif(not os.path.isdir("/proc"), reason="reads /proc to see the workers")
def test_workers_of_a_dead_main_process_exit_on_their_own():
    import pathlib
    import subprocess
    import sys

    root = pathlib.Path(__file__).resolve().parents[2]
    done = subprocess.run(
        [sys.executable, "-c", ORPHAN], cwd=root, capture_output=True, text=True, timeout=60
    )
    pids = {int(p) for p in done.stdout.split()}
    assert len(pids) == 2, done.stderr
    deadline = time.monotonic() + 10
    while any(_alive(p) for p in pids) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not any(_alive(p) for p in pids)
