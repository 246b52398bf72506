"""Bounded input: holt.yml over the size or agent limit is refused before anything starts; an interrupted
``holt up`` leaves no process behind; a command run from a deleted directory prints one line."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from holt_core.cli import up_cmd
from holt_core.config import MAX_AGENTS, MAX_CONFIG_BYTES, parse_config
from holt_core.errors import InvalidInput
from tests.clirun import HOLT
from tests.engine import make_workspace, poll


def agents_yml(count: int) -> str:
    lines = ['version: "1.0"', "agents:"]
    for i in range(count):
        lines += [f"  a{i}:", f'    command: ["{sys.executable}", "-c", "pass"]', "    bidding_strategy: ignore"]
    return "\n".join(lines) + "\n"


def big_yml(size: int) -> str:
    return agents_yml(1) + "x-padding: " + "a" * size + "\n"


def test_the_limits_are_documented_numbers_and_can_be_raised(monkeypatch: pytest.MonkeyPatch) -> None:
    assert (MAX_CONFIG_BYTES, MAX_AGENTS) == (1024 * 1024, 64)
    assert len(parse_config(agents_yml(MAX_AGENTS)).agents) == MAX_AGENTS
    with pytest.raises(InvalidInput, match=r"^holt.yml:2: agents: 65 agents defined; the limit is 64$"):
        parse_config(agents_yml(MAX_AGENTS + 1))
    with pytest.raises(InvalidInput, match=r"^holt.yml is too large \(1,04[89],\d{3} bytes; the limit is 1,048,576\)$"):
        parse_config(big_yml(MAX_CONFIG_BYTES))
    monkeypatch.setenv("HOLT_MAX_AGENTS", "100")
    monkeypatch.setenv("HOLT_MAX_CONFIG_BYTES", str(2 * MAX_CONFIG_BYTES))
    assert len(parse_config(agents_yml(MAX_AGENTS + 1)).agents) == MAX_AGENTS + 1
    assert parse_config(big_yml(MAX_CONFIG_BYTES)).agents
    monkeypatch.setenv("HOLT_MAX_AGENTS", "many")
    with pytest.raises(InvalidInput, match="HOLT_MAX_AGENTS must be a positive whole number"):
        parse_config(agents_yml(1))


def processes_in(ws: Path) -> list[tuple[int, str]]:
    """Processes whose working directory is ``ws`` (the supervisor, orchestrator, pups and their tools)."""
    found: list[tuple[int, str]] = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            if os.readlink(entry / "cwd") == str(ws):
                found.append((int(entry.name), (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()[:120]))
        except OSError:
            continue
    return found


async def run_holt(env: dict[str, str], cwd: Path, *args: str) -> tuple[int, str]:
    proc = await asyncio.create_subprocess_exec(HOLT, *args, cwd=cwd, env=env, stdout=asyncio.subprocess.PIPE,
                                                stderr=asyncio.subprocess.PIPE)
    out, err = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode is not None
    return proc.returncode, (out + err).decode()


@pytest.mark.parametrize("text", [big_yml(2 * MAX_CONFIG_BYTES), agents_yml(5_000)],
                         ids=["2-MiB", "too-many-agents"])
async def test_holt_up_refuses_an_oversized_config_before_anything_starts(
    tmp_path: Path, cli_env: dict[str, str], text: str
) -> None:
    ws = make_workspace(tmp_path, files={"holt.yml": text})
    code, output = await run_holt(cli_env, ws, "up")
    assert code == 1
    assert output.startswith("error: holt.yml"), output
    assert "Traceback" not in output and ("too large" in output or "the limit is 64" in output)
    assert processes_in(ws) == []
    assert not (ws / ".holt").exists()  # nothing was prepared either


async def test_a_command_from_a_deleted_directory_prints_one_line(tmp_path: Path, cli_env: dict[str, str]) -> None:
    async def from_deleted_dir(index: int, *args: str) -> tuple[int | None, bytes, bytes]:
        gone = tmp_path / f"gone-{index}"
        gone.mkdir()
        # The shell enters the directory, removes it, then becomes holt: holt starts in a deleted directory.
        proc = await asyncio.create_subprocess_exec(
            "sh", "-c", 'cd "$1" && rmdir "$1" && shift && exec "$@"', "sh", str(gone), HOLT, *args,
            env=cli_env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
        out, err = await asyncio.wait_for(proc.communicate(), 60)
        return proc.returncode, out, err

    commands = [("up",), ("init",), ("logs", "orchestrator"), ("forage", "--goal", "x")]
    for code, out, err in await asyncio.gather(*(from_deleted_dir(i, *c) for i, c in enumerate(commands))):
        assert code == 1, err
        assert out == b""
        assert err.decode().splitlines() == [
            "error: the current directory no longer exists: cd to an existing directory and try again"]


CONFIG = f"""
version: "1.0"
agents:
  A:
    command: ["{sys.executable}", "-c", "pass"]
    bidding_strategy: ignore
  B:
    command: ["{sys.executable}", "-c", "pass"]
    bidding_strategy: ignore
"""


@pytest.mark.timeout(300)
@pytest.mark.parametrize("moment", ["supervisor-starting", "components-starting"])
async def test_an_interrupted_holt_up_leaves_no_process_behind(
    tmp_path: Path, cli_env: dict[str, str], moment: str
) -> None:
    """Ctrl-C as soon as the supervisor exists, or again and again (every 0.1 s) once its children start."""
    ws = make_workspace(tmp_path, files={"holt.yml": CONFIG})
    up = await asyncio.create_subprocess_exec(HOLT, "up", cwd=ws, env=cli_env, stdout=asyncio.subprocess.PIPE,
                                              stderr=asyncio.subprocess.PIPE)
    try:
        if moment == "supervisor-starting":
            await poll(lambda: any("holt_core.supervisor" in c for _, c in processes_in(ws)), 60, "the supervisor")
            up.send_signal(signal.SIGINT)
        else:
            await poll(lambda: any(" pup " in c or " orchestrator " in c for _, c in processes_in(ws)), 60,
                       "a component")
            while up.returncode is None:
                up.send_signal(signal.SIGINT)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(up.wait(), 0.1)
        _, err = await asyncio.wait_for(up.communicate(), 60)
        assert up.returncode in (1, 130, -signal.SIGINT), err  # -2: a last Ctrl-C as it exits
        assert b"Traceback" not in err
        await poll(lambda: processes_in(ws) == [], 30, "every process of the interrupted instance to be gone")
        code, listed = await run_holt(cli_env, ws, "list")
        assert code == 0 and "Running" not in listed, listed
    finally:
        if up.returncode is None:
            up.kill()
            await up.wait()
        for pid, _ in processes_in(ws):
            os.kill(pid, signal.SIGKILL)


def test_a_ctrl_c_while_the_supervisor_is_being_started_still_stops_it(
    tmp_path: Path, redis_url: str, instance: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The narrowest window, made certain: SIGINT arrives inside Popen, just after the supervisor exists."""
    ws = make_workspace(tmp_path, files={"holt.yml": CONFIG})
    log_dir = ws / ".holt" / "logs" / instance
    log_dir.mkdir(parents=True)
    real_popen = subprocess.Popen
    started: list[subprocess.Popen[bytes]] = []

    def popen_then_ctrl_c(*args: Any, **kwargs: Any) -> subprocess.Popen[bytes]:
        proc = real_popen(*args, **kwargs)
        started.append(proc)
        os.kill(os.getpid(), signal.SIGINT)
        return proc

    monkeypatch.setattr(subprocess, "Popen", popen_then_ctrl_c)
    try:
        with pytest.raises(KeyboardInterrupt):
            up_cmd._up_detached(instance, ws, redis_url, log_dir)
        monkeypatch.undo()
        (supervisor,) = started
        assert supervisor.poll() is not None, "the supervisor was left running"
    finally:
        for proc in started:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
