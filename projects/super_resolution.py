"""Super-resolution with SRCNN on BSDS500: how far does a three-layer CNN trained for
minutes on a CPU get above bicubic interpolation on BSD100, against the published numbers;
and what a perceptual loss does to PSNR, SSIM and the look of the result.

Protocol (the one the published BSD100 numbers use): the luminance Y of each photo
(MATLAB's ``rgb2ycbcr``), cropped to a multiple of the scale, is shrunk and enlarged back
with MATLAB's bicubic ``imresize`` (``imresize`` below, antialiased when shrinking); the
network maps that bicubic image to the original; PSNR and SSIM are taken on Y in [0, 255]
with ``scale`` pixels cropped from every border. Train on patches of the 200 ``train``
photos, score on the 100 ``val`` photos (BSD100). Published (Y, border = scale): bicubic
29.56 / 27.21 / 25.96 dB and SRCNN 9-5-5 (ImageNet, days of training) 31.36 / 28.41 /
26.90 dB at x2 / x3 / x4.

Then the same network trained with pixel MSE plus a perceptual loss: the squared distance
of the feature maps of a VGG-style network. No ImageNet VGG16 exists here, so the feature
network is one minidl trains itself, on a pretext task on BSDS patches (predict by how
many quarter turns a patch was rotated), cached after its first training. A user with
converted VGG16 weights passes that network instead (``FEATURES``, ``ImageNetInput``).
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np

import minidl as md
from minidl import nn, optim
from minidl.data import cache_root, data_root
from minidl.data.archive import read_files
from minidl.data.imagefolder import decode_image
from minidl.metrics.image import psnr
from minidl.nn import functional as F
from projects.runner import RunContext

DESCRIPTION = "SRCNN x2/x3/x4 on BSDS500, scored on BSD100; MSE vs MSE + a perceptual loss"
DATA = ["bsds500/bsds500-images.tar.gz"]

SCALES = (2, 3, 4)
PUBLISHED = {
    "bicubic": {2: 29.56, 3: 27.21, 4: 25.96},
    "srcnn_9-5-5": {2: 31.36, 3: 28.41, 4: 26.90},
}
# The network: filter sizes f1-f2-f3 and widths n1, n2. A full run (--full) trains the
# published 9-5-5 with n1 = 64, n2 = 32 (57k multiply-adds per pixel). The run here, on a
# shared 2-core machine, trains SRCNN's cheaper 9-1-5 with n1 = 32, n2 = 16 (3.5k per pixel,
# 16x less; both are settings the SRCNN paper studies), so that training two networks and
# scoring them on 100 photos at three scales fits its few CPU-minutes.
# The run here also adds VDSR's global skip (SRCNN.residual): from scratch, plain SRCNN
# needs more steps than the budget gives just to catch up with bicubic (measured: 17 dB
# after 10 steps, bicubic 26-28 dB). --full trains the published, plain network.
NETWORK = {"here": ((9, 1, 5), 32, 16, True), "full": ((9, 5, 5), 64, 32, False)}
# One network for all three scales (a scale drawn per batch, as VDSR trains), not one per
# scale as SRCNN: three times the steps per network for the same CPU time.
TRAIN = {"steps": 500, "full_steps": 20000, "batch_size": 16, "patch": 48, "margin": 8,
         "lr": 1e-3, "jitter": 0.2}  # fmt: skip
# The perceptual term's weight: the features' squared distances are 6-7x the pixel MSE
# on bicubic inputs (measured with the cached network), so 0.15 gives the two terms equal
# say at the start.
PERCEPTUAL_WEIGHT = 0.15
# The feature network's pretext training (RotNet-style: 4 classes of quarter turns).
FEATURE_TRAIN = {"steps": 400, "batch_size": 32, "patch": 64, "lr": 3e-3}
FEATURE_VERSION = 1
# None: the VGG-style network trained here (feature_network). A user with converted VGG16
# weights sets a module mapping Y (N, 1, H, W) in [0, 1] to feature maps, e.g.
# ImageNetInput(minidl.models.vgg16(weights=PATH).features[:9]) (conv1_1 ... relu2_2), PATH
# a checkpoint made by minidl's converter from torchvision's VGG16 weights.
FEATURES: nn.Module | None = None
MONITOR = {"photos": 6, "crop": 96, "points": 5}  # PSNR against time: crops of val photos


def available() -> bool:
    """True when the BSDS500 archive is under ``data_root()`` (the tests skip otherwise)."""
    return all((Path(data_root()) / f).is_file() for f in DATA)


# --------------------------------------------------------------------------- 1. data
def load_bsds(split: str, limit: int | None = None) -> list[np.ndarray]:
    """The photos of one BSDS500 split ('train' 200, 'val' 100 = BSD100, 'test' 200) as
    uint8 (H, W, 3), 481 x 321 or 321 x 481, in file-name order (the first ``limit``)."""
    archive = Path(data_root()) / DATA[0]
    files = read_files(archive, f"BSDS500/data/images/{split}", lambda k: k.endswith(".jpg"))
    names = list(files)[:limit]
    return [decode_image(files[name], f"{archive}:{name}") for name in names]


def rgb_to_y(rgb: np.ndarray) -> np.ndarray:
    """Luminance as MATLAB's rgb2ycbcr (ITU-R BT.601, studio range): RGB in [0, 1]
    (..., 3) -> Y in [16/255, 235/255] (...), float64: Y = (16 + 65.481 R + 128.553 G +
    24.966 B) / 255."""
    return (16 + rgb @ np.array([65.481, 128.553, 24.966])) / 255


def _cubic(x: np.ndarray) -> np.ndarray:
    """Keys' cubic convolution kernel with a = -0.5 (MATLAB's 'bicubic')."""
    a = np.abs(x)
    near = (1.5 * a**3 - 2.5 * a**2 + 1) * (a <= 1)
    far = (-0.5 * a**3 + 2.5 * a**2 - 4 * a + 2) * ((a > 1) & (a <= 2))
    return near + far


def resize_matrix(n_in: int, n_out: int, scale: float) -> np.ndarray:
    """The (n_out, n_in) matrix of MATLAB's imresize along one axis: output pixel x (1-based)
    samples the input at u = x / scale + (1 - 1 / scale) / 2 with the cubic kernel, widened
    by 1 / scale when shrinking (antialiasing), weights normalised to sum 1, and input
    indices past an edge mirrored back (symmetric padding)."""
    width, kernel = 4.0, _cubic
    if scale < 1:
        width /= scale

        def kernel(x: np.ndarray) -> np.ndarray:
            return scale * _cubic(scale * x)

    u = np.arange(1, n_out + 1) / scale + 0.5 * (1 - 1 / scale)
    taps = int(np.ceil(width)) + 2
    index = np.floor(u - width / 2)[:, None] + np.arange(taps)  # 1-based, (n_out, taps)
    weights = kernel(u[:, None] - index)
    weights /= weights.sum(axis=1, keepdims=True)
    mirror = np.concatenate([np.arange(n_in), np.arange(n_in - 1, -1, -1)])
    source = mirror[np.mod(index.astype(np.int64) - 1, 2 * n_in)]
    matrix = np.zeros((n_out, n_in))
    np.add.at(matrix, (np.repeat(np.arange(n_out), taps), source.ravel()), weights.ravel())
    return matrix


def imresize(images: np.ndarray, scale: float) -> np.ndarray:
    """MATLAB's ``imresize(I, scale, 'bicubic')`` on float images (..., H, W) (one or a
    batch), in float64 without rounding: (..., ceil(H * scale), ceil(W * scale))."""
    h, w = images.shape[-2:]
    rows = resize_matrix(h, int(np.ceil(h * scale - 1e-9)), scale)
    cols = resize_matrix(w, int(np.ceil(w * scale - 1e-9)), scale)
    return rows @ images @ cols.T


def bicubic(y: np.ndarray, scale: int) -> np.ndarray:
    """The network's input: Y images (..., H, W) with H, W multiples of ``scale``, shrunk by
    ``scale`` and enlarged back by bicubic imresize, same size."""
    return imresize(imresize(y, 1 / scale), scale)


def modcrop(image: np.ndarray, scale: int) -> np.ndarray:
    """The top-left (H - H % scale, W - W % scale) of an image (H, W, ...)."""
    h, w = image.shape[:2]
    return image[: h - h % scale, : w - w % scale]


def colour_jitter(rgb: np.ndarray, strength: float, rng: np.random.Generator) -> np.ndarray:
    """Random brightness, contrast and saturation, each a factor in 1 +- strength, per
    patch: rgb (N, H, W, 3) in [0, 1] -> same, clipped to [0, 1]. Pixel neighbourhoods keep
    their geometry; only their colours and contrast change."""
    n = len(rgb)
    factor = 1 + rng.uniform(-strength, strength, (3, n, 1, 1, 1))
    x = rgb * factor[0]
    mean = x.mean(axis=(1, 2, 3), keepdims=True)
    x = (x - mean) * factor[1] + mean
    gray = x.mean(axis=3, keepdims=True)
    return np.clip(gray + (x - gray) * factor[2], 0, 1)


def patch_batch(
    photos: list[np.ndarray], scale: int, n: int, patch: int, jitter: float,
    rng: np.random.Generator,
) -> tuple[np.ndarray, np.ndarray]:  # fmt: skip
    """n training pairs at one scale: random ``patch`` x ``patch`` crops of random photos,
    colour-jittered and flipped left-right with probability 1/2, then taken to Y; the input
    is the crop's bicubic degradation. (x, y): float32 (n, 1, patch, patch) in [0, 1]."""
    crops = []
    for k in rng.integers(0, len(photos), n):
        photo = photos[k]
        top = rng.integers(0, photo.shape[0] - patch + 1)
        left = rng.integers(0, photo.shape[1] - patch + 1)
        crops.append(photo[top : top + patch, left : left + patch])
    rgb = colour_jitter(np.stack(crops) / 255.0, jitter, rng)
    flip = rng.random(n) < 0.5
    rgb[flip] = rgb[flip, :, ::-1]
    hr = rgb_to_y(rgb)
    return bicubic(hr, scale)[:, None].astype(np.float32), hr[:, None].astype(np.float32)


# --------------------------------------------------------------------------- 2. models
class SRCNN(nn.Module):
    """SRCNN (Dong et al., 2014): patch extraction, non-linear mapping, reconstruction.
    conv f1 (1 -> n1) -> ReLU -> conv f2 (n1 -> n2) -> ReLU -> conv f3 (n2 -> 1), each
    zero-padded to keep the size: x (N, 1, H, W) bicubic Y -> (N, 1, H, W) restored Y.
    ``residual``: return x + body(x) (VDSR's global skip) instead of body(x), so that
    the untrained network already gives the bicubic image and training learns only the
    missing detail; plain SRCNN spends its first thousands of steps learning to copy."""

    def __init__(
        self, filters: tuple[int, int, int] = (9, 5, 5), n1: int = 64, n2: int = 32,
        residual: bool = False,
    ) -> None:  # fmt: skip
        super().__init__()
        f1, f2, f3 = filters
        self.residual = residual
        self.body = nn.Sequential(
            nn.Conv2d(1, n1, f1, padding=f1 // 2), nn.ReLU(),
            nn.Conv2d(n1, n2, f2, padding=f2 // 2), nn.ReLU(),
            nn.Conv2d(n2, 1, f3, padding=f3 // 2),
        )  # fmt: skip

    def forward(self, x: md.Tensor) -> md.Tensor:
        return x + self.body(x) if self.residual else self.body(x)


class FeatureNet(nn.Module):
    """A small VGG-style network whose ``features`` (the last ReLU, as VGG's relu2_2) feed
    the perceptual loss; trained on a pretext task (``feature_network``).

    x: (N, 1, H, W) Y in [0, 1], centred as (x - 0.5) / 0.25
    -> [conv 3x3 (16) -> BatchNorm -> ReLU] x 2 -> max pool 2           (N, 16, H/2, W/2)
    -> [conv 3x3 (32) -> BatchNorm -> ReLU] x 2                         (N, 32, H/2, W/2)
    -> max pool 2 -> global average -> Linear(32, 4)                     (N, 4) logits
    (BatchNorm, which VGG16 lacks, lets it learn in the few hundred steps it gets here.)
    """

    def __init__(self) -> None:
        super().__init__()
        self.body = nn.Sequential(*_conv_bn_relu(1, 16), *_conv_bn_relu(16, 16), nn.MaxPool2d(2),
                                  *_conv_bn_relu(16, 32), *_conv_bn_relu(32, 32))  # fmt: skip
        self.head = nn.Sequential(
            nn.MaxPool2d(2), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(32, 4)
        )

    def features(self, x: md.Tensor) -> md.Tensor:
        """(N, 1, H, W) in [0, 1] -> (N, 32, H/2, W/2)."""
        return self.body((x - 0.5) / 0.25)

    def forward(self, x: md.Tensor) -> md.Tensor:
        """(N, 1, H, W) in [0, 1] -> (N, 4) logits of 0, 1, 2, 3 quarter turns."""
        return self.head(self.features(x))


def _conv_bn_relu(c_in: int, c_out: int) -> list[nn.Module]:
    return [nn.Conv2d(c_in, c_out, 3, padding=1, bias=False), nn.BatchNorm2d(c_out), nn.ReLU()]


class ImageNetInput(nn.Module):
    """For a user's converted ImageNet network (VGG16's ``features[:9]``, say): Y (N, 1, H, W)
    in [0, 1] repeated to three channels and normalised with ImageNet's mean and std, as
    that network was trained to see. (N, 1, H, W) -> whatever ``network`` returns."""

    MEAN, STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)

    def __init__(self, network: nn.Module) -> None:
        super().__init__()
        self.network = network

    def forward(self, y: md.Tensor) -> md.Tensor:
        mean = md.tensor(np.array(self.MEAN, np.float32).reshape(1, 3, 1, 1), dtype=y.dtype)
        std = md.tensor(np.array(self.STD, np.float32).reshape(1, 3, 1, 1), dtype=y.dtype)
        return self.network((md.cat([y, y, y], dim=1) - mean) / std)


def perceptual_loss(sr: md.Tensor, hr: md.Tensor, features: Any) -> md.Tensor:
    """mean((phi(sr) - phi(hr))^2) over the feature maps phi = ``features`` (a callable or a
    module); the target's features carry no gradient. sr, hr: (N, 1, H, W) -> scalar."""
    with md.no_grad():
        target = features(hr)
    return F.mse_loss(features(sr), target)


# --------------------------------------------------------------------------- the feature net
def rotation_batch(
    photos: list[np.ndarray], n: int, patch: int, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """n Y patches turned by k quarter turns, k uniform in 0..3: x float32 (n, 1, p, p), k."""
    x, _ = patch_batch(photos, 1, n, patch, 0.0, rng)  # scale 1: x is the patch itself
    turns = rng.integers(0, 4, n)
    x = np.stack([np.rot90(p, k, axes=(1, 2)) for p, k in zip(x, turns, strict=True)])
    return np.ascontiguousarray(x), turns.astype(np.int64)


def train_feature_network(
    photos: list[np.ndarray], val: list[np.ndarray], config: dict[str, Any], seed: int
) -> tuple[FeatureNet, dict[str, Any]]:
    """FeatureNet trained to tell the rotation of patches of the ``photos`` (Adam, cosine lr),
    scored on 512 patches of the ``val`` photos (chance: 0.25). Returns (net, info)."""
    md.manual_seed(seed)
    rng = np.random.default_rng([seed, 7])
    net = FeatureNet()
    optimizer = optim.Adam(net.parameters(), lr=config["lr"])
    scheduler = optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=config["steps"])
    start = time.perf_counter()
    for _ in range(config["steps"]):
        x, k = rotation_batch(photos, config["batch_size"], config["patch"], rng)
        loss = F.cross_entropy(net(md.tensor(x)), md.tensor(k))
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        scheduler.step()
    seconds = time.perf_counter() - start
    net.eval()
    x, k = rotation_batch(val, 512, config["patch"], np.random.default_rng([seed, 8]))
    with md.no_grad():
        accuracy = float((net(md.tensor(x)).numpy().argmax(1) == k).mean())
    return net, {**config, "train_time_s": round(seconds, 1), "pretext_val_accuracy": accuracy}


def feature_network(
    ctx: RunContext, photos: list[np.ndarray], val: list[np.ndarray]
) -> tuple[nn.Module, dict[str, Any]]:
    """``FEATURES`` if a user set it; else the FeatureNet trained on the pretext task, read
    from ``cache_root()/super_resolution/`` (checksum verified) or trained and cached there
    (with --quick: a few steps, never cached)."""
    if FEATURES is not None:
        return FEATURES.eval(), {"network": type(FEATURES).__name__, "user_supplied": True}
    if ctx.quick:
        return train_feature_network(photos, val, {**FEATURE_TRAIN, "steps": 3}, ctx.seed)
    path = cache_root() / "super_resolution" / f"rotnet-features-v{FEATURE_VERSION}.mdl"
    if path.is_file():
        saved = md.load(path)
        net = FeatureNet()
        net.load_state_dict(saved["state_dict"])
        ctx.log(f"feature network: cached {path}")
        return net.eval(), {**saved["info"], "cached": str(path)}
    net, info = train_feature_network(photos, val, FEATURE_TRAIN, ctx.seed)
    path.parent.mkdir(parents=True, exist_ok=True)
    md.save({"version": FEATURE_VERSION, "state_dict": net.state_dict(), "info": info}, path)
    ctx.log(f"feature network: trained ({info}), cached in {path}")
    return net, info


# --------------------------------------------------------------------------- 3-5. train, score
def super_resolve(model: nn.Module, y: np.ndarray, tile: int = 128) -> np.ndarray:
    """The model on one bicubic Y image (H, W) in [0, 1], tile by tile (bounded memory): each
    tile is run with a halo of ``halo`` real pixels around it (the receptive field's radius),
    so the result equals the whole image in one pass. Returns float64 (H, W), clipped to
    [0, 1]."""
    halo = sum(m.kernel_size[0] // 2 for m in model.modules() if isinstance(m, nn.Conv2d))
    h, w = y.shape
    out = np.empty((h, w))
    model.eval()
    with md.no_grad():
        for top in range(0, h, tile):
            for left in range(0, w, tile):
                t0, l0 = max(top - halo, 0), max(left - halo, 0)
                t1, l1 = min(top + tile + halo, h), min(left + tile + halo, w)
                x = md.tensor(y[None, None, t0:t1, l0:l1].astype(np.float32))
                result = model(x).numpy()[0, 0]
                out[top : top + tile, left : left + tile] = result[
                    top - t0 : top - t0 + tile, left - l0 : left - l0 + tile
                ]
    return np.clip(out, 0, 1)


def score_y(restored: np.ndarray, truth: np.ndarray, border: int) -> tuple[float, float]:
    """(PSNR dB, SSIM) of Y images (H, W) in [0, 1], taken in [0, 255] with ``border``
    pixels cropped from each side. SSIM as Wang et al. (2004) and the SR papers: Gaussian
    window sigma 1.5, population covariances (scikit-image's settings for that)."""
    from skimage.metrics import structural_similarity

    a = restored[border:-border, border:-border] * 255
    b = truth[border:-border, border:-border] * 255
    value = float(psnr(a[None], b[None], data_range=255)[0])
    ssim = structural_similarity(
        a, b, data_range=255, gaussian_weights=True, sigma=1.5, use_sample_covariance=False
    )
    return value, float(ssim)


def test_pairs(photos: list[np.ndarray], scale: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """(bicubic input, ground truth) Y pairs (H, W) in [0, 1] of photos cropped to a
    multiple of ``scale``."""
    pairs = []
    for photo in photos:
        truth = rgb_to_y(modcrop(photo, scale) / 255.0)
        pairs.append((bicubic(truth, scale), truth))
    return pairs


def score(model: nn.Module | None, pairs: list, scale: int) -> dict[str, float]:
    """Mean PSNR and SSIM over the pairs of the model's output (bicubic's with None)."""
    values = [
        score_y(x if model is None else super_resolve(model, x), truth, scale) for x, truth in pairs
    ]
    return {"psnr": float(np.mean([v[0] for v in values])),
            "ssim": float(np.mean([v[1] for v in values]))}  # fmt: skip


def train_srcnn(
    ctx: RunContext,
    name: str,
    model: nn.Module,
    photos: list[np.ndarray],
    monitor: dict[int, list],
    features: nn.Module | None,
    steps: int,
) -> dict[str, Any]:
    """Adam with a cosine lr on pixel MSE (+ PERCEPTUAL_WEIGHT x perceptual_loss when
    ``features`` is given), the loss taken on the centre of each patch (``margin`` pixels
    in from the edges, where the bicubic input and the zero padding are those of a whole
    photo). A batch has one scale, drawn from SCALES. Every steps / MONITOR['points'] steps
    the PSNR on the monitor crops is taken (its time not counted as training time)."""
    config = TRAIN
    rng = np.random.default_rng([ctx.seed, 1])
    optimizer = optim.Adam(model.parameters(), lr=config["lr"])
    scheduler = optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=steps)
    m = config["margin"]
    every = max(steps // MONITOR["points"], 1)
    curve: dict[str, list] = {"step": [], "train_time_s": [], **{f"psnr_x{s}": [] for s in SCALES}}
    trained, losses = 0.0, []
    model.train()
    for step in range(1, steps + 1):
        start = time.perf_counter()
        scale = SCALES[rng.integers(len(SCALES))]
        x, y = patch_batch(
            photos, scale, config["batch_size"], config["patch"], config["jitter"], rng
        )
        sr, hr = model(md.tensor(x))[:, :, m:-m, m:-m], md.tensor(y[:, :, m:-m, m:-m])
        loss = F.mse_loss(sr, hr)
        if features is not None:
            loss = loss + PERCEPTUAL_WEIGHT * perceptual_loss(sr, hr, features)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        scheduler.step()
        losses.append(float(loss.item()))
        trained += time.perf_counter() - start
        if step % every == 0 or step == steps:
            curve["step"].append(step)
            curve["train_time_s"].append(round(trained, 1))
            for s in SCALES:
                curve[f"psnr_x{s}"].append(score(model, monitor[s], s)["psnr"])
            model.train()
            shown = " ".join(f"x{s} {curve[f'psnr_x{s}'][-1]:.2f}" for s in SCALES)
            ctx.log(f"{name} step {step}/{steps} loss {np.mean(losses[-every:]):.5f} "
                    f"monitor PSNR {shown} dB ({trained:.0f} s training)")  # fmt: skip
    return {"steps": steps, "train_time_s": round(trained, 1), "curve": curve,
            "final_loss": float(np.mean(losses[-every:]))}  # fmt: skip


# --------------------------------------------------------------------------- 6. the run
def run(ctx: RunContext) -> None:
    limit = ctx.sized(None, None, 4)
    train = load_bsds("train", limit)
    val = load_bsds("val", limit)
    ctx.data(train=len(train), val=len(val))
    # The monitor: centre crops of the first val photos (PSNR against training time).
    crop = ctx.sized(MONITOR["crop"], MONITOR["crop"], 48)
    monitor_photos = [_centre(p, crop) for p in val[: ctx.sized(MONITOR["photos"], 12, 2)]]
    monitor = {s: test_pairs(monitor_photos, s) for s in SCALES}
    # The test set: all of BSD100 (with --quick, centre crops of its first photos).
    test_photos = val if not ctx.quick else [_centre(p, 48) for p in val]
    tests = {s: test_pairs(test_photos, s) for s in SCALES}
    results: dict[str, Any] = {"bicubic": {}, "published": PUBLISHED, "monitor_bicubic": {}}
    for s in SCALES:
        results["bicubic"][f"x{s}"] = score(None, tests[s], s)
        results["monitor_bicubic"][f"x{s}"] = score(None, monitor[s], s)["psnr"]
    ctx.log("bicubic on BSD100: " + ", ".join(
        f"x{s} {results['bicubic'][f'x{s}']['psnr']:.3f} dB" for s in SCALES))  # fmt: skip

    filters, n1, n2, residual = ctx.sized(NETWORK["here"], NETWORK["full"], NETWORK["here"])
    # Training counts steps, not epochs: --epochs N sets the number of steps.
    steps = ctx.epochs_or(ctx.sized(TRAIN["steps"], TRAIN["full_steps"], 10), 10)
    features, feature_info = feature_network(ctx, train, val)
    results["feature_network"] = feature_info
    models: dict[str, nn.Module] = {}
    for name, feats in (("mse", None), ("mse_perceptual", features)):
        md.manual_seed(ctx.seed)
        models[name] = SRCNN(filters, n1, n2, residual)
        record = train_srcnn(ctx, name, models[name], train, monitor, feats, steps)
        for s in SCALES:
            record[f"x{s}"] = score(models[name], tests[s], s)
        architecture = {"filters": "-".join(map(str, filters)), "n1": n1, "n2": n2,
                        "residual": residual}  # fmt: skip
        results[name] = {**architecture, **record}
        ctx.log(f"{name} on BSD100: " + ", ".join(
            f"x{s} {record[f'x{s}']['psnr']:.3f} dB / SSIM {record[f'x{s}']['ssim']:.4f}"
            for s in SCALES))  # fmt: skip
    ctx.record(
        **results,
        protocol="Y (rgb2ycbcr), MATLAB bicubic imresize, border = scale cropped, [0, 255]",
        perceptual_weight=PERCEPTUAL_WEIGHT,
        test_photos=len(test_photos),
    )
    draw_crops(ctx, models, test_photos, 4)
    draw_psnr_against_time(ctx, results)


def _centre(photo: np.ndarray, size: int) -> np.ndarray:
    """The centre size x size crop of an image (H, W, ...)."""
    top, left = (photo.shape[0] - size) // 2, (photo.shape[1] - size) // 2
    return photo[top : top + size, left : left + size]


# --------------------------------------------------------------------------- figures
def draw_crops(
    ctx: RunContext, models: dict[str, nn.Module], photos: list[np.ndarray], scale: int,
    count: int = 3, size: int = 72,
) -> None:  # fmt: skip
    """For ``count`` test photos at ``scale``: the most detailed ``size`` crop (the largest
    Y variance on a coarse grid) of HR, bicubic and each model's output, side by side, each
    titled with its PSNR on that crop."""
    from minidl.viz.plots import pyplot, save_figure

    plt = pyplot()
    size = min(size, *(min(p.shape[:2]) for p in photos[:count]))
    columns = ["HR (original)", f"bicubic x{scale}", *(f"SRCNN {n}" for n in models)]
    fig, axes = plt.subplots(
        count, len(columns), figsize=(2.3 * len(columns), 2.5 * count), layout="constrained",
        squeeze=False,
    )  # fmt: skip
    for row, photo in enumerate(photos[:count]):
        ((x, truth),) = test_pairs([photo], scale)
        outputs = [truth, x, *(super_resolve(m, x) for m in models.values())]
        top, left = _busiest(truth, size)
        for col, (image, label) in enumerate(zip(outputs, columns, strict=True)):
            patch = image[top : top + size, left : left + size]
            ax = axes[row, col]
            ax.imshow(patch, cmap="gray", vmin=16 / 255, vmax=235 / 255)
            ax.set_xticks([])
            ax.set_yticks([])
            truth_patch = truth[top : top + size, left : left + size]
            shown = "" if col == 0 else f"\n{score_y(patch, truth_patch, 1)[0]:.2f} dB"
            ax.set_title(f"{label}{shown}", fontsize=8)
    fig.suptitle(f"BSD100 crops at x{scale} (Y channel; PSNR on the crop)")
    save_figure(fig, ctx.figure(f"crops_x{scale}"))


def _busiest(y: np.ndarray, size: int) -> tuple[int, int]:
    """Top-left corner of the size x size window (on a grid of size / 2) with the largest
    variance: where the detail, and so the difference between methods, is."""
    best, corner = -1.0, (0, 0)
    for top in range(0, y.shape[0] - size + 1, size // 2):
        for left in range(0, y.shape[1] - size + 1, size // 2):
            v = float(y[top : top + size, left : left + size].var())
            if v > best:
                best, corner = v, (top, left)
    return corner


def draw_psnr_against_time(ctx: RunContext, results: dict[str, Any]) -> None:
    """Monitor PSNR of both models against training time, one panel per scale, with the
    bicubic PSNR of the same crops as a dashed line."""
    from minidl.viz.plots import pyplot, save_figure

    plt = pyplot()
    fig, axes = plt.subplots(1, len(SCALES), figsize=(4.2 * len(SCALES), 3.6), layout="constrained")
    for ax, s in zip(axes, SCALES, strict=True):
        for k, name in enumerate(("mse", "mse_perceptual")):
            curve = results[name]["curve"]
            ax.plot(curve["train_time_s"], curve[f"psnr_x{s}"], ".-", color=f"C{k}", label=name)
        ax.axhline(results["monitor_bicubic"][f"x{s}"], color="gray", ls="--", label="bicubic")
        ax.set(xlabel="training time (s)", ylabel="PSNR on Y (dB)", title=f"x{s}")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.suptitle("PSNR on centre crops of BSD100 photos during training")
    save_figure(fig, ctx.figure("psnr_against_time"))
