"""Convolution and transposed convolution: gradients over generated shapes and settings,
a nested-loop reference, the adjoint identity between the two, PyTorch's numbers and
layouts, and the layers' checks and printed forms."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from invariants import check_op

import minidl as md
from minidl import nn
from minidl.nn import functional as F
from minidl.ops.conv import ConvNd

CONV = {1: F.conv1d, 2: F.conv2d, 3: F.conv3d}
CONV_T = {1: F.conv_transpose1d, 2: F.conv_transpose2d, 3: F.conv_transpose3d}
LAYER = {1: nn.Conv1d, 2: nn.Conv2d, 3: nn.Conv3d}
LAYER_T = {1: nn.ConvTranspose1d, 2: nn.ConvTranspose2d, 3: nn.ConvTranspose3d}


@st.composite
def conv_settings(draw, transposed: bool = False) -> dict:
    """A small convolution: dims, channels, groups, kernel, stride, padding (also 'same'
    and 'valid'), dilation, output_padding and an input size the kernel fits in."""
    dims = draw(st.integers(1, 3))
    per_dim = lambda low, high: tuple(draw(st.integers(low, high)) for _ in range(dims))  # noqa: E731
    groups = draw(st.sampled_from([1, 2]))
    kernel = per_dim(1, 3 if dims < 3 else 2)
    stride, dilation = per_dim(1, 3), per_dim(1, 2)
    spans = [d * (k - 1) + 1 for k, d in zip(kernel, dilation)]
    if transposed:
        padding = tuple(draw(st.integers(0, (w - 1) // 2)) for w in spans)
        choices = [st.integers(0, max(s, d) - 1) for s, d in zip(stride, dilation)]
        output_padding = tuple(draw(c) for c in choices)
        size = per_dim(1, 3)
    else:
        options = [st.just("valid"), st.tuples(*[st.integers(0, 2)] * dims)]
        if all(s == 1 for s in stride):
            options.append(st.just("same"))
        padding = draw(st.one_of(*options))
        pads = (0,) * dims if isinstance(padding, str) else padding
        low = [max(1, w - 2 * p) for w, p in zip(spans, pads)]
        size = tuple(draw(st.integers(lo, lo + (4 if dims == 1 else 2))) for lo in low)
        output_padding = None
    return dict(
        dims=dims,
        n=draw(st.integers(1, 2)),
        c_in=groups * draw(st.integers(1, 2)),
        c_out=groups * draw(st.integers(1, 2)),
        groups=groups,
        kernel=kernel,
        stride=stride,
        padding=padding,
        dilation=dilation,
        output_padding=output_padding,
        size=size,
        bias=draw(st.booleans()),
        seed=draw(st.integers(0, 2**16)),
    )


def conv_arrays(s: dict, transposed: bool = False) -> list[np.ndarray]:
    """x, weight (and bias) for the settings, in PyTorch's layouts."""
    rng = np.random.default_rng(s["seed"])
    g = s["groups"]
    channels = (s["c_in"], s["c_out"] // g) if transposed else (s["c_out"], s["c_in"] // g)
    arrays = [
        rng.standard_normal((s["n"], s["c_in"], *s["size"])),
        rng.standard_normal((*channels, *s["kernel"])),
    ]
    if s["bias"]:
        arrays.append(rng.standard_normal(s["c_out"]))
    return arrays


def conv_fn(s: dict):
    settings = dict(stride=s["stride"], padding=s["padding"], dilation=s["dilation"])
    return lambda x, w, b=None: CONV[s["dims"]](x, w, b, groups=s["groups"], **settings)


def conv_t_fn(s: dict):
    args = (s["stride"], s["padding"], s["output_padding"], s["groups"], s["dilation"])
    return lambda x, w, b=None: CONV_T[s["dims"]](x, w, b, *args)


# --------------------------------------------------------------------- gradients
@given(conv_settings())
def test_conv_gradients(s):
    check_op(conv_fn(s), conv_arrays(s), seed=s["seed"])


@given(conv_settings(transposed=True))
def test_conv_transpose_gradients(s):
    check_op(conv_t_fn(s), conv_arrays(s, transposed=True), seed=s["seed"])


# --------------------------------------------------------------------- reference values
def direct_conv(x, w, b, stride, pads, dilation, groups):
    """Convolution by its definition: a loop over every output value and kernel offset."""
    n, _, *size = x.shape
    c_out, c_group, *kernel = w.shape
    x_pad = np.pad(x, [(0, 0), (0, 0), *pads])
    out = [
        (s + lo + hi - d * (k - 1) - 1) // st + 1
        for s, (lo, hi), d, k, st in zip(size, pads, dilation, kernel, stride)
    ]
    y = np.zeros((n, c_out, *out))
    for i, o, *p in np.ndindex(n, c_out, *out):
        group = o // (c_out // groups)
        for c in range(c_group):
            for j in np.ndindex(*kernel):
                at = tuple(pi * st + ji * d for pi, ji, st, d in zip(p, j, stride, dilation))
                y[(i, o, *p)] += w[(o, c, *j)] * x_pad[(i, group * c_group + c, *at)]
    return y if b is None else y + b.reshape(-1, *[1] * len(size))


@pytest.mark.parametrize(
    "dims, padding, stride, dilation, groups",
    [
        (1, 2, 3, 1, 1),
        (1, "same", 1, 2, 2),
        (2, (1, 0), (2, 1), (1, 2), 2),
        (2, "same", 1, 1, 1),
        (3, (0, 1, 1), (1, 2, 1), 1, 1),
    ],
)
def test_conv_matches_the_definition(dims, padding, stride, dilation, groups):
    rng = np.random.default_rng(dims)
    kernel = (2, 3, 2)[:dims]  # an even kernel makes 'same' pad asymmetrically
    x = rng.standard_normal((2, 2 * groups, *(5, 6, 3)[:dims]))
    w = rng.standard_normal((2 * groups, 2, *kernel))
    b = rng.standard_normal(2 * groups)
    y = CONV[dims](md.tensor(x), md.tensor(w), md.tensor(b), stride, padding, dilation, groups)
    stride_t, dilation_t = ((v,) * dims if isinstance(v, int) else v for v in (stride, dilation))
    if padding == "same":
        totals = [d * (k - 1) for k, d in zip(kernel, dilation_t)]
        pads = [(t // 2, t - t // 2) for t in totals]
    else:
        pads = [(p, p) for p in ((padding,) * dims if isinstance(padding, int) else padding)]
    expected = direct_conv(x, w, b, stride_t, pads, dilation_t, groups)
    np.testing.assert_allclose(y.numpy(), expected, rtol=1e-10, atol=1e-10)


@given(conv_settings())
def test_conv_transpose_is_the_adjoint_of_conv(s):
    """<conv(x), y> = <x, conv_transpose(y)>, with the weight and settings shared."""
    x, w = conv_arrays({**s, "bias": False})
    y_conv = conv_fn(s)(md.tensor(x), md.tensor(w))
    rng = np.random.default_rng(s["seed"] + 1)
    y = rng.standard_normal(y_conv.shape)
    dims = s["dims"]
    stride = s["stride"]
    if s["padding"] == "same":
        pad = [d * (k - 1) // 2 for k, d in zip(s["kernel"], s["dilation"])]
        if any(d * (k - 1) % 2 for k, d in zip(s["kernel"], s["dilation"])):
            return  # asymmetric 'same' padding has no conv_transpose counterpart
    else:
        pad = [0] * dims if s["padding"] == "valid" else list(s["padding"])
    # output_padding recovers the input rows that no window of the strided conv reached
    smallest = [
        (o - 1) * st - 2 * p + d * (k - 1) + 1
        for o, st, p, d, k in zip(y_conv.shape[2:], stride, pad, s["dilation"], s["kernel"])
    ]
    extra = tuple(size - m for size, m in zip(s["size"], smallest))
    x_back = CONV_T[dims](
        md.tensor(y), md.tensor(w), None, stride, tuple(pad), extra, s["groups"], s["dilation"]
    )
    assert x_back.shape == x.shape
    np.testing.assert_allclose(
        float((y_conv.numpy() * y).sum()), float((x * x_back.numpy()).sum()), rtol=1e-9, atol=1e-9
    )


def test_conv_saves_only_what_backward_needs():
    x = md.randn(1, 2, 5, 5)
    w = md.randn(3, 2, 3, 3, requires_grad=True)
    op = ConvNd(padding=1)
    y = op(x, w)
    kept, weight = op.saved
    # the input itself, not its 9 times larger columns (backward rebuilds them for dW)
    assert kept is x.data and weight is None  # x needs no gradient
    y.sum().backward()
    assert op._saved is None
    frozen = ConvNd(padding=1)
    frozen(md.randn(1, 2, 5, 5, requires_grad=True), md.randn(3, 2, 3, 3))
    assert frozen.saved[0] is None  # no input kept when the weight is frozen


# --------------------------------------------------------------------- against PyTorch
def _torch_pair(torch, dims: int, transposed: bool, **settings):
    """A PyTorch layer and a minidl layer loaded with its state dict."""
    torch_layer = (torch.nn.ConvTranspose1d, torch.nn.ConvTranspose2d, torch.nn.ConvTranspose3d)
    if not transposed:
        torch_layer = (torch.nn.Conv1d, torch.nn.Conv2d, torch.nn.Conv3d)
    theirs = torch_layer[dims - 1](**settings).double()
    ours = (LAYER_T if transposed else LAYER)[dims](**settings).double()
    ours.load_state_dict({k: v.detach().numpy() for k, v in theirs.state_dict().items()})
    return theirs, ours


TORCH_CASES = [
    (1, False, dict(in_channels=4, out_channels=6, kernel_size=4, stride=2, padding=3, groups=2)),
    (1, False, dict(in_channels=2, out_channels=3, kernel_size=4, padding="same", dilation=2)),
    (2, False, dict(in_channels=3, out_channels=4, kernel_size=(3, 2), stride=(1, 2), padding=1)),
    (
        2,
        False,
        dict(in_channels=2, out_channels=2, kernel_size=3, padding=2, padding_mode="reflect"),
    ),
    (
        2,
        False,
        dict(in_channels=2, out_channels=2, kernel_size=3, padding=1, padding_mode="circular"),
    ),
    (
        2,
        False,
        dict(
            in_channels=2,
            out_channels=4,
            kernel_size=2,
            padding=(1, 2),
            padding_mode="replicate",
            bias=False,
        ),
    ),
    (
        3,
        False,
        dict(in_channels=2, out_channels=2, kernel_size=2, stride=(2, 1, 1), dilation=(1, 2, 1)),
    ),
    (
        1,
        True,
        dict(in_channels=4, out_channels=2, kernel_size=3, stride=3, output_padding=2, groups=2),
    ),
    (
        2,
        True,
        dict(
            in_channels=3, out_channels=2, kernel_size=(3, 2), stride=2, padding=1, output_padding=1
        ),
    ),
    (2, True, dict(in_channels=2, out_channels=4, kernel_size=3, dilation=2, groups=2, bias=False)),
    (
        3,
        True,
        dict(in_channels=2, out_channels=3, kernel_size=2, stride=(1, 2, 2), padding=(1, 0, 0)),
    ),
]


@pytest.mark.parametrize("dims, transposed, settings", TORCH_CASES)
def test_layers_match_pytorch(dims, transposed, settings):
    torch = pytest.importorskip("torch")
    theirs, ours = _torch_pair(torch, dims, transposed, **settings)
    rng = np.random.default_rng(0)
    x = rng.standard_normal((2, settings["in_channels"], *(6, 5, 4)[:dims]))
    tx = torch.tensor(x, requires_grad=True)
    mx = md.tensor(x, requires_grad=True)
    ty, my = theirs(tx), ours(mx)
    np.testing.assert_allclose(my.numpy(), ty.detach().numpy(), rtol=1e-10, atol=1e-10)
    g = rng.standard_normal(ty.shape)
    ty.backward(torch.tensor(g))
    my.backward(g)
    np.testing.assert_allclose(mx.grad.numpy(), tx.grad.numpy(), rtol=1e-10, atol=1e-10)
    for name, p in theirs.named_parameters():
        mine = dict(ours.named_parameters())[name]
        np.testing.assert_allclose(mine.grad.numpy(), p.grad.numpy(), rtol=1e-10, atol=1e-10)


@given(conv_settings())
def test_float32_conv_matches_pytorch(s):
    torch = pytest.importorskip("torch")
    arrays = [a.astype(np.float32) for a in conv_arrays(s)]
    mine = conv_fn(s)(*[md.tensor(a) for a in arrays])
    torch_conv = (
        torch.nn.functional.conv1d,
        torch.nn.functional.conv2d,
        torch.nn.functional.conv3d,
    )
    theirs = torch_conv[s["dims"] - 1](
        *[torch.tensor(a) for a in arrays[:2]],
        torch.tensor(arrays[2]) if s["bias"] else None,
        s["stride"],
        s["padding"],
        s["dilation"],
        s["groups"],
    )
    assert mine.dtype == md.float32
    np.testing.assert_allclose(mine.numpy(), theirs.numpy(), rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize(
    "layer",
    [
        lambda nn: nn.Conv2d(3, 8, 3),
        lambda nn: nn.Conv1d(
            4, 6, 3, stride=2, padding=1, groups=2, bias=False, padding_mode="reflect"
        ),
        lambda nn: nn.Conv2d(3, 8, 4, padding="same", dilation=2),
        lambda nn: nn.Conv3d(2, 4, (1, 2, 3), stride=(1, 1, 2), padding="valid"),
        lambda nn: nn.ConvTranspose2d(4, 2, 3, stride=2, output_padding=1),
        lambda nn: nn.ConvTranspose1d(4, 2, 3, groups=2, dilation=3, bias=False),
    ],
)
def test_printed_form_and_state_dict_layout_match_pytorch(layer):
    torch = pytest.importorskip("torch")
    ours, theirs = layer(nn), layer(torch.nn)
    assert repr(ours) == repr(theirs)
    assert {k: v.shape for k, v in ours.state_dict().items()} == {
        k: tuple(v.shape) for k, v in theirs.state_dict().items()
    }


# --------------------------------------------------------------------- layers
@pytest.mark.parametrize("dims", [1, 2, 3])
def test_default_init_is_pytorchs(dims):
    """kaiming_uniform_(a=sqrt(5)) and the bias rule both give U(-1/sqrt(fan_in), +)."""
    md.manual_seed(0)
    for layer, fan_in in [
        (LAYER[dims](8, 16, 3, groups=2), 4 * 3**dims),
        (LAYER_T[dims](8, 16, 3, groups=2), 8 * 3**dims),
    ]:
        bound = 1 / math.sqrt(fan_in)
        for p in (layer.weight, layer.bias):
            assert p.dtype == md.float32
            assert np.abs(p.numpy()).max() <= bound
        weight = layer.weight.numpy()
        assert np.abs(weight).max() > 0.95 * bound  # spread over the whole interval
        assert abs(float(weight.std()) - bound / math.sqrt(3)) < 0.1 * bound


def test_unbatched_input_gives_unbatched_output():
    layer = nn.Conv2d(2, 3, 3, padding=1)
    x = md.randn(2, 5, 4)
    y = layer(x)
    assert y.shape == (3, 5, 4)
    np.testing.assert_allclose(y.numpy(), layer(x.unsqueeze(0)).numpy()[0], rtol=1e-6)
    assert nn.ConvTranspose1d(2, 1, 2, stride=2)(md.randn(2, 3)).shape == (1, 6)


def test_conv_transpose_output_size_picks_output_padding():
    layer = nn.ConvTranspose2d(2, 1, 3, stride=2, padding=1)
    x = md.randn(1, 2, 4, 4)
    assert layer(x).shape == (1, 1, 7, 7)
    assert layer(x, output_size=(8, 7)).shape == (1, 1, 8, 7)
    assert layer(x, output_size=(1, 1, 8, 8)).shape == (1, 1, 8, 8)
    with pytest.raises(ValueError, match=r"spatial sizes from \(7, 7\) to \(8, 8\)"):
        layer(x, output_size=(9, 7))


@pytest.mark.parametrize(
    "make, x_shape, message",
    [
        (lambda: nn.Conv2d(3, 4, 3), (2, 3, 5), r"Conv2d: expected input of shape \(N, 3, H, W\)"),
        (lambda: nn.Conv2d(3, 4, 3), (2, 4, 5, 5), r"\(N, 3, H, W\) or \(3, H, W\), got \(2, 4"),
        (
            lambda: nn.Conv1d(3, 4, 3),
            (2, 3, 5, 5, 1),
            r"Conv1d: expected input of shape \(N, 3, L\)",
        ),
        (
            lambda: nn.Conv3d(1, 1, 3, padding=(0, 1, 0)),
            (1, 1, 2, 1, 4),
            r"Conv3d: input spatial size \(2, 1, 4\) \(padded: \(2, 3, 4\)\) is smaller than "
            r"the kernel \(3, 3, 3\)",
        ),
        (lambda: nn.Conv1d(1, 1, 2, dilation=3), (1, 1, 3), r"\(dilated: \(4,\)\)"),
        (
            lambda: nn.ConvTranspose2d(2, 4, 3),
            (1, 4, 3, 3),
            r"ConvTranspose2d: expected input of shape \(N, 2",
        ),
    ],
)
def test_layers_name_what_they_expected(make, x_shape, message):
    with pytest.raises(ValueError, match=message):
        make()(md.randn(*x_shape))


@pytest.mark.parametrize(
    "layer, call, x_shape",
    [
        (nn.Conv2d(3, 4, 3), F.conv2d, (2, 4, 5, 5)),  # channels
        (nn.Conv2d(3, 4, 3), F.conv2d, (4, 5, 5)),  # channels, unbatched
        (nn.Conv1d(3, 4, 3), F.conv1d, (2, 3, 5, 5)),  # rank
        (nn.ConvTranspose2d(2, 4, 3), F.conv_transpose2d, (1, 4, 3, 3)),
        (nn.ConvTranspose1d(2, 4, 3), F.conv_transpose1d, (1, 2, 0)),  # empty spatial dim
    ],
)
def test_a_conv_input_is_checked_once_with_one_text(layer, call, x_shape):
    """The layer and F.conv*d check an input in one place (ops.conv.check_operands, where F
    is entered): the same message, naming the layer or the function, the shape the user
    passed and the weight."""
    x = md.randn(*x_shape)
    with pytest.raises(ValueError) as by_layer:
        layer(x)
    with pytest.raises(ValueError) as by_function:
        call(x, layer.weight, layer.bias)
    name, function = type(layer).__name__, call.__name__
    assert str(by_layer.value).startswith(f"{name}: ")
    assert str(by_function.value) == str(by_layer.value).replace(name, function, 1)
    assert str(x_shape) in str(by_layer.value)


def test_settings_are_checked_where_they_enter():
    with pytest.raises(ValueError, match="groups=3 must divide in_channels=4"):
        nn.Conv2d(4, 6, 3, groups=3)
    with pytest.raises(ValueError, match="padding='same' is not supported for strided"):
        nn.Conv2d(1, 1, 3, stride=2, padding="same")
    with pytest.raises(ValueError, match="padding_mode must be one of"):
        nn.Conv2d(1, 1, 3, padding_mode="mirror")
    with pytest.raises(ValueError, match="kernel_size must be an int or 2 ints"):
        nn.Conv2d(1, 1, (3, 3, 3))
    with pytest.raises(ValueError, match=r"output_padding .* must be smaller than the stride"):
        F.conv_transpose2d(md.randn(1, 1, 3, 3), md.randn(1, 1, 3, 3), stride=2, output_padding=2)
    with pytest.raises(ValueError, match=r"conv2d: expected input of shape \(N, 3, H, W\)"):
        F.conv2d(md.randn(1, 2, 5, 5), md.randn(4, 3, 3, 3))
    with pytest.raises(ValueError, match=r"conv2d: expected a 4-d weight"):
        F.conv2d(md.randn(1, 2, 5, 5), md.randn(4, 2, 3))
    with pytest.raises(ValueError, match=r"bias must have shape \(4,\)"):
        F.conv2d(md.randn(1, 2, 5, 5), md.randn(4, 2, 3, 3), md.randn(3))
    with pytest.raises(TypeError, match="dtypes differ"):
        F.conv1d(md.randn(1, 2, 5), md.randn(4, 2, 3).double())


@pytest.mark.parametrize(
    "layout",
    [
        lambda a: a,  # C order
        lambda a: np.ascontiguousarray(a.transpose(1, 2, 3, 0)).transpose(3, 0, 1, 2),  # batch last
        np.asfortranarray,
        lambda a: np.pad(a, ((0, 0), (0, 0), (1, 0), (0, 2)))[:, :, 1:, :-2],  # a cropped view
    ],
)
def test_memory_layout_does_not_change_results(layout):
    """The ops pick fast paths by memory order; values and gradients must not notice."""
    rng = np.random.default_rng(0)
    x = rng.standard_normal((3, 4, 6, 5))
    w = rng.standard_normal((2, 4, 3, 3))

    def run(values):
        xt = md.tensor(values, requires_grad=True)
        pooled = F.max_pool2d(F.conv2d(xt, md.tensor(w), padding=1), 2, 1)
        y = pooled + F.avg_pool2d(xt, 2, 1)[:, :2]
        g = rng.standard_normal(y.shape)
        y.backward(g)
        return y.numpy(), xt.grad.numpy()

    rng_state = rng.bit_generator.state
    expected = run(x)
    rng.bit_generator.state = rng_state
    laid_out = layout(x.copy())
    assert np.array_equal(laid_out, x)
    for got, want in zip(run(laid_out), expected):
        np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-12)
