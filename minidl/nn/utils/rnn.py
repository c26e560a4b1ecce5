"""Variable-length sequences, as ``torch.nn.utils.rnn``: padding, and packing into a
``PackedSequence`` that the recurrent layers run without computing on the padding.

A ``PackedSequence`` holds the steps of a batch time-major, longest sequence first:
``data`` stacks, for t = 0, 1, ..., the t-th step of every sequence that is longer than t
(``batch_sizes[t]`` of them, in order of decreasing length). ``sorted_indices`` is the
batch order of that sorting (None when the batch was given sorted), ``unsorted_indices``
its inverse.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, NamedTuple

import numpy as np

from minidl.nn import functional as F
from minidl.tensor import Tensor
from minidl.tensor_functions import cat, full, stack, tensor


class PackedSequence(NamedTuple):
    """data (sum of lengths, *), batch_sizes (max length,) int64 on the CPU,
    sorted_indices and unsorted_indices (N,) int64 or None."""

    data: Tensor
    batch_sizes: Tensor
    sorted_indices: Tensor | None = None
    unsorted_indices: Tensor | None = None

    def lengths(self) -> np.ndarray:
        """The length of each sequence, in the original batch order."""
        sizes = self.batch_sizes.numpy()
        sorted_lengths = (sizes[None, :] > np.arange(sizes[0])[:, None]).sum(1)
        if self.unsorted_indices is None:
            return sorted_lengths
        return sorted_lengths[self.unsorted_indices.numpy()]


def pad_sequence(
    sequences: Sequence[Tensor],
    batch_first: bool = False,
    padding_value: float = 0.0,
    padding_side: str = "right",
) -> Tensor:
    """Sequences (L_i, *) -> (L_max, N, *) (or (N, L_max, *)), padded with padding_value
    on the ``padding_side``."""
    if not sequences:
        raise ValueError("pad_sequence: expected a non-empty list of tensors")
    if padding_side not in ("left", "right"):
        raise ValueError(
            f"pad_sequence: padding_side must be 'left' or 'right', got {padding_side!r}"
        )
    trailing = sequences[0].shape[1:]
    if any(s.shape[1:] != trailing for s in sequences):
        raise ValueError(
            f"pad_sequence: sequences must agree after dim 0, got {[s.shape for s in sequences]}"
        )
    longest = max(s.shape[0] for s in sequences)
    padded = []
    for s in sequences:
        extra = longest - s.shape[0]
        widths = (0, 0) * len(trailing) + ((extra, 0) if padding_side == "left" else (0, extra))
        padded.append(F.pad(s, widths, value=padding_value) if extra else s)
    return stack(padded, dim=0 if batch_first else 1)


def _lengths(lengths: Any) -> np.ndarray:
    values = np.asarray(lengths.numpy() if isinstance(lengths, Tensor) else lengths)
    if values.ndim != 1 or values.dtype.kind not in "iu":
        raise ValueError(f"lengths must be a 1-D list or int64 tensor, got {values!r}")
    return values.astype(np.int64)


def pack_padded_sequence(
    input: Tensor, lengths: Any, batch_first: bool = False, enforce_sorted: bool = True
) -> PackedSequence:
    """Pack a padded batch (L, N, *) (or (N, L, *)) whose sequence i has lengths[i] steps.
    With ``enforce_sorted`` the lengths must be decreasing; otherwise the batch is sorted
    here and the order kept in the result."""
    values = _lengths(lengths)
    x = input.transpose(0, 1) if batch_first else input
    if values.shape[0] != x.shape[1]:
        raise ValueError(
            f"pack_padded_sequence: {values.shape[0]} lengths for a batch of {x.shape[1]}"
        )
    if values.size and (values.min() <= 0 or values.max() > x.shape[0]):
        raise ValueError(
            f"pack_padded_sequence: lengths must be in [1, {x.shape[0]}], got {values.tolist()}"
        )
    sorted_indices = unsorted_indices = None
    if enforce_sorted:
        if np.any(np.diff(values) > 0):
            raise RuntimeError(
                "pack_padded_sequence: `lengths` array must be sorted in decreasing order when "
                "`enforce_sorted` is True; pass enforce_sorted=False to sort here"
            )
    else:
        order = np.argsort(-values, kind="stable")
        sorted_indices = tensor(order, device="cpu")
        unsorted_indices = tensor(np.argsort(order), device="cpu")
        x = x[:, tensor(order, device=x.device)]
        values = values[order]
    batch_sizes = (values[None, :] > np.arange(values[0])[:, None]).sum(1)
    steps = np.repeat(np.arange(len(batch_sizes)), batch_sizes)  # one gather for all steps
    rows = np.concatenate([np.arange(b) for b in batch_sizes])
    data = x[tensor(steps, device=x.device), tensor(rows, device=x.device)]
    return PackedSequence(data, tensor(batch_sizes, device="cpu"), sorted_indices, unsorted_indices)


def pack_sequence(sequences: Sequence[Tensor], enforce_sorted: bool = True) -> PackedSequence:
    """Pack a list of sequences (L_i, *) (decreasing lengths unless enforce_sorted=False)."""
    lengths = [s.shape[0] for s in sequences]
    return pack_padded_sequence(pad_sequence(sequences), lengths, enforce_sorted=enforce_sorted)


def pad_packed_sequence(
    sequence: PackedSequence,
    batch_first: bool = False,
    padding_value: float = 0.0,
    total_length: int | None = None,
) -> tuple[Tensor, Tensor]:
    """The inverse of packing: (padded (L, N, *) or (N, L, *), lengths (N,) int64), in the
    original batch order; ``total_length`` pads to that many steps."""
    sizes = sequence.batch_sizes.numpy()
    longest = len(sizes)
    if total_length is not None and total_length < longest:
        raise ValueError(
            f"pad_packed_sequence: total_length {total_length} is shorter than the longest "
            f"sequence ({longest})"
        )
    lengths = (sizes[None, :] > np.arange(sizes[0])[:, None]).sum(1)  # sorted order
    length = total_length or longest
    data = sequence.data
    # where each (t, n) of the padded batch comes from: its row of data, or a padding row
    source = np.full((length, len(lengths)), data.shape[0])
    offsets = np.concatenate([[0], np.cumsum(sizes)[:-1]])
    for t, (offset, b) in enumerate(zip(offsets, sizes)):
        source[t, :b] = offset + np.arange(b)
    filler = full((1, *data.shape[1:]), padding_value, dtype=data.dtype, device=data.device)
    padded = cat([data, filler])[tensor(source, device=data.device)]
    if sequence.unsorted_indices is not None:
        order = sequence.unsorted_indices.numpy()
        padded = padded[:, tensor(order, device=padded.device)]
        lengths = lengths[order]
    out = padded.transpose(0, 1) if batch_first else padded
    return out, tensor(lengths.astype(np.int64), device="cpu")
