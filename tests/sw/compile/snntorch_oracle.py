"""snnTorch's own simulation of an exported network: the oracle of the NIR import tests."""

from __future__ import annotations

import numpy as np
import torch


def snntorch_run(net, planes):
    """snnTorch's own simulation over ``planes[t]`` (a batch of inputs per step): per Leaky the
    spikes ``(T, batch, ...)``, and the readout's outputs summed over the steps."""
    import snntorch as snn  # the callers skip when snnTorch is missing

    for m in net:
        if isinstance(m, snn.Leaky):
            m.reset_mem()
    spikes, total = [], 0
    with torch.no_grad():
        for t in range(planes.shape[0]):
            x = torch.tensor(planes[t], dtype=torch.float32)
            per_layer = []
            for m in net:
                x = m(x)
                if isinstance(m, snn.Leaky):
                    per_layer.append(x.numpy().astype(np.int64))
            spikes.append(per_layer)
            total = total + x.numpy().astype(np.float64)
    return [np.stack([s[i] for s in spikes]) for i in range(len(spikes[0]))], total
