"""Waiting for an event with a time limit, without losing a cancellation.

On Python 3.11, ``asyncio.wait_for`` can swallow a cancellation that arrives as its time runs out
(CPython gh-86296, fixed in 3.12), and inside ``suppress(TimeoutError)`` a loop built on it then keeps
going after ``task.cancel()``. ``asyncio.timeout`` tells its own expiry from an outside cancellation.
"""

from __future__ import annotations

import asyncio


async def wait_set(event: asyncio.Event, timeout_s: float) -> bool:
    """Wait until ``event`` is set or ``timeout_s`` passes; True if it is set."""
    try:
        async with asyncio.timeout(timeout_s):
            await event.wait()
    except TimeoutError:
        return event.is_set()
    return True
