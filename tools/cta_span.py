#!/usr/bin/env python3
"""Reads the CTA spans of a dense decode launch (a -DFLASHMLA_CTA_SPAN build, src/kernels/sm90/dense_decode/trace.cuh)
and prints how the CTAs' end times spread: the kernel's span, the mean and percentiles of the CTAs' busy times, how
much of the span the average SM idles after its CTA finished (the schedule's imbalance), and busy time per tile
against tiles and segments (a least-squares fit of busy = a * tiles + b * segments + c: the real per-segment cost in
tiles, next to the schedule's fixed overhead of 5 blocks).

usage: cta_span.py SPAN_FILE
"""
import argparse
import statistics
import struct

SEGS = 6
WORDS = 8 + 12 * SEGS  # trace.cuh: kSpanWords


def least_squares(xs, ys):
    """Solves the normal equations of ys ~ xs . beta (3 unknowns) by Gaussian elimination."""
    n = len(xs[0])
    m = [[sum(x[i] * x[j] for x in xs) for j in range(n)] + [sum(x[i] * y for x, y in zip(xs, ys))] for i in range(n)]
    for i in range(n):
        p = max(range(i, n), key=lambda r: abs(m[r][i]))
        m[i], m[p] = m[p], m[i]
        for r in range(n):
            if r != i and m[i][i] != 0:
                f = m[r][i] / m[i][i]
                m[r] = [a - f * b for a, b in zip(m[r], m[i])]
    return [m[i][n] / m[i][i] if m[i][i] else 0.0 for i in range(n)]


def segment_costs(ctas):
    """Medians over the CTAs' segments (clock64 of the math warpgroups' first threads, trace.cuh's points): Q wait,
    first QK^T, cycles per pair, and the epilogue's steps; a CTA's first segment apart from the later ones (whose
    tiles were prefetched during the previous segment)."""
    ghz = statistics.median([(c["clk1"] - c["clk0"]) / (c["end0"] - c["start"]) for c in ctas
                             if c["tiles"] > 0 and c["end0"] > c["start"]])
    names = ["Q wait", "first QK^T", "per pair", "wg1 loop end - wg0's", "wg0 row sums wait", "wg0 O store",
             "wg0 lse store", "wg1 row sums wait", "wg1 O store", "epilogue (wg0)"]
    rows = {True: [], False: []}
    for c in ctas:
        for k, sg in enumerate(c["seg"]):
            p = sg
            tiles = p[7]
            if tiles == 0 or not (p[0] <= p[1] <= p[2] <= p[3] <= p[4] <= p[5] <= p[6]) or not (p[8] <= p[9] <= p[10]):
                continue
            pairs = (tiles + 1) // 2
            rows[k == 0].append((p[1] - p[0], p[2] - p[1], (p[3] - p[2]) / pairs, p[8] - p[3], p[4] - p[3],
                                 p[5] - p[4], p[6] - p[5], p[9] - p[8], p[10] - p[9], p[6] - p[3], tiles))
    print("segments (cycles, SM clock %.2f GHz; medians):" % ghz)
    for first in (True, False):
        r = rows[first]
        if not r:
            continue
        m = [statistics.median(x[i] for x in r) for i in range(len(names) + 1)]
        print("  %s segments (n=%d, median tiles %d): " % ("first" if first else "later", len(r), m[-1]) +
              ", ".join("%s %.0f" % (n, v) for n, v in zip(names, m)) +
              "; prologue + epilogue = %.2f pairs" % ((m[0] + m[1] + m[9]) / m[2]))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("file")
    args = ap.parse_args()
    data = open(args.file, "rb").read()
    w = struct.unpack("<%dQ" % (len(data) // 8), data)
    ctas = []
    for i in range(len(w) // WORDS):
        r = w[i * WORDS:(i + 1) * WORDS]
        if r[0] == 0:
            break
        info = r[6]
        c = dict(start=r[0], end=max(r[1], r[2]), end0=r[1], end1=r[2], sm=info >> 48,
                 segs=(info >> 32) & 0xFFFF, tiles=info & 0xFFFFFFFF, clk0=r[3], clk1=r[4])
        c["seg"] = [r[8 + 12 * k:8 + 12 * k + 12] for k in range(min(SEGS, c["segs"]))]
        ctas.append(c)
    if not ctas:
        print("no CTAs recorded")
        return
    t0 = min(c["start"] for c in ctas)
    t1 = max(c["end"] for c in ctas)
    span = (t1 - t0) / 1000.0
    busy = [(c["end"] - c["start"]) / 1000.0 for c in ctas]
    ends = sorted((c["end"] - t0) / 1000.0 for c in ctas)
    starts = sorted((c["start"] - t0) / 1000.0 for c in ctas)
    q = lambda xs, f: xs[min(len(xs) - 1, int(f * len(xs)))]
    print("CTAs %d, kernel span %.1f us (first start to last end)" % (len(ctas), span))
    print("starts: median %.2f us, max %.2f us after the first" % (statistics.median(starts), starts[-1]))
    print("ends:   min %.1f  p10 %.1f  median %.1f  p90 %.1f  max %.1f us" %
          (ends[0], q(ends, 0.1), statistics.median(ends), q(ends, 0.9), ends[-1]))
    print("busy:   mean %.1f us; idle after the end, averaged over CTAs: %.1f us (%.1f%% of the span)" %
          (statistics.mean(busy), span - statistics.mean(ends), 100.0 * (span - statistics.mean(ends)) / span))
    tiles = [c["tiles"] for c in ctas]
    segs = [c["segs"] for c in ctas]
    print("tiles per CTA: min %d median %d max %d; segments: min %d max %d" %
          (min(tiles), statistics.median(tiles), max(tiles), min(segs), max(segs)))
    # Least squares busy = a * tiles + b * segs + c over the CTAs with work.
    rows = [(c["tiles"], c["segs"], (c["end"] - c["start"]) / 1000.0) for c in ctas if c["tiles"] > 0]
    if len(rows) >= 3 and len(set(r[1] for r in rows)) > 1:
        a, b, c = least_squares([(t, s, 1.0) for t, s, _ in rows], [y for _, _, y in rows])
        res = [y - (a * t + b * s + c) for t, s, y in rows]
        print("fit: busy = %.4f us/tile * tiles + %.3f us/segment * segments + %.2f us (residual sd %.2f us); "
              "a segment costs %.1f tiles" % (a, b, c, statistics.pstdev(res), b / a))
    segment_costs(ctas)
    # The latest CTAs.
    late = sorted(ctas, key=lambda c: -c["end"])[:5]
    for c in late:
        print("  late: end %.1f us start %.2f tiles %d segs %d sm %d (wg0 end %.1f, wg1 end %.1f)" %
              ((c["end"] - t0) / 1000.0, (c["start"] - t0) / 1000.0, c["tiles"], c["segs"], c["sm"],
               (c["end0"] - t0) / 1000.0, (c["end1"] - t0) / 1000.0))


if __name__ == "__main__":
    main()
