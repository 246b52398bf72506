"""Running the installed ``holt`` console script from tests."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

HOLT = str(Path(sys.executable).parent / "holt")
WAIT_S = 60.0  # generous: a loaded 2-core machine can take seconds to start a CLI


async def holt(env: dict[str, str], *args: str, stdin: bytes | None = None) -> tuple[int, bytes, str]:
    """Run ``holt *args``; returns (exit code, stdout bytes, stderr text)."""
    proc = await asyncio.create_subprocess_exec(
        HOLT,
        *args,
        stdin=asyncio.subprocess.PIPE if stdin is not None else asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env=env,
    )
    out, err = await asyncio.wait_for(proc.communicate(stdin), WAIT_S)
    assert proc.returncode is not None
    return proc.returncode, out, err.decode()
