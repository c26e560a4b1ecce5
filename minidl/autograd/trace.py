"""Watch the ops run: ``with minidl.autograd.trace() as tr:`` records every op's forward and
backward, in order, and ``tr.summary()`` adds them up per op type (a profiler).

    with minidl.autograd.trace() as tr:
        loss = F.cross_entropy(model(x), y)
        loss.backward()
    print(tr.table())      # one line per op call: shapes, dtypes, min/mean/max, time, bytes
    print(tr.summary())    # time and memory per op type, the costliest first

Each record holds the op's name, its input and output shapes and dtypes, min/mean/max of
the output (forward) or of the gradients (backward), the wall time of the call, and the
bytes it allocated. Bytes are the arrays the op returns and keeps: its output and what it
saved for backward (forward), the gradients it returns (backward). With
``profile_memory=True`` the peak of NumPy's temporaries inside the call is measured too,
through ``tracemalloc`` (slower; NumPy reports its buffers to it, CuPy's are not seen).

The engine calls a tracer through ``_observers`` in ``minidl/tensor.py``, a list that is empty
unless a tracer is active: outside ``trace()`` an op pays one falsy check.
"""

from __future__ import annotations

import time
import tracemalloc
from collections import defaultdict
from dataclasses import dataclass
from typing import Any

from minidl.tensor import Tensor, _observers


@dataclass
class OpRecord:
    """One call of one op: its forward or its backward."""

    index: int
    phase: str  # "forward" or "backward"
    op: str
    input_shapes: list[tuple[int, ...]]
    input_dtypes: list[str]
    output_shape: tuple[int, ...]
    output_dtype: str
    stats: dict[str, tuple[float, float, float]]  # what -> (min, mean, max)
    seconds: float = 0.0
    bytes: int = 0
    peak_bytes: int | None = None  # tracemalloc peak inside the call (profile_memory)
    during: str = ""  # "backward of Linear" for an op a create_graph backward ran


@dataclass
class _Open:
    """A call in progress: its op, its record and the clock at its start."""

    op: Any
    record: OpRecord
    start: float
    memory_start: int = 0


class trace:
    """Record every op's forward and backward inside the ``with`` block.

    ``values=False`` skips the min/mean/max (they cost one pass over each array);
    ``profile_memory=True`` adds the tracemalloc peak of each call."""

    def __init__(self, values: bool = True, profile_memory: bool = False) -> None:
        self.values = values
        self.profile_memory = profile_memory
        self.records: list[OpRecord] = []
        self._open: list[_Open] = []
        self._started_tracemalloc = False

    # ----------------------------------------------------------------- context
    def __enter__(self) -> trace:
        if self.profile_memory and not tracemalloc.is_tracing():
            tracemalloc.start()
            self._started_tracemalloc = True
        _observers.append(self)
        return self

    def __exit__(self, *exc: object) -> None:
        _observers.remove(self)
        if self._started_tracemalloc:
            tracemalloc.stop()
            self._started_tracemalloc = False

    # ----------------------------------------------------------------- engine callbacks
    def before_forward(self, op: Any, tensors: tuple) -> None:
        record = OpRecord(
            index=len(self.records),
            phase="forward",
            op=op.name,
            input_shapes=[t.shape for t in tensors],
            input_dtypes=[str(t.dtype) for t in tensors],
            output_shape=(),
            output_dtype="",
            stats={},
            during=self._during(),
        )
        self._start(op, record)

    def after_forward(self, op: Any, tensors: tuple, out: Any) -> None:
        record = self._stop(op)
        record.output_shape, record.output_dtype = out.shape, str(out.dtype)
        saved = getattr(op, "_saved", None) or ()
        kept = [a for a in saved if hasattr(a, "nbytes")]
        fresh = not _is_view_of(out.data, tensors)
        record.bytes = int(out.data.nbytes) * fresh + sum(
            int(a.nbytes) for a in kept if a is not out.data and not _is_view_of(a, tensors)
        )
        if self.values:
            record.stats["output"] = _stats(out.data)

    def before_backward(self, op: Any, grad: Any) -> None:
        grad = _array(grad)  # a Tensor in a create_graph backward
        record = OpRecord(
            index=len(self.records),
            phase="backward",
            op=op.name,
            input_shapes=[t.shape for t in op.inputs],
            input_dtypes=[str(t.dtype) for t in op.inputs],
            output_shape=tuple(grad.shape),
            output_dtype=str(grad.dtype),
            stats={},
            during=self._during(),
        )
        if self.values:
            record.stats["grad_output"] = _stats(grad)
        self._start(op, record)

    def after_backward(self, op: Any, grad: Any, input_grads: tuple) -> None:
        record = self._stop(op)
        grads = [_array(g) for g in input_grads if g is not None]
        record.bytes = sum(int(g.nbytes) for g in grads)
        if self.values:
            for k, g in enumerate(input_grads):
                if g is not None:
                    record.stats[f"grad_input {k}"] = _stats(_array(g))

    def _start(self, op: Any, record: OpRecord) -> None:
        self.records.append(record)
        memory = 0
        if self.profile_memory:
            memory = tracemalloc.get_traced_memory()[0]
            tracemalloc.reset_peak()
        self._open.append(_Open(op, record, time.perf_counter(), memory))

    def _stop(self, op: Any) -> OpRecord:
        """Close the call of ``op`` (and any call an exception left open above it)."""
        while self._open[-1].op is not op:
            self._open.pop()
        done = self._open.pop()
        done.record.seconds = time.perf_counter() - done.start
        if self.profile_memory:
            done.record.peak_bytes = max(0, tracemalloc.get_traced_memory()[1] - done.memory_start)
        return done.record

    def _during(self) -> str:
        """Which backward is running this op (ops inside a create_graph backward)."""
        backward = [o.record for o in self._open if o.record.phase == "backward"]
        return f"backward of {backward[-1].op}" if backward else ""

    # ----------------------------------------------------------------- reports
    def table(self, limit: int | None = None) -> str:
        """One line per op call, in order (the first ``limit`` lines if given): a forward
        shows its output's values, a backward the gradient it received for that output."""
        head = ["#", "phase", "op", "inputs", "output", "min / mean / max", "ms", "KiB"]
        rows = [head]
        for r in self.records[:limit]:
            phase = r.phase if not r.during else f"{r.phase} ({r.during})"
            shapes = " ".join(_shape(s) for s in r.input_shapes)
            stats = r.stats.get("output" if r.phase == "forward" else "grad_output")
            out = f"{_shape(r.output_shape)} {r.output_dtype}"
            time_and_bytes = [f"{r.seconds * 1e3:.3f}", f"{r.bytes / 1024:.1f}"]
            rows.append(
                [str(r.index), phase, r.op, shapes, out, _fmt_stats(stats), *time_and_bytes]
            )
        if limit is not None and len(self.records) > limit:
            rows.append(["...", f"{len(self.records) - limit} more", "", "", "", "", "", ""])
        return _format(rows, right={0, 6, 7})

    def by_op(self) -> dict[str, dict[str, float]]:
        """Per op type: calls, forward and backward seconds, bytes (and peak bytes)."""
        totals: dict[str, dict[str, float]] = defaultdict(
            lambda: {"calls": 0, "forward_s": 0.0, "backward_s": 0.0, "bytes": 0, "peak": 0}
        )
        for r in self.records:
            entry = totals[r.op]
            if r.phase == "forward":
                entry["calls"] += 1
            entry[f"{r.phase}_s"] += r.seconds
            entry["bytes"] += r.bytes
            entry["peak"] = max(entry["peak"], r.peak_bytes or 0)
        return dict(totals)

    def op_seconds(self) -> float:
        """Time spent in ops; an op run by a create_graph backward counts once, inside it."""
        return sum(r.seconds for r in self.records if not r.during)

    def summary(self) -> str:
        """Time and memory per op type, the costliest first, with each type's share of
        ``op_seconds()``."""
        totals = self.by_op()
        grand = self.op_seconds() or 1.0
        head = ["op", "calls", "forward ms", "backward ms", "total ms", "share", "MiB"]
        if self.profile_memory:
            head.append("peak MiB")
        rows = [head]
        order = sorted(totals.items(), key=lambda kv: -(kv[1]["forward_s"] + kv[1]["backward_s"]))
        for name, e in order:
            total = e["forward_s"] + e["backward_s"]
            row = [name, str(int(e["calls"])), f"{e['forward_s'] * 1e3:.2f}"]
            row += [f"{e['backward_s'] * 1e3:.2f}", f"{total * 1e3:.2f}", f"{total / grand:.0%}"]
            row.append(f"{e['bytes'] / 2**20:.2f}")
            if self.profile_memory:
                row.append(f"{e['peak'] / 2**20:.2f}")
            rows.append(row)
        rows.append(
            ["total", "", "", "", f"{grand * 1e3:.2f}", "", ""] + [""] * self.profile_memory
        )
        return _format(rows, right=set(range(1, len(head))))


def _is_view_of(array: Any, tensors: tuple) -> bool:
    """Whether ``array`` is (a view of) one of the inputs' arrays: no new memory."""
    base = getattr(array, "base", None)
    for t in tensors:
        owner = getattr(t.data, "base", None)
        owner = t.data if owner is None else owner
        if array is t.data or (base is not None and base is owner):
            return True
    return False


def _array(g: Any) -> Any:
    return g.data if isinstance(g, Tensor) else g


def _stats(array: Any) -> tuple[float, float, float]:
    if array.size == 0 or array.dtype.kind not in "fiub":
        return (float("nan"),) * 3
    a = array if array.dtype.kind == "f" else array.astype("float64")
    return float(a.min()), float(a.mean()), float(a.max())


def _fmt_stats(stats: tuple[float, float, float] | None) -> str:
    return "" if stats is None else " / ".join(f"{v:.3g}" for v in stats)


def _shape(shape: tuple[int, ...]) -> str:
    return str(tuple(shape)).replace(" ", "")


def _format(rows: list[list[str]], right: set[int]) -> str:
    """Columns padded to their widest cell; numbers right-aligned."""
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    lines = []
    for n, row in enumerate(rows):
        cells = [
            c.rjust(w) if i in right else c.ljust(w) for i, (c, w) in enumerate(zip(row, widths))
        ]
        lines.append("  ".join(cells).rstrip())
        if n == 0:
            lines.append("  ".join("-" * w for w in widths))
    return "\n".join(lines)
