"""Fixtures and skips of the flash_mla pytest suite.

Without PyTorch every torch test is skipped with that reason (the torch-free binding tests still run); without a
CUDA GPU the GPU tests are skipped with that reason. A missing or broken flash_mla install is an error, not a skip.
"""
import importlib.util

import pytest

HAVE_TORCH = importlib.util.find_spec("torch") is not None

if HAVE_TORCH:
    import torch

    HAVE_GPU = torch.cuda.is_available()
    IS_SM90 = HAVE_GPU and torch.cuda.get_device_capability(0) == (9, 0)
else:
    HAVE_GPU = IS_SM90 = False

needs_torch = pytest.mark.skipif(not HAVE_TORCH, reason="PyTorch is not installed (the flash_mla API is torch ops)")
needs_gpu = pytest.mark.skipif(not IS_SM90, reason="no sm_90 CUDA GPU (H100/H200) visible to torch" if HAVE_TORCH
                               else "PyTorch is not installed")


@pytest.fixture(autouse=True)
def _no_env_check(monkeypatch):
    """Tests choose the checked mode explicitly; an inherited FLASH_MLA_CHECK must not change them."""
    monkeypatch.delenv("FLASH_MLA_CHECK", raising=False)
