#!/usr/bin/env python3
"""The floor of a training step on the GPU, counted: the convolutions' FLOPs
and the bytes the CUDA backend's own kernels (BatchNorm, pooling, upsampling,
concat, the skip gradient's add, loss, optimizer) move per image, for the
U-Net of src/model/unet.cpp (depth 4; its forward FLOPs match `mixseg info`),
with the time each takes at a given bandwidth and convolution rate.

Byte counts are each kernel's reads and writes of whole tensors, once (what
the kernels in src/cuda do; caches ignored): BatchNorm forward 3 (sums, then
normalise), backward 5 (sums and dx each read dy and x; the ReLU mask comes
from x and the kept factors, performance.md v0.18; 7 before, with --bn-bwd 7).
The decoder's concat copies nothing (v0.19: the skip and the upsampled tensor
live in the concat buffer, their gradients in its gradient's): the upsample
writes its half, its backward reads its half of the concat's gradient; and
max pooling's backward adds its gradient to the skip's in place (v0.21: it
reads that gradient once more instead of writing scratch that an add pass
then reads with it). --as-of v0.18 or v0.19 counts those versions' passes
(v0.18: the concat's copies, the buffer's gradient split; both: the add).
Convolutions count FLOPs only (cuDNN's own traffic is inside its rate).

    python3 bench/gpu_floor.py --filters 8,32,64 --batch 1,8,32
"""
import argparse


def step_floor(f, size, storage_bytes, bn_bwd_passes, as_of="v0.21", depth=4):
    """Training FLOPs, bytes moved by kind (per image) and parameters."""
    h, w = size
    e = storage_bytes
    flops, params = 0.0, 0
    moved = {}

    def add(kind, n):
        moved[kind] = moved.get(kind, 0.0) + n

    def convblock(cin, cout, pixels, k=3, bn=True):  # conv (+ BatchNorm + ReLU); the 1x1 head has weights only
        nonlocal flops, params
        flops += 2 * k * k * cin * cout * pixels
        params += k * k * cin * cout + (2 * cout if bn else 0)
        if bn:
            n = pixels * cout
            add("BatchNorm forward", e * 3 * n)
            add("BatchNorm backward", e * bn_bwd_passes * n)

    c = [f << l for l in range(depth + 1)]
    px = [h * w // 4**l for l in range(depth + 1)]
    x = 1
    for l in range(depth):  # encoder: two convblocks, then 2x2 max pooling
        convblock(x, c[l], px[l])
        convblock(c[l], c[l], px[l])
        x = c[l]
        n = px[l] * c[l]
        if as_of == "v0.21":  # backward: read x, dy and the skip's gradient, write it
            add("max pooling", e * (n + n / 4) + e * (n + n / 4 + 2 * n))
        else:  # backward: read x and dy, write dx (into scratch)
            add("max pooling", e * (n + n / 4) + e * (n + n / 4 + n))
    convblock(c[depth - 1], c[depth], px[depth])  # bottleneck
    x = c[depth]
    for l in reversed(range(depth)):  # decoder: convblock, upsample + concat with the skip, convblock
        convblock(x, c[l], px[l + 1])
        up, skip, cat = px[l + 1] * c[l], px[l] * c[l], px[l] * 2 * c[l]
        if as_of == "v0.18":  # forward: read x and the skip, write the buffer; backward: split, then upsample's
            add("upsample + concat", e * (up + skip + cat) + e * (2 * cat + 5 * up))
        else:  # forward: read x, write its half; backward: read that half's gradient, write x's
            add("upsample + concat", e * (up + 4 * up) + e * (4 * up + up))
        if as_of != "v0.21":
            add("skip gradient add", e * 3 * skip)
        convblock(2 * c[l], c[l], px[l])
        x = c[l]
    convblock(c[0], c[0], px[0])  # final
    convblock(c[0], 1, px[0], k=1, bn=False)  # head
    add("loss", e * 3 * px[0])
    return 3 * flops, moved, params


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--filters", default="8,32,64")
    ap.add_argument("--batch", default="1,8,32")
    ap.add_argument("--size", default="512x256")
    ap.add_argument("--bytes", type=int, default=2, help="storage bytes per activation (2: mixed_fp16/bf16, 4: fp32)")
    ap.add_argument("--bn-bwd", type=int, default=5, help="tensor passes of the BatchNorm backward")
    ap.add_argument("--as-of", default="v0.21", choices=["v0.18", "v0.19", "v0.21"],
                    help="count the passes of that version (see above)")
    ap.add_argument("--bandwidth", type=float, default=3.5e12, help="bytes/s the own kernels reach")
    ap.add_argument("--conv-tflops", default="450,600", help="cuDNN's rate on these convolutions, TFLOP/s")
    a = ap.parse_args()
    h, w = map(int, a.size.split("x"))
    lo, hi = (float(t) * 1e12 for t in a.conv_tflops.split(","))
    print("| f | batch | training GFLOP/img | own kernels MB/img | own ms/img | convs ms/img | floor img/s |")
    print("|---|---|---|---|---|---|---|")
    for f in map(int, a.filters.split(",")):
        flops, moved, params = step_floor(f, (h, w), a.bytes, a.bn_bwd, a.as_of)
        for b in map(int, a.batch.split(",")):
            own = sum(moved.values()) + params * 34 / b  # Adam: masters, grads, moments, 16-bit copy
            t_own = own / a.bandwidth
            t_hi, t_lo = flops / lo, flops / hi
            print(f"| {f} | {b} | {flops / 1e9:.1f} | {own / 1e6:.0f} | {t_own * 1e3:.3f} | "
                  f"{t_lo * 1e3:.3f}-{t_hi * 1e3:.3f} | {1 / (t_own + t_hi):.0f}-{1 / (t_own + t_lo):.0f} |")


if __name__ == "__main__":
    main()
