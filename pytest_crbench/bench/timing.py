"""Timing helpers for inference benchmarks (pytest-benchmark).

:func:`synced_timer` synchronises the GPU before reading the clock when torch has
initialised CUDA, so asynchronous kernels are inside the timed region; on the CPU it is
``time.perf_counter``.  :class:`PeakMemory` measures the peak resident memory of the
process during a block (Linux ``VmHWM``, reset through ``/proc/self/clear_refs``) and
the peak CUDA allocation when a GPU is in use.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

__all__ = ["synced_timer", "PeakMemory"]


def synced_timer() -> float:
    torch = sys.modules.get("torch")
    if torch is not None and torch.cuda.is_available() and torch.cuda.is_initialized():
        torch.cuda.synchronize()
    return time.perf_counter()


def _vm_hwm_bytes() -> int | None:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    except OSError:
        return None
    return None


class PeakMemory:
    """``with PeakMemory() as pm: ...`` then ``pm.rss_bytes`` / ``pm.cuda_bytes``."""

    def __enter__(self):
        try:
            Path("/proc/self/clear_refs").write_text("5")  # reset the peak RSS mark
        except OSError:
            pass
        torch = sys.modules.get("torch")
        self._cuda = torch is not None and torch.cuda.is_available() and torch.cuda.is_initialized()
        if self._cuda:
            torch.cuda.reset_peak_memory_stats()
        return self

    def __exit__(self, *exc):
        self.rss_bytes = _vm_hwm_bytes()
        self.cuda_bytes = None
        if self._cuda:
            self.cuda_bytes = int(sys.modules["torch"].cuda.max_memory_allocated())
        return False
