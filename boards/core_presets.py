"""Core build sizes without a board of their own: quick to simulate, for tests and examples.

``spikepack compile --board small`` and the RTL tests use these; :data:`boards.CORE_PRESETS` lists
them beside every board's core.
"""

import dataclasses

from hw.contract.params import CoreParams

__all__ = ["SMALL", "SMALL2", "SMALL2_PLANE_FIRE", "SMALL2_REPLAY", "SMALL4", "MEDIUM"]

#: Small build for the random-network tests (fast to simulate); the digits network fits. Its
#: walk pads a folded first layer's rows (``pad_rows``, as the ULX3S's and the A7-100T's).
SMALL = CoreParams(n_pe=8, k=4, t_max=8, acc_bits=24, weight_depth=1024, act_chunks=32,
                   bt_depth=512, max_layers=8, batch_depth=4, fire_units=2, pad_rows=1)

#: The small build with two bit-planes per beat (``planes_per_beat=2``), a queue of four
#: blocks between the fetcher and the issuer (``fetch_queue=4``), as the large boards' cores,
#: two register stages on the weight write port (``weight_write_reg=2``) and the sequencer
#: reading the next layer's descriptor while a layer runs (``seq_prefetch``): the
#: random-network tests run on both. It stores a folded first layer's padding rows
#: (``pad_rows=0``) and leaks LIF membranes by products (``fire_leak_mul``), as the Arty
#: A7-35T's.
SMALL2 = dataclasses.replace(SMALL, planes_per_beat=2, fetch_queue=4, weight_write_reg=2,
                             seq_prefetch=1, pad_rows=0, fire_leak_mul=1)

#: ... and with firing units that take one plane a cycle (``fire_pairs=0``), sum banks of two
#: passes (``bank_passes=2``, ping-pong, as the iCEBreaker's), a registered weight write port
#: (``weight_write_reg=1``) and the skid buffer instead of the queue (``fetch_queue=0``).
SMALL2_PLANE_FIRE = dataclasses.replace(SMALL2, fire_pairs=0, bank_passes=2, weight_write_reg=1,
                                        fetch_queue=0)

#: The small build with two planes per beat whose walk replays, after a position's first pass,
#: only the blocks that pass found non-empty (``walk_replay``), pads a folded first layer's
#: rows (``pad_rows``) and leaks by shifters (``fire_leak_mul=0``), as the ULX3S's.
SMALL2_REPLAY = dataclasses.replace(SMALL2, walk_replay=1, pad_rows=1, fire_leak_mul=0)

#: ... and four bit-planes per beat (``planes_per_beat=4``: a beat slot is four time steps, the
#: firing units still take a pair a cycle) with the PEs' bank control and the fetch queue's two
#: output registers on registers of their own (``pe_control_copies``) and the walk's skid
#: register (``walk_skid``): the ULX3S preset's settings at 1,024 adds a cycle.
SMALL4 = dataclasses.replace(SMALL2_REPLAY, planes_per_beat=4, pe_control_copies=1,
                             walk_skid=1)

#: Medium build: the sklearn digits network (64-128-64-10) fits.
MEDIUM = CoreParams(n_pe=16, k=8, t_max=8, acc_bits=24, weight_depth=256, act_chunks=32,
                    bt_depth=512, max_layers=8, batch_depth=8)
