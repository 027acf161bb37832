"""Shared fixtures: seeded random generators whose seeds are logged with every test."""

from __future__ import annotations

import os
import zlib

import numpy as np
import pytest


@pytest.fixture
def seed(request) -> int:
    """A per-test seed: ``SPIKEPACK_SEED`` if set, else derived from the test's name.

    The seed is printed (pytest shows it for a failing test) and recorded as a property in
    JUnit XML, so any failure can be replayed with ``SPIKEPACK_SEED=<seed> pytest <test>``.
    """
    env = os.environ.get("SPIKEPACK_SEED")
    value = int(env) if env is not None else zlib.crc32(request.node.nodeid.encode())
    print(f"seed = {value}  (replay: SPIKEPACK_SEED={value} pytest '{request.node.nodeid}')")
    request.node.user_properties.append(("seed", value))
    return value


@pytest.fixture
def rng(seed) -> np.random.Generator:
    return np.random.default_rng(seed)


@pytest.fixture
def one_torch_thread():
    """Small MLPs train faster on one thread, and pytest -n 2 already fills both cores."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
