"""SpecValidator: a tool agent. Checks the committed spec with openapi-spec-validator; an invalid document
is a rejecting review carrying the validator's own messages, so the Architect fixes it."""

from __future__ import annotations

import importlib.metadata
from typing import Any

from holtdemo import spec
from holtdemo.agent import AgentFailure, Request, result, run
from holtdemo.reviewing import acknowledge, spec_of


def handle(req: Request) -> dict[str, Any]:
    if req.target.get("type") != "ApiDesign":
        return acknowledge(req, "spec validator")
    try:
        from openapi_spec_validator import validate
    except ImportError:
        raise AgentFailure("ValidatorMissing", "openapi-spec-validator is not installed: "
                                               "pip install 'holt[demo]'") from None
    tool = f"openapi-spec-validator {importlib.metadata.version('openapi-spec-validator')}"
    doc = spec.load(spec_of(req))
    try:
        validate(doc)
    except Exception as exc:  # the validator raises its own error types (and referencing's for bad $refs)
        message = str(exc).split(" within {", 1)[0].strip()[:600]
        payload = {"verdict": "invalid OpenAPI document", "validator": tool,
                   "errors": [f"{type(exc).__name__}: {message}"]}
        return result("Review", payload, f"{tool}: invalid")
    return result("Review", {}, f"{tool}: valid OpenAPI {doc.get('openapi')}")


if __name__ == "__main__":
    run(handle)
