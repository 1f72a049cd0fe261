#!/usr/bin/env bash
# The one prepared script for a GPU machine (see README): builds with CUDA,
# runs the test suite (GPU tests run there), reports the GPU mixseg sees, and
# runs the PyTorch peer on the GPU (fp32 and AMP fp16/bf16, channels_last,
# cudnn.benchmark; f=8 and 64, batch 1 and 8), printing its table last. When
# the CUDA backend exists, `mixseg bench --device cuda` joins the same CSV
# and bench/peers/compare.py prints the ratios.
# Time: ~2 min build, ~3 min tests, ~2 min peer. The machine's python3 has
# PyTorch with its own cuDNN: the system cuDNN stays off its library path.
set -euo pipefail
cd "$(dirname "$0")/.."
export BUILD_DIR=${BUILD_DIR:-build-cuda} MIXSEG_CUDA=ON
[ -x /usr/local/cuda/bin/nvcc ] && export CUDACXX=/usr/local/cuda/bin/nvcc
OUT=${OUT:-out/gpu}
mkdir -p "$OUT"
cmake -S . -B "$BUILD_DIR" -G Ninja -DCMAKE_BUILD_TYPE=Release -DMIXSEG_CUDA=ON >/dev/null
cmake --build "$BUILD_DIR" -j "$(nproc)" >/dev/null
nvidia-smi --query-gpu=name,driver_version,memory.total,power.limit --format=csv || true
(cd "$BUILD_DIR" && ctest --timeout 600 -E 'Training|fuzz_short' 2>&1 | tail -4)
"$BUILD_DIR/mixseg" info --filters 64 --size 512x256 --batch 8 | tail -3
rm -f "$OUT/results.csv"
env -u LD_LIBRARY_PATH python3 bench/peers/torch_unet.py --device cuda --layout channels_last \
  --precision fp32,mixed_fp16,mixed_bf16 --phase train,infer --filters 8,64 --batch 1,8 --min-time 2 \
  --out "$OUT/results.csv" | tail -25
