"""Text for ``watch`` (protocol 7.5), and re-exported, ``hoard``'s (7.4, in ``render_hoard``, which needs no models):
pure functions, no I/O, clock and zone passed in.

Every string that came from Redis goes through ``sanitise_text`` before it is part of a human-readable
line, so a payload cannot drive the terminal. JSON output is escaped by the encoder; on top of that DEL,
C1 controls and bidi overrides (which JSON leaves raw) are written as ``\\uXXXX``.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import tzinfo
from typing import Any

from holt_core.artefact_filter import ArtefactFilter
from holt_core.keys import Keys
from holt_core.models import (
    Artefact,
    Claim,
    ClaimStatus,
    StructuralType,
    WorkflowEvent,
    feedback_excerpt,
    is_approval,
)
from holt_core.render_hoard import OutputFormat as OutputFormat
from holt_core.render_hoard import (  # the hoard part lives there (no models); re-exported for watch's users
    artefact_pretty_json as artefact_pretty_json,
)
from holt_core.render_hoard import clock as clock
from holt_core.render_hoard import format_age as format_age
from holt_core.render_hoard import hoard_jsonl as hoard_jsonl
from holt_core.render_hoard import hoard_row as hoard_row
from holt_core.render_hoard import hoard_table as hoard_table
from holt_core.render_hoard import json_text as json_text
from holt_core.render_hoard import payload_preview as payload_preview
from holt_core.render_hoard import rfc3339_utc as rfc3339_utc
from holt_core.render_hoard import short_age as short_age
from holt_core.render_hoard import short_type as short_type
from holt_core.sanitise import sanitise_text

# ---------------------------------------------------------------------------------------------
# JSON


# ---------------------------------------------------------------------------------------------
# watch (protocol 7.5)


@dataclass(frozen=True)
class ArtefactItem:
    artefact: Artefact
    ts_ms: int


@dataclass(frozen=True)
class ClaimItem:
    claim: Claim
    ts_ms: int


@dataclass(frozen=True)
class WorkflowItem:
    event: WorkflowEvent
    ts_ms: int


WatchItem = ArtefactItem | ClaimItem | WorkflowItem
DedupeKey = tuple[str, ...]


def _field(data: dict[str, Any], name: str) -> str:
    """A workflow-event field for display: numbers as Go prints them, missing as ``?``, always sanitised."""
    value = data.get(name)
    if value is None:
        return "?"
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
    return sanitise_text(text)


def _image_suffix(image_id: str) -> str:
    if not image_id:
        return ""
    digest = image_id.split("sha256:", 1)[1] if "sha256:" in image_id else image_id
    return "@" + sanitise_text(digest[:12])


def _workflow_line(event: WorkflowEvent, t: str) -> str:
    d = event.data
    match event.event:
        case "bid_submitted":
            who = f"agent={_field(d, 'agent_name')}, claim={_field(d, 'claim_id')}, type={_field(d, 'bid_type')}"
            return f"[{t}] 🙋 Bid submitted: {who}"
        case "claim_granted":
            image = d.get("agent_image_id")
            agent = _field(d, "agent_name") + (_image_suffix(image) if isinstance(image, str) else "")
            return (
                f"[{t}] 🏆 Claim granted: agent={agent}, claim={_field(d, 'claim_id')}, type={_field(d, 'grant_type')}"
            )
        case "review_approved":
            by, target = _field(d, "reviewer_role"), _field(d, "original_artefact_id")
            return f"[{t}] ✅ Review Approved: by={by} for artefact {target}"
        case "review_rejected":
            by, target = _field(d, "reviewer_role"), _field(d, "original_artefact_id")
            return f"[{t}] ❌ Review Rejected: by={by} for artefact {target}"
        case "feedback_claim_created":
            to, claim, n = _field(d, "target_agent_role"), _field(d, "feedback_claim_id"), _field(d, "iteration")
            return f"[{t}] 🔄 Rework Assigned: to={to} for claim {claim} (iteration {n})"
        case "artefact_reworked":
            what = f"by={_field(d, 'produced_by_role')}, type={_field(d, 'artefact_type')}"
            return (
                f"[{t}] 🔄 Artefact Reworked (v{_field(d, 'new_version')}): {what}, id={_field(d, 'new_artefact_id')}"
            )
        case "claim_completed":
            return f"[{t}] ☑️  Claim completed: claim={_field(d, 'claim_id')}, artefact={_field(d, 'artefact_id')}"
        case "claim_terminated":
            why = _field(d, "reason")
            return f"[{t}] ⛔ Claim terminated: claim={_field(d, 'claim_id')}, reason={why}"
        case "claim_dormant":
            return f"[{t}] 💤 Claim dormant: claim={_field(d, 'claim_id')} ({_field(d, 'reason')})"
        case other:
            return f"[{t}] ❓ Unknown event: {sanitise_text(other)}"


def _envelope(event: str, data: Any, ts_ms: int) -> str:
    # Keys in Go's order for a map: sorted.
    return json_text({"data": data, "event": event, "timestamp": rfc3339_utc(ts_ms)})


def watch_lines(item: WatchItem, *, output: OutputFormat, tz: tzinfo, now_ms: int) -> list[str]:
    """The lines (without newlines) ``watch`` prints for one item; items without a time show ``now_ms``."""
    ts = item.ts_ms or now_ms
    if isinstance(item, ArtefactItem):
        a = item.artefact
        if output == "jsonl":
            lines = [_envelope("artefact_created", a.to_event(), ts)]
            if a.structural_type is StructuralType.TERMINAL:
                done = {"artefact_id": a.id, "artefact_type": a.type, "produced_by": a.produced_by_role}
                lines.append(_envelope("workflow_completed", done, ts))
            return lines
        t = clock(ts, tz)
        kind = sanitise_text(a.type)
        lines = []
        # Reviews and new versions are announced by review_* and artefact_reworked events instead.
        if a.structural_type is not StructuralType.REVIEW and a.version <= 1:
            lines.append(f"[{t}] ✨ Artefact created: by={sanitise_text(a.produced_by_role)}, type={kind}, id={a.id}")
        if a.structural_type is StructuralType.TERMINAL:
            lines.append(f"[{t}] 🎉 Workflow completed: Terminal artefact created (type={kind}, id={a.id})")
        return lines
    if isinstance(item, ClaimItem):
        c = item.claim
        if output == "jsonl":
            return [_envelope("claim_created", c.to_event(), ts)]
        return [f"[{clock(ts, tz)}] ⏳ Claim created: claim={c.id}, artefact={c.artefact_id}, status={c.status.value}"]
    if output == "jsonl":
        return [_envelope(item.event.event, dict(sorted(item.event.data.items())), ts)]
    return [_workflow_line(item.event, clock(ts, tz))]


def dedupe_key(item: WatchItem) -> DedupeKey | None:
    """Identity of what an item reports, so history and live stream never print the same thing twice."""
    if isinstance(item, ArtefactItem):
        return ("artefact", item.artefact.id)
    if isinstance(item, ClaimItem):
        return ("claim", item.claim.id)
    d, name = item.event.data, item.event.event
    fields = {
        "bid_submitted": ("claim_id", "agent_name"),
        "claim_granted": ("claim_id", "agent_name"),
        "review_approved": ("original_artefact_id", "reviewer_role"),
        "review_rejected": ("original_artefact_id", "reviewer_role"),
        "artefact_reworked": ("new_artefact_id",),
    }.get(name)
    if fields is None:
        return None
    return (name, *(str(d.get(f, "")) for f in fields))


def _workflow(event: str, ts_ms: int, **data: Any) -> WorkflowItem:
    return WorkflowItem(WorkflowEvent(event=event, data=data), ts_ms)


def history_items(
    artefacts: Sequence[Artefact],
    claims: Sequence[Claim],
    filt: ArtefactFilter,
    *,
    created_from_ms: int | None = None,
) -> list[WatchItem]:
    """What ``watch`` shows before streaming, rebuilt from stored data only, oldest first.

    For each artefact passing the filter (and, with ``created_from_ms``, created at or after it, which
    leaves out artefacts without a timestamp): its
    ``artefact_created``, ``artefact_reworked`` 1 ms earlier for versions > 1, every claim on it (terminated
    first, then by id) with the bids recorded in its phase state (+1 ms each) and its grants (+100 ms
    onward), and one review decision per Review that names it as a source (decided by the 3.3 rule, the
    one the orchestrator applies). Feedback-loop events are not reconstructed.
    """
    by_target: dict[str, list[Claim]] = {}
    for claim in claims:
        by_target.setdefault(claim.artefact_id, []).append(claim)
    reviews_of: dict[str, list[Artefact]] = {}
    for art in artefacts:
        if art.structural_type is StructuralType.REVIEW:
            for source in art.source_artefacts:
                reviews_of.setdefault(source, []).append(art)

    items: list[WatchItem] = []
    for art in artefacts:
        if not filt.matches(art, keep_zero_time=True):
            continue
        if created_from_ms is not None and art.created_at_ms < created_from_ms:
            continue
        ts = art.created_at_ms
        if art.version > 1:
            previous = art.source_artefacts[0] if art.source_artefacts else ""
            items.append(
                _workflow(
                    "artefact_reworked",
                    max(ts - 1, 0),
                    new_artefact_id=art.id,
                    logical_id=art.logical_id,
                    new_version=art.version,
                    previous_version_id=previous,
                    artefact_type=art.type,
                    produced_by_role=art.produced_by_role,
                )
            )
        items.append(ArtefactItem(art, ts))
        ordered = sorted(by_target.get(art.id, []), key=lambda c: (c.status is not ClaimStatus.TERMINATED, c.id))
        for claim in ordered:
            items.append(ClaimItem(claim, ts))
            bids = claim.phase_state.all_bids if claim.phase_state else {}
            for n, (agent, bid) in enumerate(sorted(bids.items()), start=1):
                items.append(_workflow("bid_submitted", ts + n, claim_id=claim.id, agent_name=agent, bid_type=bid))
            grants = [(a, "review") for a in claim.granted_review_agents]
            grants += [(a, "claim") for a in claim.granted_parallel_agents]
            if claim.granted_exclusive_agent:
                grants.append((claim.granted_exclusive_agent, "exclusive"))
            for n, (agent, grant_type) in enumerate(grants):
                items.append(
                    _workflow(
                        "claim_granted",
                        ts + 100 + n,
                        claim_id=claim.id,
                        agent_name=agent,
                        grant_type=grant_type,
                        agent_image_id=claim.granted_agent_image_id,
                    )
                )
        for review in reviews_of.get(art.id, []):
            if is_approval(review.payload):
                items.append(
                    _workflow(
                        "review_approved",
                        review.created_at_ms,
                        original_artefact_id=art.id,
                        reviewer_role=review.produced_by_role,
                    )
                )
            else:
                feedback = feedback_excerpt(review.payload)
                items.append(
                    _workflow(
                        "review_rejected",
                        review.created_at_ms,
                        original_artefact_id=art.id,
                        reviewer_role=review.produced_by_role,
                        feedback=feedback,
                    )
                )
    # An artefact comes before what happened at the same moment because of it; otherwise stable.
    items.sort(key=lambda item: (item.ts_ms, not isinstance(item, ArtefactItem)))
    return items


def is_terminal(item: WatchItem) -> bool:
    return isinstance(item, ArtefactItem) and item.artefact.structural_type is StructuralType.TERMINAL


def live_item(keys: Keys, channel: str, data: str, now: int) -> WatchItem:
    """A pub/sub message as a watch item; raises MalformedRecord for a message that does not decode."""
    if channel == keys.artefact_events:
        art = Artefact.from_json(data)
        return ArtefactItem(art, art.created_at_ms)
    if channel == keys.claim_events:
        return ClaimItem(Claim.from_json(data), now)
    return WorkflowItem(WorkflowEvent.from_json(data), now)
