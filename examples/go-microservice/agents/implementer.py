"""Implementer: writes the Go service and its tests (standard library only) from the approved design.

On its first claim it asks the Architect two questions (peer questions, one at a time): one the design
answers, and one only a person can (the Architect says so and the question escalates). On feedback
(the coverage gate, a person) it reworks the code, keeping the decisions recorded in its last version."""

from __future__ import annotations

import json
import re
from typing import Any

from holtdemo import gitws, llm, scripted
from holtdemo.agent import AgentFailure, Request, result, run

Q_DESIGN = ("POST /bookmarks with a URL that is already stored: which status code and error body should the "
            "service answer?")
Q_PRODUCT = ("How many bookmarks may the service keep in total before it refuses new ones? The design sets "
             "no limit, and the service keeps them in memory.")
SYSTEM = "You are a Go engineer. You write small, idiomatic services with the standard library only, with tests."
MAX_LIMIT = 10_000


def decide(answers: dict[str, str]) -> dict[str, Any]:
    """Turn the two answers (free text, from an agent and a person) into the constants the code needs."""
    design = answers.get("ImplementationQuestion", "")
    codes = [int(c) for c in re.findall(r"\b(4\d\d)\b", design)]
    duplicate = codes[0] if codes else 409
    product = answers.get("ProductQuestion", "")
    number = scripted.first_int(product)
    if number is None or number < 1:
        limit, note = 1000, f"no usable number in the answer {product[:80]!r}: using 1000"
    elif number > MAX_LIMIT:
        limit, note = MAX_LIMIT, f"answer was {number}; capped at {MAX_LIMIT} for an in-memory store"
    else:
        limit, note = number, f"decided by a person: {product[:80]}"
    return {"duplicate_status": duplicate, "duplicate_note": f"from the Architect: {design[:100]}",
            "max_bookmarks": limit, "max_bookmarks_note": note.replace("\n", " ")}


def check_code(value: dict[str, Any]) -> str | None:
    files = value.get("files")
    if not isinstance(files, dict) or not files:
        return "files must be an object mapping file names to their contents"
    for name, text in files.items():
        if not isinstance(text, str) or not text.strip():
            return f"file {name!r} is empty"
        if ".." in name or name.startswith("/"):
            return f"file name {name!r} must be relative, inside the service directory"
    if "go.mod" not in files or not any(n.endswith("_test.go") for n in files):
        return "the service needs a go.mod and at least one _test.go file"
    return None


def handle(req: Request) -> dict[str, Any]:
    target = req.target
    if target.get("type") == "ApiDesign":
        answers = req.answers()
        if "ImplementationQuestion" not in answers:
            return result("ImplementationQuestion", Q_DESIGN, "asking the Architect", "Question", ask="role:Architect")
        if "ProductQuestion" not in answers:
            return result("ProductQuestion", Q_PRODUCT, "asking the Architect (a product decision)", "Question",
                          ask="role:Architect")
        design, decisions, revision, feedback = req.payload(), decide(answers), 1, []
        decisions["answered_by"] = req.answered_by()
    elif target.get("type") == "GoService":  # a rework
        previous = req.payload()
        designed = req.latest("ApiDesign")
        design = req.payload(designed) if designed else previous
        decisions = previous.get("decisions") or decide({})
        revision = int(target.get("version", 1)) + 1
        feedback = [f"{f.by}: {f.text}" for f in req.feedback()]
    else:
        raise AgentFailure("UnexpectedTarget", f"the Implementer builds from an ApiDesign, not a {target.get('type')}")
    branch = str(design.get("branch") or "")
    if not branch:
        raise AgentFailure("NoBranch", "the design names no git branch to build on")
    prompt = (f"Implement this OpenAPI spec as a Go module 'example.com/bookmarks' (go 1.22, standard library "
              f"only) with tests:\n{design.get('spec', '')}\n\nDecisions: {json.dumps(decisions)}\n"
              + ("Feedback to address:\n" + "\n".join(f"- {f}" for f in feedback) + "\n" if feedback else "")
              + 'Answer as {"files": {"go.mod": str, "main.go": str, ...}, "notes": str}.')
    code = llm.ask_json("implementer.code", SYSTEM, prompt, check_code,
                        lambda: scripted.go_service(decisions, revision, feedback))
    files = {f"service/{name}": text for name, text in code["files"].items()}
    commit = gitws.commit_files(branch, files, f"Go service v{revision}: {str(code.get('notes', ''))[:60]}",
                                "Implementer")
    payload = {
        "llm": llm.label(), "goal_id": design.get("goal_id"), "revision": revision, "branch": branch,
        "base": design.get("base"), "commit": commit, "module": "service", "files": sorted(files),
        "decisions": decisions, "addressed": feedback, "notes": str(code.get("notes", "")),
    }
    return result("GoService", payload, f"Go service v{revision} committed ({len(files)} files)")


if __name__ == "__main__":
    run(handle)
