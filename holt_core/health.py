"""``/healthz``, ``/readyz`` and ``/metrics`` of a long-running component (the orchestrator, each pup).

The server runs on a thread of its own with its own event loop and Redis connection, so it still answers (503)
when the component's loop is stuck, and serving a scrape never delays the component's work. The component's
loop only beats a heartbeat; everything else is derived from the events it logs (holt_core.logs observers):
``orchestrator_ready`` / ``pup_ready`` make it ready, ``lock_lost`` makes the orchestrator unhealthy.

Healthy means: Redis answers PING, the loop beat within the stuck threshold, the orchestrator (once ready) still
owns the instance lock, and the agent's own ``health_check`` command (holt.yml) passed last time it ran.
Where each component listens is recorded in ``holt:{inst}:health`` (one field per component, written only by
that component) for ``holt health`` and ``holt up``.

Settings (environment): ``HOLT_HEALTH_BIND`` (address, default 127.0.0.1; 0.0.0.0 in a container),
``HOLT_HEALTH_PORT`` (default 0: a free port), ``HOLT_HEALTH_ADVERTISE`` (the host recorded in the registry, e.g. a
pod IP; default: the bound address, or the host name when bound to all), ``HOLT_HEALTH_STUCK_S`` (default 30),
``HOLT_AUDIT_VERIFY_INTERVAL_S`` (orchestrator, default 300; 0 turns the periodic verification off).
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import json
import os
import socket
import threading
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any

from aiohttp import web
from pydantic import BaseModel, BeforeValidator, ConfigDict, ValidationError
from redis.asyncio import Redis
from redis.exceptions import RedisError

from holt_core.audit import AuditTrail
from holt_core.blackboard import connect_redis
from holt_core.errors import InvalidInput
from holt_core.keys import Keys
from holt_core.logs import add_observer, remove_observer, set_process_identity
from holt_core.metrics import EventMetrics
from holt_core.redis_conn import route_to
from holt_core.sanitise import sanitise_text
from holt_core.timespec import parse_duration
from holt_core.tracing import SpanDeriver
from holt_core.tracing import from_env as tracing_from_env

ENV_BIND = "HOLT_HEALTH_BIND"
ENV_PORT = "HOLT_HEALTH_PORT"
ENV_STUCK_S = "HOLT_HEALTH_STUCK_S"
ENV_ADVERTISE = "HOLT_HEALTH_ADVERTISE"  # the host others should use (a pod IP), when bound to 0.0.0.0
ENV_AUDIT_VERIFY_S = "HOLT_AUDIT_VERIFY_INTERVAL_S"
ENV_REPLICA = "HOLT_REPLICA"  # this process's name among the replicas of its role (a pod name); else host:pid
DEFAULT_BIND = "127.0.0.1"
DEFAULT_STUCK_S = 30.0
DEFAULT_AUDIT_VERIFY_S = 300.0
PING_TIMEOUT_S = 1.5
BEAT_S = 1.0
REGISTER_EVERY_S = 10.0
# An entry not written again for this long belongs to a process that died without unregistering (SIGKILL, a
# lost pod): readers skip it, and its component's next registration removes it.
STALE_AFTER_S = 3 * REGISTER_EVERY_S + 5
COUNT_EVERY_S = 0.1
_EVENT_BACKLOG = 100_000  # events waiting to be counted at most (a stalled thread never grows memory unbounded)
READY_EVENTS = frozenset({"orchestrator_ready", "pup_ready", "api_ready"})
ORCHESTRATOR = "orchestrator"


def _seconds(value: Any) -> float:
    if isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    if isinstance(value, str):
        return parse_duration(value)
    raise ValueError("expected a duration such as '30s' or a number of seconds")


class HealthCheckSpec(BaseModel):
    """holt.yml ``agents.<role>.health_check``: a command whose exit code 0 means healthy."""

    model_config = ConfigDict(extra="ignore")

    command: list[str] | str
    interval: Annotated[float, BeforeValidator(_seconds)] = 30.0
    timeout: Annotated[float, BeforeValidator(_seconds)] = 5.0

    def argv(self) -> list[str]:
        return ["/bin/sh", "-c", self.command] if isinstance(self.command, str) else list(self.command)


def parse_health_check(raw: Any, role: str) -> HealthCheckSpec | None:
    if raw is None:
        return None
    if isinstance(raw, list | str):
        raw = {"command": raw}
    try:
        spec = HealthCheckSpec.model_validate(raw)
    except ValidationError as exc:
        first = exc.errors()[0]
        raise InvalidInput(f"agents.{role}.health_check: {first['msg']}",
                           hint="health_check: {command: [...], interval: 30s, timeout: 5s}") from None
    if not spec.argv() or spec.interval <= 0 or spec.timeout <= 0:
        raise InvalidInput(f"agents.{role}.health_check needs a command and positive interval and timeout")
    return spec


# ---------------------------------------------------------------------------------------------
# The verdict: a pure rule over what the component knows


@dataclass
class Probe:
    ok: bool
    detail: str = ""


@dataclass
class Snapshot:
    component: str
    redis: Probe
    beat_age_s: float
    stuck_after_s: float
    is_orchestrator: bool
    ready_seen: bool
    lock_lost: bool
    lock: Probe | None  # None: not checked (not the orchestrator, not ready yet, or Redis down)
    custom: Probe | None  # None: no health_check configured; Probe(False, "not run yet") before its first run
    custom_configured: bool = False


@dataclass
class Verdict:
    healthy: bool
    ready: bool
    checks: dict[str, dict[str, Any]] = field(default_factory=dict)

    @property
    def problems(self) -> list[str]:
        return [f"{name}: {c['detail']}" for name, c in self.checks.items() if not c["ok"]]


def judge(s: Snapshot) -> Verdict:
    checks: dict[str, dict[str, Any]] = {"redis": {"ok": s.redis.ok, "detail": s.redis.detail or "PONG"}}
    stuck = s.beat_age_s > s.stuck_after_s
    checks["loop"] = {"ok": not stuck, "detail": f"last beat {s.beat_age_s:.1f} s ago"
                      + (f" (stuck: over {s.stuck_after_s:g} s)" if stuck else "")}
    if s.is_orchestrator:
        if s.lock_lost:
            checks["lock"] = {"ok": False, "detail": "the instance lock was lost"}
        elif s.lock is not None:
            checks["lock"] = {"ok": s.lock.ok, "detail": s.lock.detail}
    if s.custom_configured:
        custom = s.custom or Probe(False, "not run yet")
        checks["health_check"] = {"ok": custom.ok, "detail": custom.detail}
    # A health check that has not run yet does not make the component unhealthy, only not ready.
    healthy = all(c["ok"] for name, c in checks.items() if name != "health_check") and (
        s.custom is None or s.custom.ok)
    ready = healthy and s.ready_seen and (not s.custom_configured or (s.custom is not None and s.custom.ok))
    return Verdict(healthy=healthy, ready=ready, checks=checks)


# ---------------------------------------------------------------------------------------------
# The service


class HealthService:
    """Start with ``await start()`` from the component's loop; ``await stop()`` before the loop ends."""

    def __init__(
        self,
        redis_url: str,
        instance: str,
        component: str,
        *,
        health_check: HealthCheckSpec | None = None,
        workspace: Path | None = None,
        check_env: dict[str, str] | None = None,
        bind: str | None = None,
        port: int | None = None,
        replica: str | None = None,
    ) -> None:
        self.redis_url = redis_url
        self.instance = instance
        self.component = component
        self.keys = Keys(instance)
        self.is_orchestrator = component == ORCHESTRATOR
        self.health_check = health_check
        self.workspace = workspace
        self.check_env = check_env or {}
        self.bind = bind or os.environ.get(ENV_BIND, "") or DEFAULT_BIND
        port_text = os.environ.get(ENV_PORT, "")
        self.port = port if port is not None else (int(port_text) if port_text.isdigit() else 0)
        self.stuck_after_s = _env_float(ENV_STUCK_S, DEFAULT_STUCK_S)
        self.audit_verify_s = _env_float(ENV_AUDIT_VERIFY_S, DEFAULT_AUDIT_VERIFY_S)
        self.metrics = EventMetrics(component, instance)
        self.replica = replica or os.environ.get(ENV_REPLICA, "").strip() or f"{socket.gethostname()}:{os.getpid()}"
        self.field = endpoint_field(component, self.replica)  # one field per process: replicas of a role
        self.url = ""
        self.started_at = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        self._beat = time.monotonic()
        self._ready_seen = False
        self._lock_lost = False
        self._custom: Probe | None = None
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._bound = threading.Event()
        self._error: BaseException | None = None
        self._beater: asyncio.Task[None] | None = None
        self._events: collections.deque[tuple[int, dict[str, Any], float]] = \
            collections.deque(maxlen=_EVENT_BACKLOG)
        self.spans: SpanDeriver | None = None

    # ------------------------------------------------------------------ the component's side

    async def start(self) -> None:
        set_process_identity(self.component, self.instance)
        add_observer(self._observe)
        self.spans = tracing_from_env(self.instance, self.component)
        if self.spans is not None:
            add_observer(self.spans.observe)
        self._beater = asyncio.create_task(self._beat_loop())
        self._thread = threading.Thread(target=self._thread_main, name=f"holt-health-{self.component}",
                                        daemon=True)
        self._thread.start()
        await asyncio.to_thread(self._bound.wait, 10.0)
        if self._error is not None:
            await self.stop()
            raise InvalidInput(f"cannot serve /healthz on {self.bind}:{self.port}: {self._error}",
                               hint=f"set {ENV_BIND} / {ENV_PORT} to a free address")

    async def stop(self) -> None:
        remove_observer(self._observe)
        if self.spans is not None:
            remove_observer(self.spans.observe)
        if self._beater is not None:
            self._beater.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._beater
        loop, stop = self._loop, self._stop
        if loop is not None and stop is not None and not loop.is_closed():
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(stop.set)
        if self._thread is not None:
            await asyncio.to_thread(self._thread.join, 5.0)

    def _observe(self, level: int, payload: dict[str, Any]) -> None:
        """On the component's loop, for every event: only a queue append (the counting happens on our thread)."""
        kind = payload.get("event_type")
        if kind in READY_EVENTS:
            self._ready_seen = True
        elif kind == "lock_lost":
            self._lock_lost = True
        self._events.append((level, payload, time.monotonic()))

    def _count_events(self) -> None:
        events = self._events
        while events:
            level, payload, at = events.popleft()
            self.metrics.observe(level, payload, at)
        self.metrics.ready.set(1 if self._ready_seen else 0)

    async def _count_loop(self) -> None:
        while True:
            self._count_events()
            await asyncio.sleep(COUNT_EVERY_S)

    async def _beat_loop(self) -> None:
        while True:
            self._beat = time.monotonic()
            await asyncio.sleep(BEAT_S)

    # ------------------------------------------------------------------ the server's thread

    def _thread_main(self) -> None:
        try:
            asyncio.run(self._serve())
        except BaseException as exc:  # reported to start() if it happens before binding
            self._error = exc
            self._bound.set()

    async def _serve(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        redis = connect_redis(self.redis_url, socket_timeout=PING_TIMEOUT_S, socket_connect_timeout=PING_TIMEOUT_S,
                              client_name=f"holt-health-{self.component}")
        route_to(redis, self.keys)  # on a Redis Cluster: the node serving the instance's slot
        app = web.Application()
        app.router.add_get("/healthz", lambda _: self._healthz(redis))
        app.router.add_get("/readyz", lambda _: self._readyz(redis))
        app.router.add_get("/metrics", lambda _: self._metrics(redis))
        runner = web.AppRunner(app, access_log=None, handle_signals=False)
        await runner.setup()
        tasks: list[asyncio.Task[None]] = []
        try:
            site = web.TCPSite(runner, self.bind, self.port)
            await site.start()
            host, port = runner.addresses[0][:2]
            shown = os.environ.get(ENV_ADVERTISE, "") or (host if host not in ("0.0.0.0", "::")
                                                             else socket.gethostname())
            self.url = f"http://[{shown}]:{port}" if ":" in str(shown) else f"http://{shown}:{port}"
            self._bound.set()
            tasks.append(asyncio.create_task(self._register_loop(redis)))
            tasks.append(asyncio.create_task(self._count_loop()))
            if self.health_check is not None:
                tasks.append(asyncio.create_task(self._custom_loop(self.health_check)))
            if self.spans is not None:
                tasks.append(asyncio.create_task(self.spans.run(redis)))
            if self.is_orchestrator:
                tasks.append(asyncio.create_task(self._audit_follow(redis)))
                if self.audit_verify_s > 0:
                    tasks.append(asyncio.create_task(self._audit_verify_loop(redis)))
            await self._stop.wait()
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            if self.spans is not None:
                with contextlib.suppress(Exception):
                    await self.spans.drain(redis)
                self.spans.provider.shutdown()  # flushes what is still batched
            with contextlib.suppress(Exception):
                await self._unregister(redis)
            await runner.cleanup()
            with contextlib.suppress(Exception):
                await redis.aclose()

    async def verdict(self, redis: Redis) -> Verdict:
        try:
            await asyncio.wait_for(redis.ping(), PING_TIMEOUT_S)
            redis_probe = Probe(True)
        except (RedisError, OSError, TimeoutError) as exc:
            self.metrics.redis_errors.inc()
            redis_probe = Probe(False, f"Redis unreachable: {sanitise_text(str(exc) or type(exc).__name__)[:200]}")
        lock: Probe | None = None
        if self.is_orchestrator and self._ready_seen and redis_probe.ok and not self._lock_lost:
            try:
                owner = await asyncio.wait_for(redis.get(self.keys.lock_owner), PING_TIMEOUT_S)
                mine = f"{socket.gethostname()}:{os.getpid()}:"
                lock = Probe(True, "held") if owner and str(owner).startswith(mine) else \
                    Probe(False, f"the instance lock is held by {sanitise_text(str(owner or 'nobody'))[:100]}")
            except (RedisError, OSError, TimeoutError) as exc:
                lock = Probe(False, f"cannot read the lock: {sanitise_text(str(exc))[:200]}")
        snapshot = Snapshot(
            component=self.component, redis=redis_probe, beat_age_s=time.monotonic() - self._beat,
            stuck_after_s=self.stuck_after_s, is_orchestrator=self.is_orchestrator, ready_seen=self._ready_seen,
            lock_lost=self._lock_lost, lock=lock, custom=self._custom,
            custom_configured=self.health_check is not None,
        )
        verdict = judge(snapshot)
        self.metrics.healthy.set(1 if verdict.healthy else 0)
        return verdict

    def _body(self, verdict: Verdict) -> dict[str, Any]:
        return {"component": self.component, "instance": self.instance, "pid": os.getpid(), "url": self.url,
                "healthy": verdict.healthy, "ready": verdict.ready, "checks": verdict.checks,
                "started_at": self.started_at}

    async def _healthz(self, redis: Redis) -> web.Response:
        verdict = await self.verdict(redis)
        return web.json_response(self._body(verdict), status=200 if verdict.healthy else 503)

    async def _readyz(self, redis: Redis) -> web.Response:
        verdict = await self.verdict(redis)
        return web.json_response(self._body(verdict), status=200 if verdict.ready else 503)

    async def _metrics(self, redis: Redis) -> web.Response:
        self._count_events()
        await self.verdict(redis)
        if self.is_orchestrator:
            try:
                await asyncio.wait_for(self.metrics.refresh_instance(redis), 5.0)
            except (RedisError, OSError, TimeoutError):
                self.metrics.redis_errors.inc()
        return web.Response(body=self.metrics.exposition(),
                            headers={"Content-Type": "text/plain; version=0.0.4; charset=utf-8"})

    # ------------------------------------------------------------------ registration

    def _entry(self) -> str:
        return json.dumps({"url": self.url, "pid": os.getpid(), "host": socket.gethostname(),
                           "started_at": self.started_at, "component": self.component, "replica": self.replica,
                           "seen_ms": int(time.time() * 1000)}, sort_keys=True)

    def _mine(self, raw: Any) -> bool:
        entry = _entry_of(raw)
        return entry.get("pid") == os.getpid() and entry.get("started_at") == self.started_at

    async def _register_loop(self, redis: Redis) -> None:
        while True:  # written again now and then: it comes back after Redis lost its data, and stays fresh
            with contextlib.suppress(RedisError, OSError, TimeoutError):
                await redis.hset(self.keys.health_endpoints, self.field, self._entry())
                await self._remove_stale(redis)
            await asyncio.sleep(REGISTER_EVERY_S)

    async def _remove_stale(self, redis: Redis) -> None:
        """Entries of this component that nobody refreshed (their process died without unregistering)."""
        raw = await redis.hgetall(self.keys.health_endpoints)
        stale = [name for name, value in raw.items()
                 if name != self.field and split_field(str(name))[0] == self.component
                 and _is_stale(_entry_of(value), time.time())]
        if stale:
            await redis.hdel(self.keys.health_endpoints, *stale)

    async def _unregister(self, redis: Redis) -> None:
        current = await redis.hget(self.keys.health_endpoints, self.field)
        if self._mine(current):  # only our own entry: a restarted replica of the same name may have written its own
            await redis.hdel(self.keys.health_endpoints, self.field)

    # ------------------------------------------------------------------ the agent's own health check

    async def _custom_loop(self, spec: HealthCheckSpec) -> None:
        while True:
            self._custom = await run_health_check(spec, self.workspace, self.check_env)
            await asyncio.sleep(spec.interval)

    # ------------------------------------------------------------------ the audit stream (orchestrator)

    async def _audit_follow(self, redis: Redis) -> None:
        r: Any = redis
        last = "$"
        while True:
            try:
                reply = await r.xread({self.keys.audit: last}, block=1000, count=500)
            except (RedisError, OSError, TimeoutError):
                self.metrics.redis_errors.inc()
                await asyncio.sleep(1.0)
                continue
            for _, entries in reply or []:
                for entry_id, fields in entries:
                    last = str(entry_id)
                    await self._audit_entry(r, {str(k): str(v) for k, v in fields.items()})

    async def _audit_entry(self, r: Any, fields: dict[str, str]) -> None:
        request: dict[str, Any] | None = None
        try:
            details = json.loads(fields.get("details", "{}"))
            request_id = details.get("request_id") if isinstance(details, dict) else None
            if request_id:
                raw = await r.hget(self.keys.hitl_request(str(request_id)), "record")
                request = json.loads(raw) if raw else None
        except (ValueError, RedisError, OSError, TimeoutError):
            request = None
        self.metrics.observe_audit(fields, request if isinstance(request, dict) else None)

    async def _audit_verify_loop(self, redis: Redis) -> None:
        trail = AuditTrail(redis, self.keys)
        while True:
            try:
                result = await trail.verify()
                self.metrics.audit_verify_ok.set(1 if result.ok else 0)
                self.metrics.audit_verify_age.set(time.time())
            except (RedisError, OSError, TimeoutError):
                self.metrics.redis_errors.inc()
            await asyncio.sleep(self.audit_verify_s)


async def run_health_check(spec: HealthCheckSpec, workspace: Path | None, env: dict[str, str]) -> Probe:
    """Run the command once: exit 0 within the timeout is healthy."""
    try:
        proc = await asyncio.create_subprocess_exec(
            *spec.argv(), cwd=str(workspace) if workspace else None, env={**os.environ, **env},
            stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
            start_new_session=True,
        )
    except OSError as exc:
        return Probe(False, f"health check could not start: {exc.strerror or exc}")
    try:
        out, _ = await asyncio.wait_for(proc.communicate(), spec.timeout)
    except TimeoutError:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, 9)
        await proc.wait()
        return Probe(False, f"health check timed out after {spec.timeout:g} s")
    text = sanitise_text(out.decode("utf-8", "replace").strip().splitlines()[-1] if out.strip() else "")[:200]
    if proc.returncode == 0:
        return Probe(True, text or "exit 0")
    return Probe(False, f"health check failed (exit {proc.returncode})" + (f": {text}" if text else ""))


def _env_float(name: str, default: float) -> float:
    try:
        return float(os.environ.get(name, "") or default)
    except ValueError:
        return default


# ---------------------------------------------------------------------------------------------
# The client side: what ``holt health`` and ``holt up`` ask


def endpoint_field(component: str, replica: str) -> str:
    """The registry field of one process: ``<component>@<replica>`` (role names have no ``@``)."""
    return f"{component}@{replica}"


def split_field(field: str) -> tuple[str, str]:
    """(component, replica) of a registry field (an entry from before replicas were told apart: replica "")."""
    component, _, replica = field.partition("@")
    return component, replica


def _entry_of(raw: Any) -> dict[str, Any]:
    try:
        entry = json.loads(raw) if raw else {}
    except (ValueError, TypeError):
        return {}
    return entry if isinstance(entry, dict) else {}


def _is_stale(entry: dict[str, Any], now_s: float) -> bool:
    seen = entry.get("seen_ms")
    return isinstance(seen, int) and now_s - seen / 1000 > STALE_AFTER_S


@dataclass
class ComponentHealth:
    component: str
    url: str
    healthy: bool
    ready: bool
    detail: str
    replica: str = ""  # which process of the component (replicas of one role each have a row)

    def to_json(self) -> dict[str, Any]:
        return {"component": self.component, "replica": self.replica, "url": self.url, "healthy": self.healthy,
                "ready": self.ready, "detail": self.detail}


@dataclass(frozen=True)
class Endpoint:
    component: str
    replica: str
    url: str


async def registered_endpoints(redis: Redis, instance: str) -> list[Endpoint]:
    """Every live process's health endpoint, as each recorded it (entries nobody refreshed are left out)."""
    raw = await redis.hgetall(Keys(instance).health_endpoints)
    now_s = time.time()
    out: list[Endpoint] = []
    for name, value in raw.items():
        entry = _entry_of(value)
        if _is_stale(entry, now_s):
            continue
        component, replica = split_field(str(name))
        out.append(Endpoint(component, replica, str(entry.get("url", ""))))
    return out


async def probe_components(redis: Redis, instance: str, expected: list[str] | None = None,
                           timeout_s: float = 3.0) -> list[ComponentHealth]:
    """GET /healthz of every registered process (each replica of a role on its own) and a row for every
    expected component that has none; in component order."""
    import httpx  # the CLI's HTTP client; only the commands that ask need it

    endpoints = await registered_endpoints(redis, instance)
    present = {e.component for e in endpoints}
    endpoints += [Endpoint(c, "", "") for c in expected or [] if c not in present]
    endpoints.sort(key=lambda e: (e.component != ORCHESTRATOR, e.component, e.replica))

    async def one(client: httpx.AsyncClient, e: Endpoint) -> ComponentHealth:
        component, url = e.component, e.url
        if not url:
            return ComponentHealth(component, "", False, False, "no health endpoint registered (not running?)",
                                   e.replica)
        try:
            reply = await client.get(f"{url}/healthz")
            body = reply.json()
        except (httpx.HTTPError, ValueError) as exc:
            return ComponentHealth(component, url, False, False,
                                   f"unreachable: {sanitise_text(str(exc) or type(exc).__name__)[:200]}", e.replica)
        checks = body.get("checks", {}) if isinstance(body, dict) else {}
        problems = [f"{name}: {c.get('detail', '')}" for name, c in checks.items()
                    if isinstance(c, dict) and not c.get("ok")]
        healthy = reply.status_code == 200 and bool(body.get("healthy"))
        return ComponentHealth(component, url, healthy, healthy and bool(body.get("ready")),
                               sanitise_text("; ".join(problems))[:300] or ("ok" if healthy else "unhealthy"),
                               e.replica)

    async with httpx.AsyncClient(timeout=timeout_s) as client:
        return list(await asyncio.gather(*(one(client, e) for e in endpoints)))
