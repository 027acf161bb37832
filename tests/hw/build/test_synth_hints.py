"""The memories :mod:`hw.common.synth_hints` lets synthesis treat as collision-free exist in the
design as named, each with one write port (so the yosys mask ``1'1`` covers it), and the hints
apply; the register copies it keeps stay apart through yosys' merging of equal flip-flops."""

import dataclasses
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from amaranth.back import rtlil

from hw.accelerator import Accelerator
from hw.build.tools import resolve_tool
from hw.common.synth_hints import COLLISION_FREE_MEMORIES, collision_hints, synthesis_hints
from hw.contract.params import CoreParams

P = CoreParams(n_pe=4, k=4, t_max=8, acc_bits=20, weight_depth=16, act_chunks=4, bt_depth=16,
               max_layers=2, batch_depth=1)


@pytest.fixture(scope="module")
def design_il():
    top = Accelerator(P, clk_freq=12_000_000, baud=1_000_000)
    return rtlil.convert(top, ports=None)


def _ports(text, kind, sync_only=False):
    """MEMID -> how many cells of ``kind`` ($memwr_v2 / $memrd_v2) name it (``sync_only``: the
    ones with a clock)."""
    counts = {}
    for cell in re.findall(rf"cell \${kind} .*?\n  end", text, flags=re.S):
        if sync_only and re.search(r"parameter \\CLK_ENABLE 0\b", cell):
            continue
        memid = re.search(r'parameter \\MEMID "\\\\(\w+)"', cell).group(1)
        counts[memid] = counts.get(memid, 0) + 1
    return counts


def test_collision_free_memories_have_one_write_port(design_il):
    # Memories are named once per module: a PE's bank is in every PE, each with its own ports.
    modules = re.findall(r"^module (\S+)$(.*?)^end$", design_il, flags=re.M | re.S)
    for name in COLLISION_FREE_MEMORIES:
        owners = [(module, _ports(body, "memwr_v2").get(name, 0))
                  for module, body in modules if _ports(body, "memrd_v2").get(name)]
        assert owners, f"no read port of a memory named {name}"
        for module, n_write in owners:
            assert n_write == 1, f"{module}: {name} has {n_write} write ports"


def _yosys_count(design_il, tmp_path, script):
    """Run ``script`` on the design; the count its last ``select -count`` prints."""
    env = dict(os.environ, PATH=os.pathsep.join([str(Path(sys.executable).parent),
                                                 os.environ.get("PATH", "")]))
    yosys = resolve_tool("yosys", env)
    (tmp_path / "d.il").write_text(design_il)
    (tmp_path / "s.ys").write_text(f"read_rtlil d.il\n{script}\n")
    out = subprocess.run([yosys, "-s", "s.ys"], cwd=tmp_path, capture_output=True, text=True,
                         check=True).stdout
    return int(re.findall(r"(\d+) objects", out)[-1])


def test_hints_reach_every_read_port(design_il, tmp_path):
    """Every synchronous read port of the collision-free memories is marked, and no
    asynchronous one (yosys asserts on a collision mark without a clock)."""
    marked = _yosys_count(design_il, tmp_path, f"{collision_hints()}\n"
                          "select -count t:$memrd_v2 r:COLLISION_X_MASK=1'1 %i")
    reads = _ports(design_il, "memrd_v2", sync_only=True)
    assert marked == sum(reads.get(name, 0) for name in COLLISION_FREE_MEMORIES)


def test_hints_leave_asynchronous_read_ports_alone(tmp_path):
    """A build whose PEs pick a pair of planes from a four-plane bank word (an asynchronous
    read, then the pick, then a register): its bank's firing reads are not marked, and yosys's
    memory passes take the design (a mark on them stopped ``opt_mem`` with an assertion)."""
    p4 = dataclasses.replace(P, planes_per_beat=4)
    il = rtlil.convert(Accelerator(p4, clk_freq=12_000_000, baud=1_000_000), ports=None)
    asynchronous = len(re.findall(r"parameter \\CLK_ENABLE 0\b", il))
    assert asynchronous >= p4.n_pe  # the PEs' firing reads, beside the queues' own
    marked = _yosys_count(il, tmp_path, f"{collision_hints()}\nhierarchy -top top\nproc\n"
                          "flatten\nopt_mem\n"
                          "select -count t:$memrd_v2 r:COLLISION_X_MASK=1'1 %i")
    reads = _ports(il, "memrd_v2", sync_only=True)
    assert marked == sum(reads.get(name, 0) for name in COLLISION_FREE_MEMORIES)


def test_register_copies_survive_merging(design_il, tmp_path):
    # Each firing unit registers the layer settings (8 signals: T, readout, lif, lif_reset_zero,
    # leak, no_leak, lif_fire_above, lif_compare_leaked) from the same source: equal flip-flops
    # that opt_merge would make one; and keeps the leak's copy of its membrane register (r_leak,
    # loaded as r is). The core gives each block its own registered copy of the layer settings
    # it reads (hw.core.core): the fetcher src_base, chunks, T, passes, w_base
    # (and with conv, the conv flag and 9 geometry fields); the firing array bt_base, passes,
    # pool_log2, theta_per_channel, theta and 7 config fields; the writer 8 settings; with conv,
    # the fetcher's shortcut fields (n_out, res_input, res_base, res, in_base), the conv walk's
    # copies of its output handshake (the fetch skid buffer's ready, the fetcher's o.valid),
    # and (conv) an abort register per datapath block (8). The PE array
    # gives each PE its own copy of a shortcut beat's flag and block match (res_pe, hit_pe) and
    # each block of k PEs its own copy of the gain.
    script = (f"{synthesis_hints()}\nflatten\nopt_merge\n"
              "select -count t:$dff a:keep %i")
    assert P.fire_units > 1
    core_copies = 5 + (1 + 9 + 5 + 2 + 8 if P.conv else 0) + (5 + 7) + 8
    pe_copies = 2 * P.n_pe + P.n_pe // P.k
    assert _yosys_count(design_il, tmp_path, script) == \
        (8 + 1) * P.fire_units + core_copies + pe_copies


def test_hints_reach_every_bank_of_a_banked_spike_memory(tmp_path, monkeypatch):
    # A spike memory deeper than a bank (hw.core.fetcher.spike_banks; banks of 4 blocks here:
    # 3 for P's 12 rows) is one memory named spk_mem per bank module, each with one write port,
    # every read port marked.
    import hw.core.fetcher as fetcher

    monkeypatch.setattr(fetcher, "SPIKE_BANK_ROWS", 4)
    banks = fetcher.spike_banks(P)
    assert banks > 1
    il = rtlil.convert(Accelerator(P, clk_freq=12_000_000, baud=1_000_000), ports=None)
    modules = re.findall(r"^module (\S+)$(.*?)^end$", il, flags=re.M | re.S)
    owners = [(module, _ports(body, "memwr_v2").get("spk_mem", 0))
              for module, body in modules if _ports(body, "memrd_v2").get("spk_mem")]
    assert len(owners) == banks and all(n == 1 for _, n in owners), owners
    marked = _yosys_count(il, tmp_path, f"{collision_hints()}\n"
                          "select -count t:$memrd_v2 r:MEMID=\\spk_mem %i "
                          "r:COLLISION_X_MASK=1'1 %i")
    assert marked == banks
