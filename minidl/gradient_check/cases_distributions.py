"""Gradient-check cases for ``minidl.distributions``: the reparameterised sample, the
log-density and the Normal-Normal KL, with respect to every parameter.

``rsample`` draws its noise from the global generator; each case seeds it inside the
function, so every finite-difference evaluation sees the same eps and the derivative
checked is the pathwise one, dz/dloc = 1 and dz/dscale = eps.
"""

from __future__ import annotations

import minidl as md
from minidl.distributions import Normal, kl_divergence
from minidl.gradient_check.registry import normal, positive, register


def _rsample(loc: md.Tensor, scale: md.Tensor) -> md.Tensor:
    md.manual_seed(0)
    return Normal(loc, scale).rsample((2,)) ** 2


def _positive_scales(rng):
    return [rng.standard_normal((3, 4)), rng.uniform(0.5, 2.0, (3, 4))]


register("Normal.rsample", _rsample, _positive_scales)
register(
    "Normal.rsample broadcast",
    _rsample,
    lambda r: [r.standard_normal((3, 4)), r.uniform(0.5, 2.0, (4,))],
)
register(
    "Normal.log_prob",
    lambda loc, scale, x: Normal(loc, scale).log_prob(x),
    lambda r: [*_positive_scales(r), r.standard_normal((3, 4))],
)
register("Normal.entropy", lambda loc, scale: Normal(loc, scale).entropy(), _positive_scales)
register(
    "kl_divergence Normal Normal",
    lambda m1, s1, m2, s2: kl_divergence(Normal(m1, s1), Normal(m2, s2)),
    lambda r: [*normal((3, 4))(r), *positive((3, 4))(r), *normal((4,))(r), *positive((4,))(r)],
)
