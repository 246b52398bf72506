"""The instance lock: one orchestrator per instance, and the one answer to "is this instance running?".

Two keys (protocol 4.13): ``holt:{inst}:lock`` holds ``orchestrator:{unix_seconds}`` (what Holt's Go CLI
reads), refreshed every ``LOCK_REFRESH_S``; ``lock_owner`` holds our ``host:pid:random`` token, so a restarted
orchestrator on the same host can tell that the holder is dead. A stamp older than ``LOCK_STALE_S`` is stale.

The CLI (``holt up``, ``holt down``, goal watching), holt-tui and ``holt debug explain`` ask ``is_running``;
the orchestrator holds an ``InstanceLock``. Nothing else reads or writes these keys.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
import socket
import time
from typing import Any

from holt_core.blackboard import Blackboard
from holt_core.errors import HoltError
from holt_core.keys import Keys
from holt_core.processes import pid_alive
from holt_core.transaction import Tx

LOCK_TTL_S = 60
LOCK_REFRESH_S = 10
LOCK_STALE_S = 30  # protocol 4.13: an older `orchestrator:{unix_seconds}` stamp is stale


def stamp_seconds(value: object) -> int | None:
    """The unix seconds of a lock value ``orchestrator:{unix_seconds}``; None when it is not one."""
    if value is None:
        return None
    prefix, _, stamp = str(value).partition(":")
    if prefix != "orchestrator" or not stamp.isdigit():
        return None
    return int(stamp)


def is_fresh(value: object, now_s: float | None = None) -> bool:
    """The staleness rule: a lock stamped within ``LOCK_STALE_S`` belongs to a live orchestrator."""
    stamp = stamp_seconds(value)
    return stamp is not None and (time.time() if now_s is None else now_s) - stamp <= LOCK_STALE_S


async def lock_value(redis: Any, keys: Keys) -> str | None:
    value = await redis.get(keys.lock)
    return None if value is None else str(value)


async def is_running(redis: Any, keys: Keys) -> bool:
    """True while an orchestrator (ours or Go's) serves the instance: its lock is there and fresh."""
    return is_fresh(await lock_value(redis, keys))


def owner_is_dead(owner: str) -> bool:
    """True only when the lock holder is provably gone: same host, and its pid no longer exists."""
    host, _, rest = owner.partition(":")
    pid_text = rest.partition(":")[0]
    if host != socket.gethostname() or not pid_text.isdigit():
        return False
    return not pid_alive(int(pid_text))


async def clear_dead_lock(bb: Blackboard) -> bool:
    """Remove the instance lock if its holder is provably gone (a SIGKILLed orchestrator cannot release it).

    Guarded on the owner token, so a lock taken meanwhile by a new orchestrator is never removed.
    """
    keys = bb.keys
    owner = await bb.redis.get(keys.lock_owner)
    if not owner or not owner_is_dead(str(owner)):
        return False
    tx = Tx().require_value(keys.lock_owner, str(owner)).delete(keys.lock_owner).delete(keys.lock)
    return (await bb.run(tx)).ok


async def ensure_free(redis: Any, keys: Keys, instance: str) -> None:
    """Before ``holt up`` starts an orchestrator: refuse while a fresh lock exists; clear a stale one."""
    if await is_running(redis, keys):
        raise HoltError(
            f"instance '{instance}' orchestrator is already running",
            hint="stop that orchestrator first (it may run on another machine), or choose another --name",
        )
    # Stale (its holder died without releasing it): free it, or our orchestrator could not start.
    await redis.delete(keys.lock, keys.lock_owner)


class InstanceLock:
    """The orchestrator's hold on its instance: acquire, heartbeat, release."""

    def __init__(self, bb: Blackboard, log: Any) -> None:
        self.bb = bb
        self.redis = bb.redis
        self.keys = bb.keys
        self.instance = bb.instance
        self.log = log
        # host:pid:random - lets a restarted orchestrator on the same host see that the holder is dead.
        self.token = f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(8)}"

    async def acquire(self) -> None:
        """The instance lock, in the format Holt's CLI reads (``orchestrator:{unix_seconds}``)."""
        stamp = f"orchestrator:{int(time.time())}"
        owner = await self.redis.get(self.keys.lock_owner)
        if owner and owner != self.token and owner_is_dead(str(owner)):
            # Our own host's previous orchestrator died (SIGKILL, OOM): its lock is ours to take now.
            await self.bb.run(Tx().require_value(self.keys.lock_owner, str(owner)).delete(self.keys.lock_owner))
            self.log.warning("stale_lock_taken_over", previous_owner=str(owner))
            owner = None
        if owner and owner != self.token:
            raise HoltError(
                f"instance '{self.instance}' orchestrator is already running",
                hint="stop it with holt down, or wait 60 s if it crashed",
            )
        ok = await self.redis.set(self.keys.lock_owner, self.token, nx=True, ex=LOCK_TTL_S)
        if not ok:
            raise HoltError(f"instance '{self.instance}' orchestrator is already running")
        await self.redis.set(self.keys.lock, stamp, ex=LOCK_TTL_S)

    async def heartbeat(self, lost: asyncio.Event) -> None:
        while True:
            await asyncio.sleep(LOCK_REFRESH_S)
            owner = await self.redis.get(self.keys.lock_owner)
            if owner != self.token:
                self.log.error("lock_lost", owner=owner)
                lost.set()
                return
            tx = Tx().require_value(self.keys.lock_owner, self.token)
            tx.set(self.keys.lock, f"orchestrator:{int(time.time())}")
            await self.bb.run(tx)
            await self.redis.expire(self.keys.lock, LOCK_TTL_S)
            await self.redis.expire(self.keys.lock_owner, LOCK_TTL_S)

    async def release(self) -> None:
        tx = Tx().require_value(self.keys.lock_owner, self.token).delete(self.keys.lock_owner)
        tx.delete(self.keys.lock)
        with contextlib.suppress(Exception):
            await self.bb.run(tx)
