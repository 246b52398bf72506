"""Drafts a recipe for the goal; on rework, applies the reviewer's feedback.

With RECIPE_ASK=1 (set in holt-demo.yml) it first asks a person which flour to use, and drafts once the
Answer is in its context chain.
"""

import json
import os
import sys

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
    draft = json.loads(target["payload"])
    draft["ingredients"] = [f"500 g {draft['ingredients'][0]}", "350 ml water", "10 g salt"]
    draft["revision_notes"] = [json.loads(r["payload"]).get("issue", "") for r in reviews]
    summary = "added quantities"

print(json.dumps({"artefact_type": "RecipeDraft", "artefact_payload": json.dumps(draft), "summary": summary}))
