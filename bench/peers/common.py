"""Shared by the peer benchmarks: the design's CSV schema (DESIGN.md,
"Measuring", the same columns mixseg bench writes), steady-state timing and
percentiles (numpy's linear method, like mixseg's stats)."""
import csv
import datetime
import os
import subprocess
import time

COLUMNS = ("framework,framework_version,device,device_name,precision,phase,filters,depth,batch,height,width,"
           "img_per_s,ms_per_step_median,ms_p90,ms_p99,tflops,joules_per_img,energy_source,peak_mem_mib,steps,"
           "warmup_steps,git_commit,timestamp").split(",")


def percentile(values, p):
    v = sorted(values)
    rank = p / 100.0 * (len(v) - 1)
    lo = int(rank)
    hi = min(lo + 1, len(v) - 1)
    return v[lo] + (v[hi] - v[lo]) * (rank - lo)


def time_steps(step, warmup, min_steps, min_seconds, sync=lambda: None):
    """Runs warm-up steps, then timed steps until both minimums are met; returns seconds per step."""
    for _ in range(warmup):
        step()
    sync()
    times = []
    while len(times) < min_steps or sum(times) < min_seconds:
        t0 = time.perf_counter()
        step()
        sync()
        times.append(time.perf_counter() - t0)
    return times


def conv_flops_per_image(filters, depth, height, width, in_channels=1, classes=1):
    """Forward FLOPs (2 x multiply-adds) of the U-Net's convolutions, as mixseg info counts them."""
    macs = 0
    def conv(level, cin, cout, k=3):
        nonlocal macs
        macs += (height >> level) * (width >> level) * k * k * cin * cout
    c = in_channels
    for lvl in range(depth):
        conv(lvl, c, filters << lvl)
        conv(lvl, filters << lvl, filters << lvl)
        c = filters << lvl
    conv(depth, c, filters << depth)
    c = filters << depth
    for lvl in reversed(range(depth)):
        conv(lvl + 1, c, filters << lvl)
        conv(lvl, 2 * (filters << lvl), filters << lvl)
        c = filters << lvl
    conv(0, c, filters)
    conv(0, filters, classes, 1)
    return 2.0 * macs


def git_commit():
    try:
        return subprocess.run(["git", "rev-parse", "--short=12", "HEAD"], capture_output=True, text=True,
                              cwd=os.path.dirname(os.path.abspath(__file__)), check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def cpu_model_name():
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return "unknown cpu"


def make_row(framework, version, device, device_name, precision, phase, filters, depth, batch, height, width,
             times, warmup, peak_mem_mib, train):
    med = percentile(times, 50)
    ips = batch / med
    flops = conv_flops_per_image(filters, depth, height, width) * (3.0 if train else 1.0)
    return {
        "framework": framework, "framework_version": version, "device": device, "device_name": device_name,
        "precision": precision, "phase": phase, "filters": filters, "depth": depth, "batch": batch,
        "height": height, "width": width, "img_per_s": f"{ips:.6g}", "ms_per_step_median": f"{med * 1e3:.6g}",
        "ms_p90": f"{percentile(times, 90) * 1e3:.6g}", "ms_p99": f"{percentile(times, 99) * 1e3:.6g}",
        "tflops": f"{flops * ips / 1e12:.6g}", "joules_per_img": "", "energy_source": "unavailable",
        "peak_mem_mib": f"{peak_mem_mib:.6g}", "steps": len(times), "warmup_steps": warmup,
        "git_commit": git_commit(),
        "timestamp": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
    }


def append_rows(path, rows):
    fresh = not os.path.exists(path) or os.path.getsize(path) == 0
    if not fresh:
        with open(path) as f:
            header = f.readline().strip()
        if header != ",".join(COLUMNS):
            raise SystemExit(f"{path}: exists with another header; not appending (first line: {header!r})")
    with open(path, "a", newline="") as f:
        w = csv.DictWriter(f, fieldnames=COLUMNS, lineterminator="\n")
        if fresh:
            w.writeheader()
        w.writerows(rows)


def peak_rss_mib():
    import resource
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def add_sweep_args(ap):
    """The sweep options every training+inference peer takes, as mixseg bench names them."""
    ap.add_argument("--precision", default="fp32", help="comma-separated: fp32, mixed_fp16, mixed_bf16")
    ap.add_argument("--phase", default="infer,train")
    ap.add_argument("--filters", default="8")
    ap.add_argument("--depth", type=int, default=4)
    ap.add_argument("--batch", default="1")
    ap.add_argument("--size", default="512x256", help="HxW")
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--min-steps", type=int, default=5)
    ap.add_argument("--min-time", type=float, default=2.0)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", help="append rows to this CSV")


def int_list(s):
    return [int(x) for x in s.split(",") if x]


def parse_size(s):
    h, w = s.lower().split("x")
    return int(h), int(w)
