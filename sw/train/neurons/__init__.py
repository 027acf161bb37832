"""Spiking neuron models in PyTorch."""

from .lif import LIF
from .psu import IPSU, PSU, RPSU, psu_matrices
from .spikepack import InputEncoder, SpikePack
from .surrogate import atan_spike

__all__ = ["IPSU", "LIF", "PSU", "RPSU", "InputEncoder", "SpikePack", "atan_spike", "psu_matrices"]
