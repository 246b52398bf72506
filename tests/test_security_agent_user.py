"""What a prompt-injected tool (or any client) holding the agent's Redis credentials (``holt-agent``) can change
(issue 12): Redis refuses every write to the debug control plane, to claims and grants, to the orchestrator lock,
the HITL policy and workflow starters, the instance and operator registries; what a person decided in the debugger
stays as the person left it. The orchestrator and the pups run as their own Redis users here, as under the
supervisor, so the agent's legitimate writes are exercised too."""

from __future__ import annotations

import fnmatch
import json
import signal
from collections.abc import Awaitable, Callable
from pathlib import Path

from redis.asyncio import Redis
from redis.exceptions import NoPermissionError, ResponseError

from holt_core.acl import role_url
from holt_core.blackboard import Blackboard, connect_redis
from holt_core.debug.breakpoints import BreakpointSpec
from holt_core.debug.client import DebugClient
from holt_core.debug.commands import Command, CommandKind
from holt_core.debug.held import signature
from holt_core.debug.lease import ControlLease
from holt_core.debug.mode import ControlMode
from holt_core.decisions import DecisionKind
from holt_core.keys import AGENT_WRITABLE_PATTERNS, INSTANCES, OPERATORS, Keys
from holt_core.models import Artefact, BidType, StructuralType, new_id
from holt_core.transaction import Tx
from tests.clirun import holt
from tests.debughelp import goal, recipe_engine, wait_held
from tests.engine import poll, wait_for_artefact
from tests.test_orchestrator_crash import start_orchestrator_process

Attack = Callable[[], Awaitable[object]]


def _agent_may_write(key: str) -> bool:
    return any(fnmatch.fnmatchcase(key, p) for p in AGENT_WRITABLE_PATTERNS)


def test_agent_write_patterns_cover_its_keys_and_nothing_of_the_control_plane() -> None:
    keys, some = Keys("inst-a"), new_id()
    mine = [keys.artefact(some), keys.artefact_index, keys.thread(some), keys.bids(some),
            keys.exec_lease(some, "Drafter"), keys.exec_tool(some, "Drafter"), keys.health_endpoints, keys.audit,
            keys.audit_head, keys.hitl_request(some), keys.hitl_open, keys.hitl_active, keys.hitl_deadlines,
            keys.hitl_claim(some), keys.hitl_artefacts, keys.hitl_dedupe(f"gate:{some}"), keys.hitl_outbox]
    assert [k for k in mine if not _agent_may_write(k)] == []
    not_mine = [
        keys.debug_breakpoint("bp-0a1b2c"), keys.debug_breakpoints, keys.debug_hits, keys.debug_held(some),
        keys.debug_held_index, keys.debug_skipped(some), keys.debug_skipped_index, keys.debug_stepping,
        keys.debug_mode, keys.debug_commands, keys.debug_commands_cursor, keys.debug_lease, keys.debug_roster,
        keys.claim(some), keys.claim_by_artefact(some), keys.grant_queue("Drafter"), keys.claim_index,
        keys.open_claims, keys.lock, keys.lock_owner, keys.agent_images, keys.hitl_policy, keys.hitl_starter(some),
        keys.hitl_outbox_cursor, keys.proof("alice", some, "n"), keys.audit_witness("alice", 7),
        keys.audit_witnessed_from, keys.hitl_system_proof(some), keys.hitl_system_proofs_from, INSTANCES, OPERATORS,
    ]
    assert [k for k in not_mine if _agent_may_write(k)] == []


async def _refused(attacks: dict[str, Attack]) -> list[str]:
    """The attacks Redis did not refuse with NOPERM."""
    went_through = []
    for name, attack in attacks.items():
        try:
            await attack()
        except ResponseError as exc:  # a script's refusal comes back as its error text
            if not isinstance(exc, NoPermissionError) and "NOPERM" not in str(exc):
                went_through.append(f"{name}: {exc}")
        else:
            went_through.append(name)
    return went_through


async def test_agent_user_cannot_change_what_a_person_set_in_the_debugger(
        tmp_path: Path, redis_url: str, instance: str, bb: Blackboard) -> None:
    engine = recipe_engine(tmp_path, redis_url, instance)
    engine.role_users = True  # the orchestrator as holt-orchestrator, the pups and workers as holt-agent
    await engine.start()
    agent: Redis = connect_redis(role_url(redis_url, "agent"))
    agent_bb = Blackboard(agent, instance)
    alice = DebugClient(bb, "alice")
    keys = bb.keys
    try:
        bp = await alice.add_breakpoint(BreakpointSpec(artefact_type="RecipeDraft", granted_role="Formatter",
                                                       hit_condition=">=1"))
        await goal(bb, "Sourdough bread")
        held = await wait_held(alice, lambda h: "Formatter" in h.decision.summary, 60)
        before = await alice.state()
        lease = await alice.lease_holder()
        assert lease is not None and lease.operator == "alice"

        disabled = bp.model_copy(update={"enabled": False}).model_dump_json()
        widened = bp.model_copy(update={"artefact_type": "Nothing", "granted_role": None}).model_dump_json()
        running = ControlMode(full_control=False, by="alice").to_json()
        paused = ControlMode(full_control=True, by="alice").to_json()
        claim_id = held.decision.claim_id
        attacks: dict[str, Attack] = {
            # a held decision: skip it, drop it, or release it through the orchestrator's own command stream
            "mark skipped": lambda: agent.set(keys.debug_skipped(held.subject), signature(held.decision)),
            "index skipped": lambda: agent.sadd(keys.debug_skipped_index, held.subject),
            "delete hold": lambda: agent.delete(keys.debug_held(held.subject)),
            "unindex hold": lambda: agent.srem(keys.debug_held_index, held.subject),
            "step marker": lambda: agent.sadd(keys.debug_stepping, claim_id),
            "command": lambda: agent.xadd(keys.debug_commands, Command(kind=CommandKind.SYNC, by="alice").fields()),
            "skip the command stream": lambda: agent.set(keys.debug_commands_cursor, "99999999999999-0"),
            # a breakpoint: delete, disable, widen or narrow it, or change its hit count
            "delete breakpoint": lambda: agent.delete(keys.debug_breakpoint(bp.id)),
            "unindex breakpoint": lambda: agent.srem(keys.debug_breakpoints, bp.id),
            "disable breakpoint": lambda: agent.set(keys.debug_breakpoint(bp.id), disabled),
            "rewrite breakpoint": lambda: agent.set(keys.debug_breakpoint(bp.id), widened),
            "hit count": lambda: agent.hset(keys.debug_hits, bp.id, "-1000"),
            # full control and the control lease
            "full control off": lambda: agent.set(keys.debug_mode, running),
            "full control on": lambda: agent.set(keys.debug_mode, paused),
            "take the lease": lambda: agent.hset(keys.debug_lease, mapping={"operator": "mallory", "token": "x"}),
            "drop the lease": lambda: agent.delete(keys.debug_lease),
            # the same through a guarded script, and through holt's own clients with the agent's credentials
            "script": lambda: agent_bb.run(Tx().delete(keys.debug_held(held.subject))
                                           .srem(keys.debug_held_index, held.subject)),
            "lease take": lambda: ControlLease(agent_bb, "mallory").take(force=True),
            "client skip": lambda: DebugClient(agent_bb, "alice").skip(held.hold_id),
            "client remove breakpoint": lambda: DebugClient(agent_bb, "alice").remove_breakpoint(bp.id),
        }
        assert await _refused(attacks) == []

        after = await alice.state()
        assert after.held_raw == before.held_raw and held.subject in after.held  # still held, unreleased
        assert after.held[held.subject].release is None and not after.skipped and not after.stepping
        assert after.breakpoint_raw == before.breakpoint_raw  # the breakpoint as alice set it
        assert after.mode_raw == before.mode_raw
        now = await alice.lease_holder()
        assert now is not None and now.operator == "alice" and now.token == lease.token
        assert not [a for a in (await bb.list_artefacts()).artefacts if a.type == "FormattedRecipe"]

        # alice's own continue is carried out; the agents, as holt-agent, finish the work.
        await alice.continue_(held.decision.claim_id)
        await wait_for_artefact(bb, lambda a: a.type == "FormattedRecipe", 60)
    finally:
        await agent.aclose()
        await engine.close()


async def test_agent_user_cannot_write_claims_grants_locks_or_registries(
        redis_url: str, instance: str, bb: Blackboard) -> None:
    agent: Redis = connect_redis(role_url(redis_url, "agent"))
    agent_bb = Blackboard(agent, instance)
    keys, claim_id, goal_id = bb.keys, new_id(), new_id()
    try:
        attacks: dict[str, Attack] = {
            "claim status": lambda: agent.hset(keys.claim(claim_id), "status", "complete"),
            "claim grant": lambda: agent.hset(keys.claim(claim_id), "granted_exclusive_agent", "Mallory"),
            "claim of an artefact": lambda: agent.set(keys.claim_by_artefact(goal_id), claim_id),
            "grant queue": lambda: agent.zadd(keys.grant_queue("Drafter"), {claim_id: 1}),
            "open claims": lambda: agent.srem(keys.open_claims, claim_id),
            "orchestrator lock": lambda: agent.set(keys.lock, "orchestrator:1"),
            "lock owner": lambda: agent.delete(keys.lock_owner),
            "hitl policy": lambda: agent.set(keys.hitl_policy, "{}"),
            "workflow starter": lambda: agent.set(keys.hitl_starter(goal_id), "mallory"),
            "instance registry": lambda: agent.hset(INSTANCES, instance, "{}"),
            "operator registry": lambda: agent.hset(OPERATORS, "mallory", "{}"),
            "a person's proof": lambda: agent.set(keys.proof("alice", goal_id, "n"), "{}"),
            "notification cursor": lambda: agent.set(keys.hitl_outbox_cursor, "99999999999999-0"),
        }
        assert await _refused(attacks) == []

        # What an agent does still works: post an artefact, bid, append to the audit trail.
        ident = new_id()
        art = await agent_bb.create_artefact(Artefact(
            id=ident, logical_id=ident, version=1, structural_type=StructuralType.STANDARD, type="Note",
            payload="hello", source_artefacts=[], produced_by_role="Drafter"))
        await agent_bb.set_bid(claim_id, "Drafter", BidType.IGNORE)
        await agent_bb.audit.append(operator="agent:Drafter", action="note")
        assert (await bb.get_artefact(art.id)).payload == "hello"
        assert await bb.redis.hget(keys.bids(claim_id), "Drafter") == BidType.IGNORE.value
    finally:
        await agent.aclose()


async def test_lease_taken_as_someone_records_the_admin(
        instance: str, bb: Blackboard, cli_env: dict[str, str]) -> None:
    async def cli(*args: str) -> tuple[int, str, str]:
        code, out, err = await holt(cli_env, *args, "--name", instance)
        return code, out.decode(), err

    await bb.audit.append(operator="system:test", action="instance_seeded")  # the instance exists
    code, out, err = await cli("debug", "lease", "take", "--as", "alice", "--json")
    assert code == 0, err
    assert json.loads(out)["operator"] == "alice" and json.loads(out)["impersonated_by"] == "holt-admin"
    holder = await DebugClient(bb, "viewer").lease_holder()
    assert holder is not None and holder.impersonated_by == "holt-admin"
    code, _, err = await cli("debug", "lease", "take", "--force", "--as", "bob")
    assert code == 0, err
    code, _, err = await cli("debug", "lease", "release", "--as", "bob")
    assert code == 0, err
    # A person acting as themself (no --as) is recorded without it.
    await DebugClient(bb, "carol").take_lease()

    records = [r for r in await bb.audit.records() if r.action.startswith("debug_lease")]
    assert [(r.action, r.operator, r.details.get("impersonated_by")) for r in records] == [
        ("debug_lease_taken", "human:alice", "holt-admin"),
        ("debug_lease_taken_over", "human:bob", "holt-admin"),
        ("debug_lease_released", "human:bob", "holt-admin"),
        ("debug_lease_taken", "human:carol", None),
    ]
    holder = await DebugClient(bb, "viewer").lease_holder()
    assert holder is not None and holder.operator == "carol" and holder.impersonated_by == ""


async def test_a_bid_rewritten_after_a_release_runs_nothing_the_person_did_not_release(
        tmp_path: Path, redis_url: str, instance: str, bb: Blackboard) -> None:
    # Bids stay agent-writable (an agent bids), and any agent's user can rewrite any agent's bid on a claim. A
    # rewrite without its announcement is read when the orchestrator next reads bids from Redis (here: its
    # recovery after a restart, with alice's release waiting).
    engine = recipe_engine(tmp_path, redis_url, instance)
    engine.role_users = True
    orch_url = role_url(redis_url, "orchestrator")
    orch = await start_orchestrator_process(orch_url, instance, engine.workspace)
    agent: Redis = connect_redis(role_url(redis_url, "agent"))
    alice = DebugClient(bb, "alice", wait_applied_s=0.5)
    try:
        await engine.start_pups()
        await alice.add_breakpoint(BreakpointSpec(decision_kind="grant_review", granted_role="Reviewer"))
        await goal(bb, "Sourdough bread")
        held = await wait_held(alice, lambda h: h.decision.kind == DecisionKind.GRANT_REVIEW, 60)
        claim_id = held.decision.claim_id
        orch.send_signal(signal.SIGKILL)
        await orch.wait()
        await agent.hset(bb.keys.bids(claim_id), "Reviewer", "ignore")  # no review: straight to the next phase
        await alice.continue_(claim_id)  # what alice releases is the review she was shown
        orch = await start_orchestrator_process(orch_url, instance, engine.workspace)

        async def stale() -> bool:
            return any(r.action == "debug_release_stale" and r.subject == held.subject
                       for r in await bb.audit.records())

        await poll(stale, 30, "the stale release reported")
        now = (await alice.state()).held[held.subject]
        assert now.release is None and now.hold_id == held.hold_id  # held again, for a new release
        assert now.decision.kind != DecisionKind.GRANT_REVIEW  # showing what would happen now
        claim = await bb.get_claim(claim_id)  # nothing alice did not release was carried out
        assert claim.phase_state is None and not claim.granted_parallel_agents and not claim.granted_review_agents
    finally:
        orch.send_signal(signal.SIGKILL)
        await orch.wait()
        await agent.aclose()
        await engine.close()
