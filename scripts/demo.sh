#!/usr/bin/env bash
# Sets everything up (scripts/setup.sh) and runs the main job end to end on
# synthetic data: writes a BAGLS-style folder of endoscopy-like frames, trains
# the U-Net in fp32, mixed_fp16 and mixed_bf16 on it, evaluates each on
# held-out frames, predicts a few masks, quantizes the fp32 model to int8
# (evaluated too), exports it for the Edge TPU (TFLite) and ONNX with the Edge
# TPU preflight, and ends with a table per policy: Dice, img/s, activation
# memory, and the held-out Dice of every precision. About a minute on 2 cores
# after the build.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
M=${BUILD_DIR:-build}/mixseg
OUT=${DEMO_OUT:-demo-out}
rm -rf "$OUT"
mkdir -p "$OUT"

echo "== the model"
"$M" info --filters 8 --depth 4 --size 128x128 --batch 4
echo
echo "== synthetic data"
"$M" synth --out "$OUT/data" --count 300 --size 128x128 --seed 1
echo
echo "== training in three precision policies (same data, seed, epochs)"
"$M" train --data "$OUT/data" --size 128x128 --filters 8 --depth 4 --batch 4 --epochs 5 --lr 1e-2 --schedule cosine --seed 1 \
  --precision fp32,mixed_fp16,mixed_bf16 --out "$OUT/runs" | tee "$OUT/train.txt"
echo
echo "== evaluation on 60 unseen synthetic frames"
for p in fp32 mixed_fp16 mixed_bf16; do
  "$M" eval "$OUT/runs/$p/last.safetensors" --synthetic 60 --seed 999 | tail -1 | sed "s/^/$p: /" | tee -a "$OUT/eval.txt"
done
echo
echo "== predicted masks"
mkdir -p "$OUT/sample"
for i in 0 1 2; do cp "$OUT/data/$i.png" "$OUT/sample/"; done
"$M" predict "$OUT/runs/mixed_fp16/last.safetensors" "$OUT/sample" --out "$OUT/masks"
echo
echo "== int8 deployment: quantize the fp32 model (calibrated on the training frames), evaluate, export"
"$M" quantize "$OUT/runs/fp32/last.safetensors" --data "$OUT/data" --out "$OUT/model.int8.safetensors" >"$OUT/quantize.txt"
tail -n +2 "$OUT/quantize.txt" | head -3
"$M" eval "$OUT/model.int8.safetensors" --synthetic 60 --seed 999 | tail -1 | sed "s/^/int8: /" | tee -a "$OUT/eval.txt"
"$M" export "$OUT/model.int8.safetensors" --format tflite --out "$OUT/model_int8.tflite"
"$M" export "$OUT/model.int8.safetensors" --format onnx --precision int8 --out "$OUT/model_int8.onnx"
"$M" edgetpu-check "$OUT/model_int8.tflite" | tail -2
echo
echo "== summary (validation Dice after 5 epochs; img/s of training on this CPU, the median epoch's after the first; fast CPU backend)"
sed -n '/^precision /,$p' "$OUT/train.txt"
echo "held-out Dice:"
cat "$OUT/eval.txt"
