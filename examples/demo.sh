#!/usr/bin/env bash
# The main job of `make demo`: the recipe workflow on the embedded Redis, with holt-tui attached.
# The Drafter asks a question first and a breakpoint waits on the Formatter's grant, so the debugger opens
# with something to do: answer the question (a in the Inbox), then step the held decision (s).
# Re-running reuses the demo workspace and the running instance, and forages a new goal.
set -euo pipefail
here="$(cd "$(dirname "$0")/.." && pwd)"
bin="$here/.venv/bin"
holt="$bin/holt"
demo="${HOLT_DEMO_DIR:-$here/.demo}"
export HOLT_OPERATOR="${HOLT_OPERATOR:-$(id -un 2>/dev/null || echo operator)}"

"$holt" redis start
if [ ! -d "$demo/.git" ] || ! cmp -s "$here/examples/recipe/holt-demo.yml" "$demo/holt.yml"; then
  "$holt" down --name demo >/dev/null 2>&1 || true  # an instance running from an older demo workspace
  rm -rf "$demo"
  cp -r "$here/examples/recipe" "$demo"
  cp "$here/examples/recipe/holt-demo.yml" "$demo/holt.yml"
  git -C "$demo" init -q -b main
  git -C "$demo" -c user.name=holt -c user.email=demo@localhost add -A
  git -C "$demo" -c user.name=holt -c user.email=demo@localhost commit -q -m "recipe demo"
fi
cd "$demo"
if ! "$holt" list --json | grep -q '"name": "demo"' || "$holt" list --json | grep -A1 '"name": "demo"' | grep -q Stopped; then
  "$holt" up --name demo
fi
if ! "$holt" debug break list --name demo --json | grep -q '"granted_role": "Formatter"'; then
  "$holt" debug break add --name demo --type RecipeDraft --granted Formatter
fi
# The goal is started by a workflow bot, so you (the operator) are free to answer and approve.
"$holt" forage --name demo --as demo-bot --goal "Sourdough bread"
echo "Waiting for the Drafter's question..."
"$holt" questions --name demo --wait --timeout 60
if [ -t 0 ] && [ -t 1 ] && [ -z "${HOLT_DEMO_NO_TUI:-}" ]; then
  exec "$bin/holt-tui" attach demo
fi
echo
echo "Not a terminal, so holt-tui was not opened. In one: $bin/holt-tui attach demo"
echo "Or from the shell: holt answer <question-id> \"rye flour\" -n demo; holt debug held -n demo; holt debug step -n demo"
