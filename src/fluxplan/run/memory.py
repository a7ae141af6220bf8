"""GPU memory as the allocator and as NVML see it: the CUDA context taken right after CUDA initialisation, and
this process's NVML usage sampled in a background thread while a pipeline runs.

NVML reports a process's usage by PID; inside a container whose PID namespace differs the own PID is not listed,
and the device's used memory less what others held before this process initialised CUDA stands in for it.
"""

from __future__ import annotations

import os
import threading
from dataclasses import dataclass

GIB = 1024**3


@dataclass(frozen=True)
class DeviceBaseline:
    """NVML and allocator figures taken right after CUDA initialisation."""

    index: int
    context_gib: float | None
    others_used_bytes: int | None  # device memory used before this process initialised CUDA
    nvml: bool


_BASELINES: dict[int, DeviceBaseline] = {}


def _cuda_index(device: str) -> int:
    import torch

    d = torch.device(device)
    return d.index if d.index is not None else torch.cuda.current_device()


def _nvml_handle(index: int):
    """NVML handle of torch's CUDA device `index` (matched by UUID: CUDA_VISIBLE_DEVICES may reorder)."""
    import pynvml
    import torch

    try:
        uuid = str(torch.cuda.get_device_properties(index).uuid)
        return pynvml.nvmlDeviceGetHandleByUUID(uuid if uuid.startswith("GPU-") else f"GPU-{uuid}")
    except (pynvml.NVMLError, AttributeError, RuntimeError):
        return pynvml.nvmlDeviceGetHandleByIndex(index)


def _process_used(handle) -> int | None:
    import pynvml

    try:
        procs = pynvml.nvmlDeviceGetComputeRunningProcesses(handle)
    except pynvml.NVMLError:
        return None
    pid = os.getpid()
    for p in procs:
        if p.pid == pid and p.usedGpuMemory is not None:
            return int(p.usedGpuMemory)
    return None  # e.g. another PID namespace (containers)


def _nvml_used(handle, baseline: DeviceBaseline) -> tuple[int | None, str | None]:
    import pynvml

    own = _process_used(handle)
    if own is not None:
        return own, "process"
    if baseline.others_used_bytes is None:
        return None, None
    return int(pynvml.nvmlDeviceGetMemoryInfo(handle).used) - baseline.others_used_bytes, "device"


def init_device(device: str) -> DeviceBaseline | None:
    """Initialise CUDA on `device` (None for the CPU) and take the baseline: NVML's memory in use before and
    after, less what torch reserved. Cached per device for the life of the process."""
    if not device.startswith("cuda"):
        return None
    import torch

    index = _cuda_index(device)
    if index in _BASELINES:
        torch.cuda.set_device(index)
        return _BASELINES[index]
    before = None
    try:
        import pynvml

        pynvml.nvmlInit()
        handle = pynvml.nvmlDeviceGetHandleByIndex(index)
        if not torch.cuda.is_initialized():
            before = int(pynvml.nvmlDeviceGetMemoryInfo(handle).used)
        nvml = True
    except Exception:  # no NVML (e.g. a driverless container): allocator figures only
        nvml = False
    torch.cuda.init()
    torch.cuda.set_device(index)  # the current device: events, synchronize() and the peak statistics follow it
    torch.zeros(1, device=f"cuda:{index}")
    torch.cuda.synchronize(index)
    context = None
    if nvml:
        base = DeviceBaseline(index, None, before, True)
        used, _ = _nvml_used(_nvml_handle(index), base)
        if used is not None:
            context = (used - torch.cuda.memory_reserved(index)) / GIB
    _BASELINES[index] = DeviceBaseline(index, context, before, nvml)
    return _BASELINES[index]


class NvmlSampler:
    """Samples this process's NVML memory in a background thread; `peak_bytes` after the block."""

    def __init__(self, baseline: DeviceBaseline, interval_s: float = 0.01):
        self.baseline, self.interval_s = baseline, interval_s
        self.peak_bytes: int | None = None
        self.source: str | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def sample(self) -> None:
        import pynvml

        try:
            used, source = _nvml_used(self._handle, self.baseline)
        except pynvml.NVMLError:
            return
        if used is not None:
            self.peak_bytes = used if self.peak_bytes is None else max(self.peak_bytes, used)
            self.source = source

    def _loop(self) -> None:
        while not self._stop.wait(self.interval_s):
            self.sample()

    def __enter__(self) -> "NvmlSampler":
        if self.baseline.nvml:
            self._handle = _nvml_handle(self.baseline.index)
            self.sample()
            self._thread = threading.Thread(target=self._loop, name="fluxplan-nvml", daemon=True)
            self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        if self._thread is not None:
            self._stop.set()
            self._thread.join()
            self.sample()


# Kernels that CUDA's lazy loading brings in after initialisation add to the context: measured on an H100 as the
# NVML peak less the allocator's reserved peak, 0.672 GiB, against 0.596 GiB right after initialisation.
LAZY_KERNELS_GIB = 0.08


def cap_memory(device: str, vram_gib: float) -> str | None:
    """Hold this process to `vram_gib` of the device, CUDA context included: the allocator is capped at what is
    left after the context (torch.cuda.set_per_process_memory_fraction), so going past it is an out-of-memory error
    that recovery handles, not a spill. Returns a note, or None when the card holds less than `vram_gib`."""
    import torch

    from fluxplan.errors import BadInput

    baseline = init_device(device)
    index = _cuda_index(device)
    total = torch.cuda.get_device_properties(index).total_memory / GIB
    if vram_gib >= total:
        return None
    context = (baseline.context_gib if baseline and baseline.context_gib is not None else 0.6) + LAZY_KERNELS_GIB
    allocator = vram_gib - context
    if allocator <= 0:
        raise BadInput(f"--vram {vram_gib:g}: less than the CUDA context ({context:.2f} GiB) on this GPU")
    torch.cuda.set_per_process_memory_fraction(allocator / total, index)
    return (f"held to {vram_gib:g} of {total:.1f} GiB: the allocator is capped at {allocator:.2f} GiB "
            f"(the CUDA context takes {context:.2f})")
