#!/usr/bin/env bash
# Sets everything up (scripts/setup.sh), runs the unit tests once more under
# AddressSanitizer + UndefinedBehaviorSanitizer (a second build in
# build-asan, all but the two long training tests; MIXSEG_SANITIZERS=0 skips
# it), then the whole test suite with ctest: unit tests (GoogleTest), the CLI
# end to end, the installed package, corpus replay and a short libFuzzer run
# of every reader of untrusted files (PNG, safetensors, .npy, .tflite, results
# CSV, checkpoints, int8 models), the TFLite/ONNX exports run by LiteRT,
# onnxruntime and TensorFlow's converter (installed into .venv by
# scripts/setup-runtimes.sh, ~1 min the first time), bench -> report, and
# training to Dice >= 0.90 in every precision policy. GPU tests skip without
# a GPU; the CUDA backend's tests also run on an emulated GPU (the backend's
# code and kernels on the CPU, tests/cuda_emulation) wherever the CUDA
# toolkit is (nvcc, under /usr/local/cuda on these machines). On 2 cores from a clean clone about 20-25 minutes in all, ctest
# about 7 of them.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
# The runtimes that check the exports (LiteRT, onnxruntime); without them
# (no network) those tests report themselves skipped.
scripts/setup-runtimes.sh || echo "test: WARNING: the Python runtimes did not install; the export tests will be skipped"
if [ "${MIXSEG_SANITIZERS:-1}" = 1 ]; then
  echo "test: unit tests under AddressSanitizer + UndefinedBehaviorSanitizer (build-asan)"
  cmake --preset asan >/dev/null
  cmake --build build-asan --target mixseg_tests
  (cd build-asan/tests && OMP_NUM_THREADS=2 ./mixseg_tests --gtest_filter='-*Training*' --gtest_brief=1)
fi
cd "${BUILD_DIR:-build}"
ctest --output-on-failure --timeout 900
