"""KL divergences between distributions in closed form."""

from __future__ import annotations

from minidl.tensor import Tensor

from .normal import Normal


def kl_divergence(p: Normal, q: Normal) -> Tensor:
    """KL(p || q), elementwise over the broadcast batch shape, for two ``Normal``s:

        KL = log(s_q / s_p) + (s_p^2 + (m_p - m_q)^2) / (2 s_q^2) - 1/2.

    With q = N(0, 1) and s_p^2 = exp(logvar) this is ``F.gaussian_kl(m_p, logvar,
    reduction="none")``, the VAE's regulariser (a single op with its own backward).
    """
    if not isinstance(p, Normal) or not isinstance(q, Normal):
        raise NotImplementedError(
            f"kl_divergence: only Normal || Normal, got {type(p).__name__} || {type(q).__name__}"
        )
    var_ratio = (p.scale / q.scale) ** 2
    mean_term = ((p.loc - q.loc) / q.scale) ** 2
    return 0.5 * (var_ratio + mean_term - 1) - 0.5 * var_ratio.log()
