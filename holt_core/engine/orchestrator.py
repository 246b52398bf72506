"""The orchestrator: events in, one claim at a time through the rules, effects out.

Event-driven and concurrent. Events only record facts (a bid arrived, a granted agent produced output);
then ``advance`` asks the rules (``holt_core.engine.rules``, pure) for the claim's next decision and carries it
out (``holt_core.engine.effects``) through the decision gate, in one atomic compare-and-set write that also
publishes its events. Nothing waits on a timer except bid deadlines, and one slow claim never holds up another.

Restart: recovery loads every open claim from Redis, replays the artefacts on the blackboard through the
same fact-recording code (idempotent), and advances every claim. Work whose output never arrived is
granted again; agents hold an execution lease, so a repeated grant never runs twice.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections import defaultdict
from collections.abc import Awaitable, Callable
from typing import Any

from redis.exceptions import ConnectionError as RedisConnectionError

from holt_core import claims
from holt_core.audit_anchors import anchor_forever
from holt_core.blackboard import Blackboard, resubscribe
from holt_core.claims import F_CREATED, F_NOTE, F_REV, ClaimRuntime, human_feedback_claim_id
from holt_core.config import Config
from holt_core.debug.gate import DebugGate
from holt_core.debug.held import DETAIL_FROM_QUEUE, DETAIL_HUMAN_REVIEW
from holt_core.debug.proven import review_key, review_problem
from holt_core.decisions import Decision, DecisionGate, DecisionKind, decision_of
from holt_core.engine import rules
from holt_core.engine.effects import Effects, NoHolds
from holt_core.engine.grants import Grants, Launcher
from holt_core.engine.rules import ClaimFacts, RulesConfig, Verdict
from holt_core.errors import HoltError, MalformedRecord, NotFound
from holt_core.hitl.coordinator import ApprovalGate, Disposition, HitlCoordinator, Plan
from holt_core.identity import SYSTEM_ORCHESTRATOR, is_human_role
from holt_core.lock import InstanceLock
from holt_core.logs import EventLogger
from holt_core.models import (
    Artefact,
    Claim,
    ClaimStatus,
    Phase,
    StructuralType,
    is_approval,
    new_id,
    now_ms,
)
from holt_core.redis_wire import Subscription, or_stop, survive_disconnects
from holt_core.transaction import Tx

_CLAIMABLE = (StructuralType.STANDARD, StructuralType.QUESTION, StructuralType.ANSWER)


class Orchestrator:
    def __init__(
        self,
        bb: Blackboard,
        config: Config,
        *,
        gate: DecisionGate | None = None,
        worker_launcher: Launcher | None = None,
        log: EventLogger | None = None,
        sweep_interval_s: float = 5.0,
        stale_grant_s: float = 30.0,
    ) -> None:
        self.bb = bb
        self.keys = bb.keys
        self.config = config
        self.workers = worker_launcher
        self.log = log or EventLogger("orchestrator", bb.instance)
        self.grants = Grants(bb.keys, config, worker_launcher, self._worker_exited)
        # Breakpoints (the debugging control plane) by default; free while no breakpoint is set. Approval
        # gates sit in front: a decision waiting for a person is not a breakpoint hit.
        inner = gate or DebugGate(bb, self.log)
        self.debug: DebugGate | None = inner if isinstance(inner, DebugGate) else None
        self.claims: dict[str, ClaimRuntime] = {}
        self.by_target: dict[str, set[str]] = defaultdict(set)
        self.effects = Effects(bb, self.grants, self.log, self.debug or NoHolds(), self._untrack, self._track,
                               lambda role: self.spawn(self._drain_queue(role)))
        self.hitl = HitlCoordinator(self)
        self.gate: DecisionGate = ApprovalGate(self.hitl, inner)
        self._rules = RulesConfig(
            agents=tuple(config.agents), bid_timeout_s=config.orchestrator.bid_timeout_s,
            max_review_iterations=config.orchestrator.max_review_iterations,
            worker_roles=frozenset(r for r in config.agents if self.grants.runs_as_worker(r)),
            worker_limits={r: self.grants.limit(r) for r in config.agents},
        )
        self._locks: dict[str, asyncio.Lock] = defaultdict(asyncio.Lock)
        self._tasks: set[asyncio.Task[None]] = set()
        self._timers: dict[str, asyncio.TimerHandle] = {}
        self._bid_inbox: dict[str, dict[str, str]] = {}  # claim id -> bids not yet taken in by an advance
        self._lock = InstanceLock(bb, self.log)
        self.ready = asyncio.Event()
        self.sweep_interval_s = sweep_interval_s
        self.stale_grant_s = stale_grant_s
        self._swept_to_ms = 0
        # Artefacts fully handled from their live event, by arrival time: the sweep skips them, so at a
        # thousand hops a second it re-reads only what pub/sub may have lost, not every recent artefact.
        self._handled_live: dict[str, int] = {}

    # ================================================================== lifecycle

    async def acquire_lock(self) -> None:
        await self._lock.acquire()

    async def _heartbeat(self, lost: asyncio.Event) -> None:
        await self._lock.heartbeat(lost)

    async def release_lock(self) -> None:
        await self._lock.release()

    async def run(self, stop: asyncio.Event) -> None:
        """Hold the lock, recover, then process events until ``stop`` is set."""
        await self.acquire_lock()
        lost = asyncio.Event()
        # Redis going away (a restart) pauses the heartbeat; it carries on once Redis is back.
        heartbeat = asyncio.create_task(survive_disconnects(lambda: self._heartbeat(lost)))
        sweeper: asyncio.Task[None] | None = None
        anchors: asyncio.Task[None] | None = None
        control: asyncio.Task[None] | None = None
        try:
            channels = [self.keys.artefact_events, self.keys.workflow_events, *self.hitl.channels]
            async with self.bb.subscribe(*channels) as sub:
                # Subscribed first, then recover: nothing published from here on is missed.
                self._swept_to_ms = now_ms()
                await self.bb.audit.start_witnessing()  # every record naming a person from here on needs its witness
                await self.hitl.load()
                if self.debug is not None:  # breakpoints and holds first: recovery grants nothing held
                    await self.debug.restore(agents=list(self.config.agents),
                                             bid_timeout_s=self.config.orchestrator.bid_timeout_s)
                    await self.debug.reconcile()  # ghosts: holds whose claim closed while we were away
                await self.recover()
                self.hitl.recovered()
                self.hitl.start()
                sweeper = asyncio.create_task(self._sweep_forever())
                if self.debug is not None:
                    control = asyncio.create_task(self.debug.serve(self))
                anchors = asyncio.create_task(anchor_forever(self.bb.audit.head_pair, self.bb.audit.anchor,
                                                             clock=now_ms))
                self.ready.set()
                self.log.info("orchestrator_ready", claims_open=len(self.claims))
                # Events handled as they arrive, in order (looked up per message, as a loop would).
                sub.deliver_to(lambda channel, data: self.dispatch(channel, data))
                while not stop.is_set() and not lost.is_set():
                    try:
                        await sub.get_message(ignore_subscribe_messages=True, timeout=0.5)
                    except RedisConnectionError as exc:
                        await or_stop(self._resubscribed(sub, channels, exc), stop)
        finally:
            try:
                heartbeat.cancel()
                for task in (sweeper, control, anchors):
                    if task is not None:
                        task.cancel()
                for timer in self._timers.values():
                    timer.cancel()
                await self.hitl.stop()
                if self._tasks:
                    await asyncio.gather(*self._tasks, return_exceptions=True)
            finally:
                await self.release_lock()  # whatever failed above, the lock is let go
        if lost.is_set():
            raise HoltError("lost the instance lock to another orchestrator; stopping")

    async def _resubscribed(self, sub: Subscription, channels: list[str], exc: Exception) -> None:
        """The subscription dropped (Redis closed a lagging subscriber, or restarted): back on it, then the
        safety sweep reads back what was published in the gap (artefacts and bids; both idempotent)."""
        self.log.warning("subscription_lost", error=str(exc))
        await resubscribe(sub, channels, self.dispatch)
        await self._sweep_once()
        self.log.info("subscription_restored")

    async def _sweep_forever(self) -> None:
        while True:
            await asyncio.sleep(self.sweep_interval_s)
            await self._sweep_once()

    async def _sweep_once(self) -> None:
        try:
            await self.sweep()
        except Exception as exc:  # a failed sweep is retried next time; it must never stop the loop
            self.log.error("error", message="safety sweep failed", error=repr(exc))

    async def sweep(self) -> None:
        """Safety net for pub/sub events lost on a reconnect (off the critical path, idempotent).

        Re-reads the bids of claims still waiting for consensus, and replays artefacts indexed since the
        last sweep (with a margin for clock skew between writers).
        """
        since = self._swept_to_ms - 10_000
        self._swept_to_ms = now_ms()
        handled = self._handled_live
        # Insertion order is arrival order: drop entries older than the window from the front.
        while handled:
            first = next(iter(handled))
            if handled[first] >= since - 60_000:
                break
            del handled[first]
        ids = [str(i) for i in await self.bb.redis.zrangebyscore(self.keys.artefact_index, since, "+inf")]
        replayed = 0
        artefacts = [a for a in await self.bb.get_artefacts([i for i in ids if i not in handled]) if a is not None]
        have_claims = await self._artefacts_with_claims(artefacts)
        for artefact in artefacts:
            known = artefact.id in have_claims
            replayed += int(not known and artefact.structural_type in _CLAIMABLE)
            await self.on_artefact(artefact, replay=True, known_claim=known)
        waiting = [c for c, rt in self.claims.items()
                   if rt.claim.phase_state is None and rt.claim.status == ClaimStatus.PENDING_REVIEW]
        for claim_id, bids in zip(waiting, await self.bb.get_bids_many(waiting), strict=True):
            rt = self.claims.get(claim_id)
            if rt is not None:
                async with self._locks[claim_id]:
                    # Read outside the lock: bids that arrived since by event are newer, so they win.
                    rt.bids = {**bids, **rt.bids}
        for claim_id in list(self.claims):
            await self.advance(claim_id)
        await self._resend_stale_grants()
        if replayed:
            self.log.warning("sweep_created_missed_claims", count=replayed)

    async def _resend_stale_grants(self) -> None:
        """A grant notification lost on a pup's reconnect would stall its claim for good: re-send a grant that
        has waited ``stale_grant_s`` when its agent never started it (no execution lease). Feedback claims are
        not re-sent (agents find them on ``claim_events`` and in their catch-up, as in Holt)."""
        due = [d for d in self.grants.stale(self.claims.values(), self.stale_grant_s)
               if d[0].claim.status != ClaimStatus.PENDING_ASSIGNMENT]
        if not due:
            return
        async with self.bb.redis.pipeline(transaction=False) as pipe:
            for rt, role, _ in due:
                pipe.exists(self.keys.exec_lease(rt.claim.id, role))
            started = await pipe.execute()
        tx = Tx()
        for (rt, role, grant_type), lease in zip(due, started, strict=True):
            if lease:
                continue  # running or done: its output is on its way
            self.grants.notify(tx, rt.claim.id, rt.claim.artefact_id, role, grant_type)
            self.log.warning("stale_grant_resent", claim_id=rt.claim.id, agent_name=role)
        await self.bb.run(tx)

    def spawn(self, coro: Awaitable[None]) -> None:
        task: asyncio.Task[None] = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._task_done)

    def _task_done(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            exc = task.exception()
            self.log.error("error", message="event handler failed", error=repr(exc))

    def dispatch(self, channel: str, data: str) -> None:
        if channel == self.keys.artefact_events:
            try:
                artefact = Artefact.from_json(data)
            except MalformedRecord as exc:
                self.log.warning("malformed_event", channel=channel, error=exc.reason)
                return
            # Marked at once, not when done: a sweep running meanwhile must not handle it a second time.
            self._handled_live[artefact.id] = now_ms()
            self.spawn(self._on_live_artefact(artefact))
        elif channel == self.keys.hitl_events:
            self.hitl.on_event(data)
        elif channel == self.keys.workflow_events:
            # Most events here are our own announcements; only bids matter, so skip full validation.
            if '"bid_submitted"' not in data:
                return
            try:
                event = json.loads(data)
            except ValueError:
                return
            if isinstance(event, dict) and event.get("event") == "bid_submitted":
                data_obj = event.get("data")
                if isinstance(data_obj, dict):
                    self.on_bid(data_obj)

    # ================================================================== recovery

    async def recover(self) -> None:
        started = time.monotonic()
        claims, bad = await self.bb.list_claims()  # SCAN: Go-written claims are not in our index
        for exc in bad:
            self.log.warning("claim_unreadable", key=exc.key, error=exc.reason)
        open_claims = [c for c in claims if c.status.is_open]
        raw_ext = await self._claim_extensions([c.id for c in open_claims])
        targets = await self.bb.get_artefacts([c.artefact_id for c in open_claims])
        all_bids = await self.bb.get_bids_many([c.id for c in open_claims])
        loaded = 0
        for claim, target, ext, bids in zip(open_claims, targets, raw_ext, all_bids, strict=True):
            note = ext.get(F_NOTE) or ""
            if target is None or note.startswith("dormant"):
                await self.bb.redis.srem(self.keys.open_claims, claim.id)
                continue
            rt = ClaimRuntime(claim=claim, target=target, rev=int(ext.get(F_REV) or 0),
                              created_ms=int(ext.get(F_CREATED) or 0) or now_ms(), note=note, bids=bids)
            self._track(rt)
            loaded += 1
            role = claim.granted_exclusive_agent
            agent = self.config.agents.get(role) if role else None
            if agent is not None and agent.is_controller and claim.grant_queue is None and claim.status in (
                ClaimStatus.PENDING_EXCLUSIVE, ClaimStatus.PENDING_ASSIGNMENT
            ):
                self.grants.active[role].add(claim.id)
        # Replay every artefact: creates missing claims and re-derives phase outputs (both idempotent).
        listing = await self.bb.list_artefacts()
        has_claim = await self._artefacts_with_claims(listing.artefacts)
        for artefact in listing.artefacts:
            await self.on_artefact(artefact, replay=True, known_claim=artefact.id in has_claim)
        for claim_id in list(self.claims):
            await self.advance(claim_id, regrant=True)
        for role, agent in self.config.agents.items():
            if agent.is_controller:
                await self._drain_queue(role)
        self.log.info(
            "recovery_complete",
            claims_recovered=loaded,
            artefacts_replayed=len(listing.artefacts),
            duration_ms=int((time.monotonic() - started) * 1000),
        )

    async def _artefacts_with_claims(self, artefacts: list[Artefact]) -> set[str]:
        """Ids of the claimable artefacts that already have a claim (pipelined, not one round trip each)."""
        claimable = [a.id for a in artefacts if a.structural_type in _CLAIMABLE]
        found: set[str] = set()
        for start in range(0, len(claimable), 500):
            chunk = claimable[start : start + 500]
            async with self.bb.redis.pipeline(transaction=False) as pipe:
                for artefact_id in chunk:
                    pipe.exists(self.keys.claim_by_artefact(artefact_id))
                exists = await pipe.execute()
            found.update(a for a, e in zip(chunk, exists, strict=True) if e)
        return found

    async def _claim_extensions(self, claim_ids: list[str]) -> list[dict[str, str]]:
        out: list[dict[str, str]] = []
        for start in range(0, len(claim_ids), 500):
            chunk = claim_ids[start : start + 500]
            async with self.bb.redis.pipeline(transaction=False) as pipe:
                for claim_id in chunk:
                    pipe.hmget(self.keys.claim(claim_id), [F_REV, F_CREATED, F_NOTE])
                rows = await pipe.execute()
            out.extend({F_REV: r[0] or "", F_CREATED: r[1] or "", F_NOTE: r[2] or ""} for r in rows)
        return out

    async def _load_runtime(self, claim_id: str) -> ClaimRuntime | None:
        raw = await self.bb.redis.hgetall(self.keys.claim(claim_id))
        if not raw:
            return None
        claim = Claim.from_hash(raw, self.keys.claim(claim_id))
        if not claim.status.is_open:
            return None
        target = await self.bb.get_artefact(claim.artefact_id)
        rt = ClaimRuntime(
            claim=claim,
            target=target,
            rev=int(raw.get(F_REV) or 0),
            created_ms=int(raw.get(F_CREATED) or 0) or now_ms(),
            note=str(raw.get(F_NOTE, "")),
        )
        rt.bids = await self.bb.get_bids(claim_id)
        return rt

    def track(self, rt: ClaimRuntime) -> None:
        self._track(rt)

    def note_output(self, claim_id: str, artefact: Artefact) -> bool:
        return self._note_output(claim_id, artefact, replay=False)

    def _track(self, rt: ClaimRuntime) -> None:
        self.claims[rt.claim.id] = rt
        self.by_target[rt.claim.artefact_id].add(rt.claim.id)
        if rt.claim.phase_state is None and rt.claim.status == ClaimStatus.PENDING_REVIEW:
            self._arm_bid_timer(rt)

    def _untrack(self, claim_id: str) -> None:
        rt = self.claims.pop(claim_id, None)
        if rt is not None:
            ids = self.by_target.get(rt.claim.artefact_id)
            if ids is not None:
                ids.discard(claim_id)
                if not ids:
                    del self.by_target[rt.claim.artefact_id]
        timer = self._timers.pop(claim_id, None)
        if timer is not None:
            timer.cancel()
        self._locks.pop(claim_id, None)
        self._bid_inbox.pop(claim_id, None)

    def _arm_bid_timer(self, rt: ClaimRuntime) -> None:
        if rt.claim.id in self._timers or not self.config.agents:
            return
        deadline_ms = rt.created_ms + int(self.config.orchestrator.bid_timeout_s * 1000)
        delay = max(0.0, (deadline_ms - now_ms()) / 1000)
        loop = asyncio.get_running_loop()
        claim_id = rt.claim.id
        self._timers[claim_id] = loop.call_later(delay, lambda: self.spawn(self._bid_deadline(claim_id)))

    async def _bid_deadline(self, claim_id: str) -> None:
        self._timers.pop(claim_id, None)
        rt = self.claims.get(claim_id)
        if rt is None:
            return
        async with self._locks[claim_id]:
            rt.bids = await self.bb.get_bids(claim_id)  # catch any bid whose event we missed
        await self.advance(claim_id)

    # ================================================================== facts
    async def _on_live_artefact(self, artefact: Artefact) -> None:
        try:
            await self.on_artefact(artefact)
        except BaseException:
            self._handled_live.pop(artefact.id, None)  # failed: the next sweep replays it
            raise

    async def on_artefact(self, artefact: Artefact, *, replay: bool = False, known_claim: bool = False) -> None:
        if not replay:
            self.log.info("artefact_received", artefact_id=artefact.id, type=artefact.type,
                          structural_type=artefact.structural_type.value, produced_by_role=artefact.produced_by_role)
        if artefact.structural_type == StructuralType.REVIEW and is_human_role(artefact.produced_by_role) \
                and artefact.source_artefacts:
            await self._on_human_review(artefact, replay=replay)
            return
        disposition = await self.hitl.intercept(artefact, live=not replay)
        if disposition == Disposition.HELD:  # a question, answer, decision or plan awaiting approval
            return
        steps: list[Awaitable[None]] = []
        if artefact.structural_type in _CLAIMABLE and not known_claim and disposition == Disposition.NORMAL:
            # The new claim is what every agent waits for: its write is queued first and goes out on its
            # own, before the work of closing the claims this artefact answers (which nobody waits for).
            steps.append(asyncio.ensure_future(self._create_claim(artefact)))
            await asyncio.sleep(0)  # the claim's write is queued; it is sent before the steps below run
        # Unlike Go, a Terminal output completes the phase it answers, so no claim is left pending.
        for source in artefact.source_artefacts:
            for claim_id in list(self.by_target.get(source, ())):
                steps.append(self._record_output(claim_id, artefact, replay=replay))
        # Different claims, so no ordering between them.
        if len(steps) == 1:
            await steps[0]
        elif steps:
            await asyncio.gather(*steps)

    async def _record_output(self, claim_id: str, artefact: Artefact, *, replay: bool) -> None:
        if claim_id not in self.claims:
            return
        # Under the claim lock: a grant being written right now is committed before its output counts.
        async with self._locks[claim_id]:
            changed = self._note_output(claim_id, artefact, replay=replay)
        if changed and not replay:
            await self.advance(claim_id)

    def _note_output(self, claim_id: str, artefact: Artefact, *, replay: bool) -> bool:
        rt = self.claims.get(claim_id)
        if rt is None:
            return False
        claim = rt.claim
        role = artefact.produced_by_role
        changed = False
        if claim.status == ClaimStatus.PENDING_ASSIGNMENT:
            if role == claim.granted_exclusive_agent and rt.rework is None:
                if artefact.structural_type == StructuralType.FAILURE:
                    rt.failures.setdefault(role, artefact)
                else:
                    rt.rework = artefact
                changed = True
        elif claim.phase_state is not None and role in claim.phase_state.granted_agents:
            if artefact.structural_type == StructuralType.FAILURE:
                if role not in rt.outputs and role not in rt.failures:
                    rt.failures[role] = artefact
                    changed = True
            elif role not in rt.outputs:
                rt.outputs[role] = artefact
                changed = True
                if not replay:
                    self.log.info("phase_artefact_received", claim_id=claim_id, artefact_id=artefact.id,
                                  role=role, phase=claim.phase_state.current.value)
        return changed

    def on_bid(self, data: dict[str, Any]) -> None:
        """A bid event. Bids of one claim that arrive before its advance runs are taken in by that one advance
        (three bids, one planning pass instead of three when they come together)."""
        claim_id = str(data.get("claim_id", ""))
        agent = str(data.get("agent_name", ""))
        bid = str(data.get("bid_type", ""))
        if claim_id not in self.claims or not agent:
            return
        self.log.info("bid_received", claim_id=claim_id, agent_name=agent, bid_type=bid)
        if agent not in self.config.agents:
            self.log.warning("bid_from_unknown_agent", claim_id=claim_id, agent_name=agent)
        waiting = self._bid_inbox.get(claim_id)
        if waiting is not None:
            waiting[agent] = bid
            return
        self._bid_inbox[claim_id] = {agent: bid}
        self.spawn(self.advance(claim_id))

    # ================================================================== claim creation

    # ================================================================== claim creation

    async def _create_claim(self, artefact: Artefact) -> None:
        # No existence check first: the write below is guarded, and replays pass known_claim.
        claim = Claim(id=new_id(), artefact_id=artefact.id, status=ClaimStatus.PENDING_REVIEW)
        decision = decision_of(DecisionKind.CREATE_CLAIM, claim, artefact,
                                     "create a claim for the new artefact")
        if not await self.gate.admit(decision):
            return
        created = now_ms()
        rt = ClaimRuntime(claim=claim, target=artefact, rev=1, created_ms=created)
        async with self._locks[claim.id]:
            # Tracked before the write, so a bid that races the write finds the claim.
            self.claims[claim.id] = rt
            self.by_target[artefact.id].add(claim.id)
            result = await self.bb.run(claims.create_tx(self.keys, claim, created, first_for_artefact=True))
            if not result.ok:  # another writer created it first (or a replay raced a live event)
                self._untrack(claim.id)
                return
        self.log.info("claim_created", claim_id=claim.id, artefact_id=artefact.id, status=claim.status.value)
        if self.config.agents:
            self._arm_bid_timer(rt)

    # ================================================================== the state machine

    async def advance(self, claim_id: str, *, regrant: bool = False) -> None:
        """Carry out decisions for this claim until it waits for a fact, is held, or closes."""
        async with self._locks[claim_id]:
            bids = self._bid_inbox.pop(claim_id, None)
            if bids is not None and claim_id in self.claims:
                self.claims[claim_id].bids.update(bids)
            for _ in range(16):  # bound: each pass moves the claim forward or stops
                rt = self.claims.get(claim_id)
                if rt is None:
                    return
                plan = self._next(rt)
                if plan is None:
                    if regrant:
                        await self._regrant(rt)
                    return
                decision, apply = plan
                if not await self.gate.admit(decision):
                    self.log.info("decision_held", claim_id=claim_id, kind=decision.kind.value)
                    return
                ok = await apply()
                if not ok:
                    # Someone else changed the claim: reload it and think again.
                    fresh = await self._load_runtime(claim_id)
                    if fresh is None:
                        self._untrack(claim_id)
                        return
                    fresh.outputs, fresh.failures, fresh.rework = rt.outputs, rt.failures, rt.rework
                    self.claims[claim_id] = fresh
                    continue
                regrant = False


    def _decision(
        self,
        kind: DecisionKind,
        claim: Claim,
        target: Artefact,
        summary: str,
        granted: tuple[str, ...] = (),
        **details: Any,
    ) -> Decision:
        return decision_of(kind, claim, target, summary, granted, **details)

    def _next(self, rt: ClaimRuntime) -> Plan | None:
        if not rt.claim.status.is_open:
            return None
        held = self.hitl.plan(rt)  # an answered question, a decided approval, a peer question that moved on
        if held is not None:
            return held
        facts = ClaimFacts(claim=rt.claim, target=rt.target, created_ms=rt.created_ms, note=rt.note, bids=rt.bids,
                           outputs=rt.outputs, failures=rt.failures, rework=rt.rework,
                           busy_workers=self.grants.busy())
        verdict = rules.decide(facts, self._rules, now_ms())
        if verdict is None:
            return None
        for agent, bid in verdict.invalid_bids.items():
            self.log.warning("invalid_bid", claim_id=rt.claim.id, agent_name=agent, bid=bid)
        if verdict.timed_out:
            self.log.warning("bid_timeout", claim_id=rt.claim.id, agents=list(verdict.timed_out),
                             timeout_s=self.config.orchestrator.bid_timeout_s)
        return verdict.decision, self._effect(rt, verdict)

    def _effect(self, rt: ClaimRuntime, v: Verdict) -> Callable[[], Awaitable[bool]]:
        """What carries the verdict out (run only if the gates admit it)."""
        kind = v.kind
        approvals = self.effects.approvals_tx(rt.target, v.approvals) if v.approvals and \
            kind != DecisionKind.START_FEEDBACK else None
        if kind == DecisionKind.COMPLETE:
            return lambda: self.effects.close(rt, ClaimStatus.COMPLETE, "", "claim_complete")
        if kind == DecisionKind.TERMINATE:
            return lambda: self.effects.close(rt, ClaimStatus.TERMINATED, v.reason, "claim_terminated")
        if kind == DecisionKind.DORMANT:
            return lambda: self.effects.dormant(rt, v, approvals)
        if kind == DecisionKind.START_FEEDBACK:
            return lambda: self.effects.feedback(rt, v)
        if kind == DecisionKind.QUEUE_GRANT:
            return lambda: self.effects.queue(rt, v.granted[0], dict(v.all_bids), approvals)
        assert v.phase is not None
        phase = v.phase
        return lambda: self.effects.grant(rt, phase, list(v.granted), dict(v.all_bids), list(v.timed_out),
                                          approvals)

    def terminate_plan(self, rt: ClaimRuntime, reason: str, extra: Callable[[], Tx | None] | None = None,
                   after: Callable[[bool], Awaitable[None]] | None = None) -> Plan:
        """A termination decided outside the rules (the HITL coordinator): ``extra`` goes in the same write."""
        verdict = rules.terminate(ClaimFacts(claim=rt.claim, target=rt.target, created_ms=rt.created_ms), reason)

        async def apply() -> bool:
            ok = await self.effects.close(rt, ClaimStatus.TERMINATED, reason, "claim_terminated",
                                          extra=extra() if extra is not None else None)
            if after is not None:
                await after(ok)
            return ok

        return verdict.decision, apply

    # ------------------------------------------------------------------ grant queues and workers

    async def _drain_queue(self, role: str) -> None:
        agent = self.config.agents.get(role)
        if agent is None or not agent.is_controller:
            return
        while len(self.grants.active[role]) < self.grants.limit(role):
            rows = await self.bb.redis.zrange(self.keys.grant_queue(role), 0, 0)
            if not rows:
                return
            claim_id = str(rows[0])
            rt = self.claims.get(claim_id)
            if rt is None or rt.claim.grant_queue is None:
                await self.bb.redis.zrem(self.keys.grant_queue(role), claim_id)
                continue
            if not await self._dequeue(rt, role):
                return  # the head of the queue is held: the queue waits behind it

    async def _dequeue(self, rt: ClaimRuntime, role: str) -> bool:
        async with self._locks[rt.claim.id]:
            ps = rt.claim.phase_state
            all_bids = ps.all_bids if ps else {role: "exclusive"}
            decision = self._decision(DecisionKind.GRANT_EXCLUSIVE, rt.claim, rt.target,
                                      f"grant exclusive to {role} (from its grant queue)", (role,),
                                      **{DETAIL_FROM_QUEUE: role})
            if not await self.gate.admit(decision):
                return False
            # Leaving the queue is part of the grant's atomic write: never out of the queue and ungranted.
            leave = Tx().zrem(self.keys.grant_queue(role), rt.claim.id)
            if await self.effects.grant(rt, Phase.EXCLUSIVE, [role], all_bids, [], leave):
                self.log.info("grant_resumed_from_queue", claim_id=rt.claim.id, agent_name=role)
            else:
                self.log.warning("dequeue_conflict", claim_id=rt.claim.id)
            return True

    def _worker_exited(self, role: str, claim_id: str, exit_code: int, output_tail: str) -> None:
        self.grants.active[role].discard(claim_id)
        self.spawn(self._after_worker(role, claim_id, exit_code, output_tail))

    async def _after_worker(self, role: str, claim_id: str, exit_code: int, output_tail: str) -> None:
        rt = self.claims.get(claim_id)
        if exit_code != 0 and rt is not None:
            failure = Artefact(
                id=(fid := new_id()), logical_id=fid, version=1, structural_type=StructuralType.FAILURE,
                type="WorkerFailure", payload=f"Worker exited with code {exit_code}\n\nLogs:\n{output_tail}",
                source_artefacts=[rt.claim.artefact_id], produced_by_role=role,
            )
            self.log.error("worker_failed", claim_id=claim_id, agent_name=role, exit_code=exit_code)
            await self.bb.create_artefact(failure)  # its event records the failure as a fact
        await self._drain_queue(role)

    async def _regrant(self, rt: ClaimRuntime) -> None:
        """After a restart: re-send grants whose output has not arrived (agents' leases stop doubles)."""
        tx, resent = self.grants.regrant_tx(rt)
        if resent:
            await self.bb.run(tx)
            self.log.info("grant_resent", claim_id=rt.claim.id, agents=resent)

    # ------------------------------------------------------------------ operators' acts (debugging control plane)

    async def _on_human_review(self, review: Artefact, *, replay: bool) -> None:
        """A Review injected by ``human:<operator>``: ``{}`` approves a pending review phase; anything
        else is feedback that re-opens the producer's work, even when the target's claim completed.
        Only with the person's proof (holt_core/debug/proven.py): an agent's user can write an artefact naming
        anyone, and such a review is ignored and reported once (when it arrives, not again on replay)."""
        raw = await self.bb.redis.get(review_key(self.keys, review))
        problem = review_problem(self.keys, review, None if raw is None else str(raw))
        if problem is not None:
            if not replay:
                self.log.error("forged_decision_ignored", review_id=review.id, problems=[problem])
                await self.bb.audit.append(operator=SYSTEM_ORCHESTRATOR, action="forged_decision_ignored",
                                           subject=review.id, details={"problems": [problem]})
            return
        target_id = review.source_artefacts[0]
        if is_approval(review.payload):
            for claim_id in list(self.by_target.get(target_id, ())):
                rt = self.claims.get(claim_id)
                if rt is None:
                    continue
                async with self._locks[claim_id]:
                    ps = rt.claim.phase_state
                    missing = [r for r in ps.granted_agents if r not in rt.outputs] if ps else []
                    if ps is None or ps.current != Phase.REVIEW or not missing:
                        continue
                    for role in missing:  # the operator's approval stands in for reviews not yet given
                        rt.outputs[role] = review
                if not replay:  # recovery advances every claim once all facts are replayed
                    self.log.info("human_approval_counted", claim_id=claim_id,
                                  operator_role=review.produced_by_role, reviewers=missing)
                    await self.advance(claim_id)
            return
        fb_id = human_feedback_claim_id(review.id)
        if await self.bb.redis.exists(self.keys.claim(fb_id)):
            return  # carried out before (this is a replay)
        try:
            target = await self.bb.get_artefact(target_id)
        except (NotFound, MalformedRecord) as exc:
            self.log.warning("human_review_target_unreadable", review_id=review.id, error=str(exc))
            return
        producer = target.produced_by_role
        if producer not in self.config.agents:
            self.log.warning("human_review_producer_unknown", review_id=review.id, role=producer)
            return
        open_ids = sorted(self.by_target.get(target_id, ()))
        rt = self.claims.get(open_ids[0]) if open_ids else None
        claim_id = rt.claim.id if rt else (await self.bb.claim_id_for_artefact(target_id) or "")
        status = rt.claim.status.value if rt else "closed"
        decision = Decision(
            kind=DecisionKind.START_FEEDBACK, claim_id=claim_id, artefact_id=target.id, artefact_type=target.type,
            structural_type=target.structural_type.value, produced_by_role=producer, claim_status=status,
            summary=f"feedback from {review.produced_by_role}: send {target.type} v{target.version} back to {producer}",
            granted_roles=(producer,), details={DETAIL_HUMAN_REVIEW: review.id, "reviews": [review.id]},
        )
        if not await self.gate.admit(decision):
            return
        tx = Tx()
        fb = self.effects.feedback_claim(target, producer, [review.id], claim_id, fb_id, tx)
        self.effects.rejected(tx, target, review)
        if rt is not None:  # its claim is still running: it stops here, as after an agent's negative review
            async with self._locks[rt.claim.id]:
                ok = await self.effects.close(rt, ClaimStatus.TERMINATED, self.effects.human_review_reason(review),
                                              "claim_terminated_review_feedback", extra=tx,
                                              why=f"superseded by the review {review.id} of "
                                                  f"{review.produced_by_role}")
        else:
            ok = (await self.bb.run(tx)).ok
        if ok:
            self.effects.feedback_started(fb, target, producer, claim_id)

    async def redrive_artefact(self, artefact_id: str) -> None:
        """A released decision that an artefact drives (claim creation, injected review): replay it."""
        try:
            artefact = await self.bb.get_artefact(artefact_id)
        except (NotFound, MalformedRecord) as exc:
            self.log.warning("redrive_unreadable", artefact_id=artefact_id, error=str(exc))
            return
        known = artefact.id in await self._artefacts_with_claims([artefact])
        await self.on_artefact(artefact, replay=True, known_claim=known)

    async def redrive_queue(self, role: str) -> None:
        await self._drain_queue(role)

    async def forget_claim(self, claim_id: str) -> None:
        """An operator closed this claim directly in Redis: stop tracking it and free its worker slot."""
        rt = self.claims.get(claim_id)
        if rt is None:
            return
        async with self._locks[claim_id]:
            self._untrack(claim_id)
        role = rt.claim.granted_exclusive_agent
        if self.grants.holds_slot(role):
            self.grants.active[role].discard(claim_id)
            await self._drain_queue(role)

