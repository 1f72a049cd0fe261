#!/usr/bin/env bash
# The one prepared script for a GPU machine (see README), in one call well
# under 10 minutes: builds with CUDA (or uses a build carried in BUILD_DIR),
# runs the GPU tests (every CUDA op against the CPU reference per dtype, the
# first training steps against the reference's losses, training to Dice 0.9
# per policy), a short `mixseg train` and `eval` with --device cuda, then mixseg (--device cuda) and the PyTorch peer (eager, AMP,
# channels_last, cudnn.benchmark) on the same sweep into one CSV, NVML energy
# on, each mixseg row also against its convolutions alone (cuDNN's ceiling on
# those shapes), the GPU time per op kind of one large configuration, that
# configuration again with channel vectors off, one launch-bound
# row again with CUDA graphs off, and prints the side-by-side table with
# ratios last.
#   scripts/gpu-check.sh            (FILTERS=8,64,32 BATCHES=1,8,32 MIN_TIME=1
#                                    PRECISIONS=fp32,tf32,mixed_fp16,mixed_bf16 to change the sweep;
#                                    SKIP_BUILD=1 with a carried BUILD_DIR; SKIP_TESTS=1; COMPILE=1 adds
#                                    torch.compile'd PyTorch rows for f=8 batch 1; JAX=1 the JAX peer;
#                                    SANITIZE=1 the CUDA op tests under compute-sanitizer memcheck
#                                    (and BatchNorm's under racecheck);
#                                    DEADLINE=480: seconds for the whole script, give the run call ~60 more)
# Time is scarce on that machine (one call of a few minutes per session), so
# every stage runs under a timeout cut from what is left of DEADLINE, and the
# sweep goes one model size at a time, mixseg then PyTorch, in the order of
# FILTERS: a sweep cut short still leaves matched rows of both.
# Prepare here first: scripts/gpu-bundle.sh, then carry .gpu-bundle in the run
# call (the GPU machine cannot build mixseg itself: see gpu-bundle.sh). Full
# logs go to $OUT (tests.log, bench-*.log: they come back even if the call
# runs out of time); the conv algorithm lines stay in bench-mixseg.log only.
# The machine's python3 has PyTorch with its own cuDNN: the system cuDNN stays
# off its library path.
# Dry run without a GPU (the script's flow on the emulated GPU, ~2 min; the
# PyTorch peer fails without one): a folder with `mixseg` linked to
# build/tests/mixseg_cuda_emulated_cli and `tests/mixseg_tests` to
# build/tests/mixseg_cuda_emulated_tests, then BUILD_DIR=that-folder
# SKIP_BUILD=1 SKIP_TESTS=1 FILTERS=8 BATCHES=1 SIZE=64x32 DEADLINE=300
# OUT=/tmp/gpu-dry scripts/gpu-check.sh (done in session 15: every stage ran).
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD_DIR=${BUILD_DIR:-build-cuda}
OUT=${OUT:-out/gpu}
FILTERS=${FILTERS:-8,64,32}
BATCHES=${BATCHES:-1,8,32}
MIN_TIME=${MIN_TIME:-1}
# fp32 is IEEE float32 in mixseg and in the peers (the peers turn off the TF32
# their frameworks allow by default on GPUs); tf32 allows it in both.
PRECISIONS=${PRECISIONS:-fp32,tf32,mixed_fp16,mixed_bf16}
SIZE=${SIZE:-512x256}
mkdir -p "$OUT"
DEADLINE=${DEADLINE:-480}
t0=$(date +%s)
stamp() { echo "== $1 ($(($(date +%s) - t0)) s)"; }
# within CAP RESERVE CMD...: runs CMD under a timeout of CAP seconds, or of
# what is left of DEADLINE once RESERVE seconds are kept for the later
# stages, whichever is less (skipped, with a note, when under 5 s are left).
within() {
  local cap=$1 reserve=$2 left
  shift 2
  left=$((DEADLINE - ($(date +%s) - t0) - reserve))
  [ "$left" -lt "$cap" ] && cap=$left
  if [ "$cap" -lt 5 ]; then
    echo "(skipped: out of time, DEADLINE=$DEADLINE s)"
    return 0
  fi
  timeout -k 5 "$cap" "$@" || echo "(exit $? after at most $cap s)"
}

# The build prepared by scripts/gpu-bundle.sh, when carried: that machine's
# image lacks the libraries mixseg builds against. Its own libraries go on
# mixseg's library path only (never PyTorch's: it brings its own cuDNN).
BUNDLE=${BUNDLE:-.gpu-bundle/mixseg-gpu.tar.xz}
MIXSEG_LIB=
if [ -f "$BUNDLE" ] && [ "${SKIP_BUILD:-0}" != 1 ]; then
  stamp "unpacking the carried build ($BUNDLE, commit $(tar -xJOf "$BUNDLE" mixseg-gpu/COMMIT ))"
  rm -rf /tmp/mixseg-gpu && tar -C /tmp -xJf "$BUNDLE"
  BUILD_DIR=/tmp/mixseg-gpu
  MIXSEG_LIB=/tmp/mixseg-gpu/lib
  SKIP_BUILD=1
  if ! LD_LIBRARY_PATH=$MIXSEG_LIB "$BUILD_DIR/mixseg" info >/dev/null; then
    echo "the carried build does not run here; building from source"
    BUILD_DIR=build-cuda MIXSEG_LIB='' SKIP_BUILD=0
  fi
fi
MS=(env "LD_LIBRARY_PATH=${MIXSEG_LIB}${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}")  # mixseg's environment

if [ "${SKIP_BUILD:-0}" != 1 ]; then
  stamp "build ($BUILD_DIR, CUDA on)"
  cmake -S . -B "$BUILD_DIR" -G Ninja -DCMAKE_BUILD_TYPE=Release -DMIXSEG_CUDA=ON -DCMAKE_CUDA_ARCHITECTURES=90 \
    -DCMAKE_CUDA_COMPILER=/usr/local/cuda/bin/nvcc >/dev/null
  cmake --build "$BUILD_DIR" -j "$(nproc)" --target mixseg_cli mixseg_tests >/dev/null
fi
nvidia-smi --query-gpu=name,driver_version,memory.total,power.limit --format=csv || true

if [ "${SKIP_TESTS:-0}" != 1 ]; then
  stamp "GPU tests"
  within 150 200 "${MS[@]}" "$BUILD_DIR/tests/mixseg_tests" --gtest_filter='*cuda*:*Cuda*:UNet.FoldedInference*:UNet.ZeroCopy*:Checkpoint.RgbModelTrainsAndPredicts' --gtest_brief=1 2>&1 |
    tee "$OUT/tests.log" | tail -40 || true
fi

if [ "${SANITIZE:-0}" = 1 ]; then  # the CUDA op tests under compute-sanitizer's memcheck (out-of-bounds, races in kernels)
  stamp "GPU op tests under compute-sanitizer memcheck"
  SANITIZER=$(command -v compute-sanitizer || echo /usr/local/cuda/bin/compute-sanitizer)
  within 150 200 "${MS[@]}" "$SANITIZER" --tool memcheck --print-limit 20 "$BUILD_DIR/tests/mixseg_tests" \
    --gtest_filter='All/BackendOps.*cuda*' --gtest_brief=1 2>&1 | tee "$OUT/sanitizer.log" | tail -25 || true
  stamp "BatchNorm op tests under compute-sanitizer racecheck (the shared-memory halving of the channel sums)"
  within 90 200 "${MS[@]}" "$SANITIZER" --tool racecheck --print-limit 20 "$BUILD_DIR/tests/mixseg_tests" \
    --gtest_filter='All/BackendOps.BatchNorm*cuda*' --gtest_brief=1 2>&1 | tee "$OUT/racecheck.log" | tail -8 || true
fi

stamp "the user's path: mixseg train, then eval, with --device cuda (loader threads, pinned batches, checkpoints)"
within 30 180 "${MS[@]}" "$BUILD_DIR/mixseg" train --device cuda --synthetic 48 --size 256x128 --filters 8 --batch 8 \
  --epochs 1 --precision mixed_fp16 --out "$OUT/train-cuda" 2>&1 | tee "$OUT/train-cuda.log" | tail -4 || true
[ -f "$OUT/train-cuda/best.safetensors" ] && within 10 170 "${MS[@]}" "$BUILD_DIR/mixseg" eval --device cuda \
  "$OUT/train-cuda/best.safetensors" --synthetic 16 2>&1 | tail -1 || true

CSV="$OUT/results.csv"
rm -f "$CSV" "$CSV.meta.jsonl" "$OUT/bench-mixseg.log" "$OUT/bench-torch.log"
IFS=, read -r -a filter_list <<<"$FILTERS"
for f in "${filter_list[@]}"; do
  # Model sizes in the order given, each pair complete before the next
  # starts; mixseg may take half of what is left (~120 s kept back for the
  # stages after the sweep), PyTorch the rest.
  share=$(((DEADLINE - ($(date +%s) - t0) - 120) / 2))
  stamp "benchmark f=$f: mixseg --device cuda (at most ${share} s)"
  within "$share" 120 "${MS[@]}" "$BUILD_DIR/mixseg" bench --device cuda \
    --precision "$PRECISIONS" --phase train,infer --filters "$f" --batch "$BATCHES" \
    --size "$SIZE" --min-time "$MIN_TIME" --conv-ceiling --out "$CSV" --verbose 2>&1 | tee -a "$OUT/bench-mixseg.log" |
    grep -v '^  [fb][wd][d_]' | tail -25 || true
  stamp "benchmark f=$f: PyTorch peer"
  within 600 120 env -u LD_LIBRARY_PATH python3 bench/peers/pytorch_unet.py --device cuda --layout channels_last \
    --precision "$PRECISIONS" --phase train,infer --filters "$f" --batch "$BATCHES" --size "$SIZE" \
    --min-time "$MIN_TIME" --out "$CSV" 2>&1 | tee -a "$OUT/bench-torch.log" | tail -3 || true
done
if [ "${JAX:-0}" = 1 ]; then  # the JAX/Flax peer (XLA jit), same sweep, NVML energy like the others
  stamp "benchmark: JAX peer"
  within 600 120 env -u LD_LIBRARY_PATH python3 bench/peers/jax_unet.py --device cuda \
    --precision "$PRECISIONS" --phase train,infer --filters "$FILTERS" --batch "$BATCHES" --size "$SIZE" \
    --min-time "$MIN_TIME" --out "$CSV" 2>&1 | tee "$OUT/bench-jax.log" | tail -3 || true
fi
if [ "${COMPILE:-0}" = 1 ]; then  # torch.compile costs ~1 min of compiling per configuration: one launch-bound row
  stamp "benchmark: PyTorch peer, torch.compile'd (f=8, batch 1, mixed_fp16)"
  within 240 120 env -u LD_LIBRARY_PATH python3 bench/peers/pytorch_unet.py --device cuda --layout channels_last \
    --compile --precision mixed_fp16 --phase train,infer --filters 8 --batch 1 --size "$SIZE" --min-time "$MIN_TIME" \
    --out "$CSV" 2>&1 | tee "$OUT/bench-torch-compile.log" | tail -3 || true
fi
stamp "where the GPU time goes (MIXSEG_CUDA_PROFILE=1: f=64, batch 8, mixed_fp16 training; all in profile.log)"
within 50 70 env MIXSEG_CUDA_PROFILE=1 "${MS[@]}" "$BUILD_DIR/mixseg" bench --device cuda --precision mixed_fp16 \
  --phase train --filters 64 --batch 8 --size "$SIZE" --min-time "$MIN_TIME" --energy none 2>&1 |
  tee "$OUT/profile.log" | sed -n '/GPU time per op kind/,/top ops by shape/p; /error/p' || true
stamp "mixseg with channel vectors off (MIXSEG_CUDA_VECTORS=0: one 2-byte access per thread; what 16-byte accesses buy)"
within 30 40 env MIXSEG_CUDA_VECTORS=0 "${MS[@]}" "$BUILD_DIR/mixseg" bench --device cuda --precision mixed_fp16 \
  --phase train,infer --filters 64 --batch 8 --size "$SIZE" --min-time "$MIN_TIME" --energy none 2>&1 | tail -3 || true
stamp "mixseg with CUDA graphs off (what recording buys where launches dominate)"
within 25 15 env MIXSEG_CUDA_GRAPHS=0 "${MS[@]}" "$BUILD_DIR/mixseg" bench --device cuda --precision mixed_fp16 \
  --phase train,infer --filters 8 --batch 1 --size "$SIZE" --min-time "$MIN_TIME" --energy none 2>&1 | tail -3 || true
stamp "report (issue 4: speedup, J/img, memory per precision, model size and batch; in $OUT/report)"
[ -f "$CSV" ] && within 15 0 "${MS[@]}" "$BUILD_DIR/mixseg" report "$CSV" --out "$OUT/report" 2>&1 | tail -2 || true
stamp "table"
if [ -f "$CSV" ]; then python3 bench/peers/compare.py "$CSV"; else echo "no results in $CSV (see the errors above)"; fi
