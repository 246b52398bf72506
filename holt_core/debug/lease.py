"""The control lease: one operator at a time may change the debug state; everyone else is read-only.

A Redis hash with a TTL (operator, token, since). The holder's client refreshes it while attached; when
the holder vanishes the lease lapses, holds stay held, and anyone may take control. Taking control from
a live holder is explicit (``force``) and audited with the previous holder. An admin acting ``--as`` an operator
(``impersonated_by``) is recorded on the lease and on every audit record of it, as for every other act.

Only people's Redis users (and the orchestrator's) may write the lease: an agent's user cannot take it
(holt_core/acl.py).
"""

from __future__ import annotations

import secrets
from typing import Any

from pydantic import BaseModel

from holt_core.blackboard import Blackboard
from holt_core.debug.events import DebugEventType, announce
from holt_core.errors import HoltError
from holt_core.identity import human_role
from holt_core.models import now_ms
from holt_core.transaction import Tx

DEFAULT_LEASE_TTL_S = 60.0
_RETRIES = 20


class ControlRefused(HoltError):
    """Another operator holds control."""


class LeaseInfo(BaseModel):
    operator: str
    token: str
    since_ms: int
    expires_in_ms: int
    impersonated_by: str = ""  # the admin who took it as ``operator`` (--as)


class ControlLease:
    def __init__(self, bb: Blackboard, operator: str, token: str | None = None) -> None:
        self.bb = bb
        self.keys = bb.keys
        self.operator = operator
        self.actor = human_role(operator)  # the audit form of a person
        self.token = token or secrets.token_hex(8)
        self.impersonated_by = ""  # an admin acting as ``operator`` (--as)

    def _details(self, details: dict[str, Any] | None = None) -> dict[str, Any]:
        out = dict(details or {})
        if self.impersonated_by:
            out["impersonated_by"] = self.impersonated_by
        return out

    async def holder(self) -> LeaseInfo | None:
        async with self.bb.redis.pipeline(transaction=False) as pipe:
            pipe.hgetall(self.keys.debug_lease)
            pipe.pttl(self.keys.debug_lease)
            raw, ttl = await pipe.execute()
        if not raw or not raw.get("operator"):
            return None
        since = str(raw.get("since_ms", "0"))
        return LeaseInfo(operator=str(raw["operator"]), token=str(raw.get("token", "")),
                         since_ms=int(since) if since.isdigit() else 0, expires_in_ms=max(int(ttl), 0),
                         impersonated_by=str(raw.get("impersonated_by", "")))

    def guard(self, tx: Tx) -> Tx:
        """Make ``tx`` apply only while this operator holds control."""
        return tx.require_field(self.keys.debug_lease, "operator", self.operator)

    def _write(self, tx: Tx, ttl_s: float) -> Tx:
        key = self.keys.debug_lease
        tx.delete(key)  # a field of an earlier holder (impersonated_by) never stays behind
        tx.hset(key, {"operator": self.operator, "token": self.token, "since_ms": str(now_ms()),
                      **({"impersonated_by": self.impersonated_by} if self.impersonated_by else {})})
        tx.pexpire(key, int(ttl_s * 1000))
        return announce(tx, self.keys, DebugEventType.LEASE_CHANGED, operator=self.operator)

    async def take(self, *, force: bool = False, ttl_s: float = DEFAULT_LEASE_TTL_S) -> LeaseInfo:
        """Hold control: free -> taken; ours -> refreshed; another's -> refused unless ``force``."""
        for _ in range(_RETRIES):
            current = await self.holder()
            key = self.keys.debug_lease
            if current is None:
                tx = self._write(Tx().require_absent(key), ttl_s)
                result, _ = await self.bb.audit.commit(tx, operator=self.actor, action="debug_lease_taken",
                                                       details=self._details({"ttl_s": ttl_s}))
            elif current.operator == self.operator:
                if await self.refresh(ttl_s):
                    break
                continue
            elif not force:
                await self.bb.audit.append(operator=self.actor, action="debug_control_refused",
                                           details=self._details({"action": "lease_take",
                                                                  "holder": current.operator}))
                raise self.refusal(current)
            else:
                tx = Tx().require_field(key, "token", current.token).delete(key)
                result, _ = await self.bb.audit.commit(
                    self._write(tx, ttl_s), operator=self.actor, action="debug_lease_taken_over",
                    details=self._details({"previous_holder": current.operator,
                                           "previous_since_ms": current.since_ms, "ttl_s": ttl_s}))
            if result.ok:
                break
        else:
            raise HoltError("the control lease kept changing; try again")
        info = await self.holder()
        if info is None or info.operator != self.operator:
            raise HoltError("the control lease lapsed at once; try a longer --ttl")
        return info

    async def refresh(self, ttl_s: float = DEFAULT_LEASE_TTL_S) -> bool:
        """Extend our lease (any session of this operator); False if we no longer hold it."""
        tx = self.guard(Tx()).pexpire(self.keys.debug_lease, int(ttl_s * 1000))
        return (await self.bb.run(tx)).ok

    async def release(self) -> bool:
        tx = self.guard(Tx()).delete(self.keys.debug_lease)
        announce(tx, self.keys, DebugEventType.LEASE_CHANGED, operator=None)
        result, _ = await self.bb.audit.commit(tx, operator=self.actor, action="debug_lease_released",
                                               details=self._details())
        return result.ok

    async def ensure(self, action: str, ttl_s: float = DEFAULT_LEASE_TTL_S) -> None:
        """Before a change: take the lease if free, refresh it if ours, refuse (audited) if another's."""
        current = await self.holder()
        if current is not None and current.operator != self.operator:
            await self.bb.audit.append(operator=self.actor, action="debug_control_refused",
                                       details=self._details({"action": action, "holder": current.operator}))
            raise self.refusal(current)
        await self.take(ttl_s=ttl_s)

    def refusal(self, current: LeaseInfo) -> ControlRefused:
        return ControlRefused(
            f"control is held by {current.operator} (lease expires in {current.expires_in_ms // 1000} s); "
            "you are read-only",
            hint="take over explicitly with: holt debug lease take --force",
        )
