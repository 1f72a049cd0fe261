#!/usr/bin/env bash
# mixseg bench and mixseg parity, then mixseg report and mixseg advise: the CSV, the metadata,
# the parity table, the plots and the report are written, and every SVG and
# the HTML page parse as XML.
# Usage: report_test.sh PATH/TO/mixseg
set -euo pipefail
MIXSEG=$1
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT
"$MIXSEG" bench --phase infer,train --precision fp32,mixed_bf16,int8 --filters 2 --depth 2 --batch 1,2 --size 32x32 \
  --warmup 1 --min-steps 2 --min-time 0 --energy none --out "$T/b.csv" >/dev/null
"$MIXSEG" parity --synthetic 16 --size 32x32 --depth 2 --filters 2 --epochs 1 --seeds 2 --batch 4 --out "$T/parity.csv" >/dev/null
"$MIXSEG" report "$T/b.csv" --parity "$T/parity.csv" --out "$T/report" >/dev/null
for f in report.md report.html speedup_infer.svg speedup_train.svg throughput_infer.svg memory_train.svg parity.svg; do
  [ -s "$T/report/$f" ] || { echo "missing $f"; exit 1; }
done
[ -s "$T/b.csv.meta.jsonl" ] || { echo "missing metadata"; exit 1; }
grep -q "energy on .*: --energy none" "$T/report/report.md" || { echo "report does not say energy was not measured"; exit 1; }
grep -q "^| int8 | 2 |" "$T/report/report.md" || { echo "report lacks the parity table"; exit 1; }
grep -q "^## Mixed precision over fp32" "$T/report/report.md" || { echo "report lacks the speedup table"; exit 1; }
"$MIXSEG" advise "$T/b.csv" --parity "$T/parity.csv" --filters 2 --phase infer --dice-tolerance 1 >"$T/advice.txt"
grep -q "^advice for U-Net f=2 infer: " "$T/advice.txt" && grep -q "ranked by images per second" "$T/advice.txt" ||
  { cat "$T/advice.txt"; echo "advise gave no advice"; exit 1; }
python3 - "$T/report" <<'PY'
import glob, sys
import xml.etree.ElementTree as ET
files = glob.glob(sys.argv[1] + "/*.svg") + [sys.argv[1] + "/report.html"]
for f in files:
    ET.parse(f)  # raises on anything not well-formed
root = ET.parse(sys.argv[1] + "/report.html").getroot()
svgs = root.findall(".//{http://www.w3.org/2000/svg}svg")
assert len(svgs) == len(files) - 1, (len(svgs), len(files))
print(f"{len(files)} files well-formed; the page embeds {len(svgs)} plots")
PY
echo "report test passed"
