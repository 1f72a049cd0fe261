#!/usr/bin/env bash
# The user's GPU path end to end on the emulated GPU (tests/cuda_emulation):
# train in every training policy, eval and predict with --device cuda and
# auto, parity, bench (training and inference, the convolutions' ceiling,
# CUDA graphs recorded and replayed), report; a configuration that does not
# fit the device memory skipped; the int8 model refused on the GPU.
# With a stand-in NVML (the driver's libnvidia-ml.so.1, tests/cuda_emulation/
# nvml.cpp), the GPU's energy path too: rows with NVML joules, the GPU's
# state in the metadata, the report's energy table.
# Usage: cli_test.sh PATH/TO/mixseg_cuda_emulated_cli FOLDER/OF/the/fake/libnvidia-ml.so.1
set -u
MIXSEG=$1
NVML_DIR=$2
. "$(dirname "$0")/../cli_helpers.sh"

expect_ok "$MIXSEG" synth --out "$T/data" --count 8 --size 32x32 --seed 3
expect_ok "$MIXSEG" train --device cuda --data "$T/data" --size 32x32 --filters 2 --depth 2 --batch 4 --epochs 2 \
  --precision fp32,tf32,mixed_fp16,mixed_bf16 --val-fraction 0.25 --out "$T/run"
for p in fp32 tf32 mixed_fp16 mixed_bf16; do
  grep -q "training $p on the cuda backend" "$T/out" && [ -f "$T/run/$p/last.safetensors" ] &&
    ok "train --device cuda: $p on the GPU, checkpoint written" || bad "train $p: $(cat "$T/out")"
done
# The cuDNN algorithms each run chose are recorded beside its checkpoints; a resumed run follows them without
# Find (the emulated Find picks algorithm 1 each time, so only the message tells the paths apart here), and a
# run given them with --conv-algorithms repeats the recorded one (the emulation computes the same either way).
grep -q '"fwd f32 4x32x32x1->2 k3: algo 1 (TF32 allowed, default math)"' "$T/run/tf32/conv_algorithms.json" &&
  grep -q '"fwd f16 4x32x32x1->2 k3: algo 1 (tensor cores)"' "$T/run/mixed_fp16/conv_algorithms.json" &&
  ok "train --device cuda recorded its cuDNN algorithms" || bad "records: $(cat "$T/run/tf32/conv_algorithms.json")"
expect_ok "$MIXSEG" train --device cuda --data "$T/data" --size 32x32 --filters 2 --depth 2 --batch 4 --epochs 3 \
  --precision tf32 --val-fraction 0.25 --out "$T/run/tf32" --resume "$T/run/tf32/last.safetensors"
grep -qF "convolution algorithms: as recorded in $T/run/tf32/conv_algorithms.json" "$T/out" &&
  ! grep -q "timed, so this run may differ" "$T/out" && ok "a resumed GPU run followed its recorded algorithms" ||
  bad "GPU resume: $(cat "$T/out")"
expect_ok "$MIXSEG" train --device cuda --data "$T/data" --size 32x32 --filters 2 --depth 2 --batch 4 --epochs 2 \
  --precision mixed_fp16 --val-fraction 0.25 --out "$T/again" --conv-algorithms "$T/run/mixed_fp16/conv_algorithms.json"
[ "$(cut -d, -f2-5 "$T/run/mixed_fp16/train_log.csv")" = "$(cut -d, -f2-5 "$T/again/train_log.csv")" ] &&
  ok "a GPU run following the recorded algorithms logged the same losses and Dice" ||
  bad "GPU followed run: $(cat "$T/run/mixed_fp16/train_log.csv" "$T/again/train_log.csv")"
expect_ok "$MIXSEG" eval "$T/run/mixed_fp16/last.safetensors" --data "$T/data" --device auto
grep -q "dice" "$T/out" && ok "eval --device auto" || bad "eval: $(cat "$T/out")"
expect_ok "$MIXSEG" predict "$T/run/mixed_bf16/last.safetensors" "$T/data/0.png" --device cuda --out "$T/pred"
[ -f "$T/pred/0_mask.png" ] && ok "predict --device cuda wrote the mask" || bad "no mask: $(ls "$T/pred")"
expect_ok "$MIXSEG" parity --device cuda --synthetic 8 --size 32x32 --filters 2 --depth 2 --batch 4 --epochs 1 \
  --seeds 1 --no-int8 --out "$T/parity.csv"
grep -q "mixed_bf16" "$T/parity.csv" && ok "parity --device cuda" || bad "parity: $(cat "$T/parity.csv")"

expect_ok "$MIXSEG" bench --device cuda --precision fp32,mixed_fp16 --phase train,infer --filters 2 --depth 2 \
  --batch 1,2 --size 32x32 --warmup 2 --min-steps 2 --min-time 0 --conv-ceiling --verbose --out "$T/b.csv"
rows=$(grep -c ",cuda," "$T/b.csv")
[ "$rows" = 8 ] && ok "bench --device cuda: 8 rows" || bad "bench rows: $rows: $(cat "$T/b.csv")"
grep -q "cuda graphs: [1-9][0-9]* recorded" "$T/out" && ! grep -q "captures failed" "$T/out" &&
  ok "bench: the steps were recorded as CUDA graphs" || bad "graphs: $(grep -i graph "$T/out")"
# Channel vectors off (what gpu-check.sh measures them against): the same rows, and the metadata says so.
expect_ok env MIXSEG_CUDA_VECTORS=0 "$MIXSEG" bench --device cuda --precision mixed_fp16 --phase train --filters 8 \
  --depth 2 --batch 1 --size 32x32 --warmup 1 --min-steps 1 --min-time 0 --out "$T/v.csv"
[ "$(grep -c ",cuda," "$T/v.csv")" = 1 ] && grep -q "cuda channel vectors: off" "$T/v.csv.meta.jsonl" &&
  ok "bench with channel vectors off" || bad "vectors off: $(cat "$T/out" "$T/v.csv.meta.jsonl")"
# The op profile (gpu-check.sh's breakdown): GPU time per op kind with the rate each reached.
expect_ok env MIXSEG_CUDA_PROFILE=1 "$MIXSEG" bench --device cuda --precision mixed_fp16 --phase train --filters 8 \
  --depth 2 --batch 2 --size 32x32 --warmup 1 --min-steps 2 --min-time 0 --energy none
grep -q "GPU time per op kind" "$T/err" && grep -Eq "GB/s +batchnorm_bwd$" "$T/err" &&
  grep -Eq "TFLOP/s +conv2d_fwd$" "$T/err" && ok "op profile with GB/s and TFLOP/s per op kind" ||
  bad "op profile: $(cat "$T/err")"
expect_ok "$MIXSEG" report "$T/b.csv" --out "$T/rep"
[ -f "$T/rep/report.html" ] && ok "report of the GPU rows" || bad "no report"
# 300 MB of device memory: batch 1 fits, batch 64 does not and is skipped.
expect_ok env MIXSEG_CUDA_EMULATION_MEMORY=300000000 "$MIXSEG" bench --device cuda --precision mixed_fp16 \
  --phase train --filters 8 --depth 2 --batch 1,64 --size 128x128 --warmup 1 --min-steps 1 --min-time 0 \
  --out "$T/oom.csv"
grep -q "skipped: out of memory" "$T/out" && [ "$(grep -c ",cuda," "$T/oom.csv")" = 1 ] &&
  ok "bench skips what does not fit the GPU" || bad "out of memory: $(cat "$T/out" "$T/err")"
# 20 MB: the network fits, cuDNN's Find does with less workspace than it asks for.
expect_ok env MIXSEG_CUDA_EMULATION_MEMORY=20000000 "$MIXSEG" bench --device cuda --precision mixed_fp16 \
  --phase train --filters 2 --depth 2 --batch 2 --size 32x32 --warmup 1 --min-steps 1 --min-time 0 --out "$T/small.csv"
[ "$(grep -c ",cuda," "$T/small.csv")" = 1 ] && ok "bench on a nearly full GPU: Find with a smaller workspace" ||
  bad "small device: $(cat "$T/out" "$T/err")"

# Energy through NVML: an idle baseline, net J/img per row, the GPU's state per row, the report's energy table.
expect_ok env LD_LIBRARY_PATH="$NVML_DIR" "$MIXSEG" bench --device cuda --energy nvml --idle-seconds 0.5 \
  --precision fp32,mixed_fp16 --phase train --filters 2 --depth 2 --batch 2 --size 32x32 --warmup 1 --min-time 2 \
  --out "$T/e.csv"
awk -F, 'NR > 1 && $18 == "nvml" && $17 > 0 { n++ } END { exit n == 2 ? 0 : 1 }' "$T/e.csv" &&
  ok "bench --energy nvml: both rows carry NVML joules per image" || bad "NVML rows: $(cat "$T/e.csv")"
grep -q '"idle_baseline_watts"' "$T/e.csv.meta.jsonl" && grep -q '"gpu_temperature_c":47' "$T/e.csv.meta.jsonl" &&
  grep -q '"gpu_sm_clock_mhz":1980' "$T/e.csv.meta.jsonl" && ok "metadata: idle baseline and the GPU's state" ||
  bad "NVML metadata: $(cat "$T/e.csv.meta.jsonl")"
expect_ok "$MIXSEG" report "$T/e.csv" --out "$T/erep"
grep -q "Energy per image against fp32" "$T/erep/report.md" && grep -q "nvml" "$T/erep/report.md" &&
  ok "report: the GPU's energy per image" || bad "report energy: $(grep -i -A5 energy "$T/erep/report.md")"
expect_error "--energy nvml: no NVIDIA driver library" env LD_LIBRARY_PATH= "$MIXSEG" bench --device cuda \
  --energy nvml --filters 2 --depth 2 --size 32x32

expect_ok "$MIXSEG" quantize "$T/run/fp32/last.safetensors" --data "$T/data" --out "$T/q.safetensors"
expect_error "int8 model: it runs on the CPU's int8 engine" "$MIXSEG" eval "$T/q.safetensors" --data "$T/data" \
  --device cuda

if [ "$fails" -ne 0 ]; then echo "$fails emulated-GPU CLI checks failed"; exit 1; fi
echo "all emulated-GPU CLI checks passed"
