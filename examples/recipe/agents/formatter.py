"""Formats the approved draft as text and ends the workflow (a Terminal artefact)."""

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
lines = [f"# {draft.get('title', 'Recipe')}", "", "## Ingredients"]
lines += [f"- {item}" for item in draft.get("ingredients", [])]
lines += ["", "## Method"] + [f"{n}. {step}" for n, step in enumerate(draft.get("steps", []), 1)]
print(json.dumps({
    "artefact_type": "FormattedRecipe",
    "artefact_payload": "\n".join(lines),
    "summary": "formatted",
    "structural_type": "Terminal",
}))
