"""``minidl.manual_seed`` makes a whole run reproducible, as ``torch.manual_seed`` does:
loaders, samplers, ``random_split`` and random transforms without a generator of their
own draw from the global generator. Checked across separate processes (nothing shared but
the seed) and within one process."""

from __future__ import annotations

import hashlib
import pathlib
import subprocess
import sys

import numpy as np

import minidl as md
from minidl.data import (
    DataLoader,
    RandomHorizontalFlip,
    RandomSampler,
    TensorDataset,
    WeightedRandomSampler,
    random_split,
)

ROOT = pathlib.Path(__file__).resolve().parents[1]

# A whole small run whose every random choice comes from the global seed: the split, the
# shuffle, a random transform inside the dataset, dropout and the initial weights.
SCRIPT = """
import hashlib, sys
import numpy as np
import minidl as md
from minidl import nn, optim
from minidl.data import DataLoader, Dataset, RandomHorizontalFlip, random_split
from minidl.train import fit

md.manual_seed(int(sys.argv[1]))

class Images(Dataset):
    def __init__(self):
        rng = np.random.default_rng(0)  # fixed data; only the run's choices are random
        self.x = rng.random((64, 1, 4, 4)).astype(np.float32)
        self.y = rng.integers(0, 2, 64)
        self.flip = RandomHorizontalFlip()
    def __len__(self):
        return 64
    def __getitem__(self, i):
        return self.flip(self.x[i]).reshape(-1), self.y[i]

train, _ = random_split(Images(), [48, 16])
loader = DataLoader(train, batch_size=8, shuffle=True)
model = nn.Sequential(nn.Linear(16, 8), nn.ReLU(), nn.Dropout(0.3), nn.Linear(8, 2))
fit(model, nn.functional.cross_entropy, optim.SGD(model.parameters(), lr=0.1), loader, 2,
    progress=False)
digest = hashlib.sha256(b"".join(p.numpy().tobytes() for p in model.parameters()))
print(digest.hexdigest())
"""


def _run(seed: int) -> str:
    done = subprocess.run(
        [sys.executable, "-c", SCRIPT, str(seed)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    return done.stdout.strip()


def test_two_processes_with_the_same_seed_train_identical_weights():
    first, second, other = _run(11), _run(11), _run(12)
    assert len(first) == 64 and first == second
    assert other != first


def _digest(*arrays: np.ndarray) -> str:
    return hashlib.sha256(b"".join(np.ascontiguousarray(a).tobytes() for a in arrays)).hexdigest()


def _draws() -> str:
    ds = TensorDataset(np.arange(30))
    a, b = random_split(ds, [0.5, 0.5])
    order = np.concatenate([batch[0] for batch in DataLoader(ds, batch_size=7, shuffle=True)])
    sampled = np.array(list(RandomSampler(ds, replacement=True, num_samples=10)))
    weighted = np.array(list(WeightedRandomSampler(np.arange(1.0, 31.0), 12)))
    flipped = RandomHorizontalFlip()(np.arange(24.0).reshape(2, 1, 3, 4))
    return _digest(a.indices, b.indices, order, sampled, weighted, flipped)


def test_manual_seed_fixes_every_default_generator():
    md.manual_seed(5)
    first = _draws()
    md.manual_seed(5)
    assert _draws() == first
    md.manual_seed(6)
    assert _draws() != first


def test_an_explicit_generator_still_wins_over_the_global_seed():
    ds = TensorDataset(np.arange(20))
    orders = []
    for seed in (1, 2):
        md.manual_seed(seed)
        loader = DataLoader(ds, batch_size=20, shuffle=True, generator=7)
        orders.append(next(iter(loader))[0].tolist())
    assert orders[0] == orders[1]
