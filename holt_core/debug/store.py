"""Reading the debug state from Redis: one pipelined snapshot, shared by the gate and by clients.

Raw JSON strings are kept beside the decoded records: every change is guarded on the exact value it read.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from pydantic import ValidationError
from redis.asyncio import Redis

from holt_core.debug.breakpoints import Breakpoint, BreakpointStatus
from holt_core.debug.held import HeldDecision
from holt_core.debug.mode import ControlMode
from holt_core.keys import Keys


@dataclass
class DebugState:
    breakpoints: dict[str, Breakpoint] = field(default_factory=dict)
    breakpoint_raw: dict[str, str] = field(default_factory=dict)
    hits: dict[str, int] = field(default_factory=dict)
    held: dict[str, HeldDecision] = field(default_factory=dict)
    held_raw: dict[str, str] = field(default_factory=dict)
    skipped: dict[str, str] = field(default_factory=dict)  # subject -> decision signature
    stepping: set[str] = field(default_factory=set)
    mode: ControlMode = field(default_factory=ControlMode)
    mode_raw: str | None = None

    @property
    def armed(self) -> bool:
        """False when the gate has nothing to do: then every decision goes ahead at no cost."""
        return bool(
            self.mode.full_control or self.held or self.skipped or self.stepping
            or any(b.enabled for b in self.breakpoints.values())
        )

    def breakpoint_list(self) -> list[BreakpointStatus]:
        return [BreakpointStatus(**bp.model_dump(), hits=self.hits.get(bp_id, 0))
                for bp_id, bp in sorted(self.breakpoints.items(), key=lambda kv: (kv[1].created_at_ms, kv[0]))]

    def held_list(self) -> list[HeldDecision]:
        return sorted(self.held.values(), key=lambda h: (h.held_since_ms, h.subject))


async def load_state(redis: Redis, keys: Keys) -> DebugState:
    async with redis.pipeline(transaction=False) as pipe:
        pipe.smembers(keys.debug_breakpoints)
        pipe.hgetall(keys.debug_hits)
        pipe.smembers(keys.debug_held_index)
        pipe.smembers(keys.debug_skipped_index)
        pipe.smembers(keys.debug_stepping)
        pipe.get(keys.debug_mode)
        bp_ids, hits, held_ids, skipped_ids, stepping, mode_raw = await pipe.execute()
    bp_ids, held_ids, skipped_ids = sorted(bp_ids), sorted(held_ids), sorted(skipped_ids)
    async with redis.pipeline(transaction=False) as pipe:
        for bp_id in bp_ids:
            pipe.get(keys.debug_breakpoint(bp_id))
        for subject in held_ids:
            pipe.get(keys.debug_held(subject))
        for subject in skipped_ids:
            pipe.get(keys.debug_skipped(subject))
        rows = await pipe.execute()
    state = DebugState(stepping={str(s) for s in stepping}, mode_raw=mode_raw)
    state.mode = _parse_mode(mode_raw)
    for bp_id, raw in zip(bp_ids, rows[: len(bp_ids)], strict=True):
        if raw:
            try:
                state.breakpoints[bp_id] = Breakpoint.model_validate_json(raw)
                state.breakpoint_raw[bp_id] = raw
            except ValidationError:
                continue  # a record we cannot read is never a breakpoint
    rows = rows[len(bp_ids) :]
    for subject, raw in zip(held_ids, rows[: len(held_ids)], strict=True):
        if raw:
            try:
                state.held[subject] = HeldDecision.model_validate_json(raw)
                state.held_raw[subject] = raw
            except ValidationError:
                continue
    for subject, raw in zip(skipped_ids, rows[len(held_ids) :], strict=True):
        if raw:
            state.skipped[subject] = str(raw)
    for bp_id, count in hits.items():
        if str(count).lstrip("-").isdigit():
            state.hits[str(bp_id)] = int(count)
    return state


def _parse_mode(raw: str | None) -> ControlMode:
    try:
        return ControlMode.parse(raw)
    except ValidationError:
        # Unreadable: fail safe, as if the instance were under full control.
        return ControlMode(full_control=True, reason="unreadable debug mode record")
