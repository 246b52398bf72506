"""``holt up`` and ``holt down``: start an instance (a supervisor with its orchestrator and one process per
role) and stop it. Instances are local process trees, found through the ``holt:instances`` registry; an instance
is running while its supervisor process is alive."""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from redis.asyncio import Redis

from holt_core import lock
from holt_core.blackboard import Blackboard
from holt_core.cli.common import NameOpt, run_async
from holt_core.cli.instance_common import redis_connection, resolve_here, tail
from holt_core.cli.output import stdout, success, warn
from holt_core.config import CONFIG_FILE, load_config
from holt_core.embedded_redis import env_redis_url, resolve_redis_url
from holt_core.errors import HoltError, NotFound
from holt_core.instances import InstanceRecord, get_record, list_records, supervisor_alive, unregister, workspace_root
from holt_core.keys import Keys, validate_instance_name
from holt_core.lock import clear_dead_lock
from holt_core.logs import configure
from holt_core.operators import ensure_local_operator
from holt_core.processes import pid_alive
from holt_core.redis_cluster import check_cluster_slots
from holt_core.sanitise import sanitise_text
from holt_core.supervisor import (
    SUPERVISOR,
    Supervisor,
    add_log_file,
    check_roles,
    component_log,
    log_dir_for,
    read_state,
    supervise,
    supervisor_argv,
)

if TYPE_CHECKING:
    from holt_core.config import Config

UP_TIMEOUT_S = 30.0
DOWN_TIMEOUT_S = 20.0
# A component that exits this often before it is ever ready will not come up: fail `up` early.
EARLY_FAIL_EXITS = 2
LOG_TAIL_LINES = 20
_POLL_S = 0.05
_DEFAULT_NAME = re.compile(r"^default-(\d+)$")


def register(app: typer.Typer) -> None:
    """Add this module's commands to the ``holt`` app."""
    app.command("up")(up)
    app.command("down")(down)


def up(
    name: NameOpt = None,
    force: Annotated[
        bool, typer.Option("--force", help="Start even if another instance runs on this workspace.")
    ] = False,
    foreground: Annotated[
        bool,
        typer.Option("--foreground", help="Supervise in this process until stopped (for systemd, Kubernetes)."),
    ] = False,
) -> None:
    """Start an instance: an orchestrator and one process per agent, kept alive by a supervisor."""
    root = workspace_root()
    config = load_config(root / CONFIG_FILE)
    for message in config.warnings:
        warn(message)
    roles = list(config.agents)
    check_roles(roles)
    if name is not None:
        validate_instance_name(name)
    url = resolve_redis_url(start=True)
    if env_redis_url() is None:  # local mode: the login user may act as a person at once (docs/security.md)
        made = run_async(ensure_local_operator(url, {n: list(e.roles) for n, e in config.hitl.operators.items()}))
        if made is not None:
            stdout.print(f"operator {made[0]} registered; token saved to {made[1]}")
    instance = run_async(_prepare_up(url, name, root, force=force))
    _exclude_holt_dir(root)
    log_dir = log_dir_for(root, instance)
    log_dir.mkdir(parents=True, exist_ok=True)
    if foreground:
        _up_foreground(instance, root, url, config, log_dir)
    else:
        _up_detached(instance, root, url, log_dir)
        _print_up(instance, log_dir)


async def _prepare_up(url: str, name: str | None, root: Path, *, force: bool) -> str:
    """The instance name to start, after the collision checks; a stale record of that name is removed."""
    async with redis_connection(url) as redis:
        records = await list_records(redis)
        here = [r for r in records if r.workspace_path == str(root)]
        if name is None:
            # Restarting after a crash or reboot resumes this workspace's previous instance and blackboard.
            stale_here = sorted((r for r in here if not supervisor_alive(r.supervisor_pid)),
                                key=lambda r: r.started_at, reverse=True)
            name = stale_here[0].name if stale_here else next_default_name([r.name for r in records])
        existing = next((r for r in records if r.name == name), None)
        if existing is not None and supervisor_alive(existing.supervisor_pid):
            raise HoltError(
                f"instance '{name}' already exists",
                details=[f"Workspace: {existing.workspace_path}", f"Supervisor pid: {existing.supervisor_pid}"],
                hint=f"holt down --name {name} stops it; or choose another name with --name",
            )
        live_here = [r for r in here if r.name != name and supervisor_alive(r.supervisor_pid)]
        if live_here and not force:
            raise HoltError(
                "workspace in use",
                details=[f"Workspace: {root}", f"Instance: {live_here[0].name}"],
                hint="holt down stops that instance; --force starts another one on the same workspace",
            )
        await check_cluster_slots(redis, name)  # on a Redis Cluster, an instance's keys must share one slot
        await _check_lock(redis, name)
        if existing is not None:
            await unregister(redis, name)  # its supervisor is gone: the record is stale
        return name


def next_default_name(names: list[str]) -> str:
    """``default-N`` with N one more than the highest ``default-N`` registered."""
    numbers = [int(m.group(1)) for n in names if (m := _DEFAULT_NAME.match(n))]
    return f"default-{max(numbers, default=0) + 1}"


async def _check_lock(redis: Redis, name: str) -> None:
    """Protocol 4.13: a fresh orchestrator lock means some orchestrator (maybe Go's) serves the instance."""
    await lock.ensure_free(redis, Keys(name), name)


def _exclude_holt_dir(root: Path) -> None:
    """Keep ``.holt/`` (logs) out of ``git status``, so it never makes the workspace look dirty."""
    try:
        out = subprocess.run(["git", "rev-parse", "--git-path", "info/exclude"], cwd=root, capture_output=True,
                             text=True, check=True, timeout=10).stdout.strip()
    except (subprocess.CalledProcessError, OSError, subprocess.TimeoutExpired):
        return  # best effort: forage ignores .holt/ anyway
    exclude = (root / out).resolve()
    try:
        text = exclude.read_text(encoding="utf-8") if exclude.exists() else ""
        if ".holt/" in (line.strip() for line in text.splitlines()):
            return
        exclude.parent.mkdir(parents=True, exist_ok=True)
        with exclude.open("a", encoding="utf-8") as f:
            f.write(("" if not text or text.endswith("\n") else "\n") + ".holt/\n")
    except OSError:
        return


def _up_detached(instance: str, root: Path, url: str, log_dir: Path) -> None:
    """Start the supervisor and wait until it is ready. Ctrl-C at any moment leaves nothing running: one that
    arrives while the supervisor is being started is acted on as soon as its pid is known, and the clean-up
    itself cannot be cut short by another Ctrl-C."""
    interrupted: list[int] = []
    previous = signal.signal(signal.SIGINT, lambda signum, _frame: interrupted.append(signum))
    if previous is None:  # installed outside Python: Python's own is the one to go back to
        previous = signal.default_int_handler
    proc: subprocess.Popen[bytes] | None = None
    try:
        with component_log(log_dir, SUPERVISOR).open("ab") as log:
            proc = subprocess.Popen(
                supervisor_argv(instance, root),
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=root,
                # Not the URL: the supervisor finds Redis as this command did, and again after a Redis restart.
                env=dict(os.environ),
                start_new_session=True,  # outlives this command and the terminal
            )
        signal.signal(signal.SIGINT, previous)
        if interrupted:
            raise KeyboardInterrupt
        _wait_ready(proc, instance, log_dir)
        from holt_core.cli.ops_cmds import ENV_UP_HEALTH_TIMEOUT_S, UP_HEALTH_TIMEOUT_S, wait_healthy

        state = read_state(log_dir)
        run_async(wait_healthy(url, instance, list(state.components) if state else [],
                               float(os.environ.get(ENV_UP_HEALTH_TIMEOUT_S, "") or UP_HEALTH_TIMEOUT_S)))
    except BaseException:  # a failure or Ctrl-C: leave nothing running
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        try:
            if proc is not None:
                _stop_supervisor(proc.pid, log_dir, DOWN_TIMEOUT_S, proc)
                with contextlib.suppress(HoltError):  # the start failure is the error worth reporting
                    run_async(_unregister_run(url, instance, proc.pid))
        finally:
            signal.signal(signal.SIGINT, previous)
        raise


def _wait_ready(proc: subprocess.Popen[bytes], instance: str, log_dir: Path) -> None:
    """Poll the supervisor's state file until every component said it is ready, with a deadline."""
    deadline = time.monotonic() + UP_TIMEOUT_S
    while True:
        code = proc.poll()
        state = read_state(log_dir)
        if state is not None and state.supervisor_pid == proc.pid:
            if state.status == "running":
                return
            crashing = [c for c, s in state.components.items() if not s.ready and s.exits >= EARLY_FAIL_EXITS]
            if crashing:
                raise _start_failure(instance, log_dir, crashing, f"{', '.join(crashing)} keeps exiting")
        if code is not None:
            raise _start_failure(instance, log_dir, [SUPERVISOR], f"the supervisor exited with code {code}")
        if time.monotonic() > deadline:
            waiting = [c for c, s in state.components.items() if not s.ready] if state else [SUPERVISOR]
            raise _start_failure(instance, log_dir, waiting or [SUPERVISOR],
                                 f"not ready after {UP_TIMEOUT_S:g} s (waiting for {', '.join(waiting)})")
        time.sleep(_POLL_S)


def _start_failure(instance: str, log_dir: Path, components: list[str], reason: str) -> HoltError:
    details: list[str] = []
    for component in components[:2]:
        path = component_log(log_dir, component)
        details.append(f"--- {path} (last lines) ---")
        details.extend(sanitise_text(line) for line in tail(path, LOG_TAIL_LINES))
    return HoltError(f"instance '{instance}' failed to start: {reason}", details=details,
                     hint=f"nothing was left running; all logs are in {log_dir}")


def _up_foreground(instance: str, root: Path, url: str, config: Config, log_dir: Path) -> None:
    configure(sys.stderr)
    add_log_file(component_log(log_dir, SUPERVISOR))
    supervisor = Supervisor(instance, root, url, list(config.agents), on_ready=lambda: _print_up(instance, log_dir),
                            api=config.api.enabled)
    asyncio.run(supervise(supervisor))


def _print_up(instance: str, log_dir: Path) -> None:
    success(f"Instance '{instance}' is up")
    stdout.print(f"  Logs: {log_dir}")
    stdout.print('  Next: holt forage --goal "..." --watch   |   holt logs orchestrator -f   |   holt down')


# ---------------------------------------------------------------------------------------------
# down


def down(name: NameOpt = None) -> None:
    """Stop an instance's processes and remove it from the registry (its blackboard data stays)."""
    url = resolve_redis_url(start=False)
    instance = run_async(_down(url, name))
    success(f"Instance '{instance}' removed successfully")


async def _down(url: str, name: str | None) -> str:
    async with redis_connection(url) as redis:
        instance = await resolve_here(redis, name)
        record = await get_record(redis, instance)
        if record is None:
            raise NotFound(f"instance '{instance}' not found", hint="holt list shows the registered instances")
        if supervisor_alive(record.supervisor_pid):
            log_dir = Path(record.log_dir) if record.log_dir else None
            await asyncio.to_thread(_stop_supervisor, record.supervisor_pid, log_dir, DOWN_TIMEOUT_S, None)
            # An orchestrator killed on the way down (by us or its supervisor) could not release its lock.
            await clear_dead_lock(Blackboard(redis, instance))
        await _unregister_if(redis, record)
        return instance


def _stop_supervisor(pid: int, log_dir: Path | None, timeout: float, proc: subprocess.Popen[bytes] | None) -> bool:
    """SIGTERM the supervisor, wait, then SIGKILL it and its children. True if it had to be killed."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.kill(pid, signal.SIGTERM)
    if _wait_gone(pid, timeout, proc):
        return False
    state = read_state(log_dir) if log_dir is not None else None
    children = [s.pid for s in state.components.values() if s.pid] if state and state.supervisor_pid == pid else []
    for target in [pid, *children]:
        if not supervisor_alive(target):
            continue
        with contextlib.suppress(ProcessLookupError, PermissionError):
            # Detached supervisors and all children lead their own groups; a foreground one does not.
            if os.getpgid(target) == target:
                os.killpg(target, signal.SIGKILL)
            else:
                os.kill(target, signal.SIGKILL)
    _wait_gone(pid, 5.0, proc)
    return True


def _wait_gone(pid: int, timeout: float, proc: subprocess.Popen[bytes] | None) -> bool:
    if proc is not None:  # our own child: wait() reaps it
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            return False
        return True
    deadline = time.monotonic() + timeout
    while pid_alive(pid):
        if time.monotonic() > deadline:
            return False
        time.sleep(_POLL_S)
    return True


async def _unregister_run(url: str, instance: str, supervisor_pid: int) -> None:
    async with redis_connection(url) as redis:
        record = await get_record(redis, instance)
        if record is not None and record.supervisor_pid == supervisor_pid:
            await unregister(redis, instance)


async def _unregister_if(redis: Redis, record: InstanceRecord) -> None:
    """Remove the record unless a newer run of the same name has replaced it meanwhile."""
    current = await get_record(redis, record.name)
    if current is not None and current.run_id == record.run_id:
        await unregister(redis, record.name)
