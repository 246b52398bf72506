"""What the breakpoint dialog returns, and the parsing of its conditions field (no Textual here)."""

from __future__ import annotations

import shlex
from dataclasses import dataclass, field

from holt_core.errors import InvalidInput

# Every condition the debug source accepts, with the short names the dialog and the ``:`` line also take.
CONDITION_NAMES = ("structural_type", "produced_by_role", "granted_role", "claim_status", "decision_kind",
                   "payload_regex", "hit_condition")
CONDITION_ALIASES = {"role": "produced_by_role", "status": "claim_status", "kind": "decision_kind",
                     "structural": "structural_type", "granted": "granted_role", "hit": "hit_condition",
                     "payload": "payload_regex"}


@dataclass(frozen=True)
class BreakpointForm:
    type_glob: str = "*"
    conditions: dict[str, str] = field(default_factory=dict)
    action: str = "hold"  # hold (that claim) | stop (full control)


def parse_conditions(text: str) -> dict[str, str]:
    """``role=Drafter kind=grant_review hit='>=2' payload='v[0-9]+'`` -> conditions; a bad word is one clear
    error (``payload=REGEX`` is searched in the target artefact's payload; quote it when it has spaces)."""
    try:
        words = shlex.split(text)
    except ValueError as exc:
        raise InvalidInput(f"conditions: {exc}") from None
    out: dict[str, str] = {}
    for word in words:
        name, eq, value = word.partition("=")
        if not eq or not name or not value:
            raise InvalidInput(f"condition {word!r}: write name=value (e.g. role=Drafter)")
        if name not in CONDITION_NAMES and name not in CONDITION_ALIASES:
            known = ", ".join((*CONDITION_NAMES, *CONDITION_ALIASES))
            raise InvalidInput(f"unknown condition {name!r}: one of {known}")
        if name in out:
            raise InvalidInput(f"condition {name!r} given twice")
        out[name] = value
    return out
