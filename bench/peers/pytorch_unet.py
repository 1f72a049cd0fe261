#!/usr/bin/env python3
"""The PyTorch peer: the same U-Net as mixseg (DESIGN.md, "The network"),
measured the way PyTorch users run it (eager mode; AMP autocast for the
mixed policies, with GradScaler for fp16 on CUDA; NCHW or channels_last;
cudnn.benchmark on CUDA; --compile: torch.compile'd instead, its compilation
in the warm-up steps), writing rows in mixseg's CSV schema. fp32 is IEEE
float32 arithmetic (TF32 off for convolutions and matmuls, mixseg's fp32
policy); tf32 lets cuDNN and cuBLAS use TF32 tensor cores, which is what
PyTorch's own default does for convolutions on a GPU.

  python3 bench/peers/pytorch_unet.py --device cpu --filters 8,16 --batch 1,4 --out results.csv
  python3 bench/peers/pytorch_unet.py --device cuda --compile --filters 8 --batch 1 --out results.csv
  python3 bench/peers/pytorch_unet.py --filters 8 --export-onnx unet_f8.onnx   # fp32 ONNX for onnxruntime
"""
import argparse
import sys

import torch
import torch.nn as nn
import torch.nn.functional as F

sys.path.insert(0, __import__("os").path.dirname(__import__("os").path.abspath(__file__)))
import common  # noqa: E402


def convblock(cin, cout):
    return nn.Sequential(nn.Conv2d(cin, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True))


class UNet(nn.Module):
    def __init__(self, filters=8, depth=4, in_channels=1, classes=1):
        super().__init__()
        f = filters
        self.enc = nn.ModuleList()
        c = in_channels
        for lvl in range(depth):
            self.enc.append(nn.Sequential(convblock(c, f << lvl), convblock(f << lvl, f << lvl)))
            c = f << lvl
        self.bottleneck = convblock(c, f << depth)
        c = f << depth
        self.dec0, self.dec1 = nn.ModuleList(), nn.ModuleList()
        for lvl in reversed(range(depth)):
            self.dec0.append(convblock(c, f << lvl))
            self.dec1.append(convblock(2 * (f << lvl), f << lvl))
            c = f << lvl
        self.final = convblock(c, f)
        self.head = nn.Conv2d(f, classes, 1, bias=False)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_uniform_(m.weight, a=0, nonlinearity="relu")  # He-uniform, as mixseg

    def forward(self, x):
        skips = []
        for block in self.enc:
            x = block(x)
            skips.append(x)
            x = F.max_pool2d(x, 2)
        x = self.bottleneck(x)
        for d0, d1, skip in zip(self.dec0, self.dec1, reversed(skips)):
            x = F.interpolate(d0(x), scale_factor=2, mode="nearest")
            x = d1(torch.cat([x, skip], dim=1))
        return self.head(self.final(x))


def bce_dice_loss(logits, target):
    bce = F.binary_cross_entropy_with_logits(logits, target)
    p = torch.sigmoid(logits)
    dice = 1 - (2 * (p * target).sum() + 1) / (p.sum() + target.sum() + 1)
    return bce + dice


AMP_DTYPE = {"fp32": None, "tf32": None, "mixed_fp16": torch.float16, "mixed_bf16": torch.bfloat16}


def allow_tf32(allowed):
    """TF32 for float32 convolutions and matmuls: only in the tf32 policy (PyTorch's
    default allows it for cuDNN convolutions, which would make "fp32" TF32)."""
    torch.backends.cudnn.allow_tf32 = allowed
    torch.backends.cuda.matmul.allow_tf32 = allowed


def measure(args, device, precision, layout, train, filters, batch, h, w, counter=None, idle_w=0.0):
    torch.manual_seed(args.seed)
    model = UNet(filters, args.depth).to(device)
    fmt = torch.channels_last if layout == "channels_last" else torch.contiguous_format
    model = model.to(memory_format=fmt)
    net = torch.compile(model) if args.compile else model
    x = torch.rand(batch, 1, h, w, device=device).to(memory_format=fmt)
    target = (torch.rand(batch, 1, h, w, device=device) > 0.8).float()
    if precision not in AMP_DTYPE:
        raise SystemExit(f"--precision: {precision} is not one of {', '.join(AMP_DTYPE)}")
    allow_tf32(precision == "tf32")
    amp = AMP_DTYPE[precision]
    autocast = (lambda: torch.autocast(device_type=device.type, dtype=amp)) if amp else None
    sync = (lambda: torch.cuda.synchronize()) if device.type == "cuda" else (lambda: None)
    if train:
        model.train()
        opt = torch.optim.Adam(model.parameters(), lr=1e-3)
        use_scaler = amp == torch.float16 and device.type == "cuda"
        scaler = (torch.amp.GradScaler("cuda", enabled=use_scaler) if hasattr(torch, "amp") and
                  hasattr(torch.amp, "GradScaler") else torch.cuda.amp.GradScaler(enabled=use_scaler))

        def step():
            opt.zero_grad(set_to_none=True)
            if autocast:
                with autocast():
                    loss = bce_dice_loss(net(x).float(), target)
            else:
                loss = bce_dice_loss(net(x), target)
            scaler.scale(loss).backward()
            scaler.step(opt)
            scaler.update()
    else:
        model.eval()

        def step():
            with torch.inference_mode():
                if autocast:
                    with autocast():
                        net(x)
                else:
                    net(x)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats()
    times, energy = common.measure_steps(step, args, sync, counter, idle_w)
    if device.type == "cuda":
        peak = torch.cuda.max_memory_allocated() / 2**20
        name = torch.cuda.get_device_name(device)
    else:
        peak = common.peak_rss_mib()  # the process's peak RSS: an upper bound, framework included
        name = common.cpu_model_name()
    version = f"{torch.__version__} ({layout}{', compiled' if args.compile else ''})"
    return common.make_row("pytorch", version, device.type, name, precision, "train" if train else "infer", filters,
                           args.depth, batch, h, w, times, args.warmup, peak, train, energy)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    common.add_sweep_args(ap)
    ap.add_argument("--layout", default="nchw,channels_last", help="comma-separated: nchw, channels_last")
    ap.add_argument("--threads", type=int, default=0, help="CPU threads (0 = all cores)")
    ap.add_argument("--compile", action="store_true",
                    help="torch.compile the model (inductor, default mode); compilation happens in the warm-up")
    ap.add_argument("--export-onnx", metavar="PATH", help="export the fp32 model (--filters, first value) to ONNX and exit")
    args = ap.parse_args()
    h, w = common.parse_size(args.size)
    threads = args.threads or __import__("os").cpu_count()
    torch.set_num_threads(threads)
    if args.export_onnx:
        model = UNet(common.int_list(args.filters)[0], args.depth).eval()
        torch.onnx.export(model, torch.rand(1, 1, h, w), args.export_onnx, input_names=["image"],
                          output_names=["logits"], dynamic_axes={"image": {0: "batch"}, "logits": {0: "batch"}},
                          opset_version=13)
        print(f"wrote {args.export_onnx}")
        return
    device = torch.device(args.device)
    counter, idle_w = None, 0.0
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True
        counter, idle_w = common.open_gpu_energy(args)
    print(f"pytorch {torch.__version__} on {device.type}, {threads} threads, {h}x{w}")
    print(f"{'phase':<6} {'precision':<11} {'layout':<14} {'filters':>7} {'batch':>5} {'img/s':>9} {'ms/step':>10}")
    for phase in args.phase.split(","):
        for filters in common.int_list(args.filters):
            for precision in args.precision.split(","):
                for layout in args.layout.split(","):
                    for batch in common.int_list(args.batch):
                        try:
                            row = measure(args, device, precision, layout, phase == "train", filters, batch, h, w,
                                          counter, idle_w)
                        except RuntimeError as e:  # e.g. fp16 autocast on an old PyTorch's CPU, or out of memory
                            if device.type == "cuda":
                                torch.cuda.empty_cache()  # what the failed configuration held
                            print(f"{phase:<6} {precision:<11} {layout:<14} {filters:>7} {batch:>5} skipped: "
                                  f"{str(e).splitlines()[0][:80]}", flush=True)
                            continue
                        print(f"{phase:<6} {precision:<11} {layout:<14} {filters:>7} {batch:>5} "
                              f"{float(row['img_per_s']):>9.2f} {float(row['ms_per_step_median']):>10.2f}", flush=True)
                        if args.out:
                            common.append_rows(args.out, [row])


if __name__ == "__main__":
    main()
