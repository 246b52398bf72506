"""Entry point of ``holt-tui``."""

from __future__ import annotations

import sys


def run() -> None:
    print("holt-tui: not built yet", file=sys.stderr)
    sys.exit(1)
