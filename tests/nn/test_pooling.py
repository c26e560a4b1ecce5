"""Pooling and upsampling: gradients over generated shapes and settings, a nested-loop
reference for max and average pooling, PyTorch's numbers (bins, source indices, tie
rule, indices), and the layers' checks and printed forms."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from invariants import check_op
from strategies import distinct

import minidl as md
from minidl import nn
from minidl.nn import functional as F

MAX = {1: F.max_pool1d, 2: F.max_pool2d, 3: F.max_pool3d}
AVG = {1: F.avg_pool1d, 2: F.avg_pool2d, 3: F.avg_pool3d}
ADAPTIVE = {1: F.adaptive_avg_pool1d, 2: F.adaptive_avg_pool2d, 3: F.adaptive_avg_pool3d}
LINEAR_MODE = {1: "linear", 2: "bilinear", 3: "trilinear"}


@st.composite
def pool_settings(draw, kind: str) -> dict:
    """Settings of a small max ("max") or average ("avg") pooling and an input they fit."""
    dims = draw(st.integers(1, 3))
    per_dim = lambda low, high: tuple(draw(st.integers(low, high)) for _ in range(dims))  # noqa: E731
    kernel = per_dim(1, 3)
    stride = draw(st.one_of(st.none(), st.just(per_dim(1, 3))))
    dilation = per_dim(1, 2) if kind == "max" else (1,) * dims
    spans = [d * (k - 1) + 1 for k, d in zip(kernel, dilation)]
    padding = tuple(draw(st.integers(0, k // 2)) for k in kernel)
    size = tuple(
        draw(st.integers(max(1, w - 2 * p), max(1, w - 2 * p) + (3 if dims < 3 else 1)))
        for w, p in zip(spans, padding)
    )
    ceil_mode = draw(st.booleans())
    # a dilated window can fall wholly in the padding (PyTorch then crashes); without
    # padding every window starts inside the input
    sees = [
        _windows_see_input(n, k, s, p, d, ceil_mode)
        for n, k, s, p, d in zip(size, kernel, stride or kernel, padding, dilation)
    ]
    padding = tuple(p if ok else 0 for p, ok in zip(padding, sees))
    size = tuple(n if ok else max(n, w) for n, w, ok in zip(size, spans, sees))
    settings = dict(
        dims=dims,
        shape=(draw(st.integers(1, 2)), draw(st.integers(1, 2)), *size),
        kernel_size=kernel,
        stride=stride,
        padding=padding,
        ceil_mode=ceil_mode,
        seed=draw(st.integers(0, 2**16)),
    )
    if kind == "max":
        settings["dilation"] = dilation
    else:
        settings["count_include_pad"] = draw(st.booleans())
        if dims > 1 and draw(st.booleans()):
            settings["divisor_override"] = draw(st.integers(1, 5))
    return settings


def _windows_see_input(size: int, k: int, s: int, p: int, d: int, ceil_mode: bool) -> bool:
    """True when every window along an axis holds at least one input element."""
    out = pool_out_size(size, k, s, p, d, ceil_mode)
    return all(any(0 <= o * s - p + j * d < size for j in range(k)) for o in range(out))


def pool_call(kind: str, s: dict):
    """fn(x) for the settings (those that are not arguments of the pooling removed)."""
    kwargs = {k: v for k, v in s.items() if k not in ("dims", "shape", "seed")}
    fn = (MAX if kind == "max" else AVG)[s["dims"]]
    return lambda x: fn(x, **kwargs)


# --------------------------------------------------------------------- gradients
@given(pool_settings("max"))
def test_max_pool_gradients(s):
    x = distinct(np.random.default_rng(s["seed"]), s["shape"])  # one max per window
    check_op(pool_call("max", s), [x], seed=s["seed"])


@given(pool_settings("avg"))
def test_avg_pool_gradients(s):
    x = np.random.default_rng(s["seed"]).standard_normal(s["shape"])
    check_op(pool_call("avg", s), [x], seed=s["seed"])


@st.composite
def resize_settings(draw) -> dict:
    dims = draw(st.integers(1, 3))
    side = 5 if dims < 3 else 3
    size = tuple(draw(st.integers(1, side)) for _ in range(dims))
    out = tuple(draw(st.integers(1, side + 2)) for _ in range(dims))
    return dict(dims=dims, shape=(draw(st.integers(1, 2)), 2, *size), out=out)


@given(resize_settings(), st.integers(0, 2**16))
def test_adaptive_avg_pool_gradients(s, seed):
    x = np.random.default_rng(seed).standard_normal(s["shape"])
    check_op(lambda x: ADAPTIVE[s["dims"]](x, s["out"]), [x], seed=seed)


@given(
    resize_settings(),
    st.sampled_from(["nearest", "nearest-exact", "area", "linear", "linear corners"]),
    st.integers(0, 2**16),
)
def test_interpolate_gradients(s, mode, seed):
    x = np.random.default_rng(seed).standard_normal(s["shape"])
    corners = True if mode == "linear corners" else None
    if mode.startswith("linear"):
        mode = LINEAR_MODE[s["dims"]]
    check_op(lambda x: F.interpolate(x, s["out"], mode=mode, align_corners=corners), [x], seed=seed)


@given(st.integers(1, 3), st.integers(1, 3), st.integers(0, 2**16))
def test_integer_nearest_upsampling_gradients(dims, factor, seed):
    x = np.random.default_rng(seed).standard_normal((2, 2, *(3, 2, 2)[:dims]))
    check_op(lambda x: F.interpolate(x, scale_factor=factor), [x], seed=seed)


# --------------------------------------------------------------------- reference values
def pool_out_size(size, k, s, p, d, ceil_mode):
    """PyTorch's pooling output size (the last window starts inside input or left pad)."""
    span = d * (k - 1) + 1
    if not ceil_mode:
        return (size + 2 * p - span) // s + 1
    out = math.ceil((size + 2 * p - span) / s) + 1
    return out - 1 if (out - 1) * s >= size + p else out


def direct_pool(x, kind, kernel_size, stride, padding, ceil_mode, dilation=None, **avg):
    """Max or average pooling by its definition: a loop over every output value."""
    n, c, *size = x.shape
    dims = len(size)
    dilation = dilation or (1,) * dims
    stride = stride or kernel_size
    out = [pool_out_size(*a, ceil_mode) for a in zip(size, kernel_size, stride, padding, dilation)]
    y = np.zeros((n, c, *out))
    for i, ch, *o in np.ndindex(n, c, *out):
        start = [oi * s - p for oi, s, p in zip(o, stride, padding)]
        taps = [
            tuple(st + j * d for st, j, d in zip(start, js, dilation))
            for js in np.ndindex(*kernel_size)
        ]
        inside = [t for t in taps if all(0 <= ti < s for ti, s in zip(t, size))]
        values = [x[(i, ch, *t)] for t in inside]
        if kind == "max":
            y[(i, ch, *o)] = max(values)
            continue
        if avg.get("divisor_override"):
            divisor = avg["divisor_override"]
        elif avg.get("count_include_pad", True):  # the window, cut at the padding's end
            divisor = math.prod(
                min(st + k, s + p) - st for st, k, s, p in zip(start, kernel_size, size, padding)
            )
        else:
            divisor = len(inside)
        y[(i, ch, *o)] = sum(values) / divisor
    return y


@given(pool_settings("max"))
def test_max_pool_matches_the_definition(s):
    x = np.random.default_rng(s["seed"]).standard_normal(s["shape"])
    expected = direct_pool(
        x, "max", **{k: v for k, v in s.items() if k not in ("dims", "shape", "seed")}
    )
    np.testing.assert_array_equal(pool_call("max", s)(md.tensor(x)).numpy(), expected)


@given(pool_settings("avg"))
def test_avg_pool_matches_the_definition(s):
    x = np.random.default_rng(s["seed"]).standard_normal(s["shape"])
    expected = direct_pool(
        x, "avg", **{k: v for k, v in s.items() if k not in ("dims", "shape", "seed")}
    )
    np.testing.assert_allclose(pool_call("avg", s)(md.tensor(x)).numpy(), expected, atol=1e-12)


def test_max_pool_gradient_goes_to_the_first_max():
    """Ties, as in PyTorch: the first maximum of each window (row-major) takes it all."""
    x = md.tensor([[[1.0, 3.0, 3.0, 2.0, 3.0]]], requires_grad=True)
    F.max_pool1d(x, 3, 1).sum().backward()  # windows [1 3 3] [3 3 2] [3 2 3]
    np.testing.assert_array_equal(x.grad.numpy(), [[[0, 2, 1, 0, 0]]])
    flat = md.zeros(1, 1, 4, 4, requires_grad=True)
    F.max_pool2d(flat, 2).sum().backward()
    np.testing.assert_array_equal(flat.grad.numpy()[0, 0], np.tile([[1, 0], [0, 0]], (2, 2)))


def test_return_indices_are_flat_positions_in_each_plane():
    x = md.tensor(np.arange(24.0).reshape(1, 2, 3, 4)[..., ::-1].copy())
    y, indices = F.max_pool2d(x, 2, stride=1, padding=1, return_indices=True)
    assert indices.dtype == md.int64
    planes = x.numpy().reshape(1, 2, -1)
    gathered = np.take_along_axis(planes, indices.numpy().reshape(1, 2, -1), axis=2)
    np.testing.assert_array_equal(gathered.reshape(y.shape), y.numpy())
    assert indices.numpy()[0, 0, 0, 0] == 0  # the padded corner window's only element


# --------------------------------------------------------------------- against PyTorch
def _compare_with_torch(torch, ours, theirs, x, rtol=1e-10, atol=1e-10, grads=True):
    """Forward values and input gradients for a random upstream gradient."""
    mx, tx = md.tensor(x, requires_grad=True), torch.tensor(x, requires_grad=True)
    my, ty = ours(mx), theirs(tx)
    np.testing.assert_allclose(my.numpy(), ty.detach().numpy(), rtol=rtol, atol=atol)
    if not grads:
        return
    g = np.random.default_rng(1).standard_normal(ty.shape).astype(x.dtype)
    my.backward(g)
    ty.backward(torch.tensor(g))
    np.testing.assert_allclose(mx.grad.numpy(), tx.grad.numpy(), rtol=rtol, atol=atol)


@given(pool_settings("max"))
def test_max_pool_matches_pytorch(s):
    torch = pytest.importorskip("torch")
    kwargs = {k: v for k, v in s.items() if k not in ("dims", "shape", "seed")}
    x = np.round(np.random.default_rng(s["seed"]).standard_normal(s["shape"]), 1)  # ties
    fn = getattr(torch.nn.functional, f"max_pool{s['dims']}d")
    _compare_with_torch(torch, pool_call("max", s), lambda t: fn(t, **kwargs), x)
    _, mine = MAX[s["dims"]](md.tensor(x), return_indices=True, **kwargs)
    _, theirs = fn(torch.tensor(x), return_indices=True, **kwargs)
    np.testing.assert_array_equal(mine.numpy(), theirs.numpy())


@given(pool_settings("avg"))
def test_avg_pool_matches_pytorch(s):
    torch = pytest.importorskip("torch")
    kwargs = {k: v for k, v in s.items() if k not in ("dims", "shape", "seed")}
    if s["dims"] == 3 and any(n < k for n, k in zip(s["shape"][2:], s["kernel_size"])):
        return  # PyTorch's avg_pool3d alone refuses inputs smaller than the kernel, padded or not
    x = np.random.default_rng(s["seed"]).standard_normal(s["shape"])
    fn = getattr(torch.nn.functional, f"avg_pool{s['dims']}d")
    _compare_with_torch(torch, pool_call("avg", s), lambda t: fn(t, **kwargs), x)


@given(resize_settings())
def test_adaptive_avg_pool_bins_match_pytorch(s):
    torch = pytest.importorskip("torch")
    x = np.random.default_rng(0).standard_normal(s["shape"])
    fn = getattr(torch.nn.functional, f"adaptive_avg_pool{s['dims']}d")
    _compare_with_torch(
        torch, lambda t: ADAPTIVE[s["dims"]](t, s["out"]), lambda t: fn(t, s["out"]), x
    )


@given(
    resize_settings(),
    st.sampled_from(["nearest", "nearest-exact", "area", "linear"]),
    st.sampled_from([None, True, False]),
    st.one_of(st.none(), st.floats(0.3, 3.5), st.integers(1, 4)),
    st.sampled_from([np.float32, np.float64]),
)
def test_interpolate_matches_pytorch(s, mode, corners, scale, dtype):
    """Sizes or scale factors; PyTorch's source-index formulas in its float arithmetic."""
    torch = pytest.importorskip("torch")
    if mode == "linear":
        mode = LINEAR_MODE[s["dims"]]
    else:
        corners = None
    size = s["out"] if scale is None else None
    if scale is not None and min(math.floor(d * scale) for d in s["shape"][2:]) < 1:
        scale = 1.0
    kwargs = dict(size=size, scale_factor=scale, mode=mode, align_corners=corners)
    x = np.random.default_rng(0).standard_normal(s["shape"]).astype(dtype)
    tol = 1e-5 if dtype == np.float32 else 1e-10
    call = lambda fn: lambda t: fn(t, **kwargs)  # noqa: E731
    # PyTorch's 1-d and 3-d nearest backward copies when O == S and halves the index when
    # O == 2S (as its 2-d kernel does) though its forward does not: not the forward's adjoint
    out = [math.floor(n * scale) if scale else None for n in s["shape"][2:]]
    adjoint = not (
        mode == "nearest"
        and s["dims"] != 2
        and any(o in (n, 2 * n) for o, n in zip(out, s["shape"][2:]))
    )
    _compare_with_torch(
        torch, call(F.interpolate), call(torch.nn.functional.interpolate), x, tol, tol, adjoint
    )


def test_bilinear_matches_pytorch_on_an_image():
    torch = pytest.importorskip("torch")
    x = np.random.default_rng(0).standard_normal((2, 3, 7, 9)).astype(np.float32)
    for kwargs in [
        dict(scale_factor=2, mode="bilinear"),
        dict(scale_factor=2, mode="bilinear", align_corners=True),
        dict(size=(5, 13), mode="bilinear"),
        dict(scale_factor=(1.7, 0.6), mode="bilinear", recompute_scale_factor=True),
        dict(scale_factor=3, mode="nearest"),
        dict(scale_factor=1 / 3, mode="nearest"),
    ]:
        call = lambda fn, kwargs=kwargs: lambda t: fn(t, **kwargs)  # noqa: E731
        _compare_with_torch(
            torch, call(F.interpolate), call(torch.nn.functional.interpolate), x, 1e-5, 1e-5
        )


@pytest.mark.parametrize(
    "layer",
    [
        lambda nn: nn.MaxPool2d(2),
        lambda nn: nn.MaxPool1d(3, 2, padding=1, dilation=2, ceil_mode=True),
        lambda nn: nn.MaxPool3d((2, 2, 1)),
        lambda nn: nn.AvgPool1d(3),
        lambda nn: nn.AvgPool2d(3, 2, 1, count_include_pad=False),
        lambda nn: nn.AvgPool3d(2),
        lambda nn: nn.AdaptiveAvgPool1d(3),
        lambda nn: nn.AdaptiveAvgPool2d((3, None)),
        lambda nn: nn.AdaptiveAvgPool3d(1),
        lambda nn: nn.Upsample(scale_factor=2),
        lambda nn: nn.Upsample(size=(3, 4), mode="bilinear", align_corners=True),
        lambda nn: nn.Upsample(scale_factor=(2, 3)),
        lambda nn: nn.UpsamplingNearest2d(scale_factor=2),
        lambda nn: nn.UpsamplingBilinear2d(size=5),
    ],
)
def test_printed_form_matches_pytorch(layer):
    torch = pytest.importorskip("torch")
    assert repr(layer(nn)) == repr(layer(torch.nn))


# --------------------------------------------------------------------- layers
def test_layers_compute_their_functional_forms():
    x = md.randn(2, 3, 6, 6)
    np.testing.assert_array_equal(nn.MaxPool2d(2)(x).numpy(), F.max_pool2d(x, 2).numpy())
    np.testing.assert_array_equal(
        nn.AvgPool2d(3, 1, 1)(x).numpy(), F.avg_pool2d(x, 3, 1, 1).numpy()
    )
    np.testing.assert_allclose(
        nn.AdaptiveAvgPool2d(1)(x).numpy(), x.numpy().mean(axis=(2, 3), keepdims=True), atol=1e-6
    )
    up = nn.Upsample(scale_factor=2)(x).numpy()
    np.testing.assert_array_equal(up, x.numpy().repeat(2, axis=2).repeat(2, axis=3))
    y, indices = nn.MaxPool2d(2, return_indices=True)(x)
    assert y.shape == indices.shape == (2, 3, 3, 3)


def test_unbatched_input_gives_unbatched_output():
    x = md.randn(3, 6, 5)
    assert nn.MaxPool2d(2)(x).shape == (3, 3, 2)
    assert nn.AvgPool1d(2)(x).shape == (3, 6, 2)
    assert nn.AdaptiveAvgPool2d((2, 3))(x).shape == (3, 2, 3)
    y, indices = nn.MaxPool1d(2, return_indices=True)(md.randn(2, 4))
    assert y.shape == indices.shape == (2, 2)


@pytest.mark.parametrize(
    "layer, x_shape, message",
    [
        (nn.MaxPool2d(2), (2, 3, 4, 4, 4), r"MaxPool2d: expected input of shape \(N, C, H, W\)"),
        (nn.MaxPool2d(4, padding=1), (1, 1, 1, 4), r"spatial size \(1, 4\) \(padded: \(3, 6\)\)"),
        (nn.MaxPool1d(2, dilation=3), (1, 1, 3), r"kernel \(2,\) \(dilated: \(4,\)\)"),
        (nn.AvgPool3d(2), (1, 2, 2, 1, 2), r"AvgPool3d: input spatial size \(2, 1, 2\)"),
        (nn.AdaptiveAvgPool2d(2), (1, 4), r"AdaptiveAvgPool2d: expected input of shape"),
        (
            nn.AdaptiveAvgPool1d(2),
            (1, 2, 0),
            r"AdaptiveAvgPool1d: input of shape \(1, 2, 0\) has an empty spatial dim",
        ),
        (nn.Upsample(scale_factor=2), (1, 2), r"Upsample: expected input of shape"),
        (nn.Upsample(scale_factor=2, mode="bilinear"), (1, 2, 3), r"'bilinear' needs a 4-d input"),
    ],
)
def test_layers_name_what_they_expected(layer, x_shape, message):
    with pytest.raises(ValueError, match=message):
        layer(md.randn(*x_shape))


def test_settings_are_checked_where_they_enter():
    x = md.randn(1, 1, 6, 6)
    with pytest.raises(ValueError, match=r"padding .* should be at most half"):
        F.max_pool2d(x, 2, padding=2)
    with pytest.raises(ValueError, match="give exactly one of size and scale_factor"):
        F.interpolate(x)
    with pytest.raises(ValueError, match="align_corners can only be set with"):
        F.interpolate(x, scale_factor=2, align_corners=True)
    with pytest.raises(ValueError, match="mode must be one of"):
        F.interpolate(x, scale_factor=2, mode="bicubic-ish")
    with pytest.raises(ValueError, match="output_size must have 2 entries"):
        F.adaptive_avg_pool2d(x, (1, 2, 3))
    with pytest.raises(ValueError, match="divisor_override must be positive"):
        F.avg_pool2d(x, 2, divisor_override=0)
