"""Probability distributions with reparameterised sampling, PyTorch's names
(``torch.distributions``): ``Normal`` and ``kl_divergence``.

Everything here is composed from Tensor ops, so gradients flow through ``rsample``,
``log_prob``, ``entropy`` and ``kl_divergence`` by the ops' own (checked) backward passes.
"""

from .kl import kl_divergence
from .normal import Normal

__all__ = ["Normal", "kl_divergence"]
