"""fracture3d_cnn: how the volumes are built (extrusion, rotation, voxelisation), the
projections and the loader, the MedMNIST 3D layout at both sizes feeding both models, and
the quick run end to end."""

from __future__ import annotations

import json

import numpy as np
import pytest

import minidl as md
from projects import fracture3d_cnn as f3
from projects.runner import run_project


def ring_digit() -> np.ndarray:
    """A uint8 28x28 ring of radius ~6 at the centre, a digit-like "0" well inside the
    grid: no rotation about the centre moves it out of a 28^3 volume."""
    yy, xx = np.mgrid[:28, :28] - 13.5
    r = np.hypot(yy, xx)
    return (np.clip(2.5 - abs(r - 6), 0, 1) * 255).astype(np.uint8)


def rotation_about(axis: int, degrees: float) -> np.ndarray:
    """The (z, y, x) rotation matrix of ``degrees`` about axis 0 (z), 1 (y) or 2 (x)."""
    c, s = np.cos(np.radians(degrees)), np.sin(np.radians(degrees))
    i, j = [a for a in range(3) if a != axis]
    r = np.eye(3)
    r[i, i], r[i, j], r[j, i], r[j, j] = c, -s, s, c
    return r


def test_rotations_are_rotations_within_their_bounds():
    r = f3.random_rotations(200, 60.0, 30.0, np.random.default_rng(0))
    assert r.shape == (200, 3, 3)
    identity = np.broadcast_to(np.eye(3), r.shape)
    np.testing.assert_allclose(r @ r.transpose(0, 2, 1), identity, atol=1e-12)
    np.testing.assert_allclose(np.linalg.det(r), 1.0, atol=1e-12)
    # Spin only (no tilt): the depth axis stays put, the plane turns by at most 30 degrees.
    spin = f3.random_rotations(200, 0.0, 30.0, np.random.default_rng(1))
    np.testing.assert_allclose(spin[:, 0], np.broadcast_to([1.0, 0, 0], (200, 3)), atol=1e-12)
    assert np.degrees(np.arccos(spin[:, 1, 1])).max() <= 30.0 + 1e-9
    # Tilts bend the depth axis away from z by at most the combined tilt.
    assert (r[:, 0, 0] >= np.cos(np.radians(60)) ** 2 - 1e-12).all()


def test_a_rotation_by_zero_reproduces_the_extrusion():
    digits = np.stack([ring_digit(), np.roll(ring_digit(), 3, axis=1)])
    volumes = f3.mnist_volumes(digits, np.random.default_rng(0), depth=6, max_tilt=0, max_spin=0)
    assert volumes.shape == (2, 28, 28, 28) and volumes.dtype == np.uint8
    expected = np.zeros((2, 28, 28, 28), np.uint8)
    expected[:, 11:17] = digits[:, None]  # 6 slices centred in 28
    np.testing.assert_array_equal(volumes, expected)
    np.testing.assert_array_equal(f3.projections(volumes)[:, 0], digits)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_voxelisation_keeps_the_occupancy(seed):
    """Total intensity (the digit's voxel occupancy) after a random 3-D rotation and the
    trilinear resampling: within 2% of the extruded slab's; the voxels above half
    intensity within 25% (the resampling blurs edges, it neither adds nor loses ink)."""
    digit = ring_digit()[None]
    slab = f3.extrude(digit.astype(np.float32) / 255, depth=6)[0]
    volumes = f3.mnist_volumes(np.repeat(digit, 8, 0), np.random.default_rng(seed))
    mass = volumes.reshape(8, -1).astype(np.float64).sum(1) / 255
    np.testing.assert_allclose(mass, slab.sum(), rtol=0.02)
    occupied = (volumes > 127).reshape(8, -1).sum(1)
    np.testing.assert_allclose(occupied, (slab > 0.5).sum(), rtol=0.25)


def test_axes_of_a_quarter_turn():
    """A quarter turn about width (x) stands the slab up: thin along depth becomes thin along
    height, and the digit's rows now run along depth; a quarter turn about depth turns each
    slice as np.rot90 does."""
    slab = f3.extrude(ring_digit()[None].astype(np.float32) / 255, depth=6)[0]
    up = f3.rotate_volume(slab, rotation_about(2, 90))
    occupied = np.argwhere(up > 0.5)
    assert np.ptp(occupied[:, 1]) + 1 == 6  # height extent: the slab's depth
    assert np.ptp(occupied[:, 0]) + 1 > 12  # depth extent: the ring's diameter
    turned = f3.rotate_volume(slab, rotation_about(0, 90))
    rot90 = [np.rot90(slab, k, axes=(1, 2)) for k in (1, 3)]
    assert any(np.allclose(turned, r, atol=1e-5) for r in rot90)


def test_projections_and_loader():
    rng = np.random.default_rng(0)
    volumes = rng.integers(0, 256, (5, 6, 6, 6), dtype=np.uint8)
    p = f3.projections(volumes)
    assert p.shape == (5, 3, 6, 6)
    np.testing.assert_array_equal(p[:, 1], volumes.max(axis=2))
    labels = np.arange(5)
    plain = f3.VolumeLoader(volumes, labels, batch_size=2)
    batches = list(plain)
    assert len(plain) == len(batches) == 3
    x, y = batches[0]
    assert x.shape == (2, 1, 6, 6, 6) and x.dtype == np.float32 and y.tolist() == [0, 1]
    np.testing.assert_allclose(x[:, 0], volumes[:2] / 255.0, rtol=1e-6)
    flat = f3.VolumeLoader(volumes, labels, 5, project=True)
    np.testing.assert_allclose(next(iter(flat))[0], p / 255.0, rtol=1e-6)

    def draw(seed):
        loader = f3.VolumeLoader(volumes, labels, 5, shuffle=True, augment=True, seed=seed)
        return next(iter(loader))

    (a, ya), (b, yb), (c, _) = draw(3), draw(3), draw(4)
    np.testing.assert_array_equal(a, b)
    assert ya.tolist() == yb.tolist() and not np.array_equal(a, c)


def test_depth_flip_is_the_same_digit():
    """The loader's flip along depth keeps the projection along depth (the digit as seen
    face on) and only mirrors the side views: it is a label-preserving augmentation."""
    volumes = f3.mnist_volumes(ring_digit()[None], np.random.default_rng(5))
    flipped = volumes[:, ::-1]
    np.testing.assert_array_equal(f3.projections(flipped)[:, 0], f3.projections(volumes)[:, 0])


def write_npz(path, **arrays):
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(path, **arrays)


@pytest.mark.filterwarnings("ignore:.*is not the published")
@pytest.mark.parametrize("size", [28, 64])
def test_fracturemnist3d_layout_feeds_both_models(tmp_path, size):
    """A fixture in MedMNIST's npz layout (uint8 train/val/test volumes (N, S, S, S), labels
    (N, 1)) at 28^3 and the 64^3 MedMNIST+ size: read into the project's layout, batched,
    and both models give 3 logits per volume."""
    rng = np.random.default_rng(0)
    arrays = {}
    for split, n in (("train", 4), ("val", 2), ("test", 3)):
        arrays[f"{split}_images"] = rng.integers(0, 256, (n, size, size, size), dtype=np.uint8)
        arrays[f"{split}_labels"] = (np.arange(n) % 3).astype(np.uint8)[:, None]
    name = "fracturemnist3d.npz" if size == 28 else f"fracturemnist3d_{size}.npz"
    write_npz(tmp_path / "medmnist" / name, **arrays)
    data = f3.medmnist_volumes("fracturemnist3d", size, root=tmp_path)
    assert data["classes"][2] == "displaced rib fracture"
    for split in ("train", "val", "test"):
        np.testing.assert_array_equal(data[f"x_{split}"], arrays[f"{split}_images"])
        assert data[f"y_{split}"].tolist() == arrays[f"{split}_labels"][:, 0].tolist()
    for build, project in ((f3.cnn3d, False), (f3.cnn2d, True)):
        model = build(size, len(data["classes"])).eval()
        x, _ = next(iter(f3.VolumeLoader(data["x_val"], data["y_val"], 2, project=project)))
        with md.no_grad():
            assert model(md.tensor(x)).shape == (2, 3)


@pytest.mark.skipif(not f3.available(), reason="MNIST is not under MINIDL_DATA")
def test_quick_run_writes_metrics_and_figures(tmp_path):
    run_project("fracture3d_cnn", out=tmp_path, quick=True)
    report = json.loads((tmp_path / "metrics.json").read_text())
    results = report["results"]
    assert results["sizes"] == {"train": 160, "val": 60, "test": 60}
    assert results["volume_size"] == 28 and results["build"] == f3.BUILD
    for name in ("cnn3d", "cnn2d_projections"):
        model = results["models"][name]
        matrix = np.array(model["confusion_matrix"])
        assert matrix.shape == (10, 10) and matrix.sum() == 60
        assert np.trace(matrix) / 60 == pytest.approx(model["test_accuracy"])
        assert 0.0 <= model["macro_f1"] <= 1.0 and len(model["curves"]["val_loss"]) == 1
    for name in report["figures"]:
        assert (tmp_path / name).stat().st_size > 1000
    assert {"volumes.png", "learning_curves.png", "confusion_cnn3d.png"} <= set(report["figures"])
