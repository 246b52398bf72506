"""Drafts a recipe for the goal; on rework, applies the reviewer's feedback.

With RECIPE_ASK=1 (set in holt-demo.yml) it first asks a person which flour to use, and drafts once the
Answer is in its context chain.
"""

import json
import os
import sys

from drafts import load_draft  # agents/ is on sys.path: each agent runs as a script from it


def review_note(payload: str) -> str:
    """What a review asks for, whatever its shape: an agent's {"issue": ...}, a person's
    {"feedback": ..., "by": ...} (docs/debugging.md), any other JSON, or plain text."""
    try:
        value = json.loads(payload)
    except ValueError:
        return payload.strip()
    if isinstance(value, dict):
        for key in ("issue", "feedback", "comment", "message"):
            if isinstance(value.get(key), str):
                return value[key]
        return json.dumps(value, sort_keys=True)
    return value if isinstance(value, str) else json.dumps(value)


request = json.load(sys.stdin)
target = request["target_artefact"]
chain = request["context_chain"]
reviews = [a for a in chain if a["structural_type"] == "Review"]
answers = [a for a in chain if a["structural_type"] == "Answer"]

if target["type"] == "GoalDefined":
    if os.environ.get("RECIPE_ASK") == "1" and not answers:
        print(json.dumps({"artefact_type": "Clarification", "structural_type": "Question", "ask": "human",
                          "artefact_payload": f"Which flour should the {target['payload']} use?",
                          "summary": "asking which flour"}))
        sys.exit(0)
    flour = answers[-1]["payload"].strip() if answers else "flour"
    draft = {"title": target["payload"], "ingredients": [flour, "water", "salt"], "steps": ["mix", "bake"]}
    summary = "first draft"
else:  # a feedback claim: rework the draft
    draft = load_draft(target["payload"])
    ingredients = draft.get("ingredients")
    first = ingredients[0] if isinstance(ingredients, list) and ingredients else "flour"
    draft["ingredients"] = [f"500 g {first}", "350 ml water", "10 g salt"]
    draft["revision_notes"] = [review_note(r["payload"]) for r in reviews]
    summary = "added quantities"

print(json.dumps({"artefact_type": "RecipeDraft", "artefact_payload": json.dumps(draft), "summary": summary}))
