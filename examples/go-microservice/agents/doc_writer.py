"""DocWriter: writes the service's README from the spec and the implementation's decisions, and commits it."""

from __future__ import annotations

from typing import Any

from holtdemo import gitws, llm, scripted, spec
from holtdemo.agent import AgentFailure, Request, result, run


def handle(req: Request) -> dict[str, Any]:
    target = req.target
    if target.get("type") == "GoService":
        service, revision, feedback = req.payload(), 1, []
    elif target.get("type") == "ServiceDocs":  # a rework
        built = req.latest("GoService")
        service = req.payload(built) if built else req.payload()
        revision = int(target.get("version", 1)) + 1
        feedback = [f"{f.by}: {f.text}" for f in req.feedback()]
    else:
        raise AgentFailure("UnexpectedTarget", f"the DocWriter documents a GoService, not a {target.get('type')}")
    designed = req.latest("ApiDesign")
    spec_text = str(req.payload(designed).get("spec", "")) if designed else ""
    doc = spec.load(spec_text) if spec_text else {}
    decisions = service.get("decisions") or {}
    prompt = (f"Write the README (markdown) of this Go service: how to run it, test it, its endpoints and limits.\n"
              f"Spec:\n{spec_text}\n\nDecisions: {decisions}\n"
              + ("Feedback to address:\n" + "\n".join(f"- {f}" for f in feedback) + "\n" if feedback else "")
              + 'Answer as {"readme": markdown str}.')
    answer = llm.ask_json("docs.readme", "You are a technical writer.", prompt,
                          llm.need("readme", kinds={"readme": str}),
                          lambda: scripted.readme(doc, decisions, feedback))
    branch = str(service.get("branch") or "")
    if not branch:
        raise AgentFailure("NoBranch", "the service names no git branch")
    commit = gitws.commit_files(branch, {"service/README.md": answer["readme"]}, f"README v{revision}", "DocWriter")
    payload = {"llm": llm.label(), "revision": revision, "branch": branch, "base": service.get("base"),
               "commit": commit, "path": "service/README.md", "addressed": feedback, "readme": answer["readme"]}
    return result("ServiceDocs", payload, f"README v{revision} committed")


if __name__ == "__main__":
    run(handle)
