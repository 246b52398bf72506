"""LLM steps: an OpenAI-compatible endpoint when configured, else the scripted responder.

Configure with HOLT_DEMO_LLM_BASE_URL (e.g. http://localhost:11434/v1 for Ollama) and HOLT_DEMO_LLM_MODEL;
the key comes from HOLT_DEMO_LLM_API_KEY or OPENAI_API_KEY (local servers accept any). Every answer must be
one JSON object of the shape the step asks for; a bad answer (empty, not JSON, wrong shape) is sent back
with the problem, up to HOLT_DEMO_LLM_ATTEMPTS times (default 3), then the step fails with LLMBadAnswer.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Callable
from typing import Any

from holtdemo.agent import AgentFailure

SCRIPTED = "scripted responder (deterministic, shipped with the example; no LLM configured)"
Check = Callable[[dict[str, Any]], str | None]


def configured() -> bool:
    return bool(os.environ.get("HOLT_DEMO_LLM_BASE_URL") or os.environ.get("HOLT_DEMO_LLM_MODEL"))


def label() -> str:
    """What produced an LLM step's output, written into every artefact that holds such output."""
    if not configured():
        return SCRIPTED
    model = os.environ.get("HOLT_DEMO_LLM_MODEL", "?")
    return f"LLM {model} at {os.environ.get('HOLT_DEMO_LLM_BASE_URL') or 'the OpenAI API'}"


def ask_json(task: str, system: str, prompt: str, check: Check,
             scripted: Callable[[], dict[str, Any]]) -> dict[str, Any]:
    """One LLM step: a JSON object that passes ``check`` (which returns a problem or None)."""
    if not configured():
        answer = scripted()
        problem = _problem(answer, check)
        if problem:
            raise AgentFailure("ScriptedResponderError", f"{task}: the scripted answer is unusable: {problem}")
        return answer
    return _ask_endpoint(task, system, prompt, check)


def _problem(value: Any, check: Check) -> str | None:
    if not isinstance(value, dict):
        return "the answer must be one JSON object"
    if not value:
        return "the answer is an empty object"
    return check(value)


def parse_answer(text: str, check: Check) -> tuple[dict[str, Any] | None, str | None]:
    """(the object, None) or (None, what is wrong with the text)."""
    body = (text or "").strip()
    if not body:
        return None, "the answer is empty"
    fenced = re.match(r"^```[a-zA-Z]*\s*\n(.*?)\n?```\s*$", body, re.S)
    if fenced:
        body = fenced.group(1).strip()
    try:
        value = json.loads(body)
    except ValueError as exc:
        return None, f"the answer is not JSON ({exc})"
    problem = _problem(value, check)
    return (None, problem) if problem else (value, None)


def _ask_endpoint(task: str, system: str, prompt: str, check: Check) -> dict[str, Any]:
    model = os.environ.get("HOLT_DEMO_LLM_MODEL", "").strip()
    if not model:
        raise AgentFailure("LLMNotConfigured", "HOLT_DEMO_LLM_BASE_URL is set but HOLT_DEMO_LLM_MODEL is not")
    try:
        import openai
    except ImportError:
        raise AgentFailure("LLMNotConfigured", "the openai package is missing: pip install 'holt[demo]'") from None
    client = openai.OpenAI(
        base_url=os.environ.get("HOLT_DEMO_LLM_BASE_URL") or None,
        api_key=os.environ.get("HOLT_DEMO_LLM_API_KEY") or os.environ.get("OPENAI_API_KEY") or "not-needed",
        timeout=float(os.environ.get("HOLT_DEMO_LLM_TIMEOUT", "120")),
        max_retries=1,
    )
    attempts = max(1, int(os.environ.get("HOLT_DEMO_LLM_ATTEMPTS", "3")))
    messages: list[dict[str, str]] = [
        {"role": "system", "content": system + "\nReply with exactly one JSON object and nothing else."},
        {"role": "user", "content": prompt},
    ]
    problem, text = "", ""
    for _ in range(attempts):
        try:
            response = client.chat.completions.create(model=model, messages=messages, temperature=0.2)
            text = (response.choices[0].message.content or "") if response.choices else ""
        except openai.OpenAIError as exc:
            raise AgentFailure("LLMUnavailable", f"{task}: the LLM endpoint failed: {type(exc).__name__}: {exc}",
                               model=model) from None
        value, problem_or_none = parse_answer(text, check)
        if value is not None:
            return value
        problem = problem_or_none or "unusable answer"
        messages += [{"role": "assistant", "content": text[:4000]},
                     {"role": "user", "content": f"That answer is not usable: {problem}. "
                                                 "Reply again with only the JSON object asked for."}]
    raise AgentFailure("LLMBadAnswer", f"{task}: no usable answer after {attempts} attempts: {problem}",
                       model=model, last_answer=text[:2000])


def need(*keys: str, kinds: dict[str, type] | None = None) -> Check:
    """A check that the answer has these keys (with these types)."""

    def check(value: dict[str, Any]) -> str | None:
        for key in keys:
            if key not in value:
                return f"missing key {key!r}"
        for key, kind in (kinds or {}).items():
            if key in value and not isinstance(value[key], kind):
                return f"{key!r} must be a {kind.__name__}"
            if kind is str and key in value and not value[key].strip():
                return f"{key!r} is empty"
        return None

    return check
