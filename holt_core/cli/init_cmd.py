"""``holt init``: holt.yml and an example agent in this git repository."""

from __future__ import annotations

from typing import Annotated

import typer

from holt_core.cli.output import stdout, success
from holt_core.config import CONFIG_FILE
from holt_core.errors import HoltError
from holt_core.instances import workspace_root


def register(app: typer.Typer) -> None:
    """Add this module's commands to the ``holt`` app."""
    app.command("init")(init)


_INIT_HOLT_YML = """\
# Holt configuration. Each agent is a local command; `holt up` runs one process per agent.
version: "1.0"
orchestrator:
  max_review_iterations: 3
agents:
  example-agent:
    # Runs from the project root: one JSON object on stdin, one JSON result on stdout.
    command: ["python3", "agents/example-agent/run.py"]
    # review | claim | exclusive | ignore (or a bid_script that prints one of them).
    bidding_strategy: exclusive
    workspace:
      mode: ro
"""

_INIT_RUN_PY = '''\
#!/usr/bin/env python3
"""Example Holt agent: turns the artefact it is given into one result artefact.

stdin:  {"claim_type": "...", "target_artefact": {...}, "context_chain": [...]}
stdout: {"artefact_type": "...", "artefact_payload": "...", "summary": "...", "structural_type": "..."}
"""

import json
import sys


def main() -> None:
    request = json.load(sys.stdin)
    target = request["target_artefact"]
    result = {
        "artefact_type": "ExampleResult",
        "artefact_payload": f"Processed: {target.get('payload', '')}",
        "summary": f"example-agent processed {target.get('type', 'an artefact')}",
        # Terminal ends the workflow. A Standard result would be offered to the agents again.
        "structural_type": "Terminal",
    }
    print(json.dumps(result))


if __name__ == "__main__":
    main()
'''

_INIT_README = """\
# example-agent

A Holt agent is any command. For every claim it wins, Holt runs it from the project root with one
JSON object on stdin:

```json
{"claim_type": "exclusive", "target_artefact": {"id": "...", "type": "GoalDefined", "payload": "..."},
 "context_chain": []}
```

and expects exactly one JSON object on stdout, then exit code 0:

```json
{"artefact_type": "ExampleResult", "artefact_payload": "...", "summary": "...", "structural_type": "Terminal"}
```

`structural_type` is optional (`Standard` by default; `Terminal` ends the workflow, `Review` is a review
where `{}` approves). Anything else (a non-zero exit, no JSON) becomes a `ToolExecutionFailure` artefact.

Try it by hand:

```sh
echo '{"claim_type":"exclusive","target_artefact":{"type":"GoalDefined","payload":"hello"},"context_chain":[]}' \\
  | python3 agents/example-agent/run.py
```
"""

_INIT_FILES: dict[str, tuple[str, int]] = {
    CONFIG_FILE: (_INIT_HOLT_YML, 0o644),
    "agents/example-agent/run.py": (_INIT_RUN_PY, 0o755),
    "agents/example-agent/README.md": (_INIT_README, 0o644),
}


def init(
    force: Annotated[
        bool, typer.Option("--force", help="Overwrite holt's example files (other files are never touched).")
    ] = False,
) -> None:
    """Create holt.yml and an example agent in this git repository."""
    root = workspace_root()
    present = [name for name in (CONFIG_FILE, "agents") if (root / name).exists()]
    if present and not force:
        raise HoltError(
            "project already initialized",
            details=[f"{root / name} exists" for name in present],
            hint="holt init --force rewrites holt.yml and agents/example-agent/ (nothing else is changed)",
        )
    for relative, (text, mode) in _INIT_FILES.items():
        path = root / relative
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text, encoding="utf-8")
            path.chmod(mode)
        except OSError as exc:
            raise HoltError(f"cannot write {path}: {exc.strerror or exc}") from None
    success("Successfully initialized Holt project!")
    stdout.print(f"Created {CONFIG_FILE}, agents/example-agent/run.py and agents/example-agent/README.md")
    stdout.print("\nNext steps:")
    stdout.print("  1. git add holt.yml agents && git commit -m 'Add Holt'")
    stdout.print("  2. holt up")
    stdout.print('  3. holt forage --goal "Say hello" --watch')
