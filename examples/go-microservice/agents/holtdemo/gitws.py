"""Git for the agents: commits go to the workflow's feature branch through a temporary worktree (the
operator's checkout is never touched); readers extract a commit into a temporary directory."""

from __future__ import annotations

import contextlib
import io
import os
import shutil
import subprocess
import tarfile
import tempfile
from collections.abc import Iterator
from pathlib import Path

from holtdemo.agent import AgentFailure


def repo() -> Path:
    return Path(os.environ.get("HOLT_WORKSPACE") or os.getcwd())


def git(*args: str, cwd: Path | None = None, check: bool = True, author: str = "") -> str:
    ident = ["-c", f"user.name={author or 'holt-demo'}", "-c", f"user.email={(author or 'agent').lower()}@agents.holt"]
    proc = subprocess.run(["git", *ident, *args], cwd=cwd or repo(), capture_output=True, text=True, timeout=120)
    if check and proc.returncode != 0:
        raise AgentFailure("GitFailed", f"git {' '.join(args[:3])} failed: {proc.stderr.strip()[:500]}")
    return proc.stdout


def try_git(*args: str, author: str = "") -> tuple[int, str]:
    ident = ["-c", f"user.name={author or 'holt-demo'}", "-c", f"user.email={(author or 'agent').lower()}@agents.holt"]
    proc = subprocess.run(["git", *ident, *args], cwd=repo(), capture_output=True, text=True, timeout=120)
    return proc.returncode, (proc.stdout + proc.stderr).strip()


def branch_for(goal_id: str) -> str:
    return f"feature/bookmarks-{goal_id[:8]}"


def commit_files(branch: str, files: dict[str, str], message: str, author: str) -> str:
    """Write ``files`` on ``branch`` (created from HEAD if new) and commit; the new commit id."""
    exists = git("rev-parse", "--verify", "--quiet", f"refs/heads/{branch}", check=False).strip()
    tmp = Path(tempfile.mkdtemp(prefix="holt-demo-commit-"))
    tree = tmp / "wt"
    try:
        if exists:
            git("worktree", "add", "--quiet", str(tree), branch)
        else:
            git("worktree", "add", "--quiet", "-b", branch, str(tree), "HEAD")
        for rel, text in files.items():
            path = (tree / rel).resolve()
            if tree.resolve() not in path.parents:
                raise AgentFailure("BadFilePath", f"refusing to write outside the repository: {rel}")
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text, encoding="utf-8")
        git("add", "-A", cwd=tree)
        git("commit", "--quiet", "--allow-empty", "-m", message, cwd=tree, author=author)
        return git("rev-parse", "HEAD", cwd=tree).strip()
    finally:
        git("worktree", "remove", "--force", str(tree), check=False)
        shutil.rmtree(tmp, ignore_errors=True)


@contextlib.contextmanager
def checkout(commit: str, subdir: str = "") -> Iterator[Path]:
    """The files of ``commit`` (under ``subdir``) in a temporary directory."""
    tmp = Path(tempfile.mkdtemp(prefix="holt-demo-src-"))
    try:
        proc = subprocess.run(["git", "archive", "--format=tar", commit, *([subdir] if subdir else [])],
                              cwd=repo(), capture_output=True, timeout=120)
        if proc.returncode != 0:
            raise AgentFailure("GitFailed", f"cannot read commit {commit[:12]}: "
                                            f"{proc.stderr.decode(errors='replace').strip()[:300]}")
        with tarfile.open(fileobj=io.BytesIO(proc.stdout)) as tar:
            tar.extractall(tmp, filter="data")
        yield tmp / subdir if subdir else tmp
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def show(commit: str, path: str) -> str:
    return git("show", f"{commit}:{path}")


def change_summary(base: str, head: str) -> dict[str, object]:
    """What the branch changes: commits (author, subject) and a diffstat."""
    log = git("log", "--reverse", "--format=%h %an: %s", f"{base}..{head}").strip().splitlines()
    stat = git("diff", "--stat", f"{base}...{head}").strip().splitlines()
    return {"base": base, "head": head, "commits": log, "diffstat": stat}
