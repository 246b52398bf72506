"""The lean Redis wire (commands and subscriptions) against a real redis-server."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from redis.asyncio import Redis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import NoScriptError, ResponseError

from holt_core import redis_wire
from holt_core.blackboard import Blackboard, connect_redis, resubscribe
from holt_core.embedded_redis import EmbeddedRedis
from holt_core.redis_wire import CommandWire, Subscription, encode_command
from holt_core.transaction import Tx
from tests.engine import poll


@pytest.fixture
async def wire(redis_url: str) -> AsyncIterator[CommandWire]:
    redis = connect_redis(redis_url)
    lane = CommandWire(redis)
    try:
        yield lane
    finally:
        lane.close()
        await redis.aclose()


def _key() -> str:
    return f"wire-test:{uuid.uuid4().hex}"


async def _blocked(redis: Redis, client_id: int) -> None:
    """Until Redis shows the client blocked in BLPOP (Redis's own view; there is no event for it)."""
    async def blocked() -> bool:
        return any(c["id"] == str(client_id) and c["cmd"] == "blpop" for c in await redis.client_list())

    await poll(blocked, within=5, what="the client blocked in BLPOP")


def test_commands_are_encoded_as_resp2_arrays_of_bulk_strings() -> None:
    assert encode_command(["SET", "k", "hé", 7, b"\x00"]) == (
        b"*5\r\n$3\r\nSET\r\n$1\r\nk\r\n$3\r\nh\xc3\xa9\r\n$1\r\n7\r\n$1\r\n\x00\r\n"
    )


async def test_concurrent_callers_each_get_their_own_reply(wire: CommandWire) -> None:
    keys = [_key() for _ in range(200)]
    await asyncio.gather(*(wire.call("SET", k, f"value {n}") for n, k in enumerate(keys)))
    got = await asyncio.gather(*(wire.call("GET", k) for k in keys))
    assert got == [f"value {n}" for n in range(200)]
    await wire.call("DEL", *keys)


async def test_an_error_reply_raises_and_leaves_the_next_replies_in_line(wire: CommandWire) -> None:
    key = _key()
    await wire.call("SET", key, "text")
    with pytest.raises(ResponseError, match="not an integer"):
        await wire.call("INCR", key)
    replies = await wire.call_many([["INCR", key], ["GET", key], ["EVALSHA", "0" * 40, 0]])
    assert isinstance(replies[0], ResponseError) and replies[1] == "text"
    assert isinstance(replies[2], NoScriptError)
    await wire.call("DEL", key)


async def test_a_cancelled_caller_does_not_shift_the_replies_of_later_ones(wire: CommandWire) -> None:
    key = _key()
    await wire.call("SET", key, "mine")
    blocked = asyncio.ensure_future(wire.call("BLPOP", _key(), "0.3"))
    await asyncio.sleep(0)  # let it write its command
    blocked.cancel()
    assert await wire.call("GET", key) == "mine"  # the BLPOP's nil reply went to nobody
    await wire.call("DEL", key)


async def test_payloads_other_clients_wrote_decode_with_replacement_and_big_ones_arrive_whole(redis_url: str) -> None:
    redis = connect_redis(redis_url)
    raw = connect_redis(redis_url, decode=False)
    wire = CommandWire(redis)
    key, big = _key(), _key()
    try:
        await raw.set(key, b"ok \xff\xfe end")
        assert await wire.call("GET", key) == "ok \ufffd\ufffd end"
        payload = "x" * (12 * 1024 * 1024) + "é"
        await wire.call("SET", big, payload)
        assert await wire.call("GET", big) == payload
        await redis.delete(key, big)
    finally:
        wire.close()
        await raw.aclose()
        await redis.aclose()


@pytest.mark.parametrize("retries", [0, 2])
async def test_a_command_in_flight_when_its_connection_drops(redis_url: str, retries: int) -> None:
    # No retries is the CLI's client: the command fails, and the next one reconnects. With a retry policy
    # the command is sent again on a new connection.
    redis = connect_redis(redis_url, retry=Retry(NoBackoff(), retries))
    wire = CommandWire(redis)
    try:
        own_id = await wire.call("CLIENT", "ID")
        in_flight = asyncio.ensure_future(wire.call("BLPOP", _key(), "0.5"))
        await _blocked(redis, own_id)
        assert await redis.client_kill_filter(_id=own_id) == 1
        if retries:
            assert await in_flight is None  # on the new connection it timed out as asked
        else:
            with pytest.raises(RedisConnectionError):
                await in_flight
        assert await wire.call("PING") == "PONG"
        assert await wire.call("CLIENT", "ID") != own_id
    finally:
        wire.close()
        await redis.aclose()


async def test_transactions_survive_an_emptied_script_cache(bb: Blackboard) -> None:
    key = bb.keys.artefact("wire-" + uuid.uuid4().hex)
    assert (await bb.run(Tx().hset(key, {"a": "1"}))).ok
    await bb.redis.script_flush()
    assert (await bb.run(Tx().require_absent(key).hset(key, {"a": "2"}))).ok is False
    assert await bb.redis.hget(key, "a") == "1"


async def test_subscription_delivers_messages_as_redis_py_shapes_them(bb: Blackboard) -> None:
    channel = bb.keys.workflow_events
    async with bb.subscribe(channel) as sub:
        await bb.redis.publish(channel, "first")
        await bb.redis.publish(channel, "second \xe9")
        one = await sub.get_message(ignore_subscribe_messages=True, timeout=5)
        two = await sub.get_message(ignore_subscribe_messages=True, timeout=5)
        assert one == {"type": "message", "pattern": None, "channel": channel, "data": "first"}
        assert two is not None and two["data"] == "second \xe9"
        assert await sub.get_message(ignore_subscribe_messages=True, timeout=0.05) is None


async def test_an_idle_subscriber_pings_so_a_dead_connection_is_noticed(
    bb: Blackboard, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(redis_wire, "HEALTH_CHECK_S", 0.05)
    async with bb.subscribe(bb.keys.workflow_events) as sub:
        message = await sub.get_message(timeout=5)
        assert message is not None and message["type"] == "pong"


async def test_a_dropped_subscription_raises_and_resubscribe_brings_it_back(bb: Blackboard) -> None:
    channels = [bb.keys.claim_events, bb.keys.workflow_events]
    async with bb.subscribe(*channels) as sub:
        assert await bb.redis.client_kill_filter(_type="pubsub") >= 1
        with pytest.raises(RedisConnectionError):
            while True:  # whatever was already buffered comes first
                await sub.get_message(ignore_subscribe_messages=True, timeout=5)
        heard: list[tuple[str, str]] = []
        await resubscribe(sub, channels, lambda c, d: heard.append((c, d)))
        await bb.redis.publish(bb.keys.claim_events, "after")
        message = await sub.get_message(ignore_subscribe_messages=True, timeout=5)
        assert message is not None and message["data"] == "after"


async def test_a_closed_subscription_says_so(redis_url: str) -> None:
    redis = connect_redis(redis_url)
    sub = Subscription(redis)
    try:
        await sub.subscribe("wire-test")
        await sub.aclose()
        with pytest.raises(RedisConnectionError, match="closed"):
            await sub.get_message(timeout=0.1)
    finally:
        await redis.aclose()


async def test_delivery_to_a_callback_keeps_order_and_hands_over_what_was_queued_first(bb: Blackboard) -> None:
    channel = bb.keys.workflow_events
    heard: list[str] = []
    async with bb.subscribe(channel) as sub:
        await bb.redis.publish(channel, "queued before")
        await poll(lambda: len(sub._queue) == 1, within=5, what="the message received and queued")
        sub.deliver_to(lambda _channel, data: heard.append(data))
        assert heard == ["queued before"]
        for n in range(50):
            await bb.redis.publish(channel, f"m{n}")
        await poll(lambda: len(heard) == 51, within=5, what="every message delivered")
        assert heard == ["queued before", *(f"m{n}" for n in range(50))]
        assert await sub.get_message(ignore_subscribe_messages=True, timeout=0.05) is None


async def test_what_the_callback_raises_reaches_the_loop_and_stops_delivery(bb: Blackboard) -> None:
    channel = bb.keys.workflow_events
    heard: list[str] = []

    def handle(_channel: str, data: str) -> None:
        heard.append(data)
        if data == "bad":
            raise ValueError("handler failed")

    async with bb.subscribe(channel) as sub:
        sub.deliver_to(handle)
        await bb.redis.publish(channel, "bad")
        with pytest.raises(ValueError, match="handler failed"):
            await sub.get_message(ignore_subscribe_messages=True, timeout=5)
        await bb.redis.publish(channel, "later")
        message = await sub.get_message(ignore_subscribe_messages=True, timeout=5)
        assert message is not None and message["data"] == "later"  # back to the caller, not the callback
        assert heard == ["bad"]


async def test_a_subscription_waits_out_a_redis_restart_and_a_stop_cancels_the_wait(tmp_path: Path) -> None:
    """Longer than any fixed deadline would allow: ``reconnect`` waits for as long as Redis is away (here
    until the test starts it again), and ``or_stop`` ends such a wait at once."""
    server = EmbeddedRedis(tmp_path / "redis")
    url = server.start().url
    assert url is not None
    redis = connect_redis(url)
    sub = Subscription(redis)
    try:
        await sub.subscribe("ch")
        await sub.confirmed(["ch"])
        server.stop()
        with pytest.raises(RedisConnectionError):
            await sub.get_message(timeout=5)
        retries: list[int] = []
        back = asyncio.ensure_future(sub.reconnect(on_retry=lambda attempt, _exc: retries.append(attempt)))
        await poll(lambda: len(retries) >= 5, what="a few failed attempts")  # the backoff is under way
        assert not back.done()
        assert server.start().url == url
        await asyncio.wait_for(back, 15)
        await redis.publish("ch", "after the restart")
        message = await sub.get_message(ignore_subscribe_messages=True, timeout=5)
        assert message is not None and message["data"] == "after the restart"

        server.stop()
        with pytest.raises(RedisConnectionError):
            await sub.get_message(timeout=5)
        stop = asyncio.Event()
        retries.clear()
        waiting = asyncio.ensure_future(redis_wire.or_stop(
            sub.reconnect(on_retry=lambda attempt, _exc: retries.append(attempt)), stop))
        await poll(lambda: len(retries) >= 3, what="the second wait to be under way")
        assert not waiting.done()
        stop.set()
        await asyncio.wait_for(waiting, 2)  # returns without Redis
    finally:
        await sub.aclose()
        await redis.aclose()
        server.stop()


async def test_survive_disconnects_runs_the_loop_again_and_passes_other_errors() -> None:
    runs: list[int] = []
    lost: list[BaseException] = []

    async def flaky() -> None:
        runs.append(1)
        if len(runs) < 3:
            raise RedisConnectionError("gone")

    await asyncio.wait_for(redis_wire.survive_disconnects(flaky, on_lost=lost.append), 5)
    assert len(runs) == 3 and len(lost) == 2

    async def broken() -> None:
        raise ValueError("a bug, not Redis")

    with pytest.raises(ValueError):
        await redis_wire.survive_disconnects(broken)


def test_backoff_doubles_up_to_its_cap_with_jitter() -> None:
    backoff = redis_wire.Backoff(first=0.1, cap=0.5)
    delays = [backoff.next() for _ in range(6)]
    assert 0.08 <= delays[0] <= 0.1 and 0.16 <= delays[1] <= 0.2
    assert all(0.4 <= d <= 0.5 for d in delays[3:])
    backoff.reset()
    assert backoff.next() <= 0.1
