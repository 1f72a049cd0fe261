#!/usr/bin/env python3
"""The LiteRT (TensorFlow Lite) peer for int8 deployment: runs mixseg's
.tflite export (int8 for the Edge TPU, or fp32) with LiteRT's interpreter on
the CPU, writing inference rows in mixseg's CSV schema, so the report sets
mixseg's int8 engine beside the runtime the paper deployed with. Kernels:
`xnnpack` (LiteRT's default delegate, which requantizes in float) or
`builtin` (its own optimized integer kernels, no delegate). The model's
input batch is 1; other batch sizes resize the input tensor.

  python3 bench/peers/litert_unet.py --model model_int8.tflite --filters 8 --batch 1,4 --out results.csv
"""
import argparse
import importlib.metadata
import os
import sys

import numpy as np
from ai_edge_litert.interpreter import Interpreter, OpResolverType

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import common  # noqa: E402

RESOLVERS = {"xnnpack": OpResolverType.AUTO, "builtin": OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES}


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", required=True, help=".tflite file from mixseg export")
    ap.add_argument("--filters", type=int, required=True, help="the model's filters (for the CSV and FLOPs)")
    ap.add_argument("--depth", type=int, default=4)
    ap.add_argument("--batch", default="1")
    ap.add_argument("--size", help="HxW: checked against the model's input (the export fixes it)")
    ap.add_argument("--kernels", default="xnnpack", choices=sorted(RESOLVERS))
    ap.add_argument("--threads", type=int, default=0, help="interpreter threads (0 = all cores)")
    common.add_timing_args(ap)
    ap.add_argument("--model-source", default="mixseg export", help="added to the framework version")
    ap.add_argument("--out", help="append rows to this CSV")
    args = ap.parse_args()
    threads = args.threads or os.cpu_count()
    version = f"{importlib.metadata.version('ai-edge-litert')} ({args.kernels}, {args.model_source})"
    for batch in common.int_list(args.batch):
        it = Interpreter(model_path=args.model, num_threads=threads,
                         experimental_op_resolver_type=RESOLVERS[args.kernels])
        inp = it.get_input_details()[0]
        _, h, w, c = inp["shape"]
        if args.size and common.parse_size(args.size) != (h, w):
            raise SystemExit(f"{args.model}: input {h}x{w}, not --size {args.size} (export at that size)")
        if batch != 1:
            it.resize_tensor_input(inp["index"], [batch, h, w, c])
        it.allocate_tensors()
        dtype = inp["dtype"]
        rng = np.random.default_rng(0)
        if dtype == np.int8:
            x = rng.integers(-128, 128, size=(batch, h, w, c), dtype=np.int8)
        elif dtype == np.float32:
            x = rng.random((batch, h, w, c), dtype=np.float32)
        else:
            raise SystemExit(f"{args.model}: input of type {np.dtype(dtype).name}, expected int8 or float32")
        # By the tensors the model holds: int8 ones (the Edge TPU export, also with float I/O), else
        # float16 weights (the fp16 export), else fp32.
        types = {np.dtype(d["dtype"]) for d in it.get_tensor_details()}
        precision = "int8" if np.dtype(np.int8) in types else "fp16" if np.dtype(np.float16) in types else "fp32"
        it.set_tensor(inp["index"], x)

        times = common.time_steps(it.invoke, args.warmup, args.min_steps, args.min_time)
        row = common.make_row("litert", version, "cpu", common.cpu_model_name(), precision, "infer", args.filters,
                              args.depth, batch, int(h), int(w), times, args.warmup, common.peak_rss_mib(), False)
        common.emit_inference_row(f"litert {version} {precision} f={args.filters} batch {batch}", row, args.out)


if __name__ == "__main__":
    main()
