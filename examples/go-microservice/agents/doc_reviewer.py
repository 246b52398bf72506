"""DocReviewer: checks the README against the spec (every operation, how to run and test, the token)."""

from __future__ import annotations

from typing import Any

from holtdemo import llm, scripted, spec
from holtdemo.agent import Request, result, run
from holtdemo.reviewing import acknowledge


def handle(req: Request) -> dict[str, Any]:
    if req.target.get("type") != "ServiceDocs":
        return acknowledge(req, "docs")
    readme = str(req.payload().get("readme", ""))
    designed = req.latest("ApiDesign")
    doc = spec.load(str(req.payload(designed).get("spec", ""))) if designed else {}
    findings = [f"the README does not mention {m} {p}" for m, p, _ in spec.operations(doc)
                if f"`{m}` | `{p}`" not in readme and f"{m} {p}" not in readme]
    for needle, what in (("go test", "how to run the tests"), ("BOOKMARKS_TOKEN", "the token the service needs")):
        if needle not in readme:
            findings.append(f"the README does not say {what} ({needle})")
    if not findings:
        return result("Review", {}, "README reviewed: complete")
    extra = llm.ask_json("docs.remarks", "You review developer documentation.",
                         "Findings:\n" + "\n".join(findings) + f"\n\nREADME:\n{readme}\n\n"
                         'Add remarks as {"remarks": [str, ...]}.',
                         llm.need("remarks", kinds={"remarks": list}), lambda: scripted.remarks("docs", findings))
    return result("Review", {"verdict": "changes requested", "reviewer": "docs", "findings": findings,
                             "remarks": [str(r) for r in extra["remarks"]][:3], "llm": llm.label()},
                  f"README review: {len(findings)} findings")


if __name__ == "__main__":
    run(handle)
