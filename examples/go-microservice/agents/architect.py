"""Architect: writes the design and the OpenAPI 3 spec, commits them to the workflow's feature branch,
reworks them on review feedback, and answers the implementer's questions about the design."""

from __future__ import annotations

import json
from typing import Any

from holtdemo import gitws, llm, scripted, spec
from holtdemo.agent import AgentFailure, Request, result, run

SYSTEM = ("You are a senior API architect. You design small HTTP JSON services and write their OpenAPI 3.0 "
          "contract in YAML.")


def check_design(value: dict[str, Any]) -> str | None:
    problem = llm.need("title", "summary", "design", "openapi",
                       kinds={"title": str, "summary": str, "design": str, "openapi": str})(value)
    if problem:
        return problem
    try:
        doc = spec.load(value["openapi"])
    except AgentFailure as exc:
        return exc.message
    if not str(doc.get("openapi", "")).startswith("3."):
        return "openapi must be an OpenAPI 3 document (openapi: 3.0.x)"
    return None


def design(req: Request) -> dict[str, Any]:
    target = req.target
    if target.get("type") == "GoalDefined":
        goal, goal_id, revision, previous, feedback = str(target.get("payload", "")), str(target["id"]), 1, {}, []
    else:  # a rework: review feedback (agents' or a person's) on an earlier design
        previous = req.payload()
        goal = str(previous.get("goal") or "a bookmarks service with an OpenAPI 3 spec")
        goal_id = str(previous.get("goal_id") or target.get("id", "unknown"))
        revision = int(target.get("version", 1)) + 1
        feedback = [f"{f.by}: {f.text}" for f in req.feedback()]
    prompt = (f"Goal: {goal}\n\nWrite a short design (markdown) and the complete OpenAPI 3.0 spec (YAML).\n"
              + (f"Previous spec:\n{previous.get('spec', '')}\n\nReview feedback to address:\n"
                 + "\n".join(f"- {f}" for f in feedback) if feedback else "")
              + '\nAnswer as {"title": str, "summary": str, "design": markdown str, "openapi": yaml str}.')
    answer = llm.ask_json("architect.design", SYSTEM, prompt, check_design,
                          lambda: scripted.design(goal, revision, feedback))
    doc = spec.load(answer["openapi"])
    branch = str(previous.get("branch") or gitws.branch_for(goal_id))
    base = str(previous.get("base") or gitws.git("rev-parse", "HEAD").strip())
    commit = gitws.commit_files(branch, {"api/openapi.yaml": answer["openapi"], "docs/design.md": answer["design"]},
                                f"API design v{revision}: {answer['summary'][:60]}", "Architect")
    payload = {
        "llm": llm.label(), "goal": goal, "goal_id": goal_id, "title": answer["title"], "summary": answer["summary"],
        "revision": revision, "addressed": feedback, "branch": branch, "base": base, "commit": commit,
        "spec_path": "api/openapi.yaml", "operations": spec.summary(doc), "design": answer["design"],
        "spec": answer["openapi"],
    }
    return result("ApiDesign", payload, f"API design v{revision} ({len(payload['operations'])} operations) "
                                        f"committed to {branch}")


def answer_question(req: Request) -> dict[str, Any]:
    question = str(req.target.get("payload", ""))
    designed = req.latest("ApiDesign")
    spec_text = str(req.payload(designed).get("spec", "")) if designed else ""
    doc = spec.load(spec_text) if spec_text else {}

    def check(value: dict[str, Any]) -> str | None:
        if not isinstance(value.get("can_answer"), bool):
            return "can_answer must be true or false"
        key = "answer" if value["can_answer"] else "why"
        return None if isinstance(value.get(key), str) and value[key].strip() else f"{key!r} must be a non-empty string"

    prompt = (f"The implementer asks: {question}\n\nThe spec you wrote:\n{spec_text}\n\n"
              "Answer only from the design. Product or business decisions (limits, prices, retention) are not "
              'yours to make. Answer as {"can_answer": true, "answer": str} or {"can_answer": false, "why": str}.')
    reply = llm.ask_json("architect.answer", SYSTEM, prompt, check, lambda: scripted.answer(question, doc))
    if reply["can_answer"]:
        return result("Answer", f"{reply['answer']} [{llm.label()}]", "answered from the design", "Answer")
    # Not ours to decide: asking back moves the question up the chain (in the end, to a person).
    return result("Clarification", f"I cannot answer this from the design: {reply['why']} [{llm.label()}]",
                  "cannot answer from the design", "Question")


def handle(req: Request) -> dict[str, Any]:
    if req.is_question:
        return answer_question(req)
    if req.target.get("type") not in ("GoalDefined", "ApiDesign"):
        raise AgentFailure("UnexpectedTarget", f"the Architect designs from a goal, not a {req.target.get('type')}",
                           target=json.dumps(req.target)[:300])
    return design(req)


if __name__ == "__main__":
    run(handle)
