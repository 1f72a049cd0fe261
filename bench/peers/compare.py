#!/usr/bin/env python3
"""Prints mixseg against the fastest peer per (device, phase, precision,
filters, batch) from one CSV of the design's schema: img/s of each and their
ratio. A framework measured several times (rounds of one sweep) counts with
the median of its rows; `n` says how many. Rows of one sweep only: give the
CSV one run of scripts/bench-cpu.sh wrote. `paired` pairs the rounds
instead: in round k, mixseg's k-th row over the fastest peer's k-th row
(scripts/bench-cpu.sh runs both sides of a comparison next to each other),
and gives the median of those ratios with their range; on a machine whose
speed drifts between rounds this is the steadier figure.

Then mixseg's other precisions against its own fp32: the k-th row of a
precision is paired with the k-th fp32 row of the same configuration (the
same round of `mixseg bench --rounds`, measured minutes apart at most), and
the table gives the median of those per-round ratios, with their range.

Last, where the CSV's metadata (RESULTS.csv.meta.jsonl) has rows of
`mixseg bench --conv-ceiling`: each step's TFLOP/s against the same
convolutions run alone, the convolution library's ceiling on those shapes."""
import csv
import json
import os
import sys
from collections import defaultdict


def median(values):
    v = sorted(values)
    mid = len(v) // 2
    return v[mid] if len(v) % 2 else (v[mid - 1] + v[mid]) / 2


def median_of(rows):
    """(median img/s, median GFLOP/s, count) of a framework's rows for one configuration."""
    ips = sorted(float(r["img_per_s"]) for r in rows)
    gf = sorted(float(r["tflops"]) * 1e3 for r in rows)
    return median(ips), median(gf), len(ips)


def main():
    if len(sys.argv) != 2:
        raise SystemExit("usage: compare.py RESULTS.csv")
    groups = defaultdict(list)
    with open(sys.argv[1]) as f:
        for r in csv.DictReader(f):
            key = (r["device"], r["phase"], r["precision"], int(r["filters"]), int(r["batch"]))
            groups[key].append(r)
    print(f"{'device':<6} {'phase':<6} {'precision':<11} {'f':>3} {'batch':>5} {'mixseg img/s':>13} "
          f"{'GFLOP/s':>8} {'best peer (median)':<32} {'img/s':>8} {'ratio':>6} {'paired (range)':>20}")
    for key in sorted(groups):
        rows = groups[key]
        ours = [r for r in rows if r["framework"] == "mixseg"]
        peers = [r for r in rows if r["framework"] != "mixseg"]
        if not ours:
            continue
        mi, m_gflops, n = median_of(ours)
        if peers:
            by_fw = defaultdict(list)
            for r in peers:
                by_fw[f"{r['framework']} {r['framework_version']}"].append(r)
            name, (pi, _, pn) = max(((k, median_of(v)) for k, v in by_fw.items()), key=lambda kv: kv[1][0])
            print(f"{key[0]:<6} {key[1]:<6} {key[2]:<11} {key[3]:>3} {key[4]:>5} {mi:>10.2f} n{n:<2} "
                  f"{m_gflops:>8.1f} {name[:32]:<32} {pi:>8.2f} {mi / pi:>5.2f}x {paired(ours, by_fw):>20}")
        else:
            print(f"{key[0]:<6} {key[1]:<6} {key[2]:<11} {key[3]:>3} {key[4]:>5} {mi:>10.2f} n{n:<2} "
                  f"{m_gflops:>8.1f} {'(no peer row)':<32} {'':>8} {'':>6}")
    precision_ratios(groups)
    conv_ceilings(sys.argv[1] + ".meta.jsonl")


def paired(ours, by_fw):
    """Median and range over rounds k of mixseg's k-th row over the fastest
    peer's k-th row, for the rounds every framework has."""
    rounds = min([len(ours)] + [len(v) for v in by_fw.values()])
    ratios = sorted(float(ours[k]["img_per_s"]) / max(float(v[k]["img_per_s"]) for v in by_fw.values())
                    for k in range(rounds))
    if not ratios:
        return ""
    return f"{median(ratios):.2f}x {ratios[0]:.2f}-{ratios[-1]:.2f} n{len(ratios)}"


def precision_ratios(groups):
    """mixseg's precisions over its fp32, paired round by round (see the module doc)."""
    by_config = defaultdict(dict)
    for (device, phase, precision, f, b), rows in groups.items():
        ours = [float(r["img_per_s"]) for r in rows if r["framework"] == "mixseg"]
        if ours:
            by_config[(device, phase, f, b)][precision] = ours
    lines = []
    for key in sorted(by_config):
        fp32 = by_config[key].get("fp32")
        if not fp32:
            continue
        for precision, ips in sorted(by_config[key].items()):
            if precision == "fp32":
                continue
            ratios = sorted(a / b for a, b in zip(ips, fp32))
            if not ratios:
                continue
            lines.append(f"{key[0]:<6} {key[1]:<6} {precision:<11} {key[2]:>3} {key[3]:>5} {median(ratios):>8.2f}x "
                         f"{ratios[0]:>6.2f}-{ratios[-1]:.2f}  n{len(ratios)}")
    if lines:
        print()
        print("mixseg's precisions over its fp32 (median of per-round ratios, range, rounds):")
        print(f"{'device':<6} {'phase':<6} {'precision':<11} {'f':>3} {'batch':>5} {'ratio':>9} {'range':>11}")
        print("\n".join(lines))


def conv_ceilings(meta_path):
    """mixseg's steps against their convolutions alone (medians over runs)."""
    if not os.path.exists(meta_path):
        return
    found = defaultdict(list)
    with open(meta_path) as f:
        for line in f:
            if not line.strip():
                continue
            run = json.loads(line)
            for r in run.get("rows", []):
                if "conv_ceiling_tflops" in r and "share_of_conv_ceiling" in r:
                    key = (run.get("device", "?"), r["phase"], r["precision"], int(r["filters"]), int(r["batch"]))
                    found[key].append((float(r["conv_ceiling_tflops"]), float(r["share_of_conv_ceiling"])))
    if not found:
        return
    print()
    print("mixseg's step against its convolutions alone (TFLOP/s, medians; the rest of the step is memory-bound "
          "ops, launches, optimizer):")
    print(f"{'device':<6} {'phase':<6} {'precision':<11} {'f':>3} {'batch':>5} {'step':>8} {'convs alone':>12} "
          f"{'share':>6}  n")
    for key in sorted(found):
        v = found[key]
        ceiling, share, step = median([c for c, _ in v]), median([s for _, s in v]), median([c * s for c, s in v])
        print(f"{key[0]:<6} {key[1]:<6} {key[2]:<11} {key[3]:>3} {key[4]:>5} {step:>8.3f} {ceiling:>12.3f} "
              f"{100 * share:>5.0f}%  {len(v)}")


if __name__ == "__main__":
    main()
