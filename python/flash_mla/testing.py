"""Float32 torch references of every FlashMLA operation, and the FP8 KV-cache formats, for tests.

They are written from the semantics (project spec, sections 1 and 3), independently of the kernels: plain gathers,
einsum in float32, torch.logsumexp. Conventions: natural-log lse, +inf for a row with nothing to attend (its out is
0), max_logits -inf there; attn_sink scales out by 1 / (1 + exp(sink - lse)) and leaves lse unchanged.
They run on any device (CPU included) and return float32 tensors.
"""

from typing import Optional, Tuple

import torch

__all__ = [
    "ref_dense_decode",
    "ref_sparse_prefill",
    "ref_sparse_decode",
    "quantize_kv_cache",
    "dequantize_kv_cache",
]


def _attend(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, valid: torch.Tensor, scale: float,
            attn_sink: Optional[torch.Tensor] = None):
    """q (..., h, d), k/v (..., n, d) or (..., h, n, d), valid (..., h, n) bool -> out (..., h, d_v), max, lse."""
    if k.dim() == q.dim():
        logits = torch.einsum("...hd,...nd->...hn", q, k)
    else:
        logits = torch.einsum("...hd,...hnd->...hn", q, k)
    logits = (logits * scale).masked_fill(~valid, float("-inf"))
    max_logits = logits.amax(dim=-1) if logits.shape[-1] else logits.new_full(logits.shape[:-1], float("-inf"))
    lse = torch.logsumexp(logits, dim=-1) if logits.shape[-1] else max_logits.clone()
    empty = torch.isneginf(lse)
    p = torch.exp(logits - lse.masked_fill(empty, 0).unsqueeze(-1)).masked_fill(~valid, 0)
    if v.dim() == q.dim():
        out = torch.einsum("...hn,...nd->...hd", p, v)
    else:
        out = torch.einsum("...hn,...hnd->...hd", p, v)
    if attn_sink is not None:
        out = out * torch.sigmoid(lse - attn_sink.float()).unsqueeze(-1)  # 1 / (1 + exp(sink - lse))
    out = out.masked_fill(empty.unsqueeze(-1), 0)
    lse = lse.masked_fill(empty, float("inf"))
    return out, max_logits, lse


def ref_dense_decode(q: torch.Tensor, k_cache: torch.Tensor, block_table: torch.Tensor, cache_seqlens: torch.Tensor,
                     head_dim_v: int = 512, softmax_scale: Optional[float] = None,
                     causal: bool = False) -> Tuple[torch.Tensor, torch.Tensor]:
    """Dense decode. q (b, s_q, h_q, d), k_cache (num_blocks, page, h_kv, d), block_table (b, max_blocks) int32,
    cache_seqlens (b,) int32 -> out (b, s_q, h_q, head_dim_v) float32, lse (b, h_q, s_q) float32.

    Query head h reads KV head h // (h_q // h_kv). Causal (s_q > 1): query j sees keys [0, s_k - s_q + j]."""
    b, s_q, h_q, d = q.shape
    page, h_kv = k_cache.shape[1], k_cache.shape[2]
    scale = d ** -0.5 if softmax_scale is None else softmax_scale
    out = torch.zeros(b, s_q, h_q, head_dim_v, dtype=torch.float32, device=q.device)
    lse = torch.full((b, h_q, s_q), float("inf"), dtype=torch.float32, device=q.device)
    lens = cache_seqlens.tolist()
    for i in range(b):
        n = lens[i]
        if n <= 0:
            continue
        blocks = block_table[i, : (n + page - 1) // page].long()
        kv = k_cache[blocks].reshape(-1, h_kv, d)[:n].float()  # (n, h_kv, d)
        kv = kv.repeat_interleave(h_q // h_kv, dim=1).transpose(0, 1)  # (h_q, n, d)
        key = torch.arange(n, device=q.device)
        valid = torch.ones(s_q, h_q, n, dtype=torch.bool, device=q.device)
        if causal and s_q > 1:
            last = n - s_q + torch.arange(s_q, device=q.device)  # last visible key of query j
            valid &= (key[None, :] <= last[:, None])[:, None, :]
        o, _, l = _attend(q[i].float(), kv.unsqueeze(0).expand(s_q, -1, -1, -1), kv[..., :head_dim_v].unsqueeze(0)
                          .expand(s_q, -1, -1, -1), valid, scale)
        out[i], lse[i] = o, l.transpose(0, 1)
    return out, lse


def ref_sparse_prefill(q: torch.Tensor, kv: torch.Tensor, indices: torch.Tensor, sm_scale: float, d_v: int = 512,
                       attn_sink: Optional[torch.Tensor] = None,
                       topk_length: Optional[torch.Tensor] = None) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Sparse prefill. q (s_q, h_q, d), kv (s_kv, 1, d), indices (s_q, 1, topk) int32 (invalid: < 0 or >= s_kv, or
    position >= topk_length[i]) -> out (s_q, h_q, d_v), max_logits (s_q, h_q), lse (s_q, h_q), all float32."""
    s_q, h_q, d = q.shape
    s_kv = kv.shape[0]
    idx = indices[:, 0, :].long()  # (s_q, topk)
    valid = (idx >= 0) & (idx < s_kv)
    if topk_length is not None:
        valid &= torch.arange(idx.shape[1], device=q.device)[None, :] < topk_length.long()[:, None]
    k = kv[:, 0, :].float()[idx.clamp(0, s_kv - 1)]  # (s_q, topk, d)
    return _attend(q.float(), k, k[..., :d_v], valid[:, None, :].expand(-1, h_q, -1), sm_scale, attn_sink)


# ---------------------------------------------------------------------------------------------------------------------
# FP8 KV cache: "V32" (d_qk 576, 656 bytes per token) and "MODEL1" (d_qk 512, 584 bytes per token, block-interleaved).

_V32, _MODEL1 = "V32", "MODEL1"


def _fmt(d_qk: int) -> str:
    if d_qk == 576:
        return _V32
    if d_qk == 512:
        return _MODEL1
    raise ValueError(f"d_qk: the FP8 formats have d_qk 576 (V32) or 512 (MODEL1), got {d_qk}")


def _pow2_scale(amax: torch.Tensor) -> torch.Tensor:
    return torch.exp2(torch.ceil(torch.log2(torch.clamp(amax / 448.0, min=1e-4))))


def quantize_kv_cache(kv: torch.Tensor) -> torch.Tensor:
    """bf16 kv (num_blocks, page, 1, d_qk) -> uint8 (num_blocks, page, 1, bytes_per_token) in the FP8 format of d_qk
    (576: V32; 512: MODEL1). Per token and NoPE tile (128 dims V32, 64 MODEL1): scale = 2^ceil(log2(max(amax / 448,
    1e-4))), fp8 = e4m3(x / scale); RoPE (the last 64 dims) kept as bf16."""
    nb, page, _, d = kv.shape
    fmt = _fmt(d)
    x = kv[:, :, 0, :].float()
    nope, tile = (512, 128) if fmt == _V32 else (448, 64)
    tiles = x[..., :nope].reshape(nb, page, nope // tile, tile)
    scale = _pow2_scale(tiles.abs().amax(dim=-1))  # (nb, page, tiles)
    fp8 = (tiles / scale[..., None]).reshape(nb, page, nope).to(torch.float8_e4m3fn).view(torch.uint8)
    rope = kv[:, :, 0, nope:].to(torch.bfloat16).contiguous().view(torch.uint8)  # (nb, page, 128)
    if fmt == _V32:
        sc = scale.to(torch.float32).contiguous().view(torch.uint8)  # (nb, page, 16)
        return torch.cat([fp8, sc, rope], dim=-1).reshape(nb, page, 1, 656)
    e8m0 = (torch.log2(scale).round().to(torch.int32) + 127).to(torch.uint8)  # (nb, page, 7)
    sc = torch.cat([e8m0, torch.zeros(nb, page, 1, dtype=torch.uint8, device=kv.device)], dim=-1)  # (nb, page, 8)
    block = torch.cat([torch.cat([fp8, rope], dim=-1).reshape(nb, page * 576), sc.reshape(nb, page * 8)], dim=-1)
    return block.reshape(nb, page, 1, 584)


def dequantize_kv_cache(kv_fp8: torch.Tensor, d_qk: int) -> torch.Tensor:
    """FP8 cache (num_blocks, page, 1, bytes_per_token), any block stride (stride(0), in bytes) -> float32
    (num_blocks, page, 1, d_qk): x = fp8 * scale, RoPE from bf16."""
    nb, page = kv_fp8.shape[0], kv_fp8.shape[1]
    raw = kv_fp8.view(torch.uint8) if kv_fp8.dtype != torch.uint8 else kv_fp8
    fmt = _fmt(d_qk)
    if fmt == _V32:
        tok = raw[:, :, 0, :].contiguous()  # (nb, page, 656)
        fp8 = tok[..., :512].view(torch.float8_e4m3fn).float().reshape(nb, page, 4, 128)
        scale = tok[..., 512:528].contiguous().view(torch.float32)  # (nb, page, 4)
        rope = tok[..., 528:656].contiguous().view(torch.bfloat16).float()
        nope = (fp8 * scale[..., None]).reshape(nb, page, 512)
    else:
        # Block-interleaved: the page's bytes are P x 576 token bytes, then P x 8 scale bytes.
        block = raw.as_strided((nb, page * 584), (raw.stride(0), 1)).contiguous()
        tok = block[:, : page * 576].reshape(nb, page, 576)
        e8m0 = block[:, page * 576:].reshape(nb, page, 8)[..., :7].to(torch.float32)
        scale = torch.exp2(e8m0 - 127)  # (nb, page, 7)
        fp8 = tok[..., :448].contiguous().view(torch.float8_e4m3fn).float().reshape(nb, page, 7, 64)
        rope = tok[..., 448:576].contiguous().view(torch.bfloat16).float()
        nope = (fp8 * scale[..., None]).to(torch.bfloat16).float().reshape(nb, page, 448)
    return torch.cat([nope, rope], dim=-1)[:, :, None, :]


def ref_sparse_decode(q: torch.Tensor, k_cache: torch.Tensor, indices: torch.Tensor, head_dim_v: int = 512,
                      softmax_scale: Optional[float] = None, attn_sink: Optional[torch.Tensor] = None,
                      topk_length: Optional[torch.Tensor] = None, extra_k_cache: Optional[torch.Tensor] = None,
                      extra_indices_in_kvcache: Optional[torch.Tensor] = None,
                      extra_topk_length: Optional[torch.Tensor] = None) -> Tuple[torch.Tensor, torch.Tensor]:
    """Sparse decode over an FP8 cache. q (b, s_q, h_q, d_qk) bf16, k_cache (num_blocks, page, 1, bytes) FP8 format of
    d_qk, indices (b, s_q, topk) int32 = block * page + offset, -1 invalid; topk_length (b,) limits each request's
    indices; the optional extra cache is attended jointly -> out (b, s_q, h_q, head_dim_v), lse (b, h_q, s_q)."""
    b, s_q, h_q, d = q.shape
    scale = d ** -0.5 if softmax_scale is None else softmax_scale

    def gather(cache, idx, length):
        flat = dequantize_kv_cache(cache, d).reshape(-1, d)
        idx = idx.long()
        valid = idx != -1
        if length is not None:
            valid &= torch.arange(idx.shape[-1], device=q.device)[None, None, :] < length.long()[:, None, None]
        return flat[torch.where(valid, idx, 0)], valid  # (b, s_q, topk, d), (b, s_q, topk)

    k, valid = gather(k_cache, indices, topk_length)
    if extra_k_cache is not None:
        k2, valid2 = gather(extra_k_cache, extra_indices_in_kvcache, extra_topk_length)
        k, valid = torch.cat([k, k2], dim=2), torch.cat([valid, valid2], dim=2)
    out, _, lse = _attend(q.float(), k, k[..., :head_dim_v], valid[:, :, None, :].expand(-1, -1, h_q, -1), scale,
                          attn_sink)
    return out, lse.transpose(1, 2)


# Tolerances against these references (the project spec, sections 6.2-6.4): an element passes when its absolute error
# is below `abs` or its relative error below `rel`; the whole tensor also needs 1 - cos(ans, ref) <= `cos`.
DENSE_OUT_TOL = dict(abs=8e-4, rel=2.01 / 128, cos=5e-6)
DENSE_LSE_TOL = dict(abs=1e-6, rel=8.01 / 65536, cos=1e-7)
SPARSE_OUT_TOL = dict(abs=1e-3, rel=2.01 / 128, cos=5e-6)
PREFILL_OUT_TOL = dict(abs=8e-4, rel=3.01 / 128, cos=7e-6)
PREFILL_LSE_TOL = dict(abs=1e-6, rel=2.01 / 65536, cos=1e-7)


def check_close(name: str, ans: torch.Tensor, ref: torch.Tensor, abs: float, rel: float, cos: float) -> None:
    """Raises AssertionError naming `name` and the first failing element. NaN must match NaN, +-inf the same inf."""
    a, r = ans.double().flatten().cpu(), ref.double().flatten().cpu()
    if a.shape != r.shape:
        raise AssertionError(f"{name}: {a.numel()} elements vs {r.numel()} in the reference")
    nan_a, nan_r = torch.isnan(a), torch.isnan(r)
    bad = nan_a != nan_r
    inf = torch.isinf(a) | torch.isinf(r)
    bad |= inf & ~nan_a & ~nan_r & (a != r)
    fin = ~(nan_a | nan_r | inf)
    err = (a - r).abs()
    bad |= fin & ~((err < abs) | (err / (r.abs() + 1e-6) < rel))
    if bad.any():
        i = int(bad.nonzero()[0])
        raise AssertionError(f"{name}: element {i} is {a[i].item()}, reference {r[i].item()} "
                             f"({int(bad.sum())} of {a.numel()} elements out of tolerance)")
    af, rf = a[fin], r[fin]
    rr = float((rf * rf).sum())
    if rr >= 1e-12:
        cos_diff = 1 - 2 * float((af * rf).sum()) / (float((af * af).sum()) + rr)
        if cos_diff > cos:
            raise AssertionError(f"{name}: cosine difference {cos_diff:.3g} > {cos:.3g}")
