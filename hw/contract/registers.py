"""Control and status register bits (``hw.contract.bus.REG_CONTROL`` and ``REG_STATUS``).

``REG_CONTROL`` (write): bit 0 start, bit 1 abort, bits 16..31 batch size (samples).
``REG_STATUS`` (read): bit 0 busy, bit 1 done, bit 2 error, bits 8..15 the error code
(:class:`hw.contract.errors.ErrorCode`).
"""

from __future__ import annotations

__all__ = ["CONTROL_START_BIT", "CONTROL_ABORT_BIT", "CONTROL_START", "CONTROL_ABORT",
           "CONTROL_BATCH_SHIFT", "BATCH_LIMIT", "STATUS_BUSY", "STATUS_DONE", "STATUS_ERROR",
           "STATUS_CODE_SHIFT", "control_word", "status_error_code"]

CONTROL_START_BIT = 0
CONTROL_ABORT_BIT = 1
CONTROL_START = 1 << CONTROL_START_BIT
CONTROL_ABORT = 1 << CONTROL_ABORT_BIT
CONTROL_BATCH_SHIFT = 16
#: Largest batch a control word can ask for (the build's limit is ``batch_depth``).
BATCH_LIMIT = 0xFFFF

STATUS_BUSY = 1 << 0
STATUS_DONE = 1 << 1
STATUS_ERROR = 1 << 2
STATUS_CODE_SHIFT = 8


def control_word(batch: int, *, start: bool = True, abort: bool = False) -> int:
    """``REG_CONTROL`` value: start a batch of ``batch`` samples (or abort)."""
    if not 0 <= batch <= BATCH_LIMIT:
        raise ValueError(f"batch must be in 0..{BATCH_LIMIT}, not {batch}")
    return (batch << CONTROL_BATCH_SHIFT) | (CONTROL_START if start else 0) | (
        CONTROL_ABORT if abort else 0)


def status_error_code(status: int) -> int:
    """The error code field of a ``REG_STATUS`` word."""
    return (status >> STATUS_CODE_SHIFT) & 0xFF
