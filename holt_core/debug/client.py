"""``DebugClient``: the one way a CLI or TUI reads and changes the debugging control plane.

Every change is one guarded write that also appends its audit record (``bb.audit.commit``), is announced
on ``holt:{inst}:debug:events`` and, when the orchestrator must act, appends a durable command. Changes
require the control lease (taken on the fly when nobody holds it); reads never do.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

from pydantic import BaseModel, ValidationError

from holt_core import claims
from holt_core.blackboard import Blackboard
from holt_core.debug.breakpoints import Breakpoint, BreakpointSpec, BreakpointStatus, new_breakpoint_id
from holt_core.debug.commands import Command, CommandKind, send
from holt_core.debug.events import DebugEvent, DebugEventType, announce
from holt_core.debug.explain import Explanation, explain
from holt_core.debug.held import HeldDecision, HoldReason, Release, signature
from holt_core.debug.inject import InjectedReview, inject_review
from holt_core.debug.lease import DEFAULT_LEASE_TTL_S, ControlLease, LeaseInfo
from holt_core.debug.mode import ControlMode
from holt_core.debug.proven import breakpoint_proof, load_honoured, release_proof
from holt_core.debug.runs import RunMark, load_runs, run_proof
from holt_core.debug.store import DebugState
from holt_core.errors import HoltError, InvalidInput, NotFound
from holt_core.hitl.proofs import proof_tx
from holt_core.identity import human_role, validate_operator
from holt_core.lock import is_running
from holt_core.models import Claim, ClaimStatus, now_ms
from holt_core.transaction import Tx

_WORKFLOW_LEVELS = 64  # how far continue --workflow walks sources up to a decision's root goal

_RETRIES = 20

# A change: reads the state, returns (tx, audit subject, audit details, result) or raises HoltError.
Change = Callable[[DebugState], tuple[Tx, str, dict[str, Any], Any]]


class Released(BaseModel):
    """What a step / continue / skip / resume did."""

    action: str
    decisions: list[HeldDecision]
    mode: ControlMode


class DebugClient:
    def __init__(self, bb: Blackboard, operator: str, *, lease_token: str | None = None,
                 lease_ttl_s: float = DEFAULT_LEASE_TTL_S, wait_applied_s: float = 5.0,
                 issued_at_ms: int | None = None) -> None:
        """``issued_at_ms``: when the command was issued (a one-shot CLI passes ``process_started_ms()``); a
        claim id then never names a decision held after it."""
        self.bb = bb
        self.issued_at_ms = issued_at_ms
        self.wait_applied_s = wait_applied_s
        self.keys = bb.keys
        self.operator = validate_operator(operator)
        self.actor = human_role(self.operator)  # the audit form of a person
        self.lease = ControlLease(bb, self.operator, lease_token)
        self.lease_ttl_s = lease_ttl_s

    @property
    def impersonated_by(self) -> str:
        """An admin acting as ``operator`` (--as): recorded on every act, the control lease's included."""
        return self.lease.impersonated_by

    @impersonated_by.setter
    def impersonated_by(self, value: str) -> None:
        self.lease.impersonated_by = value

    # ------------------------------------------------------------------ reads

    async def state(self) -> DebugState:
        # As the orchestrator counts it: releases and breakpoints without their operator's proof taken out.
        return (await load_honoured(self.bb.redis, self.keys)).state

    async def breakpoints(self) -> list[BreakpointStatus]:
        return (await self.state()).breakpoint_list()

    async def held(self) -> list[HeldDecision]:
        return (await self.state()).held_list()

    async def mode(self) -> ControlMode:
        return (await self.state()).mode

    async def explain(self, ident: str) -> Explanation:
        return await explain(self.bb, ident)

    async def events(self) -> AsyncIterator[DebugEvent]:
        """Live announcements (holds, releases, breakpoint, mode and lease changes) until cancelled."""
        async with self.bb.subscribe(self.keys.debug_events) as sub:
            while True:
                msg = await sub.get_message(ignore_subscribe_messages=True, timeout=1.0)
                if msg is None:
                    continue
                with contextlib.suppress(ValidationError):
                    yield DebugEvent.model_validate_json(str(msg["data"]))

    # ------------------------------------------------------------------ the lease

    async def lease_holder(self) -> LeaseInfo | None:
        return await self.lease.holder()

    async def take_lease(self, *, force: bool = False, ttl_s: float | None = None) -> LeaseInfo:
        return await self.lease.take(force=force, ttl_s=ttl_s or self.lease_ttl_s)

    async def refresh_lease(self, ttl_s: float | None = None) -> bool:
        return await self.lease.refresh(ttl_s or self.lease_ttl_s)

    async def release_lease(self) -> bool:
        return await self.lease.release()

    # ------------------------------------------------------------------ changes under control

    async def _controlled(self, action: str, change: Change) -> Any:
        for _ in range(_RETRIES):
            await self.lease.ensure(action, self.lease_ttl_s)
            state = await self.state()
            tx, subject, details, value = change(state)
            guarded = self._proven(action, subject).extend(self.lease.guard(Tx())).extend(tx)
            result, _ = await self.bb.audit.commit(guarded, operator=self.actor, action=action,
                                                   subject=subject, details=self._impersonation(details))
            if result.ok:
                await self.applied()
                return value
            # The lease lapsed or the state changed under us: look again.
        raise HoltError(f"{action}: the debug state kept changing; try again")

    async def applied(self, within_s: float | None = None) -> bool:
        """Wait until a running orchestrator has taken in every command sent so far (a new breakpoint is then
        in force). False when none runs (it takes them in when it starts) or it did not within the time."""
        newest = await self.bb.redis.xrevrange(self.keys.debug_commands, count=1)
        if not newest:
            return True
        wanted = _stream_id(str(newest[0][0]))
        loop = asyncio.get_running_loop()
        deadline = loop.time() + (self.wait_applied_s if within_s is None else within_s)
        while True:
            cursor = await self.bb.redis.get(self.keys.debug_commands_cursor)
            if cursor and _stream_id(str(cursor)) >= wanted:
                return True
            if not await is_running(self.bb.redis, self.keys) or loop.time() >= deadline:
                return False
            await asyncio.sleep(0.02)

    def _proven(self, action: str, subject: str) -> Tx:
        """The operator's proof, first in the write (holt_core/hitl/proofs.py): only that operator's Redis user
        (or admin, for ``--as``) may write it."""
        return proof_tx(self.keys, self.operator, action, subject, impersonated_by=self.impersonated_by)

    def _impersonation(self, details: Any) -> Any:
        if self.impersonated_by and isinstance(details, dict):
            return {**details, "impersonated_by": self.impersonated_by}
        return details

    def _sync(self, tx: Tx, subject: str = "") -> Tx:
        return send(tx, self.keys, Command(kind=CommandKind.SYNC, by=self.operator, subject=subject))

    # --- breakpoints ---

    async def add_breakpoint(self, spec: BreakpointSpec) -> Breakpoint:
        bp = Breakpoint(**spec.model_dump(), id=new_breakpoint_id(), created_by=self.operator,
                        created_at_ms=now_ms())

        def change(state: DebugState) -> tuple[Tx, str, dict[str, Any], Any]:
            key = self.keys.debug_breakpoint(bp.id)
            tx = Tx().require_absent(key).set(key, bp.model_dump_json()).sadd(self.keys.debug_breakpoints, bp.id)
            tx.set(*breakpoint_proof(self.keys, bp, impersonated_by=self.impersonated_by))  # checked by the gate
            tx.hset(self.keys.debug_hits, {bp.id: "0"})
            announce(tx, self.keys, DebugEventType.BREAKPOINT_ADDED, breakpoint=bp.model_dump(mode="json"))
            return self._sync(tx), bp.id, bp.model_dump(mode="json"), bp

        result: Breakpoint = await self._controlled("debug_breakpoint_added", change)
        return result

    def _find_breakpoint(self, state: DebugState, bp_id: str) -> Breakpoint:
        bp = state.breakpoints.get(bp_id.strip())
        if bp is None:
            raise NotFound(f"no breakpoint {bp_id!r}", hint="holt debug break list shows them")
        return bp

    async def remove_breakpoint(self, bp_id: str) -> Breakpoint:
        def change(state: DebugState) -> tuple[Tx, str, dict[str, Any], Any]:
            bp = self._find_breakpoint(state, bp_id)
            key = self.keys.debug_breakpoint(bp.id)
            tx = Tx().require_value(key, state.breakpoint_raw[bp.id]).delete(key)
            tx.srem(self.keys.debug_breakpoints, bp.id)
            announce(tx, self.keys, DebugEventType.BREAKPOINT_REMOVED, breakpoint_id=bp.id)
            return self._sync(tx), bp.id, {"breakpoint": bp.model_dump(mode="json"),
                                           "hits": state.hits.get(bp.id, 0)}, bp

        result: Breakpoint = await self._controlled("debug_breakpoint_removed", change)
        return result

    async def set_breakpoint_enabled(self, bp_id: str, enabled: bool) -> Breakpoint:
        def change(state: DebugState) -> tuple[Tx, str, dict[str, Any], Any]:
            bp = self._find_breakpoint(state, bp_id)
            new = bp.model_copy(update={"enabled": enabled})
            key = self.keys.debug_breakpoint(bp.id)
            tx = Tx().require_value(key, state.breakpoint_raw[bp.id]).set(key, new.model_dump_json())
            announce(tx, self.keys, DebugEventType.BREAKPOINT_CHANGED, breakpoint=new.model_dump(mode="json"))
            return self._sync(tx), bp.id, {"enabled": enabled}, new

        action = "debug_breakpoint_enabled" if enabled else "debug_breakpoint_disabled"
        result: Breakpoint = await self._controlled(action, change)
        return result

    # --- held decisions ---

    def _pick(self, state: DebugState, target: str | None, pin: dict[str, str]) -> HeldDecision:
        """The held decision a command names. A hold id names one decision; a claim, subject or artefact id is
        accepted only where exactly one decision of it is held, and only one held before the command was issued
        (a duplicate or late command never acts on the next decision). The first answer is pinned in ``pin``:
        a retry after a conflict acts on the same decision or on none."""
        if "hold_id" in pin:
            return self._pinned(state, pin["hold_id"])
        held = self._resolve(state, target)
        pin["hold_id"] = held.hold_id
        return self._pinned(state, held.hold_id)

    def _pinned(self, state: DebugState, hold_id: str) -> HeldDecision:
        for h in state.held.values():
            if h.hold_id == hold_id:
                if h.release is not None:
                    raise HoltError(f"that decision ({hold_id}) was already released ({h.release}) by "
                                    f"{h.released_by}", hint="the orchestrator carries it out as soon as it runs")
                return h
        raise NotFound(f"the decision {hold_id} is no longer held (carried out, skipped, or its claim closed)",
                       hint="holt debug held lists held decisions")

    def _resolve(self, state: DebugState, target: str | None) -> HeldDecision:
        waiting = [h for h in state.held_list() if h.release is None]
        if target is None:
            if not waiting:
                raise NotFound("no decision is held", hint="holt debug held lists held decisions")
            return waiting[0]  # the oldest
        text = target.strip().lower()
        every = state.held_list()
        by_hold = [h for h in every if h.hold_id == text]
        if not by_hold and len(text) >= 6:
            by_hold = [h for h in every if h.hold_id.startswith(text)]
        if len(by_hold) == 1:
            return by_hold[0]

        def ids(h: HeldDecision) -> tuple[str, ...]:
            return (h.subject, h.decision.claim_id, h.decision.artefact_id)

        found = [h for h in every if text in ids(h)]
        if not found and len(text) >= 6:
            found = [h for h in every if any(i.startswith(text) for i in ids(h))]
        if not found:
            raise NotFound(f"no held decision for {target!r}", hint="holt debug held lists held decisions")
        if len(found) > 1:
            raise InvalidInput(f"{target!r} names {len(found)} held decisions",
                               details=[f"{h.hold_id}: {h.decision.summary}" for h in found],
                               hint="name the decision by its hold id (holt debug held shows it)")
        held = found[0]
        if self.issued_at_ms is not None and held.held_since_ms > self.issued_at_ms:
            raise NotFound(f"no decision of {target!r} was held when this command was issued (the one held now, "
                           f"{held.hold_id}, came later)",
                           hint=f"to act on it, name it: holt debug step {held.hold_id}")
        return held

    def _release(self, tx: Tx, state: DebugState, held: HeldDecision, how: Release) -> HeldDecision:
        new = held.model_copy(update={"release": how, "released_by": self.operator, "released_at_ms": now_ms(),
                                      "release_proof": secrets.token_hex(8)})
        key = self.keys.debug_held(held.subject)
        tx.require_value(key, state.held_raw[held.subject]).set(key, new.to_json())
        tx.set(*release_proof(self.keys, new, impersonated_by=self.impersonated_by))  # the orchestrator checks it
        announce(tx, self.keys, DebugEventType.RELEASED, subject=held.subject, hold_id=held.hold_id,
                 release=how.value, by=self.operator)
        return new

    def _leave_full_control(self, tx: Tx, state: DebugState) -> ControlMode:
        mode = ControlMode(full_control=False, by=self.operator, since_ms=now_ms())
        tx.require_value(self.keys.debug_mode, state.mode_raw).set(self.keys.debug_mode, mode.to_json())
        announce(tx, self.keys, DebugEventType.MODE_CHANGED, **mode.model_dump())
        return mode

    @staticmethod
    def _details(decisions: list[HeldDecision]) -> dict[str, Any]:
        return {"decisions": [{"subject": h.subject, "hold_id": h.hold_id, "kind": h.decision.kind.value,
                               "claim_id": h.decision.claim_id, "summary": h.decision.summary}
                              for h in decisions]}

    async def step(self, target: str | None = None) -> Released:
        """Carry out one held decision; the same claim's next decision is held again."""
        pin: dict[str, str] = {}

        def change(state: DebugState) -> tuple[Tx, str, dict[str, Any], Any]:
            held = self._pick(state, target, pin)
            tx = Tx()
            released = self._release(tx, state, held, Release.STEP)
            return (self._sync(tx, held.subject), held.subject, self._details([held]),
                    Released(action="step", decisions=[released], mode=state.mode))

        result: Released = await self._controlled("debug_step", change)
        return result

    async def continue_(self, target: str | None = None, *, workflow: bool = False) -> Released:
        """Carry out the held decision (every held one without ``target``), leave full control, run on.

        ``workflow`` (with a ``target``): carry out the named decision and the decisions full control holds in
        the same workflow (same root goal) only, and stay under full control; other workflows stay held."""
        if workflow and target is None:
            raise InvalidInput("continue --workflow needs the held decision whose workflow runs on")
        pin: dict[str, str] = {}
        roots = await self._workflow_roots(await self.state()) if workflow else {}

        def change(state: DebugState) -> tuple[Tx, str, dict[str, Any], Any]:
            waiting = [h for h in state.held_list() if h.release is None]
            if target is not None:
                named = self._pick(state, target, pin)
                chosen = [named]
                if workflow:
                    root = roots.get(named.hold_id)
                    chosen += [h for h in waiting if h.reason == HoldReason.FULL_CONTROL and h is not named
                               and root is not None and roots.get(h.hold_id) == root]
                elif state.mode.full_control:
                    chosen += [h for h in waiting if h.reason == HoldReason.FULL_CONTROL and h not in chosen]
            else:
                chosen = waiting
            if not chosen and not state.mode.full_control:
                raise NotFound("no decision is held and the instance is not under full control")
            tx = Tx()
            released = [self._release(tx, state, h, Release.CONTINUE) for h in chosen]
            mode = self._leave_full_control(tx, state) if state.mode.full_control and not workflow else state.mode
            subject = chosen[0].subject if len(chosen) == 1 else ""
            return (self._sync(tx, subject), subject, self._details(chosen),
                    Released(action="continue", decisions=released, mode=mode))

        result: Released = await self._controlled("debug_continue", change)
        return result

    async def run_to_terminal(self, target: str) -> Released:
        """Carry on everything of the named decision's workflow (same root goal) until its Terminal artefact exists:
        its held decisions are released and, until then, the gate holds none of its decisions (breakpoints,
        stepping, full control); every other workflow stays held. holt_core/debug/runs.py has the rules."""
        if not target or not target.strip():
            raise InvalidInput("run to Terminal needs the held decision whose workflow runs on")
        pin: dict[str, str] = {}
        roots = await self._workflow_roots(await self.state())

        def change(state: DebugState) -> tuple[Tx, str, dict[str, Any], Any]:
            named = self._pick(state, target, pin)
            root = roots.get(named.hold_id)
            if root is None:
                raise HoltError("that decision was held a moment ago: try again")
            chosen = [named] + [h for h in state.held_list() if h.release is None and h is not named
                                and roots.get(h.hold_id) == root]
            tx = Tx()
            released = [self._release(tx, state, h, Release.CONTINUE) for h in chosen]
            mark = RunMark(root=root, by=self.operator, since_ms=now_ms(), hold_id=named.hold_id,
                           proof=secrets.token_hex(8))
            tx.set(self.keys.debug_run(root), mark.to_json()).sadd(self.keys.debug_runs, root)
            tx.set(*run_proof(self.keys, mark, impersonated_by=self.impersonated_by))  # the gate checks it
            announce(tx, self.keys, DebugEventType.RUN_TO_TERMINAL, root=root, hold_id=named.hold_id,
                     by=self.operator)
            details = {**self._details(chosen), "root": root, "hold_id": named.hold_id}
            return (self._sync(tx, named.subject), root, details,
                    Released(action="run_to_terminal", decisions=released, mode=state.mode))

        result: Released = await self._controlled("debug_run_to_terminal", change)
        return result

    async def runs(self) -> list[RunMark]:
        """Workflows running to their Terminal (proven marks only), oldest first."""
        marks = (await load_runs(self.bb.redis, self.keys)).marks
        return sorted(marks.values(), key=lambda m: (m.since_ms, m.root))

    async def _workflow_roots(self, state: DebugState) -> dict[str, str]:
        """Hold id -> the root goal of its decision's artefact (first sources walked up; bounded)."""
        roots: dict[str, str] = {}
        parents: dict[str, str | None] = {}  # artefact id -> first source (None: a root, or unreadable)
        for h in state.held_list():
            current = h.decision.artefact_id
            for _ in range(_WORKFLOW_LEVELS):
                if current not in parents:
                    artefact = (await self.bb.get_artefacts([current]))[0]
                    parents[current] = artefact.source_artefacts[0] if artefact and artefact.source_artefacts \
                        else None
                parent = parents[current]
                if parent is None:
                    break
                current = parent
            roots[h.hold_id] = current
        return roots

    async def skip(self, target: str | None = None) -> Released:
        """Drop the held decision: the claim stays exactly as it is until something about it changes."""
        pin: dict[str, str] = {}

        def change(state: DebugState) -> tuple[Tx, str, dict[str, Any], Any]:
            held = self._pick(state, target, pin)
            key = self.keys.debug_held(held.subject)
            tx = Tx().require_value(key, state.held_raw[held.subject]).delete(key)
            tx.srem(self.keys.debug_held_index, held.subject)
            tx.set(self.keys.debug_skipped(held.subject), signature(held.decision))
            tx.sadd(self.keys.debug_skipped_index, held.subject)
            announce(tx, self.keys, DebugEventType.SKIPPED, subject=held.subject, hold_id=held.hold_id,
                     by=self.operator)
            return (self._sync(tx, held.subject), held.subject, self._details([held]),
                    Released(action="skip", decisions=[held], mode=state.mode))

        result: Released = await self._controlled("debug_skip", change)
        return result

    async def pause(self) -> ControlMode:
        """Enter full control: from now on every decision of the instance waits."""

        def change(state: DebugState) -> tuple[Tx, str, dict[str, Any], Any]:
            if state.mode.full_control:
                raise HoltError(f"the instance is already under full control (since {state.mode.by} "
                                f"{state.mode.reason or 'paused it'})")
            mode = ControlMode(full_control=True, by=self.operator, since_ms=now_ms(), reason="paused by operator")
            tx = Tx().require_value(self.keys.debug_mode, state.mode_raw).set(self.keys.debug_mode, mode.to_json())
            announce(tx, self.keys, DebugEventType.MODE_CHANGED, **mode.model_dump())
            return self._sync(tx), "", {}, mode

        result: ControlMode = await self._controlled("debug_pause", change)
        return result

    async def resume(self) -> Released:
        """Leave full control; decisions it held run on (those held by breakpoints stay held)."""

        def change(state: DebugState) -> tuple[Tx, str, dict[str, Any], Any]:
            chosen = [h for h in state.held_list() if h.release is None and h.reason == HoldReason.FULL_CONTROL]
            if not state.mode.full_control and not chosen:
                raise HoltError("the instance is not under full control")
            tx = Tx()
            released = [self._release(tx, state, h, Release.CONTINUE) for h in chosen]
            mode = self._leave_full_control(tx, state)
            return self._sync(tx), "", self._details(chosen), Released(action="resume", decisions=released,
                                                                        mode=mode)

        result: Released = await self._controlled("debug_resume", change)
        return result

    # --- manual actions ---

    async def terminate(self, claim_id: str, reason: str = "") -> Claim:
        """Close an open claim now, as an operator's act; its held decision (if any) goes with it."""
        text = claim_id.strip().lower()
        if not text:
            raise InvalidInput("a claim id is required")

        async def resolve() -> str:
            if await self.bb.redis.exists(self.keys.claim(text)):
                return text
            if len(text) >= 6:
                ids = sorted(str(i) for i in await self.bb.redis.smembers(self.keys.open_claims)
                             if str(i).startswith(text))
                if len(ids) == 1:
                    return ids[0]
                if len(ids) > 1:
                    raise InvalidInput(f"{claim_id!r} matches {len(ids)} open claims", details=ids[:10])
            raise NotFound(f"claim with ID '{claim_id}' not found")

        full_id = await resolve()
        raw_holder: dict[str, dict[str, str]] = {}

        async def load() -> None:
            raw = await self.bb.redis.hgetall(self.keys.claim(full_id))
            raw_holder["raw"] = {str(k): str(v) for k, v in raw.items()}

        def change(state: DebugState) -> tuple[Tx, str, dict[str, Any], Any]:
            raw = raw_holder["raw"]
            key = self.keys.claim(full_id)
            claim = Claim.from_hash(raw, key)
            if not claim.status.is_open:
                raise HoltError(f"claim {full_id} is already {claim.status.value}")
            why = f"Terminated by {human_role(self.operator)}" + (f": {reason}" if reason else "")
            new = claims.closed(claim, ClaimStatus.TERMINATED, why)
            rev = int(raw.get(claims.F_REV) or 0)
            tx = claims.close_tx(self.keys, full_id, rev, new, note=raw.get(claims.F_NOTE, ""))
            holds = claims.holds_of(state.held.values(), full_id)
            released = claims.hold_release(tx, self.keys, full_id, holds, why=why)
            announce(tx, self.keys, DebugEventType.CLAIM_TERMINATED, claim_id=full_id, by=self.operator,
                     reason=why)
            send(tx, self.keys, Command(kind=CommandKind.FORGET, by=self.operator, claim_id=full_id))
            return tx, full_id, {"previous_status": claim.status.value, "reason": why,
                                 "artefact_id": claim.artefact_id, "holds": released["holds"]}, new

        for _ in range(_RETRIES):
            await load()
            try:
                result: Claim = await self._controlled_once("debug_terminate", change)
                return result
            except _Conflict:
                continue
        raise HoltError("the claim kept changing while it was being terminated; try again")

    async def _controlled_once(self, action: str, change: Change) -> Any:
        await self.lease.ensure(action, self.lease_ttl_s)
        state = await self.state()
        tx, subject, details, value = change(state)
        result, _ = await self.bb.audit.commit(self._proven(action, subject).extend(self.lease.guard(Tx())).extend(tx),
                                               operator=self.actor, action=action, subject=subject,
                                               details=self._impersonation(details))
        if not result.ok:
            raise _Conflict
        await self.applied()
        return value

    async def inject_review(self, artefact_id: str, payload: str = "{}") -> InjectedReview:
        """A Review by ``human:<operator>``: ``{}`` approves a pending review phase, anything else is feedback."""
        return await inject_review(self.bb, self.operator, artefact_id, payload, impersonated_by=self.impersonated_by)


class _Conflict(Exception):
    pass


def process_started_ms() -> int | None:
    """When this process started (Linux: from /proc), in unix ms; None where it cannot be told."""
    try:
        with open("/proc/self/stat", encoding="ascii") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        ticks = int(fields[19])  # field 22 (starttime), counted after the command name
        since_boot_s = ticks / os.sysconf("SC_CLK_TCK")
        uptime_s = time.clock_gettime(time.CLOCK_BOOTTIME)
    except (OSError, ValueError, IndexError, AttributeError):
        return None
    return int((time.time() - (uptime_s - since_boot_s)) * 1000)


def _stream_id(text: str) -> tuple[int, int]:
    ms, _, seq = text.partition("-")
    return int(ms or 0), int(seq or 0)
