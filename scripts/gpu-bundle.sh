#!/usr/bin/env bash
# Prepares the GPU machine's build here, where the toolchain and the Debian
# packages are: the GPU machine's image has CUDA, cuDNN 9, PyTorch, CMake and
# ninja, but none of the libraries mixseg builds against (oneDNN, fmt, CLI11,
# nlohmann-json, ONNX, protobuf, libpng, GoogleTest) and cannot fetch them.
# Builds mixseg and its tests with CUDA (sm_90 + PTX), and packs them with the
# shared libraries that image lacks into .gpu-bundle/mixseg-gpu.tar.xz
# (git-ignored). A `run` call carries .gpu-bundle and scripts/gpu-check.sh
# unpacks and uses it instead of building there. cuDNN, the C/C++ runtime and
# zlib come from that machine (the CUDA runtime is linked in statically).
#   scripts/gpu-bundle.sh     (BUILD_DIR=build-cuda by default)
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD_DIR=${BUILD_DIR:-build-cuda}
cmake -S . -B "$BUILD_DIR" -G Ninja -DCMAKE_BUILD_TYPE=Release -DMIXSEG_CUDA=ON -DCMAKE_CUDA_ARCHITECTURES=90 \
  -DCMAKE_CUDA_COMPILER=/usr/local/cuda/bin/nvcc >/dev/null
cmake --build "$BUILD_DIR" --target mixseg_cli mixseg_tests
stage=$(mktemp -d)
trap 'rm -rf "$stage"' EXIT
b="$stage/mixseg-gpu"
mkdir -p "$b/lib" "$b/tests"
cp "$BUILD_DIR/mixseg" "$b/"
cp "$BUILD_DIR/tests/mixseg_tests" "$b/tests/"
strip --strip-unneeded "$b/mixseg" "$b/tests/mixseg_tests"
ldd "$b/mixseg" "$b/tests/mixseg_tests" | awk '/=> \// {print $1, $3}' | sort -u | while read -r name path; do
  case "$name" in
    libc.so* | libm.so* | libstdc++.so* | libgcc_s.so* | libdl.so* | librt.so* | libpthread.so* | libz.so* | \
      libcudnn*.so* | libcuda.so* | libnvidia-ml.so*) ;;
    *) cp -L "$path" "$b/lib/$name" ;;
  esac
done
git describe --always --dirty --abbrev=12 >"$b/COMMIT"
mkdir -p .gpu-bundle
tar -C "$stage" -cJf .gpu-bundle/mixseg-gpu.tar.xz mixseg-gpu
ls -la .gpu-bundle/mixseg-gpu.tar.xz
echo "libraries packed: $(ls "$b/lib" | tr '\n' ' ')"
echo "carry .gpu-bundle in the run call; scripts/gpu-check.sh uses it"
