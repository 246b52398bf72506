"""Adds nutrition notes to an approved draft (runs in the parallel phase)."""

import json
import sys

request = json.load(sys.stdin)
draft = json.loads(request["target_artefact"]["payload"])
notes = {"recipe": draft.get("title", ""), "note": "high in carbohydrates"}
print(json.dumps({"artefact_type": "NutritionNotes", "artefact_payload": json.dumps(notes), "summary": "notes"}))
