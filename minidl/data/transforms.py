"""Image transforms on NumPy batches ``x: (N, C, H, W)``, or on one image ``(C, H, W)``.

Names and parameters follow torchvision.transforms. Each random transform draws one set of
parameters per image from its `rng` (a numpy Generator or a seed) or, without one, from the
global generator seeded by ``minidl.manual_seed`` (as torchvision's transforms follow
``torch.manual_seed``), so a seed fixes the augmentation; the work is vectorised over the
batch (gathers, not loops over pixels).
Transforms that interpolate return float arrays (float32 for integer input).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from minidl import backend


def to_float_chw(images: np.ndarray) -> np.ndarray:
    """Loader layout to transform layout: (N, H, W) or (N, H, W, C) uint8 -> (N, C, H, W)
    float32 in [0, 1], what torchvision's ToTensor gives for each image."""
    images = np.asarray(images)
    if images.ndim == 3:
        images = images[..., None]
    if images.ndim != 4:
        raise ValueError(f"expected (N, H, W) or (N, H, W, C) images, got shape {images.shape}")
    scale = 255.0 if images.dtype == np.uint8 else 1.0
    return np.ascontiguousarray(images.transpose(0, 3, 1, 2), dtype=np.float32) / np.float32(scale)


def _float(x: np.ndarray) -> np.ndarray:
    return x if np.issubdtype(x.dtype, np.floating) else x.astype(np.float32)


def _pair(size: int | Sequence[int]) -> tuple[int, int]:
    return (int(size), int(size)) if np.isscalar(size) else (int(size[0]), int(size[1]))


def _optional_rng(rng: np.random.Generator | int | None) -> np.random.Generator | None:
    """A Generator from a seed or Generator; None stays None (use the global generator)."""
    return None if rng is None else np.random.default_rng(rng)


class Transform:
    """Base class: ``__call__`` takes (N, C, H, W) or (C, H, W); subclasses define `forward`
    on the batch form (N, C, H, W)."""

    rng: np.random.Generator | None = None

    def _random(self) -> np.random.Generator:
        """This transform's generator, else the global one at the time of the draw (so a
        later ``minidl.manual_seed`` still governs it)."""
        return self.rng if self.rng is not None else backend.generator()

    def __call__(self, x: np.ndarray) -> np.ndarray:
        x = np.asarray(x)
        if x.ndim == 3:
            return self.forward(x[None])[0]
        if x.ndim != 4:
            raise ValueError(
                f"{type(self).__name__} expects (N, C, H, W) or (C, H, W), got shape {x.shape}"
            )
        return self.forward(x)

    def forward(self, x: np.ndarray) -> np.ndarray:
        raise NotImplementedError(f"{type(self).__name__} must define forward")


class ToTensor:
    """One image as torchvision's ToTensor makes it, as a NumPy array: (H, W) or (H, W, C)
    uint8 -> (C, H, W) float32 in [0, 1] (floats are only moved, not scaled). The engine
    tensor is made from the batch by the training loop."""

    def __call__(self, image: np.ndarray) -> np.ndarray:
        image = np.asarray(image)
        if image.ndim not in (2, 3):
            raise ValueError(f"ToTensor expects (H, W) or (H, W, C), got shape {image.shape}")
        return to_float_chw(image[None])[0]


class Compose:
    """Apply transforms one after another."""

    def __init__(self, transforms: Sequence[Callable[[np.ndarray], np.ndarray]]) -> None:
        self.transforms = list(transforms)

    def __call__(self, x: np.ndarray) -> np.ndarray:
        for t in self.transforms:
            x = t(x)
        return x


class Normalize(Transform):
    """Per channel: ``y[:, c] = (x[:, c] - mean[c]) / std[c]``."""

    def __init__(self, mean: float | Sequence[float], std: float | Sequence[float]) -> None:
        self.mean = np.atleast_1d(np.asarray(mean, dtype=np.float64))
        self.std = np.atleast_1d(np.asarray(std, dtype=np.float64))
        if (self.std == 0).any():
            raise ValueError(f"std must be non-zero, got {self.std.tolist()}")

    def forward(self, x: np.ndarray) -> np.ndarray:
        x = _float(x)
        channels = x.shape[1]
        for name, v in (("mean", self.mean), ("std", self.std)):
            if len(v) not in (1, channels):
                raise ValueError(f"Normalize {name} has {len(v)} values for {channels} channels")
        mean = self.mean.astype(x.dtype).reshape(-1, 1, 1)
        std = self.std.astype(x.dtype).reshape(-1, 1, 1)
        return (x - mean) / std


class RandomCrop(Transform):
    """Pad each side with `padding` zeros, then cut a random size (h, w) window per image.

    x: (N, C, H, W) -> (N, C, h, w).
    """

    def __init__(
        self,
        size: int | Sequence[int],
        padding: int = 0,
        rng: np.random.Generator | int | None = None,
    ) -> None:
        self.size = _pair(size)
        self.padding = padding
        self.rng = _optional_rng(rng)

    def forward(self, x: np.ndarray) -> np.ndarray:
        p = self.padding
        if p:
            x = np.pad(x, ((0, 0), (0, 0), (p, p), (p, p)))
        n, _, height, width = x.shape
        h, w = self.size
        if h > height or w > width:
            raise ValueError(f"crop {self.size} is larger than the padded image {(height, width)}")
        top = self._random().integers(0, height - h + 1, size=n)
        left = self._random().integers(0, width - w + 1, size=n)
        # windows[n, c, i, j] is the (h, w) window whose corner is (i, j): a view, no copy.
        windows = sliding_window_view(x, (h, w), axis=(2, 3))
        return windows[np.arange(n), :, top, left]


class RandomHorizontalFlip(Transform):
    """Mirror each image left-right with probability p."""

    def __init__(self, p: float = 0.5, rng: np.random.Generator | int | None = None) -> None:
        self.p = p
        self.rng = _optional_rng(rng)

    def forward(self, x: np.ndarray) -> np.ndarray:
        flip = self._random().random(len(x)) < self.p
        return np.where(flip[:, None, None, None], x[..., ::-1], x)


class RandomVerticalFlip(Transform):
    """Mirror each image top-bottom with probability p."""

    def __init__(self, p: float = 0.5, rng: np.random.Generator | int | None = None) -> None:
        self.p = p
        self.rng = _optional_rng(rng)

    def forward(self, x: np.ndarray) -> np.ndarray:
        flip = self._random().random(len(x)) < self.p
        return np.where(flip[:, None, None, None], x[..., ::-1, :], x)


def bilinear_sample(x: np.ndarray, sy: np.ndarray, sx: np.ndarray, fill: float = 0.0) -> np.ndarray:
    """Sample x at real pixel coordinates, `fill` outside the image.

    x: (N, C, H, W); sy, sx: (N, H_out, W_out) row and column of each output pixel in x
    -> (N, C, H_out, W_out). Each output is the 4 nearest pixels weighted by their overlap.
    """
    n, _, height, width = x.shape
    pixels = x.transpose(0, 2, 3, 1)  # (N, H, W, C), so one gather fetches every channel
    y0, x0 = np.floor(sy).astype(np.intp), np.floor(sx).astype(np.intp)
    fy, fx = sy - y0, sx - x0
    batch = np.arange(n)[:, None, None]
    out = np.zeros((*sy.shape, x.shape[1]), dtype=np.result_type(x.dtype, np.float32))
    outside = np.zeros(sy.shape, dtype=out.dtype)
    for dy, dx, weight in (
        (0, 0, (1 - fy) * (1 - fx)),
        (0, 1, (1 - fy) * fx),
        (1, 0, fy * (1 - fx)),
        (1, 1, fy * fx),
    ):
        yy, xx = y0 + dy, x0 + dx
        inside = (yy >= 0) & (yy < height) & (xx >= 0) & (xx < width)
        values = pixels[batch, np.clip(yy, 0, height - 1), np.clip(xx, 0, width - 1)]
        out += (weight * inside)[..., None] * values
        outside += weight * ~inside
    out += fill * outside[..., None]
    return out.transpose(0, 3, 1, 2)


class RandomAffine(Transform):
    """Rotate, translate and scale each image about its centre, by random amounts.

    degrees: d or (lo, hi), the angle (counter-clockwise, as torchvision) is uniform in
    [-d, d] or [lo, hi]; translate: (a, b), shifts uniform in [-a W, a W] and [-b H, b H];
    scale: (lo, hi), zoom factor uniform in it. Each output pixel p is read from the input at
    the inverse map ``R(-angle) (p - c - t) / s + c`` with bilinear sampling; `fill` outside.
    """

    def __init__(
        self,
        degrees: float | Sequence[float],
        translate: Sequence[float] | None = None,
        scale: Sequence[float] | None = None,
        fill: float = 0.0,
        rng: np.random.Generator | int | None = None,
    ) -> None:
        self.degrees = (-abs(degrees), abs(degrees)) if np.isscalar(degrees) else tuple(degrees)
        self.translate = translate
        self.scale = scale
        self.fill = fill
        self.rng = _optional_rng(rng)

    def _params(self, n: int, height: int, width: int) -> tuple[np.ndarray, ...]:
        angle = np.deg2rad(self._random().uniform(*self.degrees, size=n))
        tx, ty = np.zeros(n), np.zeros(n)
        if self.translate is not None:
            a, b = self.translate
            tx = self._random().uniform(-a * width, a * width, size=n)
            ty = self._random().uniform(-b * height, b * height, size=n)
        s = self._random().uniform(*self.scale, size=n) if self.scale is not None else np.ones(n)
        return angle, tx, ty, s

    def forward(self, x: np.ndarray) -> np.ndarray:
        x = _float(x)
        n, _, height, width = x.shape
        angle, tx, ty, s = (v[:, None, None] for v in self._params(n, height, width))
        cy, cx = (height - 1) / 2, (width - 1) / 2
        rows, cols = np.meshgrid(np.arange(height), np.arange(width), indexing="ij")
        u = cols - cx - tx  # output pixel relative to the centre, translation undone
        v = rows - cy - ty
        cos, sin = np.cos(angle), np.sin(angle)
        sx = (cos * u - sin * v) / s + cx
        sy = (sin * u + cos * v) / s + cy
        return bilinear_sample(x, sy, sx, self.fill).astype(x.dtype, copy=False)


class RandomRotation(RandomAffine):
    """Rotate each image by an angle uniform in [-degrees, degrees] (or in (lo, hi))."""

    def __init__(
        self,
        degrees: float | Sequence[float],
        fill: float = 0.0,
        rng: np.random.Generator | int | None = None,
    ) -> None:
        super().__init__(degrees, fill=fill, rng=rng)


_GRAY_WEIGHTS = np.array([0.2989, 0.587, 0.114])  # ITU-R 601-2 luma, as torchvision


def _grayscale(x: np.ndarray) -> np.ndarray:
    """(N, 3, H, W) or (N, 1, H, W) -> (N, 1, H, W)."""
    if x.shape[1] == 1:
        return x
    if x.shape[1] != 3:
        raise ValueError(f"ColorJitter needs 1 or 3 channels, got {x.shape[1]}")
    return np.einsum("nchw,c->nhw", x, _GRAY_WEIGHTS.astype(x.dtype))[:, None]


class ColorJitter(Transform):
    """Random brightness, contrast and saturation, each factor uniform in
    [max(0, 1 - v), 1 + v] per image, applied in that order to floats in [0, 1].

    brightness: x * f; contrast: blend with the image's mean gray level,
    f x + (1 - f) mean; saturation: blend with the gray image. Results clipped to [0, 1].
    """

    def __init__(
        self,
        brightness: float = 0.0,
        contrast: float = 0.0,
        saturation: float = 0.0,
        rng: np.random.Generator | int | None = None,
    ) -> None:
        self.brightness, self.contrast, self.saturation = brightness, contrast, saturation
        self.rng = _optional_rng(rng)

    def _factors(self, amount: float, n: int, dtype: np.dtype) -> np.ndarray:
        return (
            self._random()
            .uniform(max(0.0, 1 - amount), 1 + amount, size=(n, 1, 1, 1))
            .astype(dtype)
        )

    def forward(self, x: np.ndarray) -> np.ndarray:
        x = _float(x)
        n = len(x)
        if self.brightness:
            x = np.clip(x * self._factors(self.brightness, n, x.dtype), 0, 1)
        if self.contrast:
            f = self._factors(self.contrast, n, x.dtype)
            mean = _grayscale(x).mean(axis=(1, 2, 3), keepdims=True)
            x = np.clip(f * x + (1 - f) * mean, 0, 1)
        if self.saturation and x.shape[1] == 3:  # a gray image has no saturation to change
            f = self._factors(self.saturation, n, x.dtype)
            x = np.clip(f * x + (1 - f) * _grayscale(x), 0, 1)
        return x


class GaussianNoise(Transform):
    """Add independent N(0, std^2) noise to every value (no clipping)."""

    def __init__(self, std: float, rng: np.random.Generator | int | None = None) -> None:
        self.std = std
        self.rng = _optional_rng(rng)

    def forward(self, x: np.ndarray) -> np.ndarray:
        x = _float(x)
        return x + self._random().normal(0.0, self.std, size=x.shape).astype(x.dtype)


def _cubic_weights(t: np.ndarray, a: float = -0.75) -> np.ndarray:
    """Keys' cubic convolution weights of the 4 taps at offsets -1, 0, 1, 2 from floor(src);
    a = -0.75 as PyTorch. t: (n,) fractional parts -> (n, 4)."""

    def near(d: np.ndarray) -> np.ndarray:  # |d| <= 1
        return ((a + 2) * d - (a + 3)) * d * d + 1

    def far(d: np.ndarray) -> np.ndarray:  # 1 < |d| < 2
        return ((a * d - 5 * a) * d + 8 * a) * d - 4 * a

    return np.stack([far(t + 1), near(t), near(1 - t), far(2 - t)], axis=1)


def interpolation_matrix(n_in: int, n_out: int, mode: str) -> np.ndarray:
    """(n_out, n_in) weights M so that ``y = M @ x`` resizes a length-n_in signal, with
    PyTorch's F.interpolate(align_corners=False, antialias=False) sampling positions:
    output i reads input ``(i + 0.5) * n_in / n_out - 0.5``, borders clamped."""
    scale = n_in / n_out
    src = (np.arange(n_out) + 0.5) * scale - 0.5
    m = np.zeros((n_out, n_in))
    rows = np.arange(n_out)
    if mode == "bilinear":
        src = np.maximum(src, 0)
        i0 = np.minimum(np.floor(src).astype(np.intp), n_in - 1)
        frac = src - i0
        np.add.at(m, (rows, i0), 1 - frac)
        np.add.at(m, (rows, np.minimum(i0 + 1, n_in - 1)), frac)
    elif mode == "bicubic":
        i0 = np.floor(src).astype(np.intp)
        taps = np.clip(i0[:, None] + np.arange(-1, 3), 0, n_in - 1)
        np.add.at(m, (np.repeat(rows, 4), taps.ravel()), _cubic_weights(src - i0).ravel())
    else:
        raise ValueError(f"mode must be 'bilinear' or 'bicubic' here, got {mode!r}")
    return m


class Resize(Transform):
    """Resize to `size`: (h, w), or an int that the shorter side becomes (aspect kept), as
    torchvision. mode: 'bilinear', 'bicubic' or 'nearest' (PyTorch's F.interpolate sampling,
    no antialiasing). x: (N, C, H, W) -> (N, C, h, w)."""

    def __init__(self, size: int | Sequence[int], mode: str = "bilinear") -> None:
        if mode not in ("bilinear", "bicubic", "nearest"):
            raise ValueError(f"mode must be 'bilinear', 'bicubic' or 'nearest', got {mode!r}")
        self.size = size
        self.mode = mode

    def _out_size(self, height: int, width: int) -> tuple[int, int]:
        if not np.isscalar(self.size):
            return _pair(self.size)
        short, long = sorted((height, width))
        other = int(self.size * long / short)
        return (self.size, other) if height <= width else (other, self.size)

    def forward(self, x: np.ndarray) -> np.ndarray:
        height, width = x.shape[2:]
        h, w = self._out_size(height, width)
        if self.mode == "nearest":  # a gather keeps the dtype exactly
            rows = np.minimum(np.floor(np.arange(h) * height / h).astype(np.intp), height - 1)
            cols = np.minimum(np.floor(np.arange(w) * width / w).astype(np.intp), width - 1)
            return x[:, :, rows[:, None], cols]
        x = _float(x)
        mh = interpolation_matrix(height, h, self.mode).astype(x.dtype)
        mw = interpolation_matrix(width, w, self.mode).astype(x.dtype)
        return mh @ x @ mw.T  # rows then columns: separable, two matrix products
