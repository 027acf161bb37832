"""Host driver for a SpikePack accelerator behind the UART host link.

:class:`Device` speaks the frame protocol of ``hw.contract.protocol`` over any
``sw.host.transport.Transport``: the board's serial port or the RTL simulation's UART pins, with the
same code.

Low level (no knowledge of networks): :meth:`Device.identify`, :meth:`Device.write_words`,
:meth:`Device.read_words`, :meth:`Device.run`, :meth:`Device.abort`.
High level (uses ``sw.compile.program_image``): :meth:`Device.load_image`, :meth:`Device.infer`.

Every request is retried on a lost or damaged frame (timeouts, CRC errors, truncation, overrun);
the requests the link offers are idempotent (a repeated write writes the same words, a repeated run
recomputes the same outputs). Errors name what to check.
"""

from __future__ import annotations

import dataclasses
import logging
from collections import deque

from hw.contract.bus import ID_BASE, ID_MAGIC
from hw.contract.errors import ErrorCode
from hw.contract.memory_map import ID_WORDS, identity_mismatch
from hw.contract.protocol import (
    IDENTIFY_FIELDS,
    LINK_MAGIC,
    PROTOCOL_VERSION,
    Command,
    ProtocolError,
    Reply,
    ReplyParser,
    Status,
    encode_request,
    reply_bytes,
    request_bytes,
    words_payload,
)
from hw.contract.registers import BATCH_LIMIT

from .transport import Transport

log = logging.getLogger(__name__)

#: Replies that mean "the frame was damaged or dropped on the way": resend it.
RETRY_STATUS = frozenset({Status.ERR_CRC, Status.ERR_TRUNCATED, Status.ERR_SYNC,
                          Status.ERR_OVERRUN})

#: Words of the core's identify block read by :meth:`Device.identify`.
CORE_ID_WORDS = ID_WORDS


class DeviceError(Exception):
    """The device refused a request or reported an error.

    Members
    -------
    status : Status or int or None
        The reply status, if the device replied.
    """

    def __init__(self, message: str, status=None):
        super().__init__(message)
        self.status = status


class LinkTimeoutError(DeviceError, TimeoutError):
    """No (valid) reply after all retries."""


_HINTS = {
    Status.ERR_COMMAND: "the bitstream's link does not know this command (protocol version?)",
    Status.ERR_LENGTH: "payload length wrong for the command or over the build's max_payload",
    Status.ERR_ADDRESS: "address range outside the device's address map (addr_limit)",
    Status.ERR_RUN_TIMEOUT: "the core did not finish within the link's run timeout and was "
                            "aborted; is a program loaded, is the batch within the image's "
                            "max_batch?",
    Status.ERR_CORE: "the core reported an error; the status word's bits 8..15 hold its code",
}


def core_error_text(status_word: int) -> str:
    """``REG_STATUS`` with its error bit set, in words (the code, ``hw.contract.errors.ErrorCode``,
    and what it means)."""
    code = (int(status_word) >> 8) & 0xFF
    try:
        error = ErrorCode(code)
        name, meaning = error.name, error.meaning
    except ValueError:
        name, meaning = f"code {code}", "unknown error code"
    return f"core error {name}: {meaning} (status {int(status_word):#06x})"


@dataclasses.dataclass(frozen=True)
class LinkInfo:
    """The IDENTIFY reply: the link's build parameters.

    See ``hw.contract.protocol.IDENTIFY_FIELDS``.
    """

    magic: int
    protocol_version: int
    max_payload: int
    clk_freq: int
    baud: int
    idle_timeout: int
    run_timeout: int
    addr_limit: int
    link_hash: int

    @property
    def run_timeout_s(self) -> float:
        return self.run_timeout / self.clk_freq

    @property
    def idle_timeout_s(self) -> float:
        return self.idle_timeout / self.clk_freq


@dataclasses.dataclass(frozen=True)
class DeviceInfo:
    """What :meth:`Device.identify` found.

    Members
    -------
    link : LinkInfo
    core_words : tuple of int
        The core's identify block (word 0 magic, word 1 version hash, build parameters).
    """

    link: LinkInfo
    core_words: tuple[int, ...]

    @property
    def core_version(self) -> int:
        return self.core_words[1]

    def core_params(self):
        """The core's ``hw.contract.params.CoreParams`` (checks the version hash against this
        host)."""
        from hw.contract.memory_map import params_from_identify

        return params_from_identify(self.core_words)


@dataclasses.dataclass(frozen=True)
class InferenceResult:
    """Outputs of :meth:`Device.infer` and the counters of every run it made.

    Members
    -------
    outputs : ndarray
        ``(n_samples, n_out)``: membranes of a readout layer, packed words otherwise.
    counters : list of sw.compile.program_image.Counters
        One per run (each run is one batch of at most the image's ``max_batch`` samples:
        ``batch_depth``, or fewer when the samples' inputs or outputs fill the INPUT or OUTPUT
        region first, as an MNIST image's 784 spike blocks do).
    """

    outputs: object
    counters: list

    @property
    def total_cycles(self) -> int:
        return sum(c.total_cycles for c in self.counters)


class Device:
    """A SpikePack accelerator on a byte transport.

    Parameters
    ----------
    transport : sw.host.transport.Transport
    retries : int
        Resends of one request before giving up.
    timeout : float or None
        Silence (seconds, in the transport's time base) allowed on top of the wire time of the
        bytes in flight; default ``transport.default_timeout``.
    window : int
        Frames in flight for multi-frame transfers (the link holds two; 1 is stop-and-wait).
    """

    def __init__(self, transport: Transport, *, retries: int = 3, timeout: float | None = None,
                 window: int = 2):
        if not 1 <= window <= 2:
            raise ValueError("window must be 1 or 2 (the link buffers two frames)")
        self.transport = transport
        self.retries = retries
        self.timeout = transport.default_timeout if timeout is None else timeout
        self.window = window
        self._seq = 0
        self._parser = ReplyParser()
        self._info: DeviceInfo | None = None
        self.resends = 0  #: frames sent again after a loss or damage report

    # --- frames ---------------------------------------------------------------------------------

    def _next_seq(self) -> int:
        self._seq = (self._seq + 1) & 0xFF
        return self._seq

    def _wire_time(self, n_bytes: int) -> float:
        baud = self._info.link.baud if self._info else getattr(self.transport, "baud", None)
        return 0.0 if not baud else n_bytes * 10 / baud

    def _receive(self, timeout: float) -> Reply | None:
        """The next reply, or ``None`` if the line stays silent for ``timeout``."""
        while True:
            try:
                reply = self._parser.pop()
            except ProtocolError as e:
                log.warning("damaged reply dropped: %s", e)
                continue
            if reply is not None:
                return reply
            data = self.transport.read(self._parser.needed(), timeout)
            if not data:
                return None
            self._parser.feed(data)

    def transact_many(self, requests, *, window: int | None = None, extra_time: float = 0.0,
                      progress=None, ordered: bool = False) -> list[Reply]:
        """Send requests, ``window`` in flight; return their OK replies in order.

        Each request is ``(command, payload)`` or ``(command, payload, extra_time)`` (seconds a
        reply may take on top of the wire time, e.g. a RUN's; the ``extra_time`` argument is the
        default). Damaged or lost frames are resent (up to ``retries`` times each); any other error
        status raises :class:`DeviceError`.

        ``ordered`` is for sequences whose requests depend on each other (write inputs, RUN, read
        outputs): a reply is taken only from the oldest request in flight, and when that one is
        lost or damaged, it and every request sent after it are sent again, in order (go-back-N),
        so no request's reply is kept unless all before it succeeded first. Without it, frames are
        independent (writes to distinct words, reads of memory nothing changes) and only the
        failed ones are resent.
        """
        requests = [r if len(r) == 3 else (r[0], r[1], extra_time) for r in requests]
        window = self.window if window is None else window
        results: list[Reply | None] = [None] * len(requests)
        attempts = [0] * len(requests)
        waiting = deque(range(len(requests)))  # not yet sent (or to be resent)
        inflight: dict[int, int] = {}  # seq -> request index
        order: deque[int] = deque()  # seqs in send order

        def send(i):
            command, payload, _ = requests[i]
            if attempts[i] > self.retries:
                raise LinkTimeoutError(
                    f"{Command(command).name} failed after {self.retries} retries on "
                    f"{self.transport.description}; check the cable/port, that the baud rate "
                    f"matches the bitstream, and that the FPGA is configured", None)
            if attempts[i]:
                self.resends += 1
            attempts[i] += 1
            seq = self._next_seq()
            inflight[seq] = i
            order.append(seq)
            self.transport.write(encode_request(command, seq, payload))

        def go_back():
            """Put every request in flight back in front of the queue, in request order."""
            nonlocal waiting
            for seq in list(order):
                waiting.appendleft(inflight.pop(seq))
            order.clear()
            waiting = deque(sorted(waiting))

        while waiting or inflight:
            while waiting and len(inflight) < window:
                send(waiting.popleft())
            in_bytes = sum(request_bytes(len(requests[i][1])) for i in inflight.values())
            wire = self._wire_time(in_bytes + reply_bytes(self._max_reply()))
            extra = sum(requests[i][2] for i in inflight.values())
            reply = self._receive(self.timeout + extra + 1.5 * wire)
            if reply is None:
                log.warning("no reply within the timeout; resending %d frame(s)", len(inflight))
                self.transport.discard_input()
                self._parser = ReplyParser()
                go_back()
                continue
            i = inflight.get(reply.seq)
            if i is None or reply.command != requests[i][0]:
                log.debug("stale reply seq %d dropped", reply.seq)
                continue
            if ordered and reply.seq != order[0]:
                log.warning("reply to a later request before the oldest one's; resending %d "
                            "frame(s) in order", len(inflight))
                go_back()
                continue
            del inflight[reply.seq]
            order.remove(reply.seq)
            if reply.status == Status.OK:
                results[i] = reply
                if progress is not None:
                    progress.update(len(requests[i][1]))
            elif reply.status in RETRY_STATUS:
                log.info("%s reported by the device; resending", Status(reply.status).name)
                waiting.appendleft(i)
                if ordered:
                    go_back()
            elif reply.status == Status.ERR_CORE and len(reply.payload) >= 4:
                raise DeviceError(f"{Command(requests[i][0]).name} failed: "
                                  f"{core_error_text(reply.words[0])}", reply.status)
            else:
                name = reply.status.name if isinstance(reply.status, Status) else reply.status
                raise DeviceError(
                    f"{Command(requests[i][0]).name} refused: {name} "
                    f"({_HINTS.get(reply.status, 'unknown status')}); "
                    f"payload {reply.payload.hex()}",
                    reply.status)
        return results

    def _max_reply(self) -> int:
        return self._info.link.max_payload if self._info else 64

    def transact(self, command: int, payload: bytes = b"", *, extra_time: float = 0.0) -> Reply:
        """One request, retried as needed; returns the OK reply."""
        return self.transact_many([(command, payload)], window=1, extra_time=extra_time)[0]

    # --- low level ------------------------------------------------------------------------------

    def identify(self, *, refresh: bool = False) -> DeviceInfo:
        """Read the link's build parameters and the core's identify block."""
        if self._info is not None and not refresh:
            return self._info
        reply = self.transact(Command.IDENTIFY)
        words = reply.words
        if len(words) < len(IDENTIFY_FIELDS) or words[0] != LINK_MAGIC:
            raise DeviceError(f"not a SpikePack host link on {self.transport.description} "
                              f"(IDENTIFY returned {reply.payload.hex()})")
        link = LinkInfo(*words[:len(IDENTIFY_FIELDS)])
        if link.protocol_version != PROTOCOL_VERSION:
            raise DeviceError(f"the bitstream speaks link protocol {link.protocol_version}, this "
                              f"host {PROTOCOL_VERSION}; rebuild one of them")
        self._info = DeviceInfo(link, ())
        core = tuple(self.read_words(ID_BASE, CORE_ID_WORDS))
        if core[0] != ID_MAGIC:
            raise DeviceError(f"the core's identify block starts with {core[0]:#010x}, not the "
                              f"SpikePack magic {ID_MAGIC:#010x}")
        self._info = DeviceInfo(link, core)
        return self._info

    @property
    def info(self) -> DeviceInfo:
        return self.identify()

    def _link(self) -> LinkInfo:
        if self._info is None:
            self.identify()
        return self._info.link

    def _check_range(self, addr: int, count: int) -> None:
        limit = self._link().addr_limit
        if addr < 0 or count < 0 or addr + count > limit:
            raise ValueError(f"words {addr:#x}..{addr + count:#x} are outside the device's "
                             f"address map (0..{limit:#x})")

    def write_words(self, addr: int, words, *, verify: bool = False, progress: bool = False,
                    desc: str = "upload") -> None:
        """Write 32-bit words from word address ``addr`` (split into frames of ``max_payload``).

        ``verify`` reads everything back and raises :class:`DeviceError` on a mismatch (only for
        readable regions). ``progress`` shows a tqdm bar.
        """
        self.write_blocks([(addr, words)], verify=verify, progress=progress, desc=desc)

    def _write_requests(self, blocks) -> list[tuple[int, bytes]]:
        """WRITE requests (at most ``max_payload`` each) for ``(addr, words)`` blocks."""
        per_frame = self._link().max_payload // 4 - 1
        requests = []
        for addr, words in blocks:
            words = [int(w) & 0xFFFFFFFF for w in words]
            self._check_range(addr, len(words))
            requests += [(Command.WRITE, words_payload(addr + i, *words[i:i + per_frame]))
                         for i in range(0, len(words), per_frame)]
        return requests

    def _read_requests(self, blocks) -> list[tuple[int, bytes]]:
        """READ requests (at most ``max_payload`` each) for ``(addr, count)`` blocks, in order."""
        per_frame = self._link().max_payload // 4
        requests = []
        for addr, count in blocks:
            self._check_range(addr, count)
            requests += [(Command.READ, words_payload(addr + i, min(per_frame, count - i)))
                         for i in range(0, count, per_frame)]
        return requests

    def write_blocks(self, blocks, *, verify: bool = False, progress: bool = False,
                     desc: str = "upload") -> None:
        """Write several ``(addr, words)`` blocks as one stream of frames (``window`` in flight)."""
        blocks = [(addr, [int(w) & 0xFFFFFFFF for w in words]) for addr, words in blocks]
        requests = self._write_requests(blocks)
        bar = None
        if progress:
            from tqdm import tqdm

            bar = tqdm(total=sum(len(p) - 4 for _, p in requests), unit="B", unit_scale=True,
                       desc=desc, leave=False)
        try:
            self.transact_many(requests, progress=bar)
        finally:
            if bar is not None:
                bar.close()
        if verify:
            for (addr, words), back in zip(blocks, self.read_blocks(
                    [(a, len(w)) for a, w in blocks]), strict=True):
                bad = [i for i, (a, b) in enumerate(zip(words, back, strict=True)) if a != b]
                if bad:
                    i = bad[0]
                    raise DeviceError(
                        f"read-back of {len(words)} words at {addr:#x} differs in {len(bad)} "
                        f"words, first at {addr + i:#x}: wrote {words[i]:#010x}, read "
                        f"{back[i]:#010x}")

    def read_words(self, addr: int, count: int) -> list[int]:
        """Read ``count`` words from word address ``addr``."""
        return self.read_blocks([(addr, count)])[0]

    def read_blocks(self, blocks) -> list[list[int]]:
        """Read several ``(addr, count)`` blocks as one stream of frames."""
        requests, owner = [], []
        for k, block in enumerate(blocks):
            part = self._read_requests([block])
            requests += part
            owner += [k] * len(part)
        out = [[] for _ in blocks]
        for k, reply in zip(owner, self.transact_many(requests), strict=True):
            out[k] += reply.words
        return out

    def run(self, batch: int = 1) -> int:
        """Run a batch of ``batch`` preloaded inputs; returns the final status word."""
        if not 1 <= batch <= BATCH_LIMIT:
            raise ValueError(f"batch must be in 1..{BATCH_LIMIT}, not {batch}")
        link = self._link()
        reply = self.transact(Command.RUN, words_payload(batch),
                              extra_time=1.2 * link.run_timeout_s)
        return reply.words[0]

    def abort(self) -> None:
        """Stop a run (the core keeps its memories)."""
        self.transact(Command.ABORT)

    # --- high level (program images from sw.compile.program_image)
    # ----------------------------------------------

    def check_image(self, image) -> None:
        """Refuse an image built for a core the device is not (only the identified fields count:
        ``hw.contract.memory_map.identity_mismatch``)."""
        why = identity_mismatch(self.info.core_params(), image.params)
        if why:
            raise DeviceError(f"the image is compiled for another build than the device's "
                              f"({why}); compile the network for this device "
                              f"(spikepack compile NET --port PORT, or --board with its preset)")

    def load_image(self, image, *, verify: bool = True, progress: bool = True) -> None:
        """Write a ``sw.compile.program_image.ProgramImage`` (program, weights, biases, thresholds).

        With ``verify``, the regions the core can read back (``Region.readable``: the program) are
        read and compared; the others are write-only in the core, and each of their frames was
        CRC-checked and acknowledged.
        """
        self.check_image(image)
        total = sum(len(w.words) for w in image.writes)
        self.write_blocks([(w.addr, w.words) for w in image.writes],
                          progress=progress and total > 4096, desc="model upload")
        if verify:
            readable = [w for w in image.writes if image.memory_map[w.region].readable]
            backs = self.read_blocks([(w.addr, len(w.words)) for w in readable])
            for w, back in zip(readable, backs, strict=True):
                if back != [x & 0xFFFFFFFF for x in w.words]:
                    raise DeviceError(f"read-back of {w.region} at {w.addr:#x} does not match "
                                      f"what was written")

    def infer(self, image, x, *, pipeline: bool = True, maps: bool = True,
              progress=None) -> InferenceResult:
        """Run packed inputs ``x`` in batches of ``image.max_batch`` samples.

        ``x`` is ``(n, n_in)``; an image network (first layer conv) also takes ``(n, C, H, W)``
        (:func:`sw.compile.program_image.encode_inputs`).

        Returns the outputs decoded as ``sw.compile.program_image.decode_outputs`` does and each
        run's counters.

        With ``pipeline`` (the default) every batch's frames go out as one ordered stream with
        ``window`` frames in flight, in the order inputs 0, RUN 0, outputs 0 (one READ of the
        batch's output words), the first input frame of 1, counters 0, the rest of inputs 1,
        RUN 1, outputs 1, ...: the link queues the next frame while the core runs, each READ's
        reply goes out on ``tx`` while an input frame comes in on ``rx`` (the UART is full
        duplex), and the line never waits for a round trip. The executor runs frames in order,
        so batch ``b + 1``'s inputs are written only after RUN ``b`` ended (the INPUT slots are
        free again), and batch ``b``'s outputs are read before RUN ``b + 1`` overwrites them.
        ``pipeline=False`` waits for each batch's replies before sending the next batch.
        ``progress(samples_done)`` is called as batches complete.

        With ``maps`` (the default) a batch of a dense network that fits runs as one map
        (:mod:`sw.compile.batch_map`: every layer a 1x1 conv over a row of the batch's samples,
        one fill and drain of the datapath a layer for the batch instead of one a sample): the
        map's descriptors are written before the batch's inputs (when the device does not hold
        them already) and the image's own after the last map. Inputs, outputs and the per-run
        counters are the batch run's; only the cycles are fewer. ``maps=False`` runs every
        batch as a batch run. (An error in the middle can leave a map's descriptors on the
        device: the next ``infer`` of the image writes the ones it needs first, and
        ``load_image`` writes the image's own.)
        """
        import numpy as np

        from sw.compile import batch_map
        from sw.compile import program_image as img

        x = np.atleast_2d(np.asarray(x))
        depth = image.max_batch  # batch_depth, or fewer for wide inputs or outputs
        batches = [x[start:start + depth] for start in range(0, len(x), depth)]
        # The map width whose descriptors the device holds (None: the image's own, as
        # load_image wrote them). For an image that runs as maps it is not known at first (a
        # map run interrupted by an error leaves the map's), so the first batch writes its own.
        held = "unknown" if batch_map.image_map_width(image) >= 2 else None

        def program_for(n):
            """The PROGRAM write a batch of ``n`` samples needs first (None: the device holds
            it), and the batch size its RUN names."""
            nonlocal held
            width = n if maps and batch_map.runs_as_map(image, n) else None
            write = None
            if width != held:
                write = (batch_map.own_program(image) if width is None
                         else batch_map.map_program(image, width))
                held = width
            return write, 1 if width else n

        if not pipeline:
            outputs, counters = [], []
            for chunk in batches:
                program, run_batch = program_for(len(chunk))
                writes = [] if program is None else [program]
                writes += img.encode_inputs(image, chunk)
                self.write_blocks([(w.addr, w.words) for w in writes])
                self.run(run_batch)
                out_words, counter_words = self.read_blocks(
                    [img.output_range(image, len(chunk)), img.counter_range(image)])
                outputs.append(img.decode_outputs(
                    image, img.batch_outputs(image, len(chunk), out_words)))
                counters.append(img.decode_counters(image, counter_words))
                if progress is not None:
                    progress(sum(len(o) for o in outputs))
            program, _ = program_for(0)  # the image's own descriptors back
            if program is not None:
                self.write_blocks([(program.addr, program.words)])
            return InferenceResult(np.concatenate(outputs) if outputs else
                                   np.zeros((0, image.n_out), np.int64), counters)

        link = self._link()
        run_time = 1.2 * link.run_timeout_s
        # inputs 0, RUN 0, then for every later batch b: the READ of b - 1's outputs, b's first
        # input frame, the READ of b - 1's counters, b's other input frames, RUN b; and the last
        # batch's READs at the end. A READ's reply (hundreds of bytes on tx) then goes out while
        # an input frame comes in on rx, so the line in never waits for it.
        requests, reads = [], []  # reads: (batch, output request indices, counter ones)

        def read_requests(b):
            return (self._read_requests([img.output_range(image, len(batches[b]))]),
                    self._read_requests([img.counter_range(image)]))

        def append(part):
            first = len(requests)
            requests.extend(part)
            return list(range(first, len(requests)))

        for b, chunk in enumerate(batches):
            program, run_batch = program_for(len(chunk))
            writes = [] if program is None else [program]
            writes += img.encode_inputs(image, chunk)
            frames = self._write_requests([(w.addr, w.words) for w in writes])
            if b:
                outs, cnts = read_requests(b - 1)
                out_at = append(outs)
                append(frames[:1])
                reads.append((b - 1, out_at, append(cnts)))
                frames = frames[1:]
            append(frames)
            requests.append((Command.RUN, words_payload(run_batch), run_time))
        if batches:
            outs, cnts = read_requests(len(batches) - 1)
            reads.append((len(batches) - 1, append(outs), append(cnts)))
        program, _ = program_for(0)  # the image's own descriptors back
        if program is not None:
            requests += self._write_requests([(program.addr, program.words)])
        ends = {max(out_at + cnt_at) + 1: len(batches[b]) for b, out_at, cnt_at in reads}

        class _Done:  # transact_many's progress hook: counts replies, reports finished batches
            n = samples = 0

            def update(self, _):
                self.n += 1
                if self.n in ends:
                    self.samples += ends[self.n]
                    if progress is not None:
                        progress(self.samples)

        replies = self.transact_many(requests, ordered=True, progress=_Done())
        outputs, counters = [], []
        for b, out_at, cnt_at in reads:
            out = [w for i in out_at for w in replies[i].words]
            outputs.append(img.decode_outputs(image, img.batch_outputs(image, len(batches[b]),
                                                                       out)))
            counters.append(img.decode_counters(image, [w for i in cnt_at
                                                        for w in replies[i].words]))
        return InferenceResult(np.concatenate(outputs) if outputs else
                               np.zeros((0, image.n_out), np.int64), counters)
