"""Atomic, guarded writes: the one way Holt changes more than one key.

A ``Tx`` collects guards (conditions that must hold) and operations, and runs them as one Lua script.
Either every guard holds and every operation is applied, or nothing is written and the caller learns
which guard failed. Publishes are operations too, so an event always goes out in the same atomic step
as the data it announces, and after it: a subscriber that reads on receipt always finds the data.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any

from holt_core.models import dumps
from holt_core.redis_wire import CommandWire, redis_errors, script_sha

# Guards run first and return the 1-based index of the first one that fails; then ops run in order.
# Values travel as strings so Lua never reformats a number (1.7e12 would become "1.73e+12").
_LUA = r"""
local spec = cjson.decode(ARGV[1])
for i, g in ipairs(spec.g) do
  local kind, key = g[1], KEYS[g[2]]
  if kind == 'absent' then
    if redis.call('EXISTS', key) == 1 then return i end
  elseif kind == 'hfield' then
    local v = redis.call('HGET', key, g[3])
    if g[4] == cjson.null then
      if v then return i end
    elseif v ~= g[4] then return i end
  elseif kind == 'get' then
    local v = redis.call('GET', key)
    if g[3] == cjson.null then
      if v then return i end
    elseif v ~= g[3] then return i end
  end
end
for _, op in ipairs(spec.o) do
  local kind = op[1]
  if kind == 'hset' then redis.call('HSET', KEYS[op[2]], unpack(op[3]))
  elseif kind == 'set' then redis.call('SET', KEYS[op[2]], op[3])
  elseif kind == 'del' then redis.call('DEL', KEYS[op[2]])
  elseif kind == 'zadd' then redis.call('ZADD', KEYS[op[2]], op[3], op[4])
  elseif kind == 'zrem' then redis.call('ZREM', KEYS[op[2]], op[3])
  elseif kind == 'sadd' then redis.call('SADD', KEYS[op[2]], op[3])
  elseif kind == 'srem' then redis.call('SREM', KEYS[op[2]], op[3])
  elseif kind == 'publish' then redis.call('PUBLISH', op[2], op[3])
  elseif kind == 'xadd' then redis.call('XADD', KEYS[op[2]], '*', unpack(op[3]))
  elseif kind == 'pexpire' then redis.call('PEXPIRE', KEYS[op[2]], op[3])
  end
end
return 0
"""


@dataclass
class Tx:
    """A batch of guarded writes, built up and then run with ``TxRunner.run``."""

    keys: list[str] = field(default_factory=list)
    guards: list[list[Any]] = field(default_factory=list)
    ops: list[list[Any]] = field(default_factory=list)
    _key_index: dict[str, int] = field(default_factory=dict)

    def _k(self, key: str) -> int:
        idx = self._key_index.get(key)
        if idx is None:
            self.keys.append(key)
            idx = self._key_index[key] = len(self.keys)
        return idx

    # --- guards ---
    def require_absent(self, key: str) -> Tx:
        self.guards.append(["absent", self._k(key)])
        return self

    def require_field(self, key: str, name: str, value: str | None) -> Tx:
        """HGET key name must equal value (None: the field or hash must not exist)."""
        self.guards.append(["hfield", self._k(key), name, value])
        return self

    def require_value(self, key: str, value: str | None) -> Tx:
        self.guards.append(["get", self._k(key), value])
        return self

    # --- operations ---
    def hset(self, key: str, mapping: dict[str, str]) -> Tx:
        if mapping:
            flat: list[str] = []
            for name, value in mapping.items():
                flat.extend((name, value))
            self.ops.append(["hset", self._k(key), flat])
        return self

    def set(self, key: str, value: str) -> Tx:
        self.ops.append(["set", self._k(key), value])
        return self

    def delete(self, key: str) -> Tx:
        self.ops.append(["del", self._k(key)])
        return self

    def zadd(self, key: str, score: int | float, member: str) -> Tx:
        self.ops.append(["zadd", self._k(key), repr(score) if isinstance(score, float) else str(score), member])
        return self

    def zrem(self, key: str, member: str) -> Tx:
        self.ops.append(["zrem", self._k(key), member])
        return self

    def sadd(self, key: str, member: str) -> Tx:
        self.ops.append(["sadd", self._k(key), member])
        return self

    def srem(self, key: str, member: str) -> Tx:
        self.ops.append(["srem", self._k(key), member])
        return self

    def xadd(self, key: str, fields: dict[str, str]) -> Tx:
        """Append a stream entry with a server-assigned id."""
        flat: list[str] = []
        for name, value in fields.items():
            flat.extend((name, value))
        self.ops.append(["xadd", self._k(key), flat])
        return self

    def pexpire(self, key: str, ttl_ms: int) -> Tx:
        self.ops.append(["pexpire", self._k(key), str(ttl_ms)])
        return self

    def publish(self, channel: str, message: str) -> Tx:
        self.ops.append(["publish", channel, message])
        return self

    def extend(self, other: Tx) -> Tx:
        """Append another Tx's guards and operations (re-indexing its keys)."""
        remap = {i + 1: self._k(k) for i, k in enumerate(other.keys)}
        for g in other.guards:
            self.guards.append([g[0], remap[g[1]], *g[2:]])
        for op in other.ops:
            if op[0] == "publish":
                self.ops.append(list(op))
            else:
                self.ops.append([op[0], remap[op[1]], *op[2:]])
        return self


@dataclass(frozen=True)
class TxResult:
    ok: bool
    failed_guard: int | None = None  # 0-based index into Tx.guards


class TxRunner:
    """Runs Tx batches on one lean Redis connection (the script is loaded once, then EVALSHA).

    Transactions submitted in the same event-loop tick go to Redis as one pipeline: each is still its own
    atomic script, but a burst of them (16 workflows hopping at once) costs one round trip, not one each.
    """

    def __init__(self, wire: CommandWire) -> None:
        self._wire = wire
        self._sha = script_sha(_LUA)
        self._pending: list[tuple[list[str], str, asyncio.Future[Any]]] = []

    async def run(self, tx: Tx) -> TxResult:
        if not tx.ops and not tx.guards:
            return TxResult(ok=True)
        spec = dumps({"g": tx.guards, "o": tx.ops})
        for _ in range(2):
            loop = asyncio.get_running_loop()
            future: asyncio.Future[Any] = loop.create_future()
            if not self._pending:
                # After this tick's other callbacks, so the batch takes every Tx submitted in the tick.
                loop.call_soon(self._flush)
            self._pending.append((tx.keys, spec, future))
            reply = await future
            if isinstance(reply, Exception) and isinstance(reply, redis_errors().NoScriptError):
                # The script cache was emptied (SCRIPT FLUSH, a restarted Redis); nothing of the script ran.
                await self._wire.call("SCRIPT", "LOAD", _LUA)
                continue
            if isinstance(reply, Exception):
                raise reply
            failed = int(reply)
            return TxResult(ok=False, failed_guard=failed - 1) if failed else TxResult(ok=True)
        raise redis_errors().NoScriptError("the Tx script could not be loaded into Redis")

    def _flush(self) -> None:
        batch, self._pending = self._pending, []
        if batch:
            self._wire.submit([["EVALSHA", self._sha, len(keys), *keys, spec] for keys, spec, _ in batch],
                              [future for _, _, future in batch])
