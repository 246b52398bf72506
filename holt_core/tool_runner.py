"""Running an agent's tool under Holt's contract (protocol 5.6) and parsing what it prints.

The tool gets one JSON object on stdin and must print exactly one JSON object on stdout and exit 0.
Every way it can go wrong (no start, timeout, a flood of output, a non-zero exit, bad JSON, missing
fields) is a ``ToolFailure`` with a stable reason; the runner never raises anything else.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from holt_core.models import StructuralType, is_clean_artefact_type

OUTPUT_CAP = 10 * 1024 * 1024
FAILURE_TEXT_CAP = 5000


class ToolFailure(Exception):
    def __init__(self, reason: str, *, exit_code: int = 0, stdout: str = "", stderr: str = "") -> None:
        super().__init__(reason)
        self.reason = reason
        self.exit_code = exit_code
        self.stdout = stdout
        self.stderr = stderr

    def payload(self) -> str:
        """The ``ToolExecutionFailure`` payload (protocol 5.8): pretty JSON, empty fields omitted."""
        body: dict[str, Any] = {"reason": self.reason}
        if self.exit_code:
            body["exit_code"] = self.exit_code
        if self.stdout:
            body["stdout"] = _cut(self.stdout)
        if self.stderr:
            body["stderr"] = _cut(self.stderr)
        body["error"] = self.reason
        return json.dumps(body, indent=2, ensure_ascii=False)


def _cut(text: str) -> str:
    raw = text.encode("utf-8", "replace")
    if len(raw) <= FAILURE_TEXT_CAP:
        return text
    return raw[:FAILURE_TEXT_CAP].decode("utf-8", "ignore") + "..."


@dataclass(frozen=True)
class ToolResult:
    artefact_type: str
    artefact_payload: str
    summary: str
    structural_type: StructuralType
    extra: dict[str, Any]  # keys beyond the contract (e.g. requires_approval, ask), for later stages


@dataclass(frozen=True)
class ProcessOutput:
    exit_code: int
    stdout: str
    stderr: str


async def _read_capped(stream: asyncio.StreamReader, cap: int) -> tuple[bytes, bool]:
    chunks: list[bytes] = []
    size = 0
    while True:
        chunk = await stream.read(65536)
        if not chunk:
            return b"".join(chunks), False
        size += len(chunk)
        if size > cap:
            return b"".join(chunks), True
        chunks.append(chunk)


async def run_process(
    argv: list[str],
    stdin: bytes,
    *,
    cwd: Path,
    env: dict[str, str],
    timeout_s: float,
    cap: int = OUTPUT_CAP,
    on_start: Callable[[int], Awaitable[None]] | None = None,
) -> ProcessOutput:
    """Run argv with stdin, capture stdout/stderr (each capped), kill the whole group on timeout.

    ``on_start(pid)`` is awaited once the process (the leader of its own process group) exists and before
    it is given its input; if it raises, the process is killed and the error propagates."""
    try:
        proc = await asyncio.create_subprocess_exec(
            *argv,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            cwd=cwd,
            env=env,
            start_new_session=True,  # its own process group, so a timeout kills its children too
        )
    except OSError as exc:
        # Also covers a missing working directory (the workspace was removed under us).
        raise ToolFailure(f"failed to start {argv[0]!r} in {cwd}: {exc.strerror or exc}", exit_code=-1) from None
    assert proc.stdin and proc.stdout and proc.stderr

    async def feed() -> None:
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):
            proc.stdin.write(stdin)  # type: ignore[union-attr]
            await proc.stdin.drain()  # type: ignore[union-attr]
        with contextlib.suppress(Exception):
            proc.stdin.close()  # type: ignore[union-attr]

    def kill() -> None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, signal.SIGKILL)

    if on_start is not None:
        try:
            await on_start(proc.pid)
        except BaseException:
            kill()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(proc.wait(), 5)
            raise

    feeder = asyncio.create_task(feed())
    out_task = asyncio.create_task(_read_capped(proc.stdout, cap))
    err_task = asyncio.create_task(_read_capped(proc.stderr, cap))
    try:
        async with asyncio.timeout(timeout_s):
            done, _ = await asyncio.wait({out_task, err_task}, return_when=asyncio.FIRST_COMPLETED)
            for finished in done:
                if finished.result()[1]:
                    kill()
                    raise ToolFailure("tool output exceeded 10MB limit", exit_code=-1)
            (out, out_over), (err, err_over) = await asyncio.gather(out_task, err_task)
            if out_over or err_over:
                kill()
                raise ToolFailure("tool output exceeded 10MB limit", exit_code=-1)
            code = await proc.wait()
    except TimeoutError:
        kill()
        raise ToolFailure(f"tool execution timeout ({timeout_s:g} s)", exit_code=-1) from None
    finally:
        if proc.returncode is None:
            # Its output will never be read (the pup is stopping, or the run failed): the tool must not go
            # on working in the workspace unseen. It runs in its own session, so nothing else would stop it.
            kill()
        feeder.cancel()
        out_task.cancel()
        err_task.cancel()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(proc.wait(), 5)
    return ProcessOutput(code, out.decode("utf-8", "replace"), err.decode("utf-8", "replace"))


def parse_tool_output(stdout: str) -> ToolResult:
    """Exactly one JSON object (whitespace around it allowed), with the contract's fields."""
    text = stdout.strip()
    if not text:
        raise ValueError("tool produced no output on stdout")
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ValueError(f"invalid JSON: {exc.msg} at line {exc.lineno} column {exc.colno}") from None
    if not isinstance(value, dict):
        raise ValueError("invalid JSON: the output must be one JSON object")
    artefact_type = value.get("artefact_type")
    if not isinstance(artefact_type, str) or not artefact_type.strip():
        raise ValueError("validation failed: artefact_type is required and cannot be empty")
    if not is_clean_artefact_type(artefact_type):
        raise ValueError("validation failed: artefact_type may not contain control characters")
    payload = value.get("artefact_payload", "")
    if payload is None:
        payload = ""
    if not isinstance(payload, str):
        raise ValueError("invalid JSON: artefact_payload must be a string (encode structured data as JSON text)")
    summary = value.get("summary")
    if not isinstance(summary, str) or not summary.strip():
        raise ValueError("validation failed: summary is required and cannot be empty")
    raw_type = value.get("structural_type") or ""
    if not isinstance(raw_type, str):
        raise ValueError("validation failed: structural_type must be a string")
    if raw_type:
        try:
            structural = StructuralType(raw_type)
        except ValueError:
            problem = f'invalid structural_type: unknown structural type: "{raw_type}"'
            raise ValueError(f"validation failed: {problem}") from None
    else:
        structural = StructuralType.REVIEW if artefact_type == "Review" else StructuralType.STANDARD
    known = {"artefact_type", "artefact_payload", "summary", "structural_type"}
    extra = {k: v for k, v in value.items() if k not in known}
    return ToolResult(artefact_type, payload, summary, structural, extra)
