"""The torch-free extension flash_mla._C on its own (runs without torch and without a GPU): loaded directly, its
errors are Python exceptions of the documented types whose messages name the argument."""
import importlib.machinery
import importlib.util
import pathlib
import sys

import pytest


def _load_extension():
    if "flash_mla._C" in sys.modules:  # already loaded by the package (a second load would re-register its types)
        return sys.modules["flash_mla._C"]
    spec = importlib.util.find_spec("flash_mla")
    if spec is None or not spec.submodule_search_locations:
        pytest.fail("the flash_mla package is not installed (pip install .)")
    pkg_dir = pathlib.Path(list(spec.submodule_search_locations)[0])
    found = [p for p in pkg_dir.iterdir() if p.name.startswith("_C.") and p.suffix in (".so", ".pyd")]
    if not found:
        pytest.fail(f"flash_mla is installed at {pkg_dir} without its extension _C")
    loader = importlib.machinery.ExtensionFileLoader("flash_mla._C", str(found[0]))
    mod_spec = importlib.util.spec_from_loader("flash_mla._C", loader)
    mod = importlib.util.module_from_spec(mod_spec)
    loader.exec_module(mod)
    return mod


C = _load_extension()
BF16, I32, F32 = C.dtype_codes["bfloat16"], C.dtype_codes["int32"], C.dtype_codes["float32"]
FAKE = 1 << 20  # a non-null address that nothing dereferences: every call below fails validation first


def desc(dtype, shape, device=-1, strides=None):
    if strides is None:
        strides, acc = [], 1
        for n in reversed(shape):
            strides.insert(0, acc)
            acc *= n
    return (FAKE, dtype, list(shape), list(strides), device)


def dense_args(**over):
    b, s_q, h_q, h_kv, page = 2, 1, 16, 1, 64
    a = dict(q=desc(BF16, [b, s_q, h_q, 576]), k_cache=desc(BF16, [8, page, h_kv, 576]),
             block_table=desc(I32, [b, 4]), cache_seqlens=desc(I32, [b]), out=desc(BF16, [b, s_q, h_q, 512]),
             lse=desc(F32, [b, h_q, s_q]), head_dim_v=512, softmax_scale=576 ** -0.5, causal=False, num_parts=0)
    a.update(over)
    return a


def test_version_and_build():
    assert C.version().count(".") == 2
    assert C.built_with_cuda() is True  # the package is only built with the CUDA kernels


def test_host_tensors_are_rejected_naming_q():
    with pytest.raises(ValueError, match=r"^q: dense decode on the GPU needs CUDA tensors"):
        C.plan_dense_decode(**dense_args())


@pytest.mark.parametrize("field,value,message", [
    ("q", desc(BF16, [2, 16, 576]), r"^q: expected 4 dims"),
    ("q", desc(F32, [2, 1, 16, 576]), r"^q: expected dtype bf16 or fp16, got float32"),
    ("k_cache", desc(BF16, [8, 64, 3, 576]), r"h_q \(16\) must be a multiple of h_kv \(3\)"),
    ("k_cache", desc(BF16, [8, 0, 1, 576]), r"^k_cache: page_block_size"),
    ("head_dim_v", 256, r"d_v"),
    ("block_table", desc(I32, [3, 4]), r"^block_table: dim 0 \(b\) expected 2, got 3"),
    ("q", desc(BF16, [2, 1, 16, 576], strides=[9216, 9216, 576, 2]), r"^q: .*contiguous"),
])
def test_validation_names_the_argument(field, value, message):
    with pytest.raises(ValueError, match=message):
        C.plan_dense_decode(**dense_args(**{field: value}))


def test_schedule_on_host_memory_is_rejected():
    with pytest.raises(ValueError, match=r"^cache_seqlens: the schedule is built on the GPU"):
        C.dense_decode_schedule(desc(I32, [4]), desc(I32, [3, 8]), desc(I32, [5]), 0)


def test_schedule_shapes_are_checked():
    with pytest.raises(ValueError, match=r"^num_splits: dim 0 \(b \+ 1\) expected 5, got 4"):
        C.dense_decode_schedule(desc(I32, [4], 0), desc(I32, [3, 8], 0), desc(I32, [4], 0), 0)


def test_unknown_dtype_code_is_rejected():
    with pytest.raises(ValueError, match=r"^q: unknown dtype code"):
        C.plan_dense_decode(**dense_args(q=(FAKE, 99, [2, 1, 16, 576], [9216, 9216, 576, 1], -1)))
