"""sw.research.zoo: a network trained again is the same, whatever the caller's torch threads."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")


def test_training_ignores_the_callers_torch_threads(monkeypatch, tmp_path):
    """A small digits MLP trained into two empty caches, the caller on one torch thread and then
    on two, has the same integer weights, biases and thresholds (they differ unpinned), and the
    caller's thread count is back afterwards."""
    from sw.research.zoo import digits_int_network

    threads = torch.get_num_threads()
    nets = []
    try:
        for caller_threads in (1, 2):
            monkeypatch.setenv("SPIKEPACK_CACHE", str(tmp_path / f"cache{caller_threads}"))
            torch.set_num_threads(caller_threads)
            net, _, _ = digits_int_network(T=4, hidden=(64, 32), epochs=1)
            assert torch.get_num_threads() == caller_threads
            nets.append(net)
    finally:
        torch.set_num_threads(threads)
    a, b = nets
    for i, (la, lb) in enumerate(zip(a.layers, b.layers, strict=True)):
        for what in ("weight", "bias", "theta"):
            assert np.array_equal(getattr(la, what), getattr(lb, what)), f"layer {i} {what}"
