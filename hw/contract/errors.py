"""The core's error codes: ``REG_STATUS`` bits 8..15 after a run ended with the error bit set.

The sequencer (``hw.core.sequencer``) sets them; the host driver names them in its errors.
"""

from __future__ import annotations

import enum

__all__ = ["ErrorCode"]


class ErrorCode(enum.IntEnum):
    """``REG_STATUS`` bits 8..15 after a run ended with the error bit set; ``meaning`` says what
    each is in words (the host driver's error messages use it)."""

    NONE = 0
    BAD_BATCH = 1
    BAD_T = 2
    BAD_SIZE = 3
    BAD_KIND = 4
    NO_LAST = 5
    NO_LIF = 6
    NO_CONV_OP = 7

    @property
    def meaning(self) -> str:
        return _ERROR_MEANINGS[self]


_ERROR_MEANINGS = {
    ErrorCode.NONE: "no error",
    ErrorCode.BAD_BATCH: "batch size 0 or above the build's batch_depth",
    ErrorCode.BAD_T: "a layer's T is 0 or above the build's t_max",
    ErrorCode.BAD_SIZE: "a layer's chunks, passes, outputs or bias rows are outside the build",
    ErrorCode.BAD_KIND: "a layer kind the core does not run (dense, and conv as a hidden "
                        "non-readout layer on a build with conv=1, only)",
    ErrorCode.NO_LAST: "no descriptor of the program is marked last",
    ErrorCode.NO_LIF: "a LIF/IF layer on a build without the LIF datapath (lif=0)",
    ErrorCode.NO_CONV_OP: "a conv operation this gateware does not run (reserved: conv layers "
                          "with max pooling and shortcuts run; no descriptor raises it now)",
}
