#!/usr/bin/env bash
# Installs what the build needs (Debian packages, through sudo when not root)
# when it is missing, then configures and builds mixseg in build/.
# Idempotent: a second run installs nothing and rebuilds only what changed.
# Environment: BUILD_DIR (default build), BUILD_TYPE (default Release),
# MIXSEG_CUDA=ON|OFF to force the CUDA backend (default: on when nvcc exists).
set -euo pipefail
cd "$(dirname "$0")/.."

PACKAGES=(g++ cmake ninja-build pkg-config git libpng-dev libfmt-dev nlohmann-json3-dev libcli11-dev
          libdnnl-dev ocl-icd-opencl-dev libgtest-dev libgmock-dev libbenchmark-dev clang libclang-rt-dev
          flatbuffers-compiler libflatbuffers-dev libonnx-dev libprotobuf-dev protobuf-compiler)
missing=()
for p in "${PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "setup: installing ${missing[*]}"
  SUDO=""
  [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  export DEBIAN_FRONTEND=noninteractive
  $SUDO apt-get update -qq
  $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# nvcc lives under /usr/local/cuda on machines with the CUDA toolkit, often off PATH.
if ! command -v nvcc >/dev/null 2>&1 && [ -x /usr/local/cuda/bin/nvcc ]; then
  export CUDACXX=/usr/local/cuda/bin/nvcc
fi

BUILD_DIR=${BUILD_DIR:-build}
args=(-S . -B "$BUILD_DIR" -G Ninja -DCMAKE_BUILD_TYPE="${BUILD_TYPE:-Release}")
[ -n "${MIXSEG_CUDA:-}" ] && args+=(-DMIXSEG_CUDA="$MIXSEG_CUDA")
cmake "${args[@]}" >/dev/null
cmake --build "$BUILD_DIR" -j "$(nproc)"
echo "setup: built $BUILD_DIR/mixseg"
