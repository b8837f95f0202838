#!/bin/bash
# Records what the REAL qubesd ends up holding when the stacks of a sequence
# directory (default test/fixtures/template/real-sequence) DIR/N.qubes.yaml
# are applied in turn (`qkit template apply --prune --allow-replace`, plus
# the options in DIR/flags if any, policy in a directory), for
# test/sdk/template-real-sequence.test.ts, which applies the same stacks to
# the simulator started from the same machine and compares.
#
#   QUBES_CORE_ADMIN_SRC=... QUBES_CORE_QREXEC_SRC=... scripts/record-template-sequence.sh [DIR]
#
# Uses the shared tools' real qubesd (run-qubesd.sh, $QUBESD_TOOLS, default
# /work/shared/tools/qubesd) and its scenario (qubesd-scenario.py --setup).
# Writes, in the fixture directory: system.json (`qkit system snapshot` of the
# machine before), and after each stack N: N.real.yaml (`qkit template
# export`), N.apply.txt (the last line of the apply) and N.replan.txt (the
# last line of a plan made right after: "No changes" when apply converged).
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
FIX=$(cd "${1:-$ROOT/test/fixtures/template/real-sequence}" && pwd)
FLAGS=$(cat "$FIX/flags" 2>/dev/null || true)
TOOLS=${QUBESD_TOOLS:-/work/shared/tools/qubesd}
Q="node $ROOT/sdk/dist/cli.js"
W=$(mktemp -d)
export QUBESD_STATE_DIR=$W/state QUBESD_DETERMINISTIC=1
mkdir -p "$QUBESD_STATE_DIR" "$W/pol"
bash "$TOOLS/run-qubesd.sh" > "$W/qubesd.log" 2>&1 &
QPID=$!
trap 'kill $QPID 2>/dev/null; pkill -P $QPID 2>/dev/null; rm -rf "$W"' EXIT
for _ in $(seq 120); do [ -S "$QUBESD_STATE_DIR/qubesd.sock" ] && break; sleep 0.25; done
R=$QUBESD_STATE_DIR/qubesd.sock
python3 "$TOOLS/qubesd-scenario.py" "$R" --setup > /dev/null
$Q system snapshot --socket "$R" > "$FIX/system.json"
for st in "$FIX"/[0-9].qubes.yaml; do
  n=$(basename "$st" .qubes.yaml)
  $Q template apply "$st" --socket "$R" --policy-dir "$W/pol" --yes --prune --allow-replace $FLAGS > "$W/apply.txt" 2>&1 || true
  tail -1 "$W/apply.txt" > "$FIX/$n.apply.txt"
  $Q template plan "$st" --socket "$R" --policy-dir "$W/pol" --prune --allow-replace $FLAGS > "$W/plan.txt" 2>&1 || true
  tail -1 "$W/plan.txt" > "$FIX/$n.replan.txt"
  $Q template export --socket "$R" 2>/dev/null > "$FIX/$n.real.yaml"
  echo "$n: $(cat "$FIX/$n.apply.txt") / $(cat "$FIX/$n.replan.txt")"
done
