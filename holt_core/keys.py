"""Every Redis key and pub/sub channel name Holt uses, built in this one module.

Holt's own names (protocol section 1-2) are kept exactly so a Go client can share the blackboard;
our additions live under ``holt:{inst}:idx:*``, ``holt:{inst}:hitl:*``, ``holt:{inst}:debug:*``
and ``holt:{inst}:audit``.
"""

from __future__ import annotations

import re

from holt_core.errors import InvalidInput

INSTANCES = "holt:instances"

# --- identity (holt_core/operators.py, holt_core/acl.py) ---
# Deliberately outside ``holt:*``: the agent and orchestrator Redis users may write every ``holt:*`` key,
# but neither the operator registry (admin only) nor an operator's proofs (that operator and admin only).
OPERATORS = "holt-admin:operators"
"""HASH operator name -> OperatorRecord JSON."""
PROOF_ROOT = "holt-ops:"


def operator_proof_prefix(operator: str) -> str:
    """Every proof key of one operator starts with this (its Redis user may write only here, outside ``holt:*``).

    Operator names cannot contain ':' or glob characters (identity.validate_operator), so one operator's
    prefix never covers another's keys.
    """
    return f"{PROOF_ROOT}{operator}:"


def operator_proof_pattern(operator: str) -> str:
    """The ACL key pattern of ``operator``'s proofs."""
    return f"{operator_proof_prefix(operator)}*"

_INSTANCE_NAME = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
# ``{name}``: the braces make the name a Redis Cluster hash tag (every key of the instance in one slot).
_BRACED_NAME = re.compile(r"^\{([a-z0-9]([-a-z0-9]*[a-z0-9])?)\}$")
# Characters that SCAN/KEYS treat as glob syntax; user input must never act as a pattern.
_GLOB_CHARS = re.compile(r"([*?\[\]\\])")


def validate_instance_name(name: str) -> str:
    inner = name[1:-1] if _BRACED_NAME.match(name) else name
    if len(inner) > 63 or not _INSTANCE_NAME.match(inner):
        raise InvalidInput(
            f"invalid instance name '{name}'",
            hint="use 1-63 lower-case letters, digits and hyphens, not starting or ending with a hyphen, "
                 "optionally in {braces} (one Redis Cluster hash slot for the whole instance)",
        )
    return name


def single_slot(instance: str) -> bool:
    """Whether every key of ``instance`` lands in one Redis Cluster hash slot: a ``{name}`` is the hash tag of
    all its keys (``holt:{name}:...``, and the proofs ``holt-ops:<operator>:{name}:...``, operator names having
    no braces). A plain name spreads its keys over the slots, so multi-key writes fail on a cluster."""
    return _BRACED_NAME.match(instance) is not None


def instance_slot(instance: str) -> int:
    """The Redis Cluster hash slot of the instance's keys (meaningful when ``single_slot``)."""
    from redis.crc import key_slot  # only a cluster's routed client asks: a read command never imports redis-py

    return key_slot(f"holt:{instance}:".encode())


def hash_tag_prefix(pattern: str) -> str | None:
    """The literal start of a SCAN pattern up to its hash tag's ``}`` (``holt:{name}``), or None when the pattern
    has no tag or a glob character before the tag ends (then its keys may be in any slot). SCAN names no key, so
    a cluster client sends it to the node owning this prefix's slot."""
    start = pattern.find("{")
    end = pattern.find("}", start + 1) if start >= 0 else -1
    if end <= start + 1 or any(c in pattern[: end + 1] for c in "*?[\\"):
        return None
    return pattern[: end + 1]


def slot_spanning_error(instance: str) -> InvalidInput:
    """What holt says when an instance's keys would span slots on a Redis Cluster."""
    braced = instance if single_slot(instance) else f"{{{instance}}}"
    return InvalidInput(
        f"instance '{instance}' cannot run on a Redis Cluster: its keys would span hash slots, so its atomic "
        f"writes would fail",
        hint=f"name it '{braced}' (braces make the name a hash tag: one slot for all its keys)",
    )


def escape_glob(text: str) -> str:
    """Escape text so that it matches literally inside a Redis MATCH pattern."""
    return _GLOB_CHARS.sub(r"\\\1", text)


class Keys:
    """Key and channel names of one instance."""

    __slots__ = ("instance", "prefix")

    @property
    def single_slot(self) -> bool:
        """Every key of this instance in one Redis Cluster hash slot (see ``single_slot``)."""
        return single_slot(self.instance)

    @property
    def slot(self) -> int:
        return instance_slot(self.instance)

    def __init__(self, instance: str) -> None:
        self.instance = validate_instance_name(instance)
        self.prefix = f"holt:{instance}:"

    # --- Holt's keys (protocol 1.2) ---
    def artefact(self, artefact_id: str) -> str:
        return f"{self.prefix}artefact:{artefact_id}"

    def claim(self, claim_id: str) -> str:
        return f"{self.prefix}claim:{claim_id}"

    def bids(self, claim_id: str) -> str:
        return f"{self.prefix}claim:{claim_id}:bids"

    def claim_by_artefact(self, artefact_id: str) -> str:
        return f"{self.prefix}claim_by_artefact:{artefact_id}"

    def thread(self, logical_id: str) -> str:
        return f"{self.prefix}thread:{logical_id}"

    def grant_queue(self, role: str) -> str:
        return f"{self.prefix}grant_queue:{role}"

    @property
    def grant_queue_pattern(self) -> str:
        return f"{escape_glob(self.prefix)}grant_queue:*"

    @property
    def agent_images(self) -> str:
        return f"{self.prefix}agent_images"

    @property
    def lock(self) -> str:
        return f"{self.prefix}lock"

    # --- SCAN patterns ---
    @property
    def artefact_pattern(self) -> str:
        return f"{escape_glob(self.prefix)}artefact:*"

    def artefact_field_pattern(self, field: str) -> str:
        """SORT's GET pattern for one field of each artefact hash named by the index (``*`` is the member)."""
        return f"{self.prefix}artefact:*->{field}"

    def artefact_prefix_pattern(self, id_prefix: str) -> str:
        return f"{escape_glob(self.prefix)}artefact:{escape_glob(id_prefix)}*"

    @property
    def claim_pattern(self) -> str:
        """Matches claim hashes *and* their ``:bids`` hashes; callers filter with is_claim_key."""
        return f"{escape_glob(self.prefix)}claim:*"

    @property
    def instance_pattern(self) -> str:
        return f"{escape_glob(self.prefix)}*"

    def id_from_artefact_key(self, key: str) -> str:
        return key[len(self.prefix) + len("artefact:") :]

    def id_from_claim_key(self, key: str) -> str | None:
        """The claim id of a claim hash key, or None for a ``:bids`` key or anything else."""
        head = f"{self.prefix}claim:"
        if not key.startswith(head):
            return None
        rest = key[len(head) :]
        return None if ":" in rest else rest

    # --- our additions ---
    @property
    def artefact_index(self) -> str:
        """ZSET of artefact ids scored by created_at_ms, for fast paging (Go writers do not add to it)."""
        return f"{self.prefix}idx:artefacts"

    @property
    def claim_index(self) -> str:
        return f"{self.prefix}idx:claims"

    @property
    def open_claims(self) -> str:
        """SET of claim ids not yet complete or terminated (recovery reads it instead of scanning)."""
        return f"{self.prefix}idx:open_claims"

    @property
    def lock_owner(self) -> str:
        """Random token of the orchestrator holding ``lock`` (Go's lock value cannot say who owns it)."""
        return f"{self.prefix}lock:owner"

    def exec_lease(self, claim_id: str, agent_name: str) -> str:
        """An agent's lease on executing one grant: stops a re-sent grant from running twice."""
        return f"{self.prefix}exec:{claim_id}:{agent_name}"

    def proof(self, operator: str, subject: str, nonce: str) -> str:
        """STRING: the proof that ``operator`` made one act on ``subject`` (JSON of what was done).

        Written first in the act's own Tx by the operator's Redis user; nobody else's user may write it.
        """
        return f"{operator_proof_prefix(operator)}{self.instance}:act:{subject}:{nonce}"

    @property
    def proof_pattern(self) -> str:
        """Matches every operator's proofs on this instance (and, glob being glob, maybe more: ``is_proof_key``)."""
        return f"{PROOF_ROOT}*:{escape_glob(self.instance)}:act:*"

    def is_proof_key(self, key: str) -> bool:
        """A proof of this instance: ``holt-ops:<operator>:<instance>:act:...`` (operator names have no ':')."""
        parts = key.split(":", 4)
        return len(parts) == 5 and f"{parts[0]}:" == PROOF_ROOT and parts[2] == self.instance and parts[3] == "act"

    @property
    def health_endpoints(self) -> str:
        """HASH component -> JSON ``{url, pid, host, started_at}``: where each component serves /healthz,
        /readyz and /metrics (each component writes only its own field)."""
        return f"{self.prefix}health"

    def exec_tool(self, claim_id: str, agent_name: str) -> str:
        """JSON ``ProcessStamp`` of the process group running that grant's tool (``tool_lease``): a restarted
        pup kills a leftover run before it runs the tool again. Deleted when the run is recorded."""
        return f"{self.prefix}exec:{claim_id}:{agent_name}:tool"

    # --- audit trail (shared by HITL and debugging) ---
    @property
    def audit(self) -> str:
        """Redis Stream of audit records; never trimmed."""
        return f"{self.prefix}audit"

    @property
    def audit_head(self) -> str:
        """``<seq>:<hash>`` of the newest audit record: every append is guarded on it."""
        return f"{self.prefix}audit:head"

    def audit_witness(self, operator: str, seq: int) -> str:
        """STRING: the hash of audit record ``seq``, written in that record's own append by ``operator``'s Redis user
        when the record names that person. An agent's user may append records but not write this key, so a record
        naming a person without its witness was not written with that person's credentials."""
        return self.proof(operator, "audit-record", str(seq))

    @property
    def audit_witnessed_from(self) -> str:
        """Decimal seq, set once by the orchestrator (``SET NX``): every record naming a person after it must have
        its witness. Records up to it may predate witnesses (an upgraded instance). Not writable by an agent."""
        return f"{self.prefix}audit:witnessed_from"

    # --- human in the loop: holt:{inst}:hitl:* ---
    def hitl_request(self, request_id: str) -> str:
        """HASH of one question / approval / post-review request (``rev`` guards every change)."""
        return f"{self.prefix}hitl:req:{request_id}"

    @property
    def hitl_open(self) -> str:
        """ZSET of open request ids scored by creation time (what ``holt questions``/``pending`` list)."""
        return f"{self.prefix}hitl:open"

    @property
    def hitl_active(self) -> str:
        """ZSET of requests the orchestrator still acts on (open, or decided with an effect not yet applied)."""
        return f"{self.prefix}hitl:active"

    @property
    def hitl_deadlines(self) -> str:
        """ZSET of ``<request id>|<step>`` scored by due time (ms); fired by the orchestrator's sweeper."""
        return f"{self.prefix}hitl:deadlines"

    def hitl_claim(self, claim_id: str) -> str:
        """SET of the requests raised by one claim (its agent's re-run reads their answers and decisions)."""
        return f"{self.prefix}hitl:claim:{claim_id}"

    @property
    def hitl_artefacts(self) -> str:
        """HASH artefact id -> request id of every artefact the HITL engine wrote or holds (questions,
        answers, decisions, held plans): read whole at recovery, so a replay never claims them."""
        return f"{self.prefix}hitl:artefacts"

    def hitl_dedupe(self, what: str) -> str:
        """One request per gated thing (e.g. ``gate:<artefact id>``): creation is idempotent."""
        return f"{self.prefix}hitl:key:{what}"

    def hitl_starter(self, goal_artefact_id: str) -> str:
        """The operator who started the workflow rooted at this goal (separation of duties)."""
        return f"{self.prefix}hitl:starter:{goal_artefact_id}"

    def hitl_system_proof(self, request_id: str) -> str:
        """STRING: the proof of the system's closure of one request (expired, cancelled, superseded, approved by
        policy): JSON of what was decided (``proofs.SystemProof``), written in the closure's own Tx by the
        orchestrator's (or an operator's) Redis user. Not writable by an agent, so a request an agent's user marked
        closed by the system has none (``proofs.honour`` reopens it)."""
        return f"{self.prefix}hitl:sys:{request_id}"

    @property
    def hitl_system_proofs_from(self) -> str:
        """Milliseconds, set once by the orchestrator (``SET NX``) after it wrote a system proof for every request
        the system had already closed (an upgraded instance): from then on every system closure needs its proof.
        Not writable by an agent."""
        return f"{self.prefix}hitl:sysproofs_from"

    @property
    def hitl_policy(self) -> str:
        """The ``hitl:`` policy the running orchestrator loaded (JSON), so every client decides by the same rules."""
        return f"{self.prefix}hitl:policy"

    @property
    def hitl_outbox(self) -> str:
        """STREAM of notifications for webhooks, appended in the same step as the change."""
        return f"{self.prefix}hitl:outbox"

    @property
    def hitl_outbox_cursor(self) -> str:
        return f"{self.prefix}hitl:outbox:cursor"

    @property
    def hitl_events(self) -> str:
        """Pub/sub channel: every request change, as ``{"request_id", "status", "change"}``."""
        return f"{self.prefix}hitl:events"

    # --- debugging control plane: holt:{inst}:debug:* ---
    def debug_breakpoint(self, breakpoint_id: str) -> str:
        """STRING: one breakpoint as JSON."""
        return f"{self.prefix}debug:breakpoint:{breakpoint_id}"

    @property
    def debug_breakpoints(self) -> str:
        """SET of breakpoint ids."""
        return f"{self.prefix}debug:breakpoints"

    @property
    def debug_hits(self) -> str:
        """HASH breakpoint id -> hit count (counted apart so a hit never rewrites the breakpoint)."""
        return f"{self.prefix}debug:hits"

    def debug_held(self, subject: str) -> str:
        """STRING: one held decision as JSON; subject = claim id (artefact id for claim creation)."""
        return f"{self.prefix}debug:held:{subject}"

    @property
    def debug_held_index(self) -> str:
        """SET of subjects with a held decision."""
        return f"{self.prefix}debug:held"

    def debug_skipped(self, subject: str) -> str:
        """STRING: the signature of a dropped (skipped) decision of a subject, as JSON."""
        return f"{self.prefix}debug:skipped:{subject}"

    @property
    def debug_skipped_index(self) -> str:
        return f"{self.prefix}debug:skipped"

    def debug_run(self, root: str) -> str:
        """STRING: JSON of a "run to Terminal" mark on the workflow whose root goal is ``root``."""
        return f"{self.prefix}debug:run:{root}"

    @property
    def debug_runs(self) -> str:
        """SET of workflow roots that run to their Terminal while the rest stays held."""
        return f"{self.prefix}debug:runs"

    @property
    def debug_stepping(self) -> str:
        """SET of claim ids whose next decision is held because the operator stepped them."""
        return f"{self.prefix}debug:stepping"

    @property
    def debug_mode(self) -> str:
        """STRING: JSON of the instance's control mode (running, or full control and since when, by whom)."""
        return f"{self.prefix}debug:mode"

    @property
    def debug_commands(self) -> str:
        """Redis Stream of commands the orchestrator consumes (durable while it restarts)."""
        return f"{self.prefix}debug:commands"

    @property
    def debug_commands_cursor(self) -> str:
        """Stream id of the newest command the orchestrator has carried out."""
        return f"{self.prefix}debug:commands:cursor"

    @property
    def debug_lease(self) -> str:
        """HASH with a TTL: the operator holding control (operator, token, since_ms)."""
        return f"{self.prefix}debug:lease"

    @property
    def debug_roster(self) -> str:
        """HASH the orchestrator writes at start: configured agents and bid timeout (read by explain)."""
        return f"{self.prefix}debug:roster"

    @property
    def debug_events(self) -> str:
        """Pub/sub channel: holds, releases, breakpoint changes, mode and lease changes (for live UIs)."""
        return f"{self.prefix}debug:events"

    # --- pub/sub channels (protocol 2) ---
    @property
    def artefact_events(self) -> str:
        return f"{self.prefix}artefact_events"

    @property
    def claim_events(self) -> str:
        return f"{self.prefix}claim_events"

    @property
    def workflow_events(self) -> str:
        return f"{self.prefix}workflow_events"

    def agent_events(self, agent_name: str) -> str:
        return f"{self.prefix}agent:{agent_name}:events"


# --- what the agent's Redis user may write (holt_core/acl.py) ---
# ACL key patterns over every instance (``holt:<instance>:...``): the key families a pup, its controller workers and
# a Go pup write, and nothing else. Everything else under ``holt:*`` (claims, grants, the orchestrator lock, the
# whole ``debug:*`` control plane, the HITL policy and workflow starters, the instance registry) is read-only to
# them. Instance names and every id in these families (uuids, ``bp-<hex>``) contain no ':', so a pattern's ``*``
# never reaches into another family.
_ANY = "holt:*:"
AGENT_WRITABLE_PATTERNS: tuple[str, ...] = (
    f"{_ANY}artefact:*",  # Keys.artefact
    f"{_ANY}idx:artefacts",  # Keys.artefact_index
    f"{_ANY}thread:*",  # Keys.thread
    f"{_ANY}claim:*:bids",  # Keys.bids (never the claim hash itself)
    f"{_ANY}exec:*",  # Keys.exec_lease, Keys.exec_tool
    f"{_ANY}health",  # Keys.health_endpoints (each component its own field)
    f"{_ANY}audit",  # Keys.audit: every actor appends its own records
    f"{_ANY}audit:head",  # Keys.audit_head
    # Questions and approval requests an agent raises, peer answers, consuming an answer (holt_core/hitl/agent.py):
    f"{_ANY}hitl:req:*",  # Keys.hitl_request
    f"{_ANY}hitl:open",  # Keys.hitl_open
    f"{_ANY}hitl:active",  # Keys.hitl_active
    f"{_ANY}hitl:deadlines",  # Keys.hitl_deadlines
    f"{_ANY}hitl:claim:*",  # Keys.hitl_claim
    f"{_ANY}hitl:artefacts",  # Keys.hitl_artefacts
    f"{_ANY}hitl:key:*",  # Keys.hitl_dedupe
    f"{_ANY}hitl:outbox",  # Keys.hitl_outbox (not its cursor)
)
