#!/usr/bin/env bash
# A/B of two mixseg binaries on a machine whose speed drifts (a shared VM):
# runs `mixseg bench ARGS` with OLD and NEW alternately, ROUNDS times each,
# every row into one CSV per binary, then prints per configuration the median
# img/s of each with its range and the ratio of the medians (the way
# docs/performance.md quotes a change). Copy the old binary aside first
# (e.g. `cp build/mixseg /tmp/mixseg-old` before rebuilding).
#   scripts/ab-bench.sh OLD NEW [ROUNDS] -- BENCH_ARGS...
#   e.g. scripts/ab-bench.sh /tmp/mixseg-old build/mixseg 6 -- --precision mixed_bf16 \
#          --phase infer,train --filters 8,16 --batch 1 --min-time 1.5 --energy none --idle-seconds 0
set -euo pipefail
[ $# -ge 3 ] || { sed -n '2,10p' "$0"; exit 2; }
OLD=$1 NEW=$2
shift 2
ROUNDS=6
if [ "$1" != "--" ]; then ROUNDS=$1; shift; fi
[ "${1:-}" = "--" ] || { echo "ab-bench.sh: expected -- before the bench arguments" >&2; exit 2; }
shift
for b in "$OLD" "$NEW"; do [ -x "$b" ] || { echo "ab-bench.sh: $b is not an executable" >&2; exit 2; }; done
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT
for r in $(seq "$ROUNDS"); do
  for side in old new; do
    bin=$OLD
    [ "$side" = new ] && bin=$NEW
    "$bin" bench "$@" --out "$T/$side.csv" >"$T/$side.log" 2>&1 || { cat "$T/$side.log"; exit 1; }
  done
  echo "round $r of $ROUNDS done" >&2
done
python3 - "$T/old.csv" "$T/new.csv" "$OLD" "$NEW" <<'PY'
import csv, statistics, sys
def load(path):
    rows = {}
    for r in csv.DictReader(open(path)):
        key = (r["phase"], r["precision"], int(r["filters"]), int(r["batch"]), f'{r["height"]}x{r["width"]}')
        rows.setdefault(key, []).append(float(r["img_per_s"]))
    return rows
old, new = load(sys.argv[1]), load(sys.argv[2])
print(f"old: {sys.argv[3]}\nnew: {sys.argv[4]}\nimg/s, median (range) over {len(next(iter(old.values())))} alternated rounds\n")
print(f"{'phase':<6} {'precision':<11} {'f':>3} {'batch':>5} {'size':>8}  {'old':>22}  {'new':>22}  {'new/old':>7}")
fmt = lambda v: f"{statistics.median(v):.3g} ({min(v):.3g}-{max(v):.3g})"
for key in sorted(old):
    if key not in new:
        continue
    o, n = old[key], new[key]
    print(f"{key[0]:<6} {key[1]:<11} {key[2]:>3} {key[3]:>5} {key[4]:>8}  {fmt(o):>22}  {fmt(n):>22}  "
          f"{statistics.median(n) / statistics.median(o):>6.2f}x")
PY
