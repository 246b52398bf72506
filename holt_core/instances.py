"""The instance registry (``holt:instances``) and how a command decides which instance it means.

Holt's design keeps one JSON record per instance in the ``holt:instances`` hash
(protocol 1.8); the Go code never wrote it, so an instance whose keys exist without a record
(a blackboard written by the Go version) is still accepted when named explicitly.
"""

from __future__ import annotations

import dataclasses
import json
import subprocess
from pathlib import Path
from typing import TYPE_CHECKING, Any

from holt_core.errors import HoltError, InvalidInput, NotFound
from holt_core.keys import INSTANCES, Keys, validate_instance_name
from holt_core.processes import pid_alive
from holt_core.redis_conn import route_to

if TYPE_CHECKING:
    from redis.asyncio import Redis


@dataclasses.dataclass(frozen=True, slots=True)
class InstanceRecord:
    """One instance's registry record. Read without pydantic (``from_json``): every command reads the registry."""

    name: str
    run_id: str
    workspace_path: str
    started_at: str
    orchestrator_pid: int = 0
    # Our additions (Go readers ignore unknown keys).
    supervisor_pid: int = 0
    log_dir: str = ""
    status: str = "running"  # running | stopped
    api_url: str = ""  # the approvals API (holt_core/api), once it listens

    def to_json(self) -> str:
        return json.dumps(dataclasses.asdict(self), separators=(",", ":"), ensure_ascii=False)

    def replace(self, **changes: Any) -> InstanceRecord:
        return dataclasses.replace(self, **changes)

    @classmethod
    def unknown(cls, name: str) -> InstanceRecord:
        """What a record that does not decode reads as: listed by its name, state unknown."""
        return cls(name=name, run_id="", workspace_path="", started_at="", status="unknown")

    @classmethod
    def from_json(cls, name: str, raw: str) -> InstanceRecord:
        """The record under ``name``; ``unknown(name)`` when it does not decode (as the pydantic model decides)."""
        fast = _fast(raw)
        if fast is not None:
            return fast
        from pydantic import ValidationError

        from holt_core.instance_model import InstanceModel  # only for a record the fast path cannot prove plain

        try:
            return cls(**InstanceModel.model_validate_json(raw).model_dump())
        except ValidationError:
            return cls.unknown(name)


_TEXT_FIELDS = ("name", "run_id", "workspace_path", "started_at", "log_dir", "status", "api_url")
_REQUIRED = ("name", "run_id", "workspace_path", "started_at")
_INT_FIELDS = ("orchestrator_pid", "supervisor_pid")


def _no_constant(text: str) -> Any:
    raise ValueError(text)  # NaN and Infinity are not JSON: let the full validation refuse them


def _fast(raw: str) -> InstanceRecord | None:
    """The record when it is a JSON object of plainly typed fields (what holt writes), else None."""
    try:
        data = json.loads(raw, parse_constant=_no_constant)
    except (ValueError, TypeError):
        return None
    if type(data) is not dict or not all(f in data for f in _REQUIRED):
        return None
    fields: dict[str, Any] = {}
    for f in _TEXT_FIELDS:
        if f in data:
            value = data[f]
            if type(value) is not str or not (value.isascii() or _encodable(value)):
                return None
            fields[f] = value
    for f in _INT_FIELDS:
        if f in data:
            if type(data[f]) is not int:
                return None
            fields[f] = data[f]
    return InstanceRecord(**fields)


def _encodable(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:  # a lone surrogate (``"\ud800"``): the full validation decides
        return False
    return True


async def register(redis: Redis, record: InstanceRecord) -> None:
    await redis.hset(INSTANCES, record.name, record.to_json())


async def unregister(redis: Redis, name: str) -> None:
    await redis.hdel(INSTANCES, name)


async def get_record(redis: Redis, name: str) -> InstanceRecord | None:
    raw = await redis.hget(INSTANCES, name)
    if raw is None:
        return None
    return InstanceRecord.from_json(name, str(raw))


async def list_records(redis: Redis) -> list[InstanceRecord]:
    raw = {str(k): str(v) for k, v in (await redis.hgetall(INSTANCES)).items()}
    return [InstanceRecord.from_json(name, raw[name]) for name in sorted(raw)]


def supervisor_alive(pid: int) -> bool:
    """``pid`` is alive and (where the command line can be read) runs holt: guards against pid reuse."""
    if not pid_alive(pid):
        return False
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return True
    return b"holt" in cmdline


async def live_records(redis: Redis) -> list[InstanceRecord]:
    """The registered instances whose supervisor process is alive on this machine."""
    return [r for r in await list_records(redis) if supervisor_alive(r.supervisor_pid)]


def workspace_root(cwd: Path | None = None) -> Path:
    """The git top-level of ``cwd`` (symlinks resolved), or an error saying it is not a repository."""
    where = cwd or Path.cwd()
    try:
        out = subprocess.run(
            ["git", "rev-parse", "--show-toplevel"],
            cwd=where,
            capture_output=True,
            text=True,
            check=True,
            timeout=10,
        ).stdout.strip()
    except (subprocess.CalledProcessError, FileNotFoundError, subprocess.TimeoutExpired):
        raise HoltError(
            "not a Git repository",
            hint="run holt from inside the git repository of your project (git init creates one)",
        ) from None
    return Path(out).resolve()


async def instance_has_data(redis: Redis, name: str) -> bool:
    keys = Keys(name)
    route_to(redis, keys)  # on a Redis Cluster the instance's keys live on the node that owns its slot
    async for _ in redis.scan_iter(match=keys.instance_pattern, count=1000):
        return True
    return False


async def resolve_instance(redis: Redis, name: str | None, cwd: Path | None = None) -> str:
    """The instance a command means: ``--name``, else the one registered for this workspace."""
    if name:
        validate_instance_name(name)
        if await get_record(redis, name) is not None or await instance_has_data(redis, name):
            return name
        raise NotFound(f"instance '{name}' not found", hint="holt list shows the known instances")
    root = str(workspace_root(cwd))
    matches = [r.name for r in await list_records(redis) if r.workspace_path == root]
    if not matches:
        raise NotFound(
            "no Holt instances found for this workspace",
            hint="start one with holt up, or name one with --name",
        )
    if len(matches) > 1:
        raise InvalidInput(
            "multiple instances found for this workspace, use --name to specify which one",
            details=matches,
        )
    return matches[0]
