"""``holt demo recipe --headless``: the small example through the same command (real processes); a run that
does not reach its Terminal artefact exits 1 with the reason, and a second run reuses the running instance."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from pathlib import Path

from holt_core.blackboard import Blackboard
from holt_core.models import StructuralType

HOLT = [sys.executable, "-m", "holt_core.cli.main"]


async def test_recipe_demo_headless_fails_clearly_then_runs_on_the_same_instance(
        tmp_path: Path, instance: str, bb: Blackboard, cli_env: dict[str, str]) -> None:
    def demo(*extra: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([*HOLT, "demo", "recipe", "--headless", "--dir", str(tmp_path / "ws"), "--name",
                               instance, *extra], env=cli_env, cwd=tmp_path, capture_output=True, text=True)

    try:
        late = await asyncio.to_thread(demo, "--timeout", "0.5")
        again = await asyncio.to_thread(demo)
    finally:
        await asyncio.to_thread(subprocess.run, [*HOLT, "down", "--name", instance], env=cli_env, cwd=tmp_path,
                                capture_output=True)
    assert late.returncode == 1 and "no Terminal artefact within 0.5 s" in late.stderr, late.stdout + late.stderr
    assert late.stdout.splitlines()[0] == f"instance: {instance}" and "starting instance" in late.stdout
    assert again.returncode == 0, again.stdout + again.stderr
    assert "starting instance" not in again.stdout  # the running instance and workspace were reused
    assert "Terminal artefact" in again.stdout
    arts = (await bb.list_artefacts()).artefacts
    goals = [a for a in arts if a.type == "GoalDefined"]
    answers = [a for a in arts if a.structural_type == StructuralType.ANSWER]
    assert len(goals) == 2 and {a.produced_by_role for a in answers} == {"human:alice"}
    assert any(a.type == "FormattedRecipe" and a.structural_type == StructuralType.TERMINAL for a in arts)


async def test_an_unknown_demo_is_one_line(tmp_path: Path, cli_env: dict[str, str]) -> None:
    proc = await asyncio.to_thread(subprocess.run, [*HOLT, "demo", "nosuch"], env=cli_env, cwd=tmp_path,
                                   capture_output=True, text=True)
    assert proc.returncode == 1 and "unknown demo 'nosuch'" in proc.stderr and "Traceback" not in proc.stderr


async def test_a_folder_it_did_not_make_is_never_deleted(tmp_path: Path, instance: str,
                                                         cli_env: dict[str, str]) -> None:
    mine = tmp_path / "project"
    mine.mkdir()
    (mine / "keep.txt").write_text("precious")
    proc = await asyncio.to_thread(subprocess.run, [*HOLT, "demo", "recipe", "--headless", "--dir", str(mine),
                                                    "--name", instance], env=cli_env, cwd=tmp_path,
                                   capture_output=True, text=True)
    assert proc.returncode == 1 and "is not a demo workspace" in proc.stderr, proc.stderr
    assert (mine / "keep.txt").read_text() == "precious"
