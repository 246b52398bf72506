"""A record in a person's name is that person's: an agent's Redis user may append to the audit trail, but a record
naming ``human:<operator>`` it appends is refused (with the trail's own code) or, appended by hand, makes
``holt audit verify`` fail at that record."""

from __future__ import annotations

from pathlib import Path

import pytest
from redis.asyncio import Redis
from redis.exceptions import NoPermissionError, ResponseError

from holt_core.acl import role_url
from holt_core.audit import AuditRecord, AuditTrail
from holt_core.audit_witness import PersonRecord, judge, parse_witnessed_from
from holt_core.blackboard import Blackboard, connect_redis
from tests.clirun import holt
from tests.debughelp import recipe_engine

# --- the rule, without Redis ---

_A = PersonRecord(2, "1-2", "alice", "h2")
_B = PersonRecord(5, "1-5", "bob", "h5")
_C = PersonRecord(9, "1-9", "a:b", "h9")


def test_witnessed_records_pass_and_unwitnessed_ones_after_the_marker_are_forged() -> None:
    assert judge([_A, _B], {2: "h2", 5: "h5"}, 0).forged is None
    verdict = judge([_A, _B], {2: "h2", 5: None}, 0)
    assert verdict.forged == _B and "human:bob" in verdict.reason and "someone else" in verdict.reason


def test_a_witness_holding_another_hash_is_a_replaced_record() -> None:
    verdict = judge([_A], {2: "other"}, 1)
    assert verdict.forged == _A and "replaced" in verdict.reason


def test_records_up_to_the_marker_or_without_one_are_counted_not_failed() -> None:
    assert judge([_A, _B], {2: None, 5: "h5"}, 2) == judge([_A], {}, None)
    assert judge([_A, _B], {}, None).unchecked == 2
    assert judge([_A, _B], {2: None, 5: None}, 3).forged == _B  # 5 is after the marker


def test_a_name_no_operator_can_have_is_never_witnessed() -> None:
    assert not _C.nameable
    assert judge([_C], {9: "h9"}, 0).forged == _C


@pytest.mark.parametrize("raw, expected", [(None, None), ("0", 0), ("17", 17), ("-1", None), ("x", None), ("", None)])
def test_marker_parsing(raw: str | None, expected: int | None) -> None:
    assert parse_witnessed_from(raw) == expected


# --- against Redis, with the agent's own credentials ---

def _agent(redis_url: str, bb: Blackboard) -> Blackboard:
    return Blackboard(connect_redis(role_url(redis_url, "agent")), bb.instance)


async def _forge(agent: Blackboard, operator: str, action: str) -> AuditRecord:
    """What a client holding the agent's credentials can do by hand: a well-chained record, head moved on."""
    trail = AuditTrail(agent.redis, agent.keys)
    record = trail.seal(await trail.head(), operator=operator, action=action, subject="req-1")
    redis: Redis = agent.redis
    await redis.xadd(agent.keys.audit, record.to_fields())  # type: ignore[arg-type]
    await redis.set(agent.keys.audit_head, f"{record.seq}:{record.hash}")
    return record


async def test_a_persons_record_carries_its_witness_and_verifies(bb: Blackboard) -> None:
    await bb.audit.start_witnessing()
    record = await bb.audit.append(operator="human:alice", action="approved", subject="req-1")
    assert await bb.redis.get(bb.keys.audit_witness("alice", record.seq)) == record.hash
    await bb.audit.append(operator="Coder", action="bid")  # an agent's and the system's records need none
    await bb.audit.append(operator="system:orchestrator", action="granted")
    result = await bb.audit.verify()
    assert result.ok and result.unwitnessed == 0, result


async def test_the_agent_user_cannot_append_in_a_persons_name(bb: Blackboard, redis_url: str) -> None:
    agent = _agent(redis_url, bb)
    try:
        await agent.audit.append(operator="Coder", action="bid")  # its own records still go in
        with pytest.raises(ResponseError, match="NOPERM"):
            await agent.audit.append(operator="human:alice", action="approved", subject="req-1")
        assert [r.operator for r in await bb.audit.records()] == ["Coder"]
        with pytest.raises(NoPermissionError):  # nor move the marker past its forgeries
            await agent.redis.set(bb.keys.audit_witnessed_from, "1000")
    finally:
        await agent.close()


async def test_a_record_appended_by_hand_in_a_persons_name_fails_verify(
        bb: Blackboard, redis_url: str, cli_env: dict[str, str]) -> None:
    await bb.audit.start_witnessing()
    await bb.audit.append(operator="human:alice", action="answered", subject="req-0")
    agent = _agent(redis_url, bb)
    try:
        forged = await _forge(agent, "human:alice", "approved")
    finally:
        await agent.close()
    result = await bb.audit.verify()
    assert not result.ok and result.broken_seq == forged.seq == 2
    assert "human:alice" in result.reason
    rc, _, err = await holt(cli_env, "audit", "verify", "--name", bb.instance)
    assert rc == 1
    assert "broken at record 2" in err and "appended in that person's name" in err


async def test_records_from_before_witnessing_are_reported_not_failed(
        bb: Blackboard, redis_url: str, cli_env: dict[str, str]) -> None:
    agent = _agent(redis_url, bb)
    try:
        await _forge(agent, "human:alice", "approved")  # as an instance written before witnesses would hold
        await bb.audit.start_witnessing()  # an upgraded orchestrator starts
        await bb.audit.start_witnessing()  # and restarts: the marker stays where it was
        await bb.audit.append(operator="human:bob", action="answered")
        result = await bb.audit.verify()
        assert result.ok and result.unwitnessed == 1
        rc, out, err = await holt(cli_env, "audit", "verify", "--name", bb.instance)
        assert rc == 0 and "2 records" in out.decode()
        assert "1 record(s) naming a person have no witness" in err
        await _forge(agent, "human:bob", "approved")  # after the marker: caught
    finally:
        await agent.close()
    result = await bb.audit.verify()
    assert not result.ok and result.broken_seq == 3 and result.unwitnessed == 1


async def test_the_orchestrator_starts_witnessing(tmp_path: Path, redis_url: str, instance: str,
                                                  bb: Blackboard) -> None:
    await bb.audit.append(operator="system:test", action="before")
    engine = recipe_engine(tmp_path, redis_url, instance)
    engine.role_users = True  # as under the supervisor: the orchestrator's own Redis user sets it
    try:
        await engine.start_orchestrator()  # returns once it is ready
        assert await bb.redis.get(bb.keys.audit_witnessed_from) == "1"
    finally:
        await engine.close()
