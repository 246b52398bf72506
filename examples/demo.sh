#!/usr/bin/env bash
# The main job of `make demo`: the recipe workflow on the embedded Redis, from goal to Terminal.
# Re-running reuses the demo workspace and the running instance, and forages a new goal.
set -euo pipefail
here="$(cd "$(dirname "$0")/.." && pwd)"
holt="$here/.venv/bin/holt"
demo="${HOLT_DEMO_DIR:-$here/.demo}"

"$holt" redis start
if [ ! -d "$demo/.git" ]; then
  rm -rf "$demo"
  cp -r "$here/examples/recipe" "$demo"
  git -C "$demo" init -q -b main
  git -C "$demo" -c user.name=holt -c user.email=demo@localhost add -A
  git -C "$demo" -c user.name=holt -c user.email=demo@localhost commit -q -m "recipe demo"
fi
cd "$demo"
if ! "$holt" list --json | grep -q '"name": "demo"' || "$holt" list --json | grep -A1 '"name": "demo"' | grep -q Stopped; then
  "$holt" up --name demo
fi
"$holt" forage --name demo --goal "Sourdough bread" --watch
echo
"$holt" hoard --name demo
echo
echo "The instance 'demo' keeps running in $demo: try 'holt watch -n demo', 'holt logs orchestrator -n demo',"
echo "and stop it with: .venv/bin/holt down --name demo"
