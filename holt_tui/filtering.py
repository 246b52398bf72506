"""One filter syntax for every list in the TUI (artefacts, events, audit, agents, inbox, breakpoints).

``type:Review*  agent:Drafter  kind:Question  id:1a2b  since:10m  until:...  !word  word``: every term must
hold. ``type`` is a Go ``filepath.Match`` glob (as ``holt hoard --type``); ``agent``/``role`` is exact, like
``--agent``; ``since``/``until`` use ``holt watch``'s time syntax; ``id`` is an id prefix; a bare word is a
case-insensitive substring of the line as shown, ``!word`` excludes it. A field a list does not have never
matches, so ``type:X`` on the agents list shows nothing rather than everything.
"""

from __future__ import annotations

import shlex
from dataclasses import dataclass, field

from holt_core.errors import HoltError
from holt_core.globmatch import go_match, is_valid_pattern
from holt_core.timespec import parse_time_range

FIELDS = ("type", "agent", "kind", "id", "since", "until")
_ALIASES = {"role": "agent", "t": "type", "a": "agent", "k": "kind", "st": "kind"}


@dataclass(frozen=True)
class Subject:
    """What a filter sees of one list item."""

    text: str
    type: str | None = None
    agent: str | None = None
    kind: str | None = None
    ids: tuple[str, ...] = ()
    ts_ms: int | None = None


@dataclass(frozen=True)
class ListFilter:
    source: str = ""
    type_glob: str | None = None
    agent: str | None = None
    kind: str | None = None
    id_prefix: str | None = None
    since_ms: int | None = None
    until_ms: int | None = None
    words: tuple[str, ...] = ()
    not_words: tuple[str, ...] = field(default=())

    @property
    def is_active(self) -> bool:
        return bool(self.source.strip())

    @classmethod
    def parse(cls, text: str, now_ms: int) -> ListFilter:
        """Parse filter text; a malformed term raises a HoltError whose message the UI shows."""
        try:
            terms = shlex.split(text)
        except ValueError as exc:
            raise HoltError(f"filter: {exc}") from None
        values: dict[str, str] = {}
        words: list[str] = []
        not_words: list[str] = []
        for term in terms:
            name, sep, value = term.partition(":")
            name = _ALIASES.get(name.lower(), name.lower())
            if sep and name in FIELDS:
                if not value:
                    raise HoltError(f"filter: {name}: needs a value")
                values[name] = value
            elif term.startswith("!") and len(term) > 1:
                not_words.append(term[1:].lower())
            else:
                words.append(term.lower())
        glob = values.get("type")
        if glob is not None and not is_valid_pattern(glob):
            raise HoltError(f"filter: type:{glob} is not a valid pattern")
        since_ms = until_ms = None
        if "since" in values or "until" in values:
            since_ms, until_ms = parse_time_range(values.get("since"), values.get("until"), now_ms)
        return cls(
            source=text,
            type_glob=glob,
            agent=values.get("agent"),
            kind=values.get("kind"),
            id_prefix=values.get("id", "").lower() or None,
            since_ms=since_ms,
            until_ms=until_ms,
            words=tuple(words),
            not_words=tuple(not_words),
        )

    def matches(self, s: Subject) -> bool:
        if self.type_glob is not None and (s.type is None or not go_match(self.type_glob, s.type)):
            return False
        if self.agent is not None and s.agent != self.agent:
            return False
        if self.kind is not None and (s.kind is None or s.kind.lower() != self.kind.lower()):
            return False
        if self.id_prefix is not None and not any(i.startswith(self.id_prefix) for i in s.ids):
            return False
        if self.since_ms is not None and (s.ts_ms is None or s.ts_ms < self.since_ms):
            return False
        if self.until_ms is not None and (s.ts_ms is None or s.ts_ms > self.until_ms):
            return False
        if self.words or self.not_words:
            low = s.text.lower()
            if any(w not in low for w in self.words) or any(w in low for w in self.not_words):
                return False
        return True


NO_FILTER = ListFilter()
