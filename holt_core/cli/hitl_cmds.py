"""``holt`` commands for hitl (registered here so each area owns its own module)."""

from __future__ import annotations

import typer


def register(app: typer.Typer) -> None:
    """Add this module's commands to the ``holt`` app."""
