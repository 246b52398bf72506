"""Which debug acts count: a release (step/continue) and a breakpoint only when their operator's proof exists.

An agent's Redis user may write the debug keys (``holt:*``): it could mark a held decision released, or add a
breakpoint, naming a person. The client writes, in the same atomic write as the act, a proof under the operator's
own prefix (only that operator's Redis user, or admin, may write there; holt_core/hitl/proofs.py):

- releasing a hold: ``keys.proof(operator, <held subject>, <nonce>)`` with act ``release`` and digest
  ``<hold id>:<step|continue>``; the held record carries the nonce (``HeldDecision.release_proof``);
- adding a breakpoint: ``keys.proof(operator, <breakpoint id>, "breakpoint")`` with act ``breakpoint``;
- injecting a review (a Review artefact by ``human:<operator>``): ``keys.proof(operator, <review id>, "review")``
  with act ``review`` and the digest of its target and payload (holt_core/debug/inject.py); the engine acts on
  a human review only with it.

``honour_debug`` is the pure rule the orchestrator's gate applies to what it loaded: an unproven release counts
as still held, an unproven breakpoint does not exist; ``problems`` says what was taken out (reported once).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field

from pydantic import ValidationError
from redis.asyncio import Redis

from holt_core.debug.breakpoints import Breakpoint
from holt_core.debug.held import HeldDecision
from holt_core.debug.store import DebugState, load_state
from holt_core.hitl.proofs import Proof
from holt_core.identity import operator_of_role
from holt_core.keys import Keys
from holt_core.models import Artefact, now_ms

RELEASE_ACT = "release"
BREAKPOINT_ACT = "breakpoint"
_BREAKPOINT_NONCE = "breakpoint"


def release_digest(held: HeldDecision) -> str:
    return f"{held.hold_id}:{held.release or ''}"


def release_key(keys: Keys, held: HeldDecision) -> str:
    # A missing operator or nonce gives a key nobody can have written ("-" is not an operator's name).
    return keys.proof(held.released_by or "-", held.subject, held.release_proof or "-")


def release_proof(keys: Keys, held: HeldDecision, *, impersonated_by: str = "") -> tuple[str, str]:
    """(key, value) of the proof that ``held.released_by`` released ``held`` (already carrying its release)."""
    proof = Proof(act=RELEASE_ACT, subject=held.subject, operator=held.released_by or "", at_ms=now_ms(),
                  digest=release_digest(held), impersonated_by=impersonated_by)
    return release_key(keys, held), proof.to_json()


def breakpoint_key(keys: Keys, bp: Breakpoint) -> str:
    return keys.proof(bp.created_by or "-", bp.id, _BREAKPOINT_NONCE)


def breakpoint_proof(keys: Keys, bp: Breakpoint, *, impersonated_by: str = "") -> tuple[str, str]:
    proof = Proof(act=BREAKPOINT_ACT, subject=bp.id, operator=bp.created_by or "", at_ms=now_ms(),
                  impersonated_by=impersonated_by)
    return breakpoint_key(keys, bp), proof.to_json()


def claimed_debug_proofs(keys: Keys, state: DebugState) -> list[str]:
    """Every proof key the loaded state relies on (what to fetch before calling ``honour_debug``)."""
    return ([release_key(keys, h) for h in state.held.values() if h.release is not None]
            + [breakpoint_key(keys, bp) for bp in state.breakpoints.values()])


def _valid(raw: str | None, act: str, subject: str, operator: str | None, digest: str = "") -> bool:
    if not raw or not operator:
        return False
    try:
        proof = Proof.model_validate_json(raw)
    except (ValidationError, ValueError):
        return False
    return proof.act == act and proof.subject == subject and proof.operator == operator and proof.digest == digest


@dataclass(frozen=True)
class Forged:
    subject: str  # the held subject or the breakpoint id
    fingerprint: str  # what was forged, to report each forgery once
    problem: str


@dataclass
class HonouredDebug:
    state: DebugState
    forged: list[Forged] = field(default_factory=list)


def honour_debug(keys: Keys, state: DebugState, values: dict[str, str | None]) -> HonouredDebug:
    """``state`` as it counts (changed in place): releases and breakpoints without a valid proof (``values``:
    proof key -> stored value) are taken out."""
    forged: list[Forged] = []
    for subject, held in list(state.held.items()):
        if held.release is None:
            continue
        if not _valid(values.get(release_key(keys, held)), RELEASE_ACT, held.subject, held.released_by,
                      release_digest(held)):
            forged.append(Forged(subject, f"release:{held.hold_id}:{held.release}:{held.release_proof}",
                                 f"{held.release} of hold {held.hold_id} by {held.released_by or 'nobody'} "
                                 "has no proof"))
            state.held[subject] = held.model_copy(update={"release": None, "released_by": None,
                                                          "released_at_ms": None, "release_proof": ""})
    for bp_id, bp in list(state.breakpoints.items()):
        if not _valid(values.get(breakpoint_key(keys, bp)), BREAKPOINT_ACT, bp.id, bp.created_by):
            forged.append(Forged(bp_id, f"breakpoint:{bp_id}:{bp.created_by}",
                                 f"breakpoint {bp_id} by {bp.created_by or 'nobody'} has no proof"))
            del state.breakpoints[bp_id]
    return HonouredDebug(state, forged)


# ------------------------------------------------------------------ injected reviews

REVIEW_ACT = "review"
_REVIEW_NONCE = "review"


def review_digest(review: Artefact) -> str:
    """What the person reviewed and said: the target and the payload (a rewritten review does not match)."""
    target = review.source_artefacts[0] if review.source_artefacts else ""
    return hashlib.sha256(f"{target}\n{review.payload}".encode()).hexdigest()


def review_key(keys: Keys, review: Artefact) -> str:
    return keys.proof(operator_of_role(review.produced_by_role) or "-", review.id, _REVIEW_NONCE)


def review_proof(keys: Keys, review: Artefact, *, impersonated_by: str = "") -> tuple[str, str]:
    """(key, value) of the proof that the person named in ``review.produced_by_role`` wrote this review."""
    proof = Proof(act=REVIEW_ACT, subject=review.id, operator=operator_of_role(review.produced_by_role) or "",
                  at_ms=now_ms(), digest=review_digest(review), impersonated_by=impersonated_by)
    return review_key(keys, review), proof.to_json()


def review_problem(keys: Keys, review: Artefact, raw: str | None) -> str | None:
    """None when ``raw`` (the value at ``review_key``) proves the review, else what is wrong."""
    if _valid(raw, REVIEW_ACT, review.id, operator_of_role(review.produced_by_role), review_digest(review)):
        return None
    return f"review {review.id} by {review.produced_by_role} has no proof"


async def load_honoured(redis: Redis, keys: Keys) -> HonouredDebug:
    """The debug state as it counts (``honour_debug``), for the orchestrator and every client: a person can act
    on a hold whose release was forged, and nobody sees a forged breakpoint as one."""
    state = await load_state(redis, keys)
    wanted = claimed_debug_proofs(keys, state)
    raw = await redis.mget(wanted) if wanted else []
    values = {k: None if v is None else str(v) for k, v in zip(wanted, raw, strict=True)}
    return honour_debug(keys, state, values)
