"""``lib.stream`` helpers for Amaranth async testbenches: producer/consumer with random pauses."""

from __future__ import annotations

import random


async def stream_put(ctx, stream, payload, *, rng: random.Random | None = None, pause=0.0):
    """Offer ``payload`` on ``stream`` (valid held until ready), after random idle cycles."""
    while rng is not None and rng.random() < pause:
        await ctx.tick()
    ctx.set(stream.valid, 1)
    ctx.set(stream.payload, payload)
    await ctx.tick().until(stream.ready)
    ctx.set(stream.valid, 0)


async def stream_get(ctx, stream, *, rng: random.Random | None = None, pause=0.0):
    """Take one payload from ``stream``, holding ``ready`` low for random cycles first."""
    while rng is not None and rng.random() < pause:
        await ctx.tick()
    ctx.set(stream.ready, 1)
    (payload,) = await ctx.tick().sample(stream.payload).until(stream.valid)
    ctx.set(stream.ready, 0)
    return payload


def run_bounded(sim, deadline: float, what: str = "simulation") -> None:
    """``sim.run()``, but fail with ``TimeoutError`` if it is still going at ``deadline`` seconds.

    The run ends as soon as every non-background testbench has returned.
    """

    async def watchdog(ctx):
        await ctx.delay(deadline)
        raise TimeoutError(f"{what} still running at {deadline * 1e6:.0f} us of simulated time")

    sim.add_testbench(watchdog, background=True)
    sim.run()
