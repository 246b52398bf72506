"""CoverageGate: a tool agent. Measures statement coverage with go test -coverprofile and rejects below
COVERAGE_THRESHOLD (holt.yml, default 80), naming the functions the tests miss."""

from __future__ import annotations

import os
from typing import Any

from holtdemo import gitws, gotool
from holtdemo.agent import Request, result, run
from holtdemo.reviewing import acknowledge


def handle(req: Request) -> dict[str, Any]:
    if req.target.get("type") != "GoService":
        return acknowledge(req, "coverage gate")
    threshold = float(os.environ.get("COVERAGE_THRESHOLD", "80"))
    payload = req.payload()
    with gitws.checkout(str(payload.get("commit", "")), str(payload.get("module", "service"))) as module:
        report = gotool.check(module, vet=False)
    if not report.test_ok or report.coverage is None:
        return result("Review", {"verdict": "no coverage measured", "go": report.go_version,
                                 "feedback": f"go test failed, so coverage is unknown: {report.test_output[-1500:]}"},
                      "coverage unknown: the tests fail")
    if report.coverage >= threshold:
        return result("Review", {}, f"coverage {report.coverage}% >= {threshold:g}%")
    missing = [line for line in report.uncovered(threshold) if not line.startswith("main ")]
    names = ", ".join(dict.fromkeys(m.split()[0] for m in missing)) or "the uncovered code"
    payload = {"verdict": "coverage below the gate", "go": report.go_version, "coverage": report.coverage,
               "threshold": threshold,
               "feedback": f"statement coverage is {report.coverage}%, below the {threshold:g}% gate: "
                           f"add tests for {names}",
               "uncovered": missing}
    return result("Review", payload, f"coverage {report.coverage}% < {threshold:g}%")


if __name__ == "__main__":
    run(handle)
