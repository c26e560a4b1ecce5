"""What does the third dimension buy? A 3D CNN on 28^3 volumes against a 2D CNN that sees
only their max-intensity projections.

The reference project classified rib fractures in FractureMNIST3D's 28^3 CT volumes. That
file cannot be had here (``minidl.data.load_medmnist('fracturemnist3d')`` reads it, at 28^3
and at the 64^3 MedMNIST+ size, when a user has it: set ``VOLUMES`` below). The run here
uses a volumetric set built from real images the way the public "3D MNIST" set was built:
MNIST digits extruded to a slab, rotated at random in 3-D and voxelised to 28^3
(``mnist_volumes``). It is a digit set, nothing medical.

Two models see the same volumes, with the same augmentation (a flip along the depth axis
and a small random 3-D rotation, both label-preserving): a 3D CNN (Conv3d, BatchNorm3d,
MaxPool3d, dropout) on the voxels, and a 2D CNN on the three max-intensity projections of
each volume (along depth, height and width, as three channels). Both are scored on the
volumes built from the MNIST test digits: accuracy, macro F1, confusion matrices; a 3-D
Grad-CAM (``minidl.explain``) shows where the 3D CNN looks.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

import minidl as md
from minidl import nn, optim
from minidl.data import load_medmnist, load_mnist
from minidl.explain import grad_cam, overlay
from minidl.nn import functional as F
from minidl.train import History, fit
from projects import _mnist, _vision
from projects.runner import RunContext

DESCRIPTION = "3D CNN vs 2D CNN on projections: MNIST digits extruded, rotated, voxelised"
DATA = _mnist.FILES
# "mnist3d": the stand-in built here. A user with MedMNIST's FractureMNIST3D (or a sibling:
# "organmnist3d", "nodulemnist3d", ...) under $MINIDL_DATA/medmnist/ sets its flag here and
# VOLUME_SIZE to 28 or 64; the models take either size.
VOLUMES = "mnist3d"
VOLUME_SIZE = 28

# How the stand-in is built (mnist_volumes): a 6-voxel slab, tilted out of its plane by up
# to 60 degrees about each in-plane axis and spun in plane by up to 30, so that no single
# view shows the digit face on and undistorted, while a 6 never turns into a 9.
BUILD = {"depth": 6, "max_tilt": 60.0, "max_spin": 30.0}
# Augmentation: a further random rotation of up to 10 degrees about each axis.
AUGMENT_DEGREES = 10.0

# Samples per split (MNIST train -> train + val, MNIST test -> test): what fits the CPU
# budget here (one 3D CNN epoch over 4,000 volumes takes ~1.2 CPU-minutes), --full, --quick.
SIZES = {"here": (4000, 1000, 2000), "full": (50000, 10000, 10000), "quick": (160, 60, 60)}
CNN3D = {"widths": (8, 16, 32), "dropout": 0.3, "epochs": 5, "lr": 3e-3, "batch_size": 32}
CNN2D = {"widths": (32, 64, 128), "dropout": 0.3, "epochs": 5, "lr": 3e-3, "batch_size": 64}
FULL_EPOCHS = 20


def available() -> bool:
    """True when every MNIST file is under ``data_root()`` (the tests skip otherwise)."""
    return _mnist.available()


# --------------------------------------------------------------------------- 1. data
def random_rotations(
    n: int, max_tilt: float, max_spin: float, rng: np.random.Generator
) -> np.ndarray:
    """n rotation matrices (n, 3, 3) in (z, y, x) voxel coordinates: a spin about the depth
    axis z, uniform in +-max_spin degrees, then tilts about y and about x, each uniform in
    +-max_tilt degrees (R = R_x R_y R_z, applied to the object)."""
    from scipy.spatial.transform import Rotation

    angles = np.stack(
        [rng.uniform(-a, a, n) for a in (max_spin, max_tilt, max_tilt)], axis=1
    )  # degrees about z, y, x
    # Rotation works in (x, y, z); our axes are (z, y, x): conjugate by the axis reversal.
    # Lower case: extrinsic, about the fixed axes z, then y, then x (matrix R_x R_y R_z).
    matrices = Rotation.from_euler("zyx", angles, degrees=True).as_matrix()
    return matrices[:, ::-1, ::-1].copy()


def extrude(images: np.ndarray, depth: int, size: int = 28) -> np.ndarray:
    """float32 images (N, H, W) -> float32 volumes (N, size, H, W): each image copied into
    ``depth`` consecutive depth slices centred in a depth of ``size``, zeros elsewhere."""
    n, h, w = images.shape
    volumes = np.zeros((n, size, h, w), np.float32)
    start = (size - depth) // 2
    volumes[:, start : start + depth] = images[:, None]
    return volumes


def rotate_volume(volume: np.ndarray, rotation: np.ndarray) -> np.ndarray:
    """A volume (D, H, W) rotated by ``rotation`` (3, 3) about its centre and resampled on
    the same voxel grid by trilinear interpolation: out(p) = in(R^T (p - c) + c), zero
    outside. A rotation keeps the total intensity (up to the interpolation's smoothing and
    what leaves the grid)."""
    from scipy import ndimage

    centre = (np.array(volume.shape) - 1) / 2
    inverse = rotation.T
    return ndimage.affine_transform(
        volume, inverse, offset=centre - inverse @ centre, order=1, mode="constant"
    )


def mnist_volumes(
    images: np.ndarray,
    rng: np.random.Generator,
    depth: int = BUILD["depth"],
    max_tilt: float = BUILD["max_tilt"],
    max_spin: float = BUILD["max_spin"],
) -> np.ndarray:
    """The "3D MNIST"-style stand-in: uint8 digits (N, 28, 28) -> uint8 volumes
    (N, 28, 28, 28), indexed (depth, height, width).

    1. Extrude: the digit, scaled to [0, 1], fills ``depth`` slices at the middle of the
       depth axis (a slab 28 x 28 x depth, the digit's strokes as bars through it).
    2. Rotate: a random rotation about the volume's centre (``random_rotations``: a spin
       in the digit's plane within +-max_spin degrees, then tilts out of it within
       +-max_tilt degrees about each in-plane axis).
    3. Voxelise: trilinear resampling onto the 28^3 grid, stored as uint8 (x 255).
    The label is the digit's. Rotations come from ``rng``: one seed, one data set."""
    volumes = extrude(images.astype(np.float32) / 255.0, depth)
    rotations = random_rotations(len(images), max_tilt, max_spin, rng)
    out = np.empty(volumes.shape, np.uint8)
    for i, (volume, rotation) in enumerate(zip(volumes, rotations, strict=True)):
        out[i] = np.clip(np.rint(rotate_volume(volume, rotation) * 255), 0, 255)
    return out


def projections(volumes: np.ndarray) -> np.ndarray:
    """Max-intensity projections: volumes (N, D, H, W) (any dtype; or (N, 1, D, H, W)) ->
    (N, 3, H, W): the maxima along depth, along height and along width, as three channels
    (all three are S x S for a cube of side S)."""
    if volumes.ndim == 5:
        volumes = volumes[:, 0]
    return np.stack([volumes.max(axis=1), volumes.max(axis=2), volumes.max(axis=3)], axis=1)


def load(ctx: RunContext) -> dict[str, Any]:
    """uint8 volumes (N, S, S, S) and int64 labels (N,) for train / val / test, and the
    class names. The stand-in: stratified samples of MNIST's training digits make train and
    val (disjoint), of its test digits the test split; each split's rotations have their
    own seed. A MedMNIST 3D set (``VOLUMES``) is read as published, its own three splits."""
    if VOLUMES != "mnist3d":
        return medmnist_volumes(VOLUMES, VOLUME_SIZE)
    n_train, n_val, n_test = ctx.sized(SIZES["here"], SIZES["full"], SIZES["quick"])
    train, test = load_mnist("train"), load_mnist("test")
    pool = _vision.stratified_take(train.targets, n_train + n_val, ctx.seed)
    split = np.random.default_rng(ctx.seed).permutation(len(pool))
    order = {"train": pool[np.sort(split[:n_train])], "val": pool[np.sort(split[n_train:])]}
    keep_test = _vision.stratified_take(test.targets, n_test, ctx.seed)
    data: dict[str, Any] = {"classes": _mnist.CLASSES}
    for k, (name, images, labels) in enumerate(
        [
            ("train", train.data[order["train"]], train.targets[order["train"]]),
            ("val", train.data[order["val"]], train.targets[order["val"]]),
            ("test", test.data[keep_test], test.targets[keep_test]),
        ]
    ):
        rng = np.random.default_rng([ctx.seed, k])
        data[f"x_{name}"], data[f"y_{name}"] = mnist_volumes(images, rng), labels
    return data


def medmnist_volumes(flag: str, size: int, root: str | Path | None = None) -> dict[str, Any]:
    """A MedMNIST 3D set (``fracturemnist3d``, ...) at ``size`` 28 or 64, in the layout of
    ``load``: uint8 (N, S, S, S) volumes, int64 labels, its class names."""
    data: dict[str, Any] = {}
    for split in ("train", "val", "test"):
        volumes, labels, classes = load_medmnist(flag, split, size=size, root=root)
        data[f"x_{split}"], data[f"y_{split}"] = volumes, labels
    data["classes"] = classes
    return data


class VolumeLoader:
    """Batches (x, y) of uint8 volumes scaled to [0, 1]: x float32 (B, 1, S, S, S), or with
    ``project=True`` their projections (B, 3, S, S) (``projections``, taken after the
    augmentation, so both models see the same augmented volumes).

    Augmentation (``augment=True``), label-preserving for a digit slab: a flip along depth
    (a slab mirrored through its mid-depth plane is the same digit under another rotation;
    a flip along height or width would mirror the digit) with probability 1/2, then a
    rotation of up to ``AUGMENT_DEGREES`` about each axis. One seeded generator draws the
    order and the augmentation. volumes: uint8 (N, S, S, S); labels: (N,) int64."""

    def __init__(
        self,
        volumes: np.ndarray,
        labels: np.ndarray,
        batch_size: int,
        shuffle: bool = False,
        augment: bool = False,
        project: bool = False,
        seed: int = 0,
    ) -> None:
        if volumes.ndim != 4 or volumes.dtype != np.uint8:
            raise ValueError(
                f"VolumeLoader: expected uint8 (N, D, H, W), got {volumes.dtype} {volumes.shape}"
            )
        self.volumes, self.labels, self.batch_size = volumes, labels, batch_size
        self.shuffle, self.augment, self.project = shuffle, augment, project
        self.generator = np.random.default_rng(seed)

    def __len__(self) -> int:
        return -(-len(self.labels) // self.batch_size)

    def __iter__(self) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        n = len(self.labels)
        order = self.generator.permutation(n) if self.shuffle else np.arange(n)
        for start in range(0, n, self.batch_size):
            index = order[start : start + self.batch_size]
            x = self.volumes[index].astype(np.float32) / 255.0
            if self.augment:
                x = self._augment(x)
            x = projections(x) if self.project else x[:, None]
            yield np.ascontiguousarray(x), self.labels[index]

    def _augment(self, x: np.ndarray) -> np.ndarray:
        flip = self.generator.random(len(x)) < 0.5
        x[flip] = x[flip, ::-1]
        rotations = random_rotations(len(x), AUGMENT_DEGREES, AUGMENT_DEGREES, self.generator)
        return np.stack([rotate_volume(v, r) for v, r in zip(x, rotations, strict=True)])


# --------------------------------------------------------------------------- 2. models
def cnn3d(size: int, classes: int, widths=CNN3D["widths"], dropout=CNN3D["dropout"]):
    """Three blocks of Conv3d 3x3x3 (no bias: BatchNorm adds one) -> BatchNorm3d -> ReLU ->
    MaxPool3d 2, then dropout and a Linear to the logits. For size 28 and widths (8, 16, 32):
    x: (N, 1, 28, 28, 28) -> (N, 8, 14, 14, 14) -> (N, 16, 7, 7, 7) -> (N, 32, 3, 3, 3)
    -> (N, classes). (Size 64 ends at (N, 32, 8, 8, 8).)"""
    a, b, c = widths
    side = size // 2 // 2 // 2
    return nn.Sequential(
        nn.Conv3d(1, a, 3, padding=1, bias=False), nn.BatchNorm3d(a), nn.ReLU(), nn.MaxPool3d(2),
        nn.Conv3d(a, b, 3, padding=1, bias=False), nn.BatchNorm3d(b), nn.ReLU(), nn.MaxPool3d(2),
        nn.Conv3d(b, c, 3, padding=1, bias=False), nn.BatchNorm3d(c), nn.ReLU(), nn.MaxPool3d(2),
        nn.Flatten(), nn.Dropout(dropout), nn.Linear(c * side**3, classes),
    )  # fmt: skip


def cnn2d(size: int, classes: int, widths=CNN2D["widths"], dropout=CNN2D["dropout"]):
    """The same design in 2-D on the three projections: Conv2d 3x3 -> BatchNorm2d -> ReLU ->
    MaxPool2d 2, three times, dropout, Linear. For size 28 and widths (32, 64, 128):
    x: (N, 3, 28, 28) -> (N, 32, 14, 14) -> (N, 64, 7, 7) -> (N, 128, 3, 3) -> (N, classes).
    Wider than the 3D CNN: with the same channels a 2-D conv layer does 3S times fewer
    multiply-adds (S^2 positions x 9 taps against S^3 x 27), so it gets more channels."""
    a, b, c = widths
    side = size // 2 // 2 // 2
    return nn.Sequential(
        nn.Conv2d(3, a, 3, padding=1, bias=False), nn.BatchNorm2d(a), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(a, b, 3, padding=1, bias=False), nn.BatchNorm2d(b), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(b, c, 3, padding=1, bias=False), nn.BatchNorm2d(c), nn.ReLU(), nn.MaxPool2d(2),
        nn.Flatten(), nn.Dropout(dropout), nn.Linear(c * side**2, classes),
    )  # fmt: skip


# --------------------------------------------------------------------------- 3-5. train, score
def train_and_score(
    ctx: RunContext, data: dict[str, Any], name: str, model: nn.Module, config: dict[str, Any]
) -> tuple[dict[str, Any], History]:
    """Cross-entropy, Adam with a one-cycle lr (warm-up over 20% of the steps, then a cosine
    to ~0, stepped per batch); validation after every epoch, the test set once at the end.
    ``project`` in config: the model sees the projections instead of the voxels. Each epoch
    is checkpointed under ``<out>/checkpoints/``: the same command again resumes a killed
    run, or only scores a finished one."""
    project = config["project"]
    train = VolumeLoader(
        data["x_train"], data["y_train"], config["batch_size"], shuffle=True, augment=True,
        project=project, seed=ctx.seed,
    )  # fmt: skip
    val = VolumeLoader(data["x_val"], data["y_val"], 100, project=project)
    test = VolumeLoader(data["x_test"], data["y_test"], 100, project=project)
    optimizer = optim.Adam(model.parameters(), lr=config["lr"])
    checkpoint = _vision.checkpoint_path(ctx, name, config)  # None with --quick
    scheduler = optim.lr_scheduler.OneCycleLR(
        optimizer, max_lr=config["lr"], total_steps=config["epochs"] * len(train), pct_start=0.2
    )
    history = fit(
        model,
        loss_fn=F.cross_entropy,
        optimizer=optimizer,
        train_loader=train,
        epochs=config["epochs"],
        val_loader=val,
        scheduler=scheduler,
        scheduler_step="batch",
        metrics=["accuracy"],
        callbacks=[ctx.epoch_log(name, config["epochs"])],
        checkpoint=checkpoint,
        resume=checkpoint is not None,
        progress=False,
    )
    report, _ = _vision.class_report(ctx, name, model, test, data["classes"], name)
    record = {
        **config,
        "parameters": _vision.parameter_count(model),
        "train_time_s": round(sum(history.series("time")), 1),
        "curves": _vision.history_record(history),
        **report,
    }
    return record, history


# --------------------------------------------------------------------------- 6. the run
def run(ctx: RunContext) -> None:
    data = load(ctx)
    size = data["x_train"].shape[1]
    ctx.data(train=len(data["y_train"]), val=len(data["y_val"]), test=len(data["y_test"]))
    ctx.record(volumes=VOLUMES, volume_size=size, build=BUILD if VOLUMES == "mnist3d" else None)
    draw_volumes(ctx, data["x_test"], data["y_test"], data["classes"])
    epochs = ctx.sized(CNN3D["epochs"], FULL_EPOCHS, 1)
    classes = len(data["classes"])
    results, histories = {}, {}
    for name, settings, build, project in (
        ("cnn3d", CNN3D, cnn3d, False),
        ("cnn2d_projections", CNN2D, cnn2d, True),
    ):
        config = {**settings, "epochs": ctx.epochs_or(epochs, 1), "project": project,
                  "volumes": VOLUMES, "sizes": ctx.results["sizes"]}  # fmt: skip
        if ctx.quick:  # 10 steps, the fewest a one-cycle schedule with a 20% warm-up takes
            config["batch_size"] = 16
        md.manual_seed(ctx.seed)
        model = build(size, classes)
        results[name], histories[name] = train_and_score(ctx, data, name, model, config)
        if name == "cnn3d":
            results[name]["grad_cam"] = explain_3d(ctx, model, data)
    _vision.compare_curves(
        histories, ctx.figure("learning_curves"), "3D CNN on voxels vs 2D CNN on projections"
    )
    ctx.record(
        models=results,
        cnn3d_test_accuracy=results["cnn3d"]["test_accuracy"],
        cnn2d_test_accuracy=results["cnn2d_projections"]["test_accuracy"],
    )


def explain_3d(ctx: RunContext, model: nn.Sequential, data: dict[str, Any]) -> dict[str, float]:
    """3-D Grad-CAM (``minidl.explain.grad_cam``) of the 3D CNN's predicted class at its last
    ReLU (7^3 for 28^3 volumes, resized trilinearly to the volume): the figure, and how
    much of the heat falls on the object (voxels above 1/4 intensity) on up to 200 test
    volumes, against the share of the volume the object fills (what a uniform map gets)."""
    layer = model[10]  # the last ReLU, before the last pool
    x = data["x_test"][:200].astype(np.float32)[:, None] / 255
    heat = np.concatenate([grad_cam(model, layer, x[i : i + 50]) for i in range(0, len(x), 50)])
    inside = x[:, 0] > 0.25
    share = float((heat * inside).sum() / heat.sum())
    draw_grad_cam(ctx, model, x, heat, data["y_test"], data["classes"])
    return {"heat_on_object": share, "object_fraction": float(inside.mean()), "volumes": len(x)}


# --------------------------------------------------------------------------- figures
def draw_volumes(
    ctx: RunContext, volumes: np.ndarray, labels: np.ndarray, classes: list[str], count: int = 4
) -> None:
    """For ``count`` test volumes (one per class from the first): five depth slices through
    the middle and the three max-intensity projections, one row per volume."""
    from minidl.viz.plots import pyplot, save_figure

    plt = pyplot()
    picked = [int(np.flatnonzero(labels == c)[0]) for c in np.unique(labels)[:count]]
    size = volumes.shape[1]
    depths = np.linspace(size // 2 - 6, size // 2 + 6, 5).astype(int)
    panels = [f"slice z={z}" for z in depths] + ["max along z", "max along y", "max along x"]
    fig, axes = plt.subplots(
        len(picked), len(panels), figsize=(1.6 * len(panels), 1.8 * len(picked) + 0.6),
        layout="constrained", squeeze=False,
    )  # fmt: skip
    for row, i in enumerate(picked):
        views = [volumes[i, z] for z in depths] + list(projections(volumes[i : i + 1])[0])
        for col, view in enumerate(views):
            ax = axes[row, col]
            ax.imshow(view, cmap="gray", vmin=0, vmax=255)
            ax.set_xticks([])
            ax.set_yticks([])
            if row == 0:
                ax.set_title(panels[col], fontsize=8)
        axes[row, 0].set_ylabel(f"label {classes[labels[i]]}", fontsize=8)
    fig.suptitle("test volumes: depth slices (z) and max-intensity projections")
    save_figure(fig, ctx.figure("volumes"))


def draw_grad_cam(
    ctx: RunContext, model: nn.Module, x: np.ndarray, heat: np.ndarray, labels: np.ndarray,
    classes: list[str], count: int = 4,
) -> None:  # fmt: skip
    """For ``count`` test volumes of different classes: the Grad-CAM heatmap over five
    depth slices through the middle, and its maximum along depth over the volume's
    projection along depth. x: (N, 1, S, S, S) in [0, 1]; heat: (N, S, S, S) in [0, 1]."""
    from minidl.viz.plots import pyplot, save_figure

    plt = pyplot()
    picked = [int(np.flatnonzero(labels[: len(x)] == c)[0]) for c in np.unique(labels)[:count]]
    with md.no_grad():
        predicted = model.eval()(md.tensor(x[picked])).numpy().argmax(axis=1)
    size = x.shape[2]
    depths = np.linspace(size // 2 - 6, size // 2 + 6, 5).astype(int)
    panels = [f"slice z={z}" for z in depths] + ["max along z"]
    fig, axes = plt.subplots(
        len(picked), len(panels), figsize=(1.7 * len(panels), 1.9 * len(picked) + 0.6),
        layout="constrained", squeeze=False,
    )  # fmt: skip
    for row, i in enumerate(picked):
        views = [(x[i, 0, z], heat[i, z]) for z in depths]
        views.append((x[i, 0].max(axis=0), heat[i].max(axis=0)))
        for col, (image, cam) in enumerate(views):
            ax = axes[row, col]
            ax.imshow(overlay(image, cam, alpha=0.45))
            ax.set_xticks([])
            ax.set_yticks([])
            if row == 0:
                ax.set_title(panels[col], fontsize=8)
        truth, guess = classes[labels[i]], classes[predicted[row]]
        axes[row, 0].set_ylabel(f"label {truth}\npredicted {guess}", fontsize=8)
    fig.suptitle("3-D Grad-CAM of the 3D CNN (last conv block), over depth slices")
    save_figure(fig, ctx.figure("grad_cam_3d"))
