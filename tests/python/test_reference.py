"""flash_mla.testing (the float32 torch references) against the C++ CPU reference through flash_mla._C: two
independent implementations of each operation and of the FP8 cache formats. Runs on the CPU (no GPU needed)."""
import pytest

from conftest import needs_torch

torch = pytest.importorskip("torch", reason="PyTorch is not installed (the flash_mla API is torch ops)")

from flash_mla import _C, testing  # noqa: E402
from flash_mla._ops import _desc  # noqa: E402
from dense_cases import make_dense  # noqa: E402

pytestmark = needs_torch


def d(t, name="t"):
    return None if t is None else _desc(t, name)


@pytest.mark.parametrize("b,s_q,s_k,h_q,h_kv,causal,page", [
    (2, 1, 150, 16, 1, False, 64), (3, 3, 90, 8, 2, True, 16), (1, 4, 3, 4, 1, True, 33), (2, 2, 0, 2, 1, False, 64),
])
def test_dense_decode_matches_cpp_reference(b, s_q, s_k, h_q, h_kv, causal, page):
    inp = make_dense(b, s_q, s_k, h_q, h_kv, varlen=s_k > 20, causal=causal, page=page, device="cpu", seed=s_k)
    out = torch.empty(b, s_q, h_q, 512, dtype=torch.bfloat16)
    lse = torch.empty(b, h_q, s_q, dtype=torch.float32)
    scale = 576 ** -0.5
    _C.ref_dense_decode(d(inp.q), d(inp.k_cache), d(inp.block_table), d(inp.cache_seqlens), d(out), d(lse), 512,
                        scale, causal)
    ref_out, ref_lse = testing.ref_dense_decode(inp.q, inp.k_cache, inp.block_table, inp.cache_seqlens, 512, scale,
                                                causal)
    testing.check_close("out", out, ref_out, **testing.DENSE_OUT_TOL)
    testing.check_close("lse", lse, ref_lse, **testing.DENSE_LSE_TOL)


@pytest.mark.parametrize("d_qk", [576, 512])
def test_quantize_is_bit_exact_with_cpp(d_qk):
    g = torch.Generator().manual_seed(d_qk)
    kv = (torch.randn(3, 5, 1, d_qk, generator=g) * torch.logspace(-5, 3, d_qk)).to(torch.bfloat16)
    kv[0, 0, 0, :] = 0  # an all-zero token: the 1e-4 floor of the scale
    mine = testing.quantize_kv_cache(kv)
    theirs = torch.zeros_like(mine)
    _C.ref_quantize_kv_cache(d(kv), d(theirs))
    assert torch.equal(mine, theirs)
    # Dequantizing gives back the input to fp8 precision (3 mantissa bits: relative error <= 2^-4 of the tile's
    # scale) and the RoPE dims exactly.
    back = testing.dequantize_kv_cache(mine, d_qk)
    nope = 512 if d_qk == 576 else 448
    assert torch.equal(back[..., nope:], kv[..., nope:].float())
    tile = 128 if d_qk == 576 else 64
    x = kv[..., :nope].float().reshape(3, 5, 1, -1, tile)
    err = (back[..., :nope].reshape(x.shape) - x).abs()
    assert torch.all(err <= x.abs().amax(-1, keepdim=True) / 8 + 1e-30)


@pytest.mark.parametrize("topk_length,attn_sink", [(False, False), (True, True)])
def test_sparse_prefill_matches_cpp_reference(topk_length, attn_sink):
    g = torch.Generator().manual_seed(7)
    s_q, s_kv, h_q, topk = 6, 300, 64, 128
    q = torch.randn(s_q, h_q, 576, generator=g).to(torch.bfloat16)
    kv = torch.randn(s_kv, 1, 576, generator=g).to(torch.bfloat16)
    idx = torch.randint(-20, s_kv + 20, (s_q, 1, topk), generator=g, dtype=torch.int32)  # some invalid
    idx[0] = -1  # a token with nothing to attend
    lengths = torch.randint(0, topk + 1, (s_q,), generator=g, dtype=torch.int32) if topk_length else None
    sink = torch.randn(h_q, generator=g) if attn_sink else None
    if sink is not None:
        sink[0], sink[1] = float("inf"), float("-inf")
    out = torch.empty(s_q, h_q, 512, dtype=torch.bfloat16)
    max_logits = torch.empty(s_q, h_q)
    lse = torch.empty(s_q, h_q)
    _C.ref_sparse_prefill(d(q), d(kv), d(idx), d(sink), d(lengths), d(out), d(max_logits), d(lse), 512, 0.05)
    r_out, r_max, r_lse = testing.ref_sparse_prefill(q, kv, idx, 0.05, 512, sink, lengths)
    testing.check_close("out", out, r_out, **testing.PREFILL_OUT_TOL)
    testing.check_close("max_logits", max_logits, r_max, **testing.PREFILL_LSE_TOL)
    testing.check_close("lse", lse, r_lse, **testing.PREFILL_LSE_TOL)
    assert torch.all(torch.isposinf(r_lse[0])) and torch.all(r_out[0] == 0)


@pytest.mark.parametrize("d_qk,extra", [(576, False), (512, False), (512, True)])
def test_sparse_decode_matches_cpp_reference(d_qk, extra):
    g = torch.Generator().manual_seed(d_qk + extra)
    b, s_q, h_q, page, nb, topk = 2, 2, 64, 61, 5, 128
    q = torch.randn(b, s_q, h_q, d_qk, generator=g).to(torch.bfloat16)

    def cache(n):
        return testing.quantize_kv_cache(torch.randn(n, page, 1, d_qk, generator=g).to(torch.bfloat16))

    def indices(n, k):
        idx = torch.randint(0, n * page, (b, s_q, k), generator=g, dtype=torch.int32)
        return idx.masked_fill(torch.rand(idx.shape, generator=g) < 0.2, -1)

    kc, idx = cache(nb), indices(nb, topk)
    lengths = torch.tensor([topk, 37], dtype=torch.int32) if d_qk == 512 else None
    sink = torch.randn(h_q, generator=g)
    ekc = eidx = elen = None
    if extra:
        ekc, eidx, elen = cache(3), indices(3, 64), torch.tensor([0, 64], dtype=torch.int32)
    out = torch.empty(b, s_q, h_q, 512, dtype=torch.bfloat16)
    lse = torch.empty(b, h_q, s_q)
    scale = d_qk ** -0.5
    _C.ref_sparse_decode(d(q), d(kc), d(idx), d(lengths), d(sink), d(ekc), d(eidx), d(elen), d(out), d(lse), 512,
                         scale)
    r_out, r_lse = testing.ref_sparse_decode(q, kc, idx, 512, scale, sink, lengths, ekc, eidx, elen)
    testing.check_close("out", out, r_out, **testing.SPARSE_OUT_TOL)
    testing.check_close("lse", lse, r_lse, **testing.DENSE_LSE_TOL)


def test_check_close_fails_on_a_wrong_answer():
    ref = torch.linspace(-1, 1, 1000)
    wrong = ref.clone()
    wrong[500] += 0.1
    with pytest.raises(AssertionError, match="element 500"):
        testing.check_close("x", wrong, ref, **testing.DENSE_OUT_TOL)
    with pytest.raises(AssertionError, match="element 3"):
        testing.check_close("x", torch.tensor([0., 0, 0, float("nan")]), torch.zeros(4), **testing.DENSE_OUT_TOL)
