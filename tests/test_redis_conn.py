"""The light client answers the CLI's reads as redis-py does, and fails as redis-py does."""

from __future__ import annotations

import uuid
from urllib.parse import urlsplit

import pytest
from redis.exceptions import AuthenticationError, ConnectionError, ResponseError

from holt_core.acl import url_password, with_user
from holt_core.redis_conn import LightRedis, Target, connect_redis, open_client, probe_info


def test_urls_are_read_as_redis_py_reads_them() -> None:
    assert Target.from_url("redis://holt-admin:p%40ss@10.0.0.1:6380/3") == Target(
        host="10.0.0.1", port=6380, username="holt-admin", password="p@ss", db=3)
    assert Target.from_url("redis://:secret@localhost") == Target(password="secret")
    assert Target.from_url("rediss://u:p@example.com:6390/0?db=2") == Target(
        host="example.com", port=6390, tls=True, username="u", password="p", db=2)
    assert Target.from_url("unix:///run/redis.sock?db=1") == Target(path="/run/redis.sock", db=1)
    # Options only redis-py knows are left to it.
    assert Target.from_url("rediss://h:6379/0?ssl_cert_reqs=none") is None
    assert Target.from_url("http://h:6379") is None
    assert not isinstance(open_client("redis://h:6379/0?socket_timeout=3"), LightRedis)


async def test_the_reads_answer_as_redis_py_does(redis_url: str) -> None:
    heavy = connect_redis(redis_url)
    light = open_client(redis_url, client_name="holt-test")
    assert isinstance(light, LightRedis)
    base = f"t-conn-{uuid.uuid4().hex[:8]}"
    try:
        await heavy.hset(f"{base}:h", mapping={"a": "1", "b": "\u00e9"})
        await heavy.set(f"{base}:s", b"\xff bytes")  # not UTF-8: replaced, never a crash
        await heavy.zadd(f"{base}:z", {"x": 2, "y": 1})
        for n in range(30):
            await heavy.set(f"{base}:many:{n}", n)
        assert await light.hgetall(f"{base}:h") == await heavy.hgetall(f"{base}:h")
        assert await light.hget(f"{base}:h", "b") == await heavy.hget(f"{base}:h", "b")
        assert await light.get(f"{base}:s") == await heavy.get(f"{base}:s")
        assert await light.get(f"{base}:none") is None
        keys = [f"{base}:s", f"{base}:none"]
        assert await light.mget(keys) == await heavy.mget(keys)
        assert await light.exists(f"{base}:h", f"{base}:none") == 1
        assert await light.zrange(f"{base}:z", 0, -1) == await heavy.zrange(f"{base}:z", 0, -1)
        pattern = f"{base}:many:*"
        assert sorted([k async for k in light.scan_iter(match=pattern, count=7)]) == \
            sorted([k async for k in heavy.scan_iter(match=pattern, count=7)])
        assert await light.ping() is True
        with pytest.raises(ResponseError, match="WRONGTYPE"):
            await light.hgetall(f"{base}:s")
        names = await heavy.client_list()
        assert "holt-test" in {c["name"] for c in names}
    finally:
        await heavy.delete(*[k async for k in heavy.scan_iter(match=f"{base}*")])
        await light.aclose()
        await heavy.aclose()


async def test_a_wrong_password_and_a_closed_port_fail_as_with_redis_py(redis_url: str) -> None:
    wrong = with_user(redis_url, "holt-admin", "not-the-password")
    failures = []
    for client in (connect_redis(wrong, retry=None), open_client(wrong)):
        with pytest.raises(AuthenticationError) as caught:
            await client.get("x")
        failures.append(str(caught.value))
        await client.aclose()
    assert failures[0] == failures[1]
    closed = "redis://127.0.0.1:1/0"
    failures = []
    for client in (connect_redis(closed, retry=None), open_client(closed)):
        with pytest.raises(ConnectionError) as refused:
            await client.get("x")
        failures.append(str(refused.value))
        await client.aclose()
    assert failures[0] == failures[1]


def test_probe_reads_the_server_info(redis_url: str) -> None:
    parts = urlsplit(redis_url)
    password = url_password(redis_url)
    assert parts.hostname is not None and parts.port is not None and password is not None
    info = probe_info(Target(host=parts.hostname, port=parts.port, username="holt-admin", password=password), 2.0)
    assert info["process_id"].isdigit()
    assert info["redis_version"]
    with pytest.raises(AuthenticationError):
        probe_info(Target(host=parts.hostname, port=parts.port, username="holt-admin", password="wrong"), 2.0)
