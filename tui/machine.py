"""The machine strip's figures: device, dtype, memory now/peak and throughput of a run's process.

Memory comes from the run's `usage` events (written every few seconds during the search: RSS on
CPU, torch's allocated bytes on CUDA); in phases without them (loading, calibrating, benchmarking)
the child's `/proc/<pid>/status` gives its resident memory now (VmRSS) and its peak (VmHWM).
"""

from __future__ import annotations

from dataclasses import dataclass

from ..core.events import Usage


@dataclass(frozen=True)
class ProcMemory:
    rss_bytes: int
    peak_rss_bytes: int


def proc_memory(pid: int | None) -> ProcMemory | None:
    """VmRSS and VmHWM of process `pid` from /proc (None when it is gone or there is no /proc)."""
    if pid is None:
        return None
    try:
        with open(f"/proc/{pid}/status") as f:
            fields = dict(line.split(":", 1) for line in f if ":" in line)
        return ProcMemory(int(fields["VmRSS"].split()[0]) * 1024, int(fields["VmHWM"].split()[0]) * 1024)
    except (OSError, KeyError, ValueError, IndexError):
        return None


def size(n: int | None) -> str:
    """Bytes as MiB under 10 GiB, else GiB; "?" when unknown."""
    if n is None:
        return "?"
    return f"{n / 2**30:.1f} GiB" if n >= 10 * 2**30 else f"{n / 2**20:.0f} MiB"


def strip_text(config: dict, usage: Usage | None, proc: ProcMemory | None, peak_rss: int, peak_gpu: int) -> str:
    """One line: device · dtype · memory now / peak · tokens/s (plain text)."""
    device = usage.device if usage else config.get("device") or (config.get("config") or {}).get("device") or "?"
    dtype = usage.dtype if usage else config.get("dtype") or "?"
    parts = [f"device {device}", f"dtype {dtype}"]
    if usage is not None and usage.gpu_bytes is not None:
        parts.append(f"gpu mem {size(usage.gpu_bytes)} (peak {size(max(peak_gpu, usage.gpu_peak_bytes or 0))})")
    rss = proc.rss_bytes if proc else usage.rss_bytes if usage else None
    peak = max(peak_rss, proc.peak_rss_bytes if proc else 0) or None
    parts.append(f"rss {size(rss)} (peak {size(peak)})")
    rate = usage.tokens_per_s if usage else None
    parts.append(f"{rate:,.0f} tok/s" if rate is not None else "tok/s ?")
    return " · ".join(parts)
