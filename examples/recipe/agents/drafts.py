"""What every recipe agent reads from a draft: shared so a person's free-form edit is taken the same way by all."""

import json


def load_draft(payload: str) -> dict:
    """A draft is a JSON object; anything else (a person's edit, plain text) is taken as its title."""
    try:
        value = json.loads(payload)
    except ValueError:
        value = None
    return value if isinstance(value, dict) else {"title": payload.strip()}
