#!/usr/bin/env python3
"""Host overhead of the Python API: wall time per flash_mla_with_kvcache call issued eagerly (torch op dispatch,
argument checks, planning, output allocation, launches) against the same call replayed from a CUDA graph, for a small
decode shape where the GPU time is short. Prints a markdown table. Needs an sm_90 GPU."""
import statistics
import sys
import time

import torch

import flash_mla

sys.path.insert(0, __file__.rsplit("/tools/", 1)[0] + "/tests/python")
from dense_cases import make_dense  # noqa: E402


def per_call_us(fn, n=300, reps=7):
    out = []
    for _ in range(reps):
        torch.cuda.synchronize()
        t0 = time.perf_counter()
        for _ in range(n):
            fn()
        torch.cuda.synchronize()
        out.append((time.perf_counter() - t0) / n * 1e6)
    return statistics.median(out)


def _enter_exit(ctx):
    with ctx:
        pass


def breakdown():
    """Host time of the pieces of one eager dense_decode call (b=1 s_k=1024 h_q=16), to find where it goes."""
    from flash_mla import _C, _ops

    inp = make_dense(1, 1, 1024, 16, 1, seed=1)
    meta, _ = flash_mla.get_mla_metadata()
    flash_mla.flash_mla_with_kvcache(inp.q, inp.k_cache, inp.block_table, inp.cache_seqlens, 512, meta)
    out = torch.empty((1, 1, 16, 512), dtype=inp.q.dtype, device="cuda")
    lse = torch.empty((1, 16, 1), dtype=torch.float32, device="cuda")
    d = _ops._desc
    descs = (d(inp.q, "q"), d(inp.k_cache, "k"), d(inp.block_table, "b"), d(inp.cache_seqlens, "c"), d(out, "o"),
             d(lse, "l"))
    call = _C.plan_dense_decode(*descs, 512, 0.04, False, meta.tile_scheduler_metadata.shape[0])
    ws = torch.empty((call.workspace_bytes,), dtype=torch.uint8, device="cuda")
    md, sd = d(meta.tile_scheduler_metadata, "m"), d(meta.num_splits, "s")
    stream = torch.cuda.current_stream().cuda_stream
    @torch.library.custom_op("flash_mla_bench::noop", mutates_args=())
    def noop(x: torch.Tensor) -> torch.Tensor:
        return x.new_empty(0)

    noop.register_fake(lambda x: x.new_empty(0))
    parts = {
        "3 x torch.empty": lambda: (torch.empty((1, 1, 16, 512), dtype=torch.bfloat16, device="cuda"),
                                    torch.empty((1, 16, 1), dtype=torch.float32, device="cuda"),
                                    torch.empty((4096,), dtype=torch.uint8, device="cuda")),
        "8 x _desc": lambda: [d(inp.q, "q") for _ in range(8)],
        "_C.plan_dense_decode": lambda: _C.plan_dense_decode(*descs, 512, 0.04, False, 132),
        "_C.dense_decode_run (2 launches)": lambda: _C.dense_decode_run(call, md, sd, ws.data_ptr(), stream),
        "torch.cuda.device(...) enter/exit": lambda: _enter_exit(torch.cuda.device(inp.q.device)),
        "current_stream().cuda_stream": lambda: torch.cuda.current_stream().cuda_stream,
        "check_hopper + checked_mode": lambda: (_ops.check_hopper(inp.q.device), _ops.checked_mode(None)),
        "empty custom op dispatch": lambda: torch.ops.flash_mla_bench.noop(inp.q),
    }
    print("| piece of an eager call | us |")
    print("|---|---|")
    for name, fn in parts.items():
        print(f"| {name} | {per_call_us(fn, n=500):.1f} |")
    print()


def main():
    rows = []
    for b, s_k, h_q in ((1, 1024, 16), (32, 4096, 128)):
        inp = make_dense(b, 1, s_k, h_q, 1, seed=1)
        meta, _ = flash_mla.get_mla_metadata()
        args = (inp.q, inp.k_cache, inp.block_table, inp.cache_seqlens, 512, meta)
        flash_mla.flash_mla_with_kvcache(*args)
        eager = per_call_us(lambda: flash_mla.flash_mla_with_kvcache(*args))
        direct = per_call_us(lambda: torch.ops.flash_mla.dense_decode(
            inp.q, inp.k_cache, inp.block_table, inp.cache_seqlens, meta.tile_scheduler_metadata, meta.num_splits,
            512, 576 ** -0.5, False, None))
        g = torch.cuda.CUDAGraph()
        s = torch.cuda.Stream()
        s.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(s), torch.cuda.graph(g, stream=s):
            for _ in range(10):
                flash_mla.flash_mla_with_kvcache(*args)
        torch.cuda.current_stream().wait_stream(s)
        graph = per_call_us(g.replay, n=30) / 10
        rows.append((f"b={b} s_k={s_k} h_q={h_q}", eager, direct, graph))
    breakdown()
    print("| case | eager flash_mla_with_kvcache us/call | eager torch.ops.flash_mla.dense_decode us/call | "
          "CUDA graph replay us/call |")
    print("|---|---|---|---|")
    for r in rows:
        print(f"| {r[0]} | {r[1]:.1f} | {r[2]:.1f} | {r[3]:.1f} |")


if __name__ == "__main__":
    main()
