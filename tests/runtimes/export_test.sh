#!/usr/bin/env bash
# Exports verified by real runtimes: trains a small U-Net on synthetic frames,
# quantizes it, exports int8 / fp32 / fp16 TFLite, and checks the files with
# the LiteRT interpreter (verify_tflite.py); exports int8 / fp32 / fp16 ONNX
# and checks them with onnx.checker and onnxruntime (verify_onnx.py); and
# compares the quantization with TensorFlow's converter (crosscheck_tf.py). Needs the Python runtimes that
# scripts/test.sh installs into .venv (scripts/setup-runtimes.sh); exits 77
# (skipped) without them, saying so.
# Usage: export_test.sh MIXSEG PYTHON WORKDIR
set -euo pipefail
MIXSEG=$1 PY=$2 WORK=$3
HERE=$(cd "$(dirname "$0")" && pwd)
if ! "$PY" -c "import ai_edge_litert, onnxruntime, onnx, numpy" 2>/dev/null; then
  echo "skipped: $PY lacks ai_edge_litert, onnxruntime or onnx (run scripts/setup-runtimes.sh)"
  exit 77
fi
rm -rf "$WORK" && mkdir -p "$WORK"
"$MIXSEG" train --synthetic 120 --size 64x64 --filters 8 --depth 3 --batch 8 --epochs 3 --lr 1e-2 --schedule cosine \
  --seed 3 --out "$WORK/run" >"$WORK/train.log"
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
