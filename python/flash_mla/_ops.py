"""The registered torch ops ``torch.ops.flash_mla.*`` and their fake (meta) implementations.

Each op takes outputs from torch's caching allocator, launches on the current stream of the inputs' device with
that device made current, and never synchronizes or reads device memory on the host, except in the checked mode
(below). The fake implementations give torch.compile the output shapes and dtypes.

Ops:
  flash_mla::get_mla_metadata(cache_seqlens, num_q_tokens_per_head_k, num_heads_k, page_block_size)
      -> (tile_scheduler_metadata (num_parts, 8) int32, num_splits (b + 1) int32)
  flash_mla::dense_decode(q, k_cache, block_table, cache_seqlens, tile_scheduler_metadata, num_splits, head_dim_v,
                          softmax_scale, causal, check) -> (out (b, s_q, h_q, head_dim_v) q.dtype, lse (b, h_q, s_q) f32)

Checked mode (``check=True`` or the environment variable ``FLASH_MLA_CHECK=1``; off by default): before the launch,
``cache_seqlens`` and ``block_table`` are copied to the host (an explicit synchronization of the current stream) and
checked: every length in [0, max_blocks_per_seq * page_block_size], every block id a request uses in
[0, num_blocks). A violation raises ValueError naming the argument, the request and the value. The checked mode
cannot run inside CUDA-graph capture (it raises RuntimeError there); use it in eager debugging runs.
"""

import functools
import os
from typing import Optional, Tuple

import torch

from flash_mla import _C

_DTYPE_CODES = {
    torch.bfloat16: _C.dtype_codes["bfloat16"],
    torch.float16: _C.dtype_codes["float16"],
    torch.float32: _C.dtype_codes["float32"],
    torch.int32: _C.dtype_codes["int32"],
    torch.uint8: _C.dtype_codes["uint8"],
    torch.int8: _C.dtype_codes["int8"],
    torch.float8_e4m3fn: _C.dtype_codes["float8_e4m3fn"],
}


def _desc(t: torch.Tensor, arg: str) -> tuple:
    """The tensor as the extension's descriptor: (data_ptr, dtype code, shape, strides in elements, device or -1)."""
    code = _DTYPE_CODES.get(t.dtype)
    if code is None:
        raise TypeError(f"{arg}: dtype {t.dtype} is not supported")
    return (t.data_ptr(), code, tuple(t.shape), t.stride(), t.device.index if t.is_cuda else -1)


def _device_index(t: torch.Tensor) -> int:
    return t.device.index if t.device.index is not None else torch.cuda.current_device()


@functools.lru_cache(maxsize=None)
def _capability(index: int) -> Tuple[int, int]:
    return torch.cuda.get_device_capability(index)


def check_hopper(device: torch.device, arg: str = "q") -> None:
    """Raises RuntimeError unless `device` is an sm_90 GPU (H100/H200/H800/H20), the only kernels built."""
    index = device.index if device.index is not None else torch.cuda.current_device()
    major, minor = _capability(index)
    if (major, minor) != (9, 0):
        raise RuntimeError(
            f"{arg}: FlashMLA-C++ kernels need a Hopper GPU (sm_90: H100/H200/H800/H20); cuda:{index} "
            f"({torch.cuda.get_device_name(index)}) is sm_{major}{minor}")


def checked_mode(check: Optional[bool]) -> bool:
    """`check` when given, else the environment variable FLASH_MLA_CHECK (anything but '', '0' turns it on)."""
    if check is not None:
        return bool(check)
    return os.environ.get("FLASH_MLA_CHECK", "0") not in ("", "0")


def check_cache_contents(cache_seqlens: torch.Tensor, block_table: torch.Tensor, num_blocks: int,
                         page_block_size: int) -> None:
    """The checked mode: lengths and used block ids against the block table and the cache (synchronizes)."""
    if torch.cuda.is_current_stream_capturing():
        raise RuntimeError(
            "check: the checked mode (check=True or FLASH_MLA_CHECK=1) copies cache_seqlens and block_table to the "
            "host and cannot run inside CUDA-graph capture; run it on an eager step, and capture without it")
    lens = cache_seqlens.to("cpu", torch.int64)
    capacity = block_table.shape[1] * page_block_size
    for i, n in enumerate(lens.tolist()):
        if n < 0:
            raise ValueError(f"cache_seqlens: request {i} has the negative length {n}")
        if n > capacity:
            raise ValueError(
                f"cache_seqlens: request {i} has length {n}, more than its block_table row holds "
                f"({block_table.shape[1]} blocks x page_block_size {page_block_size} = {capacity} tokens)")
    table = block_table.to("cpu", torch.int64)
    used = torch.arange(table.shape[1])[None, :] < ((lens + page_block_size - 1) // page_block_size)[:, None]
    bad = (used & ((table < 0) | (table >= num_blocks))).nonzero()
    if bad.shape[0]:
        i, j = bad[0].tolist()
        raise ValueError(
            f"block_table: entry [{i}, {j}] = {table[i, j].item()} is used by request {i} (length {lens[i].item()}) "
            f"but is outside the k_cache blocks [0, {num_blocks})")


# ---------------------------------------------------------------------------------------------------------------------
# flash_mla::get_mla_metadata


def _num_parts(cache_seqlens: torch.Tensor, num_q_tokens_per_head_k: int, num_heads_k: int,
               page_block_size: int) -> int:
    return _C.dense_decode_num_parts(_device_index(cache_seqlens), int(num_q_tokens_per_head_k), int(num_heads_k),
                                     int(page_block_size))


@torch.library.custom_op("flash_mla::get_mla_metadata", mutates_args=())
def get_mla_metadata_op(cache_seqlens: torch.Tensor, num_q_tokens_per_head_k: int, num_heads_k: int,
                        page_block_size: int) -> Tuple[torch.Tensor, torch.Tensor]:
    """Split-KV schedule of dense decode from the device cache_seqlens (one kernel, no host sync)."""
    if not cache_seqlens.is_cuda:
        raise ValueError(f"cache_seqlens: expected a CUDA tensor, got a tensor on {cache_seqlens.device}")
    check_hopper(cache_seqlens.device, "cache_seqlens")
    with torch.cuda.device(cache_seqlens.device):
        num_parts = _num_parts(cache_seqlens, num_q_tokens_per_head_k, num_heads_k, page_block_size)
        meta = torch.empty((num_parts, 8), dtype=torch.int32, device=cache_seqlens.device)
        splits = torch.empty((cache_seqlens.shape[0] + 1,), dtype=torch.int32, device=cache_seqlens.device)
        _C.dense_decode_schedule(_desc(cache_seqlens, "cache_seqlens"), _desc(meta, "tile_scheduler_metadata"),
                                 _desc(splits, "num_splits"), torch.cuda.current_stream().cuda_stream)
    return meta, splits


@get_mla_metadata_op.register_fake
def _(cache_seqlens, num_q_tokens_per_head_k, num_heads_k, page_block_size):
    num_parts = _num_parts(cache_seqlens, num_q_tokens_per_head_k, num_heads_k, page_block_size)
    return (cache_seqlens.new_empty((num_parts, 8), dtype=torch.int32),
            cache_seqlens.new_empty((cache_seqlens.shape[0] + 1,), dtype=torch.int32))


# ---------------------------------------------------------------------------------------------------------------------
# flash_mla::dense_decode


def _dense_output_shapes(q: torch.Tensor, head_dim_v: int):
    if q.dim() != 4:
        raise ValueError(f"q: expected 4 dims (b, s_q, h_q, d_qk), got shape {tuple(q.shape)}")
    if head_dim_v != 512:
        raise ValueError(f"head_dim_v: must be 512, got {head_dim_v}")
    b, s_q, h_q, _ = q.shape
    return (b, s_q, h_q, head_dim_v), (b, h_q, s_q)


@torch.library.custom_op("flash_mla::dense_decode", mutates_args=())
def dense_decode_op(q: torch.Tensor, k_cache: torch.Tensor, block_table: torch.Tensor, cache_seqlens: torch.Tensor,
                    tile_scheduler_metadata: torch.Tensor, num_splits: torch.Tensor, head_dim_v: int,
                    softmax_scale: float, causal: bool,
                    check: Optional[bool] = None) -> Tuple[torch.Tensor, torch.Tensor]:
    """Dense decode over a paged bf16/fp16 KV cache with a schedule from get_mla_metadata."""
    out_shape, lse_shape = _dense_output_shapes(q, head_dim_v)
    if not q.is_cuda:
        raise ValueError(f"q: expected a CUDA tensor, got a tensor on {q.device}")
    check_hopper(q.device)
    with torch.cuda.device(q.device):
        if checked_mode(check) and k_cache.dim() == 4 and block_table.dim() == 2:
            check_cache_contents(cache_seqlens, block_table, k_cache.shape[0], k_cache.shape[1])
        out = torch.empty(out_shape, dtype=q.dtype, device=q.device)
        lse = torch.empty(lse_shape, dtype=torch.float32, device=q.device)
        num_parts = tile_scheduler_metadata.shape[0] if tile_scheduler_metadata.dim() == 2 else 0
        call = _C.plan_dense_decode(_desc(q, "q"), _desc(k_cache, "k_cache"), _desc(block_table, "block_table"),
                                    _desc(cache_seqlens, "cache_seqlens"), _desc(out, "out"), _desc(lse, "lse"),
                                    head_dim_v, softmax_scale, causal, num_parts)
        workspace = torch.empty((call.workspace_bytes,), dtype=torch.uint8, device=q.device)
        _C.dense_decode_run(call, _desc(tile_scheduler_metadata, "tile_scheduler_metadata"),
                            _desc(num_splits, "num_splits"), workspace.data_ptr(),
                            torch.cuda.current_stream().cuda_stream)
    return out, lse


@dense_decode_op.register_fake
def _(q, k_cache, block_table, cache_seqlens, tile_scheduler_metadata, num_splits, head_dim_v, softmax_scale, causal,
      check=None):
    out_shape, lse_shape = _dense_output_shapes(q, head_dim_v)
    return q.new_empty(out_shape), q.new_empty(lse_shape, dtype=torch.float32)
