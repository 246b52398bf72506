"""Runs an orchestrator and one pup per agent inside the test's event loop, against the real Redis.

Tools are still real processes (the agents' scripts). Waiting is event-driven: ``wait_for`` subscribes
before checking, so it never misses what it waits for.
"""

from __future__ import annotations

import asyncio
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

from holt_core.acl import Role, role_url
from holt_core.blackboard import Blackboard, connect_redis
from holt_core.config import Config, load_config
from holt_core.decisions import DecisionGate
from holt_core.models import Artefact, StructuralType, new_id
from holt_core.orchestrator import Orchestrator, WorkerLauncher
from holt_core.pup import Pup

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


def make_workspace(tmp: Path, example: str | None = None, files: dict[str, str] | None = None) -> Path:
    """A git repository with an example's files (or the given files) committed."""
    ws = tmp / "ws"
    if example:
        shutil.copytree(EXAMPLES / example, ws)
    else:
        ws.mkdir()
    for name, text in (files or {}).items():
        path = ws / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    git = ["git", "-c", "user.name=t", "-c", "user.email=t@example.com"]
    subprocess.run([*git, "init", "-q", "-b", "main"], cwd=ws, check=True)
    subprocess.run([*git, "add", "-A"], cwd=ws, check=True)
    subprocess.run([*git, "commit", "-q", "-m", "init"], cwd=ws, check=True)
    return ws


def python_agents(config_text: str) -> str:
    """holt.yml text with ``python3`` replaced by this interpreter (tests must not depend on PATH)."""
    return config_text.replace('"python3"', f'"{sys.executable}"')


class Engine:
    def __init__(self, redis_url: str, instance: str, workspace: Path, config: Config | None = None,
                 gate: DecisionGate | None = None, *, role_users: bool = False) -> None:
        """``role_users``: the orchestrator and the pups (and their workers) connect as their own Redis users
        (``holt-orchestrator``, ``holt-agent``), as under the supervisor; else all as ``redis_url``'s."""
        self.redis_url = redis_url
        self.role_users = role_users
        self.instance = instance
        self.workspace = workspace
        self.config = config or load_config(workspace / "holt.yml")
        self.gate = gate
        self.stop = asyncio.Event()
        self.tasks: list[asyncio.Task[None]] = []
        self.boards: list[Blackboard] = []
        self.board()  # boards[0]: the test's own (admin) board, which also posts goals as people
        self.orchestrator: Orchestrator | None = None
        self.pups: dict[str, Pup] = {}

    def url(self, role: Role) -> str:
        return role_url(self.redis_url, role) if self.role_users else self.redis_url

    def board(self, role: Role = "admin") -> Blackboard:
        bb = Blackboard(connect_redis(self.url(role)), self.instance)
        self.boards.append(bb)
        return bb

    async def start_orchestrator(self) -> Orchestrator:
        bb = self.board("orchestrator")
        launcher = WorkerLauncher(
            lambda role, claim: [sys.executable, "-m", "holt_core.cli.main", "pup", "--instance", self.instance,
                                 "--agent", role, "--execute-claim", claim, "--workspace", str(self.workspace)],
            env={"HOLT_REDIS_URL": self.url("agent")},
            cwd=str(self.workspace),
        )
        self.orchestrator = Orchestrator(bb, self.config, gate=self.gate, worker_launcher=launcher)
        self.tasks.append(asyncio.create_task(self.orchestrator.run(self.stop)))
        await asyncio.wait_for(self.orchestrator.ready.wait(), 20)
        return self.orchestrator

    async def start_pups(self, only: list[str] | None = None) -> None:
        for name in only or list(self.config.agents):
            pup = Pup(self.board("agent"), self.config, name, self.workspace)
            self.pups[name] = pup
            self.tasks.append(asyncio.create_task(pup.run(self.stop)))
        await asyncio.wait_for(asyncio.gather(*(p.ready.wait() for p in self.pups.values())), 20)

    async def start(self) -> Engine:
        await self.start_orchestrator()
        await self.start_pups()
        return self

    async def close(self) -> None:
        self.stop.set()
        results = await asyncio.gather(*self.tasks, return_exceptions=True)
        for bb in self.boards:
            await bb.close()
        for r in results:
            if isinstance(r, BaseException) and not isinstance(r, asyncio.CancelledError):
                raise r

    async def forage(self, goal: str) -> Artefact:
        ident = new_id()
        goal_artefact = Artefact(id=ident, logical_id=new_id(), version=1, structural_type=StructuralType.STANDARD,
                                 type="GoalDefined", payload=goal, source_artefacts=[], produced_by_role="user")
        return await self.boards[0].create_artefact(goal_artefact)


async def poll(check: Callable[[], object], within: float = 30.0, what: str = "condition") -> None:
    """Poll until ``check`` (sync or async) is truthy; an AssertionError naming ``what`` after ``within`` s."""
    deadline = time.monotonic() + within
    while True:
        value = check()
        if asyncio.iscoroutine(value):
            value = await value
        if value:
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.05)


async def wait_for_artefact(
    bb: Blackboard, predicate: Callable[[Artefact], bool], within: float = 30.0
) -> Artefact:
    """The first artefact (already stored, or arriving) that satisfies predicate."""
    async with bb.subscribe(bb.keys.artefact_events) as sub:
        for art in (await bb.list_artefacts()).artefacts:
            if predicate(art):
                return art
        async with asyncio.timeout(within):
            while True:
                msg = await sub.get_message(ignore_subscribe_messages=True, timeout=1.0)
                if msg is None:
                    continue
                art = Artefact.from_json(str(msg["data"]))
                if predicate(art):
                    return art


async def wait_settled(bb: Blackboard, within: float = 30.0) -> None:
    """Until no claim is open (every claim complete, terminated or dormant)."""
    async with bb.subscribe(bb.keys.workflow_events) as sub:
        async with asyncio.timeout(within):
            while await bb.redis.scard(bb.keys.open_claims):
                await sub.get_message(ignore_subscribe_messages=True, timeout=1.0)
