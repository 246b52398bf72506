"""FinalReviewer: looks at every artefact in the chain and at the code change on the branch, and asks to
merge it to main (a MergeToMain artefact: the hitl policy gates its grant as critical)."""

from __future__ import annotations

from typing import Any

from holtdemo import gitws, llm, scripted
from holtdemo.agent import AgentFailure, Request, feedback_of, result, run


def handle(req: Request) -> dict[str, Any]:
    target = req.target
    if target.get("type") not in ("ServiceDocs", "MergeToMain"):
        raise AgentFailure("UnexpectedTarget", f"the FinalReviewer reviews ServiceDocs, not a {target.get('type')}")
    docs = req.latest("ServiceDocs")
    latest = req.payload(docs) if docs else req.payload()
    branch, base, head = str(latest.get("branch", "")), str(latest.get("base", "")), str(latest.get("commit", ""))
    if not (branch and base and head):
        raise AgentFailure("NoBranch", "the docs name no branch, base and commit to review")
    change = gitws.change_summary(base, head)
    seen = []
    for art in [*req.chain, target]:
        line = f"{art.get('type')} v{art.get('version')} by {art.get('produced_by_role')}"
        if art.get("structural_type") == "Review":
            fb = feedback_of(art)
            line += f": {fb.text[:160]}" if fb else ": approved"
        seen.append(line)
    feedback = [f"{f.by}: {f.text}" for f in req.feedback()] if target.get("type") == "MergeToMain" else []
    prompt = ("Review this change before it is merged to main.\nArtefacts:\n" + "\n".join(seen)
              + "\n\nCommits:\n" + "\n".join(change["commits"]) + "\n\nDiffstat:\n" + "\n".join(change["diffstat"])
              + ("\nFeedback:\n" + "\n".join(feedback) if feedback else "")
              + '\nAnswer as {"verdict": str, "summary": str, "risks": [str, ...]}.')
    review = llm.ask_json("final.review", "You are the final reviewer of a pull request.", prompt,
                          llm.need("verdict", "summary", "risks", kinds={"verdict": str, "summary": str,
                                                                         "risks": list}),
                          lambda: scripted.final_review(seen, change))
    payload = {"llm": llm.label(), "action": "merge to main", "branch": branch, "base": base, "head": head,
               "verdict": review["verdict"], "summary": review["summary"], "risks": [str(r) for r in review["risks"]],
               "change": change, "artefacts_reviewed": seen, "addressed": feedback}
    return result("MergeToMain", payload, f"{review['verdict']}: merge {branch} to main")


if __name__ == "__main__":
    run(handle)
