"""Run to this workflow's Terminal: one workflow carries on while the rest of the instance stays held.

``holt debug continue HOLD --to-terminal`` releases the named decision and every decision held in the same
workflow (same root goal), and marks the workflow: until an artefact of it with structural type Terminal
exists, the gate lets every decision of that workflow through (breakpoints, stepping and full control do not
hold it); every other workflow stays held. Once the Terminal exists the gate removes the mark (audited by the
orchestrator) and the workflow is held again like the others.

A mark is written by the operator's own act and counts only with their proof (as a release or a breakpoint,
holt_core/debug/proven.py): ``keys.proof(by, root, nonce)`` with act ``run_to_terminal`` and digest
``root:hold id``. An agent's Redis user that writes a mark without one is ignored and reported.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from pydantic import BaseModel, ValidationError
from redis.asyncio import Redis

from holt_core.hitl.proofs import Proof
from holt_core.keys import Keys
from holt_core.models import now_ms

RUN_ACT = "run_to_terminal"
ParentLookup = Callable[[str], Awaitable[str | None]]  # artefact id -> its first source (None: a root)


class RunMark(BaseModel):
    root: str  # the workflow's root goal artefact
    by: str  # the operator
    since_ms: int
    hold_id: str  # the held decision it was started from
    proof: str  # the nonce of the operator's proof

    def to_json(self) -> str:
        return self.model_dump_json()


def run_digest(mark: RunMark) -> str:
    return f"{mark.root}:{mark.hold_id}"


def run_proof_key(keys: Keys, mark: RunMark) -> str:
    return keys.proof(mark.by or "-", mark.root, mark.proof or "-")


def run_proof(keys: Keys, mark: RunMark, *, impersonated_by: str = "") -> tuple[str, str]:
    proof = Proof(act=RUN_ACT, subject=mark.root, operator=mark.by, at_ms=now_ms(), digest=run_digest(mark),
                  impersonated_by=impersonated_by)
    return run_proof_key(keys, mark), proof.to_json()


def proven(mark: RunMark, raw: str | None) -> bool:
    if not raw or not mark.by:
        return False
    try:
        proof = Proof.model_validate_json(raw)
    except (ValidationError, ValueError):
        return False
    return (proof.act, proof.subject, proof.operator, proof.digest) == (RUN_ACT, mark.root, mark.by,
                                                                         run_digest(mark))


class Runs(BaseModel):
    """The marks as stored (``raw`` for guarded writes) and the ones without a valid proof (taken out)."""

    marks: dict[str, RunMark] = {}
    raw: dict[str, str] = {}
    forged: list[str] = []


async def load_runs(redis: Redis, keys: Keys) -> Runs:
    roots = sorted(str(r) for r in await redis.smembers(keys.debug_runs))
    if not roots:
        return Runs()
    values = await redis.mget([keys.debug_run(r) for r in roots])
    out = Runs()
    candidates: dict[str, RunMark] = {}
    for root, raw in zip(roots, values, strict=True):
        if not raw:
            continue
        try:
            mark = RunMark.model_validate_json(str(raw))
        except ValidationError:
            out.forged.append(root)
            continue
        if mark.root != root:
            out.forged.append(root)
            continue
        candidates[root] = mark
        out.raw[root] = str(raw)
    if candidates:
        proofs = await redis.mget([run_proof_key(keys, m) for m in candidates.values()])
        for (root, mark), raw_proof in zip(candidates.items(), proofs, strict=True):
            if proven(mark, None if raw_proof is None else str(raw_proof)):
                out.marks[root] = mark
            else:
                out.forged.append(root)
    return out


WORKFLOW_LEVELS = 64  # how far a walk up first sources goes to find a workflow's root goal


async def workflow_root(get_parent: ParentLookup, artefact_id: str) -> str:
    """The root goal of an artefact's workflow: first sources walked up (bounded; an unreadable one ends it)."""
    current = artefact_id
    for _ in range(WORKFLOW_LEVELS):
        parent = await get_parent(current)
        if parent is None:
            break
        current = parent
    return current
