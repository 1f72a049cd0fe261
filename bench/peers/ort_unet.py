#!/usr/bin/env python3
"""The onnxruntime peer: runs an fp32 U-Net ONNX file (mixseg's export once it
exists, else the PyTorch peer's --export-onnx) with onnxruntime's CPU
provider and all graph optimisations (which fold BatchNorm and fuse ReLU),
writing inference rows in mixseg's CSV schema.

  python3 bench/peers/ort_unet.py --model unet_f8.onnx --filters 8 --batch 1,4 --out results.csv
"""
import argparse
import os
import sys

import numpy as np
import onnxruntime as ort

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import common  # noqa: E402


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", required=True, help="fp32 ONNX file with input [N,1,H,W]")
    ap.add_argument("--filters", type=int, required=True, help="the model's filters (for the CSV and FLOPs)")
    ap.add_argument("--depth", type=int, default=4)
    ap.add_argument("--batch", default="1")
    ap.add_argument("--size", default="512x256", help="HxW")
    ap.add_argument("--threads", type=int, default=0, help="intra-op threads (0 = all cores)")
    common.add_timing_args(ap)
    ap.add_argument("--model-source", default="",
                    help="where the ONNX file came from (e.g. 'mixseg export'), added to the framework version "
                         "so rows of different exports stay apart")
    ap.add_argument("--out", help="append rows to this CSV")
    args = ap.parse_args()
    h, w = common.parse_size(args.size)
    threads = args.threads or os.cpu_count()
    so = ort.SessionOptions()
    so.intra_op_num_threads = threads
    so.inter_op_num_threads = 1
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    sess = ort.InferenceSession(args.model, so, providers=["CPUExecutionProvider"])
    name = sess.get_inputs()[0].name
    for batch in common.int_list(args.batch):
        x = np.random.default_rng(0).random((batch, 1, h, w), dtype=np.float32)
        times = common.time_steps(lambda: sess.run(None, {name: x}), args.warmup, args.min_steps, args.min_time)
        version = f"{ort.__version__} ({args.model_source})" if args.model_source else ort.__version__
        row = common.make_row("onnxruntime", version, "cpu", common.cpu_model_name(), "fp32", "infer",
                              args.filters, args.depth, batch, h, w, times, args.warmup, common.peak_rss_mib(), False)
        common.emit_inference_row(f"onnxruntime {ort.__version__} f={args.filters} batch {batch}", row, args.out)


if __name__ == "__main__":
    main()
