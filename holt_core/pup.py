"""The agent runner ("pup"): bids on claims and executes the grants it wins (protocol section 5).

Differences from the Go pup, on purpose: bidding never stops while a tool runs; the tool is told the
real grant type; a bid script has a timeout; on start the pup catches up (bids on open claims it has not
bid on, runs grants it holds whose output is missing); an execution lease makes a repeated grant
harmless; a feedback claim is never bid on by a controller. A grant whose notification names the target
(``artefact_id``, which the Python orchestrator adds) is read with its target in one round trip.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shutil
import tempfile
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from redis.exceptions import ConnectionError as RedisConnectionError

from holt_core.blackboard import Blackboard, resubscribe
from holt_core.config import AgentConfig, Config
from holt_core.errors import HoltError, MalformedRecord, NotFound
from holt_core.hitl.agent import AgentHitl, is_peer_claim
from holt_core.logs import EventLogger
from holt_core.models import (
    Artefact,
    BidType,
    Claim,
    ClaimStatus,
    GrantNotification,
    StructuralType,
    WorkflowEvent,
    WorkflowEventType,
    new_id,
)
from holt_core.tool_runner import ToolFailure, ToolResult, parse_tool_output, run_process

LEASE_TTL_S = 30
LEASE_REFRESH_S = 10
CONTEXT_LEVELS = 10
_IN_CONTEXT = (StructuralType.STANDARD, StructuralType.ANSWER, StructuralType.REVIEW)


class Pup:
    def __init__(
        self,
        bb: Blackboard,
        config: Config,
        agent_name: str,
        workspace: Path,
        *,
        log: EventLogger | None = None,
    ) -> None:
        if agent_name not in config.agents:
            raise HoltError(f"agent '{agent_name}' is not defined in holt.yml", details=sorted(config.agents))
        self.bb = bb
        self.keys = bb.keys
        self.config = config
        self.name = agent_name
        self.agent: AgentConfig = config.agents[agent_name]
        self.workspace = workspace
        self.log = log or EventLogger("pup", bb.instance)
        self.hitl = AgentHitl(bb, config, agent_name)
        # (claim id, claim type, the target's id if the notification named it, else "")
        self._queue: asyncio.Queue[tuple[str, str, str]] = asyncio.Queue()
        self._tasks: set[asyncio.Task[None]] = set()
        self._queued: set[str] = set()
        self.ready = asyncio.Event()

    # ================================================================== main loop

    async def run(self, stop: asyncio.Event) -> None:
        channels = [self.keys.claim_events]
        if not self.agent.is_controller:
            channels.append(self.keys.agent_events(self.name))
        executor = None if self.agent.is_controller else asyncio.create_task(self._executor())
        try:
            async with self.bb.subscribe(*channels) as sub:
                await self.catch_up()
                self.ready.set()
                self.log.info("pup_ready", agent_name=self.name, controller=self.agent.is_controller)
                # Claims and grants handled as they arrive, in order (looked up per message, as a loop would).
                sub.deliver_to(lambda channel, data: self._dispatch(channel, data))
                while not stop.is_set():
                    try:
                        await sub.get_message(ignore_subscribe_messages=True, timeout=0.5)
                    except RedisConnectionError as exc:
                        # Redis closed a lagging subscriber or restarted: back on the channels, then bid on
                        # and run what was announced in the gap.
                        self.log.warning("subscription_lost", agent_name=self.name, error=str(exc))
                        await resubscribe(sub, channels, self._dispatch)
                        await self.catch_up()
        finally:
            if executor is not None:
                executor.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await executor
            for task in list(self._tasks):
                task.cancel()
            if self._tasks:
                await asyncio.gather(*self._tasks, return_exceptions=True)

    def _spawn(self, coro: Any) -> None:
        task: asyncio.Task[None] = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _dispatch(self, channel: str, data: str) -> None:
        if channel == self.keys.claim_events:
            try:
                claim = Claim.from_json(data)
            except MalformedRecord as exc:
                self.log.warning("malformed_event", channel=channel, error=exc.reason)
                return
            if claim.status == ClaimStatus.PENDING_ASSIGNMENT:
                if claim.granted_exclusive_agent == self.name and not self.agent.is_controller:
                    # The event carries the claim, so its target is known too (the claim is re-read anyway).
                    self._enqueue(claim.id, "exclusive", claim.artefact_id)
                return
            self._spawn(self._bid(claim))
        else:
            try:
                grant = GrantNotification.model_validate_json(data)
            except ValueError:
                self.log.warning("malformed_grant", data=data[:200])
                return
            if grant.event_type == "grant":
                self._enqueue(grant.claim_id, str(grant.claim_type), grant.artefact_id)

    def _enqueue(self, claim_id: str, claim_type: str, artefact_id: str = "") -> None:
        if claim_id in self._queued:
            return
        self._queued.add(claim_id)
        self._queue.put_nowait((claim_id, claim_type, artefact_id))

    async def _executor(self) -> None:
        while True:
            claim_id, claim_type, artefact_id = await self._queue.get()
            try:
                await self.execute(claim_id, claim_type, artefact_id=artefact_id)
            except Exception as exc:  # the executor never dies; the failure is logged
                self.log.error("error", message="execution failed", claim_id=claim_id, error=repr(exc))
            finally:
                self._queued.discard(claim_id)

    async def catch_up(self) -> None:
        """Bid on open claims without our bid; queue grants we hold whose output is missing."""
        claims, _ = await self.bb.list_claims()
        for claim in sorted(claims, key=lambda c: c.id):
            if not claim.status.is_open:
                continue
            if claim.status == ClaimStatus.PENDING_ASSIGNMENT:
                if claim.granted_exclusive_agent == self.name and not self.agent.is_controller:
                    if not await self.bb.redis.exists(self.keys.exec_lease(claim.id, self.name)):
                        self._enqueue(claim.id, "exclusive")
                continue
            if claim.phase_state is None and claim.status == ClaimStatus.PENDING_REVIEW:
                if not await self.bb.redis.hexists(self.keys.bids(claim.id), self.name):
                    await self._bid(claim)
                continue
            if self.agent.is_controller:
                continue
            grant_type = self._held_grant(claim)
            if grant_type and not await self.bb.redis.exists(self.keys.exec_lease(claim.id, self.name)):
                self._enqueue(claim.id, grant_type)

    def _held_grant(self, claim: Claim) -> str | None:
        if self.name in claim.granted_review_agents and claim.status == ClaimStatus.PENDING_REVIEW:
            return "review"
        if self.name in claim.granted_parallel_agents and claim.status == ClaimStatus.PENDING_PARALLEL:
            return "claim"
        if claim.granted_exclusive_agent == self.name and claim.status == ClaimStatus.PENDING_EXCLUSIVE:
            return "exclusive"
        return None

    # ================================================================== bidding

    async def _bid(self, claim: Claim) -> None:
        if not self.agent.bid_script:
            bid = self._static_bid() or BidType.IGNORE  # no read of the target: nothing looks at it
        else:
            try:
                bid = await self.decide_bid(await self.bb.get_artefact(claim.artefact_id))
            except (NotFound, MalformedRecord) as exc:
                # Still bid: a silent agent would stall the claim until the bid timeout.
                self.log.warning("bid_target_unreadable", claim_id=claim.id, error=str(exc))
                bid = BidType.IGNORE
        await self.bb.set_bid(claim.id, self.name, bid)
        self.log.info("bid_submitted", claim_id=claim.id, agent_name=self.name, bid_type=bid.value)

    def _static_bid(self) -> BidType | None:
        return BidType(self.agent.bidding_strategy) if self.agent.bidding_strategy else None

    async def decide_bid(self, target: Artefact) -> BidType:
        static = self._static_bid()
        if not self.agent.bid_script:
            return static or BidType.IGNORE
        try:
            out = await run_process(
                list(self.agent.bid_script),
                (target.to_json() + "\n").encode(),
                cwd=self.workspace,
                env=self._env(),
                timeout_s=self.agent.bid_timeout_s,
                cap=64 * 1024,
            )
        except ToolFailure as exc:
            self.log.warning("bid_script_failed", reason=exc.reason)
            return static or BidType.IGNORE
        word = (out.stdout + out.stderr).strip()
        if out.exit_code != 0 or word not in {b.value for b in BidType}:
            self.log.warning("bid_script_invalid", exit_code=out.exit_code, output=word[:200])
            return static or BidType.IGNORE
        return BidType(word)

    # ================================================================== execution

    async def execute(self, claim_id: str, claim_type: str, *, command: list[str] | None = None,
                      artefact_id: str = "") -> Artefact | None:
        """Run the tool for one grant and write its result (or a Failure). None if not ours to run.

        ``artefact_id``: the target named by the grant notification, read together with the claim."""
        read = await self._read_grant(claim_id, artefact_id)
        if read is None:
            return None
        claim, target = read
        if self.name not in claim.granted_agents:
            self.log.warning("grant_not_ours", claim_id=claim_id)
            return None
        lease = self.keys.exec_lease(claim_id, self.name)
        if not await self.bb.redis.set(lease, f"running:{os.getpid()}", nx=True, ex=LEASE_TTL_S):
            self.log.info("grant_already_taken", claim_id=claim_id)
            return None
        refresher = asyncio.create_task(self._refresh_lease(lease))
        try:
            result = await self._execute(claim, claim_type, command or list(self.agent.command), target)
        finally:
            refresher.cancel()
        await self.bb.redis.set(lease, f"done:{result.id if result else ''}")
        return result

    async def _read_grant(self, claim_id: str, artefact_id: str) -> tuple[Claim, Artefact | None] | None:
        """The claim and, when the notification named it, its target (one round trip); None if the claim is
        unreadable. A target read early is safe to use after the lease is taken: artefacts are immutable."""
        target: Artefact | None = None
        try:
            if not artefact_id:
                claim = await self.bb.get_claim(claim_id)
            else:
                try:
                    claim, target = await self.bb.get_claim_and_artefact(claim_id, artefact_id)
                except (NotFound, MalformedRecord):
                    # Read the claim alone: an unreadable claim is dropped as before, and an unreadable
                    # target is re-read by _execute after the lease, where it becomes the Failure artefact.
                    claim = await self.bb.get_claim(claim_id)
        except (NotFound, MalformedRecord) as exc:
            self.log.warning("grant_unreadable", claim_id=claim_id, error=str(exc))
            return None
        if artefact_id and claim.artefact_id != artefact_id:
            # The claim is the authority on its target; the notification only saves a round trip.
            self.log.warning("grant_target_mismatch", claim_id=claim_id, notified_artefact_id=artefact_id,
                             artefact_id=claim.artefact_id)
            target = None
        return claim, target

    async def _refresh_lease(self, lease: str) -> None:
        while True:
            await asyncio.sleep(LEASE_REFRESH_S)
            await self.bb.redis.expire(lease, LEASE_TTL_S)

    async def _execute(self, claim: Claim, claim_type: str, command: list[str],
                       target: Artefact | None = None) -> Artefact | None:
        if target is None:
            try:
                target = await self.bb.get_artefact(claim.artefact_id)
            except (NotFound, MalformedRecord) as exc:
                return await self._failure(claim, ToolFailure(f"failed to read target artefact: {exc}",
                                                              exit_code=-1))
        chain = await self.context_chain(target, claim.additional_context_ids)
        # A re-run after a question or a decision sees the Question and its Answer (or the decision).
        asked = {a.id for a in chain}
        chain += [a for a in await self.hitl.context_additions(claim) if a.id not in asked]
        tool_input = json.dumps(
            {"claim_type": claim_type, "target_artefact": target.to_event(),
             "context_chain": [a.to_event() for a in chain]},
            separators=(",", ":"), ensure_ascii=False,
        ).encode()
        self.log.info("tool_started", claim_id=claim.id, claim_type=claim_type, context=len(chain))
        try:
            async with self._tool_workspace(target) as cwd:
                out = await run_process(command, tool_input, cwd=cwd, env=self._env(),
                                        timeout_s=self.agent.tool_timeout_s)
            if out.exit_code != 0:
                raise ToolFailure(f"process exited with code {out.exit_code}", exit_code=out.exit_code,
                                  stdout=out.stdout, stderr=out.stderr)
            try:
                result = parse_tool_output(out.stdout)
            except ValueError as exc:
                raise ToolFailure(f"Failed to parse tool output: {exc}", stdout=out.stdout, stderr=out.stderr) from None
            if result.artefact_type == "CodeCommit":
                await self._check_commit(result.artefact_payload)
        except ToolFailure as failure:
            self.log.warning("tool_failed", claim_id=claim.id, reason=failure.reason)
            written = await self._failure(claim, failure)
            if is_peer_claim(claim, target):
                await self.hitl.peer_failed(claim, target, failure.reason)
            return written
        try:
            artefact = await self.hitl.handle_result(claim, target, result) or \
                await self._write_result(claim, target, result)
        except HoltError as exc:
            return await self._failure(claim, ToolFailure(f"Tool succeeded but artefact creation failed: {exc}"))
        self.log.info("tool_succeeded", claim_id=claim.id, artefact_id=artefact.id, type=artefact.type)
        return artefact

    async def _check_commit(self, commit: str) -> None:
        if not commit.strip():
            raise ToolFailure("git commit validation failed: commit hash is empty")
        out = await run_process(["git", "cat-file", "-e", f"{commit.strip()}^{{commit}}"], b"",
                                cwd=self.workspace, env=self._env(), timeout_s=30)
        if out.exit_code != 0:
            raise ToolFailure(f"git commit validation failed: {out.stderr.strip() or 'not a commit'}")

    async def _write_result(self, claim: Claim, target: Artefact, result: ToolResult) -> Artefact:
        if claim.status == ClaimStatus.PENDING_ASSIGNMENT:
            artefact = Artefact(
                id=new_id(), logical_id=target.logical_id, version=target.version + 1,
                structural_type=result.structural_type, type=target.type, payload=result.artefact_payload,
                source_artefacts=[target.id, *claim.additional_context_ids], produced_by_role=self.name,
            )
            reworked = WorkflowEvent(event=WorkflowEventType.ARTEFACT_REWORKED, data={
                "new_artefact_id": artefact.id, "logical_id": artefact.logical_id, "new_version": artefact.version,
                "previous_version_id": target.id, "artefact_type": artefact.type, "produced_by_role": self.name,
            })
            return await self.bb.create_artefact(artefact, add_to_thread=True, events=[reworked])
        ident = new_id()
        artefact = Artefact(
            id=ident, logical_id=ident, version=1, structural_type=result.structural_type,
            type=result.artefact_type, payload=result.artefact_payload, source_artefacts=[target.id],
            produced_by_role=self.name,
        )
        return await self.bb.create_artefact(artefact, add_to_thread=True)

    async def _failure(self, claim: Claim, failure: ToolFailure) -> Artefact:
        ident = new_id()
        artefact = Artefact(
            id=ident, logical_id=ident, version=1, structural_type=StructuralType.FAILURE,
            type="ToolExecutionFailure", payload=failure.payload(), source_artefacts=[claim.artefact_id],
            produced_by_role=self.name,
        )
        return await self.bb.create_artefact(artefact, add_to_thread=True)

    def _env(self) -> dict[str, str]:
        # Tools never get the Redis credentials: they talk to Holt only through stdin/stdout.
        env = {k: v for k, v in os.environ.items() if k not in ("HOLT_REDIS_URL", "REDIS_URL", "HOLT_AUDIT_KEY",
                                                                 "HOLT_AGENT_REDIS_URL", "HOLT_OPERATOR_TOKEN")}
        env.update(self.agent.env_overrides())
        env.update({"HOLT_INSTANCE_NAME": self.bb.instance, "HOLT_AGENT_NAME": self.name,
                    "HOLT_WORKSPACE": str(self.workspace)})
        return env

    @contextlib.asynccontextmanager
    async def _tool_workspace(self, target: Artefact) -> AsyncIterator[Path]:
        """rw: the workspace itself. ro: a throw-away git worktree, so the tool cannot touch the user's files."""
        if self.agent.workspace.mode != "ro":
            yield self.workspace
            return
        tmp = Path(tempfile.mkdtemp(prefix=f"holt-{self.name}-"))
        view = tmp / "workspace"
        rev = target.payload.strip() if target.type == "CodeCommit" and target.payload.strip() else "HEAD"
        made = await run_process(["git", "worktree", "add", "--detach", "--quiet", str(view), rev], b"",
                                 cwd=self.workspace, env=self._env(), timeout_s=60)
        try:
            if made.exit_code != 0:
                # Not a git repository (or no commit yet): a plain copy is still a safe read-only view.
                await asyncio.to_thread(shutil.copytree, self.workspace, view, symlinks=True,
                                        ignore=shutil.ignore_patterns(".git", ".holt", ".venv"))
            yield view
        finally:
            if made.exit_code == 0:
                await run_process(["git", "worktree", "remove", "--force", str(view)], b"",
                                  cwd=self.workspace, env=self._env(), timeout_s=60)
            await asyncio.to_thread(shutil.rmtree, tmp, True)

    # ================================================================== context (protocol 5.9)

    async def context_chain(self, target: Artefact, additional_ids: list[str]) -> list[Artefact]:
        """Latest versions of everything the target derives from, oldest first; deterministic."""
        taken: dict[str, Artefact] = {}  # logical_id -> artefact
        level = [*target.source_artefacts, *additional_ids]
        seen_ids: set[str] = {target.id}
        for _ in range(CONTEXT_LEVELS):
            if not level:
                break
            fetched = await self.bb.get_artefacts([i for i in dict.fromkeys(level) if i not in seen_ids])
            nxt: list[str] = []
            for art in fetched:
                if art is None or art.id in seen_ids:
                    continue
                seen_ids.add(art.id)
                latest = await self.bb.latest_version(art.logical_id)
                if latest is not None and latest[1] > art.version and latest[0] != target.id:
                    with contextlib.suppress(NotFound, MalformedRecord):
                        art = await self.bb.get_artefact(latest[0])
                if art.logical_id in taken or art.logical_id == target.logical_id:
                    continue
                taken[art.logical_id] = art
                nxt.extend(art.source_artefacts)
            level = nxt
        kept = [a for a in taken.values() if a.structural_type in _IN_CONTEXT]
        return sorted(kept, key=lambda a: (a.created_at_ms, a.id))


async def run_worker(bb: Blackboard, config: Config, agent_name: str, workspace: Path, claim_id: str) -> int:
    """``holt pup --execute-claim``: one grant for a controller, with the worker's command. Exit code."""
    pup = Pup(bb, config, agent_name, workspace)
    claim = await bb.get_claim(claim_id)
    if claim.status not in (ClaimStatus.PENDING_EXCLUSIVE, ClaimStatus.PENDING_ASSIGNMENT):
        raise HoltError(f"claim {claim_id} is not in valid status for worker execution (status: {claim.status})")
    command = list(pup.agent.worker.command if pup.agent.worker else pup.agent.command)
    await pup.execute(claim_id, "exclusive", command=command)
    return 0
