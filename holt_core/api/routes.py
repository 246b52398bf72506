"""The approvals API's routes: what waits for people, and deciding it, as the operator the token belongs to.

Every act goes through ``HitlClient`` (so through ``RequestStore``): the same roles, separation of duties,
digest binding and idempotency as ``holt approve``. HTTP only maps outcomes to status codes:
401 no or bad token, 403 the rules refuse this person, 404 unknown id, 409 the request is no longer open
(someone else decided first) or its payload changed, 422 a bad body.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Header, HTTPException, Request, status
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import BaseModel, Field

from holt_core.api.context import ApiContext
from holt_core.errors import HoltError, InvalidInput, NotFound
from holt_core.hitl.client import HitlClient, OpenItem
from holt_core.hitl.models import HitlRequest
from holt_core.hitl.requests import Refused
from holt_core.models import now_ms
from holt_core.operators import OperatorRecord, verify_token
from holt_core.sanitise import sanitise_text

router = APIRouter()
bearer = HTTPBearer(auto_error=False, description="An operator token from `holt operator add NAME --roles ...`")


class RequestView(OpenItem):
    """A request as people see it (text sanitised), with where it stands."""

    status: str
    decided_by: str = ""
    reason: str = ""

    @classmethod
    def of_request(cls, req: HitlRequest) -> RequestView:
        item = OpenItem.of(req, now_ms())
        return cls(**item.model_dump(), status=req.status.value, decided_by=sanitise_text(req.decided_by),
                   reason=sanitise_text(req.reason))


class ApproveBody(BaseModel):
    justification: str = Field(default="", max_length=4000)
    # The payload digest the person reviewed (holt status shows it); a changed payload is then refused (409).
    digest: str | None = Field(default=None, max_length=128)


class RejectBody(BaseModel):
    reason: str = Field(min_length=1, max_length=4000)
    justification: str = Field(default="", max_length=4000)


class AnswerBody(BaseModel):
    text: str = Field(min_length=1, max_length=100_000)
    amend: bool = False


class Problem(BaseModel):
    detail: str
    hint: str | None = None


IdempotencyKey = Annotated[str, Header(alias="Idempotency-Key", max_length=200,
                                       description="Retry-safe: the same key returns the first outcome")]


def context(request: Request) -> ApiContext:
    ctx: ApiContext = request.app.state.ctx
    return ctx


@dataclass(frozen=True)
class Caller:
    """The authenticated operator and the token that proves it (to Redis too: acts connect as its user)."""

    record: OperatorRecord
    token: str

    @property
    def name(self) -> str:
        return self.record.name


async def operator(request: Request,
                   credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)]) -> Caller:
    """The operator whose token this is (401 otherwise)."""
    token = credentials.credentials if credentials is not None else ""
    found = await verify_token(context(request).bb.redis, token) if token else None
    if found is None:
        raise HTTPException(status.HTTP_401_UNAUTHORIZED, "missing, unknown or revoked operator token",
                            headers={"WWW-Authenticate": "Bearer"})
    return Caller(found, token)


Ctx = Annotated[ApiContext, Depends(context)]
Operator = Annotated[Caller, Depends(operator)]
ERRORS: dict[int | str, dict[str, Any]] = {code: {"model": Problem} for code in (401, 403, 404, 409, 422)}


async def act(ctx: ApiContext, who: Caller, request_id: str, work: Callable[[HitlClient], Awaitable[HitlRequest]],
              digest: str | None = None) -> RequestView:
    """Run one human act as ``who`` (connected to Redis as that operator) and map the outcome to HTTP."""
    async with ctx.as_operator(who.name, who.token) as client:
        return await _mapped(client, request_id, work, digest)


async def _mapped(client: HitlClient, request_id: str, work: Callable[[HitlClient], Awaitable[HitlRequest]],
                  digest: str | None) -> RequestView:
    try:
        return RequestView.of_request(await work(client))
    except NotFound as exc:
        raise HTTPException(status.HTTP_404_NOT_FOUND, exc.message) from None
    except Refused as exc:
        code = await _refusal_status(client, request_id, digest)
        raise HTTPException(code, {"detail": exc.message, "hint": exc.hint}) from None
    except InvalidInput as exc:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_ENTITY, {"detail": exc.message, "hint": exc.hint}) from None
    except HoltError as exc:
        raise HTTPException(status.HTTP_409_CONFLICT, {"detail": exc.message, "hint": exc.hint}) from None


async def _refusal_status(client: HitlClient, request_id: str, digest: str | None) -> int:
    """409 when the request is no longer what the person acted on (decided by someone else, payload changed);
    403 when the rules refuse this person."""
    try:
        req = await client.status(request_id)
    except HoltError:
        return status.HTTP_404_NOT_FOUND
    if not req.is_open or (digest is not None and digest != req.digest):
        return status.HTTP_409_CONFLICT
    return status.HTTP_403_FORBIDDEN


@router.get("/requests", response_model=list[RequestView], responses=ERRORS, tags=["requests"])
async def list_requests(ctx: Ctx, who: Operator,
                        state: Literal["pending", "open", "questions"] = "pending") -> list[RequestView]:
    """What waits for people: ``pending`` approvals and post-reviews, ``questions``, or everything ``open``."""
    client = await ctx.client()
    items = {"pending": client.pending, "questions": client.questions, "open": client.open_items}[state]
    found = await items()
    requests = await client.store.get_many([item.id for item in found])
    return [RequestView.of_request(req) for req in requests]


@router.get("/requests/{request_id}", response_model=RequestView, responses=ERRORS, tags=["requests"])
async def get_request(request_id: str, ctx: Ctx, who: Operator) -> RequestView:
    """One request (approval, post-review or question), open or decided."""
    client = await ctx.client()
    try:
        return RequestView.of_request(await client.status(request_id))
    except NotFound as exc:
        raise HTTPException(status.HTTP_404_NOT_FOUND, exc.message) from None
    except InvalidInput as exc:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_ENTITY, exc.message) from None


@router.post("/requests/{request_id}/approve", response_model=RequestView, responses=ERRORS, tags=["requests"])
async def approve(request_id: str, body: ApproveBody, ctx: Ctx, who: Operator,
                  idempotency_key: IdempotencyKey = "") -> RequestView:
    """Approve as the token's operator (counts once towards M-of-N)."""
    return await act(ctx, who, request_id, lambda c: c.approve(
        request_id, operator=who.name, justification=body.justification, request_id_key=idempotency_key,
        digest=body.digest), digest=body.digest)


@router.post("/requests/{request_id}/reject", response_model=RequestView, responses=ERRORS, tags=["requests"])
async def reject(request_id: str, body: RejectBody, ctx: Ctx, who: Operator,
                 idempotency_key: IdempotencyKey = "") -> RequestView:
    """Reject as the token's operator; the reason goes to the agent and the audit trail."""
    return await act(ctx, who, request_id, lambda c: c.reject(
        request_id, reason=body.reason, operator=who.name, justification=body.justification,
        request_id_key=idempotency_key))


@router.post("/questions/{request_id}/answer", response_model=RequestView, responses=ERRORS, tags=["questions"])
async def answer(request_id: str, body: AnswerBody, ctx: Ctx, who: Operator,
                 idempotency_key: IdempotencyKey = "") -> RequestView:
    """Answer an agent's question (``amend`` replaces an answer the agent has not read yet)."""
    return await act(ctx, who, request_id, lambda c: c.answer(
        request_id, body.text, operator=who.name, request_id_key=idempotency_key, amend=body.amend))


@router.get("/health", tags=["meta"])
async def health(ctx: Ctx) -> dict[str, Any]:
    return {"instance": ctx.bb.instance, "time": time.time()}
