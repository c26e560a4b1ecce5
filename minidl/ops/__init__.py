"""The ops, one file per family. Each op is a ``Function`` with ``forward`` and
``backward`` side by side; ``minidl.nn.functional`` and ``Tensor`` methods call them."""

from minidl.ops import activation, arithmetic, linalg, loss, reduce, shape

__all__ = ["activation", "arithmetic", "linalg", "loss", "reduce", "shape"]
