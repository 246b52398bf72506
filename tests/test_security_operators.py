"""Operators and Redis ACL users against the real redis-server (holt_core/acl.py, holt_core/operators.py)."""

from __future__ import annotations

import pytest
from redis.exceptions import AuthenticationError, NoPermissionError, ResponseError

from holt_core.acl import role_url
from holt_core.blackboard import Blackboard, connect_redis
from holt_core.keys import OPERATORS, Keys
from holt_core.operators import add_operator, operator_url, revoke_operator, verify_token


async def test_viewer_user_write_is_refused_by_redis(redis_url: str, instance: str) -> None:
    viewer = connect_redis(role_url(redis_url, "viewer"))
    try:
        assert await viewer.get(Keys(instance).hitl_policy) is None  # reading works
        with pytest.raises(NoPermissionError):
            await viewer.set(Keys(instance).hitl_policy, "{}")
        with pytest.raises(NoPermissionError):
            await viewer.publish(Keys(instance).hitl_events, "x")
    finally:
        await viewer.aclose()


async def test_agent_user_cannot_write_proofs_or_the_registry(bb: Blackboard, redis_url: str, instance: str) -> None:
    agent = connect_redis(role_url(redis_url, "agent"))
    proof = Keys(instance).proof("bob", "req1", "n1")
    try:
        await agent.set(Keys(instance).hitl_policy, "{}")  # instance keys: allowed
        with pytest.raises(NoPermissionError):
            await agent.set(proof, "{}")
        with pytest.raises(NoPermissionError):
            await agent.hset(OPERATORS, "eve", "{}")
        # Inside a Lua script too: Redis checks every command a script runs against the caller's ACL.
        with pytest.raises(ResponseError, match="(?i)permission"):
            await agent.eval("return redis.call('SET', KEYS[1], '1')", 1, proof)
        with pytest.raises(ResponseError, match="(?i)permission"):
            await agent.eval("redis.call('SET', KEYS[1], '1'); return redis.call('SET', ARGV[1], '1')", 1,
                             Keys(instance).hitl_open, proof)
        assert await bb.redis.exists(proof) == 0
    finally:
        await agent.aclose()


async def test_operator_add_verify_revoke(bb: Blackboard, redis_url: str, instance: str) -> None:
    name = f"op-{instance}"
    record, token = await add_operator(bb.redis, name, ["approver"])
    assert record.token_sha256 != token and token not in str(await bb.redis.hget(OPERATORS, name))
    found = await verify_token(bb.redis, token)
    assert found is not None and found.name == name and found.roles == ["approver"]
    assert await verify_token(bb.redis, token + "x") is None

    me = connect_redis(operator_url(redis_url, name, token))
    other = Keys(instance).proof("dave", "req1", "n1")
    try:
        await me.set(Keys(instance).proof(name, "req1", "n1"), "{}")  # its own proofs
        with pytest.raises(NoPermissionError):
            await me.set(other, "{}")  # nobody else's
        await revoke_operator(bb.redis, name)
        assert await verify_token(bb.redis, token) is None
        with pytest.raises((AuthenticationError, ResponseError, ConnectionError)):
            await me.set(Keys(instance).proof(name, "req2", "n2"), "{}")
    finally:
        await me.aclose()
    again = connect_redis(operator_url(redis_url, name, token))
    try:
        with pytest.raises((AuthenticationError, ResponseError)):
            await again.ping()
    finally:
        await again.aclose()
