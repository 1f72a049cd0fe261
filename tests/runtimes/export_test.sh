#!/usr/bin/env bash
# Exports verified by real runtimes: trains a small U-Net on synthetic frames,
# quantizes it, exports int8 / fp32 / fp16 TFLite, and checks the files with
# the LiteRT interpreter (verify_tflite.py); exports int8 / fp32 / fp16 ONNX
# and checks them with onnx.checker and onnxruntime (verify_onnx.py); and
# compares the quantization with TensorFlow's converter (crosscheck_tf.py). Needs the Python runtimes that
# scripts/test.sh installs into .venv (scripts/setup-runtimes.sh); exits 77
# (skipped) without them, saying so. UPSAMPLING (default nearest) is the
# decoder's: transposed exports a TRANSPOSE_CONV / ConvTranspose per level; the
# LiteRT peer rows at the end are run for the nearest model only.
# Usage: export_test.sh MIXSEG PYTHON WORKDIR [UPSAMPLING]
set -euo pipefail
MIXSEG=$1 PY=$2 WORK=$3 UPSAMPLING=${4:-nearest}
HERE=$(cd "$(dirname "$0")" && pwd)
if ! "$PY" -c "import ai_edge_litert, onnxruntime, onnx, numpy" 2>/dev/null; then
  echo "skipped: $PY lacks ai_edge_litert, onnxruntime or onnx (run scripts/setup-runtimes.sh)"
  exit 77
fi
rm -rf "$WORK" && mkdir -p "$WORK"
"$MIXSEG" train --synthetic 120 --size 64x64 --filters 8 --depth 3 --batch 8 --epochs 3 --lr 1e-2 --schedule cosine \
  --seed 3 --upsampling "$UPSAMPLING" --out "$WORK/run" >"$WORK/train.log"
"$MIXSEG" synth --out "$WORK/calib" --count 100 --size 64x64 --seed 11 >/dev/null
"$MIXSEG" quantize "$WORK/run/best.safetensors" --data "$WORK/calib" --out "$WORK/m.int8.safetensors" >"$WORK/quantize.log"
"$MIXSEG" export "$WORK/m.int8.safetensors" --format tflite --precision int8 --out "$WORK/m_int8.tflite"
"$MIXSEG" export "$WORK/m.int8.safetensors" --format tflite --precision int8 --float-io --out "$WORK/m_int8_fio.tflite"
"$MIXSEG" export "$WORK/run/best.safetensors" --format tflite --precision fp32 --out "$WORK/m_fp32.tflite"
"$MIXSEG" export "$WORK/run/best.safetensors" --format tflite --precision fp16 --out "$WORK/m_fp16.tflite"
for p in fp32 fp16; do
  "$MIXSEG" export "$WORK/run/best.safetensors" --format onnx --precision $p --out "$WORK/m_$p.onnx"
done
"$MIXSEG" export "$WORK/m.int8.safetensors" --format onnx --precision int8 --out "$WORK/m_int8.onnx"
# The preflight passes ours and refuses the float model, naming the first op.
"$MIXSEG" edgetpu-check "$WORK/m_int8.tflite" >"$WORK/edgetpu.log"
if "$MIXSEG" edgetpu-check "$WORK/m_fp32.tflite" >"$WORK/edgetpu_fp32.log" 2>&1; then
  echo "FAIL: edgetpu-check accepted a float model"; exit 1
fi
grep -q "op 0 (CONV_2D" "$WORK/edgetpu_fp32.log" || { cat "$WORK/edgetpu_fp32.log"; exit 1; }
"$PY" "$HERE/verify_tflite.py" "$MIXSEG" "$WORK"
"$PY" "$HERE/verify_onnx.py" "$MIXSEG" "$WORK"
# TensorFlow's converter on the same folded weights and calibration frames.
if "$PY" -c "import tensorflow" 2>/dev/null; then
  TF_CPP_MIN_LOG_LEVEL=3 "$PY" "$HERE/crosscheck_tf.py" "$WORK" "$WORK/calib" 2> "$WORK/tf.log" || { cat "$WORK/tf.log"; exit 1; }
else
  echo "note: no TensorFlow in $PY: the cross-check of the quantization against TensorFlow's was not run"
fi
[ "$UPSAMPLING" = nearest ] || exit 0
# The LiteRT peer (bench/peers/litert_unet.py) on the int8 and fp32 exports,
# beside mixseg bench's int8 rows: the design's CSV schema, the precision
# read off the model, a batch other than the export's 1, and mixseg report
# setting the int8 engine beside LiteRT.
for m in int8 fp32; do
  "$PY" "$HERE/../../bench/peers/litert_unet.py" --model "$WORK/m_$m.tflite" --filters 8 --depth 3 --size 64x64 \
    --batch 1,2 --warmup 1 --min-steps 2 --min-time 0 --out "$WORK/peers.csv" >"$WORK/litert_$m.log" 2>&1 ||
    { cat "$WORK/litert_$m.log"; exit 1; }
done
"$MIXSEG" bench --phase infer --precision int8 --filters 8 --depth 3 --size 64x64 --batch 1,2 --warmup 1 \
  --min-steps 2 --min-time 0 --energy none --out "$WORK/peers.csv" >/dev/null
"$MIXSEG" report "$WORK/peers.csv" --out "$WORK/peers-report" >/dev/null
"$PY" - "$WORK/peers.csv" "$WORK/peers-report/report.md" <<'PY'
import csv, re, sys
rows = [r for r in csv.DictReader(open(sys.argv[1])) if r["framework"] == "litert"]
got = sorted((r["precision"], int(r["batch"]), r["height"], r["width"]) for r in rows)
assert got == [("fp32", 1, "64", "64"), ("fp32", 2, "64", "64"), ("int8", 1, "64", "64"), ("int8", 2, "64", "64")], got
assert all(float(r["img_per_s"]) > 0 for r in rows), rows
report = open(sys.argv[2]).read()
side = report[report.index("## Frameworks side by side"):report.index("## All results")]
assert re.search(r"\| infer \| int8 \| 64x64 \| 8 \| 2 \| mixseg [^|]+ \| [0-9.e+]+ \| litert [^|]+ \|", side), side
print("LiteRT peer: int8 and fp32 rows, set beside mixseg's int8 engine in the report")
PY
