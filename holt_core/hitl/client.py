"""The API a person's tools (the CLI, the TUI) use: what is waiting for people, and acting on it.

Every method returns pydantic models. Text that came from Redis is sanitised in ``OpenItem`` (it is for
display); ``HitlRequest`` from ``status`` is raw, so render it through ``sanitise_text``.
Live updates: subscribe to ``HitlClient.channel`` (``holt:{inst}:hitl:events``); each message is a
``RequestChange``.
"""

from __future__ import annotations

import asyncio
from typing import Any

from pydantic import BaseModel, ValidationError

from holt_core.blackboard import Blackboard
from holt_core.errors import MalformedRecord
from holt_core.hitl.models import HitlRequest, RequestChange, RequestKind
from holt_core.hitl.open_items import open_item_fields, wanted
from holt_core.hitl.policy import HitlPolicy
from holt_core.hitl.requests import RequestStore
from holt_core.identity import resolve_operator
from holt_core.models import now_ms


class OpenItem(BaseModel):
    """One thing waiting for a person: a question, an approval request or a post-review item (the fields of
    ``open_items.OpenItemView``, which the CLI lists without pydantic)."""

    id: str
    kind: RequestKind
    created_ms: int
    age_s: float
    text: str
    risk: str = ""
    deadline_ms: int = 0
    requester_role: str = ""
    claim_id: str = ""
    workflow_id: str = ""
    started_by: str = ""
    artefact_id: str = ""
    action: str = ""
    target: str = ""
    plan: Any = None
    digest: str = ""
    approvals: int = 0
    min_approvals: int = 0
    approver_roles: list[str] = []
    escalation_level: int = 0
    require_justification: bool = False
    hops: list[str] = []

    @classmethod
    def of(cls, req: HitlRequest, now: int) -> OpenItem:
        return cls(**open_item_fields(req, now))


async def load_policy(bb: Blackboard, fallback: HitlPolicy | None = None) -> HitlPolicy:
    """The policy the running orchestrator published; else ``fallback``; else an empty policy."""
    raw = await bb.redis.get(bb.keys.hitl_policy)
    if raw:
        try:
            return HitlPolicy.model_validate_json(str(raw))
        except ValidationError as exc:  # written by something else than an orchestrator: say so, no traceback
            raise MalformedRecord(bb.keys.hitl_policy, f"not a hitl policy: {str(exc)[:200]}") from None
    return fallback or HitlPolicy()


class HitlClient:
    """``bb`` should be connected as the acting person (holt_core/operators.py ``authenticate``): Redis then
    refuses any act whose proof is not that person's. ``impersonated_by`` marks an admin's ``--as``."""

    def __init__(self, bb: Blackboard, policy: HitlPolicy, *, impersonated_by: str = "") -> None:
        self.bb = bb
        self.store = RequestStore(bb, policy)
        self.store.impersonated_by = impersonated_by

    @classmethod
    async def connect(cls, bb: Blackboard, fallback: HitlPolicy | None = None, *,
                      impersonated_by: str = "") -> HitlClient:
        return cls(bb, await load_policy(bb, fallback), impersonated_by=impersonated_by)

    @property
    def channel(self) -> str:
        return self.bb.keys.hitl_events

    # ------------------------------------------------------------------ reading

    async def open_items(self, *, kinds: tuple[RequestKind, ...] | None = None) -> list[OpenItem]:
        """Everything waiting for people, oldest first (peer questions still with an agent are left out)."""
        now = now_ms()
        out = [OpenItem.of(req, now) for req in await self.store.open_requests() if wanted(req, kinds)]
        return sorted(out, key=lambda i: (i.created_ms, i.id))

    async def questions(self) -> list[OpenItem]:
        return await self.open_items(kinds=(RequestKind.QUESTION,))

    async def pending(self) -> list[OpenItem]:
        return await self.open_items(kinds=(RequestKind.APPROVAL, RequestKind.POST_REVIEW))

    async def status(self, request_id: str) -> HitlRequest:
        return await self.store.get(await self.store.resolve_id(request_id))

    async def wait_for_question(self, timeout_s: float | None = None) -> OpenItem:
        """The oldest open human question; waits (event-driven) until there is one."""
        async with self.bb.subscribe(self.channel) as sub:
            async with asyncio.timeout(timeout_s):
                while True:
                    found = await self.questions()
                    if found:
                        return found[0]
                    while True:  # sleep until some request changes, then look again
                        msg = await sub.get_message(ignore_subscribe_messages=True, timeout=5.0)
                        if msg is None:
                            break
                        try:
                            change = RequestChange.model_validate_json(str(msg["data"]))
                        except ValueError:
                            continue
                        if change.kind == RequestKind.QUESTION:
                            break

    # ------------------------------------------------------------------ acting (operator: None = resolve)

    async def answer(self, request_id: str, text: str, *, operator: str | None = None, request_id_key: str = "",
                     amend: bool = False) -> HitlRequest:
        op = resolve_operator(operator)
        rid = await self.store.resolve_id(request_id)
        if amend:
            return await self.store.amend(rid, text, by=op, caller_request_id=request_id_key)
        return await self.store.answer(rid, text, by=op, caller_request_id=request_id_key)

    async def approve(self, request_id: str, *, operator: str | None = None, justification: str = "",
                      request_id_key: str = "", bypass: bool = False, digest: str | None = None) -> HitlRequest:
        op = resolve_operator(operator)
        rid = await self.store.resolve_id(request_id)
        if bypass:
            return await self.store.bypass(rid, operator=op, justification=justification,
                                           caller_request_id=request_id_key)
        return await self.store.approve(rid, operator=op, justification=justification,
                                        caller_request_id=request_id_key, digest=digest)

    async def reject(self, request_id: str, *, reason: str, operator: str | None = None, justification: str = "",
                     request_id_key: str = "") -> HitlRequest:
        op = resolve_operator(operator)
        rid = await self.store.resolve_id(request_id)
        return await self.store.reject(rid, operator=op, reason=reason, justification=justification,
                                       caller_request_id=request_id_key)
