"""Redis on a lean wire: the per-hop commands and every subscription, without redis-py's per-call layers.

redis-py sets up each connection (address, TLS, AUTH, database, RESP2): its configuration is the only one
(the CLI's light client, holt_core/redis_conn.py, hands over connections it set up the same way). After that
handshake the socket is taken over by a small asyncio protocol that writes RESP2 commands and
parses replies with hiredis as bytes arrive. Measured on this project's machine, a redis-py 8 command costs
about 45 us of CPU beyond the socket work (connection pool, retry wrapper, observability hooks, per-command
argument checks) and a buffered pub/sub message 16 us against 1 us here; an orchestration hop makes about a
dozen of each across its processes (docs/performance.md).

Replies come back in the order commands were written, so commands from many tasks share one connection
and are pipelined for free. A lost connection fails what is in flight with redis-py's ConnectionError; a
command is then retried only if the client was given a redis-py retry policy (Holt's are not). A
subscription is never re-established behind the caller's back: it raises, and the caller re-subscribes
and reads back the gap.

Surviving a Redis restart is built from the pieces at the end, shared by every long-running process:
``Backoff`` (the pause between attempts), ``Subscription.reconnect`` (back on every channel, waiting as long
as it takes) and ``survive_disconnects`` (a background loop that starts again after Redis went away). The
next command simply connects again.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import hashlib
import random
import sys
from collections.abc import Awaitable, Callable, Iterable, Sequence
from types import ModuleType
from typing import TYPE_CHECKING, Any

import hiredis

if TYPE_CHECKING:
    from redis.asyncio import Redis
    from redis.asyncio.connection import AbstractConnection
    from redis.asyncio.retry import Retry

# A subscriber that heard nothing for this long pings, so a dead connection is noticed (as redis-py does).
HEALTH_CHECK_S = 30.0
# Reconnection attempts: the first pause, the longest one (a restarted Redis is found within this), and how long a
# subscription waits for the server to confirm its channels.
RECONNECT_FIRST_S = 0.05
RECONNECT_MAX_S = 2.0
CONFIRM_TIMEOUT_S = 10.0


def redis_errors() -> ModuleType:
    """redis-py's exception classes, which every Holt caller catches. Imported here only when one is raised or
    caught: importing redis-py costs a short-lived command (the CLI's reads, holt_core/redis_conn.py) more than
    all its work, and a command that meets no error never needs them."""
    import redis.exceptions

    return redis.exceptions


def loaded_errors(*names: str, also: tuple[type[Exception], ...] = ()) -> tuple[type[Exception], ...]:
    """redis-py's exception classes ``names`` for an ``except`` clause, without importing redis-py: while it was
    never imported, nothing raised can be one of them (and the clause catches nothing). Call it in the clause
    itself, which Python evaluates after the raise, never ahead (``contextlib.suppress(*loaded_errors(...))``
    would miss an error whose raising imported redis-py)."""
    module = sys.modules.get("redis.exceptions")
    return (*(getattr(module, name) for name in names), *also) if module is not None else also


def disconnected() -> tuple[type[BaseException], ...]:
    """What "Redis went away" looks like to a caller (redis-py's BusyLoadingError, a server still loading its data
    after a restart, is a ConnectionError too). A function, for ``except disconnected():``."""
    return loaded_errors("ConnectionError", "TimeoutError", also=(OSError,))


def __getattr__(name: str) -> Any:
    if name == "DISCONNECTED":  # the tuple disconnected() returns, as a constant, for callers that import it
        return disconnected()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")

Message = dict[str, Any]


def encode_command(args: Sequence[str | bytes | int | float]) -> bytes:
    """A RESP2 command: an array of bulk strings."""
    out = [b"*%d\r\n" % len(args)]
    for arg in args:
        data = arg.encode() if type(arg) is str else arg if isinstance(arg, bytes) else str(arg).encode()
        out.append(b"$%d\r\n%b\r\n" % (len(data), data))
    return b"".join(out)


def script_sha(script: str) -> str:
    """The SHA1 Redis files a Lua script under (EVALSHA's argument)."""
    return hashlib.sha1(script.encode()).hexdigest()


def _reply_error(text: str) -> Exception:
    errors = redis_errors()
    if text.startswith("NOSCRIPT"):
        return errors.NoScriptError(text)  # type: ignore[no-any-return]
    if text.startswith("MOVED "):  # Redis Cluster: the key's slot is served by another node
        with contextlib.suppress(ValueError):
            moved = errors.MovedError(text.removeprefix("MOVED "))
            global _MovedError
            _MovedError = moved.__class__
            return moved  # type: ignore[no-any-return]
    return errors.ResponseError(text)  # type: ignore[no-any-return]


def _connection_error(text: str) -> Exception:
    return redis_errors().ConnectionError(text)  # type: ignore[no-any-return]


class _NotMoved(Exception):
    """Stands for redis-py's MovedError until a MOVED reply has been seen (only then is redis-py imported)."""


_MovedError: type[Exception] = _NotMoved


async def _handshaken(redis: Redis) -> AbstractConnection:
    """A new connection, set up by redis-py exactly as the client's own would be."""
    conn: AbstractConnection = redis.connection_pool.make_connection()  # type: ignore[no-untyped-call]
    await conn.connect()  # type: ignore[no-untyped-call]
    return conn


class _Wire(asyncio.Protocol):
    """Bytes in, parsed replies out; what to do with each reply is the subclass's business."""

    def __init__(self, conn: AbstractConnection) -> None:
        self._conn = conn  # kept: redis-py's objects own the socket's lifetime otherwise
        writer = conn._writer  # the handshaken stream is the one thing taken over
        if writer is None:
            raise _connection_error("the connection closed during its handshake")
        self._transport: asyncio.Transport = writer.transport  # type: ignore[assignment]
        self._reader = hiredis.Reader(encoding="utf-8", errors="replace", replyError=_reply_error)
        self._lost_text: str | None = None  # why the connection went, once it has
        self._lost: BaseException | None = None
        self._transport.set_protocol(self)

    @property
    def gone(self) -> bool:
        """The connection is lost (``lost`` says how), without making the error."""
        return self._lost_text is not None

    def closing(self) -> bool:
        return self._transport.is_closing()

    def write(self, data: bytes) -> None:
        if self._lost_text is not None or self._transport.is_closing():
            raise _connection_error("Connection closed by server.")
        self._transport.write(data)

    def data_received(self, data: bytes) -> None:
        self._reader.feed(data)
        while (reply := self._reader.gets()) is not False:
            self._reply(reply)

    def _reply(self, reply: Any) -> None:
        raise NotImplementedError

    @property
    def lost(self) -> BaseException | None:
        """redis-py's ConnectionError once the connection is gone, else None (made when first asked for: a
        connection closed by its owner at the end of a command needs none, redis_errors)."""
        if self._lost is None and self._lost_text is not None:
            self._lost = _connection_error(self._lost_text)
        return self._lost

    def connection_lost(self, exc: Exception | None) -> None:
        self._lost_text = f"Connection closed: {exc}" if exc else "Connection closed by server."
        self._closed()

    def _closed(self) -> None:
        raise NotImplementedError

    def close(self) -> None:
        self._transport.close()


class _CommandWire(_Wire):
    def __init__(self, conn: AbstractConnection) -> None:
        super().__init__(conn)
        self.waiting: collections.deque[asyncio.Future[Any]] = collections.deque()

    def _reply(self, reply: Any) -> None:
        future = self.waiting.popleft()
        if reply.__class__ is _MovedError:
            self._moved(reply, future)
        elif not future.done():  # a caller that was cancelled no longer listens
            future.set_result(reply)

    def _moved(self, moved: Any, future: asyncio.Future[Any]) -> None:
        """On a Redis Cluster the instance's slot went to another node (a failover): nothing was run here, so the
        command fails as if Redis had gone away, and the next connection goes to the new owner
        (``redis_cluster.Route``)."""
        route = getattr(self._conn, "holt_route", None)
        if route is not None:
            route.moved(moved.slot_id, (moved.host, moved.port))
        if self._lost_text is None:
            self._lost_text = f"the hash slot moved to {moved.host}:{moved.port}; reconnecting"
            self._transport.close()
        if not future.done():
            future.set_exception(self.lost or _connection_error(self._lost_text))

    def _closed(self) -> None:
        while self.waiting:
            future = self.waiting.popleft()
            if not future.done():
                future.set_exception(self.lost or _connection_error("Connection closed by server."))  # waiters only


class CommandWire:
    """Commands to Redis on one dedicated connection, made on first use and again after it is lost."""

    def __init__(self, redis: Redis) -> None:
        self._redis = redis
        self._wire: _CommandWire | None = None
        self._connecting: asyncio.Lock | None = None

    async def call(self, *args: str | bytes | int | float) -> Any:
        """One command's reply; an error reply raises (ResponseError, NoScriptError)."""
        reply = (await self.call_many([args]))[0]
        if isinstance(reply, Exception):  # an error reply (hiredis makes it a ResponseError, _reply_error)
            raise reply
        return reply

    async def call_many(self, commands: Sequence[Sequence[str | bytes | int | float]]) -> list[Any]:
        """Pipelined: one write, one reply each, in order; error replies are returned, not raised."""
        if not commands:
            return []
        payload = b"".join(encode_command(c) for c in commands)
        try:
            return await self._send(payload, len(commands))
        except disconnected() as first:
            # The retry policy the client's own connections are given (none unless configured).
            retry: Retry | None = self._redis.connection_pool.connection_kwargs.get("retry")
            if retry is None or retry.get_retries() == 0:
                raise _as_connection_error(first) from None
            return await retry.call_with_retry(lambda: self._send(payload, len(commands)), self._dropped)

    async def _send(self, payload: bytes, count: int) -> list[Any]:
        wire = self._wire
        if wire is None or wire.gone:
            wire = await self._connect()
        loop = asyncio.get_running_loop()
        futures = [loop.create_future() for _ in range(count)]
        wire.write(payload)
        wire.waiting.extend(futures)
        try:
            if count == 1:
                return [await futures[0]]
            return [await f for f in futures]
        except asyncio.CancelledError:
            for future in futures:  # their replies still come, in order, and are dropped unread
                future.cancel()
            raise

    def submit(self, commands: Sequence[Sequence[str | bytes | int | float]],
               futures: Sequence[asyncio.Future[Any]]) -> None:
        """Send without waiting; each future gets its command's reply (error replies as values) or the
        connection's failure. On a live connection the write happens here and now (no task, no extra turn of
        the loop); otherwise a task connects first, as ``call_many`` does (retrying as configured)."""
        wire = self._wire
        if wire is not None and not wire.gone and not wire.closing():
            try:
                wire.write(b"".join(encode_command(c) for c in commands))
            except Exception as exc:  # the connection went away under the write
                _fail(futures, exc)
                return
            wire.waiting.extend(futures)
            return
        task = asyncio.ensure_future(self._call_into(commands, futures))
        _IN_FLIGHT.add(task)
        task.add_done_callback(_IN_FLIGHT.discard)

    async def _call_into(self, commands: Sequence[Sequence[str | bytes | int | float]],
                         futures: Sequence[asyncio.Future[Any]]) -> None:
        try:
            replies = await self.call_many(commands)
        except BaseException as exc:  # every waiter must hear of the failure
            _fail(futures, exc)
            if not isinstance(exc, Exception):
                raise
            return
        for future, reply in zip(futures, replies, strict=True):
            if not future.done():
                future.set_result(reply)

    async def _dropped(self, _error: BaseException) -> None:
        if self._wire is not None:
            self._wire.close()
            self._wire = None

    async def _connect(self) -> _CommandWire:
        if self._connecting is None:
            self._connecting = asyncio.Lock()
        async with self._connecting:
            if self._wire is None or self._wire.gone:
                self._wire = _CommandWire(await _handshaken(self._redis))
            return self._wire

    def close(self) -> None:
        if self._wire is not None:
            self._wire.close()
            self._wire = None


def _fail(futures: Sequence[asyncio.Future[Any]], exc: BaseException) -> None:
    for future in futures:
        if not future.done():
            future.set_exception(exc)


# Strong references to sends in flight (the event loop keeps only weak ones to tasks).
_IN_FLIGHT: set[asyncio.Task[None]] = set()


def _as_connection_error(exc: BaseException) -> BaseException:
    errors = redis_errors()
    return exc if isinstance(exc, (errors.ConnectionError, errors.TimeoutError)) else _connection_error(str(exc))


class _PushWire(_Wire):
    def __init__(self, conn: AbstractConnection, on_push: Callable[[Any], None], on_lost: Callable[[], None]) -> None:
        super().__init__(conn)
        self._on_push = on_push
        self._on_lost = on_lost

    def _reply(self, reply: Any) -> None:
        self._on_push(reply)

    def _closed(self) -> None:
        self._on_lost()


class Subscription:
    """A pub/sub connection with the part of redis-py's PubSub interface Holt uses.

    ``get_message`` returns ``{"type", "channel", "data", "pattern"}`` dicts as redis-py does (strings,
    decoded as UTF-8 with replacement), or None once ``timeout`` passes; it raises redis-py's
    ConnectionError once the connection is gone. ``connect`` makes a new connection and subscribes it
    to the same channels again.
    """

    def __init__(self, redis: Redis) -> None:
        self._redis = redis
        self._wire: _PushWire | None = None
        self._queue: collections.deque[Any] = collections.deque()
        self._waiter: asyncio.Future[None] | None = None
        self.channels: dict[str, None] = {}
        self._heard = 0.0
        self._callback: Callable[[str, str], None] | None = None
        self._delivered = 0  # messages handed to the callback (they count as heard)
        self._failure: Exception | None = None

    # ---------------------------------------------------------------- connection

    async def connect(self) -> None:
        if self._wire is not None and not self._wire.gone:
            return
        # Messages not yet read are kept; confirmations of the old connection would only mislead.
        self._queue = collections.deque(r for r in self._queue if _message_type(r) in ("message", "pmessage"))
        self._wire = _PushWire(await _handshaken(self._redis), self._pushed, self._wake)
        self._heard = asyncio.get_running_loop().time()
        if self.channels:
            self._wire.write(encode_command(["SUBSCRIBE", *self.channels]))

    async def reconnect(self, deliver: Callable[[str, str], None] | None = None, *,
                        within_s: float | None = None,
                        on_retry: Callable[[int, BaseException], None] | None = None) -> None:
        """Back on every channel after the connection dropped (Redis closed a lagging subscriber, or restarted):
        a new connection, with ``Backoff`` between attempts, until the server confirms each channel. Waits as
        long as it takes unless ``within_s`` is given (then the last failure is raised). Messages that arrive
        while confirming go to ``deliver`` (else they stay queued). What was published during the gap is lost
        to this subscriber: the caller reads it back from the data afterwards, and misses nothing from then on.
        ``on_retry(attempt, error)`` hears of every failed attempt (to log progress)."""
        loop = asyncio.get_running_loop()
        deadline = None if within_s is None else loop.time() + within_s
        backoff = Backoff()
        attempt = 0
        while True:
            try:
                await self.connect()  # re-subscribes on the new connection
                await self.confirmed(self.channels, deliver)
                return
            except disconnected() as exc:
                if self._wire is not None:
                    self._wire.close()  # unconfirmed: start over on a fresh connection
                    self._wire = None
                attempt += 1
                if deadline is not None and loop.time() >= deadline:
                    raise
                if on_retry is not None:
                    on_retry(attempt, exc)
                await asyncio.sleep(backoff.next())

    async def confirmed(self, channels: Iterable[str], deliver: Callable[[str, str], None] | None = None, *,
                        wait_s: float = CONFIRM_TIMEOUT_S) -> None:
        """Wait until the server confirmed a subscription to each of ``channels`` (then nothing published
        to them is missed); messages read meanwhile go to ``deliver``, or are dropped without one. A server
        that does not confirm in ``wait_s`` seconds raises redis-py's TimeoutError."""
        pending = set(channels)
        while pending:
            msg = await self.get_message(timeout=wait_s)
            if msg is None:
                raise redis_errors().TimeoutError(f"Redis did not confirm the subscription to {sorted(pending)}")
            if msg["type"] == "subscribe":
                pending.discard(str(msg["channel"]))
            elif msg["type"] == "message" and deliver is not None:
                deliver(str(msg["channel"]), str(msg["data"]))

    async def subscribe(self, *channels: str) -> None:
        await self.connect()
        assert self._wire is not None
        self.channels.update(dict.fromkeys(channels))
        self._wire.write(encode_command(["SUBSCRIBE", *channels]))

    async def unsubscribe(self) -> None:
        self.channels.clear()
        if self._wire is not None and not self._wire.gone:
            self._wire.write(encode_command(["UNSUBSCRIBE"]))

    async def aclose(self) -> None:
        if self._wire is not None:
            self._wire.close()
        self._wire = None
        self._queue.clear()

    # ---------------------------------------------------------------- messages

    def deliver_to(self, callback: Callable[[str, str], None]) -> None:
        """From now on every message goes straight to ``callback(channel, data)`` as it arrives, in order,
        without a task switch or a timer per message; messages already received go first. ``get_message``
        then returns only the other replies (confirmations, pongs), and raises what the callback raised."""
        self._callback = callback
        queued = list(self._queue)
        self._queue.clear()
        for reply in queued:
            self._pushed(reply)

    def _pushed(self, reply: Any) -> None:
        callback = self._callback
        if callback is not None and self._failure is None and type(reply) is list and len(reply) == 3 \
                and reply[0] == "message":
            self._delivered += 1
            try:
                callback(reply[1], reply[2])
            except Exception as exc:  # the caller's loop learns of it, as if it had called the callback itself
                self._failure = exc
                self._wake()
            return
        self._queue.append(reply)
        self._wake()

    def _wake(self) -> None:
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    async def get_message(  # redis-py's PubSub signature, which every caller uses
        self,
        ignore_subscribe_messages: bool = False,
        timeout: float | None = 0.0,  # noqa: ASYNC109
    ) -> Message | None:
        loop = asyncio.get_running_loop()
        deadline = None if timeout is None else loop.time() + timeout
        delivered = self._delivered
        while True:
            if self._failure is not None:
                failure, self._failure = self._failure, None
                self._callback = None  # as a loop that raised would: nothing more is handed over
                raise failure
            if self._delivered != delivered:
                delivered, self._heard = self._delivered, loop.time()
            while self._queue:
                message = _message(self._queue.popleft())
                self._heard = loop.time()
                if message is None or (ignore_subscribe_messages and message["type"] != "message"
                                       and message["type"] != "pmessage"):
                    continue
                return message
            wire = self._wire
            if wire is None:
                raise _connection_error("not subscribed: the subscription is closed")
            lost = wire.lost
            if lost is not None:
                raise lost
            now = loop.time()
            if deadline is not None and now >= deadline:
                return None
            if now - self._heard >= HEALTH_CHECK_S:
                self._heard = now
                wire.write(encode_command(["PING"]))
            await self._wait(loop, None if deadline is None else deadline - now)

    async def _wait(self, loop: asyncio.AbstractEventLoop, delay: float | None) -> None:
        waiter: asyncio.Future[None] = loop.create_future()
        self._waiter = waiter
        timer = loop.call_later(min(delay, HEALTH_CHECK_S) if delay is not None else HEALTH_CHECK_S,
                                _settle, waiter)
        try:
            await waiter
        finally:
            timer.cancel()
            self._waiter = None


class Backoff:
    """Pauses between reconnection attempts: doubling from ``first`` up to ``cap`` seconds, with jitter (so
    the processes of an instance do not all knock at the same moment when Redis comes back)."""

    def __init__(self, first: float = RECONNECT_FIRST_S, cap: float = RECONNECT_MAX_S) -> None:
        self.first = first
        self.cap = cap
        self._next = first

    def next(self) -> float:
        delay = self._next
        self._next = min(self._next * 2, self.cap)
        return delay * random.uniform(0.8, 1.0)  # jitter, not secrecy

    def reset(self) -> None:
        self._next = self.first


async def survive_disconnects(work: Callable[[], Awaitable[None]], *,
                              on_lost: Callable[[BaseException], None] | None = None) -> None:
    """Run ``work()`` (a background loop: a heartbeat, a lease refresher) again, after a ``Backoff`` pause,
    whenever it fails because Redis went away; return when it returns. Any other error is raised."""
    backoff = Backoff()
    while True:
        try:
            await work()
            return
        except disconnected() as exc:
            if on_lost is not None:
                on_lost(exc)
            await asyncio.sleep(backoff.next())


async def or_stop(work: Awaitable[None], stop: asyncio.Event) -> None:
    """Await ``work`` (a reconnection, which may wait for Redis for a long time) unless ``stop`` is set first:
    then ``work`` is cancelled, so a component told to stop does not wait for Redis to come back first."""
    task = asyncio.ensure_future(work)
    stopped = asyncio.ensure_future(stop.wait())
    try:
        await asyncio.wait({task, stopped}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        stopped.cancel()
        if not task.done():
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
    if task.done() and not task.cancelled():
        task.result()  # its failure is the caller's


def _settle(waiter: asyncio.Future[None]) -> None:
    if not waiter.done():
        waiter.set_result(None)


def _message_type(reply: Any) -> str | None:
    return reply[0] if isinstance(reply, list) and reply and isinstance(reply[0], str) else None


def _message(reply: Any) -> Message | None:
    """A pub/sub push as redis-py's PubSub presents it; None for anything else."""
    if not isinstance(reply, list) or not reply:
        return None
    kind = reply[0]
    if kind == "message" and len(reply) == 3:
        return {"type": kind, "pattern": None, "channel": reply[1], "data": reply[2]}
    if kind == "pmessage" and len(reply) == 4:
        return {"type": kind, "pattern": reply[1], "channel": reply[2], "data": reply[3]}
    if kind in ("subscribe", "unsubscribe", "psubscribe", "punsubscribe") and len(reply) == 3:
        return {"type": kind, "pattern": None, "channel": reply[1], "data": reply[2]}
    if kind == "pong":
        return {"type": kind, "pattern": None, "channel": None, "data": reply[1] if len(reply) > 1 else ""}
    return None
