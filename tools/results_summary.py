#!/usr/bin/env python3
"""Turns the files scripts/gpu-results wrote into docs/results/<date>-<name>.{json,md}.

Usage: tools/results_summary.py <run dir> <name> "<kernel description>" ["<notes>"]
(<run dir>: the unpacked run/ of scripts/gpu-results' run.tgz.) A run with the Python package's pytest.xml also gets
a "python" entry (pytest counts) and the host-overhead table of tools/bench/py_overhead.py.
JSON form (issue 3): {"commit","gpu","date","op","tests":{"passed","failed"},"cases":[{"name","us","tflops","gbps",
"flashmla_us","ratio"}]}, plus sched_us per case and free-form detail.
"""
import datetime, json, math, pathlib, re, sys

run, name, kernel = pathlib.Path(sys.argv[1]), sys.argv[2], sys.argv[3]
notes = sys.argv[4] if len(sys.argv) > 4 else ""
commit = (run / "commit.txt").read_text().strip()[:7]
gpu = (run / "gpu.txt").read_text().strip()


def gtest_counts(*logs):
    """Per-test counts over the logs that exist (a suite run split in two: <name>.log and <name>-rest.log, the rest
    being the tests the first run's time limit cut off); rc of each run, joined with '+'."""
    passed = failed = 0
    rcs = []
    for log in logs:
        if not (run / log).exists():
            continue
        text = (run / log).read_text()
        passed += len(re.findall(r"^\[       OK \] \S+ \(\d+ ms\)", text, re.M))
        failed += len(re.findall(r"^\[  FAILED  \] \S+ \(\d+ ms\)", text, re.M))
        ran = re.search(r"^rc=(\d+)", text, re.M)
        rcs.append(ran.group(1) if ran else "none")
    return passed, failed, "+".join(rcs)


cpu_p, cpu_f, cpu_rc = gtest_counts("cpu-tests.log")
gpu_p, gpu_f, gpu_rc = gtest_counts("gpu-tests.log", "gpu-tests-rest.log")
san = {}
for tool in ("memcheck", "synccheck", "racecheck"):
    text = (run / f"sanitizer-{tool}.log").read_text()
    m = re.search(r"(ERROR|RACECHECK) SUMMARY: (.*)", text)
    san[tool] = m.group(2).strip() if m else "no summary (did not finish)"
py = None
if (run / "pytest.xml").exists():
    import xml.etree.ElementTree as ET
    suite = ET.parse(run / "pytest.xml").getroot()
    suite = suite if suite.tag == "testsuite" else suite.find("testsuite")
    n, f, e, sk = (int(suite.get(k, 0)) for k in ("tests", "failures", "errors", "skipped"))
    py = {"passed": n - f - e - sk, "failed": f + e, "skipped": sk,
          "skip_reasons": sorted({x.get("message", "") for x in suite.iter("skipped")})}
overhead = (run / "py-overhead.md").read_text().strip() if (run / "py-overhead.md").exists() else ""
cases = json.loads((run / "bench.json").read_text())["cases"]
keep = ("name", "mean_s_k", "us", "us_per_context", "sched_us", "tflops", "gbps", "flashmla_us", "ratio")
cases = [{k: c[k] for k in keep if k in c} for c in cases]
geo = lambda xs: math.exp(sum(math.log(x) for x in xs) / len(xs)) if xs else float("nan")
all_r = [c["ratio"] for c in cases]
big_r = [c["ratio"] for c in cases if c["name"].startswith("b=128 ") and "h_q=128 " in c["name"]]
date = datetime.date.today().isoformat()
detail = (f"CPU suite {cpu_p} passed / {cpu_f} failed (rc {cpu_rc}); GPU suite {gpu_p} passed / {gpu_f} failed "
          f"(rc {gpu_rc}); compute-sanitizer on the smoke subset: " +
          "; ".join(f"{t}: {s}" for t, s in san.items()))
if py:
    detail += (f"; Python package (pip install . + pytest tests/python): {py['passed']} passed / {py['failed']} "
               f"failed / {py['skipped']} skipped" + (f" ({'; '.join(py['skip_reasons'])})" if py["skipped"] else ""))
doc = {"commit": commit, "gpu": gpu, "date": date, "op": "dense_decode", "kernel": kernel,
       "tests": {"passed": cpu_p + gpu_p, "failed": cpu_f + gpu_f, "detail": detail},
       "summary": {"geomean_ratio_all": geo(all_r), "geomean_ratio_b128_hq128": geo(big_r),
                   "best_ratio": min(all_r), "worst_ratio": max(all_r),
                   "cases_within_1.25": sum(r <= 1.25 for r in all_r), "cases": len(all_r)},
       "cases": cases}
if py:
    doc["python"] = py
out = pathlib.Path("docs/results") / f"{date}-{name}"
out.with_suffix(".json").write_text(json.dumps(doc, indent=2) + "\n")
lines = [f"# Dense decode, {kernel}, H200 — {date}", "",
         f"Commit measured: `{commit}`. GPU: {gpu}. Method: end to end per call (main kernel + combine) as one "
         "CUDA-graph replay, schedule built once and reused, 512 MiB memset before each call, CUDA events, median of 30; "
         "since 2026-11-21 (session 9) each case in 3 fresh CUDA contexts (the median of their medians), varlen "
         "lengths at FlashMLA's total (mean s_k).",
         "", f"Tests: {detail}.", "",
         f"Ratio to FlashMLA (us / FlashMLA us): geometric mean {geo(all_r):.2f}x over all {len(all_r)} cases, "
         f"{geo(big_r):.2f}x over the b=128 h_q=128 cases; best {min(all_r):.2f}, worst {max(all_r):.2f}; "
         f"{sum(r <= 1.25 for r in all_r)} of {len(all_r)} cases within the 1.25 target.", ""]
if notes:
    lines += [notes, ""]
if overhead:
    lines += ["Host overhead of the Python API (tools/bench/py_overhead.py: wall time per call over back-to-back calls, one "
              "sync at the end, so a piece whose GPU time exceeds its host time shows the GPU time):", "",
              overhead, ""]
lines += ["| case | mean s_k | us | us per context | sched us | TFLOP/s | GB/s | FlashMLA us | ratio |",
          "|---|---|---|---|---|---|---|---|---|"]
lines += [f"| {c['name']} | {c.get('mean_s_k', float('nan')):.0f} | {c['us']:.1f} | "
          f"{' '.join(f'{u:.1f}' for u in c.get('us_per_context', []))} | {c['sched_us']:.1f} | "
          f"{c['tflops']:.0f} | {c['gbps']:.0f} | {c['flashmla_us']:.1f} | {c['ratio']:.2f} |" for c in cases]
out.with_suffix(".md").write_text("\n".join(lines) + "\n")
print(out.with_suffix(".md").read_text())
