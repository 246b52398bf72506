"""Agents that stay silent, crash, hang or print garbage: each becomes a visible outcome, never a stall."""

from __future__ import annotations

import asyncio
import json
import logging
import sys
from pathlib import Path

import pytest

from holt_core.blackboard import Blackboard, next_message
from holt_core.config import parse_config
from holt_core.models import Artefact, BidType, ClaimStatus, GrantNotification, StructuralType, new_id, now_ms
from tests.engine import Engine, make_workspace, poll, wait_for_artefact, wait_settled

PY = sys.executable

# A worker that handles "Task" goals; its behaviour is chosen by the goal text.
WORKER = r'''
import json, sys, time
req = json.load(sys.stdin)
mode = req["target_artefact"]["payload"]
if mode == "crash":
    print("about to fail", file=sys.stderr)
    sys.exit(3)
if mode == "hang":
    time.sleep(60)
if mode == "garbage":
    print("this is not json")
    sys.exit(0)
if mode == "env":
    import os
    mode = "leaked" if "HOLT_REDIS_URL" in os.environ else "clean"
if mode == "missing-summary":
    print(json.dumps({"artefact_type": "Done", "artefact_payload": "x"}))
    sys.exit(0)
print(json.dumps({"artefact_type": "Done", "artefact_payload": mode, "summary": "ok",
                  "structural_type": "Terminal"}))
'''


def config_text(extra_agent: str = "", bid_timeout: str = "10s") -> str:
    return f"""
version: "1.0"
orchestrator:
  bid_timeout: {bid_timeout}
agents:
  Worker:
    command: ["{PY}", "worker.py"]
    bidding_strategy: exclusive
    workspace:
      mode: rw
    timeout: 2s
{extra_agent}
"""


async def start(tmp_path: Path, redis_url: str, instance: str, text: str, pups: list[str] | None = None) -> Engine:
    ws = make_workspace(tmp_path, files={"holt.yml": text, "worker.py": WORKER})
    engine = Engine(redis_url, instance, ws, parse_config(text))
    await engine.start_orchestrator()
    await engine.start_pups(pups)
    return engine


@pytest.mark.parametrize(
    ("mode", "reason_part"),
    [
        ("crash", "process exited with code 3"),
        ("garbage", "Failed to parse tool output: invalid JSON"),
        ("missing-summary", "summary is required"),
        ("hang", "tool execution timeout (2 s)"),
    ],
)
async def test_tool_failures_become_failure_artefacts_and_the_instance_keeps_working(
    tmp_path: Path, redis_url: str, instance: str, bb: Blackboard, mode: str, reason_part: str
) -> None:
    engine = await start(tmp_path, redis_url, instance, config_text())
    try:
        bad_goal = await engine.forage(mode)
        failure = await wait_for_artefact(bb, lambda a: a.structural_type == StructuralType.FAILURE, 30)
        good_goal = await engine.forage("fine")
        done = await wait_for_artefact(bb, lambda a: a.structural_type == StructuralType.TERMINAL, 30)
        await wait_settled(bb)
    finally:
        await engine.close()
    assert failure.type == "ToolExecutionFailure" and failure.source_artefacts == [bad_goal.id]
    body = json.loads(failure.payload)
    assert reason_part in body["reason"] and body["error"] == body["reason"]
    if mode == "crash":
        assert body["exit_code"] == 3 and "about to fail" in body["stderr"]
    assert done.source_artefacts == [good_goal.id]
    bad_claim = await bb.get_claim(str(await bb.claim_id_for_artefact(bad_goal.id)))
    assert bad_claim.status == ClaimStatus.TERMINATED
    assert bad_claim.termination_reason == f"Agent 'Worker' failed: ToolExecutionFailure {failure.id}"


async def test_silent_agent_is_timed_out_while_other_claims_go_on(
    tmp_path: Path, redis_url: str, instance: str, bb: Blackboard
) -> None:
    silent = f"""  Silent:
    command: ["{PY}", "worker.py"]
    bidding_strategy: review
"""
    engine = await start(tmp_path, redis_url, instance, config_text(silent, bid_timeout="1s"), pups=["Worker"])
    try:
        goals = [await engine.forage("fine") for _ in range(3)]
        await wait_settled(bb, within=20)
    finally:
        await engine.close()
    arts = (await bb.list_artefacts()).artefacts
    terminals = [a for a in arts if a.structural_type == StructuralType.TERMINAL]
    assert sorted(t.source_artefacts[0] for t in terminals) == sorted(g.id for g in goals)
    for goal in goals:
        claim_id = str(await bb.claim_id_for_artefact(goal.id))
        claim = await bb.get_claim(claim_id)
        assert claim.status == ClaimStatus.COMPLETE
        assert claim.phase_state is not None and claim.phase_state.all_bids["Silent"] == "ignore"
        assert await bb.get_bids(claim_id) == {"Worker": "exclusive"}  # we never forge a bid
        assert await bb.redis.hget(bb.keys.claim(claim_id), "holt_note") == (
            "no bid from Silent within the bid timeout"
        )


async def test_tools_never_receive_the_redis_credentials(
    tmp_path: Path, redis_url: str, instance: str, bb: Blackboard, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HOLT_REDIS_URL", redis_url)  # as under the supervisor
    engine = await start(tmp_path, redis_url, instance, config_text())
    try:
        await engine.forage("env")
        done = await wait_for_artefact(bb, lambda a: a.structural_type == StructuralType.TERMINAL, 30)
    finally:
        await engine.close()
    assert done.payload == "clean"


CONTROLLED_WORKER = r'''
import json, os, sys, time
req = json.load(sys.stdin)
flag = os.path.join(os.environ["HOLT_WORKSPACE"], "release")
while not os.path.exists(flag):
    time.sleep(0.02)
print(json.dumps({"artefact_type": "Done", "artefact_payload": req["target_artefact"]["payload"],
                  "summary": "ok", "structural_type": "Terminal"}))
'''


async def test_controller_queues_grants_over_its_limit_and_drains_them(
    tmp_path: Path, redis_url: str, instance: str, bb: Blackboard
) -> None:
    text = f"""
version: "1.0"
agents:
  Pool:
    command: ["{PY}", "-c", "pass"]
    bidding_strategy: exclusive
    mode: controller
    worker:
      command: ["{PY}", "worker.py"]
      max_concurrent: 2
      workspace:
        mode: rw
"""
    ws = make_workspace(tmp_path, files={"holt.yml": text, "worker.py": CONTROLLED_WORKER})
    engine = Engine(redis_url, instance, ws, parse_config(text))
    await engine.start_orchestrator()
    await engine.start_pups()
    try:
        async with bb.subscribe(bb.keys.workflow_events) as sub:
            goals = [await engine.forage(f"job {n}") for n in range(5)]
            granted: list[str] = []
            async with asyncio.timeout(30):
                # Two grants go out at once; the other three wait in the persistent grant queue.
                while len(granted) < 2 or await bb.redis.zcard(bb.keys.grant_queue("Pool")) < 3:
                    msg = await sub.get_message(ignore_subscribe_messages=True, timeout=1.0)
                    if msg is not None:
                        event = json.loads(str(msg["data"]))
                        if event["event"] == "claim_granted":
                            granted.append(event["data"]["claim_id"])
            assert len(granted) == 2
            queued = await bb.redis.zrange(bb.keys.grant_queue("Pool"), 0, -1)
            assert len(queued) == 3 and not set(queued) & set(granted)
            for claim_id in queued:
                claim = await bb.get_claim(claim_id)
                assert claim.grant_queue is not None and claim.granted_exclusive_agent == ""
            (ws / "release").write_text("go")
            await wait_settled(bb, within=60)
    finally:
        await engine.close()
    done = [a for a in (await bb.list_artefacts()).artefacts if a.type == "Done"]
    assert sorted(a.payload for a in done) == sorted(g.payload for g in goals)
    assert await bb.redis.zcard(bb.keys.grant_queue("Pool")) == 0


async def test_safety_sweep_recovers_events_lost_by_pub_sub(
    tmp_path: Path, redis_url: str, instance: str, bb: Blackboard
) -> None:
    ws = make_workspace(tmp_path, files={"holt.yml": config_text(), "worker.py": WORKER})
    engine = Engine(redis_url, instance, ws, parse_config(config_text()))
    await engine.start_orchestrator()
    assert engine.orchestrator is not None
    await engine.start_pups()
    try:
        # A goal whose announcement never reached anyone (as on a dropped subscription): data only, no event.
        goal = Artefact(id=new_id(), logical_id=new_id(), version=1, structural_type=StructuralType.STANDARD,
                        type="GoalDefined", payload="fine", source_artefacts=[], produced_by_role="user",
                        created_at_ms=now_ms())
        await bb.redis.hset(bb.keys.artefact(goal.id), mapping=goal.to_hash())
        await bb.redis.zadd(bb.keys.artefact_index, {goal.id: goal.created_at_ms})
        assert await bb.claim_id_for_artefact(goal.id) is None
        await engine.orchestrator.sweep()
        done = await wait_for_artefact(bb, lambda a: a.structural_type == StructuralType.TERMINAL, 30)
    finally:
        await engine.close()
    assert done.source_artefacts == [goal.id]


async def test_a_lost_grant_notification_is_resent_by_the_sweep(
    tmp_path: Path, redis_url: str, instance: str, bb: Blackboard
) -> None:
    ws = make_workspace(tmp_path, files={"holt.yml": config_text(), "worker.py": WORKER})
    engine = Engine(redis_url, instance, ws, parse_config(config_text()))
    orchestrator = await engine.start_orchestrator()
    await engine.start_pups()
    pup = engine.pups["Worker"]
    deliver = pup._dispatch
    dropped: list[str] = []
    grants: list[GrantNotification] = []

    def deaf_to_the_first_grant(channel: str, data: str) -> None:
        if channel == bb.keys.agent_events("Worker"):
            grants.append(GrantNotification.model_validate_json(data))
            if not dropped:
                # As on a pup's reconnect: the grant notification is published while nobody listens.
                dropped.append(data)
                return
        deliver(channel, data)

    pup._dispatch = deaf_to_the_first_grant  # type: ignore[method-assign]
    orchestrator.stale_grant_s = 0.0
    try:
        goal = await engine.forage("fine")
        claim_id = None
        while claim_id is None or not dropped:
            await asyncio.sleep(0.05)
            claim_id = await bb.claim_id_for_artefact(goal.id)
        claim = await bb.get_claim(claim_id)
        assert claim.granted_exclusive_agent == "Worker" and claim.status == ClaimStatus.PENDING_EXCLUSIVE
        assert await bb.redis.exists(bb.keys.exec_lease(claim_id, "Worker")) == 0  # it never started
        await orchestrator.sweep()  # first sight of the waiting grant
        await orchestrator.sweep()  # still waiting, never started: re-sent
        done = await wait_for_artefact(bb, lambda a: a.structural_type == StructuralType.TERMINAL, 30)
    finally:
        await engine.close()
    assert done.source_artefacts == [goal.id]
    # The grant and its re-sent copy both name the target.
    assert len(grants) >= 2 and {(g.claim_id, g.artefact_id) for g in grants} == {(claim_id, goal.id)}


async def test_a_restarted_orchestrator_resends_grants_naming_their_targets(
    tmp_path: Path, redis_url: str, instance: str, bb: Blackboard
) -> None:
    ws = make_workspace(tmp_path, files={"holt.yml": config_text(), "worker.py": WORKER})
    first = Engine(redis_url, instance, ws, parse_config(config_text()))
    await first.start_orchestrator()  # no pup: the grant stays pending
    try:
        async with bb.subscribe(bb.keys.agent_events("Worker")) as sub:
            goal = await first.forage("fine")
            claim_id = None
            while claim_id is None:
                await asyncio.sleep(0.05)
                claim_id = await bb.claim_id_for_artefact(goal.id)
            await bb.set_bid(claim_id, "Worker", BidType.EXCLUSIVE)
            granted = await next_message(sub, wait_s=10)
    finally:
        await first.close()
    second = Engine(redis_url, instance, ws, parse_config(config_text()))
    try:
        async with bb.subscribe(bb.keys.agent_events("Worker")) as sub:
            await second.start_orchestrator()  # recovery re-sends the grant whose output never came
            resent = await next_message(sub, wait_s=10)
    finally:
        await second.close()
    for message in (granted, resent):
        assert message is not None
        grant = GrantNotification.model_validate_json(message[1])
        assert (grant.claim_id, grant.claim_type, grant.artefact_id) == (claim_id, "exclusive", goal.id)


async def test_subscribers_dropped_by_redis_come_back_and_nothing_is_lost(
    tmp_path: Path, redis_url: str, instance: str, bb: Blackboard, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="holt")
    ws = make_workspace(tmp_path, files={"holt.yml": config_text(), "worker.py": WORKER})
    engine = Engine(redis_url, instance, ws, parse_config(config_text()))
    await engine.start_orchestrator()
    await engine.start_pups()
    try:
        # Redis closes every subscriber, as it does to one that lags past client-output-buffer-limit (a burst
        # of huge artefacts) or on a restart; goals are written while the orchestrator and the pup are away.
        assert await bb.redis.client_kill_filter(_type="pubsub") >= 2
        goals = [await engine.forage(f"goal {n}") for n in range(3)]

        async def terminals() -> list[Artefact]:
            return [a for a in (await bb.list_artefacts()).artefacts if a.structural_type == StructuralType.TERMINAL]

        async def all_done() -> bool:
            return len(await terminals()) == len(goals)

        await poll(all_done, what="every goal's Terminal artefact")
        done = await terminals()
    finally:
        await engine.close()
    assert sorted(a.payload for a in done) == sorted(g.payload for g in goals)
    lost = {(r.name, r.getMessage()) for r in caplog.records if r.getMessage() == "subscription_lost"}
    assert lost == {("holt.orchestrator", "subscription_lost"), ("holt.pup", "subscription_lost")}
