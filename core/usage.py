"""Memory in use by this process, read the same way wherever it is shown (runs, the TUI, `speed`).

* CPU: resident set size now (`/proc/self/statm`; 0 where there is none) and its high-water
  mark (`getrusage` `ru_maxrss`, kilobytes on Linux);
* CUDA: `torch.cuda.memory_allocated` and `max_memory_allocated` of the device (torch's own
  allocations, not the driver's reservation).
"""

from __future__ import annotations

import os
import resource

from .events import Usage


def rss_bytes() -> int:
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return 0


def peak_rss_bytes() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def measure(device: str, dtype: str, tokens_per_s: float | None = None) -> Usage:
    gpu = peak = None
    if device.startswith("cuda"):
        import torch

        gpu, peak = torch.cuda.memory_allocated(device), torch.cuda.max_memory_allocated(device)
    return Usage(
        device=device,
        dtype=dtype,
        rss_bytes=rss_bytes(),
        peak_rss_bytes=peak_rss_bytes(),
        gpu_bytes=gpu,
        gpu_peak_bytes=peak,
        tokens_per_s=tokens_per_s,
    )
