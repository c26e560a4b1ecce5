import numpy as np
import pytest

from minidl.data import (
    ColorJitter,
    Compose,
    GaussianNoise,
    Normalize,
    RandomAffine,
    RandomCrop,
    RandomHorizontalFlip,
    RandomRotation,
    RandomVerticalFlip,
    Resize,
    to_float_chw,
)
from minidl.data.transforms import interpolation_matrix


@pytest.fixture
def images():
    return np.random.default_rng(0).random((6, 3, 9, 11)).astype(np.float32)


@pytest.mark.parametrize("flip", [RandomHorizontalFlip, RandomVerticalFlip])
def test_flip_twice_is_identity_and_p1_mirrors(images, flip):
    t = flip(p=1.0)
    axis = -1 if flip is RandomHorizontalFlip else -2
    assert np.array_equal(t(images), np.flip(images, axis))
    assert np.array_equal(t(t(images)), images)
    assert np.array_equal(flip(p=0.0)(images), images)


def test_flip_with_p_half_flips_some_images_whole(images):
    out = RandomHorizontalFlip(p=0.5, rng=2)(images)
    flipped = [np.array_equal(o, i[..., ::-1]) for o, i in zip(out, images)]
    kept = [np.array_equal(o, i) for o, i in zip(out, images)]
    assert all(f != k for f, k in zip(flipped, kept)) and any(flipped) and any(kept)


def test_crop_keeps_shape_and_is_a_window_of_the_padded_image(images):
    out = RandomCrop(9, padding=2, rng=0)(images[:, :, :, :9])
    assert out.shape == (6, 3, 9, 9)
    padded = np.pad(images[:, :, :, :9], ((0, 0), (0, 0), (2, 2), (2, 2)))
    for o, p in zip(out, padded):
        windows = [p[:, i : i + 9, j : j + 9] for i in range(5) for j in range(5)]
        assert any(np.array_equal(o, w) for w in windows)


def test_full_size_crop_without_padding_is_identity(images):
    assert np.array_equal(RandomCrop((9, 11), rng=0)(images), images)


def test_crop_larger_than_image_is_an_error(images):
    with pytest.raises(ValueError, match="larger"):
        RandomCrop(12)(images)


def test_normalize_math(images):
    mean, std = [0.1, 0.2, 0.3], [0.5, 0.25, 2.0]
    out = Normalize(mean, std)(images)
    for c in range(3):
        np.testing.assert_allclose(out[:, c], (images[:, c] - mean[c]) / std[c], rtol=1e-6)
    assert out.dtype == np.float32
    with pytest.raises(ValueError, match="2 values for 3 channels"):
        Normalize([0, 0], [1, 1])(images)


def test_single_image_is_accepted(images):
    one = images[0]
    assert np.array_equal(Normalize(0.5, 0.5)(one), Normalize(0.5, 0.5)(images)[0])
    assert Resize((4, 5))(one).shape == (3, 4, 5)
    with pytest.raises(ValueError, match=r"\(N, C, H, W\) or \(C, H, W\)"):
        Normalize(0, 1)(one[0])


def test_rotation_by_zero_is_identity(images):
    assert np.array_equal(RandomRotation(0, rng=0)(images), images)
    assert np.array_equal(RandomAffine(0, translate=(0, 0), scale=(1, 1), rng=0)(images), images)


def test_rotation_by_90_is_rot90():
    square = np.random.default_rng(1).random((2, 1, 7, 7))
    out = RandomRotation((90, 90), rng=0)(square)
    np.testing.assert_allclose(out, np.rot90(square, axes=(2, 3)), atol=1e-12)


def fixed_affine(angle=0.0, tx=0.0, ty=0.0, scale=1.0):
    """A RandomAffine whose draw is replaced by the given parameters."""
    t = RandomAffine(0)
    t._params = lambda n, h, w: tuple(np.full(n, v) for v in (np.deg2rad(angle), tx, ty, scale))
    return t


def test_affine_translation_shifts_with_zero_fill():
    x = np.random.default_rng(2).random((1, 1, 6, 7))
    out = fixed_affine(tx=2, ty=1)(x)
    expected = np.zeros_like(x)
    expected[..., 1:, 2:] = x[..., :-1, :-2]
    np.testing.assert_allclose(out, expected, atol=1e-12)
    half = fixed_affine(tx=0.5)(x)  # half a pixel: the mean of two neighbours
    np.testing.assert_allclose(half[..., 1:], (x[..., 1:] + x[..., :-1]) / 2, atol=1e-12)
    np.testing.assert_allclose(half[..., 0], x[..., 0] / 2, atol=1e-12)  # half from outside


def test_affine_fill_value_outside():
    out = RandomAffine(0, translate=(0.5, 0.5), fill=7.0, rng=0)(np.ones((4, 1, 8, 8)))
    assert np.all((out >= 1 - 1e-9) & (out <= 7 + 1e-9)) and (out == 7).any()


def test_affine_scale_zooms_about_the_centre():
    x = np.zeros((1, 1, 9, 9))
    x[0, 0, 4, 6] = 1.0  # two pixels right of the centre
    out = RandomAffine(0, scale=(2, 2), rng=0)(x)
    assert out.shape == x.shape
    assert out[0, 0, 4, 8] == pytest.approx(1.0)  # now four pixels right
    assert out[0, 0, 4, 6] == 0.0


def test_resize_shapes():
    x = np.zeros((2, 3, 8, 16), dtype=np.float32)
    assert Resize((4, 6))(x).shape == (2, 3, 4, 6)
    assert Resize(4)(x).shape == (2, 3, 4, 8)  # an int sets the shorter side
    assert Resize(4, "nearest")(x).shape == (2, 3, 4, 8)
    assert Resize((20, 10), "bicubic")(x).shape == (2, 3, 20, 10)


@pytest.mark.parametrize("mode", ["bilinear", "bicubic", "nearest"])
def test_resize_to_the_same_size_is_identity_and_keeps_constants(images, mode):
    np.testing.assert_allclose(Resize((9, 11), mode)(images), images, atol=1e-6)
    flat = np.full((1, 1, 5, 5), 0.25)
    np.testing.assert_allclose(Resize((8, 3), mode)(flat), 0.25)


@pytest.mark.parametrize("mode", ["bilinear", "bicubic"])
def test_interpolation_rows_sum_to_one(mode):
    for n_in, n_out in [(7, 3), (3, 7), (10, 10)]:
        np.testing.assert_allclose(interpolation_matrix(n_in, n_out, mode).sum(axis=1), 1.0)


def test_nearest_resize_keeps_uint8_and_doubles_pixels():
    x = np.arange(4, dtype=np.uint8).reshape(1, 1, 2, 2)
    out = Resize((4, 4), "nearest")(x)
    assert out.dtype == np.uint8
    assert out[0, 0].tolist() == [[0, 0, 1, 1], [0, 0, 1, 1], [2, 2, 3, 3], [2, 2, 3, 3]]


@pytest.mark.parametrize("mode", ["bilinear", "bicubic", "nearest"])
def test_resize_matches_pytorch_interpolate(mode):
    torch = pytest.importorskip("torch")
    x = np.random.default_rng(3).random((2, 3, 13, 17))
    for size in [(7, 9), (30, 40)]:
        kwargs = {} if mode == "nearest" else {"align_corners": False}
        expected = torch.nn.functional.interpolate(torch.tensor(x), size=size, mode=mode, **kwargs)
        np.testing.assert_allclose(Resize(size, mode)(x), expected.numpy(), atol=1e-12)


def test_color_jitter_keeps_range_and_zero_is_identity(images):
    assert np.array_equal(ColorJitter()(images), images)
    out = ColorJitter(0.5, 0.5, 0.5, rng=0)(images)
    assert out.shape == images.shape and out.min() >= 0 and out.max() <= 1
    assert not np.allclose(out, images)


def test_color_jitter_brightness_scales_each_image():
    x = np.full((4, 3, 2, 2), 0.5)
    out = ColorJitter(brightness=0.4, rng=1)(x)
    factors = out[:, 0, 0, 0] / 0.5
    assert np.all((factors >= 0.6) & (factors <= 1.4))
    assert np.allclose(out, factors[:, None, None, None] * 0.5)


def test_saturation_zero_factor_gives_gray():
    x = np.random.default_rng(4).random((2, 3, 4, 4))
    gray = 0.2989 * x[:, 0] + 0.587 * x[:, 1] + 0.114 * x[:, 2]
    t = ColorJitter(saturation=1.0, rng=0)
    t._factors = lambda amount, n, dtype: np.zeros((n, 1, 1, 1), dtype)
    np.testing.assert_allclose(t(x), np.repeat(gray[:, None], 3, axis=1))


def test_gaussian_noise_statistics(images):
    out = GaussianNoise(0.1, rng=0)(np.zeros((64, 3, 16, 16), dtype=np.float32))
    assert out.dtype == np.float32
    assert abs(out.mean()) < 0.005 and abs(out.std() - 0.1) < 0.005


def test_random_transforms_are_fixed_by_the_seed(images):
    def pipeline(seed):
        rng = np.random.default_rng(seed)
        return Compose(
            [
                RandomCrop(8, padding=1, rng=rng),
                RandomHorizontalFlip(rng=rng),
                RandomAffine(15, translate=(0.1, 0.1), scale=(0.9, 1.1), rng=rng),
                ColorJitter(0.2, 0.2, 0.2, rng=rng),
                GaussianNoise(0.05, rng=rng),
            ]
        )

    a, b, c = pipeline(5)(images), pipeline(5)(images), pipeline(6)(images)
    assert a.shape == (6, 3, 8, 8)
    assert np.array_equal(a, b) and not np.allclose(a, c)


def test_to_float_chw():
    hwc = np.random.default_rng(5).integers(0, 256, (2, 4, 5, 3), dtype=np.uint8)
    out = to_float_chw(hwc)
    assert out.shape == (2, 3, 4, 5) and out.dtype == np.float32
    np.testing.assert_allclose(out[1, 2, 3, 4], hwc[1, 3, 4, 2] / 255)
    assert to_float_chw(hwc[..., 0]).shape == (2, 1, 4, 5)
