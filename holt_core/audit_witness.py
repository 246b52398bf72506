"""Which audit records naming a person were really written with that person's credentials.

Every actor appends to the audit trail (an agent's Redis user too), so the hash chain alone cannot tell a person's
record from one an agent appended in that person's name. A record naming ``human:<operator>`` is therefore written
together with its *witness* (``Keys.audit_witness``: the record's hash, in the operator's own proof key space, which
only that operator's Redis user and the admin may write). This module decides, without Redis, which records lack a
valid witness; ``AuditTrail.verify`` reads the witnesses and applies it.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from holt_core.identity import is_operator_name, operator_of_role


@dataclass(frozen=True)
class PersonRecord:
    """An audit record whose actor is ``human:<operator>``."""

    seq: int
    entry_id: str
    operator: str  # the name after ``human:`` (may be anything in a forged record)
    hash: str

    @property
    def nameable(self) -> bool:
        """Whether the name could belong to an operator (a witness key can exist for it)."""
        return is_operator_name(self.operator)


def person_record(seq: int, entry_id: str, actor: str, digest: str) -> PersonRecord | None:
    name = operator_of_role(actor)
    return None if name is None else PersonRecord(seq, entry_id, name, digest)


@dataclass(frozen=True)
class WitnessVerdict:
    forged: PersonRecord | None = None  # the first record after ``witnessed_from`` without its witness
    reason: str = ""
    unchecked: int = 0  # records up to ``witnessed_from`` (or all, when it is unset) without a witness


def judge(records: Iterable[PersonRecord], witnesses: Mapping[int, str | None],
          witnessed_from: int | None) -> WitnessVerdict:
    """``witnesses`` maps a record's seq to its witness value (None: no witness key)."""
    unchecked = 0
    for record in records:
        value = witnesses.get(record.seq) if record.nameable else None
        if value is not None and value == record.hash:
            continue
        if witnessed_from is None or record.seq <= witnessed_from:
            unchecked += 1
            continue
        if value is None:
            why = (f"record {record.seq} names human:{record.operator}, but no witness of it was written with "
                   f"{record.operator}'s credentials: it was appended in that person's name by someone else")
        else:
            why = (f"record {record.seq} names human:{record.operator}, but its witness holds another record's "
                   "hash: the record was replaced")
        return WitnessVerdict(record, why, unchecked)
    return WitnessVerdict(unchecked=unchecked)


def parse_witnessed_from(raw: str | None) -> int | None:
    """The marker's value; anything but a decimal counts as unset (an unreadable marker never hides a forgery
    behind a large number: unset only softens the verdict to *unchecked*, and says so)."""
    return int(raw) if raw is not None and raw.isdigit() else None
