"""Merger: after the people approved the MergeToMain gate, merges the branch into the checked-out main
branch of the workspace and ends the workflow (a Terminal artefact)."""

from __future__ import annotations

from typing import Any

from holtdemo import gitws
from holtdemo.agent import AgentFailure, Request, result, run


def handle(req: Request) -> dict[str, Any]:
    target = req.target
    if target.get("type") != "MergeToMain":  # e.g. a person's feedback on the merge itself: nothing to undo
        notes = [f"{f.by}: {f.text}" for f in req.feedback()]
        return result(str(target.get("type", "Merged")), {"note": "already merged; feedback recorded",
                                                          "feedback": notes}, "feedback recorded", "Terminal")
    request = req.payload()
    branch, head = str(request.get("branch", "")), str(request.get("head", ""))
    if not branch or not head:
        raise AgentFailure("NoBranch", "the merge request names no branch")
    into = gitws.git("rev-parse", "--abbrev-ref", "HEAD").strip()
    if gitws.git("status", "--porcelain", "--untracked-files=no").strip():
        raise AgentFailure("WorkspaceDirty", f"the workspace has uncommitted changes; not merging into {into}")
    code, out = gitws.try_git("merge", "--no-ff", "--quiet", "-m", f"Merge {branch} (approved: merge to main)",
                              head, author="Merger")
    if code != 0:
        gitws.try_git("merge", "--abort")
        raise AgentFailure("MergeFailed", f"git merge of {branch} into {into} failed: {out[:300]}")
    commit = gitws.git("rev-parse", "HEAD").strip()
    payload = {"merged": branch, "into": into, "head": head, "merge_commit": commit,
               "files": gitws.git("diff", "--name-only", f"{commit}^1", commit).split()}
    return result("MergedToMain", payload, f"merged {branch} into {into} at {commit[:12]}", "Terminal")


if __name__ == "__main__":
    run(handle)
