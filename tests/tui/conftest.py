"""UI tests: snapshots live in the top-level ``snapshots/`` folder, and every app runs on a frozen config."""

from __future__ import annotations

from pathlib import Path

import pytest_textual_snapshot  # pinned to 1.1.0 in pyproject: dirname below overrides its SVG extension
from syrupy.location import PyTestLocation

SNAPSHOTS = Path(__file__).resolve().parents[2] / "snapshots"


def _dirname(cls: type, *, test_location: PyTestLocation) -> str:
    return str(SNAPSHOTS / test_location.basename)


pytest_textual_snapshot.SVGImageExtension.dirname = classmethod(_dirname)  # type: ignore[assignment,method-assign]
