"""Read the hardware: the GPU through NVML, the host's RAM. Only this module (and the runner) touch hardware;
the planner takes what it returns as plain data."""

from __future__ import annotations

import os
from dataclasses import dataclass

from fluxplan.errors import NoGPU

MIB = 1024**2
GIB = 1024**3


@dataclass(frozen=True)
class ProbedGPU:
    index: int
    name: str
    total_gib: float
    free_gib: float
    used_by_others_gib: float
    driver: str
    compute_capability: float | None


def probe_gpu(index: int = 0) -> ProbedGPU:
    """The GPU as NVML sees it. Raises NoGPU (one clear line) where there is none or no driver."""
    try:
        import pynvml
    except ImportError:  # pragma: no cover - nvidia-ml-py is a core dependency
        raise NoGPU("no GPU found: the nvidia-ml-py package is missing") from None
    try:
        pynvml.nvmlInit()
    except pynvml.NVMLError as e:
        raise NoGPU(f"no NVIDIA GPU found (NVML: {e}); name a card with --gpu, e.g. --gpu 4090") from None
    try:
        count = pynvml.nvmlDeviceGetCount()
        if index >= count:
            raise NoGPU(f"GPU {index} not found: this machine has {count}")
        h = pynvml.nvmlDeviceGetHandleByIndex(index)
        name = pynvml.nvmlDeviceGetName(h)
        name = name.decode() if isinstance(name, bytes) else name
        mem = pynvml.nvmlDeviceGetMemoryInfo(h)
        driver = pynvml.nvmlSystemGetDriverVersion()
        driver = driver.decode() if isinstance(driver, bytes) else driver
        try:
            major, minor = pynvml.nvmlDeviceGetCudaComputeCapability(h)
            cc = major + minor / 10
        except pynvml.NVMLError:
            cc = None
        own = os.getpid()
        others = 0
        try:
            for p in pynvml.nvmlDeviceGetComputeRunningProcesses(h):
                if p.pid != own and p.usedGpuMemory:
                    others += p.usedGpuMemory
        except pynvml.NVMLError:
            pass
        return ProbedGPU(index=index, name=name, total_gib=mem.total / GIB, free_gib=mem.free / GIB,
                         used_by_others_gib=others / GIB, driver=driver, compute_capability=cc)
    finally:
        pynvml.nvmlShutdown()


def host_ram_gib() -> float | None:
    """Total host RAM from /proc/meminfo (None where it cannot be read)."""
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemTotal:"):
                    return int(line.split()[1]) * 1024 / GIB
    except OSError:
        return None
    return None
