"""Adds nutrition notes to an approved draft (runs in the parallel phase)."""

import json
import sys

from drafts import load_draft  # agents/ is on sys.path: each agent runs as a script from it

request = json.load(sys.stdin)
draft = load_draft(request["target_artefact"]["payload"])
notes = {"recipe": draft.get("title", ""), "note": "high in carbohydrates"}
print(json.dumps({"artefact_type": "NutritionNotes", "artefact_payload": json.dumps(notes), "summary": "notes"}))
