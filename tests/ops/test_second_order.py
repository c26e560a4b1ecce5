"""Second-order gradient checks (gradgradcheck through create_graph=True) of the ops added
for PyTorch parity: every op class of ops/elementwise.py, indexing.py, cumulative.py,
norm.py, einsum.py, unfold.py and the new activations, and the compositions (attention,
normalisation, pooling) whose ops all have a double backward. The Transformer layers, MHA
and LSTM(proj_size) cases also pass (`python -m minidl.gradient_check --order 2`) but take
3-17 s each, so they are left to that command."""

from __future__ import annotations

import pytest

from minidl.gradient_check.registry import all_cases

CASES = [
    "sin", "cos", "tan", "asin", "acos", "atan", "sinh", "cosh", "asinh", "acosh", "atanh",
    "log2", "log10", "log1p", "expm1", "exp2", "reciprocal", "rsqrt", "erf",
    "atan2 broadcast", "floor ceil round trunc sign frac", "lerp tensor weight",
    "gather repeated indices", "scatter", "scatter_add repeated indices",
    "index_select masked_fill", "repeat tile", "repeat_interleave counts", "flip roll",
    "sort descending", "topk", "prod dim with a zero", "prod all", "cumsum",
    "cumprod with zeros", "norm 2 dim", "norm 3 keepdim", "norm inf, 1", "normalize",
    "einsum batched matmul", "einsum sum, implicit output", "einsum ellipsis three operands",
    "einsum diagonal and trace",
    "bmm baddbmm", "outer", "diag both ways", "tril triu", "clamp tensor bounds",
    "hardtanh relu6", "hardswish hardsigmoid", "silu selu celu mish",
    "softsign tanhshrink logsigmoid", "prelu per channel", "glu",
    "pad reflect", "pad replicate", "pad circular", "unfold padding stride dilation",
    "fold overlapping", "local_response_norm", "rms_norm", "lp_pool2d", "max_unpool2d",
    "pixel_shuffle unshuffle", "interpolate bicubic", "interpolate bicubic align_corners",
    "scaled_dot_product_attention bool mask with a fully masked row",
    "scaled_dot_product_attention causal, grouped-query heads",
]  # fmt: skip


@pytest.mark.parametrize("name", CASES)
def test_second_order(name):
    result = all_cases()[name].check(raise_on_failure=False, order=2)
    assert result, f"{name}: {result}"
