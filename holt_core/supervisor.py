"""Runs one instance's processes (the orchestrator and one pup per agent) and keeps them alive.

Started detached by ``holt up`` (``python -m holt_core.supervisor``) or in the foreground by
``holt up --foreground``. Each child runs in its own process group, so stopping it also stops what it
started (controller workers). Its output is copied line by line to ``<log dir>/<component>.log``; the
supervisor reads the ``orchestrator_ready``/``pup_ready`` lines on the way and publishes readiness in
``<log dir>/state.json`` and in the instance's ``holt:instances`` record, which is what ``holt up`` waits on.

Children watch ``HOLT_SUPERVISOR_PID``: when their parent is no longer the supervisor (it was killed),
they stop on their own instead of running unsupervised.

Redis may go away and come back (``holt redis stop``/``start``) under a running instance. The children
reconnect by themselves (``redis_wire``); the supervisor only makes sure that a child it (re)starts gets the
URL that works now: it re-reads the URL before every start (``known_redis_url``: the private server's
remembered address, which survives its restarts), starts nothing while that Redis does not answer, and
restarts every child when the address changed (the old port was taken). What each child is doing
(ready, restarting and why, waiting for Redis, reconnecting) is in ``state.json``; ``describe`` turns that
into the one status ``holt list`` shows.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import contextlib
import json
import logging
import os
import signal
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Literal

from pydantic import BaseModel, ValidationError
from redis.asyncio import Redis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import RedisError

from holt_core import logs
from holt_core.acl import AGENT_URL_ENV, scoped_url
from holt_core.blackboard import Blackboard, connect_redis
from holt_core.config import CONFIG_FILE, load_config
from holt_core.embedded_redis import ENV_URL, known_redis_url, resolve_redis_url
from holt_core.errors import HoltError, InvalidInput
from holt_core.instances import InstanceRecord, get_record, register, supervisor_alive
from holt_core.keys import INSTANCES, validate_instance_name
from holt_core.lock import clear_dead_lock
from holt_core.logs import EventLogger, RotatingFile
from holt_core.waiting import wait_set

ENV_SUPERVISOR_PID = "HOLT_SUPERVISOR_PID"
ORCHESTRATOR = "orchestrator"
SUPERVISOR = "supervisor"
API = "api"  # the approvals API (holt_core/api/server.py); its api_ready line carries the URL for the registry
RESERVED_COMPONENTS = (ORCHESTRATOR, SUPERVISOR, API)
STATE_FILE = "state.json"
READY_EVENTS = frozenset({"orchestrator_ready", "pup_ready", "api_ready"})
# What a child logs when its Redis connection drops and when it is back (its subscription, re-read done).
LOST_EVENTS = frozenset({"subscription_lost"})
RESTORED_EVENTS = frozenset({"subscription_restored"})

BACKOFF_INITIAL_S = 0.5
BACKOFF_MAX_S = 30.0
BACKOFF_RESET_UPTIME_S = 60.0
STOP_TIMEOUT_S = 10.0
# Waiting for Redis before a (re)start: first and longest pause between pings; how often the address is re-read.
REDIS_WAIT_INITIAL_S = 0.2
REDIS_WAIT_MAX_S = 2.0
URL_CHECK_S = 2.0
_PING_TIMEOUT_S = 2.0
# A component that exited this many times in a row, each time before running BACKOFF_RESET_UPTIME_S, is crash-looping
# (also while it is briefly up between two crashes: for its first STABLE_AFTER_S seconds).
CRASH_LOOP_EXITS = 2
STABLE_AFTER_S = 10.0
_REASON_CHARS = 120
# After a child exits, how long its output pipe may stay open (held by a grandchild) before we stop reading.
_DRAIN_TIMEOUT_S = 2.0
_READ_CHUNK = 65536
_TAIL_LINES = 12

Status = Literal["starting", "running", "stopping", "stopped"]
# starting: launched, not ready yet; ready; restarting: exited, waiting out its backoff; waiting_for_redis: not
# started because Redis does not answer; reconnecting: running, but its Redis connection dropped; stopped.
ComponentStatus = Literal["starting", "ready", "restarting", "waiting_for_redis", "reconnecting", "stopped"]


# ---------------------------------------------------------------------------------------------
# Paths, time and processes (shared with the CLI)


def log_dir_for(workspace: Path, instance: str) -> Path:
    return workspace / ".holt" / "logs" / instance


def component_log(log_dir: Path, component: str) -> Path:
    return log_dir / f"{component}.log"


def utc_now_iso() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def check_roles(roles: list[str]) -> None:
    """Roles name log files next to ``orchestrator.log`` and ``supervisor.log``; those two names are taken."""
    for role in roles:
        if role.lower() in RESERVED_COMPONENTS:
            raise InvalidInput(
                f"{CONFIG_FILE}: agent role '{role}' is reserved",
                hint=f"rename the agent; {' and '.join(RESERVED_COMPONENTS)} are holt's own components",
            )


is_holt_process = supervisor_alive  # the name the CLI uses


def child_argv(component: str, instance: str, workspace: Path) -> list[str]:
    """The command of one component; ``-m`` so it works whether or not ``holt`` is on PATH."""
    base = [sys.executable, "-m", "holt_core.cli.main"]
    if component == ORCHESTRATOR:
        return [*base, "orchestrator", "--instance", instance, "--workspace", str(workspace)]
    if component == API:
        return [sys.executable, "-m", "holt_core.api.server", "--instance", instance, "--workspace", str(workspace)]
    return [*base, "pup", "--instance", instance, "--agent", component, "--workspace", str(workspace)]


def supervisor_argv(instance: str, workspace: Path) -> list[str]:
    return [sys.executable, "-m", "holt_core.supervisor", "--instance", instance, "--workspace", str(workspace)]


# ---------------------------------------------------------------------------------------------
# state.json: what `holt up`, `holt down` and tests read about the running processes


class ComponentState(BaseModel):
    pid: int = 0
    ready: bool = False
    starts: int = 0
    exits: int = 0
    last_exit_code: int | None = None
    started_at: str = ""
    status: ComponentStatus = "starting"
    # Why it last exited or stopped working, in a few words (from its own error output).
    reason: str = ""
    # Exits in a row after a short run (under BACKOFF_RESET_UPTIME_S): a crash loop when it reaches CRASH_LOOP_EXITS.
    quick_exits: int = 0


class SupervisorState(BaseModel):
    instance: str
    run_id: str
    supervisor_pid: int
    status: Status
    updated_at: str
    components: dict[str, ComponentState]


def read_state(log_dir: Path) -> SupervisorState | None:
    try:
        return SupervisorState.model_validate_json((log_dir / STATE_FILE).read_bytes())
    except (OSError, ValidationError):
        return None  # absent, or torn by a concurrent writer of an older version: ask again later


def describe(state: SupervisorState, now: datetime | None = None) -> str:
    """The one-word-or-so status of an instance whose supervisor runs: ``Running`` only when every component
    is ready, connected and not in a crash loop; else ``degraded (<what>: <why>)``, ``Starting`` or ``Stopping``."""
    if state.status == "starting" and not any(c.exits for c in state.components.values()):
        return "Starting"
    if state.status in ("stopping", "stopped"):
        return "Stopping"
    moment = now or datetime.now(UTC)
    problems: list[str] = []
    for name, component in state.components.items():
        problem = _component_problem(component, moment)
        if problem:
            problems.append(f"{name} {problem}")
    if not problems:
        return "Running"
    shown = "; ".join(problems[:2]) + (f"; +{len(problems) - 2} more" if len(problems) > 2 else "")
    return f"degraded ({shown})"


def _component_problem(c: ComponentState, now: datetime) -> str:
    why = f": {c.reason}" if c.reason else ""
    if c.status == "waiting_for_redis":
        return f"waiting for Redis{why}"
    if c.status == "reconnecting":
        return "reconnecting to Redis"
    if not c.ready:
        if c.status == "restarting" or c.exits:
            return f"restarting{why}"
        return "starting"
    if c.quick_exits >= CRASH_LOOP_EXITS:
        try:
            uptime = (now - datetime.fromisoformat(c.started_at.replace("Z", "+00:00"))).total_seconds()
        except ValueError:
            uptime = 0.0
        if uptime < STABLE_AFTER_S:
            return f"crash-looping ({c.quick_exits} quick exits){why}"
    return ""


def exit_reason(lines: list[str]) -> str:
    """A few words on why a component stopped, from the last lines it printed: holt's ``error:`` line (with
    its first detail), a JSON log line at error level, or a traceback's last line."""
    for i in range(len(lines) - 1, -1, -1):
        line = lines[i].strip()
        if line.startswith("error:"):
            text = line[len("error:"):].strip()
            detail = lines[i + 1].strip() if i + 1 < len(lines) and lines[i + 1].startswith("  ") else ""
            return _short_reason(f"{text}: {detail}" if detail else text)
        if line.startswith("{"):
            try:
                event = json.loads(line)
            except ValueError:
                continue
            if isinstance(event, dict) and event.get("level") in ("error", "critical"):
                text = event.get("error") or event.get("message") or event.get("event_type") or ""
                return _short_reason(str(text))
    tail = next((line.strip() for line in reversed(lines) if line.strip() and not line.startswith("{")), "")
    return _short_reason(tail)


def _short_reason(text: str) -> str:
    lowered = text.lower()
    for needle, short in (("connection refused", "connection refused"), ("invalid password", "wrong password"),
                          ("authentication", "wrong password"), ("timeout", "timed out"),
                          ("timed out", "timed out")):
        if needle in lowered:
            return short
    text = " ".join(text.split())
    return text if len(text) <= _REASON_CHARS else text[: _REASON_CHARS - 3] + "..."


def _write_atomically(path: Path, text: str) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


# ---------------------------------------------------------------------------------------------
# The supervisor


@dataclass
class _Child:
    component: str
    argv: list[str]
    log: IO[bytes] | RotatingFile
    state: ComponentState = field(default_factory=ComponentState)
    proc: asyncio.subprocess.Process | None = None
    held_lock: bool = False  # the orchestrator said it was ready (so it held the instance lock)
    url: str = ""  # the Redis URL this run was given
    tail: collections.deque[str] = field(default_factory=lambda: collections.deque(maxlen=_TAIL_LINES))


class Supervisor:
    def __init__(
        self,
        instance: str,
        workspace: Path,
        redis_url: str,
        roles: list[str],
        *,
        on_ready: Callable[[], None] | None = None,
        resolve_url: Callable[[], str | None] = known_redis_url,
        api: bool = True,
    ) -> None:
        check_roles(roles)
        self.instance = validate_instance_name(instance)
        self.workspace = workspace
        self.redis_url = redis_url
        # Re-read before every start: the URL that works now (None: keep the one we have).
        self._resolve_url = resolve_url
        self.roles = list(roles)
        self.components = [ORCHESTRATOR, *([API] if api else []), *self.roles]
        self.log_dir = log_dir_for(workspace, instance)
        self.run_id = str(uuid.uuid4())
        self.status: Status = "starting"
        self.log = EventLogger(SUPERVISOR, instance)
        self._on_ready = on_ready
        self._children: list[_Child] = []
        self._redis: Redis | None = None
        self._registry_url = redis_url  # what self._redis connects to
        self._record: InstanceRecord | None = None
        self._background: set[asyncio.Task[None]] = set()
        self._record_lock = asyncio.Lock()  # whole-record writes must land in the order they were made

    # -------------------------------------------------------------- lifecycle

    async def run(self, stop: asyncio.Event) -> None:
        """Register, start every child, keep them alive until ``stop``, then stop them and unregister."""
        self.log_dir.mkdir(parents=True, exist_ok=True)
        self._redis = connect_redis(self.redis_url)
        try:
            await self._register()
            self.log.info("supervisor_started", pid=os.getpid(), run_id=self.run_id, workspace=str(self.workspace),
                          components=self.components)
            for component in self.components:
                log = RotatingFile(component_log(self.log_dir, component))  # rotated by size (HOLT_LOG_MAX_BYTES)
                self._children.append(_Child(component, child_argv(component, self.instance, self.workspace), log))
            self._write_state()
            tasks = [asyncio.create_task(self._keep_alive(child, stop)) for child in self._children]
            watcher = asyncio.create_task(self._watch_address(stop))
            await stop.wait()
            watcher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await watcher
            await self._shutdown(tasks)
            if self._background:
                await asyncio.gather(*self._background, return_exceptions=True)
        finally:
            await self._unregister()
            await self._redis.aclose()
            for child in self._children:
                child.log.close()
            self.log.info("supervisor_stopped", pid=os.getpid())

    async def _keep_alive(self, child: _Child, stop: asyncio.Event) -> None:
        delay = BACKOFF_INITIAL_S
        while not stop.is_set():
            started = time.monotonic()
            try:
                code = await self._run_once(child, stop)
            except Exception as exc:  # never stop supervising a component because of one bad start
                self.log.error("error", message="supervising failed", child=child.component, error=repr(exc))
                code = -1
            if stop.is_set():
                return
            uptime = time.monotonic() - started
            if uptime >= BACKOFF_RESET_UPTIME_S:
                delay = BACKOFF_INITIAL_S  # it ran long enough: this is a new failure, not a crash loop
            if child.component == ORCHESTRATOR and child.held_lock:
                await self._release_dead_lock()
            self._note(child, "child_exited", logging.WARNING, pid=child.state.pid, exit_code=code,
                       uptime_s=round(uptime, 1), restart_in_s=delay)
            await wait_set(stop, delay)
            delay = min(delay * 2, BACKOFF_MAX_S)
            if not stop.is_set():
                self._note(child, "child_restarting", logging.WARNING, restarts=child.state.starts)

    # -------------------------------------------------------------- Redis: the URL that works now

    def current_url(self) -> str:
        """The URL to give a child now (re-read every time: the server may have moved)."""
        try:
            url = self._resolve_url()
        except HoltError:
            url = None
        if url and url != self.redis_url:
            self.redis_url = url
        return self.redis_url

    async def _wait_for_redis(self, child: _Child, stop: asyncio.Event) -> str:
        """The current URL once Redis answers on it (a child started earlier would only crash-loop)."""
        delay = REDIS_WAIT_INITIAL_S
        noted = False
        while True:
            url = self.current_url()
            error = await _ping(url)
            if error is None or stop.is_set():
                if noted:
                    self.log.info("redis_available", child=child.component)
                return url
            if not noted:
                noted = True
                child.state.status = "waiting_for_redis"
                child.state.reason = error
                self._note(child, "waiting_for_redis", logging.WARNING, error=error)
                self._write_state()
            await wait_set(stop, delay)
            delay = min(delay * 2, REDIS_WAIT_MAX_S)

    async def _watch_address(self, stop: asyncio.Event) -> None:
        """Restart every child when the Redis address changed (the old port was taken at a restart): they
        would otherwise reconnect to the old one forever."""
        while not stop.is_set():
            await wait_set(stop, URL_CHECK_S)
            if stop.is_set():
                return
            url = self.current_url()
            stale = [c for c in self._children if c.proc is not None and c.url and c.url != url]
            if not stale:
                continue
            self.log.warning("redis_address_changed", restarting=[c.component for c in stale])
            await self._reconnect_registry(url)
            for child in stale:
                child.state.reason = "Redis moved to another port"
                _signal_group(child, signal.SIGTERM)
            await wait_set(stop, STOP_TIMEOUT_S)
            for child in stale:
                if child.proc is not None and child.url != url:  # ignored SIGTERM: same as at shutdown
                    self._note(child, "child_killed", logging.WARNING, pid=child.state.pid,
                               reason=f"still running {STOP_TIMEOUT_S:g} s after SIGTERM")
                    _signal_group(child, signal.SIGKILL)

    async def _reconnect_registry(self, url: str) -> None:
        old, self._redis, self._registry_url = self._redis, connect_redis(url), url
        if old is not None:
            with contextlib.suppress(Exception):
                await old.aclose()
        if self._record is not None:
            await self._update_record()

    async def _run_once(self, child: _Child, stop: asyncio.Event) -> int:
        """Start the child, copy its output until it exits; its exit code (-1 if it could not start)."""
        url = await self._wait_for_redis(child, stop)
        if stop.is_set():
            return 0
        if url != self._registry_url:
            await self._reconnect_registry(url)
        env = {
            **os.environ,
            # Never the admin for the orchestrator and the agents: they get their own Redis users (holt_core/acl.py).
            # The approvals API keeps it, as this supervisor does: it checks operators' tokens against the registry
            # and acts for a Slack user mapped in holt.yml; it runs no agent code.
            ENV_URL: url if child.component == API else scoped_url(
                url, "orchestrator" if child.component == ORCHESTRATOR else "agent"),
            ENV_SUPERVISOR_PID: str(os.getpid()),
            "PYTHONUNBUFFERED": "1",
        }
        child.url = url
        child.tail.clear()
        if child.component == ORCHESTRATOR:  # for the workers it starts; never in an agent's environment
            env[AGENT_URL_ENV] = scoped_url(url, "agent")
        child.state.ready = False
        child.state.status = "starting"
        child.held_lock = False
        try:
            proc = await asyncio.create_subprocess_exec(
                *child.argv,
                stdin=asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.STDOUT,
                cwd=self.workspace,
                env=env,
                start_new_session=True,  # its own group: stopping it also stops the workers it started
            )
        except OSError as exc:
            child.state.exits += 1
            child.state.last_exit_code = -1
            self._note(child, "child_start_failed", logging.ERROR, error=str(exc))
            self._write_state()
            return -1
        child.proc = proc
        child.state.pid = proc.pid
        child.state.starts += 1
        child.state.started_at = utc_now_iso()
        self._note(child, "child_started", pid=proc.pid, attempt=child.state.starts)
        self._write_state()
        if stop.is_set():
            _signal_group(child, signal.SIGTERM)  # started while shutdown began: its SIGTERM went to no one
        if child.component == ORCHESTRATOR:
            await self._update_record(orchestrator_pid=proc.pid)
        assert proc.stdout is not None
        pump = asyncio.create_task(self._pump(child, proc.stdout))
        code = await proc.wait()
        try:
            await asyncio.wait_for(asyncio.shield(pump), _DRAIN_TIMEOUT_S)
        except TimeoutError:
            pump.cancel()  # a grandchild still holds the pipe; its output is not worth waiting for
            with contextlib.suppress(asyncio.CancelledError):
                await pump
        child.proc = None
        child.state.ready = False
        child.state.exits += 1
        child.state.last_exit_code = code
        child.state.status = "stopped" if stop.is_set() else "restarting"
        reason = exit_reason(list(child.tail))
        if reason or code != 0:
            child.state.reason = reason or f"exit code {code}"
        try:
            started = datetime.fromisoformat(child.state.started_at.replace("Z", "+00:00"))
            quick = (datetime.now(UTC) - started).total_seconds() < BACKOFF_RESET_UPTIME_S
        except ValueError:
            quick = True
        child.state.quick_exits = child.state.quick_exits + 1 if quick else 0
        self._write_state()
        return code

    async def _pump(self, child: _Child, stream: asyncio.StreamReader) -> None:
        pending = b""
        while True:
            chunk = await stream.read(_READ_CHUNK)
            if not chunk:
                break
            with contextlib.suppress(OSError):  # a full disk must not stall the child on a full pipe
                child.log.write(chunk)
            pending += chunk
            *lines, pending = pending.split(b"\n")
            for line in lines:
                self._inspect(child, line)
            if len(pending) > _READ_CHUNK:
                pending = b""  # an endless line is not a readiness line
        if pending:
            self._inspect(child, pending)

    def _inspect(self, child: _Child, line: bytes) -> None:
        if not line.startswith(b"{") or b'"level": "error"' in line or b'"level":"error"' in line:
            # Its own error output (not a log event) or an error event: kept to say why it exits.
            child.tail.append(line[:_READ_CHUNK].decode("utf-8", "replace"))
        if b"_ready" not in line and b"lock_lost" not in line and b"subscription_" not in line:
            return  # cheap filter: most lines are not interesting
        try:
            event = json.loads(line)
        except ValueError:
            return
        if not isinstance(event, dict):
            return
        kind = event.get("event_type")
        if kind == "lock_lost":
            child.held_lock = False
        elif kind in LOST_EVENTS and child.state.ready:
            child.state.status = "reconnecting"
            child.state.reason = _short_reason(str(event.get("error", "")))
            self._write_state()
        elif kind in RESTORED_EVENTS and child.state.status == "reconnecting":
            child.state.status = "ready"
            child.state.reason = ""
            self._write_state()
        elif kind in READY_EVENTS and not child.state.ready:
            if kind == "api_ready":
                recorded = asyncio.get_running_loop().create_task(self._update_record(api_url=str(event.get("url"))))
                self._background.add(recorded)
                recorded.add_done_callback(self._background.discard)
            child.state.ready = True
            child.state.status = "ready"
            child.held_lock = child.component == ORCHESTRATOR
            self.log.info("child_ready", child=child.component, pid=child.state.pid)
            if self.status == "starting" and all(c.state.ready for c in self._children):
                self.status = "running"
                self.log.info("instance_ready", pid=os.getpid())
                task = asyncio.get_running_loop().create_task(self._update_record(status="running"))
                self._background.add(task)
                task.add_done_callback(self._background.discard)
                if self._on_ready is not None:
                    self._on_ready()
            self._write_state()

    async def _shutdown(self, tasks: list[asyncio.Task[None]]) -> None:
        self.status = "stopping"
        self._write_state()
        self.log.info("shutdown_started", pid=os.getpid())
        for child in self._children:
            _signal_group(child, signal.SIGTERM)
        _, pending = await asyncio.wait(tasks, timeout=STOP_TIMEOUT_S)
        for child in self._children:
            if child.proc is not None and child.proc.returncode is None:
                self._note(child, "child_killed", logging.WARNING, pid=child.proc.pid,
                           reason=f"still running {STOP_TIMEOUT_S:g} s after SIGTERM")
                _signal_group(child, signal.SIGKILL)
        if pending:
            await asyncio.wait(pending)
        for task in tasks:
            if not task.cancelled() and task.exception() is not None:
                self.log.error("error", message="child task failed", error=repr(task.exception()))
        self.status = "stopped"
        self._write_state()

    # -------------------------------------------------------------- registry

    async def _register(self) -> None:
        assert self._redis is not None
        existing = await get_record(self._redis, self.instance)
        if existing is not None and existing.supervisor_pid not in (0, os.getpid()) \
                and is_holt_process(existing.supervisor_pid):
            raise HoltError(f"instance '{self.instance}' already exists",
                            hint=f"its supervisor is pid {existing.supervisor_pid}; holt down stops it")
        self._record = InstanceRecord(
            name=self.instance,
            run_id=self.run_id,
            workspace_path=str(self.workspace),
            started_at=utc_now_iso(),
            supervisor_pid=os.getpid(),
            log_dir=str(self.log_dir),
            status="starting",
        )
        await register(self._redis, self._record)

    async def _update_record(self, **changes: object) -> None:
        if self._record is None or self._redis is None:
            return
        async with self._record_lock:
            self._record = self._record.replace(**changes)
            try:
                await register(self._redis, self._record)
            except (RedisError, OSError) as exc:
                # The processes matter more than the registry; keep supervising.
                self.log.warning("registry_update_failed", error=str(exc))

    async def _unregister(self) -> None:
        if self._redis is None or self._record is None:
            return
        try:
            current = await get_record(self._redis, self.instance)
            # Only our own record: a newer `holt up` may already have replaced it.
            if current is not None and current.supervisor_pid == os.getpid():
                await self._redis.hdel(INSTANCES, self.instance)
        except (RedisError, OSError) as exc:
            self.log.warning("unregister_failed", error=str(exc))

    async def _release_dead_lock(self) -> None:
        """The orchestrator died holding the instance lock; free it so its restart need not wait 60 s.

        Through the lock's own rule: freed only when its owner is provably gone (this host, its pid reaped), in
        one write guarded on the owner token, so a lock some other orchestrator took meanwhile stays.
        """
        if self._redis is None:
            return
        try:
            # The lock's one rule (holt_core/lock.py): only a provably dead holder's lock, guarded on its owner.
            await clear_dead_lock(Blackboard(self._redis, self.instance))
        except (RedisError, OSError) as exc:
            self.log.warning("lock_release_failed", error=str(exc))

    # -------------------------------------------------------------- output

    def _note(self, child: _Child, event_type: str, level: int = logging.INFO, **fields: object) -> None:
        """An event in the supervisor log, repeated in the child's own log so that one file tells its story."""
        self.log.event(event_type, level, child=child.component, **fields)
        body = {
            "timestamp": utc_now_iso(),
            "level": logging.getLevelName(level).lower(),
            "component": SUPERVISOR,
            "instance": self.instance,
            "event_type": event_type,
            "child": child.component,
            **fields,
        }
        with contextlib.suppress(OSError):
            child.log.write((json.dumps(body, sort_keys=True, default=str) + "\n").encode())

    def _write_state(self) -> None:
        state = SupervisorState(
            instance=self.instance,
            run_id=self.run_id,
            supervisor_pid=os.getpid(),
            status=self.status,
            updated_at=utc_now_iso(),
            components={c.component: c.state for c in self._children},
        )
        try:
            _write_atomically(self.log_dir / STATE_FILE, state.model_dump_json(indent=2) + "\n")
        except OSError as exc:
            self.log.warning("state_write_failed", error=str(exc))


async def _ping(url: str) -> str | None:
    """None if Redis answers at ``url``, else why not (a few words)."""
    client = connect_redis(url, retry=Retry(NoBackoff(), 0), socket_connect_timeout=_PING_TIMEOUT_S,
                           socket_timeout=_PING_TIMEOUT_S)
    try:
        await client.ping()
    except (RedisError, OSError) as exc:
        return _short_reason(str(exc)) or type(exc).__name__
    finally:
        with contextlib.suppress(Exception):
            await client.aclose()
    return None


def _signal_group(child: _Child, sig: signal.Signals) -> None:
    proc = child.proc
    if proc is None or proc.returncode is not None:
        return
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, sig)


# ---------------------------------------------------------------------------------------------
# Entry points


def add_log_file(path: Path) -> None:
    """Also write holt's JSON log lines to ``path``, rotated by size (foreground mode keeps stderr for the
    service manager)."""
    logs.add_log_file(path)


async def supervise(supervisor: Supervisor) -> None:
    """Run until SIGTERM, SIGINT or SIGHUP."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        loop.add_signal_handler(sig, stop.set)
    try:
        await supervisor.run(stop)
    finally:
        for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
            loop.remove_signal_handler(sig)


def main(argv: list[str] | None = None) -> int:
    """``python -m holt_core.supervisor``: the detached supervisor ``holt up`` starts (stderr = its log)."""
    parser = argparse.ArgumentParser(prog="holt-supervisor")
    parser.add_argument("--instance", required=True)
    parser.add_argument("--workspace", required=True, type=Path)
    args = parser.parse_args(argv)
    # Its own log, rotated by size like its children's; stdout and stderr follow the current file (holt up
    # pointed them at supervisor.log, which rotation would otherwise leave them writing to under a new name).
    logs.log_to_file(component_log(log_dir_for(args.workspace.resolve(), args.instance), SUPERVISOR), stdio=True)
    log = EventLogger(SUPERVISOR, args.instance)
    try:
        workspace = args.workspace.resolve()
        config = load_config(workspace / CONFIG_FILE)
        url = resolve_redis_url(start=False)
        supervisor = Supervisor(args.instance, workspace, url, list(config.agents), api=config.api.enabled)
        asyncio.run(supervise(supervisor))
    except HoltError as exc:
        log.error("supervisor_failed", message=exc.message, details=exc.details)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
