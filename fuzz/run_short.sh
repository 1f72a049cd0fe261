#!/usr/bin/env bash
# Builds the fuzz targets with clang's libFuzzer + AddressSanitizer + UBSan
# and runs each for SECONDS on a copy of the committed corpus (the corpus in
# the repository is never modified). Exit 77 (skipped) without clang.
#   fuzz/run_short.sh SOURCE_DIR [SECONDS]
set -euo pipefail
SRC=$1
SECONDS_EACH=${2:-15}
command -v clang++ >/dev/null 2>&1 || { echo "clang++ not found: fuzzing skipped"; exit 77; }
W=$(mktemp -d)
trap 'rm -rf "$W"' EXIT
FLAGS=(-std=c++20 -O1 -g -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined -I"$SRC/src" -I"$SRC/include")
if ! clang++ "${FLAGS[@]}" "$SRC/fuzz/fuzz_png.cpp" "$SRC/src/data/png_io.cpp" "$SRC/src/core/file_util.cpp" \
    -lpng -lfmt -o "$W/fuzz_png" 2>"$W/build.log"; then
  if grep -q "fuzzer" "$W/build.log"; then echo "libFuzzer not available: fuzzing skipped"; exit 77; fi
  cat "$W/build.log"; exit 1
fi
clang++ "${FLAGS[@]}" "$SRC/fuzz/fuzz_safetensors.cpp" "$SRC/src/train/safetensors.cpp" "$SRC/src/core/dtype.cpp" \
  "$SRC/src/core/file_util.cpp" -lfmt -o "$W/fuzz_safetensors"
for t in png safetensors; do
  cp -r "$SRC/fuzz/corpus/$t" "$W/corpus_$t"
  echo "fuzzing $t for ${SECONDS_EACH}s"
  "$W/fuzz_$t" -max_total_time="$SECONDS_EACH" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 "$W/corpus_$t" \
    >"$W/$t.log" 2>&1 || { tail -40 "$W/$t.log"; echo "fuzz_$t found a failure"; exit 1; }
  grep -E "^stat::number_of_executed_units" "$W/$t.log" || true
done
echo "fuzzing passed"
