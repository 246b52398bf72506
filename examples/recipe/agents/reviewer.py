"""Reviews a draft: rejects one without quantities, approves one with them."""

import json
import sys

from drafts import load_draft  # agents/ is on sys.path: each agent runs as a script from it

request = json.load(sys.stdin)
draft = load_draft(request["target_artefact"]["payload"])
has_quantities = all(any(ch.isdigit() for ch in item) for item in draft.get("ingredients", []))
verdict = {} if has_quantities else {"issue": "ingredients need quantities"}
print(json.dumps({"artefact_type": "Review", "artefact_payload": json.dumps(verdict), "summary": "reviewed"}))
