"""Webhook notifications (Slack/Teams-compatible JSON) for new requests, escalations, expiries, decisions.

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


def message(fields: dict[str, str], instance: str) -> dict[str, Any]:
    """Slack and Teams incoming webhooks both show ``text``; the rest is for programs."""
    text = sanitise_text(fields.get("text", ""))[:2000]
    return {
        "text": f"[holt {instance}] {fields.get('event', '')}: {text} (request {fields.get('request_id', '')})",
        "holt": {"instance": instance, **{k: v for k, v in fields.items() if k != "text"}, "text": text},
    }


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
        body = message(fields, self.bb.instance)
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
