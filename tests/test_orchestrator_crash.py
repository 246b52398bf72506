"""SIGKILL the orchestrator process at each stage of a workflow; a restarted one must finish it exactly once."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
from collections import Counter
from pathlib import Path

import pytest

from holt_core.blackboard import Blackboard
from holt_core.config import parse_config
from holt_core.models import Artefact, ClaimStatus, StructuralType
from tests.engine import Engine, make_workspace, python_agents, wait_for_artefact, wait_settled

RECIPE = Path(__file__).resolve().parent.parent / "examples" / "recipe" / "holt.yml"

# Wraps an agent command: when the target artefact's type matches, wait for a release file first.
GATE = r'''
import json, os, subprocess, sys, time
stage, wanted = sys.argv[1], sys.argv[2]
data = sys.stdin.buffer.read()
obj = json.loads(data)
target = obj.get("target_artefact", obj)
if target.get("type") == wanted:
    # Tools with workspace mode ro run in a temporary worktree; the release flag is in the real workspace.
    while not os.path.exists(os.path.join(os.environ.get("HOLT_WORKSPACE", "."), "release", stage)):
        time.sleep(0.02)
sys.exit(subprocess.run(sys.argv[3:], input=data).returncode)
'''


def gated(text: str, agent: str, which: str, stage: str, type_filter: str) -> str:
    """Put the gate in front of an agent's command or bid script in holt.yml text."""
    lines = text.splitlines()
    out: list[str] = []
    in_agent = False
    for line in lines:
        if line.startswith("  ") and not line.startswith("    "):
            in_agent = line.strip() == f"{agent}:"
        key = "command" if which == "command" else "bid_script"
        if in_agent and line.strip().startswith(f"{key}:"):
            head, rest = line.split("[", 1)
            line = f'{head}["{sys.executable}", "gate.py", "{stage}", "{type_filter}", {rest}'
        out.append(line)
    return "\n".join(out) + "\n"


async def start_orchestrator_process(redis_url: str, instance: str, ws: Path) -> asyncio.subprocess.Process:
    env = {**os.environ, "HOLT_REDIS_URL": redis_url}
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "holt_core.cli.main", "orchestrator", "--instance", instance, "--workspace", str(ws),
        env=env, cwd=ws, stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE,
    )
    assert proc.stderr is not None
    async with asyncio.timeout(30):
        while True:  # its own readiness line: recovered and subscribed
            line = await proc.stderr.readline()
            assert line, "orchestrator exited before it was ready"
            if b'"orchestrator_ready"' in line:
                break
    asyncio.get_running_loop().create_task(_drain(proc))
    return proc


async def _drain(proc: asyncio.subprocess.Process) -> None:
    assert proc.stderr is not None
    while await proc.stderr.readline():
        pass


STAGES = {
    # stage: (agent, command|bid, type filter, how to know the stage was reached)
    "consensus": ("Reviewer", "bid", "GoalDefined", "claim_created"),
    "review": ("Reviewer", "command", "RecipeDraft", "granted:Reviewer"),
    "feedback": ("Drafter", "command", "RecipeDraft", "feedback_claim_created"),
    "parallel": ("Nutritionist", "command", "RecipeDraft", "granted:Nutritionist"),
    "exclusive": ("Formatter", "command", "RecipeDraft", "granted:Formatter"),
}


@pytest.mark.parametrize("stage", list(STAGES))
async def test_sigkill_at_each_stage_then_restart_completes_exactly_once(
    tmp_path: Path, redis_url: str, instance: str, bb: Blackboard, stage: str
) -> None:
    agent, which, type_filter, reached = STAGES[stage]
    text = gated(python_agents(RECIPE.read_text()), agent, which, stage, type_filter)
    ws = make_workspace(tmp_path, example="recipe", files={"holt.yml": text, "gate.py": GATE})
    (ws / "release").mkdir()
    engine = Engine(redis_url, instance, ws, parse_config(text))
    orch = await start_orchestrator_process(redis_url, instance, ws)
    try:
        await engine.start_pups()
        async with bb.subscribe(bb.keys.claim_events, bb.keys.workflow_events) as sub:
            await engine.forage("Sourdough bread")
            async with asyncio.timeout(30):
                while True:
                    msg = await sub.get_message(ignore_subscribe_messages=True, timeout=1.0)
                    if msg is None:
                        continue
                    channel, data = str(msg["channel"]), json.loads(str(msg["data"]))
                    if reached == "claim_created" and channel == bb.keys.claim_events:
                        break
                    if channel == bb.keys.workflow_events:
                        if reached == data["event"]:
                            break
                        if reached.startswith("granted:") and data["event"] == "claim_granted" \
                                and data["data"]["agent_name"] == reached.split(":", 1)[1]:
                            break
        orch.send_signal(signal.SIGKILL)
        await orch.wait()
        # The gated agent finishes while no orchestrator runs: its output must not be lost.
        (ws / "release" / stage).write_text("go")
        if which == "command":
            await wait_for_artefact(bb, lambda a: a.produced_by_role == agent and _gated_output(stage, a), 30)
        orch = await start_orchestrator_process(redis_url, instance, ws)
        terminal = await wait_for_artefact(bb, lambda a: a.structural_type == StructuralType.TERMINAL, 60)
        await wait_settled(bb)
    finally:
        if orch.returncode is None:
            orch.send_signal(signal.SIGTERM)
            await orch.wait()
        await engine.close()

    arts = (await bb.list_artefacts()).artefacts
    assert terminal.type == "FormattedRecipe"
    # Exactly the artefacts of an uninterrupted run: nothing executed twice, nothing lost.
    assert Counter(a.type for a in arts) == Counter(
        {"GoalDefined": 1, "RecipeDraft": 2, "Review": 2, "NutritionNotes": 1, "FormattedRecipe": 1}
    )
    assert not [a for a in arts if a.structural_type == StructuralType.FAILURE]
    claims, bad = await bb.list_claims()
    assert bad == []
    ordinary = Counter(c.artefact_id for c in claims if c.status != ClaimStatus.PENDING_ASSIGNMENT
                       and not c.additional_context_ids)
    assert max(ordinary.values()) == 1  # never two claims for one artefact
    assert all(not c.status.is_open or c.phase_state is None for c in claims)  # only dormant ones stay pending


def _gated_output(stage: str, art: Artefact) -> bool:
    """The output the gated agent writes once released."""
    if stage == "feedback":
        return art.version == 2  # the rework
    return art.type in {"review": ["Review"], "parallel": ["NutritionNotes"], "exclusive": ["FormattedRecipe"]}[stage]
