"""What every reviewer of this demo shares."""

from __future__ import annotations

from typing import Any

from holtdemo import gitws
from holtdemo.agent import Request, result


def acknowledge(req: Request, name: str) -> dict[str, Any]:
    """A reviewer given something it does not review (a person's feedback on one of its own reviews):
    it records that it read the feedback, as a new version of its review."""
    notes = [f"{f.by}: {f.text}" for f in req.feedback()]
    return result("Review", {"reviewer": name, "acknowledged": notes or ["nothing to review"],
                             "note": "feedback on a review is recorded; the reviewed artefact is unchanged"},
                  f"{name}: feedback acknowledged", "Review")


def spec_of(req: Request) -> str:
    """The committed spec of the design under review (the payload's copy if the commit is unreadable)."""
    payload = req.payload()
    commit, path = str(payload.get("commit", "")), str(payload.get("spec_path", "api/openapi.yaml"))
    if commit:
        try:
            return gitws.show(commit, path)
        except Exception:
            pass
    return str(payload.get("spec", ""))
