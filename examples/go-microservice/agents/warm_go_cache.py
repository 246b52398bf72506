"""Fills the Go build cache with what the service needs (net/http, testing, coverage), in the background
while the design is reviewed, so the TestRunner and CoverageGate do not compile the standard library."""

from __future__ import annotations

import shutil
import sys
import tempfile
import time
from pathlib import Path

from holtdemo import gotool, scripted
from holtdemo.agent import AgentFailure

if __name__ == "__main__":
    started = time.monotonic()
    tmp = Path(tempfile.mkdtemp(prefix="holt-demo-warm-"))
    try:
        decisions = {"max_bookmarks": 10, "max_bookmarks_note": "warm-up", "duplicate_status": 409,
                     "duplicate_note": "warm-up"}
        for name, text in scripted.go_service(decisions, 2, [])["files"].items():
            (tmp / name).write_text(text, encoding="utf-8")
        report = gotool.check(tmp)
        print(f"{report.go_version}: vet ok={report.vet_ok} test ok={report.test_ok} "
              f"({time.monotonic() - started:.1f} s)")
    except AgentFailure as exc:
        print(f"not warmed: {exc.message}", file=sys.stderr)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
