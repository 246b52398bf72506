"""The async blackboard client: Holt's records in Redis, read and written in Holt's exact format.

Artefacts are write-once. Every write that other processes react to is announced on pub/sub in the same
atomic step (see ``transaction``), after the data.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterable, Sequence
from typing import TYPE_CHECKING, Any

from holt_core.board_reads import _SCAN_COUNT, ArtefactListing, BoardReads
from holt_core.board_reads import MIN_SHORT_ID as MIN_SHORT_ID
from holt_core.board_reads import next_message as next_message  # its home is board_reads (the light reads use it)
from holt_core.errors import (
    AlreadyExists,
    InvalidInput,
    MalformedRecord,
    NotFound,
)
from holt_core.logs import EventLogger
from holt_core.models import (
    Artefact,
    BidType,
    Claim,
    WorkflowEvent,
    WorkflowEventType,
    dumps,
    now_ms,
)
from holt_core.redis_conn import connect_redis as connect_redis  # its home until it had a module of its own
from holt_core.redis_wire import Subscription
from holt_core.transaction import Tx, TxResult, TxRunner

if TYPE_CHECKING:
    from redis.asyncio import Redis

    from holt_core.audit import AuditTrail


class Blackboard(BoardReads):
    """One instance's blackboard: the reads and writes of every hop on one lean connection (``redis_wire``),
    everything else through the redis-py client it is given. The reads that need no model are ``BoardReads``'."""

    def __init__(self, redis: Redis, instance: str) -> None:
        super().__init__(redis, instance)
        self._tx = TxRunner(self.wire)
        self._audit: AuditTrail | None = None
        self.on_unreadable = self._log_unreadable
        self._log = EventLogger("blackboard", instance)

    @property
    def audit(self) -> AuditTrail:
        """The instance's audit trail (imported on first use: read-only commands never load it)."""
        if self._audit is None:
            from holt_core.audit import AuditTrail

            self._audit = AuditTrail(self.redis, self.keys, runner=self._tx)
        return self._audit

    def _log_unreadable(self, bad: MalformedRecord) -> None:
        self._log.warning("record_unreadable", key=bad.key, error=bad.reason)

    @classmethod
    def from_url(cls, url: str, instance: str) -> Blackboard:
        return cls(connect_redis(url), instance)

    async def close(self) -> None:
        self.release()
        await self.redis.aclose()

    async def run(self, tx: Tx) -> TxResult:
        return await self._tx.run(tx)

    # ------------------------------------------------------------------ artefacts

    def artefact_tx(self, artefact: Artefact, *, add_to_thread: bool = False) -> tuple[Artefact, Tx]:
        """The write-once creation of an artefact as a Tx (callers may add more operations to it)."""
        if artefact.created_at_ms == 0:
            artefact = artefact.model_copy(update={"created_at_ms": now_ms()})
        key = self.keys.artefact(artefact.id)
        tx = Tx().require_absent(key).hset(key, artefact.to_hash())
        tx.zadd(self.keys.artefact_index, artefact.created_at_ms, artefact.id)
        if add_to_thread:
            tx.zadd(self.keys.thread(artefact.logical_id), artefact.version, artefact.id)
        tx.publish(self.keys.artefact_events, artefact.to_json())
        return artefact, tx

    async def create_artefact(
        self,
        artefact: Artefact,
        *,
        add_to_thread: bool = False,
        events: Iterable[WorkflowEvent] = (),
    ) -> Artefact:
        """Write an artefact once; a second write of the same id raises AlreadyExists.

        ``events`` are published on the workflow channel in the same atomic step, after the artefact event.
        """
        artefact, tx = self.artefact_tx(artefact, add_to_thread=add_to_thread)
        for event in events:
            tx.publish(self.keys.workflow_events, event.to_json())
        result = await self.run(tx)
        if not result.ok:
            raise AlreadyExists(f"artefact {artefact.id} already exists; artefacts are immutable")
        return artefact

    async def get_artefact(self, artefact_id: str) -> Artefact:
        raw = await self._hgetall(self.keys.artefact(artefact_id))
        return self._artefact_from(artefact_id, raw)

    def _artefact_from(self, artefact_id: str, raw: dict[str, str]) -> Artefact:
        if not raw:
            raise NotFound(f"artefact with ID '{artefact_id}' not found")
        return Artefact.from_hash(raw, self.keys.artefact(artefact_id))

    async def list_artefacts(self) -> ArtefactListing[Artefact]:
        """All artefacts, oldest first; records that do not decode are skipped and reported (``read_artefacts``)."""
        return await self.read_artefacts(Artefact.from_hash)

    async def get_artefacts(self, ids: Sequence[str]) -> list[Artefact | None]:
        """Pipelined fetch; missing ids give None, and so do unreadable records (reported, see ``unreadable``)."""
        keys = [self.keys.artefact(i) for i in ids]
        rows = await self.hgetall_many(keys)
        return [self._decode_artefact(key, raw) if raw else None for key, raw in zip(keys, rows, strict=True)]

    def _decode_artefact(self, key: str, raw: dict[str, str]) -> Artefact | None:
        try:
            return Artefact.from_hash(raw, key)
        except MalformedRecord as bad:
            self.report_unreadable(bad)
            return None

    # ------------------------------------------------------------------ threads

    async def latest_version(self, logical_id: str) -> tuple[str, int] | None:
        rows: list[Any] = await self.redis.zrevrange(self.keys.thread(logical_id), 0, 0, withscores=True)
        if not rows:
            return None
        member, score = rows[0]
        return str(member), int(score)

    async def thread_versions(self, logical_id: str) -> list[tuple[str, int]]:
        rows: list[Any] = await self.redis.zrange(self.keys.thread(logical_id), 0, -1, withscores=True)
        return [(str(m), int(s)) for m, s in rows]

    # ------------------------------------------------------------------ claims

    def claim_create_tx(self, claim: Claim) -> Tx:
        key = self.keys.claim(claim.id)
        return (
            Tx()
            .require_absent(key)
            .hset(key, claim.to_hash())
            .set(self.keys.claim_by_artefact(claim.artefact_id), claim.id)
            .zadd(self.keys.claim_index, now_ms(), claim.id)
            .publish(self.keys.claim_events, claim.to_json())
        )

    async def create_claim(self, claim: Claim) -> Claim:
        result = await self.run(self.claim_create_tx(claim))
        if not result.ok:
            raise AlreadyExists(f"claim {claim.id} already exists")
        return claim

    def claim_update_tx(self, claim: Claim, *, expect_status: str | None = None) -> Tx:
        """Rewrite all claim fields; with expect_status, only if the stored status still matches."""
        key = self.keys.claim(claim.id)
        tx = Tx()
        if expect_status is not None:
            tx.require_field(key, "status", expect_status)
        return tx.hset(key, claim.to_hash())

    async def update_claim(self, claim: Claim, *, expect_status: str | None = None) -> bool:
        return (await self.run(self.claim_update_tx(claim, expect_status=expect_status))).ok

    async def get_claim(self, claim_id: str) -> Claim:
        return self._claim_from(claim_id, await self._hgetall(self.keys.claim(claim_id)))

    def _claim_from(self, claim_id: str, raw: dict[str, str]) -> Claim:
        if not raw:
            raise NotFound(f"claim with ID '{claim_id}' not found")
        return Claim.from_hash(raw, self.keys.claim(claim_id))

    async def get_claim_and_artefact(self, claim_id: str, artefact_id: str) -> tuple[Claim, Artefact]:
        """A claim and an artefact (its target, when the caller knows the id) in one round trip.

        Raises as get_claim and get_artefact do; the claim's errors come first."""
        keys = [self.keys.claim(claim_id), self.keys.artefact(artefact_id)]
        wrong: list[MalformedRecord] = []
        claim_raw, artefact_raw = await self.hgetall_many(keys, unreadable=wrong)
        for bad in wrong:
            raise bad  # the claim's first: hgetall_many keeps the order of keys
        return self._claim_from(claim_id, claim_raw), self._artefact_from(artefact_id, artefact_raw)

    async def claim_id_for_artefact(self, artefact_id: str) -> str | None:
        value = await self.redis.get(self.keys.claim_by_artefact(artefact_id))
        return str(value) if value else None

    async def scan_claim_ids(self) -> AsyncIterator[str]:
        """Every claim id; ``claim:{id}:bids`` keys match the same pattern and are skipped."""
        async for key in self.redis.scan_iter(match=self.keys.claim_pattern, count=_SCAN_COUNT):
            claim_id = self.keys.id_from_claim_key(key)
            if claim_id is not None:
                yield claim_id

    async def list_claims(self) -> tuple[list[Claim], list[MalformedRecord]]:
        """Every readable claim, and the claim records skipped (reported as ``list_artefacts`` does)."""
        keys = [self.keys.claim(i) async for i in self.scan_claim_ids()]
        claims: list[Claim] = []
        bad: list[MalformedRecord] = []
        for key, raw in zip(keys, await self.hgetall_many(keys, unreadable=bad), strict=True):
            if not raw:
                continue
            try:
                claims.append(Claim.from_hash(raw, key))
            except MalformedRecord as exc:
                self.report_unreadable(exc)
                bad.append(exc)
        return claims, bad

    # ------------------------------------------------------------------ bids

    async def set_bid(self, claim_id: str, agent_name: str, bid: BidType) -> None:
        """Record a bid and announce it (``bid_submitted``) in one atomic step."""
        if not agent_name:
            raise InvalidInput("agent name cannot be empty")
        # The envelope WorkflowEvent.to_json writes, built directly: every agent sends one per claim.
        event = dumps({"event": WorkflowEventType.BID_SUBMITTED.value,
                       "data": {"claim_id": claim_id, "agent_name": agent_name, "bid_type": bid.value}})
        tx = Tx().hset(self.keys.bids(claim_id), {agent_name: bid.value})
        tx.publish(self.keys.workflow_events, event)
        await self.run(tx)

    async def get_bids_many(self, claim_ids: Sequence[str]) -> list[dict[str, str]]:
        return await self.hgetall_many([self.keys.bids(c) for c in claim_ids])

    async def get_bids(self, claim_id: str) -> dict[str, str]:
        return (await self.hgetall_many([self.keys.bids(claim_id)]))[0]

    # ------------------------------------------------------------------ events

    async def publish_workflow_event(self, event: WorkflowEvent) -> None:
        await self.redis.publish(self.keys.workflow_events, event.to_json())

async def resubscribe(pubsub: Subscription, channels: Sequence[str], deliver: Callable[[str, str], None], *,
                      within_s: float | None = None) -> None:
    """Bring back a subscription whose connection dropped (Redis closed a lagging subscriber, or restarted):
    ``Subscription.reconnect``, which waits as long as Redis is away unless ``within_s`` is given. Returns once
    every channel is confirmed again, so a catch-up read made afterwards misses nothing; messages that arrive
    meanwhile go to ``deliver``. What was published during the gap is lost to this subscriber: the caller
    reads it back from the data."""
    pubsub.channels.update(dict.fromkeys(channels))
    await pubsub.reconnect(deliver, within_s=within_s)


