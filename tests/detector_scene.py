"""Shared synthetic scene of the detector tests.

Small synthetic ACS/WFC-like images: flat sky of 100 e- with Poisson and read noise, a
few sharp Gaussian stars, and injected cosmic-ray hits of 1000-5000 e- over 1-4 pixels
whose positions are the truth.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from scipy import ndimage as ndi

from pytest_crbench.science.exposures import Exposure

USERDET = Path(__file__).parent / "userdet"


def make_scene(n=256, seed=1, ncr=40, stars=8):
    """(image, noiseless sky+stars, truth mask) with ``ncr`` CR hits of 1-4 pixels."""
    rng = np.random.default_rng(seed)
    model = np.full((n, n), 100.0)
    yy, xx = np.mgrid[:n, :n]
    for _ in range(stars):
        y0, x0 = rng.uniform(10, n - 10, 2)
        flux, s = rng.uniform(2e3, 2e4), 0.9
        model += flux / (2 * np.pi * s * s) * np.exp(-((yy - y0) ** 2 + (xx - x0) ** 2) / (2 * s * s))
    img = rng.poisson(model).astype(float) + rng.normal(0, 5, (n, n))
    truth = np.zeros((n, n), bool)
    for _ in range(ncr):
        y, x = rng.integers(4, n - 4, 2)
        k = rng.integers(1, 5)
        dy, dx = [(0, 1), (1, 0), (1, 1)][rng.integers(3)]
        for i in range(k):
            img[y + i * dy, x + i * dx] += rng.uniform(1000, 5000)
            truth[y + i * dy, x + i * dx] = True
    return img.astype(np.float32), model.astype(np.float32), truth


def scene_with_exposure(**kw):
    """(image, noiseless model, truth mask, Exposure) of :func:`make_scene`."""
    img, model, truth = make_scene(**kw)
    exp = Exposure(name="synth", sci=img, dq=np.zeros(img.shape, np.int32), exptime=500.0,
                   read_noise=5.0, saturation=70000.0)
    return img, model, truth, exp


def scores(mask, truth):
    """(recall, precision); a predicted pixel within 1 px of a CR pixel counts as correct
    (deepCR flags the wings of a hit, as real charge diffusion would need)."""
    near = ndi.binary_dilation(truth, structure=np.ones((3, 3), bool))
    recall = (mask & truth).sum() / truth.sum()
    precision = (mask & near).sum() / max(int(mask.sum()), 1)
    return recall, precision
