"""Low-rank factorisation of Linear and convolution weights by truncated SVD.

A weight matrix W: (out, in) with singular value decomposition W = U diag(s) V^T is
replaced by its best rank-r approximation (Eckart-Young: no rank-r matrix is closer in the
Frobenius or spectral norm)

    W_r = U_r diag(s_r) V_r^T,    ||W - W_r||_F = sqrt(sum_{i > r} s_i^2),

and the layer by two smaller ones, in -> r -> out:

    y = x W_r^T + b = (x A^T) B^T + b,   A = diag(sqrt(s_r)) V_r^T: (r, in),
                                         B = U_r diag(sqrt(s_r)):  (out, r).

The singular values are split evenly between the factors, so A and B have equal
spectral norms and train at a similar pace when the factorised model is fine-tuned.
The weights shrink from out * in to r (out + in) numbers, a saving when
r < out * in / (out + in).

A convolution's weight (C_out, C_in, *k) is the matrix (C_out, C_in * prod(k)) applied to
every window; it factorises into a convolution with r output channels and the original
kernel, stride, padding and dilation (A reshaped to (r, C_in, *k)), then a 1x1
convolution r -> C_out carrying the bias (B reshaped to (C_out, r, 1, ...)).
"""

from __future__ import annotations

import copy
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from minidl import backend
from minidl.nn.conv import _Conv
from minidl.nn.linear import Linear
from minidl.nn.module import Module, Parameter
from minidl.nn.summary import summary
from minidl.tensor import Tensor, no_grad


def singular_values(weight: Tensor) -> Any:
    """The singular values of a weight viewed as a matrix (out, rest), largest first,
    as a float64 host array."""
    matrix = weight.data.reshape(weight.shape[0], -1).astype("float64")
    xp = backend.get_array_module(matrix)
    return backend.to_numpy(xp.linalg.svd(matrix, compute_uv=False))


def _svd(weight: Tensor) -> tuple[Any, Any, Any]:
    """(U, s, V^T) of the weight viewed as (out, rest), in float64 on its device."""
    matrix = weight.data.reshape(weight.shape[0], -1).astype("float64")
    return backend.get_array_module(matrix).linalg.svd(matrix, full_matrices=False)


def rank_for_energy(s: Any, energy: float) -> int:
    """The smallest r whose leading singular values keep ``energy`` of the spectral energy:
    sum_{i <= r} s_i^2 >= energy * sum_i s_i^2 (``s`` sorted largest first)."""
    if not 0.0 < energy <= 1.0:
        raise ValueError(f"rank_for_energy: energy must be in (0, 1], got {energy}")
    cumulative = np.cumsum(np.asarray(s, dtype=np.float64) ** 2)
    # the tolerance lets energy=1 reach r = n despite rounding in the sum
    r = int(np.searchsorted(cumulative, energy * cumulative[-1] * (1 - 1e-12))) + 1
    return min(r, len(cumulative))


def _choose_rank(name: str, weight: Tensor, rank: int | None, energy: float | None, s: Any) -> int:
    """``rank`` checked against the matrix, or the rank that keeps ``energy`` of the
    singular values ``s``."""
    if (rank is None) == (energy is None):
        raise ValueError(f"{name}: give exactly one of rank and energy")
    full = min(weight.shape[0], math.prod(weight.shape[1:]))
    if energy is not None:
        return rank_for_energy(backend.to_numpy(s), energy)
    if not isinstance(rank, int) or not 1 <= rank <= full:
        raise ValueError(
            f"{name}: rank must be an int in [1, {full}] for a weight of shape {weight.shape}, "
            f"got {rank!r}"
        )
    return rank


def _factorise(layer: Module, rank: int, svd: tuple[Any, Any, Any]) -> Module:
    """The LowRankLinear or LowRankConv for ``layer`` with the rank-r factors of its weight
    from its SVD: A = diag(sqrt(s_r)) V_r^T: (r, rest) into ``first``, B = U_r diag(sqrt(s_r)):
    (out, r) into ``second``, with the bias."""
    w = layer.weight
    if isinstance(layer, Linear):
        out = LowRankLinear(
            layer.in_features,
            layer.out_features,
            rank,
            layer.bias is not None,
            device=w.device,
            dtype=w.dtype,
        )
    else:
        out = LowRankConv(layer, rank)
    u, s, vt = svd
    root = backend.get_array_module(s).sqrt(s[:rank])
    _load(out.first.weight, (root[:, None] * vt[:rank]).astype(w.dtype))
    _load(out.second.weight, (u[:, :rank] * root[None, :]).astype(w.dtype))
    if layer.bias is not None:
        _load(out.second.bias, layer.bias.data)
    return out


def _load(param: Parameter, value: Any) -> None:
    with no_grad():
        param.copy_(value.reshape(param.shape))


class LowRankLinear(Module):
    """y = (x A^T) B^T + b: a Linear layer whose weight is the rank-r product B A.

    x: (*, in_features) -> y: (*, out_features). Two Linear children: ``first``
    (in_features -> rank, weight A: (rank, in_features), no bias) and ``second``
    (rank -> out_features, weight B: (out_features, rank), and the bias). Built directly,
    both start with PyTorch's Linear init; ``from_linear`` sets them from a truncated SVD.
    """

    def __init__(
        self,
        in_features: int,
        out_features: int,
        rank: int,
        bias: bool = True,
        device: str | None = None,
        dtype: Any = None,
    ) -> None:
        super().__init__()
        if not 1 <= rank <= min(in_features, out_features):
            raise ValueError(
                f"LowRankLinear: rank must be in [1, {min(in_features, out_features)}] for "
                f"{in_features} -> {out_features}, got {rank}"
            )
        self.in_features, self.out_features, self.rank = in_features, out_features, rank
        self.first = Linear(in_features, rank, bias=False, device=device, dtype=dtype)
        self.second = Linear(rank, out_features, bias=bias, device=device, dtype=dtype)

    @classmethod
    def from_linear(
        cls, layer: Linear, rank: int | None = None, energy: float | None = None
    ) -> LowRankLinear:
        """The rank-r factorisation of ``layer`` (r given, or the smallest keeping
        ``energy`` of sum s_i^2); the bias is copied to ``second``."""
        if not isinstance(layer, Linear):
            raise TypeError(f"LowRankLinear.from_linear: expected a Linear, got {type(layer)}")
        svd = _svd(layer.weight)
        r = _choose_rank("LowRankLinear.from_linear", layer.weight, rank, energy, svd[1])
        return _factorise(layer, r, svd)

    def forward(self, input: Tensor) -> Tensor:
        return self.second(self.first(input))

    def extra_repr(self) -> str:
        return (
            f"in_features={self.in_features}, out_features={self.out_features}, "
            f"rank={self.rank}, bias={self.second.bias is not None}"
        )


class LowRankConv(Module):
    """A convolution whose weight, seen as (C_out, C_in * prod(k)), is the rank-r product
    B A: ``first`` = conv(C_in -> r) with the original kernel, stride, padding, dilation and
    padding_mode (weight A: (r, C_in, *k), no bias), then ``second`` = 1x1 conv(r -> C_out)
    with the bias (weight B: (C_out, r, 1, ...)).

    x: (N, C_in, *S) -> y: (N, C_out, *O), as the original convolution. ``conv`` is an
    ungrouped Conv1d/2d/3d whose settings are copied (its weights are not).
    """

    def __init__(self, conv: _Conv, rank: int) -> None:
        super().__init__()
        name = "LowRankConv"
        if not isinstance(conv, _Conv) or conv.groups != 1:
            raise ValueError(f"{name}: expected an ungrouped Conv1d/2d/3d, got {conv!r}")
        full = min(conv.out_channels, conv.in_channels * math.prod(conv.kernel_size))
        if not 1 <= rank <= full:
            raise ValueError(f"{name}: rank must be in [1, {full}] for {conv!r}, got {rank}")
        kind, w = type(conv), conv.weight
        self.in_channels, self.out_channels, self.rank = conv.in_channels, conv.out_channels, rank
        self.first = kind(
            conv.in_channels,
            rank,
            conv.kernel_size,
            conv.stride,
            conv.padding,
            conv.dilation,
            bias=False,
            padding_mode=conv.padding_mode,
            device=w.device,
            dtype=w.dtype,
        )
        self.second = kind(
            rank, conv.out_channels, 1, bias=conv.bias is not None, device=w.device, dtype=w.dtype
        )

    @classmethod
    def from_conv(
        cls, conv: _Conv, rank: int | None = None, energy: float | None = None
    ) -> LowRankConv:
        """The rank-r factorisation of ``conv`` (r given, or the smallest keeping
        ``energy``); the bias is copied to ``second``."""
        svd = _svd(conv.weight)
        return _factorise(
            conv, _choose_rank("LowRankConv.from_conv", conv.weight, rank, energy, svd[1]), svd
        )

    def forward(self, input: Tensor) -> Tensor:
        return self.second(self.first(input))

    def extra_repr(self) -> str:
        return f"{self.in_channels}, {self.out_channels}, rank={self.rank}"


# --------------------------------------------------------------------- whole models
@dataclass
class LayerCompression:
    """One eligible layer: the rank chosen, weight parameters and FLOPs before and after
    (FLOPs: 2 x multiply-accumulates of the weight products for one forward of the example
    input; None without one), the spectral energy kept, and whether it was replaced (only
    when the factorisation has fewer parameters)."""

    name: str
    kind: str
    shape: tuple[int, ...]
    rank: int
    full_rank: int
    energy_kept: float
    params_before: int
    params_after: int
    flops_before: int | None
    flops_after: int | None
    replaced: bool


@dataclass
class CompressionReport:
    """What ``compress_model`` did: per-layer rows and whole-model totals."""

    layers: list[LayerCompression] = field(default_factory=list)
    params_before: int = 0
    params_after: int = 0
    flops_before: int | None = None
    flops_after: int | None = None

    @property
    def param_ratio(self) -> float:
        return self.params_after / self.params_before

    def __str__(self) -> str:
        head = f"{'layer':<16}{'shape':<20}{'rank':>10}{'energy':>8}{'params':>20}{'FLOPs':>24}"
        lines = [head]
        for row in self.layers:
            flops = (
                "--" if row.flops_before is None else f"{row.flops_before:,}->{row.flops_after:,}"
            )
            lines.append(
                f"{row.name:<16}{row.shape!s:<20}{f'{row.rank}/{row.full_rank}':>10}"
                f"{row.energy_kept:>8.3f}{f'{row.params_before:,}->{row.params_after:,}':>20}"
                f"{flops:>24}" + ("" if row.replaced else "  (kept: no saving)")
            )
        total = f"model params {self.params_before:,} -> {self.params_after:,}"
        if self.flops_before is not None:
            total += f", FLOPs {self.flops_before:,} -> {self.flops_after:,}"
        return "\n".join([*lines, total])


def set_submodule(model: Module, target: str, module: Module) -> None:
    """Replace the submodule at dotted path ``target`` (e.g. ``"features.0"``)."""
    *path, last = target.split(".")
    parent = model
    for part in path:
        parent = parent._modules[part]
    if last not in parent._modules:
        raise KeyError(f"set_submodule: {type(parent).__name__} has no child {last!r}")
    parent._modules[last] = module


def _eligible(module: Module) -> bool:
    return isinstance(module, Linear) or (isinstance(module, _Conv) and module.groups == 1)


def _output_positions(model: Module, input_size: Sequence[int] | None) -> dict[str, int]:
    """For each module name, how many output vectors it produced on one forward of a
    random input of ``input_size``: prod of the output shape without its feature dim
    (the last for Linear, dim 1 for convolutions)."""
    if input_size is None:
        return {}
    modules = dict(model.named_modules())
    positions = {}
    for row in summary(model, input_size=tuple(input_size), verbose=0).rows:
        module, shape = modules.get(row.name), row.output_shape
        if _eligible(module) and isinstance(shape, tuple):
            channel_dim = -1 if isinstance(module, Linear) else 1
            positions[row.name] = math.prod(shape) // shape[channel_dim]
    return positions


def compress_model(
    model: Module,
    rank: int | None = None,
    energy: float | None = None,
    input_size: Sequence[int] | None = None,
    exclude: Sequence[str] = (),
    inplace: bool = False,
) -> tuple[Module, CompressionReport]:
    """Factorise every Linear and ungrouped convolution of ``model`` (except the names in
    ``exclude``) at ``rank`` (capped at each layer's full rank) or at the rank keeping
    ``energy`` of its spectral energy. A layer is replaced only when the factorisation
    has fewer weights (r (out + in) < out * in); the report lists every eligible layer.

    ``input_size`` (with the batch dim, e.g. (1, 784)) gives FLOPs for one forward of
    such an input; convolution FLOPs need it. Returns (model, report); the model is a
    copy unless ``inplace``.
    """
    if (rank is None) == (energy is None):
        raise ValueError("compress_model: give exactly one of rank and energy")
    if not inplace:
        model = copy.deepcopy(model)
    positions = _output_positions(model, input_size)
    report = CompressionReport(params_before=sum(p.numel() for p in model.parameters()))
    targets = [(n, m) for n, m in model.named_modules() if n and _eligible(m) and n not in exclude]
    for name, layer in targets:
        svd = _svd(layer.weight)
        row = _compress_layer(name, layer, rank, energy, positions.get(name), svd[1])
        report.layers.append(row)
        if row.replaced:
            set_submodule(model, name, _factorise(layer, row.rank, svd))
    report.params_after = sum(p.numel() for p in model.parameters())
    if input_size is not None:
        report.flops_before, report.flops_after = _total_flops(model, positions, report)
    return model, report


def _compress_layer(
    name: str,
    layer: Module,
    rank: int | None,
    energy: float | None,
    positions: int | None,
    singular: Any,
) -> LayerCompression:
    w = layer.weight
    out_dim, in_dim = w.shape[0], math.prod(w.shape[1:])
    full = min(out_dim, in_dim)
    s = backend.to_numpy(singular)
    r = min(rank, full) if rank is not None else rank_for_energy(s, energy)
    before, after = out_dim * in_dim, r * (out_dim + in_dim)
    kept = float((s[:r] ** 2).sum() / (s**2).sum()) if s.any() else 1.0
    replaced = after < before
    if not replaced:
        after = before
    return LayerCompression(
        name,
        type(layer).__name__,
        tuple(w.shape),
        r,
        full,
        kept,
        before,
        after,
        None if positions is None else 2 * before * positions,
        None if positions is None else 2 * after * positions,
        replaced,
    )


def _total_flops(
    model: Module, positions: dict[str, int], report: CompressionReport
) -> tuple[int, int]:
    """FLOPs of every eligible layer (they hold the weight products) before and after;
    excluded layers count the same on both sides."""
    changed = {row.name for row in report.layers}
    before = sum(row.flops_before for row in report.layers)
    after = sum(row.flops_after for row in report.layers)
    unchanged = sum(
        2 * positions[name] * math.prod(m.weight.shape)
        for name, m in model.named_modules()
        if name in positions and name not in changed
    )
    return before + unchanged, after + unchanged
