"""The installed holt-tui in a real terminal (tmux), in control of a live instance: one answer, one breakpoint.

Then a search (/), q (the line it prints), and a read-only attach whose s says why it does nothing, and
one step back in history mode (h, [) and out again.
The instance runs the demo configuration (the Drafter asks which flour first) with a breakpoint on the
Formatter's grant, as `make demo` sets it up; every effect is checked on the blackboard and in the audit trail.
"""

from __future__ import annotations

import asyncio
import re
import shutil
import subprocess
import time
import uuid
from pathlib import Path

import pytest

from holt_core.blackboard import Blackboard
from holt_core.config import parse_config
from holt_core.debug.client import DebugClient
from holt_core.models import StructuralType
from tests.clirun import holt
from tests.debughelp import wait_held
from tests.engine import EXAMPLES, Engine, make_workspace, python_agents, wait_for_artefact
from tests.tui.test_live_attach import registered
from tests.tui.test_safety_and_cli import HOLT_TUI

DEMO_CONFIG = EXAMPLES / "recipe" / "holt-demo.yml"


def _tmux(socket: str, *args: str) -> str:
    return subprocess.run(["tmux", "-L", socket, *args], check=True, capture_output=True, text=True,
                          timeout=10).stdout


def _tmux_quiet(socket: str, *args: str) -> None:
    subprocess.run(["tmux", "-L", socket, *args], capture_output=True, timeout=10)


@pytest.mark.skipif(shutil.which("tmux") is None, reason="tmux is not installed")
async def test_answer_and_breakpoint_from_the_keyboard(tmp_path: Path, redis_url: str, instance: str,
                                                       bb: Blackboard, cli_env: dict[str, str]) -> None:
    text = python_agents(DEMO_CONFIG.read_text())
    engine = Engine(redis_url, instance, make_workspace(tmp_path, "recipe", files={"holt.yml": text}),
                    parse_config(text))
    await engine.start()
    socket = f"holt-demo-{uuid.uuid4().hex[:8]}"
    try:
        await registered(engine, bb)
        code, _, err = await holt(cli_env, "debug", "break", "add", "--name", instance, "--type", "RecipeDraft",
                                  "--granted", "Formatter", "--as", "tester")
        assert code == 0, err
        await engine.forage("Sourdough bread")
        question = await wait_for_artefact(bb, lambda a: a.structural_type == StructuralType.QUESTION)

        env = [f"{k}={v}" for k, v in cli_env.items() if k in ("HOLT_REDIS_URL", "HOLT_DATA_DIR", "PATH", "TZ")]
        command = ["env", "-i", *env, "HOLT_OPERATOR=tester", "TERM=xterm-256color", "LANG=C.UTF-8", HOLT_TUI,
                   "attach", instance]
        _tmux(socket, "new-session", "-d", "-s", "tui", "-x", "160", "-y", "45", *command)
        _tmux(socket, "set-option", "-w", "-t", "tui", "remain-on-exit", "on")  # to read what q prints

        async def screen_has(text: str, within: float = 20.0) -> str:
            deadline = time.monotonic() + within
            while True:
                # With the scrollback (-S -): a line printed as the app leaves the screen may be scrolled past.
                shown = _tmux(socket, "capture-pane", "-p", "-S", "-", "-t", "tui")
                if text in shown:
                    return shown
                if time.monotonic() > deadline:
                    raise AssertionError(f"{text!r} never appeared; screen:\n{shown}")
                await asyncio.sleep(0.2)

        def keys(*names: str, literal: bool = False) -> None:
            _tmux(socket, "send-keys", "-t", "tui", *(["-l"] if literal else []), *names)

        await screen_has("CONTROL (tester)")
        keys("6")
        await screen_has("Which flour should the Sourdough bread use?")
        keys("a")
        await screen_has("Your answer")
        keys("spelt flour", literal=True)
        keys("C-s")
        answer = await wait_for_artefact(bb, lambda a: a.structural_type == StructuralType.ANSWER)
        assert answer.payload == "spelt flour" and answer.produced_by_role == "human:tester"
        assert answer.source_artefacts[0] == question.id

        await wait_held(DebugClient(bb, "observer"), lambda h: "Formatter" in h.decision.summary)
        assert not [a for a in (await bb.list_artefacts()).artefacts if a.type == "FormattedRecipe"]

        keys("7")
        await screen_has("grant exclusive to Formatter")
        keys("c")
        final = await wait_for_artefact(bb, lambda a: a.type == "FormattedRecipe")
        assert "spelt flour" in final.payload

        # / searches payloads too: the answer's text finds the recipe that uses it.
        keys("1", "/")
        await screen_has("filter: type:Glob")
        keys("spelt", literal=True)
        keys("Enter")
        await screen_has("/spelt: ")
        await screen_has("(n next, N previous)")
        keys("q")
        # Printed once the app has shut down (its workers and Redis connections closed): slow on a busy machine.
        await screen_has(f"holt-tui: detached from {instance}; the instance keeps running (holt down --name", 60)

        # A read-only attach: the footer has no control keys, and s says why it does nothing.
        _tmux(socket, "respawn-pane", "-k", "-t", "tui", *command[:-2], "attach", "--read-only", instance)
        shown = await screen_has("READ-ONLY")
        keys("7", "s")
        shown = await screen_has("read-only session")
        assert "Continue" not in shown.splitlines()[-1]
        # History mode: h shows the blackboard as it was, [ steps one change back, s refuses, h comes back.
        deadline = time.monotonic() + 30
        while "● live" not in _tmux(socket, "capture-pane", "-p", "-t", "tui").splitlines()[0]:
            assert time.monotonic() < deadline, "the read-only attach never went live"
            await asyncio.sleep(0.2)
        keys("h")
        shown = await screen_has("HISTORY")
        found = re.search(r"\(change (\d+)/(\d+)\)", shown)
        assert found is not None and found.group(1) == found.group(2), shown
        keys("[", literal=True)
        await screen_has(f"(change {int(found.group(1)) - 1}/{found.group(2)})")
        keys("s")
        await screen_has("history mode shows the past")
        keys("h")
        deadline = time.monotonic() + 20
        while "HISTORY" in _tmux(socket, "capture-pane", "-p", "-t", "tui").splitlines()[0]:
            assert time.monotonic() < deadline, "h did not leave history mode"
            await asyncio.sleep(0.2)
        records = [(r.operator, r.action) for r in await bb.audit.records()]
        assert ("human:tester", "question_answered") in records, records
        assert ("human:tester", "debug_continue") in records
        assert ("human:tester", "debug_lease_taken") in records
    finally:
        _tmux_quiet(socket, "kill-server")
        await engine.close()
