import tarfile
import zipfile

import numpy as np
import pytest

from minidl.data import DataCorruptError, ImageFolder

pytest.importorskip("PIL")


@pytest.fixture
def folder(tmp_path, fmt):
    """root/<class>/ with PNG (exact), JPEG (lossy) and PGM (gray) files, and a stray README."""
    rng = np.random.default_rng(0)
    root = tmp_path / "root"
    images = {
        "zebra/a.png": rng.integers(0, 256, (6, 5, 3), dtype=np.uint8),
        "zebra/b.PNG": rng.integers(0, 256, (6, 5, 3), dtype=np.uint8),
        "ant/x.jpg": np.full((6, 5, 3), 120, dtype=np.uint8),
        "ant/deeper/y.pgm": rng.integers(0, 256, (6, 5), dtype=np.uint8),
    }
    formats = {"png": "PNG", "jpg": "JPEG", "pgm": "PPM"}
    for name, pixels in images.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(fmt.image_bytes(pixels, formats[name.rsplit(".", 1)[1].lower()]))
    (root / "README.txt").write_text("not an image")
    (root / "ant" / "notes.txt").write_text("not an image either")
    return root, images


def archive_of(folder, kind, tmp_path):
    if kind == "tar.gz":
        path = tmp_path / "images.tar.gz"
        with tarfile.open(path, "w:gz") as tar:
            tar.add(folder, arcname="images")
    else:
        path = tmp_path / "images.zip"
        with zipfile.ZipFile(path, "w") as z:
            for file in folder.rglob("*"):
                z.write(file, "images/" + file.relative_to(folder).as_posix())
    return path


@pytest.mark.parametrize("kind", ["folder", "tar.gz", "zip"])
def test_classes_samples_and_pixels(folder, tmp_path, kind):
    root, images = folder
    ds = (
        ImageFolder(root)
        if kind == "folder"
        else ImageFolder(archive_of(root, kind, tmp_path), "images")
    )
    assert ds.classes == ["ant", "zebra"] and ds.class_to_idx == {"ant": 0, "zebra": 1}
    names = [name for name, _ in ds.samples]
    assert names == ["ant/deeper/y.pgm", "ant/x.jpg", "zebra/a.png", "zebra/b.PNG"]
    assert ds.targets.tolist() == [0, 0, 1, 1] and len(ds) == 4
    image, target = ds[2]
    assert target == 1 and np.array_equal(image, images["zebra/a.png"])
    gray_as_rgb, _ = ds[0]
    assert gray_as_rgb.shape == (6, 5, 3)
    assert np.array_equal(gray_as_rgb[..., 1], images["ant/deeper/y.pgm"])
    jpeg, _ = ds[1]
    assert np.abs(jpeg.astype(int) - 120).max() <= 2  # JPEG is lossy but close
    arrays = ds.to_arrays()
    assert arrays.data.shape == (4, 6, 5, 3) and arrays.classes == ["ant", "zebra"]


def test_gray_mode(folder):
    root, images = folder
    image, _ = ImageFolder(root, mode="L")[0]
    assert image.shape == (6, 5) and np.array_equal(image, images["ant/deeper/y.pgm"])


def test_truncated_image_is_named(folder, tmp_path):
    root, _ = folder
    path = root / "zebra" / "a.png"
    path.write_bytes(path.read_bytes()[:40])
    with pytest.raises(DataCorruptError, match=r"zebra/a\.png: cannot decode"):
        ImageFolder(root)[2]
    archive = archive_of(root, "tar.gz", tmp_path)
    with pytest.raises(DataCorruptError, match=r"images\.tar\.gz:images/zebra/a\.png"):
        ImageFolder(archive, "images").to_arrays()


def test_images_of_different_sizes_cannot_be_stacked(folder, fmt):
    root, _ = folder
    (root / "zebra" / "c.png").write_bytes(fmt.image_bytes(np.zeros((7, 5, 3), np.uint8), "PNG"))
    with pytest.raises(ValueError, match=r"zebra/c\.png: shape \(7, 5, 3\) differs"):
        ImageFolder(root).to_arrays()


def test_no_images(tmp_path):
    (tmp_path / "empty" / "cls").mkdir(parents=True)
    with pytest.raises(DataCorruptError, match="no image"):
        ImageFolder(tmp_path / "empty")
