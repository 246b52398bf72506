"""Operators and Redis ACL users against the real redis-server (holt_core/acl.py, holt_core/operators.py)."""

from __future__ import annotations

import asyncio
import uuid
from pathlib import Path

import pytest
import redis
from redis.exceptions import AuthenticationError, NoPermissionError, ResponseError

from holt_core.acl import role_url
from holt_core.blackboard import Blackboard, connect_redis
from holt_core.keys import OPERATORS, Keys
from holt_core.operators import (
    add_operator,
    authenticate,
    ensure_local_operator,
    load_token,
    operator_url,
    revoke_operator,
    verify_token,
)
from tests.clirun import HOLT, holt
from tests.engine import make_workspace, poll


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
        await agent.set(Keys(instance).hitl_dedupe("probe"), "{}")  # keys an agent writes: allowed
        with pytest.raises(NoPermissionError):
            await agent.set(proof, "{}")
        with pytest.raises(NoPermissionError):
            await agent.hset(OPERATORS, "eve", "{}")
        # Inside a Lua script too: Redis checks every command a script runs against the caller's ACL.
        with pytest.raises(ResponseError, match=r"(?i)permission"):
            await agent.eval("return redis.call('SET', KEYS[1], '1')", 1, proof)
        # As holt's Tx declares every key it writes, Redis refuses the whole script before it runs: nothing is
        # written, not even the keys the agent may write.
        allowed = Keys(instance).hitl_dedupe("probe")
        with pytest.raises(ResponseError, match=r"(?i)permission"):
            await agent.eval("redis.call('SET', KEYS[1], 'x'); return redis.call('SET', KEYS[2], '1')", 2,
                             allowed, proof)
        assert await bb.redis.exists(proof) == 0 and await bb.redis.get(allowed) == "{}"
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


async def test_local_operator_is_registered_once_with_a_saved_token(
        bb: Blackboard, redis_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    monkeypatch.setenv("HOLT_OPERATOR", "local-dev")
    made = await ensure_local_operator(redis_url, {"local-dev": ["lead"]})
    assert made is not None and made[0] == "local-dev" and (made[1].stat().st_mode & 0o777) == 0o600
    record = await verify_token(bb.redis, load_token("local-dev") or "")
    assert record is not None and record.roles == ["lead"]
    assert await ensure_local_operator(redis_url, {}) is None  # its token works: nothing to do
    actor = await authenticate(redis_url)  # the CLI now acts as local-dev, connected as its own user
    assert actor.operator == "local-dev" and not actor.impersonated_by and "holt-op-local-dev" in actor.url


def _users(redis_url: str) -> set[tuple[str, str]]:
    client = redis.Redis.from_url(redis_url, decode_responses=True)
    try:
        return {(c.get("user", ""), c.get("name", "")) for c in client.client_list()}
    finally:
        client.close()


async def test_components_and_watchers_connect_as_their_own_users(
        tmp_path: Path, cli_env: dict[str, str], redis_url: str) -> None:
    """holt up: the orchestrator and the pups never get the admin's credentials; holt watch is a viewer."""
    from tests.test_cli_lifecycle import ONE_AGENT, Instance, drop_keys, holt, take_down

    inst = Instance(f"t-{uuid.uuid4().hex[:10]}", make_workspace(tmp_path, files={"holt.yml": ONE_AGENT}), cli_env)
    watch = None
    try:
        up = holt(inst.env, inst.ws, "up", "--name", inst.name)
        assert up.returncode == 0, up.stdout + up.stderr
        await poll(lambda: {"holt-orchestrator", "holt-agent"} <= {u for u, _ in _users(redis_url)},
                   what="the orchestrator and the pup connected as their users")
        watch = await asyncio.create_subprocess_exec(HOLT, "watch", "--name", inst.name, env=cli_env,
                                                     stdout=asyncio.subprocess.DEVNULL,
                                                     stderr=asyncio.subprocess.DEVNULL)
        await poll(lambda: ("holt-viewer", "holt-watch") in _users(redis_url), what="holt watch as holt-viewer")
    finally:
        if watch is not None:
            watch.kill()
            await watch.wait()
        take_down(inst)
        drop_keys(redis_url, inst.name)


async def test_holt_acl_prints_the_users_without_a_password(cli_env: dict[str, str], redis_url: str) -> None:
    code, out, err = await holt(cli_env, "acl")
    assert code == 0, err
    text = out.decode()
    password = redis_url.split(":")[2].split("@")[0]
    assert password not in text and "ACL SETUSER holt-viewer reset on #" in text and "-@all +@read" in text
    assert "ACL SETUSER default reset off" in text
    code, out, err = await holt(cli_env, "acl", "--apply")  # idempotent on a server that has them
    assert code == 0, err
    viewer = connect_redis(role_url(redis_url, "viewer"))
    try:
        with pytest.raises(NoPermissionError):
            await viewer.set("holt:x", "1")
    finally:
        await viewer.aclose()
