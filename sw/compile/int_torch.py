"""The quantized model in PyTorch: integer arithmetic on ``int64`` tensors.

A second, independent implementation of the integer semantics (the NumPy golden model is the
first); tests check that both give identical outputs. Useful to run integer networks batched
inside a PyTorch pipeline.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from sim.golden.ir import IntNetwork, Mode, Reset


class IntTorchNetwork(nn.Module):
    """Runs an :class:`~sim.golden.ir.IntNetwork` on packed ``int64`` inputs, returns the last output."""

    def __init__(self, net: IntNetwork):
        super().__init__()
        self.net = net
        self.T = net.T
        for i, layer in enumerate(net.layers):
            self.register_buffer(f"w{i}", torch.tensor(np.array(layer.weight), dtype=torch.int64))
            self.register_buffer(f"b{i}", torch.tensor(np.array(layer.bias), dtype=torch.int64))
            self.register_buffer(f"th{i}", torch.tensor(np.array(layer.theta_vector),
                                                      dtype=torch.int64))

    def _planes(self, a: torch.Tensor) -> torch.Tensor:
        shifts = torch.arange(self.T - 1, -1, -1, dtype=torch.int64).reshape(
            (self.T,) + (1,) * a.ndim)
        return (a.unsqueeze(0) >> shifts) & 1

    def forward(self, a: torch.Tensor) -> torch.Tensor:
        a = a.to(torch.int64)
        top = (1 << self.T) - 1
        for i, layer in enumerate(self.net.layers):
            w, b, th = getattr(self, f"w{i}"), getattr(self, f"b{i}"), getattr(self, f"th{i}")
            if layer.mode is Mode.SPIKEPACK:
                v = a @ w.T + b
                a = v if layer.readout else torch.clamp(
                    torch.div(v, th, rounding_mode="floor"), 0, top)
                continue
            planes = self._planes(a)
            v = torch.zeros(a.shape[:-1] + (layer.n_out,), dtype=torch.int64)
            out = torch.zeros_like(v)
            for t in range(self.T):
                if layer.leak_shift:
                    v = v - (v >> layer.leak_shift)
                v = v + planes[t] @ w.T + b
                if layer.readout:
                    continue
                s = (v >= th).to(torch.int64)
                v = v - th * s if layer.reset is Reset.SUBTRACT else v * (1 - s)
                out = out * 2 + s
            a = v if layer.readout else out
        return a
