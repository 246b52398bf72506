"""The policy a running orchestrator publishes (``HitlPolicy.model_dump_json``), checked without pydantic.

The reads (``holt questions``, ``holt pending``) need nothing of the policy for a plain open request, but a
published policy that does not validate must still refuse the read. ``is_plain_policy`` accepts only the
canonical form an orchestrator writes (every section present, every value of the exact JSON type) and only when
each of ``HitlPolicy``'s rules holds; anything else returns False and the caller validates with the model, so an
odd but valid policy reads the same and a malformed one is refused with the model's reason.
"""

from __future__ import annotations

import json
from typing import Any

from holt_core.globmatch import is_valid_pattern

_LEVELS = ("low", "medium", "high", "critical")
_FAIL_CLOSED = frozenset({"high", "critical"})
_LEVEL_KEYS = frozenset({"auto_approve", "approvers", "min_approvals", "escalate_after", "expire_after", "on_expire",
                         "require_justification"})
_QUESTION_KEYS = frozenset({"escalate_after", "expire_after", "on_expire", "peer_timeout", "answerers"})
_WEBHOOK_KEYS = frozenset({"url", "events", "format", "timeout", "retries"})
_EVENTS = frozenset({"request", "escalation", "expiry", "decision"})
_FORMATS = frozenset({"generic", "slack", "teams"})
_TOP_KEYS = frozenset({"operators", "risk_levels", "rules", "questions", "bypass_role", "notify"})
_MATCH_KEYS = frozenset({"artefact_type", "produced_by", "action"})


def _no_constant(text: str) -> Any:
    raise ValueError(text)


def _role(value: Any) -> bool:
    return (type(value) is str and 0 < len(value) <= 64 and value.isascii()
            and all(c.isalnum() or c in "-_." for c in value))


def _roles(value: Any) -> bool:
    return type(value) is list and all(_role(v) for v in value)


def _seconds(value: Any) -> bool:
    return (type(value) is int or type(value) is float) and value > 0


def _steps(value: Any) -> list[float] | None:
    if type(value) is not list:
        return None
    afters = []
    for step in value:
        if type(step) is not dict or step.keys() != {"after", "to"} or not _seconds(step["after"]) \
                or not _roles(step["to"]):
            return None
        afters.append(float(step["after"]))
    return afters


def _level(name: str, value: Any) -> bool:
    if type(value) is not dict or value.keys() != _LEVEL_KEYS:
        return False
    afters = _steps(value["escalate_after"])
    expire = value["expire_after"]
    return (afters is not None and type(value["auto_approve"]) is bool and _roles(value["approvers"])
            and type(value["min_approvals"]) is int and value["min_approvals"] >= 1
            and (expire is None or _seconds(expire)) and value["on_expire"] in ("approve", "reject")
            and type(value["require_justification"]) is bool
            and afters == sorted(afters) and (expire is None or not afters or afters[-1] < expire)
            and not (name in _FAIL_CLOSED and (value["auto_approve"] or value["on_expire"] == "approve")))


def _rule(value: Any) -> bool:
    if type(value) is not dict or value.keys() != {"match", "risk"} or value["risk"] not in _LEVELS:
        return False
    match = value["match"]
    if type(match) is not dict or match.keys() != _MATCH_KEYS:
        return False
    patterns = [match[k] for k in ("artefact_type", "produced_by", "action")]
    return (all(p is None or (type(p) is str and is_valid_pattern(p)) for p in patterns)
            and any(p is not None for p in patterns))


def _questions(value: Any) -> bool:
    if type(value) is not dict or value.keys() != _QUESTION_KEYS:
        return False
    on_expire, expire = value["on_expire"], value["expire_after"]
    return (_steps(value["escalate_after"]) is not None and (expire is None or _seconds(expire))
            and (on_expire == "fail" or (type(on_expire) is dict and on_expire.keys() == {"default"}
                                         and type(on_expire["default"]) is str))
            and _seconds(value["peer_timeout"]) and _roles(value["answerers"]))


def _webhook(value: Any) -> bool:
    if type(value) is not dict or value.keys() != _WEBHOOK_KEYS:
        return False
    url, events = value["url"], value["events"]
    return (type(url) is str and url.startswith(("http://", "https://")) and type(events) is list
            and all(type(e) is str and e in _EVENTS for e in events) and value["format"] in _FORMATS
            and _seconds(value["timeout"]) and type(value["retries"]) is int and value["retries"] >= 0)


def is_plain_policy(text: str) -> bool:
    """``text`` is a policy in the canonical published form that ``HitlPolicy`` accepts (see the docstring)."""
    if "\\ud" in text or "\\uD" in text:
        return False  # a surrogate escape: the model decides
    try:
        data = json.loads(text, parse_constant=_no_constant)
        return type(data) is dict and _plain(data)
    except (TypeError, ValueError):  # not JSON, or an unhashable value where a name belongs
        return False


def _plain(data: dict[str, Any]) -> bool:
    if data.keys() != _TOP_KEYS:
        return False
    operators, levels, notify = data["operators"], data["risk_levels"], data["notify"]
    if type(operators) is not dict or not all(type(entry) is dict and entry.keys() == {"roles"}
                                              and _roles(entry["roles"]) for entry in operators.values()):
        return False
    if type(levels) is not dict or tuple(levels) != _LEVELS or not all(_level(n, v) for n, v in levels.items()):
        return False
    if operators and any(not v["auto_approve"] and not v["approvers"] for v in levels.values()):
        return False  # a level nobody could approve
    return (type(data["rules"]) is list and all(_rule(r) for r in data["rules"]) and _questions(data["questions"])
            and (data["bypass_role"] is None or _role(data["bypass_role"]))
            and type(notify) is dict and notify.keys() == {"webhooks"} and type(notify["webhooks"]) is list
            and all(_webhook(w) for w in notify["webhooks"]))
