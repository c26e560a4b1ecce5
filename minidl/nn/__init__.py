"""Neural-network building blocks, named as in ``torch.nn``."""

from minidl.nn import functional, init
from minidl.nn.module import Module, ModuleDict, ModuleList, Parameter, Sequential

__all__ = ["Module", "ModuleDict", "ModuleList", "Parameter", "Sequential", "functional", "init"]
