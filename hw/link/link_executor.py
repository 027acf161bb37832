"""Request frames -> bus requests -> reply headers and payload words."""

import operator

from amaranth.hdl import Array, Const, Module, Mux, Signal
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out

from hw.contract.bus import ADDR_BITS, REG_CONTROL, REG_STATUS, BusSignature
from hw.contract.protocol import Command, Status, check_max_payload
from hw.contract.registers import (
    BATCH_LIMIT,
    CONTROL_ABORT,
    CONTROL_BATCH_SHIFT,
    CONTROL_START,
    STATUS_BUSY,
    STATUS_DONE,
    STATUS_ERROR,
)

from .frame_decoder import FrameInfo, buffer_signature
from .frame_encoder import ReplyHeader


class LinkExecutor(wiring.Component):
    """Carry out one request frame at a time on the core's bus and describe the reply.

    Every frame taken from ``frame`` gets exactly one reply header on ``reply`` (and its payload
    words on ``reply_data``). A frame whose decoder status is not ``OK``, whose command is unknown,
    whose length is wrong for its command or whose address range leaves ``[0, addr_limit)`` is
    answered with an error status and issues no bus request.

    - ``IDENTIFY``: replies with the ``identify`` words.
    - ``WRITE address, w0, w1, ...``: one bus write per word, at consecutive addresses, issued only
      after the whole frame passed its CRC check (the decoder buffers it); replies when the last
      write has been accepted.
    - ``READ address, count``: ``count`` bus reads; responses stream into the reply as they come.
    - ``RUN batch``: writes ``start | batch << 16`` to ``REG_CONTROL``, then reads ``REG_STATUS``
      until it shows done and not busy (reply ``OK``) or error (reply ``ERR_CORE``), or until
      ``run_timeout`` cycles have passed (writes abort, reply ``ERR_RUN_TIMEOUT``). The reply
      payload is the last status word.
    - ``ABORT``: writes the abort bit to ``REG_CONTROL``.

    The core may stall ``bus.req`` and answer reads late; the executor waits, holding the frame
    (``frame.ready`` low) until its reply header has been handed over and its payload sent.

    Parameters
    ----------
    max_payload : int
        Largest request/reply payload in bytes.
    addr_limit : int
        First word address past the core's address map.
    run_timeout : int
        Cycles a RUN may poll before it is aborted.
    identify : tuple of int
        The words of the IDENTIFY reply.
    """

    def __init__(self, *, max_payload=1024, addr_limit=1 << ADDR_BITS, run_timeout=1 << 30,
                 identify=(0,)):
        self._max_payload = check_max_payload(max_payload)
        addr_limit = operator.index(addr_limit)
        if not 1 <= addr_limit <= 1 << ADDR_BITS:
            raise ValueError(f"addr_limit must be in 1..{1 << ADDR_BITS}, not {addr_limit}")
        self._addr_limit = addr_limit
        run_timeout = operator.index(run_timeout)
        if run_timeout < 1:
            raise ValueError(f"run_timeout must be positive, not {run_timeout}")
        self._run_timeout = run_timeout
        self._identify = tuple(operator.index(w) & 0xFFFFFFFF for w in identify)
        if not 1 <= len(self._identify) <= self._max_payload // 4:
            raise ValueError("identify must hold 1 to max_payload // 4 words")
        super().__init__({
            "frame": In(stream.Signature(FrameInfo)),
            "buf": Out(buffer_signature(self._max_payload)),
            "bus": Out(BusSignature),
            "reply": Out(stream.Signature(ReplyHeader)),
            "reply_data": Out(stream.Signature(32)),
        })

    @property
    def max_payload(self):
        return self._max_payload

    @property
    def addr_limit(self):
        return self._addr_limit

    @property
    def run_timeout(self):
        return self._run_timeout

    @property
    def identify(self):
        return self._identify

    def elaborate(self, platform):
        m = Module()

        f = self.frame.payload
        max_words = self._max_payload // 4
        req = self.bus.req
        resp = self.bus.resp

        # Reply header register (valid stays up until the encoder takes it).
        with m.If(self.reply.ready):
            m.d.sync += self.reply.valid.eq(0)

        def send_header(status, length, next_state):
            m.d.sync += [
                self.reply.valid.eq(1),
                self.reply.payload.command.eq(f.command),
                self.reply.payload.seq.eq(f.seq),
                self.reply.payload.status.eq(status),
                self.reply.payload.length.eq(length),
            ]
            m.next = next_state

        # Bus request register (write data is loaded straight from the frame buffer's port).
        req_addr = Signal(ADDR_BITS)
        req_data = Signal(32)
        req_write = Signal()
        m.d.comb += [req.payload.addr.eq(req_addr), req.payload.write.eq(req_write),
                     req.payload.data.eq(req_data)]

        todo = Signal(range(max_words + 1))  # requests still to issue
        pending = Signal(range(max_words + 1))  # responses still to forward
        index = Signal(range(max_words + 1))
        timer = Signal(range(self._run_timeout + 1))
        status_word = Signal(32)  # only bits 0..2 and 8..15 exist in the core's status

        # The first two payload words (address, count or batch) come from the frame buffer;
        # then the sums the checks need, then the checks.
        arg0 = Signal(32)  # then the next bus address of a WRITE or READ
        raw = Signal(32, reset_less=True)
        arg1 = Signal(32)
        n_write = Signal(16)
        m.d.comb += n_write.eq((f.length - 4)[2:])
        limit = self._addr_limit
        write_addr_ok = Signal()  # [arg0, arg0 + words) inside the map (words = length/4 - 1)
        read_addr_ok = Signal()
        write_len_ok = (f.length >= 4) & (f.length[:2] == 0)
        read_len_ok = (f.length == 8) & (arg1 >= 1) & (arg1 <= max_words)
        run_len_ok = (f.length == 4) & (arg0 >= 1) & (arg0 <= BATCH_LIMIT)
        # The frame's verdict (``Status.OK`` or the error to reply), registered in VERDICT so
        # that CHECK, which loads the reply header and the bus request, acts on one register.
        verdict = Signal(Status)

        with m.FSM():
            with m.State("IDLE"):
                with m.If(self.frame.valid & ~self.reply.valid):
                    m.d.comb += [self.buf.addr.eq(0), self.buf.en.eq(1)]
                    m.next = "ARG0"
            # The frame buffer's output goes into ``raw`` first (block RAM outputs are slow):
            # word n is on the port the cycle after its read, in ``raw`` the cycle after that.
            with m.State("ARG0"):
                m.d.comb += [self.buf.addr.eq(1), self.buf.en.eq(1)]
                m.d.sync += raw.eq(self.buf.data)  # word 0
                m.next = "ARG1"
            with m.State("ARG1"):
                # Word 2 onto the port (the first data word after word 1, for a WRITE).
                m.d.comb += [self.buf.addr.eq(2), self.buf.en.eq(1)]
                m.d.sync += [arg0.eq(raw), raw.eq(self.buf.data)]  # word 1
                m.next = "ARG2"
            with m.State("ARG2"):
                m.d.sync += arg1.eq(raw)
                m.next = "SUMS"
            with m.State("SUMS"):
                # Past the checks arg0 < 2^24 and arg1 <= max_words: narrow sums are exact.
                m.d.sync += [
                    write_addr_ok.eq((arg0 < limit)
                                     & (arg0[:ADDR_BITS + 1] + f.length[2:] <= limit + 1)),
                    read_addr_ok.eq((arg0 < limit) & (arg0[:ADDR_BITS + 1] + arg1[:16] <= limit)),
                    index.eq(0), timer.eq(0),
                ]
                m.next = "VERDICT"
            with m.State("VERDICT"):
                def judge(length_ok, addr_ok=None):
                    ok = Status.OK if addr_ok is None else Mux(addr_ok, Status.OK,
                                                               Status.ERR_ADDRESS)
                    m.d.sync += verdict.eq(Mux(length_ok, ok, Status.ERR_LENGTH))
                with m.If(f.status != Status.OK):
                    m.d.sync += verdict.eq(f.status)
                with m.Else():
                    with m.Switch(f.command):
                        with m.Case(Command.IDENTIFY, Command.ABORT):
                            judge(f.length == 0)
                        with m.Case(Command.WRITE):
                            judge(write_len_ok, write_addr_ok)
                        with m.Case(Command.READ):
                            judge(read_len_ok, read_addr_ok)
                        with m.Case(Command.RUN):
                            judge(run_len_ok)
                        with m.Default():
                            m.d.sync += verdict.eq(Status.ERR_COMMAND)
                m.next = "CHECK"
            with m.State("CHECK"):
                with m.If(verdict != Status.OK):
                    send_header(verdict, 0, "FINISH")
                with m.Else():
                    with m.Switch(f.command):
                        with m.Case(Command.IDENTIFY):
                            send_header(Status.OK, 4 * len(self._identify), "IDENTIFY")
                        with m.Case(Command.WRITE):
                            # ``raw`` holds payload word 1, the port word 2 (ARG1).
                            m.d.sync += todo.eq(n_write)
                            m.next = "WRITE"
                        with m.Case(Command.READ):
                            m.d.sync += [todo.eq(arg1), pending.eq(arg1)]
                            send_header(Status.OK, arg1 << 2, "READ")
                        with m.Case(Command.RUN):
                            m.d.sync += [
                                req.valid.eq(1), req_write.eq(1), req_addr.eq(REG_CONTROL),
                                req_data.eq(CONTROL_START | (arg0[:16] << CONTROL_BATCH_SHIFT)),
                            ]
                            m.next = "RUN_START"
                        with m.Case(Command.ABORT):
                            m.d.sync += [
                                req.valid.eq(1), req_write.eq(1),
                                req_addr.eq(REG_CONTROL), req_data.eq(CONTROL_ABORT),
                            ]
                            m.next = "ABORT"

            with m.State("IDENTIFY"):
                table = Array(Const(w, 32) for w in self._identify)
                m.d.comb += [self.reply_data.valid.eq(1),
                             self.reply_data.payload.eq(table[index])]
                with m.If(self.reply_data.ready):
                    m.d.sync += index.eq(index + 1)
                    with m.If(index == len(self._identify) - 1):
                        m.next = "FINISH"

            with m.State("WRITE"):
                # ``raw`` holds payload word ``index + 1`` (word 0 is the address), the port word
                # ``index + 2``; whenever the request register is empty or being taken, it takes
                # the word in ``raw``, which takes the port's, which fetches the next.
                advance = ~req.valid | req.ready
                m.d.comb += [self.buf.en.eq(advance), self.buf.addr.eq(index + 3)]
                with m.If(advance):
                    m.d.sync += raw.eq(self.buf.data)
                    with m.If(todo != 0):
                        m.d.sync += [
                            req.valid.eq(1), req_write.eq(1), req_data.eq(raw),
                            req_addr.eq(arg0), arg0.eq(arg0 + 1),
                            index.eq(index + 1), todo.eq(todo - 1),
                        ]
                    with m.Else():
                        m.d.sync += req.valid.eq(0)
                        send_header(Status.OK, 0, "FINISH")

            with m.State("READ"):
                with m.If(req.ready | ~req.valid):
                    with m.If(todo != 0):
                        m.d.sync += [
                            req.valid.eq(1), req_write.eq(0),
                            req_addr.eq(arg0), arg0.eq(arg0 + 1), todo.eq(todo - 1),
                        ]
                    with m.Else():
                        m.d.sync += req.valid.eq(0)
                m.d.comb += [
                    self.reply_data.valid.eq(resp.valid),
                    self.reply_data.payload.eq(resp.payload),
                    resp.ready.eq(self.reply_data.ready),
                ]
                with m.If(resp.valid & resp.ready):
                    m.d.sync += pending.eq(pending - 1)
                    with m.If(pending == 1):
                        m.next = "FINISH"

            with m.State("RUN_START"):
                with m.If(req.ready):
                    m.d.sync += [req.valid.eq(1), req_write.eq(0),
                                 req_addr.eq(REG_STATUS)]
                    m.next = "RUN_POLL"
            with m.State("RUN_POLL"):
                with m.If(timer != self._run_timeout):
                    m.d.sync += timer.eq(timer + 1)
                with m.If(req.ready):
                    m.d.sync += req.valid.eq(0)
                m.d.comb += resp.ready.eq(1)
                with m.If(resp.valid):
                    m.d.sync += [status_word[:3].eq(resp.payload[:3]),
                                 status_word[8:16].eq(resp.payload[8:16])]
                    with m.If(resp.payload & STATUS_ERROR):
                        send_header(Status.ERR_CORE, 4, "STATUS_WORD")
                    with m.Elif((resp.payload & STATUS_DONE) & ~(resp.payload & STATUS_BUSY)):
                        send_header(Status.OK, 4, "STATUS_WORD")
                    with m.Elif(timer >= self._run_timeout):
                        m.d.sync += [
                            req.valid.eq(1), req_write.eq(1),
                            req_addr.eq(REG_CONTROL), req_data.eq(CONTROL_ABORT),
                        ]
                        m.next = "RUN_ABORT"
                    with m.Else():
                        m.d.sync += [req.valid.eq(1), req_write.eq(0),
                                     req_addr.eq(REG_STATUS)]
            with m.State("RUN_ABORT"):
                with m.If(req.ready):
                    m.d.sync += req.valid.eq(0)
                    send_header(Status.ERR_RUN_TIMEOUT, 4, "STATUS_WORD")
            with m.State("STATUS_WORD"):
                with m.If(~self.reply.valid):
                    m.d.comb += [self.reply_data.valid.eq(1),
                                 self.reply_data.payload.eq(status_word)]
                    with m.If(self.reply_data.ready):
                        m.next = "FINISH"

            with m.State("ABORT"):
                with m.If(req.ready):
                    m.d.sync += req.valid.eq(0)
                    send_header(Status.OK, 0, "FINISH")

            with m.State("FINISH"):
                # Release the frame once its header has been taken (its payload already has).
                # (``reply.valid`` is a register: the decoder's queue does not wait on the
                # encoder's state.)
                with m.If(~self.reply.valid):
                    m.d.comb += self.frame.ready.eq(1)
                    m.next = "IDLE"
        return m
