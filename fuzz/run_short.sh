#!/usr/bin/env bash
# Builds the fuzz targets with clang's libFuzzer + AddressSanitizer + UBSan
# and runs each for SECONDS on a copy of the committed corpus (the corpus in
# the repository is never modified), as many at once as there are cores.
# A failing input is copied to $FUZZ_FINDINGS (default ./fuzz-findings).
# Exit 77 (skipped) without clang.
#   fuzz/run_short.sh SOURCE_DIR [SECONDS] [TARGET...]   (default: all targets)
# The int8 model target compiles the int8 engine and what it links (about
# 1.5 minutes on 2 cores); the others a file or two.
set -euo pipefail
SRC=$1
SECONDS_EACH=${2:-15}
TARGETS=(png safetensors npy tflite report checkpoint qmodel)
[ $# -gt 2 ] && TARGETS=("${@:3}")
command -v clang++ >/dev/null 2>&1 || { echo "clang++ not found: fuzzing skipped"; exit 77; }
W=$(mktemp -d)
trap 'rm -rf "$W"' EXIT
FINDINGS=${FUZZ_FINDINGS:-$PWD/fuzz-findings}  # where a failing input is copied
FLAGS=(-std=c++20 -O1 -g -march=x86-64-v3 -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined
       -I"$SRC/src" -I"$SRC/include")
if ! echo 'extern "C" int LLVMFuzzerTestOneInput(const char*, unsigned long) { return 0; }' |
    clang++ -fsanitize=fuzzer -x c++ - -o "$W/probe" 2>"$W/build.log"; then
  echo "libFuzzer not available: fuzzing skipped"; exit 77
fi
sources() {  # what each target compiles besides its own file
  local s=$SRC/src
  case $1 in
    png) echo "$s/data/png_io.cpp $s/core/file_util.cpp -lpng" ;;
    safetensors) echo "$s/train/safetensors.cpp $s/core/dtype.cpp $s/core/file_util.cpp" ;;
    npy) echo "$s/data/npy.cpp $s/core/file_util.cpp" ;;
    tflite) flatc --cpp --gen-mutable -o "$W/generated" "$SRC/third_party/tflite/tflite_schema.fbs" &&
            echo "$s/export/edgetpu_check.cpp -I$W/generated" ;;
    report) echo "$s/report/*.cpp $s/bench/result_row.cpp $s/train/parity_results.cpp $s/core/file_util.cpp" ;;
    checkpoint) echo "$s/train/checkpoint.cpp $s/train/safetensors.cpp $s/train/optimizer.cpp" \
                     "$s/ops/optimizer_step_ref.cpp $s/model/unet.cpp $s/precision/*.cpp $s/core/dtype.cpp" \
                     "$s/core/file_util.cpp" ;;
    qmodel) echo "$(ls "$s"/quant/*.cpp | grep -v calibrate) $s/model/*.cpp $s/precision/*.cpp $s/ops/depth_to_space_ref.cpp" \
                 "$s/train/safetensors.cpp $s/train/metrics.cpp $s/data/loader.cpp $s/data/augment.cpp $s/data/dataset.cpp" \
                 "$s/data/folders.cpp $s/data/png_io.cpp -lpng" \
                 "$s/core/dtype.cpp $s/core/file_util.cpp $s/core/threads.cpp $s/core/tensor.cpp $s/core/arena.cpp" \
                 "-fopenmp" ;;
    *) echo "unknown fuzz target $1" >&2; exit 2 ;;
  esac
}
build() {
  # shellcheck disable=SC2046  # the source list splits on purpose
  clang++ "${FLAGS[@]}" "$SRC/fuzz/fuzz_$1.cpp" $(sources "$1") -lfmt -o "$W/fuzz_$1" >"$W/$1.build.log" 2>&1
}
explore() {
  cp -r "$SRC/fuzz/corpus/$1" "$W/corpus_$1"
  (cd "$W" && "$W/fuzz_$1" -max_total_time="$SECONDS_EACH" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 \
     "$W/corpus_$1" >"$W/$1.log" 2>&1) || touch "$W/$1.failed"
}
# Each phase runs as many targets at once as there are cores.
each() {
  local running=0
  for t in "${TARGETS[@]}"; do
    "$1" "$t" &
    running=$((running + 1))
    if [ "$running" -ge "$(nproc)" ]; then wait -n || true; running=$((running - 1)); fi
  done
  wait
}
each build
for t in "${TARGETS[@]}"; do
  [ -x "$W/fuzz_$t" ] || { cat "$W/$t.build.log"; echo "fuzz_$t did not build"; exit 1; }
done
echo "fuzzing ${TARGETS[*]} for ${SECONDS_EACH}s each"
each explore
status=0
for t in "${TARGETS[@]}"; do
  if [ -e "$W/$t.failed" ]; then
    tail -40 "$W/$t.log"
    mkdir -p "$FINDINGS" && cp "$W"/crash-* "$W"/leak-* "$W"/timeout-* "$W"/oom-* "$FINDINGS"/ 2>/dev/null || true
    echo "fuzz_$t found a failure (the input is kept in $FINDINGS)"
    status=1
  fi
  echo "$t: $(grep -E "^stat::number_of_executed_units" "$W/$t.log" || echo "no stats")"
done
[ "$status" = 0 ] && echo "fuzzing passed"
exit "$status"
