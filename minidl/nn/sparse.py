"""The embedding table, as in ``torch.nn.Embedding``."""

from __future__ import annotations

from typing import Any

from minidl.nn import functional as F
from minidl.nn import init
from minidl.nn.linear import empty_parameter
from minidl.nn.module import Module, Parameter
from minidl.tensor import Tensor, no_grad
from minidl.tensor_functions import tensor


class Embedding(Module):
    """A lookup table: row i of ``weight`` (num_embeddings, embedding_dim) is the vector
    of index i.  input: (*) ints -> output: (*, embedding_dim).

    weight starts N(0, 1), with the row ``padding_idx`` (if given) zero; that row gets no
    gradient, so it stays as it is in training. ``max_norm`` rescales, in place, the rows a
    forward looks up whose ``norm_type``-norm exceeds it. ``_weight`` gives the initial
    table and ``_freeze`` makes it constant (see ``from_pretrained``).
    """

    def __init__(
        self,
        num_embeddings: int,
        embedding_dim: int,
        padding_idx: int | None = None,
        max_norm: float | None = None,
        norm_type: float = 2.0,
        scale_grad_by_freq: bool = False,
        sparse: bool = False,
        _weight: Tensor | Any = None,
        _freeze: bool = False,
        device: str | None = None,
        dtype: Any = None,
    ) -> None:
        super().__init__()
        if sparse:
            raise ValueError("Embedding: sparse gradients are not supported; use sparse=False")
        if padding_idx is not None:
            if not -num_embeddings <= padding_idx < num_embeddings:
                raise ValueError(
                    f"Embedding: padding_idx {padding_idx} must be within num_embeddings "
                    f"(in [-{num_embeddings}, {num_embeddings}))"
                )
            padding_idx %= num_embeddings
        self.num_embeddings, self.embedding_dim = num_embeddings, embedding_dim
        self.padding_idx, self.max_norm, self.norm_type = padding_idx, max_norm, norm_type
        self.scale_grad_by_freq, self.sparse = scale_grad_by_freq, sparse
        if _weight is None:
            self.weight = empty_parameter((num_embeddings, embedding_dim), device, dtype)
            self.reset_parameters()
        else:
            weight = tensor(_weight, dtype=dtype, device=device)
            if weight.shape != (num_embeddings, embedding_dim):
                raise ValueError(
                    f"Embedding: _weight of shape {weight.shape} does not match "
                    f"num_embeddings and embedding_dim ({num_embeddings}, {embedding_dim})"
                )
            self.weight = Parameter(weight, requires_grad=not _freeze)

    def reset_parameters(self) -> None:
        init.normal_(self.weight)
        if self.padding_idx is not None:
            with no_grad():
                self.weight[self.padding_idx] = 0.0

    def forward(self, input: Tensor) -> Tensor:
        return F.embedding(
            input,
            self.weight,
            self.padding_idx,
            self.max_norm,
            self.norm_type,
            self.scale_grad_by_freq,
            self.sparse,
        )

    @classmethod
    def from_pretrained(
        cls,
        embeddings: Tensor | Any,
        freeze: bool = True,
        padding_idx: int | None = None,
        max_norm: float | None = None,
        norm_type: float = 2.0,
        scale_grad_by_freq: bool = False,
        sparse: bool = False,
    ) -> Embedding:
        """An embedding whose table is a copy of ``embeddings`` (V, D): a Tensor or an
        array such as gensim's ``KeyedVectors.vectors``. ``freeze`` (default) keeps it
        constant. As in PyTorch, the row ``padding_idx`` is left as given (not zeroed)."""
        shape = tuple(embeddings.shape)
        if len(shape) != 2:
            raise ValueError(
                f"Embedding.from_pretrained: embeddings must be 2-D (V, D), got shape {shape}"
            )
        return cls(
            shape[0],
            shape[1],
            padding_idx=padding_idx,
            max_norm=max_norm,
            norm_type=norm_type,
            scale_grad_by_freq=scale_grad_by_freq,
            sparse=sparse,
            _weight=embeddings,
            _freeze=freeze,
        )

    def extra_repr(self) -> str:
        parts = [f"{self.num_embeddings}, {self.embedding_dim}"]
        if self.padding_idx is not None:
            parts.append(f"padding_idx={self.padding_idx}")
        if self.max_norm is not None:
            parts.append(f"max_norm={self.max_norm}")
        if self.norm_type != 2:
            parts.append(f"norm_type={self.norm_type}")
        if self.scale_grad_by_freq:
            parts.append(f"scale_grad_by_freq={self.scale_grad_by_freq}")
        return ", ".join(parts)
