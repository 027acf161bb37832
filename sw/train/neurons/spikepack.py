"""The SpikePack neuron in PyTorch.

A SpikePack neuron integrates its whole input once (``z``) and emits a ``T``-step spike train whose
binary code, MSB first, is the packed activation ``a``. With leak ``tau = 2`` (the hardware's) and
firing by subtraction of the time-scaled threshold ``theta tau^(T-t)``::

    a = clip(floor(z / theta), 0, 2^T - 1)        packed form, O(1) in T
    r_0 = z;  s_t = [r_(t-1) >= theta tau^(T-t)];  r_t = r_(t-1) - theta tau^(T-t) s_t
    a = sum_t s_t tau^(T-t)                       serial form, any tau > 1

The module returns ``theta * a`` (so it drops into a model like ``nn.ReLU``); its gradient is the
straight-through estimate of the clipped ramp, and ``theta`` learns with the LSQ-style gradient.

# Ref: arXiv 2501.14484 (SpikePack), Sec. 3.1-3.2.
"""

from __future__ import annotations

import torch
from torch import nn

from sim.golden.packing import check_T


def _ste_floor(x: torch.Tensor) -> torch.Tensor:
    return x + (torch.floor(x) - x).detach()


class SpikePack(nn.Module):
    """SpikePack activation with ``T`` time steps.

    Parameters
    ----------
    T : int
        Time steps (bits of the packed activation), 1..16.
    theta : float
        Initial threshold (the output step). Calibrate it with
        :func:`sw.train.models.calibrate_thresholds` or let it learn.
    learn_theta : bool
        Train ``theta`` with the straight-through gradient.
    tau : float
        Leak factor; 2 is the hardware's. The packed form needs ``tau == 2``.
    form : {"packed", "serial"}
        How the forward pass computes ``a``; both give the same values for ``tau == 2``.
    """

    def __init__(self, T: int, theta: float = 1.0, *, learn_theta: bool = True,
                 tau: float = 2.0, form: str = "packed"):
        super().__init__()
        self.T = check_T(T)
        if not theta > 0:
            raise ValueError(f"theta must be positive, not {theta}")
        if not tau > 1:
            raise ValueError(f"tau must be greater than 1, not {tau}")
        if form not in ("packed", "serial"):
            raise ValueError(f"form must be 'packed' or 'serial', not {form!r}")
        if form == "packed" and tau != 2:
            raise ValueError("the packed form is the closed form for tau = 2; use form='serial'")
        self.tau = float(tau)
        self.form = form
        self.theta = nn.Parameter(torch.tensor(float(theta)), requires_grad=learn_theta)

    @property
    def levels(self) -> float:
        """Largest packed value: ``sum_t tau^(T-t)`` (``2^T - 1`` for tau = 2)."""
        return float(sum(self.tau ** (self.T - t) for t in range(1, self.T + 1)))

    def packed(self, z: torch.Tensor) -> torch.Tensor:
        """The packed activation ``a`` (float tensor holding integers), with STE gradient."""
        theta = self._theta()
        x = torch.clamp(z / theta, 0.0, self.levels)
        if self.form == "packed":
            return _ste_floor(x)
        a = self.serial_spikes(z).mul(self._plane_weights(z)).sum(dim=0)
        return x + (a - x).detach()

    def serial_spikes(self, z: torch.Tensor) -> torch.Tensor:
        """Spike train, shape ``(T,) + z.shape``, MSB first, by compare and subtract."""
        theta = self._theta().detach()
        r = z.detach()
        planes = []
        for t in range(1, self.T + 1):
            theta_t = theta * self.tau ** (self.T - t)
            s = (r >= theta_t).to(z.dtype)
            r = r - theta_t * s
            planes.append(s)
        return torch.stack(planes)

    def _theta(self) -> torch.Tensor:
        # |theta| keeps a learned threshold positive; the floor only guards against exactly 0.
        return self.theta.abs().clamp_min(1e-8)

    def _plane_weights(self, z):
        w = torch.tensor([self.tau ** (self.T - t) for t in range(1, self.T + 1)], dtype=z.dtype)
        return w.reshape((self.T,) + (1,) * z.ndim)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.packed(z) * self._theta()

    def extra_repr(self) -> str:
        return f"T={self.T}, tau={self.tau:g}, form={self.form!r}, theta={self.theta.item():.4g}"


class InputEncoder(nn.Module):
    """Turns packed integer inputs ``a_0`` (a float tensor of integers in ``[0, 2^T-1]``) into
    the float values the first layer sees: ``a_0 * step`` with ``step = 1 / (2^T - 1)``.

    The integer input is the same tensor the hardware receives, so no rounding separates the
    float model from the integer one at the input.
    """

    def __init__(self, T: int):
        super().__init__()
        self.T = check_T(T)
        self.step = 1.0 / ((1 << self.T) - 1)

    def forward(self, a0: torch.Tensor) -> torch.Tensor:
        return a0 * self.step

    def extra_repr(self) -> str:
        return f"T={self.T}"

