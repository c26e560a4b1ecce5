"""``summary(model, input_size)``: a table of a model's layers, output shapes and parameter
counts, like torchinfo's or Keras's.

It runs one forward pass in evaluation mode without gradients, with each module's
``forward`` temporarily replaced by a wrapper that records the output shape (minidl has no
hooks, and needs none for this). The model is left exactly as it was: modes restored,
no running statistics updated.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from minidl.nn.module import Module
from minidl.tensor import Tensor, float32, no_grad, resolve_dtype
from minidl.tensor_functions import randn, zeros


@dataclass
class LayerRow:
    """One call of one module: its dotted name ("" for the model itself), class name,
    depth in the module tree, output shape(s) and the number of parameters it owns
    directly (a container's children are counted on their own rows)."""

    name: str
    kind: str
    depth: int
    num_params: int
    output_shape: Any = None


@dataclass
class ModelSummary:
    """What ``summary`` measured; ``str()`` gives the table."""

    rows: list[LayerRow]
    input_shapes: list[tuple[int, ...]]
    total_params: int
    trainable_params: int
    param_bytes: int
    input_bytes: int
    output_shape: Any = None
    columns: tuple[str, ...] = field(default=("Layer (type)", "Output Shape", "Param #"))

    @property
    def non_trainable_params(self) -> int:
        return self.total_params - self.trainable_params

    def __str__(self) -> str:
        body = [
            (
                "  " * row.depth + (f"{row.name} ({row.kind})" if row.name else row.kind),
                _format_shape(row.output_shape),
                f"{row.num_params:,}" if row.num_params else "--",
            )
            for row in self.rows
        ]
        widths = [max(len(r[i]) for r in [self.columns, *body]) for i in range(3)]
        rule = "=" * (sum(widths) + 4)

        def line(cells: Sequence[str]) -> str:
            return f"{cells[0]:<{widths[0]}}  {cells[1]:<{widths[1]}}  {cells[2]:>{widths[2]}}"

        footer = [
            f"Total params: {self.total_params:,}",
            f"Trainable params: {self.trainable_params:,}",
            f"Non-trainable params: {self.non_trainable_params:,}",
            f"Input size (MB): {self.input_bytes / 1e6:.2f}",
            f"Params size (MB): {self.param_bytes / 1e6:.2f}",
        ]
        table = [rule, line(self.columns), rule, *(line(r) for r in body), rule]
        return "\n".join([*table, *footer, rule])

    def __repr__(self) -> str:
        return (
            f"ModelSummary(layers={len(self.rows)}, total_params={self.total_params}, "
            f"trainable_params={self.trainable_params})"
        )


def summary(
    model: Module,
    input_size: Sequence[int] | Sequence[Sequence[int]] | None = None,
    input: Tensor | Sequence[Tensor] | None = None,
    dtype: Any = None,
    verbose: int = 1,
) -> ModelSummary:
    """Run ``model`` once and tabulate its layers.

    Give either ``input_size``, the full input shape with the batch dim (or a list of
    shapes for a model of several inputs), or ``input``, example tensor(s). Inputs made
    from ``input_size`` are N(0, 1) of ``dtype`` (float32 by default), or zeros for an
    integer dtype (valid indices for an Embedding), on the device of the model's
    parameters. ``verbose=1`` prints the table; the summary is returned either way.
    """
    inputs = _example_inputs(model, input_size, input, dtype)
    rows: list[LayerRow] = []
    modes = {id(m): m.training for m in model.modules()}
    restore = [_trace(m, name, rows) for name, m in model.named_modules()]
    try:
        model.eval()
        with no_grad():
            output = model(*inputs)
    finally:
        for undo in restore:
            undo()
        for m in model.modules():
            object.__setattr__(m, "training", modes[id(m)])
    params = list(model.parameters())
    result = ModelSummary(
        rows=rows,
        input_shapes=[x.shape for x in inputs],
        total_params=sum(p.numel() for p in params),
        trainable_params=sum(p.numel() for p in params if p.requires_grad),
        param_bytes=sum(p.numel() * p.dtype.itemsize for p in params),
        input_bytes=sum(x.numel() * x.dtype.itemsize for x in inputs),
        output_shape=_shape_of(output),
    )
    if verbose:
        print(result)
    return result


def _example_inputs(model: Module, input_size: Any, input: Any, dtype: Any) -> list[Tensor]:
    if (input_size is None) == (input is None):
        raise ValueError("summary: give exactly one of input_size and input")
    if input is not None:
        return [input] if isinstance(input, Tensor) else list(input)
    sizes = [input_size] if all(isinstance(d, int) for d in input_size) else list(input_size)
    dtype = resolve_dtype(dtype or float32)
    first = next(iter([*model.parameters(), *model.buffers()]), None)
    device = None if first is None else first.device
    make = randn if dtype.kind == "f" else zeros
    return [make(*size, dtype=dtype, device=device) for size in sizes]


def _trace(module: Module, name: str, rows: list[LayerRow]) -> Callable[[], None]:
    """Wrap ``module.forward`` to record a row per call; return the function that undoes it."""
    own = module.__dict__.get("forward")
    original = module.forward
    depth = 0 if not name else name.count(".") + 1
    num_params = sum(p.numel() for p in module.parameters(recurse=False))

    def traced(*args: Any, **kwargs: Any) -> Any:
        row = LayerRow(name, type(module).__name__, depth, num_params)
        rows.append(row)  # before the call, so a container precedes its children
        try:
            out = original(*args, **kwargs)
        except Exception as error:
            notes = getattr(error, "__notes__", [])
            if hasattr(error, "add_note") and not any(n.startswith("summary:") for n in notes):
                error.add_note(f"summary: raised in {name or 'the model'} ({row.kind})")
            raise
        row.output_shape = _shape_of(out)
        return out

    object.__setattr__(module, "forward", traced)

    def undo() -> None:
        if own is None:
            del module.__dict__["forward"]
        else:
            object.__setattr__(module, "forward", own)

    return undo


def _shape_of(out: Any) -> Any:
    """A tensor's shape; lists of shapes for tuples and lists of outputs; None otherwise."""
    if isinstance(out, Tensor):
        return out.shape
    if isinstance(out, (tuple, list)):
        return [_shape_of(o) for o in out]
    if isinstance(out, dict):
        return {k: _shape_of(v) for k, v in out.items()}
    return None


def _format_shape(shape: Any) -> str:
    if shape is None:
        return "--"
    if isinstance(shape, tuple):
        return "[" + ", ".join(map(str, shape)) + "]"
    if isinstance(shape, dict):
        return "{" + ", ".join(f"{k}: {_format_shape(v)}" for k, v in shape.items()) + "}"
    return "[" + ", ".join(_format_shape(s) for s in shape) + "]"
