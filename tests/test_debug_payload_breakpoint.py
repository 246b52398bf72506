"""Breakpoints on the target artefact's payload (issue 13): ``holt debug break add --payload REGEX``, validated
when added, matched by the gate against the artefact it reads; holt-tui's form takes ``payload=REGEX``."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from holt_core.blackboard import Blackboard
from holt_core.debug.breakpoints import PAYLOAD_REGEX_MAX, Breakpoint, BreakpointSpec
from holt_core.debug.client import DebugClient
from holt_core.decisions import DecisionKind
from holt_tui.breakpoint_form import CONDITION_ALIASES, CONDITION_NAMES, parse_conditions
from tests.clirun import holt
from tests.debughelp import goal, poll, recipe_engine, wait_held


def test_payload_regex_is_validated_and_searched() -> None:
    bp = Breakpoint(**BreakpointSpec(payload_regex=r"\brye\b").model_dump(), id="b", created_by="t",
                    created_at_ms=0)
    assert bp.matches_payload("a rye bread") and not bp.matches_payload("sourdough") and not bp.matches_payload(None)
    assert bp.criteria() == {"payload_regex": r"\brye\b"}
    for bad in ("(", "", "x" * (PAYLOAD_REGEX_MAX + 1)):
        with pytest.raises(ValueError):
            BreakpointSpec(payload_regex=bad)


def test_tui_form_accepts_payload_condition() -> None:
    conditions = parse_conditions("payload='v[0-9]+ beta' role=Drafter")
    assert conditions == {"payload": "v[0-9]+ beta", "role": "Drafter"}
    assert CONDITION_ALIASES["payload"] == "payload_regex" and "payload_regex" in CONDITION_NAMES


async def test_cli_payload_breakpoint_holds_only_matching_payloads(
    tmp_path: Path, redis_url: str, instance: str, bb: Blackboard, cli_env: dict[str, str]
) -> None:
    engine = recipe_engine(tmp_path, redis_url, instance)
    await engine.start_orchestrator()  # no agents needed: claim creation is the held decision

    async def cli(*args: str) -> tuple[int, str, str]:
        code, out, err = await holt(cli_env, *args, "--name", instance, "--as", "alice")
        return code, out.decode(), err

    try:
        code, _, err = await cli("debug", "break", "add", "--payload", "(unclosed")
        assert code != 0 and "invalid payload regex" in err and "Traceback" not in err
        assert len(err.strip().splitlines()) == 1, err
        code, _, err = await cli("debug", "break", "add", "--payload", "x" * 1000)
        assert code != 0 and "longer than" in err and "Traceback" not in err
        code, out, err = await cli("debug", "break", "add", "--kind", "create_claim", "--payload", "(?i)rye",
                                   "--json")
        assert code == 0, err
        assert json.loads(out)["payload_regex"] == "(?i)rye"
        rye = await goal(bb, "Rye bread")
        plain = await goal(bb, "Sourdough bread")
        held = await wait_held(DebugClient(bb, "viewer"), lambda h: h.decision.kind == DecisionKind.CREATE_CLAIM)
        assert held.subject == rye.id

        async def plain_claimed() -> bool:
            return await bb.claim_id_for_artefact(plain.id) is not None

        await poll(plain_claimed, 30)
        assert [h.subject for h in await DebugClient(bb, "viewer").held()] == [rye.id]
        assert await bb.claim_id_for_artefact(rye.id) is None
    finally:
        await engine.close()
