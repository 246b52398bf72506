"""TestRunner: a tool agent. Runs the real Go toolchain (go vet, go test -cover) on the committed service;
a vet finding or a failing test is a rejecting review with the tool's output."""

from __future__ import annotations

import sys
from typing import Any

from holtdemo import gitws, gotool
from holtdemo.agent import Request, result, run
from holtdemo.reviewing import acknowledge


def handle(req: Request) -> dict[str, Any]:
    if req.target.get("type") != "GoService":
        return acknowledge(req, "test runner")
    payload = req.payload()
    with gitws.checkout(str(payload.get("commit", "")), str(payload.get("module", "service"))) as module:
        report = gotool.check(module)
    vet, tests = ("ok" if report.vet_ok else "FAILED"), ("ok" if report.test_ok else "FAILED")
    print(f"{report.go_version}: vet {vet}, tests {tests}, coverage {report.coverage}%", file=sys.stderr)
    if report.vet_ok and report.test_ok:
        return result("Review", {}, f"go vet and go test pass ({report.coverage}% coverage)")
    problems = ([f"go vet: {report.vet_output}"] if not report.vet_ok else []) + \
               ([f"go test: {report.test_output}"] if not report.test_ok else [])
    return result("Review", {"verdict": "go vet or go test failed", "go": report.go_version, "findings": problems},
                  "the Go checks failed")


if __name__ == "__main__":
    run(handle)
