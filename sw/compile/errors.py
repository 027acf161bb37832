"""The compiler's refusal, :class:`DoesNotFitError` (re-exported by ``program_image``), and the
checks every layer of an image passes, dense or conv."""

from __future__ import annotations

import numpy as np

from hw.contract.params import CoreParams
from sim.golden.ir import IntLayer, IntNetwork, Mode
from sim.golden.model import required_accumulator_bits

__all__ = ["DoesNotFitError", "check_network_fits", "check_layer_fits"]


class DoesNotFitError(ValueError):
    """The network needs more than the build has (the message names what and the limit)."""


def check_network_fits(net: IntNetwork, p: CoreParams) -> None:
    """Refuse a network with more layers than the build's program holds, or more time steps
    than its ``t_max``."""
    if len(net.layers) > p.max_layers:
        raise DoesNotFitError(f"the network has {len(net.layers)} layers; the build runs at most "
                              f"{p.max_layers} (max_layers)")
    if net.T > p.t_max:
        raise DoesNotFitError(f"T = {net.T} time steps is more than the build's t_max = "
                              f"{p.t_max}")


def check_layer_fits(where: str, layer: IntLayer, p: CoreParams, T: int) -> None:
    """Refuse a layer the build's datapath cannot run: a LIF layer without the LIF datapath,
    weights wider than the build's, membranes wider than its accumulators, thresholds above
    its largest. ``where`` names the layer in the message."""
    if layer.mode is Mode.LIF and not p.lif:
        raise DoesNotFitError(f"{where} is a LIF/IF layer; this build runs SpikePack layers "
                              f"only (lif=0): use a build with lif=1 (e.g. python -m hw.build "
                              f"--set lif=1) or a SpikePack network")
    if layer.weight_bits > p.weight_bits:
        raise DoesNotFitError(f"{where}: {layer.weight_bits}-bit weights are wider than the "
                              f"build's {p.weight_bits}-bit weights")
    need = required_accumulator_bits(layer, T)
    if need > p.acc_bits:
        raise DoesNotFitError(f"{where} may reach {need}-bit membrane values (weights, bias, "
                              f"T = {T}); the build's accumulators are {p.acc_bits} bits")
    # One bit-plane's synaptic sum (a PE's bank, ``sum_bits`` wide) reaches at most the sum of
    # |W| over the fan-in: a dense layer's fan-in always fits, a conv layer's C_in kh kw may not.
    plane_max = int(np.abs(np.asarray(layer.weight, dtype=np.int64)).reshape(
        len(layer.weight), -1).sum(axis=1).max())
    if plane_max > (1 << (p.sum_bits - 1)) - 1:
        raise DoesNotFitError(f"{where}: one bit-plane's synaptic sum may reach {plane_max} "
                              f"(sum of |W| over a neuron's {layer.fan_in} inputs); the build's "
                              f"per-plane sums are {p.sum_bits}-bit signed: use smaller weights "
                              f"or fewer input channels x kernel taps")
    theta_max = (1 << (p.acc_bits - 1)) - 1
    if layer.theta_vector.max() > theta_max:
        raise DoesNotFitError(f"{where}: theta {int(layer.theta_vector.max())} exceeds the "
                              f"build's largest threshold {theta_max}")
