"""Adds nutrition notes to an approved draft (runs in the parallel phase)."""

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
notes = {"recipe": draft.get("title", ""), "note": "high in carbohydrates"}
print(json.dumps({"artefact_type": "NutritionNotes", "artefact_payload": json.dumps(notes), "summary": "notes"}))
