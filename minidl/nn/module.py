"""``Module``, ``Parameter`` and the containers, as in ``torch.nn``.

A module owns parameters (tensors that train), buffers (tensors that do not, such as
BatchNorm's running statistics) and child modules, each registered by assigning an
attribute. ``state_dict`` names them with dotted paths exactly as PyTorch does, so a
PyTorch state dict converted to NumPy arrays loads with ``load_state_dict``.
"""

from __future__ import annotations

from collections import OrderedDict, namedtuple
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any

from minidl import backend
from minidl.nn import hooks as _hooks
from minidl.tensor import Tensor, resolve_dtype
from minidl.utils.hooks import RemovableHandle

_HOOK_TABLES = (
    "_forward_pre_hooks",
    "_forward_pre_hooks_with_kwargs",
    "_forward_hooks",
    "_forward_hooks_with_kwargs",
    "_forward_hooks_always_called",
    "_backward_pre_hooks",
    "_backward_hooks",
)


class Parameter(Tensor):
    """A tensor that is a module's learnable weight: it requires grad by default."""

    __slots__ = ()

    def __init__(self, data: Tensor | Any, requires_grad: bool = True) -> None:
        super().__init__(data.data if isinstance(data, Tensor) else data, requires_grad)

    def __repr__(self) -> str:
        return "Parameter containing:\n" + super().__repr__()


class IncompatibleKeys(namedtuple("IncompatibleKeys", ["missing_keys", "unexpected_keys"])):
    """What ``load_state_dict`` returns, as PyTorch's ``_IncompatibleKeys``: the model's
    keys the state dict lacked (``missing_keys``), and the state dict's keys the model does
    not have (``unexpected_keys``)."""

    __slots__ = ()

    def __repr__(self) -> str:
        if not self.missing_keys and not self.unexpected_keys:
            return "<All keys matched successfully>"
        return super().__repr__()


class Module:
    """Base class of every layer and model. Subclasses set attributes in ``__init__`` and
    define ``forward``; calling the module calls ``forward``."""

    training: bool

    def __init__(self) -> None:
        object.__setattr__(self, "_parameters", OrderedDict())
        object.__setattr__(self, "_buffers", OrderedDict())
        object.__setattr__(self, "_modules", OrderedDict())
        object.__setattr__(self, "training", True)
        for table in _HOOK_TABLES:  # OrderedDicts: a handle refers to them weakly
            object.__setattr__(self, table, OrderedDict())

    # ----------------------------------------------------------------- registration
    def __setattr__(self, name: str, value: Any) -> None:
        if "_parameters" not in self.__dict__:
            raise AttributeError(
                f"{type(self).__name__}: call super().__init__() before assigning {name!r}"
            )
        if name in self._buffers and (value is None or isinstance(value, Tensor)):
            self._buffers[name] = value  # e.g. BatchNorm replacing its running mean
            return
        for table in (self._parameters, self._buffers, self._modules):
            table.pop(name, None)
        if isinstance(value, Parameter):
            self._parameters[name] = value
        elif isinstance(value, Module):
            self._modules[name] = value
        else:
            object.__setattr__(self, name, value)
            return
        self.__dict__.pop(name, None)

    def __getattr__(self, name: str) -> Any:
        for table in ("_parameters", "_buffers", "_modules"):
            entries = self.__dict__.get(table)
            if entries is not None and name in entries:
                return entries[name]
        raise AttributeError(f"'{type(self).__name__}' object has no attribute '{name}'")

    def __delattr__(self, name: str) -> None:
        for table in (self._parameters, self._buffers, self._modules):
            if name in table:
                del table[name]
                return
        object.__delattr__(self, name)

    def register_buffer(self, name: str, tensor: Tensor | None, persistent: bool = True) -> None:
        """A tensor that is not trained but moves with the module (``to``, ``double``) and
        is listed by ``named_buffers``, e.g. running statistics; it is in the state dict
        unless ``persistent=False`` (a cache, or a constant rebuilt by ``__init__``)."""
        if not isinstance(name, str) or not name or "." in name:
            raise KeyError(
                f"register_buffer: buffer name must be a non-empty str without '.', got {name!r}"
            )
        if tensor is not None and not isinstance(tensor, Tensor):
            raise TypeError(
                f"register_buffer: cannot assign {type(tensor).__name__} as buffer {name!r} "
                "(a Tensor or None is required)"
            )
        if name in self.__dict__ or name in self._parameters or name in self._modules:
            raise KeyError(f"register_buffer: attribute {name!r} already exists")
        self._buffers[name] = tensor
        non_persistent = self.__dict__.setdefault("_non_persistent", set())
        if persistent:
            non_persistent.discard(name)
        else:
            non_persistent.add(name)

    def register_parameter(self, name: str, param: Parameter | None) -> None:
        """Register ``param`` (or ``None``, as for ``bias=False``) under ``name``."""
        self._parameters[name] = param

    def add_module(self, name: str, module: Module | None) -> None:
        self._modules[name] = module

    # ----------------------------------------------------------------- calling
    def forward(self, *args: Any, **kwargs: Any) -> Any:
        raise NotImplementedError(f"{type(self).__name__} has no forward()")

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        if (
            self._forward_pre_hooks
            or self._forward_hooks
            or self._backward_hooks
            or self._backward_pre_hooks
        ):
            return _hooks.call_with_hooks(self, args, kwargs)
        return self.forward(*args, **kwargs)

    # ----------------------------------------------------------------- hooks
    # PyTorch's semantics; the machinery and the order of one call are in nn/hooks.py.
    def register_forward_pre_hook(
        self, hook: Callable, *, prepend: bool = False, with_kwargs: bool = False
    ) -> RemovableHandle:
        """``hook(module, args)`` before ``forward``; a returned value (a tuple, or one
        value that is wrapped in a tuple) replaces the positional inputs. With
        ``with_kwargs=True``: ``hook(module, args, kwargs)`` returning None or
        ``(args, kwargs)``."""
        return self._add_hook("_forward_pre_hooks", hook, prepend, with_kwargs=with_kwargs)

    def register_forward_hook(
        self,
        hook: Callable,
        *,
        prepend: bool = False,
        with_kwargs: bool = False,
        always_call: bool = False,
    ) -> RemovableHandle:
        """``hook(module, args, output)`` after ``forward`` (``hook(module, args, kwargs,
        output)`` with ``with_kwargs=True``); a returned value replaces the output.
        ``always_call=True``: also called (with output None) when ``forward`` raises."""
        return self._add_hook(
            "_forward_hooks", hook, prepend, with_kwargs=with_kwargs, always_called=always_call
        )

    def register_full_backward_pre_hook(
        self, hook: Callable, prepend: bool = False
    ) -> RemovableHandle:
        """``hook(module, grad_output)`` when the gradients with respect to the module's
        outputs are complete; a returned tuple replaces ``grad_output``."""
        return self._add_hook("_backward_pre_hooks", hook, prepend)

    def register_full_backward_hook(self, hook: Callable, prepend: bool = False) -> RemovableHandle:
        """``hook(module, grad_input, grad_output)`` when the gradients with respect to the
        module's positional tensor inputs are complete (one entry per positional argument,
        None for non-tensors and inputs that need no grad); a returned tuple replaces
        ``grad_input``. The module's ``forward`` then sees, and its caller gets, tensors
        passed through an identity op, as in PyTorch."""
        return self._add_hook("_backward_hooks", hook, prepend)

    def _add_hook(
        self, table: str, hook: Callable, prepend: bool, **flags: bool
    ) -> RemovableHandle:
        """Add ``hook`` to ``table``; each true flag marks it in ``{table}_{flag}`` too."""
        hooks = self.__dict__[table]
        flag_tables = [self.__dict__[f"{table}_{flag}"] for flag, on in flags.items() if on]
        handle = RemovableHandle(hooks, *flag_tables)
        hooks[handle.id] = hook
        if prepend:
            hooks.move_to_end(handle.id, last=False)
        for flagged in flag_tables:
            flagged[handle.id] = True
        return handle

    # ----------------------------------------------------------------- traversal
    def named_modules(
        self, memo: set[int] | None = None, prefix: str = "", remove_duplicate: bool = True
    ) -> Iterator[tuple[str, Module]]:
        """This module and its descendants, depth first; a module reachable twice (shared)
        is yielded once unless ``remove_duplicate`` is false, as in PyTorch."""
        if memo is None:
            memo = set()
        if remove_duplicate:
            if id(self) in memo:
                return
            memo.add(id(self))
        yield prefix, self
        for name, child in self._modules.items():
            if child is not None:
                child_prefix = f"{prefix}.{name}" if prefix else name
                yield from child.named_modules(memo, child_prefix, remove_duplicate)

    def modules(self) -> Iterator[Module]:
        return (m for _, m in self.named_modules())

    def named_children(self) -> Iterator[tuple[str, Module]]:
        return ((n, m) for n, m in self._modules.items() if m is not None)

    def children(self) -> Iterator[Module]:
        return (m for _, m in self.named_children())

    def _named_members(self, table: str, recurse: bool) -> Iterator[tuple[str, Tensor]]:
        seen: set[int] = set()
        modules = self.named_modules() if recurse else [("", self)]
        for prefix, module in modules:
            for name, value in getattr(module, table).items():
                if value is None or id(value) in seen:
                    continue
                seen.add(id(value))
                yield (f"{prefix}.{name}" if prefix else name), value

    def named_parameters(self, recurse: bool = True) -> Iterator[tuple[str, Parameter]]:
        return self._named_members("_parameters", recurse)  # type: ignore[return-value]

    def parameters(self, recurse: bool = True) -> Iterator[Parameter]:
        return (p for _, p in self.named_parameters(recurse))

    def named_buffers(self, recurse: bool = True) -> Iterator[tuple[str, Tensor]]:
        return self._named_members("_buffers", recurse)

    def buffers(self, recurse: bool = True) -> Iterator[Tensor]:
        return (b for _, b in self.named_buffers(recurse))

    def get_submodule(self, target: str) -> Module:
        """The submodule at the dotted path ``target`` ("" is this module), e.g.
        ``model.get_submodule("encoder.layers.0")``; an error names the missing step."""
        module: Module = self
        walked = type(self).__name__
        for item in target.split(".") if target else []:
            child = module._modules.get(item)
            if child is None:
                if hasattr(module, item):
                    raise AttributeError(f"{walked}.{item} is not an nn.Module")
                raise AttributeError(
                    f"{walked} ({type(module).__name__}) has no attribute `{item}`"
                )
            module, walked = child, f"{walked}.{item}"
        return module

    def get_parameter(self, target: str) -> Parameter:
        """The parameter at the dotted path ``target``, e.g. ``"encoder.0.weight"``."""
        return self._get_member(target, "_parameters", "nn.Parameter")  # type: ignore[return-value]

    def get_buffer(self, target: str) -> Tensor:
        """The buffer at the dotted path ``target``, e.g. ``"bn.running_mean"``."""
        return self._get_member(target, "_buffers", "buffer")

    def _get_member(self, target: str, table: str, kind: str) -> Tensor:
        path, _, name = target.rpartition(".")
        module = self.get_submodule(path)
        if name not in getattr(module, table):
            if not hasattr(module, name):
                raise AttributeError(f"{type(module).__name__} has no attribute `{name}`")
            raise AttributeError(f"`{target}` is not a {kind}")
        return getattr(module, table)[name]

    def apply(self, fn: Callable[[Module], None]) -> Module:
        """Call ``fn`` on every submodule (children first) and on self."""
        for child in self.children():
            child.apply(fn)
        fn(self)
        return self

    # ----------------------------------------------------------------- modes
    def train(self, mode: bool = True) -> Module:
        for m in self.modules():
            object.__setattr__(m, "training", mode)
        return self

    def eval(self) -> Module:
        return self.train(False)

    def requires_grad_(self, requires_grad: bool = True) -> Module:
        """Set ``requires_grad`` of every parameter (False freezes the module, e.g. a
        pretrained backbone); returns the module."""
        for p in self.parameters():
            p.requires_grad_(requires_grad)
        return self

    def zero_grad(self, set_to_none: bool = True) -> None:
        for p in self.parameters():
            if set_to_none:
                p.grad = None
            elif p.grad is not None:
                p.grad.data[...] = 0

    # ----------------------------------------------------------------- devices, dtypes
    def to(self, *args: Any, dtype: Any = None, device: str | None = None) -> Module:
        """Move parameters and buffers to a device and/or floating dtype, in place."""
        for arg in args:
            if isinstance(arg, str) and arg.split(":")[0] in backend.DEVICES:
                device = arg
            else:
                dtype = arg
        dtype = resolve_dtype(dtype)
        for tensor in [*self.parameters(), *self.buffers()]:
            tensor.data = _convert(tensor.data, device, dtype)
            if tensor.grad is not None:  # gradients follow, as in PyTorch
                tensor.grad.data = _convert(tensor.grad.data, device, dtype)
        return self

    def half(self) -> Module:
        """Floating parameters and buffers to float16 (integer buffers keep their dtype)."""
        return self.to("float16")

    def float(self) -> Module:
        return self.to("float32")

    def double(self) -> Module:
        return self.to("float64")

    def cpu(self) -> Module:
        return self.to("cpu")

    def cuda(self) -> Module:
        return self.to("cuda")

    # ----------------------------------------------------------------- state dict
    def state_dict(self) -> OrderedDict[str, Tensor]:
        """Parameters and persistent buffers by dotted name, as in PyTorch."""
        out: OrderedDict[str, Tensor] = OrderedDict()
        for prefix, module in self.named_modules(remove_duplicate=False):
            skip = module.__dict__.get("_non_persistent", set())
            for table in ("_parameters", "_buffers"):
                for name, value in getattr(module, table).items():
                    if value is not None and name not in skip:
                        out[f"{prefix}.{name}" if prefix else name] = value.detach()
        return out

    def load_state_dict(
        self, state_dict: Mapping[str, Any], strict: bool = True
    ) -> IncompatibleKeys:
        """Copy values (tensors or arrays, e.g. a PyTorch state dict converted with
        ``.numpy()``) into the parameters and buffers of the same names.

        Shape mismatches always raise; missing or unexpected keys raise when ``strict``.
        Returns ``IncompatibleKeys(missing_keys, unexpected_keys)``, a named tuple."""
        own = self.state_dict()
        missing = [k for k in own if k not in state_dict]
        unexpected = [k for k in state_dict if k not in own]
        mismatched = [
            f"{k}: checkpoint {tuple(_shape(state_dict[k]))} vs model {own[k].shape}"
            for k in own
            if k in state_dict and tuple(_shape(state_dict[k])) != own[k].shape
        ]
        problems = []
        if mismatched:
            problems.append("shape mismatch for " + "; ".join(mismatched))
        if strict and missing:
            problems.append("missing keys " + ", ".join(missing))
        if strict and unexpected:
            problems.append("unexpected keys " + ", ".join(unexpected))
        if problems:
            raise RuntimeError(
                f"error loading state dict into {type(self).__name__}: " + "; ".join(problems)
            )
        targets = dict(self._state_tensors())
        for key in own:
            if key in state_dict:
                target = targets[key]
                value = state_dict[key]
                value = value.data if isinstance(value, Tensor) else value
                host = backend.to_numpy(value)
                target.data = backend.to_device(host.astype(target.dtype), target.device)
        return IncompatibleKeys(missing, unexpected)

    def _state_tensors(self) -> Iterator[tuple[str, Tensor]]:
        """The live tensors behind ``state_dict`` keys (the state dict holds detached
        views; loading must rebind the module's own tensors)."""
        for prefix, module in self.named_modules(remove_duplicate=False):
            for table in ("_parameters", "_buffers"):
                for name, value in getattr(module, table).items():
                    if value is not None:
                        yield (f"{prefix}.{name}" if prefix else name), value

    # ----------------------------------------------------------------- printing
    def extra_repr(self) -> str:
        return ""

    def __repr__(self) -> str:
        """PyTorch's layout: a one-line extra_repr inline, otherwise one item per line."""
        extra = self.extra_repr()
        extra_lines = extra.split("\n") if extra else []
        children = [f"({n}): {_indent(repr(m))}" for n, m in self._modules.items()]
        return _block(type(self).__name__, extra_lines, children)


def _convert(data: Any, device: str | None, dtype: Any) -> Any:
    """``data`` on ``device`` and, if floating, of ``dtype`` (either may be None)."""
    if device is not None:
        data = backend.to_device(data, device)
    if dtype is not None and data.dtype.kind == "f":
        data = data.astype(dtype)
    return data


def _shape(value: Any) -> tuple[int, ...]:
    return tuple(value.shape) if hasattr(value, "shape") else ()


def _indent(text: str) -> str:
    return text.replace("\n", "\n  ")


def _block(name: str, extra_lines: list[str], child_lines: list[str]) -> str:
    if len(extra_lines) == 1 and not child_lines:
        return f"{name}({extra_lines[0]})"
    lines = extra_lines + child_lines
    if not lines:
        return f"{name}()"
    return f"{name}(\n  " + "\n  ".join(lines) + "\n)"


class Sequential(Module):
    """Modules applied in order: ``Sequential(Linear(2, 3), ReLU())``, or from an
    ``OrderedDict`` of names to modules."""

    def __init__(self, *modules: Module | Mapping[str, Module]) -> None:
        super().__init__()
        if len(modules) == 1 and isinstance(modules[0], Mapping):
            for name, m in modules[0].items():
                self.add_module(name, m)
        else:
            for i, m in enumerate(modules):
                self.add_module(str(i), m)

    def forward(self, x: Any) -> Any:
        for m in self._modules.values():
            x = m(x)
        return x

    def __getitem__(self, index: int | slice) -> Module:
        items = list(self._modules.values())
        if isinstance(index, slice):
            return Sequential(*items[index])
        return items[index]

    def __len__(self) -> int:
        return len(self._modules)

    def __iter__(self) -> Iterator[Module]:
        return iter(self._modules.values())

    def append(self, module: Module) -> Sequential:
        self.add_module(str(len(self._modules)), module)
        return self


class ModuleList(Module):
    """A list of modules, registered as children ``0``, ``1``, ..."""

    def __init__(self, modules: Iterable[Module] = ()) -> None:
        super().__init__()
        for m in modules:
            self.append(m)

    def append(self, module: Module) -> ModuleList:
        self.add_module(str(len(self._modules)), module)
        return self

    def extend(self, modules: Iterable[Module]) -> ModuleList:
        for m in modules:
            self.append(m)
        return self

    def __getitem__(self, index: int) -> Module:
        return list(self._modules.values())[index]

    def __len__(self) -> int:
        return len(self._modules)

    def __iter__(self) -> Iterator[Module]:
        return iter(self._modules.values())

    def __repr__(self) -> str:
        """Runs of equal children are shown once, as ``(0-2): 3 x Linear(...)``."""
        runs: list[list] = []  # [first index, last index, repr]
        for i, m in enumerate(self):
            text = repr(m)
            if runs and runs[-1][2] == text:
                runs[-1][1] = i
            else:
                runs.append([i, i, text])
        lines = [
            _indent(f"({a}): {text}" if a == b else f"({a}-{b}): {b - a + 1} x {text}")
            for a, b, text in runs
        ]
        return _block(type(self).__name__, [], lines)


class ModuleDict(Module):
    """A dict of modules, registered as children under their keys."""

    def __init__(self, modules: Mapping[str, Module] | None = None) -> None:
        super().__init__()
        for name, m in (modules or {}).items():
            self.add_module(name, m)

    def __getitem__(self, key: str) -> Module:
        return self._modules[key]

    def __setitem__(self, key: str, module: Module) -> None:
        self.add_module(key, module)

    def __contains__(self, key: str) -> bool:
        return key in self._modules

    def __len__(self) -> int:
        return len(self._modules)

    def __iter__(self) -> Iterator[str]:
        return iter(self._modules)

    def keys(self) -> Iterable[str]:
        return self._modules.keys()

    def values(self) -> Iterable[Module]:
        return self._modules.values()

    def items(self) -> Iterable[tuple[str, Module]]:
        return self._modules.items()
