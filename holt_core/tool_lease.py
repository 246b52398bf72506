"""Who runs a grant's tool, and which process group it is: one grant, one tool run at a time.

An execution lease (``Keys.exec_lease``) names the pup running a grant; a tool record (``Keys.exec_tool``)
names the tool's process group. Both carry a ``ProcessStamp``: host, boot id, pid and the pid's start time,
so a recycled pid is never mistaken for the process that was recorded. A pup that finds a lease whose holder
is dead on this machine takes it over, and before it runs the tool again it kills the process group of a
leftover run (a SIGKILLed pup's tool lives on, re-parented to init, because it runs in its own session).

The guarantee: a grant's tool runs at least once and never twice at the same time on one machine.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
from functools import cache
from pathlib import Path

from pydantic import BaseModel, ValidationError

from holt_core.processes import pid_alive

RUNNING = "running:"
DONE = "done:"


class ProcessStamp(BaseModel):
    """A process as it can be recognised later: a pid alone may belong to another process by then."""

    host: str
    boot_id: str
    pid: int
    start: str  # start time in clock ticks since boot (/proc/<pid>/stat field 22); "" where unknown

    def on_this_machine(self) -> bool:
        return self.host == socket.gethostname() and self.boot_id == boot_id()

    def alive(self) -> bool:
        """The very process recorded is still running (only decidable on this machine: False elsewhere)."""
        if not self.on_this_machine() or not pid_alive(self.pid):
            return False
        return not self.start or start_ticks(self.pid) == self.start


@cache
def boot_id() -> str:
    try:
        return Path("/proc/sys/kernel/random/boot_id").read_text().strip()
    except OSError:
        return ""


def start_ticks(pid: int) -> str:
    """When ``pid`` started (clock ticks since boot), or "" without procfs or for a vanished pid."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return ""
    fields = stat.rpartition(")")[2].split()
    return fields[19] if len(fields) > 19 else ""  # field 22 counted from the pid


def stamp(pid: int) -> ProcessStamp:
    return ProcessStamp(host=socket.gethostname(), boot_id=boot_id(), pid=pid, start=start_ticks(pid))


def running_value(holder: ProcessStamp) -> str:
    return RUNNING + holder.model_dump_json()


def holder_of(value: str) -> ProcessStamp | None:
    """The pup named by a running lease; None for a finished one or one written by an older or foreign pup."""
    if not value.startswith(RUNNING):
        return None
    try:
        return ProcessStamp.model_validate_json(value[len(RUNNING):])
    except ValidationError:
        return None


def lease_is_stale(value: str) -> bool:
    """A running lease whose pup is known to be dead (same machine, pid gone or recycled)."""
    holder = holder_of(value)
    return holder is not None and holder.on_this_machine() and not holder.alive()


def tool_record(value: str | None) -> ProcessStamp | None:
    if not value:
        return None
    try:
        return ProcessStamp.model_validate_json(value)
    except ValidationError:
        return None


def _group_exists(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def leftover_group(tool: ProcessStamp) -> bool:
    """Whether the recorded tool's process group still has members to stop.

    The group leader alive with the recorded start time: yes. The leader gone but the group id still in use:
    yes too (the kernel never hands out a pid that is still a group id, so it is the same group). The pid
    alive with another start time: it was recycled, so the group is long gone."""
    if not tool.on_this_machine():
        return False
    if pid_alive(tool.pid):
        return not tool.start or start_ticks(tool.pid) == tool.start
    return _group_exists(tool.pid)


async def kill_group(pgid: int, *, within_s: float = 10.0) -> bool:
    """SIGKILL a process group and wait until no member is left; False if some still are after within_s."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within_s
    while True:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(pgid, signal.SIGKILL)
        # A zombie leader (the dead pup's child, reaped by init soon) still answers: ask for live members.
        if not _group_exists(pgid) or not _members_alive(pgid):
            return True
        if loop.time() >= deadline:
            return False
        await asyncio.sleep(0.05)


def _members_alive(pgid: int) -> bool:
    """Some process of the group is not a zombie (procfs); True where that cannot be told."""
    proc = Path("/proc")
    if not proc.is_dir():
        return True
    for entry in proc.iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        fields = stat.rpartition(")")[2].split()
        if len(fields) > 2 and fields[2] == str(pgid) and fields[0] != "Z":
            return True
    return False
