"""Redis Cluster support: one instance's keys in one hash slot, served by the node that owns it.

An instance named ``{name}`` has every key in one slot (``keys.single_slot``), so its atomic writes (the ``Tx``
script, MGET of its proofs, pipelines) work on a cluster as on one server, provided they go to the node that owns
that slot. The client from ``client_from_url`` does that without a cluster client's per-command routing:

- ``redis_conn.route_to(redis, keys)`` tells the client the instance's slot. Its next connection
  (redis-py's and the lean ``redis_wire`` ones alike) asks the configured node once about a key of that slot; a
  ``MOVED`` answer names the owner, and from then on every connection of that client goes straight there. On a
  single server the question is answered and nothing changes (one ``EXISTS`` per client, only for braced names).
- A command that still meets ``MOVED`` (a key of another slot, such as the instance registry ``holt:instances``,
  or the slot moved after a failover) is sent on to the named node; for the instance's slot the client re-routes.
- ``SCAN`` visits one node: a client scanning ``holt:{name}:*`` is routed to that slot's owner first.
- Pub/sub needs nothing: a classic ``PUBLISH`` reaches subscribers on every node of the cluster.

``check_cluster_slots`` is what ``holt up`` asks before starting an instance: on a cluster, a name whose keys
would span slots is refused with one line naming the braced form.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

from redis.asyncio import Redis
from redis.asyncio.client import Pipeline
from redis.asyncio.connection import (
    Connection,
    ConnectionPool,
    SSLConnection,
    parse_url,
)
from redis.crc import key_slot
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import MovedError, ResponseError

from holt_core.keys import Keys, hash_tag_prefix, single_slot, slot_spanning_error

Address = tuple[str, int]


class Route:
    """Where one client's connections go: the configured node, or the owner of the instance's slot once known."""

    __slots__ = ("gen", "home", "owner", "probe_key", "slot")

    def __init__(self, home: Address) -> None:
        self.home = home
        self.slot: int | None = None
        self.probe_key: str | None = None
        self.owner: Address | None = None  # the node serving ``slot`` (None: not asked yet)
        self.gen = 0  # bumped on every change: connections made for an older one reconnect

    def want(self, keys: Keys) -> None:
        """Serve ``keys``' instance: its slot, if all its keys share one (plain names are left as they are)."""
        if keys.single_slot:
            self.want_slot(keys.slot, keys.lock)

    def want_slot(self, slot: int, probe_key: str) -> None:
        if slot == self.slot:
            return
        self.slot, self.probe_key, self.owner = slot, probe_key, None
        self.gen += 1

    def moved(self, slot: int, owner: Address) -> bool:
        """A ``MOVED`` for ``slot``: True if it is this client's slot (now routed to ``owner``)."""
        if slot != self.slot:
            return False
        if self.owner != owner:
            self.owner = owner
            self.gen += 1
        return True

    def forget(self) -> None:
        """The owner stopped answering (a failover): ask the configured node again."""
        self.owner = None
        self.gen += 1

    @property
    def target(self) -> Address:
        return self.owner or self.home


class _Routed:
    """Connection mix-in: connect to the route's target; on the first connection after a change, ask where the
    slot lives. Runs on every checkout from the pool, so the common case is two attribute reads."""

    holt_route: Route | None
    _holt_gen: int
    host: str
    port: int

    def __init__(self, *args: Any, holt_route: Route | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.holt_route = holt_route
        self._holt_gen = -1

    _reader: Any
    _writer: Any

    async def connect_check_health(self, check_health: bool = True, retry_socket_connect: bool = True) -> None:
        route = self.holt_route
        if self._writer is not None and self._reader is not None and (route is None or self._holt_gen == route.gen):
            return  # connected, to the right node: every checkout from the pool comes here
        await self._routed_connect(route, check_health, retry_socket_connect)

    async def _routed_connect(self, route: Route | None, check_health: bool, retry_socket_connect: bool) -> None:
        base: Any = super()
        if route is None:
            await base.connect_check_health(check_health, retry_socket_connect)
            return
        if self._writer is not None:
            await base.disconnect()
        gen = route.gen
        self.host, self.port = route.target
        try:
            await base.connect_check_health(check_health, retry_socket_connect)
        except RedisConnectionError:
            if route.owner is None:
                raise
            route.forget()  # the owner went away: start again from the configured node
            gen = route.gen
            self.host, self.port = route.target
            await base.connect_check_health(check_health, retry_socket_connect)
        if route.owner is None and route.probe_key is not None:
            try:
                await base.send_command("EXISTS", route.probe_key)
                await base.read_response()
            except MovedError as moved:
                route.moved(moved.slot_id, (moved.host, moved.port))
                gen = route.gen
                await base.disconnect()
                self.host, self.port = route.target
                await base.connect_check_health(check_health, retry_socket_connect)
            else:
                if route.gen == gen:
                    route.owner = (self.host, self.port)
        self._holt_gen = gen


class RoutedConnection(_Routed, Connection):
    """A TCP connection that follows its client's ``Route``."""


class RoutedSSLConnection(_Routed, SSLConnection):
    """A TLS connection that follows its client's ``Route``."""


_ROUTED: dict[type, type] = {Connection: RoutedConnection, SSLConnection: RoutedSSLConnection}


class _RoutedPipeline(Pipeline):
    """A pipeline of the instance's keys sent again, whole, to the slot's new owner after a ``MOVED``."""

    holt_route: Route | None = None

    async def execute(self, raise_on_error: bool = True) -> list[Any]:
        stack = list(self.command_stack)
        try:
            return await super().execute(raise_on_error)
        except MovedError as moved:
            route = self.holt_route
            if route is None or not route.moved(moved.slot_id, (moved.host, moved.port)):
                raise
            self.command_stack = stack  # execute() emptied it; nothing of it ran on the old node
            return await super().execute(raise_on_error)


class RoutedRedis(Redis):
    """redis-py's client whose connections follow a ``Route`` (see the module docstring)."""

    holt_route: Route | None = None
    _side: dict[Address, Redis]

    async def execute_command(self, *args: Any, **options: Any) -> Any:
        run: Any = super().execute_command
        try:
            return await run(*args, **options)
        except MovedError as moved:
            route = self.holt_route
            if route is not None and route.moved(moved.slot_id, (moved.host, moved.port)):
                return await run(*args, **options)
            side: Any = self._side_client((moved.host, moved.port)).execute_command
            return await side(*args, **options)

    def scan_iter(  # type: ignore[override]
        self, match: Any = None, count: int | None = None, _type: str | None = None, **kwargs: Any
    ) -> AsyncIterator[Any]:
        """SCAN visits one node: a pattern whose keys share a hash tag (``holt:{name}:*``) is scanned on the node
        that owns that slot (a client that reads an instance without a Blackboard, e.g. ``holt destroy``)."""
        tagged = hash_tag_prefix(match) if isinstance(match, str) else None
        if tagged is not None and self.holt_route is not None:
            self.holt_route.want_slot(key_slot(tagged.encode()), tagged)
        return super().scan_iter(match, count, _type, **kwargs)

    def pipeline(self, transaction: bool = True, shard_hint: str | None = None) -> Pipeline:
        pipe = _RoutedPipeline(self.connection_pool, self.response_callbacks, transaction, shard_hint)
        pipe.holt_route = self.holt_route
        return pipe

    def _side_client(self, address: Address) -> Redis:
        """A client for another node (keys outside the instance's slot), made once per node."""
        side = self.__dict__.setdefault("_side", {})
        client = side.get(address)
        if client is None:
            kwargs = dict(self.connection_pool.connection_kwargs)
            kwargs.pop("holt_route", None)
            kwargs.pop("himport_registry", None)
            kwargs["host"], kwargs["port"] = address
            routed = self.connection_pool.connection_class
            plain = next((base for base, sub in _ROUTED.items() if sub is routed), Connection)
            client = side[address] = Redis.from_pool(ConnectionPool(connection_class=plain, **kwargs))
        return client  # type: ignore[no-any-return]

    async def aclose(self, close_connection_pool: bool | None = None) -> None:
        for client in self.__dict__.get("_side", {}).values():
            await client.aclose()
        await super().aclose(close_connection_pool)


def client_from_url(url: str, **settings: Any) -> Redis:
    """``Redis.from_url(url, **settings)``, with connections that follow a ``Route`` (TCP and TLS; a Unix socket
    cannot reach a cluster, so it gets the plain client). The URL's options win over ``settings``, as in
    redis-py."""
    options: dict[str, Any] = {**settings, **parse_url(url)}
    routed = _ROUTED.get(options.get("connection_class", Connection))
    if routed is None or options.pop("single_connection_client", False):
        return Redis.from_url(url, **settings)
    route = Route((str(options.get("host", "localhost")), int(options.get("port", 6379))))
    options["connection_class"] = routed
    options["holt_route"] = route
    client = RoutedRedis(connection_pool=ConnectionPool(**options))
    client.auto_close_connection_pool = True  # the client owns its pool, as with Redis.from_url
    client.holt_route = route
    return client


async def is_cluster(redis: Redis) -> bool:
    """Whether ``redis`` is a Redis Cluster node (a server that refuses ``INFO`` counts as a plain one)."""
    try:
        info = await redis.info("cluster")
    except ResponseError:
        return False
    return bool(info.get("cluster_enabled"))


async def check_cluster_slots(redis: Redis, instance: str) -> None:
    """Refuse (``InvalidInput``, one line and a hint) an instance whose keys would span slots on a cluster."""
    if not single_slot(instance) and await is_cluster(redis):
        raise slot_spanning_error(instance)

