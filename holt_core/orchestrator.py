"""Compatibility: the orchestrator lives in ``holt_core.engine``; this name stays importable."""

from __future__ import annotations

from holt_core.claims import F_CREATED, F_NOTE, F_REV, ClaimRuntime, human_feedback_claim_id
from holt_core.engine.grants import WorkerLauncher
from holt_core.engine.orchestrator import Orchestrator
from holt_core.engine.rules import go_slice
from holt_core.lock import LOCK_REFRESH_S, LOCK_TTL_S, clear_dead_lock

__all__ = ["F_CREATED", "F_NOTE", "F_REV", "LOCK_REFRESH_S", "LOCK_TTL_S", "ClaimRuntime", "Orchestrator",
           "WorkerLauncher", "clear_dead_lock", "go_slice", "human_feedback_claim_id"]
