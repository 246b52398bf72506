"""A small layered ("Sugiyama-style") layout that draws an artefact's neighbourhood as boxes and arrows.

Layers come from derivation (a node sits one layer below its lowest source), edges that skip layers get
dummy nodes drawn as a plain line, nodes are ordered by the mean position of their sources, and edges are
routed in the gap between two layers on a grid of connection bits, which turns crossings and joins into the
right box-drawing characters. Kept to ~50 nodes: the big view is the virtual list, not this.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field

BOX_W = 22
BOX_H = 4
DUMMY_W = 3
GAP = 2
CHANNEL = 3

_UP, _DOWN, _LEFT, _RIGHT = 1, 2, 4, 8
_GLYPH = {
    _UP: "│", _DOWN: "│", _UP | _DOWN: "│", _LEFT: "─", _RIGHT: "─", _LEFT | _RIGHT: "─",
    _UP | _RIGHT: "└", _UP | _LEFT: "┘", _DOWN | _RIGHT: "┌", _DOWN | _LEFT: "┐",
    _UP | _DOWN | _RIGHT: "├", _UP | _DOWN | _LEFT: "┤", _LEFT | _RIGHT | _DOWN: "┬", _LEFT | _RIGHT | _UP: "┴",
    _UP | _DOWN | _LEFT | _RIGHT: "┼",
}


@dataclass
class Drawing:
    lines: list[str]
    focus_box: tuple[int, int, int, int] | None = None  # x, y, width, height of the focused node
    boxes: dict[str, tuple[int, int]] = field(default_factory=dict)  # node -> (x, y)


def _layers(nodes: list[str], edges: list[tuple[str, str]]) -> dict[str, int]:
    parents: dict[str, list[str]] = {n: [] for n in nodes}
    for src, dst in edges:
        if src in parents and dst in parents and src != dst:
            parents[dst].append(src)
    layer: dict[str, int] = {}

    def visit(n: str, trail: frozenset[str]) -> int:
        if n in layer:
            return layer[n]
        ps = [p for p in parents[n] if p not in trail]
        layer[n] = 0 if not ps else 1 + max(visit(p, trail | {n}) for p in ps)
        return layer[n]

    for n in nodes:
        visit(n, frozenset())
    return layer


def layered_layout(nodes: list[str], edges: list[tuple[str, str]], labels: dict[str, tuple[str, str]],
                   focus: str | None = None) -> Drawing:
    """Boxes (two label lines each) and arrows from each source down to what derives from it."""
    if not nodes:
        return Drawing([])
    layer = _layers(nodes, edges)
    depth = max(layer.values()) + 1
    rows: list[list[str]] = [[] for _ in range(depth)]
    for n in nodes:  # nodes arrive in a meaningful order (focus, parents, children): keep it as the tie-break
        rows[layer[n]].append(n)
    # Long edges go through one dummy per skipped layer.
    chains: list[list[str]] = []
    for i, (src, dst) in enumerate(edges):
        if src not in layer or dst not in layer:
            continue
        chain = [src]
        for k in range(layer[src] + 1, layer[dst]):
            dummy = f"\0{i}:{k}"
            rows[k].append(dummy)
            chain.append(dummy)
        chain.append(dst)
        chains.append(chain)
    # One downward barycentre sweep: a node sits near the mean position of what it comes from.
    ups: dict[str, list[str]] = {}
    for chain in chains:
        for a, b in itertools.pairwise(chain):
            ups.setdefault(b, []).append(a)
    position: dict[str, float] = {n: float(i) for i, n in enumerate(rows[0])}
    for k in range(1, depth):
        original = {n: i for i, n in enumerate(rows[k])}

        def centre(n: str, original: dict[str, int] = original) -> tuple[float, int]:
            ps = [position[p] for p in ups.get(n, []) if p in position]
            return (sum(ps) / len(ps) if ps else float(original[n]), original[n])

        rows[k].sort(key=centre)
        for i, n in enumerate(rows[k]):
            position[n] = float(i)

    def width(n: str) -> int:
        return DUMMY_W if n.startswith("\0") else BOX_W

    xs: dict[str, int] = {}
    total_w = 0
    for row in rows:
        x = 0
        for n in row:
            xs[n] = x
            x += width(n) + GAP
        total_w = max(total_w, x)
    height = depth * BOX_H + (depth - 1) * CHANNEL
    bits = [[0] * total_w for _ in range(height)]
    glyph: dict[tuple[int, int], str] = {}
    drawing = Drawing([])
    for k, row in enumerate(rows):
        y = k * (BOX_H + CHANNEL)
        for n in row:
            x = xs[n]
            if n.startswith("\0"):
                for dy in range(BOX_H):
                    bits[y + dy][x + 1] |= _UP | _DOWN
                continue
            heavy = n == focus
            h, v, corners = ("━", "┃", "┏┓┗┛") if heavy else ("─", "│", "┌┐└┘")
            top, sub = labels.get(n, (n[:8], ""))
            inner = BOX_W - 2
            texts = [corners[0] + h * inner + corners[1],
                     v + top[:inner].ljust(inner) + v,
                     v + sub[:inner].ljust(inner) + v,
                     corners[2] + h * inner + corners[3]]
            for dy, text in enumerate(texts):
                for dx, ch in enumerate(text):
                    glyph[(y + dy, x + dx)] = ch
            drawing.boxes[n] = (x, y)
            if heavy:
                drawing.focus_box = (x, y, BOX_W, BOX_H)

    def mid(n: str) -> int:
        return xs[n] + (1 if n.startswith("\0") else BOX_W // 2)

    for chain in chains:
        for a, b in itertools.pairwise(chain):
            y0 = layer_y(a, layer, rows) + BOX_H
            xa, xb = mid(a), mid(b)
            bits[y0][xa] |= _UP | _DOWN
            if xa == xb:
                bits[y0 + 1][xa] |= _UP | _DOWN
            else:
                step = 1 if xb > xa else -1
                bits[y0 + 1][xa] |= _UP | (_RIGHT if step > 0 else _LEFT)
                for x in range(xa + step, xb, step):
                    bits[y0 + 1][x] |= _LEFT | _RIGHT
                bits[y0 + 1][xb] |= _DOWN | (_LEFT if step > 0 else _RIGHT)
            if b.startswith("\0"):
                bits[y0 + 2][xb] |= _UP | _DOWN
            else:
                glyph[(y0 + 2, xb)] = "▼"
    lines: list[str] = []
    for y in range(height):
        chars = [glyph.get((y, x)) or _GLYPH.get(bits[y][x], " ") for x in range(total_w)]
        lines.append("".join(chars).rstrip())
    drawing.lines = lines
    return drawing


def layer_y(n: str, layer: dict[str, int], rows: list[list[str]]) -> int:
    if n in layer:
        return layer[n] * (BOX_H + CHANNEL)
    for k, row in enumerate(rows):
        if n in row:
            return k * (BOX_H + CHANNEL)
    raise KeyError(n)
