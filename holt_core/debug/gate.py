"""The ``DecisionGate`` the orchestrator runs with: breakpoints, holds, stepping and full control.

Fast path: while nothing is armed (no enabled breakpoint, no hold, no stepping, no skipped decision, not
under full control) ``admit`` is one attribute test and returns True. Otherwise the decision is judged
under one lock, against the state mirrored from Redis; every hold and every carrying-out is one guarded
write with its audit record.

The orchestrator restores the state with ``restore`` before it recovers (so nothing is granted that a
breakpoint should hold) and runs ``serve`` to consume the durable command stream.
"""

from __future__ import annotations

import asyncio
import secrets
from typing import Any, Protocol

from holt_core.blackboard import Blackboard
from holt_core.claim_stage import OUTPUT_CLOCK_MARGIN_MS
from holt_core.claims import F_NOTE, holds_of, human_feedback_claim_id
from holt_core.debug.breakpoints import BreakpointAction, hit_condition_met
from holt_core.debug.commands import KEEP_COMMANDS, Command, CommandKind
from holt_core.debug.events import DebugEventType, announce
from holt_core.debug.held import (
    CLOSING_KINDS,
    DETAIL_HUMAN_REVIEW,
    ArtefactView,
    DecisionView,
    HeldDecision,
    HoldReason,
    Redrive,
    Release,
    redrive_of,
    signature,
    subject_of,
)
from holt_core.debug.mode import ControlMode
from holt_core.debug.proven import Forged, load_honoured
from holt_core.debug.runs import RunMark, load_runs, workflow_root
from holt_core.debug.store import DebugState
from holt_core.decisions import Decision
from holt_core.errors import HoltError
from holt_core.identity import SYSTEM_ORCHESTRATOR
from holt_core.logs import EventLogger
from holt_core.models import ClaimStatus, StructuralType, dumps, now_ms
from holt_core.transaction import Tx


class Driver(Protocol):
    """What the gate needs from the orchestrator to carry out a released decision."""

    async def advance(self, claim_id: str) -> None: ...

    async def redrive_artefact(self, artefact_id: str) -> None: ...

    async def redrive_queue(self, role: str) -> None: ...

    async def forget_claim(self, claim_id: str) -> None: ...


class DebugGate:
    def __init__(self, bb: Blackboard, log: EventLogger | None = None) -> None:
        self.bb = bb
        self.keys = bb.keys
        self.log = log or EventLogger("orchestrator", bb.instance)
        self.state = DebugState()
        self._armed = False
        self._lock = asyncio.Lock()
        self._forged_seen: set[str] = set()
        # Run to Terminal (holt_core/debug/runs.py): proven marks by root goal, and what the gate learnt.
        self.runs: dict[str, RunMark] = {}
        self._runs_raw: dict[str, str] = {}
        self._parents: dict[str, str | None] = {}  # artefact id -> first source (artefacts never change)
        self._terminals: dict[str, tuple[str, int]] = {}  # root -> (Terminal id, created ms)
        self._looked_at: set[str] = set()  # artefacts already checked for a Terminal
        # redis-py types stream replies as unions of every shape; they are the decoded lists we read.
        self._r: Any = bb.redis

    # ------------------------------------------------------------------ the seam

    async def admit(self, decision: Decision) -> bool:
        if not self._armed:
            return True
        return await self._judge(decision)

    async def _judge(self, d: Decision) -> bool:
        async with self._lock:
            subject = subject_of(d)
            held = self.state.held.get(subject)
            if held is not None:
                # A decision held just before its workflow was marked to run to its Terminal goes too.
                running = bool(self.runs) and await self._runs_on(d)
                if held.release is not None and not running and signature(held.decision) != signature(d):
                    await self._release_stale(held, d)
                    return False
                if held.release is not None or running:
                    return await self._carry_out(held, d)
                if signature(held.decision) != signature(d):
                    await self._update_held(held, d)
                return False
            skipped = self.state.skipped.get(subject)
            if skipped is not None:
                if skipped == signature(d):
                    return False
                await self._clear_skipped(subject)
            if self.runs and await self._runs_on(d):
                return True
            if d.claim_id in self.state.stepping:
                await self._hold(d, HoldReason.STEP)
                return False
            payload: list[str | None] = []  # read once, and only for a breakpoint that asks for it
            for bp in self.state.breakpoints.values():
                if not bp.enabled or not bp.matches(d):
                    continue
                if bp.payload_regex is not None:
                    if not payload:
                        payload.append(await self._payload_of(d))
                    if not bp.matches_payload(payload[0]):
                        continue
                count = int(await self.bb.redis.hincrby(self.keys.debug_hits, bp.id, 1))
                if hit_condition_met(bp.hit_condition, count):
                    await self._hold(d, HoldReason.BREAKPOINT, bp.id, stop=bp.action == BreakpointAction.STOP)
                    return False
            if self.state.mode.full_control:
                await self._hold(d, HoldReason.FULL_CONTROL)
                return False
            return True

    # ------------------------------------------------------------------ run to Terminal

    async def _parent(self, artefact_id: str) -> str | None:
        if artefact_id not in self._parents:
            found = (await self.bb.get_artefacts([artefact_id]))[0]
            self._parents[artefact_id] = found.source_artefacts[0] if found and found.source_artefacts else None
        return self._parents[artefact_id]

    async def _runs_on(self, d: Decision) -> bool:
        """The decision's workflow runs to its Terminal: let it through, unless the Terminal exists (then the
        mark is removed and the decision is judged like any other)."""
        mark = self.runs.get(await workflow_root(self._parent, d.artefact_id))
        if mark is None:
            return False
        terminal = await self._terminal_of(mark)
        if terminal is None:
            return True
        await self._end_run(mark, terminal)
        return False

    async def _terminal_of(self, mark: RunMark) -> str | None:
        ids = await self.bb.redis.zrangebyscore(self.keys.artefact_index, mark.since_ms - OUTPUT_CLOCK_MARGIN_MS,
                                                "+inf")
        new = [str(i) for i in ids if str(i) not in self._looked_at]
        for a in await self.bb.get_artefacts(new) if new else []:
            if a is None:
                continue
            self._looked_at.add(a.id)
            self._parents.setdefault(a.id, a.source_artefacts[0] if a.source_artefacts else None)
            if a.structural_type == StructuralType.TERMINAL:
                self._terminals[await workflow_root(self._parent, a.id)] = (a.id, a.created_at_ms)
        found = self._terminals.get(mark.root)
        return found[0] if found and found[1] >= mark.since_ms - OUTPUT_CLOCK_MARGIN_MS else None

    async def _end_run(self, mark: RunMark, terminal_id: str) -> None:
        key = self.keys.debug_run(mark.root)
        tx = Tx().require_value(key, self._runs_raw.get(mark.root)).delete(key).srem(self.keys.debug_runs, mark.root)
        announce(tx, self.keys, DebugEventType.RUN_ENDED, root=mark.root, terminal_id=terminal_id)
        result, _ = await self.bb.audit.commit(
            tx, operator=SYSTEM_ORCHESTRATOR, action="debug_run_to_terminal_reached", subject=mark.root,
            details={"terminal_id": terminal_id, "by": mark.by, "hold_id": mark.hold_id})
        if result.ok:
            self.log.info("run_to_terminal_reached", root=mark.root, terminal_id=terminal_id)
        await self._reload()

    async def _payload_of(self, d: Decision) -> str | None:
        try:
            return (await self.bb.get_artefact(d.artefact_id)).payload
        except HoltError:
            return None

    async def _hold(self, d: Decision, reason: HoldReason, breakpoint_id: str | None = None, *,
                    stop: bool = False) -> None:
        subject = subject_of(d)
        redrive, redrive_id = redrive_of(d)
        artefact = None
        try:
            artefact = ArtefactView.of(await self.bb.get_artefact(d.artefact_id))
        except HoltError:
            pass  # shown without it; the decision itself names the artefact
        bids = d.details.get("bids")
        if not isinstance(bids, dict) and redrive == Redrive.CLAIM:
            bids = await self.bb.get_bids(d.claim_id)
        held = HeldDecision(
            subject=subject, hold_id=secrets.token_hex(6), decision=DecisionView.of(d), reason=reason,
            breakpoint_id=breakpoint_id, held_since_ms=now_ms(), artefact=artefact,
            bids={str(k): str(v) for k, v in (bids or {}).items()}, redrive=redrive, redrive_id=redrive_id,
        )
        key = self.keys.debug_held(subject)
        tx = Tx().require_absent(key).set(key, held.to_json()).sadd(self.keys.debug_held_index, subject)
        tx.srem(self.keys.debug_stepping, d.claim_id)
        details: dict[str, Any] = {"hold_id": held.hold_id, "kind": d.kind.value, "reason": reason.value,
                                   "breakpoint_id": breakpoint_id, "claim_id": d.claim_id,
                                   "artefact_id": d.artefact_id, "summary": d.summary}
        if stop and not self.state.mode.full_control:
            mode = ControlMode(full_control=True, by=SYSTEM_ORCHESTRATOR, since_ms=now_ms(),
                               reason=f"stop breakpoint {breakpoint_id}")
            tx.require_value(self.keys.debug_mode, self.state.mode_raw).set(self.keys.debug_mode, mode.to_json())
            announce(tx, self.keys, DebugEventType.MODE_CHANGED, **mode.model_dump())
            details["entered_full_control"] = True
        announce(tx, self.keys, DebugEventType.HELD, held=held.model_dump(mode="json"))
        result, _ = await self.bb.audit.commit(tx, operator=SYSTEM_ORCHESTRATOR, action="debug_decision_held",
                                               subject=subject, details=details)
        if result.ok:
            self.log.info("decision_held", claim_id=d.claim_id, kind=d.kind.value, reason=reason.value,
                          breakpoint_id=breakpoint_id, subject=subject)
        await self._reload()

    async def _update_held(self, held: HeldDecision, d: Decision) -> None:
        """The facts changed while it was held: keep the stored decision the one that would happen now."""
        fresh = held.model_copy(update={"decision": DecisionView.of(d)})
        key = self.keys.debug_held(held.subject)
        tx = Tx().require_value(key, self.state.held_raw[held.subject]).set(key, fresh.to_json())
        announce(tx, self.keys, DebugEventType.HELD_UPDATED, held=fresh.model_dump(mode="json"))
        await self.bb.run(tx)
        await self._reload()

    async def _release_stale(self, held: HeldDecision, d: Decision) -> None:
        """The person released one decision, but another would happen now (its bids or facts changed after the
        release, e.g. an agent's user rewrote a bid): carry out nothing, hold the new decision for a new release,
        audited. What runs is only ever what the person released."""
        fresh = held.model_copy(update={"decision": DecisionView.of(d), "release": None, "released_by": None,
                                        "released_at_ms": None, "release_proof": ""})
        key = self.keys.debug_held(held.subject)
        tx = Tx().require_value(key, self.state.held_raw[held.subject]).set(key, fresh.to_json())
        announce(tx, self.keys, DebugEventType.HELD_UPDATED, held=fresh.model_dump(mode="json"))
        result, _ = await self.bb.audit.commit(
            tx, operator=SYSTEM_ORCHESTRATOR, action="debug_release_stale", subject=held.subject,
            details={"hold_id": held.hold_id, "released_by": held.released_by, "release": str(held.release),
                     "released": held.decision.summary, "would_now": d.summary, "kind": d.kind.value,
                     "claim_id": d.claim_id})
        if result.ok:
            self.log.warning("held_release_stale", claim_id=d.claim_id, hold_id=held.hold_id,
                             released=held.decision.summary, would_now=d.summary)
        await self._reload()

    async def _carry_out(self, held: HeldDecision, d: Decision) -> bool:
        key = self.keys.debug_held(held.subject)
        tx = Tx().require_value(key, self.state.held_raw[held.subject]).delete(key)
        tx.srem(self.keys.debug_held_index, held.subject)
        if held.release == Release.STEP and d.kind not in CLOSING_KINDS and not self.state.mode.full_control:
            tx.sadd(self.keys.debug_stepping, d.claim_id)  # the claim's next decision is held again
            # (under full control every next decision is held anyway, and resume must release it)
        else:
            tx.srem(self.keys.debug_stepping, d.claim_id)
        announce(tx, self.keys, DebugEventType.CARRIED_OUT, subject=held.subject, hold_id=held.hold_id,
                 kind=d.kind.value, claim_id=d.claim_id)
        result, _ = await self.bb.audit.commit(
            tx, operator=SYSTEM_ORCHESTRATOR, action="debug_held_decision_carried_out", subject=held.subject,
            details={"hold_id": held.hold_id, "kind": d.kind.value, "summary": d.summary,
                     "release": str(held.release or "run_to_terminal"), "released_by": held.released_by,
                     "claim_id": d.claim_id})
        await self._reload()
        if result.ok:
            self.log.info("held_decision_carried_out", claim_id=d.claim_id, kind=d.kind.value,
                          release=str(held.release), released_by=held.released_by)
        return result.ok

    # ------------------------------------------------------------------ holds die with their claim

    def holds_of(self, claim_id: str) -> list[HeldDecision]:
        """The holds a closing claim takes with it (none while nothing is armed: free on the hot path)."""
        if not self._armed:
            return []
        return holds_of(self.state.held.values(), claim_id)

    def has_marks(self, claim_id: str) -> bool:
        """The claim is being stepped, or a decision of it was skipped: marks that go with the claim."""
        return self._armed and (claim_id in self.state.stepping or claim_id in self.state.skipped)

    async def holds_released(self) -> None:
        async with self._lock:
            await self._reload()

    async def reconcile(self) -> int:
        """On start: drop every hold whose decision can no longer happen (its claim closed or is gone, its
        artefact already has a claim, its injected review was carried out), audited. Returns how many."""
        async with self._lock:
            await self._reload()
            held = self.state.held_list()
        dropped = 0
        for h in held:
            why = await self._ghost_reason(h)
            if why is None:
                continue
            key = self.keys.debug_held(h.subject)
            tx = Tx().require_value(key, self.state.held_raw.get(h.subject)).delete(key)
            tx.srem(self.keys.debug_held_index, h.subject)
            if h.redrive != Redrive.ARTEFACT:
                tx.srem(self.keys.debug_stepping, h.decision.claim_id)
            announce(tx, self.keys, DebugEventType.HOLD_DROPPED, subject=h.subject, hold_id=h.hold_id,
                     claim_id=h.decision.claim_id, reason=why)
            result, _ = await self.bb.audit.commit(
                tx, operator=SYSTEM_ORCHESTRATOR, action="debug_hold_reconciled", subject=h.subject,
                details={"hold_id": h.hold_id, "kind": h.decision.kind.value, "claim_id": h.decision.claim_id,
                         "summary": h.decision.summary, "reason": why})
            if result.ok:
                dropped += 1
                self.log.warning("ghost_hold_dropped", subject=h.subject, hold_id=h.hold_id, reason=why)
        if dropped:
            async with self._lock:
                await self._reload()
        return dropped

    async def _ghost_reason(self, h: HeldDecision) -> str | None:
        d = h.decision
        if h.redrive == Redrive.ARTEFACT:
            review = d.details.get(DETAIL_HUMAN_REVIEW)
            if isinstance(review, str):
                if await self.bb.redis.exists(self.keys.claim(human_feedback_claim_id(review))):
                    return f"the review {review} was carried out"
                return None
            if await self.bb.redis.exists(self.keys.claim_by_artefact(d.artefact_id)):
                return f"the artefact {d.artefact_id} already has a claim"
            return None
        raw_status, note = await self.bb.redis.hmget(self.keys.claim(d.claim_id), ["status", F_NOTE])
        status = None if raw_status is None else str(raw_status)
        if status is None:
            return f"its claim {d.claim_id} is gone"
        try:
            is_open = ClaimStatus(str(status)).is_open
        except ValueError:
            return None
        if not is_open:
            return f"its claim {d.claim_id} is {status!s}"
        if str(note or "").startswith("dormant"):
            return f"its claim {d.claim_id} is dormant"
        return None

    async def _clear_skipped(self, subject: str) -> None:
        tx = Tx().delete(self.keys.debug_skipped(subject)).srem(self.keys.debug_skipped_index, subject)
        await self.bb.run(tx)
        await self._reload()

    async def _reload(self) -> None:
        # A release or breakpoint counts only with its operator's proof (an agent's user can write the debug keys).
        honoured = await load_honoured(self.bb.redis, self.keys)
        for forged in honoured.forged:
            await self._report_forged(forged)
        self.state = honoured.state
        self._armed = self.state.armed
        runs = await load_runs(self.bb.redis, self.keys)
        for root in runs.forged:
            await self._report_forged(Forged(root, f"run:{root}:{runs.raw.get(root, '')}",
                                             f"run to Terminal of workflow {root} has no proof"))
        self.runs, self._runs_raw = runs.marks, runs.raw

    async def _report_forged(self, forged: Forged) -> None:
        """Once per forgery: an error log line and an audit record, as for forged human decisions."""
        if forged.fingerprint in self._forged_seen:
            return
        self._forged_seen.add(forged.fingerprint)
        self.log.error("forged_decision_ignored", subject=forged.subject, problems=[forged.problem])
        await self.bb.audit.append(operator=SYSTEM_ORCHESTRATOR, action="forged_decision_ignored",
                                   subject=forged.subject, details={"problems": [forged.problem]})

    # ------------------------------------------------------------------ restart and commands

    async def restore(self, *, agents: list[str], bid_timeout_s: float) -> None:
        """Before the orchestrator grants anything: breakpoints, holds and mode back from Redis."""
        await self.bb.redis.hset(self.keys.debug_roster, mapping={
            "agents": dumps(agents), "bid_timeout_ms": str(int(bid_timeout_s * 1000)), "updated_at_ms": str(now_ms()),
        })
        async with self._lock:
            await self._reload()
        if self.state.armed:
            self.log.info("debug_state_restored", breakpoints=len(self.state.breakpoints), held=len(self.state.held),
                          full_control=self.state.mode.full_control)

    async def sync(self, driver: Driver) -> None:
        """Re-read the state, then carry out every released decision (idempotent)."""
        async with self._lock:
            await self._reload()
            released = [h for h in self.state.held_list() if h.release is not None]
            unreleased = [h for h in self.state.held_list() if h.release is None] if self.runs else []
        for h in unreleased:  # held in a workflow marked to run to its Terminal: re-derived, and so let through
            if await workflow_root(self._parent, h.decision.artefact_id) in self.runs:
                released.append(h)
        for held in released:
            if held.redrive == Redrive.CLAIM:
                await driver.advance(held.redrive_id)
            elif held.redrive == Redrive.ARTEFACT:
                await driver.redrive_artefact(held.redrive_id)
            else:
                await driver.redrive_queue(held.redrive_id)

    async def serve(self, driver: Driver) -> None:
        """Consume the command stream from the stored cursor, forever (the orchestrator cancels it)."""
        cursor = str(await self.bb.redis.get(self.keys.debug_commands_cursor) or "0-0")
        await self.sync(driver)  # releases sent while no orchestrator ran
        while True:
            try:
                cursor = await self._serve_once(driver, cursor)
            except Exception as exc:  # a Redis hiccup must not end command handling; the state is in Redis
                self.log.error("error", message="debug command handling failed", error=repr(exc))
                await asyncio.sleep(1.0)

    async def _serve_once(self, driver: Driver, cursor: str) -> str:
        reply = await self._r.xread({self.keys.debug_commands: cursor}, block=1000, count=100)
        if reply:
            commands: list[Command] = []
            for _stream, entries in reply:
                for entry_id, fields in entries:
                    cursor = str(entry_id)
                    try:
                        commands.append(Command.from_fields(fields))
                    except ValueError:
                        self.log.warning("debug_command_unreadable", entry=cursor)
            for command in commands:
                if command.kind == CommandKind.FORGET and command.claim_id:
                    await driver.forget_claim(command.claim_id)
            await self.sync(driver)
            await self.bb.redis.set(self.keys.debug_commands_cursor, cursor)
            await self._r.xtrim(self.keys.debug_commands, maxlen=KEEP_COMMANDS, approximate=True)
        return cursor
