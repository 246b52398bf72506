"""``holt explain``: why a claim is not moving, from Redis alone."""

from __future__ import annotations

import json
from pathlib import Path

from holt_core.blackboard import Blackboard
from holt_core.debug.client import DebugClient
from holt_core.debug.explain import REASON_PROVIDERS, ClaimContext, Reason, register_reason_provider
from tests.clirun import holt
from tests.debughelp import goal, poll, recipe_engine


async def test_explain_names_the_missing_bidder_of_a_claim_waiting_on_a_silent_agent(
    tmp_path: Path, redis_url: str, instance: str, bb: Blackboard, cli_env: dict[str, str]
) -> None:
    engine = recipe_engine(tmp_path, redis_url, instance, **{"bid_timeout: 10s": "bid_timeout: 120s"})
    await engine.start_orchestrator()
    await engine.start_pups(only=["Drafter", "Reviewer", "Formatter"])  # the Nutritionist is silent
    try:
        target = await goal(bb, "Sourdough bread")

        async def three_bids() -> bool:
            claim_id = await bb.claim_id_for_artefact(target.id)
            return bool(claim_id) and len(await bb.get_bids(claim_id or "")) == 3

        await poll(three_bids, 30)
        claim_id = await bb.claim_id_for_artefact(target.id) or ""
        code, out, err = await holt(cli_env, "explain", target.id, "--json", "--name", instance)
        assert code == 0, err
        result = json.loads(out)
        assert result["claim_id"] == claim_id and result["moving"] is False
        waiting = [r for r in result["reasons"] if r["kind"] == "waiting_for_bids"]
        assert len(waiting) == 1 and waiting[0]["waiting_for"] == ["Nutritionist"]
        assert "3 of 4 in" in waiting[0]["message"] and "ignore in" in waiting[0]["message"]

        code, out, err = await holt(cli_env, "explain", claim_id[:8], "--name", instance)
        assert code == 0, err
        text = out.decode()
        assert "not moving" in text and "waiting for bids from Nutritionist" in text

        # The extension point: another area (questions, approvals) adds its own reasons.
        async def open_question(ctx: ClaimContext) -> list[Reason]:
            return [Reason(kind="open_question", message="asks: flour type?", waiting_for=["human"])]

        register_reason_provider(open_question)
        try:
            why = await DebugClient(bb, "x").explain(claim_id)
        finally:
            REASON_PROVIDERS.remove(open_question)
        # A claim waiting for a person stands there (holt_core/claim_stage.py): that reason comes first.
        assert [r.kind for r in why.reasons] == ["open_question", "waiting_for_bids"]
        assert why.state == "waiting" and why.summary == "asks: flour type?"

        code, _, err = await holt(cli_env, "explain", "0000000000", "--name", instance)
        assert code == 1 and "no claim or artefact" in err
    finally:
        await engine.close()
