"""Webhook notifications (Slack/Teams-compatible JSON) for new requests, escalations, expiries, decisions.

Each webhook has a ``format``: ``generic`` (``text`` plus holt's fields, which both Slack and Teams show as
text), ``slack`` (Block Kit; a new approval request carries Approve/Reject buttons whose presses come back to
the approvals API at ``POST /chat/slack/actions``) or ``teams`` (an adaptive card with the facts and the
commands to decide).

Transitions append to the ``hitl:outbox`` stream in the same atomic step as the change; this background
reader posts each entry to every webhook that wants it, with retries and backoff, each delivery in its
own task. Nothing here is awaited by orchestration: a dead webhook costs a few idle tasks, never a delay.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

import httpx

from holt_core.blackboard import Blackboard
from holt_core.hitl.policy import NotifyPolicy, Webhook
from holt_core.logs import EventLogger
from holt_core.sanitise import sanitise_text

BACKOFF_S = 0.2
BACKOFF_MAX_S = 30.0
MAX_IN_FLIGHT = 64


APPROVE_ACTION = "holt_approve"  # the action ids the API's Slack callback understands
REJECT_ACTION = "holt_reject"


def message(fields: dict[str, str], instance: str, fmt: str = "generic") -> dict[str, Any]:
    """The webhook body for one outbox entry, in the target's format."""
    if fmt == "slack":
        return slack_message(fields, instance)
    if fmt == "teams":
        return teams_message(fields, instance)
    text = sanitise_text(fields.get("text", ""))[:2000]
    return {
        "text": _headline(fields, instance, text),
        "holt": {"instance": instance, **{k: v for k, v in fields.items() if k != "text"}, "text": text},
    }


def _headline(fields: dict[str, str], instance: str, text: str) -> str:
    return f"[holt {instance}] {fields.get('event', '')}: {text} (request {fields.get('request_id', '')})"


def _decidable(fields: dict[str, str]) -> bool:
    return fields.get("event") in ("request", "escalation") and fields.get("kind") == "approval"


def _mrkdwn(text: str) -> str:
    """Text from agents must not become Slack markup (links, mentions)."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def slack_message(fields: dict[str, str], instance: str) -> dict[str, Any]:
    """Block Kit: the text, and for an approval waiting for people the Approve and Reject buttons."""
    text = sanitise_text(fields.get("text", ""))[:2000]
    request_id = sanitise_text(fields.get("request_id", ""))
    blocks: list[dict[str, Any]] = [
        {"type": "section", "text": {"type": "mrkdwn", "text": _mrkdwn(_headline(fields, instance, text))}},
        {"type": "context", "elements": [{"type": "mrkdwn", "text": _mrkdwn(
            f"risk {fields.get('risk') or 'n/a'} · holt status {request_id} --name {instance}")}]},
    ]
    if _decidable(fields):
        blocks.append({"type": "actions", "block_id": f"holt:{request_id}", "elements": [
            {"type": "button", "action_id": APPROVE_ACTION, "value": request_id, "style": "primary",
             "text": {"type": "plain_text", "text": "Approve"}},
            {"type": "button", "action_id": REJECT_ACTION, "value": request_id, "style": "danger",
             "text": {"type": "plain_text", "text": "Reject"},
             "confirm": {"title": {"type": "plain_text", "text": "Reject this request?"},
                         "text": {"type": "plain_text", "text": "The agent's action will not run."},
                         "confirm": {"type": "plain_text", "text": "Reject"},
                         "deny": {"type": "plain_text", "text": "Cancel"}}},
        ]})
    return {"text": _headline(fields, instance, text), "blocks": blocks}


def teams_message(fields: dict[str, str], instance: str) -> dict[str, Any]:
    """An adaptive card (Teams incoming webhooks / workflows): the facts and how to decide."""
    text = sanitise_text(fields.get("text", ""))[:2000]
    request_id = sanitise_text(fields.get("request_id", ""))
    body: list[dict[str, Any]] = [
        {"type": "TextBlock", "size": "Medium", "weight": "Bolder", "wrap": True,
         "text": f"holt {instance}: {fields.get('event', '')}"},
        {"type": "TextBlock", "wrap": True, "text": text},
        {"type": "FactSet", "facts": [{"title": "Request", "value": request_id},
                                      {"title": "Kind", "value": fields.get("kind", "")},
                                      {"title": "Risk", "value": fields.get("risk") or "n/a"}]},
    ]
    if _decidable(fields):
        body.append({"type": "TextBlock", "wrap": True, "fontType": "Monospace",
                     "text": f"holt approve {request_id} --name {instance}\nholt reject {request_id} "
                             f"--name {instance} --reason ..."})
    card = {"$schema": "http://adaptivecards.io/schemas/adaptive-card.json", "type": "AdaptiveCard",
            "version": "1.4", "body": body}
    return {"type": "message", "text": _headline(fields, instance, text),
            "attachments": [{"contentType": "application/vnd.microsoft.card.adaptive", "contentUrl": None,
                             "content": card}]}


class Notifier:
    def __init__(self, bb: Blackboard, policy: NotifyPolicy, *, log: EventLogger) -> None:
        self.bb = bb
        self.keys = bb.keys
        self.policy = policy
        self.log = log
        self._wake = asyncio.Event()
        self._slots = asyncio.Semaphore(MAX_IN_FLIGHT)
        self._deliveries: set[asyncio.Task[None]] = set()

    def wake(self) -> None:
        self._wake.set()

    async def run(self) -> None:
        if not self.policy.webhooks:
            return
        cursor = str(await self.bb.redis.get(self.keys.hitl_outbox_cursor) or "0-0")
        async with httpx.AsyncClient() as client:
            try:
                while True:
                    reply: Any = await self.bb.redis.xread({self.keys.hitl_outbox: cursor}, count=100, block=1000)
                    for _stream, entries in reply or []:
                        for entry_id, fields in entries:
                            cursor = str(entry_id)
                            self._dispatch(client, {str(k): str(v) for k, v in fields.items()})
                        # At most once per entry across restarts: the cursor moves as deliveries start.
                        await self.bb.redis.set(self.keys.hitl_outbox_cursor, cursor)
            finally:
                for task in list(self._deliveries):
                    task.cancel()
                await asyncio.gather(*self._deliveries, return_exceptions=True)

    def _dispatch(self, client: httpx.AsyncClient, fields: dict[str, str]) -> None:
        for hook in self.policy.webhooks:
            if fields.get("event") in hook.events:
                task = asyncio.ensure_future(self._deliver(client, hook, fields))
                self._deliveries.add(task)
                task.add_done_callback(self._deliveries.discard)

    async def _deliver(self, client: httpx.AsyncClient, hook: Webhook, fields: dict[str, str]) -> None:
        body = message(fields, self.bb.instance, hook.format)
        delay = BACKOFF_S
        async with self._slots:
            for attempt in range(hook.retries + 1):
                error = ""
                with contextlib.suppress(Exception):
                    try:
                        response = await client.post(hook.url, json=body, timeout=hook.timeout)
                        if response.status_code < 300:
                            self.log.info("webhook_delivered", url=hook.url, event=fields.get("event"),
                                          request_id=fields.get("request_id"), attempt=attempt + 1)
                            return
                        error = f"HTTP {response.status_code}"
                    except httpx.HTTPError as exc:
                        error = type(exc).__name__
                self.log.warning("webhook_failed", url=hook.url, attempt=attempt + 1, error=error or "error")
                await asyncio.sleep(delay)
                delay = min(delay * 2, BACKOFF_MAX_S)
        self.log.error("webhook_gave_up", url=hook.url, event=fields.get("event"), request_id=fields.get("request_id"))
