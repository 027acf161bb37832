"""Leaky integrate-and-fire neuron trained by backpropagation through time (the baseline).

Input is time-major, shape ``(T, batch, ...)``::

    v_t = v_(t-1) (1 - 1/tau) + x_t;  s_t = H(v_t - theta);  v_t -= theta s_t  (soft reset)
                                                           or  v_t *= 1 - s_t  (hard reset)

``H`` has the atan surrogate gradient. ``tau = inf`` gives IF (no leak). With ``tau = 2^k`` the
leak ``v / tau`` matches the hardware's shift ``v >> k`` up to the integer rounding.

# Ref: arXiv 2402.00449 (PSU), Sec. 2 -- LIF; docs/numerics.md "LIF / IF mode".
"""

from __future__ import annotations

import math

import torch
from torch import nn

from .surrogate import atan_spike


class LIF(nn.Module):
    """LIF/IF neuron over time-major input ``(T, batch, ...)``.

    Parameters
    ----------
    tau : float
        Membrane time constant (``> 1``); ``math.inf`` for IF.
    theta : float
        Firing threshold.
    reset : {"subtract", "zero"}
        Soft (by subtraction) or hard (to zero) reset.
    alpha : float
        Sharpness of the atan surrogate.
    detach_reset : bool
        Do not backpropagate through the reset (common and faster).
    """

    def __init__(self, tau: float = 2.0, theta: float = 1.0, reset: str = "subtract",
                 alpha: float = 2.0, detach_reset: bool = False):
        super().__init__()
        if not tau > 1:
            raise ValueError(f"tau must be greater than 1 (math.inf for IF), not {tau}")
        if not theta > 0:
            raise ValueError(f"theta must be positive, not {theta}")
        if reset not in ("subtract", "zero"):
            raise ValueError(f"reset must be 'subtract' or 'zero', not {reset!r}")
        self.tau, self.theta, self.reset, self.alpha = float(tau), float(theta), reset, alpha
        self.detach_reset = detach_reset

    @property
    def decay(self) -> float:
        return 0.0 if math.isinf(self.tau) else 1.0 / self.tau

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        v = torch.zeros_like(x[0])
        out = []
        for t in range(x.shape[0]):
            v = v - v * self.decay + x[t]
            s = atan_spike(v - self.theta, self.alpha)
            r = s.detach() if self.detach_reset else s
            v = v - self.theta * r if self.reset == "subtract" else v * (1 - r)
            out.append(s)
        return torch.stack(out)

    def extra_repr(self) -> str:
        return f"tau={self.tau:g}, theta={self.theta:g}, reset={self.reset!r}"
