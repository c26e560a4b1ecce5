"""The measured check of ``minidl.metrics.fid`` (benchmarks/RESULTS.md, "FID"):

for MNIST and Fashion-MNIST, the cached feature network (trained on first use) with its test
accuracy, FID(first N training images, first N test images), FID between two disjoint sets
of N training images (the floor a perfect generator would reach: the bias of N), and FID
between the same N
training images and the N test images increasingly blurred (Gaussian, sigma in pixels) or
noised (Gaussian, std on [0, 1] pixels, clipped): the sanity check of Heusel et al. (2017),
FID must grow with the disturbance. Writes ``runs/fid_check/metrics.json`` and
``fid_vs_disturbance.png`` (the curves, and one test image at every level).

    MINIDL_DATA=/work/shared/data OPENBLAS_NUM_THREADS=1 python -m benchmarks.fid_check
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

import numpy as np

from minidl.data import load_fashion_mnist, load_mnist
from minidl.metrics import fid as fid_module

LOADERS = {"mnist": load_mnist, "fashion-mnist": load_fashion_mnist}
BLUR = [0.0, 0.5, 1.0, 1.5, 2.0, 3.0]  # Gaussian sigma, pixels
NOISE = [0.0, 0.05, 0.1, 0.2, 0.3, 0.5]  # Gaussian std on [0, 1] pixels


def blur(images: np.ndarray, sigma: float) -> np.ndarray:
    """Each image (N, H, W) convolved with a Gaussian of std ``sigma`` pixels (0: as is)."""
    from scipy import ndimage

    return ndimage.gaussian_filter(images, sigma=(0, sigma, sigma)) if sigma else images


def noise(images: np.ndarray, std: float, seed: int = 0) -> np.ndarray:
    """images (N, H, W) in [0, 1] plus Gaussian noise of ``std``, clipped to [0, 1]."""
    rng = np.random.default_rng(seed)
    return np.clip(images + std * rng.standard_normal(images.shape), 0, 1).astype(np.float32)


def check(name: str, n: int) -> dict[str, Any]:
    """The feature network's record and the FIDs of one data set at N = ``n``."""
    net = fid_module.feature_network(name)
    features = net.features
    train, test = LOADERS[name]("train"), LOADERS[name]("test")
    real = train.data[:n].astype(np.float32) / 255
    other = test.data[:n].astype(np.float32) / 255
    more = train.data[n : 2 * n].astype(np.float32) / 255
    start = time.perf_counter()
    real_stats = fid_module.gaussian_stats(fid_module.extract_features(features, real))

    def against(images: np.ndarray) -> float:
        stats = fid_module.gaussian_stats(fid_module.extract_features(features, images))
        return round(fid_module.frechet_distance(*real_stats, *stats), 4)

    record = {
        "feature_network": net.info,
        "n": n,
        "fid_train_test": against(other),
        "fid_train_train": against(more) if len(more) == n else None,  # 2N training images
        "fid_blur": {str(s): against(blur(other, s)) for s in BLUR},
        "fid_noise": {str(s): against(noise(other, s)) for s in NOISE},
    }
    record["monotonic"] = all(
        bool(np.all(np.diff(list(record[key].values())) > 0)) for key in ("fid_blur", "fid_noise")
    )
    record["fid_time_s"] = round(time.perf_counter() - start, 1)
    record["example"] = other[0]
    return record


def figure(records: dict[str, dict[str, Any]], path: Path) -> None:
    """FID against blur sigma and noise std (one line per data set, log scale), and the first
    test image of each data set at every level."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = len(records)
    fig = plt.figure(figsize=(13, 4 + 1.4 * rows), layout="constrained")
    grid = fig.add_gridspec(1 + rows, 2 * len(BLUR), height_ratios=[3] + [1] * rows)
    for col, (key, levels, label, done) in enumerate(
        (
            ("fid_blur", BLUR, "Gaussian blur sigma (pixels)", "blurred"),
            ("fid_noise", NOISE, "Gaussian noise std", "noised"),
        )
    ):
        ax = fig.add_subplot(grid[0, col * len(BLUR) : (col + 1) * len(BLUR)])
        for name, r in records.items():
            ax.plot(levels, list(r[key].values()), "o-", label=f"{name} (N={r['n']:,})")
        ax.set(xlabel=label, ylabel="FID (LeNet features)", yscale="log")
        ax.set_title(f"FID(N train images, N test images {done})")
        ax.legend()
        ax.grid(alpha=0.3)
    for row, (name, r) in enumerate(records.items(), start=1):
        for i, (level, disturb) in enumerate(
            [(s, blur) for s in BLUR] + [(s, noise) for s in NOISE]
        ):
            ax = fig.add_subplot(grid[row, i])
            ax.imshow(disturb(r["example"][None], level)[0], cmap="gray", vmin=0, vmax=1)
            ax.set_title(f"{name if i == 0 else ''} {disturb.__name__} {level}", fontsize=7)
            ax.axis("off")
    fig.savefig(path, dpi=100)
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=fid_module.N_SAMPLES, help="samples per side")
    parser.add_argument("--datasets", default="mnist,fashion-mnist")
    parser.add_argument("--out", default="runs/fid_check")
    args = parser.parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    records = {name: check(name, args.n) for name in args.datasets.split(",")}
    figure(records, out / "fid_vs_disturbance.png")
    for record in records.values():
        del record["example"]
    summary = {"datasets": records, "wall_time_s": round(time.perf_counter() - start, 1)}
    (out / "metrics.json").write_text(json.dumps(summary, indent=2) + "\n")
    print(json.dumps(summary, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
