"""Hostile payloads display safely and fast; the installed holt-tui fails with one line; tmux drives it for real."""

from __future__ import annotations

import asyncio
import shutil
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

from holt_core.blackboard import Blackboard
from holt_core.models import STORED, Artefact, StructuralType, new_id
from holt_core.sanitise import has_unsafe
from holt_tui.config import TuiConfig
from holt_tui.display import PayloadCache, inspector_lines
from holt_tui.feed import ScanPage
from holt_tui.messages import ActionDone
from holt_tui.model import LiveModel
from holt_tui.widgets.views import ArtefactGraph, TextLines
from tests.tui.apps import fed_app
from tests.tui.fixtures import live_workflow
from tests.tui.test_live_attach import live_app, until

HOLT_TUI = str(Path(sys.executable).parent / "holt-tui")
HOSTILE = "\x1b[2J\x1b]0;pwned\x07\x1b[31mred\u202eevil\x9b6n\r\ttab\x00"


def _as_stored(**fields: object) -> Artefact:
    """An artefact as read back from Redis, where anyone may have written a hostile type."""
    return Artefact.model_validate(fields, context=STORED)


def hostile_artefact(size: int) -> Artefact:
    chunk = HOSTILE + "A" * 200 + "\n"
    payload = chunk * (size // len(chunk) + 1)
    return _as_stored(id=new_id(), logical_id=new_id(), version=1, structural_type=StructuralType.STANDARD,
                    type="Evil\x1b[2JType", payload=payload, source_artefacts=[], produced_by_role="agent\x1b]0;x\x07",
                    created_at_ms=1)


def test_a_5mb_payload_of_escape_sequences_renders_safely_and_quickly() -> None:
    a = hostile_artefact(5 * 1024 * 1024)
    model = LiveModel("x")
    model.apply(ScanPage([a], [], first=True, last=True))
    started = time.perf_counter()
    lines = inspector_lines(model, a.id, PayloadCache(TuiConfig().max_payload_chars), 2, TuiConfig.frozen().tz)
    elapsed = time.perf_counter() - started
    assert elapsed < 0.5, f"inspector took {elapsed:.2f}s for 5 MB"
    text = [t.plain for t in lines]
    assert any("showing the first 200,000 of" in line for line in text)
    assert any("␛[2J" in line for line in text)
    for line in text:
        assert not has_unsafe(line), repr(line[:80])


async def test_hostile_payload_on_screen_has_no_control_characters(redis_url: str, instance: str,
                                                                   bb: Blackboard) -> None:
    a = hostile_artefact(5 * 1024 * 1024)
    await bb.create_artefact(a)
    app = live_app(redis_url, instance)
    async with app.run_test(size=(120, 40)) as pilot:
        await until(lambda: a.id in app.model.artefacts, what="attach")
        graph = app.query_one(ArtefactGraph)
        await pilot.pause(0.2)
        started = time.perf_counter()
        assert graph.select_key(a.id)
        await pilot.pause(0.05)
        assert time.perf_counter() - started < 1.0
        inspector = app.query_one("#inspector-view", TextLines)
        assert len(inspector.items) > 100
        # Every drawn strip of every widget on screen: no ESC, no C1, no bidi override reaches the terminal.
        for widget in (graph, inspector):
            for y in range(widget.size.height):
                for segment in widget.render_line(y):
                    assert not has_unsafe(segment.text.replace("\t", "")), repr(segment.text[:60])
        await pilot.press("2")
        await pilot.pause(0.1)


async def _run(env: dict[str, str], *args: str) -> tuple[int, str, str]:
    proc = await asyncio.create_subprocess_exec(HOLT_TUI, *args, stdin=asyncio.subprocess.DEVNULL,
                                                stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
                                                env=env)
    out, err = await asyncio.wait_for(proc.communicate(), 30)
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


async def test_unknown_instance_and_unreachable_redis_are_one_line_errors(cli_env: dict[str, str]) -> None:
    code, _, err = await _run(cli_env, "attach", "no-such-instance")
    assert code == 1
    assert "instance 'no-such-instance' not found" in err and "Traceback" not in err
    code, _, err = await _run(cli_env, "attach", "x", "--redis-url", "redis://127.0.0.1:1")
    assert code == 1
    assert "Redis connection failed" in err and "Traceback" not in err
    code, _, err = await _run(cli_env, "replay", "/nonexistent/recording.jsonl")
    assert code == 1 and "cannot read the recording" in err and "Traceback" not in err


def _session_alive(socket: list[str], session: str) -> bool:
    return subprocess.run(["tmux", *socket, "has-session", "-t", session], capture_output=True).returncode == 0


def _tmux_kill(socket: list[str]) -> None:
    subprocess.run(["tmux", *socket, "kill-server"], capture_output=True)


def _tmux(*args: str) -> str:
    return subprocess.run(["tmux", *args], check=True, capture_output=True, text=True, timeout=10).stdout


@pytest.mark.skipif(shutil.which("tmux") is None, reason="tmux is not installed")
async def test_installed_holt_tui_in_a_real_terminal(cli_env: dict[str, str], instance: str, bb: Blackboard,
                                                     tmp_path: Path) -> None:
    goal = Artefact(id=new_id(), logical_id=new_id(), version=1, structural_type=StructuralType.STANDARD,
                    type="GoalDefined", payload="tmux goal \x1b[2J", source_artefacts=[], produced_by_role="user")
    await bb.create_artefact(goal)
    session = f"holt-tui-{uuid.uuid4().hex[:8]}"
    env_args = [f"{k}={v}" for k, v in cli_env.items() if k in ("HOLT_REDIS_URL", "HOLT_DATA_DIR", "PATH", "TZ")]
    recording = tmp_path / "rec.jsonl"
    command = ["env", "-i", *env_args, "TERM=xterm-256color", "LANG=C.UTF-8", HOLT_TUI, "attach", instance,
               "--read-only", "--record", str(recording)]
    socket = ["-L", session]
    _tmux(*socket, "new-session", "-d", "-s", session, "-x", "140", "-y", "40", *command)
    try:
        async def screen_has(text: str, within: float = 20.0) -> str:
            deadline = time.monotonic() + within
            while True:
                shown = _tmux(*socket, "capture-pane", "-p", "-t", session)
                if text in shown:
                    return shown
                if time.monotonic() > deadline:
                    raise AssertionError(f"{text!r} never appeared; screen:\n{shown}")
                await asyncio.sleep(0.2)

        await screen_has("GoalDefined")  # the first page is drawn while the rest still loads
        shown = await screen_has("● live")
        assert "READ-ONLY" in shown and "GoalDefined" in shown
        second = goal.model_copy(update={"id": new_id(), "logical_id": new_id(), "type": "LiveArrival",
                                         "created_at_ms": 0})
        await bb.create_artefact(second)
        await screen_has("LiveArrival")
        await screen_has("1 new")
        _tmux(*socket, "send-keys", "-t", session, "?")
        await screen_has("Keys (dim: not available right now)")
        _tmux(*socket, "send-keys", "-t", session, "Escape")
        await asyncio.sleep(0.3)
        _tmux(*socket, "send-keys", "-t", session, "q")
        deadline = time.monotonic() + 10
        while _session_alive(socket, session):
            assert time.monotonic() < deadline, "holt-tui did not quit on q"
            await asyncio.sleep(0.2)
    finally:
        _tmux_kill(socket)
    assert recording.read_text().count('"kind":"artefact"') >= 1


async def test_feed_items_and_results_arriving_during_shutdown_are_dropped_not_raised() -> None:
    # Textual prunes the screens before it stops the app's timers and message queue, so the 10 Hz drain and
    # worker results can run against an app with no main screen; they must not crash the exit.

    items = live_workflow()
    app = fed_app(items)
    async with app.run_test() as pilot:
        await pilot.pause()
        assert app.model.artefacts
    assert not app.is_running and not app.screen_stack
    app.push(items[-1])
    app.drain()
    app.on_action_done(ActionDone("step", True, "late"))
