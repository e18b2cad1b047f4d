"""DeepSeek FlashMLA's public API (module ``flash_mla``), implemented on FlashMLA-C++.

Names, arguments and return conventions follow deepseek-ai/FlashMLA ``flash_mla/flash_mla_interface.py`` (described in
the project's semantics spec, section 1). Differences a caller can see:

* ``get_mla_metadata`` also keeps the older eager form: called with ``cache_seqlens`` it builds the schedule at once
  and returns the tensors ``(tile_scheduler_metadata, num_splits)``, which ``flash_mla_with_kvcache`` accepts too.
  Called without it (DeepSeek's current form) it returns ``(FlashMLASchedMeta(), None)`` and the schedule is built
  lazily by the first ``flash_mla_with_kvcache`` call that uses it.
* ``flash_mla_with_kvcache`` has a keyword-only ``check`` argument (the checked mode, see ``flash_mla._ops``).
* Bad input raises TypeError (wrong type or dtype), ValueError (shape, rank, stride, device, value) or RuntimeError
  (GPU that is not sm_90) naming the argument, before any launch; a path without a kernel in FlashMLA-C++ raises
  NotImplementedError naming the missing capability.
* Page sizes other than 64 are accepted by dense decode.
"""

import dataclasses
from typing import Optional, Tuple, Union

import torch

from flash_mla import _ops  # noqa: F401  (registers torch.ops.flash_mla.*)


@dataclasses.dataclass
class FlashMLASchedMeta:
    """The split-KV schedule of one decoding step, built lazily by the first flash_mla_with_kvcache call.

    Reuse it for every layer of the step; its values depend on cache_seqlens, which must not change in between (they
    are not re-read). ``config`` records the shapes it was built for; a later call with other shapes raises ValueError.
    """

    @dataclasses.dataclass
    class Config:
        b: int
        s_q: int
        h_q: int
        page_block_size: int
        h_k: int
        causal: bool
        is_fp8_kvcache: bool
        topk: Optional[int]
        extra_page_block_size: Optional[int]
        extra_topk: Optional[int]

    have_initialized: bool = False
    config: Optional[Config] = None
    tile_scheduler_metadata: Optional[torch.Tensor] = None  # (num_sm_parts, 8) int32
    num_splits: Optional[torch.Tensor] = None  # (b + 1,) int32


def _expect_tensor(t, arg: str, dtypes: Tuple[torch.dtype, ...]) -> None:
    if not isinstance(t, torch.Tensor):
        raise TypeError(f"{arg}: expected a torch.Tensor, got {type(t).__name__}")
    if t.dtype not in dtypes:
        want = " or ".join(str(d) for d in dtypes)
        raise TypeError(f"{arg}: expected dtype {want}, got {t.dtype}")


def _expect_cuda(t: torch.Tensor, arg: str, ref: Optional[torch.Tensor] = None, ref_arg: str = "q") -> None:
    if ref is not None and t.device != ref.device:
        raise ValueError(f"{arg}: expected a tensor on {ref.device} (the device of {ref_arg}), got {t.device}")
    if not t.is_cuda:
        raise ValueError(f"{arg}: expected a CUDA tensor, got a tensor on {t.device}")


def _expect_dim(t: torch.Tensor, arg: str, ndim: int, names: str) -> None:
    if t.dim() != ndim:
        raise ValueError(f"{arg}: expected {ndim} dims {names}, got shape {tuple(t.shape)}")


def get_mla_metadata(*args, **kwargs) -> Tuple[Union[FlashMLASchedMeta, torch.Tensor], Optional[torch.Tensor]]:
    """The split-KV schedule of a decoding step.

    ``get_mla_metadata()`` (DeepSeek's current form; any arguments other than cache_seqlens are ignored) returns
    ``(FlashMLASchedMeta(), None)``: the first flash_mla_with_kvcache call fills it, later calls reuse it.

    ``get_mla_metadata(cache_seqlens, num_q_tokens_per_head_k, num_heads_k, num_heads_q=None, is_fp8_kvcache=False,
    topk=None)`` (the older eager form) builds it now, on the current stream, from the device values of
    ``cache_seqlens`` ((b,) int32, CUDA) with ``num_q_tokens_per_head_k = s_q * h_q // h_kv``, and returns
    ``(tile_scheduler_metadata (num_sm_parts, 8) int32, num_splits (b + 1,) int32)``.
    """
    cache_seqlens = args[0] if args else kwargs.get("cache_seqlens")
    if cache_seqlens is None:
        return FlashMLASchedMeta(), None
    names = ("cache_seqlens", "num_q_tokens_per_head_k", "num_heads_k", "num_heads_q", "is_fp8_kvcache", "topk")
    if len(args) > len(names):
        raise TypeError(f"get_mla_metadata: takes at most {len(names)} positional arguments, got {len(args)}")
    bound = dict(zip(names, args))
    for k, v in kwargs.items():
        if k not in names:
            raise TypeError(f"get_mla_metadata: unexpected keyword argument {k!r}")
        if k in bound:
            raise TypeError(f"get_mla_metadata: got multiple values for argument {k!r}")
        bound[k] = v
    for k in ("num_q_tokens_per_head_k", "num_heads_k"):
        if k not in bound:
            raise TypeError(f"get_mla_metadata: missing argument {k!r} (the eager form needs it)")
    _expect_tensor(cache_seqlens, "cache_seqlens", (torch.int32,))
    if bound.get("topk") is not None:
        raise NotImplementedError("get_mla_metadata: topk is given: sparse FP8 decode has no kernel in FlashMLA-C++ yet")
    if bound.get("is_fp8_kvcache", False):
        raise NotImplementedError(
            "get_mla_metadata: is_fp8_kvcache=True: decode over an FP8 KV cache has no kernel in FlashMLA-C++ yet")
    _expect_cuda(cache_seqlens, "cache_seqlens")
    _expect_dim(cache_seqlens, "cache_seqlens", 1, "(b,)")
    for k in ("num_q_tokens_per_head_k", "num_heads_k"):
        if not isinstance(bound[k], int) or isinstance(bound[k], bool):
            raise TypeError(f"{k}: expected an int, got {type(bound[k]).__name__}")
        if bound[k] <= 0:
            raise ValueError(f"{k}: must be positive, got {bound[k]}")
    return torch.ops.flash_mla.get_mla_metadata(cache_seqlens, bound["num_q_tokens_per_head_k"], bound["num_heads_k"],
                                                64)


def _check_config(old: FlashMLASchedMeta.Config, new: FlashMLASchedMeta.Config) -> None:
    for field in dataclasses.fields(old):
        a, b = getattr(old, field.name), getattr(new, field.name)
        if a != b:
            raise ValueError(
                f"tile_scheduler_metadata: {field.name} must be equal to {a} (the value its schedule was built for), "
                f"got {b}. Your input arguments are inconsistent with sched_meta; call get_mla_metadata() again for "
                f"a new configuration")


def flash_mla_with_kvcache(
    q: torch.Tensor,
    k_cache: torch.Tensor,
    block_table: Optional[torch.Tensor],
    cache_seqlens: Optional[torch.Tensor],
    head_dim_v: int,
    tile_scheduler_metadata: Union[FlashMLASchedMeta, torch.Tensor],
    num_splits: Optional[torch.Tensor] = None,
    softmax_scale: Optional[float] = None,
    causal: bool = False,
    is_fp8_kvcache: bool = False,
    indices: Optional[torch.Tensor] = None,
    attn_sink: Optional[torch.Tensor] = None,
    extra_k_cache: Optional[torch.Tensor] = None,
    extra_indices_in_kvcache: Optional[torch.Tensor] = None,
    topk_length: Optional[torch.Tensor] = None,
    extra_topk_length: Optional[torch.Tensor] = None,
    *,
    check: Optional[bool] = None,
) -> Tuple[torch.Tensor, torch.Tensor]:
    """Decode attention over a paged KV cache (MLA, MQA/GQA).

    Args:
        q: (b, s_q, h_q, d_qk) bf16 or fp16, CUDA, last dim contiguous. d_qk = 576 (512 latent + 64 RoPE).
        k_cache: (num_blocks, page_block_size, h_kv, d_qk), dtype of q, last dim contiguous; h_q % h_kv == 0. Token t
            of request i lives at k_cache[block_table[i, t // page_block_size], t % page_block_size]; V is its first
            head_dim_v dims. Any page_block_size (a multiple of 8 that divides 64 or is a multiple of 64 takes the
            TMA kernel; others a slower one).
        block_table: (b, max_blocks_per_seq) int32, last dim contiguous.
        cache_seqlens: (b,) int32, contiguous; values in [0, max_blocks_per_seq * page_block_size].
        head_dim_v: must be 512.
        tile_scheduler_metadata: a FlashMLASchedMeta from get_mla_metadata() (num_splits None), or the tensor of the
            eager form (with its num_splits).
        softmax_scale: logits = softmax_scale * q.k; default d_qk ** -0.5.
        causal: bottom-right aligned mask when s_q > 1 (query j sees keys [0, s_k - s_q + j]).
        is_fp8_kvcache, indices, attn_sink, extra_k_cache, extra_indices_in_kvcache, topk_length, extra_topk_length:
            the sparse FP8 decode path, and dense decode over an FP8 cache: no kernel yet (NotImplementedError).
        check: the checked mode (None: the environment variable FLASH_MLA_CHECK), see flash_mla._ops.

    Returns:
        out (b, s_q, h_q, head_dim_v) in q's dtype; lse (b, h_q, s_q) float32, natural log, +inf for a row with
        nothing to attend (whose out is 0).
    """
    _expect_tensor(q, "q", (torch.bfloat16, torch.float16))
    if indices is not None:
        raise NotImplementedError(
            "flash_mla_with_kvcache: indices is given: sparse FP8 decode (DeepSeek Sparse Attention) has no kernel in "
            "FlashMLA-C++ yet (flash_mla.testing.ref_sparse_decode is its float32 reference)")
    if is_fp8_kvcache:
        raise NotImplementedError(
            "flash_mla_with_kvcache: is_fp8_kvcache=True without indices: dense decode over an FP8 KV cache has no "
            "kernel in FlashMLA-C++ yet")
    for name, value in (("attn_sink", attn_sink), ("extra_k_cache", extra_k_cache),
                        ("extra_indices_in_kvcache", extra_indices_in_kvcache), ("topk_length", topk_length),
                        ("extra_topk_length", extra_topk_length)):
        if value is not None:
            raise ValueError(f"{name}: belongs to the sparse path (indices); dense decode takes None")
    if block_table is None:
        raise ValueError("block_table: required by dense decode (indices is None)")
    if cache_seqlens is None:
        raise ValueError("cache_seqlens: required by dense decode (indices is None)")
    _expect_tensor(k_cache, "k_cache", (q.dtype,))
    _expect_tensor(block_table, "block_table", (torch.int32,))
    _expect_tensor(cache_seqlens, "cache_seqlens", (torch.int32,))
    if not isinstance(tile_scheduler_metadata, (FlashMLASchedMeta, torch.Tensor)):
        raise TypeError(
            "tile_scheduler_metadata: expected a FlashMLASchedMeta (from get_mla_metadata()) or the int32 tensor of "
            f"the eager form, got {type(tile_scheduler_metadata).__name__}")
    _expect_cuda(q, "q")
    for t, name in ((k_cache, "k_cache"), (block_table, "block_table"), (cache_seqlens, "cache_seqlens")):
        _expect_cuda(t, name, q)
    if not isinstance(head_dim_v, int) or isinstance(head_dim_v, bool):
        raise TypeError(f"head_dim_v: expected an int, got {type(head_dim_v).__name__}")
    if head_dim_v != 512:
        raise ValueError(f"head_dim_v: must be 512, got {head_dim_v}")
    _expect_dim(q, "q", 4, "(b, s_q, h_q, d_qk)")
    _expect_dim(k_cache, "k_cache", 4, "(num_blocks, page_block_size, h_kv, d_qk)")
    b, s_q, h_q, d_qk = q.shape
    page_block_size, h_kv = k_cache.shape[1], k_cache.shape[2]
    if page_block_size <= 0:  # checked here because the lazy schedule is built before the kernel validates
        raise ValueError(f"k_cache: page_block_size: expected > 0, got {page_block_size}")
    if h_kv <= 0 or h_q % h_kv != 0:
        raise ValueError(f"q/k_cache: h_q ({h_q}) must be a multiple of h_kv ({h_kv})")
    if softmax_scale is None:
        softmax_scale = d_qk ** -0.5

    if isinstance(tile_scheduler_metadata, FlashMLASchedMeta):
        if num_splits is not None:
            raise ValueError("num_splits: must be None when tile_scheduler_metadata is a FlashMLASchedMeta")
        meta = tile_scheduler_metadata
        config = FlashMLASchedMeta.Config(b, s_q, h_q, page_block_size, h_kv, bool(causal), bool(is_fp8_kvcache),
                                          None, None, None)
        if not meta.have_initialized:
            meta.tile_scheduler_metadata, meta.num_splits = torch.ops.flash_mla.get_mla_metadata(
                cache_seqlens, s_q * h_q // h_kv, h_kv, page_block_size)
            meta.config = config
            meta.have_initialized = True
        else:
            _check_config(meta.config, config)
        sched, splits = meta.tile_scheduler_metadata, meta.num_splits
    else:  # the eager form's tensors
        _expect_tensor(tile_scheduler_metadata, "tile_scheduler_metadata", (torch.int32,))
        if num_splits is None:
            raise TypeError("num_splits: required with the eager form (pass both tensors from get_mla_metadata(...))")
        _expect_tensor(num_splits, "num_splits", (torch.int32,))
        _expect_cuda(tile_scheduler_metadata, "tile_scheduler_metadata", q)
        _expect_cuda(num_splits, "num_splits", q)
        sched, splits = tile_scheduler_metadata, num_splits
    return torch.ops.flash_mla.dense_decode(q, k_cache, block_table, cache_seqlens, sched, splits, head_dim_v,
                                            float(softmax_scale), bool(causal), check)


def flash_mla_sparse_fwd(
    q: torch.Tensor,
    kv: torch.Tensor,
    indices: torch.Tensor,
    sm_scale: float,
    d_v: int = 512,
    attn_sink: Optional[torch.Tensor] = None,
    topk_length: Optional[torch.Tensor] = None,
) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Sparse prefill (DeepSeek Sparse Attention): q (s_q, h_q, d_qk) bf16, kv (s_kv, 1, d_qk) bf16, indices
    (s_q, 1, topk) int32 -> (out (s_q, h_q, d_v), max_logits (s_q, h_q), lse (s_q, h_q)). No kernel yet: raises
    NotImplementedError after the argument types are checked (flash_mla.testing.ref_sparse_prefill is the float32
    reference)."""
    _expect_tensor(q, "q", (torch.bfloat16,))
    _expect_tensor(kv, "kv", (torch.bfloat16,))
    _expect_tensor(indices, "indices", (torch.int32,))
    raise NotImplementedError("flash_mla_sparse_fwd: sparse prefill has no kernel in FlashMLA-C++ yet")


def _sm100_only(name: str):
    def fn(*args, **kwargs):
        raise NotImplementedError(
            f"{name}: dense MHA prefill (forward/backward) is an SM100-only FlashMLA kernel; FlashMLA-C++ targets sm_90 "
            "and does not implement it")
    fn.__name__ = name
    fn.__doc__ = f"DeepSeek's {name} (SM100 only): raises NotImplementedError."
    return fn


flash_attn_varlen_func = _sm100_only("flash_attn_varlen_func")
flash_attn_varlen_qkvpacked_func = _sm100_only("flash_attn_varlen_qkvpacked_func")
flash_attn_varlen_kvpacked_func = _sm100_only("flash_attn_varlen_kvpacked_func")
