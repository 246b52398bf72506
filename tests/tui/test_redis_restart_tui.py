"""The installed holt-tui across a Redis restart, in a real terminal (tmux): it shows the disconnection, recovers
by itself when Redis is back (re-reading what it missed), and quits cleanly while Redis is away.

Runs its own private Redis in a tmp data dir (the session's shared server is never stopped).
"""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
import time
import uuid
from pathlib import Path

import pytest

from holt_core.blackboard import Blackboard, connect_redis
from holt_core.embedded_redis import EmbeddedRedis
from holt_core.instances import InstanceRecord, register
from holt_core.models import Artefact, StructuralType, new_id
from tests.tui.test_safety_and_cli import HOLT_TUI


def _tmux(*args: str) -> str:
    return subprocess.run(["tmux", *args], check=True, capture_output=True, text=True, timeout=10).stdout


def _tmux_kill(socket: list[str]) -> None:
    subprocess.run(["tmux", *socket, "kill-server"], capture_output=True)


def _artefact(kind: str) -> Artefact:
    return Artefact(id=new_id(), logical_id=new_id(), version=1, structural_type=StructuralType.STANDARD,
                    type=kind, payload="p", source_artefacts=[], produced_by_role="user")


@pytest.mark.skipif(shutil.which("tmux") is None, reason="tmux is not installed")
async def test_holt_tui_recovers_from_a_redis_restart_and_quits_cleanly_while_disconnected(
        tmp_path: Path, instance: str) -> None:
    server = EmbeddedRedis(tmp_path / "redis")
    url = server.start().url
    assert url is not None
    bb = Blackboard(connect_redis(url), instance)
    await register(bb.redis, InstanceRecord(name=instance, run_id="r", workspace_path=str(tmp_path),
                                            started_at="2026-01-01T00:00:00Z"))
    await bb.create_artefact(_artefact("BeforeRestart"))
    session = f"holt-tui-{uuid.uuid4().hex[:8]}"
    socket = ["-L", session]
    env = [f"PATH={os.environ['PATH']}", f"HOLT_DATA_DIR={server.data_dir}", "TZ=UTC", "HOLT_OPERATOR=tester",
           "TERM=xterm-256color", "LANG=C.UTF-8"]
    # Not read-only: it takes the control lease, which it then cannot release on the way out.
    # Textual draws on stderr, so whatever holt-tui prints after leaving the full screen stays on the terminal.
    script = f"env -i {' '.join(env)} {HOLT_TUI} attach {instance}; echo EXIT=$?; sleep 60"
    _tmux(*socket, "new-session", "-d", "-s", session, "-x", "140", "-y", "40", "sh", "-c", script)

    async def screen_has(text: str, within: float = 30.0) -> str:
        deadline = time.monotonic() + within
        while True:
            shown = _tmux(*socket, "capture-pane", "-p", "-t", session)
            if text in shown:
                return shown
            if time.monotonic() > deadline:
                raise AssertionError(f"{text!r} never appeared; screen:\n{shown}")
            await asyncio.sleep(0.2)

    try:
        await screen_has("● live")
        await screen_has("CONTROL (tester)")
        await bb.close()

        server.stop()
        await screen_has("connection to Redis lost")
        assert server.start().url == url  # same address: nothing to tell the TUI
        bb = Blackboard(connect_redis(url), instance)
        await bb.create_artefact(_artefact("WhileAway"))  # maybe before it is back: the resync reads it
        shown = await screen_has("WhileAway")
        await screen_has("● live")
        assert "BeforeRestart" in shown
        await bb.close()

        server.stop()
        await screen_has("connection to Redis lost")
        _tmux(*socket, "send-keys", "-t", session, "q")
        await screen_has("EXIT=", within=15)
        said = _tmux(*socket, "capture-pane", "-p", "-t", session, "-S", "-")  # with what scrolled away
        assert "EXIT=0" in said and "Traceback" not in said, said
        assert len([line for line in said.splitlines() if line.strip() and "EXIT=" not in line]) <= 1, said
    finally:
        _tmux_kill(socket)
        server.stop()
