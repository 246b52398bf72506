"""Slack interactivity: checking a callback's signature and reading which button who pressed (pure).

Slack signs every request: ``X-Slack-Signature: v0=<hex HMAC-SHA256(signing secret, "v0:<ts>:<raw body>")>``
with ``X-Slack-Request-Timestamp: <ts>``. A request older (or newer) than five minutes is refused, so a
captured callback cannot be replayed later.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs

from holt_core.hitl.notify import APPROVE_ACTION as ACTION_APPROVE
from holt_core.hitl.notify import REJECT_ACTION as ACTION_REJECT

MAX_SKEW_S = 300


def signature(secret: str, timestamp: str, body: bytes) -> str:
    base = b"v0:" + timestamp.encode() + b":" + body
    return "v0=" + hmac.new(secret.encode(), base, hashlib.sha256).hexdigest()


def signature_problem(secret: str, timestamp: str | None, given: str | None, body: bytes, now_s: float) -> str | None:
    """None when the request is Slack's and fresh; else why it is refused."""
    if not secret:
        return "Slack is not set up (no signing secret)"
    if not timestamp or not given:
        return "the request is not signed"
    try:
        ts = int(timestamp)
    except ValueError:
        return "the request timestamp is not a number"
    if abs(now_s - ts) > MAX_SKEW_S:
        return "the request timestamp is more than five minutes off (a replay?)"
    if not hmac.compare_digest(signature(secret, timestamp, body), given):
        return "the request signature does not match"
    return None


@dataclass(frozen=True)
class SlackAction:
    user_id: str
    user_name: str
    action: str  # ACTION_APPROVE | ACTION_REJECT
    request_id: str
    response_url: str
    thread_ts: str


def parse_action(body: bytes) -> SlackAction:
    """The button press in a ``block_actions`` payload (form field ``payload``); ValueError when it is not one."""
    form = parse_qs(body.decode("utf-8", "replace"))
    raw = form.get("payload", [""])[0]
    try:
        payload: Any = json.loads(raw)
    except json.JSONDecodeError:
        raise ValueError("the payload is not JSON") from None
    if not isinstance(payload, dict) or payload.get("type") != "block_actions":
        raise ValueError("not a block_actions payload")
    user = payload.get("user") or {}
    actions = payload.get("actions") or []
    if not isinstance(user, dict) or not isinstance(actions, list) or not actions or not isinstance(actions[0], dict):
        raise ValueError("the payload names no user or no action")
    first = actions[0]
    action = str(first.get("action_id", ""))
    if action not in (ACTION_APPROVE, ACTION_REJECT):
        raise ValueError(f"unknown action {action[:40]!r}")
    message = payload.get("container") or {}
    return SlackAction(
        user_id=str(user.get("id", "")),
        user_name=str(user.get("username") or user.get("name") or ""),
        action=action,
        request_id=str(first.get("value", "")),
        response_url=str(payload.get("response_url", "")),
        thread_ts=str(message.get("message_ts", "")) if isinstance(message, dict) else "",
    )


def reply(text: str, thread_ts: str) -> dict[str, Any]:
    """The outcome, posted to the action's response_url as a reply in the message's thread."""
    body: dict[str, Any] = {"response_type": "in_channel", "replace_original": False, "text": text}
    if thread_ts:
        body["thread_ts"] = thread_ts
    return body
