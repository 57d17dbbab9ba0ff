"""pytest-crbench: benchmark and regression-gate cosmic-ray detectors for CCD images.

The science modules (``reference``, ``regions``, ``metrics``, ``photometry``, …) are
plain numpy/astropy code usable without pytest; ``plugin`` holds the pytest hooks.
Importing this package imports nothing heavy.
"""

from pytest_crbench._version import __version__
