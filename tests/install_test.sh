#!/usr/bin/env bash
# The embedding API as a user gets it: install mixseg to a prefix, build
# examples/ against it with find_package(mixseg), and run the example on a
# checkpoint trained by the CLI.
# Usage: install_test.sh SOURCE_DIR BUILD_DIR
set -eu
SRC=$1 BUILD=$2
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT
cmake --install "$BUILD" --prefix "$T/prefix" >/dev/null
test -f "$T/prefix/include/mixseg/mixseg.h"
cmake -S "$SRC/examples" -B "$T/example" -G Ninja -DCMAKE_PREFIX_PATH="$T/prefix" -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build "$T/example" >/dev/null
"$T/prefix/bin/mixseg" train --synthetic 8 --size 32x32 --filters 2 --depth 2 --batch 4 --epochs 1 --val-fraction 0 --out "$T/run" >/dev/null
out=$("$T/example/predict_example" "$T/run/last.safetensors" 40 24)
echo "$out"
echo "$out" | grep -q "segmented a 40x24 image"
# Errors reach the embedding program as mixseg::Error with the file's name.
if "$T/example/predict_example" "$T/missing.safetensors" 2>"$T/err"; then echo "missing checkpoint accepted"; exit 1; fi
grep -q "missing.safetensors" "$T/err"
echo "install test passed"
