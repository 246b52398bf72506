"""The artefact filters shared by ``hoard`` and ``watch`` (protocol 7.5): all given conditions must hold."""

from __future__ import annotations

from dataclasses import dataclass

from holt_core.globmatch import go_match
from holt_core.record_basics import ArtefactFields
from holt_core.timespec import parse_time_range


@dataclass(frozen=True)
class ArtefactFilter:
    type_glob: str | None = None  # Go filepath.Match pattern on ``type``
    agent: str | None = None  # exact ``produced_by_role``
    since_ms: int | None = None  # inclusive
    until_ms: int | None = None  # inclusive

    @classmethod
    def from_flags(
        cls,
        *,
        type_glob: str | None,
        agent: str | None,
        since: str | None,
        until: str | None,
        now_ms: int,
    ) -> ArtefactFilter:
        """From CLI flag values; empty strings mean "not given", as with the Go CLI."""
        since_ms, until_ms = parse_time_range(since or None, until or None, now_ms)
        return cls(type_glob=type_glob or None, agent=agent or None, since_ms=since_ms, until_ms=until_ms)

    @property
    def is_active(self) -> bool:
        return any(v is not None for v in (self.type_glob, self.agent, self.since_ms, self.until_ms))

    @property
    def has_time_bound(self) -> bool:
        return self.since_ms is not None or self.until_ms is not None

    def matches(self, artefact: ArtefactFields, *, keep_zero_time: bool) -> bool:
        """Whether ``artefact`` passes; ``keep_zero_time`` decides for artefacts without a timestamp.

        Artefacts written before timestamps existed have ``created_at_ms`` 0: ``hoard`` drops them once a
        time bound is set, ``watch`` keeps them.
        """
        if self.type_glob is not None and not go_match(self.type_glob, artefact.type):
            return False
        if self.agent is not None and artefact.produced_by_role != self.agent:
            return False
        created = artefact.created_at_ms
        if created == 0 and self.has_time_bound:
            return keep_zero_time
        if self.since_ms is not None and created < self.since_ms:
            return False
        return not (self.until_ms is not None and created > self.until_ms)
