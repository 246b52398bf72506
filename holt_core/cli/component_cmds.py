"""``holt orchestrator`` and ``holt pup``: the long-running components the supervisor
(``holt_core.supervisor``) starts, run in the foreground. The engine is imported when one of them runs."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from holt_core.cli.common import run_async
from holt_core.config import CONFIG_FILE, load_config
from holt_core.embedded_redis import ENV_URL, resolve_redis_url
from holt_core.errors import NotFound
from holt_core.instances import workspace_root
from holt_core.keys import validate_instance_name
from holt_core.logs import configure
from holt_core.waiting import wait_set

if TYPE_CHECKING:
    from holt_core.config import Config

_PARENT_CHECK_S = 1.0

InstanceOpt = Annotated[str, typer.Option("--instance", help="Instance name.")]
WorkspaceOpt = Annotated[
    Path | None,
    typer.Option("--workspace", help="Project directory holding holt.yml (default: the git root of the current one)."),
]


def register(app: typer.Typer) -> None:
    """Add this module's commands to the ``holt`` app."""
    app.command("orchestrator")(orchestrator)
    app.command("pup")(pup)


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
    from holt_core.blackboard import Blackboard
    from holt_core.orchestrator import Orchestrator, WorkerLauncher
    from holt_core.supervisor import ORCHESTRATOR

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
    from holt_core.blackboard import Blackboard
    from holt_core.pup import Pup

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
    from holt_core.blackboard import Blackboard
    from holt_core.pup import run_worker

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
    from holt_core.supervisor import ENV_SUPERVISOR_PID

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
