"""The rules: a claim's facts in, its next decision out. Pure: no Redis, no I/O, no clock but the one given.

``decide`` returns a ``Verdict`` (the ``Decision`` the gates judge, and the typed facts its effect needs) or
None while the claim waits for a fact (a bid, an output, a worker slot). The order of phases is review,
parallel, exclusive (protocol: the parallel phase is granted as ``claim``); a rejected review sends the
target back to its producer until ``max_review_iterations``; a producer no longer configured ends the claim
with a ``MissingAgentConfiguration`` Failure; no bid for any phase leaves the claim dormant.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from enum import StrEnum
from typing import Any

from holt_core.decisions import Decision, DecisionKind, decision_of
from holt_core.models import Artefact, BidType, Claim, ClaimStatus, Phase, is_approval

PHASE_ORDER = (Phase.REVIEW, Phase.PARALLEL, Phase.EXCLUSIVE)
# The grant type agents see (protocol 2.3: the parallel phase is granted as "claim").
GRANT_TYPE = {Phase.REVIEW: "review", Phase.PARALLEL: "claim", Phase.EXCLUSIVE: "exclusive"}
GRANT_KIND = {
    Phase.REVIEW: DecisionKind.GRANT_REVIEW,
    Phase.PARALLEL: DecisionKind.GRANT_PARALLEL,
    Phase.EXCLUSIVE: DecisionKind.GRANT_EXCLUSIVE,
}


class Ending(StrEnum):
    """How a rejected review ends the claim."""

    FEEDBACK = "feedback"  # a feedback claim sends the target back to its producer
    MAX_ITERATIONS = "max_iterations"  # Failure MaxIterationsExceeded
    MISSING_AGENT = "missing_agent"  # Failure MissingAgentConfiguration


@dataclass(frozen=True)
class RulesConfig:
    agents: tuple[str, ...]  # configured roles, in holt.yml order
    bid_timeout_s: float
    max_review_iterations: int
    worker_roles: frozenset[str] = frozenset()  # roles run as controller workers (slots apply)
    worker_limits: Mapping[str, int] = field(default_factory=dict)


@dataclass(frozen=True)
class ClaimFacts:
    claim: Claim
    target: Artefact
    created_ms: int
    note: str = ""
    bids: Mapping[str, str] = field(default_factory=dict)
    outputs: Mapping[str, Artefact] = field(default_factory=dict)
    failures: Mapping[str, Artefact] = field(default_factory=dict)
    rework: Artefact | None = None
    busy_workers: Mapping[str, int] = field(default_factory=dict)  # role -> worker slots in use


@dataclass(frozen=True)
class Verdict:
    decision: Decision
    phase: Phase | None = None
    granted: tuple[str, ...] = ()
    all_bids: Mapping[str, str] = field(default_factory=dict)
    timed_out: tuple[str, ...] = ()
    invalid_bids: Mapping[str, str] = field(default_factory=dict)  # to log: agent -> what it sent
    reason: str = ""  # terminate / dormant
    approvals: tuple[str, ...] = ()  # reviewers whose approval goes out with this decision
    reviews: tuple[Artefact, ...] = ()  # the rejecting reviews (START_FEEDBACK)
    ending: Ending | None = None
    failure_kind: str = ""
    failure_message: str = ""

    @property
    def kind(self) -> DecisionKind:
        return self.decision.kind


def first_phase(all_bids: Mapping[str, str], after: Phase | None) -> Phase | None:
    start = 0 if after is None else PHASE_ORDER.index(after) + 1
    for phase in PHASE_ORDER[start:]:
        if any(b == GRANT_TYPE[phase] for b in all_bids.values()):
            return phase
    return None


def decide(f: ClaimFacts, cfg: RulesConfig, now_ms: int) -> Verdict | None:
    claim = f.claim
    if not claim.status.is_open:
        return None
    if claim.status == ClaimStatus.PENDING_ASSIGNMENT:
        role = claim.granted_exclusive_agent
        if f.rework is not None:
            return complete(f, f"rework {f.rework.id} received from {role}")
        if role in f.failures:
            return terminate(f, f"Agent '{role}' failed: {f.failures[role].type} {f.failures[role].id}")
        return None
    if claim.grant_queue is not None:
        return None  # waits in a controller's grant queue
    ps = claim.phase_state
    if ps is None:
        return _consensus(f, cfg, now_ms)
    failed = [r for r in ps.granted_agents if r in f.failures and r not in f.outputs]
    if failed:
        role = failed[0]
        return terminate(f, f"Agent '{role}' failed: {f.failures[role].type} {f.failures[role].id}")
    received = [r for r in ps.granted_agents if r in f.outputs]
    if ps.current == Phase.EXCLUSIVE:
        return complete(f, f"exclusive output received from {received[0]}") if received else None
    if len(received) < len(ps.granted_agents):
        return None
    approvals: tuple[str, ...] = ()
    if ps.current == Phase.REVIEW:
        feedback = [a for r, a in sorted(f.outputs.items()) if r in ps.granted_agents and not is_approval(a.payload)]
        if feedback:
            return _feedback(f, cfg, feedback)
        approvals = tuple(ps.granted_agents)  # every review approved: announced with the transition
    phase = first_phase(ps.all_bids, after=ps.current)
    if phase is None:
        return dormant(f, f"no_grants_remaining_after_{ps.current.value}", ps.all_bids, (), approvals)
    return _grant(f, cfg, phase, ps.all_bids, (), {}, approvals)


def complete(f: ClaimFacts, summary: str) -> Verdict:
    return Verdict(decision_of(DecisionKind.COMPLETE, f.claim, f.target, summary))


def terminate(f: ClaimFacts, reason: str) -> Verdict:
    return Verdict(decision_of(DecisionKind.TERMINATE, f.claim, f.target, f"terminate: {reason}", reason=reason),
                   reason=reason)


def dormant(f: ClaimFacts, reason: str, all_bids: Mapping[str, str], timed_out: tuple[str, ...],
            approvals: tuple[str, ...] = ()) -> Verdict:
    decision = decision_of(DecisionKind.DORMANT, f.claim, f.target, f"no agent wants the next phase ({reason})",
                           reason=reason, timed_out=list(timed_out))
    return Verdict(decision, all_bids=all_bids, timed_out=timed_out, reason=reason, approvals=approvals)


def _consensus(f: ClaimFacts, cfg: RulesConfig, now_ms: int) -> Verdict | None:
    if f.note.startswith("dormant") or not cfg.agents:
        return None
    missing = tuple(a for a in cfg.agents if a not in f.bids)
    deadline_ms = f.created_ms + int(cfg.bid_timeout_s * 1000)
    if missing and now_ms < deadline_ms:
        return None
    all_bids = {a: BidType.sanitise(f.bids.get(a, "ignore")).value for a in cfg.agents}
    invalid = {a: f.bids[a] for a in cfg.agents if a in f.bids and all_bids[a] != f.bids[a]}
    phase = first_phase(all_bids, after=None)
    if phase is None:
        verdict = dormant(f, "no_bids_in_any_phase", all_bids, missing)
        return replace(verdict, invalid_bids=invalid)
    return _grant(f, cfg, phase, all_bids, missing, invalid, ())


def _grant(f: ClaimFacts, cfg: RulesConfig, phase: Phase, all_bids: Mapping[str, str], timed_out: tuple[str, ...],
           invalid: Mapping[str, str], approvals: tuple[str, ...]) -> Verdict:
    wanted = GRANT_TYPE[phase]
    bidders = tuple(sorted(a for a, b in all_bids.items() if b == wanted))
    granted = bidders[:1] if phase == Phase.EXCLUSIVE else bidders
    common: dict[str, Any] = {"phase": phase, "granted": granted, "all_bids": dict(all_bids),
                              "timed_out": timed_out, "invalid_bids": invalid, "approvals": approvals}
    if phase == Phase.EXCLUSIVE and granted[0] in cfg.worker_roles:
        winner = granted[0]
        limit = cfg.worker_limits.get(winner, 1)
        if f.busy_workers.get(winner, 0) >= limit:
            decision = decision_of(DecisionKind.QUEUE_GRANT, f.claim, f.target,
                                   f"queue for {winner}: {limit} worker(s) busy", granted, limit=limit)
            return Verdict(decision, **common)
    summary = f"grant {phase.value} to {', '.join(granted)}"
    if timed_out:
        summary += f" (no bid from {', '.join(timed_out)} within the bid timeout: counted as ignore)"
    decision = decision_of(GRANT_KIND[phase], f.claim, f.target, summary, granted, bids=dict(all_bids),
                           timed_out=list(timed_out))
    return Verdict(decision, **common)


def _feedback(f: ClaimFacts, cfg: RulesConfig, feedback: list[Artefact]) -> Verdict:
    target = f.target
    iteration = target.version - 1
    limit = cfg.max_review_iterations
    producer = target.produced_by_role
    review_ids = [a.id for a in feedback]
    decision = decision_of(
        DecisionKind.START_FEEDBACK, f.claim, target,
        f"review rejected by {', '.join(a.produced_by_role for a in feedback)}: send feedback to {producer}",
        (producer,), reviews=review_ids, iteration=iteration,
    )
    ps = f.claim.phase_state
    approvals = tuple(r for r, a in sorted(f.outputs.items())
                      if ps is not None and r in ps.granted_agents and is_approval(a.payload))
    reason = f"Terminated due to negative review feedback. See artefacts: {go_slice(review_ids)}"
    common: dict[str, Any] = {"reviews": tuple(feedback), "approvals": approvals}
    if limit > 0 and iteration >= limit:
        return Verdict(decision, ending=Ending.MAX_ITERATIONS, failure_kind="MaxIterationsExceeded",
                       failure_message=f"Max review iterations ({limit}) reached for artefact {target.id} "
                                       f"(version {target.version}). Review feedback loop terminated.",
                       reason=f"Terminated after reaching max review iterations ({limit}).", **common)
    if producer not in cfg.agents:
        return Verdict(decision, ending=Ending.MISSING_AGENT, failure_kind="MissingAgentConfiguration",
                       failure_message=f"Cannot create feedback claim: agent with role '{producer}' no longer "
                                       "exists in configuration.",
                       reason=f"Terminated due to missing agent configuration (role: {producer}).", **common)
    return Verdict(decision, ending=Ending.FEEDBACK, reason=reason, **common)


def go_slice(items: list[str]) -> str:
    """Go's ``%v`` of a string slice: ``[a b c]``."""
    return "[" + " ".join(items) + "]"
