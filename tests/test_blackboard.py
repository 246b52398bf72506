"""The blackboard client against a real redis-server."""

from __future__ import annotations

import asyncio
import json
import re

import pytest

from holt_core.blackboard import Blackboard, connect_redis, next_message
from holt_core.errors import AlreadyExists, AmbiguousId, InvalidInput, MalformedRecord, NotFound
from holt_core.models import (
    Artefact,
    BidType,
    Claim,
    ClaimStatus,
    StructuralType,
    WorkflowEvent,
    new_id,
)
from holt_core.transaction import Tx


def artefact(artefact_id: str | None = None, **over: object) -> Artefact:
    ident = artefact_id or new_id()
    data: dict[str, object] = {
        "id": ident,
        "logical_id": ident,
        "version": 1,
        "structural_type": StructuralType.STANDARD,
        "type": "Draft",
        "payload": "hello",
        "source_artefacts": [],
        "produced_by_role": "Drafter",
    }
    data.update(over)
    return Artefact.model_validate(data)


async def test_create_and_get_fills_created_at(bb: Blackboard) -> None:
    stored = await bb.create_artefact(artefact())
    assert stored.created_at_ms > 0
    assert await bb.get_artefact(stored.id) == stored
    raw = await bb.redis.hgetall(bb.keys.artefact(stored.id))
    assert raw["version"] == "1" and raw["source_artefacts"] == "[]"


async def test_get_unknown_artefact(bb: Blackboard) -> None:
    with pytest.raises(NotFound, match="not found"):
        await bb.get_artefact(new_id())


async def test_write_once_under_concurrent_writers(bb: Blackboard, redis_url: str) -> None:
    ident = new_id()
    writers = [Blackboard(connect_redis(redis_url), bb.instance) for _ in range(8)]
    try:
        results = await asyncio.gather(
            *(w.create_artefact(artefact(ident, payload=f"writer {n}")) for n, w in enumerate(writers)),
            return_exceptions=True,
        )
    finally:
        for w in writers:
            await w.close()
    winners = [r for r in results if isinstance(r, Artefact)]
    losers = [r for r in results if isinstance(r, AlreadyExists)]
    assert len(winners) == 1 and len(losers) == 7
    stored = await bb.get_artefact(ident)
    assert stored.payload == winners[0].payload


async def test_events_never_arrive_before_their_data(bb: Blackboard, redis_url: str) -> None:
    reader = Blackboard(connect_redis(redis_url), bb.instance)
    total = 300
    missing: list[str] = []
    seen = 0
    try:
        async with reader.subscribe(reader.keys.artefact_events, reader.keys.claim_events) as sub:

            async def write_all() -> None:
                writers = [Blackboard(connect_redis(redis_url), bb.instance) for _ in range(3)]
                try:

                    async def one(w: Blackboard) -> None:
                        art = await w.create_artefact(artefact())
                        await w.create_claim(Claim(id=new_id(), artefact_id=art.id, status=ClaimStatus.PENDING_REVIEW))

                    await asyncio.gather(*(one(writers[n % 3]) for n in range(total // 2)))
                finally:
                    for w in writers:
                        await w.close()

            task = asyncio.create_task(write_all())
            async with asyncio.timeout(30):
                while seen < total:
                    msg = await next_message(sub, wait_s=5.0)
                    assert msg is not None, "event stream stalled"
                    channel, data = msg
                    seen += 1
                    obj = json.loads(data)
                    key = (
                        reader.keys.artefact(obj["id"])
                        if channel == reader.keys.artefact_events
                        else reader.keys.claim(obj["id"])
                    )
                    if not await reader.redis.exists(key):
                        missing.append(key)
            await task
    finally:
        await reader.close()
    assert seen == total
    assert missing == []


async def test_short_id_resolution(bb: Blackboard) -> None:
    a1 = await bb.create_artefact(artefact("abcdef12-0000-4000-8000-000000000001"))
    await bb.create_artefact(artefact("abcdef12-0000-4000-8000-000000000002"))
    await bb.create_artefact(artefact("abcdef34-0000-4000-8000-000000000003"))

    assert await bb.resolve_artefact_id("abcdef34") == "abcdef34-0000-4000-8000-000000000003"
    assert await bb.resolve_artefact_id("ABCDEF34") == "abcdef34-0000-4000-8000-000000000003"
    assert await bb.resolve_artefact_id(a1.id) == a1.id

    with pytest.raises(AmbiguousId) as amb:
        await bb.resolve_artefact_id("abcdef")
    assert amb.value.candidates == sorted(amb.value.candidates) and len(amb.value.candidates) == 3
    assert "matches 3 artefacts" in amb.value.message

    with pytest.raises(InvalidInput, match="at least 6 characters"):
        await bb.resolve_artefact_id("abcde")
    with pytest.raises(NotFound):
        await bb.resolve_artefact_id("ffffff")
    with pytest.raises(NotFound):
        await bb.resolve_artefact_id("ffffffff-0000-4000-8000-000000000009")


@pytest.mark.parametrize("pattern", ["abcde?", "abcdef*", "abcdef[13]", "abc[d]ef", "abcde\\f"])
async def test_glob_characters_in_short_ids_are_literal(bb: Blackboard, pattern: str) -> None:
    await bb.create_artefact(artefact("abcdef12-0000-4000-8000-000000000001"))
    await bb.create_artefact(artefact("abcdef34-0000-4000-8000-000000000003"))
    # As globs these would match one or both artefacts; taken literally they match none.
    with pytest.raises(NotFound):
        await bb.resolve_artefact_id(pattern)


async def test_listing_skips_bids_and_reports_malformed_records(bb: Blackboard) -> None:
    good = await bb.create_artefact(artefact())
    claim = await bb.create_claim(Claim(id=new_id(), artefact_id=good.id, status=ClaimStatus.PENDING_REVIEW))
    await bb.set_bid(claim.id, "Reviewer", BidType.REVIEW)
    # Another client wrote garbage next to our records.
    bad_id = new_id()
    await bb.redis.hset(bb.keys.artefact(bad_id), mapping={"id": bad_id, "version": "one"})
    await bb.redis.hset(bb.keys.claim(new_id()), mapping={"status": "weird"})

    listing = await bb.list_artefacts()
    assert [a.id for a in listing.artefacts] == [good.id]
    assert len(listing.malformed) == 1 and bad_id in listing.malformed[0].key

    claim_ids = [c async for c in bb.scan_claim_ids()]
    assert claim.id in claim_ids and len(claim_ids) == 2  # the :bids hash is not a claim
    claims, bad_claims = await bb.list_claims()
    assert [c.id for c in claims] == [claim.id] and len(bad_claims) == 1


async def test_claims_bids_and_index(bb: Blackboard) -> None:
    art = await bb.create_artefact(artefact())
    claim = Claim(id=new_id(), artefact_id=art.id, status=ClaimStatus.PENDING_REVIEW)
    async with bb.subscribe(bb.keys.claim_events, bb.keys.workflow_events) as sub:
        await bb.create_claim(claim)
        await bb.set_bid(claim.id, "Coder", BidType.EXCLUSIVE)
        first = await next_message(sub, wait_s=5)
        second = await next_message(sub, wait_s=5)
    assert first is not None and Claim.from_json(first[1]) == claim
    assert second is not None
    assert WorkflowEvent.from_json(second[1]).data == {
        "claim_id": claim.id, "agent_name": "Coder", "bid_type": "exclusive"
    }
    # Written without the model, byte for byte what the model writes.
    assert second[1] == WorkflowEvent(event="bid_submitted", data={
        "claim_id": claim.id, "agent_name": "Coder", "bid_type": "exclusive"}).to_json()
    assert await bb.claim_id_for_artefact(art.id) == claim.id
    assert await bb.get_bids(claim.id) == {"Coder": "exclusive"}
    with pytest.raises(AlreadyExists):
        await bb.create_claim(claim)


async def test_claim_and_artefact_read_together(bb: Blackboard) -> None:
    art = await bb.create_artefact(artefact())
    claim = await bb.create_claim(Claim(id=new_id(), artefact_id=art.id, status=ClaimStatus.PENDING_EXCLUSIVE,
                                        granted_exclusive_agent="Coder"))
    assert await bb.get_claim_and_artefact(claim.id, art.id) == (claim, art)


async def test_claim_and_artefact_read_together_report_what_is_missing(bb: Blackboard) -> None:
    art = await bb.create_artefact(artefact())
    claim = await bb.create_claim(Claim(id=new_id(), artefact_id=art.id, status=ClaimStatus.PENDING_REVIEW))
    missing = new_id()
    # The same errors (and messages) as reading each on its own; the claim's come first.
    with pytest.raises(NotFound, match=f"^claim with ID '{missing}' not found$"):
        await bb.get_claim_and_artefact(missing, art.id)
    with pytest.raises(NotFound, match=f"^artefact with ID '{missing}' not found$"):
        await bb.get_claim_and_artefact(claim.id, missing)
    with pytest.raises(NotFound, match=r"^claim with ID"):
        await bb.get_claim_and_artefact(missing, new_id())
    await bb.redis.hset(bb.keys.artefact(art.id), "version", "not a number")
    with pytest.raises(MalformedRecord, match=re.escape(bb.keys.artefact(art.id))):
        await bb.get_claim_and_artefact(claim.id, art.id)
    await bb.redis.hset(bb.keys.claim(claim.id), "status", "pending_consensus")
    with pytest.raises(MalformedRecord, match=re.escape(bb.keys.claim(claim.id))):
        await bb.get_claim_and_artefact(claim.id, art.id)


async def test_claim_update_compare_and_set(bb: Blackboard) -> None:
    claim = await bb.create_claim(Claim(id=new_id(), artefact_id=new_id(), status=ClaimStatus.PENDING_REVIEW))
    moved = claim.model_copy(update={"status": ClaimStatus.PENDING_EXCLUSIVE, "granted_exclusive_agent": "Coder"})
    assert await bb.update_claim(moved, expect_status="pending_review")
    stale = claim.model_copy(update={"status": ClaimStatus.TERMINATED})
    assert not await bb.update_claim(stale, expect_status="pending_review")
    assert (await bb.get_claim(claim.id)).status is ClaimStatus.PENDING_EXCLUSIVE


async def test_threads_and_latest_version(bb: Blackboard) -> None:
    v1 = await bb.create_artefact(artefact(), add_to_thread=True)
    assert await bb.latest_version(v1.logical_id) == (v1.id, 1)
    v2 = await bb.create_artefact(
        artefact(logical_id=v1.logical_id, version=2, source_artefacts=[v1.id]), add_to_thread=True
    )
    assert await bb.latest_version(v1.logical_id) == (v2.id, 2)
    assert await bb.thread_versions(v1.logical_id) == [(v1.id, 1), (v2.id, 2)]
    assert await bb.latest_version(new_id()) is None


async def test_transaction_guard_failure_writes_nothing(bb: Blackboard) -> None:
    key = bb.keys.artefact(new_id())
    await bb.redis.hset(key, mapping={"status": "a"})
    tx = Tx().require_field(key, "status", "b").hset(key, {"status": "c"}).set(bb.keys.lock, "x")
    tx.publish(bb.keys.workflow_events, "{}")
    result = await bb.run(tx)
    assert not result.ok and result.failed_guard == 0
    assert await bb.redis.hget(key, "status") == "a"
    assert await bb.redis.exists(bb.keys.lock) == 0


async def test_transactions_of_one_tick_share_a_round_trip_and_survive_a_flushed_script_cache(
        bb: Blackboard) -> None:
    async def script_calls() -> int:
        stats = await bb.redis.info("commandstats")
        return sum(int(v["calls"]) for k, v in stats.items() if k.startswith("cmdstat_script"))

    keys = [bb.keys.artefact(new_id()) for _ in range(4)]
    await bb.run(Tx().set(keys[0], "warm"))  # the script is loaded
    before = await script_calls()
    results = await asyncio.gather(*(bb.run(Tx().require_value(k, None).set(k, "a")) for k in keys[1:3]))
    assert all(r.ok for r in results)
    assert await script_calls() == before  # no SCRIPT EXISTS / LOAD around a pipelined batch
    await bb.redis.script_flush()
    results = await asyncio.gather(*(bb.run(Tx().require_value(k, None).set(k, "b")) for k in keys))
    # NOSCRIPT ran nothing, so after the reload each runs once: the fresh keys are written, the rest refused.
    assert [r.ok for r in results] == [False, False, False, True]
    assert [await bb.redis.get(k) for k in keys] == ["warm", "a", "a", "b"]


async def test_payload_that_is_not_utf8_reads_safely(bb: Blackboard, redis_url: str) -> None:
    ident = new_id()
    raw_client = connect_redis(redis_url)
    try:
        good = artefact(ident).to_hash()
        await bb.redis.hset(bb.keys.artefact(ident), mapping=good)
        # A foreign client stores bytes that are not valid UTF-8.
        from redis.asyncio import Redis

        binary = Redis.from_url(redis_url)
        await binary.hset(bb.keys.artefact(ident), "payload", b"\xff\xfe bad")
        await binary.aclose()
        got = await bb.get_artefact(ident)
        assert got.payload.endswith(" bad") and "\ufffd" in got.payload
    finally:
        await raw_client.aclose()
