"""A workflow's artefact graph as Graphviz DOT or Mermaid text (no Textual here).

One node per artefact of the workflow (type, version, producer), one edge per "derived from" link, from the
source to what derives from it. Labels are sanitised and quoted for each language.
"""

from __future__ import annotations

from holt_core.sanitise import sanitise_text
from holt_tui.model import LiveModel


def _members(model: LiveModel, artefact_id: str) -> list[str]:
    root = model.root_of(artefact_id)
    members = [a for a in model.artefacts if model.root_of(a) == root]
    return sorted(members, key=lambda a: (model.artefacts[a].created_at_ms, a))


def _label(model: LiveModel, artefact_id: str) -> str:
    a = model.artefacts[artefact_id]
    return sanitise_text(f"{a.type} v{a.version} ({a.id[:8]}) by {a.produced_by_role}", max_len=120)


def workflow_dot(model: LiveModel, artefact_id: str) -> str:
    members = _members(model, artefact_id)
    inside = set(members)
    lines = [f'digraph "workflow {model.root_of(artefact_id)[:8]}" {{', "  rankdir=TB;", "  node [shape=box];"]
    for m in members:
        label = _label(model, m).replace("\\", "\\\\").replace('"', '\\"')
        lines.append(f'  "{m}" [label="{label}"];')
    for m in members:
        for src in model.artefacts[m].source_artefacts:
            if src in inside:
                lines.append(f'  "{src}" -> "{m}";')
    lines.append("}")
    return "\n".join(lines) + "\n"


def workflow_mermaid(model: LiveModel, artefact_id: str) -> str:
    members = _members(model, artefact_id)
    inside = set(members)
    names = {m: f"a{i}" for i, m in enumerate(members)}
    lines = ["flowchart TD"]
    for m in members:
        label = _label(model, m).replace('"', "#quot;")
        lines.append(f'  {names[m]}["{label}"]')
    for m in members:
        for src in model.artefacts[m].source_artefacts:
            if src in inside:
                lines.append(f"  {names[src]} --> {names[m]}")
    return "\n".join(lines) + "\n"
