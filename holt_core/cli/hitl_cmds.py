"""``holt questions|answer|pending|approve|reject|status``: the people's side of human-in-the-loop.

``questions`` and ``pending`` list without the models when they can (``hitl.open_items``); the acts and
``status`` go through ``HitlClient``, which loads them when they run.
"""

from __future__ import annotations

import json
import sys
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Annotated, Any

import typer

from holt_core.cli.common import AsOpt, JsonOpt, NameOpt, open_blackboard, open_reads, run_async, warn_unreadable
from holt_core.cli.output import out, success
from holt_core.errors import HoltError, InvalidInput
from holt_core.hitl.kinds import RequestKind
from holt_core.hitl.open_items import OpenItemView, light_open_items
from holt_core.sanitise import sanitise_text

if TYPE_CHECKING:
    from holt_core.blackboard import Blackboard
    from holt_core.board_reads import BoardReads
    from holt_core.hitl.client import HitlClient, OpenItem
    from holt_core.hitl.models import HitlRequest
    from holt_core.hitl.policy import HitlPolicy

RequestIdOpt = Annotated[str, typer.Option("--request-id", help="Your id for this act: a retry with the same id "
                                                                 "returns the stored result instead of acting twice.")]


def register(app: typer.Typer) -> None:
    """Add this module's commands to the ``holt`` app."""
    app.command("questions")(questions)
    app.command("answer")(answer)
    app.command("pending")(pending)
    app.command("approve")(approve)
    app.command("reject")(reject)
    app.command("status")(status)


def _fallback_policy() -> HitlPolicy | None:
    """holt.yml of this workspace, for when no orchestrator has published its policy yet."""
    from holt_core.config import CONFIG_FILE, load_config  # yaml and the whole config model: only then
    from holt_core.instances import workspace_root

    try:
        return load_config(workspace_root() / CONFIG_FILE).hitl
    except HoltError:
        return None


async def _client(bb: Blackboard, *, impersonated_by: str = "") -> HitlClient:
    """A client with the policy the running orchestrator published; holt.yml is read only when there is none."""
    from holt_core.hitl.client import HitlClient  # with the request models: the acts, status, and odd listings

    published = bool(await bb.redis.exists(bb.keys.hitl_policy))
    return await HitlClient.connect(bb, None if published else _fallback_policy(), impersonated_by=impersonated_by)


def _when(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, UTC).strftime("%Y-%m-%dT%H:%M:%SZ") if ms else "-"


def _age(seconds: float) -> str:
    s = int(seconds)
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m{s % 60:02d}s"
    return f"{s // 3600}h{(s % 3600) // 60:02d}m"


QUESTIONS = (RequestKind.QUESTION,)
PENDING = (RequestKind.APPROVAL, RequestKind.POST_REVIEW)


async def _open_items(board: BoardReads, kinds: tuple[RequestKind, ...]) -> list[OpenItemView]:
    """The open items of ``kinds``: light when everything is plain, else through ``HitlClient`` and the models."""
    items = await light_open_items(board, kinds)
    if items is not None:
        return items
    from holt_core.blackboard import Blackboard

    bb = Blackboard(board.redis, board.instance)
    bb.unreadable, bb.on_unreadable = board.unreadable, warn_unreadable  # a record the light read named: once
    try:
        client = await _client(bb)
        return [_view(i) for i in await client.open_items(kinds=kinds)]
    finally:
        bb.release()


def _view(item: OpenItem) -> OpenItemView:
    return OpenItemView(**item.model_dump())


def _item_lines(item: OpenItemView) -> list[str]:
    if item.kind == RequestKind.QUESTION:
        head = f"{item.id}  question from {item.requester_role}  age {_age(item.age_s)}"
        if item.deadline_ms:
            head += f"  expires {_when(item.deadline_ms)}"
        lines = [head, f"  {item.text}"]
        if len(item.hops) > 1:
            lines.append(f"  route: {' -> '.join(item.hops)}")
        return lines
    if item.kind == RequestKind.POST_REVIEW:
        return [f"{item.id}  post-review  age {_age(item.age_s)}", f"  {item.text}"]
    head = (f"{item.id}  {item.risk} approval  {item.approvals}/{item.min_approvals} approvals  "
            f"age {_age(item.age_s)}")
    if item.deadline_ms:
        head += f"  expires {_when(item.deadline_ms)}"
    lines = [head, f"  action: {item.action}  target: {item.target}  requested by {item.requester_role}"
                   f" (claim {item.claim_id[:8]})"]
    if item.plan is not None:
        plan = item.plan if isinstance(item.plan, str) else json.dumps(item.plan, ensure_ascii=False)
        lines.append(f"  plan: {plan[:500]}")
    lines.append(f"  digest: sha256:{item.digest}")
    lines.append(f"  approvers: {', '.join(item.approver_roles) or '-'}"
                 + ("  (justification required)" if item.require_justification else ""))
    return lines


def _print_items(items: list[OpenItemView], as_json: bool, empty: str) -> None:
    if as_json:
        out(json.dumps([i.to_json() for i in items], ensure_ascii=True))
        return
    if not items:
        out(empty)
        return
    for item in items:
        for line in _item_lines(item):
            out(sanitise_text(line))  # all of it comes from agents (a plan's JSON keeps non-ASCII as it is)


def _request_json(req: HitlRequest) -> str:
    # ensure_ascii escapes control characters inside strings, so the JSON line is terminal-safe as it is.
    return json.dumps(req.model_dump(mode="json"), ensure_ascii=True)


def questions(
    name: NameOpt = None,
    wait: Annotated[bool, typer.Option("--wait", help="Block until a question exists, print it, exit 0.")] = False,
    timeout: Annotated[float | None, typer.Option("--timeout", help="With --wait: give up after this many "
                                                                    "seconds (exit 1).")] = None,
    as_json: JsonOpt = False,
) -> None:
    """List the open questions agents asked people (oldest first)."""
    run_async(_questions(name, wait, timeout, as_json))


async def _questions(name: str | None, wait: bool, within_s: float | None, as_json: bool) -> None:
    if not wait:
        async with open_reads(name, client_name="holt-questions") as board:
            _print_items(await _open_items(board, QUESTIONS), as_json, "No open questions.")
        return
    async with open_blackboard(name, client_name="holt-questions", light=True) as bb:
        client = await _client(bb)
        try:
            item = _view(await client.wait_for_question(within_s))
        except TimeoutError:
            raise HoltError(f"no question within {within_s:g} s") from None
        if as_json:
            out(json.dumps(item.to_json(), ensure_ascii=True))
        else:
            _print_items([item], False, "")
        sys.stdout.flush()


def answer(
    request_id: Annotated[str, typer.Argument(help="The question id (or a unique prefix of 6+ characters).")],
    text: Annotated[str, typer.Argument(help="Your answer.")],
    name: NameOpt = None,
    caller_request_id: RequestIdOpt = "",
    amend: Annotated[bool, typer.Option("--amend", help="Replace your answer (only before the agent read it).")]
    = False,
    operator: AsOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Answer a question: the asking agent runs again with the question and your answer in its context."""
    if not text.strip():
        raise InvalidInput("the answer is empty")
    req, _ = run_async(_act(name, operator, lambda c, op: c.answer(
        request_id, text, operator=op, request_id_key=caller_request_id, amend=amend)))
    if as_json:
        out(_request_json(req))
        return
    assert req.answer is not None
    success(f"{'amended' if amend else 'answered'} {req.id} as {req.answer.by} "
            f"(answer artefact {req.answer.artefact_id})")


async def _act(name: str | None, as_operator: str | None, fn: Any) -> tuple[HitlRequest, str]:
    """Run a human act as the authenticated operator (connected to Redis as that operator's user)."""
    from holt_core.embedded_redis import resolve_redis_url
    from holt_core.operators import authenticate  # acts only: reads need no token

    actor = await authenticate(resolve_redis_url(start=False), as_operator)
    async with open_blackboard(name, url=actor.url, client_name="holt-hitl") as bb:
        client = await _client(bb, impersonated_by=actor.impersonated_by)
        result: HitlRequest = await fn(client, actor.operator)
        return result, actor.operator


async def _read(name: str | None, fn: Any) -> HitlRequest:
    async with open_blackboard(name, client_name="holt-hitl", light=True) as bb:
        client = await _client(bb)
        result: HitlRequest = await fn(client)
        return result


def pending(name: NameOpt = None, as_json: JsonOpt = False) -> None:
    """List approval requests and post-review items waiting for people (oldest first)."""
    run_async(_pending(name, as_json))


async def _pending(name: str | None, as_json: bool) -> None:
    async with open_reads(name, client_name="holt-pending") as board:
        _print_items(await _open_items(board, PENDING), as_json, "Nothing pending.")


def approve(
    request_id: Annotated[str, typer.Argument(help="The request id (or a unique prefix of 6+ characters).")],
    name: NameOpt = None,
    justification: Annotated[str, typer.Option("--justification", "-j", help="Why (required for some levels).")]
    = "",
    bypass: Annotated[bool, typer.Option("--bypass", help="Break-glass approval (bypass role and justification "
                                                          "required); opens a post-review item.")] = False,
    digest: Annotated[str | None, typer.Option("--digest", help="Refuse unless the request still covers this "
                                                               "sha256 digest.")] = None,
    caller_request_id: RequestIdOpt = "",
    operator: AsOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Approve a gated action (or close a post-review item)."""
    clean_digest = digest.removeprefix("sha256:") if digest else None
    req, op = run_async(_act(name, operator, lambda c, op: c.approve(
        request_id, operator=op, justification=justification, request_id_key=caller_request_id, bypass=bypass,
        digest=clean_digest)))
    if as_json:
        out(_request_json(req))
        return
    if req.kind == RequestKind.POST_REVIEW:
        success(f"post-review {req.id} closed by {op}")
    elif req.status.value == "open":
        success(f"approval recorded for {req.id}: {len(req.distinct_approvers())}/{req.min_approvals}, "
                "waiting for more approvers")
    else:
        extra = f"; post-review item {req.post_review_id} opened" if req.post_review_id else ""
        success(f"{req.id} {req.status.value} by {op}{extra}")


def reject(
    request_id: Annotated[str, typer.Argument(help="The request id (or a unique prefix of 6+ characters).")],
    reason: Annotated[str, typer.Option("--reason", "-r", help="Why; passed back to the agent.")],
    name: NameOpt = None,
    justification: Annotated[str, typer.Option("--justification", "-j")] = "",
    caller_request_id: RequestIdOpt = "",
    operator: AsOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Reject a gated action; the reason goes back to the agent."""
    req, op = run_async(_act(name, operator, lambda c, op: c.reject(
        request_id, reason=reason, operator=op, justification=justification, request_id_key=caller_request_id)))
    if as_json:
        out(_request_json(req))
        return
    success(f"{req.id} {req.status.value} by {op}")


def status(
    request_id: Annotated[str, typer.Argument(help="The request id (or a unique prefix of 6+ characters).")],
    name: NameOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Everything about one request: its state, route, approvals and outcome."""
    req = run_async(_read(name, lambda c: c.status(request_id)))
    if as_json:
        out(_request_json(req))
        return
    lines = [f"{req.id}  {req.kind.value}  {req.status.value}", f"  created {_when(req.created_ms)} by "
             f"{req.role or '-'} on claim {req.claim_id or '-'} (workflow {req.workflow_id or '-'})"]
    if req.text:
        lines.append(f"  text: {req.text}")
    if req.kind == RequestKind.APPROVAL:
        lines.append(f"  risk {req.risk}; action {req.action}; target {req.target}; digest sha256:{req.digest}")
        lines.append(f"  approvals {len(req.distinct_approvers())}/{req.min_approvals}: "
                     + (", ".join(f"{a.operator} at {_when(a.at_ms)}" for a in req.approvals) or "none"))
    for hop in req.hops:
        lines.append(f"  hop: {hop.to} at {_when(hop.at_ms)} {hop.outcome} {hop.note}".rstrip())
    if req.deadline_ms:
        lines.append(f"  deadline {_when(req.deadline_ms)}; escalation level {req.escalation_level}")
    if req.answer is not None:
        flag = " (default answer, flagged)" if req.answer.flagged else ""
        lines.append(f"  answer by {req.answer.by} at {_when(req.answer.at_ms)}{flag}: {req.answer.text}")
    if req.decided_by:
        lines.append(f"  decided by {req.decided_by} at {_when(req.decided_ms)}"
                     + (f": {req.reason}" if req.reason else ""))
    if req.post_review_id:
        lines.append(f"  post-review item: {req.post_review_id}")
    for line in lines:
        out(sanitise_text(line))
