"""flash_mla_with_kvcache (dense decode) on the GPU against flash_mla.testing.ref_dense_decode (float32)."""
import random

import pytest

from conftest import needs_gpu

torch = pytest.importorskip("torch", reason="PyTorch is not installed (the flash_mla API is torch ops)")

import flash_mla  # noqa: E402
from flash_mla import testing  # noqa: E402
from dense_cases import make_dense  # noqa: E402

pytestmark = needs_gpu

HEAD_PAIRS = [(1, 1), (3, 1), (9, 3), (16, 1), (16, 2), (63, 3), (64, 1), (64, 8), (126, 2), (128, 1), (128, 8)]


def sampled_grid(n=24, seed=2026):
    """A seeded sample of the spec's dense grid: b {1,2,6,64} x s_q {1,2,4} x s_k {20,140,4096} x head pairs x
    varlen x causal, plus the corners every run keeps (b=1 s_k=20, b=64 s_k=4096 h_q=128)."""
    full = [(b, s_q, s_k, h_q, h_kv, varlen, causal)
            for b in (1, 2, 6, 64) for s_q in (1, 2, 4) for s_k in (20, 140, 4096) for h_q, h_kv in HEAD_PAIRS
            for varlen in (False, True) for causal in (False, True)]
    picked = random.Random(seed).sample(full, n)
    return [(1, 1, 20, 1, 1, False, False), (64, 2, 4096, 128, 1, True, True)] + picked


def run_and_check(inp, meta=None, **kw):
    if meta is None:
        meta, _ = flash_mla.get_mla_metadata()
    out, lse = flash_mla.flash_mla_with_kvcache(inp.q, inp.k_cache, inp.block_table, inp.cache_seqlens, 512, meta,
                                                causal=inp.causal, **kw)
    ref_out, ref_lse = testing.ref_dense_decode(inp.q, inp.k_cache, inp.block_table, inp.cache_seqlens, 512,
                                                causal=inp.causal)
    testing.check_close("out", out, ref_out, **testing.DENSE_OUT_TOL)
    testing.check_close("lse", lse, ref_lse, **testing.DENSE_LSE_TOL)
    return out, lse


@pytest.mark.parametrize("b,s_q,s_k,h_q,h_kv,varlen,causal", sampled_grid())
def test_matches_reference(b, s_q, s_k, h_q, h_kv, varlen, causal):
    inp = make_dense(b, s_q, s_k, h_q, h_kv, varlen=varlen, causal=causal,
                     seed=hash((b, s_q, s_k, h_q, h_kv, varlen, causal)) % 10007)
    out, lse = run_and_check(inp)
    assert out.shape == (b, s_q, h_q, 512) and out.dtype == torch.bfloat16 and out.is_contiguous()
    assert lse.shape == (b, h_q, s_q) and lse.dtype == torch.float32


@pytest.mark.parametrize("page", [16, 32, 64, 128, 33])
def test_page_sizes(page):
    run_and_check(make_dense(4, 2, 300, 16, 1, varlen=True, causal=True, page=page, seed=page))


def test_fp16_and_padded_strides():
    inp = make_dense(3, 2, 500, 32, 2, varlen=True, dtype=torch.float16, pad=True, seed=5)
    assert not inp.q.is_contiguous() and not inp.k_cache.is_contiguous()
    out, _ = run_and_check(inp)
    assert out.dtype == torch.float16


def test_empty_and_short_requests():
    # lengths 0 (out 0, lse +inf), shorter than s_q under causal (early rows see nothing), exactly one block.
    inp = make_dense(4, 4, 0, 16, 1, causal=True, lens=[0, 2, 64, 130], seed=9)
    out, lse = run_and_check(inp)
    assert torch.all(out[0] == 0) and torch.all(torch.isposinf(lse[0]))
    assert torch.all(torch.isposinf(lse[1, :, :2])) and torch.all(torch.isfinite(lse[1, :, 2:]))


def test_lazy_metadata_is_built_once_and_reused():
    inp = make_dense(6, 1, 700, 64, 1, varlen=True, seed=11)
    meta, none = flash_mla.get_mla_metadata()
    assert none is None and isinstance(meta, flash_mla.FlashMLASchedMeta) and not meta.have_initialized
    out1, _ = run_and_check(inp, meta)
    assert meta.have_initialized and meta.tile_scheduler_metadata.shape[1] == 8
    assert meta.num_splits.shape == (7,) and meta.config.b == 6 and meta.config.page_block_size == 64
    sched = meta.tile_scheduler_metadata
    out2, _ = run_and_check(inp, meta)  # second layer of the step: the same schedule tensor, the same result
    assert meta.tile_scheduler_metadata is sched
    assert torch.equal(out1, out2)


def test_lazy_metadata_rejects_another_config():
    inp = make_dense(2, 1, 100, 16, 1, seed=12)
    meta, _ = flash_mla.get_mla_metadata()
    run_and_check(inp, meta)
    other = make_dense(2, 2, 100, 16, 1, seed=13)
    with pytest.raises(ValueError, match=r"tile_scheduler_metadata: s_q must be equal to 1 .* got 2"):
        flash_mla.flash_mla_with_kvcache(other.q, other.k_cache, other.block_table, other.cache_seqlens, 512, meta)
    with pytest.raises(ValueError, match=r"tile_scheduler_metadata: causal must be equal to False"):
        flash_mla.flash_mla_with_kvcache(inp.q, inp.k_cache, inp.block_table, inp.cache_seqlens, 512, meta,
                                         causal=True)


def test_old_and_new_metadata_forms_agree():
    inp = make_dense(8, 2, 2000, 128, 1, varlen=True, causal=True, seed=14)
    meta, _ = flash_mla.get_mla_metadata()
    new_out, new_lse = run_and_check(inp, meta)
    sched, splits = flash_mla.get_mla_metadata(inp.cache_seqlens, 2 * 128 // 1, 1)
    assert sched.dtype == torch.int32 and sched.shape == meta.tile_scheduler_metadata.shape
    assert torch.equal(sched, meta.tile_scheduler_metadata) and torch.equal(splits, meta.num_splits)
    old_out, old_lse = flash_mla.flash_mla_with_kvcache(inp.q, inp.k_cache, inp.block_table, inp.cache_seqlens, 512,
                                                        sched, splits, causal=True)
    assert torch.equal(old_out, new_out) and torch.equal(old_lse, new_lse)


def test_eager_metadata_built_for_fewer_parts():
    # An eager schedule does not know the page size; a page size that picks the other kernel still runs with it.
    inp = make_dense(5, 1, 400, 16, 1, varlen=True, page=33, seed=15)
    sched, splits = flash_mla.get_mla_metadata(inp.cache_seqlens, 16, 1)
    out, lse = flash_mla.flash_mla_with_kvcache(inp.q, inp.k_cache, inp.block_table, inp.cache_seqlens, 512, sched,
                                                splits)
    ref_out, ref_lse = testing.ref_dense_decode(inp.q, inp.k_cache, inp.block_table, inp.cache_seqlens)
    testing.check_close("out", out, ref_out, **testing.DENSE_OUT_TOL)
    testing.check_close("lse", lse, ref_lse, **testing.DENSE_LSE_TOL)


def test_deterministic():
    inp = make_dense(8, 2, 3000, 128, 1, varlen=True, seed=16)
    meta, _ = flash_mla.get_mla_metadata()
    a = flash_mla.flash_mla_with_kvcache(inp.q, inp.k_cache, inp.block_table, inp.cache_seqlens, 512, meta)
    b = flash_mla.flash_mla_with_kvcache(inp.q, inp.k_cache, inp.block_table, inp.cache_seqlens, 512, meta)
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])


def test_cuda_graph_capture_and_replay():
    inp = make_dense(16, 1, 2000, 64, 1, varlen=True, seed=17)
    eager, eager_lse = run_and_check(inp)
    stream = torch.cuda.Stream()
    stream.wait_stream(torch.cuda.current_stream())
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.stream(stream):
        with torch.cuda.graph(graph, stream=stream):
            meta, _ = flash_mla.get_mla_metadata()  # the schedule kernel is captured with the first layer
            out1, lse1 = flash_mla.flash_mla_with_kvcache(inp.q, inp.k_cache, inp.block_table, inp.cache_seqlens, 512,
                                                          meta)
            out2, _ = flash_mla.flash_mla_with_kvcache(inp.q, inp.k_cache, inp.block_table, inp.cache_seqlens, 512,
                                                       meta)
    torch.cuda.current_stream().wait_stream(stream)
    out1.fill_(float("nan")), lse1.fill_(float("nan")), out2.fill_(float("nan"))
    graph.replay()
    torch.cuda.synchronize()
    assert torch.equal(out1, eager) and torch.equal(lse1, eager_lse) and torch.equal(out2, eager)
    # New inputs copied into the captured buffers change the result accordingly.
    new = make_dense(16, 1, 2000, 64, 1, varlen=True, seed=18, lens=inp.cache_seqlens.tolist())
    inp.q.copy_(new.q)
    graph.replay()
    torch.cuda.synchronize()
    ref_out, _ = testing.ref_dense_decode(inp.q, inp.k_cache, inp.block_table, inp.cache_seqlens)
    testing.check_close("out after replay with new q", out1, ref_out, **testing.DENSE_OUT_TOL)


def test_torch_compile_fullgraph():
    inp = make_dense(4, 2, 900, 16, 1, varlen=True, causal=True, seed=19)

    def step(q, k_cache, block_table, cache_seqlens):
        meta, _ = flash_mla.get_mla_metadata()
        out, lse = flash_mla.flash_mla_with_kvcache(q, k_cache, block_table, cache_seqlens, 512, meta, causal=True)
        out2, _ = flash_mla.flash_mla_with_kvcache(q * 2, k_cache, block_table, cache_seqlens, 512, meta, causal=True)
        return out.float() + out2.float(), lse

    torch._dynamo.reset()
    compiled = torch.compile(step, fullgraph=True)
    got, lse = compiled(inp.q, inp.k_cache, inp.block_table, inp.cache_seqlens)
    want, want_lse = step(inp.q, inp.k_cache, inp.block_table, inp.cache_seqlens)
    assert torch.equal(got, want) and torch.equal(lse, want_lse)


def test_second_stream():
    inp = make_dense(8, 1, 1500, 32, 1, varlen=True, seed=20)
    eager, eager_lse = run_and_check(inp)
    side = torch.cuda.Stream()
    side.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(side):
        # q2 gets its values only after a long kernel on the side stream: an op launched on any other stream would
        # run at once and read zeros.
        q2 = torch.zeros_like(inp.q)
        torch.cuda._sleep(100_000_000)
        q2.copy_(inp.q)
        meta, _ = flash_mla.get_mla_metadata()
        out, lse = flash_mla.flash_mla_with_kvcache(q2, inp.k_cache, inp.block_table, inp.cache_seqlens, 512, meta)
    side.synchronize()
    assert torch.equal(out, eager) and torch.equal(lse, eager_lse)


def test_checked_mode_accepts_good_input():
    inp = make_dense(3, 1, 200, 16, 1, varlen=True, seed=21)
    run_and_check(inp, check=True)


def test_opcheck_registrations():
    inp = make_dense(2, 1, 100, 16, 1, seed=22)
    sched, splits = torch.ops.flash_mla.get_mla_metadata(inp.cache_seqlens, 16, 1, 64)
    torch.library.opcheck(torch.ops.flash_mla.get_mla_metadata.default, (inp.cache_seqlens, 16, 1, 64))
    torch.library.opcheck(torch.ops.flash_mla.dense_decode.default,
                          (inp.q, inp.k_cache, inp.block_table, inp.cache_seqlens, sched, splits, 512, 576 ** -0.5,
                           False, None))
