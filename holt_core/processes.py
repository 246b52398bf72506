"""Whether a process is alive on this machine: one answer for the supervisor, Redis and lock checks."""

from __future__ import annotations

import os
from pathlib import Path


def pid_alive(pid: int) -> bool:
    """``pid`` exists and is not a zombie (a dead child nobody reaped still answers ``kill(pid, 0)``)."""
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # exists, owned by someone else
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return True  # no procfs (macOS): launchd reaps orphans promptly
    fields = stat.rpartition(")")[2].split()
    return not (fields and fields[0] == "Z")
