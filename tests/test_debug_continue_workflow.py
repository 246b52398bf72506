"""Continue one workflow only (issue 13): under full control, ``holt debug continue HOLD --workflow`` carries out
the named decision and full control's other holds of the same root goal, stays under full control, and leaves
every other workflow held. Real Redis, the orchestrator, the installed CLI."""

from __future__ import annotations

import json
from pathlib import Path

from holt_core.blackboard import Blackboard
from holt_core.debug.client import DebugClient
from holt_core.models import Artefact, StructuralType, new_id
from tests.clirun import holt
from tests.debughelp import goal, poll, recipe_engine, wait_held


async def test_continue_workflow_releases_only_that_workflow_and_keeps_full_control(
    tmp_path: Path, redis_url: str, instance: str, bb: Blackboard, cli_env: dict[str, str]
) -> None:
    engine = recipe_engine(tmp_path, redis_url, instance)
    await engine.start_orchestrator()  # no agents needed: claim creation is the held decision
    client = DebugClient(bb, "alice")
    try:
        await client.pause()
        first = await goal(bb, "Rye bread")
        other = await goal(bb, "Sourdough bread")
        # A second artefact of the first workflow (its root goal is ``first``).
        child = await bb.create_artefact(Artefact(
            id=new_id(), logical_id=new_id(), version=1, structural_type=StructuralType.STANDARD,
            type="Note", payload="more rye", source_artefacts=[first.id], produced_by_role="user"))
        for subject in (first.id, other.id, child.id):
            await wait_held(client, lambda h, subject=subject: h.subject == subject)  # type: ignore[misc]
        named = next(h for h in await client.held() if h.subject == first.id)

        code, out, err = await holt(cli_env, "debug", "continue", named.hold_id, "--workflow", "--name", instance,
                                    "--as", "alice", "--json")
        assert code == 0, err
        report = json.loads(out)
        assert sorted(d["subject"] for d in report["decisions"]) == sorted([first.id, child.id])
        assert report["mode"]["full_control"] is True

        async def first_workflow_claimed() -> bool:
            return all([await bb.claim_id_for_artefact(a.id) for a in (first, child)])

        await poll(first_workflow_claimed, 30)
        assert (await client.mode()).full_control
        assert await bb.claim_id_for_artefact(other.id) is None
        assert [h.subject for h in await client.held() if h.release is None] == [other.id]

        code, _, err = await holt(cli_env, "debug", "continue", "--workflow", "--name", instance, "--as", "alice")
        assert code != 0 and "needs the held decision" in err and "Traceback" not in err
    finally:
        await engine.close()
