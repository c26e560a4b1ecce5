"""DistributedDataParallel: the same model on every rank, gradients averaged after backward.

Each rank runs forward and backward on its own part of the global batch. The gradient of
the global mean loss is the mean of the ranks' gradients (when the parts have equal
sizes), so after averaging every rank takes the same optimizer step and the replicas stay
identical, starting from rank 0's initial weights, which the constructor broadcasts.

The averaging is PyTorch's design. The parameters are grouped into buckets of about
``bucket_cap_mb`` megabytes, in reverse order of ``parameters()``, roughly the order in
which backward finishes their gradients. A hook on each parameter (called once its
``.grad`` is complete) counts it in; the gradients of a full bucket are copied into one
flat array and one allreduce reduces the whole bucket: a few large messages instead of
one per parameter, since every message pays the network's latency. With ``overlap=True``
the allreduce of a bucket starts (nonblocking, ``MPI_Iallreduce``) as soon as it is full,
while backward computes the gradients of the earlier layers; otherwise all buckets are
reduced after the last gradient. Either way the reduced mean is copied back into each
``.grad`` before ``backward()`` returns. Buckets start in the same order on every rank,
as MPI's collectives require.

Defaults, measured (benchmarks/RESULTS.md, "Data-parallel scaling over MPI"): overlap is
off, because with MPICH's nonblocking collectives progressing only inside MPI calls and
no idle core, 1 MB overlapped buckets were not faster than reducing after backward; and
buckets are PyTorch's 25 MB, so W1-W3 each send one message. ``overlap=True`` with a few
MB per bucket is for MPI libraries with asynchronous progress.

Differences from PyTorch's buckets: PyTorch fills them in forward order until a bucket
reaches the cap (so a bucket may exceed it), makes the first one 1 MB, then reverses the
list, and rebuilds them after the first step in the order the gradients arrived; here
they are filled in reverse order up to the cap and never rebuilt. Which gradients share a
message changes, not the result.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

from minidl import backend
from minidl.distributed.comm import Communicator, Work, init
from minidl.nn.module import Module
from minidl.tensor import Tensor, is_grad_enabled, nodes_below


class _Bucket:
    """Parameters whose gradients are reduced together in one flat array."""

    def __init__(self, params: list[Tensor]) -> None:
        self.params = params
        sizes = [p.numel() for p in params]
        self.offsets = [sum(sizes[:i]) for i in range(len(sizes) + 1)]
        xp = backend.module_for(params[0].device)
        self.flat = xp.empty(self.offsets[-1], dtype=params[0].dtype)
        self.ready = 0
        self.work: Work | None = None

    @property
    def full(self) -> bool:
        return self.ready == len(self.params)

    def pack(self) -> None:
        """Copy each gradient (zeros for a parameter without one) into the flat array."""
        for p, start, end in zip(self.params, self.offsets, self.offsets[1:]):
            if p.grad is None:
                self.flat[start:end] = 0
            else:
                self.flat[start:end] = p.grad.data.reshape(-1)

    def unpack(self) -> None:
        """Write the reduced values back into each parameter's gradient."""
        for p, start, end in zip(self.params, self.offsets, self.offsets[1:]):
            values = self.flat[start:end].reshape(p.shape)
            if p.grad is None:
                p.grad = Tensor(values.copy())
            else:
                p.grad.data[...] = values


def _make_buckets(params: list[Tensor], cap_bytes: int) -> list[_Bucket]:
    """Reverse parameter order, cut when a bucket would exceed ``cap_bytes`` (a parameter
    larger than the cap gets a bucket of its own) or when the dtype or device changes."""
    buckets, current, size = [], [], 0
    for p in reversed(params):
        nbytes = p.numel() * p.dtype.itemsize
        kind_changes = current and (p.dtype, p.device) != (current[0].dtype, current[0].device)
        if current and (size + nbytes > cap_bytes or kind_changes):
            buckets.append(_Bucket(current))
            current, size = [], 0
        current.append(p)
        size += nbytes
    if current:
        buckets.append(_Bucket(current))
    return buckets


class DistributedDataParallel(Module):
    """Wrap ``module`` for data-parallel training, as ``torch.nn.parallel.DistributedDataParallel``.

    Call it like the module. ``process_group``: a ``Communicator`` (default: the world,
    ``minidl.distributed.init()``). ``broadcast_buffers``: copy rank 0's buffers (BatchNorm
    running statistics) to every rank before each training forward. ``bucket_cap_mb``:
    the bucket size. ``find_unused_parameters``: look through the output's graph at each
    forward for parameters that backward will not reach, and count them as ready (their
    gradient counts as zero), so a model with branches unused in some steps does not wait
    for them. ``overlap``: start each bucket's allreduce during backward (see the module
    docstring). ``device_ids`` is accepted for PyTorch's signature; the model stays on its
    device. The wrapped model is ``.module``; the state dict keys start with ``module.``.
    """

    def __init__(
        self,
        module: Module,
        device_ids: list[int] | None = None,
        broadcast_buffers: bool = True,
        process_group: Communicator | None = None,
        bucket_cap_mb: float = 25.0,
        find_unused_parameters: bool = False,
        *,
        overlap: bool = False,
    ) -> None:
        super().__init__()
        self.module = module
        self.comm = process_group if process_group is not None else init()
        self.broadcast_buffers, self.overlap = broadcast_buffers, overlap
        self.find_unused_parameters = find_unused_parameters
        self.require_backward_grad_sync = True
        self._params = [p for p in module.parameters() if p.requires_grad]
        self._sync_state()
        self._buckets = _make_buckets(self._params, int(bucket_cap_mb * 2**20))
        self._bucket_of = {id(p): b for b in self._buckets for p in b.params}
        self._next, self._fired = 0, 0  # next bucket to launch; hooks run this backward
        self._ready: set[int] = set()  # ids of the parameters counted in this iteration
        for p in self._params:
            p.register_post_accumulate_grad_hook(self._grad_ready)

    def _sync_state(self) -> None:
        """Every rank starts from rank 0's parameters and buffers."""
        for p in self.module.parameters():
            self.comm.broadcast(p.data, root=0)
        self._broadcast_buffers()

    def _broadcast_buffers(self) -> None:
        for b in self.module.buffers():
            if b is not None:
                self.comm.broadcast(b.data, root=0)

    def forward(self, *args: Any, **kwargs: Any) -> Any:
        syncing = is_grad_enabled() and self.require_backward_grad_sync
        if syncing:
            self._start_iteration()
        if self.training and self.broadcast_buffers and self.comm.size > 1:
            self._broadcast_buffers()
        out = self.module(*args, **kwargs)
        if syncing and self.find_unused_parameters:
            self._mark_unused(out)
        return out

    @contextlib.contextmanager
    def no_sync(self) -> Iterator[None]:
        """Inside, backward only accumulates local gradients (gradient accumulation);
        the first backward after the block averages the accumulated gradients."""
        previous, self.require_backward_grad_sync = self.require_backward_grad_sync, False
        try:
            yield
        finally:
            self.require_backward_grad_sync = previous

    # ----------------------------------------------------------------- reduction
    def _start_iteration(self) -> None:
        if self._fired:
            missing = [n for n, p in self.module.named_parameters() if self._pending(p)]
            raise RuntimeError(
                "DistributedDataParallel: the previous backward did not produce gradients "
                f"for {missing}, so their reduction never finished; pass "
                "find_unused_parameters=True if some parameters are not used in every step"
            )
        self._reset()

    def _reset(self) -> None:
        for bucket in self._buckets:
            bucket.ready, bucket.work = 0, None
        self._next, self._fired = 0, 0
        self._ready.clear()

    def _pending(self, p: Tensor) -> bool:
        return id(p) in self._bucket_of and id(p) not in self._ready

    def _count(self, p: Tensor) -> None:
        self._ready.add(id(p))
        self._bucket_of[id(p)].ready += 1

    def _grad_ready(self, p: Tensor) -> None:
        """Post-accumulate hook: count ``p`` in; start buckets; finish at the last one."""
        if not self.require_backward_grad_sync:
            return
        self._fired += 1
        self._count(p)
        if self.overlap:
            self._launch_full_buckets()
        if all(b.full for b in self._buckets):
            self._finish()

    def _launch_full_buckets(self) -> None:
        """Start the full buckets in bucket order (the same on every rank)."""
        while self._next < len(self._buckets) and self._buckets[self._next].full:
            bucket = self._buckets[self._next]
            bucket.pack()
            bucket.work = self.comm.iallreduce(bucket.flat, "mean")
            self._next += 1

    def _finish(self) -> None:
        self._launch_full_buckets()
        for bucket in self._buckets:
            bucket.work.wait()
            bucket.unpack()
        self._reset()

    def _mark_unused(self, out: Any) -> None:
        """Count the parameters that backward from ``out`` cannot reach as ready."""
        reached = _leaves_below(out)
        for p in self._params:
            if id(p) not in reached:
                self._count(p)


def _leaves_below(out: Any) -> set[int]:
    """ids of the leaf tensors in the graph below the tensors in ``out``."""
    return {id(n) for n in nodes_below(list(_tensors(out))) if isinstance(n, Tensor)}


def _tensors(out: Any) -> Iterator[Tensor]:
    """The tensors in a (nested) output: a tensor, a tuple/list or dict of them."""
    if isinstance(out, Tensor):
        yield out
    elif isinstance(out, (tuple, list)):
        for x in out:
            yield from _tensors(x)
    elif isinstance(out, dict):
        for x in out.values():
            yield from _tensors(x)
