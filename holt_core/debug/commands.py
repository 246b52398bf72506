"""Durable commands for the orchestrator: a Redis Stream it consumes from a stored cursor.

Clients make every change in Redis themselves (atomically, with its audit record) and append a command
in the same step; the command only tells the orchestrator to look again and carry out what was
released. A command sent while no orchestrator runs waits in the stream, and a restarted orchestrator
re-reads the whole debug state before it grants anything, so nothing is lost either way.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Any

from pydantic import BaseModel

from holt_core.keys import Keys
from holt_core.transaction import Tx

KEEP_COMMANDS = 10_000  # the audit trail is the record; the stream only needs what is not yet consumed


class CommandKind(StrEnum):
    SYNC = "sync"  # re-read the debug state; carry out released decisions
    FORGET = "forget"  # a claim was closed by an operator: stop tracking it


class Command(BaseModel):
    kind: CommandKind
    by: str
    subject: str = ""
    claim_id: str = ""

    def fields(self) -> dict[str, str]:
        return {"kind": self.kind.value, "by": self.by, "subject": self.subject, "claim_id": self.claim_id}

    @classmethod
    def from_fields(cls, fields: dict[str, Any]) -> Command:
        return cls.model_validate({str(k): str(v) for k, v in fields.items()})


def send(tx: Tx, keys: Keys, command: Command) -> Tx:
    return tx.xadd(keys.debug_commands, command.fields())
