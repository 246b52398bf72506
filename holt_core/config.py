"""``holt.yml``: loading and strict validation for agents that run as local processes.

The Go version decodes leniently and ignores unknown keys; here a typo is an error that names the key
path and the line (``holt.yml:7: agents.Drafter.comand: unknown key``), because a silently ignored key
is a misconfigured agent. Docker-only keys (``image``, ``build``, ``replicas``...) are still accepted so
a Go project's file loads unchanged.

YAML is first *composed* into nodes, which know their line, then turned into plain data (rejecting
duplicate keys, which PyYAML would silently collapse) and validated with pydantic; the first pydantic
error's location is mapped back to the line of the deepest node on its path.
"""

from __future__ import annotations

import difflib
import os
import re
import types
from pathlib import Path
from typing import Annotated, Any, Literal, Union, get_args, get_origin

import yaml
from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PrivateAttr,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic_core import ErrorDetails

from holt_core.api.settings import ApiSettings
from holt_core.errors import InvalidInput, NotFound
from holt_core.hitl.policy import HitlPolicy
from holt_core.timespec import parse_duration

CONFIG_FILE = "holt.yml"
SUPPORTED_VERSION = "1.0"

BiddingStrategy = Literal["review", "claim", "exclusive", "ignore"]
WorkspaceMode = Literal["ro", "rw"]
SandboxMode = Literal["auto", "required", "off"]

_ROLE = re.compile(r"^[A-Za-z0-9-]+$")
_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_ENV_REF = re.compile(r"\$(?:\{([^}]*)\}|([A-Za-z_][A-Za-z0-9_]*))")
MAX_CONFIG_BYTES = 1024 * 1024  # holt.yml larger than this is refused before it is parsed
MAX_AGENTS = 64  # one process each: more is refused before anything starts
ENV_MAX_CONFIG_BYTES = "HOLT_MAX_CONFIG_BYTES"
ENV_MAX_AGENTS = "HOLT_MAX_AGENTS"
_MAX_NODES = 100_000  # a few aliases can expand exponentially ("billion laughs")
_MAX_DEPTH = 64
_MAX_ERRORS_SHOWN = 10

KeyPath = tuple[str | int, ...]


# ---------------------------------------------------------------------------------------------
# Field types


def _to_seconds(value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        raise ValueError("expected a duration such as '30s', '5m' or '1h30m'")
    try:
        seconds = parse_duration(value)
    except InvalidInput as exc:
        raise ValueError(f"{exc.message} (use e.g. '30s', '5m', '1h30m' or a number of seconds)") from None
    if seconds <= 0:
        raise ValueError(f"must be a positive duration, got '{value}'")
    return seconds


def _check_role(role: str) -> str:
    if not role:
        reason = "role cannot be empty"
    elif len(role) > 64:
        reason = "role name too long (max 64 chars)"
    elif not _ROLE.match(role):
        reason = "role must be alphanumeric with optional hyphens"
    else:
        return role
    raise ValueError(f"invalid agent role '{role}': {reason}")


def _check_command(argv: list[str]) -> list[str]:
    if not argv:
        raise ValueError("must not be empty")
    if not argv[0]:
        raise ValueError("the program (first element) must not be empty")
    return argv


def _expand_env_entry(entry: str) -> str:
    """``KEY=value`` with ``$VAR``/``${VAR}`` in the value expanded from the host; a bare ``NAME`` stays."""
    name, sep, value = entry.partition("=")
    if not _ENV_NAME.match(name):
        raise ValueError(f"invalid environment entry '{entry}' (expected KEY=value or NAME)")
    return f"{name}={os.path.expandvars(value)}" if sep else name


def _sandbox_word(value: Any) -> Any:
    # YAML 1.1 reads a bare off/on as a boolean: "sandbox: off" means "off", "sandbox: on" means "required".
    if isinstance(value, bool):
        return "required" if value else "off"
    return value


Duration = Annotated[float, BeforeValidator(_to_seconds)]
RoleName = Annotated[str, AfterValidator(_check_role)]
Command = Annotated[list[str], AfterValidator(_check_command)]
EnvEntry = Annotated[str, AfterValidator(_expand_env_entry)]


class _Section(BaseModel):
    # Numbers in argument lists are text to a process ("--port", 8080); YAML would make them ints.
    model_config = ConfigDict(extra="forbid", coerce_numbers_to_str=True)

    @field_validator("*", mode="before")
    @classmethod
    def _null_is_absent(cls, value: Any, info: ValidationInfo) -> Any:
        # "workspace:" with nothing after it means the defaults, as an absent key does.
        if value is None and info.field_name == "workspace":
            return {}
        return value


class WorkspaceConfig(_Section):
    mode: WorkspaceMode = "ro"


class WorkerConfig(_Section):
    command: Command
    max_concurrent: int = Field(default=1, ge=1, strict=True)
    workspace: WorkspaceConfig = Field(default_factory=WorkspaceConfig)
    image: Any = None  # a Docker image in the Go version; accepted and ignored


class AgentConfig(_Section):
    command: Command
    bidding_strategy: BiddingStrategy | None = None
    bid_script: Command | None = None
    workspace: WorkspaceConfig = Field(default_factory=WorkspaceConfig)
    environment: list[EnvEntry] = Field(default_factory=list)
    mode: Literal["controller"] | None = None
    worker: WorkerConfig | None = None
    timeout: Duration = 300.0  # tool timeout
    bid_timeout: Duration = 10.0  # bid script timeout
    # auto: tools (and bid scripts) run in a sandbox where the platform has one; required: the pup refuses to
    # start without one; off: no sandbox (a warning at pup start). See docs/security.md.
    sandbox: Annotated[SandboxMode, BeforeValidator(_sandbox_word)] = "auto"
    # Docker-era keys: accepted so Go projects load, otherwise ignored.
    image: Any = None
    build: Any = None
    replicas: Any = None
    strategy: Any = None
    resources: Any = None
    prompts: Any = None
    health_check: Any = None
    role: Any = None

    @model_validator(mode="after")
    def _consistent(self) -> AgentConfig:
        if self.bidding_strategy is None and self.bid_script is None:
            raise ValueError("either bidding_strategy or bid_script must be provided")
        if self.mode == "controller" and self.worker is None:
            raise ValueError("worker is required when mode is controller")
        return self

    @property
    def is_controller(self) -> bool:
        return self.mode == "controller"

    @property
    def tool_timeout_s(self) -> float:
        return self.timeout

    @property
    def bid_timeout_s(self) -> float:
        return self.bid_timeout

    def env_overrides(self) -> dict[str, str]:
        """Variables to set for the agent: ``KEY=value`` entries, plus bare names copied from this host."""
        out: dict[str, str] = {}
        for entry in self.environment:
            name, sep, value = entry.partition("=")
            if sep:
                out[name] = value
            elif name in os.environ:
                out[name] = os.environ[name]
        return out


class OrchestratorConfig(_Section):
    max_review_iterations: int = Field(default=3, ge=0, strict=True)  # 0 = unlimited
    bid_timeout: Duration = 30.0  # a missing bid counts as ignore after this

    @property
    def bid_timeout_s(self) -> float:
        return self.bid_timeout


class Config(BaseModel):
    model_config = ConfigDict(extra="forbid")

    version: str
    orchestrator: OrchestratorConfig = Field(default_factory=OrchestratorConfig)
    agents: dict[RoleName, AgentConfig]
    services: Any = None  # Docker services in the Go version; ignored
    hitl: HitlPolicy = Field(default_factory=HitlPolicy)
    api: ApiSettings = Field(default_factory=ApiSettings)  # the approvals API (holt_core/api)

    _warnings: list[str] = PrivateAttr(default_factory=list)

    @field_validator("version", mode="before")
    @classmethod
    def _version(cls, value: Any) -> Any:
        if isinstance(value, int | float) and not isinstance(value, bool):
            raise ValueError(f'must be the string "{SUPPORTED_VERSION}"; quote it: version: "{SUPPORTED_VERSION}"')
        if isinstance(value, str) and value != SUPPORTED_VERSION:
            raise ValueError(f"unsupported version: {value} (expected: {SUPPORTED_VERSION})")
        return value

    @field_validator("orchestrator", "hitl", "api", mode="before")
    @classmethod
    def _orchestrator(cls, value: Any) -> Any:
        return {} if value is None else value

    @field_validator("agents")
    @classmethod
    def _some_agents(cls, value: dict[str, AgentConfig]) -> dict[str, AgentConfig]:
        if not value:
            raise ValueError("no agents defined")
        return value

    @property
    def warnings(self) -> list[str]:
        """Things that load but will not do what the file may expect (printed by the caller)."""
        return self._warnings


# ---------------------------------------------------------------------------------------------
# Loading


def _limit(env: str, default: int) -> int:
    raw = os.environ.get(env, "").strip()
    if not raw:
        return default
    if not raw.isdigit() or int(raw) < 1:
        raise InvalidInput(f"{env} must be a positive whole number, got '{raw[:40]}'")
    return int(raw)


def max_config_bytes() -> int:
    """The size limit of holt.yml: 1 MiB, or ``$HOLT_MAX_CONFIG_BYTES``."""
    return _limit(ENV_MAX_CONFIG_BYTES, MAX_CONFIG_BYTES)


def max_agents() -> int:
    """The most agents a holt.yml may define: 64, or ``$HOLT_MAX_AGENTS``."""
    return _limit(ENV_MAX_AGENTS, MAX_AGENTS)


def _too_big(source: str, size: int, limit: int) -> InvalidInput:
    return InvalidInput(f"{source} is too large ({size:,} bytes; the limit is {limit:,})",
                        hint=f"holt.yml describes agents, not data; {ENV_MAX_CONFIG_BYTES} raises the limit")


def load_config(path: Path) -> Config:
    """Load ``path`` (a holt.yml, or a directory holding one); a file over the size limit is never read whole."""
    target = path / CONFIG_FILE if path.is_dir() else path
    limit = max_config_bytes()
    try:
        with target.open("rb") as f:
            data = f.read(limit + 1)
    except FileNotFoundError:
        raise NotFound(f"{target.name} not found in {target.parent.resolve()}", hint="holt init creates one") from None
    except OSError as exc:
        raise InvalidInput(f"cannot read {target}: {exc.strerror or exc}") from None
    if len(data) > limit:
        try:
            size = target.stat().st_size
        except OSError:
            size = len(data)
        raise _too_big(target.name, size, limit)
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise InvalidInput(f"{target.name}: not valid UTF-8 text") from None
    return parse_config(text, source=target.name)


def parse_config(text: str, source: str = CONFIG_FILE) -> Config:
    """Validate holt.yml text; every problem is an InvalidInput naming ``source``, line and key path."""
    limit = max_config_bytes()
    if len(text) > limit or len(text.encode("utf-8")) > limit:
        raise _too_big(source, len(text.encode("utf-8")), limit)
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark is not None else 1
        raise InvalidInput(f"{source}:{line}: invalid YAML: {exc.problem or exc.context or 'syntax error'}") from None
    except yaml.YAMLError as exc:
        raise InvalidInput(f"{source}: invalid YAML: {exc}") from None
    if root is None:
        raise InvalidInput(f"{source}:1: the file is empty; it needs version and agents")
    if not isinstance(root, yaml.MappingNode):
        raise InvalidInput(f"{source}:{_line(root)}: expected a mapping (version, agents, ...) at the top level")
    _check_agent_count(root, source)
    builder = _Builder(source)
    data = builder.build(root, (), 0)
    # Top-level "x-..." keys are free for YAML anchors (as in compose files): not configuration.
    data = {k: v for k, v in data.items() if not k.startswith("x-")}
    try:
        config = Config.model_validate(data)
    except ValidationError as exc:
        raise _as_invalid_input(exc, builder.lines, source) from None
    config._warnings = _warnings(config, data)
    return config


def _check_agent_count(root: yaml.MappingNode, source: str) -> None:
    """Refuse more agents than the limit before building anything (each one becomes a process)."""
    limit = max_agents()
    for key, value in root.value:
        if isinstance(key, yaml.ScalarNode) and key.value == "agents" and isinstance(value, yaml.MappingNode):
            count = len(value.value)
            if count > limit:
                raise InvalidInput(f"{source}:{_line(key)}: agents: {count:,} agents defined; the limit is {limit}",
                                   hint=f"each agent runs as its own process; {ENV_MAX_AGENTS} raises the limit")


def _line(node: yaml.Node) -> int:
    return int(node.start_mark.line) + 1


def _dotted(path: KeyPath) -> str:
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


class _Builder:
    """Plain data from a composed YAML tree, remembering the line of every key and list item."""

    def __init__(self, source: str) -> None:
        self.source = source
        self.lines: dict[KeyPath, int] = {}
        self._nodes = 0
        self._active: set[int] = set()  # collections being built: an alias back into one is a cycle
        self._scalars = yaml.SafeLoader("")

    def _fail(self, node: yaml.Node, path: KeyPath, problem: str) -> InvalidInput:
        where = f"{_dotted(path)}: " if path else ""
        return InvalidInput(f"{self.source}:{_line(node)}: {where}{problem}")

    def build(self, node: yaml.Node, path: KeyPath, depth: int) -> Any:
        self._nodes += 1
        if self._nodes > _MAX_NODES or depth > _MAX_DEPTH:
            raise self._fail(node, path, "too deeply nested or too many aliases")
        if isinstance(node, yaml.ScalarNode):
            try:
                return self._scalars.construct_object(node, deep=True)
            except yaml.YAMLError as exc:
                raise self._fail(node, path, f"invalid YAML: {getattr(exc, 'problem', None) or exc}") from None
        if id(node) in self._active:
            raise self._fail(node, path, "an alias refers to a node that contains it")
        self._active.add(id(node))
        try:
            if isinstance(node, yaml.SequenceNode):
                items = []
                for index, child in enumerate(node.value):
                    self.lines.setdefault((*path, index), _line(child))
                    items.append(self.build(child, (*path, index), depth + 1))
                return items
            if isinstance(node, yaml.MappingNode):
                return self._mapping(node, path, depth)
            raise self._fail(node, path, "unsupported YAML node")
        finally:
            self._active.discard(id(node))

    def _mapping(self, node: yaml.MappingNode, path: KeyPath, depth: int) -> dict[str, Any]:
        out: dict[str, Any] = {}
        first_seen: dict[str, int] = {}
        merges: list[yaml.Node] = []
        for key_node, value_node in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":
                merges.append(value_node)
                continue
            if not isinstance(key_node, yaml.ScalarNode):
                raise self._fail(key_node, path, "mapping keys must be plain names")
            key = str(key_node.value)
            if key in first_seen:
                raise self._fail(key_node, (*path, key), f"duplicate key (first defined on line {first_seen[key]})")
            first_seen[key] = _line(key_node)
            self.lines.setdefault((*path, key), _line(key_node))
            out[key] = self.build(value_node, (*path, key), depth + 1)
        # YAML merge keys ("<<: *defaults"): explicit keys win, then earlier merge sources.
        for source in merges:
            sources = source.value if isinstance(source, yaml.SequenceNode) else [source]
            for item in sources:
                if not isinstance(item, yaml.MappingNode):
                    raise self._fail(item, path, "a merge key (<<) must refer to a mapping")
                for key, value in self._mapping(item, path, depth + 1).items():
                    out.setdefault(key, value)
        return out


def _unwrap(annotation: Any) -> Any:
    """The model or container type inside Optional[...] / Annotated[...]."""
    while True:
        origin = get_origin(annotation)
        if origin is Annotated:
            annotation = get_args(annotation)[0]
        elif origin is Union or origin is types.UnionType:
            annotation = next(a for a in get_args(annotation) if a is not type(None))
        else:
            return annotation


def _model_at(path: KeyPath) -> type[BaseModel] | None:
    """The config model describing the mapping at ``path`` (for "did you mean" hints)."""
    current: Any = Config
    index = 0
    while index < len(path):
        if not (isinstance(current, type) and issubclass(current, BaseModel)):
            return None
        field = current.model_fields.get(str(path[index]))
        if field is None:
            return None
        current = _unwrap(field.annotation)
        index += 1
        if get_origin(current) is dict:
            current = _unwrap(get_args(current)[1])
            index += 1  # the dict key (an agent role)
    return current if isinstance(current, type) and issubclass(current, BaseModel) else None


def _show(value: Any) -> str:
    if isinstance(value, str):
        return f"'{value[:80]}'"
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    return str(value)[:80]


def _kind(value: Any) -> str:
    if isinstance(value, str):
        return f"the string '{value[:80]}'"
    return _show(value)


def _describe(err: ErrorDetails) -> tuple[KeyPath, str, str | None]:
    """(path the message is about, message, hint) for one pydantic error."""
    loc: KeyPath = tuple(p for p in err["loc"] if p != "[key]")
    kind, value, ctx = err["type"], err.get("input"), err.get("ctx") or {}
    last = loc[-1] if loc else ""
    if kind == "missing":
        return loc[:-1], f"missing required key '{last}'", None
    if kind == "extra_forbidden":
        model = _model_at(loc[:-1])
        valid = sorted(model.model_fields) if model else []
        close = difflib.get_close_matches(str(last), valid, n=1, cutoff=0.6)
        hint = f"did you mean '{close[0]}'?" if close else (f"valid keys: {', '.join(valid)}" if valid else None)
        return loc, "unknown key", hint
    if kind == "literal_error":
        expected = str(ctx.get("expected", "")).replace("'", "")
        if expected == "controller":
            expected = "controller, or leave mode out"
        return loc, f"invalid value {_show(value)} (must be {expected})", None
    if kind == "value_error":
        return loc, str(ctx.get("error", err["msg"])), None
    if kind in ("string_type", "string_sub_type"):
        return loc, f"expected a string, got {_kind(value)}", None
    if kind == "list_type":
        if last in ("command", "bid_script"):
            hint = 'write it as a list, e.g. ["python3", "agent.py"]'
            return loc, f"expected a list of strings, got {_kind(value)}", hint
        return loc, f"expected a list, got {_kind(value)}", None
    if kind in ("model_type", "model_attributes_type", "dict_type"):
        return loc, f"expected a mapping, got {_kind(value)}", None
    if kind in ("int_type", "int_parsing", "int_from_float"):
        return loc, f"expected a whole number, got {_kind(value)}", None
    if kind == "greater_than_equal":
        extra = " (0 = unlimited)" if last == "max_review_iterations" else ""
        return loc, f"must be >= {ctx.get('ge')}{extra}, got {_show(value)}", None
    if kind == "too_short":
        return loc, "must not be empty", None
    return loc, str(err["msg"]), None


def _line_for(path: KeyPath, lines: dict[KeyPath, int]) -> int:
    for end in range(len(path), 0, -1):
        if path[:end] in lines:
            return lines[path[:end]]
    return 1


def _as_invalid_input(exc: ValidationError, lines: dict[KeyPath, int], source: str) -> InvalidInput:
    described = []
    for order, err in enumerate(exc.errors(include_url=False)):
        path, message, hint = _describe(err)
        line = _line_for(path, lines)
        where = f"{_dotted(path)}: " if path else ""
        # A misspelt key also makes the real one "missing": report the typo first, it is the cause.
        rank = 0 if err["type"] == "extra_forbidden" else 1
        described.append((rank, line, order, f"{source}:{line}: {where}{message}", hint))
    described.sort()
    *_, first, hint = described[0]
    others = [d[3] for d in described[1:_MAX_ERRORS_SHOWN]]
    if len(described) > _MAX_ERRORS_SHOWN:
        others.append(f"...and {len(described) - _MAX_ERRORS_SHOWN} more problems")
    return InvalidInput(first, hint=hint, details=others)


def _warnings(config: Config, data: dict[str, Any]) -> list[str]:
    out: list[str] = []
    raw_agents = data.get("agents") or {}
    for role, agent in config.agents.items():
        for key in ("image", "build"):
            if getattr(agent, key) is not None:
                out.append(f"agent '{role}': {key} is ignored: holt runs agents as local processes")
        if agent.worker is not None and not agent.is_controller:
            out.append(f"agent '{role}': worker is ignored because mode is not controller")
        raw_env = (raw_agents.get(role) or {}).get("environment") or []
        for entry in raw_env:
            name, sep, value = str(entry).partition("=")
            if not sep:
                if name not in os.environ:
                    out.append(f"agent '{role}': environment variable {name} is not set here, so it is not passed")
                continue
            for braced, plain in _ENV_REF.findall(value):
                ref = braced or plain
                if ref not in os.environ:
                    out.append(f"agent '{role}': environment entry '{name}' uses ${ref}, which is not set")
    return out
