"""``python -m minidl.ops``: every op, found from the name a user calls.

For every public name that builds ops (``F.conv2d``, ``Tensor.sum``, ``Tensor.__add__``,
``minidl.cat``, the forward of a layer such as ``nn.LSTM``) the listing gives the op
classes its code builds, followed through minidl's private helper functions, and the file
and line of each class: the class holds the forward and the backward side by side. A
composite (``F.cross_entropy``) is listed with the public names it is built from. Then
every op class in ``minidl/ops/`` with the names that build it; ``--markdown`` prints that
table as the README has it. ``--op NAME`` keeps one op class or one public name.

The names are found by reading the code (its syntax tree), not by running it. Operators
(``a - b``) and methods (``x.sum()``) count when ``a`` or ``x`` is ``self`` in a ``Tensor``
method or a parameter annotated as a ``Tensor``; an op reached through any other variable
is not seen, so a composite's list of the names it is built from can be short.
"""

from __future__ import annotations

import argparse
import ast
import importlib
import inspect
import pkgutil
import sys
import textwrap
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from types import FunctionType, ModuleType
from typing import Any

import minidl
from minidl import distributed, nn, quant
from minidl.nn import functional as F
from minidl.tensor import Tensor

OPERATORS: dict[type[ast.AST], str] = {
    ast.Add: "__add__",
    ast.Sub: "__sub__",
    ast.Mult: "__mul__",
    ast.Div: "__truediv__",
    ast.Pow: "__pow__",
    ast.MatMult: "__matmul__",
    ast.USub: "__neg__",
}
ROOT = Path(minidl.__file__).resolve().parent


@dataclass
class Entry:
    """A public name, the op classes its code builds (itself or through private helpers),
    and the other public names it calls (a composite is built from those)."""

    name: str
    ops: list[type]
    uses: list[str]


def op_classes() -> list[type]:
    """Every op class defined in a module of ``minidl.ops``, in file then line order."""
    found = []
    for info in pkgutil.iter_modules(importlib.import_module("minidl.ops").__path__):
        if info.name == "__main__":
            continue
        module = importlib.import_module(f"minidl.ops.{info.name}")
        for obj in vars(module).values():
            if is_op(obj) and obj.__module__ == module.__name__:
                found.append(obj)
    return sorted(found, key=location)


def is_op(obj: Any) -> bool:
    """An op class: defined in ``minidl.ops``, with a forward and a backward."""
    return (
        inspect.isclass(obj)
        and obj.__module__.startswith("minidl.ops.")
        and all(inspect.isfunction(getattr(obj, m, None)) for m in ("forward", "backward"))
    )


def location(op: type) -> tuple[str, int]:
    """(path relative to the repository, first line) of an op class."""
    path = Path(inspect.getsourcefile(op) or "").resolve()
    return str(path.relative_to(ROOT.parent)), inspect.getsourcelines(op)[1]


def public_names() -> Iterator[tuple[str, Callable, type | None]]:
    """(shown name, function, class that ``self`` is) of every public entry point:
    ``F.*``, ``Tensor`` methods and operators, ``minidl.*``, ``minidl.distributed.*``
    and ``minidl.quant.*`` functions, and the forwards of the layers in ``minidl.nn`` and
    ``minidl.quant``."""
    for name, fn in sorted(vars(F).items()):
        if not name.startswith("_") and _is_minidl_function(fn):
            yield f"F.{name}", fn, None
    for name in sorted(dir(Tensor)):
        if name.startswith("_") and name not in _TENSOR_DUNDERS:
            continue
        fn = inspect.getattr_static(Tensor, name)
        fn = fn.fget if isinstance(fn, property) else fn
        if _is_minidl_function(fn):
            yield f"Tensor.{name}", fn, Tensor
    for name, fn in sorted(vars(minidl).items()):
        if not name.startswith("_") and _is_minidl_function(fn):
            yield f"minidl.{name}", fn, None
    for name, fn in sorted(vars(distributed).items()):
        if not name.startswith("_") and _is_minidl_function(fn):
            yield f"distributed.{name}", fn, None
    for prefix, module in (("nn", nn), ("quant", quant)):
        for name, obj in sorted(vars(module).items()):
            if name.startswith("_"):
                continue
            if prefix == "quant" and _is_minidl_function(obj):
                yield f"quant.{name}", obj, None
            forward = inspect.getattr_static(obj, "forward", None) if inspect.isclass(obj) else None
            if _is_minidl_function(forward) and forward is not nn.Module.forward:
                yield f"{prefix}.{name}", forward, obj


_TENSOR_DUNDERS = {"__getitem__", "__setitem__", "__abs__"} | {
    f"__{r}{op[2:]}" for op in OPERATORS.values() for r in ("", "r")
}


def _is_minidl_function(fn: Any) -> bool:
    return isinstance(fn, FunctionType) and fn.__module__.startswith("minidl")


class Reader:
    """Follows a function's code to the op classes it builds; a call of another public
    name is recorded as such and not followed (memoised per function)."""

    def __init__(self, public: dict[Callable, str]) -> None:
        self.public = public
        self.cache: dict[Callable, tuple[set[type], set[str]]] = {}

    def read(self, fn: Callable, self_cls: type | None = None) -> tuple[set[type], set[str]]:
        """(op classes built in ``fn``'s code or its private helpers, public names used)."""
        ops: set[type] = set()
        uses: set[str] = set()
        for obj in self._references(fn, self_cls):
            if is_op(obj):
                ops.add(obj)
            elif not _is_minidl_function(obj) or obj is fn:
                continue
            elif obj in self.public:
                uses.add(self.public[obj])
            else:
                more_ops, more_uses = self._helper(obj, self_cls)
                ops |= more_ops
                uses |= more_uses
        return ops, uses

    def _helper(self, fn: Callable, self_cls: type | None) -> tuple[set[type], set[str]]:
        if fn not in self.cache:
            self.cache[fn] = set(), set()  # a recursive helper reaches what it reaches
            self.cache[fn] = self.read(fn, self_cls)
        return self.cache[fn]

    def _references(self, fn: Callable, self_cls: type | None) -> Iterator[Any]:
        """Every object a name or attribute in ``fn``'s code resolves to."""
        try:
            tree = ast.parse(textwrap.dedent(inspect.getsource(fn)))
        except (OSError, TypeError, SyntaxError):
            return
        scope = {**fn.__globals__, **_local_imports(tree)}
        tensors = _tensor_parameters(tree)
        if self_cls is not None:
            scope["self"] = self_cls
        for node in ast.walk(tree):
            if isinstance(node, (ast.Name, ast.Attribute)):
                found = _resolve(node, scope)
                if found is not None:
                    yield found
                elif (
                    isinstance(node, ast.Attribute)
                    and node.attr in _TENSOR_METHODS
                    and _is_tensor(node.value, tensors, self_cls)
                ):
                    yield getattr(Tensor, node.attr)  # x.sum() on a tensor x
            elif isinstance(node, (ast.BinOp, ast.UnaryOp)):
                binary = isinstance(node, ast.BinOp)
                operands = [node.left, node.right] if binary else [node.operand]
                method = OPERATORS.get(type(node.op))
                if method and any(_is_tensor(o, tensors, self_cls) for o in operands):
                    yield getattr(Tensor, method)


def _is_tensor(node: ast.expr, tensors: set[str], self_cls: type | None) -> bool:
    """Whether the code says ``node`` is a Tensor: a parameter annotated as one, or
    ``self`` in a Tensor method."""
    if not isinstance(node, ast.Name):
        return False
    return node.id in tensors or (node.id == "self" and self_cls is Tensor)


_TENSOR_METHODS = {
    n for n in dir(Tensor) if not n.startswith("_") and callable(getattr(Tensor, n, None))
}


def _local_imports(tree: ast.AST) -> dict[str, Any]:
    """Names bound by ``from minidl... import ...`` inside the function."""
    names = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("minidl"):
            module = importlib.import_module(node.module)
            for alias in node.names:
                names[alias.asname or alias.name] = getattr(module, alias.name, None)
    return names


def _tensor_parameters(tree: ast.Module) -> set[str]:
    """Parameters of the (first) function whose annotation names ``Tensor``."""
    fn = tree.body[0]
    if not isinstance(fn, (ast.FunctionDef, ast.AsyncFunctionDef)):
        return set()
    params = fn.args.posonlyargs + fn.args.args + fn.args.kwonlyargs
    return {
        a.arg for a in params if a.annotation is not None and "Tensor" in ast.unparse(a.annotation)
    }


def _resolve(node: ast.expr, scope: dict[str, Any]) -> Any:
    """The object ``a`` or ``a.b.c`` names in ``scope``; None if it names nothing known."""
    if isinstance(node, ast.Name):
        return scope.get(node.id)
    if isinstance(node, ast.Attribute):
        base = _resolve(node.value, scope)
        if isinstance(base, ModuleType) or inspect.isclass(base):
            found = inspect.getattr_static(base, node.attr, None)
            if isinstance(found, (staticmethod, classmethod)):
                found = found.__func__
            return found.fget if isinstance(found, property) else found
    return None


def entries() -> list[Entry]:
    """Every public name that builds an op, itself or through the names it uses."""
    names = list(public_names())
    public = {fn: name for name, fn, _ in reversed(names)}  # an alias shows its first name
    reader = Reader(public)
    read = {name: reader.read(fn, self_cls) for name, fn, self_cls in names}
    backed = {name for name, (ops, _) in read.items() if ops}
    grown = True
    while grown:  # a composite builds ops when a name it uses does
        more = {n for n, (_, uses) in read.items() if n not in backed and uses & backed}
        backed |= more
        grown = bool(more)
    return [
        Entry(name, sorted(read[name][0], key=location), sorted(read[name][1] & backed - {name}))
        for name, _, _ in names
        if name in backed
    ]


def base_classes(ops: list[type]) -> dict[type, list[type]]:
    """Op classes that others derive from (PairLoss, Reduction) -> their subclasses."""
    return {
        base: [op for op in ops if op is not base and issubclass(op, base)]
        for base in ops
        if any(op is not base and issubclass(op, base) for op in ops)
    }


def built_inside_ops(ops: list[type]) -> dict[type, list[str]]:
    """Op classes that other ops build in their own methods (a backward that is itself
    differentiable, such as ``GetItem.backward`` building ``ScatterAdd``) -> where."""
    reader = Reader({})
    inside: dict[type, list[str]] = {}
    for owner in ops:
        for name, fn in vars(owner).items():
            if not inspect.isfunction(fn):
                continue
            for op in sorted(reader.read(fn)[0] - {owner}, key=location):
                inside.setdefault(op, []).append(f"{owner.__name__}.{name}")
    return inside


def by_op(table: list[Entry]) -> list[tuple[type, list[str]]]:
    """Every op class with the public names that build it (else the ops whose methods
    build it, and the classes derived from a base class such as ``Reduction``), in file
    then line order."""
    ops = op_classes()
    bases = base_classes(ops)
    inside = built_inside_ops(ops)
    out = []
    for op in ops:
        names = [e.name for e in table if op in e.ops]
        if not names and op in inside:
            names.append("inside " + ", ".join(inside[op]))
        if op in bases:
            names.append("base class of " + ", ".join(sub.__name__ for sub in bases[op]))
        out.append((op, names))
    return out


def markdown(table: list[Entry]) -> str:
    """The README's table: each op class, its file, and the public names that build it."""
    lines = ["| op class | file | built by |", "|---|---|---|"]
    for op, names in by_op(table):
        path, _ = location(op)
        shown = ", ".join(n if " " in n else f"`{n}`" for n in names)
        lines.append(f"| `{op.__name__}` | `{path}` | {shown} |")
    return "\n".join(lines)


def _matches(query: str, entry: Entry) -> bool:
    """``query`` names the entry (``F.conv2d`` or ``conv2d``) or one of its op classes."""
    names = {entry.name, entry.name.split(".", 1)[1], *(op.__name__ for op in entry.ops)}
    return query in names


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m minidl.ops", description=__doc__)
    parser.add_argument("--markdown", action="store_true", help="the README's table")
    parser.add_argument("--op", help="only this op class or name (conv2d, F.conv2d, ConvNd)")
    args = parser.parse_args(argv)
    table = entries()
    if args.op:
        table = [e for e in table if _matches(args.op, e)]
    if args.markdown:
        print(markdown(table))
        return 0
    width = max([len(e.name) for e in table] + [4])
    print("name -> op class (file:line), or = the names a composite is built from\n")
    for e in table:
        for op in e.ops:
            path, line = location(op)
            print(f"{e.name.ljust(width)}  {op.__name__:<28} {path}:{line}")
        if not e.ops:
            print(f"{e.name.ljust(width)}  = {', '.join(e.uses)}")
    print("\nop class (file:line) -> the names that build it\n")
    for op, names in by_op(table):
        if args.op and args.op != op.__name__ and not any(op in e.ops for e in table):
            continue
        path, line = location(op)
        print(f"{op.__name__:<28} {path}:{line}  {'; '.join(names) or '(no public name)'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
