"""A tiny user detector package, imported by tests/test_detectors.py by import path
(``mydetector:make``) and through a temporary entry point.

It flags pixels far above a robust local background: a probability from a logistic of
the significance of the pixel above the 5×5 median.
"""

import numpy as np
from scipy import ndimage as ndi


class SigmaDetector:
    """Probability = logistic((image - median5x5) / noise - nsigma)."""

    def __init__(self, nsigma=8.0, threshold=0.5, device="cpu"):
        self.nsigma = float(nsigma)
        self.threshold = threshold
        self.device = device
        self.name = f"sigma{self.nsigma:g}"
        self.version = f"mydetector 1.0 nsigma={self.nsigma:g}"

    def detect(self, image, ignore, exposure):
        img = np.asarray(image, dtype=np.float32)
        med = ndi.median_filter(img, size=5)
        rn = getattr(exposure, "read_noise", 5.0) if exposure is not None else 5.0
        noise = np.sqrt(np.clip(med, 0, None) + rn * rn)
        z = (img - med) / noise - self.nsigma
        prob = (1.0 / (1.0 + np.exp(-np.clip(z, -50, 50)))).astype(np.float32)
        if ignore is not None:
            prob[np.asarray(ignore, bool)] = 0.0
        return prob  # a float array: pytest-crbench thresholds it at self.threshold


def make(threshold=0.5, device="cpu"):
    """Factory accepting threshold/device keyword arguments."""
    return SigmaDetector(threshold=threshold, device=device)


def make_plain():
    """Factory taking no arguments (threshold gets set on the object afterwards)."""
    return SigmaDetector(nsigma=6.0)


def make_from_spec(rest="", threshold=0.5):
    """Entry-point factory: ``mydet:nsigma=6`` → called with ``"nsigma=6"``."""
    opts = dict(item.split("=", 1) for item in rest.split(",") if item)
    return SigmaDetector(nsigma=float(opts.get("nsigma", 8.0)), threshold=threshold)


class _NoDetect:
    name = "broken"
    version = "0"


def make_broken():
    """Returns an object without ``threshold`` and ``detect``."""
    return _NoDetect()


def make_failing():
    raise RuntimeError("weights not found")
