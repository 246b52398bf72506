"""Grants: notify the agent or launch a worker (written once), worker slots, re-grants.

A granted role either hears a ``GrantNotification`` on ``agent:<role>:events`` (published in the same atomic
write as the grant) or, for a controller run as workers, gets a worker process launched once that write
succeeded. ``announce`` adds the notification to the write and says whether to launch; ``launch`` runs the
worker and takes its slot. Feedback (``pending_assignment``) claims are never announced on the agent channel:
as in Holt, an agent queues that work from ``claim_events`` (so a Go pup runs a rework once).
"""

from __future__ import annotations

import asyncio
import os
import time
from collections import defaultdict
from collections.abc import Callable, Iterable
from typing import Protocol

from holt_core.acl import worker_env
from holt_core.claims import ClaimRuntime
from holt_core.config import Config
from holt_core.engine.rules import GRANT_TYPE
from holt_core.keys import Keys
from holt_core.models import ClaimStatus, GrantNotification
from holt_core.transaction import Tx


class Launcher(Protocol):
    def is_running(self, claim_id: str) -> bool: ...

    def launch(self, role: str, claim_id: str, on_exit: Callable[[str, str, int, str], None]) -> None: ...


class Grants:
    def __init__(self, keys: Keys, config: Config, workers: Launcher | None,
                 on_worker_exit: Callable[[str, str, int, str], None]) -> None:
        self.keys = keys
        self.config = config
        self.workers = workers
        self._on_exit = on_worker_exit
        self.active: dict[str, set[str]] = defaultdict(set)  # controller role -> claim ids holding a slot

    # ------------------------------------------------------------------ notify or launch

    def runs_as_worker(self, role: str) -> bool:
        agent = self.config.agents.get(role)
        return agent is not None and agent.is_controller and self.workers is not None

    def announce(self, tx: Tx, claim_id: str, artefact_id: str, role: str, grant_type: str, *,
                 status: ClaimStatus | None = None) -> bool:
        """Add the grant's notification to ``tx``; True when the role runs as a worker instead (``launch`` it
        once ``tx`` succeeded). A feedback claim is announced by its creation on ``claim_events`` only."""
        if self.runs_as_worker(role):
            return True
        if status != ClaimStatus.PENDING_ASSIGNMENT:
            tx.publish(self.keys.agent_events(role),
                       GrantNotification(claim_id=claim_id, claim_type=grant_type, artefact_id=artefact_id).to_json())
        return False

    def notify(self, tx: Tx, claim_id: str, artefact_id: str, role: str, grant_type: str) -> None:
        """An explicit re-send (a resumed question, a lost notification): always on the agent channel."""
        tx.publish(self.keys.agent_events(role),
                   GrantNotification(claim_id=claim_id, claim_type=grant_type, artefact_id=artefact_id).to_json())

    def launch(self, role: str, claim_id: str) -> None:
        assert self.workers is not None
        self.active[role].add(claim_id)
        if not self.workers.is_running(claim_id):
            self.workers.launch(role, claim_id, self._on_exit)

    # ------------------------------------------------------------------ worker slots

    def limit(self, role: str) -> int:
        agent = self.config.agents.get(role)
        return agent.worker.max_concurrent if agent is not None and agent.worker else 1

    def busy(self) -> dict[str, int]:
        return {role: len(ids) for role, ids in self.active.items() if ids}

    def has_free_slot(self, role: str) -> bool:
        return len(self.active[role]) < self.limit(role)

    def reserve(self, claim_id: str, roles: Iterable[str]) -> list[str] | None:
        """Take a worker slot of each role for the claim; the roles newly taken, or None when one is full."""
        taken: list[str] = []
        for role in roles:
            active = self.active[role]
            if claim_id in active:
                continue
            if len(active) >= self.limit(role):
                self.release(claim_id, taken)
                return None
            active.add(claim_id)
            taken.append(role)
        return taken

    def release(self, claim_id: str, roles: Iterable[str]) -> None:
        for role in roles:
            self.active[role].discard(claim_id)

    def holds_slot(self, role: str) -> bool:
        return role in self.active

    # ------------------------------------------------------------------ re-grants

    @staticmethod
    def pending(rt: ClaimRuntime) -> list[tuple[str, str]]:
        """(role, grant type) of every grant of this claim whose output has not arrived."""
        claim = rt.claim
        if not claim.status.is_open or claim.grant_queue is not None:
            return []
        if claim.status == ClaimStatus.PENDING_ASSIGNMENT:
            return [] if rt.rework is not None else [(claim.granted_exclusive_agent, "exclusive")]
        if claim.phase_state is None:
            return []
        grant_type = GRANT_TYPE[claim.phase_state.current]
        return [(r, grant_type) for r in claim.phase_state.granted_agents
                if r not in rt.outputs and r not in rt.failures]

    def regrant_tx(self, rt: ClaimRuntime) -> tuple[Tx, list[str]]:
        """After a restart: launch workers that are not running; the re-sent notifications of the rest (the
        agents' execution leases stop doubles). Feedback claims are not re-sent: agents find them in
        ``claim_events`` history / their own catch-up, as Holt's do."""
        tx = Tx()
        resent: list[str] = []
        for role, grant_type in self.pending(rt):
            if self.runs_as_worker(role):
                self.launch(role, rt.claim.id)
            elif rt.claim.status != ClaimStatus.PENDING_ASSIGNMENT:
                self.notify(tx, rt.claim.id, rt.claim.artefact_id, role, grant_type)
                resent.append(role)
        return tx, resent

    def stale(self, claims: Iterable[ClaimRuntime], stale_s: float) -> list[tuple[ClaimRuntime, str, str]]:
        """Grants that have waited ``stale_s`` for output (at most once per ``stale_s`` each)."""
        now = time.monotonic()
        due: list[tuple[ClaimRuntime, str, str]] = []
        for rt in claims:
            pending = tuple(self.pending(rt))
            key = (rt.rev, pending)
            if not pending:
                rt.waiting_key = None
            elif rt.waiting_key != key:
                rt.waiting_key, rt.waiting_since = key, now
            elif now - rt.waiting_since >= stale_s:
                rt.waiting_since = now
                due.extend((rt, role, grant_type) for role, grant_type in pending if not self.runs_as_worker(role))
        return due




class WorkerLauncher:
    """Runs controller workers as local processes (``holt pup --execute-claim``)."""

    def __init__(self, argv_for: Callable[[str, str], list[str]], env: dict[str, str] | None = None,
                 cwd: str | None = None) -> None:
        self._argv_for = argv_for
        self._env = env
        self._cwd = cwd
        self._running: dict[str, asyncio.Task[None]] = {}

    def is_running(self, claim_id: str) -> bool:
        return claim_id in self._running

    def launch(self, role: str, claim_id: str, on_exit: Callable[[str, str, int, str], None]) -> None:
        if claim_id in self._running:
            return
        self._running[claim_id] = asyncio.ensure_future(self._run(role, claim_id, on_exit))

    async def _run(self, role: str, claim_id: str, on_exit: Callable[[str, str, int, str], None]) -> None:
        code = -1
        tail = ""
        try:
            proc = await asyncio.create_subprocess_exec(
                *self._argv_for(role, claim_id),
                stdin=asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.STDOUT,
                env={**os.environ, **worker_env(), **(self._env or {})},  # workers run as holt-agent
                cwd=self._cwd,
            )
            out, _ = await proc.communicate()
            code = proc.returncode if proc.returncode is not None else -1
            tail = "\n".join(out.decode("utf-8", "replace").splitlines()[-100:])
        except OSError as exc:
            tail = f"could not start worker: {exc}"
        finally:
            self._running.pop(claim_id, None)
            on_exit(role, claim_id, code, tail)

    async def stop(self) -> None:
        tasks = list(self._running.values())
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
