"""Where exposures come from: the simulator, real HST products and their loaders, the
data registry and groups file, the download cache, and HST/FITS input and output."""

__all__ = []
