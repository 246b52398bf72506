"""The Holt tool contract for every agent of this demo: JSON in on stdin, one JSON object out on stdout.

``run(handler)`` never lets an exception escape: a problem the agent can name becomes a Failure artefact
with that reason (``AgentFailure``), and anything unexpected becomes a Failure artefact that says so, so a
bad LLM answer, a missing tool or an odd manual review never crashes the agent process.
"""

from __future__ import annotations

import json
import sys
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any


class AgentFailure(Exception):
    """A clear, expected failure: becomes a Failure artefact of type ``kind``."""

    def __init__(self, kind: str, message: str, **details: Any) -> None:
        super().__init__(message)
        self.kind = kind
        self.message = message
        self.details = details


@dataclass
class Feedback:
    """One review of the artefact being reworked, whatever shape its payload has."""

    by: str
    text: str
    data: Any = None  # the parsed JSON payload, if it was JSON


@dataclass
class Request:
    claim_type: str
    target: dict[str, Any]
    chain: list[dict[str, Any]] = field(default_factory=list)

    @property
    def is_question(self) -> bool:
        return self.target.get("structural_type") == "Question"

    def payload(self, artefact: dict[str, Any] | None = None) -> dict[str, Any]:
        return payload_of(artefact if artefact is not None else self.target)

    def latest(self, artefact_type: str) -> dict[str, Any] | None:
        """The newest artefact of this type among the target and its context chain."""
        found = [a for a in [*self.chain, self.target] if a.get("type") == artefact_type]
        return max(found, key=lambda a: (a.get("version", 0), a.get("created_at_ms", 0)), default=None)

    def feedback(self) -> list[Feedback]:
        """Reviews that ask for changes to the target (a rework claim), oldest first."""
        out = []
        for art in self.chain:
            if art.get("structural_type") != "Review":
                continue
            sources = art.get("source_artefacts") or []
            if sources and sources[0] != self.target.get("id"):
                continue
            fb = feedback_of(art)
            if fb is not None:
                out.append(fb)
        return out

    def answers(self) -> dict[str, str]:
        """Answers to this agent's questions on this claim: question artefact type -> answer text."""
        questions = {a["id"]: a for a in self.chain if a.get("structural_type") == "Question"}
        out: dict[str, str] = {}
        for art in self.chain:
            if art.get("structural_type") != "Answer":
                continue
            sources = art.get("source_artefacts") or []
            question = questions.get(sources[0]) if sources else None
            if question is not None:
                out[question.get("type", "")] = str(art.get("payload", ""))
        return out

    def answered_by(self) -> dict[str, str]:
        questions = {a["id"]: a for a in self.chain if a.get("structural_type") == "Question"}
        out: dict[str, str] = {}
        for art in self.chain:
            sources = art.get("source_artefacts") or []
            if art.get("structural_type") == "Answer" and sources and sources[0] in questions:
                out[questions[sources[0]].get("type", "")] = str(art.get("produced_by_role", ""))
        return out


def payload_of(artefact: dict[str, Any]) -> dict[str, Any]:
    """The payload as a dict: JSON objects as they are, anything else under "text"."""
    raw = artefact.get("payload", "")
    try:
        value = json.loads(raw) if isinstance(raw, str) else raw
    except ValueError:
        return {"text": raw}
    return value if isinstance(value, dict) else {"text": raw}


def feedback_of(review: dict[str, Any]) -> Feedback | None:
    """A review's feedback as text; None for an approval ({} or [])."""
    raw = review.get("payload", "")
    by = str(review.get("produced_by_role", "someone"))
    try:
        data = json.loads(raw) if isinstance(raw, str) else raw
    except ValueError:
        text = str(raw).strip()
        return Feedback(by, text) if text else None
    if isinstance(data, dict | list) and not data:
        return None
    if isinstance(data, dict):
        by = str(data.get("by") or by)
        parts: list[str] = []
        for key in ("feedback", "issue", "summary", "message", "text", "reason"):
            if isinstance(data.get(key), str) and data[key].strip():
                parts.append(data[key].strip())
        for key in ("findings", "issues", "errors", "uncovered"):
            items = data.get(key)
            if isinstance(items, list):
                parts.extend(_finding_text(i) for i in items)
        text = "; ".join(p for p in parts if p) or json.dumps(data, ensure_ascii=False)[:2000]
        return Feedback(by, text, data)
    if isinstance(data, list):
        return Feedback(by, "; ".join(_finding_text(i) for i in data)[:2000], data)
    text = str(data).strip()
    return Feedback(by, text, data) if text else None


def _finding_text(item: Any) -> str:
    if isinstance(item, dict):
        return str(item.get("problem") or item.get("message") or item.get("text") or json.dumps(item))
    return str(item)


def result(artefact_type: str, payload: Any, summary: str, structural_type: str = "", **extra: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "artefact_type": artefact_type,
        "artefact_payload": payload if isinstance(payload, str) else json.dumps(payload, indent=2, ensure_ascii=False),
        "summary": summary,
    }
    if structural_type:
        body["structural_type"] = structural_type
    body.update(extra)
    return body


def failure(kind: str, message: str, **details: Any) -> dict[str, Any]:
    return result(kind, {"error": message, **details}, message[:200] or kind, "Failure")


def run(handler: Callable[[Request], dict[str, Any]]) -> None:
    try:
        raw = json.load(sys.stdin)
        if not isinstance(raw, dict) or not isinstance(raw.get("target_artefact"), dict):
            raise AgentFailure("BadToolInput", "stdin is not a Holt tool request (no target_artefact)")
        chain = [a for a in raw.get("context_chain") or [] if isinstance(a, dict)]
        out = handler(Request(str(raw.get("claim_type", "")), raw["target_artefact"], chain))
    except AgentFailure as exc:
        out = failure(exc.kind, exc.message, **exc.details)
    except Exception as exc:  # never a crash: the Failure artefact says what went wrong
        tail = traceback.format_exc().strip().splitlines()[-6:]
        out = failure("AgentError", f"unexpected error: {type(exc).__name__}: {exc}", traceback=tail)
    sys.stdout.write(json.dumps(out, ensure_ascii=False) + "\n")
