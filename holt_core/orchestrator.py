"""The orchestrator: turns artefacts into claims and drives every claim through its phases.

Event-driven and concurrent. Events only record facts (a bid arrived, a granted agent produced output);
then ``advance`` derives the claim's next decision from those facts and carries it out through the
decision gate, in one atomic compare-and-set write that also publishes its events. Nothing waits on a
timer except bid deadlines, and one slow claim never holds up another.

Restart: recovery loads every open claim from Redis, replays the artefacts on the blackboard through the
same fact-recording code (idempotent), and advances every claim. Work whose output never arrived is
granted again; agents hold an execution lease, so a repeated grant never runs twice.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import secrets
import socket
import time
import uuid
from collections import defaultdict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from redis.exceptions import ConnectionError as RedisConnectionError

from holt_core.acl import worker_env
from holt_core.blackboard import Blackboard, resubscribe
from holt_core.config import Config
from holt_core.debug.gate import DebugGate
from holt_core.debug.held import DETAIL_FROM_QUEUE, DETAIL_HUMAN_REVIEW
from holt_core.decisions import Decision, DecisionGate, DecisionKind
from holt_core.errors import HoltError, MalformedRecord, NotFound
from holt_core.hitl.coordinator import ApprovalGate, Disposition, HitlCoordinator
from holt_core.identity import is_human_role
from holt_core.logs import EventLogger
from holt_core.models import (
    Artefact,
    BidType,
    Claim,
    ClaimStatus,
    GrantNotification,
    GrantQueue,
    Phase,
    PhaseState,
    StructuralType,
    WorkflowEvent,
    WorkflowEventType,
    feedback_excerpt,
    is_approval,
    new_id,
    now_ms,
)
from holt_core.processes import pid_alive
from holt_core.redis_wire import Subscription
from holt_core.transaction import Tx

# Extra claim-hash fields (Go readers ignore them).
F_REV = "holt_rev"
F_CREATED = "holt_created_at_ms"
F_NOTE = "holt_note"

LOCK_TTL_S = 60
LOCK_REFRESH_S = 10

_CLAIMABLE = (StructuralType.STANDARD, StructuralType.QUESTION, StructuralType.ANSWER)
_PHASE_STATUS = {
    Phase.REVIEW: ClaimStatus.PENDING_REVIEW,
    Phase.PARALLEL: ClaimStatus.PENDING_PARALLEL,
    Phase.EXCLUSIVE: ClaimStatus.PENDING_EXCLUSIVE,
}
_GRANT_KIND = {
    Phase.REVIEW: DecisionKind.GRANT_REVIEW,
    Phase.PARALLEL: DecisionKind.GRANT_PARALLEL,
    Phase.EXCLUSIVE: DecisionKind.GRANT_EXCLUSIVE,
}
# The grant type agents see (protocol 2.3: the parallel phase is granted as "claim").
_GRANT_TYPE = {Phase.REVIEW: "review", Phase.PARALLEL: "claim", Phase.EXCLUSIVE: "exclusive"}


def _owner_is_dead(owner: str) -> bool:
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
    owner = await bb.redis.get(bb.keys.lock_owner)
    if not owner or not _owner_is_dead(str(owner)):
        return False
    tx = Tx().require_value(bb.keys.lock_owner, str(owner)).delete(bb.keys.lock_owner).delete(bb.keys.lock)
    return (await bb.run(tx)).ok


def human_feedback_claim_id(review_id: str) -> str:
    """The feedback claim an injected review starts has an id derived from the review: replays create it once."""
    return str(uuid.uuid5(uuid.NAMESPACE_URL, f"holt:human-review:{review_id}"))


def go_slice(items: list[str]) -> str:
    """Go's ``%v`` of a string slice: ``[a b c]``."""
    return "[" + " ".join(items) + "]"


@dataclass
class ClaimRuntime:
    """What the orchestrator knows about one open claim (all of it rebuildable from Redis)."""

    claim: Claim
    target: Artefact
    rev: int
    created_ms: int
    bids: dict[str, str] = field(default_factory=dict)
    outputs: dict[str, Artefact] = field(default_factory=dict)  # role -> output in the current phase
    failures: dict[str, Artefact] = field(default_factory=dict)  # role -> Failure artefact
    rework: Artefact | None = None  # feedback claims: the new version
    note: str = ""
    # The safety sweep's memory of grants whose output has not come: (rev, pending grants) and since when.
    waiting_key: tuple[int, tuple[tuple[str, str], ...]] | None = None
    waiting_since: float = 0.0


class Orchestrator:
    def __init__(
        self,
        bb: Blackboard,
        config: Config,
        *,
        gate: DecisionGate | None = None,
        worker_launcher: WorkerLauncher | None = None,
        log: EventLogger | None = None,
        sweep_interval_s: float = 5.0,
        stale_grant_s: float = 30.0,
    ) -> None:
        self.bb = bb
        self.keys = bb.keys
        self.config = config
        self.workers = worker_launcher
        self.log = log or EventLogger("orchestrator", bb.instance)
        self.hitl = HitlCoordinator(self)
        # Breakpoints (the debugging control plane) by default; free while no breakpoint is set. Approval
        # gates sit in front: a decision waiting for a person is not a breakpoint hit.
        inner = gate or DebugGate(bb, self.log)
        self.debug: DebugGate | None = inner if isinstance(inner, DebugGate) else None
        self.gate: DecisionGate = ApprovalGate(self.hitl, inner)
        self.claims: dict[str, ClaimRuntime] = {}
        self.by_target: dict[str, set[str]] = defaultdict(set)
        self._locks: dict[str, asyncio.Lock] = defaultdict(asyncio.Lock)
        self._tasks: set[asyncio.Task[None]] = set()
        self._timers: dict[str, asyncio.TimerHandle] = {}
        self._active_workers: dict[str, set[str]] = defaultdict(set)  # controller role -> claim ids
        self._bid_inbox: dict[str, dict[str, str]] = {}  # claim id -> bids not yet taken in by an advance
        # host:pid:random - lets a restarted orchestrator on the same host see that the holder is dead.
        self._token = f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(8)}"
        self.ready = asyncio.Event()
        self.sweep_interval_s = sweep_interval_s
        self.stale_grant_s = stale_grant_s
        self._swept_to_ms = 0
        # Artefacts fully handled from their live event, by arrival time: the sweep skips them, so at a
        # thousand hops a second it re-reads only what pub/sub may have lost, not every recent artefact.
        self._handled_live: dict[str, int] = {}

    # ================================================================== lifecycle

    async def acquire_lock(self) -> None:
        """The instance lock, in the format Holt's CLI reads (``orchestrator:{unix_seconds}``)."""
        stamp = f"orchestrator:{int(time.time())}"
        owner = await self.bb.redis.get(self.keys.lock_owner)
        if owner and owner != self._token and _owner_is_dead(str(owner)):
            # Our own host's previous orchestrator died (SIGKILL, OOM): its lock is ours to take now.
            tx = Tx().require_value(self.keys.lock_owner, str(owner)).delete(self.keys.lock_owner)
            await self.bb.run(tx)
            self.log.warning("stale_lock_taken_over", previous_owner=str(owner))
            owner = None
        if owner and owner != self._token:
            raise HoltError(
                f"instance '{self.bb.instance}' orchestrator is already running",
                hint="stop it with holt down, or wait 60 s if it crashed",
            )
        ok = await self.bb.redis.set(self.keys.lock_owner, self._token, nx=True, ex=LOCK_TTL_S)
        if not ok:
            raise HoltError(f"instance '{self.bb.instance}' orchestrator is already running")
        await self.bb.redis.set(self.keys.lock, stamp, ex=LOCK_TTL_S)

    async def _heartbeat(self, lost: asyncio.Event) -> None:
        while True:
            await asyncio.sleep(LOCK_REFRESH_S)
            owner = await self.bb.redis.get(self.keys.lock_owner)
            if owner != self._token:
                self.log.error("lock_lost", owner=owner)
                lost.set()
                return
            tx = Tx().require_value(self.keys.lock_owner, self._token)
            tx.set(self.keys.lock, f"orchestrator:{int(time.time())}")
            await self.bb.run(tx)
            await self.bb.redis.expire(self.keys.lock, LOCK_TTL_S)
            await self.bb.redis.expire(self.keys.lock_owner, LOCK_TTL_S)

    async def release_lock(self) -> None:
        tx = Tx().require_value(self.keys.lock_owner, self._token).delete(self.keys.lock_owner)
        tx.delete(self.keys.lock)
        with contextlib.suppress(Exception):
            await self.bb.run(tx)

    async def run(self, stop: asyncio.Event) -> None:
        """Hold the lock, recover, then process events until ``stop`` is set."""
        await self.acquire_lock()
        lost = asyncio.Event()
        heartbeat = asyncio.create_task(self._heartbeat(lost))
        sweeper: asyncio.Task[None] | None = None
        control: asyncio.Task[None] | None = None
        try:
            channels = [self.keys.artefact_events, self.keys.workflow_events, *self.hitl.channels]
            async with self.bb.subscribe(*channels) as sub:
                # Subscribed first, then recover: nothing published from here on is missed.
                self._swept_to_ms = now_ms()
                await self.hitl.load()
                if self.debug is not None:  # breakpoints and holds first: recovery grants nothing held
                    await self.debug.restore(agents=list(self.config.agents),
                                             bid_timeout_s=self.config.orchestrator.bid_timeout_s)
                await self.recover()
                self.hitl.recovered()
                self.hitl.start()
                sweeper = asyncio.create_task(self._sweep_forever())
                if self.debug is not None:
                    control = asyncio.create_task(self.debug.serve(self))
                self.ready.set()
                self.log.info("orchestrator_ready", claims_open=len(self.claims))
                # Events handled as they arrive, in order (looked up per message, as a loop would).
                sub.deliver_to(lambda channel, data: self.dispatch(channel, data))
                while not stop.is_set() and not lost.is_set():
                    try:
                        await sub.get_message(ignore_subscribe_messages=True, timeout=0.5)
                    except RedisConnectionError as exc:
                        await self._resubscribed(sub, channels, exc)
        finally:
            try:
                heartbeat.cancel()
                for task in (sweeper, control):
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
        has waited ``stale_grant_s`` when its agent never started it (no execution lease)."""
        now = time.monotonic()
        due: list[tuple[ClaimRuntime, str, str]] = []
        for rt in self.claims.values():
            pending = tuple(self._pending_grants(rt))
            key = (rt.rev, pending)
            if not pending:
                rt.waiting_key = None
            elif rt.waiting_key != key:
                rt.waiting_key, rt.waiting_since = key, now
            elif now - rt.waiting_since >= self.stale_grant_s:
                due.extend((rt, role, grant_type) for role, grant_type in pending
                           if not self._runs_as_worker(role))
        if not due:
            return
        async with self.bb.redis.pipeline(transaction=False) as pipe:
            for rt, role, _ in due:
                pipe.exists(self.keys.exec_lease(rt.claim.id, role))
            started = await pipe.execute()
        tx = Tx()
        for (rt, role, grant_type), lease in zip(due, started, strict=True):
            rt.waiting_since = now  # at most once per stale_grant_s
            if lease:
                continue  # running or done: its output is on its way
            tx.publish(self.keys.agent_events(role),
                       GrantNotification(claim_id=rt.claim.id, claim_type=grant_type,
                                         artefact_id=rt.claim.artefact_id).to_json())
            self.log.warning("stale_grant_resent", claim_id=rt.claim.id, agent_name=role)
        await self.bb.run(tx)

    def _runs_as_worker(self, role: str) -> bool:
        agent = self.config.agents.get(role)
        return agent is not None and agent.is_controller and self.workers is not None

    @staticmethod
    def _pending_grants(rt: ClaimRuntime) -> list[tuple[str, str]]:
        """(role, grant type) of every grant of this claim whose output has not arrived."""
        claim = rt.claim
        if not claim.status.is_open or claim.grant_queue is not None:
            return []
        if claim.status == ClaimStatus.PENDING_ASSIGNMENT:
            return [] if rt.rework is not None else [(claim.granted_exclusive_agent, "exclusive")]
        if claim.phase_state is None:
            return []
        grant_type = _GRANT_TYPE[claim.phase_state.current]
        return [(r, grant_type) for r in claim.phase_state.granted_agents
                if r not in rt.outputs and r not in rt.failures]

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
                self._active_workers[role].add(claim.id)
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

    async def _create_claim(self, artefact: Artefact) -> None:
        # No existence check first: the write below is guarded, and replays pass known_claim.
        claim = Claim(id=new_id(), artefact_id=artefact.id, status=ClaimStatus.PENDING_REVIEW)
        decision = self._decision(DecisionKind.CREATE_CLAIM, claim, artefact, "create a claim for the new artefact")
        if not await self.gate.admit(decision):
            return
        created = now_ms()
        rt = ClaimRuntime(claim=claim, target=artefact, rev=1, created_ms=created)
        async with self._locks[claim.id]:
            # Tracked before the write, so a bid that races the write finds the claim.
            self.claims[claim.id] = rt
            self.by_target[artefact.id].add(claim.id)
            tx = Tx().require_value(self.keys.claim_by_artefact(artefact.id), None)
            tx.extend(self.bb.claim_create_tx(claim))
            tx.hset(self.keys.claim(claim.id), {F_REV: "1", F_CREATED: str(created)})
            tx.sadd(self.keys.open_claims, claim.id)
            result = await self.bb.run(tx)
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
        return Decision(
            kind=kind,
            claim_id=claim.id,
            artefact_id=target.id,
            artefact_type=target.type,
            structural_type=target.structural_type.value,
            produced_by_role=target.produced_by_role,
            claim_status=claim.status.value,
            summary=summary,
            granted_roles=granted,
            details=details,
        )

    def _next(self, rt: ClaimRuntime) -> tuple[Decision, Callable[[], Awaitable[bool]]] | None:
        claim = rt.claim
        if not claim.status.is_open:
            return None
        held = self.hitl.plan(rt)  # an answered question, a decided approval, a peer question that moved on
        if held is not None:
            return held
        if claim.status == ClaimStatus.PENDING_ASSIGNMENT:
            role = claim.granted_exclusive_agent
            if rt.rework is not None:
                return self._complete(rt, f"rework {rt.rework.id} received from {role}")
            if role in rt.failures:
                return self._terminate(rt, f"Agent '{role}' failed: {rt.failures[role].type} {rt.failures[role].id}")
            return None
        if claim.grant_queue is not None:
            return None  # waits in a controller's grant queue
        ps = claim.phase_state
        if ps is None:
            return self._consensus(rt)
        failed = [r for r in ps.granted_agents if r in rt.failures and r not in rt.outputs]
        if failed:
            role = failed[0]
            return self._terminate(rt, f"Agent '{role}' failed: {rt.failures[role].type} {rt.failures[role].id}")
        received = [r for r in ps.granted_agents if r in rt.outputs]
        if ps.current == Phase.EXCLUSIVE:
            if received:
                return self._complete(rt, f"exclusive output received from {received[0]}")
            return None
        if len(received) < len(ps.granted_agents):
            return None
        if ps.current == Phase.REVIEW:
            feedback = [
                a for r, a in sorted(rt.outputs.items()) if r in ps.granted_agents and not is_approval(a.payload)
            ]
            if feedback:
                return self._feedback(rt, feedback)
        return self._next_phase(rt, ps)

    # ------------------------------------------------------------------ consensus and grants

    def _consensus(self, rt: ClaimRuntime) -> tuple[Decision, Callable[[], Awaitable[bool]]] | None:
        if rt.note.startswith("dormant"):
            return None
        agents = list(self.config.agents)
        if not agents:
            return None
        missing = [a for a in agents if a not in rt.bids]
        deadline_ms = rt.created_ms + int(self.config.orchestrator.bid_timeout_s * 1000)
        if missing and now_ms() < deadline_ms:
            return None
        bids = {a: BidType.sanitise(rt.bids.get(a, "ignore")) for a in agents}
        timed_out = missing
        for agent in agents:
            if agent in rt.bids and BidType.sanitise(rt.bids[agent]).value != rt.bids[agent]:
                self.log.warning("invalid_bid", claim_id=rt.claim.id, agent_name=agent, bid=rt.bids[agent])
        if timed_out:
            self.log.warning("bid_timeout", claim_id=rt.claim.id, agents=timed_out,
                             timeout_s=self.config.orchestrator.bid_timeout_s)
        all_bids = {a: b.value for a, b in bids.items()}
        phase = self._first_phase(all_bids, after=None)
        if phase is None:
            return self._dormant(rt, "no_bids_in_any_phase", all_bids, timed_out)
        return self._grant(rt, phase, all_bids, timed_out=timed_out)

    @staticmethod
    def _first_phase(all_bids: dict[str, str], after: Phase | None) -> Phase | None:
        order = [Phase.REVIEW, Phase.PARALLEL, Phase.EXCLUSIVE]
        start = 0 if after is None else order.index(after) + 1
        wanted = {Phase.REVIEW: "review", Phase.PARALLEL: "claim", Phase.EXCLUSIVE: "exclusive"}
        for phase in order[start:]:
            if any(b == wanted[phase] for b in all_bids.values()):
                return phase
        return None

    def _next_phase(self, rt: ClaimRuntime, ps: PhaseState) -> tuple[Decision, Callable[[], Awaitable[bool]]]:
        phase = self._first_phase(ps.all_bids, after=ps.current)
        approvals = Tx()
        if ps.current == Phase.REVIEW:  # every review approved: announced with the transition, atomically
            for role in ps.granted_agents:
                approvals.publish(self.keys.workflow_events, WorkflowEvent(
                    event=WorkflowEventType.REVIEW_APPROVED,
                    data={"original_artefact_id": rt.target.id, "reviewer_role": role}).to_json())
        if phase is None:
            return self._dormant(rt, f"no_grants_remaining_after_{ps.current.value}", ps.all_bids, [], approvals)
        return self._grant(rt, phase, ps.all_bids, timed_out=[], extra=approvals)

    def _grant(
        self, rt: ClaimRuntime, phase: Phase, all_bids: dict[str, str], *, timed_out: list[str],
        extra: Tx | None = None,
    ) -> tuple[Decision, Callable[[], Awaitable[bool]]]:
        wanted = _GRANT_TYPE[phase]
        bidders = sorted(a for a, b in all_bids.items() if b == wanted)
        granted = bidders[:1] if phase == Phase.EXCLUSIVE else bidders
        claim = rt.claim
        if phase == Phase.EXCLUSIVE:
            winner = granted[0]
            agent = self.config.agents.get(winner)
            if agent is not None and agent.is_controller and self.workers is not None:
                limit = self._worker_limit(winner)
                if len(self._active_workers[winner]) >= limit:
                    decision = self._decision(
                        DecisionKind.QUEUE_GRANT, claim, rt.target,
                        f"queue for {winner}: {limit} worker(s) busy", (winner,), limit=limit,
                    )
                    return decision, lambda: self._apply_queue(rt, winner, all_bids, extra)
        summary = f"grant {phase.value} to {', '.join(granted)}"
        if timed_out:
            summary += f" (no bid from {', '.join(timed_out)} within the bid timeout: counted as ignore)"
        decision = self._decision(_GRANT_KIND[phase], claim, rt.target, summary, tuple(granted),
                                  bids=all_bids, timed_out=timed_out)
        return decision, lambda: self._apply_grant(rt, phase, granted, all_bids, timed_out, extra)

    async def _apply_grant(
        self, rt: ClaimRuntime, phase: Phase, granted: list[str], all_bids: dict[str, str], timed_out: list[str],
        extra: Tx | None = None,
    ) -> bool:
        claim = rt.claim
        update: dict[str, Any] = {
            "status": _PHASE_STATUS[phase],
            "phase_state": PhaseState(current=phase, granted_agents=granted, received={}, all_bids=all_bids,
                                      start_time_ms=now_ms()),
            "artefact_expected": True,
            "grant_queue": None,
        }
        if phase == Phase.REVIEW:
            update["granted_review_agents"] = granted
        elif phase == Phase.PARALLEL:
            update["granted_parallel_agents"] = granted
        else:
            update["granted_exclusive_agent"] = granted[0]
        new = claim.model_copy(update=update)
        note = f"no bid from {', '.join(timed_out)} within the bid timeout" if timed_out else rt.note
        tx = self._claim_write(rt, new, note=note)
        if extra is not None:
            tx.extend(extra)
        grant_type = _GRANT_TYPE[phase]
        launch: list[str] = []
        for agent_name in granted:
            agent = self.config.agents.get(agent_name)
            controller = agent is not None and agent.is_controller and self.workers is not None
            if controller:
                launch.append(agent_name)
            else:
                tx.publish(self.keys.agent_events(agent_name),
                           GrantNotification(claim_id=claim.id, claim_type=grant_type,
                                             artefact_id=claim.artefact_id).to_json())
            event = WorkflowEvent(event=WorkflowEventType.CLAIM_GRANTED, data={
                "claim_id": claim.id, "agent_name": agent_name, "grant_type": grant_type, "agent_image_id": "",
            })
            tx.publish(self.keys.workflow_events, event.to_json())
        # Worker slots are taken before the write: grants of other claims plan and write concurrently, so a
        # count checked at planning time alone would let them all through (more workers than max_concurrent).
        # Full by now: False, and the caller re-plans, which queues the grant.
        taken = self._reserve_workers(claim.id, launch)
        if taken is None:
            return False
        try:
            ok = (await self.bb.run(tx)).ok
        except BaseException:
            self._release_workers(claim.id, taken)
            raise
        if not ok:
            self._release_workers(claim.id, taken)
            return False
        self._commit(rt, new, note)
        rt.outputs.clear()
        rt.failures.clear()
        self.log.info(f"{phase.value}_phase_granted", claim_id=claim.id, agents=granted, bids=all_bids)
        for role in launch:
            assert self.workers is not None
            self.workers.launch(role, claim.id, self._worker_exited)
        return True

    def _worker_limit(self, role: str) -> int:
        agent = self.config.agents.get(role)
        return agent.worker.max_concurrent if agent is not None and agent.worker else 1

    def _reserve_workers(self, claim_id: str, roles: list[str]) -> list[str] | None:
        """Take a worker slot of each role for the claim; the roles newly taken, or None when one is full."""
        taken: list[str] = []
        for role in roles:
            active = self._active_workers[role]
            if claim_id in active:
                continue
            if len(active) >= self._worker_limit(role):
                self._release_workers(claim_id, taken)
                return None
            active.add(claim_id)
            taken.append(role)
        return taken

    def _release_workers(self, claim_id: str, roles: list[str]) -> None:
        for role in roles:
            self._active_workers[role].discard(claim_id)

    async def _apply_queue(self, rt: ClaimRuntime, role: str, all_bids: dict[str, str], extra: Tx | None) -> bool:
        claim = rt.claim
        paused = now_ms()
        new = claim.model_copy(update={
            "status": ClaimStatus.PENDING_EXCLUSIVE,
            "grant_queue": GrantQueue(paused_at_ms=paused, agent_name=role, position=0),
            "phase_state": PhaseState(current=Phase.EXCLUSIVE, granted_agents=[role], all_bids=all_bids,
                                      start_time_ms=paused),
        })
        tx = self._claim_write(rt, new, note=f"waiting in {role}'s grant queue")
        if extra is not None:
            tx.extend(extra)
        tx.zadd(self.keys.grant_queue(role), paused, claim.id)
        if not (await self.bb.run(tx)).ok:
            return False
        self._commit(rt, new, f"waiting in {role}'s grant queue")
        self.log.info("grant_paused_for_queue", claim_id=claim.id, agent_name=role)
        return True

    async def _drain_queue(self, role: str) -> None:
        agent = self.config.agents.get(role)
        if agent is None or not agent.is_controller:
            return
        while len(self._active_workers[role]) < self._worker_limit(role):
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
            if await self._apply_grant(rt, Phase.EXCLUSIVE, [role], all_bids, [], leave):
                self.log.info("grant_resumed_from_queue", claim_id=rt.claim.id, agent_name=role)
            else:
                self.log.warning("dequeue_conflict", claim_id=rt.claim.id)
            return True

    def _worker_exited(self, role: str, claim_id: str, exit_code: int, output_tail: str) -> None:
        self._active_workers[role].discard(claim_id)
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
        pending = self._pending_grants(rt)
        tx = Tx()
        for role, grant_type in pending:
            if self._runs_as_worker(role) and self.workers is not None:
                if not self.workers.is_running(rt.claim.id):
                    self._active_workers[role].add(rt.claim.id)
                    self.workers.launch(role, rt.claim.id, self._worker_exited)
            else:
                tx.publish(self.keys.agent_events(role),
                           GrantNotification(claim_id=rt.claim.id, claim_type=grant_type,
                                             artefact_id=rt.claim.artefact_id).to_json())
        if pending:
            await self.bb.run(tx)
            self.log.info("grant_resent", claim_id=rt.claim.id, agents=[r for r, _ in pending])

    # ------------------------------------------------------------------ endings

    def _dormant(
        self, rt: ClaimRuntime, reason: str, all_bids: dict[str, str], timed_out: list[str], extra: Tx | None = None
    ) -> tuple[Decision, Callable[[], Awaitable[bool]]]:
        decision = self._decision(DecisionKind.DORMANT, rt.claim, rt.target,
                                  f"no agent wants the next phase ({reason})", reason=reason, timed_out=timed_out)

        async def apply() -> bool:
            note = f"dormant: {reason}"
            if timed_out:
                note += f"; no bid from {', '.join(timed_out)} within the bid timeout"
            # Holt leaves a dormant claim in its status with no phase state.
            new = rt.claim.model_copy(update={"phase_state": None, "artefact_expected": False})
            tx = self._claim_write(rt, new, note=note)
            if extra is not None:
                tx.extend(extra)
            tx.srem(self.keys.open_claims, rt.claim.id)
            tx.publish(self.keys.workflow_events, self._closing_event(new, "claim_dormant", note).to_json())
            if not (await self.bb.run(tx)).ok:
                return False
            self._commit(rt, new, note)
            self.log.info("claim_dormant", claim_id=rt.claim.id, reason=reason)
            self._untrack(rt.claim.id)
            return True

        return decision, apply

    def _complete(self, rt: ClaimRuntime, summary: str) -> tuple[Decision, Callable[[], Awaitable[bool]]]:
        decision = self._decision(DecisionKind.COMPLETE, rt.claim, rt.target, summary)

        async def apply() -> bool:
            return await self._close(rt, ClaimStatus.COMPLETE, "", "claim_complete")

        return decision, apply

    def _terminate(self, rt: ClaimRuntime, reason: str) -> tuple[Decision, Callable[[], Awaitable[bool]]]:
        decision = self._decision(DecisionKind.TERMINATE, rt.claim, rt.target, f"terminate: {reason}", reason=reason)

        async def apply() -> bool:
            return await self._close(rt, ClaimStatus.TERMINATED, reason, "claim_terminated")

        return decision, apply

    async def _close(self, rt: ClaimRuntime, status: ClaimStatus, reason: str, event: str,
                     extra: Tx | None = None) -> bool:
        new = rt.claim.model_copy(update={"status": status, "termination_reason": reason,
                                          "artefact_expected": False})
        tx = self._claim_write(rt, new, note=rt.note)
        tx.srem(self.keys.open_claims, rt.claim.id)
        if extra is not None:
            tx.extend(extra)
        wire = "claim_completed" if status == ClaimStatus.COMPLETE else "claim_terminated"
        tx.publish(self.keys.workflow_events, self._closing_event(new, wire).to_json())
        if not (await self.bb.run(tx)).ok:
            return False
        self._commit(rt, new, rt.note)
        self.log.info(event, claim_id=rt.claim.id, status=status.value, reason=reason)
        self._untrack(rt.claim.id)
        role = new.granted_exclusive_agent
        if role in self._active_workers:  # a controller's slot may have freed up
            self._active_workers[role].discard(rt.claim.id)
            self.spawn(self._drain_queue(role))
        return True

    def _feedback(self, rt: ClaimRuntime, feedback: list[Artefact]) -> tuple[Decision, Callable[[], Awaitable[bool]]]:
        target = rt.target
        iteration = target.version - 1
        limit = self.config.orchestrator.max_review_iterations
        producer = target.produced_by_role
        review_ids = [a.id for a in feedback]
        decision = self._decision(
            DecisionKind.START_FEEDBACK, rt.claim, target,
            f"review rejected by {', '.join(a.produced_by_role for a in feedback)}: send feedback to {producer}",
            (producer,), reviews=review_ids, iteration=iteration,
        )

        async def apply() -> bool:
            tx = Tx()
            approvals = [a for r, a in sorted(rt.outputs.items()) if is_approval(a.payload)]
            for review in approvals:
                tx.publish(self.keys.workflow_events, WorkflowEvent(event=WorkflowEventType.REVIEW_APPROVED, data={
                    "original_artefact_id": target.id, "reviewer_role": review.produced_by_role}).to_json())
            for review in feedback:
                tx.publish(self.keys.workflow_events, WorkflowEvent(event=WorkflowEventType.REVIEW_REJECTED, data={
                    "original_artefact_id": target.id, "reviewer_role": review.produced_by_role,
                    "feedback": feedback_excerpt(review.payload)}).to_json())
            reason = f"Terminated due to negative review feedback. See artefacts: {go_slice(review_ids)}"
            if limit > 0 and iteration >= limit:
                failure = self._system_failure(
                    "MaxIterationsExceeded", target,
                    f"Max review iterations ({limit}) reached for artefact {target.id} (version {target.version}). "
                    "Review feedback loop terminated.")
                reason = f"Terminated after reaching max review iterations ({limit})."
                tx.extend(self.bb.artefact_tx(failure)[1])
            elif producer not in self.config.agents:
                failure = self._system_failure(
                    "MissingAgentConfiguration", target,
                    f"Cannot create feedback claim: agent with role '{producer}' no longer exists in configuration.")
                reason = f"Terminated due to missing agent configuration (role: {producer})."
                tx.extend(self.bb.artefact_tx(failure)[1])
            else:
                fb = self._feedback_claim(target, producer, review_ids, rt.claim.id, new_id(), tx)
                ok = await self._close(rt, ClaimStatus.TERMINATED, reason, "claim_terminated_review_feedback",
                                       extra=tx)
                if ok:
                    self._feedback_claim_started(fb, target, producer, rt.claim.id)
                return ok
            return await self._close(rt, ClaimStatus.TERMINATED, reason, "claim_terminated", extra=tx)

        return decision, apply

    def _feedback_claim(self, target: Artefact, producer: str, review_ids: list[str], original_claim_id: str,
                        claim_id: str, tx: Tx) -> Claim:
        """Adds to ``tx`` the creation of a feedback claim granting the target's producer its rework."""
        fb = Claim(id=claim_id, artefact_id=target.id, status=ClaimStatus.PENDING_ASSIGNMENT,
                   granted_exclusive_agent=producer, additional_context_ids=review_ids, artefact_expected=True)
        tx.extend(self.bb.claim_create_tx(fb))
        tx.hset(self.keys.claim(fb.id), {F_REV: "1", F_CREATED: str(now_ms())})
        tx.sadd(self.keys.open_claims, fb.id)
        tx.publish(self.keys.workflow_events, WorkflowEvent(
            event=WorkflowEventType.FEEDBACK_CLAIM_CREATED,
            data={"feedback_claim_id": fb.id, "original_claim_id": original_claim_id,
                  "target_agent_role": producer, "iteration": target.version}).to_json())
        agent = self.config.agents[producer]
        if not (agent.is_controller and self.workers is not None):
            tx.publish(self.keys.agent_events(producer),
                       GrantNotification(claim_id=fb.id, claim_type="exclusive",
                                         artefact_id=fb.artefact_id).to_json())
        return fb

    def _feedback_claim_started(self, fb: Claim, target: Artefact, producer: str, original_claim_id: str) -> None:
        self._track(ClaimRuntime(claim=fb, target=target, rev=1, created_ms=now_ms()))
        self.log.info("feedback_claim_created", feedback_claim_id=fb.id, original_claim_id=original_claim_id,
                      target_agent_role=producer, iteration=target.version)
        if self.config.agents[producer].is_controller and self.workers is not None:
            self._active_workers[producer].add(fb.id)
            self.workers.launch(producer, fb.id, self._worker_exited)

    # ------------------------------------------------------------------ operators' acts (debugging control plane)

    async def _on_human_review(self, review: Artefact, *, replay: bool) -> None:
        """A Review injected by ``human:<operator>``: ``{}`` approves a pending review phase; anything
        else is feedback that re-opens the producer's work, even when the target's claim completed."""
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
        fb = self._feedback_claim(target, producer, [review.id], claim_id, fb_id, tx)
        tx.publish(self.keys.workflow_events, WorkflowEvent(event=WorkflowEventType.REVIEW_REJECTED, data={
            "original_artefact_id": target.id, "reviewer_role": review.produced_by_role,
            "feedback": feedback_excerpt(review.payload)}).to_json())
        if rt is not None:  # its claim is still running: it stops here, as after an agent's negative review
            async with self._locks[rt.claim.id]:
                reason = f"Terminated due to negative review feedback. See artefacts: {go_slice([review.id])}"
                ok = await self._close(rt, ClaimStatus.TERMINATED, reason, "claim_terminated_review_feedback",
                                       extra=tx)
        else:
            ok = (await self.bb.run(tx)).ok
        if ok:
            self._feedback_claim_started(fb, target, producer, claim_id)

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
        if role in self._active_workers:
            self._active_workers[role].discard(claim_id)
            await self._drain_queue(role)

    @staticmethod
    def _closing_event(claim: Claim, event: str, note: str = "") -> WorkflowEvent:
        """Our addition to Holt's events: a claim stopped moving (Go's watch prints it as unknown)."""
        return WorkflowEvent(event=event, data={
            "claim_id": claim.id, "artefact_id": claim.artefact_id, "status": claim.status.value,
            "reason": claim.termination_reason or note,
        })

    @staticmethod
    def _system_failure(kind: str, target: Artefact, payload: str) -> Artefact:
        ident = new_id()
        return Artefact(id=ident, logical_id=new_id(), version=1, structural_type=StructuralType.FAILURE, type=kind,
                        payload=payload, source_artefacts=[target.id], produced_by_role="orchestrator")

    # ------------------------------------------------------------------ writes

    def _claim_write(self, rt: ClaimRuntime, new: Claim, *, note: str) -> Tx:
        """Every claim change: compare-and-set on the revision, all fields rewritten."""
        key = self.keys.claim(new.id)
        tx = Tx().require_field(key, F_REV, str(rt.rev) if rt.rev else None)
        tx.hset(key, new.to_hash())
        tx.hset(key, {F_REV: str(rt.rev + 1), F_NOTE: note})
        return tx

    def _commit(self, rt: ClaimRuntime, new: Claim, note: str) -> None:
        rt.claim = new
        rt.rev += 1
        rt.note = note


class WorkerLauncher:
    """Runs controller workers as local processes (``holt pup --execute-claim``)."""

    def __init__(self, argv_for: Callable[[str, str], list[str]], env: dict[str, str] | None = None,
                 cwd: str | None = None) -> None:
        self._argv_for = argv_for
        self._env = env
        self._cwd = cwd
        self._running: dict[str, asyncio.Task[None]] = {}

    def is_running(self, claim_id: str) -> bool:
        return claim_id in self._running

    def launch(self, role: str, claim_id: str, on_exit: Callable[[str, str, int, str], None]) -> None:
        if claim_id in self._running:
            return
        self._running[claim_id] = asyncio.ensure_future(self._run(role, claim_id, on_exit))

    async def _run(self, role: str, claim_id: str, on_exit: Callable[[str, str, int, str], None]) -> None:
        code = -1
        tail = ""
        try:
            proc = await asyncio.create_subprocess_exec(
                *self._argv_for(role, claim_id),
                stdin=asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.STDOUT,
                env={**os.environ, **worker_env(), **(self._env or {})},  # workers run as holt-agent
                cwd=self._cwd,
            )
            out, _ = await proc.communicate()
            code = proc.returncode if proc.returncode is not None else -1
            tail = "\n".join(out.decode("utf-8", "replace").splitlines()[-100:])
        except OSError as exc:
            tail = f"could not start worker: {exc}"
        finally:
            self._running.pop(claim_id, None)
            on_exit(role, claim_id, code, tail)

    async def stop(self) -> None:
        tasks = list(self._running.values())
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
