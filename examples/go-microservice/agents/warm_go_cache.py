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


def marker() -> Path | None:
    """A file in GOCACHE saying this Go version already built the service once (then there is nothing to do)."""
    code, cache = gotool.run_go(["env", "GOCACHE"], Path.cwd(), 60)
    if code != 0 or not cache.strip() or cache.strip() == "off":
        return None
    return Path(cache.strip()) / f"holt-demo-warm-{gotool.version().replace(' ', '-').replace('/', '-')}"


if __name__ == "__main__":
    started = time.monotonic()
    tmp = Path(tempfile.mkdtemp(prefix="holt-demo-warm-"))
    try:
        done = marker()
        if done is not None and done.exists():
            print(f"already warm ({done.name})")
            sys.exit(0)
        decisions = {"max_bookmarks": 10, "max_bookmarks_note": "warm-up", "duplicate_status": 409,
                     "duplicate_note": "warm-up"}
        for name, text in scripted.go_service(decisions, 2, [])["files"].items():
            (tmp / name).write_text(text, encoding="utf-8")
        report = gotool.check(tmp)
        print(f"{report.go_version}: vet ok={report.vet_ok} test ok={report.test_ok} "
              f"({time.monotonic() - started:.1f} s)")
        if done is not None and report.vet_ok and report.test_ok:
            done.write_text("the holt demo warmed this cache\n")
    except AgentFailure as exc:
        print(f"not warmed: {exc.message}", file=sys.stderr)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
