"""Drafts a recipe for the goal; on rework, applies the reviewer's feedback."""

import json
import sys

request = json.load(sys.stdin)
target = request["target_artefact"]
reviews = [a for a in request["context_chain"] if a["structural_type"] == "Review"]

if target["type"] == "GoalDefined":
    draft = {"title": target["payload"], "ingredients": ["flour", "water", "salt"], "steps": ["mix", "bake"]}
    summary = "first draft"
else:  # a feedback claim: rework the draft
    draft = json.loads(target["payload"])
    draft["ingredients"] = ["500 g flour", "350 ml water", "10 g salt"]
    draft["revision_notes"] = [json.loads(r["payload"]).get("issue", "") for r in reviews]
    summary = "added quantities"

print(json.dumps({"artefact_type": "RecipeDraft", "artefact_payload": json.dumps(draft), "summary": summary}))
