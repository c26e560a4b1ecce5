"""Optimizers and learning-rate schedules, named as in ``torch.optim``.

``Optimizer`` (the base: param groups, state, ``zero_grad``, ``step``, ``state_dict``) is in
``optimizer.py``; each update rule has its own file; the schedules are in
``lr_scheduler.py`` (``minidl.optim.lr_scheduler.StepLR`` ...).
"""

from minidl.optim import lr_scheduler
from minidl.optim.adadelta import Adadelta
from minidl.optim.adagrad import Adagrad
from minidl.optim.adam import Adam, AdamW
from minidl.optim.adamax import Adamax
from minidl.optim.lbfgs import LBFGS
from minidl.optim.nadam import NAdam
from minidl.optim.optimizer import Optimizer
from minidl.optim.radam import RAdam
from minidl.optim.rmsprop import RMSprop
from minidl.optim.sgd import SGD

__all__ = [
    "LBFGS",
    "SGD",
    "Adadelta",
    "Adagrad",
    "Adam",
    "AdamW",
    "Adamax",
    "NAdam",
    "Optimizer",
    "RAdam",
    "RMSprop",
    "lr_scheduler",
]
