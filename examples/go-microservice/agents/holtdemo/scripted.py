"""The scripted responder: deterministic stand-ins for the LLM steps, so the demo runs offline and in tests.

It plays a plausible first attempt and a fixed second one (the first spec has the flaws the reviewers
catch, the first tests miss the coverage gate), and it answers from its inputs (the spec, the reviews,
the answers), so the workflow's feedback loops are real. Everything it writes is labelled with
``llm.SCRIPTED`` by the agents.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from holtdemo import spec

TEMPLATES = Path(__file__).resolve().parent / "templates"


def template(name: str) -> str:
    return (TEMPLATES / name).read_text(encoding="utf-8")


def design(goal: str, revision: int, feedback: list[str]) -> dict[str, Any]:
    text = template("openapi_v1.yaml" if revision == 1 else "openapi_v2.yaml")
    doc = spec.load(text)
    ops = "\n".join(f"- `{line}`" for line in spec.summary(doc))
    notes = "\n".join(f"- {f}" for f in feedback) or "- first version"
    body = f"""# Design: {goal}

An HTTP JSON service that stores bookmarks (URL and title) in memory, in Go with the standard library only
(net/http routing patterns, encoding/json). Contract: `api/openapi.yaml` (OpenAPI {doc.get('openapi')}).

## Operations
{ops}

## Decisions
- Bookmarks are kept in creation order; ids are decimal strings assigned by the service.
- {'Every call except `GET /healthz` needs `Authorization: Bearer <token>`; the token comes from the environment.'
   if revision > 1 else 'Authentication: to be decided.'}
- {'Lists are paged with `limit` (1-100, default 20) and an opaque `cursor`.' if revision > 1
   else 'Lists return every bookmark.'}

## Revision {revision}
{notes}
"""
    summary = ("first cut: CRUD over /bookmarks" if revision == 1
               else "bearer auth, cursor pagination, shared Error schema, bounded strings")
    return {"title": "Bookmarks API", "summary": summary, "design": body, "openapi": text}


def answer(question: str, doc: dict[str, Any]) -> dict[str, Any]:
    q = question.lower()
    if any(word in q for word in ("status code", "already stored", "duplicate", "conflict")):
        described = spec.response_of(doc, "POST", "/bookmarks", "409")
        if described:
            return {"can_answer": True,
                    "answer": f"409 Conflict with the shared Error body, code \"duplicate_url\": the spec declares "
                              f"it for POST /bookmarks (\"{described}\")."}
    return {"can_answer": False,
            "why": "the design sets no capacity limit; how many bookmarks to keep is a product decision "
                   "(memory budget, plans), not something the API contract decides"}


def go_service(decisions: dict[str, Any], revision: int, feedback: list[str]) -> dict[str, Any]:
    def fill(text: str) -> str:
        return (text.replace("{{MAX_BOOKMARKS}}", str(decisions["max_bookmarks"]))
                .replace("{{MAX_BOOKMARKS_NOTE}}", decisions["max_bookmarks_note"])
                .replace("{{DUPLICATE_STATUS}}", str(decisions["duplicate_status"]))
                .replace("{{DUPLICATE_NOTE}}", decisions["duplicate_note"]))

    # The first attempt tests only the happy path; a rework that was told about coverage tests everything.
    tests = "bookmarks_test_v1.go.tmpl" if revision == 1 else "bookmarks_test_v2.go.tmpl"
    files = {
        "go.mod": template("go.mod.tmpl"),
        "main.go": template("main.go.tmpl"),
        "bookmarks.go": fill(template("bookmarks.go.tmpl")),
        "bookmarks_test.go": template(tests),
    }
    notes = ("handlers, in-memory store, health and create/list tests" if revision == 1
             else "tests for auth, get/delete, validation, duplicates, the limit and pagination")
    if feedback:
        notes += "; addressed: " + "; ".join(feedback)[:500]
    return {"files": files, "notes": notes}


def readme(doc: dict[str, Any], decisions: dict[str, Any], feedback: list[str]) -> dict[str, Any]:
    rows = "\n".join(f"| `{m}` | `{p}` | {op.get('summary', '')} |" for m, p, op in spec.operations(doc))
    extra = ("\n## Changes after review\n" + "\n".join(f"- {f}" for f in feedback) + "\n") if feedback else ""
    text = f"""# Bookmarks service

A small HTTP JSON service that stores bookmarks in memory. The contract is `api/openapi.yaml`
({doc.get('info', {}).get('title', 'API')} {doc.get('info', {}).get('version', '')}); the code uses the Go
standard library only.

## Run

```sh
cd service
BOOKMARKS_TOKEN=secret go run . -addr :8080
curl -H 'Authorization: Bearer secret' -d '{{"url":"https://go.dev","title":"Go"}}' localhost:8080/bookmarks
```

## Test

```sh
cd service && go vet ./... && go test -cover ./...
```

## Endpoints

| method | path | what |
|---|---|---|
{rows}

Every endpoint except `GET /healthz` needs `Authorization: Bearer $BOOKMARKS_TOKEN` (401 otherwise).
Errors are `{{"code": "...", "message": "..."}}`.

## Limits
- at most {decisions.get('max_bookmarks', '?')} bookmarks ({decisions.get('max_bookmarks_note', '')});
  more answer 422 `limit_reached`
- a URL already stored answers {decisions.get('duplicate_status', 409)} `duplicate_url`
- `url` up to 2048 characters (http or https), `title` 1-200 characters, pages of 1-100 (default 20)
{extra}"""
    return {"readme": text}


def remarks(kind: str, findings: list[str]) -> dict[str, Any]:
    """A reviewer's extra remarks on a rejected design."""
    if kind == "security":
        out = ["compare tokens in constant time", "cap request bodies (e.g. 16 KiB)"]
    elif kind == "docs":
        out = []
    else:
        out = ["return pages as an object (items, next_cursor) so fields can be added later"]
    return {"remarks": out if findings else []}


def final_review(seen: list[str], change: dict[str, Any]) -> dict[str, Any]:
    files = [line.split("|")[0].strip() for line in change.get("diffstat", []) if "|" in line]
    return {
        "verdict": "ready to merge",
        "summary": f"{len(change.get('commits', []))} commits on the branch touch {len(files)} files "
                   f"({', '.join(files)}); the design passed both reviews and the validator, the tests pass "
                   "above the coverage gate and the README was reviewed.",
        "risks": ["bookmarks live in memory only: a restart loses them",
                  "one shared bearer token: no per-user access control"],
    }


def first_int(text: str) -> int | None:
    match = re.search(r"\d[\d,_]*", text)
    return int(re.sub(r"[,_]", "", match.group(0))) if match else None
