"""The quantized model in PyTorch: integer arithmetic on ``int64`` tensors.

A second, independent implementation of the integer semantics (the NumPy golden model is the
first); tests check that both give identical outputs. Useful to run integer networks batched
inside a PyTorch pipeline.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from sim.golden.ir import NETWORK_INPUT, IntNetwork, Mode, Reset


def _register_layers(module: nn.Module, net: IntNetwork) -> None:
    """``net``, ``T`` and, per layer ``i``, buffers ``w{i}``, ``b{i}``, ``th{i}`` (int64)."""
    module.net = net
    module.T = net.T
    for i, layer in enumerate(net.layers):
        module.register_buffer(f"w{i}", torch.tensor(np.array(layer.weight), dtype=torch.int64))
        module.register_buffer(f"b{i}", torch.tensor(np.array(layer.bias), dtype=torch.int64))
        module.register_buffer(f"th{i}", torch.tensor(np.array(layer.theta_vector),
                                                      dtype=torch.int64))


class IntTorchNetwork(nn.Module):
    """Runs a dense :class:`~sim.golden.ir.IntNetwork` on packed ``int64`` inputs, returns the
    last output (conv networks: :class:`IntTorchConvNetwork`)."""

    def __init__(self, net: IntNetwork):
        super().__init__()
        _register_layers(self, net)

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


class IntTorchConvNetwork(nn.Module):
    """Runs an :class:`~sim.golden.ir.IntNetwork` with conv layers, fused max pooling and
    shortcuts (and dense layers) on packed ``int64`` inputs; returns the last layer's output.

    Integer arithmetic only: a conv is a gather of receptive fields (``Tensor.unfold`` of the
    zero-padded map) contracted with the ``int64`` weights, independent of the golden model's
    im2col. SpikePack pools the packed words by their maximum, LIF by their bitwise OR
    (docs/numerics.md).

    Parameters
    ----------
    net : IntNetwork
        Any network the golden model runs.
    """

    def __init__(self, net: IntNetwork):
        super().__init__()
        _register_layers(self, net)

    @staticmethod
    def _synapses(layer, a: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
        if layer.kind == "dense":
            return a.reshape(len(a), -1) @ w.T
        (ph, pw), s = layer.pads, layer.stride
        kh, kw = layer.kernel
        a = torch.nn.functional.pad(a, (pw, pw, ph, ph))
        cols = a.unfold(2, kh, s).unfold(3, kw, s)  # (N, C, H', W', kh, kw)
        return torch.einsum("nchwij,ocij->nohw", cols, w)

    @staticmethod
    def _pool(layer, a: torch.Tensor) -> torch.Tensor:
        if layer.pool is None:
            return a
        k, s = layer.pool.kernel, layer.pool.stride
        win = a.unfold(2, k, s).unfold(3, k, s).flatten(-2)
        if layer.mode is Mode.SPIKEPACK:
            return win.amax(dim=-1)
        out = win[..., 0]
        for j in range(1, win.shape[-1]):
            out = out | win[..., j]
        return out

    def forward(self, a: torch.Tensor) -> torch.Tensor:
        a = torch.as_tensor(a).to(torch.int64)
        n = len(a)
        top = (1 << self.T) - 1
        first = self.net.layers[0]
        outs = {NETWORK_INPUT: a.reshape((n,) + first.in_shape)}
        a = outs[NETWORK_INPUT]
        for i, layer in enumerate(self.net.layers):
            w, b, th = getattr(self, f"w{i}"), getattr(self, f"b{i}"), getattr(self, f"th{i}")
            a = a.reshape((n,) + layer.in_shape)
            per_ch = (-1, 1, 1) if layer.kind == "conv" else (-1,)
            b, th = b.reshape(per_ch), th.reshape(per_ch)
            src = None
            if layer.residual is not None:
                src = outs[layer.residual.source].reshape((n,) + layer.conv_shape)
            if layer.mode is Mode.SPIKEPACK:
                v = self._synapses(layer, a, w) + b
                if src is not None:
                    v = v + layer.residual.gain * src
                if layer.readout:
                    return v
                a = torch.clamp(torch.div(v, th, rounding_mode="floor"), 0, top)
            else:
                v = torch.zeros((n,) + layer.conv_shape, dtype=torch.int64)
                out = torch.zeros_like(v)
                for t in range(self.T):
                    shift = self.T - 1 - t
                    if layer.leak_shift:
                        v = v - (v >> layer.leak_shift)
                    v = v + self._synapses(layer, (a >> shift) & 1, w) + b
                    if src is not None:
                        v = v + layer.residual.gain * ((src >> shift) & 1)
                    if layer.readout:
                        continue
                    s = (v >= th).to(torch.int64)
                    v = v - th * s if layer.reset is Reset.SUBTRACT else v * (1 - s)
                    out = out * 2 + s
                if layer.readout:
                    return v
                a = out
            a = self._pool(layer, a)
            outs[i] = a
        return a
