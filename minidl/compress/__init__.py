"""Model compression: low-rank factorisation of Linear and convolution weights by
truncated SVD (``minidl.compress.lowrank``). Quantization is in ``minidl.quant``."""

from minidl.compress.lowrank import (
    CompressionReport,
    LayerCompression,
    LowRankConv,
    LowRankLinear,
    compress_model,
    rank_for_energy,
    set_submodule,
    singular_values,
)

__all__ = [
    "CompressionReport",
    "LayerCompression",
    "LowRankConv",
    "LowRankLinear",
    "compress_model",
    "rank_for_energy",
    "set_submodule",
    "singular_values",
]
