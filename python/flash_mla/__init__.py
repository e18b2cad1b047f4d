"""flash_mla: FlashMLA-C++'s drop-in for DeepSeek's ``flash_mla`` package.

Same module name, functions, arguments and return conventions as DeepSeek's FlashMLA (see
``flash_mla_interface``); the kernels come from the torch-free C++ library through ``flash_mla._C`` and are
registered as torch ops ``torch.ops.flash_mla.*`` (``_ops``). Float32 torch references: ``flash_mla.testing``.
"""

try:
    import torch  # noqa: F401  (the ops are torch ops; torch must be imported before the extension is used)
except ImportError as e:  # pragma: no cover - depends on the environment
    raise ImportError("flash_mla needs PyTorch (with CUDA) installed; install torch first") from e

from flash_mla.flash_mla_interface import (
    FlashMLASchedMeta,
    flash_attn_varlen_func,
    flash_attn_varlen_kvpacked_func,
    flash_attn_varlen_qkvpacked_func,
    flash_mla_sparse_fwd,
    flash_mla_with_kvcache,
    get_mla_metadata,
)

__version__ = "0.1.0"

__all__ = [
    "FlashMLASchedMeta",
    "get_mla_metadata",
    "flash_mla_with_kvcache",
    "flash_mla_sparse_fwd",
    "flash_attn_varlen_func",
    "flash_attn_varlen_qkvpacked_func",
    "flash_attn_varlen_kvpacked_func",
]
