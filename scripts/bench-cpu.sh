#!/usr/bin/env bash
# The CPU benchmark against the peers, in one run: mixseg (fast backend),
# PyTorch (Debian's python3-torch 1.13, and a current torch from PyPI in
# .venv; NCHW and channels_last each) and onnxruntime (PyPI, in .venv, on
# mixseg's own fp32 ONNX export and on the PyTorch peer's; the faster counts),
# LiteRT (XNNPACK) on mixseg's int8 TFLite export, TensorFlow/Keras (the paper's other
# framework; PyPI tensorflow-cpu, in .venv through scripts/setup-runtimes.sh)
# and JAX/XLA (PyPI jax, flax, optax in .venv-jax, kept apart from the pinned
# test runtimes), 512x256, fp32
# inference and training, with mixseg's 16-bit policies and int8 in the same
# rounds (f in PRECISION_FILTERS), and the peers' mixed_bf16 (autocast,
# Keras and JAX policies) beside their fp32 for f in PEER_PRECISION_FILTERS; ends with the comparison tables (peers;
# 16-bit over fp32 paired round by round) and `mixseg report` (OUT/report). Installs what is
# missing (scripts/setup.sh, apt, pip; PyPI's torch is a ~4 GB download:
# PYPI_TORCH=0 skips it; TF=0 skips TensorFlow, JAX=0 skips JAX).
# This 2-core VM's speed drifts by up to ~50% over minutes (other tenants),
# so the frameworks run interleaved per model size and the whole sweep is
# repeated ROUNDS times; compare.py gives the ratio of medians and the
# ratio paired round by round (each comparison's sides run back to back).
#   scripts/bench-cpu.sh [out-dir]     (FILTERS="8 16 32" PRECISION_FILTERS="8 16" BATCHES=1,4 MIN_TIME=2
#                                       ROUNDS=3 PEER_PRECISIONS=fp32,mixed_bf16 PEER_PRECISION_FILTERS="8"
#                                       to change the sweep)
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${1:-out/bench-cpu}
FILTERS=${FILTERS:-"8 16 32"}
BATCHES=${BATCHES:-1,4}
MIN_TIME=${MIN_TIME:-2}
SIZE=${SIZE:-512x256}
ROUNDS=${ROUNDS:-3}
PRECISION_FILTERS=${PRECISION_FILTERS:-"8 16"}
PEER_PRECISIONS=${PEER_PRECISIONS:-fp32,mixed_bf16}
PEER_PRECISION_FILTERS=${PEER_PRECISION_FILTERS:-"8"}

bash scripts/setup.sh
if ! /usr/bin/python3 -c "import torch" 2>/dev/null; then
  apt-get install -y -qq python3-torch python3-numpy python3-venv >/dev/null
fi
if [ ! -x .venv/bin/python ] || ! .venv/bin/python -c "import onnxruntime" 2>/dev/null; then
  /usr/bin/python3 -m venv --system-site-packages .venv
  .venv/bin/pip install -q onnxruntime
fi
PYPI_TORCH=${PYPI_TORCH:-1}
if [ "$PYPI_TORCH" = 1 ] && ! .venv/bin/python -c "import torch, sys; sys.exit(int(torch.__version__.split('.')[0]) < 2)" 2>/dev/null; then
  .venv/bin/pip install -q "torch>=2" || { echo "PyPI torch did not install; continuing without it"; PYPI_TORCH=0; }
fi
TF=${TF:-1}
if [ "$TF" = 1 ]; then scripts/setup-runtimes.sh || { echo "TensorFlow did not install; continuing without it"; TF=0; }; fi
JAX=${JAX:-1}
if [ "$JAX" = 1 ] && ! .venv-jax/bin/python -c "import jax, flax, optax" 2>/dev/null; then
  { /usr/bin/python3 -m venv .venv-jax && .venv-jax/bin/pip install -q jax flax optax; } ||
    { echo "JAX did not install; continuing without it"; JAX=0; }
fi
cmake --preset release >/dev/null && cmake --build build >/dev/null

mkdir -p "$OUT"
CSV="$OUT/results.csv"
rm -f "$CSV" "$CSV.meta.jsonl" "$OUT"/unet_f*.onnx "$OUT"/mixseg_f*.onnx "$OUT"/mixseg_f*_int8.tflite
COMMON=(--size "$SIZE" --min-time "$MIN_TIME")
CEILING=(--conv-ceiling)  # mixseg's rows also against their convolutions alone (metadata, compare.py, report)
for round in $(seq "$ROUNDS"); do
  echo "== round $round of $ROUNDS"
  for f in $FILTERS; do
    [ -f "$OUT/unet_f$f.onnx" ] ||
      /usr/bin/python3 bench/peers/pytorch_unet.py --filters "$f" --size "$SIZE" --export-onnx "$OUT/unet_f$f.onnx" >/dev/null 2>&1
    if [ ! -f "$OUT/mixseg_f$f.onnx" ]; then  # mixseg's export of a (briefly trained) f-filter model
      build/mixseg train --synthetic 8 --size 64x64 --filters "$f" --batch 4 --epochs 1 --out "$OUT/ckpt_f$f" >/dev/null
      build/mixseg export "$OUT/ckpt_f$f/last.safetensors" --format onnx --precision fp32 --size "$SIZE" \
        --out "$OUT/mixseg_f$f.onnx" >/dev/null
    fi
    PRECISIONS=fp32
    case " $PRECISION_FILTERS " in *" $f "*) PRECISIONS=fp32,mixed_fp16,mixed_bf16,int8 ;; esac
    PEER=fp32  # the peers' 16-bit runs are slow where the CPU only emulates bf16: a subset of the sizes
    case " $PEER_PRECISION_FILTERS " in *" $f "*) PEER=$PEER_PRECISIONS ;; esac
    # Each comparison's two sides run next to each other, since this
    # machine's speed drifts over minutes: mixseg's inference, then
    # onnxruntime's; PyTorch (inference, then training), then mixseg's training.
    build/mixseg bench --phase infer --precision "$PRECISIONS" --filters "$f" --batch "$BATCHES" "${COMMON[@]}" \
      "${CEILING[@]}" --out "$CSV"
    .venv/bin/python bench/peers/ort_unet.py --model "$OUT/unet_f$f.onnx" --model-source "PyTorch export" \
      --filters "$f" --batch "$BATCHES" "${COMMON[@]}" --out "$CSV"
    .venv/bin/python bench/peers/ort_unet.py --model "$OUT/mixseg_f$f.onnx" --model-source "mixseg export" \
      --filters "$f" --batch "$BATCHES" "${COMMON[@]}" --out "$CSV"
    if [ "$PRECISIONS" != fp32 ]; then  # int8 measured: LiteRT (XNNPACK) on mixseg's Edge TPU export
      if [ ! -f "$OUT/mixseg_f${f}_int8.tflite" ]; then
        build/mixseg quantize "$OUT/ckpt_f$f/last.safetensors" --synthetic 16 --size "$SIZE" \
          --out "$OUT/q_f$f.safetensors" >/dev/null
        build/mixseg export "$OUT/q_f$f.safetensors" --out "$OUT/mixseg_f${f}_int8.tflite" >/dev/null
      fi
      .venv/bin/python bench/peers/litert_unet.py --model "$OUT/mixseg_f${f}_int8.tflite" --filters "$f" \
        --batch "$BATCHES" "${COMMON[@]}" --out "$CSV" 2>/dev/null
    fi
    /usr/bin/python3 bench/peers/pytorch_unet.py --device cpu --phase infer,train --precision "$PEER" --filters "$f" \
      --batch "$BATCHES" "${COMMON[@]}" --out "$CSV" 2>/dev/null
    if [ "$PYPI_TORCH" = 1 ]; then
      .venv/bin/python bench/peers/pytorch_unet.py --device cpu --phase infer,train --precision "$PEER" --filters "$f" \
        --batch "$BATCHES" "${COMMON[@]}" --out "$CSV" 2>/dev/null
    fi
    build/mixseg bench --phase train --precision "$PRECISIONS" --filters "$f" --batch "$BATCHES" "${COMMON[@]}" \
      "${CEILING[@]}" --out "$CSV"
    if [ "$TF" = 1 ]; then
      .venv/bin/python bench/peers/tf_unet.py --phase infer,train --precision "$PEER" --filters "$f" \
        --batch "$BATCHES" "${COMMON[@]}" --out "$CSV" 2>/dev/null
    fi
    if [ "$JAX" = 1 ]; then
      .venv-jax/bin/python bench/peers/jax_unet.py --device cpu --phase infer,train --precision "$PEER" --filters "$f" \
        --batch "$BATCHES" "${COMMON[@]}" --out "$CSV" 2>/dev/null
    fi
  done
done
echo
/usr/bin/python3 bench/peers/compare.py "$CSV"
build/mixseg report "$CSV" --out "$OUT/report"
