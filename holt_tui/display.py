"""How model data looks on screen, as rich ``Text`` (no Textual here). Every Redis string is sanitised."""

from __future__ import annotations

import json
from collections import OrderedDict
from collections.abc import Mapping
from datetime import datetime, tzinfo

from rich.style import Style
from rich.text import Text

from holt_core.artefact_record import ArtefactRecord
from holt_core.audit import AuditRecord
from holt_core.claim_stage import STAGE_TEXT, Stage, is_active
from holt_core.models import StructuralType, is_approval
from holt_core.render import short_age
from holt_core.sanitise import sanitise_text
from holt_tui.feed import ClaimState
from holt_tui.layout import layered_layout
from holt_tui.model import AgentRow, LiveModel, LogLine, Row
from holt_tui.payload import PayloadText, payload_diff, pretty_payload
from holt_tui.sources import Breakpoint, HeldDecision, InboxItem


def s(text: str, limit: int | None = None) -> str:
    """Sanitised, one line."""
    return sanitise_text(text, max_len=limit)


_GLYPH = {
    StructuralType.STANDARD: ("●", "cyan"),
    StructuralType.REVIEW: ("◆", "magenta"),
    StructuralType.QUESTION: ("?", "yellow"),
    StructuralType.ANSWER: ("!", "green"),
    StructuralType.FAILURE: ("✗", "red"),
    StructuralType.TERMINAL: ("■", "bold green"),
}
_STATUS_STYLE = {
    "complete": "green", "terminated": "red", "pending_review": "yellow", "pending_parallel": "yellow",
    "pending_exclusive": "yellow", "pending_assignment": "yellow",
}


_STAGE_STYLE = {Stage.HELD: "bold red", Stage.WAITING: "bold yellow", Stage.DONE: "green", Stage.TERMINATED: "red",
                Stage.DORMANT: "dim"}
_WF_STYLE = {"held": "bold red", "waiting": "bold yellow", "failed": "red", "done": "green", "running": "cyan"}


def age(ms: int, now_ms: int) -> str:
    return short_age(ms, now_ms)


def clock(ms: int, tz: tzinfo) -> str:
    if ms <= 0:
        return "--:--:--"
    return datetime.fromtimestamp(ms / 1000, tz).strftime("%H:%M:%S")


def preview(payload: str, limit: int = 40) -> str:
    return s(payload[: limit * 4].replace("\n", " "), limit)


def claim_badge(model: LiveModel, artefact_id: str) -> Text:
    """The artefact's claim as a badge, from the stage ``holt explain`` derives too (holt_core/claim_stage.py)."""
    st = model.claim_for(artefact_id)
    stage = model.stage_of(artefact_id)
    t = Text("")
    if st is not None:
        status = st.claim.status.value
        short = {Stage.DONE: "done", Stage.TERMINATED: "term", Stage.DORMANT: "dormant"}.get(stage) or {
            "pending_review": "review", "pending_parallel": "parallel", "pending_exclusive": "exclusive",
            "pending_assignment": "assign"}.get(status, status)
        t.append(f" [{short}]", style="dim" if stage is Stage.DORMANT else _STATUS_STYLE.get(status, ""))
    if stage is Stage.HELD:
        t.append(" ⏸ held", style="bold red")
    elif stage is Stage.WAITING:
        t.append(" ✉ waiting", style="bold yellow")
    return t


def graph_row(model: LiveModel, row: Row, now_ms: int, tz: tzinfo) -> Text:
    kind, ident, depth = row
    a = model.artefacts.get(ident)
    if a is None:
        return Text("?")
    if kind == "w":
        folded = ident in model.collapsed
        t = Text("▶ " if folded else "▼ ", style="bold")
        status = model.workflow_status(ident)
        t.append(f"[{status}] ", style=_WF_STYLE.get(status, ""))
        t.append(f"workflow {ident[:8]} ", style="bold")
        t.append(s(a.type, 30), style="bold cyan")
        t.append(f"  {preview(a.payload, 40)}", style="italic")
        t.append(f"  ({model.workflow_size(ident)}{' folded' if folded else ''})  {clock(a.created_at_ms, tz)}",
                 style="dim")
        return t
    glyph, style = _GLYPH.get(a.structural_type, ("·", ""))
    t = Text("  " if depth == 1 else "  │ └ ")
    t.append(glyph + " ", style=style)
    if depth == 1:
        t.append(s(a.type, 28), style="bold")
        t.append(f" v{a.version}", style="dim")
    else:
        t.append(f"v{a.version}", style="bold")
    t.append(f" {a.id[:8]}", style="dim")
    t.append(f" {s(a.produced_by_role, 20)}", style="blue")
    if a.structural_type is StructuralType.REVIEW:
        t.append(" approve" if is_approval(a.payload) else " feedback", style="green" if is_approval(a.payload)
                 else "red")
    extra = [src for src in a.source_artefacts[1:]] if depth == 2 else list(a.source_artefacts)
    if extra and a.structural_type is not StructuralType.REVIEW:
        marks = []
        for src in extra[:3]:
            parent = model.artefacts.get(src)
            marks.append(f"{s(parent.type, 16)} {src[:6]}" if parent else src[:8])
        more = f" +{len(extra) - 3}" if len(extra) > 3 else ""
        t.append("  ← " + ", ".join(marks) + more, style="dim")
    t.append_text(claim_badge(model, a.id))
    t.append(f"  {age(a.created_at_ms, now_ms)}", style="dim")
    return t


SEARCH_STYLE = "bold black on yellow"


def highlight_search(t: Text, words: tuple[str, ...], payload: str) -> None:
    """Highlight the search words in a row; a match only in the payload is shown as a snippet after the row."""
    plain = t.plain.lower()
    if any(w in plain for w in words):
        t.highlight_words(words, SEARCH_STYLE, case_sensitive=False)
        return
    low = payload[:200_000].lower()
    for w in words:
        at = low.find(w)
        if at >= 0:
            start = max(at - 20, 0)
            snippet = s(payload[start:at + len(w) + 30].replace("\n", " "), 80)
            tail = Text("  ⌕ …" if start else "  ⌕ ", style="dim")
            tail.append(snippet, style="italic")
            tail.highlight_words(words, SEARCH_STYLE, case_sensitive=False)
            t.append_text(tail)
            return


# ------------------------------------------------------------------------------------------------ inspector


class PayloadCache:
    """Pretty payloads and diffs per artefact id (artefacts never change, so entries never go stale)."""

    def __init__(self, max_chars: int, size: int = 64) -> None:
        self.max_chars = max_chars
        self._pretty: OrderedDict[str, PayloadText] = OrderedDict()
        self._diff: OrderedDict[str, list[str]] = OrderedDict()
        self.size = size

    def pretty(self, a: ArtefactRecord) -> PayloadText:
        hit = self._pretty.get(a.id)
        if hit is None:
            hit = self._pretty[a.id] = pretty_payload(a.payload, max_chars=self.max_chars)
            if len(self._pretty) > self.size:
                self._pretty.popitem(last=False)
        return hit

    def diff(self, a: ArtefactRecord, previous: ArtefactRecord) -> list[str]:
        hit = self._diff.get(a.id)
        if hit is None:
            hit = self._diff[a.id] = payload_diff(previous.payload, a.payload, max_chars=self.max_chars)
            if len(self._diff) > self.size:
                self._diff.popitem(last=False)
        return hit


def _section(title: str) -> Text:
    return Text(f"── {title} ", style="bold underline")


def _link(t: Text, target: str) -> Text:
    """Mark a line as a link to an artefact (Enter in the Inspector jumps to it)."""
    t.stylize(Style(meta={"link": target}))
    return t


def link_of(t: Text) -> str | None:
    """The artefact a line links to (see ``_link``), or None."""
    for span in t.spans:
        style = span.style
        if isinstance(style, Style) and "link" in style.meta:
            target = style.meta["link"]
            return target if isinstance(target, str) else None
    return None


def _kv(key: str, value: str, style: str = "") -> Text:
    t = Text(f"{key:<14}", style="dim")
    t.append(value, style=style)
    return t


def _claim_lines(model: LiveModel, st: ClaimState, now_ms: int, tz: tzinfo,
                 explained: Mapping[str, list[str]] | None = None) -> list[Text]:
    c = st.claim
    stage = model.claim_stage(st)
    out = [_kv("claim", c.id), _kv("status", c.status.value, _STATUS_STYLE.get(c.status.value, "")),
           _kv("state", STAGE_TEXT[stage], _STAGE_STYLE.get(stage, ""))]
    if c.phase_state is not None:
        ps = c.phase_state
        out.append(_kv("phase", f"{ps.current.value} (since {age(ps.start_time_ms, now_ms)})"))
    else:
        out.append(_kv("phase", "-"))
    bids = st.bids or (c.phase_state.all_bids if c.phase_state else {})
    if bids:
        out.append(Text("bids", style="dim"))
        for agent, bid in sorted(bids.items()):
            out.append(Text(f"  {s(agent, 30):<24} {s(bid, 20)}"))
    else:
        out.append(_kv("bids", "none yet"))
    grants = [("review", a) for a in c.granted_review_agents] + [("parallel", a) for a in c.granted_parallel_agents]
    if c.granted_exclusive_agent:
        grants.append(("exclusive", c.granted_exclusive_agent))
    out.append(_kv("grants", ", ".join(f"{s(a, 30)} ({k})" for k, a in grants) or "none"))
    if c.termination_reason:
        out.append(_kv("terminated", s(c.termination_reason, 200), "red"))
    if c.additional_context_ids:
        out.append(_kv("context", ", ".join(i[:8] for i in c.additional_context_ids)))
    timeline = model.claim_timeline(c.id)
    if timeline:
        out.append(Text("timeline", style="dim"))
        for ts, what in timeline:
            out.append(Text(f"  {clock(ts, tz) if ts else '  --    '}  {s(what, 200)}"))
    if is_active(c.status, st.note):
        # Live: the debug plane's explanation (it sees holds, queues, running tools); until it arrives, and in
        # replay or offline, what the model itself can tell.
        reasons = explained.get(c.id) if explained is not None else None
        out.append(Text("why not moving" + (" (asking the orchestrator's view...)" if explained is not None
                                            and reasons is None else ""), style="dim"))
        for r in reasons if reasons is not None else model.why_not_moving(st):
            out.append(Text(f"  • {s(r, 200)}", style="yellow"))
    return out


def context_chain(model: LiveModel, a: ArtefactRecord, limit: int = 12) -> list[ArtefactRecord]:
    """The first-source chain up to the workflow's goal (what the agent saw as context)."""
    chain: list[ArtefactRecord] = []
    current: ArtefactRecord | None = a
    seen: set[str] = set()
    while current is not None and current.source_artefacts and len(chain) < limit:
        parent_id = current.source_artefacts[0]
        if parent_id in seen:
            break
        seen.add(parent_id)
        current = model.artefacts.get(parent_id)
        if current is not None:
            chain.append(current)
    return chain


def inspector_lines(model: LiveModel, artefact_id: str | None, cache: PayloadCache, now_ms: int,
                    tz: tzinfo, explained: Mapping[str, list[str]] | None = None) -> list[Text]:
    """``explained``: claim id -> reasons from the debug plane (live attach); None uses the model's own."""
    if artefact_id is None or artefact_id not in model.artefacts:
        return [Text("select an artefact to inspect it", style="dim italic")]
    a = model.artefacts[artefact_id]
    glyph, style = _GLYPH.get(a.structural_type, ("·", ""))
    out = [Text(f"{glyph} {s(a.type, 60)}  v{a.version}", style=f"bold {style}"),
           _kv("id", a.id), _kv("thread", a.logical_id), _kv("kind", a.structural_type.value),
           _kv("produced by", s(a.produced_by_role, 60)),
           _kv("created", f"{clock(a.created_at_ms, tz)} ({age(a.created_at_ms, now_ms)} ago)")]
    stage = model.stage_of(a.id)
    out.append(_kv("state", STAGE_TEXT[stage], _STAGE_STYLE.get(stage, "")))
    if a.source_artefacts:
        out.append(Text("derived from", style="dim"))
        for src in a.source_artefacts:
            p = model.artefacts.get(src)
            line = Text(f"  → {src[:8]} {s(p.type, 30)} v{p.version} by {s(p.produced_by_role, 20)}" if p
                        else f"  {src[:8]} (not loaded)")
            out.append(_link(line, src) if p else line)
    kids = model.children.get(a.id, [])
    if kids:
        out.append(Text(f"derived by ({len(kids)})", style="dim"))
        for k in kids[:8]:
            kid = model.artefacts[k]
            out.append(_link(Text(f"  → {k[:8]} {s(kid.type, 30)} v{kid.version} by {s(kid.produced_by_role, 20)}"),
                             k))
        if len(kids) > 8:
            out.append(Text(f"  … {len(kids) - 8} more (2 shows the graph)", style="dim"))
    chain = context_chain(model, a)
    if chain:
        out.append(Text("context chain", style="dim"))
        out.extend(_link(Text(f"  ↑ {c.id[:8]} {s(c.type, 30)} v{c.version}"), c.id) for c in chain)
    claims = model.claims_of(a.id)
    out.append(Text(""))
    out.append(_section(f"claims ({len(claims)})"))
    if not claims:
        out.append(Text("no claim on this artefact", style="dim"))
        reasons = explained.get(a.id) if explained is not None else None
        for r in reasons or ():  # live: what the debug plane says about the artefact itself (a held creation)
            out.append(Text(f"  • {s(r, 200)}", style="yellow"))
    for st in claims:
        out.extend(_claim_lines(model, st, now_ms, tz, explained))
        out.append(Text(""))
    pretty = cache.pretty(a)
    out.append(Text(""))
    out.append(_section("payload" + (" (JSON)" if pretty.is_json else "")))
    if pretty.note:
        out.append(Text(pretty.note, style="yellow"))
    out.extend(Text(line) for line in pretty.lines)
    previous = model.previous_version(a)
    if previous is not None:
        out.append(Text(""))
        out.append(_section(f"diff against v{previous.version} ({previous.id[:8]})"))
        diff = cache.diff(a, previous)
        if not diff:
            out.append(Text("payload unchanged", style="dim"))
        for diff_line in diff:
            style = "green" if diff_line.startswith("+") else "red" if diff_line.startswith("-") else \
                "cyan" if diff_line.startswith("@@") else ""
            out.append(Text(diff_line, style=style))
    return out


def neighbourhood_lines(model: LiveModel, artefact_id: str | None) -> list[Text]:
    if artefact_id is None or artefact_id not in model.artefacts:
        return [Text("select an artefact to see what it derives from and what derives from it", style="dim italic")]
    nodes, edges = model.neighbourhood(artefact_id)
    labels = {}
    for n in nodes:
        a = model.artefacts[n]
        glyph, _ = _GLYPH.get(a.structural_type, ("·", ""))
        labels[n] = (f"{glyph} {s(a.type, 18)}", f"v{a.version} {n[:8]} {s(a.produced_by_role, 8)}")
    drawing = layered_layout(nodes, edges, labels, focus=artefact_id)
    out: list[Text] = []
    for y, line in enumerate(drawing.lines):
        t = Text(line)
        if drawing.focus_box is not None:
            x, y0, w, h = drawing.focus_box
            if y0 <= y < y0 + h:
                t.stylize("bold yellow", x, x + w)
        out.append(t)
    return out


# ------------------------------------------------------------------------------------------------ other lists


def event_line(line: LogLine, tz: tzinfo) -> Text:
    t = Text(f"{clock(line.ts_ms, tz)} " if line.ts_ms else "         ", style="dim")
    style = {"artefact": "cyan", "review_rejected": "red", "review_approved": "green", "claim_granted": "bold",
             "malformed_record": "bold red", "claim_terminated": "red"}.get(line.kind, "")
    t.append(f"{s(line.kind, 24):<22} ", style=style)
    t.append(s(line.text, 400))
    return t


def audit_line(r: AuditRecord, tz: tzinfo) -> Text:
    t = Text(f"#{r.seq:<5} {clock(r.ts_ms, tz)} ", style="dim")
    t.append(f"{s(r.operator, 24)} ", style="blue")
    t.append(f"{s(r.action, 30)} ", style="bold")
    t.append(s(r.subject, 60))
    if r.details:
        t.append("  " + s(json.dumps(r.details, ensure_ascii=False, sort_keys=True), 200), style="dim")
    return t


def agent_line(a: AgentRow, now_ms: int) -> Text:
    style = {"busy": "bold green", "idle": "", "no orchestrator": "red", "stopped": "red"}.get(a.health, "yellow")
    t = Text(f"{s(a.name, 24):<24} ")
    t.append(f"{a.health:<16}", style=style)
    t.append(f"{a.claim_id[:8] or '-':<10}")
    t.append(f"bids {a.bids:<5} last {age(a.last_activity_ms, now_ms)}", style="dim")
    return t


def inbox_line(i: InboxItem, now_ms: int) -> Text:
    icon = "?" if i.kind == "question" else "⚖"
    t = Text(f"{icon} {age(i.created_ms, now_ms):>4} ", style="bold")
    if i.risk:
        t.append(f"[{s(i.risk, 10)}] ", style="red" if i.risk in ("high", "critical") else "yellow")
    t.append(s(i.title, 120))
    t.append(f"  {s(i.requester, 30)}", style="dim")
    if i.status != "open":
        t.append(f"  {s(i.status, 16)}", style="green")
    return t


def breakpoint_line(b: Breakpoint) -> Text:
    t = Text("● " if b.enabled else "○ ", style="red" if b.enabled else "dim")
    t.append(f"{s(b.type_glob, 40)}", style="bold")
    if b.conditions:
        t.append(" " + " ".join(f"{s(k, 20)}={s(v, 40)}" for k, v in sorted(b.conditions.items())))
    t.append(f"  {b.action}  hits {b.hits}", style="dim")
    return t


def held_workflow(model: LiveModel, h: HeldDecision) -> str:
    """The workflow a held decision belongs to, as its goal: ``Sourdough bread (00000001)``."""
    if h.artefact_id not in model.artefacts:
        return "?"
    root = model.artefacts[model.root_of(h.artefact_id)]
    return f"{preview(root.payload, 24)} ({root.id[:8]})"


def held_role(h: HeldDecision) -> str:
    if h.role:
        return h.role
    for word in (" to ", " for "):
        _, sep, tail = h.would.partition(word)
        if sep and tail:
            return tail.split()[0].strip(",.")
    return "-"


def held_row(model: LiveModel, h: HeldDecision, now_ms: int) -> Text:
    """One held decision on one line: age, decision and role, artefact, workflow, claim, bids."""
    t = Text("⏸ ", style="bold red")
    t.append(f"{age(h.held_since_ms, now_ms):>4} ", style="bold")
    t.append(f"{s(h.kind, 24)}", style="magenta")
    t.append(f" → {s(held_role(h), 24)}", style="blue")
    a = model.artefacts.get(h.artefact_id)
    t.append(f" │ {s(a.type, 24)} v{a.version}" if a else f" │ {h.artefact_id[:8]}", style="bold")
    t.append(" │ wf ")
    t.append(s(held_workflow(model, h), 40), style="cyan")
    t.append(f" │ claim {h.claim_id[:8]}")
    if h.bids:
        t.append(" │ bids " + " ".join(f"{s(k, 20)}={s(v, 12)}" for k, v in sorted(h.bids.items())), style="dim")
    if h.released:
        t.append(" (released)", style="green")
    return t


def held_lines(model: LiveModel, h: HeldDecision, now_ms: int) -> list[Text]:
    """The selected held decision in full (nothing cut: one fact a line)."""
    out = [Text(f"⏸ {s(h.kind, 30)}: {s(h.would, 200)}", style="bold red"),
           _kv("workflow", s(held_workflow(model, h), 80)),
           _kv("claim", h.claim_id), _link(_kv("artefact", h.artefact_id), h.artefact_id),
           _kv("role", s(held_role(h), 60)), _kv("held by", s(h.reason, 200)),
           _kv("held for", age(h.held_since_ms, now_ms)), _kv("hold id", h.id)]
    if h.bids:
        out.append(Text("bids", style="dim"))
        for agent, bid in sorted(h.bids.items()):
            out.append(Text(f"  {s(agent, 30):<24} {s(bid, 20)}"))
    else:
        out.append(_kv("bids", "none"))
    return out
