"""The control lease through the installed CLI: a second operator is read-only until an audited take-over."""

from __future__ import annotations

import json
from pathlib import Path

from holt_core.blackboard import Blackboard
from holt_core.debug.client import DebugClient
from holt_core.decisions import DecisionKind
from tests.clirun import holt
from tests.debughelp import goal, poll, recipe_engine, wait_held


async def test_second_operator_is_refused_until_an_audited_take_over(
    tmp_path: Path, redis_url: str, instance: str, bb: Blackboard, cli_env: dict[str, str]
) -> None:
    engine = recipe_engine(tmp_path, redis_url, instance)
    await engine.start_orchestrator()  # no agents needed: claim creation is the held decision

    async def cli(*args: str) -> tuple[int, str, str]:
        code, out, err = await holt(cli_env, *args, "--name", instance)
        return code, out.decode(), err

    try:
        code, out, err = await cli("debug", "break", "add", "--kind", "create_claim", "--as", "alice", "--json")
        assert code == 0, err
        bp = json.loads(out)
        assert bp["decision_kind"] == "create_claim" and bp["created_by"] == "alice"
        target = await goal(bb, "Sourdough bread")
        held = await wait_held(DebugClient(bb, "viewer"), lambda h: h.decision.kind == DecisionKind.CREATE_CLAIM)

        code, out, err = await cli("debug", "step", "--as", "bob")
        assert code == 1 and "control is held by alice" in err and "read-only" in err
        code, _, err = await cli("debug", "lease", "take", "--as", "bob")
        assert code == 1 and "--force" in err
        assert (await DebugClient(bb, "x").held())[0].release is None  # nothing was released
        code, out, _ = await cli("debug", "break", "list", "--as", "bob", "--json")  # reading is allowed
        assert code == 0 and json.loads(out)[0]["hits"] == 1
        code, out, _ = await cli("debug", "held", "--as", "bob", "--json")
        assert code == 0 and json.loads(out)["held"][0]["subject"] == held.subject

        code, out, err = await cli("debug", "lease", "take", "--force", "--as", "bob", "--json")
        assert code == 0, err
        assert json.loads(out)["operator"] == "bob"
        code, out, err = await cli("debug", "step", "--as", "bob", "--json")
        assert code == 0, err
        assert json.loads(out)["decisions"][0]["subject"] == target.id
        await poll(lambda: bb.claim_id_for_artefact(target.id))  # carried out: the claim exists
        code, _, err = await cli("debug", "skip", "--as", "alice")
        assert code == 1 and "control is held by bob" in err
        code, out, _ = await cli("debug", "lease", "--json", "--as", "alice")
        assert code == 0 and json.loads(out)["operator"] == "bob"
        code, _, err = await cli("debug", "lease", "release", "--as", "bob")
        assert code == 0, err
    finally:
        await engine.close()
    records = await bb.audit.records()
    refused = [r for r in records if r.action == "debug_control_refused"]
    assert [(r.operator, r.details["holder"]) for r in refused] == [
        ("human:bob", "alice"), ("human:bob", "alice"), ("human:alice", "bob")]
    takeover = [r for r in records if r.action == "debug_lease_taken_over"]
    assert len(takeover) == 1 and takeover[0].operator == "human:bob"
    assert takeover[0].details["previous_holder"] == "alice"
    steps = [r for r in records if r.action == "debug_step"]
    assert [r.operator for r in steps] == ["human:bob"]
    assert [r.action for r in records if r.action.startswith("debug_lease")] == [
        "debug_lease_taken", "debug_lease_taken_over", "debug_lease_released"]
    assert (await bb.audit.verify()).ok
