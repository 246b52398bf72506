"""One grant, one tool run at a time: a pup SIGKILLed during a long tool run leaves the tool running
(it has its own session); the restarted pup kills that leftover run before it runs the tool again."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from pathlib import Path

import pytest

from holt_core.blackboard import Blackboard
from holt_core.models import Artefact, Claim, ClaimStatus, StructuralType, new_id
from holt_core.sandbox import find_bwrap
from holt_core.tool_lease import ProcessStamp, holder_of, lease_is_stale, running_value, stamp
from tests.engine import make_workspace, poll, wait_for_artefact

# Appends "<run token> <what> <time>" lines: the first run ticks for 20 s, a re-run finishes at once.
TOOL = r'''
import json, os, sys, time, uuid
req = json.load(sys.stdin)
first = not os.path.exists("marks.log")
token = uuid.uuid4().hex[:8]
def mark(what):
    with open("marks.log", "a") as f:
        f.write(f"{token} {what} {time.time():.3f}\n")
mark("start")
for _ in range(100 if first else 3):
    time.sleep(0.2)
    mark("tick")
mark("end")
print(json.dumps({"artefact_type": "Done", "artefact_payload": token, "summary": "ok"}))
'''

CONFIG = f"""
version: "1.0"
agents:
  Worker:
    command: ["{sys.executable}", "tool.py"]
    bidding_strategy: exclusive
    sandbox: {{sandbox}}
    timeout: 60s
    workspace:
      mode: rw
"""


def runs(marks: Path) -> dict[str, list[tuple[str, float]]]:
    by_run: dict[str, list[tuple[str, float]]] = {}
    for line in marks.read_text().splitlines():
        token, what, at = line.split()
        by_run.setdefault(token, []).append((what, float(at)))
    return by_run


async def start_pup(env: dict[str, str], instance: str, ws: Path) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        sys.executable, "-m", "holt_core.cli.main", "pup", "--instance", instance, "--agent", "Worker",
        "--workspace", str(ws), env=env, stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL)


@pytest.mark.parametrize("sandbox", ["off", pytest.param("auto", marks=pytest.mark.skipif(
    find_bwrap()[0] is None, reason="no working bubblewrap here"))])
async def test_a_restarted_pup_kills_the_leftover_tool_before_running_it_again(
    tmp_path: Path, bb: Blackboard, cli_env: dict[str, str], instance: str, sandbox: str
) -> None:
    """Unsandboxed, the tool outlives its pup and the restarted pup kills it; sandboxed, it dies with its pup."""
    ws = make_workspace(tmp_path, files={"holt.yml": CONFIG.format(sandbox=sandbox), "tool.py": TOOL})
    ident = new_id()
    goal = await bb.create_artefact(Artefact(
        id=ident, logical_id=ident, version=1, structural_type=StructuralType.STANDARD, type="GoalDefined",
        payload="go", source_artefacts=[], produced_by_role="user"), add_to_thread=True)
    claim = Claim(id=new_id(), artefact_id=goal.id, status=ClaimStatus.PENDING_EXCLUSIVE,
                  granted_exclusive_agent="Worker")
    await bb.redis.hset(bb.keys.claim(claim.id), mapping=claim.to_hash())  # the pup's catch-up runs it
    marks = ws / "marks.log"

    first = await start_pup(cli_env, instance, ws)
    second: asyncio.subprocess.Process | None = None
    try:
        await poll(lambda: marks.exists() and " tick " in marks.read_text(), 30, "the first run to start")
        tool = ProcessStamp.model_validate_json(str(await bb.redis.get(bb.keys.exec_tool(claim.id, "Worker"))))
        first.send_signal(signal.SIGKILL)
        await first.wait()
        if sandbox == "off":
            assert tool.alive(), "the tool outlives its SIGKILLed pup (it runs in its own session)"

        second = await start_pup(cli_env, instance, ws)
        result = await wait_for_artefact(bb, lambda a: a.produced_by_role == "Worker", within=60)
        assert not tool.alive()
        await asyncio.sleep(0.5)  # a run still alive would tick within 0.2 s
        by_run = runs(marks)
        assert len(by_run) == 2
        (_, old), (new_token, new) = sorted(by_run.items(), key=lambda kv: kv[1][0][1])
        assert result.payload == new_token
        assert [w for w, _ in old].count("end") == 0
        assert [w for w, _ in new][-1] == "end"
        new_start = new[0][1]
        assert max(at for _, at in old) < new_start, "the leftover run overlapped the re-run"
        assert await bb.redis.get(bb.keys.exec_lease(claim.id, "Worker")) == f"done:{result.id}"
        assert not await bb.redis.exists(bb.keys.exec_tool(claim.id, "Worker"))
    finally:
        for proc in (first, second):
            if proc is not None and proc.returncode is None:
                proc.send_signal(signal.SIGTERM)
                await proc.wait()


def test_a_lease_is_stale_only_when_its_pup_is_known_dead() -> None:
    assert not lease_is_stale(running_value(stamp(os.getpid())))
    dead = stamp(os.getpid()).model_copy(update={"start": "1"})  # same pid, another start: recycled
    assert lease_is_stale(running_value(dead))
    elsewhere = dead.model_copy(update={"host": "another-host"})
    assert not lease_is_stale(running_value(elsewhere))  # cannot tell: its TTL decides
    assert not lease_is_stale("done:abc")
    assert not lease_is_stale("running:1234")  # an older pup's lease
    assert holder_of(running_value(dead)) == dead
