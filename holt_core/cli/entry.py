"""The ``holt`` console script: Ctrl-C while the CLI is still loading ends it quietly (exit 130).

Importing the CLI takes a moment on a busy machine; an interrupt then would print a traceback from
whatever module was being imported. Nothing has started yet at that point, so there is nothing to undo.
"""

from __future__ import annotations

import sys


def run() -> None:
    try:
        from holt_core.cli.main import run as main
    except KeyboardInterrupt:
        sys.exit(130)
    main()
