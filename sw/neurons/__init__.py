"""Spiking neuron models in PyTorch."""

from .lif import LIF
from .spikepack import InputEncoder, SpikePack
from .surrogate import atan_spike

__all__ = ["LIF", "InputEncoder", "SpikePack", "atan_spike"]
