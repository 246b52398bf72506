"""Announcements on ``holt:{inst}:debug:events`` so a UI can follow holds, releases and changes live."""

from __future__ import annotations

from enum import StrEnum
from typing import Any

from pydantic import BaseModel

from holt_core.keys import Keys
from holt_core.models import dumps
from holt_core.transaction import Tx


class DebugEventType(StrEnum):
    HELD = "decision_held"
    HELD_UPDATED = "held_decision_updated"
    RELEASED = "decision_released"
    CARRIED_OUT = "held_decision_carried_out"
    SKIPPED = "decision_skipped"
    BREAKPOINT_ADDED = "breakpoint_added"
    BREAKPOINT_REMOVED = "breakpoint_removed"
    BREAKPOINT_CHANGED = "breakpoint_changed"
    MODE_CHANGED = "mode_changed"
    LEASE_CHANGED = "lease_changed"
    CLAIM_TERMINATED = "claim_terminated_by_operator"
    HOLD_DROPPED = "held_decision_dropped"  # its claim closed or it was superseded
    REVIEW_INJECTED = "review_injected"
    RUN_TO_TERMINAL = "run_to_terminal"  # a workflow carries on to its Terminal (holt_core/debug/runs.py)
    RUN_ENDED = "run_to_terminal_reached"


class DebugEvent(BaseModel):
    event: DebugEventType
    data: dict[str, Any] = {}

    def to_json(self) -> str:
        return dumps({"event": self.event.value, "data": self.data})


def announce(tx: Tx, keys: Keys, event: DebugEventType, **data: Any) -> Tx:
    """Publish the event in the same atomic step as the change it announces."""
    return tx.publish(keys.debug_events, DebugEvent(event=event, data=data).to_json())
