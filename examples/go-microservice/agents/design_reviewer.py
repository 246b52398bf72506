"""API style or security reviewer of the design (argument: style | security).

The checklist in holtdemo/spec.py decides (concrete, repeatable findings); on a rejection the LLM step adds
remarks. ``{}`` approves (holt's rule), so an approval carries no text."""

from __future__ import annotations

import sys
from typing import Any

from holtdemo import llm, scripted, spec
from holtdemo.agent import Request, result, run
from holtdemo.reviewing import acknowledge, spec_of

KIND = sys.argv[1] if len(sys.argv) > 1 else "style"
NAME = {"style": "API style", "security": "security"}.get(KIND, KIND)


def handle(req: Request) -> dict[str, Any]:
    if req.target.get("type") != "ApiDesign":
        return acknowledge(req, NAME)
    doc = spec.load(spec_of(req))
    findings = spec.security_findings(doc) if KIND == "security" else spec.style_findings(doc)
    if not findings:
        return result("Review", {}, f"{NAME} review: approved")
    prompt = (f"You review an OpenAPI spec for {NAME} problems. A checklist found:\n"
              + "\n".join(f"- {f}" for f in findings)
              + f"\n\nSpec:\n{spec_of(req)}\n\nAdd at most three further remarks as "
                '{"remarks": [str, ...]} (an empty list is fine).')
    extra = llm.ask_json(f"{KIND}.remarks", f"You are a meticulous {NAME} reviewer.", prompt,
                         llm.need("remarks", kinds={"remarks": list}), lambda: scripted.remarks(KIND, findings))
    payload = {"verdict": "changes requested", "reviewer": NAME, "findings": findings,
               "remarks": [str(r) for r in extra["remarks"]][:3], "llm": llm.label()}
    return result("Review", payload, f"{NAME} review: {len(findings)} findings")


if __name__ == "__main__":
    run(handle)
