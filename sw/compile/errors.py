"""The compiler's refusal, :class:`DoesNotFitError` (re-exported by ``program_image``)."""

from __future__ import annotations

__all__ = ["DoesNotFitError"]


class DoesNotFitError(ValueError):
    """The network needs more than the build has (the message names what and the limit)."""
