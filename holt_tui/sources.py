"""What the Inbox and Debugger panels need from the human-in-the-loop and debugging planes.

The TUI talks to those planes only through the two protocols below, so it builds and runs without them
(``NullInboxSource`` / ``NullDebugSource`` say "unsupported" and every control key is disabled). An
implementation backed by ``holt_core.hitl`` / ``holt_core.debug`` plugs in through ``attach_sources``.

Contract for implementations:
- ``snapshot()`` returns the whole current state (it is small: open requests, held decisions, breakpoints);
  the reader calls it once after each scan and again whenever a message arrives on one of ``channels()``
  (the reader subscribes to them on its one pub/sub connection), coalesced to at most 10 calls a second.
- Every command returns an ``ActionResult`` and never raises for an expected refusal (already answered,
  lease held by someone else, not permitted): ``ok=False`` and a one-line ``message`` the UI shows.
- Strings in the dataclasses are raw (as stored); the UI sanitises them when it draws.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass, field
from typing import Any, Protocol, runtime_checkable


@dataclass(frozen=True)
class ActionResult:
    ok: bool
    message: str


UNSUPPORTED = ActionResult(False, "not available: this instance has no human-in-the-loop / debugging plane yet")


# ------------------------------------------------------------------------------------------------ inbox


@dataclass(frozen=True)
class InboxItem:
    id: str  # request id (a question's artefact id or an approval request id)
    kind: str  # "question" | "approval"
    title: str  # the question text's first line, or the approval's action + target
    body: str = ""  # full question text, or the plan / preview of an approval
    requester: str = ""  # role (or workflow/claim) that asked
    claim_id: str = ""
    artefact_id: str = ""
    created_ms: int = 0  # age is computed by the UI from its clock
    risk: str = ""  # approvals: low | medium | high | critical
    deadline_ms: int = 0  # 0 = none
    status: str = "open"  # open | answered | approved | rejected | expired | cancelled | bypassed | superseded
    digest: str = ""  # approvals: sha256 of the exact payload the approval covers
    needs_justification: bool = False


@dataclass(frozen=True)
class InboxSnapshot:
    supported: bool = False
    items: tuple[InboxItem, ...] = ()  # oldest first

    def to_json(self) -> dict[str, Any]:
        return {"supported": self.supported, "items": [asdict(i) for i in self.items]}

    @classmethod
    def from_json(cls, obj: dict[str, Any]) -> InboxSnapshot:
        return cls(bool(obj.get("supported")), tuple(InboxItem(**i) for i in obj.get("items", [])))


@runtime_checkable
class InboxSource(Protocol):
    def channels(self) -> list[str]:
        """Pub/sub channels whose messages mean "the inbox changed" (may be empty)."""
        ...

    async def snapshot(self) -> InboxSnapshot: ...

    async def answer(self, item_id: str, text: str) -> ActionResult: ...

    async def approve(self, item_id: str, justification: str) -> ActionResult: ...

    async def reject(self, item_id: str, reason: str) -> ActionResult: ...


# ------------------------------------------------------------------------------------------------ debugger


@dataclass(frozen=True)
class HeldDecision:
    id: str  # pending-decision id
    claim_id: str
    artefact_id: str = ""
    kind: str = ""  # create_claim | grant_review | grant_parallel | grant_exclusive | phase_transition | ...
    would: str = ""  # what carrying it out would do, one line ("grant exclusive to Formatter")
    reason: str = ""  # which breakpoint / rule held it
    bids: dict[str, str] = field(default_factory=dict)
    held_since_ms: int = 0
    role: str = ""  # the role(s) the decision grants ("" = none or unknown)
    released: bool = False  # released (step/continue), the orchestrator carries it out next


@dataclass(frozen=True)
class Breakpoint:
    id: str
    type_glob: str = "*"
    conditions: dict[str, str] = field(default_factory=dict)  # structural_type, role, granted_role, status, ...
    action: str = "hold"  # hold (that claim) | stop (full control)
    enabled: bool = True
    hits: int = 0


@dataclass(frozen=True)
class DebugSnapshot:
    supported: bool = False
    held: tuple[HeldDecision, ...] = ()  # oldest first
    breakpoints: tuple[Breakpoint, ...] = ()
    full_control: bool = False  # the whole instance waits for a step
    lease_holder: str = ""  # operator holding the control lease ("" = nobody)
    runs: tuple[str, ...] = ()  # root goals of workflows running to their Terminal (holt_core/debug/runs.py)

    def to_json(self) -> dict[str, Any]:
        return {
            "supported": self.supported,
            "held": [asdict(h) for h in self.held],
            "breakpoints": [asdict(b) for b in self.breakpoints],
            "full_control": self.full_control,
            "lease_holder": self.lease_holder,
            "runs": list(self.runs),
        }

    @classmethod
    def from_json(cls, obj: dict[str, Any]) -> DebugSnapshot:
        return cls(
            supported=bool(obj.get("supported")),
            held=tuple(HeldDecision(**h) for h in obj.get("held", [])),
            breakpoints=tuple(Breakpoint(**b) for b in obj.get("breakpoints", [])),
            full_control=bool(obj.get("full_control")),
            lease_holder=str(obj.get("lease_holder", "")),
            runs=tuple(str(r) for r in obj.get("runs", [])),
        )


@dataclass(frozen=True)
class LeaseState:
    held: bool  # this TUI holds the control lease
    holder: str = ""  # who holds it (this operator or someone else)
    message: str = ""


@runtime_checkable
class DebugSource(Protocol):
    def channels(self) -> list[str]: ...

    def capabilities(self) -> frozenset[str]:
        """Subset of CAPABILITIES this source can do; the UI disables the keys of the rest."""
        ...

    async def snapshot(self) -> DebugSnapshot: ...

    async def acquire_lease(self) -> LeaseState:
        """Take the control lease (and keep refreshing it until ``release_lease``)."""
        ...

    async def release_lease(self) -> None: ...

    async def step(self, decision_id: str) -> ActionResult: ...

    async def continue_(self, decision_id: str) -> ActionResult: ...

    async def skip(self, decision_id: str) -> ActionResult: ...

    async def run_to_terminal(self, decision_id: str) -> ActionResult:
        """Carry on the decision's workflow until its Terminal artefact exists; other workflows stay held."""
        ...

    async def pause(self) -> ActionResult: ...

    async def resume(self) -> ActionResult: ...

    async def toggle_breakpoint(self, type_glob: str) -> ActionResult:
        """Add a breakpoint on an artefact type glob, or toggle the one that exists for exactly that glob."""
        ...

    async def add_breakpoint(self, type_glob: str, conditions: dict[str, str], action: str) -> ActionResult: ...

    async def set_breakpoint_enabled(self, breakpoint_id: str, enabled: bool) -> ActionResult: ...

    async def delete_breakpoint(self, breakpoint_id: str) -> ActionResult: ...

    async def inject_review(self, artefact_id: str, payload: str) -> ActionResult:
        """A Review by ``human:<operator>``; payload ``{}`` approves, anything else is feedback."""
        ...

    async def terminate(self, claim_id: str, reason: str) -> ActionResult: ...

    async def explain(self, claim_id: str) -> list[str]:
        """Why this claim is not moving, one reason a line (held, awaiting approval, missing bids, queue)."""
        ...


CAPABILITIES = frozenset({
    "step", "continue", "skip", "pause", "resume", "breakpoint", "inject_review", "terminate", "lease", "explain",
    "run_to_terminal",
})


class NullInboxSource:
    """No human-in-the-loop plane: an empty, unsupported inbox."""

    def channels(self) -> list[str]:
        return []

    async def snapshot(self) -> InboxSnapshot:
        return InboxSnapshot(supported=False)

    async def answer(self, item_id: str, text: str) -> ActionResult:
        return UNSUPPORTED

    async def approve(self, item_id: str, justification: str) -> ActionResult:
        return UNSUPPORTED

    async def reject(self, item_id: str, reason: str) -> ActionResult:
        return UNSUPPORTED


class NullDebugSource:
    """No debugging plane: nothing held, no breakpoints, no capabilities."""

    def channels(self) -> list[str]:
        return []

    def capabilities(self) -> frozenset[str]:
        return frozenset()

    async def snapshot(self) -> DebugSnapshot:
        return DebugSnapshot(supported=False)

    async def acquire_lease(self) -> LeaseState:
        return LeaseState(False, "", "no debugging plane: observing only")

    async def release_lease(self) -> None:
        return None

    async def step(self, decision_id: str) -> ActionResult:
        return UNSUPPORTED

    async def continue_(self, decision_id: str) -> ActionResult:
        return UNSUPPORTED

    async def skip(self, decision_id: str) -> ActionResult:
        return UNSUPPORTED

    async def run_to_terminal(self, decision_id: str) -> ActionResult:
        return UNSUPPORTED

    async def pause(self) -> ActionResult:
        return UNSUPPORTED

    async def resume(self) -> ActionResult:
        return UNSUPPORTED

    async def toggle_breakpoint(self, type_glob: str) -> ActionResult:
        return UNSUPPORTED

    async def add_breakpoint(self, type_glob: str, conditions: dict[str, str], action: str) -> ActionResult:
        return UNSUPPORTED

    async def set_breakpoint_enabled(self, breakpoint_id: str, enabled: bool) -> ActionResult:
        return UNSUPPORTED

    async def delete_breakpoint(self, breakpoint_id: str) -> ActionResult:
        return UNSUPPORTED

    async def inject_review(self, artefact_id: str, payload: str) -> ActionResult:
        return UNSUPPORTED

    async def terminate(self, claim_id: str, reason: str) -> ActionResult:
        return UNSUPPORTED

    async def explain(self, claim_id: str) -> list[str]:
        return []


@dataclass(frozen=True)
class Sources:
    inbox: InboxSource
    debug: DebugSource


def null_sources() -> Sources:
    return Sources(NullInboxSource(), NullDebugSource())


# ------------------------------------------------------------------------------------------------ deferred


class _Later:
    """Sources built on first use, and not before ``ready`` returns: an attach shows its first page before it
    loads the planes behind the sources (holt_core.hitl, holt_core.debug, redis-py for the control connection)."""

    def __init__(self, build: Callable[[], Sources], ready: Callable[[], Awaitable[None]]) -> None:
        self._build = build
        self._ready = ready
        self._sources: Sources | None = None

    async def get(self) -> Sources:
        if self._sources is None:
            await self._ready()
            if self._sources is None:  # another caller may have built them while this one waited
                self._sources = self._build()
        return self._sources


class _LaterInbox:
    def __init__(self, later: _Later, channels: list[str]) -> None:
        self._later = later
        self._channels = channels

    def channels(self) -> list[str]:
        return list(self._channels)

    async def snapshot(self) -> InboxSnapshot:
        return await (await self._later.get()).inbox.snapshot()

    async def answer(self, item_id: str, text: str) -> ActionResult:
        return await (await self._later.get()).inbox.answer(item_id, text)

    async def approve(self, item_id: str, justification: str) -> ActionResult:
        return await (await self._later.get()).inbox.approve(item_id, justification)

    async def reject(self, item_id: str, reason: str) -> ActionResult:
        return await (await self._later.get()).inbox.reject(item_id, reason)


class _LaterDebug:
    def __init__(self, later: _Later, channels: list[str], capabilities: frozenset[str]) -> None:
        self._later = later
        self._channels = channels
        self._capabilities = capabilities

    async def _debug(self) -> DebugSource:
        return (await self._later.get()).debug

    def channels(self) -> list[str]:
        return list(self._channels)

    def capabilities(self) -> frozenset[str]:
        return self._capabilities

    async def snapshot(self) -> DebugSnapshot:
        return await (await self._debug()).snapshot()

    async def acquire_lease(self) -> LeaseState:
        return await (await self._debug()).acquire_lease()

    async def release_lease(self) -> None:
        await (await self._debug()).release_lease()

    async def step(self, decision_id: str) -> ActionResult:
        return await (await self._debug()).step(decision_id)

    async def continue_(self, decision_id: str) -> ActionResult:
        return await (await self._debug()).continue_(decision_id)

    async def skip(self, decision_id: str) -> ActionResult:
        return await (await self._debug()).skip(decision_id)

    async def run_to_terminal(self, decision_id: str) -> ActionResult:
        return await (await self._debug()).run_to_terminal(decision_id)

    async def pause(self) -> ActionResult:
        return await (await self._debug()).pause()

    async def resume(self) -> ActionResult:
        return await (await self._debug()).resume()

    async def toggle_breakpoint(self, type_glob: str) -> ActionResult:
        return await (await self._debug()).toggle_breakpoint(type_glob)

    async def add_breakpoint(self, type_glob: str, conditions: dict[str, str], action: str) -> ActionResult:
        return await (await self._debug()).add_breakpoint(type_glob, conditions, action)

    async def set_breakpoint_enabled(self, breakpoint_id: str, enabled: bool) -> ActionResult:
        return await (await self._debug()).set_breakpoint_enabled(breakpoint_id, enabled)

    async def delete_breakpoint(self, breakpoint_id: str) -> ActionResult:
        return await (await self._debug()).delete_breakpoint(breakpoint_id)

    async def inject_review(self, artefact_id: str, payload: str) -> ActionResult:
        return await (await self._debug()).inject_review(artefact_id, payload)

    async def terminate(self, claim_id: str, reason: str) -> ActionResult:
        return await (await self._debug()).terminate(claim_id, reason)

    async def explain(self, claim_id: str) -> list[str]:
        return await (await self._debug()).explain(claim_id)


def deferred_sources(build: Callable[[], Sources], ready: Callable[[], Awaitable[None]], *,
                     inbox_channels: list[str], debug_channels: list[str],
                     capabilities: frozenset[str] = CAPABILITIES) -> Sources:
    """Sources that stand for ``build()``'s: what is known up front (channels, capabilities) is answered at once;
    the first call that needs the real ones waits for ``ready``, builds them once and passes every call on."""
    later = _Later(build, ready)
    return Sources(_LaterInbox(later, inbox_channels), _LaterDebug(later, debug_channels, capabilities))
