"""The ``hitl:`` section of holt.yml: who may decide what, how risky each gate is, and when it times out.

Validated as strictly as the rest of holt.yml (unknown keys are errors with their line). A missing
``hitl:`` section means: questions never time out, no approval gates, no operators with roles.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, field_validator, model_validator

from holt_core.globmatch import go_match, is_valid_pattern
from holt_core.timespec import parse_duration

RiskLevel = Literal["low", "medium", "high", "critical"]
RISK_ORDER: tuple[RiskLevel, ...] = ("low", "medium", "high", "critical")
FAIL_CLOSED: frozenset[str] = frozenset({"high", "critical"})


def _seconds(value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        raise ValueError("expected a duration such as '30s', '5m' or '1h30m'")
    try:
        seconds = parse_duration(value)
    except Exception as exc:  # InvalidInput: reworded for the config error line
        raise ValueError(f"{getattr(exc, 'message', exc)} (use e.g. '30s', '5m', '1h30m')") from None
    if seconds <= 0:
        raise ValueError(f"must be a positive duration, got '{value}'")
    return seconds


def _operator_role(name: str) -> str:
    if not name or len(name) > 64 or not all(c.isalnum() or c in "-_." for c in name):
        raise ValueError(f"invalid operator role '{name}' (letters, digits, '-', '_', '.')")
    return name


OperatorRole = Annotated[str, AfterValidator(_operator_role)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class EscalationStep(_Strict):
    """After ``after`` from the request, notify again and widen who may decide to ``to`` roles."""

    after: float
    to: list[OperatorRole] = Field(default_factory=list)

    @field_validator("after", mode="before")
    @classmethod
    def _after(cls, value: Any) -> float:
        return _seconds(value)


def _ladder(value: Any) -> Any:
    """``escalate_after`` accepts plain durations (``[30m, 2h]``) or ``{after, to}`` steps."""
    if value is None:
        return []
    if not isinstance(value, list):
        value = [value]
    return [{"after": v} if isinstance(v, str | int | float) and not isinstance(v, bool) else v for v in value]


class RiskPolicy(_Strict):
    auto_approve: bool = False
    approvers: list[OperatorRole] = Field(default_factory=list)
    min_approvals: int = Field(default=1, ge=1, strict=True)
    escalate_after: list[EscalationStep] = Field(default_factory=list)
    expire_after: float | None = None
    # What an expiry means when nobody decided: only low and medium may default to approve.
    on_expire: Literal["approve", "reject"] = "reject"
    require_justification: bool = False

    @field_validator("escalate_after", mode="before")
    @classmethod
    def _esc(cls, value: Any) -> Any:
        return _ladder(value)

    @field_validator("expire_after", mode="before")
    @classmethod
    def _exp(cls, value: Any) -> Any:
        return None if value is None else _seconds(value)

    @model_validator(mode="after")
    def _steps_ordered(self) -> RiskPolicy:
        afters = [s.after for s in self.escalate_after]
        if afters != sorted(afters):
            raise ValueError("escalate_after steps must be in increasing order")
        if self.expire_after is not None and afters and afters[-1] >= self.expire_after:
            raise ValueError("every escalate_after step must come before expire_after")
        return self


def _default_levels() -> dict[RiskLevel, RiskPolicy]:
    return {
        "low": RiskPolicy(auto_approve=True),
        "medium": RiskPolicy(),
        "high": RiskPolicy(),
        "critical": RiskPolicy(min_approvals=2, require_justification=True),
    }


class RuleMatch(_Strict):
    """Glob patterns (Go ``path.Match`` syntax); every given pattern must match."""

    artefact_type: str | None = None
    produced_by: str | None = None
    action: str | None = None

    @field_validator("artefact_type", "produced_by", "action")
    @classmethod
    def _pattern(cls, value: str | None) -> str | None:
        if value is not None and not is_valid_pattern(value):
            raise ValueError(f"invalid glob pattern '{value}'")
        return value

    @model_validator(mode="after")
    def _something(self) -> RuleMatch:
        if self.artefact_type is None and self.produced_by is None and self.action is None:
            raise ValueError("a rule must match on at least one of artefact_type, produced_by, action")
        return self


class Rule(_Strict):
    match: RuleMatch
    risk: RiskLevel


class QuestionPolicy(_Strict):
    escalate_after: list[EscalationStep] = Field(default_factory=list)
    expire_after: float | None = None
    # "fail": a Failure artefact and the asker's claim terminated; or {default: "text"} answered by system:timeout.
    on_expire: Literal["fail"] | dict[Literal["default"], str] = "fail"
    # How long a peer (an agent asked by another) has before the question moves up the chain.
    peer_timeout: float = 600.0
    # Operator roles allowed to answer (empty: any identified operator).
    answerers: list[OperatorRole] = Field(default_factory=list)

    @field_validator("escalate_after", mode="before")
    @classmethod
    def _esc(cls, value: Any) -> Any:
        return _ladder(value)

    @field_validator("expire_after", "peer_timeout", mode="before")
    @classmethod
    def _dur(cls, value: Any) -> Any:
        return None if value is None else _seconds(value)

    @property
    def default_answer(self) -> str | None:
        return self.on_expire.get("default") if isinstance(self.on_expire, dict) else None


class OperatorEntry(_Strict):
    roles: list[OperatorRole] = Field(default_factory=list)


NotifyEvent = Literal["request", "escalation", "expiry", "decision"]


def _default_events() -> list[NotifyEvent]:
    return ["request", "escalation", "expiry"]


class Webhook(_Strict):
    url: str
    events: list[NotifyEvent] = Field(default_factory=_default_events)
    # slack: Block Kit with Approve/Reject buttons; teams: an adaptive card; generic: text plus holt's fields.
    format: Literal["generic", "slack", "teams"] = "generic"
    timeout: float = 5.0
    retries: int = Field(default=5, ge=0, strict=True)

    @field_validator("url")
    @classmethod
    def _url(cls, value: str) -> str:
        if not value.startswith(("http://", "https://")):
            raise ValueError(f"webhook url must start with http:// or https://, got '{value[:80]}'")
        return value

    @field_validator("timeout", mode="before")
    @classmethod
    def _timeout(cls, value: Any) -> Any:
        return _seconds(value)


class NotifyPolicy(_Strict):
    webhooks: list[Webhook] = Field(default_factory=list)


class HitlPolicy(_Strict):
    operators: dict[str, OperatorEntry] = Field(default_factory=dict)
    risk_levels: dict[RiskLevel, RiskPolicy] = Field(default_factory=_default_levels)
    rules: list[Rule] = Field(default_factory=list)
    questions: QuestionPolicy = Field(default_factory=QuestionPolicy)
    bypass_role: OperatorRole | None = None
    notify: NotifyPolicy = Field(default_factory=NotifyPolicy)

    @field_validator("operators", mode="before")
    @classmethod
    def _ops(cls, value: Any) -> Any:
        if isinstance(value, dict):
            # "alice: [approver]" is shorthand for "alice: {roles: [approver]}".
            return {k: ({"roles": v} if isinstance(v, list) else v) for k, v in value.items()}
        return value

    @field_validator("risk_levels", mode="before")
    @classmethod
    def _levels(cls, value: Any) -> Any:
        if not isinstance(value, dict):
            return value
        merged: dict[Any, Any] = {k: v.model_dump() for k, v in _default_levels().items()}
        merged.update(value)
        return merged

    @field_validator("risk_levels")
    @classmethod
    def _fail_closed(cls, value: dict[RiskLevel, RiskPolicy]) -> dict[RiskLevel, RiskPolicy]:
        for name, level in value.items():
            if name in FAIL_CLOSED and (level.auto_approve or level.on_expire == "approve"):
                raise ValueError(f"risk level {name} must fail closed: auto_approve and on_expire: approve "
                                 "are not allowed")
        return value

    @model_validator(mode="after")
    def _consistent(self) -> HitlPolicy:
        for name, level in self.risk_levels.items():
            if not level.auto_approve and not level.approvers and self.operators:
                raise ValueError(f"risk level {name} has no approvers: nobody could ever approve it")
        return self

    # -------------------------------------------------------------- questions the engine asks

    def roles_of(self, operator: str) -> set[str]:
        entry = self.operators.get(operator)
        return set(entry.roles) if entry else set()

    def level(self, risk: str) -> RiskPolicy:
        return self.risk_levels.get(risk, self.risk_levels["high"])  # type: ignore[call-overload,no-any-return]

    def risk_for(self, *, artefact_type: str | None = None, produced_by: str | None = None,
                 action: str | None = None) -> RiskLevel | None:
        """The highest risk of every rule that matches (None: no gate)."""
        found: list[RiskLevel] = []
        for rule in self.rules:
            m = rule.match
            if m.artefact_type is not None and (artefact_type is None or not go_match(m.artefact_type, artefact_type)):
                continue
            if m.produced_by is not None and (produced_by is None or not go_match(m.produced_by, produced_by)):
                continue
            if m.action is not None and (action is None or not go_match(m.action, action)):
                continue
            found.append(rule.risk)
        if not found:
            return None
        return max(found, key=RISK_ORDER.index)

    @property
    def has_gates(self) -> bool:
        return bool(self.rules)
