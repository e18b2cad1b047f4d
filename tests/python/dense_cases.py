"""Dense decode inputs built like the spec's tests (section 6.2): random lengths, a shuffled block table whose unused
tail holds 2147480000, NaN in every cache slot past a request's length, and optional padding that makes the strides
non-contiguous. device="cpu" gives the same inputs on the host."""
import dataclasses
from typing import Optional

import torch

BAD_BLOCK = 2147480000


@dataclasses.dataclass
class DenseInputs:
    q: torch.Tensor
    k_cache: torch.Tensor
    block_table: torch.Tensor
    cache_seqlens: torch.Tensor
    causal: bool


def make_dense(b: int, s_q: int, s_k: int, h_q: int, h_kv: int, *, varlen: bool = False, causal: bool = False,
               page: int = 64, dtype=torch.bfloat16, device="cuda", seed: int = 0, pad: bool = False,
               lens: Optional[list] = None) -> DenseInputs:
    g = torch.Generator().manual_seed(seed)
    if lens is None:
        if varlen:
            lens = torch.normal(float(s_k), s_k / 2, (b,), generator=g).clamp(min=s_q).round().int().tolist()
        else:
            lens = [s_k] * b
    max_blocks = max(1, (max(lens) + page - 1) // page)
    num_blocks = b * max_blocks
    perm = torch.randperm(num_blocks, generator=g).int().reshape(b, max_blocks)
    block_table = torch.full((b, max_blocks), BAD_BLOCK, dtype=torch.int32)
    for i, n in enumerate(lens):
        used = (n + page - 1) // page
        block_table[i, :used] = perm[i, :used]
    d = 576
    # Padding: q heads and cache blocks one 8-element step apart from contiguous (strides stay 16-byte multiples).
    # Values as FlashMLA's tests draw them (randn / 10 clamped to [-1, 1]): the tolerances are set for this scale.
    q_full = small_normal((b, s_q, h_q, d + (8 if pad else 0)), g).to(dtype)
    q = q_full[..., :d]
    blk = page * h_kv * d
    cache_flat = small_normal((num_blocks, blk + (64 if pad else 0)), g).to(dtype)
    k_cache = cache_flat[:, :blk].view(num_blocks, page, h_kv, d) if not pad else \
        cache_flat.as_strided((num_blocks, page, h_kv, d), (blk + 64, h_kv * d, d, 1))
    for i, n in enumerate(lens):  # NaN in the unused slots of each request's last block
        used = (n + page - 1) // page
        if used and n % page:
            k_cache[block_table[i, used - 1].item(), n % page:] = float("nan")
    dev = torch.device(device)
    move = _to_device_strided if pad else (lambda t, d: t.to(d))
    return DenseInputs(move(q, dev), move(k_cache, dev), block_table.to(dev),
                       torch.tensor(lens, dtype=torch.int32, device=dev), causal)


def small_normal(shape, g: torch.Generator) -> torch.Tensor:
    return (torch.randn(shape, generator=g) / 10).clamp(-1, 1)


def _to_device_strided(t: torch.Tensor, dev) -> torch.Tensor:
    """Moves a strided view to `dev` keeping its strides (Tensor.to would make it contiguous)."""
    base = t.as_strided((t.untyped_storage().nbytes() // t.element_size(),), (1,), 0)
    return base.to(dev).as_strided(t.shape, t.stride(), t.storage_offset())
