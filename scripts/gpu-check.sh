#!/usr/bin/env bash
# The one prepared script for a GPU machine (see README): builds with CUDA,
# runs the test suite (GPU tests run there), and reports the GPU mixseg sees.
# The CUDA backend and the PyTorch peer benchmark are not built yet (issue
# "CUDA backend"); this script grows with them and prints a table last.
set -euo pipefail
cd "$(dirname "$0")/.."
export BUILD_DIR=${BUILD_DIR:-build-cuda} MIXSEG_CUDA=ON
[ -x /usr/local/cuda/bin/nvcc ] && export CUDACXX=/usr/local/cuda/bin/nvcc
cmake -S . -B "$BUILD_DIR" -G Ninja -DCMAKE_BUILD_TYPE=Release -DMIXSEG_CUDA=ON >/dev/null
cmake --build "$BUILD_DIR" -j "$(nproc)"
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv || true
(cd "$BUILD_DIR" && ctest --output-on-failure --timeout 600 -E 'Training')
"$BUILD_DIR/mixseg" info --filters 64 --size 512x256 --batch 8
