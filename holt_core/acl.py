"""Redis ACL users per role: who may write what is decided by Redis itself, not by the client.

Users:
- ``default``: disabled (every connection must authenticate).
- ``holt-admin``: everything; its password is the one in ``server.json`` (or in HOLT_REDIS_URL).
- ``holt-orchestrator``: read every key, write only ``holt:*`` keys, publish on any channel; no admin or dangerous
  commands (ACL, CONFIG, FLUSH*, SHUTDOWN, KEYS, ...). It can never write an operator's proof
  (``holt-ops:<operator>:*``) nor the operator registry.
- ``holt-agent`` (every pup, its workers, a Go pup): the same commands, but it writes only the key families an agent
  writes (``keys.AGENT_WRITABLE_PATTERNS``: artefacts, bids, its execution leases, questions and approval requests
  it raises, audit appends, its health entry). Claims, grants, the orchestrator lock, the debug control plane
  (holds, skips, breakpoints, full control, the control lease, the command stream), the HITL policy and workflow
  starters and the instance registry are read-only to it: Redis refuses the write (``NOPERM``).
- ``holt-viewer``: read and subscribe only; Redis refuses every write and every publish.
- ``holt-op-<name>``: one per registered operator (holt_core/operators.py): the agent's rights plus that operator's
  own proof keys. Its password is the operator's token.

The role passwords are derived from the admin password (HMAC), so whoever holds the admin credentials (the CLI in
local mode, the supervisor) can hand out role credentials without another secret on disk, and a role password
reveals nothing about the admin password.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal
from urllib.parse import quote, unquote, urlsplit, urlunsplit

from holt_core.keys import AGENT_WRITABLE_PATTERNS, OPERATORS, PROOF_ROOT, operator_proof_pattern

if TYPE_CHECKING:
    from redis.asyncio import Redis

Role = Literal["admin", "orchestrator", "agent", "viewer"]
ADMIN_USER = "holt-admin"
ORCHESTRATOR_USER = "holt-orchestrator"
AGENT_USER = "holt-agent"
VIEWER_USER = "holt-viewer"
OPERATOR_USER_PREFIX = "holt-op-"
ACL_FILE = "users.acl"

_USERS: dict[Role, str] = {
    "admin": ADMIN_USER,
    "orchestrator": ORCHESTRATOR_USER,
    "agent": AGENT_USER,
    "viewer": VIEWER_USER,
}
# Instance keys are written through Lua scripts (holt_core/transaction.py); Redis checks every command a
# script runs against the caller's ACL, so these key patterns hold inside scripts too.
# A key a script declares must be both readable and writable through ONE pattern (Redis checks EVALSHA's keys as
# read-write), so the writable prefixes are plain ``~`` patterns, next to read-only ``%R~*`` for everything else.
_COMMANDS = ("&*", "+@all", "-@admin", "-@dangerous")
_WRITER_RULES = ("%R~*", "~holt:*", *_COMMANDS)
# Redis ACL patterns cannot be negated, so the agent's writable keys are listed family by family.
_AGENT_RULES = ("%R~*", *(f"~{p}" for p in AGENT_WRITABLE_PATTERNS), *_COMMANDS)
_VIEWER_RULES = ("%R~*", "&*", "-@all", "+@read", "+@connection", "+@pubsub", "-publish", "-spublish")
_ADMIN_RULES = ("~*", "&*", "+@all")


async def command(redis: Redis, *args: str) -> Any:
    """A raw Redis command (ACL, CLIENT KILL ...), typed for callers."""
    return await redis.execute_command(*args)  # type: ignore[no-untyped-call]


def user_of(role: Role) -> str:
    return _USERS[role]


def operator_user(name: str) -> str:
    return f"{OPERATOR_USER_PREFIX}{name}"


def role_password(admin_password: str, role: Role) -> str:
    """The password of a role user, derived from the admin password (the admin password itself for admin)."""
    if role == "admin":
        return admin_password
    return hmac.new(admin_password.encode(), f"holt-acl:{role}".encode(), hashlib.sha256).hexdigest()


def role_rules(role: Role) -> tuple[str, ...]:
    if role == "admin":
        return _ADMIN_RULES
    if role == "viewer":
        return _VIEWER_RULES
    if role == "agent":
        return _AGENT_RULES
    return _WRITER_RULES


def operator_rules(name: str) -> tuple[str, ...]:
    """An operator (a person): what the orchestrator may write (claims to terminate, the debug control plane), plus
    its own proofs."""
    return (*_WRITER_RULES, f"~{operator_proof_pattern(name)}")


def _hash(password: str) -> str:
    return "#" + hashlib.sha256(password.encode()).hexdigest()


def setuser_args(user: str, password: str, rules: Sequence[str], *, hashed: bool = False) -> list[str]:
    """``ACL SETUSER`` arguments that define ``user`` from scratch (reset first: no rule survives a refresh)."""
    secret = _hash(password) if hashed else f">{password}"
    return [user, "reset", "on", secret, *rules]


def role_setup(admin_password: str, *, hashed: bool = False) -> list[list[str]]:
    """``ACL SETUSER`` argument lists for every role user (default disabled last, once admin exists)."""
    out = [setuser_args(user_of(role), role_password(admin_password, role), role_rules(role), hashed=hashed)
           for role in ("admin", "orchestrator", "agent", "viewer")]
    out.append(["default", "reset", "off", "resetpass", "-@all"])
    return out


def _file_line(args: Sequence[str]) -> str:
    # ACL file syntax: ``user <name> <rules...>``; "reset" is a SETUSER-only convenience, the file starts from
    # nothing anyway.
    return " ".join(["user", args[0], *(a for a in args[1:] if a != "reset")])


def write_aclfile(data_dir: Path, admin_password: str) -> Path:
    """Write ``<data dir>/users.acl`` before redis-server starts: fresh role users, registered operators kept.

    Passwords are stored hashed. Written 0600 and atomically (a half-written file would stop redis-server).
    """
    path = data_dir / ACL_FILE
    kept: list[str] = []
    try:
        for line in path.read_text(encoding="utf-8").splitlines():
            parts = line.split()
            if len(parts) >= 2 and parts[0] == "user" and parts[1].startswith(OPERATOR_USER_PREFIX):
                kept.append(line)
    except FileNotFoundError:
        pass
    lines = [_file_line(args) for args in role_setup(admin_password, hashed=True)] + kept
    fd, tmp = tempfile.mkstemp(dir=data_dir, prefix=".users.", suffix=".tmp")  # 0600
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write("\n".join(lines) + "\n")
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def url_password(url: str) -> str | None:
    parts = urlsplit(url)
    return unquote(parts.password) if parts.password is not None else None


def with_user(base_url: str, user: str, password: str) -> str:
    """``base_url`` authenticating as ``user``/``password`` (same host, port, db and options)."""
    parts = urlsplit(base_url)
    host = parts.netloc.rpartition("@")[2]
    netloc = f"{quote(user, safe='')}:{quote(password, safe='')}@{host}"
    return urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))


def role_url(admin_url: str, role: Role) -> str:
    """The URL of a role user, from the admin URL (whose password the role passwords derive from)."""
    admin_password = url_password(admin_url)
    if admin_password is None:
        return admin_url  # a Redis without a password has no ACL users to switch to
    return with_user(admin_url, user_of(role), role_password(admin_password, role))


def scoped_url(url: str, role: Role) -> str:
    """The URL of ``role`` when ``url`` is holt-admin's (the embedded Redis, or an external one set up with
    ``holt acl``), else ``url`` unchanged (it already names the user to connect as)."""
    if unquote(urlsplit(url).username or "") != ADMIN_USER:
        return url
    return role_url(url, role)


AGENT_URL_ENV = "HOLT_AGENT_REDIS_URL"


def worker_env() -> dict[str, str]:
    """For processes the orchestrator starts (controller workers): the agent's URL the supervisor handed down
    in ``HOLT_AGENT_REDIS_URL``, as their ``HOLT_REDIS_URL`` (not the orchestrator's own)."""
    url = os.environ.get(AGENT_URL_ENV)
    return {"HOLT_REDIS_URL": url} if url else {}


def viewer_url(url: str) -> str:
    """The read-only URL for a watcher: Redis itself refuses its writes."""
    return scoped_url(url, "viewer")


def setup_script(admin_password: str) -> str:
    """The commands ``holt acl`` prints for an external Redis (run them as its administrator)."""
    lines = [
        "# holt ACL users (run as the Redis administrator; `holt acl --apply` does it for you)",
        f"# operators: `holt operator add NAME` creates {OPERATOR_USER_PREFIX}NAME, writing {PROOF_ROOT}NAME:* only;",
        f"# {OPERATORS} (the registry) and every {PROOF_ROOT}* key are out of reach of agent users.",
    ]
    for args in role_setup(admin_password, hashed=True):  # hashes only: the output may end up in a log
        if args[0] == "default":
            lines.append("# finally, disable the unauthenticated default user (after checking you can log in as "
                         f"{ADMIN_USER}):")
        lines.append("ACL SETUSER " + " ".join(args))
    return "\n".join(lines)
