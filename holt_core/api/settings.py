"""The ``api:`` section of holt.yml: where the approvals API listens and how chat callbacks are trusted.

Read by the API process from holt.yml itself, never from Redis: whoever can write Redis (an agent) must not be
able to map a chat user to an operator or change the signing secret.
"""

from __future__ import annotations

import re

from pydantic import BaseModel, ConfigDict, Field, field_validator

from holt_core.errors import InvalidInput
from holt_core.identity import validate_operator

_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_SLACK_ID = re.compile(r"^[A-Z0-9]{2,32}$")
DEFAULT_SLACK_SECRET_ENV = "HOLT_SLACK_SIGNING_SECRET"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class SlackSettings(_Strict):
    # The signing secret is a secret: holt.yml names the environment variable that holds it.
    signing_secret_env: str = DEFAULT_SLACK_SECRET_ENV
    # Slack user id (U0123ABCD) -> holt operator name. Anyone not listed is refused (and audited).
    users: dict[str, str] = Field(default_factory=dict)

    @field_validator("signing_secret_env")
    @classmethod
    def _env(cls, value: str) -> str:
        if not _ENV_NAME.match(value):
            raise ValueError(f"signing_secret_env must be an environment variable name, got '{value[:40]}'")
        return value

    @field_validator("users")
    @classmethod
    def _users(cls, value: dict[str, str]) -> dict[str, str]:
        for user_id, operator in value.items():
            if not _SLACK_ID.match(user_id):
                raise ValueError(f"'{user_id[:40]}' is not a Slack user id (like U0123ABCD)")
            try:
                validate_operator(operator)
            except InvalidInput as exc:
                raise ValueError(exc.message) from None
        return value


class ApiSettings(_Strict):
    enabled: bool = True
    host: str = "127.0.0.1"
    port: int = Field(default=0, ge=0, le=65535, strict=True)  # 0: a free port, recorded in the registry
    slack: SlackSettings = Field(default_factory=SlackSettings)
