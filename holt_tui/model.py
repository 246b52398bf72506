"""The live model of one instance: everything the TUI shows, kept outside the widgets (no Textual here).

Feed items (from the Redis reader or a recording) are applied as keyed upserts, so a rescan after a
reconnect, or an event that arrives twice, converges on the same state. Widgets ask the model for what
they draw (rows, neighbourhood, inspector data) and redraw only the lines they show.
"""

from __future__ import annotations

import bisect
import itertools
import time
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from operator import attrgetter, itemgetter

from holt_core.artefact_record import ArtefactRecord
from holt_core.audit import AuditRecord
from holt_core.claim_stage import ClaimFacts, Stage, claim_stage, delivered_roles, is_active
from holt_core.models import Artefact, ClaimStatus, StructuralType, WorkflowEvent, is_approval
from holt_tui.feed import (
    ArtefactSeen,
    AuditSeen,
    ClaimSeen,
    ClaimState,
    ConnectionSeen,
    DebugSeen,
    FeedItem,
    InboxSeen,
    InstanceInfo,
    InstanceSeen,
    ScanPage,
    WorkflowSeen,
)
from holt_tui.filtering import NO_FILTER, ListFilter, Subject
from holt_tui.sources import DebugSnapshot, InboxSnapshot

# A graph row: ("w", root artefact id, 0) heads a workflow; ("a", artefact id, depth) is one artefact,
# depth 1 for a thread's first version and 2 for its later versions.
Row = tuple[str, str, int]
SEARCH_PAYLOAD_CHARS = 200_000  # a search reads at most this much of each payload
_INSERT_SCAN = 64  # _insert_row walks back at most this many rows to place a new thread
_PLACE_AT = 200  # apply_for places pending rows once this many artefacts wait (a scan page)
_BY_CREATED = attrgetter("created_at_ms", "id")
_BY_VERSION = attrgetter("version", "id")
_BY_CREATED_ITEM = itemgetter(0, 1)
_BY_TS = attrgetter("ts_ms")
_CREATED = attrgetter("created_at_ms")


@dataclass
class Change:
    """What one batch of feed items changed (the UI refreshes only those parts)."""

    artefacts: bool = False
    claims: bool = False
    events: bool = False
    audit: bool = False
    status: bool = False  # instance, connection, loading, resync notice
    inbox: bool = False
    debug: bool = False
    new_artefacts: list[str] = field(default_factory=list)  # arrived live (not by a scan), oldest first

    def merge(self, other: Change) -> None:
        for name in ("artefacts", "claims", "events", "audit", "status", "inbox", "debug"):
            if getattr(other, name):
                setattr(self, name, True)
        self.new_artefacts.extend(other.new_artefacts)

    @property
    def any(self) -> bool:
        return any((self.artefacts, self.claims, self.events, self.audit, self.status, self.inbox, self.debug))


class LogLine:
    """One line of the Events log (slotted: the log holds up to 20,000)."""

    __slots__ = ("_text", "agent", "ids", "kind", "ts_ms", "type_")

    def __init__(self, ts_ms: int, kind: str, text: str, *, agent: str | None = None, type_: str | None = None,
                 ids: tuple[str, ...] = ()) -> None:
        self.ts_ms = ts_ms
        self.kind = kind  # event name
        self._text = text
        self.agent = agent
        self.type_ = type_
        self.ids = ids

    @property
    def text(self) -> str:
        """Raw (unsanitised) description."""
        return self._text

    @property
    def subject(self) -> Subject:
        return Subject(text=f"{self.kind} {self.text}", type=self.type_ or self.kind, agent=self.agent,
                       kind=self.kind, ids=self.ids, ts_ms=self.ts_ms)


class ArtefactLine(LogLine):
    """An artefact's line of the Events log: made with one attribute, everything else read from the record when
    the line is drawn or filtered (the history rebuilt on attach makes 20,000 at once, at the end of the load)."""

    __slots__ = ("record",)
    kind = "artefact"  # (shadows the slot of LogLine: an artefact's line is always of this kind)

    def __init__(self, record: ArtefactRecord) -> None:  # (no LogLine.__init__: nothing else to set)
        self.record = record

    @property
    def ts_ms(self) -> int:  # type: ignore[override]
        return self.record.created_at_ms

    @property
    def agent(self) -> str:  # type: ignore[override]
        return self.record.produced_by_role

    @property
    def type_(self) -> str:  # type: ignore[override]
        return self.record.type

    @property
    def ids(self) -> tuple[str, ...]:  # type: ignore[override]
        return self.record.id, self.record.logical_id

    @property
    def text(self) -> str:
        a = self.record
        return f"{a.structural_type.value} {a.type} v{a.version} by {a.produced_by_role} id={a.id}"


@dataclass(frozen=True)
class AgentRow:
    name: str
    health: str  # busy | idle | no orchestrator | stopped | unknown
    claim_id: str  # the open claim it holds a grant on ("" = none)
    last_activity_ms: int
    bids: int


def _short(ident: str) -> str:
    return ident[:8]


class LiveModel:
    def __init__(self, instance: str, *, max_log_lines: int = 20_000) -> None:
        self.instance = instance
        self.artefacts: dict[str, ArtefactRecord] = {}
        self.children: dict[str, list[str]] = {}
        self.threads: dict[str, list[str]] = {}  # logical id -> artefact ids by version
        self.claims: dict[str, ClaimState] = {}
        self.claims_by_artefact: dict[str, list[str]] = {}
        self.events: deque[LogLine] = deque(maxlen=max_log_lines)
        self.audit: deque[AuditRecord] = deque(maxlen=max_log_lines)
        self.info = InstanceInfo(name=instance)
        self.connection = "connecting"
        self.connection_detail = ""
        self.loading = True
        self.total_hint = 0
        self.resync_notice = ""
        self.inbox = InboxSnapshot()
        self.debug = DebugSnapshot()
        self.skipped: set[str] = set()  # keys of records that could not be read (named in the event log)
        self.agent_activity: dict[str, int] = {}
        # Bids per agent, as the claims it bid on (from every claim's bids hash and from live events, so a
        # fresh attach counts the same as a session that watched them arrive); bid times from live events.
        self._bid_claims: dict[str, set[str]] = {}
        self.bid_times: dict[tuple[str, str], int] = {}
        self._history_built = False
        self.revision = 0
        # Row cache: roots and per-workflow rows, rebuilt lazily and only where something changed.
        self._root: dict[str, str] = {}
        self._wf_members: dict[str, list[str]] = {}
        self._wf_order: list[tuple[int, str]] = []  # (created_at_ms, root id), sorted
        self._wf_rows: dict[str, list[Row]] = {}
        self._pending: list[str] = []
        self._full_dirty = True
        self._flat_dirty = False  # workflows' rows changed since the flat list was built
        self._rows: list[Row] = []
        self._filtered: list[Row] | None = None
        self.filter: ListFilter = NO_FILTER
        self.collapsed: set[str] = set()  # workflow roots folded to their header row

    # ------------------------------------------------------------------------------------------ apply

    def apply_all(self, items: Iterable[FeedItem]) -> Change:
        change = Change()
        for item in items:
            change.merge(self.apply(item))
        if change.any:
            self.revision += 1
        return change

    def apply_for(self, feed: deque[FeedItem], seconds: float,
                  clock: Callable[[], float] = time.perf_counter) -> tuple[Change, int]:
        """Apply items from the left of ``feed`` until it is empty or ``seconds`` have passed (at least one item);
        the rest waits for the next call. Returns what changed and how many items were applied."""
        change = Change()
        applied = 0
        end = clock() + seconds
        while feed:
            change.merge(self.apply(feed.popleft()))
            applied += 1
            if len(self._pending) >= _PLACE_AT:
                self.place_pending()  # a scan page's rows are placed in the slice that applied it
            if clock() >= end:
                break
        self.place_pending()
        if change.any:
            self.revision += 1
        return change, applied

    def apply(self, item: FeedItem) -> Change:
        c = Change()
        match item:
            case ScanPage():
                if item.first:
                    self.loading = True
                    self.total_hint = item.total_hint
                    if item.resync:
                        self.resync_notice = "resynced: the connection was lost, so events may have been " \
                                             "missed; the view was re-read from Redis"
                self._add_artefacts(item.artefacts)
                for s in item.claims:
                    self._set_claim(s, log=False)
                for r in item.audit:
                    self._add_audit(r)
                if item.last:
                    self.loading = False
                    if not self._history_built:
                        self._build_history()
                        c.events = True
                c.artefacts = c.status = True
                # A page without claims changes no claim: the inspector and the drawn rows stay as they are
                # (redrawn per page, they made every page of a big attach repaint half the screen).
                c.claims = bool(item.claims) or item.first or item.last
                c.audit = bool(item.audit)
            case ArtefactSeen():
                if self._add_artefact(item.artefact):
                    c.artefacts = c.events = True
                    c.new_artefacts.append(item.artefact.id)
                    self._log_artefact(self.artefacts[item.artefact.id])
            case ClaimSeen():
                self._set_claim(item.state, log=True)
                c.claims = c.events = True
            case WorkflowSeen():
                self._log_workflow(item.event, item.ts_ms)
                c.events = True
                if item.event.event == "malformed_record":
                    self.skipped.add(str(item.event.data.get("key", "")))
                    c.status = True
            case AuditSeen():
                c.audit = self._add_audit(item.record)
            case InstanceSeen():
                self.info = item.info
                c.status = True
            case ConnectionSeen():
                self.connection, self.connection_detail = item.state, item.detail
                c.status = True
            case InboxSeen():
                self.inbox = item.snapshot
                c.inbox = True
            case DebugSeen():
                self.debug = item.snapshot
                c.debug = True
        return c

    def dismiss_resync(self) -> None:
        self.resync_notice = ""
        self.revision += 1

    def _add_artefact(self, a: ArtefactRecord | Artefact) -> bool:
        if a.id in self.artefacts:
            return False
        self._add_artefacts((a,))
        return True

    def _add_artefacts(self, batch: Iterable[ArtefactRecord | Artefact]) -> None:
        """Keyed inserts of a scanned page (one loop with everything it touches in locals: 100k on attach)."""
        artefacts, children, threads, activity = self.artefacts, self.children, self.threads, self.agent_activity
        pending = self._pending
        for a in batch:
            a_id = a.id
            if a_id in artefacts:
                continue
            if isinstance(a, Artefact):
                a = ArtefactRecord.of(a)
            artefacts[a_id] = a
            for src in a.source_artefacts:
                kids = children.get(src)
                if kids is None:
                    children[src] = [a_id]
                else:
                    kids.append(a_id)
            versions = threads.get(a.logical_id)
            if versions is None:
                threads[a.logical_id] = [a_id]
            else:
                bisect.insort(versions, a_id, key=lambda i: (artefacts[i].version, i))
            role = a.produced_by_role
            if a.created_at_ms > activity.get(role, 0):
                activity[role] = a.created_at_ms
            pending.append(a_id)

    def _set_claim(self, s: ClaimState, *, log: bool) -> None:
        old = self.claims.get(s.claim.id)
        self.claims[s.claim.id] = s
        if old is None:
            self.claims_by_artefact.setdefault(s.claim.artefact_id, []).append(s.claim.id)
        bids = s.bids or (s.claim.phase_state.all_bids if s.claim.phase_state else {})
        for agent in bids:
            self._bid_claims.setdefault(agent, set()).add(s.claim.id)
        if log:
            if old is None:
                self._log("claim_created", 0, f"claim {s.claim.id} on artefact {s.claim.artefact_id} "
                          f"status={s.claim.status.value}", ids=(s.claim.id, s.claim.artefact_id))
            elif old.claim.status != s.claim.status:
                self._log("claim_status", 0, f"claim {s.claim.id} {old.claim.status.value} -> "
                          f"{s.claim.status.value}", ids=(s.claim.id, s.claim.artefact_id))

    def _add_audit(self, r: AuditRecord) -> bool:
        if self.audit and r.seq <= self.audit[-1].seq:
            return False
        self.audit.append(r)
        return True

    # ------------------------------------------------------------------------------------------ event log

    def _log(self, kind: str, ts_ms: int, text: str, *, agent: str | None = None, type_: str | None = None,
             ids: tuple[str, ...] = ()) -> None:
        self.events.append(LogLine(ts_ms, kind, text, agent=agent, type_=type_, ids=ids))

    def _log_artefact(self, a: ArtefactRecord) -> None:
        self.events.append(ArtefactLine(a))

    def _log_artefacts(self, records: Iterable[ArtefactRecord]) -> None:
        self.events.extend(map(ArtefactLine, records))

    def _log_workflow(self, e: WorkflowEvent, ts_ms: int) -> None:
        d = e.data
        agent = d.get("agent_name") or d.get("reviewer_role") or d.get("target_agent_role") or d.get("produced_by_role")
        if e.event == "bid_submitted" and isinstance(agent, str):
            claim_id = d.get("claim_id")
            key = claim_id if isinstance(claim_id, str) and claim_id else f"event:{self.revision}:{len(self.events)}"
            self._bid_claims.setdefault(agent, set()).add(key)
            self.bid_times.setdefault((key, agent), ts_ms)
            if ts_ms > self.agent_activity.get(agent, 0):
                self.agent_activity[agent] = ts_ms
        parts = [f"{k}={v}" for k, v in sorted(d.items()) if not isinstance(v, dict | list)]
        ids = tuple(str(v) for k, v in d.items() if k.endswith("_id") and isinstance(v, str))
        self._log(e.event, ts_ms, " ".join(parts), agent=agent if isinstance(agent, str) else None, ids=ids)

    def _build_history(self) -> None:
        """After the first full scan: the Events log as it would have been seen (artefacts, closed claims,
        human and debugger acts from the audit trail), oldest first, before anything that arrived live."""
        self._history_built = True
        keep = self.events.maxlen or 20_000
        newest = _newest(list(self.artefacts.values()), keep)
        live = list(self.events)
        self.events.clear()
        self._log_artefacts(newest)
        for st in self.claims.values():
            c = st.claim
            if not c.status.is_open:
                target = self.artefacts.get(c.artefact_id)
                self._log("claim_status", self._closed_at(st) or (target.created_at_ms if target else 0),
                          f"claim {c.id} {c.status.value}" + (f": {c.termination_reason}" if c.termination_reason
                                                              else ""), ids=(c.id, c.artefact_id))
        for r in self.audit:
            self._log(f"audit:{r.action}", r.ts_ms, f"{r.operator} {r.action} {r.subject}", agent=r.operator,
                      ids=(r.subject,))
        history = sorted(self.events, key=_BY_TS)[-keep:]
        self.events.clear()
        self.events.extend(history)
        self.events.extend(live)

    def _closed_at(self, st: ClaimState) -> int:
        """When a claim closed, as far as the blackboard tells: its last output, grant or phase start."""
        c = st.claim
        times = [self.artefacts[k].created_at_ms for k in self.children.get(c.artefact_id, ())
                 if k in self.artefacts]
        times.append(c.last_grant_time)
        if c.phase_state is not None:
            times.append(c.phase_state.start_time_ms)
        return max(times, default=0)

    def claim_timeline(self, claim_id: str) -> list[tuple[int, str]]:
        """A claim's life, oldest first: created, bids (with their time when seen live), grants, holds and
        human acts (audit trail), outputs, closing. Time 0 = not recorded on the blackboard."""
        st = self.claims.get(claim_id)
        if st is None:
            return []
        c = st.claim
        a = self.artefacts.get(c.artefact_id)
        created = a.created_at_ms if a is not None else 0
        out: list[tuple[int, str]] = [(created, "created" + (f" on {a.type} v{a.version}" if a else ""))]
        bids = st.bids or (c.phase_state.all_bids if c.phase_state else {})
        for agent, bid in sorted(bids.items(), key=lambda kv: (self.bid_times.get((claim_id, kv[0]), created),
                                                               kv[0])):
            out.append((self.bid_times.get((claim_id, agent), 0), f"bid {agent}: {bid}"))
        if c.phase_state is not None:
            ps = c.phase_state
            out.append((ps.start_time_ms, f"{ps.current.value} phase: granted {', '.join(ps.granted_agents) or '-'}"))
        if c.last_grant_agent:
            out.append((c.last_grant_time, f"granted to {c.last_grant_agent}"))
        for r in self.audit:
            if claim_id in (r.subject, r.details.get("claim_id")) or (r.subject and r.subject == c.artefact_id):
                out.append((r.ts_ms, f"{r.action} by {r.operator}"))
        granted = set(c.granted_agents)
        for k in self.children.get(c.artefact_id, ()):
            kid = self.artefacts.get(k)
            if kid is not None and (not granted or kid.produced_by_role in granted
                                    or kid.produced_by_role.startswith("human:")):
                out.append((kid.created_at_ms, f"output {kid.type} v{kid.version} by {kid.produced_by_role}"))
        if not c.status.is_open:
            end = c.status.value + (f": {c.termination_reason}" if c.termination_reason else "")
            out.append((self._closed_at(st), f"closed ({end})"))
        for h in self.debug.held:
            if h.claim_id == claim_id:
                out.append((h.held_since_ms, f"held: {h.would} ({h.reason})"))
        for i in self.inbox.items:
            if i.claim_id == claim_id and i.status == "open":
                out.append((i.created_ms, f"waiting for a person: {i.kind} {i.title}"))
        first = out[0]
        rest = sorted(out[1:], key=lambda e: e[0] if e[0] else created)
        return [first, *rest]

    # ------------------------------------------------------------------------------------------ rows

    def _current_root(self, root: str) -> str:
        """A cached root may have been folded into an older workflow since it was cached (its parent arrived
        later): follow the merges. A workflow's root maps to itself; a merged one to the root it joined."""
        roots = self._root
        nxt = roots.get(root)
        while nxt is not None and nxt != root:
            root = nxt
            nxt = roots.get(root)
        return root

    def root_of(self, artefact_id: str) -> str:
        """The workflow an artefact belongs to: follow first sources up to the oldest known ancestor."""
        path: list[str] = []
        current = artefact_id
        seen: set[str] = set()
        while True:
            cached = self._root.get(current)
            if cached is not None:
                root = self._current_root(cached)
                break
            a = self.artefacts.get(current)
            parent = a.source_artefacts[0] if a is not None and a.source_artefacts else None
            if parent is None or parent not in self.artefacts or parent in seen:
                root = current
                path.append(current)
                break
            seen.add(current)
            path.append(current)
            current = parent
        for p in path:
            self._root[p] = root
        return root

    def set_filter(self, f: ListFilter) -> None:
        self.filter = f
        self._filtered = None

    def rows(self) -> list[Row]:
        """The graph rows (filtered when a filter is set); cheap when nothing changed."""
        if self._full_dirty:
            self._rebuild_all()
        elif self._pending:
            self.place_pending()
        if self._flat_dirty:
            self._flatten()
        if self._filtered is None:
            self._filtered = self._apply_filter()
        return self._filtered

    def _rebuild_all(self) -> None:
        self._root.clear()
        self._wf_members = {}
        for a_id in self.artefacts:
            self._wf_members.setdefault(self.root_of(a_id), []).append(a_id)
        self._wf_order = sorted((self.artefacts[r].created_at_ms, r) for r in self._wf_members)
        self._wf_rows = {root: self._workflow_rows(root) for root in self._wf_members}
        self._pending.clear()
        self._full_dirty = False
        self._flatten()

    def place_pending(self) -> None:
        """File the artefacts added since the last call under their workflows (the rows of each workflow), leaving
        the flat list to ``rows()``: the drain calls it per slice, so a repaint after many scan pages does not
        place them all at once."""
        if self._full_dirty or not self._pending:
            return
        dirty: set[str] = set()
        artefacts, roots, children = self.artefacts, self._root, self.children
        for a_id in self._pending:
            # root_of, without the call when the parent's workflow is known (the scan reads parents first).
            sources = artefacts[a_id].source_artefacts
            root = roots.get(sources[0]) if sources and a_id not in roots and sources[0] in artefacts else None
            if root is None:
                root = self.root_of(a_id)
            else:
                root = self._current_root(root)
                roots[a_id] = root
            members = self._wf_members.get(root)
            if members is None:
                self._wf_members[root] = members = []
                bisect.insort(self._wf_order, (self.artefacts[root].created_at_ms, root))
                dirty.add(root)
            members.append(a_id)
            # Artefacts seen before their parent (the attach scan reads the newest page first) headed workflows of
            # their own: those fold into this artefact's workflow now.
            for child in children.get(a_id, ()):
                c = artefacts.get(child)
                if c is not None and c.source_artefacts[0] == a_id and child in self._wf_members and child != root:
                    self._merge_workflow(child, root)
                    dirty.add(root)
            if root not in dirty and not self._insert_row(root, self.artefacts[a_id]):
                dirty.add(root)
        self._pending.clear()
        for root in dirty:
            if root in self._wf_members:
                self._wf_rows[root] = self._workflow_rows(root)
        self._flat_dirty = True

    def _merge_workflow(self, old_root: str, new_root: str) -> None:
        moved = self._wf_members.pop(old_root)
        key = (self.artefacts[old_root].created_at_ms, old_root)
        index = bisect.bisect_left(self._wf_order, key)
        if index < len(self._wf_order) and self._wf_order[index] == key:
            del self._wf_order[index]
        self._wf_rows.pop(old_root, None)
        for m in moved:
            self._root[m] = new_root
        self._wf_members[new_root].extend(moved)

    def _insert_row(self, root: str, a: ArtefactRecord) -> bool:
        """Put a live artefact's row in place without rebuilding its workflow; False when it cannot."""
        rows = self._wf_rows.get(root)
        if rows is None:
            return False
        versions = self.threads[a.logical_id]
        if len(versions) == 1:
            # A new thread: threads are ordered by their first artefact. It usually goes last (the scan reads oldest
            # first); else before the few threads that start after it (the scan's newest page was read first).
            key = (a.created_at_ms, a.id)
            at = len(rows)
            for i in range(len(rows) - 1, 0, -1):
                if rows[i][2] != 1:
                    continue
                if self._thread_key(rows[i][1]) < key:
                    break
                at = i
                if len(rows) - i > _INSERT_SCAN:
                    return False  # far from the end: rebuilding the workflow is as cheap
            rows.insert(at, ("a", a.id, 1))
            return True
        if versions[-1] != a.id:
            return False  # an older version arrived late: rebuild this workflow
        for i in range(len(rows) - 1, 0, -1):
            other = self.artefacts[rows[i][1]]
            if other.logical_id == a.logical_id:
                rows.insert(i + 1, ("a", a.id, 2))
                return True
        return False

    def _thread_key(self, first_row_id: str) -> tuple[int, str]:
        """What orders a thread among its workflow's threads: its earliest artefact (created, id)."""
        a = self.artefacts[first_row_id]
        versions = self.threads[a.logical_id]
        if len(versions) == 1:
            return a.created_at_ms, a.id
        first = min((self.artefacts[v] for v in versions), key=_BY_CREATED)
        return first.created_at_ms, first.id

    def _flatten(self) -> None:
        self._rows = list(itertools.chain.from_iterable(
            self._wf_rows[r][:1] if r in self.collapsed else self._wf_rows[r] for _, r in self._wf_order))
        self._flat_dirty = False
        self._filtered = None

    def set_collapsed(self, root: str, collapsed: bool) -> None:
        """Fold a workflow to its header row (or unfold it)."""
        if (root in self.collapsed) == collapsed:
            return
        (self.collapsed.add if collapsed else self.collapsed.discard)(root)
        self.rows()
        self._flatten()
        self._filtered = None

    def _workflow_rows(self, root: str) -> list[Row]:
        """A workflow's rows: its header, then its threads by their first artefact (created, id), each thread's
        versions by (version, id)."""
        artefacts = self.artefacts
        threads: dict[str, list[ArtefactRecord]] = {}
        for a_id in self._wf_members[root]:
            a = artefacts[a_id]
            versions = threads.get(a.logical_id)
            if versions is None:
                threads[a.logical_id] = [a]
            else:
                versions.append(a)
        ordered: list[tuple[int, str, list[ArtefactRecord]]] = []
        for versions in threads.values():
            first = versions[0]
            if len(versions) > 1:
                first = min(versions, key=_BY_CREATED)
                versions.sort(key=_BY_VERSION)
            ordered.append((first.created_at_ms, first.id, versions))
        ordered.sort(key=_BY_CREATED_ITEM)  # (created, id) is unique: no two threads compare equal
        rows: list[Row] = [("w", root, 0)]
        for _, _, versions in ordered:
            rows.append(("a", versions[0].id, 1))
            if len(versions) > 1:
                rows.extend([("a", v.id, 2) for v in versions[1:]])
        return rows

    def _apply_filter(self) -> list[Row]:
        if not self.filter.is_active:
            return self._rows
        out: list[Row] = []
        header: Row | None = None
        with_payload = bool(self.filter.words or self.filter.not_words)
        for row in self._rows:
            if row[0] == "w":
                header = row
                continue
            if self.filter.matches(self.artefact_subject(row[1], with_payload=with_payload)):
                if header is not None:
                    out.append(header)
                    header = None
                out.append(row)
        return out

    def artefact_subject(self, artefact_id: str, *, with_payload: bool = False) -> Subject:
        """What a filter sees of an artefact; ``with_payload`` adds its payload (searched by bare words)."""
        a = self.artefacts[artefact_id]
        text = f"{a.type} v{a.version} {a.produced_by_role} {a.structural_type.value} {a.id}"
        if a.structural_type is StructuralType.REVIEW:
            text += " approve" if is_approval(a.payload) else " feedback"  # as the row shows it
        if with_payload:
            text += "\n" + a.payload[:SEARCH_PAYLOAD_CHARS]
        return Subject(text=text, type=a.type, agent=a.produced_by_role, kind=a.structural_type.value,
                       ids=(a.id, a.logical_id), ts_ms=a.created_at_ms)

    # ------------------------------------------------------------------------------------------ queries

    def previous_version(self, a: ArtefactRecord) -> ArtefactRecord | None:
        versions = self.threads.get(a.logical_id, [])
        older = [self.artefacts[i] for i in versions if self.artefacts[i].version < a.version]
        return max(older, key=lambda v: v.version) if older else None

    def claims_of(self, artefact_id: str) -> list[ClaimState]:
        return [self.claims[c] for c in self.claims_by_artefact.get(artefact_id, [])]

    # --- where a claim stands: holt_core/claim_stage.py, the derivation ``holt explain`` uses too ---

    def claim_for(self, artefact_id: str) -> ClaimState | None:
        """The claim that speaks for an artefact: its newest (a feedback claim after the one it superseded), as
        the blackboard's artefact -> claim index and ``holt explain`` have it, whatever order they arrived in."""
        states = self.claims_of(artefact_id)
        if not states:
            return None
        return max(enumerate(states), key=lambda e: (e[1].created_ms, e[0]))[1]

    def claim_facts(self, artefact_id: str, st: ClaimState | None) -> ClaimFacts:
        claim_id = st.claim.id if st is not None else None
        held = any(not h.released and (h.claim_id == claim_id or h.artefact_id == artefact_id)
                   for h in self.debug.held)
        waiting = any(i.status == "open" and (i.claim_id == claim_id or i.artefact_id == artefact_id)
                      for i in self.inbox.items)
        if st is None:
            return ClaimFacts(status=None, held=held, waiting_for_person=waiting)
        c, ps = st.claim, st.claim.phase_state
        delivered: frozenset[str] = frozenset()
        if ps is not None:
            outputs = [(k.produced_by_role, k.structural_type, k.created_at_ms)
                       for k in (self.artefacts.get(i) for i in self.children.get(c.artefact_id, ())) if k is not None]
            delivered = delivered_roles(ps.granted_agents, outputs, ps.start_time_ms)
        roles = set(self.info.roles)
        return ClaimFacts(status=c.status, note=st.note, held=held, waiting_for_person=waiting,
                          queued=c.grant_queue is not None and bool(c.grant_queue.agent_name),
                          in_phase=ps is not None, granted=tuple(ps.granted_agents) if ps else (),
                          delivered=delivered, all_bid=bool(roles) and roles <= set(st.bids))

    def claim_stage(self, st: ClaimState) -> Stage:
        return claim_stage(self.claim_facts(st.claim.artefact_id, st))

    def stage_of(self, artefact_id: str) -> Stage:
        """Where an artefact stands (its speaking claim's stage): what ``holt explain ARTEFACT`` says."""
        return claim_stage(self.claim_facts(artefact_id, self.claim_for(artefact_id)))

    def newest_artefact(self) -> str | None:
        if not self.artefacts:
            return None
        return max(self.artefacts.values(), key=lambda a: (a.created_at_ms, a.id)).id

    def workflow_size(self, root: str) -> int:
        return len(self._wf_members.get(root, ()))

    def workflow_status(self, root: str) -> str:
        """held | waiting (for a person) | failed | done | running: one word for a workflow's header."""
        if any(self.root_of(h.artefact_id) == root for h in self.debug.held
               if not h.released and h.artefact_id in self.artefacts):  # as Stage.HELD: an unreleased hold
            return "held"
        if any(self.root_of(i.artefact_id) == root for i in self.inbox.items
               if i.status == "open" and i.artefact_id in self.artefacts):
            return "waiting"
        kinds = {self.artefacts[m].structural_type for m in self._wf_members.get(root, ())}
        if StructuralType.FAILURE in kinds:
            return "failed"
        if StructuralType.TERMINAL in kinds:
            return "done"
        return "running"

    def workflow_count(self) -> int:
        self.rows()
        return len(self._wf_order)

    def open_claims(self) -> int:
        """Open and not dormant (a dormant claim keeps its pending status but is off the open set)."""
        return sum(1 for s in self.claims.values() if is_active(s.claim.status, s.note))

    def agents(self) -> list[AgentRow]:
        names: set[str] = set(self.info.roles)
        holding: dict[str, str] = {}
        for s in self.claims.values():
            if s.claim.status.is_open:
                for name in s.claim.granted_agents:
                    holding[name] = s.claim.id
                names.update(s.bids)
        names.update(self._bid_claims)
        names.update(r for r in self.agent_activity if r in self.info.roles or r in self._bid_claims)
        rows: list[AgentRow] = []
        for name in sorted(names):
            if self.info.status not in ("running", "unknown"):
                health = self.info.status
            elif not self.info.orchestrator_alive and self.info.status == "running":
                health = "no orchestrator"
            elif name in holding:
                health = "busy"
            else:
                health = "idle"
            rows.append(AgentRow(name, health, holding.get(name, ""), self.agent_activity.get(name, 0),
                                 len(self._bid_claims.get(name, ()))))
        return rows

    def neighbourhood(
        self, artefact_id: str, *, depth: int = 2, limit: int = 50
    ) -> tuple[list[str], list[tuple[str, str]]]:
        """Nodes (ids) and edges (source -> derived) within ``depth`` hops of an artefact, at most ``limit``."""
        if artefact_id not in self.artefacts:
            return [], []
        nodes = [artefact_id]
        seen = {artefact_id}
        frontier_up = [artefact_id]
        frontier_down = [artefact_id]
        for _ in range(depth):
            nxt_up: list[str] = []
            for n in frontier_up:
                for src in self.artefacts[n].source_artefacts:
                    if src in self.artefacts and src not in seen and len(nodes) < limit:
                        seen.add(src)
                        nodes.append(src)
                        nxt_up.append(src)
            nxt_down: list[str] = []
            for n in frontier_down:
                for child in self.children.get(n, []):
                    if child in self.artefacts and child not in seen and len(nodes) < limit:
                        seen.add(child)
                        nodes.append(child)
                        nxt_down.append(child)
            frontier_up, frontier_down = nxt_up, nxt_down
        edges = [(src, n) for n in nodes for src in self.artefacts[n].source_artefacts if src in seen]
        return nodes, edges

    def why_not_moving(self, s: ClaimState) -> list[str]:
        """Reasons a claim is not advancing, from what the blackboard shows (the debug plane adds holds)."""
        c = s.claim
        if not is_active(c.status, s.note):
            return []
        out: list[str] = []
        if s.note:
            out.append(s.note)
        roles = set(self.info.roles)
        missing = sorted(roles - set(s.bids))
        if missing and c.status == ClaimStatus.PENDING_REVIEW and c.phase_state is None:
            out.append("waiting for bids from: " + ", ".join(missing))
        if c.phase_state is not None:
            ps = c.phase_state
            waiting = sorted(set(ps.granted_agents) - set(ps.received))
            if waiting:
                out.append(f"{ps.current.value} phase: waiting for work from " + ", ".join(waiting))
        if c.grant_queue is not None and c.grant_queue.agent_name:
            out.append(f"queued for {c.grant_queue.agent_name} (position {c.grant_queue.position})")
        if not self.info.orchestrator_alive and self.info.status == "running":
            out.append("no orchestrator holds the instance lock")
        for h in self.debug.held:
            if h.claim_id == c.id:
                out.append(f"held by the debugger: {h.would} ({h.reason})")
        for item in self.inbox.items:
            if item.claim_id == c.id and item.status == "open":
                out.append(f"waiting for a human: {item.kind} {item.title}")
        return out or ["nothing known holds it: the orchestrator should act on the next event"]


def _newest(artefacts: list[ArtefactRecord], keep: int) -> list[ArtefactRecord]:
    """The ``keep`` newest by (created, id), oldest first: ``sorted(...)[-keep:]`` without building a key tuple
    for every artefact (the times alone find the cut; only artefacts at or above it are sorted)."""
    if len(artefacts) <= keep:
        return sorted(artefacts, key=_BY_CREATED)
    cut = sorted(map(_CREATED, artefacts))[-keep]
    return sorted([a for a in artefacts if a.created_at_ms >= cut], key=_BY_CREATED)[-keep:]


def is_question(a: ArtefactRecord) -> bool:
    return a.structural_type in (StructuralType.QUESTION, StructuralType.ANSWER)


def short_id(ident: str) -> str:
    return _short(ident)
