"""Module and the containers, with the layers built on them: parameter order, state_dict
keys and shapes, loading a PyTorch state dict (same outputs and gradients), load errors
listing the keys, train/eval, ``to()``, reprs, and the activation and loss layers, all
against PyTorch where it is installed. Every test runs on the CPU and on the simulated
CUDA device."""

from __future__ import annotations

import contextlib
from collections import OrderedDict

import numpy as np
import pytest
from devices import device  # noqa: F401  (each test on CPU and simulated CUDA)

import minidl as md
from minidl import backend, nn


def build(lib):
    """The same architecture in minidl (lib = minidl.nn) or PyTorch (lib = torch.nn)."""

    class Net(lib.Module):
        def __init__(self):
            super().__init__()
            self.embed = lib.Embedding(20, 6, padding_idx=0)
            self.blocks = lib.ModuleList(
                [
                    lib.Sequential(lib.Linear(6, 8), lib.BatchNorm1d(8), lib.ReLU()),
                    lib.Sequential(lib.Linear(8, 8), lib.LayerNorm(8), lib.GELU()),
                ]
            )
            self.heads = lib.ModuleDict({"cls": lib.Linear(8, 3), "reg": lib.Linear(8, 1)})
            self.drop = lib.Dropout(0.2)

        def forward(self, idx):
            h = self.embed(idx).mean(1)
            for block in self.blocks:
                h = block(h)
            h = self.drop(h)
            return self.heads["cls"](h), self.heads["reg"](h)

    return Net()


def torch_state_as_numpy(module):
    return OrderedDict((k, v.detach().numpy()) for k, v in module.state_dict().items())


# --------------------------------------------------------------------- against PyTorch
def test_parameter_order_and_state_dict_keys_match_torch():
    torch = pytest.importorskip("torch")
    ours, ref = build(nn), build(torch.nn)
    ours_params = [(n, p.shape) for n, p in ours.named_parameters()]
    assert ours_params == [(n, tuple(p.shape)) for n, p in ref.named_parameters()]
    ours_state = [(k, v.shape) for k, v in ours.state_dict().items()]
    assert ours_state == [(k, tuple(v.shape)) for k, v in ref.state_dict().items()]
    assert "blocks.0.1.num_batches_tracked" in ours.state_dict()
    assert [n for n, _ in ours.named_buffers()] == [n for n, _ in ref.named_buffers()]
    assert [n for n, _ in ours.named_modules()] == [n for n, _ in ref.named_modules()]


def test_loading_a_torch_state_dict_gives_torch_outputs_and_gradients():
    torch = pytest.importorskip("torch")
    torch.manual_seed(0)
    ref = build(torch.nn)
    ours = build(nn)
    missing, unexpected = ours.load_state_dict(torch_state_as_numpy(ref))
    assert missing == [] and unexpected == []
    idx = np.random.default_rng(0).integers(0, 20, (5, 7))
    for training in (True, False):
        ref.train(training), ours.train(training)
        ref.drop.p = ours.drop.p = 0.0  # dropout masks come from different generators
        ref.zero_grad(), ours.zero_grad()
        (a, b), (ra, rb) = ours(md.tensor(idx)), ref(torch.tensor(idx))
        np.testing.assert_allclose(a.numpy(), ra.detach().numpy(), atol=1e-5)
        np.testing.assert_allclose(b.numpy(), rb.detach().numpy(), atol=1e-5)
        (a.sum() + (b * b).sum()).backward()
        (ra.sum() + (rb * rb).sum()).backward()
        ref_grads = dict(ref.named_parameters())
        for name, p in ours.named_parameters():
            np.testing.assert_allclose(
                p.grad.numpy(), ref_grads[name].grad.numpy(), atol=1e-5, err_msg=name
            )
        for key, value in torch_state_as_numpy(ref).items():  # running stats updated alike
            np.testing.assert_allclose(ours.state_dict()[key].numpy(), value, atol=1e-6)


def test_repr_matches_torch():
    torch = pytest.importorskip("torch")
    assert repr(build(nn)) == repr(build(torch.nn))
    layers = ["ReLU", "Sigmoid", "Tanh", "Identity", "Flatten"]
    for name in layers:
        assert repr(getattr(nn, name)()) == repr(getattr(torch.nn, name)())
    pairs = [
        (nn.LeakyReLU(0.2, inplace=True), torch.nn.LeakyReLU(0.2, inplace=True)),
        (nn.ELU(0.5), torch.nn.ELU(0.5)),
        (nn.GELU("tanh"), torch.nn.GELU("tanh")),
        (nn.Softplus(2.0, 10.0), torch.nn.Softplus(2.0, 10.0)),
        (nn.Softmax(dim=1), torch.nn.Softmax(dim=1)),
        (nn.LogSoftmax(), torch.nn.LogSoftmax()),
        (
            nn.ModuleList([nn.ReLU(), nn.ReLU(), nn.Tanh()]),
            torch.nn.ModuleList([torch.nn.ReLU(), torch.nn.ReLU(), torch.nn.Tanh()]),
        ),
        (nn.ModuleList(), torch.nn.ModuleList()),
        (nn.CrossEntropyLoss(label_smoothing=0.1), torch.nn.CrossEntropyLoss(label_smoothing=0.1)),
    ]
    for ours, ref in pairs:
        assert repr(ours) == repr(ref)


def test_repr_puts_extra_repr_on_its_own_line_next_to_children():
    class Block(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc = nn.Linear(2, 2)

        def extra_repr(self):
            return "scale=2"

    assert repr(Block()) == (
        "Block(\n  scale=2\n  (fc): Linear(in_features=2, out_features=2, bias=True)\n)"
    )


@pytest.mark.parametrize(
    "name,kwargs",
    [
        ("ReLU", {}),
        ("LeakyReLU", {"negative_slope": 0.1}),
        ("ELU", {"alpha": 0.7}),
        ("GELU", {}),
        ("GELU", {"approximate": "tanh"}),
        ("Sigmoid", {}),
        ("Tanh", {}),
        ("Softplus", {"beta": 2.0, "threshold": 3.0}),
        ("Softmax", {"dim": 0}),
        ("LogSoftmax", {"dim": -1}),
    ],
)
def test_activation_layers_match_torch(name, kwargs):
    torch = pytest.importorskip("torch")
    x = np.random.default_rng(0).standard_normal((4, 5)).astype(np.float32) * 3
    xm, xr = md.tensor(x, requires_grad=True), torch.tensor(x, requires_grad=True)
    y, yr = getattr(nn, name)(**kwargs)(xm), getattr(torch.nn, name)(**kwargs)(xr)
    np.testing.assert_allclose(y.numpy(), yr.detach().numpy(), rtol=1e-5, atol=1e-6)
    g = np.random.default_rng(1).standard_normal((4, 5)).astype(np.float32)
    y.backward(md.tensor(g))
    yr.backward(torch.tensor(g))
    np.testing.assert_allclose(xm.grad.numpy(), xr.grad.numpy(), rtol=1e-4, atol=1e-6)


def test_softmax_without_dim_uses_pytorch_legacy_choice():
    x = md.randn(2, 3)
    with pytest.warns(UserWarning, match="implicit dimension"):
        y = nn.Softmax()(x)
    np.testing.assert_allclose(y.numpy().sum(1), np.ones(2), rtol=1e-6)  # dim 1 for 2-D


RNG = np.random.default_rng(3)
LOGITS = RNG.standard_normal((6, 4)).astype(np.float32)
CLASSES = RNG.integers(0, 4, 6)
PROBS = RNG.uniform(0.05, 0.95, (6, 4)).astype(np.float32)
TARGETS = RNG.random((6, 4)).astype(np.float32)
WEIGHTS = RNG.uniform(0.5, 2, 4).astype(np.float32)

LOSSES = [
    ("MSELoss", {}, LOGITS, TARGETS),
    ("MSELoss", {"reduction": "sum"}, LOGITS, TARGETS),
    ("L1Loss", {"reduction": "none"}, LOGITS, TARGETS),
    ("SmoothL1Loss", {"beta": 0.5}, LOGITS, TARGETS),
    ("HuberLoss", {"delta": 0.5}, LOGITS, TARGETS),
    ("CrossEntropyLoss", {}, LOGITS, CLASSES),
    ("CrossEntropyLoss", {"weight": WEIGHTS, "ignore_index": 1}, LOGITS, CLASSES),
    ("CrossEntropyLoss", {"label_smoothing": 0.2, "reduction": "sum"}, LOGITS, CLASSES),
    ("NLLLoss", {"weight": WEIGHTS}, LOGITS, CLASSES),
    ("BCELoss", {}, PROBS, TARGETS),
    ("BCEWithLogitsLoss", {"pos_weight": WEIGHTS}, LOGITS, TARGETS),
    ("KLDivLoss", {"reduction": "batchmean"}, np.log(PROBS), PROBS),
    ("MSELoss", {"size_average": False}, LOGITS, TARGETS),  # legacy spelling of "sum"
    ("L1Loss", {"reduce": False}, LOGITS, TARGETS),  # legacy spelling of "none"
]


@pytest.mark.parametrize("name,kwargs,x,t", LOSSES)
def test_loss_layers_match_torch(name, kwargs, x, t):
    torch = pytest.importorskip("torch")
    weighted = {k: v for k, v in kwargs.items() if isinstance(v, np.ndarray)}
    ours = getattr(nn, name)(**{**kwargs, **{k: md.tensor(v) for k, v in weighted.items()}})
    legacy = "size_average" in kwargs or "reduce" in kwargs
    with pytest.warns(UserWarning) if legacy else contextlib.nullcontext():
        ref = getattr(torch.nn, name)(
            **{**kwargs, **{k: torch.tensor(v) for k, v in weighted.items()}}
        )
    assert ours.reduction == ref.reduction
    assert list(ours.state_dict()) == list(ref.state_dict())  # class weights are buffers
    xm, xr = md.tensor(x, requires_grad=True), torch.tensor(x, requires_grad=True)
    y, yr = ours(xm, md.tensor(t)), ref(xr, torch.tensor(t))
    np.testing.assert_allclose(y.numpy(), yr.detach().numpy(), rtol=1e-5, atol=1e-6)
    g = np.random.default_rng(0).standard_normal(yr.shape).astype(np.float32)
    y.backward(md.tensor(g))
    yr.backward(torch.tensor(g))
    np.testing.assert_allclose(xm.grad.numpy(), xr.grad.numpy(), rtol=1e-4, atol=1e-6)


# --------------------------------------------------------------------- containers
def test_sequential_ordered_dict_indexing_slicing_and_append():
    seq = nn.Sequential(OrderedDict([("fc", nn.Linear(2, 3)), ("act", nn.ReLU())]))
    assert [n for n, _ in seq.named_children()] == ["fc", "act"]
    assert isinstance(seq[0], nn.Linear) and isinstance(seq[-1], nn.ReLU)
    head = seq[:1]
    assert isinstance(head, nn.Sequential) and len(head) == 1
    seq.append(nn.Linear(3, 1))
    assert len(seq) == 3 and seq(md.randn(4, 2)).shape == (4, 1)
    assert [n for n, _ in seq.named_parameters()] == ["fc.weight", "fc.bias", "2.weight", "2.bias"]


def test_module_list_and_dict_register_children():
    layers = nn.ModuleList([nn.Linear(2, 2) for _ in range(3)])
    layers.append(nn.Linear(2, 1))
    assert len(layers) == 4 and len(list(layers.parameters())) == 8
    assert isinstance(layers[-1], nn.Linear) and layers[-1].out_features == 1
    heads = nn.ModuleDict({"a": nn.Linear(2, 2)})
    heads["b"] = nn.Linear(2, 3)
    assert "b" in heads and list(heads.keys()) == ["a", "b"] and len(heads) == 2
    assert [n for n, _ in heads.named_parameters()] == ["a.weight", "a.bias", "b.weight", "b.bias"]


def test_shared_modules_are_listed_once_but_saved_under_every_name():
    shared = nn.Linear(2, 2)
    seq = nn.Sequential(shared, nn.ReLU(), shared)
    assert [n for n, _ in seq.named_modules()] == ["", "0", "1"]
    assert len(list(seq.parameters())) == 2
    assert list(seq.state_dict()) == ["0.weight", "0.bias", "2.weight", "2.bias"]


# --------------------------------------------------------------------- state dict errors
def test_load_errors_list_missing_unexpected_and_mismatched_keys():
    model = nn.Sequential(nn.Linear(3, 2), nn.BatchNorm1d(2))
    state = {k: v.numpy() for k, v in model.state_dict().items()}
    del state["1.running_var"]
    state["1.extra"] = np.zeros(2)
    state["0.weight"] = np.zeros((2, 4))
    with pytest.raises(RuntimeError) as info:
        model.load_state_dict(state)
    message = str(info.value)
    assert "missing keys 1.running_var" in message
    assert "unexpected keys 1.extra" in message
    assert "0.weight: checkpoint (2, 4) vs model (2, 3)" in message
    state["0.weight"] = np.ones((2, 3))
    missing, unexpected = model.load_state_dict(state, strict=False)
    assert missing == ["1.running_var"] and unexpected == ["1.extra"]
    np.testing.assert_array_equal(model[0].weight.numpy(), np.ones((2, 3)))
    assert model[0].weight.device == backend.default_device()
    assert model[0].weight.dtype == np.float32


def test_state_dict_values_are_detached_and_loading_keeps_parameter_objects():
    model = nn.Linear(2, 2)
    weight = model.weight
    state = model.state_dict()
    assert not state["weight"].requires_grad and state["weight"].grad_fn is None
    model.load_state_dict({"weight": np.eye(2), "bias": np.zeros(2)})
    assert model.weight is weight  # optimizers holding the parameter still see it
    np.testing.assert_array_equal(weight.numpy(), np.eye(2))


# --------------------------------------------------------------------- modes, to()
def test_train_and_eval_reach_every_submodule():
    model = build(nn)
    model.eval()
    assert all(not m.training for m in model.modules())
    model.train()
    assert all(m.training for m in model.modules())
    assert model.train(False) is model and not model.blocks[0][1].training


def test_to_float64_converts_parameters_buffers_and_gradients():
    model = nn.Sequential(nn.Linear(3, 2), nn.BatchNorm1d(2))
    model(md.randn(4, 3)).sum().backward()
    assert model.to(md.float64) is model
    for name, t in [*model.named_parameters(), *model.named_buffers()]:
        expected = np.int64 if name.endswith("num_batches_tracked") else np.float64
        assert t.dtype == expected, name
    assert all(p.grad.dtype == np.float64 for p in model.parameters())
    out = model(md.randn(4, 3, dtype=md.float64))
    assert out.dtype == np.float64
    model.float()
    assert model[0].weight.dtype == np.float32


def test_zero_grad_and_requires_grad_():
    model = nn.Linear(2, 2)
    model(md.randn(3, 2)).sum().backward()
    model.zero_grad()
    assert all(p.grad is None for p in model.parameters())
    model.requires_grad_(False)
    assert not any(p.requires_grad for p in model.parameters())


def test_load_state_dict_returns_pytorchs_named_keys():
    model = nn.Sequential(nn.Linear(2, 3), nn.BatchNorm1d(3))
    state = {k: v.numpy() for k, v in model.state_dict().items()}
    result = model.load_state_dict(state)
    assert result.missing_keys == [] and result.unexpected_keys == []
    assert repr(result) == "<All keys matched successfully>"
    del state["0.bias"]
    state["extra"] = np.zeros(1)
    result = model.load_state_dict(state, strict=False)
    missing, unexpected = result  # still unpacks as a pair
    assert result.missing_keys == missing == ["0.bias"]
    assert result.unexpected_keys == unexpected == ["extra"]
    assert "missing_keys=['0.bias']" in repr(result)


def _nested():
    return nn.Sequential(
        OrderedDict(
            encoder=nn.Sequential(nn.Linear(4, 3), nn.BatchNorm1d(3)),
            head=nn.Linear(3, 2),
        )
    )


def test_get_submodule_parameter_and_buffer_follow_dotted_paths():
    model = _nested()
    assert model.get_submodule("") is model
    assert model.get_submodule("encoder.1") is model.encoder[1]
    assert model.get_parameter("encoder.0.weight") is model.encoder[0].weight
    assert model.get_parameter("head.bias") is model.head.bias
    assert model.get_buffer("encoder.1.running_mean") is model.encoder[1].running_mean
    with pytest.raises(AttributeError, match="has no attribute `decoder`"):
        model.get_submodule("decoder.0")
    with pytest.raises(AttributeError, match=r"encoder\.0\.weight is not an nn\.Module"):
        model.get_submodule("encoder.0.weight")
    with pytest.raises(AttributeError, match=r"`encoder\.1\.running_mean` is not a nn\.Parameter"):
        model.get_parameter("encoder.1.running_mean")
    with pytest.raises(AttributeError, match="has no attribute `gain`"):
        model.get_parameter("head.gain")


def test_dotted_paths_name_the_same_members_as_torch():
    torch = pytest.importorskip("torch")
    tmodel = torch.nn.Sequential(
        OrderedDict(
            encoder=torch.nn.Sequential(torch.nn.Linear(4, 3), torch.nn.BatchNorm1d(3)),
            head=torch.nn.Linear(3, 2),
        )
    )
    model = _nested()
    for name, p in tmodel.named_parameters():
        assert model.get_parameter(name).shape == tuple(tmodel.get_parameter(name).shape) == p.shape
    assert [n for n, _ in model.named_buffers()] == [n for n, _ in tmodel.named_buffers()]
    for name, _ in tmodel.named_modules():
        assert type(model.get_submodule(name)).__name__ == type(tmodel.get_submodule(name)).__name__


@pytest.mark.parametrize(
    ("method", "dtype"), [("half", np.float16), ("float", np.float32), ("double", np.float64)]
)
def test_dtype_methods_convert_floating_parameters_and_buffers_only(method, dtype):
    model = _nested()
    assert getattr(model, method)() is model
    for name, tensor in model.state_dict().items():
        want = np.int64 if name.endswith("num_batches_tracked") else dtype
        assert tensor.dtype == want, name
    model.to(md.float64)
    assert model.head.weight.dtype == np.float64
    assert model.get_buffer("encoder.1.num_batches_tracked").dtype == np.int64


def test_requires_grad_freezes_and_unfreezes():
    model = _nested()
    assert model.encoder.requires_grad_(False) is model.encoder
    assert [n for n, p in model.named_parameters() if p.requires_grad] == [
        "head.weight",
        "head.bias",
    ]
    model(md.randn(5, 4)).sum().backward()
    assert model.encoder[0].weight.grad is None and model.head.weight.grad is not None
    model.requires_grad_()
    assert all(p.requires_grad for p in model.parameters())


class _WithCache(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.register_buffer("scale", md.ones(3))
        self.register_buffer("cache", md.zeros(3), persistent=False)
        self.register_buffer("empty", None)

    def extra_repr(self) -> str:
        return "scale=3, cached"


def test_non_persistent_buffers_move_but_are_not_saved_as_in_torch():
    torch = pytest.importorskip("torch")
    module = _WithCache()
    assert list(module.state_dict()) == ["scale"]
    assert [n for n, _ in module.named_buffers()] == ["scale", "cache"]
    module.double()
    assert module.cache.dtype == np.float64
    assert module.load_state_dict({"scale": np.full(3, 2.0)}).missing_keys == []
    tmodule = torch.nn.Module()
    tmodule.register_buffer("scale", torch.ones(3))
    tmodule.register_buffer("cache", torch.zeros(3), persistent=False)
    tmodule.register_buffer("empty", None)
    assert list(tmodule.state_dict()) == list(module.state_dict())
    assert [n for n, _ in tmodule.named_buffers()] == [n for n, _ in module.named_buffers()]
    module.register_buffer("cache", md.zeros(3))  # registered again, now persistent
    assert list(module.state_dict()) == ["scale", "cache"]
    assert repr(module) == "_WithCache(scale=3, cached)"


def test_register_buffer_validates_like_torch():
    module = _WithCache()
    with pytest.raises(KeyError, match=r"without '\.'"):
        module.register_buffer("a.b", md.ones(1))
    with pytest.raises(TypeError, match="a Tensor or None"):
        module.register_buffer("arr", np.ones(2))
    module.plain = 3
    with pytest.raises(KeyError, match="already exists"):
        module.register_buffer("plain", md.ones(1))
