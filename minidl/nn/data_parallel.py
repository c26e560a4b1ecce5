"""DataParallel: a module run on parts of the batch, one part per thread.

``torch.nn.DataParallel`` splits a batch across GPUs; minidl splits it across the CPU
threads of ``minidl.set_num_threads``. Splitting each op anew (``minidl/parallel.py``)
hands work to a thread some forty times per training step, and on small arrays the
hand-off costs more than it saves; splitting the batch once hands it over twice (forward
and backward), and each thread then runs a whole forward or backward of its part, with
NumPy releasing the GIL inside the array work.

The step computes the function of the whole batch: the parts' outputs are concatenated,
the parameters' gradients are the sums of the parts' gradients, and BatchNorm in training
takes the statistics of the whole batch (the parts exchange their sums between threads as
``SyncBatchNorm`` does between processes; part 0 updates the running estimates). Only the
order of floating-point additions differs from one thread running the whole batch.

What stays as it is in PyTorch's DataParallel: other ops that mix samples see their part
only; the module must return one tensor with the batch along ``dim``. Dropout draws each
part's mask from a generator seeded from the global one, so a run is reproducible at a
given thread count (not across thread counts). ``create_graph=True`` through it
recomputes the whole batch on one thread (and is refused when the forward drew random
numbers: the parts' draws cannot be replayed). Its graph is freed by the first backward
(``retain_graph`` is not kept inside the parts). A tensor hook on a parameter sees each
part's gradient (the parts' backward) and then their sum (the step's).
"""

from __future__ import annotations

from collections import Counter
from typing import Any

import numpy as np

from minidl import backend, parallel
from minidl.grad_mode import is_grad_enabled, set_grad_enabled
from minidl.nn.module import Module
from minidl.tensor import Op, Tensor, run_backward


class DataParallel(Module):
    """``module(*inputs)`` computed on parts of the batch on separate threads.

    module: any module returning one tensor whose ``dim`` is the batch. device_ids: None
    for every thread of ``minidl.get_num_threads()``, or a list whose length is the number
    of parts (at most that many threads). output_device: kept for PyTorch's signature (the
    output is on the inputs' device). Tensor inputs (positional or keyword) are split
    along ``dim``; other arguments reach every part unchanged. With one part, on CuPy
    arrays, or inside another part, it calls ``module`` directly. The state dict holds the
    module's entries under ``module.``, as in PyTorch.
    """

    def __init__(
        self,
        module: Module,
        device_ids: list[int] | None = None,
        output_device: int | None = None,
        dim: int = 0,
    ) -> None:
        super().__init__()
        self.module = module
        self.device_ids, self.output_device, self.dim = device_ids, output_device, dim

    def forward(self, *inputs: Any, **kwargs: Any) -> Any:
        tensors = [x for x in (*inputs, *kwargs.values()) if isinstance(x, Tensor)]
        if not tensors:
            return self.module(*inputs, **kwargs)
        size = _batch_size(tensors, self.dim)
        count = min(size, parallel.get_num_threads())
        if self.device_ids is not None:
            count = min(count, len(self.device_ids))
        parts = parallel.splits(np, size, count * parallel.MIN_PART)  # one per thread
        on_cpu = backend.get_array_module(tensors[0].data) is np
        if len(parts) <= 1 or not on_cpu:
            return self.module(*inputs, **kwargs)
        params = [p for p in self.module.parameters() if p.requires_grad]
        op = ParallelApply(self.module, (inputs, kwargs), parts, self.dim, params)
        return op(*tensors, *params)

    def extra_repr(self) -> str:
        return f"dim={self.dim}"


def _batch_size(tensors: list[Tensor], dim: int) -> int:
    sizes = {t.shape[dim] if t.ndim > dim else None for t in tensors}
    if len(sizes) != 1 or None in sizes:
        shapes = ", ".join(str(tuple(t.shape)) for t in tensors)
        raise ValueError(
            f"DataParallel: every tensor input must have the same size along dim {dim} "
            f"(the batch), got shapes {shapes}"
        )
    return sizes.pop()


class ParallelApply(Op):
    """y = cat_k module(x_k) along ``dim``: each part x_k of the batch on its own thread.

    Inputs: the tensor arguments (N along ``dim``), then the module's parameters p (those
    that require grad). Forward records each part's graph; the parameters are leaves of all
    of them. Backward runs each part's backward on its own thread:
    dx = cat_k dL/dx_k, dp = sum_k dL/dp through part k.
    """

    # Under create_graph its backward recomputes the whole batch and records that.
    graph_backward = True

    def __init__(
        self,
        module: Module,
        arguments: tuple[tuple, dict[str, Any]],
        parts: list[slice],
        dim: int,
        params: list[Tensor],
    ) -> None:
        self.module, self.arguments, self.parts, self.dim = module, arguments, parts, dim
        self.params = params
        self.groups = parallel.ThreadGroup.create(len(parts))
        self.runs: list[tuple[list[Tensor], Tensor]] | None = None  # (x_k, y_k) per part

    def forward(self, *arrays: Any) -> Any:
        record = is_grad_enabled() and any(self.needs_input_grad)
        xs_arrays = arrays[: len(arrays) - len(self.params)]
        needs = self.needs_input_grad[: len(xs_arrays)]
        seeds = backend.generator().integers(2**63, size=len(self.parts))
        self.generators = [_Watched(np.random.default_rng(seed)) for seed in seeds]

        def part(rank: int) -> tuple[list[Tensor], Tensor]:
            cut = self._cut(rank)
            xs = [Tensor(a[cut], requires_grad=n) for a, n in zip(xs_arrays, needs)]
            with set_grad_enabled(record):
                return xs, self._run_part(rank, xs)

        self.runs = self._on_threads(part, self.groups)
        self.drew = any(own.used for own in self.generators)
        return self.xp.concatenate([y.data for _, y in self.runs], axis=self.dim)

    def _run_part(self, rank: int, xs: list[Tensor]) -> Tensor:
        """The module on part ``rank`` (its tensors ``xs``), with the part's generator."""
        args, kwargs = self._arguments(xs)
        with backend.thread_generator(self.generators[rank]):
            y = self.module(*args, **kwargs)
        if not isinstance(y, Tensor) or y.ndim <= self.dim:
            raise TypeError(
                f"DataParallel: the module must return one tensor with the batch along "
                f"dim {self.dim}; part {rank} returned {type(y).__name__} "
                f"{tuple(getattr(y, 'shape', ()))}"
            )
        return y

    def _cut(self, rank: int) -> tuple[slice, ...]:
        return (slice(None),) * self.dim + (self.parts[rank],)

    def _arguments(self, xs: list[Tensor]) -> tuple[list[Any], dict[str, Any]]:
        """The module's arguments with each tensor replaced by its part."""
        given_args, given_kwargs = self.arguments
        parts = iter(xs)
        args = [next(parts) if isinstance(a, Tensor) else a for a in given_args]
        kwargs = {k: next(parts) if isinstance(v, Tensor) else v for k, v in given_kwargs.items()}
        return args, kwargs

    def backward(self, dy: Any) -> tuple:
        if isinstance(dy, Tensor):
            return self._backward_recorded(dy)
        runs, self.runs = self.runs, None  # each part's graph is freed as its backward runs
        if runs is None:
            raise RuntimeError(
                "DataParallel: trying to backward through the parts a second time (their "
                "graphs were freed by the first backward)"
            )
        params = self.params

        def part(rank: int) -> tuple[list[Any], list[Any]]:
            xs, y = runs[rank]
            wanted = [x for x in xs if x.requires_grad] + [p for p in params if p.requires_grad]
            found = run_backward(
                [y], [dy[self._cut(rank)]], False, targets=wanted, accumulate=False
            )
            return [found.get(id(x)) for x in xs], [found.get(id(p)) for p in params]

        grads = self._on_threads(part, self.groups)
        dxs = [
            _cat([g[0][i] for g in grads], [xs[i] for xs, _ in runs], self.xp, self.dim)
            for i in range(len(runs[0][0]))
        ]
        # Part 0's gradient of a parameter takes the others' in place when no other returned
        # gradient is the same array (an op may pass one array to two inputs): one copy of
        # the parameters' gradients fewer at the step's peak.
        uses = Counter(id(a) for a in (*grads[0][0], *grads[0][1]) if a is not None)
        shared = {key for key, count in uses.items() if count > 1}
        dps = [
            _sum([g[1][i] for g in grads], in_place=id(grads[0][1][i]) not in shared)
            for i in range(len(params))
        ]
        return (*dxs, *dps)

    def _backward_recorded(self, dy: Tensor) -> tuple:
        """create_graph: the module recomputed on the whole batch on this thread (the same
        function: BatchNorm takes the batch's statistics, in a group of one, and leaves the
        running estimates alone) and differentiated with its graph recorded. Not parallel:
        the recorded graph's own backward runs later, on one thread."""
        if self.drew:
            raise RuntimeError(
                "DataParallel: create_graph=True through a module that drew random numbers "
                "in its forward (dropout in training) is not supported: the parts' draws "
                "cannot be replayed on the whole batch; call the module itself"
            )
        inputs = list(self.inputs)
        xs = inputs[: len(inputs) - len(self.params)]
        args, kwargs = self._arguments(xs)
        (whole,) = parallel.ThreadGroup.create(1, replay=True)
        with parallel.in_group(whole), set_grad_enabled(True):
            y = self.module(*args, **kwargs)
        wanted = [x for x in xs if x.requires_grad] + list(self.params)
        found = run_backward([y], [dy], True, True, wanted, accumulate=False)
        return tuple(found.get(id(t)) for t in inputs)

    def _on_threads(self, part: Any, groups: list[parallel.ThreadGroup]) -> list[Any]:
        """``[part(k) for k in ranks]``, one part per thread, each in its ThreadGroup; a part
        that fails releases the others from their collectives, and its error is raised."""

        def guarded(rank: int) -> tuple[Any, BaseException | None]:
            group = groups[rank]
            try:
                with parallel.in_group(group):
                    return part(rank), None
            except BaseException as error:  # re-raised below, on the calling thread
                group.abort()
                return None, error

        outcomes = parallel.run_together(guarded, list(range(len(groups))))
        errors = [e for _, e in outcomes if e is not None]
        if errors:  # the first error that is not another part's abort
            raise next((e for e in errors if not isinstance(e, parallel.PartAborted)), errors[0])
        return [result for result, _ in outcomes]

    def free(self) -> None:
        self.runs = None
        super().free()


class _Watched:
    """A part's generator that notes whether the module drew from it."""

    def __init__(self, generator: np.random.Generator) -> None:
        self.generator, self.used = generator, False

    def __getattr__(self, name: str) -> Any:
        self.used = True
        return getattr(self.generator, name)


def _cat(grads: list[Any], xs: list[Tensor], xp: Any, dim: int) -> Any:
    """The parts' gradients of one input x (parts ``xs``), joined along the batch: None if
    no part's output depends on x, zeros for a part whose output does not."""
    if all(g is None for g in grads):
        return None
    grads = [xp.zeros(x.shape, x.dtype) if g is None else g for g, x in zip(grads, xs)]
    return xp.concatenate(grads, axis=dim)


def _sum(grads: list[Any], in_place: bool = False) -> Any:
    """The sum of the parts' gradients of one parameter (None if none reached it); with
    ``in_place``, added into the first when that array owns its memory."""
    present = [g for g in grads if g is not None]
    if not present:
        return None
    total = present[0]
    for g in present[1:]:
        if in_place and isinstance(total, np.ndarray) and total.flags.owndata:
            total += g
        else:
            total = total + g
    return total
