"""The image-level golden model: run a program image the way the core walks it.

:func:`run_image` reads only the image's memories -- the descriptors in PROGRAM, the weight rows
in WEIGHTS, BIAS, THETA, and the spike blocks :func:`sw.compile.program_image.encode_inputs`
writes to INPUT -- never the :class:`sim.golden.ir.IntNetwork`. It keeps a spike memory of blocks
(two ping-pong halves of ``act_chunks`` blocks, then the samples' inputs, ``in_stride`` blocks
each). For every output
position and pass it gathers the receptive field's blocks in the order and at the addresses
:func:`sw.compile.conv_layout.conv_fetch` generates (counters and adds, as the fetcher will; taps
in the padding are skipped), sums each bit-plane of the selected weights per PE, adds the
shortcut's bit-planes times its gain, and fires with :mod:`sim.golden.model`'s arithmetic
(Horner over the planes, serial compare/subtract; LIF per step). Pooling keeps the window's
largest word (SpikePack) or ORs them (LIF) as the writer will. The tests check it equals
:func:`sim.golden.model.run_network` on the IR, so the image format is checked end to end before
any gateware exists.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from hw.contract.memory_map import DESCRIPTOR_WORDS, decode_descriptor
from sim.golden.model import fire_serial
from sim.golden.packing import pack_bitplanes

from .conv_layout import conv_fetch
from .program_image import ProgramImage, decode_outputs, encode_inputs, output_addresses

__all__ = ["ImageMemories", "image_memories", "input_memory", "run_image", "ImageRun"]


@dataclasses.dataclass(frozen=True)
class ImageMemories:
    """The core's memories as a loaded image leaves them (words decoded to values).

    Members
    -------
    program : list of dict
        Decoded descriptors, one per layer.
    weights : ndarray
        ``(rows, n_pe, k)`` signed weights.
    bias, theta : ndarray
        One entry per bias/theta memory word (signed bias).
    """

    program: list
    weights: np.ndarray
    bias: np.ndarray
    theta: np.ndarray


def _signed(words, bits: int) -> np.ndarray:
    w = np.asarray(words, dtype=np.int64)
    return np.where(w >= 1 << (bits - 1), w - (1 << bits), w)


def image_memories(image: ProgramImage) -> ImageMemories:
    """Collect the PROGRAM, WEIGHTS, BIAS and THETA words of ``image`` into arrays."""
    p, mm = image.params, image.memory_map
    words = {name: np.zeros(mm[name].size, dtype=np.int64)
             for name in ("PROGRAM", "WEIGHTS", "BIAS", "THETA")}
    for wr in image.writes:
        off = wr.addr - mm[wr.region].base
        words[wr.region][off:off + len(wr.words)] = wr.words
    prog = words["PROGRAM"]
    program = []
    for li in range(p.max_layers):
        d = decode_descriptor(prog[li * DESCRIPTOR_WORDS:(li + 1) * DESCRIPTOR_WORDS])
        program.append(d)
        if d["last"]:
            break
    wbytes = (words["WEIGHTS"][:, None] >> np.array([0, 8, 16, 24])) & 0xFF
    weights = _signed(wbytes.reshape(-1, p.n_pe, p.k), 8)
    return ImageMemories(program, weights, _signed(words["BIAS"], 32), words["THETA"].copy())


def _blocks_from_words(words, p) -> np.ndarray:
    """Spike blocks ``(n, block_words)`` words -> packed words ``(n, k)`` (bit ``q k + i``)."""
    w = np.asarray(words, dtype=np.int64).reshape(-1, p.block_words)
    bits = (w[:, :, None] >> np.arange(32)) & 1  # (n, block_words, 32)
    bits = bits.reshape(len(w), p.t_max, p.k)  # bit q k + i
    return (bits << np.arange(p.t_max)[None, :, None]).sum(axis=1)


def input_memory(image: ProgramImage, writes) -> np.ndarray:
    """The INPUT region after ``writes`` (from zero): ``(input_blocks, block_words)`` words,
    decoded as the core decodes a bus write to INPUT (lane-major: word ``w`` of block ``r`` at
    ``w input_lane_stride + r``). A write outside INPUT or into a row past ``input_blocks``
    raises."""
    p = image.params
    region = image.memory_map["INPUT"]
    memory = np.zeros((p.input_blocks, p.block_words), dtype=np.int64)
    for wr in writes:
        for i, word in enumerate(wr.words):
            off = wr.addr + i - region.base
            w, r = divmod(off, p.input_lane_stride)
            if not (0 <= off < region.size and r < p.input_blocks):
                raise ValueError(f"word address {wr.addr + i:#x} is not in INPUT")
            memory[r, w] = word
    return memory


@dataclasses.dataclass(frozen=True)
class ImageRun:
    """What :func:`run_image` computed.

    Members
    -------
    output : ndarray
        ``(batch, n_out)``, decoded as :func:`sw.compile.program_image.decode_outputs` does.
    spikes : ndarray
        ``(layers, batch)``: 1-bits of the blocks each layer stored (0 for a readout).
    """

    output: np.ndarray
    spikes: np.ndarray


def _planes(words, T: int) -> np.ndarray:
    """Bit-planes of packed words ``(..., k)`` -> ``(T, ..., k)``, slot ``q`` = bit ``q``."""
    return (np.asarray(words)[None] >> np.arange(T).reshape((T,) + (1,) * np.ndim(words))) & 1


class _Core:
    """One sample's run: the spike memory and the layer loop."""

    def __init__(self, image: ProgramImage, mem: ImageMemories, inputs: np.ndarray):
        self.p = image.params
        self.mem = mem
        self.act = np.zeros((2 * self.p.act_chunks, self.p.k), dtype=np.int64)
        self.inp = inputs  # (in_stride, k) packed words of this sample

    def block(self, addr: int, from_input: bool) -> np.ndarray:
        return self.inp[addr] if from_input else self.act[addr]

    def fire(self, d, sums: np.ndarray, bt_row: int) -> np.ndarray:
        """Per-plane sums ``(T, n_pe)`` (slot ``q``) of one pass -> words (or membranes)."""
        p, T = self.p, d["T"]
        bias = self.mem.bias[bt_row * p.n_pe:(bt_row + 1) * p.n_pe]
        theta = (self.mem.theta[bt_row * p.n_pe:(bt_row + 1) * p.n_pe]
                 if d["theta_per_channel"] else np.full(p.n_pe, d["theta"], dtype=np.int64))
        if not d["lif"]:
            u = np.zeros(p.n_pe, dtype=np.int64)
            for q in range(T - 1, -1, -1):  # Horner, most significant plane first
                u = 2 * u + sums[q]
            v = u + bias
            if d["readout"]:
                return v
            return pack_bitplanes(fire_serial(v, theta, T)[0])
        v = np.zeros(p.n_pe, dtype=np.int64)
        out = np.zeros(p.n_pe, dtype=np.int64)
        compare = theta + d["fire_above"]  # v > theta  <=>  v >= theta + 1
        if d["compare_leaked"] and d["leak"]:
            compare = compare - (theta >> d["leak"])
        for t in range(1, T + 1):
            if d["leak"]:
                v = v - (v >> d["leak"])
            v = v + sums[T - t] + bias
            if d["readout"]:
                continue
            s = (v >= compare).astype(np.int64)
            v = v * (1 - s) if d["reset_zero"] else v - theta * s
            out |= s << (T - t)
        return v if d["readout"] else out

    def dense(self, d, in_base: int, from_input: bool) -> np.ndarray:
        T = d["T"]
        blocks = np.stack([self.block(in_base + c, from_input) for c in range(d["chunks"])])
        planes = _planes(blocks, T)  # (T, chunks, k)
        out = []
        for ps in range(d["passes"]):
            rows = self.mem.weights[d["w_base"] + ps * d["chunks"]:
                                    d["w_base"] + (ps + 1) * d["chunks"]]  # (chunks, n_pe, k)
            sums = np.einsum("tci,cni->tn", planes, rows)
            out.append(self.fire(d, sums, d["bt_base"] + ps))
        return np.concatenate(out)  # passes * n_pe values

    def shortcut(self, d, cy: int, cx: int, ps: int) -> np.ndarray:
        """Gain x the bit-planes of pass ``ps``'s shortcut channels at ``(cy, cx)``, (T, n_pe)."""
        p, T = self.p, d["T"]
        gain = d["res_gain"] - 256 if d["res_gain"] >= 128 else d["res_gain"]
        co_chunks = -(-d["n_out"] // p.k)
        base = d["res_base"] + (cy * d["conv_w"] + cx) * co_chunks
        src = np.zeros(p.n_pe, dtype=np.int64)
        for b in range(p.n_pe // p.k):
            j = ps * (p.n_pe // p.k) + b
            if j < co_chunks:
                src[b * p.k:(b + 1) * p.k] = self.block(base + j, bool(d["res_input"]))
        return gain * _planes(src, T)

    def conv(self, d, in_base: int, from_input: bool) -> None:
        """Follow the fetcher's walk (:func:`sw.compile.conv_layout.conv_fetch`): per conv
        position and pass, sum the fetched blocks' bit-planes times their weight rows, add the
        shortcut, fire; the writer pools each window and writes its blocks."""
        p, T = self.p, d["T"]
        co_chunks = -(-d["n_out"] // p.k)
        live = np.arange(d["passes"] * p.n_pe) < d["n_out"]
        window = 1 << (2 * d["pool_log2"])  # conv positions per pooled position
        addr = d["out_base"]
        passes, best, seen = [], None, 0
        for cy, cx, ps, fetches in conv_fetch(d):
            sums = np.zeros((T, p.n_pe), dtype=np.int64)
            for block, row in fetches:
                sums += _planes(self.block(in_base + block, from_input), T) @ \
                    self.mem.weights[row].T
            if d["res_gain"]:
                sums += self.shortcut(d, cy, cx, ps)
            passes.append(self.fire(d, sums, d["bt_base"] + ps))
            if ps < d["passes"] - 1:
                continue
            words = np.where(live, np.concatenate(passes), 0)  # the writer masks c >= n_out
            passes = []
            if best is None:
                best = words
            else:  # SpikePack: the largest word (= firing the largest membrane); LIF: OR
                best = best | words if d["lif"] else np.maximum(best, words)
            seen += 1
            if seen == window:
                self.act[addr:addr + co_chunks] = best.reshape(-1, p.k)[:co_chunks]
                addr += co_chunks
                best, seen = None, 0


def run_image(image: ProgramImage, x) -> ImageRun:
    """Run ``image`` on a batch ``x`` (what :func:`encode_inputs` takes) from its memories."""
    p = image.params
    mem = image_memories(image)
    memory = input_memory(image, encode_inputs(image, x))
    n = len(np.atleast_2d(x))  # samples (encode_inputs checked the shape)
    outputs, spikes = [], []
    for b in range(n):
        inputs = _blocks_from_words(memory[b * image.in_stride:(b + 1) * image.in_stride], p)
        core = _Core(image, mem, inputs)
        in_base, from_input = 0, True
        counts = []
        for li, d in enumerate(mem.program):
            if d["kind"] == 1:
                core.conv(d, in_base, from_input)
                out_base = d["out_base"]
                co_chunks = -(-d["n_out"] // p.k)
                n_blocks = (d["conv_h"] >> d["pool_log2"]) * (d["conv_w"] >> d["pool_log2"])
                stored = core.act[out_base:out_base + n_blocks * co_chunks]
            else:
                vals = core.dense(d, in_base, from_input)
                vals = np.where(np.arange(len(vals)) < d["n_out"], vals, 0)
                if d["last"]:
                    outputs.append((b, vals[:d["n_out"]]))
                    counts.append(0 if d["readout"] else _ones(vals))
                    break
                out_base = (li % 2) * p.act_chunks
                stored = vals.reshape(-1, p.k)
                core.act[out_base:out_base + len(stored)] = stored
            counts.append(_ones(stored))
            in_base, from_input = out_base, False
        spikes.append(counts)
    outputs.sort(key=lambda t: t[0])
    # The OUTPUT memory holds 32-bit words; decode them as the host does.
    words = np.concatenate([v for _, v in outputs]) & 0xFFFFFFFF
    assert len(output_addresses(image, len(outputs))) == len(outputs)
    return ImageRun(decode_outputs(image, words), np.array(spikes, dtype=np.int64).T)


def _ones(words) -> int:
    w = np.asarray(words, dtype=np.int64).ravel()
    return int(sum(bin(int(v)).count("1") for v in w))
