"""Parallel Spiking Units: all ``T`` membrane potentials of a layer from one matrix product.

Input ``I`` is time-major, shape ``(T, batch, ...)``. With ``sigma`` the logistic sigmoid and ``H``
the Heaviside step (atan surrogate gradient)::

    V = A I + theta B- sigma(A I),    S = H(V - theta)
    A[t, j]  =  tau^-(t-j+1)   for j <= t   (leaky integration, lower triangular)
    B-[t, j] = -tau^-(t-j)     for j <  t   (leaky reset, strictly lower triangular)

``sigma(A I)`` is applied to ``A I`` exactly as the PSU paper writes it (no threshold offset):
it stands in, during training, for the spikes the neuron has fired so far, which is what makes
every time step independent of the previous one's output.

**Which LIF this is.** Put the real spikes ``S`` in place of ``sigma(A I)``. Row ``t`` of
``A I + theta B- S`` is ``V_t = sum_(j<=t) tau^-(t-j+1) I_j - theta sum_(j<t) tau^-(t-j) S_j``, and
``V_t - V_(t-1) / tau`` leaves ``(I_t - theta S_(t-1)) / tau``, so::

    V_t = (V_(t-1) - theta S_(t-1) + I_t) / tau,   S_t = H(V_t - theta),   V_0 = S_0 = 0

that is, a soft-reset (reset by subtraction) LIF that *charges, then decays*: the membrane left
after the reset, ``V+_(t-1) = V_(t-1) - theta S_(t-1)``, and the new input are both divided by
``tau`` before the threshold comparison. For ``tau = 2`` this is ``V_t = V+_(t-1) (1 - 1/tau) +
I_t / tau`` (the "decay input" LIF of SpikingJelly) and it is the accelerator's LIF mode with
leak shift ``k = 1`` (``v - (v >> 1)``) fed with ``I / 2``; for any other ``tau`` the leak factor
``1/tau`` differs from the hardware's ``1 - 2^-k``. :meth:`PSU.forward_spiking` runs this
sequential form, which is how a trained PSU network is deployed.

Variants (both default to the PSU matrices at initialisation):

- IPSU (input-aware): ``A`` is a learnable lower-triangular ``T x T`` matrix ``A'``,
  ``V = A' I + theta B- sigma(A' I)``.
- RPSU (reset-aware): the reset term is learned, ``V = A I + R sigma(A I)`` with ``R`` a learnable
  strictly lower-triangular ``T x T`` matrix, initialised to ``theta B-``.

# Ref: arXiv 2402.00449 (PSU), Sec. 3 -- PSU, IPSU, RPSU.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from sim.golden.packing import check_T

from .surrogate import atan_spike


def psu_matrices(T: int, tau: float = 2.0,
                 dtype=torch.float32) -> tuple[torch.Tensor, torch.Tensor]:
    """The fixed leak and reset matrices ``(A, B-)`` of a PSU, each ``T x T``.

    ``A[t, j] = tau^-(t-j+1)`` for ``j <= t`` and ``B-[t, j] = -tau^-(t-j)`` for ``j < t``, zero
    elsewhere (the indices may start at 0 or 1: only ``t - j`` matters).

    Raises
    ------
    ValueError
        If ``T`` is not in ``1..16`` or ``tau <= 1``.
    """
    T = check_T(T)
    tau = _check_tau(tau)
    t = torch.arange(T, dtype=torch.float64)
    d = t[:, None] - t[None, :]  # t - j
    a = torch.where(d >= 0, tau ** -(d + 1), torch.zeros(()))
    b = torch.where(d > 0, -(tau ** -d), torch.zeros(()))
    return a.to(dtype), b.to(dtype)


def _check_tau(tau) -> float:
    tau = float(tau)
    if not (math.isfinite(tau) and tau > 1):
        raise ValueError(f"tau must be a finite number greater than 1, not {tau}")
    return tau


def _time_matmul(m: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """``m @ x`` along the leading (time) axis of ``x``: ``out[t] = sum_j m[t, j] x[j]``."""
    flat = x.reshape(x.shape[0], -1)
    return (m.to(x.dtype) @ flat).reshape(x.shape)


class PSU(nn.Module):
    """Parallel Spiking Unit over time-major input ``(T, batch, ...)``.

    Parameters
    ----------
    T : int
        Time steps, 1..16 (the matrices are ``T x T``); the input's leading axis must match.
    tau : float
        Leak constant, ``> 1``; 2 is the only value the accelerator's shift leak reproduces.
    theta : float
        Firing threshold, ``> 0``.
    alpha : float
        Sharpness of the atan surrogate gradient.
    """

    def __init__(self, T: int = 4, tau: float = 2.0, theta: float = 1.0, alpha: float = 2.0):
        super().__init__()
        self.T = check_T(T)
        self.tau = _check_tau(tau)
        if not theta > 0:
            raise ValueError(f"theta must be positive, not {theta}")
        if not alpha > 0:
            raise ValueError(f"alpha must be positive, not {alpha}")
        self.theta, self.alpha = float(theta), float(alpha)
        self._exact = {}  # dtype -> (A, B-), computed in float64 and rounded once

    def matrices(self, dtype=torch.float32) -> tuple[torch.Tensor, torch.Tensor]:
        """The fixed ``(A, B-)`` in ``dtype`` (cached)."""
        if dtype not in self._exact:
            self._exact[dtype] = tuple(m.to(dtype) for m in psu_matrices(
                self.T, self.tau, dtype=torch.float64))
        return self._exact[dtype]

    @property
    def A(self) -> torch.Tensor:
        return self.matrices(torch.float64)[0]

    @property
    def B(self) -> torch.Tensor:
        return self.matrices(torch.float64)[1]

    # The two hooks the variants override.
    def leak_matrix(self, dtype=torch.float32) -> torch.Tensor:
        """The matrix applied to the input (``A``)."""
        return self.matrices(dtype)[0]

    def reset_matrix(self, dtype=torch.float32) -> torch.Tensor:
        """The matrix applied to ``sigma(A I)`` (``theta B-``)."""
        return self.theta * self.matrices(dtype)[1]

    def _check_input(self, x: torch.Tensor) -> None:
        if x.ndim < 1 or x.shape[0] != self.T:
            raise ValueError(f"{type(self).__name__}(T={self.T}) expects time-major input "
                             f"(T, batch, ...) with T={self.T}, got shape {tuple(x.shape)}")

    def membrane(self, x: torch.Tensor) -> torch.Tensor:
        """All ``T`` membrane potentials ``V = A I + theta B- sigma(A I)`` at once."""
        self._check_input(x)
        u = _time_matmul(self.leak_matrix(x.dtype), x)
        return u + _time_matmul(self.reset_matrix(x.dtype), torch.sigmoid(u))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return atan_spike(self.membrane(x) - self.theta, self.alpha)

    @torch.no_grad()
    def forward_spiking(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The deployed semantics: the real spikes drive the reset, one step after another.

        Returns ``(S, V)``: spikes and pre-reset membranes, each shaped like ``x``. For PSU this
        is the charge-then-decay soft-reset LIF of the module docstring, and ``V`` equals
        ``A I + theta B- S`` exactly. Only PSU has this form (the learned matrices of IPSU and
        RPSU are not a leak).
        """
        self._check_input(x)
        if type(self) is not PSU:
            raise TypeError(f"{type(self).__name__} has learned matrices; only PSU has the "
                            "sequential LIF form")
        v = torch.zeros_like(x[0])
        s = torch.zeros_like(x[0])
        spikes, membranes = [], []
        for t in range(self.T):
            v = (v - self.theta * s + x[t]) / self.tau
            s = (v >= self.theta).to(x.dtype)
            spikes.append(s)
            membranes.append(v)
        return torch.stack(spikes), torch.stack(membranes)

    def extra_repr(self) -> str:
        return f"T={self.T}, tau={self.tau:g}, theta={self.theta:g}"


class IPSU(PSU):
    """Input-aware PSU: the input matrix is a learnable lower-triangular ``T x T`` matrix.

    ``V = A' I + theta B- sigma(A' I)``; ``A'`` starts as the PSU's ``A`` and only its lower
    triangle (diagonal included) is used and learned. Parameters as :class:`PSU`.
    """

    def __init__(self, T: int = 4, tau: float = 2.0, theta: float = 1.0, alpha: float = 2.0):
        super().__init__(T, tau, theta, alpha)
        self.A_learned = nn.Parameter(self.matrices()[0].clone())
        self.register_buffer("mask", torch.tril(torch.ones(self.T, self.T)))

    def leak_matrix(self, dtype=torch.float32) -> torch.Tensor:
        return (self.A_learned * self.mask).to(dtype)


class RPSU(PSU):
    """Reset-aware PSU: the reset term is a learnable strictly lower-triangular matrix ``R``.

    ``V = A I + R sigma(A I)``; ``R`` starts as ``theta B-``. Parameters as :class:`PSU`.
    """

    def __init__(self, T: int = 4, tau: float = 2.0, theta: float = 1.0, alpha: float = 2.0):
        super().__init__(T, tau, theta, alpha)
        self.R = nn.Parameter(self.theta * self.matrices()[1].clone())
        self.register_buffer("mask", torch.tril(torch.ones(self.T, self.T), diagonal=-1))

    def reset_matrix(self, dtype=torch.float32) -> torch.Tensor:
        return (self.R * self.mask).to(dtype)
