"""Instance lifecycle: ``holt init|up|down|list|forage|logs``, and the long-running components
``holt orchestrator`` and ``holt pup`` that the supervisor (``holt_core.supervisor``) starts.

Instances are local process trees, found through the ``holt:instances`` registry; an instance is
running while its supervisor process is alive.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import json
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any, BinaryIO, TypeVar

import typer
from redis.asyncio import Redis

from holt_core import lock
from holt_core.blackboard import Blackboard, connect_redis, next_message
from holt_core.cli.common import AsOpt, NameOpt, run_async
from holt_core.cli.output import stdout, success, warn
from holt_core.config import CONFIG_FILE, Config, load_config
from holt_core.embedded_redis import ENV_URL, env_redis_url, known_redis_url, resolve_redis_url
from holt_core.errors import HoltError, InvalidInput, MalformedRecord, NotFound, RedisUnavailable
from holt_core.hitl.requests import post_goal
from holt_core.identity import resolve_operator
from holt_core.instances import (
    InstanceRecord,
    get_record,
    list_records,
    resolve_instance,
    unregister,
    workspace_root,
)
from holt_core.keys import Keys, validate_instance_name
from holt_core.lock import clear_dead_lock
from holt_core.logs import configure
from holt_core.models import Artefact, StructuralType, new_id, now_ms
from holt_core.operators import ensure_local_operator
from holt_core.orchestrator import Orchestrator, WorkerLauncher
from holt_core.processes import pid_alive
from holt_core.pup import Pup, run_worker
from holt_core.render import ArtefactItem, live_item, watch_lines
from holt_core.sanitise import sanitise_text
from holt_core.supervisor import (
    ENV_SUPERVISOR_PID,
    ORCHESTRATOR,
    SUPERVISOR,
    Supervisor,
    add_log_file,
    check_roles,
    component_log,
    describe,
    is_holt_process,
    log_dir_for,
    read_state,
    supervise,
    supervisor_argv,
)
from holt_core.waiting import wait_set

T = TypeVar("T")

UP_TIMEOUT_S = 30.0
DOWN_TIMEOUT_S = 20.0
# A component that exits this often before it is ever ready will not come up: fail `up` early.
EARLY_FAIL_EXITS = 2
LOG_TAIL_LINES = 20
_POLL_S = 0.05
_FOLLOW_POLL_S = 0.25
_PARENT_CHECK_S = 1.0
_RUNNING_CHECK_S = 5.0
_DEFAULT_NAME = re.compile(r"^default-(\d+)$")
_COMPONENT = re.compile(r"^[A-Za-z0-9-]+$")

InstanceOpt = Annotated[str, typer.Option("--instance", help="Instance name.")]
WorkspaceOpt = Annotated[
    Path | None,
    typer.Option("--workspace", help="Project directory holding holt.yml (default: the git root of the current one)."),
]


def register(app: typer.Typer) -> None:
    """Add the lifecycle commands to the ``holt`` app."""
    app.command("init")(init)
    app.command("up")(up)
    app.command("down")(down)
    app.command("list")(list_instances)
    app.command("forage")(forage)
    app.command("logs")(logs)
    app.command("orchestrator")(orchestrator)
    app.command("pup")(pup)


# ---------------------------------------------------------------------------------------------
# init

_INIT_HOLT_YML = """\
# Holt configuration. Each agent is a local command; `holt up` runs one process per agent.
version: "1.0"
orchestrator:
  max_review_iterations: 3
agents:
  example-agent:
    # Runs from the project root: one JSON object on stdin, one JSON result on stdout.
    command: ["python3", "agents/example-agent/run.py"]
    # review | claim | exclusive | ignore (or a bid_script that prints one of them).
    bidding_strategy: exclusive
    workspace:
      mode: ro
"""

_INIT_RUN_PY = '''\
#!/usr/bin/env python3
"""Example Holt agent: turns the artefact it is given into one result artefact.

stdin:  {"claim_type": "...", "target_artefact": {...}, "context_chain": [...]}
stdout: {"artefact_type": "...", "artefact_payload": "...", "summary": "...", "structural_type": "..."}
"""

import json
import sys


def main() -> None:
    request = json.load(sys.stdin)
    target = request["target_artefact"]
    result = {
        "artefact_type": "ExampleResult",
        "artefact_payload": f"Processed: {target.get('payload', '')}",
        "summary": f"example-agent processed {target.get('type', 'an artefact')}",
        # Terminal ends the workflow. A Standard result would be offered to the agents again.
        "structural_type": "Terminal",
    }
    print(json.dumps(result))


if __name__ == "__main__":
    main()
'''

_INIT_README = """\
# example-agent

A Holt agent is any command. For every claim it wins, Holt runs it from the project root with one
JSON object on stdin:

```json
{"claim_type": "exclusive", "target_artefact": {"id": "...", "type": "GoalDefined", "payload": "..."},
 "context_chain": []}
```

and expects exactly one JSON object on stdout, then exit code 0:

```json
{"artefact_type": "ExampleResult", "artefact_payload": "...", "summary": "...", "structural_type": "Terminal"}
```

`structural_type` is optional (`Standard` by default; `Terminal` ends the workflow, `Review` is a review
where `{}` approves). Anything else (a non-zero exit, no JSON) becomes a `ToolExecutionFailure` artefact.

Try it by hand:

```sh
echo '{"claim_type":"exclusive","target_artefact":{"type":"GoalDefined","payload":"hello"},"context_chain":[]}' \\
  | python3 agents/example-agent/run.py
```
"""

_INIT_FILES: dict[str, tuple[str, int]] = {
    CONFIG_FILE: (_INIT_HOLT_YML, 0o644),
    "agents/example-agent/run.py": (_INIT_RUN_PY, 0o755),
    "agents/example-agent/README.md": (_INIT_README, 0o644),
}


def init(
    force: Annotated[
        bool, typer.Option("--force", help="Overwrite holt's example files (other files are never touched).")
    ] = False,
) -> None:
    """Create holt.yml and an example agent in this git repository."""
    root = workspace_root()
    present = [name for name in (CONFIG_FILE, "agents") if (root / name).exists()]
    if present and not force:
        raise HoltError(
            "project already initialized",
            details=[f"{root / name} exists" for name in present],
            hint="holt init --force rewrites holt.yml and agents/example-agent/ (nothing else is changed)",
        )
    for relative, (text, mode) in _INIT_FILES.items():
        path = root / relative
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text, encoding="utf-8")
            path.chmod(mode)
        except OSError as exc:
            raise HoltError(f"cannot write {path}: {exc.strerror or exc}") from None
    success("Successfully initialized Holt project!")
    stdout.print(f"Created {CONFIG_FILE}, agents/example-agent/run.py and agents/example-agent/README.md")
    stdout.print("\nNext steps:")
    stdout.print("  1. git add holt.yml agents && git commit -m 'Add Holt'")
    stdout.print("  2. holt up")
    stdout.print('  3. holt forage --goal "Say hello" --watch')


# ---------------------------------------------------------------------------------------------
# up


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
    async with _redis(url) as redis:
        records = await list_records(redis)
        here = [r for r in records if r.workspace_path == str(root)]
        if name is None:
            # Restarting after a crash or reboot resumes this workspace's previous instance and blackboard.
            stale_here = sorted((r for r in here if not is_holt_process(r.supervisor_pid)),
                                key=lambda r: r.started_at, reverse=True)
            name = stale_here[0].name if stale_here else next_default_name([r.name for r in records])
        existing = next((r for r in records if r.name == name), None)
        if existing is not None and is_holt_process(existing.supervisor_pid):
            raise HoltError(
                f"instance '{name}' already exists",
                details=[f"Workspace: {existing.workspace_path}", f"Supervisor pid: {existing.supervisor_pid}"],
                hint=f"holt down --name {name} stops it; or choose another name with --name",
            )
        live_here = [r for r in here if r.name != name and is_holt_process(r.supervisor_pid)]
        if live_here and not force:
            raise HoltError(
                "workspace in use",
                details=[f"Workspace: {root}", f"Instance: {live_here[0].name}"],
                hint="holt down stops that instance; --force starts another one on the same workspace",
            )
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
        details.extend(sanitise_text(line) for line in _tail(path, LOG_TAIL_LINES))
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
    async with _redis(url) as redis:
        instance = await _resolve(redis, name)
        record = await get_record(redis, instance)
        if record is None:
            raise NotFound(f"instance '{instance}' not found", hint="holt list shows the registered instances")
        if is_holt_process(record.supervisor_pid):
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
        if not is_holt_process(target):
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
    async with _redis(url) as redis:
        record = await get_record(redis, instance)
        if record is not None and record.supervisor_pid == supervisor_pid:
            await unregister(redis, instance)


async def _unregister_if(redis: Redis, record: InstanceRecord) -> None:
    """Remove the record unless a newer run of the same name has replaced it meanwhile."""
    current = await get_record(redis, record.name)
    if current is not None and current.run_id == record.run_id:
        await unregister(redis, record.name)


# ---------------------------------------------------------------------------------------------
# list


def list_instances(
    as_json: Annotated[bool, typer.Option("--json", "-j", help="Print a JSON array.")] = False,
) -> None:
    """List the registered instances. Running means every component is up and connected; otherwise the
    status says which one is not and why, e.g. ``degraded (orchestrator restarting: connection refused)``."""
    rows = run_async(_list_rows())
    if as_json:
        typer.echo(json_dumps(rows))
        return
    if not rows:
        typer.echo("No Holt instances found.")
        return
    width = max(10, *(len(r["status"]) for r in rows))
    row = f"{{:<15}} {{:<{width}}} {{:<30}} {{}}"
    typer.echo(row.format("INSTANCE", "STATUS", "WORKSPACE", "UPTIME"))
    for r in rows:
        typer.echo(row.format(r["name"], r["status"], _short_path(r["workspace"]), r["uptime"]))


def json_dumps(value: Any) -> str:
    return json.dumps(value, indent=2, ensure_ascii=False)


async def _list_rows() -> list[dict[str, str]]:
    try:
        url = resolve_redis_url(start=False)
    except RedisUnavailable:
        if env_redis_url() is not None:
            raise
        if known_redis_url() is not None:
            warn("holt's Redis is not running, so the registry cannot be read: holt redis start")
        return []  # holt's private Redis is not running, so no instance can be
    async with _redis(url) as redis:
        records = await list_records(redis)
    rows = []
    for r in records:
        running = is_holt_process(r.supervisor_pid)
        rows.append({
            "name": r.name,
            "status": _instance_status(r) if running else "Stopped",
            "workspace": r.workspace_path,
            "uptime": format_uptime(r.started_at) if running else "-",
            "api_url": r.api_url if running else "",  # the approvals API (docs/api.md)
        })
    return rows


def _instance_status(record: InstanceRecord) -> str:
    """What the supervisor's state file says of its components (``Running`` only if all are well)."""
    state = read_state(Path(record.log_dir)) if record.log_dir else None
    if state is None or state.supervisor_pid != record.supervisor_pid:
        return "unknown (no state file)"
    return sanitise_text(describe(state))


def _short_path(path: str) -> str:
    return path if len(path) <= 30 else "..." + path[-27:]


def format_uptime(started_at: str, now: datetime | None = None) -> str:
    try:
        start = datetime.fromisoformat(started_at)
    except ValueError:
        return "-"
    if start.tzinfo is None:
        start = start.replace(tzinfo=UTC)
    seconds = max(int(((now or datetime.now(UTC)) - start).total_seconds()), 0)
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours}h {minutes}m"
    if minutes:
        return f"{minutes}m {secs}s"
    return f"{secs}s"


# ---------------------------------------------------------------------------------------------
# forage


def forage(
    goal: Annotated[str, typer.Option("--goal", "-g", help="The goal for the agents (a GoalDefined artefact).")],
    name: NameOpt = None,
    watch: Annotated[
        bool, typer.Option("--watch", "-w", help="Stream the workflow until it produces a Terminal artefact.")
    ] = False,
    operator: AsOpt = None,
) -> None:
    """Post a goal on the blackboard of a running instance."""
    if not goal.strip():
        raise InvalidInput("required flag --goal not provided", hint='holt forage --goal "what you want done"')
    root = workspace_root()
    require_clean_workspace(root)
    url = resolve_redis_url(start=False)
    starter = resolve_operator(operator)  # recorded: who starts a workflow may not approve its gates
    with _quiet_stdout_errors():
        run_async(_forage(url, name, goal, watch, starter))


def require_clean_workspace(root: Path) -> None:
    """Agents work from the committed state; uncommitted changes would be invisible or overwritten."""
    try:
        out = subprocess.run(["git", "status", "--porcelain"], cwd=root, capture_output=True, text=True,
                             check=True, timeout=30).stdout
    except (subprocess.CalledProcessError, OSError, subprocess.TimeoutExpired) as exc:
        raise HoltError("cannot read git status", details=[str(exc)]) from None
    changed: list[str] = []
    untracked: list[str] = []
    for line in out.splitlines():
        path = line[3:]
        if not line.strip() or path.strip('"').startswith(".holt/"):
            continue  # holt's own logs
        (untracked if line.startswith("??") else changed).append(line)
    if not changed and not untracked:
        return
    details: list[str] = []
    if changed:
        details += ["Uncommitted changes:", *(f" {sanitise_text(line)}" for line in changed)]
    if untracked:
        details += ["Untracked files:", *(f" {sanitise_text(line)}" for line in untracked)]
    raise HoltError(
        "Git workspace is not clean",
        details=details,
        hint="commit or stash your changes first (git add -A && git commit), so agents start from a known state",
    )


async def _forage(url: str, name: str | None, goal: str, watch: bool, starter: str) -> None:
    async with _redis(url) as redis:
        instance = await _resolve(redis, name)
        if not await redis.exists(Keys(instance).lock):
            if await get_record(redis, instance) is not None:
                raise HoltError(f"instance '{instance}' is not running", hint="start it with holt up")
            # Not started by this holt (Go's orchestrator never writes the lock): its state is unknown.
            warn(f"cannot tell whether instance '{instance}' has a running orchestrator")
        bb = Blackboard(redis, instance)
        ident = new_id()
        artefact = Artefact(id=ident, logical_id=new_id(), version=1, structural_type=StructuralType.STANDARD,
                            type="GoalDefined", payload=goal, source_artefacts=[], produced_by_role="user")
        if not watch:
            created = await post_goal(bb, artefact, starter)
            success(f"Goal artefact created: {created.id}")
            stdout.print("  Follow it with: holt watch   (or holt hoard to list the artefacts)")
            return
        channels = (bb.keys.artefact_events, bb.keys.claim_events, bb.keys.workflow_events)
        # Subscribed (and confirmed) before the goal exists, so not one event of its workflow is missed.
        async with bb.subscribe(*channels) as sub:
            created = await post_goal(bb, artefact, starter)
            success(f"Goal artefact created: {created.id}")
            await _watch_goal(bb, sub, created.id)


async def _watch_goal(bb: Blackboard, sub: Any, goal_id: str) -> None:
    """Print every event until a Terminal artefact descended from ``goal_id`` arrives."""
    tz = datetime.now().astimezone().tzinfo or UTC
    lineage = {goal_id}  # artefacts derived from our goal: other goals' Terminals must not end the watch
    last_check = time.monotonic()
    while True:
        message = await next_message(sub, 1.0)
        if message is None:
            if time.monotonic() - last_check >= _RUNNING_CHECK_S:
                last_check = time.monotonic()
                if not await lock.is_running(bb.redis, bb.keys):
                    raise HoltError(f"instance '{bb.instance}' stopped before the workflow completed")
            continue
        channel, data = message
        try:
            item = live_item(bb.keys, channel, data, now_ms())
        except MalformedRecord as bad:
            warn(f"Failed to parse event on {sanitise_text(channel)}: {sanitise_text(bad.reason)}")
            continue
        for line in watch_lines(item, output="default", tz=tz, now_ms=now_ms()):
            typer.echo(line)
        if isinstance(item, ArtefactItem):
            art = item.artefact
            if art.id in lineage or any(source in lineage for source in art.source_artefacts):
                lineage.add(art.id)
                if art.structural_type is StructuralType.TERMINAL:
                    return


# ---------------------------------------------------------------------------------------------
# logs


def logs(
    component: Annotated[
        str, typer.Argument(metavar="COMPONENT", help="orchestrator, supervisor, or an agent role.")
    ],
    name: NameOpt = None,
    follow: Annotated[bool, typer.Option("--follow", "-f", help="Keep printing new lines.")] = False,
    lines: Annotated[int, typer.Option("--lines", min=0, help="How many lines from the end to show.")] = 50,
) -> None:
    """Show a component's log."""
    if not _COMPONENT.match(component):
        raise InvalidInput(f"invalid component '{component}'", hint="orchestrator, supervisor, or an agent role")
    log_dir = run_async(_find_log_dir(name))
    path = component_log(log_dir, component)
    if not path.is_file():
        known = sorted(p.stem for p in log_dir.glob("*.log"))
        raise NotFound(
            f"no log for '{component}' in {log_dir}",
            details=[f"available: {', '.join(known)}"] if known else [],
            hint="components are orchestrator, supervisor and the agent roles in holt.yml",
        )
    tty = sys.stdout.isatty()
    with _quiet_stdout_errors(), path.open("rb") as f:
        shown, offset = _tail_lines(f, lines)
        for line in shown:
            typer.echo(sanitise_text(line) if tty else line)
        if follow:
            with contextlib.suppress(KeyboardInterrupt):
                _follow(path, f, offset, tty)


async def _find_log_dir(name: str | None) -> Path:
    """The registered log dir; else ``.holt/logs/<name>`` here (logs outlive ``holt down``)."""
    if name is not None:
        validate_instance_name(name)
    root = workspace_root()
    try:
        url = resolve_redis_url(start=False)
        async with _redis(url) as redis:
            instance = await _resolve(redis, name)
            record = await get_record(redis, instance)
        if record is not None and record.log_dir:
            return Path(record.log_dir)
        return log_dir_for(root, instance)
    except (NotFound, InvalidInput, RedisUnavailable):
        if name is not None:
            return log_dir_for(root, name)
        here = [p for p in (root / ".holt" / "logs").glob("*") if p.is_dir()]
        if len(here) == 1:
            return here[0]
        raise


def _tail(path: Path, count: int) -> list[str]:
    try:
        with path.open("rb") as f:
            return _tail_lines(f, count)[0]
    except OSError:
        return []


def _tail_lines(f: BinaryIO, count: int) -> tuple[list[str], int]:
    """The last ``count`` complete lines, read backwards in blocks (logs can be large), and the offset
    where they end: a line still being written is left for ``_follow``."""
    end = f.seek(0, os.SEEK_END)
    pos, data = end, b""
    while pos > 0 and data.count(b"\n") <= count:
        step = min(65536, pos)
        pos -= step
        f.seek(pos)
        data = f.read(step) + data
    complete, _, partial = data.rpartition(b"\n")
    lines = complete.decode("utf-8", "replace").splitlines()
    return (lines[-count:] if count > 0 else []), end - len(partial)


def _follow(path: Path, f: BinaryIO, offset: int, tty: bool) -> None:
    """Print what is appended to ``path`` after ``offset`` until interrupted; starts over if it is replaced."""
    with contextlib.ExitStack() as stack:
        f.seek(offset)
        pending = b""
        while True:
            chunk = f.read()
            if chunk:
                pending += chunk
                *complete, pending = pending.split(b"\n")
                for raw in complete:
                    line = raw.decode("utf-8", "replace")
                    typer.echo(sanitise_text(line) if tty else line)
                continue
            time.sleep(_FOLLOW_POLL_S)
            try:
                current = path.stat()
            except OSError:
                continue
            if current.st_ino != os.fstat(f.fileno()).st_ino or current.st_size < f.tell():
                f = stack.enter_context(path.open("rb"))  # replaced or truncated: read it from the start
                pending = b""


# ---------------------------------------------------------------------------------------------
# orchestrator / pup (foreground components)


def orchestrator(instance: InstanceOpt, workspace: WorkspaceOpt = None) -> None:
    """Run an instance's orchestrator in the foreground (holt up starts one for you); JSON logs on stderr."""
    validate_instance_name(instance)
    ws = _component_workspace(workspace)
    config = load_config(ws / CONFIG_FILE)
    configure()
    url = resolve_redis_url(start=False)
    run_async(_orchestrate(url, instance, ws, config))


async def _orchestrate(url: str, instance: str, ws: Path, config: Config) -> None:
    def worker_argv(role: str, claim_id: str) -> list[str]:
        return [sys.executable, "-m", "holt_core.cli.main", "pup", "--instance", instance, "--agent", role,
                "--execute-claim", claim_id, "--workspace", str(ws)]

    from holt_core.acl import worker_env

    # Workers run as holt-agent where the supervisor handed down the agent's URL; else as this process does.
    launcher = WorkerLauncher(worker_argv, env=worker_env() or {ENV_URL: url}, cwd=str(ws))
    bb = Blackboard.from_url(url, instance)
    stop = asyncio.Event()
    watchdog = _stop_on_signals(stop)
    from holt_core.health import HealthService  # /healthz, /readyz, /metrics on a thread of its own

    health = HealthService(url, instance, ORCHESTRATOR)
    try:
        await health.start()
        await Orchestrator(bb, config, worker_launcher=launcher).run(stop)
    finally:
        await health.stop()
        if watchdog is not None:
            watchdog.cancel()
        await launcher.stop()
        await bb.close()


def pup(
    instance: InstanceOpt,
    agent: Annotated[str, typer.Option("--agent", help="The agent (role) from holt.yml to run.")],
    workspace: WorkspaceOpt = None,
    execute_claim: Annotated[
        str | None, typer.Option("--execute-claim", help="Run one granted claim as a controller's worker and exit.")
    ] = None,
) -> None:
    """Run one agent in the foreground: bid on claims and execute grants (holt up starts these for you)."""
    validate_instance_name(instance)
    ws = _component_workspace(workspace)
    config = load_config(ws / CONFIG_FILE)
    configure()
    url = resolve_redis_url(start=False)
    if execute_claim is not None:
        raise typer.Exit(run_async(_work(url, instance, ws, config, agent, execute_claim)))
    run_async(_pup(url, instance, ws, config, agent))


async def _pup(url: str, instance: str, ws: Path, config: Config, agent: str) -> None:
    bb = Blackboard.from_url(url, instance)
    stop = asyncio.Event()
    watchdog = _stop_on_signals(stop)
    from holt_core.health import HealthService, parse_health_check

    spec = config.agents[agent] if agent in config.agents else None
    health = HealthService(url, instance, agent, workspace=ws,
                           health_check=parse_health_check(spec.health_check, agent) if spec else None,
                           check_env=spec.env_overrides() if spec else None)
    try:
        await health.start()
        await Pup(bb, config, agent, ws).run(stop)
    finally:
        await health.stop()
        if watchdog is not None:
            watchdog.cancel()
        await bb.close()


async def _work(url: str, instance: str, ws: Path, config: Config, agent: str, claim_id: str) -> int:
    bb = Blackboard.from_url(url, instance)
    try:
        return await run_worker(bb, config, agent, ws, claim_id)
    finally:
        await bb.close()


def _component_workspace(workspace: Path | None) -> Path:
    if workspace is None:
        return workspace_root()
    ws = workspace.expanduser().resolve()
    if not ws.is_dir():
        raise NotFound(f"workspace {ws} is not a directory")
    return ws


def _stop_on_signals(stop: asyncio.Event) -> asyncio.Task[None] | None:
    """SIGTERM/SIGINT set ``stop``; under a supervisor, so does the supervisor's death."""
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    # Popped, so the agents' tools and workers started from here do not inherit it.
    expected = os.environ.pop(ENV_SUPERVISOR_PID, "")
    if not expected.isdigit():
        return None
    return asyncio.create_task(_stop_when_orphaned(int(expected), stop))


async def _stop_when_orphaned(supervisor_pid: int, stop: asyncio.Event) -> None:
    # A killed supervisor cannot stop us; re-parenting to init is how we notice it is gone.
    while not stop.is_set():
        if os.getppid() != supervisor_pid:
            stop.set()
            return
        await wait_set(stop, _PARENT_CHECK_S)


# ---------------------------------------------------------------------------------------------
# Plumbing


@contextlib.contextmanager
def _quiet_stdout_errors() -> Iterator[None]:
    """Streaming output survives an odd terminal encoding and a reader that goes away (``| head``)."""
    if isinstance(sys.stdout, io.TextIOWrapper):
        sys.stdout.reconfigure(errors="replace")
    try:
        yield
    except BrokenPipeError:
        # Point stdout at /dev/null so the interpreter's final flush does not complain again.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        raise typer.Exit(0) from None


@contextlib.asynccontextmanager
async def _redis(url: str) -> AsyncIterator[Redis]:
    redis = connect_redis(url)
    try:
        yield redis
    finally:
        with contextlib.suppress(Exception):
            await redis.aclose()


async def _resolve(redis: Redis, name: str | None) -> str:
    """``--name``, else this workspace's one live instance, else the registry's answer (with its errors)."""
    if name is not None:
        return await resolve_instance(redis, name)
    root = str(workspace_root())
    live = [r.name for r in await list_records(redis) if r.workspace_path == root and is_holt_process(r.supervisor_pid)]
    if len(live) == 1:
        return live[0]  # stopped records of the same workspace do not make it ambiguous
    return await resolve_instance(redis, None)
