"""Integer inference against float32: quantize_cnn's CNN, its static int8 model with the
exact float-BLAS integer kernels, and the same int8 model with the plain integer
reference kernels, timed on one batch in one process, interleaved.

    python -m benchmarks.int8_inference [--batch 256] [--count 60] [--threads N] [--profile]
                                        [--no-reference]

Weights: the float model is trained for ``--train-steps`` Adam steps on Fashion-MNIST
(so BatchNorm statistics and activation ranges are realistic), then quantized with
``quant.quantize_static`` (8 calibration batches of 256); the timed batch is the first
``--batch`` test images. Without MINIDL_DATA, random images. ``--profile`` adds the CPU
time of each layer (median of ``--count`` calls) for the float and the int8 model. The
folded float model is timed too: the int8 model has no BatchNorm layers either.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from typing import Any

import numpy as np

from benchmarks import timing
from minidl import nn, optim, quant
from minidl.data import DataLoader, TensorDataset, load_fashion_mnist
from minidl.quant import integer, static
from minidl.tensor import Tensor, no_grad
from minidl.train import fit
from projects.quantize_cnn import build_model, images


def data(seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(train images, train labels, test images) as (N, 1, 28, 28) float32 in [0, 1]."""
    if os.environ.get("MINIDL_DATA"):
        train, test = load_fashion_mnist("train"), load_fashion_mnist("test")
        return images(train.data), train.targets, images(test.data)
    rng = np.random.default_rng(seed)
    x = rng.random((4096, 1, 28, 28), dtype=np.float32)
    return x, rng.integers(0, 10, 4096), rng.random((1024, 1, 28, 28), dtype=np.float32)


def models(train_steps: int, seed: int) -> tuple[nn.Module, nn.Module, nn.Module, np.ndarray]:
    """(float32 model, the same with BatchNorm folded and ReLU fused, static int8 model,
    test images) of quantize_cnn's CNN."""
    x, y, xt = data(seed)
    model = build_model(10)
    loader = DataLoader(TensorDataset(x, y), batch_size=64, shuffle=True, generator=seed)
    limited = [b for _, b in zip(range(train_steps), loader)]
    optimizer = optim.Adam(model.parameters(), lr=1e-3)
    fit(model, nn.functional.cross_entropy, optimizer, limited, epochs=1, progress=False)
    calibration = DataLoader(TensorDataset(x, y), batch_size=256, generator=seed + 1)
    static_model = quant.quantize_static(model.eval(), calibration, max_batches=8)
    fused = quant.fuse_modules(model, quant.fusable_chains(model))
    return model, fused, static_model, xt


class reference_kernels:
    """Within the block, the static layers use the plain integer reference kernels."""

    def __enter__(self) -> None:
        self.saved = static.linear_int32, static.conv_int32
        static.linear_int32 = integer.linear_int32_reference
        static.conv_int32 = integer.conv_int32_reference

    def __exit__(self, *exc: object) -> None:
        static.linear_int32, static.conv_int32 = self.saved


def forward(model: nn.Module, x: Tensor, reference: bool = False) -> Any:
    with no_grad():
        if reference:
            with reference_kernels():
                return model(x)
        return model(x)


def layer_times(model: nn.Module, x: Tensor, count: int) -> list[tuple[str, float]]:
    """(layer, median process CPU seconds: steadier than wall time on a shared machine,
    and equal to it with one thread) for each top-level layer of a Sequential (the int8 model's
    QuantWrapper unwrapped into quant, its layers, dequant)."""
    if isinstance(model, quant.QuantWrapper):
        inner = list(model.module.named_children())
        layers = [("quant", model.quant), *inner, ("dequant", model.dequant)]
    else:
        layers = list(model.named_children())
    out = []
    with no_grad():
        for name, layer in layers:
            times = []
            for _ in range(count + 2):
                start = time.process_time()
                y = layer(x)
                times.append(time.process_time() - start)
            out.append((f"{name} {type(layer).__name__}", statistics.median(times[2:])))
            x = y
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=256)
    parser.add_argument("--count", type=int, default=60, help="timed calls per model")
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--threads", type=int, help="BLAS threads (default: NumPy's)")
    parser.add_argument("--train-steps", type=int, default=200)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--profile", action="store_true")
    parser.add_argument(
        "--no-reference", action="store_true", help="skip the (slow) integer reference kernels"
    )
    args = parser.parse_args()
    threads = timing.set_threads(args.threads)
    print(f"machine: {timing.machine_info()}")
    print(f"BLAS: {timing.blas_info()}; threads: {threads}")
    float_model, fused_model, int8_model, xt = models(args.train_steps, args.seed)
    x = Tensor(xt[: args.batch])
    steps = {
        "float32": lambda: forward(float_model, x),
        "float32, BatchNorm folded": lambda: forward(fused_model, x),
        "int8 (float-BLAS kernels)": lambda: forward(int8_model, x),
    }
    if not args.no_reference:
        steps["int8 (integer reference)"] = lambda: forward(int8_model, x, reference=True)
    same = np.array_equal(forward(int8_model, x).data, forward(int8_model, x, True).data)
    print(f"int8 outputs identical with both kernels: {same}")
    times = timing.time_interleaved(steps, args.warmup, args.count, block=5, pause=0.05)
    for clock in ("wall", "cpu"):
        print(f"{clock} time (ms per batch of {args.batch}: median (IQR)) and ratio to float32:")
        base = getattr(times["float32"], clock)
        for name, t in times.items():
            blocks = getattr(t, clock)
            ratio = statistics.median(timing.flat(blocks)) / statistics.median(timing.flat(base))
            paired = timing.paired_ratios(blocks, base)
            print(
                f"  {name:>26}: {timing.Stats.of(timing.flat(blocks)).ms()}; {ratio:.2f}x "
                f"(block-paired: median {statistics.median(paired):.2f}, "
                f"range {min(paired):.2f}-{max(paired):.2f})"
            )
    if args.profile:
        for label, model in (("float32", float_model), ("int8", int8_model)):
            print(f"per-layer median CPU ms, {label}:")
            for name, seconds in layer_times(model, x, args.count):
                print(f"  {name:<40} {1000 * seconds:8.2f}")


if __name__ == "__main__":
    main()
