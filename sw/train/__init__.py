"""PyTorch side: SpikePack/LIF/PSU neurons, models, data sets, training (direct and CASC)."""
