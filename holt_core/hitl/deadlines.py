"""The deadline sweeper: escalation steps, expiries and peer time-outs from one Redis sorted set.

Runs inside the orchestrator (which holds the instance lock, so exactly one sweeper fires). Members are
``<request id>|<step>`` scored by due time; a fired step is a compare-and-set through the request store,
so it races a human answer fairly and firing the same step twice changes nothing.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

from holt_core.errors import HoltError
from holt_core.hitl.requests import RequestStore
from holt_core.identity import SYSTEM_TIMEOUT
from holt_core.logs import EventLogger
from holt_core.models import now_ms
from holt_core.waiting import wait_set

MAX_SLEEP_S = 1.0  # other processes add deadlines too: look again at least this often
HOUSEKEEPING_S = 10.0
_BATCH = 100


class DeadlineSweeper:
    def __init__(self, store: RequestStore, *, log: EventLogger,
                 on_cycle: Callable[[], Awaitable[None]] | None = None) -> None:
        self.store = store
        self.keys = store.keys
        self.redis = store.bb.redis
        self.log = log
        self._wake = asyncio.Event()
        self._on_cycle = on_cycle
        self._last_housekeeping = 0.0
        self._halted = False

    def wake(self) -> None:
        self._wake.set()

    def halt(self) -> None:
        """Stop at the next turn of the loop. Cancelling alone was seen to leave this loop running when the
        orchestrator stopped right after an event (the cancellation lost on the way), hanging its shutdown."""
        self._halted = True
        self._wake.set()

    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        while not self._halted:
            try:
                await self.fire_due()
                if self._on_cycle is not None and loop.time() - self._last_housekeeping >= HOUSEKEEPING_S:
                    self._last_housekeeping = loop.time()
                    await self._on_cycle()
                delay = await self._until_next()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # a failed sweep is retried; it must never stop the loop
                self.log.error("error", message="deadline sweep failed", error=repr(exc))
                delay = MAX_SLEEP_S
            if self._halted:
                return
            self._wake.clear()
            await wait_set(self._wake, delay)

    async def _until_next(self) -> float:
        rows = await self.redis.zrange(self.keys.hitl_deadlines, 0, 0, withscores=True)
        if not rows:
            return MAX_SLEEP_S
        due = float(rows[0][1])
        return max(0.0, min(MAX_SLEEP_S, (due - now_ms()) / 1000))

    async def fire_due(self) -> int:
        fired = 0
        while True:
            members = await self.redis.zrangebyscore(self.keys.hitl_deadlines, "-inf", now_ms(), start=0, num=_BATCH)
            if not members:
                return fired
            for member in members:
                await self._fire(str(member))
                fired += 1

    async def _fire(self, member: str) -> None:
        request_id, _, what = member.partition("|")
        try:
            if what == "expire":
                await self.store.expire(request_id)
            elif what.startswith("esc:"):
                await self.store.escalate(request_id, int(what[4:]))
            elif what.startswith("peer:"):
                await self.store.move_up(request_id, from_hop=int(what[5:]), outcome="timeout",
                                         note="no answer within the peer timeout", operator=SYSTEM_TIMEOUT)
            self.log.info("deadline_fired", request_id=request_id, step=what)
        except HoltError as exc:  # the request is gone or unreadable: drop the entry, say why
            self.log.warning("deadline_dropped", request_id=request_id, step=what, error=exc.message)
        # Steps remove their own entry atomically; this catches entries of requests already decided.
        await self.redis.zrem(self.keys.hitl_deadlines, member)
