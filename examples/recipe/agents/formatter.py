"""Formats the approved draft as text and ends the workflow (a Terminal artefact)."""

import json
import sys

from drafts import load_draft  # agents/ is on sys.path: each agent runs as a script from it

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
