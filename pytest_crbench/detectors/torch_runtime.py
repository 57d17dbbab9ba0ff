"""How the neural detectors run torch here: the device a user names, glibc's allocator
tuned for per-tile buffers on the CPU, and deterministic cuDNN kernels on a GPU.

torch itself is passed in by the detectors (which import it lazily): importing this
module imports nothing heavy.
"""

from __future__ import annotations

import os

from pytest_crbench.errors import CRBenchDetectorError

__all__ = ["resolve_device", "tune_malloc", "deterministic", "MALLOC_ENV"]


def resolve_device(torch, device: str, detector: str) -> str:
    """``device`` (``cpu``, ``cuda``, ``cuda:N``, ``gpu`` or ``auto``) as torch names it,
    or a :class:`CRBenchDetectorError` naming ``detector`` and what is wrong."""
    dev = (device or "cpu").strip().lower()
    if dev == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if dev == "gpu":
        dev = "cuda"
    if dev.startswith("cuda"):
        if not torch.cuda.is_available():
            raise CRBenchDetectorError(
                f"{detector}: device {device!r} requested but torch {torch.__version__} sees "
                "no CUDA device (CPU-only build or no GPU); use device='cpu' or 'auto'"
            )
        return dev
    if dev == "cpu":
        return dev
    raise CRBenchDetectorError(
        f"{detector}: unknown device {device!r}; use 'cpu', 'cuda', 'cuda:N' or 'auto'"
    )


#: glibc's allocator settings of :func:`tune_malloc`, as environment variables: what a
#: process started for this work (a Dask worker) is given, since Dask's own default
#: (``MALLOC_TRIM_THRESHOLD_=65536``) would otherwise win and halve deepCR's CPU speed.
MALLOC_ENV = {"MALLOC_MMAP_THRESHOLD_": str(32 * 1024 * 1024),
              "MALLOC_TRIM_THRESHOLD_": str(256 * 1024 * 1024)}

_MALLOC_TUNED = False
#: glibc mallopt parameters (malloc.h)
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3


def tune_malloc(*, force: bool = False) -> bool:
    """Raise glibc's mmap threshold to its 32 MB ceiling and its trim threshold to 256 MB,
    once per process, so per-tile buffers are reused instead of being returned to the
    kernel and faulted in again.  Returns whether the allocator is tuned.

    Process-wide and irreversible (it only changes when freed memory goes back to the
    kernel); not applied where the user set ``MALLOC_MMAP_THRESHOLD_`` or
    ``MALLOC_TRIM_THRESHOLD_`` (their choice wins) unless ``force`` (a Dask worker, whose
    nanny sets ``MALLOC_TRIM_THRESHOLD_=65536`` for every worker), nor where libc is not
    glibc.
    """
    global _MALLOC_TUNED
    if _MALLOC_TUNED:
        return True
    if not force and ("MALLOC_MMAP_THRESHOLD_" in os.environ
                      or "MALLOC_TRIM_THRESHOLD_" in os.environ):
        return False
    import ctypes
    import platform

    if platform.system() != "Linux" or platform.libc_ver()[0] != "glibc":
        return False
    try:
        libc = ctypes.CDLL("libc.so.6")
        ok = (libc.mallopt(_M_MMAP_THRESHOLD, int(MALLOC_ENV["MALLOC_MMAP_THRESHOLD_"])) == 1
              and libc.mallopt(_M_TRIM_THRESHOLD, int(MALLOC_ENV["MALLOC_TRIM_THRESHOLD_"])) == 1)
    except (OSError, AttributeError):  # pragma: no cover - not glibc after all
        return False
    _MALLOC_TUNED = ok
    return ok


class deterministic:
    """Within the block, make cuDNN pick deterministic kernels, in full fp32 unless
    ``tf32`` (TensorFloat-32 convolutions: about 4x faster on an H100, a few pixels in a
    million differ), so GPU results are repeatable (fp32: equal to the CPU's to ~1e-5);
    the previous settings are restored afterwards."""

    def __init__(self, torch, device: str, *, tf32: bool = False) -> None:
        self.torch, self.on, self.tf32 = torch, device.startswith("cuda"), tf32

    def __enter__(self):
        if self.on:
            cudnn = self.torch.backends.cudnn
            self.saved = (cudnn.deterministic, cudnn.benchmark, cudnn.allow_tf32)
            cudnn.deterministic, cudnn.benchmark, cudnn.allow_tf32 = True, False, self.tf32
        return self

    def __exit__(self, *exc):
        if self.on:
            cudnn = self.torch.backends.cudnn
            cudnn.deterministic, cudnn.benchmark, cudnn.allow_tf32 = self.saved
        return False
