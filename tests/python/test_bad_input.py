"""One test per class of bad input: the exception type and a message naming the argument, raised before any launch.
The classes that need the GPU to reach their check are marked; the others run on any machine with torch."""
import pytest

from conftest import needs_gpu, needs_torch

torch = pytest.importorskip("torch", reason="PyTorch is not installed (the flash_mla API is torch ops)")

import flash_mla  # noqa: E402
from flash_mla import _ops  # noqa: E402
from dense_cases import make_dense  # noqa: E402

pytestmark = needs_torch


def call(inp, **over):
    a = dict(q=inp.q, k_cache=inp.k_cache, block_table=inp.block_table, cache_seqlens=inp.cache_seqlens,
             head_dim_v=512, tile_scheduler_metadata=flash_mla.get_mla_metadata()[0])
    a.update(over)
    return flash_mla.flash_mla_with_kvcache(**a)


@pytest.fixture
def cpu_inp():
    return make_dense(2, 1, 100, 16, 1, device="cpu", seed=1)


@pytest.fixture
def gpu_inp():
    return make_dense(2, 1, 100, 16, 1, seed=1)


# ---- classes checked on the host before anything touches a device -------------------------------------------------

def test_wrong_dtype(cpu_inp):
    with pytest.raises(TypeError, match=r"^q: expected dtype torch.bfloat16 or torch.float16, got torch.float32"):
        call(cpu_inp, q=cpu_inp.q.float())
    with pytest.raises(TypeError, match=r"^k_cache: expected dtype torch.bfloat16, got torch.float16"):
        call(cpu_inp, k_cache=cpu_inp.k_cache.half())
    with pytest.raises(TypeError, match=r"^block_table: expected dtype torch.int32, got torch.int64"):
        call(cpu_inp, block_table=cpu_inp.block_table.long())
    with pytest.raises(TypeError, match=r"^cache_seqlens: expected dtype torch.int32"):
        call(cpu_inp, cache_seqlens=cpu_inp.cache_seqlens.float())


def test_not_a_tensor(cpu_inp):
    with pytest.raises(TypeError, match=r"^k_cache: expected a torch.Tensor, got list"):
        call(cpu_inp, k_cache=[1, 2])
    with pytest.raises(TypeError, match=r"^tile_scheduler_metadata: expected a FlashMLASchedMeta"):
        call(cpu_inp, tile_scheduler_metadata="x")


def test_cpu_tensor(cpu_inp):
    with pytest.raises(ValueError, match=r"^q: expected a CUDA tensor, got a tensor on cpu"):
        call(cpu_inp)


def test_eager_metadata_on_cpu(cpu_inp):
    with pytest.raises(ValueError, match=r"^cache_seqlens: expected a CUDA tensor"):
        flash_mla.get_mla_metadata(cpu_inp.cache_seqlens, 16, 1)
    with pytest.raises(TypeError, match=r"^cache_seqlens: expected dtype torch.int32"):
        flash_mla.get_mla_metadata(cpu_inp.cache_seqlens.long(), 16, 1)


def test_missing_kernels_raise_not_implemented(cpu_inp):
    with pytest.raises(NotImplementedError, match=r"sparse FP8 decode"):
        call(cpu_inp, indices=torch.zeros(2, 1, 64, dtype=torch.int32))
    with pytest.raises(NotImplementedError, match=r"dense decode over an FP8 KV cache"):
        call(cpu_inp, is_fp8_kvcache=True)
    with pytest.raises(NotImplementedError, match=r"sparse prefill"):
        flash_mla.flash_mla_sparse_fwd(torch.zeros(4, 64, 576, dtype=torch.bfloat16),
                                       torch.zeros(8, 1, 576, dtype=torch.bfloat16),
                                       torch.zeros(4, 1, 128, dtype=torch.int32), 0.1)
    with pytest.raises(NotImplementedError, match=r"SM100-only"):
        flash_mla.flash_attn_varlen_func(None, None, None, None, None, 1, 1)
    with pytest.raises(NotImplementedError, match=r"sparse FP8 decode"):
        flash_mla.get_mla_metadata(torch.zeros(2, dtype=torch.int32, device="cuda" if torch.cuda.is_available()
                                               else "cpu"), 64, 1, 64, True, 2048)


def test_sparse_only_arguments_on_the_dense_path(cpu_inp):
    with pytest.raises(ValueError, match=r"^attn_sink: belongs to the sparse path"):
        call(cpu_inp, attn_sink=torch.zeros(16))


# ---- classes that need the inputs on the GPU ----------------------------------------------------------------------

@needs_gpu
def test_tensors_on_different_devices(gpu_inp):
    with pytest.raises(ValueError, match=r"^block_table: expected a tensor on cuda:0 \(the device of q\), got cpu"):
        call(gpu_inp, block_table=gpu_inp.block_table.cpu())


@needs_gpu
@pytest.mark.skipif(not torch.cuda.is_available() or torch.cuda.device_count() < 2, reason="needs two GPUs")
def test_tensors_on_two_gpus(gpu_inp):
    with pytest.raises(ValueError, match=r"^k_cache: expected a tensor on cuda:0 \(the device of q\), got cuda:1"):
        call(gpu_inp, k_cache=gpu_inp.k_cache.to("cuda:1"))


@needs_gpu
def test_last_dim_not_contiguous(gpu_inp):
    q = gpu_inp.q.transpose(2, 3).contiguous().transpose(2, 3)  # same values, last-dim stride h_q
    with pytest.raises(ValueError, match=r"^q: last dim must be contiguous"):
        call(gpu_inp, q=q)
    kc = gpu_inp.k_cache
    bad = torch.empty(kc.shape[:-1] + (kc.shape[-1] * 2,), dtype=kc.dtype, device=kc.device)[..., ::2]
    with pytest.raises(ValueError, match=r"^k_cache: last dim must be contiguous"):
        call(gpu_inp, k_cache=bad)


@needs_gpu
def test_wrong_rank_or_shape(gpu_inp):
    with pytest.raises(ValueError, match=r"^q: expected 4 dims"):
        call(gpu_inp, q=gpu_inp.q[0])
    with pytest.raises(ValueError, match=r"^k_cache: expected 4 dims"):
        call(gpu_inp, k_cache=gpu_inp.k_cache[0])
    with pytest.raises(ValueError, match=r"^block_table: dim 0 \(b\) expected 2, got 1"):
        call(gpu_inp, block_table=gpu_inp.block_table[:1])
    with pytest.raises(ValueError, match=r"^cache_seqlens: dim 0 \(b\) expected 2, got 3"):
        call(gpu_inp, cache_seqlens=torch.zeros(3, dtype=torch.int32, device="cuda"))
    with pytest.raises(ValueError, match=r"^k_cache: dim 3 \(d_qk\) expected 576, got 512"):
        call(gpu_inp, k_cache=gpu_inp.k_cache[..., :512])
    sched, splits = flash_mla.get_mla_metadata(gpu_inp.cache_seqlens, 16, 1)
    with pytest.raises(ValueError, match=r"^num_splits: dim 0 \(b \+ 1\) expected 3, got 2"):
        call(gpu_inp, tile_scheduler_metadata=sched, num_splits=splits[:2])
    with pytest.raises(ValueError, match=r"^tile_scheduler_metadata: expected 2 dims"):
        call(gpu_inp, tile_scheduler_metadata=sched.flatten(), num_splits=splits)


@needs_gpu
def test_unsupported_page_size(gpu_inp):
    kc = gpu_inp.k_cache
    with pytest.raises(ValueError, match=r"^k_cache: page_block_size: expected > 0, got 0"):
        call(gpu_inp, k_cache=kc[:, :0])
    # d_qk 512 (MODEL1 shape) is valid FlashMLA input without a dense kernel here.
    q = gpu_inp.q[..., :512]
    with pytest.raises(NotImplementedError, match=r"^q: the sm_90 dense decode kernel supports d_qk = 576 only"):
        call(gpu_inp, q=q, k_cache=kc[..., :512])


@needs_gpu
def test_heads_not_divisible(gpu_inp):
    kc = torch.zeros(gpu_inp.k_cache.shape[0], 64, 3, 576, dtype=torch.bfloat16, device="cuda")
    with pytest.raises(ValueError, match=r"^q/k_cache: h_q \(16\) must be a multiple of h_kv \(3\)"):
        call(gpu_inp, k_cache=kc)


@needs_gpu
def test_head_dim_v(gpu_inp):
    with pytest.raises(ValueError, match=r"^head_dim_v: must be 512, got 576"):
        call(gpu_inp, head_dim_v=576)


@needs_gpu
def test_gpu_that_is_not_hopper(gpu_inp, monkeypatch):
    sched, splits = flash_mla.get_mla_metadata(gpu_inp.cache_seqlens, 16, 1)
    monkeypatch.setattr(_ops, "_capability", lambda index: (8, 0))
    with pytest.raises(RuntimeError, match=r"^q: FlashMLA-C\+\+ kernels need a Hopper GPU \(sm_90.*is sm_80"):
        call(gpu_inp, tile_scheduler_metadata=sched, num_splits=splits)
    with pytest.raises(RuntimeError, match=r"^cache_seqlens: FlashMLA-C\+\+ kernels need a Hopper GPU"):
        flash_mla.get_mla_metadata(gpu_inp.cache_seqlens, 16, 1)


@needs_gpu
def test_lengths_beyond_the_block_table_in_checked_mode(gpu_inp, monkeypatch):
    lens = gpu_inp.cache_seqlens.clone()
    lens[1] = gpu_inp.block_table.shape[1] * 64 + 1
    with pytest.raises(ValueError, match=r"^cache_seqlens: request 1 has length 129, more than its block_table row"):
        call(gpu_inp, cache_seqlens=lens, check=True)
    monkeypatch.setenv("FLASH_MLA_CHECK", "1")  # the environment turns the same check on
    with pytest.raises(ValueError, match=r"^cache_seqlens: request 1 has length 129"):
        call(gpu_inp, cache_seqlens=lens)


@needs_gpu
def test_negative_lengths_in_checked_mode(gpu_inp):
    lens = gpu_inp.cache_seqlens.clone()
    lens[0] = -3
    with pytest.raises(ValueError, match=r"^cache_seqlens: request 0 has the negative length -3"):
        call(gpu_inp, cache_seqlens=lens, check=True)


@needs_gpu
def test_block_ids_outside_the_cache_in_checked_mode(gpu_inp):
    table = gpu_inp.block_table.clone()
    table[0, 0] = gpu_inp.k_cache.shape[0]
    with pytest.raises(ValueError, match=r"^block_table: entry \[0, 0\] = 4 is used by request 0"):
        call(gpu_inp, block_table=table, check=True)


@needs_gpu
def test_checked_mode_refuses_graph_capture(gpu_inp):
    call(gpu_inp)  # warm-up outside capture
    graph = torch.cuda.CUDAGraph()
    with pytest.raises(RuntimeError, match=r"^check: the checked mode .* cannot run inside CUDA-graph capture"):
        with torch.cuda.graph(graph):
            call(gpu_inp, check=True)
