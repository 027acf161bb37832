"""The ``==`` checks of a network's images run one per batch on the core's RTL, for the benches.

:func:`exactness_checks` compares what :func:`sw.research.cnn_rtl.measure_counters_rtl` read
from the core with the golden model (outputs, spike and skip counters), the cycle model (the
cycle counters) and the sequencer's contract (``total_cycles`` is the sum of the layers'
counters).
"""

from __future__ import annotations

import numpy as np

from sw.research.cycle_model import predict_cycles

from .random_nets import expected_conv_counters

__all__ = ["exactness_checks"]


def exactness_checks(net, x, params, golden, rtl) -> list[tuple[bool, str]]:
    """``(equal, what)`` for each check of ``rtl`` (an ``RtlCounters`` of ``x``'s images, one a
    run) against ``golden`` (the golden model's result for ``x``)."""
    model = predict_cycles(net, x, params, golden)
    exp = [expected_conv_counters(net, x[i:i + 1], params) for i in range(len(x))]
    return [
        (np.array_equal(rtl.outputs, golden.rows), "outputs == golden model"),
        (np.array_equal(rtl.spikes, np.array([e[0] for e in exp])),
         "spike counters == golden model"),
        (np.array_equal(rtl.skipped, np.array([e[1] for e in exp])),
         "skip counters == golden model"),
        (np.array_equal(rtl.cycles, model), "cycle counters == cycle model"),
        (np.array_equal(rtl.total_cycles, rtl.cycles.sum(axis=1)),
         "total_cycles == sum of layers"),
    ]
