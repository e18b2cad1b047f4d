#!/usr/bin/env python3
"""Reads a dense decode timeline trace (a -DFLASHMLA_TRACE build, src/kernels/sm90/dense_decode/trace.cuh) and prints
where the traced CTAs wait and how long each KV refill takes from its release to its use. With --pairs, also the
median timeline of a steady-state pair: when each math warpgroup reaches each step, in cycles from the moment warpgroup
0's S_A is in registers (its pair start), which shows how the two warpgroups' QK^T, softmax and PV interleave.

usage: trace_timeline.py TRACE_FILE [--ghz 1.98] [--pairs]
"""
import argparse
import statistics
import struct
from collections import defaultdict

CTAS, ROLES, CAP = 2, 5, 16384
ROLE_NAMES = ["wg0", "wg1", "producer0", "producer1", "observer"]
BAR_NAMES = {1: "RowsA", 2: "RowsB", 3: "PA", 4: "PB"}
CHUNKS, P_CHUNK = 9, 8


def group_of(stage, chunk):
    """Chunk group (0 own, 1 other) of `chunk` in `stage` (config.cuh: group_v_chunk0(stage, grp) = 4 * (stage ^ grp))."""
    if chunk == P_CHUNK:
        return 1
    return 0 if chunk // 4 == stage else 1


def load(path):
    data = open(path, "rb").read()
    words = struct.unpack("<%dQ" % (len(data) // 8), data)
    trace = []
    for cta in range(CTAS):
        roles = []
        for role in range(ROLES):
            base = (cta * ROLES + role) * CAP
            events = []
            for w in words[base:base + CAP]:
                if w == 0:
                    break
                events.append((w >> 48, w & 0xFFFFFFFFFFFF))
            roles.append(events)
        trace.append(roles)
    return trace


def med(xs):
    return statistics.median(xs) if xs else float("nan")


def analyse(roles, ghz):
    us = lambda cyc: cyc / ghz / 1000.0
    all_t = [t for r in roles for _, t in r]
    if not all_t:
        print("  (no events)")
        return
    t0, t1 = min(all_t), max(all_t)
    print("  span %.1f us, events per role: %s" % (us(t1 - t0), ", ".join(
        "%s %d" % (ROLE_NAMES[i], len(r)) for i, r in enumerate(roles))))

    # Waits of the math warpgroups.
    for wg in range(2):
        ev = roles[wg]
        waits = defaultdict(list)
        open_at = {}
        pairs = sum(1 for e, _ in ev if e == 1)
        for e, t in ev:
            if 16 <= e < 16 + CHUNKS:
                open_at[("qk", e - 16)] = t
            elif 32 <= e < 32 + CHUNKS and ("qk", e - 32) in open_at:
                waits["qk chunk %d" % (e - 32)].append(t - open_at.pop(("qk", e - 32)))
            elif 64 <= e < 72:
                open_at[("bar", e - 64)] = t
            elif 72 <= e < 80 and ("bar", e - 72) in open_at:
                waits["sync %s" % BAR_NAMES.get(e - 72, e - 72)].append(t - open_at.pop(("bar", e - 72)))
            elif e == 80:
                open_at["pv"] = t
            elif e == 81 and "pv" in open_at:
                waits["pv_wait"].append(t - open_at.pop("pv"))
        total = sum(sum(v) for v in waits.values())
        print("  %s: %d pairs; waits %.1f us of %.1f (%.0f%%)" % (ROLE_NAMES[wg], pairs, us(total), us(t1 - t0),
                                                                100.0 * total / max(1, t1 - t0)))
        for k in sorted(waits, key=lambda k: -sum(waits[k])):
            v = waits[k]
            if sum(v) < 0.005 * (t1 - t0):
                continue
            print("    %-14s total %7.1f us  n %5d  median %6.0f cyc  p90 %6.0f cyc" %
                  (k, us(sum(v)), len(v), med(v), sorted(v)[int(0.9 * (len(v) - 1))]))

    # Refill pipeline per (stage, group), from each release (traced on thread 0 of the releasing warpgroup): the
    # producer sees it, has issued the group's TMAs, the last chunk of the group has landed (observer); against the
    # lead: when the QK^T that reads the group first waits for it.
    obs = roles[4]
    for st in range(2):
        prod = roles[2 + st]
        seen = {g: [t for e, t in prod if e == 86 + g] for g in range(2)}
        issued = {g: [t for e, t in prod if e == 88 + g] for g in range(2)}
        landed = defaultdict(list)
        for e, t in obs:
            if 96 + 16 * st <= e < 96 + 16 * st + CHUNKS:
                landed[e - 96 - 16 * st].append(t)
        need = defaultdict(list)
        for e, t in roles[st]:  # warpgroup st computes QK^T of stage st
            if 16 <= e < 16 + CHUNKS:
                need[e - 16].append(t)
        after = lambda ts, t0: min((t for t in ts if t >= t0), default=None)
        for grp in range(2):
            chunks = [c for c in range(CHUNKS) if group_of(st, c) == grp]
            first_needed = 4 * st if grp == 0 else 4 * (1 - st)
            rows = defaultdict(list)
            for wg in range(2):
                for e, r_t in roles[wg]:
                    if e != 48 + 2 * st + grp:
                        continue
                    s_t = after(seen[grp], r_t)
                    i_t = after(issued[grp], s_t) if s_t is not None else None
                    l_ts = [after(landed[c], i_t) for c in chunks] if i_t is not None else [None]
                    n_t = after(need[first_needed], r_t)
                    if s_t is None or i_t is None or None in l_ts or n_t is None:
                        continue
                    rows["seen"].append(s_t - r_t)
                    rows["issued"].append(i_t - r_t)
                    rows["landed"].append(max(l_ts) - r_t)
                    rows["needed"].append(n_t - r_t)
            print("  stage %d group %-5s (n %3d): from its release, the producer sees it at %5.0f, has issued at %5.0f, "
                  "all landed at %5.0f; QK^T needs it at %5.0f cycles (medians)" %
                  (st, "own" if grp == 0 else "other", len(rows["seen"]), med(rows["seen"]), med(rows["issued"]),
                   med(rows["landed"]), med(rows["needed"])))


STEP_NAMES = {1: "start", 3: "qk_issue", 4: "pv_own_issued", 5: "pv_other_issued", 80: "pv_wait<", 81: "pv_wait>",
              65: "rowsA<", 73: "rowsA>", 66: "rowsB<", 74: "rowsB>", 67: "PA<", 75: "PA>", 68: "PB<", 76: "PB>",
              8: "maxed", 9: "published", 10: "exp_done"}


def pair_timeline(roles):
    """Median cycle of each math warpgroup's steps (first occurrence per pair), relative to warpgroup 0's pair start,
    over the pairs of the traced CTA away from its first and last four."""
    def split(ev):
        out = []
        for e, t in ev:
            if e == 1:
                out.append([])
            if out:
                out[-1].append((e, t))
        return out
    p = [split(roles[0]), split(roles[1])]
    n = min(len(p[0]), len(p[1]))
    if n < 12:
        print("  (too few pairs for a timeline)")
        return
    for wg in range(2):
        at = defaultdict(list)
        for k in range(4, n - 4):
            t0, seen = p[0][k][0][1], set()
            for e, t in p[wg][k]:
                name = "release s%d %s" % ((e - 48) // 2, ("own", "other")[(e - 48) % 2]) if 48 <= e < 52 else \
                    STEP_NAMES.get(e)
                if name is None or name in seen:
                    continue
                seen.add(name)
                at[name].append(t - t0)
        steps = sorted(at, key=lambda k: med(at[k]))
        print("  %s: %s" % (ROLE_NAMES[wg], ", ".join("%s %.0f" % (k, med(at[k])) for k in steps)))
    period = [p[0][k + 1][0][1] - p[0][k][0][1] for k in range(4, n - 5)]
    print("  pair period (wg0 start to start): median %.0f cycles" % med(period))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("trace")
    ap.add_argument("--ghz", type=float, default=1.98)
    ap.add_argument("--pairs", action="store_true", help="also the median timeline of a steady-state pair")
    a = ap.parse_args()
    for cta, roles in enumerate(load(a.trace)):
        print("CTA %d" % cta)
        analyse(roles, a.ghz)
        if a.pairs:
            pair_timeline(roles)


if __name__ == "__main__":
    main()
