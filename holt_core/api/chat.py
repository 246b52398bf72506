"""Approve from chat: Slack's interactivity callback (``POST /chat/slack/actions``).

The request must carry Slack's signature over the raw body with the signing secret and a timestamp within five
minutes (else 401, and nothing changes). The Slack user is mapped to an operator by ``api.slack.users`` in
holt.yml; that operator must be registered and not revoked. Then the press is that operator's approve or reject,
on the same rules as everywhere else, and the outcome is posted back to the message's thread (response_url).
Unmapped users and refusals are on the audit trail.
"""

from __future__ import annotations

import contextlib
import os
import time
from typing import Any

import httpx
from fastapi import APIRouter, BackgroundTasks, HTTPException, Request, Response, status

from holt_core.api.context import ApiContext
from holt_core.api.slack import SlackAction, parse_action, reply, signature_problem
from holt_core.errors import HoltError
from holt_core.hitl.notify import APPROVE_ACTION
from holt_core.operators import get_operator
from holt_core.sanitise import sanitise_text

router = APIRouter()
SYSTEM_CHAT = "system:chat"
REPLY_TIMEOUT_S = 5.0
MAX_BODY = 64 * 1024


async def _post_reply(url: str, body: dict[str, Any]) -> None:
    if not url.startswith(("https://", "http://")):
        return
    with contextlib.suppress(httpx.HTTPError):
        async with httpx.AsyncClient(timeout=REPLY_TIMEOUT_S) as client:
            await client.post(url, json=body)


@router.post("/chat/slack/actions", tags=["chat"], status_code=200,
             responses={401: {"description": "not signed by Slack, or stale"}})
async def slack_actions(request: Request, background: BackgroundTasks) -> Response:
    """Slack's interactivity request URL: an Approve or Reject button was pressed."""
    ctx: ApiContext = request.app.state.ctx
    body = await request.body()
    if len(body) > MAX_BODY:
        raise HTTPException(status.HTTP_413_REQUEST_ENTITY_TOO_LARGE, "payload too large")
    secret = os.environ.get(ctx.settings.slack.signing_secret_env, "")
    problem = signature_problem(secret, request.headers.get("X-Slack-Request-Timestamp"),
                                request.headers.get("X-Slack-Signature"), body, time.time())
    if problem:
        raise HTTPException(status.HTTP_401_UNAUTHORIZED, problem)
    try:
        action = parse_action(body)
    except ValueError as exc:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_ENTITY, str(exc)) from None
    text = await _carry_out(ctx, action)
    background.add_task(_post_reply, action.response_url, reply(text, action.thread_ts))
    return Response(status_code=200)


async def _carry_out(ctx: ApiContext, action: SlackAction) -> str:
    """The press as the mapped operator's act; returns the line to answer in the thread."""
    verb = "approve" if action.action == APPROVE_ACTION else "reject"
    name = ctx.settings.slack.users.get(action.user_id)
    record = await get_operator(ctx.bb.redis, name) if name else None
    if name is None or record is None or record.revoked:
        why = ("is not mapped to a holt operator (api.slack.users in holt.yml)" if name is None
               else f"maps to operator {name}, who is not registered or was revoked")
        await ctx.bb.audit.append(operator=SYSTEM_CHAT, action="chat_refused", subject=action.request_id[:64],
                                  details={"platform": "slack", "slack_user": action.user_id[:64],
                                           "slack_name": action.user_name[:64], "wanted": verb, "reason": why})
        return sanitise_text(f"Refused: Slack user {action.user_id} {why}.")
    # Slack's signature vouches for the user and holt.yml maps the user to the operator: the API acts for that
    # operator with its own identity, and the record says so (impersonated_by).
    client = await ctx.client(impersonated_by=f"{SYSTEM_CHAT}:slack:{action.user_id[:32]}")
    try:
        if verb == "approve":
            req = await client.approve(action.request_id, operator=name)
        else:
            req = await client.reject(action.request_id, operator=name, reason=f"rejected in Slack by {name}")
    except HoltError as exc:  # refusals are already on the audit trail (RequestStore)
        return sanitise_text(f"{name} could not {verb} {action.request_id}: {exc.message}")
    return sanitise_text(f"{name}: {verb} recorded; request {req.id} is now {req.status.value}.")
