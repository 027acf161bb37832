"""Surrogate gradients for the Heaviside spike function.

# Ref: arXiv 2402.00449 (PSU), Sec. 3.3 -- atan surrogate; Fang et al., ICCV 2021.
"""

from __future__ import annotations

import math

import torch


class _ATanSpike(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x: torch.Tensor, alpha: float) -> torch.Tensor:
        ctx.save_for_backward(x)
        ctx.alpha = alpha
        return (x >= 0).to(x.dtype)

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        (x,) = ctx.saved_tensors
        alpha = ctx.alpha
        # d/dx [ atan(pi/2 alpha x) / pi + 1/2 ]
        g = alpha / 2 / (1 + (math.pi / 2 * alpha * x) ** 2)
        return grad * g, None


def atan_spike(x: torch.Tensor, alpha: float = 2.0) -> torch.Tensor:
    """Heaviside ``H(x)`` (1 where ``x >= 0``) forward, atan surrogate gradient backward."""
    return _ATanSpike.apply(x, alpha)
