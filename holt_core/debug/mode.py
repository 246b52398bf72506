"""The instance's control mode: running, or under full control (every decision waits)."""

from __future__ import annotations

from pydantic import BaseModel


class ControlMode(BaseModel):
    full_control: bool = False
    by: str = ""
    since_ms: int = 0
    reason: str = ""

    def to_json(self) -> str:
        return self.model_dump_json()

    @classmethod
    def parse(cls, raw: str | None) -> ControlMode:
        return cls.model_validate_json(raw) if raw else cls()
