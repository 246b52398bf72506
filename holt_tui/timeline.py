"""Time travel: the ordered changes the TUI has seen or rebuilt, and the blackboard as it was after change k.

Pure and Textual-free. ``build_timeline`` reads a loaded ``LiveModel`` (artefacts, claims, bids with the
times seen live, the audit trail, the inbox and debug snapshots) plus the ``ClaimJournal`` of claim states
seen live, and returns a ``Timeline``: one ``Moment`` per change, oldest first. ``Timeline.model_at(k)``
builds a fresh ``LiveModel`` from the first k moments, so every view that draws from a model (list, graph,
badges, inbox, debugger, inspector, events) shows that moment unchanged.

What the blackboard does not store is rebuilt, and said so here once:
- a claim's earlier states come from its own fields: created with its artefact (``pending_review``, no
  bids), each bid at the time it was seen live (bids with no known time appear with the next phase), the
  phase at ``phase_state.start_time_ms``, and its closing at its last output, grant or phase start; every
  state the TUI saw live (the journal) is exact and comes in at the time it was seen;
- a request (question, approval) opens at its creation time and takes its outcome at the audit record
  that decided it; a held decision is held from its ``debug_decision_held`` record (or ``held_since_ms``)
  until the audit record that released it (step, continue, skip);
- breakpoints, full control and the control lease are shown as they are now.

Cost: nothing on the live path except one deque append per live claim change (``ClaimJournal.note``); the
timeline is built when history mode is entered (plain objects, a pydantic copy only for the claim states
a moment actually shows).
"""

from __future__ import annotations

import bisect
import dataclasses
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, time, tzinfo
from typing import Any

from holt_core.artefact_record import ArtefactRecord
from holt_core.audit import AuditRecord
from holt_core.models import ClaimStatus, Phase
from holt_tui.feed import (
    ArtefactSeen,
    AuditSeen,
    ClaimState,
    DebugSeen,
    FeedItem,
    InboxSeen,
    InstanceSeen,
    ScanPage,
)
from holt_tui.model import LiveModel, LogLine
from holt_tui.sources import DebugSnapshot, HeldDecision, InboxItem, InboxSnapshot

JOURNAL_LIMIT = 20_000  # live claim states kept for history mode (older ones fall back to the rebuilt history)
# Audit actions that decide a request (its subject is the request id) and that release a held decision.
DECIDED = frozenset({"approved", "rejected", "expired", "cancelled", "bypassed", "superseded",
                     "question_answered", "approval_auto_approved"})
OPENED = frozenset({"question_asked", "approval_requested"})
RELEASED = frozenset({"step", "continue", "skip", "debug_held_decision_carried_out", "debug_hold_reconciled",
                      "debug_holds_released"})
_PHASE_STATUS = {Phase.REVIEW: ClaimStatus.PENDING_REVIEW, Phase.PARALLEL: ClaimStatus.PENDING_PARALLEL,
                 Phase.EXCLUSIVE: ClaimStatus.PENDING_EXCLUSIVE}


class ClaimJournal:
    """Claim states seen live, with the time they were seen (bounded; a repeat of the same state is dropped)."""

    def __init__(self, limit: int = JOURNAL_LIMIT) -> None:
        self.entries: deque[tuple[int, ClaimState]] = deque(maxlen=limit)

    def note(self, ts_ms: int, state: ClaimState) -> None:
        self.entries.append((ts_ms, state))


@dataclass(frozen=True, slots=True)
class ClaimVersion:
    """A claim as it was at one stage of its life, rebuilt from its present state (materialised on demand)."""

    base: ClaimState
    stage: str  # created | bids | phase
    bids: tuple[str, ...] = ()  # created/bids: the agents that had bid by then

    def state(self) -> ClaimState:
        c = self.base.claim
        if self.stage == "phase" and c.phase_state is not None:
            status = c.status if c.status.is_open else _PHASE_STATUS.get(c.phase_state.current, c.status)
            return ClaimState(c.model_copy(update={"status": status, "termination_reason": ""}), self.base.bids)
        early = c.model_copy(update={
            "status": ClaimStatus.PENDING_REVIEW, "granted_review_agents": [], "granted_parallel_agents": [],
            "granted_exclusive_agent": "", "termination_reason": "", "phase_state": None, "grant_queue": None,
            "last_grant_agent": "", "last_grant_time": 0})
        bids = self.base.bids or (c.phase_state.all_bids if c.phase_state else {})
        return ClaimState(early, {a: bids[a] for a in self.bids if a in bids})


# What one moment sets: an artefact appears, a claim takes a state, an audit record is appended, a request
# or held decision takes a state (None: gone).
Value = ArtefactRecord | ClaimState | ClaimVersion | AuditRecord | InboxItem | HeldDecision | None


@dataclass(frozen=True, slots=True)
class Moment:
    ts_ms: int
    kind: str  # artefact | claim | bid | phase | closed | audit | request | decided | held | released
    text: str  # one line, raw (the UI sanitises)
    key: str  # a:<id> | c:<claim id> | u:<seq> | i:<request id> | h:<hold id>
    value: Value


STEP_LIMIT = 500  # a jump of at most this many changes is made change by change; a longer one rebuilds


class MomentModel(LiveModel):
    """The model of one moment: a ``LiveModel`` that can also take a change back (history mode steps).

    Its Events log is written only when something reads it (the Events tab), for the moment shown then.
    """

    def __init__(self, instance: str, *, max_log_lines: int = 20_000) -> None:
        self.index = 0  # the changes applied
        self._events_index = -1
        self._quiet = True
        super().__init__(instance, max_log_lines=max_log_lines)
        self.requests: dict[str, InboxItem] = {}
        self.holds: dict[str, HeldDecision] = {}

    @property
    def events(self) -> deque[LogLine]:
        if self._events_index != self.index and self._history_built:
            self._events_index = self.index
            self._quiet = False
            try:
                self._log_store.clear()
                self._build_history()
            finally:
                self._quiet = True
        return self._log_store

    @events.setter
    def events(self, value: deque[LogLine]) -> None:
        self._log_store = value

    def _log(self, kind: str, ts_ms: int, text: str, *, agent: str | None = None, type_: str | None = None,
             ids: tuple[str, ...] = ()) -> None:
        if not self._quiet:
            super()._log(kind, ts_ms, text, agent=agent, type_=type_, ids=ids)

    def _log_artefact(self, a: ArtefactRecord) -> None:
        if not self._quiet:
            super()._log_artefact(a)

    def _log_artefacts(self, records: Iterable[ArtefactRecord]) -> None:
        if not self._quiet:
            super()._log_artefacts(records)

    def remove_artefact(self, a_id: str) -> None:
        """Undo ``_add_artefact`` (its descendants and claims are gone already: they came after it)."""
        self.rows()  # place pending rows first, so the row cache is exact
        a = self.artefacts.pop(a_id, None)
        if a is None:
            return
        for src in a.source_artefacts:
            kids = self.children.get(src)
            if kids is not None and a_id in kids:
                kids.remove(a_id)
        versions = self.threads.get(a.logical_id, [])
        if a_id in versions:
            versions.remove(a_id)
        if not versions:
            self.threads.pop(a.logical_id, None)
        root = self._root.pop(a_id, a_id)
        members = self._wf_members.get(root)
        if members is not None and a_id in members:
            members.remove(a_id)
        if root == a_id or not members:
            self._wf_members.pop(root, None)
            self._wf_rows.pop(root, None)
            key = (a.created_at_ms, root)
            i = bisect.bisect_left(self._wf_order, key)
            if i < len(self._wf_order) and self._wf_order[i] == key:
                del self._wf_order[i]
            if members:  # a root removed before its members (clock skew): rebuild it all
                self._full_dirty = True
        else:
            self._wf_rows[root] = self._workflow_rows(root)
        self._flatten()
        self._filtered = None

    def remove_claim(self, claim_id: str) -> None:
        st = self.claims.pop(claim_id, None)
        if st is not None:
            ids = self.claims_by_artefact.get(st.claim.artefact_id, [])
            if claim_id in ids:
                ids.remove(claim_id)
            for claimed in self._bid_claims.values():
                claimed.discard(claim_id)

    def set_claim(self, state: ClaimState) -> None:
        self._set_claim(state, log=False)


@dataclass(frozen=True, slots=True)
class Timeline:
    moments: tuple[Moment, ...]
    base: LiveModel  # the present (instance info, breakpoints, control mode, bid times)
    previous: tuple[int, ...] = ()  # for each moment, the index of the previous one with the same key (-1: none)
    _states: dict[int, ClaimState] = field(default_factory=dict, compare=False)

    def __len__(self) -> int:
        return len(self.moments)

    def index_at(self, ts_ms: int) -> int:
        """The number of changes made by ``ts_ms`` (0 when the moment is before the first one)."""
        return bisect.bisect_right(self.moments, ts_ms, key=lambda m: m.ts_ms)

    def clamp(self, k: int) -> int:
        return max(1 if self.moments else 0, min(k, len(self.moments)))

    def claim_state(self, i: int) -> ClaimState:
        """Moment ``i``'s claim state (a rebuilt one is made once, then kept)."""
        v = self.moments[i].value
        if isinstance(v, ClaimState):
            return v
        assert isinstance(v, ClaimVersion)
        state = self._states.get(i)
        if state is None:
            state = self._states[i] = v.state()
        return state

    def items_at(self, k: int) -> list[FeedItem]:
        """The feed that builds the blackboard as it was after the first ``k`` changes (decided as data)."""
        artefacts: list[ArtefactRecord] = []
        claims: dict[str, int] = {}
        audit: list[AuditRecord] = []
        requests: dict[str, InboxItem] = {}
        held: dict[str, HeldDecision] = {}
        for i, m in enumerate(self.moments[:k]):
            v = m.value
            if isinstance(v, ArtefactRecord):
                artefacts.append(v)
            elif isinstance(v, ClaimState | ClaimVersion):
                claims[m.key] = i
            elif isinstance(v, AuditRecord):
                audit.append(v)
            else:
                _put(requests if m.key.startswith("i:") else held, m.key, v)
        states = [self.claim_state(i) for i in claims.values()]
        return [
            InstanceSeen(self.base.info),
            ScanPage(artefacts, states, sorted(audit, key=lambda r: r.seq), first=True, last=True,
                     total_hint=len(artefacts)),
            self._inbox(requests),
            self._debug(held),
        ]

    def _inbox(self, requests: dict[str, InboxItem]) -> InboxSeen:
        items = sorted(requests.values(), key=lambda i: (i.created_ms, i.id))
        return InboxSeen(InboxSnapshot(self.base.inbox.supported, tuple(items)))

    def _debug(self, held: dict[str, HeldDecision]) -> DebugSeen:
        d = self.base.debug
        holds = sorted(held.values(), key=lambda h: (h.held_since_ms, h.id))
        return DebugSeen(DebugSnapshot(d.supported, tuple(holds), d.breakpoints, d.full_control, d.lease_holder))

    def model_at(self, k: int) -> MomentModel:
        """A model of the blackboard after the first ``k`` changes (the present's filter carries over)."""
        k = self.clamp(k)
        model = MomentModel(self.base.instance, max_log_lines=self.base.events.maxlen or 20_000)
        items = self.items_at(k)
        model.apply_all(items)
        model.index = k
        model.requests = {"i:" + i.id: i for i in model.inbox.items}
        model.holds = {"h:" + h.id: h for h in model.debug.held}
        until = self.moments[k - 1].ts_ms if k else 0
        model.bid_times = {key: t for key, t in self.base.bid_times.items() if t <= until}
        model.set_filter(self.base.filter)
        model.connection, model.connection_detail = self.base.connection, self.base.connection_detail
        return model

    def move(self, model: MomentModel, k: int) -> MomentModel:
        """The model after change ``k``: ``model`` moved change by change when that is near, else rebuilt."""
        k = self.clamp(k)
        if abs(k - model.index) > STEP_LIMIT:
            fresh = self.model_at(k)
            fresh.set_filter(model.filter)
            return fresh
        while model.index < k:
            self._forward(model)
        while model.index > k:
            self._back(model)
        model.revision += 1
        return model

    def _forward(self, model: MomentModel) -> None:
        i = model.index
        m = self.moments[i]
        v = m.value
        if isinstance(v, ArtefactRecord):
            model.apply(ArtefactSeen(v))
        elif isinstance(v, ClaimState | ClaimVersion):
            model.set_claim(self.claim_state(i))
        elif isinstance(v, AuditRecord):
            model.apply(AuditSeen(v))
        elif m.key.startswith("i:"):
            _put(model.requests, m.key, v)
            model.apply(self._inbox(model.requests))
        else:
            _put(model.holds, m.key, v)
            model.apply(self._debug(model.holds))
        model.index = i + 1

    def _back(self, model: MomentModel) -> None:
        i = model.index - 1
        m = self.moments[i]
        v = m.value
        before = self.previous[i]
        if isinstance(v, ArtefactRecord):
            model.remove_artefact(v.id)
        elif isinstance(v, ClaimState | ClaimVersion):
            if before < 0:
                model.remove_claim(m.key[2:])
            else:
                model.set_claim(self.claim_state(before))
        elif isinstance(v, AuditRecord):
            if model.audit and model.audit[-1].seq == v.seq:
                model.audit.pop()
        else:
            earlier = self.moments[before].value if before >= 0 else None
            if m.key.startswith("i:"):
                _put(model.requests, m.key, earlier)
                model.apply(self._inbox(model.requests))
            else:
                _put(model.holds, m.key, earlier)
                model.apply(self._debug(model.holds))
        model.index = i


def _put(store: dict[str, Any], key: str, value: Any) -> None:
    if value is None:
        store.pop(key, None)
    else:
        store[key] = value


def build_timeline(model: LiveModel, journal: ClaimJournal | None = None) -> Timeline:
    """Every change the model knows of, oldest first (see the module's docstring for what is rebuilt)."""
    moments: list[Moment] = []
    arts = model.artefacts
    for a in arts.values():
        moments.append(Moment(a.created_at_ms, "artefact", f"created {a.type} v{a.version} by {a.produced_by_role} "
                              f"({a.id[:8]})", "a:" + a.id, a))
    journalled: dict[str, list[tuple[int, ClaimState]]] = {}
    for ts, st in journal.entries if journal is not None else ():
        journalled.setdefault(st.claim.id, []).append((ts, st))
    for st in model.claims.values():
        moments.extend(_claim_moments(model, st, journalled.get(st.claim.id, [])))
    for r in model.audit:
        moments.append(Moment(r.ts_ms, "audit", f"audit: {r.operator} {r.action} {r.subject}", f"u:{r.seq}", r))
    moments.extend(_request_moments(model.inbox.items, model.audit))
    moments.extend(_held_moments(model.debug.held, model.audit))
    moments.sort(key=lambda m: m.ts_ms)  # stable: an artefact comes before its claim's creation
    last: dict[str, int] = {}
    previous: list[int] = []
    for i, m in enumerate(moments):
        previous.append(last.get(m.key, -1))
        last[m.key] = i
    return Timeline(tuple(moments), model, tuple(previous))


def _claim_moments(model: LiveModel, st: ClaimState, seen: list[tuple[int, ClaimState]]) -> Iterable[Moment]:
    c = st.claim
    key = "c:" + c.id
    short = c.id[:8]
    target = model.artefacts.get(c.artefact_id)
    created = target.created_at_ms if target is not None else (seen[0][0] if seen else 0)
    what = f"{target.type} v{target.version}" if target is not None else c.artefact_id[:8]
    first_seen = seen[0][0] if seen else None
    out: list[Moment] = []

    def add(ts: int, kind: str, text: str, value: ClaimState | ClaimVersion) -> None:
        if first_seen is None or ts < first_seen:
            out.append(Moment(ts, kind, f"claim {short} {text}", key, value))

    simple = c.status.is_open and c.phase_state is None and not c.last_grant_agent
    if simple and not model.bid_times.keys() & {(c.id, a) for a in st.bids}:
        add(created, "claim", f"created on {what} ({c.status.value})", st)
    else:
        add(created, "claim", f"created on {what} (pending_review)", ClaimVersion(st, "created"))
        bids = st.bids or (c.phase_state.all_bids if c.phase_state else {})
        phase_at = max(c.phase_state.start_time_ms, created) if c.phase_state is not None else None
        closed_at = max(model._closed_at(st), phase_at or created) if not c.status.is_open else None
        # Bids come before the phase (or the closing) they lead to; a later time seen live is not trusted.
        limit = phase_at if phase_at is not None else closed_at
        timed = sorted((max(model.bid_times[(c.id, a)], created), a) for a in bids if (c.id, a) in model.bid_times
                       and (limit is None or model.bid_times[(c.id, a)] < limit))
        so_far: list[str] = []
        for ts, agent in timed:
            so_far.append(agent)
            last = len(so_far) == len(bids) and simple
            add(ts, "bid", f"bid {agent}: {bids[agent]}", st if last else ClaimVersion(st, "bids", tuple(so_far)))
        if c.phase_state is not None and phase_at is not None:
            ps = c.phase_state
            add(phase_at, "phase", f"{ps.current.value} phase: granted {', '.join(ps.granted_agents) or '-'}",
                st if c.status.is_open else ClaimVersion(st, "phase"))
        if closed_at is not None:
            end = c.status.value + (f": {c.termination_reason}" if c.termination_reason else "")
            add(closed_at, "closed", end, st)
        elif c.phase_state is None and not (timed and len(timed) == len(bids)):
            add(max(c.last_grant_time, timed[-1][0] if timed else created), "claim", c.status.value, st)
    previous: tuple[object, ...] | None = None
    for ts, state in seen:
        sc = state.claim
        fingerprint = (sc.status, tuple(sorted(state.bids.items())), tuple(sc.granted_review_agents),
                       tuple(sc.granted_parallel_agents), sc.granted_exclusive_agent,
                       sc.phase_state.current if sc.phase_state else None, state.note)
        if fingerprint != previous:
            out.append(Moment(ts, "claim", f"claim {short} {sc.status.value} (seen live)", key, state))
            previous = fingerprint
    return out


def _audit_by_subject(audit: Iterable[AuditRecord], actions: frozenset[str]) -> dict[str, AuditRecord]:
    out: dict[str, AuditRecord] = {}
    for r in audit:
        if r.action in actions and r.subject and r.subject not in out:
            out[r.subject] = r
    return out


def _request_moments(items: Iterable[InboxItem], audit: Iterable[AuditRecord]) -> Iterable[Moment]:
    records = list(audit)
    decided = _audit_by_subject(records, DECIDED)
    present = {i.id for i in items}
    for i in items:
        key = "i:" + i.id
        yield Moment(i.created_ms, "request", f"{i.kind} opened: {i.title}", key,
                     dataclasses.replace(i, status="open") if i.status != "open" else i)
        if i.status != "open":
            r = decided.get(i.id)
            yield Moment(max(r.ts_ms if r else i.created_ms, i.created_ms), "decided", f"{i.kind} {i.status}: "
                         f"{i.title}", key, i)
    # Requests no longer open (the inbox lists only open ones): rebuilt from the audit trail.
    for r in records:
        if r.action not in OPENED or not r.subject or r.subject in present:
            continue
        d = r.details
        kind = "question" if r.action == "question_asked" else "approval"
        title = str(d.get("question") or " ".join(str(d.get(k, "")) for k in ("action", "target")).strip() or kind)
        item = InboxItem(id=r.subject, kind=kind, title=title, requester=r.operator,
                         claim_id=str(d.get("claim_id", "")), artefact_id=str(d.get("question_artefact_id", "")),
                         created_ms=r.ts_ms, risk=str(d.get("risk", "")))
        yield Moment(r.ts_ms, "request", f"{kind} opened: {title}", "i:" + r.subject, item)
        end = decided.get(r.subject)
        if end is not None and end.seq > r.seq:
            yield Moment(end.ts_ms, "decided", f"{kind} {end.action} by {end.operator}", "i:" + r.subject, None)


def _held_moments(present: Iterable[HeldDecision], audit: Iterable[AuditRecord]) -> Iterable[Moment]:
    records = list(audit)
    now_held = {h.id: h for h in present}
    for r in records:
        if r.action != "debug_decision_held":
            continue
        d = r.details
        hold_id = str(d.get("hold_id") or r.subject)
        if hold_id in now_held:
            continue  # still held: the present's own record follows
        h = HeldDecision(id=hold_id, claim_id=str(d.get("claim_id", "")), artefact_id=str(d.get("artefact_id", "")),
                         kind=str(d.get("kind", "")), would=str(d.get("summary", "")),
                         reason=str(d.get("reason", "")), held_since_ms=r.ts_ms)
        yield Moment(r.ts_ms, "held", f"held: {h.would or h.kind}", "h:" + hold_id, h)
        release = next((x for x in records if x.seq > r.seq and x.action in RELEASED and x.subject == r.subject),
                       None)
        if release is not None:
            yield Moment(release.ts_ms, "released", f"{release.action} by {release.operator}: {h.would or h.kind}",
                         "h:" + hold_id, None)
    for h in present:
        yield Moment(h.held_since_ms, "held", f"held: {h.would or h.kind}", "h:" + h.id, h)


def parse_moment(text: str, tz: tzinfo = UTC) -> tuple[str, int]:
    """``--at`` / ``:at``: ``("index", k)`` for a change number, ``("time", ms)`` for a date and time (ISO 8601;
    no zone = ``tz``), ``("clock", ms after midnight)`` for a time of day (``10:00:03``: the latest such time at
    or before the last change).

    Raises ``ValueError`` with a one-line reason.
    """
    t = text.strip()
    if t.isdigit():
        return "index", int(t)
    try:
        of_day = time.fromisoformat(t)
    except ValueError:
        pass
    else:
        return "clock", ((of_day.hour * 60 + of_day.minute) * 60 + of_day.second) * 1000 + of_day.microsecond // 1000
    try:
        when = datetime.fromisoformat(t.replace("Z", "+00:00") if t.endswith("Z") else t)
    except ValueError:
        raise ValueError(f"at {t!r}: give a change number (1, 2, ...), a time of day (10:00:03) or a date and "
                         "time (2026-01-01T10:00:00Z)") from None
    if when.tzinfo is None:
        when = when.replace(tzinfo=tz)
    return "time", int(when.timestamp() * 1000)


def seek(timeline: Timeline, at: tuple[str, int], tz: tzinfo = UTC) -> int:
    """The change number that ``parse_moment``'s answer names, clamped to the timeline."""
    kind, value = at
    if kind == "index":
        return timeline.clamp(value)
    if kind == "clock":
        last = timeline.moments[-1].ts_ms if timeline.moments else 0
        day = datetime.fromtimestamp(last / 1000, tz).replace(hour=0, minute=0, second=0, microsecond=0)
        value = int(day.timestamp() * 1000) + value
        if value > last:
            value -= 86_400_000  # not reached yet that day: the day before
    return timeline.clamp(timeline.index_at(value))
