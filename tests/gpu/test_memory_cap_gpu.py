"""GPU: `--vram` holds the process to that much memory (run.memory.cap_memory): past it, allocations fail with an
out-of-memory error (which recovery handles) instead of taking the rest of the card.

Run on the device machine:  pytest -m gpu tests/gpu/test_memory_cap_gpu.py
"""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.gpu
torch = pytest.importorskip("torch")
if not torch.cuda.is_available():
    pytest.skip("needs a CUDA GPU", allow_module_level=True)

from fluxplan.run.memory import GIB, cap_memory, init_device  # noqa: E402


def test_vram_caps_the_allocator_at_the_card_less_the_context():
    base = init_device("cuda")
    try:
        note = cap_memory("cuda", 4.0)
        assert note is not None and "4" in note
        fits = torch.empty(int(2.5 * GIB), dtype=torch.uint8, device="cuda")  # 4 GiB less the context holds this
        with pytest.raises(torch.OutOfMemoryError):
            torch.empty(int((4.0 - base.context_gib) * GIB), dtype=torch.uint8, device="cuda")
        del fits
    finally:
        torch.cuda.set_per_process_memory_fraction(1.0)
        torch.cuda.empty_cache()
