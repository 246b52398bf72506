"""holt-tui acts as a proven person (issue 12): the operator whose token it holds, connected as that operator's Redis
user; ``--as`` (or no token) with admin credentials is recorded impersonation; no identity at all attaches
read-only; the reader stays on the viewer user also after a lost connection. Real Redis."""

from __future__ import annotations

import uuid

import pytest
from redis.exceptions import NoPermissionError

from holt_core.acl import ADMIN_USER, VIEWER_USER, role_url
from holt_core.blackboard import Blackboard, connect_redis
from holt_core.identity import whoami
from holt_core.operators import add_operator
from holt_tui.core_sources import CoreDebugSource
from holt_tui.main import attach_actor, attach_sources_for, known_viewer_url


def _name(prefix: str) -> str:
    return f"{prefix}{uuid.uuid4().hex[:6]}"


async def _act(url: str, instance: str, operator: str, impersonated_by: str = "") -> tuple[str, str]:
    """Pause through the TUI's debugger source; the Redis user it acted as and the audit record's impersonator."""
    sources = attach_sources_for(url, instance, operator, impersonated_by=impersonated_by)
    source = sources.debug
    assert isinstance(source, CoreDebugSource)
    bb = source.bb
    try:
        assert (await source.acquire_lease()).held
        result = await source.pause()
        assert result.ok, result.message
        user = await whoami(bb.redis)
        record = next(r for r in await bb.audit.records() if r.action == "debug_pause")
        assert record.operator == f"human:{operator}"
        await source.release_lease()
        return user, str(record.details.get("impersonated_by", ""))
    finally:
        await bb.redis.aclose()


async def test_attach_acts_as_the_token_operator_own_redis_user(
        monkeypatch: pytest.MonkeyPatch, bb: Blackboard, redis_url: str, instance: str) -> None:
    name = _name("bob")
    _, token = await add_operator(bb.redis, name, ["operator"])
    monkeypatch.setenv("HOLT_OPERATOR_TOKEN", token)
    actor, why = await attach_actor(redis_url, None)  # the admin URL, as in local mode
    assert actor is not None, why
    assert (actor.operator, actor.impersonated_by) == (name, "")
    assert await _act(actor.url, instance, actor.operator) == (f"holt-op-{name}", "")


async def test_admin_as_and_admin_without_token_are_recorded_impersonation(
        monkeypatch: pytest.MonkeyPatch, redis_url: str, instance: str) -> None:
    monkeypatch.delenv("HOLT_OPERATOR_TOKEN", raising=False)
    carol = _name("carol")
    actor, why = await attach_actor(redis_url, carol)
    assert actor is not None, why
    assert (actor.operator, actor.impersonated_by) == (carol, ADMIN_USER)
    assert await _act(actor.url, instance, carol, actor.impersonated_by) == (ADMIN_USER, ADMIN_USER)
    # No token of $HOLT_OPERATOR's: the admin acts as that name, recorded the same way.
    dave = _name("dave")
    monkeypatch.setenv("HOLT_OPERATOR", dave)
    actor, why = await attach_actor(redis_url, None)
    assert actor is not None and (actor.operator, actor.impersonated_by) == (dave, ADMIN_USER), why


async def test_no_token_and_no_admin_attaches_read_only_with_the_reason(
        monkeypatch: pytest.MonkeyPatch, redis_url: str) -> None:
    monkeypatch.delenv("HOLT_OPERATOR_TOKEN", raising=False)
    monkeypatch.setenv("HOLT_OPERATOR", _name("erin"))
    agent_url = role_url(redis_url, "agent")  # credentials that are nobody's: an agent's
    actor, why = await attach_actor(agent_url, None)
    assert actor is None and "no operator token" in why and "\n" not in why
    actor, why = await attach_actor(agent_url, "frank")
    assert actor is None and "--as frank needs the admin identity" in why


async def test_read_only_reader_stays_on_the_viewer_user_after_a_lost_connection(
        monkeypatch: pytest.MonkeyPatch, redis_url: str, instance: str) -> None:
    monkeypatch.setenv("HOLT_REDIS_URL", redis_url)  # the admin URL: what known_redis_url finds in local mode
    url = known_viewer_url()
    assert url is not None
    assert f"//{VIEWER_USER}:" in url
    redis = connect_redis(url)
    try:
        assert await redis.exists(f"holt:{instance}:x") == 0  # it reads
        with pytest.raises(NoPermissionError):
            await redis.set(f"holt:{instance}:x", "1")
    finally:
        await redis.aclose()
