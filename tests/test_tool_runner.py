"""Running a tool as a local process (protocol 5.6)."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

from holt_core.processes import pid_alive
from holt_core.tool_runner import run_process
from tests.engine import poll


async def test_a_run_that_is_cancelled_takes_the_tool_and_its_children_with_it(tmp_path: Path) -> None:
    # As when a pup stops (holt down) while its tool works: the tool runs in its own session, so only the
    # runner can stop it, and nobody will read what it writes.
    script = "sleep 60 & echo $! > child.pid; echo $$ > tool.pid; wait"
    run = asyncio.ensure_future(run_process(["sh", "-c", script], b"", cwd=tmp_path, env=dict(os.environ),
                                            timeout_s=120))
    pids = [tmp_path / "tool.pid", tmp_path / "child.pid"]
    await poll(lambda: all(p.exists() and p.read_text().strip() for p in pids), within=10, what="the tool started")
    tool, child = (int(p.read_text()) for p in pids)
    assert pid_alive(tool) and pid_alive(child)
    run.cancel()
    await asyncio.gather(run, return_exceptions=True)
    await poll(lambda: not pid_alive(tool) and not pid_alive(child), within=5, what="the tool and its child gone")


async def test_a_tool_that_finishes_is_not_disturbed(tmp_path: Path) -> None:
    out = await run_process(["sh", "-c", "cat; echo done >&2"], b"in", cwd=tmp_path, env=dict(os.environ),
                            timeout_s=30)
    assert (out.exit_code, out.stdout, out.stderr.strip()) == (0, "in", "done")
