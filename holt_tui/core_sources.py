"""The Inbox and Debugger sources backed by ``holt_core.hitl`` and ``holt_core.debug``.

Adapters only: every rule (who may approve, lease checks, audit) lives in holt_core; an expected refusal
comes back as ``ActionResult(ok=False, message)`` so the UI can show it in one line.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import Awaitable
from typing import TypeVar

from pydantic import ValidationError
from redis.asyncio import Redis
from redis.exceptions import RedisError

from holt_core.blackboard import Blackboard
from holt_core.debug.breakpoints import BreakpointAction, BreakpointSpec
from holt_core.debug.client import DebugClient
from holt_core.errors import HoltError
from holt_core.hitl.client import HitlClient, OpenItem
from holt_core.hitl.models import RequestKind
from holt_core.keys import Keys
from holt_tui.breakpoint_form import CONDITION_ALIASES, CONDITION_NAMES
from holt_tui.sources import (
    CAPABILITIES,
    ActionResult,
    Breakpoint,
    DebugSnapshot,
    HeldDecision,
    InboxItem,
    InboxSnapshot,
    LeaseState,
    Sources,
)

T = TypeVar("T")
_RELEASE_TIMEOUT_S = 2.0

async def _attempt(work: Awaitable[T], done: str) -> ActionResult:
    try:
        await work
    except HoltError as err:
        return ActionResult(False, err.message)
    except RedisError as err:  # Redis is away (restarting): the action did not happen; the UI says so
        return ActionResult(False, f"Redis is unreachable, nothing was done: {err}")
    except ValidationError as err:
        first = err.errors()[0]
        return ActionResult(False, f"invalid {'.'.join(str(p) for p in first['loc'])}: {first['msg']}")
    return ActionResult(True, done)


def _inbox_item(item: OpenItem) -> InboxItem:
    if item.kind == RequestKind.QUESTION:
        title = item.text.splitlines()[0] if item.text else "(empty question)"
        body = item.text
    else:
        title = f"{item.action} {item.target}".strip() or item.text
        plan = item.plan if isinstance(item.plan, str) else json.dumps(item.plan, indent=2, ensure_ascii=False)
        body = "\n".join(part for part in (item.text, plan or "") if part)
    return InboxItem(
        id=item.id,
        kind="approval" if item.kind != RequestKind.QUESTION else "question",
        title=title,
        body=body,
        requester=item.requester_role,
        claim_id=item.claim_id,
        artefact_id=item.artefact_id,
        created_ms=item.created_ms,
        risk=item.risk,
        deadline_ms=item.deadline_ms,
        digest=item.digest,
        needs_justification=item.require_justification,
    )


class HitlInboxSource:
    def __init__(self, bb: Blackboard, operator: str, *, impersonated_by: str = "") -> None:
        self.bb = bb
        self.operator = operator
        self.impersonated_by = impersonated_by  # an admin acting as ``operator`` (--as): recorded on every act
        self._client: HitlClient | None = None
        self._digests: dict[str, str] = {}  # approval id -> the digest the operator was shown

    async def _hitl(self) -> HitlClient:
        if self._client is None:
            self._client = await HitlClient.connect(self.bb, impersonated_by=self.impersonated_by)
        return self._client

    def channels(self) -> list[str]:
        return [self.bb.keys.hitl_events]

    async def snapshot(self) -> InboxSnapshot:
        items = [_inbox_item(i) for i in await (await self._hitl()).open_items()]
        self._digests = {i.id: i.digest for i in items if i.digest}
        return InboxSnapshot(supported=True, items=tuple(items))

    async def answer(self, item_id: str, text: str) -> ActionResult:
        client = await self._hitl()
        return await _attempt(client.answer(item_id, text, operator=self.operator), "answered")

    async def approve(self, item_id: str, justification: str) -> ActionResult:
        client = await self._hitl()
        # Bound to the payload the operator was looking at: a newer version is refused, not approved.
        work = client.approve(item_id, operator=self.operator, justification=justification,
                              digest=self._digests.get(item_id) or None)
        return await _attempt(work, "approved")

    async def reject(self, item_id: str, reason: str) -> ActionResult:
        client = await self._hitl()
        return await _attempt(client.reject(item_id, reason=reason, operator=self.operator), "rejected")


class CoreDebugSource:
    def __init__(self, bb: Blackboard, operator: str, *, impersonated_by: str = "") -> None:
        self.bb = bb
        self.client = DebugClient(bb, operator)
        self.client.impersonated_by = impersonated_by  # an admin acting as ``operator`` (--as)
        self._refresher: asyncio.Task[None] | None = None

    def channels(self) -> list[str]:
        return [self.bb.keys.debug_events]

    def capabilities(self) -> frozenset[str]:
        return CAPABILITIES

    async def snapshot(self) -> DebugSnapshot:
        state = await self.client.state()
        holder = await self.client.lease_holder()
        held = sorted(state.held.values(), key=lambda h: h.held_since_ms)
        return DebugSnapshot(
            supported=True,
            held=tuple(
                HeldDecision(
                    id=h.hold_id,
                    claim_id=h.decision.claim_id,
                    artefact_id=h.decision.artefact_id,
                    kind=h.decision.kind.value,
                    would=h.decision.summary,
                    reason=h.explain(),
                    bids=dict(h.bids),
                    held_since_ms=h.held_since_ms,
                    role=", ".join(h.decision.granted_roles),
                    released=h.release is not None,
                )
                for h in held
            ),
            breakpoints=tuple(
                Breakpoint(
                    id=b.id,
                    type_glob=b.artefact_type or "*",
                    conditions={k: v for k, v in b.criteria().items() if k != "artefact_type"}
                    | ({"hit_condition": b.hit_condition} if b.hit_condition else {}),
                    action=b.action.value,
                    enabled=b.enabled,
                    hits=b.hits,
                )
                for b in state.breakpoint_list()
            ),
            full_control=state.mode.full_control,
            lease_holder=holder.operator if holder else "",
            runs=tuple(r.root for r in await self.client.runs()),
        )

    # ------------------------------------------------------------------ lease

    async def acquire_lease(self) -> LeaseState:
        try:
            info = await self.client.take_lease()
        except HoltError as err:
            holder = await self.client.lease_holder()
            return LeaseState(False, holder.operator if holder else "", err.message)
        if self._refresher is None or self._refresher.done():
            self._refresher = asyncio.create_task(self._refresh())
        return LeaseState(True, info.operator, f"control held by {info.operator}")

    async def _refresh(self) -> None:
        # Refresh well inside the TTL; if the refresh is refused (someone took over), stop quietly.
        while True:
            await asyncio.sleep(self.client.lease_ttl_s / 3)
            with contextlib.suppress(HoltError, OSError, RedisError):  # Redis away: try again next time
                if not await self.client.refresh_lease():
                    return

    async def release_lease(self) -> None:
        if self._refresher is not None:
            self._refresher.cancel()
            self._refresher = None
        # Quitting while Redis is away (or slow) must be quick and quiet: the lease then expires by itself.
        with contextlib.suppress(HoltError, OSError, RedisError, TimeoutError):
            await asyncio.wait_for(self.client.release_lease(), _RELEASE_TIMEOUT_S)

    # ------------------------------------------------------------------ stepping

    async def step(self, decision_id: str) -> ActionResult:
        return await _attempt(self.client.step(decision_id or None), "stepped one decision")

    async def continue_(self, decision_id: str) -> ActionResult:
        # A selected decision: its workflow runs on, the others stay held (full control is kept).
        if decision_id:
            return await _attempt(self.client.continue_(decision_id, workflow=True), "continued")
        return await _attempt(self.client.continue_(None), "continued")

    async def skip(self, decision_id: str) -> ActionResult:
        return await _attempt(self.client.skip(decision_id or None), "skipped")

    async def run_to_terminal(self, decision_id: str) -> ActionResult:
        return await _attempt(self.client.run_to_terminal(decision_id),
                              "its workflow runs on to its Terminal; the others stay held")

    async def pause(self) -> ActionResult:
        return await _attempt(self.client.pause(), "full control: every decision waits")

    async def resume(self) -> ActionResult:
        return await _attempt(self.client.resume(), "resumed")

    # ------------------------------------------------------------------ breakpoints

    async def toggle_breakpoint(self, type_glob: str) -> ActionResult:
        state = await self.client.state()
        for bp in state.breakpoint_list():
            if bp.artefact_type == type_glob and list(bp.criteria()) == ["artefact_type"] and not bp.hit_condition:
                enabled = not bp.enabled
                work = self.client.set_breakpoint_enabled(bp.id, enabled)
                return await _attempt(work, f"breakpoint on {type_glob} {'enabled' if enabled else 'disabled'}")
        return await self.add_breakpoint(type_glob, {}, BreakpointAction.HOLD.value)

    async def add_breakpoint(self, type_glob: str, conditions: dict[str, str], action: str) -> ActionResult:
        fields: dict[str, str] = {}
        for name, value in conditions.items():
            key = CONDITION_ALIASES.get(name, name)
            if key not in CONDITION_NAMES:
                return ActionResult(False, f"unknown breakpoint condition {name!r}")
            fields[key] = value
        try:
            spec = BreakpointSpec(artefact_type=type_glob or None, action=BreakpointAction(action), **fields)
        except (ValidationError, ValueError) as err:
            return ActionResult(False, f"invalid breakpoint: {err}".splitlines()[0])
        return await _attempt(self.client.add_breakpoint(spec), f"breakpoint on {type_glob or 'every decision'} added")

    async def set_breakpoint_enabled(self, breakpoint_id: str, enabled: bool) -> ActionResult:
        work = self.client.set_breakpoint_enabled(breakpoint_id, enabled)
        return await _attempt(work, f"breakpoint {'enabled' if enabled else 'disabled'}")

    async def delete_breakpoint(self, breakpoint_id: str) -> ActionResult:
        return await _attempt(self.client.remove_breakpoint(breakpoint_id), "breakpoint deleted")

    # ------------------------------------------------------------------ manual actions

    async def inject_review(self, artefact_id: str, payload: str) -> ActionResult:
        approval = payload.strip() in ("", "{}")
        work = self.client.inject_review(artefact_id, payload if not approval else "{}")
        return await _attempt(work, "approval injected" if approval else "feedback injected: the producer reworks it")

    async def terminate(self, claim_id: str, reason: str) -> ActionResult:
        return await _attempt(self.client.terminate(claim_id, reason), "claim terminated")

    async def explain(self, claim_id: str) -> list[str]:
        try:
            explanation = await self.client.explain(claim_id)
        except HoltError as err:
            return [err.message]
        return [r.message for r in explanation.reasons]


def attach_sources(redis: Redis, keys: Keys, operator: str, *, impersonated_by: str = "") -> Sources:
    """The sources for a live attach: the human-in-the-loop and debugging planes of holt_core. ``redis`` should
    be connected as ``operator``'s own Redis user (or as admin with ``impersonated_by``): Redis then refuses any
    act whose proof is not that person's."""
    bb = Blackboard(redis, keys.instance)
    return Sources(HitlInboxSource(bb, operator, impersonated_by=impersonated_by),
                   CoreDebugSource(bb, operator, impersonated_by=impersonated_by))
