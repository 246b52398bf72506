"""Reviews a draft: rejects one without quantities, approves one with them."""

import json
import sys


def load_draft(payload: str) -> dict:
    """A draft is a JSON object; anything else (a person's edit, plain text) is taken as its title."""
    try:
        value = json.loads(payload)
    except ValueError:
        value = None
    return value if isinstance(value, dict) else {"title": payload.strip()}


request = json.load(sys.stdin)
draft = load_draft(request["target_artefact"]["payload"])
has_quantities = all(any(ch.isdigit() for ch in item) for item in draft.get("ingredients", []))
verdict = {} if has_quantities else {"issue": "ingredients need quantities"}
print(json.dumps({"artefact_type": "Review", "artefact_payload": json.dumps(verdict), "summary": "reviewed"}))
