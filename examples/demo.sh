#!/usr/bin/env bash
# `make demo` without make: the flagship demo (examples/go-microservice) with holt-tui attached.
# Arguments go to `holt demo`: e.g. examples/demo.sh recipe (the small example), --headless, --dir PATH.
# HOLT_DEMO_DIR still chooses the demo workspace (default: .demo in the repository).
set -euo pipefail
here="$(cd "$(dirname "$0")/.." && pwd)"
cd "$here"
exec "$here/.venv/bin/holt" demo --dir "${HOLT_DEMO_DIR:-$here/.demo}" "$@"
