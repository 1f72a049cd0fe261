#!/usr/bin/env bash
# The command-line tool end to end: help, a tiny synth -> train -> eval ->
# predict -> info flow, quantize -> int8 eval/predict -> export -> edgetpu-check, and bad input (missing folder, mask without image,
# unreadable PNG, wrong checkpoint, bad size, bad precision, unwritable output)
# exiting non-zero with a message that names the file or value.
# Usage: cli_test.sh PATH/TO/mixseg
set -u
MIXSEG=$1
. "$(dirname "$0")/cli_helpers.sh"

expect_ok "$MIXSEG" --help
for c in train eval predict info synth bench quantize export infer edgetpu-check report parity advise; do expect_ok "$MIXSEG" "$c" --help; done

# The thread count: OMP_NUM_THREADS where set, --threads above it.
OMP_NUM_THREADS=3 expect_ok "$MIXSEG" info
grep -q "; 3 threads" "$T/out" && ok "OMP_NUM_THREADS=3 gives 3 threads" || bad "OMP_NUM_THREADS=3: $(cat "$T/out")"
OMP_NUM_THREADS=3 expect_ok "$MIXSEG" --threads 1 info
grep -q "; 1 thread;" "$T/out" && ok "--threads 1 over OMP_NUM_THREADS" || bad "--threads 1: $(cat "$T/out")"

# The workflow on a small synthetic folder.
expect_ok "$MIXSEG" synth --out "$T/data" --count 12 --size 32x32 --seed 3
[ -f "$T/data/0.png" ] && [ -f "$T/data/0_seg.png" ] && ok "synth wrote PNG pairs" || bad "synth wrote no PNG pairs"
expect_ok "$MIXSEG" --threads 2 train --data "$T/data" --size 32x32 --filters 4 --depth 2 --batch 4 --epochs 1 --out "$T/run" --precision mixed_fp16 --log-scale --print-precision-plan
grep -q "precision plan for mixed_fp16" "$T/out" && ok "train printed the precision plan" || bad "no precision plan"
grep -q "epoch   1/1" "$T/out" && ok "train printed the epoch line" || bad "no epoch line: $(cat "$T/out")"
for f in last.safetensors best.safetensors train_log.csv summary.json loss_scale.csv; do
  [ -s "$T/run/$f" ] && ok "train wrote $f" || bad "train did not write $f"
done
expect_ok "$MIXSEG" eval "$T/run/last.safetensors" --data "$T/data"
grep -q "dice" "$T/out" && ok "eval printed Dice" || bad "eval printed no Dice"
expect_ok "$MIXSEG" predict "$T/run/last.safetensors" "$T/data" --out "$T/masks"
[ "$(ls "$T/masks" | wc -l)" = 12 ] && ok "predict wrote 12 masks" || bad "predict wrote $(ls "$T/masks" | wc -l) masks"
# Images are read ahead and masks written behind the model: an unreadable image stops the run at that file
# (files go in name order: 0 1 10 11 2 3 4 5 ...), with the 7 masks before it written and the same as before.
mkdir -p "$T/pred" && cp "$T/data/"*.png "$T/pred/" && echo garbage >"$T/pred/5.png"
expect_error "$T/pred/5.png: not a readable PNG" "$MIXSEG" predict "$T/run/last.safetensors" "$T/pred" --out "$T/masks5"
[ "$(ls "$T/masks5" | wc -l)" = 7 ] && cmp -s "$T/masks5/4_mask.png" "$T/masks/4_mask.png" &&
  ok "predict wrote the 7 masks before the unreadable image" || bad "masks before the bad image: $(ls "$T/masks5")"
expect_ok "$MIXSEG" info --checkpoint "$T/run/last.safetensors"
grep -q "parameters" "$T/out" && ok "info printed the parameter count" || bad "info printed no parameter count"
# Activation memory per policy on the fast and CUDA backends (no concat copies) and, larger, on the reference backend.
awk '/^  mixed_fp16 / { f = 1; less = $2 + 0 < $4 + 0 } END { exit !(f && less) }' "$T/out" && ok "info: the fast and CUDA workspaces plan less memory" ||
  bad "info memory: $(grep MiB "$T/out")"
# Resume continues to the new epoch count.
expect_ok "$MIXSEG" train --data "$T/data" --size 32x32 --filters 4 --depth 2 --batch 4 --epochs 2 --out "$T/run" --precision mixed_fp16 --resume "$T/run/last.safetensors"
grep -q "resuming after epoch 1" "$T/out" && grep -q "epoch   2/2" "$T/out" && ok "resume continued at epoch 2" || bad "resume: $(cat "$T/out")"
# The convolution algorithms chosen by timing are recorded beside the checkpoints and followed by a resumed
# run; a run given them with --conv-algorithms repeats the recorded one to the last digit of the log.
grep -qF "convolution algorithms: as recorded in $T/run/conv_algorithms.json" "$T/out" &&
  ok "the resumed run followed its recorded algorithms" || bad "resume and algorithms: $(cat "$T/out")"
expect_ok "$MIXSEG" train --data "$T/data" --size 32x32 --filters 4 --depth 2 --batch 4 --epochs 2 --out "$T/rec1" --precision mixed_bf16
expect_ok "$MIXSEG" train --data "$T/data" --size 32x32 --filters 4 --depth 2 --batch 4 --epochs 2 --out "$T/rec2" --precision mixed_bf16 --conv-algorithms "$T/rec1/conv_algorithms.json"
grep -qF "as recorded in $T/rec1/conv_algorithms.json" "$T/out" && ! grep -q "timed, so this run may differ" "$T/out" &&
  [ "$(cut -d, -f2-5 "$T/rec1/train_log.csv")" = "$(cut -d, -f2-5 "$T/rec2/train_log.csv")" ] &&
  cmp -s "$T/rec1/conv_algorithms.json" "$T/rec2/conv_algorithms.json" &&
  ok "a run following the recorded algorithms logged the same losses and Dice" ||
  bad "followed algorithms: $(cat "$T/out" "$T/rec1/train_log.csv" "$T/rec2/train_log.csv")"
expect_error "$T/run/train_log.csv: not JSON" "$MIXSEG" train --data "$T/data" --size 32x32 --filters 4 --depth 2 --batch 4 --epochs 1 --conv-algorithms "$T/run/train_log.csv"
# eval too: the algorithms one evaluation used, saved, make another print the same figures.
expect_ok "$MIXSEG" eval "$T/rec1/last.safetensors" --data "$T/data" --batch 4 --save-conv-algorithms "$T/eval_alg.json"
grep "^dice" "$T/out" > "$T/eval1.txt"
expect_ok "$MIXSEG" eval "$T/rec1/last.safetensors" --data "$T/data" --batch 4 --conv-algorithms "$T/eval_alg.json"
grep -qF "as recorded in $T/eval_alg.json" "$T/out" && ! grep -q "timed, so this run may differ" "$T/out" &&
  [ -s "$T/eval1.txt" ] && [ "$(cat "$T/eval1.txt")" = "$(grep "^dice" "$T/out")" ] &&
  ok "an evaluation following the saved algorithms printed the same Dice" ||
  bad "eval with saved algorithms: $(cat "$T/eval1.txt" "$T/out")"
# predict likewise (its record: batch 1 at the model's size); a run following one records the same.
expect_ok "$MIXSEG" predict "$T/rec1/last.safetensors" "$T/data" --out "$T/pmasks1" --save-conv-algorithms "$T/pred_alg.json"
expect_ok "$MIXSEG" predict "$T/rec1/last.safetensors" "$T/data" --out "$T/pmasks2" --conv-algorithms "$T/pred_alg.json" --save-conv-algorithms "$T/pred_alg2.json"
grep -qF "as recorded in $T/pred_alg.json" "$T/out" && cmp -s "$T/pred_alg.json" "$T/pred_alg2.json" &&
  cmp -s "$T/pmasks1/3_mask.png" "$T/pmasks2/3_mask.png" && ok "predict followed and recorded the same algorithms" ||
  bad "predict with saved algorithms: $(cat "$T/out")"
expect_error "made by the fast backend; this run uses the ref backend" "$MIXSEG" train --data "$T/data" --size 32x32 --filters 4 --depth 2 --batch 4 --epochs 1 --backend ref --conv-algorithms "$T/rec1/conv_algorithms.json"

# --stream-data yes decodes the files at each use: the same run as from memory, to the last digit of the log
# (on the reference backend, whose results do not depend on timed algorithm choices).
expect_ok "$MIXSEG" train --data "$T/data" --size 32x32 --filters 4 --depth 2 --batch 4 --epochs 2 --out "$T/mem" --stream-data no --backend ref
grep -q "data: 12 gray images .*, in memory (" "$T/out" && ok "train held the set in memory" || bad "in memory: $(head -3 "$T/out")"
expect_ok "$MIXSEG" train --data "$T/data" --size 32x32 --filters 4 --depth 2 --batch 4 --epochs 2 --out "$T/streamed" --stream-data yes --backend ref
grep -q "data: 12 gray images .*, streamed from the files" "$T/out" && ok "train streamed the set" || bad "streamed: $(head -3 "$T/out")"
[ "$(cut -d, -f2-5 "$T/mem/train_log.csv")" = "$(cut -d, -f2-5 "$T/streamed/train_log.csv")" ] &&
  ok "streamed and in-memory training logged the same losses and Dice" ||
  bad "streamed vs memory: $(cat "$T/mem/train_log.csv" "$T/streamed/train_log.csv")"
expect_error "--stream-data: maybe not in {auto,yes,no}" "$MIXSEG" eval "$T/run/last.safetensors" --data "$T/data" --stream-data maybe

# --upsampling transposed: trained, described, evaluated and deployed like the nearest model (int8: a 2x2
# transposed convolution per decoder level, exported as TFLite TRANSPOSE_CONV, mapped to the Edge TPU).
expect_ok "$MIXSEG" train --data "$T/data" --size 32x32 --filters 4 --depth 2 --batch 4 --epochs 1 --upsampling transposed --out "$T/tr"
grep -q "upsampling=transposed" "$T/out" && ok "train built the transposed U-Net" || bad "transposed: $(head -5 "$T/out")"
expect_ok "$MIXSEG" info --checkpoint "$T/tr/last.safetensors"
grep -q "upsampling=transposed" "$T/out" && ok "info read the upsampling from the checkpoint" || bad "info: $(head -3 "$T/out")"
expect_ok "$MIXSEG" eval "$T/tr/last.safetensors" --data "$T/data"
expect_ok "$MIXSEG" quantize "$T/tr/last.safetensors" --data "$T/data" --out "$T/trq.safetensors"
grep -q "^dec1.up  *transposed_conv2x2 " "$T/out" && ok "quantize named the transposed convolution" || bad "quantize: $(cat "$T/out")"
expect_ok "$MIXSEG" eval "$T/trq.safetensors" --data "$T/data"
expect_error "the int8 engine's kernels are fixed" "$MIXSEG" eval "$T/trq.safetensors" --data "$T/data" --conv-algorithms "$T/eval_alg.json"
expect_error "the int8 engine's kernels are fixed" "$MIXSEG" predict "$T/trq.safetensors" "$T/data" --out "$T/qm" --save-conv-algorithms "$T/q_alg.json"
expect_ok "$MIXSEG" export "$T/trq.safetensors" --format tflite --precision int8 --out "$T/trq.tflite"
expect_ok "$MIXSEG" edgetpu-check "$T/trq.tflite"
grep -q "TRANSPOSE_CONV  *dec1.up  *edgetpu" "$T/out" && ok "the Edge TPU preflight maps TRANSPOSE_CONV" || bad "edgetpu-check: $(cat "$T/out")"
expect_ok "$MIXSEG" export "$T/tr/last.safetensors" --format onnx --precision fp32 --out "$T/tr.onnx"
expect_ok "$MIXSEG" parity --data "$T/data" --size 32x32 --filters 4 --depth 2 --batch 4 --epochs 1 --seeds 1 --upsampling transposed --precision fp32,mixed_bf16 --out "$T/par.csv"
grep -q "upsampling=transposed" "$T/out" && grep -q "^int8 " "$T/out" && ok "parity compared the transposed model's precisions and int8" ||
  bad "parity transposed: $(cat "$T/out")"
# Repeated with the algorithms the first run recorded beside its CSV: the same Dice and IoU to the last digit.
expect_ok "$MIXSEG" parity --data "$T/data" --size 32x32 --filters 4 --depth 2 --batch 4 --epochs 1 --seeds 1 --upsampling transposed --precision fp32,mixed_bf16 --out "$T/par2.csv" --conv-algorithms "$T/par.csv.conv_algorithms.json"
cmp -s "$T/par.csv" "$T/par2.csv" && ! grep -q "timed, so this run may differ" "$T/out" &&
  ok "parity following the recorded algorithms repeated its results" || bad "parity repeated: $(cat "$T/out" "$T/par.csv" "$T/par2.csv")"

# Ctrl-C (SIGINT) mid-run writes a resumable checkpoint and says how to continue.
"$MIXSEG" synth --out "$T/big" --count 64 --size 64x64 --seed 4 >/dev/null
"$MIXSEG" --threads 1 train --data "$T/big" --size 64x64 --filters 8 --depth 2 --batch 2 --epochs 50 --out "$T/int" >"$T/int.out" 2>&1 &
pid=$!
for _ in $(seq 100); do [ -s "$T/int/last.safetensors" ] && break; sleep 0.2; done  # after the first epoch
kill -INT "$pid"
wait "$pid"; rc=$?
[ "$rc" = 0 ] && grep -q "interrupted after step" "$T/int.out" && ok "SIGINT wrote a checkpoint and exited cleanly" ||
  bad "SIGINT: rc $rc, $(cat "$T/int.out")"
expect_ok "$MIXSEG" info --checkpoint "$T/int/last.safetensors"
# Other folder layouts: nnU-Net-like and image/mask folders, and a non-binary mask.
mkdir -p "$T/nn/imagesTr" "$T/nn/labelsTr" "$T/pairs/img" "$T/pairs/msk"
for i in 0 1 2 3 4 5 6 7; do
  cp "$T/data/$i.png" "$T/nn/imagesTr/case$i""_0000.png" && cp "$T/data/$i""_seg.png" "$T/nn/labelsTr/case$i.png"
  cp "$T/data/$i.png" "$T/pairs/img/f$i.png" && cp "$T/data/$i""_seg.png" "$T/pairs/msk/f$i.png"
done
expect_ok "$MIXSEG" train --data "$T/nn" --size 32x32 --filters 2 --depth 2 --batch 4 --epochs 1 --schedule cosine --warmup-epochs 0.5
grep -q "nnU-Net-like" "$T/out" && ok "nnU-Net-like layout recognised" || bad "nnU-Net layout: $(cat "$T/out")"
expect_ok "$MIXSEG" train --images "$T/pairs/img" --masks "$T/pairs/msk" --size 32x32 --filters 2 --depth 2 --batch 4 --epochs 1 --no-augment
cp "$T/data/0.png" "$T/pairs/msk/f0.png"  # a gray image as a mask: not binary
expect_error "f0.png: mask is not binary" "$MIXSEG" train --images "$T/pairs/img" --masks "$T/pairs/msk" --size 32x32
expect_ok "$MIXSEG" train --images "$T/pairs/img" --masks "$T/pairs/msk" --mask-threshold 127 --size 32x32 --filters 2 --depth 2 --batch 4 --epochs 1
# bench: one tiny configuration, a CSV in the design's schema.
expect_ok "$MIXSEG" bench --phase infer,train --filters 2 --depth 2 --batch 1 --size 32x32 --warmup 1 --min-steps 2 --min-time 0 --energy none --out "$T/bench.csv"
head -1 "$T/bench.csv" | grep -q "^framework,framework_version,device,device_name,precision,phase,filters,depth,batch,height,width,img_per_s" &&
  [ "$(wc -l <"$T/bench.csv")" = 3 ] && ok "bench wrote the header and 2 rows" || bad "bench CSV: $(cat "$T/bench.csv")"
# The transposed model's rows (int8 too) say so in framework_version, the CSV having no upsampling column.
expect_ok "$MIXSEG" bench --phase infer,train --precision fp32,int8 --upsampling transposed --filters 2 --depth 2 --batch 1 --size 32x32 --warmup 1 --min-steps 2 --min-time 0 --energy none --out "$T/bench_tr.csv"
[ "$(grep -c ' (fast, transposed upsampling)"' "$T/bench_tr.csv")" = 3 ] && grep -q '"upsampling":"transposed"' "$T/bench_tr.csv.meta.jsonl" &&
  ok "bench --upsampling transposed labelled its 3 rows" || bad "transposed bench CSV: $(cat "$T/bench_tr.csv")"
# bench --phase load --data: the loader on a folder's files, here streamed; --data with a model phase is refused.
expect_ok "$MIXSEG" bench --phase load --data "$T/data" --stream-data yes --size 32x32 --batch 4 --warmup 1 --min-steps 3 --min-time 0 --energy none --out "$T/load.csv"
grep -q "(loader, 1 threads, files streamed)" "$T/load.csv" && ok "bench timed the loader streaming the folder" || bad "load CSV: $(cat "$T/load.csv")"
expect_error "--data is read by --phase load alone" "$MIXSEG" bench --phase train --data "$T/data" --size 32x32
# --rounds: every configuration once per round, in sweep order; compare.py pairs them round by round.
expect_ok "$MIXSEG" bench --phase infer --precision fp32,mixed_bf16 --filters 2 --depth 2 --batch 1 --size 32x32 --warmup 0 --min-steps 1 --min-time 0 --rounds 2 --energy none --out "$T/rounds.csv"
[ "$(cut -d, -f5 "$T/rounds.csv" | tr '\n' ' ')" = "precision fp32 mixed_bf16 fp32 mixed_bf16 " ] &&
  ok "bench --rounds 2 measured the sweep twice, round by round" || bad "rounds CSV: $(cat "$T/rounds.csv")"
if command -v python3 >/dev/null; then
  python3 "$(dirname "$0")/../bench/peers/compare.py" "$T/rounds.csv" >"$T/compare.txt" &&
    grep -Eq "^cpu +infer +mixed_bf16 +2 +1 +[0-9.]+x .* n2$" "$T/compare.txt" &&
    ok "compare.py: bf16 over fp32 from 2 paired rounds" || bad "compare.py: $(cat "$T/compare.txt")"
  # --conv-ceiling: the convolutions alone, in the printed row, the metadata and compare.py's last table.
  expect_ok "$MIXSEG" bench --phase train --filters 2 --depth 2 --batch 1 --size 32x32 --warmup 1 --min-steps 2 --min-time 0 --energy none --conv-ceiling --out "$T/ceiling.csv"
  grep -q '"conv_ceiling_tflops"' "$T/ceiling.csv.meta.jsonl" && grep -q '"share_of_conv_ceiling"' "$T/ceiling.csv.meta.jsonl" &&
    ok "bench --conv-ceiling: the metadata has the convolutions-alone figures" || bad "no ceiling: $(cat "$T/ceiling.csv.meta.jsonl")"
  python3 "$(dirname "$0")/../bench/peers/compare.py" "$T/ceiling.csv" >"$T/ceiling.txt" &&
    grep -Eq "^cpu +train +fp32 +2 +1 +[0-9.]+ +[0-9.]+ +[0-9]+%  1$" "$T/ceiling.txt" &&
    ok "compare.py: the step against its convolutions alone" || bad "compare.py ceiling: $(cat "$T/ceiling.txt")"
  # Against peers: medians 22.5 / 12.5 = 1.80x; paired by round, 10/8 and 35/20: 1.50x (1.25-1.75).
  {
    head -1 "$T/bench.csv"
    for row in "mixseg,0 10" "a,1 5" "b,1 8" "mixseg,0 35" "a,1 20" "b,1 10"; do
      set -- $row
      echo "$1,cpu,X,fp32,infer,2,2,1,32,32,$2,1,1,1,0,,unavailable,1,1,1,x,t"
    done
  } >"$T/peers.csv"
  python3 "$(dirname "$0")/../bench/peers/compare.py" "$T/peers.csv" >"$T/peers.txt" &&
    grep -Eq "^cpu +infer +fp32 +2 +1 .* 1\.80x +1\.50x 1\.25-1\.75 n2$" "$T/peers.txt" &&
    ok "compare.py: ratio of medians and the round-paired ratio" || bad "compare.py peers: $(cat "$T/peers.txt")"
  # The peers' energy (bench/peers/common.py): a fake 50 W counter read around the measured steps, a window of
  # at least 2 s, J/img net of a 10 W baseline over steps x batch images, the source named; the same CSV row
  # without a counter says unavailable.
  if python3 - "$(dirname "$0")/../bench/peers" >"$T/peer_energy.txt" 2>&1 <<'PY'
import sys, time
sys.path.insert(0, sys.argv[1])
import common
class Fake:
    source = "fake"
    def joules(self):
        return 50.0 * time.perf_counter()
times, gross, seconds = common.time_steps_with_energy(lambda: time.sleep(0.01), 1, 3, 0.0, lambda: None, Fake())
assert seconds >= common.MIN_ENERGY_SECONDS and len(times) >= 3, (seconds, len(times))
assert abs(gross - 50.0 * seconds) < 0.05 * gross, (gross, seconds)
net = gross - 10.0 * seconds
row = common.make_row("p", "v", "cuda", "gpu", "fp32", "infer", 8, 4, 2, 32, 32, times, 1, 1.0, False, (net, "fake"))
assert row["energy_source"] == "fake"
assert abs(float(row["joules_per_img"]) - net / (2 * len(times))) < 1e-5 * net, row["joules_per_img"]
plain = common.make_row("p", "v", "cuda", "gpu", "fp32", "infer", 8, 4, 2, 32, 32, times, 1, 1.0, False)
assert plain["energy_source"] == "unavailable" and plain["joules_per_img"] == ""
print("ok")
PY
  then ok "peers: NVML-style energy window and net J/img"; else bad "peer energy: $(cat "$T/peer_energy.txt")"; fi
fi
echo "other,header" >"$T/other.csv"
# Energy from a (fake) powercap tree: the rows say rapl, the metadata has the baseline and the method.
mkdir -p "$T/pc/intel-rapl:0" && echo package-0 >"$T/pc/intel-rapl:0/name" && echo 1000000 >"$T/pc/intel-rapl:0/energy_uj" &&
  echo 262143328850 >"$T/pc/intel-rapl:0/max_energy_range_uj"
expect_ok "$MIXSEG" bench --phase infer --filters 2 --depth 2 --size 32x32 --warmup 0 --min-steps 1 --min-time 0 --rapl-root "$T/pc" --idle-seconds 0.1 --out "$T/energy.csv"
grep -q ",rapl," "$T/energy.csv" && ok "bench rows carry the energy source" || bad "no rapl rows: $(cat "$T/energy.csv")"
grep -q '"idle_baseline_watts"' "$T/energy.csv.meta.jsonl" && grep -q '"onednn_version"' "$T/energy.csv.meta.jsonl" &&
  grep -Eq '"int8_convolutions":"(amx|avx512_vnni|avx2|reference)"' "$T/energy.csv.meta.jsonl" &&
  ok "bench wrote the run's metadata" || bad "no metadata: $(cat "$T/energy.csv.meta.jsonl")"
grep -q ",unavailable," "$T/bench.csv" && ok "--energy none: the rows say unavailable" || bad "bench.csv lacks 'unavailable'"
expect_error "--energy rapl: no powercap interface" "$MIXSEG" bench --energy rapl --rapl-root "$T/nowhere" --filters 2 --depth 2 --size 32x32
if ! nvidia-smi -L >/dev/null 2>&1; then  # without a GPU (or without a CUDA build) the GPU is refused, clearly
  expect_error "CUDA backend" "$MIXSEG" bench --device cuda --filters 2 --depth 2 --size 32x32
  expect_error "CUDA backend" "$MIXSEG" train --backend cuda --synthetic 8 --size 32x32 --filters 2 --depth 2 --out "$T/gpu"
  expect_error "CUDA backend" "$MIXSEG" train --device cuda --synthetic 8 --size 32x32 --filters 2 --depth 2 --out "$T/gpu"
  expect_error "CUDA" "$MIXSEG" predict "$T/run/last.safetensors" "$T/data/0.png" --device cuda --out "$T/gpu"
  # auto without a GPU is the CPU.
  expect_ok "$MIXSEG" eval "$T/run/last.safetensors" --data "$T/data" --device auto
  grep -q "dice" "$T/out" && ok "eval --device auto ran on the CPU" || bad "eval --device auto: $(cat "$T/out")"
fi
# --device and --backend: unknown names and contradictions are refused before any work.
expect_error "--device 'gpu' is not cpu, cuda or auto" "$MIXSEG" eval "$T/run/last.safetensors" --data "$T/data" --device gpu
expect_error "--backend 'gpu' is not ref, fast or cuda" "$MIXSEG" train --synthetic 8 --size 32x32 --backend gpu
expect_error "--device cuda runs the cuda backend, not --backend ref" "$MIXSEG" parity --synthetic 8 --device cuda --backend ref
expect_error "needs --device cuda or auto" "$MIXSEG" bench --device cpu --backend cuda --filters 2 --depth 2 --size 32x32
expect_ok "$MIXSEG" eval "$T/run/last.safetensors" --data "$T/data" --device cpu --backend ref
# A configuration too large for memory is skipped and the sweep goes on (the address space is capped, so
# this holds whatever the kernel's overcommit policy); the report lists it under what was not measured.
(ulimit -v 4000000 && "$MIXSEG" bench --phase infer --filters 2 --depth 2 --size 32x32 --batch 1,2000000 --warmup 0 \
  --min-steps 1 --min-time 0 --energy none --out "$T/oom.csv") >"$T/out" 2>"$T/err"
grep -q "skipped: out of memory: the fast backend could not allocate .* GiB: the inference workspace at batch 2000000" "$T/out" &&
  [ "$(wc -l <"$T/oom.csv")" = 2 ] && grep -q '"skipped":\[{"batch":2000000' "$T/oom.csv.meta.jsonl" &&
  ok "bench skips a configuration that does not fit" || bad "out of memory in a sweep: $(cat "$T/out" "$T/err")"
expect_ok "$MIXSEG" report "$T/oom.csv" --out "$T/oom_report"
grep -q "infer fp32 f=2 batch 2000000 on .*: out of memory" "$T/oom_report/report.md" &&
  ok "the report lists the skipped configuration" || bad "report lacks the skipped configuration"
expect_error "the training workspace at batch 1, 2048x2048, fp32 needs" sh -c 'ulimit -v 4000000 && exec "$0" "$@"' \
  "$MIXSEG" train --synthetic 2 --size 2048x2048 --filters 64 --batch 1 --epochs 1 --val-fraction 0.5
expect_error "another header" "$MIXSEG" bench --filters 2 --depth 2 --size 32x32 --warmup 0 --min-steps 1 --min-time 0 --out "$T/other.csv"

# Bad input: clear errors naming the file or value.
expect_error "$T/nothing" "$MIXSEG" train --data "$T/nothing" --size 32x32
mkdir -p "$T/orphan" && cp "$T/data/0_seg.png" "$T/orphan/5_seg.png"
expect_error "5_seg.png: mask without its image" "$MIXSEG" train --data "$T/orphan" --size 32x32
mkdir -p "$T/corrupt" && echo "not a png" >"$T/corrupt/1.png" && cp "$T/data/1_seg.png" "$T/corrupt/1_seg.png"
expect_error "$T/corrupt/1.png" "$MIXSEG" train --data "$T/corrupt" --size 32x32
echo "junk" >"$T/junk.safetensors"
expect_error "$T/junk.safetensors" "$MIXSEG" eval "$T/junk.safetensors" --synthetic 4
expect_error "$T/none.safetensors" "$MIXSEG" predict "$T/none.safetensors" "$T/data" --out "$T/m2"
expect_error "100x64" "$MIXSEG" train --synthetic 8 --size 100x64
expect_error "'fp64'" "$MIXSEG" train --synthetic 8 --size 32x32 --precision fp64
expect_error "12xq" "$MIXSEG" train --synthetic 8 --size 12xq
expect_error "--batch: 0 is not a positive number" "$MIXSEG" train --synthetic 8 --size 32x32 --batch 0
expect_error "--min-time: -1 is not a non-negative number" "$MIXSEG" bench --min-time -1
expect_error "--lr: 'fast' is not a number" "$MIXSEG" train --synthetic 8 --size 32x32 --lr fast
expect_error "inference only" "$MIXSEG" train --synthetic 8 --size 32x32 --depth 2 --precision fp16
touch "$T/afile"
expect_error "$T/afile/sub" "$MIXSEG" train --synthetic 8 --size 32x32 --depth 2 --filters 2 --batch 4 --epochs 1 --out "$T/afile/sub"
# A failed run does not damage an earlier checkpoint.
cp "$T/run/last.safetensors" "$T/keep.safetensors"
expect_error "trained with mixed_fp16" "$MIXSEG" train --data "$T/data" --size 32x32 --filters 4 --depth 2 --batch 4 --epochs 3 --out "$T/run" --precision fp32 --resume "$T/run/last.safetensors"
cmp -s "$T/run/last.safetensors" "$T/keep.safetensors" && ok "earlier checkpoint intact" || bad "earlier checkpoint changed"

# Int8: quantize on the folder, evaluate and predict in int8, export, preflight.
expect_ok "$MIXSEG" quantize "$T/run/last.safetensors" --data "$T/data" --calibration percentile --out "$T/q.safetensors"
grep -q "clipped" "$T/out" && grep -q "percentile 99.99 over 12 images" "$T/out" && ok "quantize printed its table" || bad "no quantization table: $(cat "$T/out")"
expect_ok "$MIXSEG" eval "$T/q.safetensors" --data "$T/data"
grep -q "evaluated in int8" "$T/out" && ok "eval ran the int8 model" || bad "eval did not run int8: $(cat "$T/out")"
expect_ok "$MIXSEG" predict "$T/q.safetensors" "$T/data/0.png" --out "$T/qmasks"
expect_error "int8 model: it runs on the CPU's int8 engine" "$MIXSEG" eval "$T/q.safetensors" --data "$T/data" --device cuda
expect_error "int8 model: it runs on the CPU's int8 engine" "$MIXSEG" predict "$T/q.safetensors" "$T/data/0.png" --device cuda --out "$T/gpu"
[ -f "$T/qmasks/0_mask.png" ] && ok "int8 predict wrote a mask" || bad "int8 predict wrote no mask"
expect_ok "$MIXSEG" export "$T/q.safetensors" --out "$T/q.tflite"
expect_ok "$MIXSEG" edgetpu-check "$T/q.tflite"
grep -q "every op maps to the Edge TPU" "$T/out" && ok "edgetpu-check passes ours" || bad "edgetpu-check: $(cat "$T/out")"
expect_ok "$MIXSEG" export "$T/run/last.safetensors" --format onnx --precision fp16 --out "$T/f16.onnx"
expect_error "quantize it first" "$MIXSEG" eval "$T/run/last.safetensors" --data "$T/data" --precision int8
expect_error "mixseg quantize" "$MIXSEG" export "$T/run/last.safetensors" --precision int8 --out "$T/x.tflite"
expect_error "float checkpoint" "$MIXSEG" export "$T/q.safetensors" --precision fp32 --out "$T/x.tflite"
expect_error "representative set" "$MIXSEG" quantize "$T/run/last.safetensors" --out "$T/q2.safetensors"
expect_error "percentile" "$MIXSEG" quantize "$T/run/last.safetensors" --synthetic 4 --calibration percentile --percentile 20 --out "$T/q2.safetensors"
expect_error "$T/run/last.safetensors" "$MIXSEG" edgetpu-check "$T/run/last.safetensors"
expect_ok "$MIXSEG" export "$T/run/last.safetensors" --precision fp32 --out "$T/f32.tflite"
expect_error "op 0 (CONV_2D" "$MIXSEG" edgetpu-check "$T/f32.tflite"
expect_error "$T/missing.tflite: no such file" "$MIXSEG" edgetpu-check "$T/missing.tflite"
# A folder where a file belongs is named as one, in every reader (not the
# stream library's exception, nor a "malformed file" from an empty read).
expect_error "$T/data: is a folder" "$MIXSEG" edgetpu-check "$T/data"
expect_error "$T/data: is a folder" "$MIXSEG" eval "$T/data" --data "$T/data"
expect_error "$T/data: is a folder" "$MIXSEG" report "$T/data" --out "$T/rep-folder"
expect_error "$T/data: is a folder" "$MIXSEG" bench --phase load --min-time 0.1 --out "$T/data"

if [ "$fails" -ne 0 ]; then echo "$fails CLI checks failed"; exit 1; fi
echo "all CLI checks passed"
