"""The supervisor frees a dead orchestrator's instance lock through holt_core/lock.py's one rule: only when its
holder is provably gone, guarded on the owner token (a lock a live orchestrator holds is never removed)."""

from __future__ import annotations

import asyncio
import os
import socket
import sys
from pathlib import Path

from holt_core.blackboard import Blackboard
from holt_core.supervisor import Supervisor


def _supervisor(tmp_path: Path, redis_url: str, instance: str, bb: Blackboard) -> Supervisor:
    sup = Supervisor(instance, tmp_path, redis_url, [], api=False)
    sup._redis = bb.redis  # what run() connects; only the lock release is exercised here
    return sup


async def test_release_frees_only_a_dead_holders_lock(tmp_path: Path, redis_url: str, instance: str,
                                                      bb: Blackboard) -> None:
    sup = _supervisor(tmp_path, redis_url, instance, bb)
    keys = bb.keys
    # A live holder (this very process): its lock stays.
    await bb.redis.set(keys.lock, "orchestrator:1")
    await bb.redis.set(keys.lock_owner, f"{socket.gethostname()}:{os.getpid()}:live")
    await sup._release_dead_lock()
    assert await bb.redis.get(keys.lock_owner) is not None and await bb.redis.get(keys.lock) is not None
    # A reaped holder: freed at once.
    proc = await asyncio.create_subprocess_exec(sys.executable, "-c", "pass")
    await proc.wait()
    dead = proc.pid
    await bb.redis.set(keys.lock_owner, f"{socket.gethostname()}:{dead}:gone")
    await sup._release_dead_lock()
    assert await bb.redis.get(keys.lock_owner) is None and await bb.redis.get(keys.lock) is None
