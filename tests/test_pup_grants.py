"""A pup reading its grants: with the target named by the notification, claim and target in one round trip.

The pup runs its real loop against the real Redis; its separate reads (``get_claim``, ``get_artefact``) and the
pipelined one are counted by wrapping them on the pup's own blackboard client.
"""

from __future__ import annotations

import asyncio
import json
import logging
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from holt_core.blackboard import Blackboard, connect_redis
from holt_core.config import parse_config
from holt_core.models import Artefact, Claim, ClaimStatus, GrantNotification, StructuralType, new_id
from holt_core.pup import Pup
from tests.engine import make_workspace, poll, wait_for_artefact

# Echoes the target's id, so the result shows which target the tool was given.
WORKER = r'''
import json, sys
req = json.load(sys.stdin)
print(json.dumps({"artefact_type": "Done", "artefact_payload": req["target_artefact"]["id"], "summary": "ok"}))
'''

CONFIG = f"""
version: "1.0"
agents:
  Worker:
    command: ["{sys.executable}", "worker.py"]
    bidding_strategy: exclusive
    workspace:
      mode: rw
"""


class Reads:
    """The pup's reads of claims and artefacts, by kind, in order."""

    def __init__(self, bb: Blackboard, monkeypatch: pytest.MonkeyPatch) -> None:
        self.calls: list[tuple[str, ...]] = []
        get_claim, get_artefact, both = bb.get_claim, bb.get_artefact, bb.get_claim_and_artefact

        async def claim(claim_id: str) -> Claim:
            self.calls.append(("get_claim", claim_id))
            return await get_claim(claim_id)

        async def artefact(artefact_id: str) -> Artefact:
            self.calls.append(("get_artefact", artefact_id))
            return await get_artefact(artefact_id)

        async def together(claim_id: str, artefact_id: str) -> tuple[Claim, Artefact]:
            self.calls.append(("get_claim_and_artefact", claim_id, artefact_id))
            return await both(claim_id, artefact_id)

        monkeypatch.setattr(bb, "get_claim", claim)
        monkeypatch.setattr(bb, "get_artefact", artefact)
        monkeypatch.setattr(bb, "get_claim_and_artefact", together)


@pytest.fixture
async def pup(tmp_path: Path, redis_url: str, instance: str) -> AsyncIterator[Pup]:
    ws = make_workspace(tmp_path, files={"holt.yml": CONFIG, "worker.py": WORKER})
    board = Blackboard(connect_redis(redis_url), instance)
    try:
        yield Pup(board, parse_config(CONFIG), "Worker", ws)
    finally:
        await board.close()


@pytest.fixture
async def running(pup: Pup) -> AsyncIterator[Pup]:
    stop = asyncio.Event()
    task = asyncio.create_task(pup.run(stop))
    try:
        await asyncio.wait_for(pup.ready.wait(), 20)
        yield pup
    finally:
        stop.set()
        await task


async def goal(bb: Blackboard) -> Artefact:
    ident = new_id()
    return await bb.create_artefact(Artefact(
        id=ident, logical_id=ident, version=1, structural_type=StructuralType.STANDARD, type="GoalDefined",
        payload="go", source_artefacts=[], produced_by_role="user"), add_to_thread=True)


async def granted(bb: Blackboard, target_id: str) -> Claim:
    """A claim granting ``target_id`` to Worker, written without a claim event (the pup would bid on it);
    a test sends the grant notification itself."""
    claim = Claim(id=new_id(), artefact_id=target_id, status=ClaimStatus.PENDING_EXCLUSIVE,
                  granted_exclusive_agent="Worker")
    await bb.redis.hset(bb.keys.claim(claim.id), mapping=claim.to_hash())
    return claim


async def notify(bb: Blackboard, text: str) -> None:
    assert await bb.redis.publish(bb.keys.agent_events("Worker"), text) == 1


def done(a: Artefact) -> bool:
    return a.produced_by_role == "Worker"


@pytest.mark.parametrize("names_target", [True, False], ids=["names-target", "as-go-sends-it"])
async def test_how_a_grant_is_read_depends_on_whether_it_names_the_target(
    running: Pup, bb: Blackboard, monkeypatch: pytest.MonkeyPatch, names_target: bool
) -> None:
    reads = Reads(running.bb, monkeypatch)
    target = await goal(bb)
    claim = await granted(bb, target.id)
    if names_target:
        await notify(bb, GrantNotification(claim_id=claim.id, claim_type="exclusive", artefact_id=target.id).to_json())
    else:
        await notify(bb, '{"claim_id":"' + claim.id + '","claim_type":"exclusive","event_type":"grant"}')
    result = await wait_for_artefact(bb, done)
    assert result.payload == target.id and result.source_artefacts == [target.id]
    if names_target:
        assert reads.calls == [("get_claim_and_artefact", claim.id, target.id)]  # one round trip
    else:
        assert reads.calls == [("get_claim", claim.id), ("get_artefact", target.id)]
    await lease_done(bb, claim.id, result.id)


async def test_a_notified_target_other_than_the_claims_is_not_trusted(
    running: Pup, bb: Blackboard, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="holt")
    reads = Reads(running.bb, monkeypatch)
    target = await goal(bb)
    claim = await granted(bb, target.id)
    other = await goal(bb)
    await notify(bb, GrantNotification(claim_id=claim.id, claim_type="exclusive", artefact_id=other.id).to_json())
    result = await wait_for_artefact(bb, done)
    assert result.payload == target.id and result.source_artefacts == [target.id]  # the claim's target
    assert reads.calls == [("get_claim_and_artefact", claim.id, other.id), ("get_artefact", target.id)]
    assert [r.getMessage() for r in caplog.records if r.name == "holt.pup"] == ["grant_target_mismatch"]


async def test_a_feedback_claim_event_names_its_target(
    running: Pup, bb: Blackboard, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A feedback claim reaches its producer first as a claim event carrying the whole claim.
    reads = Reads(running.bb, monkeypatch)
    target = await goal(bb)
    claim = await bb.create_claim(Claim(id=new_id(), artefact_id=target.id, status=ClaimStatus.PENDING_ASSIGNMENT,
                                        granted_exclusive_agent="Worker"))
    result = await wait_for_artefact(bb, done)
    assert result.logical_id == target.logical_id and result.version == 2  # a rework of the target
    assert result.payload == target.id and result.source_artefacts == [target.id]
    assert reads.calls == [("get_claim_and_artefact", claim.id, target.id)]


async def test_an_unreadable_target_named_by_the_grant_still_becomes_a_failure(pup: Pup, bb: Blackboard) -> None:
    missing = new_id()
    claim = await granted(bb, missing)  # the claim's target was never written
    result = await pup.execute(claim.id, "exclusive", artefact_id=missing)
    assert result is not None and result.structural_type == StructuralType.FAILURE
    assert result.source_artefacts == [missing]
    reason = json.loads(result.payload)["reason"]
    assert reason == f"failed to read target artefact: artefact with ID '{missing}' not found"
    # As without the id: the lease was taken before the failure was written.
    assert await bb.redis.get(bb.keys.exec_lease(claim.id, "Worker")) == f"done:{result.id}"


async def test_an_unreadable_claim_named_with_its_target_is_dropped(
    pup: Pup, bb: Blackboard, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="holt")
    target = await goal(bb)
    missing = new_id()
    assert await pup.execute(missing, "exclusive", artefact_id=target.id) is None
    assert [r.getMessage() for r in caplog.records if r.name == "holt.pup"] == ["grant_unreadable"]
    assert not await bb.redis.exists(bb.keys.exec_lease(missing, "Worker"))


async def test_a_grant_that_is_not_ours_is_dropped_before_the_lease(pup: Pup, bb: Blackboard) -> None:
    target = await goal(bb)
    claim = await granted(bb, target.id)
    await bb.redis.hset(bb.keys.claim(claim.id), "granted_exclusive_agent", "Someone")
    assert await pup.execute(claim.id, "exclusive", artefact_id=target.id) is None
    assert not await bb.redis.exists(bb.keys.exec_lease(claim.id, "Worker"))


async def lease_done(bb: Blackboard, claim_id: str, result_id: str) -> None:
    async def marked() -> bool:
        return await bb.redis.get(bb.keys.exec_lease(claim_id, "Worker")) == f"done:{result_id}"

    await poll(marked, within=10, what="the execution lease marked done")
