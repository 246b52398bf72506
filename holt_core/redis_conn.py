"""Connecting to Redis: redis-py clients for Holt's processes, a light client for the CLI's short commands.

``connect_redis`` is the redis.asyncio client every long-running Holt process uses (imported when called).

``open_client`` is what a short command uses: for the URLs Holt writes (``redis://``, ``rediss://``,
``unix://``, with user, password and database) a ``LightRedis``, which speaks RESP2 through
``redis_wire.CommandWire`` (hiredis) and never imports redis-py: importing redis-py 8 (its observability
modules pull importlib.metadata and the OpenTelemetry SDK) costs a command like ``holt questions`` more CPU
than everything else it does (docs/performance.md, "CLI start"). Any other URL (query options such as
``ssl_cert_reqs``) gets the redis-py client, so nothing redis-py accepts is refused.

A ``LightRedis`` sets its connection up as redis-py would (AUTH with the ACL user and password, CLIENT SETNAME,
SELECT) and fails as redis-py does, with redis-py's exception classes and messages (imported only then): the
callers' ``except`` clauses and the one-line errors people see stay the same. It offers the part of the
redis.asyncio API the CLI's reads use; ``Blackboard``, ``Subscription`` and ``CommandWire`` accept it in place
of a redis-py client (they use its ``connection_pool.make_connection()``).

``probe_info`` is the synchronous ``INFO server`` that finds out whether a local redis-server answers.
"""

from __future__ import annotations

import asyncio
import socket
import ssl
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, cast
from urllib.parse import parse_qs, unquote, urlsplit

import hiredis

from holt_core.keys import Keys, hash_tag_prefix
from holt_core.redis_wire import CommandWire, encode_command, redis_errors

if TYPE_CHECKING:
    from redis.asyncio import Redis

_SCAN_COUNT = 1000


def connect_redis(url: str, *, decode: bool = True, **options: Any) -> Redis:
    """A redis.asyncio client configured the way every Holt process uses it; ``options`` add to that
    (the CLI's retry and connect timeout) or override it."""
    from holt_core.redis_cluster import client_from_url

    settings: dict[str, Any] = {
        "decode_responses": decode,
        # Payloads written by other clients may not be valid UTF-8; never crash on them.
        "encoding_errors": "replace",
        "health_check_interval": 30,
        # RESP2: redis-py 8 defaults to RESP3, where every pub/sub message also goes through a push
        # handler that formats the whole message into a debug string (a 10 MiB artefact event is copied
        # per subscriber, whatever the log level). Holt uses nothing RESP3-only.
        "protocol": 2,
    }
    settings.update(options)
    # Connections that go to the node owning an instance's hash slot on a Redis Cluster (redis_cluster).
    return client_from_url(url, **settings)


@dataclass(frozen=True)
class Target:
    """Where and as whom to connect, read from a Redis URL as redis-py reads it."""

    host: str = "localhost"
    port: int = 6379
    path: str = ""  # a unix socket
    tls: bool = False
    username: str = ""
    password: str = ""
    db: int = 0

    @classmethod
    def from_url(cls, url: str) -> Target | None:
        """None for a URL the light client leaves to redis-py (query options other than ``db``, odd schemes)."""
        try:
            parts = urlsplit(url)
            query = parse_qs(parts.query)
            if set(query) - {"db"} or parts.scheme not in ("redis", "rediss", "unix"):
                return None
            db_text = query["db"][0] if "db" in query else ""
            if not db_text and parts.scheme != "unix" and parts.path.strip("/"):
                db_text = unquote(parts.path).replace("/", "")
            db = int(db_text) if db_text else 0
            user, password = unquote(parts.username or ""), unquote(parts.password or "")
            if parts.scheme == "unix":
                return cls(path=unquote(parts.path), username=user, password=password, db=db)
            return cls(host=unquote(parts.hostname or "localhost"), port=parts.port or 6379,
                       tls=parts.scheme == "rediss", username=user, password=password, db=db)
        except ValueError:  # a bad port or db: redis-py says what is wrong
            return None

    @property
    def address(self) -> str:
        """As redis-py names the server in its connection errors."""
        return self.path or f"{self.host}:{self.port}"

    def handshake(self, client_name: str | None) -> list[tuple[str, ...]]:
        """The commands redis-py sends on a new RESP2 connection (less its CLIENT SETINFO library tags)."""
        commands: list[tuple[str, ...]] = []
        if self.password:
            commands.append(("AUTH", self.username, self.password) if self.username else ("AUTH", self.password))
        if client_name:
            commands.append(("CLIENT", "SETNAME", client_name))
        if self.db:
            commands.append(("SELECT", str(self.db)))
        return commands


def connect_failed(target: Target, exc: BaseException) -> Exception:
    """redis-py's error for a connection that could not be made, with its exact message."""
    errors = redis_errors()
    if isinstance(exc, TimeoutError):
        return cast(Exception, errors.TimeoutError("Timeout connecting to server"))
    if not exc.args:
        text = f"Error connecting to {target.address}."
    elif len(exc.args) == 1:
        text = f"Error {exc.args[0]} connecting to {target.address}."
    else:
        text = f"Error {exc.args[0]} connecting to {target.address}. {exc.args[1]}."
    return cast(Exception, errors.ConnectionError(text))


def refused(text: str) -> Exception:
    """The exception redis-py raises for an error reply during its handshake (AuthenticationError for WRONGPASS)."""
    from redis._parsers.base import BaseParser

    return cast(Exception, BaseParser.parse_error(text))  # type: ignore[no-untyped-call]


class _Connection:
    """One new connection, handshaken; ``redis_wire`` then takes over its stream (``_writer``), as it does with
    a redis-py connection."""

    def __init__(self, target: Target, client_name: str | None, timeout_s: float | None,
                 redirect: _Redirect) -> None:
        self.target = target
        self.client_name = client_name
        self.timeout_s = timeout_s
        self.holt_route = redirect  # redis_wire reports a MOVED reply to it
        self._writer: asyncio.StreamWriter | None = None

    async def connect(self) -> None:
        t = self.target
        try:
            async with asyncio.timeout(self.timeout_s):
                if t.path:
                    reader, writer = await asyncio.open_unix_connection(t.path)
                else:
                    context = ssl.create_default_context() if t.tls else None
                    host, port = self.holt_route.owner or (t.host, t.port)
                    reader, writer = await asyncio.open_connection(host, port, ssl=context)
        except (TimeoutError, OSError) as exc:
            raise connect_failed(t, exc) from None
        commands = t.handshake(self.client_name)
        try:
            if commands:
                writer.write(b"".join(encode_command(c) for c in commands))
                parser = hiredis.Reader(encoding="utf-8", errors="replace", replyError=refused)
                for _ in commands:
                    while (reply := parser.gets()) is False:
                        data = await reader.read(65536)
                        if not data:
                            raise redis_errors().ConnectionError("Connection closed by server.")
                        parser.feed(data)
                    if isinstance(reply, Exception):
                        raise reply
        except BaseException:
            writer.close()
            raise
        self._writer = writer


class _Redirect:
    """Where a Redis Cluster said the keys live (a ``MOVED`` reply), and the one retry that follows it: a read the
    node refused ran nowhere, so it is sent again to the named node. Otherwise no retry, as the CLI's clients have
    none (``redis_wire.CommandWire`` asks ``get_retries`` after a failure)."""

    def __init__(self) -> None:
        self.owner: tuple[str, int] | None = None
        self._pending = False

    def moved(self, slot: int, owner: tuple[str, int]) -> bool:
        self.owner, self._pending = owner, True
        return True

    def get_retries(self) -> int:
        return 1 if self._pending else 0

    async def call_with_retry(self, do: Callable[[], Awaitable[Any]], fail: Any) -> Any:
        self._pending = False
        return await do()


class _Pool:
    """What ``redis_wire`` asks of a client: a way to make a connection, and its options (the retry is only the
    one that follows a cluster's ``MOVED``)."""

    def __init__(self, target: Target, client_name: str | None, timeout_s: float | None) -> None:
        self.target = target
        self.client_name = client_name
        self.timeout_s = timeout_s
        self.redirect = _Redirect()
        self.connection_kwargs: dict[str, Any] = {"retry": self.redirect}

    def make_connection(self) -> _Connection:
        return _Connection(self.target, self.client_name, self.timeout_s, self.redirect)


class LightRedis:
    """The redis.asyncio calls the CLI's reads make, on one ``CommandWire`` (replies decoded as UTF-8 with
    replacement, as ``connect_redis`` configures redis-py)."""

    def __init__(self, target: Target, *, client_name: str | None = None, connect_timeout_s: float | None = 5.0):
        self.connection_pool = _Pool(target, client_name, connect_timeout_s)
        self._wire = CommandWire(cast("Redis", self))

    async def execute_command(self, *args: str | int) -> Any:
        return await self._wire.call(*args)

    async def ping(self) -> bool:
        return bool(await self._wire.call("PING") == "PONG")

    async def get(self, key: str) -> str | None:
        return cast("str | None", await self._wire.call("GET", key))

    async def mget(self, keys: Sequence[str]) -> list[str | None]:
        return cast("list[str | None]", await self._wire.call("MGET", *keys))

    async def exists(self, *keys: str) -> int:
        return int(await self._wire.call("EXISTS", *keys))

    async def hget(self, key: str, field: str) -> str | None:
        return cast("str | None", await self._wire.call("HGET", key, field))

    async def hgetall(self, key: str) -> dict[str, str]:
        values = iter(await self._wire.call("HGETALL", key))
        return dict(zip(values, values, strict=True))

    async def zrange(self, key: str, start: int, end: int) -> list[str]:
        return cast("list[str]", await self._wire.call("ZRANGE", key, start, end))

    async def scan_iter(self, match: str | None = None, count: int | None = None) -> AsyncIterator[str]:
        args: list[str | int] = []
        if match is not None:
            args += ["MATCH", match]
        if count is not None:
            args += ["COUNT", count]
        tagged = hash_tag_prefix(match) if match is not None else None
        if tagged is not None:
            # SCAN names no key, so a Redis Cluster node would scan its own keys only: a key of the pattern's hash
            # tag, asked first, has a MOVED bring this connection to the node that holds them.
            await self._wire.call("EXISTS", tagged)
        cursor = "0"
        while True:
            cursor, keys = await self._wire.call("SCAN", cursor, *args)
            for key in keys:
                yield key
            if cursor == "0":
                return

    # holt-tui's reader (holt_tui/reader.py): the artefact index, the open claims, the audit stream.

    async def zcard(self, key: str) -> int:
        return int(await self._wire.call("ZCARD", key))

    async def zrevrange(self, key: str, start: int, end: int) -> list[str]:
        return cast("list[str]", await self._wire.call("ZREVRANGE", key, start, end))

    async def smembers(self, key: str) -> set[str]:
        return set(await self._wire.call("SMEMBERS", key))

    async def xrevrange(self, key: str, max: str = "+", min: str = "-",
                        count: int | None = None) -> list[tuple[str, dict[str, str]]]:
        args: list[str | int] = ["XREVRANGE", key, max, min]
        if count is not None:
            args += ["COUNT", count]
        return _entries(await self._wire.call(*args))

    async def xread(self, streams: dict[str, str], count: int | None = None,
                    block: int | None = None) -> list[list[Any]]:
        """As redis-py answers in RESP2: ``[[stream, [(id, fields), ...]], ...]``, an empty list when nothing came."""
        args: list[str | int] = ["XREAD"]
        if count is not None:
            args += ["COUNT", count]
        if block is not None:
            args += ["BLOCK", block]
        args += ["STREAMS", *streams, *streams.values()]
        reply = await self._wire.call(*args)
        return [[stream, _entries(entries)] for stream, entries in reply or []]

    async def aclose(self) -> None:
        self._wire.close()


def _entries(reply: list[Any] | None) -> list[tuple[str, dict[str, str]]]:
    """Stream entries as redis-py decodes them: (id, fields as a dict)."""
    out: list[tuple[str, dict[str, str]]] = []
    for entry_id, fields in reply or []:
        values = iter(fields or [])
        out.append((entry_id, dict(zip(values, values, strict=True))))
    return out


def route_to(redis: Any, keys: Keys) -> None:
    """Send ``redis``'s connections to the node serving ``keys``' instance on a Redis Cluster (the routed client of
    ``redis_cluster.client_from_url``; a no-op for other clients and for instances whose keys span slots). Here, not
    in redis_cluster, so that callers on a read path do not import redis-py for it."""
    route = getattr(redis, "holt_route", None)
    if route is not None:
        route.want(keys)


def open_client(url: str, *, client_name: str | None = None, connect_timeout_s: float = 5.0) -> Redis:
    """A client for a short command: a ``LightRedis`` where it can serve ``url``, else redis-py's (no retries,
    as the CLI's are). Typed as redis-py's, whose calls it answers in the same form."""
    target = Target.from_url(url)
    if target is None:
        from redis.asyncio.retry import Retry
        from redis.backoff import NoBackoff

        return connect_redis(url, retry=Retry(NoBackoff(), 0), socket_connect_timeout=connect_timeout_s,
                             client_name=client_name)
    return cast("Redis", LightRedis(target, client_name=client_name, connect_timeout_s=connect_timeout_s))


def probe_info(target: Target, timeout_s: float) -> dict[str, str]:
    """``INFO server`` of the Redis at ``target`` as a dict (the values as text), synchronously; raises OSError
    when it cannot be reached and the redis-py error of a refusal (a wrong password, a server still loading)."""
    if target.path:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(timeout_s)
        try:
            sock.connect(target.path)
        except OSError:
            sock.close()
            raise
    else:
        # An ASCII host as bytes: getaddrinfo would otherwise load the IDNA codec (~1.5 ms of every CLI start).
        host: str | bytes = target.host.encode() if target.host.isascii() else target.host
        sock = socket.create_connection((host, target.port), timeout=timeout_s)  # type: ignore[arg-type]
    if target.tls:
        sock = ssl.create_default_context().wrap_socket(sock, server_hostname=target.host)
    with sock:
        commands = [*target.handshake(None), ("INFO", "server")]
        sock.sendall(b"".join(encode_command(c) for c in commands))
        parser = hiredis.Reader(encoding="utf-8", errors="replace", replyError=refused)
        reply: Any = False
        for _ in commands:
            while (reply := parser.gets()) is False:
                data = sock.recv(65536)
                if not data:
                    raise ConnectionResetError("Connection closed by server.")
                parser.feed(data)
            if isinstance(reply, Exception):
                raise reply
    info: dict[str, str] = {}
    for line in str(reply).splitlines():
        name, sep, value = line.partition(":")
        if sep and not name.startswith("#"):
            info[name] = value
    return info
