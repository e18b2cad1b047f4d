#!/usr/bin/env python3
"""Where a kernel's warps spend their time, from ncu's per-instruction source counters, for comparing two kernels.

Input: the CSV of `ncu -i REPORT --page source --print-source sass --csv` for a report taken with
`--section SourceCounters --section WarpStateStats` (one kernel launch). Prints:
  - warp-state samples by site class: mbarrier waits on the KV transaction barriers (a shared-memory address range),
    other mbarrier waits, wgmma waits (WARPGROUP.DEPBAR), wgmma issue, named barriers, the retry/sleep tail blocks,
    everything else; with the top stall reasons of each class;
  - the instruction-fetch (no_inst) stalls and where they sit;
  - executed instructions by opcode, per warp and pair when --per N is given (N = warps x pairs, e.g. 132 * 8 * 124).

usage: ncu_sass_breakdown.py CSV --kv-barriers 0x36210-0x36298 [--per N] [--top 12]
The KV barrier range is the byte range of the kernel's kv_full barriers in shared memory (read it off the SASS: the
SYNCS.PHASECHK operands before the QK^T wgmma). docs/results/raw/2026-11-21-side-by-side-experiments.txt has an example.
"""
import argparse
import csv
import re
from collections import Counter, defaultdict


def load(path):
    rows = list(csv.reader(open(path)))
    header = next(i for i, r in enumerate(rows) if r and r[0] == "Address")
    hdr = rows[header]
    data = [r for r in rows[header + 1:] if len(r) == len(hdr)]
    return hdr, data


def opcode(src):
    parts = src.split()
    if not parts:
        return "?"
    op = parts[1] if parts[0].startswith("@") and len(parts) > 1 else parts[0]
    return op


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("csv")
    ap.add_argument("--kv-barriers", required=True, help="lo-hi shared-memory byte range of the KV barriers (hex)")
    ap.add_argument("--per", type=float, default=0, help="divide executed instructions by this (warps x pairs)")
    ap.add_argument("--top", type=int, default=12)
    a = ap.parse_args()
    lo, hi = (int(x, 16) for x in a.kv_barriers.split("-"))
    hdr, data = load(a.csv)
    col = {h: i for i, h in enumerate(hdr)}
    src = [r[col["Source"]].strip() for r in data]
    samples = [int(r[col["Warp Stall Sampling (All Samples)"]] or 0) for r in data]
    executed = [int(r[col["Instructions Executed"]] or 0) for r in data]
    reasons = [h for h in hdr if h.startswith("stall_") and "Not Issued" not in h]

    wait_class = {}
    for k, s in enumerate(src):
        if "SYNCS.PHASECHK" not in s:
            continue
        m = re.search(r"\+(0x[0-9a-f]+)\]", s)
        addr = int(m.group(1), 16) if m else -1
        c = "kv barrier wait" if lo <= addr <= hi else "other mbarrier wait"
        wait_class[k] = c
        for j in range(k + 1, min(k + 4, len(src))):  # the branch that retries the wait
            if "BRA" in src[j]:
                wait_class[j] = c
                break
    last_exit = max((k for k, s in enumerate(src) if re.search(r"\bEXIT\b", s)), default=len(src))

    classes, why = Counter(), defaultdict(Counter)
    for k, s in enumerate(src):
        op = opcode(s)
        if k in wait_class:
            c = wait_class[k]
        elif k > last_exit or op.startswith("NANOSLEEP"):
            c = "retry/sleep tail"
        elif op.startswith("WARPGROUP.DEPBAR"):
            c = "wgmma wait (DEPBAR)"
        elif op.startswith("HGMMA"):
            c = "wgmma issue"
        elif op.startswith("BAR"):
            c = "named barrier"
        else:
            c = "other instructions"
        classes[c] += samples[k]
        for r in reasons:
            why[c][r] += int(data[k][col[r]] or 0)
    total = sum(samples)
    print(f"{a.csv}: {total} warp-state samples")
    for c, v in classes.most_common():
        top = ", ".join(f"{r[6:]} {100 * n / max(1, sum(why[c].values())):.0f}%" for r, n in why[c].most_common(3))
        print(f"  {c:22s} {v:7d} ({100 * v / max(1, total):4.1f}%)  [{top}]")

    no_inst = [int(r[col["stall_no_inst"]] or 0) for r in data]
    print(f"instruction-fetch (no_inst) stalls: {sum(no_inst)} samples; largest sites:")
    for v, k in sorted(((v, k) for k, v in enumerate(no_inst)), reverse=True)[:a.top]:
        print(f"  {v:6d}  #{k:5d}  {src[k][:60]:60s} after: {src[k - 1][:40] if k else ''}")

    ops = Counter()
    for k, s in enumerate(src):
        ops[opcode(s).split(".")[0]] += executed[k]
    div = a.per if a.per > 0 else 1.0
    print(f"executed instructions: {sum(executed)}" + (f" ({sum(executed) / div:.1f} per unit of --per)" if a.per else ""))
    for op, n in ops.most_common(a.top * 2):
        print(f"  {op:12s} {n / div:12.1f}")


if __name__ == "__main__":
    main()
